package mqttquic_test

import (
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

// TestSingleStream runs QoS 0, 1 and 2 through the broker over ALPN
// "mqtt": one stream, no flow headers.
func TestSingleStream(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{}, broker.Config{})
	sub := e.connect("sub", mqttquic.DialConfig{Single: true}, nil)
	pub := e.connect("pub", mqttquic.DialConfig{Single: true}, nil)
	if sub.c.ALPN() != mqttquic.ALPNSingle {
		t.Fatalf("ALPN %q", sub.c.ALPN())
	}
	if st := sub.c.ConnectionState(); !st.HandshakeComplete || st.NegotiatedProtocol != mqttquic.ALPNSingle {
		t.Fatalf("TLS state %+v", st)
	}
	sub.subscribe("s/#", 2)
	for qos := byte(0); qos <= 2; qos++ {
		pub.publish("s/x", qos, payload(int(qos)))
		p := sub.receive()
		if p.QoS != qos || string(p.Payload) != string(payload(int(qos))) {
			t.Fatalf("qos %d: got %+v", qos, p)
		}
	}
	srv := e.serverConn(sub.c)
	if s := srv.Stats(); s.ALPN != mqttquic.ALPNSingle || s.StreamsOpened != 0 {
		t.Fatalf("server stats %+v", s)
	}
	pub.disconnect()
	sub.disconnect()
	_ = packet.V5
}

// TestServerDelivery checks each server delivery strategy: where the
// deliveries arrive on the subscriber's side, and that QoS 1 and 2
// exchanges complete on the streams they started on.
func TestServerDelivery(t *testing.T) {
	const topics, rounds = 3, 4 // each round publishes QoS 0, 1, 2 on every topic
	for _, tc := range []struct {
		delivery mqttquic.Delivery
		streams  uint64 // server data streams the subscriber accepts
	}{
		{mqttquic.DeliveryControlOnly, 0},
		{mqttquic.DeliveryPerTopic, topics},
		{mqttquic.DeliveryPerPublish, topics * rounds * 3},
		{"", topics}, // default: per_topic
	} {
		t.Run(string(tc.delivery), func(t *testing.T) {
			e := newEnv(t, mqttquic.ServerConfig{Delivery: tc.delivery}, broker.Config{})
			sub := e.connect("sub", mqttquic.DialConfig{}, nil)
			pub := e.connect("pub", mqttquic.DialConfig{}, nil)
			if sub.c.ALPN() != mqttquic.ALPNMulti {
				t.Fatalf("ALPN %q", sub.c.ALPN())
			}
			sub.subscribe("d/#", 2)
			n := 0
			for r := 0; r < rounds; r++ {
				for qos := byte(0); qos <= 2; qos++ {
					for i := 0; i < topics; i++ {
						topic := "d/" + string(rune('a'+i))
						pub.publish(topic, qos, payload(n))
						p := sub.receive()
						if p.Topic != topic || p.QoS != qos || string(p.Payload) != string(payload(n)) {
							t.Fatalf("got %+v", p)
						}
						n++
					}
				}
			}
			sub.ping()
			s := sub.c.Stats()
			// Deliveries, and the PUBRELs of QoS 2, arrive on data flows
			// unless control_only; the subscriber's replies follow them.
			pubs := uint64(n)
			q2 := uint64(topics * rounds)
			q12 := uint64(2 * topics * rounds)
			if s.StreamsAccepted != tc.streams {
				t.Errorf("streams accepted %d, want %d", s.StreamsAccepted, tc.streams)
			}
			if tc.delivery == mqttquic.DeliveryControlOnly {
				if s.DataIn != 0 || s.DataOut != 0 {
					t.Errorf("data flow traffic under control_only: %+v", s)
				}
			} else {
				if s.DataIn != pubs+q2 {
					t.Errorf("data in %d, want %d", s.DataIn, pubs+q2)
				}
				if s.DataOut != q12+q2 {
					t.Errorf("data out %d, want %d (acks on the delivery flows)", s.DataOut, q12+q2)
				}
			}
			srv := e.serverConn(sub.c)
			// The last acknowledgements travel on data streams, which the
			// PINGRESP on the control stream does not wait for: poll.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				ss := srv.Stats()
				if ss.StreamsOpened == tc.streams && ss.DataOut == s.DataIn && ss.DataIn == s.DataOut {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("server stats %+v, client %+v", ss, s)
					break
				}
			}
			open := 0
			if tc.delivery != mqttquic.DeliveryControlOnly && tc.delivery != mqttquic.DeliveryPerPublish {
				open = topics
			}
			// Per-publish flows end once their exchange is done; per-topic
			// flows stay for the next message.
			poll(t, "flows to settle", func() bool {
				return srv.Stats().FlowsOpen == open && sub.c.Stats().FlowsOpen == open
			})
			pub.disconnect()
			sub.disconnect()
		})
	}
}

