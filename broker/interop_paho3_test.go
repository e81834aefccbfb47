package broker_test

// Interoperability tests with paho.mqtt.golang
// (github.com/eclipse/paho.mqtt.golang), an MQTT 3.1.1 client, and across
// protocol versions with paho.golang (v5). Each test runs its own broker.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// ixFlushV3 publishes a QoS 1 marker on topic from pub and waits until sub
// received it; it returns what sub received before it, earlier markers
// left out. 3.1.1 clients have no UNSUBACK reason codes to check, but the
// UNSUBSCRIBE round trip orders retained deliveries before the marker just
// as for v5 (see ixV5Client.Barrier).
func ixFlushV3(t testing.TB, pub, sub *ixV3Client, topic string) []ixMsg {
	t.Helper()
	ixWaitToken(t, "barrier unsubscribe", sub.Unsubscribe("ix/barrier/never-subscribed"))
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	pub.Pub(t, topic, 1, false, marker)
	all := sub.Msgs.waitMatch(t, "marker "+marker, func(m ixMsg) bool { return m.Payload == marker })
	for i, m := range all {
		if m.Payload == marker {
			if rest := all[i+1:]; len(rest) != 0 {
				t.Fatalf("messages after the marker: %v", rest)
			}
			var before []ixMsg
			for _, q := range all[:i] {
				if !strings.HasPrefix(q.Payload, "marker-") {
					before = append(before, q)
				}
			}
			return before
		}
	}
	panic("unreachable")
}

// TestInteropPaho3QoSRoundTrip publishes at QoS 0, 1 and 2 from a 3.1.1
// client and checks exact, ordered, once-only delivery to a 3.1.1
// subscriber. [MQTT-4.3.1-1] [MQTT-4.3.2-2] [MQTT-4.3.3-2] [MQTT-4.6.0-6]
func TestInteropPaho3QoSRoundTrip(t *testing.T) {
	t.Parallel()
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			t.Parallel()
			b := ixStartBroker(t, broker.Config{})
			sub := ixConnectV3(t, b, "sub3", ixV3Options{CleanSession: true})
			sub.Sub(t, "rt3/#", 2)
			pub := ixConnectV3(t, b, "pub3", ixV3Options{CleanSession: true})
			const n = 50
			var want []ixMsg
			for i := range n {
				payload := fmt.Sprintf("v3-qos%d-%03d", qos, i)
				pub.Pub(t, "rt3/x", qos, false, payload)
				want = append(want, ixMsg{"rt3/x", payload, qos, false})
			}
			if got := ixFlushV3(t, pub, sub, "rt3/x"); !ixEqualMsgs(got, want) {
				t.Fatalf("received %d %v\nwant %d %v", len(got), got, len(want), want)
			}
		})
	}
}

// TestInteropPaho3Retained stores, replaces and clears a retained message
// with 3.1.1 clients. [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7] [MQTT-3.3.1-9]
func TestInteropPaho3Retained(t *testing.T) {
	t.Parallel()
	b := ixStartBroker(t, broker.Config{})
	pub := ixConnectV3(t, b, "pub3", ixV3Options{CleanSession: true})
	pub.Pub(t, "ret3/a", 1, true, "r1")
	s1 := ixConnectV3(t, b, "s1", ixV3Options{CleanSession: true})
	s1.Sub(t, "ret3/#", 1)
	if got, want := ixFlushV3(t, pub, s1, "ret3/m"), []ixMsg{{"ret3/a", "r1", 1, true}}; !ixEqualMsgs(got, want) {
		t.Fatalf("first subscriber got %v, want %v", got, want)
	}
	pub.Pub(t, "ret3/a", 2, true, "r2")
	s2 := ixConnectV3(t, b, "s2", ixV3Options{CleanSession: true})
	s2.Sub(t, "ret3/#", 2)
	// The retained message keeps the QoS it was published with (2).
	if got, want := ixFlushV3(t, pub, s2, "ret3/m"), []ixMsg{{"ret3/a", "r2", 2, true}}; !ixEqualMsgs(got, want) {
		t.Fatalf("second subscriber got %v, want only the replacement %v", got, want)
	}
	pub.Pub(t, "ret3/a", 1, true, "")
	s3 := ixConnectV3(t, b, "s3", ixV3Options{CleanSession: true})
	s3.Sub(t, "ret3/#", 1)
	if got := ixFlushV3(t, pub, s3, "ret3/m"); len(got) != 0 {
		t.Fatalf("after clearing, new subscriber got %v", got)
	}
	// s1 saw the live updates with RETAIN 0 (3.1.1 section 3.3.1.3).
	var live []ixMsg
	for _, m := range ixFlushV3(t, pub, s1, "ret3/m") {
		if m.Topic == "ret3/a" {
			live = append(live, m)
		}
	}
	if want := []ixMsg{{"ret3/a", "r1", 1, true}, {"ret3/a", "r2", 1, false}, {"ret3/a", "", 1, false}}; !ixEqualMsgs(live, want) {
		t.Fatalf("first subscriber saw %v, want %v", live, want)
	}
}

