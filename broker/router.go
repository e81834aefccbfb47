package broker

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/topic"
)

// router matches topics to sessions (the subscription trie) and keeps the
// retained messages. Both structures let publishers match without waiting
// for subscribe and unsubscribe traffic (see package topic).
type router struct {
	tree          topic.Tree[*session, subOpts]
	retained      topic.Retained[*Message]
	retainedBytes atomic.Int64
	retainedMu    sync.Mutex // serialises retained writers for the bounds
}

func (r *router) subscribe(filter string, s *session, o subOpts) (bool, error) {
	return r.tree.Subscribe(filter, s, o)
}

func (r *router) unsubscribe(filter string, s *session) bool {
	return r.tree.Unsubscribe(filter, s)
}

// target is one session a message goes to, before merging overlapping
// subscriptions.
type target struct {
	s *session
	d delivery
}

// routeScratch is per-publisher scratch space, reused so that routing does
// not allocate in steady state.
type routeScratch struct {
	m       topic.MatchResult[*session, subOpts]
	co      topic.MatchResult[int, struct{}] // change-only patterns
	targets []target
	ops     []store.Op   // store operations the publication needs, for the caller to submit
	waiting []*session   // sessions holding a delivery until those ops commit
	gate    *atomic.Bool // their gate, true until the commit
	// kq, when not nil, collects the sessions to wake instead of waking
	// each at once (a client connection's read batch, see kickQueue);
	// kicks is the queue of a connection's own scratch.
	kq    *kickQueue
	kicks kickQueue
}

var scratchPool = sync.Pool{New: func() any { return new(routeScratch) }}

func byTargetSession(a, b target) int {
	switch {
	case a.s.seq < b.s.seq:
		return -1
	case a.s.seq > b.s.seq:
		return 1
	}
	return 0
}

// publish stores m if retained and delivers it to every matching session.
// from is the publishing session (nil for the broker itself). It returns
// the number of sessions the message was queued for. With persistence on,
// the store operations that make the publication durable are left in
// sc.ops for the caller to submit (and to acknowledge after their commit).
func (b *Broker) publish(m *Message, from *session, sc *routeScratch) int {
	m.prepareWire()
	sc.ops = sc.ops[:0]
	clear(sc.waiting)
	sc.waiting = sc.waiting[:0]
	sc.gate = nil
	var ops *[]store.Op
	if b.persisting() {
		ops = &sc.ops
		if m.QoS > 0 {
			// Deliveries to persistent sessions wait for the commit of
			// the publication: the store then records "queued" before
			// the writer records "in flight", never the other way round.
			sc.gate = new(atomic.Bool)
			sc.gate.Store(true)
		}
	}
	if m.Retain {
		if b.storeRetained(m) {
			if ops != nil {
				*ops = append(*ops, retainedOp(m))
			}
			b.hooks.retainedChanged(m)
		}
	}
	var f routeFilter
	if b.changeOnly != nil || b.conf().EchoSuppression.Property != "" {
		f = b.routeFilterFor(m, sc)
	}
	sc.m.Reset()
	b.router.tree.Match(m.Topic, &sc.m)
	targets := sc.targets[:0]
	for _, sub := range sc.m.Subs {
		o := &sub.Value
		if o.noLocal && sub.Sub == from {
			continue // [MQTT-3.8.3-3]
		}
		if b.recvAuth != nil && !b.mayReceive(sub.Sub, m.Topic) {
			continue
		}
		d := delivery{msg: m, qos: min(m.QoS, o.qos), retain: m.Retain && o.rap, gate: sc.gate}
		// [MQTT-3.3.1-12] RETAIN is cleared unless Retain As Published
		// [MQTT-3.3.1-13].
		d.subIDs.first = o.subID
		targets = append(targets, target{sub.Sub, d})
	}
	if len(targets) > 1 {
		// One copy per session: the highest QoS of its matching
		// subscriptions, with every Subscription Identifier [MQTT-3.3.4-3]
		// [MQTT-3.3.4-5].
		slices.SortFunc(targets, byTargetSession)
		w := 0
		for i := 1; i < len(targets); i++ {
			t := &targets[i]
			if t.s == targets[w].s {
				cur := &targets[w].d
				cur.qos = max(cur.qos, t.d.qos)
				cur.retain = cur.retain || t.d.retain
				cur.subIDs.add(t.d.subIDs.first)
				continue
			}
			w++
			targets[w] = *t
		}
		targets = targets[:w+1]
	}
	n := 0
	for i := range targets {
		t := &targets[i]
		var waits bool
		if f.on {
			var counted bool
			if waits, counted = b.deliverFiltered(t.s, t.d, ops, &f, sc.kq); !counted {
				targets[i] = target{}
				continue
			}
		} else {
			waits = t.s.deliver(t.d, ops, sc.kq)
		}
		if waits {
			sc.waiting = append(sc.waiting, t.s)
		}
		targets[i] = target{}
		n++
	}
	sc.targets = targets[:0]
	for _, g := range sc.m.Shared {
		mem, ok := b.pickShared(g, m, nil)
		if ok && f.echo && b.isEcho(m, mem.Sub) {
			// Another member of the group, if there is one.
			b.stats.echoes.Add(1)
			mem, ok = b.pickShared(g, m, mem.Sub)
		}
		if !ok || (b.recvAuth != nil && !b.mayReceive(mem.Sub, m.Topic)) {
			continue
		}
		d := delivery{msg: m, qos: min(m.QoS, mem.Value.qos), retain: m.Retain && mem.Value.rap, group: g, gate: sc.gate}
		d.subIDs.first = mem.Value.subID
		var waits bool
		if f.on {
			waits, _ = b.deliverFiltered(mem.Sub, d, ops, &f, sc.kq)
		} else {
			waits = mem.Sub.deliver(d, ops, sc.kq)
		}
		if waits {
			sc.waiting = append(sc.waiting, mem.Sub)
		}
		n++
	}
	if len(sc.waiting) == 0 {
		sc.gate = nil
	}
	return n
}

