package broker

import (
	"bytes"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

var bothVersions = []packet.Version{packet.V5, packet.V311}

func TestConnectConnack(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			c := newTClient(t, b, v)
			ack := c.connect(&packet.Connect{ClientID: "c1", CleanStart: true, KeepAlive: 30})
			if ack.SessionPresent {
				t.Fatal("session present on clean start") // [MQTT-3.2.2-2]
			}
			if v == packet.V5 {
				p := &ack.Props
				if p.ReceiveMaximum != 1024 || p.MaximumPacketSize != 1<<20 || p.TopicAliasMaximum != 64 {
					t.Fatalf("CONNACK properties %+v", p)
				}
				if p.Has(packet.PropMaximumQoS) || p.Has(packet.PropRetainAvailable) {
					t.Fatalf("defaults must not be sent: %+v", p)
				}
			}
			c.disconnect()
		})
	}
}

func TestAssignedClientID(t *testing.T) {
	b := newTestBroker(t, Config{})
	c := newTClient(t, b, packet.V5)
	ack := c.connect(&packet.Connect{CleanStart: true})
	if ack.Props.AssignedClientID == "" { // [MQTT-3.2.2-16]
		t.Fatal("no Assigned Client Identifier")
	}
	c2 := newTClient(t, b, packet.V5)
	ack2 := c2.connect(&packet.Connect{CleanStart: true})
	if ack2.Props.AssignedClientID == ack.Props.AssignedClientID {
		t.Fatal("assigned identifier reused")
	}
	// 3.1.1: empty id with clean session is accepted, without it refused.
	c3 := newTClient(t, b, packet.V311)
	c3.connect(&packet.Connect{CleanStart: true})
	c4 := newTClient(t, b, packet.V311)
	if ack := c4.connectRaw(&packet.Connect{}); ack.ReasonCode != packet.V3IdentifierRejected {
		t.Fatalf("3.1.1 empty id without clean session: %v", ack.ReasonCode) // [MQTT-3.1.3-8]
	}
	c4.expectClosed()
}

func TestUnsupportedProtocolVersion(t *testing.T) {
	b := newTestBroker(t, Config{})
	for _, tc := range []struct {
		name  string
		bytes []byte
		want  []byte
	}{
		// MQTT 3.1 (MQIsdp, level 3) gets the 3.1.1-style refusal 0x01.
		{"mqtt31", []byte{0x10, 0x0e, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 60, 0, 0}, []byte{0x20, 2, 0, 1}},
		// Level 6 with name MQTT: 0x01 in 3.1.1 form [MQTT-3.1.2-2].
		{"level6", []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 60, 0, 0}, []byte{0x20, 2, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTClient(t, b, packet.V311)
			c.sendRaw(tc.bytes)
			got := make([]byte, len(tc.want))
			c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.nc.Read(got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got % x, want % x", got, tc.want)
			}
			c.expectClosed()
		})
	}
}

func TestFirstPacketMustBeConnect(t *testing.T) {
	b := newTestBroker(t, Config{})
	c := newTClient(t, b, packet.V5)
	c.send(&packet.Pingreq{}) // [MQTT-3.1.0-1]
	c.expectClosed()
}

