package broker

// Conformance tests of PUBLISH and its acknowledgements: packet
// identifiers, QoS flows, reason codes, topic names and aliases, message
// properties, ordering, flow control and size limits.

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// TestConformancePacketIdentifiers has 100 QoS 1 and 2 messages in flight
// to one subscriber and checks that their identifiers are non-zero and
// distinct, and that identifiers still in use (QoS 2 past PUBREC) are not
// given to new messages. [MQTT-2.2.1-4] [MQTT-4.3.2-1] [MQTT-4.3.3-1]
func TestConformancePacketIdentifiers(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "sub", CleanStart: true}
	cp.Props.ReceiveMaximum = 200
	sub.connect(cp)
	sub.subscribe(1, packet.Subscription{Filter: "id/#", QoS: 2})
	pub := dial(t, b, packet.V5, "pub")
	for i := range 100 {
		pub.publish(&packet.Publish{Topic: "id/x", QoS: byte(1 + i%2), PacketID: uint16(i + 1), Payload: []byte("x")})
	}
	inUse := map[uint16]byte{}
	for range 100 {
		p := recvAs[*packet.Publish](sub)
		if p.PacketID == 0 {
			t.Fatal("PUBLISH with QoS > 0 and Packet Identifier 0")
		}
		if _, dup := inUse[p.PacketID]; dup {
			t.Fatalf("Packet Identifier %d used twice while in flight", p.PacketID)
		}
		inUse[p.PacketID] = p.QoS
	}
	// Complete the QoS 1 flows; move the QoS 2 flows past PUBREC only.
	for id, qos := range inUse {
		if qos == 1 {
			sub.send(&packet.Puback{PacketID: id})
			delete(inUse, id)
			continue
		}
		sub.send(&packet.Pubrec{PacketID: id})
		if rel := recvAs[*packet.Pubrel](sub); rel.PacketID != id {
			t.Fatalf("PUBREL %d for PUBREC %d", rel.PacketID, id)
		}
	}
	for i := range 100 {
		pub.publish(&packet.Publish{Topic: "id/x", QoS: 1, PacketID: uint16(i + 1), Payload: []byte("y")})
		p := recvAs[*packet.Publish](sub)
		if _, used := inUse[p.PacketID]; used || p.PacketID == 0 {
			t.Fatalf("new PUBLISH got Packet Identifier %d, which is in use", p.PacketID)
		}
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
}

// TestConformanceQoSFlows checks both ends of the QoS flows: DUP is 0 on
// first delivery whatever the publisher sent; acknowledgements carry the
// PUBLISH's identifier; an identifier is new again after PUBACK, after
// PUBCOMP and after a failing PUBREC.
// [MQTT-2.2.1-5] [MQTT-3.3.1-3] [MQTT-3.3.4-1] [MQTT-4.3.1-1] [MQTT-4.3.2-2]
// [MQTT-4.3.2-4] [MQTT-4.3.2-5] [MQTT-4.3.3-2] [MQTT-4.3.3-4] [MQTT-4.3.3-8]
// [MQTT-4.3.3-9] [MQTT-4.3.3-11] [MQTT-4.3.3-12] [MQTT-3.6.2-1] (the
// broker's PUBREL goes through the decoder, which refuses other codes)
func TestConformanceQoSFlows(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			sub := dial(t, b, v, "sub")
			sub.subscribe(1, packet.Subscription{Filter: "q/#", QoS: 2})
			pub := dial(t, b, v, "pub")
			expect := func(payload string, qos byte) {
				t.Helper()
				p := recvAs[*packet.Publish](sub)
				if string(p.Payload) != payload || p.QoS != qos || p.Dup {
					t.Fatalf("got %+v, want %q at QoS %d with DUP 0", p, payload, qos)
				}
				cfComplete(sub, p)
			}
			pub.publish(&packet.Publish{Topic: "q/0", Payload: []byte("zero")})
			expect("zero", 0)
			// A first PUBLISH sent with DUP 1 is forwarded with DUP 0.
			pub.publish(&packet.Publish{Topic: "q/1", QoS: 1, PacketID: 7, Dup: true, Payload: []byte("one")})
			expect("one", 1)
			// The same identifier after PUBACK is a new message.
			pub.publish(&packet.Publish{Topic: "q/1", QoS: 1, PacketID: 7, Dup: true, Payload: []byte("one again")})
			expect("one again", 1)
			// QoS 2, then the same identifier after PUBCOMP.
			pub.publish(&packet.Publish{Topic: "q/2", QoS: 2, PacketID: 9, Payload: []byte("two")})
			expect("two", 2)
			pub.publish(&packet.Publish{Topic: "q/2", QoS: 2, PacketID: 9, Payload: []byte("two again")})
			expect("two again", 2)
			if v == packet.V5 {
				// A failing PUBREC ends the flow: the identifier is new again.
				pub.send(&packet.Publish{Topic: "$SYS/q", QoS: 2, PacketID: 11, Payload: []byte("no")})
				if rec := recvAs[*packet.Pubrec](pub); rec.PacketID != 11 || !rec.ReasonCode.IsError() {
					t.Fatalf("PUBREC %+v, want a failure for id 11", rec)
				}
				pub.publish(&packet.Publish{Topic: "q/2", QoS: 2, PacketID: 11, Payload: []byte("after refusal")})
				expect("after refusal", 2)
			}
			sub.expectNothing(50 * time.Millisecond)
		})
	}
}

