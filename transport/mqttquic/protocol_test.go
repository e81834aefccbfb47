package mqttquic_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

func clientFlow(seq uint64, expire uint64, flags mqttquic.FlowFlags) mqttquic.FlowHeader {
	return mqttquic.FlowHeader{Type: mqttquic.FlowClientData, ID: mqttquic.ClientFlowID(seq), Expire: expire, Flags: flags}
}

// TestSubscriptionOnDataFlow: a subscription made on a client data flow
// is answered and delivered on that flow, and the acknowledgement of the
// delivery is accepted there, while other subscriptions stay on the
// control flow.
func TestSubscriptionOnDataFlow(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{Delivery: mqttquic.DeliveryControlOnly}, broker.Config{})
	rc := e.rawDial(nil)
	rc.connect("raw")
	h := hdr(t, clientFlow(1, 300, mqttquic.FlowFlags{}))
	if !bytes.Equal(h, []byte{0x12, 0x02, 0x41, 0x2C, 0x00}) {
		t.Fatalf("header % x", h)
	}
	fl := rc.openFlow(h)
	fr := packet.NewReader(fl, 0)
	writePacket(t, fl, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "f/#", QoS: 1}}})
	if a, ok := readPacket(t, fl, fr).(*packet.Suback); !ok || a.PacketID != 1 {
		t.Fatalf("SUBACK on the flow: %+v", a)
	}
	writePacket(t, rc.ctrl, &packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{{Filter: "g/#", QoS: 1}}})
	if a, ok := readPacket(t, rc.ctrl, rc.r).(*packet.Suback); !ok || a.PacketID != 2 {
		t.Fatalf("SUBACK on control: %+v", a)
	}
	pub := e.connect("pub", mqttquic.DialConfig{}, nil)
	for i := 0; i < 3; i++ {
		pub.publish("f/x", 1, payload(i))
		p, ok := readPacket(t, fl, fr).(*packet.Publish)
		if !ok || p.Topic != "f/x" || string(p.Payload) != string(payload(i)) {
			t.Fatalf("delivery on the flow: %+v", p)
		}
		writePacket(t, fl, &packet.Puback{PacketID: p.PacketID})
		pub.publish("g/y", 1, payload(i))
		p, ok = readPacket(t, rc.ctrl, rc.r).(*packet.Publish)
		if !ok || p.Topic != "g/y" {
			t.Fatalf("delivery on control: %+v", p)
		}
		writePacket(t, rc.ctrl, &packet.Puback{PacketID: p.PacketID})
	}
	rc.ping()
	if s := rc.server().Stats(); s.DataIn != 1+3 || s.DataOut != 1+3 {
		t.Fatalf("server stats %+v", s)
	}
	// Subscribing to the filter again on the control flow moves it there.
	writePacket(t, rc.ctrl, &packet.Subscribe{PacketID: 3, Subscriptions: []packet.Subscription{{Filter: "f/#", QoS: 1}}})
	if a, ok := readPacket(t, rc.ctrl, rc.r).(*packet.Suback); !ok || a.PacketID != 3 {
		t.Fatalf("SUBACK: %+v", a)
	}
	pub.publish("f/z", 0, nil)
	if p, ok := readPacket(t, rc.ctrl, rc.r).(*packet.Publish); !ok || p.Topic != "f/z" {
		t.Fatalf("delivery on control: %+v", p)
	}
	pub.disconnect()
}

// TestDataPerTopicSubscription: a client using data_per_topic subscribes
// on a data flow and so receives its deliveries there.
func TestDataPerTopicSubscription(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{Delivery: mqttquic.DeliveryControlOnly}, broker.Config{})
	sub := e.connect("sub", mqttquic.DialConfig{Strategy: mqttquic.StrategyDataPerTopic}, nil)
	pub := e.connect("pub", mqttquic.DialConfig{}, nil)
	sub.subscribe("t/#", 1)
	for i := 0; i < 5; i++ {
		pub.publish("t/a", 1, payload(i))
		if p := sub.receive(); string(p.Payload) != string(payload(i)) {
			t.Fatalf("got %+v", p)
		}
	}
	sub.ping()
	// SUBACK and five deliveries in; SUBSCRIBE and five PUBACKs out.
	if s := sub.c.Stats(); s.StreamsOpened != 1 || s.DataIn != 6 || s.DataOut != 6 {
		t.Fatalf("stats %+v", s)
	}
	pub.disconnect()
	sub.disconnect()
}

