package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/packet"
)

// Durability says when a QoS 1 or 2 publication is acknowledged relative to
// writing it to the store.
type Durability int

const (
	// DurabilitySync acknowledges a QoS 1/2 PUBLISH only after it is durable
	// for every persistent session that must receive it. Concurrent
	// publishers share each fsync (group commit). This is the default.
	DurabilitySync Durability = iota
	// DurabilityBatch commits every BatchInterval and acknowledges after
	// the commit: fewer fsyncs, longer acknowledgement latency.
	DurabilityBatch
	// DurabilityNone keeps state in memory while running and writes it all
	// at a graceful shutdown; a crash loses what changed since the start.
	DurabilityNone
)

// String returns "sync", "batch" or "none".
func (d Durability) String() string {
	switch d {
	case DurabilityBatch:
		return "batch"
	case DurabilityNone:
		return "none"
	}
	return "sync"
}

// ParseDurability parses "sync", "batch" or "none".
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "sync", "":
		return DurabilitySync, nil
	case "batch":
		return DurabilityBatch, nil
	case "none":
		return DurabilityNone, nil
	}
	return 0, fmt.Errorf("durability %q: want sync, batch or none", s)
}

// persister connects the broker to its store.
type persister struct {
	st   store.Store
	com  *store.Committer // nil for DurabilityNone
	mode Durability
}

func newPersister(cfg Config) *persister {
	if cfg.Store == nil {
		return nil
	}
	p := &persister{st: cfg.Store, mode: cfg.Durability}
	var committed store.Store = cfg.Store
	if cfg.CommitObserver != nil {
		committed = observedStore{Store: cfg.Store, obs: cfg.CommitObserver}
	}
	switch cfg.Durability {
	case DurabilitySync:
		p.com = store.NewCommitter(committed, store.CommitConfig{Mode: store.CommitSync})
	case DurabilityBatch:
		p.com = store.NewCommitter(committed, store.CommitConfig{Mode: store.CommitBatch, Interval: cfg.BatchInterval})
	}
	return p
}

// CommitObserver is told about every commit of the store's group
// committer: one Store.Apply carrying the operations of many publications
// and sessions (the batch write and its sync), how long it took, how many
// operations it held and whether it failed. It runs on the committer's
// goroutine, so it must return quickly. Set it in Config.CommitObserver;
// when nil, commits are not timed.
type CommitObserver interface {
	ObserveCommit(d time.Duration, ops int, err error)
}

// observedStore times the Apply calls of the group committer.
type observedStore struct {
	store.Store
	obs CommitObserver
}

func (s observedStore) Apply(ctx context.Context, ops []store.Op) error {
	start := time.Now()
	err := s.Store.Apply(ctx, ops)
	s.obs.ObserveCommit(time.Since(start), len(ops), err)
	return err
}

// persisting reports whether state changes are written as they happen.
func (b *Broker) persisting() bool { return b.persist != nil && b.persist.com != nil }

// submit hands ops to the group committer; done (may be nil) runs after the
// commit. It must not be called with a session lock held: done callbacks
// take session locks.
func (b *Broker) submit(ops []store.Op, done func(error)) {
	if !b.persisting() || len(ops) == 0 {
		if done != nil {
			done(nil)
		}
		return
	}
	if done == nil {
		done = b.logStoreError
	}
	b.persist.com.Submit(ops, done)
}

func (b *Broker) logStoreError(err error) {
	if err != nil {
		b.stats.storeErrors.Add(1)
		b.log.Error("store write failed", "err", err)
	}
}

// persistentLocked reports whether the session's state is stored.
func (s *session) persistentLocked() bool {
	return s.b.persist != nil && s.expiry > 0 && s.handler == nil && !s.ended
}

// fullRecordLocked is recordLocked with the change-only state, which is
// written only at a graceful shutdown (see ChangeOnlyConfig).
func (s *session) fullRecordLocked() *store.Session {
	r := s.recordLocked()
	if s.last != nil {
		r.LastPayloads = s.last.list()
	}
	return r
}

