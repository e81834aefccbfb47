package broker

// Internal state the hostile-client tests (hostile_test.go, package
// broker_test) check their bounds against.

// SessionQueueForTest reports the outbound queue (messages and bytes) and
// the in-flight messages of the session id; ok is false when there is no
// such session.
func (b *Broker) SessionQueueForTest(id string) (msgs int, bytes int64, inflight int, ok bool) {
	b.sessMu.Lock()
	s := b.sessions[id]
	b.sessMu.Unlock()
	if s == nil {
		return 0, 0, 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue.len(), s.queue.bytes, len(s.inflight), true
}

// RetainedBytesForTest returns the bytes counted against
// Limits.MaxRetainedBytes.
func (b *Broker) RetainedBytesForTest() int64 { return b.router.retainedBytes.Load() }
