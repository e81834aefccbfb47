package store

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// memStore keeps encoded records in maps. It validates and encodes exactly
// as the on-disk stores do, so a test that passes with it does not depend on
// a record the disk would refuse, and callers can reuse what they passed to
// Apply.
type memStore struct {
	mu       sync.RWMutex
	closed   bool
	sessions map[string][]byte
	entries  map[string]map[uint64][]byte
	retained map[string][]byte
}

// NewMemory returns a Store that keeps everything in memory: for tests and
// for running the broker without persistence.
func NewMemory() Store {
	return &memStore{
		sessions: make(map[string][]byte),
		entries:  make(map[string]map[uint64][]byte),
		retained: make(map[string][]byte),
	}
}

// Apply implements Store.
func (m *memStore) Apply(ctx context.Context, ops []Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	kops, err := encodeOps(ops)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for i := range kops {
		op := &kops[i]
		switch op.op {
		case PutSession:
			m.sessions[op.clientID] = op.val
		case DeleteSession:
			if op.kind == kvDelete {
				delete(m.sessions, op.clientID)
			} else {
				delete(m.entries, op.clientID)
			}
		case PutEntry:
			es := m.entries[op.clientID]
			if es == nil {
				es = make(map[uint64][]byte)
				m.entries[op.clientID] = es
			}
			es[op.seq] = op.val
		case DeleteEntry:
			if es := m.entries[op.clientID]; es != nil {
				delete(es, op.seq)
				if len(es) == 0 {
					delete(m.entries, op.clientID)
				}
			}
		case PutRetained:
			m.retained[op.topic] = op.val
		case DeleteRetained:
			delete(m.retained, op.topic)
		}
	}
	return nil
}

// Load implements Store. The order is that of the on-disk stores.
func (m *memStore) Load(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	snap := &Snapshot{}
	// Records are immutable once stored; decoding aliases them safely.
	for id, v := range m.sessions {
		s, err := decodeSession(id, v)
		if err != nil {
			snap.Quarantined++
			continue
		}
		snap.Sessions = append(snap.Sessions, s)
	}
	for id, es := range m.entries {
		for seq, v := range es {
			e, err := decodeEntry(id, seq, v)
			if err != nil {
				snap.Quarantined++
				continue
			}
			snap.Entries = append(snap.Entries, e)
		}
	}
	for topic, v := range m.retained {
		r, err := decodeRetained(topic, v)
		if err != nil {
			snap.Quarantined++
			continue
		}
		snap.Retained = append(snap.Retained, r)
	}
	slices.SortFunc(snap.Sessions, func(a, b Session) int { return cmp.Compare(a.ClientID, b.ClientID) })
	slices.SortFunc(snap.Entries, func(a, b Entry) int {
		if c := cmp.Compare(a.ClientID, b.ClientID); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	slices.SortFunc(snap.Retained, func(a, b Message) int { return cmp.Compare(a.Topic, b.Topic) })
	return snap, nil
}

// Close implements Store.
func (m *memStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
