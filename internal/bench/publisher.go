package bench

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// publisher sends stamped messages on one connection. One goroutine writes
// (run); for QoS>0 another reads acknowledgements (readAcks) and returns
// window credits. Neither allocates per message.
type publisher struct {
	id    uint32
	c     *conn
	topic string
	qos   byte
	quota uint64 // at most this many messages
	rate  float64
	phase float64 // spreads the publishers' paced sends over the interval
	r     *runner

	pub     packet.Publish
	payload []byte
	out     []byte

	// QoS>0 state.
	window  int
	credits chan struct{}
	slots   []atomic.Uint64 // seq+1 in flight under packet id index+1; 0 = free
	acked   *seqSet
	wmu     sync.Mutex // guards c.w for QoS 2 (the ack reader writes PUBREL)
	ackBuf  []byte
	puback  packet.Puback
	pubrec  packet.Pubrec
	pubcomp packet.Pubcomp

	sent       atomic.Uint64 // messages written (seq of the next one)
	nAcked     atomic.Int64
	nRejected  atomic.Int64
	nCompleted atomic.Int64 // acknowledgement flows finished (PUBACK, PUBCOMP or failed PUBREC)
	unexpected atomic.Int64 // acknowledgements for no message in flight
}

func newPublisher(r *runner, id uint32, c *conn, topic string, quota uint64) *publisher {
	p := &publisher{id: id, c: c, topic: topic, qos: r.cfg.QoS, quota: quota, r: r}
	p.payload = make([]byte, r.cfg.PayloadSize)
	p.pub = packet.Publish{Topic: topic, QoS: p.qos, Payload: p.payload}
	p.out = make([]byte, 0, p.pub.Size(c.v)+8)
	if p.qos > 0 {
		p.window = min(r.cfg.Window, int(c.receiveMax))
		p.credits = make(chan struct{}, p.window)
		for range p.window {
			p.credits <- struct{}{}
		}
		p.slots = make([]atomic.Uint64, min(65535, max(4*p.window, 256)))
		p.acked = newSeqSet(quota)
	}
	if r.cfg.Rate > 0 {
		p.rate = r.cfg.Rate / float64(r.cfg.Publishers)
		p.phase = float64(id) / float64(r.cfg.Publishers)
	}
	return p
}

// run publishes until the quota is reached or the runner stops.
func (p *publisher) run() {
	defer p.r.wg.Done()
	err := p.loop()
	p.lock()
	if ferr := p.c.w.Flush(); err == nil && ferr != nil && !p.r.stopping() {
		err = ferr
	}
	p.unlock()
	if err != nil && !p.r.stopping() {
		p.r.addError("publisher %d: %v", p.id, err)
	}
}

func (p *publisher) lock() {
	if p.qos == 2 {
		p.wmu.Lock()
	}
}

func (p *publisher) unlock() {
	if p.qos == 2 {
		p.wmu.Unlock()
	}
}

func (p *publisher) flush() error {
	p.lock()
	err := p.c.w.Flush()
	p.unlock()
	return err
}

func (p *publisher) loop() error {
	var timer *time.Timer
	if p.rate > 0 {
		timer = time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
	}
	start := p.r.start
	for seq := uint64(0); seq < p.quota; seq++ {
		if p.r.stopFlag.Load() {
			return nil
		}
		if p.rate > 0 {
			// Send message seq at start + seq/rate; when ahead, flush and
			// sleep until then.
			due := start.Add(time.Duration((float64(seq) + p.phase) / p.rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				if err := p.flush(); err != nil {
					return err
				}
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-p.r.stopCh:
					return nil
				}
			}
		}
		if p.qos > 0 {
			if !p.acquire(seq) {
				return nil
			}
		}
		Stamp(p.payload, int64(time.Since(start)), p.id, seq)
		var err error
		p.lock()
		p.out, err = p.pub.AppendTo(p.out[:0], p.c.v)
		if err == nil {
			_, err = p.c.w.Write(p.out)
		}
		p.unlock()
		if err != nil {
			return err
		}
		p.sent.Store(seq + 1)
	}
	return nil
}