// recordLocked returns the durable part of the session, without the
// change-only state.
func (s *session) recordLocked() *store.Session {
	r := &store.Session{ClientID: s.id, Username: s.username, Version: byte(s.version), Expiry: s.expiry}
	if s.conn == nil {
		r.DisconnectedAt = s.disconnectedAt
	}
	for f, o := range s.subs {
		r.Subscriptions = append(r.Subscriptions, store.Subscription{
			Filter: f, QoS: o.qos, NoLocal: o.noLocal, RetainAsPublished: o.rap, RetainHandling: o.rh, SubID: o.subID,
		})
	}
	slices.SortFunc(r.Subscriptions, func(a, b store.Subscription) int {
		switch {
		case a.Filter < b.Filter:
			return -1
		case a.Filter > b.Filter:
			return 1
		}
		return 0
	})
	if s.pendingWill != nil {
		r.Will = &store.Will{Message: toStored(s.pendingWill), Delay: s.pendingWillDelay}
	}
	for id := range s.inQoS2 {
		r.InboundQoS2 = append(r.InboundQoS2, id)
	}
	slices.Sort(r.InboundQoS2)
	return r
}

// sessionOpLocked returns the op that stores the session as it is now, or
// deletes it when it is no longer persistent.
func (s *session) sessionOpLocked() store.Op {
	if !s.persistentLocked() {
		return store.Op{Kind: store.DeleteSession, ClientID: s.id}
	}
	return store.Op{Kind: store.PutSession, ClientID: s.id, Session: s.recordLocked()}
}

// saveSession writes the session record in the background.
func (b *Broker) saveSession(s *session) {
	if !b.persisting() || s.handler != nil {
		return
	}
	s.mu.Lock()
	op := s.sessionOpLocked()
	s.mu.Unlock()
	b.submit([]store.Op{op}, nil)
}

// entryOp returns the op storing delivery d of session s.
func (s *session) entryOpLocked(d *delivery, packetID uint16, released bool) store.Op {
	e := &store.Entry{
		ClientID: s.id, Seq: d.seq, QoS: d.qos, Retain: d.retain,
		SubIDs: d.subIDs.appendTo(nil), PacketID: packetID, Released: released,
	}
	if d.msg != nil {
		e.Msg = toStored(d.msg)
	}
	if d.group != nil {
		e.Group = "$share/" + d.group.Name() + "/" + d.group.Filter()
	}
	return store.Op{Kind: store.PutEntry, ClientID: s.id, Seq: d.seq, Entry: e}
}

func deleteEntryOp(s *session, seq uint64) store.Op {
	return store.Op{Kind: store.DeleteEntry, ClientID: s.id, Seq: seq}
}

func toStored(m *Message) store.Message {
	return store.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain,
		Props: m.Props, ClientID: m.ClientID, Created: m.Created}
}

func fromStored(m *store.Message) *Message {
	out := &Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain,
		Props: m.Props, ClientID: m.ClientID, Created: m.Created}
	out.prepareWire()
	return out
}

// retainedOp returns the op that stores or deletes m as the retained
// message of its topic.
func retainedOp(m *Message) store.Op {
	if len(m.Payload) == 0 {
		return store.Op{Kind: store.DeleteRetained, Topic: m.Topic}
	}
	sm := toStored(m)
	return store.Op{Kind: store.PutRetained, Topic: m.Topic, Retained: &sm}
}