func TestSecondConnectIsProtocolError(t *testing.T) {
	b := newTestBroker(t, Config{})
	c := dial(t, b, packet.V5, "c")
	c.send(&packet.Connect{ClientID: "c", Version: packet.V5}) // [MQTT-3.1.0-2]
	d := recvAs[*packet.Disconnect](c)
	if d.ReasonCode != packet.ProtocolError {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
	c.expectClosed()
}

func TestPublishSubscribeQoS(t *testing.T) {
	for _, v := range bothVersions {
		for qos := byte(0); qos <= 2; qos++ {
			t.Run(v.String()+"/qos"+string('0'+qos), func(t *testing.T) {
				b := newTestBroker(t, Config{})
				sub := dial(t, b, v, "sub")
				if ack := sub.subscribe(1, packet.Subscription{Filter: "a/+/c", QoS: 2}); ack.ReasonCodes[0] != 2 {
					t.Fatalf("SUBACK %v", ack.ReasonCodes)
				}
				pub := dial(t, b, v, "pub")
				pid := uint16(qos) * 7 // 0 for QoS 0 [MQTT-2.2.1-2]
				pub.publish(&packet.Publish{Topic: "a/b/c", QoS: qos, PacketID: pid, Payload: []byte("hello")})
				got := recvAs[*packet.Publish](sub)
				if got.Topic != "a/b/c" || string(got.Payload) != "hello" || got.QoS != qos || got.Retain {
					t.Fatalf("got %+v", got)
				}
				switch qos {
				case 1:
					sub.send(&packet.Puback{PacketID: got.PacketID})
				case 2:
					sub.send(&packet.Pubrec{PacketID: got.PacketID})
					if rel := recvAs[*packet.Pubrel](sub); rel.PacketID != got.PacketID {
						t.Fatalf("PUBREL %+v", rel)
					}
					sub.send(&packet.Pubcomp{PacketID: got.PacketID})
				}
				pub.publish(&packet.Publish{Topic: "a/b/d", QoS: qos, PacketID: pid, Payload: []byte("no")})
				sub.expectNothing(50 * time.Millisecond)
			})
		}
	}
}

func TestQoS2DuplicateNotRoutedTwice(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 0})
	pub := dial(t, b, packet.V5, "pub")
	pub.send(&packet.Publish{Topic: "t", QoS: 2, PacketID: 5, Payload: []byte("x")})
	recvAs[*packet.Pubrec](pub)
	// Retransmission before PUBREL: acknowledged again, not delivered again [MQTT-4.3.3-9].
	pub.send(&packet.Publish{Topic: "t", QoS: 2, PacketID: 5, Dup: true, Payload: []byte("x")})
	recvAs[*packet.Pubrec](pub)
	pub.send(&packet.Pubrel{PacketID: 5})
	recvAs[*packet.Pubcomp](pub)
	recvAs[*packet.Publish](sub)
	sub.expectNothing(50 * time.Millisecond)
	// PUBREL for an unknown id: PUBCOMP 0x92.
	pub.send(&packet.Pubrel{PacketID: 9})
	if c := recvAs[*packet.Pubcomp](pub); c.ReasonCode != packet.PacketIdentifierNotFound {
		t.Fatalf("PUBCOMP %v", c.ReasonCode)
	}
}

func TestOverlappingSubscriptionsOneCopy(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := dial(t, b, packet.V5, "sub")
	s1 := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a/+", QoS: 0}}}
	s1.Props.SubscriptionIDs = []uint32{1}
	sub.send(s1)
	recvAs[*packet.Suback](sub)
	s2 := &packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{{Filter: "a/#", QoS: 1}}}
	s2.Props.SubscriptionIDs = []uint32{2}
	sub.send(s2)
	recvAs[*packet.Suback](sub)
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "a/b", QoS: 2, PacketID: 1, Payload: []byte("x")})
	got := recvAs[*packet.Publish](sub)
	ids := slices.Clone(got.Props.SubscriptionIDs)
	slices.Sort(ids)
	if got.QoS != 1 || !slices.Equal(ids, []uint32{1, 2}) { // [MQTT-3.3.4-3] [MQTT-3.3.4-5]
		t.Fatalf("got QoS %d ids %v", got.QoS, ids)
	}
	sub.send(&packet.Puback{PacketID: got.PacketID})
	sub.expectNothing(50 * time.Millisecond)
}

