package broker

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// Over the inbound rate, a v5 client's QoS 1/2 messages are refused with
// Quota Exceeded and its QoS 0 messages dropped; neither is routed. The
// bucket refills with time.
func TestRateLimitInboundV5(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, Config{RateLimits: RateLimits{InboundMessages: 1, InboundMessagesBurst: 2}})
		sub := dial(t, b, packet.V5, "sub")
		sub.subscribe(1, packet.Subscription{Filter: "#", QoS: 2})
		pub := dial(t, b, packet.V5, "pub")
		ack := func(id uint16, qos byte) packet.ReasonCode {
			pub.send(&packet.Publish{Topic: "t", QoS: qos, PacketID: id, Payload: []byte{byte(id)}})
			if qos == 2 {
				return recvAs[*packet.Pubrec](pub).ReasonCode
			}
			return recvAs[*packet.Puback](pub).ReasonCode
		}
		if rc := ack(1, 1); rc != packet.Success {
			t.Fatalf("1st: %v", rc)
		}
		if rc := ack(2, 1); rc != packet.Success {
			t.Fatalf("2nd (burst): %v", rc)
		}
		if rc := ack(3, 1); rc != packet.QuotaExceeded {
			t.Fatalf("3rd QoS 1: %v, want Quota Exceeded", rc)
		}
		if rc := ack(4, 2); rc != packet.QuotaExceeded {
			t.Fatalf("4th QoS 2: %v, want Quota Exceeded", rc)
		}
		pub.send(&packet.Publish{Topic: "t", Payload: []byte{5}}) // QoS 0: dropped
		for _, want := range []byte{1, 2} {
			p := recvAs[*packet.Publish](sub)
			if p.Payload[0] != want {
				t.Fatalf("got %d, want %d", p.Payload[0], want)
			}
			sub.send(&packet.Puback{PacketID: p.PacketID})
		}
		sub.expectNothing(100 * time.Millisecond)
		time.Sleep(time.Second) // one token back
		if rc := ack(6, 1); rc != packet.Success {
			t.Fatalf("after a second: %v", rc)
		}
		if p := recvAs[*packet.Publish](sub); p.Payload[0] != 6 {
			t.Fatalf("got %d", p.Payload[0])
		}
		if st := b.Stats(); st.RateLimited != 3 || st.RateLimitDisconnects != 0 {
			t.Fatalf("RateLimited %d, disconnects %d", st.RateLimited, st.RateLimitDisconnects)
		}
	})
}

func TestRateLimitInboundBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, Config{RateLimits: RateLimits{InboundBytes: 100, InboundBytesBurst: 100}})
		pub := dial(t, b, packet.V5, "pub")
		big := make([]byte, 60)
		pub.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: 1, Payload: big})
		if rc := recvAs[*packet.Puback](pub).ReasonCode; rc.IsError() {
			t.Fatalf("1st: %v", rc)
		}
		pub.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: 2, Payload: big})
		if rc := recvAs[*packet.Puback](pub).ReasonCode; rc != packet.QuotaExceeded {
			t.Fatalf("2nd: %v, want Quota Exceeded", rc)
		}
		time.Sleep(time.Second)
		pub.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: 3, Payload: big})
		if rc := recvAs[*packet.Puback](pub).ReasonCode; rc.IsError() {
			t.Fatalf("after a second: %v", rc)
		}
	})
}

// A v5 client that keeps publishing over the limit is disconnected with
// Quota Exceeded; a 3.1.1 client, which has no negative acknowledgement,
// at its first message over the limit.
func TestRateLimitDisconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, Config{RateLimits: RateLimits{InboundMessages: 1, DisconnectAfter: 3}})
		v5 := dial(t, b, packet.V5, "v5")
		for i := range 3 {
			v5.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: uint16(i + 1)})
			if rc := recvAs[*packet.Puback](v5).ReasonCode; (i == 0) != (rc == packet.NoMatchingSubscribers) {
				t.Fatalf("message %d: %v", i, rc)
			}
		}
		v5.send(&packet.Publish{Topic: "t"}) // the third in a row over the limit
		if d := recvAs[*packet.Disconnect](v5); d.ReasonCode != packet.QuotaExceeded {
			t.Fatalf("DISCONNECT %v", d.ReasonCode)
		}
		v5.expectClosed()

		v3 := dial(t, b, packet.V311, "v3")
		v3.publish(&packet.Publish{Topic: "t", QoS: 1, PacketID: 1})
		v3.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: 2})
		v3.expectClosed()
		if st := b.Stats(); st.RateLimitDisconnects != 2 || st.RateLimited != 4 {
			t.Fatalf("disconnects %d, limited %d", st.RateLimitDisconnects, st.RateLimited)
		}
	})
}

// The outbound rate spaces deliveries out; none is dropped because of it.
func TestRateLimitOutboundShapes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, Config{RateLimits: RateLimits{OutboundMessages: 10}})
		sub := dial(t, b, packet.V5, "sub")
		sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 1})
		pub := dial(t, b, packet.V5, "pub")
		start := time.Now()
		const n = 25
		for i := range n {
			pub.publish(&packet.Publish{Topic: "t", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{byte(i)}})
		}
		for i := range n {
			p := recvAs[*packet.Publish](sub)
			if p.Payload[0] != byte(i) {
				t.Fatalf("got %d, want %d", p.Payload[0], i)
			}
			sub.send(&packet.Puback{PacketID: p.PacketID})
		}
		// Burst 10 at once, then 10 a second: the last 15 take 1.5 s of
		// (fake) time.
		if d := time.Since(start); d < 1500*time.Millisecond {
			t.Fatalf("%d messages in %v at 10/s with a burst of 10", n, d)
		}
		if st := b.Stats(); st.Dropped["queue_full"] != 0 {
			t.Fatalf("dropped %v", st.Dropped)
		}
	})
}
