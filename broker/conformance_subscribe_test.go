package broker

// Conformance tests of SUBSCRIBE, UNSUBSCRIBE, PINGREQ and shared
// subscriptions.

import (
	"slices"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// TestConformanceSubscribeAcks subscribes several filters in one SUBSCRIBE,
// valid and invalid, on a broker with Maximum QoS 1: one SUBACK with the
// packet identifier, one code per filter in order, each the granted QoS or
// a failure; the valid filters work and deliver at the granted QoS.
// [MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.8.4-7]
// [MQTT-3.8.4-8] [MQTT-3.9.3-1] [MQTT-3.9.3-2] [MQTT-2.2.1-6] [MQTT-4.7.1-1]
// [MQTT-4.7.1-2] [MQTT-4.7.3-1] [MQTT-4.8.2-1] [MQTT-4.8.2-2]
func TestConformanceSubscribeAcks(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{Capabilities: Capabilities{MaximumQoS: 1}})
			c := dial(t, b, v, "c")
			fail := packet.TopicFilterInvalid
			if v == packet.V311 {
				fail = packet.V3SubackFailure
			}
			subs := []struct {
				s    packet.Subscription
				want packet.ReasonCode
			}{
				{packet.Subscription{Filter: "a/b", QoS: 2}, packet.GrantedQoS1},
				{packet.Subscription{Filter: "a/#/b", QoS: 1}, fail},
				{packet.Subscription{Filter: "x", QoS: 0}, packet.GrantedQoS0},
				{packet.Subscription{Filter: "sport+", QoS: 1}, fail},
				{packet.Subscription{Filter: "sport/#x", QoS: 1}, fail},
				{packet.Subscription{Filter: "", QoS: 1}, fail},
				{packet.Subscription{Filter: "$share/g", QoS: 1}, fail},
				{packet.Subscription{Filter: "$share//y", QoS: 1}, fail},
				{packet.Subscription{Filter: "$share/g+/y", QoS: 1}, fail},
				{packet.Subscription{Filter: "$share/g/y/+", QoS: 2}, packet.GrantedQoS1},
				{packet.Subscription{Filter: "+/b/#", QoS: 1}, packet.GrantedQoS1},
			}
			sp := &packet.Subscribe{PacketID: 0x1234}
			for _, s := range subs {
				sp.Subscriptions = append(sp.Subscriptions, s.s)
			}
			c.send(sp)
			ack := recvAs[*packet.Suback](c)
			if ack.PacketID != 0x1234 || len(ack.ReasonCodes) != len(subs) {
				t.Fatalf("SUBACK id %#x with %d codes, want id 0x1234 with %d", ack.PacketID, len(ack.ReasonCodes), len(subs))
			}
			for i, s := range subs {
				if ack.ReasonCodes[i] != s.want {
					t.Errorf("filter %q: code %#x, want %#x", s.s.Filter, byte(ack.ReasonCodes[i]), byte(s.want))
				}
			}
			pub := dial(t, b, v, "pub")
			pub.publish(&packet.Publish{Topic: "x", QoS: 1, PacketID: 1, Payload: []byte("x")})
			if got := recvAs[*packet.Publish](c); got.Topic != "x" || got.QoS != 0 {
				t.Fatalf("got %+v, want x at QoS 0", got)
			}
			pub.publish(&packet.Publish{Topic: "y/z", QoS: 1, PacketID: 2, Payload: []byte("y")})
			got := recvAs[*packet.Publish](c)
			if got.Topic != "y/z" || got.QoS != 1 {
				t.Fatalf("got %+v, want y/z at QoS 1 through the shared subscription", got)
			}
			c.send(&packet.Puback{PacketID: got.PacketID})
		})
	}
}

// TestConformanceSubscriptionReplaced subscribes the same filter twice with
// different options: the second subscription replaces the first (one copy,
// at the new QoS, with the new Subscription Identifier).
// [MQTT-3.8.4-3]
func TestConformanceSubscriptionReplaced(t *testing.T) {
	b := newTestBroker(t, Config{})
	c := dial(t, b, packet.V5, "c")
	for i, qos := range []byte{2, 0} {
		sp := &packet.Subscribe{PacketID: uint16(i + 1), Subscriptions: []packet.Subscription{{Filter: "t", QoS: qos}}}
		sp.Props.SubscriptionIDs = []uint32{uint32(i + 1)}
		c.send(sp)
		recvAs[*packet.Suback](c)
	}
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "t", QoS: 2, PacketID: 1, Payload: []byte("x")})
	got := recvAs[*packet.Publish](c)
	if got.QoS != 0 || len(got.Props.SubscriptionIDs) != 1 || got.Props.SubscriptionIDs[0] != 2 {
		t.Fatalf("got QoS %d ids %v, want QoS 0 ids [2]", got.QoS, got.Props.SubscriptionIDs)
	}
	c.expectNothing(50 * time.Millisecond)
}