func TestRetained(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			pub := dial(t, b, v, "pub")
			pub.publish(&packet.Publish{Topic: "r/1", Retain: true, QoS: 1, PacketID: 1, Payload: []byte("one")})
			pub.publish(&packet.Publish{Topic: "r/1", Retain: true, QoS: 1, PacketID: 2, Payload: []byte("uno")}) // [MQTT-3.3.1-5] replaces
			pub.publish(&packet.Publish{Topic: "r/2", Retain: true, Payload: []byte("two")})
			pub.publish(&packet.Publish{Topic: "r/2", Retain: true, Payload: nil})      // [MQTT-3.3.1-6] deletes
			pub.publish(&packet.Publish{Topic: "r/3", Payload: []byte("not retained")}) // [MQTT-3.3.1-8]
			pub.sync()
			sub := dial(t, b, v, "sub")
			sub.subscribe(1, packet.Subscription{Filter: "r/#", QoS: 0})
			got := recvAs[*packet.Publish](sub)
			if got.Topic != "r/1" || string(got.Payload) != "uno" || !got.Retain { // [MQTT-3.3.1-9]
				t.Fatalf("got %+v", got)
			}
			sub.expectNothing(50 * time.Millisecond)
			// A live message is forwarded with RETAIN 0 [MQTT-3.3.1-12].
			pub.publish(&packet.Publish{Topic: "r/1", Retain: true, Payload: []byte("live")})
			if got := recvAs[*packet.Publish](sub); got.Retain || string(got.Payload) != "live" {
				t.Fatalf("live %+v", got)
			}
		})
	}
}

func TestRetainHandling(t *testing.T) {
	b := newTestBroker(t, Config{})
	pub := dial(t, b, packet.V5, "pub")
	// QoS 1: PUBACK tells that the message is routed and retained before
	// anyone subscribes.
	pub.publish(&packet.Publish{Topic: "r", Retain: true, QoS: 1, PacketID: 1, Payload: []byte("v")})
	sub := dial(t, b, packet.V5, "sub")
	// RH 2: never [MQTT-3.3.1-11].
	sub.subscribe(1, packet.Subscription{Filter: "r", RetainHandling: 2})
	sub.expectNothing(50 * time.Millisecond)
	sub2 := dial(t, b, packet.V5, "sub2")
	// RH 1: only when the subscription is new [MQTT-3.3.1-10].
	sub2.subscribe(1, packet.Subscription{Filter: "r", RetainHandling: 1})
	recvAs[*packet.Publish](sub2)
	sub2.subscribe(2, packet.Subscription{Filter: "r", RetainHandling: 1})
	sub2.expectNothing(50 * time.Millisecond)
	// RH 0: every time.
	sub2.subscribe(3, packet.Subscription{Filter: "r", RetainHandling: 0})
	recvAs[*packet.Publish](sub2)
	// Retain As Published keeps RETAIN on live messages [MQTT-3.3.1-13].
	sub3 := dial(t, b, packet.V5, "sub3")
	sub3.subscribe(1, packet.Subscription{Filter: "r", RetainHandling: 2, RetainAsPublished: true})
	pub.publish(&packet.Publish{Topic: "r", Retain: true, Payload: []byte("w")})
	if got := recvAs[*packet.Publish](sub3); !got.Retain {
		t.Fatal("RAP: retain flag cleared")
	}
}

func TestNoLocal(t *testing.T) {
	b := newTestBroker(t, Config{})
	c := dial(t, b, packet.V5, "self")
	c.subscribe(1, packet.Subscription{Filter: "t", NoLocal: true})
	c.publish(&packet.Publish{Topic: "t", Payload: []byte("x")})
	c.expectNothing(50 * time.Millisecond) // [MQTT-3.8.3-3]
	// No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
	c.send(&packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{{Filter: "$share/g/t", NoLocal: true}}})
	if d := recvAs[*packet.Disconnect](c); d.ReasonCode != packet.ProtocolError {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
}

func TestSysTopicsNotMatchedByWildcardAndNotPublishable(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "#"})
	pub := dial(t, b, packet.V5, "pub")
	pub.send(&packet.Publish{Topic: "$SYS/x", QoS: 1, PacketID: 3, Payload: []byte("evil")})
	if a := recvAs[*packet.Puback](pub); a.ReasonCode != packet.NotAuthorized {
		t.Fatalf("PUBACK %v", a.ReasonCode)
	}
	b.Publish(t.Context(), &Message{Topic: "$SYS/y", Payload: []byte("sys")})
	sub.expectNothing(50 * time.Millisecond) // [MQTT-4.7.2-1]
}