// routeFilter is what the optional per-session filters (echo suppression,
// change-only delivery) need to know of one message, decided once before
// the fan-out; a broker without them skips all of it on one branch.
type routeFilter struct {
	on    bool   // echo || track
	echo  bool   // the message carries the echo-suppression property
	track bool   // change-only delivery applies to its topic
	hash  uint64 // payload hash, when track
}

func (b *Broker) routeFilterFor(m *Message, sc *routeScratch) routeFilter {
	var f routeFilter
	f.echo = b.conf().EchoSuppression.Property != "" && b.echoOf(m)
	if co := b.changeOnly; co != nil && co.matches(m.Topic, &sc.co) {
		f.track, f.hash = true, payloadHash(m.Payload)
	}
	f.on = f.echo || f.track
	return f
}

// deliverFiltered delivers d to s unless a filter of f skips it. counted
// is false when s is the message's echo target, which does not count as a
// matching subscriber; a delivery skipped as unchanged does.
func (b *Broker) deliverFiltered(s *session, d delivery, ops *[]store.Op, f *routeFilter, kq *kickQueue) (waits, counted bool) {
	if f.echo && b.isEcho(d.msg, s) {
		b.stats.echoes.Add(1)
		return false, false
	}
	if f.track && !s.unchangedExempt {
		waits, _ = s.deliverIfChanged(d, ops, f.hash, kq)
		return waits, true
	}
	return s.deliver(d, ops, kq), true
}

// mayReceive asks the ReceiveAuthorizer whether s may receive a message on
// topicName.
func (b *Broker) mayReceive(s *session, topicName string) bool {
	info := s.info.Load()
	if info == nil {
		return true // in-process subscriber
	}
	return b.recvAuth.CanReceive(context.Background(), info, topicName)
}

// submitPublication submits the store operations publish left in sc; done
// (may be nil) runs after the commit, once the deliveries held for it have
// been released.
func (b *Broker) submitPublication(sc *routeScratch, done func(error)) {
	if len(sc.ops) == 0 {
		if done != nil {
			done(nil)
		}
		return
	}
	gate, waiting := sc.gate, slices.Clone(sc.waiting)
	b.submit(slices.Clone(sc.ops), func(err error) {
		if gate != nil {
			committed(gate, waiting)
		}
		if done != nil {
			done(err)
		} else {
			b.logStoreError(err)
		}
	})
}

// committed runs after a publication's store commit: deliveries held for
// it may now be written.
func committed(gate *atomic.Bool, waiting []*session) {
	gate.Store(false)
	for _, s := range waiting {
		s.mu.Lock()
		s.kickLocked()
		s.mu.Unlock()
	}
}