// TestConformanceResubscribeLosesNothing re-subscribes a filter with
// Retain Handling 0 while one message is in flight and one queued: the
// retained message is sent again and neither message is lost.
// [MQTT-3.8.4-4]
func TestConformanceResubscribeLosesNothing(t *testing.T) {
	b := newTestBroker(t, Config{})
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "rs", Retain: true, QoS: 1, PacketID: 1, Payload: []byte("retained")})
	sub := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "sub", CleanStart: true}
	cp.Props.ReceiveMaximum = 1
	sub.connect(cp)
	sub.subscribe(1, packet.Subscription{Filter: "rs", QoS: 1})
	r := recvAs[*packet.Publish](sub)
	if string(r.Payload) != "retained" || !r.Retain {
		t.Fatalf("got %+v, want the retained message", r)
	}
	sub.send(&packet.Puback{PacketID: r.PacketID})
	pub.publish(&packet.Publish{Topic: "rs", QoS: 1, PacketID: 2, Payload: []byte("one")})
	pub.publish(&packet.Publish{Topic: "rs", QoS: 1, PacketID: 3, Payload: []byte("two")})
	first := recvAs[*packet.Publish](sub) // "two" waits for the window
	sub.subscribe(2, packet.Subscription{Filter: "rs", QoS: 1})
	got := []string{string(first.Payload)}
	sub.send(&packet.Puback{PacketID: first.PacketID})
	for range 2 {
		p := recvAs[*packet.Publish](sub)
		got = append(got, string(p.Payload))
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
	slices.Sort(got)
	if want := []string{"one", "retained", "two"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	sub.expectNothing(50 * time.Millisecond)
}

// TestConformanceSubscriptionIdentifiersPerCopy subscribes one client to
// a/+ (identifier 1) and to the shared $share/g/a/# (identifier 2): a
// message matching both is sent as two PUBLISH packets, each with the
// identifier of its own subscription. [MQTT-3.3.4-5] [MQTT-3.3.4-3]
func TestConformanceSubscriptionIdentifiersPerCopy(t *testing.T) {
	b := newTestBroker(t, Config{})
	c := dial(t, b, packet.V5, "c")
	for i, f := range []string{"a/+", "$share/g/a/#"} {
		sp := &packet.Subscribe{PacketID: uint16(i + 1), Subscriptions: []packet.Subscription{{Filter: f, QoS: 1}}}
		sp.Props.SubscriptionIDs = []uint32{uint32(i + 1)}
		c.send(sp)
		recvAs[*packet.Suback](c)
	}
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "a/b", QoS: 1, PacketID: 1, Payload: []byte("x")})
	var ids []uint32
	for range 2 {
		p := recvAs[*packet.Publish](c)
		if len(p.Props.SubscriptionIDs) != 1 {
			t.Fatalf("copy with Subscription Identifiers %v, want exactly one", p.Props.SubscriptionIDs)
		}
		ids = append(ids, p.Props.SubscriptionIDs[0])
		c.send(&packet.Puback{PacketID: p.PacketID})
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []uint32{1, 2}) {
		t.Fatalf("identifiers %v, want 1 and 2", ids)
	}
}