func TestSharedSubscriptionRoundRobin(t *testing.T) {
	b := newTestBroker(t, Config{})
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "s/1", Retain: true, Payload: []byte("r")})
	pub.sync()
	a := dial(t, b, packet.V5, "a")
	a.subscribe(1, packet.Subscription{Filter: "$share/g/s/+", QoS: 1})
	c := dial(t, b, packet.V5, "c")
	c.subscribe(1, packet.Subscription{Filter: "$share/g/s/+", QoS: 1})
	a.expectNothing(20 * time.Millisecond) // no retained on shared subscriptions
	for i := range 4 {
		pub.publish(&packet.Publish{Topic: "s/1", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{byte(i)}})
	}
	count := map[string]int{}
	for _, cl := range []*tclient{a, c} {
		for range 2 {
			p := recvAs[*packet.Publish](cl)
			cl.send(&packet.Puback{PacketID: p.PacketID})
			count[string(p.Payload)]++
		}
		cl.expectNothing(20 * time.Millisecond)
	}
	if len(count) != 4 {
		t.Fatalf("deliveries %v", count)
	}
}

func TestTopicAliasInbound(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "long/topic"})
	pub := dial(t, b, packet.V5, "pub")
	p := &packet.Publish{Topic: "long/topic", Payload: []byte("1")}
	p.Props.TopicAlias = 3
	pub.publish(p)
	p2 := &packet.Publish{Payload: []byte("2")}
	p2.Props.TopicAlias = 3
	pub.publish(p2)
	for _, want := range []string{"1", "2"} {
		got := recvAs[*packet.Publish](sub)
		if got.Topic != "long/topic" || string(got.Payload) != want || got.Props.TopicAlias != 0 {
			t.Fatalf("got %+v", got)
		}
	}
	// An alias above the maximum is a Topic Alias Invalid DISCONNECT [MQTT-3.3.2-9].
	p3 := &packet.Publish{Topic: "x", Payload: []byte("3")}
	p3.Props.TopicAlias = 65
	pub.send(p3)
	if d := recvAs[*packet.Disconnect](pub); d.ReasonCode != packet.TopicAliasInvalid {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
}

func TestSubscriptionIdentifierFromClientIsProtocolError(t *testing.T) {
	b := newTestBroker(t, Config{})
	pub := dial(t, b, packet.V5, "pub")
	p := &packet.Publish{Topic: "x", Payload: []byte("3")}
	p.Props.SubscriptionIDs = []uint32{4}
	pub.send(p) // [MQTT-3.3.4-6]
	if d := recvAs[*packet.Disconnect](pub); d.ReasonCode != packet.ProtocolError {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
}

func TestSessionTakeover(t *testing.T) {
	b := newTestBroker(t, Config{})
	old := dial(t, b, packet.V5, "same")
	nc := newTClient(t, b, packet.V5)
	nc.connect(&packet.Connect{ClientID: "same"})
	if d := recvAs[*packet.Disconnect](old); d.ReasonCode != packet.SessionTakenOver { // [MQTT-3.1.4-3]
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
	old.expectClosed()
}

func TestSessionResumeQueuesAndRedelivers(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			sub := newTClient(t, b, v)
			// v5: clean start with an expiry; 3.1.1: clean session 0.
			cp := &packet.Connect{ClientID: "s", CleanStart: v == packet.V5}
			cp.Props.SessionExpiry = 300
			sub.connect(cp)
			sub.subscribe(1, packet.Subscription{Filter: "q", QoS: 1})
			pub := dial(t, b, v, "pub")
			pub.publish(&packet.Publish{Topic: "q", QoS: 1, PacketID: 1, Payload: []byte("a")})
			first := recvAs[*packet.Publish](sub)
			// Disconnect without acknowledging; publish more while offline.
			sub.nc.Close()
			pollUntil(t, func() bool { return b.Stats().Connections == 1 })
			pub.publish(&packet.Publish{Topic: "q", QoS: 1, PacketID: 2, Payload: []byte("b")})
			sub2 := newTClient(t, b, v)
			cp2 := &packet.Connect{ClientID: "s"}
			cp2.Props.SessionExpiry = 300
			if ack := sub2.connect(cp2); !ack.SessionPresent { // [MQTT-3.2.2-3]
				t.Fatal("session not present")
			}
			re := recvAs[*packet.Publish](sub2)
			if !re.Dup || re.PacketID != first.PacketID || string(re.Payload) != "a" { // [MQTT-4.4.0-1]
				t.Fatalf("redelivery %+v", re)
			}
			sub2.send(&packet.Puback{PacketID: re.PacketID})
			next := recvAs[*packet.Publish](sub2)
			if next.Dup || string(next.Payload) != "b" {
				t.Fatalf("queued %+v", next)
			}
		})
	}
}