// restore rebuilds sessions, queues, in-flight messages and retained
// messages from the store (Open calls it before serving).
func (b *Broker) restore(ctx context.Context) error {
	snap, err := b.persist.st.Load(ctx)
	if err != nil {
		return fmt.Errorf("load store: %w", err)
	}
	if snap.Quarantined > 0 {
		b.log.Warn("store: corrupt records set aside", "count", snap.Quarantined)
	}
	now := b.now()
	for i := range snap.Retained {
		m := fromStored(&snap.Retained[i])
		if _, live := m.remaining(now); !live {
			continue
		}
		b.router.retained.Set(m.Topic, m)
		b.router.retainedBytes.Add(m.size())
	}
	bySession := make(map[string]*session, len(snap.Sessions))
	var expired []*session
	var wills []*session
	var hadLast []*session // records whose change-only state is to be dropped
	b.sessMu.Lock()
	for i := range snap.Sessions {
		r := &snap.Sessions[i]
		s := b.newSession(r.ClientID)
		s.username = r.Username
		s.info.Store(&ClientInfo{ClientID: r.ClientID, Username: r.Username, Version: packet.Version(r.Version)})
		s.version = packet.Version(r.Version)
		s.expiry = r.Expiry
		s.disconnectedAt = r.DisconnectedAt
		if s.disconnectedAt.IsZero() {
			s.disconnectedAt = now // it was connected when the broker stopped
		}
		for _, sub := range r.Subscriptions {
			o := subOpts{qos: sub.QoS, noLocal: sub.NoLocal, rap: sub.RetainAsPublished, rh: sub.RetainHandling, subID: sub.SubID}
			if _, err := b.router.subscribe(sub.Filter, s, o); err != nil {
				b.log.Warn("store: subscription not restored", "client", r.ClientID, "filter", sub.Filter, "err", err)
				continue
			}
			if s.subs == nil {
				s.subs = make(map[string]subOpts)
			}
			s.subs[sub.Filter] = o
		}
		for _, id := range r.InboundQoS2 {
			if s.inQoS2 == nil {
				s.inQoS2 = make(map[uint16]struct{})
			}
			s.inQoS2[id] = struct{}{}
		}
		if r.Will != nil {
			s.pendingWill = fromStored(&r.Will.Message)
			s.pendingWillDelay = r.Will.Delay
		}
		if len(r.LastPayloads) > 0 {
			hadLast = append(hadLast, s)
			if b.changeOnly != nil && !s.unchangedExempt {
				s.last = loadLastPayloads(r.LastPayloads, b.changeOnly.max)
			}
		}
		b.sessions[s.id] = s
		bySession[s.id] = s
		if s.expiry != 0xFFFFFFFF && !now.Before(s.disconnectedAt.Add(time.Duration(s.expiry)*time.Second)) {
			expired = append(expired, s)
		} else if s.pendingWill != nil {
			wills = append(wills, s)
		}
	}
	b.sessMu.Unlock()
	for i := range snap.Entries {
		e := &snap.Entries[i]
		s := bySession[e.ClientID]
		if s == nil {
			continue
		}
		d := delivery{msg: fromStored(&e.Msg), qos: e.QoS, retain: e.Retain, seq: e.Seq}
		for _, id := range e.SubIDs {
			d.subIDs.add(id)
		}
		s.mu.Lock()
		s.nextSeq = max(s.nextSeq, e.Seq)
		if e.PacketID != 0 {
			if s.inflight == nil {
				s.inflight = make(map[uint16]outFlight)
			}
			s.inflight[e.PacketID] = outFlight{d: d, released: e.Released}
			s.nextID = max(s.nextID, e.PacketID)
		} else {
			s.queue.push(d)
		}
		s.mu.Unlock()
	}
	// Timers continue from the persisted deadlines.
	for _, s := range bySession {
		s.mu.Lock()
		if s.expiry != 0xFFFFFFFF && !slices.Contains(expired, s) {
			left := s.disconnectedAt.Add(time.Duration(s.expiry) * time.Second).Sub(now)
			s.expireTimer = time.AfterFunc(left, func() { b.expire(s) })
		}
		s.mu.Unlock()
	}
	for _, s := range wills {
		s.mu.Lock()
		delay := time.Duration(min(s.pendingWillDelay, s.expiry)) * time.Second
		left := s.disconnectedAt.Add(delay).Sub(now)
		s.willTimer = time.AfterFunc(max(left, 0), func() { b.fireWill(s) })
		s.mu.Unlock()
	}
	if len(hadLast) > 0 && b.persist.mode != DurabilityNone {
		// The stored change-only state is true now; from here on it is
		// not updated until the next graceful shutdown, so it goes: after
		// a crash, a stale state could skip a changed value.
		ops := make([]store.Op, 0, len(hadLast))
		for _, s := range hadLast {
			s.mu.Lock()
			ops = append(ops, store.Op{Kind: store.PutSession, ClientID: s.id, Session: s.recordLocked()})
			s.mu.Unlock()
		}
		if err := b.persist.st.Apply(ctx, ops); err != nil {
			return fmt.Errorf("clear change-only state: %w", err)
		}
	}
	for _, s := range expired {
		b.expire(s)
	}
	if b.persist.mode == DurabilityNone {
		// The snapshot is in memory now; an old one left on disk would be
		// replayed after a crash. The next graceful shutdown writes anew.
		ops := make([]store.Op, 0, len(snap.Sessions)+len(snap.Retained))
		for i := range snap.Sessions {
			ops = append(ops, store.Op{Kind: store.DeleteSession, ClientID: snap.Sessions[i].ClientID})
		}
		for i := range snap.Retained {
			ops = append(ops, store.Op{Kind: store.DeleteRetained, Topic: snap.Retained[i].Topic})
		}
		if err := b.persist.st.Apply(ctx, ops); err != nil {
			return fmt.Errorf("clear store snapshot: %w", err)
		}
	}
	b.log.Info("state restored", "sessions", len(snap.Sessions), "entries", len(snap.Entries), "retained", len(snap.Retained))
	return nil
}