// TestConformanceUnsubscribe unsubscribes four filters in one packet, two
// of which match no subscription exactly (one would match by wildcard):
// one UNSUBACK with the packet identifier and, in v5, one code per filter
// in order; the deleted subscriptions no longer deliver.
// [MQTT-3.10.4-1] [MQTT-3.10.4-2] [MQTT-3.10.4-4] [MQTT-3.10.4-5]
// [MQTT-3.10.4-6] [MQTT-3.11.3-1] [MQTT-3.11.3-2] [MQTT-2.2.1-6]
func TestConformanceUnsubscribe(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			c := dial(t, b, v, "c")
			c.subscribe(1, packet.Subscription{Filter: "a/+", QoS: 1}, packet.Subscription{Filter: "b", QoS: 1}, packet.Subscription{Filter: "keep", QoS: 1})
			c.send(&packet.Unsubscribe{PacketID: 0x4321, Filters: []string{"a/b", "a/+", "nope", "b"}})
			ua := recvAs[*packet.Unsuback](c)
			if ua.PacketID != 0x4321 {
				t.Fatalf("UNSUBACK id %#x", ua.PacketID)
			}
			if v == packet.V5 {
				want := []packet.ReasonCode{packet.NoSubscriptionExisted, packet.Success, packet.NoSubscriptionExisted, packet.Success}
				if len(ua.ReasonCodes) != len(want) {
					t.Fatalf("UNSUBACK codes %v, want %v", ua.ReasonCodes, want)
				}
				for i := range want {
					if ua.ReasonCodes[i] != want[i] {
						t.Fatalf("UNSUBACK codes %v, want %v", ua.ReasonCodes, want)
					}
				}
			}
			pub := dial(t, b, v, "pub")
			for _, tp := range []string{"a/b", "a/x", "b", "keep"} {
				pub.publish(&packet.Publish{Topic: tp, Payload: []byte(tp)})
			}
			if got := recvAs[*packet.Publish](c); got.Topic != "keep" {
				t.Fatalf("got %q after unsubscribing it", got.Topic)
			}
			c.expectNothing(50 * time.Millisecond)
		})
	}
}

// TestConformanceUnsubscribeCompletesInflight unsubscribes while a QoS 1
// and a QoS 2 message are in flight: the QoS 2 flow completes, the QoS 1
// message is re-sent on resume, and no new message is added.
// [MQTT-3.10.4-3] [MQTT-3.10.4-2]
func TestConformanceUnsubscribeCompletesInflight(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := newTClient(t, b, packet.V5)
	sub.connect(cfPersist("uc", 300, true))
	sub.subscribe(1, packet.Subscription{Filter: "uc", QoS: 2})
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "uc", QoS: 1, PacketID: 1, Payload: []byte("one")})
	pub.publish(&packet.Publish{Topic: "uc", QoS: 2, PacketID: 2, Payload: []byte("two")})
	p1 := recvAs[*packet.Publish](sub)
	p2 := recvAs[*packet.Publish](sub)
	sub.send(&packet.Unsubscribe{PacketID: 9, Filters: []string{"uc"}})
	recvAs[*packet.Unsuback](sub)
	cfComplete(sub, p2)
	cfDrop(t, b, sub, "uc")
	pub.publish(&packet.Publish{Topic: "uc", QoS: 1, PacketID: 3, Payload: []byte("new")})
	sub2 := newTClient(t, b, packet.V5)
	sub2.connect(cfPersist("uc", 300, false))
	re := recvAs[*packet.Publish](sub2)
	if re.PacketID != p1.PacketID || string(re.Payload) != "one" || !re.Dup {
		t.Fatalf("got %+v, want the QoS 1 message re-sent", re)
	}
	sub2.send(&packet.Puback{PacketID: re.PacketID})
	sub2.expectNothing(50 * time.Millisecond)
}

// TestConformancePing answers PINGREQ with PINGRESP. [MQTT-3.12.4-1]
func TestConformancePing(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			c := dial(t, b, v, "c")
			for range 3 {
				c.send(&packet.Pingreq{})
				recvAs[*packet.Pingresp](c)
			}
		})
	}
}

// TestConformanceSharedGrantedQoS delivers through shared subscriptions
// granted QoS 0 and 1 a message published at QoS 2: each member gets it at
// its granted QoS. [MQTT-4.8.2-3]
func TestConformanceSharedGrantedQoS(t *testing.T) {
	b := newTestBroker(t, Config{})
	m0 := dial(t, b, packet.V5, "m0")
	m0.subscribe(1, packet.Subscription{Filter: "$share/g0/sq", QoS: 0})
	m1 := dial(t, b, packet.V5, "m1")
	m1.subscribe(1, packet.Subscription{Filter: "$share/g1/sq", QoS: 1})
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "sq", QoS: 2, PacketID: 1, Payload: []byte("x")})
	if got := recvAs[*packet.Publish](m0); got.QoS != 0 {
		t.Fatalf("QoS 0 member got QoS %d", got.QoS)
	}
	if got := recvAs[*packet.Publish](m1); got.QoS != 1 {
		t.Fatalf("QoS 1 member got QoS %d", got.QoS)
	}
}

