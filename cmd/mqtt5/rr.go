package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
that carries the same Correlation Data (others are ignored; -d names them),
prints it in the chosen format and exits. The correlation data is random unless given with
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
	r, err := client.NewRequester(cl, client.RequesterOptions{
		ResponseTopic:    respTopic,
		QoS:              byte(qos),
		MaxInFlight:      1,
		SubscribeOptions: subscribeOptions(&cf.props),
		OnStray: func(m *client.Message) {
			if cf.debug {
				fmt.Fprintf(errw, "ignoring a message on %s with other correlation data (%q)\n", m.Topic, m.CorrelationData)
			}
		},
	})
	if err == nil {
		subs := []client.Subscription{{Filter: respTopic, QoS: byte(qos)}}
		ack, serr := r.Start(ctx)
		err = subackResult(ack, serr, subs, errw, cf.debug)
	} else {
		err = fmt.Errorf("%w: %v", errUsage, err)
	}
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, time.Duration(timeout)*time.Second)
		m, rerr := r.Request(wctx, req)
		cancel()
		switch {
		case rerr == nil:
			stdout.Write(appendMessage(nil, m, format, !out.noNewline))
		case ctx.Err() != nil:
			err = fmt.Errorf("interrupted while waiting for the response")
		case errors.Is(rerr, context.DeadlineExceeded):
			err = fmt.Errorf("no response on %s within %ds", respTopic, timeout)
		case errors.Is(rerr, client.ErrClosed):
			err = fmt.Errorf("connection ended: %w", cl.Err())
		default:
			err = describe("request", rerr)
		}
	}
	if derr := disconnect(cl, &cf.props); err == nil && cl.Err() == nil {
		err = derr
	}
	return err
}
