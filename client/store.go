package client

import (
	"slices"
	"sync"

	"github.com/mqtt5go/mqtt5/packet"
)

// SessionStore holds the client side of the session state (section 4.1):
// outbound QoS 1 and 2 messages not yet completed, with their stage, and
// inbound QoS 2 packet identifiers delivered (or acknowledged with PUBREC)
// but not yet released by PUBREL. The Client keeps its working copy in memory and
// writes every change through to the store; it loads the store when it
// connects for the first time, so a second Client given the same store (and
// ClientID) resumes the session, including messages in flight.
//
// The Client calls the store from its protocol goroutine, one call at a
// time, and always before it sends the packet the change stands for
// (PUBLISH, PUBREL, PUBREC, PUBCOMP) or, for an inbound QoS 2 identifier,
// before a handler gets the message: a persistent store that makes each
// change durable before returning (FileStore does) loses nothing in a
// crash. Implementations need no locking for a single Client; every call
// delays the protocol goroutine, so it should not take long.
// The packets passed in are owned by the Client; a store that keeps them
// beyond the call must copy what it keeps (MemoryStore keeps references,
// which is safe because the Client does not modify a stored packet).
//
// MemoryStore keeps the state in memory (it survives reconnections and a
// new Client in the same process); FileStore keeps it on disk (it survives
// a restart of the process).
type SessionStore interface {
	// PutOutbound records outbound message id at its current stage: a
	// PUBLISH (QoS 1 or 2, not yet acknowledged) or, for QoS 2 after PUBREC,
	// pubrel true. seq orders messages by first transmission (resent in
	// that order [MQTT-4.6.0-1]).
	PutOutbound(id uint16, seq uint64, p *packet.Publish, pubrel bool) error
	// DeleteOutbound forgets outbound message id (completed or failed).
	DeleteOutbound(id uint16) error
	// PutInbound records that a QoS 2 message with this id was received
	// and handed to a handler, at the latest before PUBREC (one call per
	// message); DeleteInbound forgets it (PUBREL, or before an error
	// PUBREC).
	PutInbound(id uint16) error
	DeleteInbound(id uint16) error
	// Load returns the stored state, outbound messages in seq order.
	Load() (out []StoredMessage, in []uint16, err error)
	// Reset discards the whole session state (clean start, or the server
	// had no session).
	Reset() error
}

// StoredMessage is one outbound message of a SessionStore.
type StoredMessage struct {
	ID      uint16
	Seq     uint64
	Publish *packet.Publish
	Pubrel  bool // PUBREC received: only PUBREL/PUBCOMP remain
}

// MemoryStore is a SessionStore in memory. It is safe for concurrent use,
// so Client values may share it one after the other.
type MemoryStore struct {
	mu  sync.Mutex
	out map[uint16]StoredMessage
	in  map[uint16]struct{}
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// PutOutbound implements SessionStore.
func (s *MemoryStore) PutOutbound(id uint16, seq uint64, p *packet.Publish, pubrel bool) error {
	s.mu.Lock()
	if s.out == nil {
		s.out = make(map[uint16]StoredMessage)
	}
	s.out[id] = StoredMessage{ID: id, Seq: seq, Publish: p, Pubrel: pubrel}
	s.mu.Unlock()
	return nil
}

// DeleteOutbound implements SessionStore.
func (s *MemoryStore) DeleteOutbound(id uint16) error {
	s.mu.Lock()
	delete(s.out, id)
	s.mu.Unlock()
	return nil
}

// PutInbound implements SessionStore.
func (s *MemoryStore) PutInbound(id uint16) error {
	s.mu.Lock()
	if s.in == nil {
		s.in = make(map[uint16]struct{})
	}
	s.in[id] = struct{}{}
	s.mu.Unlock()
	return nil
}

// DeleteInbound implements SessionStore.
func (s *MemoryStore) DeleteInbound(id uint16) error {
	s.mu.Lock()
	delete(s.in, id)
	s.mu.Unlock()
	return nil
}

// Load implements SessionStore.
func (s *MemoryStore) Load() ([]StoredMessage, []uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]StoredMessage, 0, len(s.out))
	for _, m := range s.out {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b StoredMessage) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	in := make([]uint16, 0, len(s.in))
	for id := range s.in {
		in = append(in, id)
	}
	slices.Sort(in)
	return out, in, nil
}

// Reset implements SessionStore.
func (s *MemoryStore) Reset() error {
	s.mu.Lock()
	clear(s.out)
	clear(s.in)
	s.mu.Unlock()
	return nil
}
