package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mqtt5go/mqtt5/client"
)

const pubSynopsis = "pub {-t topic | -L URL} {-m message | -f file | -s | -l | -n} [flags]"

const pubFooter = `Examples:
  mqtt5 pub -t sensors/1/temp -m 21.5 -q 1
  mqtt5 pub -L mqtt://user:secret@broker:1883/sensors/1/temp -m 21.5 -r
  tail -f log | mqtt5 pub -t logs -l -q 1
  mqtt5 pub -t cmd -m on -D publish user-property origin cli -D publish message-expiry-interval 60
  mqtt5 pub -t logs/app -f app.log --compress gzip --compress-min 512

` + propHelp + `
` + "MQTT 5 is the default (mosquitto_pub defaults to 3.1.1): pass -V 311 for 3.1.1.\n\n"

// runPub publishes one message (-m, -f, -s, -n) or one per line of stdin
// (-l), then disconnects.
func runPub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("pub", pubSynopsis, pubFooter+fmt.Sprintf(exitHelp, ": every message was published (QoS 1/2: acknowledged)"))
	var cf connFlags
	var src msgSource
	var topic string
	var qos int
	var retain bool
	c.stringVar(&topic, "t", "topic", "TOPIC", "topic to publish to")
	src.register(c, true)
	c.intVar(&qos, "q", "qos", "QOS", "quality of service: 0, 1 or 2 (default 0)", 0, 2)
	c.boolVar(&retain, "r", "retain", "retain the message")
	var codec codecFlags
	codec.registerCompress(c)
	cf.register(c, "connect", "publish", "will", "disconnect")
	pos, err := c.parse(args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, pos[0])
	}
	if err := src.check(); err != nil {
		return err
	}
	errw := &lockedWriter{w: stderr}
	defer errw.close()
	o, err := cf.options(errw)
	if err != nil {
		return err
	}
	if o.Codec, err = codec.codec(cf.version); err != nil {
		return err
	}
	if cf.urlTopic != "" {
		if topic != "" {
			return fmt.Errorf("%w: give the topic with -t or in the -L URL, not both", errUsage)
		}
		topic = cf.urlTopic
	}
	if topic == "" && cf.props.publish.topicAlias == 0 {
		return fmt.Errorf("%w: no topic: give -t or a -L URL with a topic", errUsage)
	}
	o.DisableReconnect = true // a one-shot command: a lost connection fails it

	var payload []byte
	if !src.lines {
		if payload, err = src.payload(ctx); err != nil {
			return err
		}
	}
	cl, _, err := connectClient(ctx, o)
	if err != nil {
		return err
	}
	newMsg := func(p []byte) *client.Message {
		m := &client.Message{Topic: topic, Payload: p, QoS: byte(qos), Retain: retain}
		cf.props.publish.apply(m)
		return m
	}
	if src.lines {
		err = publishLines(ctx, cl, stdinFrom(ctx), newMsg)
	} else if err = cl.Publish(ctx, newMsg(payload)); err != nil {
		err = describe("publish", err)
	}
	if derr := disconnect(cl, &cf.props); err == nil {
		err = derr
	}
	return err
}

// publishLines publishes each non-empty line of r as a message, pipelined:
// up to a thousand publishes are in flight while the next lines are read.
// It stops at the first failure and reports it.
func publishLines(ctx context.Context, cl *client.Client, r io.Reader, newMsg func([]byte) *client.Message) error {
	type line struct {
		b   []byte
		err error
	}
	lines := make(chan line)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// The reader runs apart so that an interrupt is noticed while
		// stdin blocks; it ends at EOF or when stop is closed.
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			b, err := br.ReadBytes('\n')
			b = bytes.TrimSuffix(b, []byte{'\n'})
			b = bytes.TrimSuffix(b, []byte{'\r'})
			var l line
			if len(b) > 0 {
				l.b = b
			}
			if err != nil {
				l.err = err
			}
			if l.b == nil && l.err == nil {
				continue // empty line: not sent (as mosquitto_pub -l)
			}
			select {
			case lines <- l:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var pending []*client.Token
	// settle drops completed tokens from the front, waiting for the front
	// one while more than keep are pending. The first error, in publishing
	// order, is returned.
	settle := func(keep int) error {
		for len(pending) > 0 {
			t := pending[0]
			if len(pending) > keep {
				if err := t.Wait(ctx); err != nil {
					return err
				}
			} else {
				select {
				case <-t.Done():
				default:
					return nil
				}
			}
			if err := t.Err(); err != nil {
				return err
			}
			pending[0] = nil
			pending = pending[1:]
		}
		return nil
	}
	for {
		var l line
		select {
		case l = <-lines:
		case <-ctx.Done():
			return describe("publish", ctx.Err())
		}
		if l.b != nil {
			pending = append(pending, cl.PublishAsync(ctx, newMsg(l.b)))
			if err := settle(1000); err != nil {
				return describe("publish", err)
			}
		}
		if l.err != nil {
			if !errors.Is(l.err, io.EOF) {
				return fmt.Errorf("reading stdin: %w", l.err)
			}
			break
		}
	}
	if err := settle(0); err != nil {
		return describe("publish", err)
	}
	return nil
}