// TestConformancePublishAckReasonCodes provokes the PUBACK, PUBREC and
// PUBCOMP reason codes the broker uses; the test client's decoder refuses
// any code the packet type does not allow.
// [MQTT-3.4.2-1] [MQTT-3.5.2-1] [MQTT-3.7.2-1] [MQTT-3.3.4-1] [MQTT-4.3.3-11]
func TestConformancePublishAckReasonCodes(t *testing.T) {
	b := newTestBroker(t, Config{})
	c := dial(t, b, packet.V5, "c")
	cases := []struct {
		p    *packet.Publish
		want packet.ReasonCode
	}{
		{&packet.Publish{Topic: "nobody", QoS: 1, PacketID: 1, Payload: []byte("x")}, packet.NoMatchingSubscribers},
		{&packet.Publish{Topic: "$SYS/x", QoS: 1, PacketID: 2, Payload: []byte("x")}, packet.NotAuthorized},
		{&packet.Publish{Topic: "nobody", QoS: 1, PacketID: 3, Payload: []byte{0xff}, Props: packet.Properties{PayloadFormat: 1}}, packet.PayloadFormatInvalid},
		{&packet.Publish{Topic: "nobody", QoS: 2, PacketID: 4, Payload: []byte("x")}, packet.NoMatchingSubscribers},
		{&packet.Publish{Topic: "$SYS/x", QoS: 2, PacketID: 5, Payload: []byte("x")}, packet.NotAuthorized},
	}
	for _, tc := range cases {
		c.send(tc.p)
		var rc packet.ReasonCode
		var id uint16
		if tc.p.QoS == 1 {
			a := recvAs[*packet.Puback](c)
			rc, id = a.ReasonCode, a.PacketID
		} else {
			a := recvAs[*packet.Pubrec](c)
			rc, id = a.ReasonCode, a.PacketID
		}
		if rc != tc.want || id != tc.p.PacketID {
			t.Errorf("%s QoS %d: ack id %d code %#x, want id %d code %#x", tc.p.Topic, tc.p.QoS, id, byte(rc), tc.p.PacketID, byte(tc.want))
		}
	}
	c.send(&packet.Pubrel{PacketID: 4})
	if a := recvAs[*packet.Pubcomp](c); a.PacketID != 4 || a.ReasonCode != packet.Success {
		t.Fatalf("PUBCOMP %+v", a)
	}
	c.send(&packet.Pubrel{PacketID: 5}) // the flow ended with the failing PUBREC
	if a := recvAs[*packet.Pubcomp](c); a.PacketID != 5 || a.ReasonCode != packet.PacketIdentifierNotFound {
		t.Fatalf("PUBCOMP %+v", a)
	}
}

