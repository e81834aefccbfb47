package broker

import (
	"context"
	"fmt"
	"testing"

	"github.com/mqtt5go/mqtt5/packet"
)

func encodeAll(t *testing.T, v packet.Version, ps ...packet.Packet) []byte {
	t.Helper()
	var out []byte
	for _, p := range ps {
		var err error
		if out, err = p.AppendTo(out, v); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Deliveries of a read batch reach their subscribers as soon as the read
// loop would wait for more input, even when part of the next packet is
// already buffered.
func TestKickBatchFlushesBeforeBlockingRead(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "k/#"})
	pub := dial(t, b, packet.V5, "pub")

	const n = maxKickBatch / 2 // below the cap: only the blocking read flushes
	var ps []packet.Packet
	for i := range n {
		ps = append(ps, &packet.Publish{Topic: fmt.Sprintf("k/%d", i), Payload: []byte("x")})
	}
	burst := encodeAll(t, packet.V5, ps...)
	last := encodeAll(t, packet.V5, &packet.Publish{Topic: "k/last", Payload: []byte("y")})
	// One write: n whole packets and the first bytes of one more.
	pub.sendRaw(append(burst, last[:3]...))
	for i := range n {
		p := recvAs[*packet.Publish](sub)
		if want := fmt.Sprintf("k/%d", i); p.Topic != want {
			t.Fatalf("got %q, want %q", p.Topic, want)
		}
	}
	pub.sendRaw(last[3:])
	if p := recvAs[*packet.Publish](sub); p.Topic != "k/last" {
		t.Fatalf("got %q", p.Topic)
	}
}

type stallOnTopic struct {
	topic   string
	entered chan struct{}
	release chan struct{}
}

func (h *stallOnTopic) OnPublish(_ context.Context, ev PublishEvent) PublishDecision {
	if ev.Message.Topic == h.topic {
		h.entered <- struct{}{}
		<-h.release
	}
	return PublishDecision{}
}

// A publish hook that blocks in the middle of a read batch does not hold
// back the deliveries of the packets before it.
func TestKickBatchFlushesBeforeBlockingHook(t *testing.T) {
	h := &stallOnTopic{topic: "b", entered: make(chan struct{}, 1), release: make(chan struct{})}
	b := newTestBroker(t, Config{Hooks: []any{h}})
	defer close(h.release)
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "#"})
	pub := dial(t, b, packet.V5, "pub")
	pub.sendRaw(encodeAll(t, packet.V5,
		&packet.Publish{Topic: "a", Payload: []byte("1")},
		&packet.Publish{Topic: "b", Payload: []byte("2")}))
	<-h.entered
	if p := recvAs[*packet.Publish](sub); p.Topic != "a" {
		t.Fatalf("got %q", p.Topic)
	}
}
