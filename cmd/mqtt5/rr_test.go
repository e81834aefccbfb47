package main

import (
	"context"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/broker"
)

// responder answers requests on filter in-process: first a decoy with other
// correlation data, then the reply, both to the Response Topic.
func responder(t *testing.T, b *testBroker, filter string) {
	t.Helper()
	unsub, err := b.Subscribe(filter, 1, func(m *broker.Message) {
		ctx := context.Background()
		decoy := &broker.Message{Topic: m.Props.ResponseTopic, Payload: []byte("decoy"), QoS: 1}
		decoy.Props.CorrelationData = []byte("someone else")
		b.Publish(ctx, decoy)
		reply := &broker.Message{Topic: m.Props.ResponseTopic, Payload: append([]byte("echo:"), m.Payload...), QoS: 1}
		reply.Props.CorrelationData = append([]byte(nil), m.Props.CorrelationData...)
		reply.Props.ContentType = "text/plain"
		b.Publish(ctx, reply)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
}

func TestRR(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	responder(t, b, "svc/echo")
	code, out, errs := runCmd(t, b.args("rr", "-t", "svc/echo", "-e", "reply/1", "-m", "hi", "-q", "1", "-W", "5")...)
	if code != 0 || out != "echo:hi\n" {
		t.Fatalf("rr: exit %d %q %q", code, out, errs)
	}
	// Given correlation data, JSON output.
	code, out, errs = runCmd(t, b.args("rr", "-t", "svc/echo", "-e", "reply/2", "-m", "x", "-F", "json",
		"-D", "publish", "correlation-data", "abc", "-D", "publish", "user-property", "k", "v")...)
	if m := jsonLines(t, out); code != 0 || len(m) != 1 || m[0].Payload != "echo:x" || m[0].Properties == nil ||
		*m[0].Properties.CorrelationData != "abc" || m[0].Properties.ContentType != "text/plain" {
		t.Fatalf("rr -F json: exit %d %q %q", code, out, errs)
	}
	// stdin request, -v output.
	code, out, errs = runStdin(t, "from stdin", b.args("rr", "-t", "svc/echo", "-e", "reply/3", "-s", "-v")...)
	if code != 0 || out != "reply/3 echo:from stdin\n" {
		t.Fatalf("rr -s -v: exit %d %q %q", code, out, errs)
	}
	// Nobody answers.
	code, _, errs = runCmd(t, b.args("rr", "-t", "svc/none", "-e", "reply/4", "-m", "x", "-W", "1")...)
	if code != 1 || !strings.Contains(errs, "no response on reply/4 within 1s") {
		t.Fatalf("rr without responder: exit %d %q", code, errs)
	}
}