// TestConformanceSharedQoS2CompletesWithSameMember drops the connection of
// a shared-subscription member (with a session that lives on) after it got
// a QoS 2 PUBLISH and before its PUBREC: the message must not go to
// another member, and is re-sent to this one when it reconnects.
// [MQTT-4.8.2-4]
func TestConformanceSharedQoS2CompletesWithSameMember(t *testing.T) {
	b := newTestBroker(t, Config{})
	a := newTClient(t, b, packet.V5)
	a.connect(cfPersist("ma", 300, true))
	a.subscribe(1, packet.Subscription{Filter: "$share/g/s2", QoS: 2})
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "s2", QoS: 2, PacketID: 1, Payload: []byte("m")})
	first := recvAs[*packet.Publish](a)
	other := dial(t, b, packet.V5, "mb")
	other.subscribe(1, packet.Subscription{Filter: "$share/g/s2", QoS: 2})
	cfDrop(t, b, a, "ma")
	if got, err := other.tryRecv(100 * time.Millisecond); err == nil {
		t.Errorf("QoS 2 message in flight to one member sent to another: %+v", got)
	}
	a2 := newTClient(t, b, packet.V5)
	a2.connect(cfPersist("ma", 300, false))
	got, err := a2.tryRecv(time.Second)
	if err != nil {
		t.Fatalf("QoS 2 message not re-sent to its member on reconnect: %v", err)
	}
	if re, ok := got.(*packet.Publish); !ok || re.PacketID != first.PacketID || !re.Dup {
		t.Fatalf("got %+v, want the PUBLISH re-sent with DUP", got)
	}
}

// TestConformanceSharedQoS2NotSentToOtherMember ends the session of a
// shared-subscription member after it got a QoS 2 PUBLISH and before its
// PUBREC: the message must not be sent to another member. [MQTT-4.8.2-5]
func TestConformanceSharedQoS2NotSentToOtherMember(t *testing.T) {
	b := newTestBroker(t, Config{})
	a := dial(t, b, packet.V5, "ma") // Session Expiry 0: ends with the connection
	a.subscribe(1, packet.Subscription{Filter: "$share/g/s2", QoS: 2})
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "s2", QoS: 2, PacketID: 1, Payload: []byte("m")})
	recvAs[*packet.Publish](a)
	other := dial(t, b, packet.V5, "mb")
	other.subscribe(1, packet.Subscription{Filter: "$share/g/s2", QoS: 2})
	a.nc.Close()
	pollUntil(t, func() bool { b.sessMu.Lock(); defer b.sessMu.Unlock(); return b.sessions["ma"] == nil })
	if got, err := other.tryRecv(100 * time.Millisecond); err == nil {
		t.Fatalf("QoS 2 message of an ended session sent to another member: %+v", got)
	}
}

// TestConformanceSharedRefusedAckDiscarded has a shared-subscription member
// refuse a message with PUBACK 0x80 (QoS 1) or PUBREC 0x80 (QoS 2) and then
// leave: the message is not sent to any other member. [MQTT-4.8.2-6]
func TestConformanceSharedRefusedAckDiscarded(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(string('0'+qos), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			a := dial(t, b, packet.V5, "ma")
			a.subscribe(1, packet.Subscription{Filter: "$share/g/sr", QoS: qos})
			pub := dial(t, b, packet.V5, "pub")
			pub.publish(&packet.Publish{Topic: "sr", QoS: qos, PacketID: 1, Payload: []byte("m")})
			p := recvAs[*packet.Publish](a)
			other := dial(t, b, packet.V5, "mb")
			other.subscribe(1, packet.Subscription{Filter: "$share/g/sr", QoS: qos})
			if qos == 1 {
				a.send(&packet.Puback{PacketID: p.PacketID, ReasonCode: packet.UnspecifiedError})
			} else {
				a.send(&packet.Pubrec{PacketID: p.PacketID, ReasonCode: packet.UnspecifiedError})
			}
			a.expectNothing(20 * time.Millisecond)
			a.disconnect()
			other.expectNothing(100 * time.Millisecond)
		})
	}
}