func TestWill(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			sub := dial(t, b, v, "sub")
			sub.subscribe(1, packet.Subscription{Filter: "will/#", QoS: 1})
			// Abnormal close publishes the will.
			c := newTClient(t, b, v)
			w := &packet.Will{Topic: "will/a", Payload: []byte("gone"), QoS: 1}
			if v == packet.V5 {
				w.Props.ContentType = "text/plain"
			}
			c.connect(&packet.Connect{ClientID: "w", CleanStart: true, Will: w})
			c.nc.Close()
			got := recvAs[*packet.Publish](sub)
			if got.Topic != "will/a" || string(got.Payload) != "gone" || (v == packet.V5 && got.Props.ContentType != "text/plain") {
				t.Fatalf("will %+v", got)
			}
			sub.send(&packet.Puback{PacketID: got.PacketID})
			// Normal DISCONNECT discards it [MQTT-3.1.2-10].
			c2 := newTClient(t, b, v)
			c2.connect(&packet.Connect{ClientID: "w2", CleanStart: true, Will: &packet.Will{Topic: "will/b", Payload: []byte("x")}})
			c2.disconnect()
			sub.expectNothing(50 * time.Millisecond)
			if v == packet.V5 {
				// DISCONNECT 0x04 publishes it.
				c3 := newTClient(t, b, v)
				c3.connect(&packet.Connect{ClientID: "w3", CleanStart: true, Will: &packet.Will{Topic: "will/c", Payload: []byte("y")}})
				c3.send(&packet.Disconnect{ReasonCode: packet.DisconnectWithWillMessage})
				if got := recvAs[*packet.Publish](sub); got.Topic != "will/c" {
					t.Fatalf("will %+v", got)
				}
			}
		})
	}
}

func TestWillDelayAndSessionExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		b := newTestBroker(t, Config{})
		sub := dial(t, b, packet.V5, "sub")
		sub.subscribe(1, packet.Subscription{Filter: "will"})
		c := newTClient(t, b, packet.V5)
		w := &packet.Will{Topic: "will", Payload: []byte("late")}
		w.Props.WillDelay = 10
		cp := &packet.Connect{ClientID: "w", CleanStart: true, Will: w}
		cp.Props.SessionExpiry = 60
		c.connect(cp)
		c.nc.Close()
		start := time.Now()
		got := recvAs[*packet.Publish](sub)
		if el := time.Since(start); el != 10*time.Second || string(got.Payload) != "late" {
			t.Fatalf("will after %v: %+v", el, got)
		}
		// Reconnecting before the delay cancels the will [MQTT-3.1.3-9].
		c2 := newTClient(t, b, packet.V5)
		c2.connect(cp)
		c2.nc.Close()
		synctest.Wait()
		c3 := newTClient(t, b, packet.V5)
		cp3 := &packet.Connect{ClientID: "w"}
		cp3.Props.SessionExpiry = 60
		if ack := c3.connect(cp3); !ack.SessionPresent {
			t.Fatal("session gone")
		}
		sub.expectNothing(20 * time.Second)
		// Session expiry shorter than the will delay: will at expiry.
		c3.nc.Close()
		c4 := newTClient(t, b, packet.V5)
		w4 := &packet.Will{Topic: "will", Payload: []byte("expired")}
		w4.Props.WillDelay = 100
		cp4 := &packet.Connect{ClientID: "w4", CleanStart: true, Will: w4}
		cp4.Props.SessionExpiry = 5
		c4.connect(cp4)
		c4.nc.Close()
		start = time.Now()
		got = recvAs[*packet.Publish](sub)
		if el := time.Since(start); el != 5*time.Second || string(got.Payload) != "expired" {
			t.Fatalf("will after %v: %+v", el, got)
		}
		pollUntil(t, func() bool { return b.Stats().Sessions == 2 }) // sub and w
	})
}

func TestKeepAliveTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		b := newTestBroker(t, Config{})
		sub := dial(t, b, packet.V5, "sub")
		sub.subscribe(1, packet.Subscription{Filter: "will"})
		c := newTClient(t, b, packet.V5)
		start := time.Now()
		c.connect(&packet.Connect{ClientID: "k", CleanStart: true, KeepAlive: 10, Will: &packet.Will{Topic: "will", Payload: []byte("ka")}})
		// [MQTT-3.1.2-22] disconnected after 1.5 x keep alive of silence.
		if d := recvAs[*packet.Disconnect](c); d.ReasonCode != packet.KeepAliveTimeout {
			t.Fatalf("DISCONNECT %v", d.ReasonCode)
		}
		if el := time.Since(start); el != 15*time.Second {
			t.Fatalf("after %v", el)
		}
		recvAs[*packet.Publish](sub)
	})
}

func TestMessageExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		b := newTestBroker(t, Config{})
		sub := newTClient(t, b, packet.V5)
		cp := &packet.Connect{ClientID: "s", CleanStart: true}
		cp.Props.SessionExpiry = 600
		sub.connect(cp)
		sub.subscribe(1, packet.Subscription{Filter: "e/#", QoS: 1})
		sub.disconnect()
		pub := dial(t, b, packet.V5, "pub")
		short := &packet.Publish{Topic: "e/short", QoS: 1, PacketID: 1, Payload: []byte("s")}
		short.Props.MessageExpiry = 5
		pub.publish(short)
		long := &packet.Publish{Topic: "e/long", QoS: 1, PacketID: 2, Payload: []byte("l")}
		long.Props.MessageExpiry = 60
		pub.publish(long)
		time.Sleep(10 * time.Second) // fake time
		sub2 := newTClient(t, b, packet.V5)
		cp.CleanStart = false
		sub2.connect(cp)
		got := recvAs[*packet.Publish](sub2)
		// The short one expired [MQTT-3.3.2-5]; the long one has 50 s left [MQTT-3.3.2-6].
		if got.Topic != "e/long" || got.Props.MessageExpiry != 50 {
			t.Fatalf("got %s expiry %d", got.Topic, got.Props.MessageExpiry)
		}
	})
}

func TestDisconnectSessionExpiryFromZeroIsProtocolError(t *testing.T) {
	b := newTestBroker(t, Config{})
	c := dial(t, b, packet.V5, "c")
	d := &packet.Disconnect{}
	d.Props.SessionExpiry = 30
	c.send(d) // [MQTT-3.14.2-2]
	if got := recvAs[*packet.Disconnect](c); got.ReasonCode != packet.ProtocolError {
		t.Fatalf("DISCONNECT %v", got.ReasonCode)
	}
}

