package bench

import (
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/mqtt5go/mqtt5/packet"
)

// group is a set of subscribers that together must receive each message of
// its publishers once: one subscriber for fan-in, fan-out and p2p, the
// members of the shared subscription for shared. seen[i] holds the
// sequence numbers received from publisher i (nil when the group does not
// expect that publisher).
type group struct {
	seen []*seqSet
}

// subscriber reads deliveries on one connection and checks each against
// what its group expects. One goroutine; no allocation per message.
type subscriber struct {
	id     int
	c      *conn
	g      *group
	r      *runner
	topics []string // expected topic per publisher id ("" = not expected)
	order  orderTracker
	hist   *hdrhistogram.Histogram
	warmNs int64

	pub    packet.Publish
	pubrel packet.Pubrel
	ack    []byte

	received   atomic.Int64 // PUBLISH packets received, duplicates included
	dups       atomic.Int64
	reordered  atomic.Int64
	misrouted  atomic.Int64
	corrupt    atomic.Int64
	unexpected atomic.Int64 // other protocol oddities
}

// Latency is recorded in nanoseconds, up to 10 minutes, 3 significant digits.
func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(10*time.Minute), 3)
}

func newSubscriber(r *runner, id int, c *conn, g *group, topics []string) *subscriber {
	return &subscriber{
		id: id, c: c, g: g, r: r, topics: topics,
		order:  newOrderTracker(len(topics)),
		hist:   newHistogram(),
		warmNs: int64(r.cfg.Warmup),
		ack:    make([]byte, 0, 16),
	}
}

func (s *subscriber) run() {
	defer s.r.wg.Done()
	v := s.c.v
	var err error
	for {
		h, body, rerr := s.c.r.ReadRaw(v)
		if rerr != nil {
			if !s.r.closing.Load() && !isTimeout(rerr) {
				s.r.addError("subscriber %d: read: %v", s.id, rerr)
			}
			return
		}
		switch h.Type {
		case packet.PUBLISH:
			if err = s.pub.Decode(h.Flags, body, v); err != nil {
				s.r.addError("subscriber %d: %v", s.id, err)
				return
			}
			s.deliver(&s.pub, int64(time.Since(s.r.start)))
			switch s.pub.QoS {
			case 1:
				a := packet.Puback{PacketID: s.pub.PacketID}
				s.ack, err = a.AppendTo(s.ack[:0], v)
				s.c.w.Write(s.ack)
			case 2:
				a := packet.Pubrec{PacketID: s.pub.PacketID}
				s.ack, err = a.AppendTo(s.ack[:0], v)
				s.c.w.Write(s.ack)
			}
		case packet.PUBREL:
			if err = s.pubrel.Decode(h.Flags, body, v); err != nil {
				s.r.addError("subscriber %d: %v", s.id, err)
				return
			}
			a := packet.Pubcomp{PacketID: s.pubrel.PacketID}
			s.ack, err = a.AppendTo(s.ack[:0], v)
			s.c.w.Write(s.ack)
		case packet.DISCONNECT:
			var d packet.Disconnect
			d.Decode(h.Flags, body, v)
			s.r.addError("subscriber %d: broker sent DISCONNECT %v", s.id, d.ReasonCode)
			return
		default:
			s.unexpected.Add(1)
		}
		if s.c.r.Buffered() == 0 && s.c.w.Buffered() > 0 {
			if err := s.c.w.Flush(); err != nil {
				if !s.r.closing.Load() {
					s.r.addError("subscriber %d: write: %v", s.id, err)
				}
				return
			}
		}
	}
}

// deliver accounts for one received PUBLISH at time now (nanoseconds since
// the run's start).
func (s *subscriber) deliver(p *packet.Publish, now int64) {
	s.received.Add(1)
	sendNs, pub, seq, err := ParseStamp(p.Payload)
	if err != nil {
		s.corrupt.Add(1)
		return
	}
	if int(pub) >= len(s.topics) || s.topics[pub] == "" || p.Topic != s.topics[pub] || s.g.seen[pub] == nil {
		s.misrouted.Add(1)
		return
	}
	dup, ok := s.g.seen[pub].add(seq)
	switch {
	case !ok:
		s.corrupt.Add(1)
		return
	case dup:
		s.dups.Add(1)
		return
	}
	if s.order.observe(pub, seq) {
		s.reordered.Add(1)
	}
	if sendNs >= s.warmNs {
		lat := now - sendNs
		if lat < 1 {
			lat = 1
		}
		s.hist.RecordValue(lat)
	}
}
