package broker

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/packet"
)

// subOpts are the options of one subscription, as stored in the router.
type subOpts struct {
	qos     byte
	noLocal bool
	rap     bool // Retain As Published
	rh      byte // Retain Handling
	subID   uint32
}

// outFlight is a QoS 1 or 2 message sent to the client and not yet
// completely acknowledged.
type outFlight struct {
	d        delivery // d.seq orders retransmission [MQTT-4.6.0-1]
	released bool     // PUBREC received and PUBREL sent (QoS 2)
}

// session is the server side of an MQTT session (section 4.1): it outlives
// connections when its expiry interval is non-zero.
//
// Locking: mu guards every field below it and the outbound state of the
// attached connection (see conn). The router holds *session values, so a
// publisher reaches a subscriber's queue through that subscriber's mutex
// only; there is no lock shared by all publishers.
type session struct {
	b   *Broker
	id  string
	seq uint64 // unique per session object, orders sessions when merging matches

	// online is true while a connection (or an in-process handler) is
	// attached; read without the lock by shared-subscription dispatch.
	online atomic.Bool

	// info is the ClientInfo of the last connection, for delivery
	// authorization (nil for in-process subscribers).
	info atomic.Pointer[ClientInfo]

	mu       sync.Mutex
	conn     *conn // attached connection, nil while disconnected
	ended    bool  // removed from the registry; accepts nothing more
	username string
	version  packet.Version
	subs     map[string]subOpts // by full filter ($share/... included)
	expiry   uint32             // Session Expiry Interval in force, seconds

	queue    queue
	inflight map[uint16]outFlight
	nextID   uint16
	inQoS2   map[uint16]struct{} // inbound QoS 2 ids awaiting PUBREL

	nextSeq        uint64    // last delivery sequence number used
	disconnectedAt time.Time // when the last connection ended

	// pendingWill is the will of the last connection, waiting for its
	// delay to pass or the session to end.
	pendingWill      *Message
	pendingWillDelay uint32
	willTimer        *time.Timer
	expireTimer      *time.Timer

	// handler makes this an in-process subscriber: deliveries are passed
	// to it on the session's own goroutine instead of a network connection.
	handler  func(*Message)
	draining bool
	// kickQueued: the session is on a kickQueue, which wakes its writer
	// when flushed.
	kickQueued bool

	// last is the change-only state (payload hash per topic), allocated on
	// first use; unchangedExempt sessions always get every message.
	last            *lastPayloads
	unchangedExempt bool
}

// clientInfoLocked returns a ClientInfo for hooks, using the attached
// connection's when there is one.
func (s *session) hasConnLocked() bool { return s.conn != nil && !s.conn.closed }

// admitLocked applies the queue bounds to a new delivery. It returns false
// when d must be dropped; it may drop an older delivery to make room.
func (s *session) admitLocked(d *delivery, ops *[]store.Op, persist bool) bool {
	cfg := &s.b.conf().Queue
	size := d.msg.size()
	full := func() bool {
		return (cfg.MaxMessages > 0 && s.queue.len() >= cfg.MaxMessages) || (cfg.MaxBytes > 0 && s.queue.bytes+size > cfg.MaxBytes)
	}
	if !full() {
		return true
	}
	switch cfg.Policy {
	case DropNew:
		s.b.stats.dropped(dropQueueFull)
		return false
	case DisconnectClient:
		s.b.stats.dropped(dropQueueFull)
		if c := s.conn; c != nil {
			c.disconnectLocked(packet.QuotaExceeded, "outbound queue full")
		}
		return false
	}
	// DropOldestQoS0First.
	for full() {
		if i := s.queue.oldestQoS0(); i >= 0 {
			s.queue.removeAt(i)
		} else if d.qos == 0 || s.queue.len() == 0 {
			s.b.stats.dropped(dropQueueFull)
			return false
		} else {
			old := s.queue.pop()
			if persist {
				*ops = append(*ops, deleteEntryOp(s, old.seq))
			}
		}
		s.b.stats.dropped(dropQueueFull)
	}
	return true
}

// deliver queues d for the session and wakes its writer. QoS 0 messages are
// not kept for a disconnected session.
func (s *session) deliver(d delivery, ops *[]store.Op, kq *kickQueue) (waits bool) {
	s.mu.Lock()
	waits, _ = s.deliverLocked(d, ops, kq)
	s.mu.Unlock()
	return waits
}