// TestConformanceQoS2InboundExpiryAckContinues lets an inbound QoS 2
// message expire between PUBREC and PUBREL: the acknowledgement sequence
// still completes. [MQTT-4.3.3-13]
func TestConformanceQoS2InboundExpiryAckContinues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		b := newTestBroker(t, Config{})
		sub := newTClient(t, b, packet.V5)
		sub.connect(cfPersist("sub", 300, true))
		sub.subscribe(1, packet.Subscription{Filter: "e", QoS: 2})
		sub.nc.Close()
		synctest.Wait()
		pub := dial(t, b, packet.V5, "pub")
		p := &packet.Publish{Topic: "e", QoS: 2, PacketID: 3, Payload: []byte("x")}
		p.Props.MessageExpiry = 1
		pub.send(p)
		if rec := recvAs[*packet.Pubrec](pub); rec.ReasonCode.IsError() {
			t.Fatalf("PUBREC %v", rec.ReasonCode)
		}
		time.Sleep(5 * time.Second)
		pub.send(&packet.Pubrel{PacketID: 3})
		if comp := recvAs[*packet.Pubcomp](pub); comp.PacketID != 3 || comp.ReasonCode != packet.Success {
			t.Fatalf("PUBCOMP %+v", comp)
		}
	})
}

// TestConformancePublishTopicRules checks topic names at the broker: a name
// with a wildcard is Topic Name Invalid, an empty one without an alias a
// Protocol Error; matching neither normalises nor strips a BOM.
// [MQTT-3.3.2-2] [MQTT-4.7.0-1] [MQTT-4.7.3-1] [MQTT-1.5.4-3] [MQTT-4.7.3-4]
// [MQTT-3.3.2-3]
func TestConformancePublishTopicRules(t *testing.T) {
	b := newTestBroker(t, Config{})
	for i, name := range []string{"a/+", "a/#", "+", "#"} {
		for _, v := range bothVersions {
			c := dial(t, b, v, fmt.Sprintf("w%d-%v", i, v))
			c.send(&packet.Publish{Topic: name, QoS: 1, PacketID: 1, Payload: []byte("x")})
			cfExpectDisconnect(c, packet.TopicNameInvalid)
		}
	}
	c := dial(t, b, packet.V5, "empty")
	wait := cfWriteAsync(c, []byte{0x30, 0x03, 0x00, 0x00, 0x00}) // topic "", no properties
	cfExpectDisconnect(c, packet.ProtocolError)
	wait()

	subs := map[string]*tclient{}
	for i, f := range []string{"a", "\uFEFFa", "\u00e9", "e\u0301", "A"} {
		s := dial(t, b, packet.V5, fmt.Sprintf("s%d", i))
		s.subscribe(1, packet.Subscription{Filter: f})
		subs[f] = s
	}
	pub := dial(t, b, packet.V5, "pub")
	for _, name := range []string{"a", "\uFEFFa", "\u00e9", "e\u0301", "A"} {
		pub.publish(&packet.Publish{Topic: name, Payload: []byte(name)})
		for f, s := range subs {
			if f != name {
				continue
			}
			if got := recvAs[*packet.Publish](s); got.Topic != name {
				t.Fatalf("subscriber %q got topic %q", f, got.Topic)
			}
		}
	}
	for f, s := range subs {
		s.expectNothing(20 * time.Millisecond)
		_ = f
	}
}

