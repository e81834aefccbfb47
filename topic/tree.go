package topic

import (
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Member is one subscriber of a filter or of a shared group, with the value
// it subscribed with.
type Member[S comparable, V any] struct {
	Sub   S
	Value V
}

// Subscription is a non-shared subscription found by Tree.Match.
type Subscription[S comparable, V any] struct {
	Sub    S
	Value  V
	Filter string // the subscribed filter, exactly as given to Subscribe
}

// MatchResult receives the subscriptions that match a topic. It is owned by
// the caller and meant to be reused: Tree.Match appends to it, Reset empties
// it and keeps its capacity, so matching in steady state does not allocate.
//
// A subscriber appears once per matching filter: a subscriber of both "a/+"
// and "a/#" appears twice for "a/b", with each filter and value (MQTT 5 lets
// the server deliver one copy per subscription or one copy in total, with the
// subscription identifiers of all of them; that choice is the caller's).
type MatchResult[S comparable, V any] struct {
	Subs   []Subscription[S, V] // non-shared subscriptions
	Shared []*SharedGroup[S, V] // shared groups, each once per matching group
}

// Reset empties m, keeping its capacity. It zeroes the old entries so that m
// keeps no subscriber or value alive.
func (m *MatchResult[S, V]) Reset() {
	clear(m.Subs)
	m.Subs = m.Subs[:0]
	clear(m.Shared)
	m.Shared = m.Shared[:0]
}

// SharedGroup is a shared subscription group: the subscribers of
// "$share/{Name}/{Filter}". The pointer is stable for the life of the group,
// from its first member's Subscribe to its last member's Unsubscribe (a later
// Subscribe creates a new group), so it can key per-group state.
type SharedGroup[S comparable, V any] struct {
	name    string
	filter  string
	members memberSet[S, V]
	next    atomic.Uint64
}

// Name returns the ShareName.
func (g *SharedGroup[S, V]) Name() string { return g.name }

// Filter returns the inner topic filter (without "$share/{Name}/").
func (g *SharedGroup[S, V]) Filter() string { return g.filter }

// Members returns an immutable snapshot of the members. It may be empty when
// the last member left while the caller held the group.
func (g *SharedGroup[S, V]) Members() Members[S, V] {
	return Members[S, V]{g.members.list.Load()}
}

// Counter returns the group's counter, for the caller's own choice of member
// (round robin, or skipping members that are offline).
func (g *SharedGroup[S, V]) Counter() *atomic.Uint64 { return &g.next }

// Pick returns the next member in round-robin order; ok is false if the group
// has no member.
func (g *SharedGroup[S, V]) Pick() (m Member[S, V], ok bool) {
	l := g.members.list.Load()
	if l == nil {
		return m, false
	}
	return l.get(int((g.next.Add(1) - 1) % uint64(l.n))), true
}

// Members is an immutable snapshot of the members of a shared group.
type Members[S comparable, V any] struct{ v *vec[Member[S, V]] }

// Len returns the number of members.
func (m Members[S, V]) Len() int { return m.v.len() }

// At returns member i, 0 <= i < Len(). The order is arbitrary but fixed for
// the snapshot.
func (m Members[S, V]) At(i int) Member[S, V] {
	if i < 0 || i >= m.v.len() {
		panic("topic: Members.At index out of range")
	}
	return m.v.get(i)
}

// AppendTo appends all members to dst.
func (m Members[S, V]) AppendTo(dst []Member[S, V]) []Member[S, V] {
	dst = slices.Grow(dst, m.v.len())
	m.v.each(func(e Member[S, V]) bool { dst = append(dst, e); return true })
	return dst
}

// All yields the members with their index.
func (m Members[S, V]) All() iter.Seq2[int, Member[S, V]] {
	return func(yield func(int, Member[S, V]) bool) {
		i := 0
		m.v.each(func(e Member[S, V]) bool { ok := yield(i, e); i++; return ok })
	}
}

// memberSet is the set of members of one filter or group: an immutable
// vector published through an atomic pointer for readers, and a writer-only
// index from subscriber to position once the set is large.
type memberSet[S comparable, V any] struct {
	list  atomic.Pointer[vec[Member[S, V]]]
	index map[S]int // nil while the set fits in one leaf
}

const (
	indexAbove = vecWidth     // build the index above this size
	indexBelow = vecWidth / 2 // drop it at or below this size
)

func (s *memberSet[S, V]) find(l *vec[Member[S, V]], sub S) int {
	if s.index != nil {
		if i, ok := s.index[sub]; ok {
			return i
		}
		return -1
	}
	if l != nil { // a single leaf
		for i := range l.root.leaf {
			if l.root.leaf[i].Sub == sub {
				return i
			}
		}
	}
	return -1
}

// put adds or replaces sub's entry and reports whether it replaced one.
func (s *memberSet[S, V]) put(sub S, v V) bool {
	l := s.list.Load()
	if i := s.find(l, sub); i >= 0 {
		s.list.Store(l.set(i, Member[S, V]{sub, v})) // [MQTT-3.8.4-3]
		return true
	}
	nl := l.push(Member[S, V]{sub, v})
	switch {
	case s.index != nil:
		s.index[sub] = nl.n - 1
	case nl.n > indexAbove:
		s.index = make(map[S]int, nl.n)
		i := 0
		nl.each(func(e Member[S, V]) bool { s.index[e.Sub] = i; i++; return true })
	}
	s.list.Store(nl)
	return false
}

// remove deletes sub's entry: the last entry takes its place.
func (s *memberSet[S, V]) remove(sub S) bool {
	l := s.list.Load()
	i := s.find(l, sub)
	if i < 0 {
		return false
	}
	if last := l.n - 1; i != last {
		e := l.get(last)
		l = l.set(i, e)
		if s.index != nil {
			s.index[e.Sub] = i
		}
	}
	l = l.pop()
	if s.index != nil {
		delete(s.index, sub)
		if l.len() <= indexBelow {
			s.index = nil
		}
	}
	s.list.Store(l)
	return true
}

// node is one level of the subscription trie. The fields read by Match are
// atomic and point to immutable data; the others belong to the writer. The
// fields Match reads come first, so that with the key bytes they share the
// node's first cache line.
type node[S comparable, V any] struct {
	// kbuf holds the bytes of a short key: the parent's hash trie compares
	// its key against them just before Match reads the fields below.
	kbuf     [keyInline]byte
	children atomic.Pointer[hslot[*node[S, V]]] // literal levels
	plus     atomic.Pointer[node[S, V]]         // the "+" level
	hash     atomic.Pointer[node[S, V]]         // the "#" level (a leaf)
	groups   atomic.Pointer[[]*SharedGroup[S, V]]
	subs     memberSet[S, V]
	filter   string // filter up to this level; set before the node is published

	// Guarded by Tree.mu.
	parent *node[S, V]
	key    string // level in parent
	nchild int    // entries in children
}

const keyInline = 24

// newNode returns a node for the level key below parent. A key of up to
// keyInline bytes is copied into the node itself; a longer one must be owned
// by the tree already.
func newNode[S comparable, V any](parent *node[S, V], key, filter string) *node[S, V] {
	c := &node[S, V]{parent: parent, key: key, filter: filter}
	if len(key) > 0 && len(key) <= keyInline {
		copy(c.kbuf[:], key)
		// kbuf is never written again, so the string stays immutable.
		c.key = unsafe.String(&c.kbuf[0], len(key))
	}
	return c
}

func (n *node[S, V]) child(level string) *node[S, V] {
	switch level {
	case "+":
		return n.plus.Load()
	case "#":
		return n.hash.Load()
	}
	c, _ := hamtGet(n.children.Load(), level)
	return c
}

func (n *node[S, V]) attach(c *node[S, V]) {
	switch c.key {
	case "+":
		n.plus.Store(c)
	case "#":
		n.hash.Store(c)
	default:
		r, _ := hamtPut(n.children.Load(), c.key, c)
		n.children.Store(r)
		n.nchild++
	}
}

func (n *node[S, V]) detach(c *node[S, V]) {
	switch c.key {
	case "+":
		n.plus.Store(nil)
	case "#":
		n.hash.Store(nil)
	default:
		r, _ := hamtDelete(n.children.Load(), c.key)
		n.children.Store(r)
		n.nchild--
	}
}

func (n *node[S, V]) empty() bool {
	return n.nchild == 0 && n.subs.list.Load() == nil && n.groups.Load() == nil &&
		n.plus.Load() == nil && n.hash.Load() == nil
}

func (n *node[S, V]) group(name string) *SharedGroup[S, V] {
	if gs := n.groups.Load(); gs != nil {
		for _, g := range *gs {
			if g.name == name {
				return g
			}
		}
	}
	return nil
}

func (n *node[S, V]) addGroup(g *SharedGroup[S, V]) {
	var gs []*SharedGroup[S, V]
	if old := n.groups.Load(); old != nil {
		gs = make([]*SharedGroup[S, V], len(*old), len(*old)+1)
		copy(gs, *old)
	}
	gs = append(gs, g)
	n.groups.Store(&gs)
}

func (n *node[S, V]) removeGroup(g *SharedGroup[S, V]) {
	old := *n.groups.Load()
	if len(old) == 1 {
		n.groups.Store(nil)
		return
	}
	gs := make([]*SharedGroup[S, V], 0, len(old)-1)
	for _, x := range old {
		if x != g {
			gs = append(gs, x)
		}
	}
	n.groups.Store(&gs)
}

// Tree is a subscription trie: it maps topic filters, plain or shared
// ("$share/{group}/{filter}"), to subscribers S with a value V each, and
// finds the subscriptions that match a topic name.
//
// The zero value is an empty tree ready to use. A Tree must not be copied
// after first use. All methods are safe for concurrent use; Match never
// blocks and never waits for Subscribe or Unsubscribe (see the package doc).
type Tree[S comparable, V any] struct {
	mu   sync.Mutex // serializes writers only
	root node[S, V]
	n    atomic.Int64
}

// Len returns the number of subscriptions (non-shared ones plus shared group
// memberships).
func (t *Tree[S, V]) Len() int { return int(t.n.Load()) }

// Subscribe adds the subscription of sub to filter with value v, or replaces
// the value if sub already subscribed to that exact filter, and reports
// whether it replaced one [MQTT-3.8.4-3]. A filter "$share/{group}/{f}"
// makes sub a member of the shared group (group, f). The filter is validated
// with ValidateFilter; the error is one of the sentinel errors of this package.
//
// The tree keeps a copy of the filter, never the caller's string.
func (t *Tree[S, V]) Subscribe(filter string, sub S, v V) (replaced bool, err error) {
	group, inner, shared, err := Limits{}.parseFilter(filter)
	if err != nil {
		return false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()

	// owned is a copy of filter, made the first time the tree has to keep
	// part of it (a new level or group name), so the caller's string (maybe
	// a view of a reused buffer) is never retained.
	var owned string
	n := &t.root
	rest, pos := inner, 0
	for {
		level, tail, more := cut(rest)
		end := pos + len(level)
		c := n.child(level)
		if c == nil {
			if owned == "" {
				owned = strings.Clone(filter)
			}
			oinner := owned[len(owned)-len(inner):]
			c = newNode(n, oinner[pos:end], oinner[:end])
			n.attach(c)
		}
		n = c
		if !more {
			break
		}
		rest, pos = tail, end+1
	}

	if !shared {
		replaced = n.subs.put(sub, v)
	} else if g := n.group(group); g != nil {
		replaced = g.members.put(sub, v)
	} else {
		if owned == "" {
			owned = strings.Clone(filter)
		}
		g = &SharedGroup[S, V]{
			name:   owned[len(SharePrefix) : len(SharePrefix)+len(group)],
			filter: n.filter,
		}
		g.members.put(sub, v) // before publishing: readers never see it empty
		n.addGroup(g)
	}
	if !replaced {
		t.n.Add(1)
	}
	return replaced, nil
}

// Unsubscribe removes the subscription of sub to filter (plain or shared) and
// reports whether there was one. Trie levels left empty are removed.
func (t *Tree[S, V]) Unsubscribe(filter string, sub S) bool {
	group, inner, shared, err := Limits{}.parseFilter(filter)
	if err != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()

	n := &t.root
	rest := inner
	for {
		level, tail, more := cut(rest)
		if n = n.child(level); n == nil {
			return false
		}
		if !more {
			break
		}
		rest = tail
	}
	if shared {
		g := n.group(group)
		if g == nil {
			return false
		}
		if l := g.members.list.Load(); l.n == 1 {
			if l.root.leaf[0].Sub != sub {
				return false
			}
			n.removeGroup(g) // unpublish first: readers rarely see it empty
		}
		if !g.members.remove(sub) {
			return false
		}
	} else if !n.subs.remove(sub) {
		return false
	}
	t.n.Add(-1)

	// Prune levels that hold nothing any more. Writers are serialized, so no
	// Subscribe can be attaching below a node while it is being detached; a
	// Match that still holds a detached node sees only its final, empty state.
	for n != &t.root && n.empty() {
		p := n.parent
		p.detach(n)
		n = p
	}
	return true
}

// Match appends to m the subscriptions whose filters match topic: '+' and '#'
// wildcards included, and filters that start with a wildcard excluded when
// topic starts with '$' [MQTT-4.7.2-1]. The topic is expected to be a valid
// topic name (ValidateName); it is compared byte for byte, with no
// normalization [MQTT-4.7.3-4]. Match takes no lock and, once m has grown to
// its working size, does not allocate.
func (t *Tree[S, V]) Match(topic string, m *MatchResult[S, V]) {
	if topic == "" {
		return
	}
	t.root.walk(topic, m, topic[0] == '$')
}

// walk matches the levels in rest below n; noWild skips the wildcard
// children (at the root, for a '$' topic).
func (n *node[S, V]) walk(rest string, m *MatchResult[S, V], noWild bool) {
	if !noWild {
		// "#" matches one or more remaining levels [MQTT-4.7.1-1].
		if h := n.hash.Load(); h != nil {
			h.collect(m)
		}
	}
	level, tail, more := cut(rest)
	if c, _ := hamtGet(n.children.Load(), level); c != nil {
		if more {
			c.walk(tail, m, false)
		} else {
			c.collectEnd(m)
		}
	}
	if !noWild {
		// "+" matches exactly one level, whatever it is [MQTT-4.7.1-2].
		if p := n.plus.Load(); p != nil {
			if more {
				p.walk(tail, m, false)
			} else {
				p.collectEnd(m)
			}
		}
	}
}

// collectEnd collects the filters that end at n, and "n/#", which also
// matches the parent level ("sport/#" matches "sport").
func (n *node[S, V]) collectEnd(m *MatchResult[S, V]) {
	n.collect(m)
	if h := n.hash.Load(); h != nil {
		h.collect(m)
	}
}

func (n *node[S, V]) collect(m *MatchResult[S, V]) {
	if l := n.subs.list.Load(); l != nil {
		m.Subs = slices.Grow(m.Subs, l.n)
		m.Subs = appendSubs(m.Subs, &l.root, l.shift, n.filter)
	}
	if gs := n.groups.Load(); gs != nil {
		m.Shared = append(m.Shared, *gs...)
	}
}

func appendSubs[S comparable, V any](dst []Subscription[S, V], n *vnode[Member[S, V]], shift uint, filter string) []Subscription[S, V] {
	if shift == 0 {
		for i := range n.leaf {
			e := &n.leaf[i]
			dst = append(dst, Subscription[S, V]{Sub: e.Sub, Value: e.Value, Filter: filter})
		}
		return dst
	}
	for _, k := range n.kids {
		dst = appendSubs(dst, k, shift-vecBits, filter)
	}
	return dst
}
