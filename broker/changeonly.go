package broker

import (
	"strings"

	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/topic"
)

// ChangeOnlyConfig turns on change-only delivery: for topics matching
// Patterns, the broker remembers per subscriber session and topic a 64-bit
// hash (FNV-1a) of the last payload it queued for the session, and does
// not deliver a message whose payload has the same hash. The publisher is
// acknowledged as usual (a QoS 1/2 message skipped for every subscriber is
// still Success, not No Matching Subscribers).
//
// Retained messages sent because of a SUBSCRIBE are always delivered (the
// subscriber asked for the current value) and update the state.
// Subscribers through the host program's Broker.Subscribe always get every
// message. The state belongs to the session: it survives reconnections
// that resume the session, ends with it, and with a Store it is written at
// a graceful shutdown and read back by Open. It is not written while the
// broker runs (that would cost a store write per changed value); after a
// crash it starts empty, so the first message on each topic is delivered
// again — a repeat, never a lost change.
type ChangeOnlyConfig struct {
	// Patterns are the topic filters (wildcards allowed, no $share) whose
	// topics get change-only delivery. Empty: off. Invalid filters are
	// logged and ignored.
	Patterns []string

	// MaxTopicsPerSession bounds the topics remembered per session.
	// Default 1,000. Beyond it the least recently used topic (delivered or
	// skipped longest ago) is forgotten, and its next message is delivered
	// whatever its payload.
	MaxTopicsPerSession int

	// ExemptClientPrefix: sessions whose client identifier starts with it
	// always get every message (bridges). Default "mqtt5-bridge-".
	ExemptClientPrefix string
}

// DefaultExemptClientPrefix is the default ChangeOnlyConfig.ExemptClientPrefix.
const DefaultExemptClientPrefix = "mqtt5-bridge-"

func (c ChangeOnlyConfig) withDefaults() ChangeOnlyConfig {
	if c.MaxTopicsPerSession <= 0 {
		c.MaxTopicsPerSession = 1000
	}
	if c.ExemptClientPrefix == "" {
		c.ExemptClientPrefix = DefaultExemptClientPrefix
	}
	return c
}

// changeOnly is ChangeOnlyConfig compiled: the patterns in a trie.
type changeOnly struct {
	patterns topic.Tree[int, struct{}]
	max      int
	prefix   string
}

// newChangeOnly returns nil when no valid pattern is configured.
func (b *Broker) newChangeOnly() *changeOnly {
	cfg := &b.cfg.ChangeOnly
	co := &changeOnly{max: cfg.MaxTopicsPerSession, prefix: cfg.ExemptClientPrefix}
	n := 0
	for i, p := range cfg.Patterns {
		_, _, shared, err := topic.ParseShared(p)
		if err == nil && !shared {
			err = b.topicLimits.ValidateFilter(p)
			if err == nil {
				_, err = co.patterns.Subscribe(p, i, struct{}{})
			}
		}
		if err != nil || shared {
			b.log.Error("change-only pattern ignored", "pattern", p, "err", err)
			continue
		}
		n++
	}
	if n == 0 {
		return nil
	}
	return co
}

// exempt reports whether a session with this identifier gets every
// message: bridges, and in-process subscribers (no identifier).
func (co *changeOnly) exempt(clientID string) bool {
	return clientID == "" || strings.HasPrefix(clientID, co.prefix)
}

// matches reports whether t is under change-only delivery; res is scratch.
func (co *changeOnly) matches(t string, res *topic.MatchResult[int, struct{}]) bool {
	res.Reset()
	co.patterns.Match(t, res)
	return len(res.Subs) > 0
}

// payloadHash is the hash compared by change-only delivery (stable across
// restarts: it is stored).
func payloadHash(p []byte) uint64 { return fnv1a(fnvOffset, p) }

