package broker

// kickQueue defers waking subscribers' writers to the end of a publisher's
// read batch. A connection's read loop handles every packet it has
// buffered before it reads the socket again; the deliveries of those
// packets are queued at once, but each subscriber's writer is started once
// for the batch rather than once per message. With the writers on other
// cores, waking them per message made each write one message long (a
// write system call and a goroutine start per delivery); per batch, a
// writer takes everything the batch queued for it in one write.
//
// A kickQueue belongs to one read loop and is used only on its goroutine.
// It is flushed before every read that may block, after at most
// maxKickBatch packets, before anything that may block the read loop (user
// hooks, an Authorizer, back-pressure waits) and when the loop ends, so a
// delivery waits for at most the handling of the packets read with it.
type kickQueue struct {
	s       []*session
	packets int // packets handled since the last flush
}

// maxKickBatch bounds the packets whose deliveries wait for one flush.
const maxKickBatch = 64

// addLocked notes that s has new deliveries; s.mu is held.
func (q *kickQueue) addLocked(s *session) {
	if !s.kickQueued {
		s.kickQueued = true
		q.s = append(q.s, s)
	}
}

// flush wakes the writers of the sessions noted since the last flush.
func (q *kickQueue) flush() {
	q.packets = 0
	if len(q.s) == 0 {
		return
	}
	for i, s := range q.s {
		s.mu.Lock()
		s.kickQueued = false
		s.kickLocked()
		s.mu.Unlock()
		q.s[i] = nil
	}
	if cap(q.s) > 1024 {
		q.s = nil
	} else {
		q.s = q.s[:0]
	}
}

// flushKicks flushes the connection's kick queue, if it has one.
func (c *conn) flushKicks() {
	if c.in != nil {
		c.in.scratch.kicks.flush()
	}
}