// TestInteropPaho3Will closes a 3.1.1 client's TCP connection and checks
// that its will is published; a client that sends DISCONNECT loses its
// will. [MQTT-3.1.2-8] [MQTT-3.1.2-10]
func TestInteropPaho3Will(t *testing.T) {
	t.Parallel()
	b := ixStartBroker(t, broker.Config{})
	watcher := ixConnectV3(t, b, "watcher", ixV3Options{CleanSession: true})
	watcher.Sub(t, "will3/#", 2)
	pub := ixConnectV3(t, b, "pub3", ixV3Options{CleanSession: true})

	polite := ixConnectV3(t, b, "polite", ixV3Options{CleanSession: true, Will: &ixMsg{Topic: "will3/polite", Payload: "must not appear", QoS: 1}})
	polite.Disconnect(ixQuiesce)
	ixWaitConnections(t, b, 2)
	if got := ixFlushV3(t, pub, watcher, "will3/m"); len(got) != 0 {
		t.Fatalf("will published after DISCONNECT: %v", got)
	}

	dying := ixConnectV3(t, b, "dying", ixV3Options{CleanSession: true, Will: &ixMsg{Topic: "will3/dying", Payload: "lost connection", QoS: 2, Retain: true}})
	dying.Drop(t)
	got := watcher.Msgs.waitMatch(t, "will", func(m ixMsg) bool { return m.Topic == "will3/dying" })
	var wills []ixMsg
	for _, m := range got {
		if m.Topic == "will3/dying" {
			wills = append(wills, m)
		}
	}
	// [MQTT-3.1.2-15] a retained will: live copy with RETAIN 0, then stored.
	if want := []ixMsg{{"will3/dying", "lost connection", 2, false}}; !ixEqualMsgs(wills, want) {
		t.Fatalf("watcher got %v, want %v", wills, want)
	}
	late := ixConnectV3(t, b, "late", ixV3Options{CleanSession: true})
	late.Sub(t, "will3/dying", 2)
	if got, want := ixFlushV3(t, pub, late, "will3/dying"), []ixMsg{{"will3/dying", "lost connection", 2, true}}; !ixEqualMsgs(got, want) {
		t.Fatalf("late subscriber got %v, want the retained will %v", got, want)
	}
}

// TestInteropPaho3PersistentSession checks that a 3.1.1 session with Clean
// Session 0 survives a disconnect and receives the QoS 1 messages
// published meanwhile. [MQTT-3.1.2-5] [MQTT-3.2.2-3]
func TestInteropPaho3PersistentSession(t *testing.T) {
	t.Parallel()
	b := ixStartBroker(t, broker.Config{})
	pub := ixConnectV3(t, b, "pub3", ixV3Options{CleanSession: true})
	s1 := ixConnectV3(t, b, "durable", ixV3Options{CleanSession: false})
	if s1.SessionPresent {
		t.Fatalf("first connection: Session Present = true, want false")
	}
	s1.Sub(t, "p3/#", 1)
	s1.Disconnect(ixQuiesce)
	ixWaitConnections(t, b, 1)
	for i := range 5 {
		pub.Pub(t, "p3/a", 1, false, fmt.Sprintf("offline-%d", i))
		if i == 2 {
			// Not queued for an offline session by default. (A QoS 0
			// publish completes when written; the QoS 1 publishes after
			// it make sure the broker has routed it before s2 connects.)
			pub.Pub(t, "p3/a", 0, false, "offline-qos0")
		}
	}
	s2 := ixConnectV3(t, b, "durable", ixV3Options{CleanSession: false})
	if !s2.SessionPresent {
		t.Fatalf("reconnect: Session Present = false, want true")
	}
	got := ixFlushV3(t, pub, s2, "p3/a")
	var want []ixMsg
	for i := range 5 {
		want = append(want, ixMsg{"p3/a", fmt.Sprintf("offline-%d", i), 1, false})
	}
	if !ixEqualMsgs(got, want) {
		t.Fatalf("after reconnect got %v, want %v", got, want)
	}
}

