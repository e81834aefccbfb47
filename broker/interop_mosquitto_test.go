package broker_test

// Interoperability tests with the Mosquitto command-line clients
// (mosquitto_pub, mosquitto_sub, mosquitto_rr from Debian's
// mosquitto-clients 2.0.x) in MQTT 5 and 3.1.1. Missing binaries fail the
// test when CI=true and skip it otherwise.

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.golang/paho"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// ixMosqVersions are the -V values the tests run with.
var ixMosqVersions = []string{"mqttv5", "mqttv311"}

// ixMosq returns the paths of the Mosquitto clients a test needs.
func ixMosq(t *testing.T, names ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	for _, n := range names {
		paths[n] = ixLookPath(t, n)
	}
	return paths
}

// ixMosqArgs returns the connection arguments for b and version v.
func ixMosqArgs(b *ixBroker, v string, extra ...string) []string {
	return append([]string{"-h", b.Host, "-p", b.Port, "-V", v}, extra...)
}

// ixLines splits program output into lines.
func ixLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// ixStartMosqSub starts mosquitto_sub and waits until its subscriptions are
// in the broker (the broker counts base subscriptions before it starts).
func ixStartMosqSub(t *testing.T, b *ixBroker, path string, nsubs int, args ...string) *ixProc {
	t.Helper()
	base := b.Stats().Subscriptions
	p := ixStart(t, path, args...)
	ixWaitFor(t, "mosquitto_sub to subscribe", func() bool {
		select {
		case <-p.done:
			t.Fatalf("mosquitto_sub exited early: %v; stdout %q stderr %q", p.err, p.stdout.String(), p.stderr.String())
		default:
		}
		return b.Stats().Subscriptions >= base+int64(nsubs)
	})
	return p
}

// TestInteropMosquittoPubSub runs mosquitto_pub → mosquitto_sub at QoS 0, 1
// and 2 in MQTT 5 and 3.1.1 and checks mosquitto_sub's formatted output.
// [MQTT-4.3.1-1] [MQTT-4.3.2-2] [MQTT-4.3.3-2] [MQTT-4.6.0-6] [MQTT-3.3.2-3]
func TestInteropMosquittoPubSub(t *testing.T) {
	t.Parallel()
	m := ixMosq(t, "mosquitto_pub", "mosquitto_sub")
	for _, v := range ixMosqVersions {
		for _, qos := range []int{0, 1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", v, qos), func(t *testing.T) {
				t.Parallel()
				b := ixStartBroker(t, broker.Config{})
				sub := ixStartMosqSub(t, b, m["mosquitto_sub"], 1, ixMosqArgs(b, v, "-i", "ix-sub", "-q", "2", "-t", "mq/#", "-C", "3", "-F", "%t|%q|%r|%l|%p")...)
				// -l sends one message per input line over one connection.
				if out, err := ixRunInput(t, "first\nsecond line\nthird\n", m["mosquitto_pub"], ixMosqArgs(b, v, "-i", "ix-pub", "-q", strconv.Itoa(qos), "-t", "mq/a", "-l")...); err != nil {
					t.Fatalf("mosquitto_pub: %v (%s)", err, out)
				}
				got := ixLines(sub.wait(t))
				want := []string{
					fmt.Sprintf("mq/a|%d|0|5|first", qos),
					fmt.Sprintf("mq/a|%d|0|11|second line", qos),
					fmt.Sprintf("mq/a|%d|0|5|third", qos),
				}
				if !slices.Equal(got, want) {
					t.Fatalf("mosquitto_sub printed %q, want %q", got, want)
				}
			})
		}
	}
}