// TestConformancePropertiesForwardedUnaltered publishes a message (and a
// will) with every forwarded property: the subscriber receives Payload
// Format Indicator, Content Type, Response Topic, Correlation Data and the
// User Properties, in order and with duplicates, unchanged.
// [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17]
// [MQTT-3.3.2-18] [MQTT-3.3.2-20] [MQTT-3.1.3-10]
func TestConformancePropertiesForwardedUnaltered(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "pf/#", QoS: 1})
	var props packet.Properties
	props.PayloadFormat = 1
	props.ContentType = "application/json; charset=utf-8"
	props.ResponseTopic = "pf/reply/\u00fc"
	props.CorrelationData = []byte{0, 1, 2, 0xfe, 0xff}
	props.User = []packet.UserProperty{{Key: "z", Value: "1"}, {Key: "a", Value: "2"}, {Key: "z", Value: "3"}, {Key: "dup", Value: "x"}, {Key: "dup", Value: "x"}, {Key: "", Value: ""}}
	check := func(what string, got *packet.Publish) {
		t.Helper()
		p := &got.Props
		if p.PayloadFormat != 1 || !p.Has(packet.PropPayloadFormat) || p.ContentType != props.ContentType || p.ResponseTopic != props.ResponseTopic ||
			!bytes.Equal(p.CorrelationData, props.CorrelationData) || !slices.Equal(p.User, props.User) {
			t.Fatalf("%s: forwarded properties %+v, want %+v", what, *p, props)
		}
	}
	pub := dial(t, b, packet.V5, "pub")
	for _, qos := range []byte{0, 1} {
		pub.publish(&packet.Publish{Topic: "pf/a", QoS: qos, PacketID: uint16(qos), Payload: []byte(`{}`), Props: props})
		got := recvAs[*packet.Publish](sub)
		check(fmt.Sprintf("QoS %d", qos), got)
		cfComplete(sub, got)
	}
	w := newTClient(t, b, packet.V5)
	w.connect(&packet.Connect{ClientID: "w", CleanStart: true, Will: &packet.Will{Topic: "pf/will", Payload: []byte(`{}`), QoS: 1, Props: props}})
	w.nc.Close()
	check("will", recvAs[*packet.Publish](sub))
}

// TestConformanceResponseTopicInvalidUTF8 sends a PUBLISH whose Response
// Topic is not UTF-8: Malformed Packet. [MQTT-3.3.2-13]
func TestConformanceResponseTopicInvalidUTF8(t *testing.T) {
	b := newTestBroker(t, Config{})
	c := dial(t, b, packet.V5, "c")
	// topic "t" | properties (5): Response Topic "a\xff" | payload "x"
	wait := cfWriteAsync(c, []byte{0x30, 0x0a, 0x00, 0x01, 't', 0x05, 0x08, 0x00, 0x02, 'a', 0xff, 'x'})
	defer wait()
	cfExpectDisconnect(c, packet.MalformedPacket)
}

// TestConformanceResponseTopicWildcardNotForwarded publishes with a
// Response Topic containing a wildcard: the broker must not forward it (a
// PUBLISH it sends must not carry such a Response Topic) and should refuse
// it. [MQTT-3.3.2-14]
func TestConformanceResponseTopicWildcardNotForwarded(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "rt"})
	pub := dial(t, b, packet.V5, "pub")
	p := &packet.Publish{Topic: "rt", QoS: 1, PacketID: 1, Payload: []byte("x")}
	p.Props.ResponseTopic = "replies/+"
	pub.send(p)
	switch r := pub.recv().(type) {
	case *packet.Puback:
		if !r.ReasonCode.IsError() {
			t.Errorf("PUBACK %v for a wildcard Response Topic, want a failure (or DISCONNECT)", r.ReasonCode)
		}
	case *packet.Disconnect:
		if !r.ReasonCode.IsError() {
			t.Errorf("DISCONNECT %v", r.ReasonCode)
		}
	default:
		t.Errorf("got %s", r.Type())
	}
	if got, err := sub.tryRecv(50 * time.Millisecond); err == nil {
		t.Fatalf("broker forwarded %s with Response Topic %q", got.Type(), got.(*packet.Publish).Props.ResponseTopic)
	}
}

