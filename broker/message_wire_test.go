package broker

import (
	"bytes"
	"sync"
	"testing"

	"github.com/mqtt5go/mqtt5/packet"
)

func encodeShared(t *testing.T, m *Message) []byte {
	t.Helper()
	var local packet.PublishShared
	sh, err := m.shared(&local)
	if err != nil {
		t.Fatal(err)
	}
	f := packet.PublishFrame{Shared: sh, Payload: m.Payload, QoS: 1, PacketID: 7}
	out, err := f.AppendTo(nil, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMessageSharedIsBuiltOnceAndFollowsCopies(t *testing.T) {
	m := &Message{Topic: "a/b", Payload: []byte("x")}
	m.Props.ContentType = "text/plain"
	m.Props.User = []packet.UserProperty{{Key: "k", Value: "v"}}
	m.prepareWire()
	var l1, l2 packet.PublishShared
	s1, err1 := m.shared(&l1)
	s2, err2 := m.shared(&l2)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if s1 != s2 || s1 == &l1 {
		t.Fatalf("the shared part of a message with properties is not cached (%p, %p)", s1, s2)
	}
	want := packet.Publish{Topic: "a/b", Payload: []byte("x"), QoS: 1, PacketID: 7, Props: m.Props}
	wb, _ := want.AppendTo(nil, packet.V5)
	if got := encodeShared(t, m); !bytes.Equal(got, wb) {
		t.Fatalf("got %x want %x", got, wb)
	}

	// A copy changed after the original was encoded encodes its own
	// properties, not the original's cached ones.
	n := *m
	n.Props.ContentType = "application/json"
	if got := encodeShared(t, &n); !bytes.Contains(got, []byte("application/json")) {
		t.Fatalf("copy before prepareWire: %x", got)
	}
	n.prepareWire()
	want.Props = n.Props
	wb, _ = want.AppendTo(nil, packet.V5)
	if got := encodeShared(t, &n); !bytes.Equal(got, wb) {
		t.Fatalf("copy: got %x want %x", got, wb)
	}
	if got := encodeShared(t, m); !bytes.Contains(got, []byte("text/plain")) {
		t.Fatalf("original changed by its copy: %x", got)
	}
}

func TestMessageSharedWithoutPropertiesDoesNotAllocate(t *testing.T) {
	m := &Message{Topic: "a/b", Payload: []byte("x")}
	m.Props.MessageExpiry = 30 // per copy, not shared
	allocs := testing.AllocsPerRun(100, func() {
		var local packet.PublishShared
		if _, err := m.shared(&local); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
	bad := &Message{Topic: "a/\x00"}
	var local packet.PublishShared
	if _, err := bad.shared(&local); err == nil {
		t.Fatal("a topic with U+0000 was accepted")
	}
}

func TestMessageSharedConcurrent(t *testing.T) {
	m := &Message{Topic: "a/b", Payload: []byte("payload")}
	m.Props.ResponseTopic = "reply/here"
	m.Props.CorrelationData = []byte{1, 2, 3}
	m.prepareWire()
	want := encodeShared(t, &Message{Topic: m.Topic, Payload: m.Payload, Props: m.Props})
	var wg sync.WaitGroup
	outs := make([][]byte, 16)
	for i := range outs {
		wg.Go(func() {
			var local packet.PublishShared
			sh, err := m.shared(&local)
			if err != nil {
				t.Error(err)
				return
			}
			if sh == &local {
				t.Error("the prepared wire form was not used")
			}
			_ = *m // a copy of a routed message does not race with deliveries
			f := packet.PublishFrame{Shared: sh, Payload: m.Payload, QoS: 1, PacketID: 7}
			outs[i], _ = f.AppendTo(nil, packet.V5)
		})
	}
	wg.Wait()
	for i, o := range outs {
		if !bytes.Equal(o, want) {
			t.Fatalf("goroutine %d: %x want %x", i, o, want)
		}
	}
}