// TestInteropMosquittoV5Properties publishes with mosquitto_pub -D publish
// ... and checks the properties printed by mosquitto_sub (%C %R %D %F %E %P)
// and seen by an in-process subscriber, User Properties in order.
// [MQTT-3.3.2-4] [MQTT-3.3.2-6] [MQTT-3.3.2-15] [MQTT-3.3.2-16]
// [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20]
func TestInteropMosquittoV5Properties(t *testing.T) {
	t.Parallel()
	m := ixMosq(t, "mosquitto_pub", "mosquitto_sub")
	b := ixStartBroker(t, broker.Config{})
	inproc := &ixRecorder[*broker.Message]{}
	unsub, err := b.Subscribe("mq/#", 2, func(msg *broker.Message) { inproc.add(msg) })
	if err != nil {
		t.Fatalf("in-process Subscribe: %v", err)
	}
	defer unsub()
	sub := ixStartMosqSub(t, b, m["mosquitto_sub"], 1, ixMosqArgs(b, "mqttv5", "-q", "1", "-t", "mq/#", "-C", "1", "-F", "%t|%q|%C|%R|%D|%F|%E|%P|%p")...)
	args := ixMosqArgs(b, "mqttv5", "-q", "1", "-t", "mq/p", "-m", "héllo wörld",
		"-D", "publish", "user-property", "k1", "v1",
		"-D", "publish", "user-property", "k2", "v2",
		"-D", "publish", "user-property", "k1", "v3",
		"-D", "publish", "content-type", "text/plain; charset=utf-8",
		"-D", "publish", "response-topic", "mq/resp",
		"-D", "publish", "correlation-data", "corr-42",
		"-D", "publish", "payload-format-indicator", "1",
		"-D", "publish", "message-expiry-interval", "300",
	)
	if out, err := ixRun(t, m["mosquitto_pub"], args...); err != nil {
		t.Fatalf("mosquitto_pub: %v (%s)", err, out)
	}
	line := strings.TrimRight(sub.wait(t), "\n")
	f := strings.Split(line, "|")
	if len(f) != 9 {
		t.Fatalf("mosquitto_sub printed %q, want 9 fields", line)
	}
	if exp, err := strconv.Atoi(f[6]); err != nil || exp < 1 || exp > 300 {
		t.Errorf("Message Expiry Interval printed as %q, want 1..300", f[6])
	}
	f[6] = "E"
	want := "mq/p|1|text/plain; charset=utf-8|mq/resp|corr-42|1|E|k1:v1 k2:v2 k1:v3|héllo wörld"
	if got := strings.Join(f, "|"); got != want {
		t.Errorf("mosquitto_sub printed %q,\nwant               %q", got, want)
	}

	msg := inproc.waitLen(t, "in-process delivery", 1)[0]
	wantUser := []packet.UserProperty{{Key: "k1", Value: "v1"}, {Key: "k2", Value: "v2"}, {Key: "k1", Value: "v3"}}
	p := msg.Props
	if msg.Topic != "mq/p" || string(msg.Payload) != "héllo wörld" || msg.QoS != 1 ||
		p.ContentType != "text/plain; charset=utf-8" || p.ResponseTopic != "mq/resp" || string(p.CorrelationData) != "corr-42" ||
		p.PayloadFormat != 1 || p.MessageExpiry == 0 || p.MessageExpiry > 300 || !slices.Equal(p.User, wantUser) {
		t.Errorf("in-process subscriber got topic %q payload %q QoS %d props %+v", msg.Topic, msg.Payload, msg.QoS, p)
	}
}

// TestInteropMosquittoRetained sets, reads and clears a retained message
// with mosquitto_pub -r and mosquitto_sub, in MQTT 5 and 3.1.1.
// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7] [MQTT-3.3.1-9]
func TestInteropMosquittoRetained(t *testing.T) {
	t.Parallel()
	m := ixMosq(t, "mosquitto_pub", "mosquitto_sub")
	for _, v := range ixMosqVersions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			b := ixStartBroker(t, broker.Config{})
			pub := func(extra ...string) {
				t.Helper()
				if out, err := ixRun(t, m["mosquitto_pub"], ixMosqArgs(b, v, append([]string{"-t", "mq/r", "-q", "1"}, extra...)...)...); err != nil {
					t.Fatalf("mosquitto_pub: %v (%s)", err, out)
				}
			}
			pub("-r", "-m", "old")
			pub("-r", "-m", "keep")
			out, err := ixRun(t, m["mosquitto_sub"], ixMosqArgs(b, v, "-t", "mq/#", "-q", "1", "-C", "1", "-F", "%r|%q|%t|%p")...)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ixLines(out), []string{"1|1|mq/r|keep"}; !slices.Equal(got, want) {
				t.Fatalf("mosquitto_sub printed %q, want %q", got, want)
			}
			if n := b.Stats().Retained; n != 1 {
				t.Fatalf("Stats().Retained = %d, want 1", n)
			}
			pub("-r", "-n") // -n: zero-length payload clears the retained message
			if n := b.Stats().Retained; n != 0 {
				t.Fatalf("Stats().Retained = %d after clearing, want 0", n)
			}
			sub := ixStartMosqSub(t, b, m["mosquitto_sub"], 1, ixMosqArgs(b, v, "-t", "mq/#", "-q", "1", "-C", "1", "-F", "%r|%q|%t|%p")...)
			pub("-m", "live")
			if got, want := ixLines(sub.wait(t)), []string{"0|1|mq/r|live"}; !slices.Equal(got, want) {
				t.Fatalf("after clearing, mosquitto_sub printed %q, want %q", got, want)
			}
		})
	}
}