// deliverIfChanged queues d unless its payload (hash h) is the last one
// queued for the session on the topic. It reports whether the delivery
// waits for a store commit (see deliverLocked) and whether it was skipped.
func (s *session) deliverIfChanged(d delivery, ops *[]store.Op, h uint64, kq *kickQueue) (waits, skipped bool) {
	t := d.msg.Topic
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last != nil && s.last.unchanged(t, h) {
		s.b.stats.unchanged.Add(1)
		return false, true
	}
	waits, queued := s.deliverLocked(d, ops, kq)
	if queued {
		s.rememberLocked(t, h)
	}
	return waits, false
}

// rememberLocked records h as the last payload queued on topic t.
func (s *session) rememberLocked(t string, h uint64) {
	if s.last == nil {
		s.last = newLastPayloads()
	}
	s.last.record(t, h, s.b.changeOnly.max)
}

// lastPayloads maps topics to the hash of their last payload, bounded,
// evicting the least recently used topic. Entries live in one slice linked
// into a recency list by index, so a steady state does not allocate.
type lastPayloads struct {
	idx        map[string]int32
	ents       []lastEntry
	head, tail int32 // most and least recently used, -1 when empty
}

type lastEntry struct {
	topic      string
	hash       uint64
	prev, next int32 // neighbours towards head and tail, -1 at the ends
}

func newLastPayloads() *lastPayloads {
	return &lastPayloads{idx: make(map[string]int32), head: -1, tail: -1}
}

func (l *lastPayloads) len() int { return len(l.ents) }

// unchanged reports whether h is the hash recorded for t; a hit counts as
// a use.
func (l *lastPayloads) unchanged(t string, h uint64) bool {
	i, ok := l.idx[t]
	if !ok || l.ents[i].hash != h {
		return false
	}
	l.touch(i)
	return true
}

// record sets the hash of t, making it the most recently used topic, and
// forgets the least recently used one beyond limit topics.
func (l *lastPayloads) record(t string, h uint64, limit int) {
	if i, ok := l.idx[t]; ok {
		l.ents[i].hash = h
		l.touch(i)
		return
	}
	// The topic may point into a message's buffer (payload included):
	// keep a copy of its own.
	t = strings.Clone(t)
	var i int32
	if len(l.ents) < limit {
		i = int32(len(l.ents))
		l.ents = append(l.ents, lastEntry{topic: t, hash: h, prev: -1, next: -1})
	} else {
		i = l.tail
		l.unlink(i)
		delete(l.idx, l.ents[i].topic)
		l.ents[i] = lastEntry{topic: t, hash: h, prev: -1, next: -1}
	}
	l.idx[t] = i
	l.pushFront(i)
}

func (l *lastPayloads) touch(i int32) {
	if l.head == i {
		return
	}
	l.unlink(i)
	l.pushFront(i)
}

func (l *lastPayloads) unlink(i int32) {
	e := &l.ents[i]
	if e.prev >= 0 {
		l.ents[e.prev].next = e.next
	} else {
		l.head = e.next
	}
	if e.next >= 0 {
		l.ents[e.next].prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (l *lastPayloads) pushFront(i int32) {
	e := &l.ents[i]
	e.prev, e.next = -1, l.head
	if l.head >= 0 {
		l.ents[l.head].prev = i
	}
	l.head = i
	if l.tail < 0 {
		l.tail = i
	}
}

// list returns the entries least recently used first, as stored.
func (l *lastPayloads) list() []store.PayloadHash {
	out := make([]store.PayloadHash, 0, len(l.ents))
	for i := l.tail; i >= 0; i = l.ents[i].prev {
		out = append(out, store.PayloadHash{Topic: l.ents[i].topic, Hash: l.ents[i].hash})
	}
	return out
}

// loadLastPayloads rebuilds the state from its stored list (least
// recently used first), keeping the limit most recent entries.
func loadLastPayloads(list []store.PayloadHash, limit int) *lastPayloads {
	if len(list) == 0 {
		return nil
	}
	l := newLastPayloads()
	for _, e := range list {
		l.record(e.Topic, e.Hash, limit)
	}
	return l
}