// saveAll writes the whole state (DurabilityNone, at shutdown).
func (b *Broker) saveAll(ctx context.Context) error {
	var ops []store.Op
	b.sessMu.Lock()
	for _, s := range b.sessions {
		s.mu.Lock()
		if s.persistentLocked() {
			if s.conn != nil && s.disconnectedAt.IsZero() {
				s.disconnectedAt = b.now()
			}
			ops = append(ops, store.Op{Kind: store.PutSession, ClientID: s.id, Session: s.fullRecordLocked()})
			for id, f := range s.inflight {
				if f.d.msg != nil || f.released {
					ops = append(ops, s.entryOpLocked(&f.d, id, f.released))
				}
			}
			for i := 0; i < s.queue.len(); i++ {
				if d := s.queue.at(i); d.qos > 0 {
					ops = append(ops, s.entryOpLocked(d, 0, false))
				}
			}
		}
		s.mu.Unlock()
	}
	b.sessMu.Unlock()
	b.router.retained.Match("#", func(_ string, m *Message) bool {
		ops = append(ops, retainedOp(m))
		return true
	})
	return b.persist.st.Apply(ctx, ops)
}

// Open returns a broker with cfg whose state is restored from cfg.Store
// (sessions, subscriptions, queued and in-flight messages, retained
// messages, pending wills). New does not read the store; use Open when
// cfg.Store is set.
func Open(ctx context.Context, cfg Config) (*Broker, error) {
	b := New(cfg)
	if b.persist == nil {
		return b, nil
	}
	if err := b.restore(ctx); err != nil {
		b.Shutdown(context.Background())
		return nil, err
	}
	return b, nil
}

// saveLastPayloads writes the change-only state of the persistent sessions
// (at shutdown, after every connection ended).
func (b *Broker) saveLastPayloads() {
	if b.changeOnly == nil {
		return
	}
	var ops []store.Op
	b.sessMu.Lock()
	for _, s := range b.sessions {
		s.mu.Lock()
		if s.persistentLocked() && s.last != nil && s.last.len() > 0 {
			ops = append(ops, store.Op{Kind: store.PutSession, ClientID: s.id, Session: s.fullRecordLocked()})
		}
		s.mu.Unlock()
	}
	b.sessMu.Unlock()
	b.submit(ops, nil)
}

// closeStore flushes and closes the store at shutdown.
func (b *Broker) closeStore(ctx context.Context) error {
	if b.persist == nil {
		return nil
	}
	var errs []error
	if b.persist.com != nil {
		b.saveLastPayloads()
		errs = append(errs, b.persist.com.Close(ctx))
	} else {
		errs = append(errs, b.saveAll(ctx))
	}
	errs = append(errs, b.persist.st.Close())
	return errors.Join(errs...)
}