// TestInteropMosquittoSession subscribes with a persistent session
// (mosquitto_sub -c; in v5 -D connect session-expiry-interval, then -c -x),
// exits,
// and receives the QoS 1 messages published meanwhile on return.
// [MQTT-3.1.2-5] [MQTT-3.1.2-23]
func TestInteropMosquittoSession(t *testing.T) {
	t.Parallel()
	m := ixMosq(t, "mosquitto_pub", "mosquitto_sub")
	for _, v := range ixMosqVersions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			b := ixStartBroker(t, broker.Config{})
			// v5: the first connection has Clean Start and a Session Expiry
			// Interval given with -D (mosquitto_sub refuses -D connect
			// session-expiry-interval together with -c, which adds its
			// own); the second resumes with -c -x. 3.1.1: -c both times.
			first := []string{"-c", "-i", "ix-durable"}
			again := first
			if v == "mqttv5" {
				first = []string{"-i", "ix-durable", "-D", "connect", "session-expiry-interval", "300"}
				again = []string{"-c", "-x", "300", "-i", "ix-durable"}
			}
			// -E: exit once subscribed (with a normal DISCONNECT).
			if out, err := ixRun(t, m["mosquitto_sub"], ixMosqArgs(b, v, append(first, "-q", "1", "-t", "mq/s", "-E")...)...); err != nil {
				t.Fatalf("mosquitto_sub -E: %v (%s)", err, out)
			}
			ixWaitConnections(t, b, 0)
			if n := b.Stats().Sessions; n != 1 {
				t.Fatalf("Stats().Sessions = %d after the persistent client left, want 1", n)
			}
			if out, err := ixRunInput(t, "q1-a\nq1-b\nq1-c\n", m["mosquitto_pub"], ixMosqArgs(b, v, "-q", "1", "-t", "mq/s", "-l")...); err != nil {
				t.Fatalf("mosquitto_pub: %v (%s)", err, out)
			}
			out, err := ixRun(t, m["mosquitto_sub"], ixMosqArgs(b, v, append(again, "-q", "1", "-t", "mq/s", "-C", "3", "-F", "%t|%q|%p")...)...)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ixLines(out), []string{"mq/s|1|q1-a", "mq/s|1|q1-b", "mq/s|1|q1-c"}; !slices.Equal(got, want) {
				t.Fatalf("returning mosquitto_sub printed %q, want %q", got, want)
			}
		})
	}
}