// TestInteropPaho3ManyQoS2InFlight has a 3.1.1 publisher (no Receive
// Maximum in 3.1.1) keep hundreds of QoS 2 messages outstanding: every
// acknowledged message must reach the subscriber exactly once. The second
// case lowers the broker's Receive Maximum, which binds v5 clients only.
// [MQTT-4.3.3-8] [MQTT-4.3.3-10] [MQTT-4.3.3-11]
func TestInteropPaho3ManyQoS2InFlight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		caps broker.Capabilities
	}{
		{"default", broker.Capabilities{}},
		{"receive-maximum-64", broker.Capabilities{ReceiveMaximum: 64}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n = 500
			b := ixStartBroker(t, broker.Config{Capabilities: tc.caps})
			sub := ixConnectV3(t, b, "sub3", ixV3Options{CleanSession: true})
			sub.Sub(t, "burst/#", 2)
			pub := ixConnectV3(t, b, "burst-pub", ixV3Options{CleanSession: true})
			toks := make([]mqtt3.Token, n)
			for i := range n {
				toks[i] = pub.Publish("burst/x", 2, false, fmt.Sprintf("b-%04d", i))
			}
			acked := map[string]bool{}
			var failed []string
			deadline := time.Now().Add(ixTimeout)
			for i, tok := range toks {
				payload := fmt.Sprintf("b-%04d", i)
				wait := max(time.Until(deadline), time.Millisecond)
				if !pub.IsConnectionOpen() {
					// paho.mqtt.golang may never complete a token of a
					// publish issued while the connection was being lost.
					wait = time.Millisecond
				}
				if !tok.WaitTimeout(wait) {
					failed = append(failed, payload+": not completed")
					continue
				}
				if err := tok.Error(); err != nil {
					failed = append(failed, payload+": "+err.Error())
					continue
				}
				acked[payload] = true
			}
			if len(failed) > 0 {
				t.Errorf("%d of %d QoS 2 publishes not completed (first: %s); publisher connected: %v; subscriber has %d messages",
					len(failed), n, failed[0], pub.IsConnectionOpen(), sub.Msgs.len())
			}
			if len(acked) == 0 {
				t.FailNow()
			}
			// Wait for every acknowledged message, then check counts.
			ixWaitFor(t, fmt.Sprintf("%d acknowledged messages at the subscriber", len(acked)), func() bool {
				have := map[string]bool{}
				for _, m := range sub.Msgs.all() {
					have[m.Payload] = true
				}
				for p := range acked {
					if !have[p] {
						return false
					}
				}
				return true
			})
			if !pub.IsConnectionOpen() {
				t.Fatalf("the broker closed the 3.1.1 publisher's connection")
			}
			got := ixFlushV3(t, pub, sub, "burst/x")
			counts := map[string]int{}
			for _, m := range got {
				counts[m.Payload]++
				if m.QoS != 2 || m.Topic != "burst/x" {
					t.Errorf("unexpected delivery %v", m)
				}
			}
			var dups []string
			for p, k := range counts {
				if k != 1 {
					dups = append(dups, fmt.Sprintf("%s×%d", p, k))
				}
			}
			slices.Sort(dups)
			if len(dups) > 0 {
				t.Errorf("%d messages delivered more than once: %v", len(dups), dups[:min(len(dups), 10)])
			}
			if len(counts) != n {
				t.Errorf("subscriber received %d distinct messages, want %d", len(counts), n)
			}
		})
	}
}

