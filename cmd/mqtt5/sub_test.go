package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
)

func TestSubCountAndTimeout(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	// -C ends after the count; later messages are not printed.
	sub := startCmd(t, b.args("sub", "-t", "cnt", "-C", "2", "-q", "1", "-d")...)
	sub.subscribed(t)
	for i := range 4 {
		runCmd(t, b.args("pub", "-t", "cnt", "-q", "1", "-m", fmt.Sprint(i))...)
	}
	if code, out, errs := sub.wait(t); code != 0 || out != "0\n1\n" {
		t.Fatalf("-C 2: exit %d %q %q", code, out, errs)
	}

	// -W without -C: the planned end, exit 0.
	start := time.Now()
	code, out, errs := runCmd(t, b.args("sub", "-t", "quiet", "-W", "1")...)
	if code != 0 || out != "" || time.Since(start) < time.Second {
		t.Fatalf("-W 1: exit %d after %v, %q %q", code, time.Since(start), out, errs)
	}
	// -W with -C not reached: exit 1.
	code, _, errs = runCmd(t, b.args("sub", "-t", "quiet", "-W", "1", "-C", "1")...)
	if code != 1 || !strings.Contains(errs, "timed out after 1s: 0 of 1 messages received") {
		t.Fatalf("-W 1 -C 1: exit %d %q", code, errs)
	}
	// An interrupt is a normal end.
	sub = startCmd(t, b.args("sub", "-t", "quiet", "-d")...)
	sub.subscribed(t)
	sub.cancel()
	if code, _, errs := sub.wait(t); code != 0 {
		t.Fatalf("interrupted: exit %d %q", code, errs)
	}
}

func TestSubFilterOutAndNoNewline(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	sub := startCmd(t, b.args("sub", "-t", "f/#", "-T", "f/secret/#", "-T", "f/+/debug", "-C", "3", "-N", "-q", "1", "-d")...)
	sub.subscribed(t)
	for _, tp := range []string{"f/a", "f/secret/x", "f/b/debug", "f/secret", "f/b", "f/c"} {
		runCmd(t, b.args("pub", "-t", tp, "-q", "1", "-m", "<"+tp+">")...)
	}
	// f/secret is hidden too: '#' matches the parent level.
	if code, out, errs := sub.wait(t); code != 0 || out != "<f/a><f/b><f/c>" {
		t.Fatalf("exit %d %q %q", code, out, errs)
	}
}

func TestSubscriptionOptions(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	// --rap keeps the retain flag of a live message (--nl is accepted; the
	// publisher is another client, so its message still arrives).
	sub := startCmd(t, b.args("sub", "-t", "opt/#", "--nl", "--rap", "--rh", "2", "-C", "1", "-F", "json", "-d")...)
	sub.subscribed(t)
	runCmd(t, b.args("pub", "-t", "opt/x", "-m", "kept", "-r")...)
	code, out, errs := sub.wait(t)
	if m := jsonLines(t, out); code != 0 || len(m) != 1 || !m[0].Retain {
		t.Fatalf("exit %d %q %q", code, out, errs)
	}
	// Retain Handling 2: the retained message is not sent.
	code, _, errs = runCmd(t, b.args("sub", "-t", "opt/#", "--rh", "2", "-C", "1", "-W", "1")...)
	if code != 1 {
		t.Fatalf("--rh 2 received the retained message: exit %d %q", code, errs)
	}
	code, out, _ = runCmd(t, b.args("sub", "-t", "opt/#", "--rh", "0", "-C", "1", "-W", "5")...)
	if code != 0 || out != "kept\n" {
		t.Fatalf("--rh 0: exit %d %q", code, out)
	}
}

// TestSubPersistentSession: -c keeps the session; with -C the messages after
// the count stay unacknowledged and come back in the next run; -E only
// creates the session.
func TestSubPersistentSession(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	for _, v := range []string{"5", "311"} {
		t.Run(v, func(t *testing.T) {
			id := "persist-" + v
			tp := "persist/" + v
			if code, _, errs := runCmd(t, b.args("sub", "-V", v, "-c", "-i", id, "-q", "1", "-t", tp, "-E")...); code != 0 {
				t.Fatalf("-E: exit %d %q", code, errs)
			}
			b.idle(t)
			for i := range 3 {
				runCmd(t, b.args("pub", "-V", v, "-t", tp, "-q", "1", "-m", fmt.Sprint(i))...)
			}
			code, out, errs := runCmd(t, b.args("sub", "-V", v, "-c", "-i", id, "-q", "1", "-t", tp, "-C", "2", "-W", "5")...)
			if code != 0 || out != "0\n1\n" {
				t.Fatalf("first run: exit %d %q %q", code, out, errs)
			}
			b.idle(t)
			code, out, errs = runCmd(t, b.args("sub", "-V", v, "-c", "-i", id, "-q", "1", "-t", tp, "-C", "1", "-W", "5")...)
			if code != 0 || out != "2\n" {
				t.Fatalf("second run: exit %d %q %q", code, out, errs)
			}
			b.idle(t)
			// End the session (v5: expiry 0 on disconnect; 3.1.1: clean session).
			if v == "5" {
				runCmd(t, b.args("sub", "-V", v, "-c", "-i", id, "-t", tp, "-E", "-D", "disconnect", "session-expiry-interval", "0")...)
			} else {
				runCmd(t, b.args("sub", "-V", v, "-i", id, "-t", tp, "-E")...)
			}
		})
	}
}

func TestSubOutputFormats(t *testing.T) {
	m := &client.Message{Topic: "a/b", Payload: []byte("hi"), QoS: 1, Retain: true}
	if got := string(appendMessage(nil, m, fmtRaw, true)); got != "hi\n" {
		t.Errorf("raw: %q", got)
	}
	if got := string(appendMessage(nil, m, fmtTopic, false)); got != "a/b hi" {
		t.Errorf("-v -N: %q", got)
	}
	if got := string(appendMessage(nil, m, fmtJSON, true)); got != `{"topic":"a/b","payload":"hi","qos":1,"retain":true}`+"\n" {
		t.Errorf("json: %q", got)
	}
	m.Payload = []byte{0xff}
	m.CorrelationData = []byte{0x80}
	if got := string(appendMessage(nil, m, fmtJSON, true)); !strings.Contains(got, `"payload":"/w==","payload_base64":true`) ||
		!strings.Contains(got, `"correlation_data":"gA==","correlation_data_base64":true`) {
		t.Errorf("json binary: %q", got)
	}
	if got := string(appendMessage(nil, m, fmtVerbose, true)); !strings.Contains(got, "payload (1 bytes, base64): /w==") ||
		!strings.Contains(got, "correlation-data (base64): gA==") {
		t.Errorf("verbose binary: %q", got)
	}
}