// TestInteropMosquittoRequestResponse runs mosquitto_rr against an
// in-process responder that answers on the Response Topic with the
// Correlation Data. [MQTT-3.3.2-15] [MQTT-3.3.2-16]
func TestInteropMosquittoRequestResponse(t *testing.T) {
	t.Parallel()
	m := ixMosq(t, "mosquitto_rr")
	b := ixStartBroker(t, broker.Config{})
	requests := &ixRecorder[*broker.Message]{}
	unsub, err := b.Subscribe("mq/req", 1, func(req *broker.Message) {
		requests.add(req)
		resp := &broker.Message{Topic: req.Props.ResponseTopic, QoS: 1, Payload: append([]byte("re:"), req.Payload...)}
		resp.Props.CorrelationData = bytes.Clone(req.Props.CorrelationData)
		resp.Props.User = []packet.UserProperty{{Key: "responder", Value: "in-process"}}
		if err := b.Publish(context.Background(), resp); err != nil {
			t.Errorf("responder Publish: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("in-process Subscribe: %v", err)
	}
	defer unsub()
	out, err := ixRun(t, m["mosquitto_rr"], ixMosqArgs(b, "mqttv5", "-q", "1", "-t", "mq/req", "-e", "mq/resp/ix", "-m", "ping",
		"-D", "publish", "correlation-data", "c0ffee", "-W", "15", "-F", "%t|%q|%D|%P|%p")...)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ixLines(out), []string{"mq/resp/ix|1|c0ffee|responder:in-process|re:ping"}; !slices.Equal(got, want) {
		t.Fatalf("mosquitto_rr printed %q, want %q", got, want)
	}
	req := requests.all()
	if len(req) != 1 || req[0].Props.ResponseTopic != "mq/resp/ix" || string(req[0].Props.CorrelationData) != "c0ffee" || string(req[0].Payload) != "ping" {
		t.Fatalf("responder saw %d requests; first: %+v", len(req), req)
	}
}

// TestInteropMosquittoWillProperties kills a mosquitto_sub that registered a
// will with every message property (-D will ...): the will reaches a
// paho.golang subscriber with all of them, User Properties in order. The
// 3.1.1 case checks a plain will.
// [MQTT-3.1.2-8] [MQTT-3.1.3-10] [MQTT-3.3.2-4] [MQTT-3.3.2-15]
// [MQTT-3.3.2-16] [MQTT-3.3.2-18] [MQTT-3.3.2-20]
func TestInteropMosquittoWillProperties(t *testing.T) {
	t.Parallel()
	m := ixMosq(t, "mosquitto_sub")
	for _, v := range ixMosqVersions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			b := ixStartBroker(t, broker.Config{})
			watcher := ixConnectV5(t, b, ixCleanV5("watcher"), nil)
			watcher.Sub(t, paho.SubscribeOptions{Topic: "mq/will/#", QoS: 2}, nil)
			args := []string{"-i", "ix-dying", "-t", "mq/none", "--will-topic", "mq/will/dying", "--will-payload", "dead", "--will-qos", "2"}
			if v == "mqttv5" {
				args = append(args,
					"-D", "will", "content-type", "text/plain",
					"-D", "will", "response-topic", "mq/will/reply",
					"-D", "will", "correlation-data", "wcorr",
					"-D", "will", "payload-format-indicator", "1",
					"-D", "will", "message-expiry-interval", "600",
					"-D", "will", "user-property", "b", "2",
					"-D", "will", "user-property", "a", "1",
				)
			}
			dying := ixStartMosqSub(t, b, m["mosquitto_sub"], 1, ixMosqArgs(b, v, args...)...)
			dying.kill()
			got := watcher.Msgs.waitLen(t, "will", 1)
			if s := ixSummarizeV5(got); !ixEqualMsgs(s, []ixMsg{{"mq/will/dying", "dead", 2, false}}) {
				t.Fatalf("watcher got %v", s)
			}
			p := got[0].Properties
			if v == "mqttv311" {
				if p.ContentType != "" || len(p.User) != 0 || p.MessageExpiry != nil {
					t.Errorf("3.1.1 will delivered with properties %+v", p)
				}
				return
			}
			wantUser := paho.UserProperties{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}}
			if p.ContentType != "text/plain" || p.ResponseTopic != "mq/will/reply" || string(p.CorrelationData) != "wcorr" ||
				p.PayloadFormat == nil || *p.PayloadFormat != 1 || p.MessageExpiry == nil || *p.MessageExpiry == 0 || *p.MessageExpiry > 600 ||
				!slices.Equal(p.User, wantUser) {
				t.Errorf("will properties: content type %q, response topic %q, correlation %q, payload format %v, expiry %v, user %v",
					p.ContentType, p.ResponseTopic, p.CorrelationData, ixDeref(p.PayloadFormat), ixDeref(p.MessageExpiry), p.User)
			}
		})
	}
}

func ixDeref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
