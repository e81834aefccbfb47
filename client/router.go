package client

import (
	"sync"

	"github.com/mqtt5go/mqtt5/topic"
)

// router maps subscribed filters to handlers.
//
// Messages that carry Subscription Identifiers (v5) are routed by them: each
// identifier names one Subscribe call, and its handler is called once if one
// of that call's filters matches the topic. A v5 server may send one copy of
// a message per matching subscription, each with its own identifier, so this
// gives every subscription exactly the copies meant for it. The client
// assigns an identifier to every Subscribe call that has none when the
// server supports them (Options.NoAutoSubscriptionIDs turns this off).
//
// Other messages are matched by topic against every filter, with a
// topic.Tree: the key of a subscription is its full filter (so "$share/g/a"
// and "a" are two subscriptions) and it is matched by its inner filter
// ("a"), since the server delivers shared-subscription messages with their
// own topic.
type router struct {
	tree topic.Tree[string, Handler]
	pool sync.Pool // *topic.MatchResult[string, Handler]

	mu     sync.RWMutex
	routes map[string]route    // by full filter
	byID   map[uint32][]string // subscription identifier -> filters
}

type route struct {
	inner string
	id    uint32
	h     Handler
}

func innerFilter(filter string) string {
	if _, in, ok, err := topic.ParseShared(filter); ok && err == nil {
		return in
	}
	return filter
}

// add registers h (nil: the default handler) for filter, subscribed with
// subscription identifier id (0: none), replacing what filter had.
func (r *router) add(filter string, h Handler, id uint32) error {
	inner := innerFilter(filter)
	r.mu.Lock()
	r.removeLocked(filter)
	if r.routes == nil {
		r.routes = make(map[string]route)
		r.byID = make(map[uint32][]string)
	}
	r.routes[filter] = route{inner: inner, id: id, h: h}
	if id != 0 {
		r.byID[id] = append(r.byID[id], filter)
	}
	r.mu.Unlock()
	if h == nil {
		r.tree.Unsubscribe(inner, filter)
		return nil
	}
	// The filter was validated by Subscribe (topic.ValidateFilter), so the
	// tree accepts it; an error here would be a bug.
	_, err := r.tree.Subscribe(inner, filter, h)
	return err
}

// get returns the route of filter.
func (r *router) get(filter string) (route, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rt, ok := r.routes[filter]
	return rt, ok
}

// remove unregisters filter.
func (r *router) remove(filter string) {
	r.mu.Lock()
	r.removeLocked(filter)
	r.mu.Unlock()
	r.tree.Unsubscribe(innerFilter(filter), filter)
}

func (r *router) removeLocked(filter string) {
	rt, ok := r.routes[filter]
	if !ok {
		return
	}
	delete(r.routes, filter)
	if rt.id != 0 {
		fs := r.byID[rt.id]
		for i, f := range fs {
			if f == filter {
				fs = append(fs[:i], fs[i+1:]...)
				break
			}
		}
		if len(fs) == 0 {
			delete(r.byID, rt.id)
		} else {
			r.byID[rt.id] = fs
		}
	}
}

// match calls fn with the handlers a message on topic name carrying the
// subscription identifiers ids is for, and returns how many there were.
func (r *router) match(name string, ids []uint32, fn func(Handler)) int {
	if len(ids) > 0 {
		var buf [4]Handler
		hs := buf[:0]
		known := false
		r.mu.RLock()
		for _, id := range ids {
			fs, ok := r.byID[id]
			known = known || ok
			for _, f := range fs {
				if rt := r.routes[f]; topic.Matches(rt.inner, name) {
					if rt.h != nil {
						hs = append(hs, rt.h)
					}
					break // one call per subscription (identifier)
				}
			}
		}
		r.mu.RUnlock()
		if known {
			for _, h := range hs {
				fn(h)
			}
			return len(hs)
		}
	}
	m, _ := r.pool.Get().(*topic.MatchResult[string, Handler])
	if m == nil {
		m = new(topic.MatchResult[string, Handler])
	}
	r.tree.Match(name, m)
	n := len(m.Subs)
	for _, s := range m.Subs {
		fn(s.Value)
	}
	m.Reset()
	r.pool.Put(m)
	return n
}