// TestDiscardAndResume: subscriptions on a flow with
// persistent_subscriptions outlive its stream for the expire interval, a
// new stream with clean=0 resumes them, and a header-only discard stream
// drops them.
func TestDiscardAndResume(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{Delivery: mqttquic.DeliveryControlOnly}, broker.Config{})
	rc := e.rawDial(nil)
	rc.connect("raw")
	persist := mqttquic.FlowFlags{PersistentSubscriptions: true, ErrTolerance: 1}
	fl := rc.openFlow(hdr(t, clientFlow(1, 300, persist)))
	fr := packet.NewReader(fl, 0)
	writePacket(t, fl, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "k/#"}}})
	if _, ok := readPacket(t, fl, fr).(*packet.Suback); !ok {
		t.Fatal("no SUBACK")
	}
	srv := rc.server()
	fl.Close()
	poll(t, "flow state detached", func() bool { s := srv.Stats(); return s.FlowsDetached == 1 && s.FlowsOpen == 0 })

	pub := e.connect("pub", mqttquic.DialConfig{}, nil)
	pub.publish("k/1", 0, nil)
	if p, ok := readPacket(t, rc.ctrl, rc.r).(*packet.Publish); !ok || p.Topic != "k/1" {
		t.Fatalf("detached: delivery on control expected, got %+v", p)
	}

	resumed := rc.openFlow(hdr(t, clientFlow(1, 300, persist)))
	rr := packet.NewReader(resumed, 0)
	poll(t, "flow resumed", func() bool { s := srv.Stats(); return s.FlowsDetached == 0 && s.FlowsOpen == 1 })
	pub.publish("k/2", 0, nil)
	if p, ok := readPacket(t, resumed, rr).(*packet.Publish); !ok || p.Topic != "k/2" {
		t.Fatalf("resumed: delivery on the flow expected, got %+v", p)
	}

	// A discard header while the flow is open resets its stream.
	discard := rc.openFlow(hdr(t, clientFlow(1, 0, mqttquic.FlowFlags{Clean: true})))
	if code := resetCode(t, resumed); code != mqttquic.StreamDiscardState {
		t.Fatalf("old stream reset with %v", code)
	}
	discard.Close()
	poll(t, "flow discarded", func() bool { s := srv.Stats(); return s.FlowsDetached == 0 && s.FlowsOpen == 0 })
	pub.publish("k/3", 0, nil)
	if p, ok := readPacket(t, rc.ctrl, rc.r).(*packet.Publish); !ok || p.Topic != "k/3" {
		t.Fatalf("discarded: delivery on control expected, got %+v", p)
	}
	noState := rc.openFlow(hdr(t, clientFlow(1, 0, mqttquic.FlowFlags{AbortIfNoState: true, ErrTolerance: 1})))
	if code := resetCode(t, noState); code != mqttquic.StreamNoFlowState {
		t.Fatalf("abort_if_no_state: reset with %v", code)
	}

	// Detach again, then discard the detached state with a header-only stream.
	again := rc.openFlow(hdr(t, clientFlow(2, 300, persist)))
	ar := packet.NewReader(again, 0)
	writePacket(t, again, &packet.Subscribe{PacketID: 4, Subscriptions: []packet.Subscription{{Filter: "j/#"}}})
	if _, ok := readPacket(t, again, ar).(*packet.Suback); !ok {
		t.Fatal("no SUBACK")
	}
	again.Close()
	poll(t, "flow state detached", func() bool { return srv.Stats().FlowsDetached == 1 })
	d := rc.openFlow([]byte{0x12, 0x04, 0x00, 0x01})
	d.Close()
	poll(t, "detached state discarded", func() bool { s := srv.Stats(); return s.FlowsDetached == 0 && s.FlowsOpen == 0 })
	rc.ping()
	pub.disconnect()
}