// TestConformanceTopicAliasInbound checks that the broker accepts every
// alias from 1 to the maximum it announced, that aliases do not carry over
// to a new connection, and that with Topic Alias Maximum 0 any alias is
// Topic Alias Invalid.
// [MQTT-3.3.2-12] [MQTT-3.3.2-7] [MQTT-3.2.2-17] [MQTT-3.2.2-18] [MQTT-3.3.2-9]
func TestConformanceTopicAliasInbound(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "ia/#"})
	pub := newTClient(t, b, packet.V5)
	ack := pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	max := ack.Props.TopicAliasMaximum
	if max == 0 {
		t.Fatal("no Topic Alias Maximum announced")
	}
	steps := []struct {
		topic string
		alias uint16
		want  string
	}{
		{"ia/one", 1, "ia/one"}, {"", 1, "ia/one"}, {"ia/max", max, "ia/max"}, {"", max, "ia/max"}, {"ia/two", 1, "ia/two"}, {"", 1, "ia/two"},
	}
	for i, s := range steps {
		p := &packet.Publish{Topic: s.topic, QoS: 1, PacketID: uint16(i + 1), Payload: []byte(s.want)}
		p.Props.TopicAlias = s.alias
		pub.publish(p)
		if got := recvAs[*packet.Publish](sub); got.Topic != s.want {
			t.Fatalf("step %d: forwarded on %q, want %q", i, got.Topic, s.want)
		}
	}
	pub.nc.Close()
	pub2 := dial(t, b, packet.V5, "pub")
	p := &packet.Publish{Payload: []byte("stale")}
	p.Props.TopicAlias = 1
	pub2.send(p)
	cfExpectDisconnect(pub2, packet.ProtocolError)
	sub.expectNothing(20 * time.Millisecond)

	b0 := newTestBroker(t, Config{Capabilities: Capabilities{TopicAliasDisabled: true}})
	c := newTClient(t, b0, packet.V5)
	if ack := c.connect(&packet.Connect{ClientID: "c", CleanStart: true}); ack.Props.TopicAliasMaximum != 0 {
		t.Fatalf("Topic Alias Maximum %d, want absent", ack.Props.TopicAliasMaximum)
	}
	p = &packet.Publish{Topic: "x", Payload: []byte("x")}
	p.Props.TopicAlias = 1
	c.send(p)
	cfExpectDisconnect(c, packet.TopicAliasInvalid)
}

// TestConformanceTopicAliasOutbound lets the broker use topic aliases
// towards clients: never above the client's Topic Alias Maximum, never 0,
// never to a client that set none, and never carried over to a new
// connection.
// [MQTT-3.1.2-26] [MQTT-3.1.2-27] [MQTT-3.3.2-11] [MQTT-3.3.2-8] [MQTT-3.3.2-7]
func TestConformanceTopicAliasOutbound(t *testing.T) {
	b := newTestBroker(t, Config{Capabilities: Capabilities{OutboundTopicAliases: 10}})
	connect := func(id string, aliasMax uint16) *tclient {
		c := newTClient(t, b, packet.V5)
		cp := cfPersist(id, 300, true)
		cp.Props.TopicAliasMaximum = aliasMax
		c.connect(cp)
		return c
	}
	small := connect("small", 2)
	small.subscribe(1, packet.Subscription{Filter: "al/#"})
	none := connect("none", 0)
	none.subscribe(1, packet.Subscription{Filter: "al/#"})
	pub := dial(t, b, packet.V5, "pub")
	topics := []string{"al/1", "al/2", "al/3", "al/1", "al/2", "al/3", "al/1"}
	for _, tp := range topics {
		pub.publish(&packet.Publish{Topic: tp, Payload: []byte(tp)})
	}
	aliases := map[uint16]string{}
	used := 0
	for i, want := range topics {
		got := recvAs[*packet.Publish](small)
		name := got.Topic
		if a := got.Props.TopicAlias; a != 0 {
			used++
			if a > 2 {
				t.Fatalf("message %d: Topic Alias %d above the client's maximum 2", i, a)
			}
			if name != "" {
				aliases[a] = name
			} else if name = aliases[a]; name == "" {
				t.Fatalf("message %d: unknown Topic Alias %d without a topic", i, a)
			}
		}
		if name != want {
			t.Fatalf("message %d: topic %q, want %q", i, name, want)
		}
		if got := recvAs[*packet.Publish](none); got.Props.TopicAlias != 0 || got.Topic != want {
			t.Fatalf("client without Topic Alias Maximum got alias %d topic %q", got.Props.TopicAlias, got.Topic)
		}
	}
	if used == 0 {
		t.Fatal("the broker used no alias although both sides allow them; the test checks nothing")
	}
	// A new connection starts without aliases.
	cfDrop(t, b, small, "small")
	again := newTClient(t, b, packet.V5)
	cp := cfPersist("small", 300, false)
	cp.Props.TopicAliasMaximum = 2
	again.connect(cp)
	pub.publish(&packet.Publish{Topic: "al/1", Payload: []byte("x")})
	if got := recvAs[*packet.Publish](again); got.Topic != "al/1" {
		t.Fatalf("first message on a new connection: topic %q alias %d", got.Topic, got.Props.TopicAlias)
	}
}

