package bench

import (
	"testing"

	"github.com/mqtt5go/mqtt5/packet"
)

func TestSeqSet(t *testing.T) {
	s := newSeqSet(200_000)
	for _, n := range []uint64{0, 63, 64, 65535, 65536, 199_999} {
		if dup, ok := s.add(n); dup || !ok {
			t.Fatalf("add %d: dup %v ok %v", n, dup, ok)
		}
		if dup, ok := s.add(n); !dup || !ok {
			t.Fatalf("second add %d: dup %v ok %v", n, dup, ok)
		}
		if !s.has(n) {
			t.Fatalf("has %d", n)
		}
	}
	if s.has(1) || s.has(65537) {
		t.Fatal("has a number never added")
	}
	if _, ok := s.add(200_000); ok {
		t.Fatal("out of range number accepted")
	}
	if got := s.count(200_000); got != 6 {
		t.Fatalf("count = %d, want 6", got)
	}
	if got := s.count(65536); got != 4 {
		t.Fatalf("count below 65536 = %d, want 4", got)
	}
}

func setOf(limit uint64, seqs ...uint64) *seqSet {
	s := newSeqSet(limit)
	for _, n := range seqs {
		s.add(n)
	}
	return s
}

func TestTallyQoS0(t *testing.T) {
	// Sent 0..9; 3 and 7 never arrived.
	seen := setOf(100, 0, 1, 2, 4, 5, 6, 8, 9)
	got := tallyStream(10, nil, seen)
	want := streamTally{Expected: 10, Unique: 8, Lost: 2}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestTallyQoS1(t *testing.T) {
	// Sent 0..199 (across a word boundary). Acknowledged: all but 150 and
	// 199. Received: all but 5 (acknowledged: lost), 150 (unacknowledged:
	// in flight) — 199 was unacknowledged but arrived anyway.
	var acked []uint64
	var seen []uint64
	for i := uint64(0); i < 200; i++ {
		if i != 150 && i != 199 {
			acked = append(acked, i)
		}
		if i != 5 && i != 150 {
			seen = append(seen, i)
		}
	}
	got := tallyStream(200, setOf(200, acked...), setOf(200, seen...))
	want := streamTally{Expected: 198, Unique: 198, Lost: 1, Unacked: 1}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestTallyIgnoresUnsent(t *testing.T) {
	// A received number at or above sent (impossible in a run) must not be
	// counted, nor bits of the last partial word beyond sent.
	got := tallyStream(65, nil, setOf(1000, 0, 64, 65, 127))
	want := streamTally{Expected: 65, Unique: 2, Lost: 63}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestOrderTracker(t *testing.T) {
	o := newOrderTracker(2)
	// Publisher 0: 0 1 3 2 4 -> 2 is reordered. Publisher 1 independent.
	var reordered int
	for _, ev := range []struct {
		pub uint32
		seq uint64
	}{{0, 0}, {0, 1}, {1, 0}, {0, 3}, {1, 1}, {0, 2}, {0, 4}, {1, 2}} {
		if o.observe(ev.pub, ev.seq) {
			reordered++
		}
	}
	if reordered != 1 {
		t.Fatalf("reordered = %d, want 1", reordered)
	}
}

// testSubscriber returns a subscriber expecting publishers 0 and 1 on
// topics a/0 and a/1, with no connection.
func testSubscriber() (*subscriber, *group) {
	r := &runner{cfg: Config{Warmup: 0}}
	g := &group{seen: []*seqSet{newSeqSet(1000), newSeqSet(1000)}}
	return newSubscriber(r, 0, nil, g, []string{"a/0", "a/1"}), g
}

func publish(topic string, pub uint32, seq uint64) *packet.Publish {
	p := make([]byte, 64)
	Stamp(p, 1000, pub, seq)
	return &packet.Publish{Topic: topic, QoS: 1, PacketID: 1, Payload: p}
}

func TestSubscriberAccounting(t *testing.T) {
	s, g := testSubscriber()
	deliveries := []*packet.Publish{
		publish("a/0", 0, 0),
		publish("a/0", 0, 2),
		publish("a/0", 0, 1), // reordered
		publish("a/0", 0, 2), // duplicate
		publish("a/1", 1, 0),
		publish("a/9", 1, 1),  // misrouted: wrong topic for publisher 1
		publish("a/0", 5, 0),  // misrouted: unknown publisher
		publish("a/1", 1, 10), // fine
		{Topic: "a/1", Payload: []byte("not a stamp")},
		publish("a/1", 1, 5000), // beyond the publisher's range: corrupt
	}
	for _, p := range deliveries {
		s.deliver(p, 5000)
	}
	check := func(name string, got, want int64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	check("received", s.received.Load(), int64(len(deliveries)))
	check("dups", s.dups.Load(), 1)
	check("reordered", s.reordered.Load(), 1)
	check("misrouted", s.misrouted.Load(), 2)
	check("corrupt", s.corrupt.Load(), 2)
	check("latency samples", s.hist.TotalCount(), 5)
	if !s.hist.ValuesAreEquivalent(s.hist.Max(), 4000) {
		t.Errorf("latency max = %d, want 4000 (send 1000, receive 5000)", s.hist.Max())
	}
	// Publisher 0 sent 0..3: 3 is lost. Publisher 1 sent 0..10: 1..9 lost.
	check("lost p0", tallyStream(4, nil, g.seen[0]).Lost, 1)
	check("lost p1", tallyStream(11, nil, g.seen[1]).Lost, 9)
}

// Shared subscriptions: members share the group's sets, so a message
// delivered to two members is a duplicate.
func TestSharedGroupDuplicates(t *testing.T) {
	r := &runner{}
	g := &group{seen: []*seqSet{newSeqSet(10)}}
	a := newSubscriber(r, 0, nil, g, []string{"s/0"})
	b := newSubscriber(r, 1, nil, g, []string{"s/0"})
	a.deliver(publish("s/0", 0, 0), 1)
	b.deliver(publish("s/0", 0, 1), 1)
	b.deliver(publish("s/0", 0, 0), 1) // already at a
	if a.dups.Load() != 0 || b.dups.Load() != 1 {
		t.Fatalf("dups a=%d b=%d, want 0 and 1", a.dups.Load(), b.dups.Load())
	}
	if tl := tallyStream(3, nil, g.seen[0]); tl.Unique != 2 || tl.Lost != 1 {
		t.Fatalf("tally %+v", tl)
	}
}

// The hot paths do not allocate: stamping and encoding a publication, and
// accounting for a delivery.
func TestNoAllocsPerMessage(t *testing.T) {
	s, _ := testSubscriber()
	p := publish("a/0", 0, 0)
	var seq uint64
	if n := testing.AllocsPerRun(1000, func() {
		seq++
		Stamp(p.Payload, 1, 0, seq%1000)
		s.deliver(p, 2)
	}); n != 0 {
		t.Errorf("deliver: %v allocs per message", n)
	}
	pub := packet.Publish{Topic: "a/0", QoS: 1, PacketID: 7, Payload: make([]byte, 64)}
	out := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(1000, func() {
		seq++
		Stamp(pub.Payload, int64(seq), 0, seq)
		out, _ = pub.AppendTo(out[:0], packet.V5)
	}); n != 0 {
		t.Errorf("encode: %v allocs per message", n)
	}
}

// QoS 1 across a shared group: each acknowledged message must reach one
// member; a second copy at another member is a duplicate, an acknowledged
// message no member got is lost, and an unacknowledged one that no member
// got is neither.
func TestSharedGroupQoS1Accounting(t *testing.T) {
	r := &runner{}
	g := &group{seen: []*seqSet{newSeqSet(10)}}
	a := newSubscriber(r, 0, nil, g, []string{"s/0"})
	b := newSubscriber(r, 1, nil, g, []string{"s/0"})
	acked := newSeqSet(10)
	for _, seq := range []uint64{0, 1, 2, 4} {
		acked.add(seq)
	}
	a.deliver(publish("s/0", 0, 0), 1)
	b.deliver(publish("s/0", 0, 1), 1)
	a.deliver(publish("s/0", 0, 1), 1) // the broker gave 1 to both members
	b.deliver(publish("s/0", 0, 4), 1)
	b.deliver(publish("s/0", 0, 5), 1) // arrived before its PUBACK: fine
	if d := a.dups.Load() + b.dups.Load(); d != 1 {
		t.Errorf("dups %d, want 1", d)
	}
	// Sent 0..6; acked 0,1,2,4; received 0,1,4,5: 2 is lost, 3 and 6 are
	// unacknowledged and missing.
	tl := tallyStream(7, acked, g.seen[0])
	if tl.Expected != 4 || tl.Unique != 4 || tl.Lost != 1 || tl.Unacked != 2 {
		t.Fatalf("tally %+v, want expected 4 unique 4 lost 1 unacked 2", tl)
	}
}
