package broker

// Conformance tests of message delivery across connections: retransmission
// on resume only, QoS 2 state, refused acknowledgements, message expiry.

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// TestConformanceNoResendOnLiveConnection leaves a QoS 1 and a QoS 2
// message unacknowledged for ten minutes on a live connection: nothing is
// re-sent. On resume both are re-sent with DUP 1 and their identifiers;
// once acknowledged they are not sent again.
// [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.3.2-3] [MQTT-4.3.3-3]
func TestConformanceNoResendOnLiveConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		b := newTestBroker(t, Config{})
		sub := newTClient(t, b, packet.V5)
		sub.connect(cfPersist("nr", 3600, true))
		sub.subscribe(1, packet.Subscription{Filter: "nr", QoS: 2})
		pub := dial(t, b, packet.V5, "pub")
		pub.publish(&packet.Publish{Topic: "nr", QoS: 1, PacketID: 1, Payload: []byte("one")})
		pub.publish(&packet.Publish{Topic: "nr", QoS: 2, PacketID: 2, Payload: []byte("two")})
		first := []*packet.Publish{recvAs[*packet.Publish](sub), recvAs[*packet.Publish](sub)}
		sub.expectNothing(10 * time.Minute)
		sub.nc.Close()
		synctest.Wait()

		sub2 := newTClient(t, b, packet.V5)
		if ack := sub2.connect(cfPersist("nr", 3600, false)); !ack.SessionPresent {
			t.Fatal("session not present")
		}
		for _, f := range first {
			re := recvAs[*packet.Publish](sub2)
			if !re.Dup || re.PacketID != f.PacketID || re.QoS != f.QoS || string(re.Payload) != string(f.Payload) {
				t.Fatalf("retransmission %+v of %+v", re, f)
			}
			cfComplete(sub2, re)
		}
		sub2.expectNothing(time.Minute)
		sub2.nc.Close()
		synctest.Wait()
		sub3 := newTClient(t, b, packet.V5)
		sub3.connect(cfPersist("nr", 3600, false))
		sub3.expectNothing(time.Minute)
	})
}

// TestConformanceQoS2ResumeSendsPubrel resumes a session with one QoS 2
// message past PUBREC and one before it: the first gets its PUBREL again
// (not the PUBLISH), the second its PUBLISH with DUP 1.
// [MQTT-4.3.3-3] [MQTT-4.3.3-5] [MQTT-4.3.3-6] [MQTT-4.4.0-1]
func TestConformanceQoS2ResumeSendsPubrel(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := newTClient(t, b, packet.V5)
	sub.connect(cfPersist("q2", 300, true))
	sub.subscribe(1, packet.Subscription{Filter: "q2", QoS: 2})
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "q2", QoS: 2, PacketID: 1, Payload: []byte("A")})
	pub.publish(&packet.Publish{Topic: "q2", QoS: 2, PacketID: 2, Payload: []byte("B")})
	a := recvAs[*packet.Publish](sub)
	bp := recvAs[*packet.Publish](sub)
	sub.send(&packet.Pubrec{PacketID: a.PacketID})
	if rel := recvAs[*packet.Pubrel](sub); rel.PacketID != a.PacketID {
		t.Fatalf("PUBREL %+v", rel)
	}
	cfDrop(t, b, sub, "q2")

	sub2 := newTClient(t, b, packet.V5)
	if ack := sub2.connect(cfPersist("q2", 300, false)); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	var sawRel, sawPub bool
	for range 2 {
		switch p := sub2.recv().(type) {
		case *packet.Pubrel:
			if p.PacketID != a.PacketID || sawRel {
				t.Fatalf("PUBREL %+v", p)
			}
			sawRel = true
		case *packet.Publish:
			if string(p.Payload) == "A" {
				t.Fatal("PUBLISH re-sent after its PUBREL was sent")
			}
			if !p.Dup || p.PacketID != bp.PacketID || sawPub {
				t.Fatalf("retransmission %+v of %+v", p, bp)
			}
			sawPub = true
		default:
			t.Fatalf("got %s", p.Type())
		}
	}
	sub2.send(&packet.Pubcomp{PacketID: a.PacketID})
	cfComplete(sub2, bp)
	sub2.expectNothing(50 * time.Millisecond)
	cfDrop(t, b, sub2, "q2")
	sub3 := newTClient(t, b, packet.V5)
	sub3.connect(cfPersist("q2", 300, false))
	sub3.expectNothing(50 * time.Millisecond)
}

// TestConformanceRefusedAckNotRetransmitted answers a QoS 1 PUBLISH with
// PUBACK 0x80 and a QoS 2 one with PUBREC 0x80: no PUBREL follows, and
// neither is re-sent on resume. [MQTT-4.4.0-2] [MQTT-4.3.3-4]
func TestConformanceRefusedAckNotRetransmitted(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := newTClient(t, b, packet.V5)
	sub.connect(cfPersist("ra", 300, true))
	sub.subscribe(1, packet.Subscription{Filter: "ra", QoS: 2})
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "ra", QoS: 1, PacketID: 1, Payload: []byte("one")})
	pub.publish(&packet.Publish{Topic: "ra", QoS: 2, PacketID: 2, Payload: []byte("two")})
	p1 := recvAs[*packet.Publish](sub)
	p2 := recvAs[*packet.Publish](sub)
	sub.send(&packet.Puback{PacketID: p1.PacketID, ReasonCode: packet.UnspecifiedError})
	sub.send(&packet.Pubrec{PacketID: p2.PacketID, ReasonCode: packet.UnspecifiedError})
	sub.expectNothing(50 * time.Millisecond)
	cfDrop(t, b, sub, "ra")
	sub2 := newTClient(t, b, packet.V5)
	if ack := sub2.connect(cfPersist("ra", 300, false)); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	sub2.expectNothing(50 * time.Millisecond)
}

// TestConformanceMessageExpiryNotAppliedAfterSend sends a QoS 1 and a QoS 2
// message with a 5 s Message Expiry Interval to a subscriber that
// disconnects without acknowledging and comes back after 10 s: onward
// delivery had started (the PUBLISH was sent), so the message must not
// expire; it is re-sent with its identifier. [MQTT-4.3.3-7] [MQTT-4.4.0-1]
// [MQTT-3.3.2-5]
func TestConformanceMessageExpiryNotAppliedAfterSend(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(string('0'+qos), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				defer setRecvTimeout(time.Hour)()
				b := newTestBroker(t, Config{})
				sub := newTClient(t, b, packet.V5)
				sub.connect(cfPersist("me", 300, true))
				sub.subscribe(1, packet.Subscription{Filter: "me", QoS: 2})
				pub := dial(t, b, packet.V5, "pub")
				p := &packet.Publish{Topic: "me", QoS: qos, PacketID: 1, Payload: []byte("x")}
				p.Props.MessageExpiry = 5
				pub.publish(p)
				first := recvAs[*packet.Publish](sub)
				sub.nc.Close()
				synctest.Wait()
				time.Sleep(10 * time.Second)
				sub2 := newTClient(t, b, packet.V5)
				sub2.connect(cfPersist("me", 300, false))
				got, err := sub2.tryRecv(time.Minute)
				if err != nil {
					t.Fatalf("QoS %d PUBLISH already sent was dropped at expiry instead of re-sent: %v", qos, err)
				}
				if re, ok := got.(*packet.Publish); !ok || re.PacketID != first.PacketID || !re.Dup {
					t.Fatalf("got %+v, want the PUBLISH re-sent with DUP", got)
				}
			})
		})
	}
}