// pickShared chooses the member of g that receives m, preferring members
// whose client is connected; exclude is skipped (a member that is leaving).
func (b *Broker) pickShared(g *topic.SharedGroup[*session, subOpts], m *Message, exclude *session) (topic.Member[*session, subOpts], bool) {
	var none topic.Member[*session, subOpts]
	members := g.Members()
	n := members.Len()
	if n == 0 {
		return none, false
	}
	var start uint64
	switch b.conf().SharedStrategy {
	case SharedRandom:
		start = rand.Uint64()
	case SharedHashClient:
		start = hashString(m.ClientID)
	case SharedHashTopic:
		start = hashString(m.Topic)
	default:
		start = g.Counter().Add(1) - 1
	}
	var fallback *topic.Member[*session, subOpts]
	for i := 0; i < n; i++ {
		mem := members.At(int((start + uint64(i)) % uint64(n)))
		if mem.Sub == exclude {
			continue
		}
		if mem.Sub.online.Load() {
			return mem, true
		}
		if fallback == nil {
			fallback = &mem
		}
	}
	if fallback != nil {
		return *fallback, true
	}
	return none, false
}

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// redispatch sends deliveries taken from a leaving shared-subscription
// member to other members of their groups; what no other member can take
// goes back to from (when its session lives on).
func (b *Broker) redispatch(ds []delivery, from *session) {
	if len(ds) == 0 {
		return
	}
	var ops []store.Op
	var opp *[]store.Op
	if b.persisting() {
		opp = &ops
	}
	for _, d := range ds {
		d.gate = nil // its publication's commit has been submitted long since
		if from != nil && opp != nil {
			ops = append(ops, deleteEntryOp(from, d.seq))
		}
		if mem, ok := b.pickShared(d.group, d.msg, from); ok {
			d.qos = min(d.msg.QoS, mem.Value.qos)
			d.subIDs = subIDs{first: mem.Value.subID}
			mem.Sub.deliver(d, opp, nil)
			continue
		}
		if from != nil {
			from.deliver(d, opp, nil)
		}
	}
	b.submit(ops, nil)
}

// storeRetained replaces, stores or deletes the retained message for m's
// topic [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7].
// It reports whether the retained state changed.
func (b *Broker) storeRetained(m *Message) bool {
	r := &b.router
	r.retainedMu.Lock()
	defer r.retainedMu.Unlock()
	old, had := r.retained.Get(m.Topic)
	if len(m.Payload) == 0 {
		if had {
			r.retained.Delete(m.Topic)
			r.retainedBytes.Add(-old.size())
		}
		return had
	}
	delta := m.size()
	if had {
		delta -= old.size()
	} else if !within(r.retained.Len(), b.conf().Limits.MaxRetainedMessages) {
		b.log.Debug("retained message limit reached; message not retained", "topic", m.Topic)
		return false
	}
	if lim := b.conf().Limits.MaxRetainedBytes; lim >= 0 && r.retainedBytes.Load()+delta > lim { // negative: no bound
		b.log.Debug("retained bytes limit reached; message not retained", "topic", m.Topic)
		return false
	}
	r.retained.Set(m.Topic, m)
	r.retainedBytes.Add(delta)
	return true
}

// sendRetained queues the retained messages matching filter for s, with
// the RETAIN flag set [MQTT-3.3.1-9].
func (b *Broker) sendRetained(s *session, filter string, o subOpts) {
	s.mu.Lock()
	b.sendRetainedLocked(s, filter, o, nil)
	s.mu.Unlock()
}

// sendRetainedLocked queues the retained messages; ops, when not nil,
// receives the store operations for a persistent session.
func (b *Broker) sendRetainedLocked(s *session, filter string, o subOpts, ops *[]store.Op) {
	now := b.now()
	var expired []string
	co := b.changeOnly
	if s.unchangedExempt {
		co = nil
	}
	var coRes *topic.MatchResult[int, struct{}]
	if co != nil {
		coRes = new(topic.MatchResult[int, struct{}])
	}
	b.router.retained.Match(filter, func(t string, m *Message) bool {
		if _, ok := m.remaining(now); !ok {
			expired = append(expired, t)
			return true
		}
		d := delivery{msg: m, qos: min(m.QoS, o.qos), retain: true}
		d.subIDs.first = o.subID
		_, queued := s.deliverLocked(d, ops, nil)
		if queued && co != nil && co.matches(t, coRes) {
			// Always delivered (the subscriber asked for the current
			// value); a live repeat of it is then skipped.
			s.rememberLocked(t, payloadHash(m.Payload))
		}
		return true
	})
	// Lock order session → retainedMu is safe: nothing holding retainedMu
	// takes a session lock.
	for _, t := range expired {
		b.deleteRetainedIfExpired(t)
	}
}

func (b *Broker) deleteRetainedIfExpired(t string) {
	r := &b.router
	r.retainedMu.Lock()
	defer r.retainedMu.Unlock()
	if m, ok := r.retained.Get(t); ok {
		if _, live := m.remaining(b.now()); !live {
			r.retained.Delete(t)
			r.retainedBytes.Add(-m.size())
		}
	}
}