// TestClientStrategy checks each client strategy: where the publisher's
// PUBLISH packets arrive on the broker's side, and that the broker's
// acknowledgements come back on the same flows.
func TestClientStrategy(t *testing.T) {
	const topics, rounds = 2, 3
	for _, tc := range []struct {
		strategy mqttquic.Strategy
		streams  uint64 // client data streams the broker accepts from the publisher
	}{
		{mqttquic.StrategyControlOnly, 0},
		{mqttquic.StrategyDataPerPublish, topics * rounds * 3},
		{mqttquic.StrategyDataPerTopic, topics},
	} {
		t.Run(string(tc.strategy), func(t *testing.T) {
			e := newEnv(t, mqttquic.ServerConfig{Delivery: mqttquic.DeliveryControlOnly}, broker.Config{})
			sub := e.connect("sub", mqttquic.DialConfig{}, nil)
			pub := e.connect("pub", mqttquic.DialConfig{Strategy: tc.strategy}, nil)
			sub.subscribe("c/#", 2)
			n := 0
			for r := 0; r < rounds; r++ {
				for qos := byte(0); qos <= 2; qos++ {
					for i := 0; i < topics; i++ {
						topic := "c/" + string(rune('a'+i))
						pub.publish(topic, qos, payload(n))
						if p := sub.receive(); p.Topic != topic || string(p.Payload) != string(payload(n)) {
							t.Fatalf("got %+v", p)
						}
						n++
					}
				}
			}
			pub.ping()
			s := pub.c.Stats()
			srv := e.serverConn(pub.c)
			ss := srv.Stats()
			if s.StreamsOpened != tc.streams || ss.StreamsAccepted != tc.streams {
				t.Errorf("streams opened %d, accepted %d, want %d", s.StreamsOpened, ss.StreamsAccepted, tc.streams)
			}
			q1, q2 := uint64(topics*rounds), uint64(topics*rounds)
			if tc.strategy == mqttquic.StrategyControlOnly {
				if s.DataOut != 0 || ss.DataIn != 0 {
					t.Errorf("data flow traffic under control_only: %+v", s)
				}
			} else {
				// PUBLISH and PUBREL out; PUBACK, PUBREC and PUBCOMP back.
				if s.DataOut != uint64(n)+q2 || ss.DataIn != s.DataOut {
					t.Errorf("data out %d, server data in %d, want %d", s.DataOut, ss.DataIn, uint64(n)+q2)
				}
				if s.DataIn != q1+2*q2 || ss.DataOut != s.DataIn {
					t.Errorf("data in %d, server data out %d, want %d", s.DataIn, ss.DataOut, q1+2*q2)
				}
			}
			open := 0
			if tc.strategy == mqttquic.StrategyDataPerTopic {
				open = topics
			}
			poll(t, "flows to settle", func() bool {
				return srv.Stats().FlowsOpen == open && pub.c.Stats().FlowsOpen == open
			})
			pub.disconnect()
			sub.disconnect()
		})
	}
}
