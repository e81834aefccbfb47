package topic

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Retained is an index of retained messages (or anything kept per topic
// name): one value per topic, found by topic name or by topic filter.
//
// The zero value is an empty index ready to use. A Retained must not be
// copied after first use. All methods are safe for concurrent use; Get and
// Match take no lock and never wait for Set or Delete, which are serialized
// among themselves (see the package doc).
type Retained[V any] struct {
	mu   sync.Mutex // serializes writers only
	root rnode[V]
	n    atomic.Int64
}

type rnode[V any] struct {
	children atomic.Pointer[hslot[*rnode[V]]]
	entry    atomic.Pointer[rentry[V]]

	// Guarded by Retained.mu.
	parent *rnode[V]
	key    string
	nchild int
}

// rentry is immutable once published.
type rentry[V any] struct {
	topic string
	v     V
}

func (n *rnode[V]) child(level string) *rnode[V] {
	c, _ := hamtGet(n.children.Load(), level)
	return c
}

// Len returns the number of topics that hold a value.
func (r *Retained[V]) Len() int { return int(r.n.Load()) }

// Set stores v under topic, replacing any value it had. topic must be a valid
// topic name (ValidateName): it is stored as given, levels compared byte for
// byte [MQTT-4.7.3-4]. The index keeps a copy of topic, never the caller's
// string.
func (r *Retained[V]) Set(topic string, v V) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := &r.root
	var owned string
	rest, pos := topic, 0
	for {
		level, tail, more := cut(rest)
		end := pos + len(level)
		c := n.child(level)
		if c == nil {
			if owned == "" {
				owned = strings.Clone(topic)
			}
			c = &rnode[V]{parent: n, key: owned[pos:end]}
			root, _ := hamtPut(n.children.Load(), c.key, c)
			n.children.Store(root)
			n.nchild++
		}
		n = c
		if !more {
			break
		}
		rest, pos = tail, end+1
	}
	old := n.entry.Load()
	switch {
	case old != nil:
		owned = old.topic
	case owned == "":
		owned = strings.Clone(topic)
	}
	n.entry.Store(&rentry[V]{topic: owned, v: v})
	if old == nil {
		r.n.Add(1)
	}
}

// Get returns the value stored under topic.
func (r *Retained[V]) Get(topic string) (v V, ok bool) {
	if n := r.find(topic); n != nil {
		if e := n.entry.Load(); e != nil {
			return e.v, true
		}
	}
	return v, false
}

func (r *Retained[V]) find(topic string) *rnode[V] {
	n := &r.root
	rest := topic
	for {
		level, tail, more := cut(rest)
		if n = n.child(level); n == nil || !more {
			return n
		}
		rest = tail
	}
}

// Delete removes the value stored under topic and reports whether there was
// one. Levels left empty are removed.
func (r *Retained[V]) Delete(topic string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.find(topic)
	if n == nil || n.entry.Load() == nil {
		return false
	}
	n.entry.Store(nil)
	r.n.Add(-1)
	for n != &r.root && n.nchild == 0 && n.entry.Load() == nil {
		p := n.parent
		root, _ := hamtDelete(p.children.Load(), n.key)
		p.children.Store(root)
		p.nchild--
		n = p
	}
	return true
}

// Match calls fn with each stored topic that the topic filter matches, and
// its value, until fn returns false. It walks only the parts of the index the
// filter can reach: a literal level is one lookup, '+' visits the children of
// one level and '#' the subtree below it. Filters that start with a wildcard
// do not match topics that start with '$' [MQTT-4.7.2-1]. filter is a plain
// filter ("$share/" is not interpreted); a filter with misplaced wildcards
// matches nothing. Match takes no lock: fn may call any method of r, and sees
// each topic as it was at some moment during the call.
func (r *Retained[V]) Match(filter string, fn func(topic string, v V) bool) {
	if !wellFormedFilter(filter) {
		return
	}
	r.root.match(filter, true, fn)
}

// match matches the filter levels in rest below n; it returns false when fn
// asked to stop.
func (n *rnode[V]) match(rest string, atRoot bool, fn func(string, V) bool) bool {
	level, tail, more := cut(rest)
	switch level {
	case "#":
		// "#" matches the parent level ("sport/#" matches "sport") and
		// every level below it [MQTT-4.7.1-1].
		if e := n.entry.Load(); e != nil && !atRoot && !fn(e.topic, e.v) {
			return false
		}
		return n.eachChild(atRoot, func(c *rnode[V]) bool { return c.all(fn) })
	case "+":
		// "+" matches exactly one level, whatever it is [MQTT-4.7.1-2].
		return n.eachChild(atRoot, func(c *rnode[V]) bool {
			if more {
				return c.match(tail, false, fn)
			}
			return c.emit(fn)
		})
	default:
		c := n.child(level)
		if c == nil {
			return true
		}
		if more {
			return c.match(tail, false, fn)
		}
		return c.emit(fn)
	}
}

// eachChild calls f for each child; at the root it skips the levels that
// start with '$', which wildcards do not match [MQTT-4.7.2-1].
func (n *rnode[V]) eachChild(atRoot bool, f func(*rnode[V]) bool) bool {
	return hamtEach(n.children.Load(), func(key string, c *rnode[V]) bool {
		if atRoot && key != "" && key[0] == '$' {
			return true
		}
		return f(c)
	})
}

func (n *rnode[V]) emit(fn func(string, V) bool) bool {
	if e := n.entry.Load(); e != nil {
		return fn(e.topic, e.v)
	}
	return true
}

// all calls fn for n and everything below it.
func (n *rnode[V]) all(fn func(string, V) bool) bool {
	if !n.emit(fn) {
		return false
	}
	return hamtEach(n.children.Load(), func(_ string, c *rnode[V]) bool { return c.all(fn) })
}