// acquire takes a window credit and a packet identifier for seq; it flushes
// before blocking. It returns false when the run stops first.
func (p *publisher) acquire(seq uint64) bool {
	select {
	case <-p.credits:
	default:
		if err := p.flush(); err != nil {
			return false
		}
		select {
		case <-p.credits:
		case <-p.r.stopCh:
			return false
		}
	}
	idx := seq % uint64(len(p.slots))
	for !p.slots[idx].CompareAndSwap(0, seq+1) {
		// The identifier is still in flight: its acknowledgement is
		// overtaken by len(slots) others. Rare; wait for it.
		if err := p.flush(); err != nil {
			return false
		}
		select {
		case <-time.After(100 * time.Microsecond):
		case <-p.r.stopCh:
			return false
		}
	}
	p.pub.PacketID = uint16(idx + 1)
	return true
}

// release frees packet identifier id and returns its seq (ok false when
// nothing was in flight under it).
func (p *publisher) release(id uint16) (uint64, bool) {
	if id == 0 || int(id) > len(p.slots) {
		return 0, false
	}
	v := p.slots[id-1].Swap(0)
	if v == 0 {
		return 0, false
	}
	p.credits <- struct{}{}
	p.nCompleted.Add(1)
	return v - 1, true
}

// inflightSeq returns the seq in flight under id without freeing it.
func (p *publisher) inflightSeq(id uint16) (uint64, bool) {
	if id == 0 || int(id) > len(p.slots) {
		return 0, false
	}
	v := p.slots[id-1].Load()
	return v - 1, v != 0
}

// readAcks reads what the broker sends a publisher: acknowledgements for
// QoS>0 (answering PUBREC with PUBREL), and DISCONNECT.
func (p *publisher) readAcks() {
	defer p.r.wg.Done()
	v := p.c.v
	for {
		h, body, err := p.c.r.ReadRaw(v)
		if err != nil {
			if !p.r.closing.Load() && !isTimeout(err) {
				p.r.addError("publisher %d: read: %v", p.id, err)
			}
			return
		}
		switch h.Type {
		case packet.PUBACK:
			if err := p.puback.Decode(h.Flags, body, v); err != nil {
				p.r.addError("publisher %d: %v", p.id, err)
				return
			}
			seq, ok := p.inflightSeq(p.puback.PacketID)
			if !ok || p.qos != 1 {
				p.unexpected.Add(1)
				continue
			}
			if p.puback.ReasonCode >= 0x80 {
				p.nRejected.Add(1)
			} else {
				p.acked.add(seq)
				p.nAcked.Add(1)
			}
			p.release(p.puback.PacketID)
		case packet.PUBREC:
			if err := p.pubrec.Decode(h.Flags, body, v); err != nil {
				p.r.addError("publisher %d: %v", p.id, err)
				return
			}
			seq, ok := p.inflightSeq(p.pubrec.PacketID)
			if !ok || p.qos != 2 {
				p.unexpected.Add(1)
				continue
			}
			if p.pubrec.ReasonCode >= 0x80 {
				// The flow ends here [MQTT-4.3.3]: no PUBREL.
				p.nRejected.Add(1)
				p.release(p.pubrec.PacketID)
				continue
			}
			if dup, _ := p.acked.add(seq); !dup {
				p.nAcked.Add(1)
			}
			rel := packet.Pubrel{PacketID: p.pubrec.PacketID}
			p.wmu.Lock()
			p.ackBuf, err = rel.AppendTo(p.ackBuf[:0], v)
			if err == nil {
				_, err = p.c.w.Write(p.ackBuf)
			}
			if err == nil && p.c.r.Buffered() == 0 {
				err = p.c.w.Flush()
			}
			p.wmu.Unlock()
			if err != nil {
				if !p.r.closing.Load() {
					p.r.addError("publisher %d: write PUBREL: %v", p.id, err)
				}
				return
			}
		case packet.PUBCOMP:
			if err := p.pubcomp.Decode(h.Flags, body, v); err != nil {
				p.r.addError("publisher %d: %v", p.id, err)
				return
			}
			if _, ok := p.release(p.pubcomp.PacketID); !ok {
				p.unexpected.Add(1)
			}
		case packet.DISCONNECT:
			var d packet.Disconnect
			d.Decode(h.Flags, body, v)
			p.r.addError("publisher %d: broker sent DISCONNECT %v", p.id, d.ReasonCode)
			return
		}
	}
}

// outstanding reports whether acknowledgement flows are still open.
func (p *publisher) outstanding() bool {
	if p.qos == 0 {
		return false
	}
	return uint64(p.nCompleted.Load()) < p.sent.Load()
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
