package broker

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

func TestInProcessPublishSubscribe(t *testing.T) {
	b := newTestBroker(t, Config{})
	var (
		mu  sync.Mutex
		got []string
	)
	unsub, err := b.Subscribe("in/#", 1, func(m *Message) {
		mu.Lock()
		got = append(got, m.Topic+"="+string(m.Payload))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	// From a network client to the host program.
	c := dial(t, b, packet.V5, "c")
	c.publish(&packet.Publish{Topic: "in/net", QoS: 1, PacketID: 1, Payload: []byte("a")})
	// From the host program to a network client.
	c.subscribe(1, packet.Subscription{Filter: "out/#"})
	if err := b.Publish(t.Context(), &Message{Topic: "out/host", Payload: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if p := recvAs[*packet.Publish](c); p.Topic != "out/host" || string(p.Payload) != "b" {
		t.Fatalf("got %+v", p)
	}
	if err := b.Publish(t.Context(), &Message{Topic: "in/host", Payload: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
	mu.Lock()
	if got[0] != "in/net=a" || got[1] != "in/host=c" {
		t.Fatalf("got %v", got)
	}
	mu.Unlock()
	unsub()
	b.Publish(t.Context(), &Message{Topic: "in/after", Payload: []byte("d")})
	if b.Stats().Subscriptions != 1 {
		t.Fatalf("subscriptions %d", b.Stats().Subscriptions)
	}
	// Invalid input is refused with the reason code.
	if err := b.Publish(t.Context(), &Message{Topic: "bad/+"}); packet.CodeOf(err) != packet.TopicNameInvalid {
		t.Fatalf("publish to wildcard: %v", err)
	}
	if _, err := b.Subscribe("bad/#/x", 0, func(*Message) {}); packet.CodeOf(err) != packet.TopicFilterInvalid {
		t.Fatalf("subscribe bad filter: %v", err)
	}
}

func TestQueueOverflowPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy OverflowPolicy
		want   []string // payloads delivered after reconnect
	}{
		{DropOldestQoS0First, []string{"2", "3"}},
		{DropNew, []string{"0", "1"}},
	} {
		t.Run(map[OverflowPolicy]string{DropOldestQoS0First: "drop-oldest", DropNew: "drop-new"}[tc.policy], func(t *testing.T) {
			b := newTestBroker(t, Config{Queue: QueueConfig{MaxMessages: 2, Policy: tc.policy}})
			sub := newTClient(t, b, packet.V5)
			cp := &packet.Connect{ClientID: "s", CleanStart: true}
			cp.Props.SessionExpiry = 60
			sub.connect(cp)
			sub.subscribe(1, packet.Subscription{Filter: "q", QoS: 1})
			sub.disconnect()
			pub := dial(t, b, packet.V5, "p")
			for i := range 4 {
				pub.publish(&packet.Publish{Topic: "q", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{'0' + byte(i)}})
			}
			if d := b.Stats().Dropped["queue_full"]; d != 2 {
				t.Fatalf("dropped %d, want 2", d)
			}
			sub2 := newTClient(t, b, packet.V5)
			cp.CleanStart = false
			sub2.connect(cp)
			for _, want := range tc.want {
				p := recvAs[*packet.Publish](sub2)
				if string(p.Payload) != want {
					t.Fatalf("got %q, want %q", p.Payload, want)
				}
				sub2.send(&packet.Puback{PacketID: p.PacketID})
			}
			sub2.expectNothing(50 * time.Millisecond)
		})
	}
}

func TestQueueOverflowDisconnect(t *testing.T) {
	b := newTestBroker(t, Config{Queue: QueueConfig{MaxMessages: 1, Policy: DisconnectClient}})
	sub := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "s", CleanStart: true}
	cp.Props.ReceiveMaximum = 1
	sub.connect(cp)
	sub.subscribe(1, packet.Subscription{Filter: "q", QoS: 1})
	pub := dial(t, b, packet.V5, "p")
	// One in flight (unacknowledged: Receive Maximum 1), one queued, the
	// third overflows.
	pub.publish(&packet.Publish{Topic: "q", QoS: 1, PacketID: 1, Payload: []byte("x")})
	recvAs[*packet.Publish](sub)
	for i := 2; i <= 3; i++ {
		pub.publish(&packet.Publish{Topic: "q", QoS: 1, PacketID: uint16(i), Payload: []byte("x")})
	}
	if d := recvAs[*packet.Disconnect](sub); d.ReasonCode != packet.QuotaExceeded {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
}

func TestSlowSubscriberDoesNotBlockOthers(t *testing.T) {
	b := newTestBroker(t, Config{Queue: QueueConfig{MaxMessages: 10}})
	slow := dial(t, b, packet.V5, "slow") // never reads from here on
	slow.subscribe(1, packet.Subscription{Filter: "t"})
	fast := dial(t, b, packet.V5, "fast")
	fast.subscribe(1, packet.Subscription{Filter: "t"})
	pub := dial(t, b, packet.V5, "pub")
	for i := range 200 {
		pub.publish(&packet.Publish{Topic: "t", QoS: 1, PacketID: uint16(i + 1), Payload: []byte("m")})
		recvAs[*packet.Publish](fast)
	}
	if b.Stats().Dropped["queue_full"] == 0 {
		t.Fatal("slow subscriber's queue was not bounded")
	}
}

func TestSysTopics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		b := newTestBroker(t, Config{SysInterval: 5 * time.Second, Version: "mqtt5 test"})
		c := dial(t, b, packet.V5, "c")
		c.subscribe(1, packet.Subscription{Filter: "$SYS/broker/#"})
		// The first publication, made when the broker started: retained
		// copies if it ran before the subscription, live ones otherwise.
		seen := map[string]string{}
		for len(seen) < 13 {
			p := recvAs[*packet.Publish](c)
			seen[p.Topic] = string(p.Payload)
		}
		if seen["$SYS/broker/version"] != "mqtt5 test" {
			t.Fatalf("$SYS: %v", seen)
		}
		// The next publication, 5 s later, counts this client.
		time.Sleep(5 * time.Second)
		live := map[string]string{}
		for len(live) < 13 {
			p := recvAs[*packet.Publish](c)
			live[p.Topic] = string(p.Payload)
		}
		if live["$SYS/broker/clients/connected"] != "1" || live["$SYS/broker/uptime"] != "5 seconds" || live["$SYS/broker/version"] != "mqtt5 test" {
			t.Fatalf("$SYS after 5 s: %v", live)
		}
	})
}