// TestFlowErrors: each bad stream is reset with its error code; with
// err_tolerance the connection goes on, without it the connection is
// closed with ProtocolLevel0.
func TestFlowErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header func(tol uint8) []byte
		code   mqttquic.StreamErrorCode
		inUse  bool // open flow 1 first
		ctrlH  bool // the tolerance comes from the control header
	}{
		{"id zero", func(tol uint8) []byte {
			return []byte{0x12, 0x00, 0x00, tol << 2}
		}, mqttquic.StreamBadFlowID, false, false},
		{"server id", func(tol uint8) []byte {
			return []byte{0x12, 0x03, 0x00, tol << 2}
		}, mqttquic.StreamBadFlowID, false, false},
		{"id in use", func(tol uint8) []byte {
			return []byte{0x12, 0x02, 0x00, tol << 2}
		}, mqttquic.StreamBadFlowID, true, false},
		{"server flow type", func(tol uint8) []byte {
			return []byte{0x13, 0x02, 0x00, tol << 2}
		}, mqttquic.StreamStreamType, false, false},
		{"control flow type", func(tol uint8) []byte {
			return []byte{0x11, 0x00, tol << 2}
		}, mqttquic.StreamStreamType, false, false},
		{"user defined", func(tol uint8) []byte {
			return []byte{0x14, 0x02, 0x00, tol << 2}
		}, mqttquic.StreamStreamType, false, false},
		{"persistent topic alias", func(tol uint8) []byte {
			return []byte{0x12, 0x02, 0x00, 0x20 | tol<<2}
		}, mqttquic.StreamPersistentTopic, false, false},
		{"header over 32 bytes", func(tol uint8) []byte {
			b := []byte{0x12, 0x02, 0x00, 0x80 | tol<<2, 30}
			return append(b, make([]byte, 30)...)
		}, mqttquic.StreamOptionalHeader, false, false},
		{"no header", func(uint8) []byte {
			return []byte{0xC0, 0x00} // PINGREQ
		}, mqttquic.StreamStreamType, false, true},
	} {
		for _, tolerant := range []bool{true, false} {
			name := tc.name + "/intolerant"
			if tolerant {
				name = tc.name + "/tolerant"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, mqttquic.ServerConfig{}, broker.Config{})
				var tol uint8
				if tolerant {
					tol = 2
				}
				var ch []byte
				if tc.ctrlH {
					ch = []byte{0x11, 0x00, tol << 2}
				}
				rc := e.rawDial(ch)
				rc.connect("raw")
				if tc.inUse {
					rc.openFlow(hdr(t, clientFlow(1, 0, mqttquic.FlowFlags{ErrTolerance: 1})))
					rc.ping()
					poll(t, "flow open", func() bool { return rc.server().Stats().FlowsOpen == 1 })
				}
				st := rc.openFlow(tc.header(tol))
				if tolerant {
					if code := resetCode(t, st); code != tc.code {
						t.Fatalf("reset with %v, want %v", code, tc.code)
					}
					rc.ping()
					return
				}
				if code := rc.closedWith(); code != mqttquic.ConnProtocolLevel0 {
					t.Fatalf("closed with %v, want %v", code, mqttquic.ConnProtocolLevel0)
				}
			})
		}
	}
}

// TestFlowRefused: the flow beyond MaxFlows is refused; closing one makes
// room again.
func TestFlowRefused(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{}, broker.Config{})
	rc := e.rawDial(nil)
	rc.connect("raw")
	flows := make([]*quic.Stream, 0, mqttquic.DefaultMaxFlows)
	for i := 1; i <= mqttquic.DefaultMaxFlows; i++ {
		flows = append(flows, rc.openFlow(hdr(t, clientFlow(uint64(i), 0, mqttquic.FlowFlags{ErrTolerance: 1}))))
	}
	srv := rc.server()
	poll(t, "256 flows open", func() bool { return srv.Stats().FlowsOpen == mqttquic.DefaultMaxFlows })
	extra := rc.openFlow(hdr(t, clientFlow(mqttquic.DefaultMaxFlows+1, 0, mqttquic.FlowFlags{})))
	if code := resetCode(t, extra); code != mqttquic.StreamFlowRefused {
		t.Fatalf("257th flow reset with %v", code)
	}
	rc.ping()
	// The last admitted flow works.
	last := flows[len(flows)-1]
	lr := packet.NewReader(last, 0)
	writePacket(t, last, &packet.Subscribe{PacketID: 9, Subscriptions: []packet.Subscription{{Filter: "r"}}})
	if a, ok := readPacket(t, last, lr).(*packet.Suback); !ok || a.PacketID != 9 {
		t.Fatalf("SUBACK on flow 256: %+v", a)
	}
	flows[0].Close()
	poll(t, "a flow to end", func() bool { return srv.Stats().FlowsOpen == mqttquic.DefaultMaxFlows-1 })
	again := rc.openFlow(hdr(t, clientFlow(mqttquic.DefaultMaxFlows+2, 0, mqttquic.FlowFlags{})))
	ar := packet.NewReader(again, 0)
	writePacket(t, again, &packet.Subscribe{PacketID: 10, Subscriptions: []packet.Subscription{{Filter: "r2"}}})
	if a, ok := readPacket(t, again, ar).(*packet.Suback); !ok || a.PacketID != 10 {
		t.Fatalf("SUBACK on a new flow: %+v", a)
	}
}

// TestFlowOpenIdle: a stream whose header does not arrive in time is
// reset with FlowOpenIdle.
func TestFlowOpenIdle(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{OpenTimeout: 20 * time.Millisecond}, broker.Config{})
	rc := e.rawDial(nil)
	rc.connect("raw")
	st := rc.openFlow([]byte{0x12}) // header started, never finished
	if code := resetCode(t, st); code != mqttquic.StreamFlowOpenIdle {
		t.Fatalf("reset with %v", code)
	}
	rc.ping()
}
