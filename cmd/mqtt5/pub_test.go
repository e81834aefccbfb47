package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
)

func TestPubSubRoundTrip(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	for _, v := range []string{"5", "311"} {
		for qos := range 3 {
			t.Run(fmt.Sprintf("v%s/qos%d", v, qos), func(t *testing.T) {
				tp := fmt.Sprintf("rt/%s/%d", v, qos)
				q := fmt.Sprint(qos)
				sub := startCmd(t, b.args("sub", "-V", v, "-t", tp, "-q", "2", "-C", "3", "-F", "json", "-d")...)
				sub.subscribed(t)
				for i := range 3 {
					if code, _, errs := runCmd(t, b.args("pub", "-V", v, "-t", tp, "-q", q, "-m", fmt.Sprintf("m%d", i))...); code != 0 {
						t.Fatalf("pub: exit %d %q", code, errs)
					}
				}
				code, out, errs := sub.wait(t)
				if code != 0 {
					t.Fatalf("sub: exit %d %q", code, errs)
				}
				msgs := jsonLines(t, out)
				if len(msgs) != 3 {
					t.Fatalf("got %d messages: %s", len(msgs), out)
				}
				for i, m := range msgs {
					if m.Topic != tp || m.Payload != fmt.Sprintf("m%d", i) || int(m.QoS) != qos || m.Retain {
						t.Errorf("message %d: %+v", i, m)
					}
				}
			})
		}
	}
}

func TestPubLines(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	sub := startCmd(t, b.args("sub", "-t", "lines", "-q", "1", "-C", "4", "-v", "-d")...)
	sub.subscribed(t)
	code, _, errs := runStdin(t, "one\ntwo\r\n\nthree\nfour", b.args("pub", "-t", "lines", "-l", "-q", "1")...)
	if code != 0 {
		t.Fatalf("pub -l: exit %d %q", code, errs)
	}
	code, out, errs := sub.wait(t)
	if code != 0 || out != "lines one\nlines two\nlines three\nlines four\n" {
		t.Fatalf("sub: exit %d, %q, %q", code, out, errs)
	}

	// Many lines, pipelined at QoS 2.
	var in strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&in, "%d\n", i)
	}
	sub = startCmd(t, b.args("sub", "-t", "many", "-q", "2", "-C", "2500", "-d")...)
	sub.subscribed(t)
	if code, _, errs := runStdin(t, in.String(), b.args("pub", "-t", "many", "-l", "-q", "2")...); code != 0 {
		t.Fatalf("pub -l: exit %d %q", code, errs)
	}
	code, out, errs = sub.wait(t)
	if code != 0 || out != in.String() {
		t.Fatalf("sub: exit %d, %d bytes (want %d), %q", code, len(out), in.Len(), errs)
	}
}

func TestPubFileAndStdin(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	bin := []byte{0, 1, 2, 0xff, 0xfe, '\n', 'x'}
	f := filepath.Join(t.TempDir(), "payload.bin")
	os.WriteFile(f, bin, 0o600)
	sub := startCmd(t, b.args("sub", "-t", "file/#", "-q", "1", "-C", "3", "-F", "json", "-d")...)
	sub.subscribed(t)
	if code, _, errs := runCmd(t, b.args("pub", "-t", "file/f", "-f", f, "-q", "1")...); code != 0 {
		t.Fatalf("pub -f: exit %d %q", code, errs)
	}
	if code, _, errs := runStdin(t, "whole\nstdin\n", b.args("pub", "-t", "file/s", "-s", "-q", "1")...); code != 0 {
		t.Fatalf("pub -s: exit %d %q", code, errs)
	}
	if code, _, errs := runCmd(t, b.args("pub", "-t", "file/n", "-n", "-q", "1")...); code != 0 {
		t.Fatalf("pub -n: exit %d %q", code, errs)
	}
	code, out, errs := sub.wait(t)
	if code != 0 {
		t.Fatalf("sub: exit %d %q", code, errs)
	}
	msgs := jsonLines(t, out)
	if len(msgs) != 3 {
		t.Fatalf("got %s", out)
	}
	if got, err := base64.StdEncoding.DecodeString(msgs[0].Payload); err != nil || !msgs[0].PayloadBase64 || !slices.Equal(got, bin) {
		t.Errorf("-f: %+v", msgs[0])
	}
	if msgs[1].Payload != "whole\nstdin\n" || msgs[1].PayloadBase64 {
		t.Errorf("-s: %+v", msgs[1])
	}
	if msgs[2].Payload != "" || msgs[2].Topic != "file/n" {
		t.Errorf("-n: %+v", msgs[2])
	}
	if code, _, errs := runCmd(t, b.args("pub", "-t", "x", "-f", "/nonexistent/file")...); code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: exit %d %q", code, errs)
	}
}

