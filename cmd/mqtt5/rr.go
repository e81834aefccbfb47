package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

const rrSynopsis = "rr -t request-topic -e response-topic {-m message | -f file | -s | -n} [flags]"

const rrFooter = `rr subscribes to the response topic, publishes the request with the Response
Topic and Correlation Data properties (MQTT 5 only), waits for the response
that carries the same Correlation Data (others are ignored), prints it in the
chosen format and exits. The correlation data is random unless given with
-D publish correlation-data VALUE; the responder must copy it into its reply.

Examples:
  mqtt5 rr -t svc/time -e reply/me -m now
  mqtt5 rr -t svc/echo -e reply/me -m hi -F json -W 3

` + propHelp + "\n"

// runRR sends a request and prints the matching response.
func runRR(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("rr", rrSynopsis, rrFooter+fmt.Sprintf(exitHelp,
		": the response arrived and was printed")+"  (no response within -W seconds is a failure: exit 1)\n")
	var (
		cf        connFlags
		src       msgSource
		out       outputFlags
		reqTopic  string
		respTopic string
		qos       int
		timeout   = 10
	)
	c.stringVar(&reqTopic, "t", "topic", "TOPIC", "request topic")
	c.stringVar(&respTopic, "e", "response-topic", "TOPIC", "response topic: subscribed to, and sent as the Response Topic")
	src.register(c, false)
	c.intVar(&qos, "q", "qos", "QOS", "QoS of the request and of the response subscription (default 0)", 0, 2)
	c.intVar(&timeout, "W", "timeout", "SECONDS", "how long to wait for the response (default 10)", 1, 1<<31-1)
	out.register(c)
	cf.register(c, "connect", "publish", "subscribe", "will", "disconnect")
	pos, err := c.parse(args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, pos[0])
	}
	if cf.version == packet.V311 {
		return fmt.Errorf("%w: request/response needs MQTT 5 (Response Topic and Correlation Data are MQTT 5 properties): drop -V %v", errUsage, cf.version)
	}
	if err := src.check(); err != nil {
		return err
	}
	format, err := out.get()
	if err != nil {
		return err
	}
	errw := &lockedWriter{w: stderr}
	defer errw.close()
	o, err := cf.options(errw)
	if err != nil {
		return err
	}
	if cf.urlTopic != "" {
		if reqTopic != "" {
			return fmt.Errorf("%w: give the request topic with -t or in the -L URL, not both", errUsage)
		}
		reqTopic = cf.urlTopic
	}
	if reqTopic == "" {
		return fmt.Errorf("%w: no request topic: give -t", errUsage)
	}
	if respTopic == "" {
		return fmt.Errorf("%w: no response topic: give -e", errUsage)
	}
	if err := topic.ValidateName(reqTopic); err != nil {
		return fmt.Errorf("%w: -t %q: %v", errUsage, reqTopic, err)
	}
	if err := topic.ValidateName(respTopic); err != nil {
		return fmt.Errorf("%w: -e %q: a response topic is a topic name: %v", errUsage, respTopic, err)
	}
	payload, err := src.payload(ctx)
	if err != nil {
		return err
	}
	req := &client.Message{Topic: reqTopic, Payload: payload, QoS: byte(qos)}
	cf.props.publish.apply(req)
	req.ResponseTopic = respTopic
	if req.CorrelationData == nil {
		id := make([]byte, 16)
		rand.Read(id)
		req.CorrelationData = []byte(hex.EncodeToString(id))
	}
	o.DisableReconnect = true

	cl, _, err := connectClient(ctx, o)
	if err != nil {
		return err
	}
	resp := make(chan *client.Message, 1)
	handler := func(m *client.Message) {
		if !bytes.Equal(m.CorrelationData, req.CorrelationData) {
			if cf.debug {
				fmt.Fprintf(errw, "ignoring a message on %s with other correlation data (%q)\n", m.Topic, m.CorrelationData)
			}
			return
		}
		select {
		case resp <- m:
		default:
		}
	}
	err = subscribe(ctx, cl, []client.Subscription{{Filter: respTopic, QoS: byte(qos)}}, handler, &cf.props, errw, cf.debug)
	if err == nil {
		err = cl.Publish(ctx, req)
		if err != nil {
			err = describe("request", err)
		}
	}
	if err == nil {
		t := time.NewTimer(time.Duration(timeout) * time.Second)
		defer t.Stop()
		select {
		case m := <-resp:
			stdout.Write(appendMessage(nil, m, format, !out.noNewline))
		case <-t.C:
			err = fmt.Errorf("no response on %s within %ds", respTopic, timeout)
		case <-ctx.Done():
			err = fmt.Errorf("interrupted while waiting for the response")
		case <-cl.Done():
			err = fmt.Errorf("connection ended: %w", cl.Err())
		}
	}
	if derr := disconnect(cl, &cf.props); err == nil && cl.Err() == nil {
		err = derr
	}
	return err
}
