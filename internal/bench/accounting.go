package bench

import (
	"math/bits"
	"sync/atomic"
)

// seqSet is a set of sequence numbers in [0, limit) that several goroutines
// may add to at once. It is a bitmap in 64 Ki-bit chunks allocated on first
// use, so its cost follows the messages actually seen, and adding a number
// does not allocate except once per 65,536 numbers.
type seqSet struct {
	limit  uint64
	chunks []atomic.Pointer[seqChunk]
}

const chunkBits = 1 << 16

type seqChunk [chunkBits / 64]atomic.Uint64

func newSeqSet(limit uint64) *seqSet {
	return &seqSet{limit: limit, chunks: make([]atomic.Pointer[seqChunk], (limit+chunkBits-1)/chunkBits)}
}

// add inserts seq and reports whether it was already present. ok is false
// when seq is out of range.
func (s *seqSet) add(seq uint64) (dup, ok bool) {
	if seq >= s.limit {
		return false, false
	}
	cp := &s.chunks[seq/chunkBits]
	c := cp.Load()
	if c == nil {
		nc := new(seqChunk)
		if cp.CompareAndSwap(nil, nc) {
			c = nc
		} else {
			c = cp.Load()
		}
	}
	i := seq % chunkBits
	mask := uint64(1) << (i % 64)
	old := c[i/64].Or(mask)
	return old&mask != 0, true
}

// has reports whether seq is in the set.
func (s *seqSet) has(seq uint64) bool {
	if seq >= s.limit {
		return false
	}
	c := s.chunks[seq/chunkBits].Load()
	if c == nil {
		return false
	}
	i := seq % chunkBits
	return c[i/64].Load()&(1<<(i%64)) != 0
}

// word returns the 64 bits starting at w*64.
func (s *seqSet) word(w uint64) uint64 {
	if s == nil || w*64 >= s.limit {
		return 0
	}
	c := s.chunks[(w*64)/chunkBits].Load()
	if c == nil {
		return 0
	}
	return c[w%(chunkBits/64)].Load()
}

// count returns the number of members below n.
func (s *seqSet) count(n uint64) int64 {
	var total int64
	for w := uint64(0); w*64 < n; w++ {
		total += int64(bits.OnesCount64(s.word(w) & lowMask(n, w)))
	}
	return total
}

// lowMask returns the bits of word w that stand for numbers below n.
func lowMask(n, w uint64) uint64 {
	if (w+1)*64 <= n {
		return ^uint64(0)
	}
	return (uint64(1) << (n - w*64)) - 1
}

// streamTally is the outcome of comparing what one publisher sent with what
// one receiving group got.
type streamTally struct {
	Expected int64 // messages that had to arrive (QoS 0: sent; QoS>0: acknowledged)
	Unique   int64 // distinct messages that arrived
	Lost     int64 // had to arrive and did not
	Unacked  int64 // QoS>0: sent, never acknowledged and never arrived (inconclusive)
}

// tallyStream compares sent messages 0..sent-1 of one publisher with the
// set a group received. acked is nil for QoS 0: every sent message must
// arrive. For QoS>0 only acknowledged messages must; an unacknowledged one
// that arrived anyway is fine, one that did not is counted as Unacked.
func tallyStream(sent uint64, acked, seen *seqSet) streamTally {
	var t streamTally
	for w := uint64(0); w*64 < sent; w++ {
		m := lowMask(sent, w)
		got := seen.word(w) & m
		must := m
		if acked != nil {
			must = acked.word(w) & m
		}
		t.Expected += int64(bits.OnesCount64(must))
		t.Unique += int64(bits.OnesCount64(got))
		t.Lost += int64(bits.OnesCount64(must &^ got))
		if acked != nil {
			t.Unacked += int64(bits.OnesCount64(m &^ must &^ got))
		}
	}
	return t
}

// orderTracker detects reordering per publisher at one receiver: a message
// whose sequence number is below the highest already received from the
// same publisher (and that is not a duplicate) is reordered.
type orderTracker struct {
	next []uint64 // highest seq seen + 1, per publisher
}

func newOrderTracker(pubs int) orderTracker { return orderTracker{next: make([]uint64, pubs)} }

// observe records seq from pub and reports whether it arrived out of order.
func (o *orderTracker) observe(pub uint32, seq uint64) bool {
	if seq+1 > o.next[pub] {
		o.next[pub] = seq + 1
		return false
	}
	return true
}