// TestInteropCrossVersion sends a v5 message with properties to a 3.1.1
// subscriber (properties dropped, message intact) and a 3.1.1 message to a
// v5 subscriber (no properties invented).
func TestInteropCrossVersion(t *testing.T) {
	t.Parallel()
	t.Run("v5-to-v311", func(t *testing.T) {
		t.Parallel()
		b := ixStartBroker(t, broker.Config{})
		sub := ixConnectV3(t, b, "sub311", ixV3Options{CleanSession: true})
		sub.Sub(t, "xv/#", 2)
		pub5 := ixConnectV5(t, b, ixCleanV5("pub5"), nil)
		props := &paho.PublishProperties{
			ContentType: "application/json", ResponseTopic: "xv/reply", CorrelationData: []byte("corr"),
			PayloadFormat: ixByte(1), MessageExpiry: ixU32(600),
			User: paho.UserProperties{{Key: "trace", Value: "abc"}},
		}
		for _, qos := range []byte{0, 1, 2} {
			pub5.Pub(t, &paho.Publish{Topic: "xv/a", QoS: qos, Payload: []byte(fmt.Sprintf(`{"qos":%d}`, qos)), Properties: props})
		}
		pub5.Pub(t, &paho.Publish{Topic: "xv/r", QoS: 1, Retain: true, Payload: []byte("retained-v5"), Properties: props})
		marker := "v5-marker"
		pub5.Pub(t, &paho.Publish{Topic: "xv/a", QoS: 1, Payload: []byte(marker)})
		got := sub.Msgs.waitMatch(t, "marker", func(m ixMsg) bool { return m.Payload == marker })
		want := []ixMsg{
			{"xv/a", `{"qos":0}`, 0, false}, {"xv/a", `{"qos":1}`, 1, false}, {"xv/a", `{"qos":2}`, 2, false},
			{"xv/r", "retained-v5", 1, false}, {"xv/a", marker, 1, false},
		}
		if !ixEqualMsgs(got, want) {
			t.Fatalf("3.1.1 subscriber got %v, want %v", got, want)
		}
		// A 3.1.1 subscriber gets the v5 retained message too.
		late := ixConnectV3(t, b, "late311", ixV3Options{CleanSession: true})
		late.Sub(t, "xv/r", 1)
		if got := late.Msgs.waitLen(t, "retained", 1); !ixEqualMsgs(got, []ixMsg{{"xv/r", "retained-v5", 1, true}}) {
			t.Fatalf("late 3.1.1 subscriber got %v", got)
		}
	})
	t.Run("v311-to-v5", func(t *testing.T) {
		t.Parallel()
		b := ixStartBroker(t, broker.Config{})
		sub5 := ixConnectV5(t, b, ixCleanV5("sub5"), nil)
		sub5.Sub(t, paho.SubscribeOptions{Topic: "xv/#", QoS: 2}, nil)
		pub3 := ixConnectV3(t, b, "pub311", ixV3Options{CleanSession: true})
		for _, qos := range []byte{0, 1, 2} {
			pub3.Pub(t, "xv/b", qos, false, fmt.Sprintf("from-311-q%d", qos))
		}
		got := sub5.Msgs.waitLen(t, "3 messages", 3)
		want := []ixMsg{{"xv/b", "from-311-q0", 0, false}, {"xv/b", "from-311-q1", 1, false}, {"xv/b", "from-311-q2", 2, false}}
		if s := ixSummarizeV5(got); !ixEqualMsgs(s, want) {
			t.Fatalf("v5 subscriber got %v, want %v", s, want)
		}
		for _, p := range sub5.Tap.inboundPublishes(t, packet.V5) {
			pr := p.Props
			if pr.ContentType != "" || pr.ResponseTopic != "" || pr.CorrelationData != nil || len(pr.User) != 0 ||
				pr.Has(packet.PropMessageExpiry) || pr.Has(packet.PropPayloadFormat) || pr.TopicAlias != 0 || len(pr.SubscriptionIDs) != 0 {
				t.Errorf("message from a 3.1.1 client forwarded with properties %+v", pr)
			}
		}
	})
}