// TestConformanceOrdering publishes 60 messages on two topics at mixed QoS:
// for each topic and QoS the subscriber receives them in publishing order.
// [MQTT-4.6.0-5] [MQTT-4.6.0-6]
func TestConformanceOrdering(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "o/#", QoS: 2})
	pub := dial(t, b, packet.V5, "pub")
	const n = 60
	for i := range n {
		q := byte(i % 3)
		pub.publish(&packet.Publish{Topic: fmt.Sprintf("o/%d", i%2), QoS: q, PacketID: uint16(q) * uint16(i+1), Payload: []byte(fmt.Sprint(i))})
	}
	last := map[string]int{}
	for got := 0; got < n; {
		switch p := sub.recv().(type) {
		case *packet.Publish:
			got++
			var i int
			fmt.Sscan(string(p.Payload), &i)
			key := fmt.Sprintf("%s/%d", p.Topic, p.QoS)
			if prev, ok := last[key]; ok && prev >= i {
				t.Fatalf("%s: message %d after %d", key, i, prev)
			}
			last[key] = i
			switch p.QoS {
			case 1:
				sub.send(&packet.Puback{PacketID: p.PacketID})
			case 2:
				sub.send(&packet.Pubrec{PacketID: p.PacketID})
			}
		case *packet.Pubrel:
			sub.send(&packet.Pubcomp{PacketID: p.PacketID})
		default:
			t.Fatalf("got %s", p.Type())
		}
	}
}

// TestConformanceFlowControl gives a subscriber Receive Maximum 3: the
// broker has at most 3 QoS 1 messages in flight to it, and while the quota
// is used up it still answers PINGREQ, SUBSCRIBE, UNSUBSCRIBE and the
// client's own PUBLISH at once.
// [MQTT-4.9.0-1] [MQTT-4.9.0-2] [MQTT-4.9.0-3] [MQTT-3.3.4-9] [MQTT-3.3.4-10]
func TestConformanceFlowControl(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "sub", CleanStart: true}
	cp.Props.ReceiveMaximum = 3
	sub.connect(cp)
	sub.subscribe(1, packet.Subscription{Filter: "fc/#", QoS: 1})
	pub := dial(t, b, packet.V5, "pub")
	for i := range 6 {
		pub.publish(&packet.Publish{Topic: "fc/x", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{byte('0' + i)}})
	}
	var held []*packet.Publish
	for range 3 {
		held = append(held, recvAs[*packet.Publish](sub))
	}
	sub.expectNothing(50 * time.Millisecond)
	sub.send(&packet.Pingreq{})
	recvAs[*packet.Pingresp](sub)
	sub.subscribe(2, packet.Subscription{Filter: "other"})
	sub.send(&packet.Publish{Topic: "elsewhere", QoS: 1, PacketID: 77, Payload: []byte("x")})
	if a := recvAs[*packet.Puback](sub); a.PacketID != 77 {
		t.Fatalf("PUBACK %+v", a)
	}
	sub.send(&packet.Unsubscribe{PacketID: 3, Filters: []string{"other"}})
	recvAs[*packet.Unsuback](sub)
	for i := 3; i < 6; i++ {
		sub.send(&packet.Puback{PacketID: held[0].PacketID})
		held = held[1:]
		p := recvAs[*packet.Publish](sub)
		if p.Payload[0] != byte('0'+i) {
			t.Fatalf("got %q, want message %d", p.Payload, i)
		}
		held = append(held, p)
		sub.expectNothing(20 * time.Millisecond)
	}
}

