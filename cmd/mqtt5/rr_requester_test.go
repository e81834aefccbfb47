package main

import (
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/broker"
)

// TestRRStrays: with -d, rr names the messages on the response topic that
// answer another request, and prints only its own response.
func TestRRStrays(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	responder(t, b, "svc/echo")
	code, out, errs := runCmd(t, b.args("rr", "-t", "svc/echo", "-e", "reply/strays", "-m", "hi", "-q", "1", "-d",
		"-D", "subscribe", "subscription-identifier", "7", "-F", "json")...)
	m := jsonLines(t, out)
	if code != 0 || len(m) != 1 || m[0].Payload != "echo:hi" || m[0].Properties == nil ||
		len(m[0].Properties.SubscriptionIDs) != 1 || m[0].Properties.SubscriptionIDs[0] != 7 {
		t.Fatalf("rr: exit %d %q %q", code, out, errs)
	}
	if !strings.Contains(errs, "subscribed to reply/strays: granted QoS 1") {
		t.Fatalf("no subscription report: %q", errs)
	}
	// The decoy is published before the reply, on the same topic and at
	// the same QoS: it is handled (and reported) first.
	if !strings.Contains(errs, `ignoring a message on reply/strays with other correlation data ("someone else")`) {
		t.Fatalf("stray report: %q", errs)
	}
}