func TestReceiveMaximumExceeded(t *testing.T) {
	b := newTestBroker(t, Config{Capabilities: Capabilities{ReceiveMaximum: 2}})
	c := dial(t, b, packet.V5, "c")
	for i := uint16(1); i <= 2; i++ {
		c.send(&packet.Publish{Topic: "t", QoS: 2, PacketID: i, Payload: []byte("x")})
		recvAs[*packet.Pubrec](c)
	}
	c.send(&packet.Publish{Topic: "t", QoS: 2, PacketID: 3, Payload: []byte("x")}) // [MQTT-3.3.4-9]
	if d := recvAs[*packet.Disconnect](c); d.ReasonCode != packet.ReceiveMaximumExceeded {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
}

func TestOutboundReceiveMaximumAndPacketSize(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "s", CleanStart: true}
	cp.Props.ReceiveMaximum = 1
	cp.Props.MaximumPacketSize = 64
	sub.connect(cp)
	sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 1})
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "t", QoS: 1, PacketID: 1, Payload: bytes.Repeat([]byte("x"), 100)}) // too large: dropped [MQTT-3.1.2-24]
	pub.publish(&packet.Publish{Topic: "t", QoS: 1, PacketID: 2, Payload: []byte("1")})
	pub.publish(&packet.Publish{Topic: "t", QoS: 1, PacketID: 3, Payload: []byte("2")})
	first := recvAs[*packet.Publish](sub)
	if string(first.Payload) != "1" {
		t.Fatalf("first %q", first.Payload)
	}
	sub.expectNothing(50 * time.Millisecond) // window of 1 [MQTT-4.9.0-2]
	sub.send(&packet.Puback{PacketID: first.PacketID})
	if second := recvAs[*packet.Publish](sub); string(second.Payload) != "2" {
		t.Fatalf("second %q", second.Payload)
	}
	if got := b.Stats().Dropped["too_large"]; got != 1 {
		t.Fatalf("too_large drops %d", got)
	}
}

func TestInboundPacketTooLarge(t *testing.T) {
	b := newTestBroker(t, Config{Capabilities: Capabilities{MaximumPacketSize: 128}})
	c := dial(t, b, packet.V5, "c")
	c.send(&packet.Publish{Topic: "t", Payload: bytes.Repeat([]byte("x"), 200)})
	if d := recvAs[*packet.Disconnect](c); d.ReasonCode != packet.PacketTooLarge {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
}

func TestCrossVersion(t *testing.T) {
	b := newTestBroker(t, Config{})
	s3 := dial(t, b, packet.V311, "s3")
	s3.subscribe(1, packet.Subscription{Filter: "x"})
	s5 := dial(t, b, packet.V5, "s5")
	s5.subscribe(1, packet.Subscription{Filter: "x"})
	p5 := dial(t, b, packet.V5, "p5")
	p := &packet.Publish{Topic: "x", Payload: []byte("v5")}
	p.Props.User = []packet.UserProperty{{Key: "k", Value: "v"}}
	p.Props.ContentType = "c"
	p5.publish(p)
	if got := recvAs[*packet.Publish](s3); string(got.Payload) != "v5" {
		t.Fatalf("3.1.1 got %+v", got)
	}
	if got := recvAs[*packet.Publish](s5); got.Props.ContentType != "c" || len(got.Props.User) != 1 {
		t.Fatalf("v5 got %+v", got)
	}
	p3 := dial(t, b, packet.V311, "p3")
	p3.publish(&packet.Publish{Topic: "x", Payload: []byte("v3")})
	if got := recvAs[*packet.Publish](s5); string(got.Payload) != "v3" {
		t.Fatalf("v5 got %+v", got)
	}
	recvAs[*packet.Publish](s3)
}

func TestShutdownSendsServerShuttingDown(t *testing.T) {
	b := New(Config{SysInterval: -1})
	c := dial(t, b, packet.V5, "c")
	done := make(chan error)
	go func() { done <- b.Shutdown(t.Context()) }()
	if d := recvAs[*packet.Disconnect](c); d.ReasonCode != packet.ServerShuttingDown {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
	c.expectClosed()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// pollUntil waits for cond, failing after 5 s.
func pollUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
}

// setRecvTimeout changes recvTimeout for tests on fake time and returns a
// function restoring it. Such tests must not run in parallel.
func setRecvTimeout(d time.Duration) func() {
	old := recvTimeout
	recvTimeout = d
	return func() { recvTimeout = old }
}