// deliverLocked queues d. When the session is persistent and ops is not
// nil, it appends the store operations that make the delivery durable
// (and remove what the queue bound dropped); the caller submits them. It
// reports whether the delivery waits for that commit before it may be
// written (delivery.gate); the caller then kicks the session
// after the commit. queued is false when d was dropped.
//
// With kq not nil the writer is woken when kq is flushed (at the end of
// the publisher's read batch) rather than now.
func (s *session) deliverLocked(d delivery, ops *[]store.Op, kq *kickQueue) (waits, queued bool) {
	if s.ended {
		return false, false
	}
	if d.qos == 0 && !s.hasConnLocked() && s.handler == nil && !s.b.conf().Queue.QueueQoS0Offline {
		s.b.stats.dropped(dropOffline)
		return false, false
	}
	persist := ops != nil && d.qos > 0 && s.persistentLocked() && s.b.persisting()
	if !s.admitLocked(&d, ops, persist) {
		return false, false
	}
	s.nextSeq++
	d.seq = s.nextSeq
	if persist {
		*ops = append(*ops, s.entryOpLocked(&d, 0, false))
	}
	if persist && d.gate != nil {
		// Not written to the client before the publication is durable:
		// otherwise a crash before the commit would let the publisher's
		// retransmission deliver a QoS 2 message a second time, and the
		// writer's record of the packet identifier (written as it sends)
		// could reach the store before the publication's "queued" record
		// and be overwritten by it, so that a restart re-sent an
		// acknowledged QoS 1 message, or one in flight without DUP
		// [MQTT-4.4.0-1].
		waits = true
	} else {
		d.gate = nil
	}
	s.queue.push(d)
	if kq != nil {
		kq.addLocked(s)
	} else {
		s.kickLocked()
	}
	return waits, true
}

// kickLocked starts the goroutine that drains the queue, when one is needed
// and none runs.
func (s *session) kickLocked() {
	if c := s.conn; c != nil {
		c.kickLocked()
		return
	}
	if s.handler != nil && !s.draining && s.queue.len() > 0 {
		s.draining = true
		s.b.wg.Add(1)
		go s.drainToHandler()
	}
}

// drainToHandler passes queued deliveries to an in-process subscriber.
func (s *session) drainToHandler() {
	defer s.b.wg.Done()
	for {
		s.mu.Lock()
		if s.queue.len() == 0 || s.ended {
			s.draining = false
			s.mu.Unlock()
			return
		}
		d := s.queue.pop()
		h := s.handler
		s.mu.Unlock()
		now := s.b.now()
		secs, ok := d.msg.remaining(now)
		if !ok {
			s.b.stats.dropped(dropExpired)
			continue
		}
		m := *d.msg
		m.QoS = d.qos
		m.Retain = d.retain
		if m.hasExpiry() {
			m.Props.MessageExpiry = secs
		}
		h(&m)
	}
}

// nextPacketIDLocked returns an unused outbound packet identifier
// [MQTT-2.2.1-4]. The caller has checked that the window is not full.
func (s *session) nextPacketIDLocked() uint16 {
	if s.inflight == nil {
		s.inflight = make(map[uint16]outFlight)
	}
	for {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if _, used := s.inflight[s.nextID]; !used {
			return s.nextID
		}
	}
}

// inflightInOrderLocked returns the unacknowledged messages in the order
// they were first sent.
func (s *session) inflightInOrderLocked() []uint16 {
	ids := make([]uint16, 0, len(s.inflight))
	for id := range s.inflight {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uint16) int {
		x, y := s.inflight[a].d.seq, s.inflight[b].d.seq
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return ids
}

// stopTimersLocked cancels the expiry and will timers.
func (s *session) stopTimersLocked() {
	if s.expireTimer != nil {
		s.expireTimer.Stop()
		s.expireTimer = nil
	}
	if s.willTimer != nil {
		s.willTimer.Stop()
		s.willTimer = nil
	}
}

// takeSharedLocked removes and returns the queued and unacknowledged
// deliveries that came through shared subscriptions, so that they can go to
// another member of their group.
func (s *session) takeSharedLocked() []delivery {
	var out []delivery
	for i := 0; i < s.queue.len(); {
		if s.queue.at(i).group != nil {
			out = append(out, s.queue.removeAt(i))
			continue
		}
		i++
	}
	// QoS 1 messages already sent may go to another member; QoS 2 ones
	// stay with this member until its session ends, and then go nowhere
	// [MQTT-4.8.2-4] [MQTT-4.8.2-5].
	for id, f := range s.inflight {
		if f.d.group != nil && f.d.qos == 1 {
			out = append(out, f.d)
			delete(s.inflight, id)
		}
	}
	return out
}