func TestPubProperties(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	props := []string{
		"-D", "publish", "content-type", "text/plain",
		"-D", "publish", "user-property", "k1", "v1",
		"-D", "publish", "user-property", "k1", "v2",
		"-D", "publish", "message-expiry-interval", "3600",
		"-D", "publish", "response-topic", "reply/here",
		"-D", "publish", "correlation-data", "corr-1",
		"-D", "publish", "payload-format-indicator", "1",
		"-D", "connect", "user-property", "client", "cli",
		"-D", "connect", "session-expiry-interval", "10",
		"-D", "disconnect", "session-expiry-interval", "0",
	}
	for _, format := range []string{"json", "verbose"} {
		t.Run(format, func(t *testing.T) {
			tp := "props/" + format
			sub := startCmd(t, b.args("sub", "-t", tp, "-q", "1", "-C", "1", "-F", format, "-d",
				"-D", "subscribe", "subscription-identifier", "42", "-D", "subscribe", "user-property", "s", "t")...)
			sub.subscribed(t)
			args := append(b.args("pub", "-t", tp, "-q", "1", "-m", "hello"), props...)
			if code, _, errs := runCmd(t, args...); code != 0 {
				t.Fatalf("pub: exit %d %q", code, errs)
			}
			code, out, errs := sub.wait(t)
			if code != 0 {
				t.Fatalf("sub: exit %d %q", code, errs)
			}
			if format == "json" {
				m := jsonLines(t, out)[0]
				p := m.Properties
				if p == nil || p.ContentType != "text/plain" || p.ResponseTopic != "reply/here" ||
					p.CorrelationData == nil || *p.CorrelationData != "corr-1" || p.PayloadFormat == nil || *p.PayloadFormat != 1 ||
					p.MessageExpiry == nil || *p.MessageExpiry == 0 || *p.MessageExpiry > 3600 ||
					!slices.Equal(p.UserProperties, []jsonUser{{"k1", "v1"}, {"k1", "v2"}}) ||
					!slices.Equal(p.SubscriptionIDs, []uint32{42}) || m.Payload != "hello" {
					t.Fatalf("properties: %s", out)
				}
				return
			}
			for _, want := range []string{
				tp + " qos=1 retain=false dup=false\n",
				"  payload-format-indicator: 1\n",
				"  message-expiry-interval: ",
				"  content-type: text/plain\n",
				"  response-topic: reply/here\n",
				"  correlation-data: corr-1\n",
				"  subscription-identifier: 42\n",
				"  user-property: k1=v1\n  user-property: k1=v2\n",
				"  payload (5 bytes): hello\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("verbose output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestPubRetained(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	if code, _, errs := runCmd(t, b.args("pub", "-t", "ret/a", "-m", "stale", "-r", "-q", "1")...); code != 0 {
		t.Fatalf("pub -r: exit %d %q", code, errs)
	}
	// The retained message arrives flagged.
	code, out, errs := runCmd(t, b.args("sub", "-t", "ret/#", "-C", "1", "-W", "5", "-F", "json")...)
	if m := jsonLines(t, out); code != 0 || len(m) != 1 || !m[0].Retain || m[0].Payload != "stale" {
		t.Fatalf("sub: exit %d %q %q", code, out, errs)
	}
	// -R hides it: only the fresh message is printed.
	sub := startCmd(t, b.args("sub", "-t", "ret/#", "-C", "1", "-R", "-v", "-d")...)
	sub.subscribed(t)
	runCmd(t, b.args("pub", "-t", "ret/a", "-m", "fresh")...)
	if code, out, errs := sub.wait(t); code != 0 || out != "ret/a fresh\n" {
		t.Fatalf("sub -R: exit %d %q %q", code, out, errs)
	}
	// --retained-only prints the retained ones and stops at a fresh one;
	// --remove-retained clears them.
	sub = startCmd(t, b.args("sub", "-t", "ret/#", "--retained-only", "--remove-retained", "-d")...)
	sub.subscribed(t)
	runCmd(t, b.args("pub", "-t", "ret/b", "-m", "fresh")...)
	if code, out, errs := sub.wait(t); code != 0 || out != "stale\n" {
		t.Fatalf("sub --retained-only: exit %d %q %q", code, out, errs)
	}
	// The removal is a QoS 0 publish the broker handles asynchronously:
	// wait until it has, then nothing retained remains to receive.
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().Retained != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("retained messages left: %d", b.Stats().Retained)
		}
		time.Sleep(time.Millisecond)
	}
	if code, _, errs := runCmd(t, b.args("sub", "-t", "ret/#", "-C", "1", "-W", "1")...); code != 1 || !strings.Contains(errs, "timed out") {
		t.Fatalf("retained message not removed: exit %d %q", code, errs)
	}
}