// TestConformanceAcksRespectMaximumPacketSize connects with Maximum Packet
// Size 24 and provokes every kind of packet the broker sends, some with a
// Reason String it would like to add: none exceeds 24 bytes, and CONNACK
// carries no User Property.
// [MQTT-3.2.2-20] [MQTT-3.4.2-2] [MQTT-3.4.2-3] [MQTT-3.5.2-2] [MQTT-3.5.2-3]
// [MQTT-3.6.2-2] [MQTT-3.6.2-3] [MQTT-3.7.2-2] [MQTT-3.7.2-3] [MQTT-3.9.2-1]
// [MQTT-3.9.2-2] [MQTT-3.11.2-1] [MQTT-3.11.2-2] [MQTT-3.14.2-3]
// [MQTT-3.14.2-4] [MQTT-3.15.2-2] [MQTT-3.15.2-3] [MQTT-3.1.2-24]
func TestConformanceAcksRespectMaximumPacketSize(t *testing.T) {
	const max = 24
	b := newTestBroker(t, Config{Authenticator: cfAuth{}})
	c := newTClient(t, b, packet.V5)
	recv := func() packet.Packet {
		t.Helper()
		size, p := cfRecvRaw(c)
		if size > max {
			t.Fatalf("%s of %d bytes to a client with Maximum Packet Size %d: %+v", p.Type(), size, max, p)
		}
		return p
	}
	cp := &packet.Connect{ClientID: "small", CleanStart: true}
	cp.Props.MaximumPacketSize = max
	c.send(cp)
	if ack, ok := recv().(*packet.Connack); !ok || ack.ReasonCode != packet.Success || ack.Props.Has(packet.PropUser) {
		t.Fatalf("CONNACK %+v", ack)
	}
	c.send(&packet.Publish{Topic: "$SYS/x", QoS: 1, PacketID: 1, Payload: []byte("x")})
	recv() // PUBACK 0x87
	c.send(&packet.Publish{Topic: "$SYS/x", QoS: 2, PacketID: 2, Payload: []byte("x")})
	recv() // PUBREC 0x87
	c.send(&packet.Pubrel{PacketID: 9})
	recv() // PUBCOMP 0x92
	c.send(&packet.Subscribe{PacketID: 3, Subscriptions: []packet.Subscription{{Filter: "s", QoS: 2}, {Filter: "a/#/b"}}})
	recv() // SUBACK
	other := dial(t, b, packet.V5, "other")
	other.publish(&packet.Publish{Topic: "s", QoS: 2, PacketID: 1, Payload: []byte("x")})
	p, ok := recv().(*packet.Publish)
	if !ok {
		t.Fatal("no PUBLISH")
	}
	c.send(&packet.Pubrec{PacketID: p.PacketID})
	recv() // PUBREL
	c.send(&packet.Pubcomp{PacketID: p.PacketID})
	c.send(&packet.Unsubscribe{PacketID: 4, Filters: []string{"none"}})
	recv() // UNSUBACK 0x11
	c.send(&packet.Pingreq{})
	recv()
	// A protocol error: the broker would explain it in a Reason String.
	bad := &packet.Publish{Topic: "x", Payload: []byte("x")}
	bad.Props.SubscriptionIDs = []uint32{1}
	c.send(bad)
	if d, ok := recv().(*packet.Disconnect); !ok || d.ReasonCode != packet.ProtocolError {
		t.Fatalf("got %+v, want DISCONNECT 0x82", d)
	}
	c.expectClosed()

	// AUTH packets of an enhanced authentication exchange (a larger
	// maximum: the successful CONNACK carries the method and data).
	const authMax = 40
	a := newTClient(t, b, packet.V5)
	cp = &packet.Connect{ClientID: "auth", CleanStart: true}
	cp.Props.MaximumPacketSize = authMax
	cp.Props.AuthMethod = cfAuthMethod
	a.send(cp)
	for _, want := range []packet.Type{packet.AUTH, packet.CONNACK} {
		size, p := cfRecvRaw(a)
		if p.Type() != want || size > authMax {
			t.Fatalf("got %s of %d bytes, want %s of at most %d", p.Type(), size, want, authMax)
		}
		if want == packet.AUTH {
			resp := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
			resp.Props.AuthMethod = cfAuthMethod
			resp.Props.AuthData = []byte("answer")
			a.send(resp)
		}
	}
}
