package bridge

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// OriginProperty is the key of the User Property a bridge adds to every
// message it forwards to an MQTT 5 broker; its value is the bridge's Name.
// A message carries one such property per bridge it crossed, in order.
const OriginProperty = "mqtt5-bridge-origin"

// origins counts the origin properties of a message and reports whether one
// of them names this bridge.
func origins(user []packet.UserProperty, name string) (hops int, own bool) {
	for _, u := range user {
		if u.Key == OriginProperty {
			hops++
			if u.Value == name {
				own = true
			}
		}
	}
	return hops, own
}

// withOrigin returns a copy of user with this bridge's origin property
// appended.
func withOrigin(user []packet.UserProperty, name string) []packet.UserProperty {
	out := make([]packet.UserProperty, len(user), len(user)+1)
	copy(out, user)
	return append(out, packet.UserProperty{Key: OriginProperty, Value: name})
}

// fingerprint is the SHA-256 of a message's topic (in its local form),
// payload, QoS and retain flag.
type fingerprint [sha256.Size]byte

func fingerprintOf(topic string, payload []byte, qos byte, retain bool) fingerprint {
	h := sha256.New()
	var hdr [6]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(topic)))
	hdr[4] = qos
	if retain {
		hdr[5] = 1
	}
	h.Write(hdr[:])
	h.Write([]byte(topic))
	h.Write(payload)
	var fp fingerprint
	h.Sum(fp[:0])
	return fp
}

// loopCache remembers the fingerprints of the messages a bridge forwarded,
// with the direction, for ttl and at most max of them: a message forwarded
// one way is not forwarded back the other way while its fingerprint is
// remembered. Entries are kept in a list ordered by last use, so expiry and
// eviction of the oldest both take them from the front: every operation is
// O(1) amortised. It is safe for concurrent use.
type loopCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[fingerprint]*list.Element
	order   list.List // of *loopEntry, oldest first
}

type loopEntry struct {
	fp   fingerprint
	dirs uint8 // bit 1<<Out, 1<<In
	at   time.Time
}

func newLoopCache(ttl time.Duration, max int, now func() time.Time) *loopCache {
	if now == nil {
		now = time.Now
	}
	return &loopCache{ttl: ttl, max: max, now: now, entries: make(map[fingerprint]*list.Element)}
}

// forward decides whether a message with fingerprint fp may be forwarded in
// direction dir (Out or In). It returns false when the same message was
// forwarded the other way within the TTL: it is then coming back, a loop.
// Otherwise it records fp for dir and returns true.
func (c *loopCache) forward(fp fingerprint, dir Direction) bool {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
	other := Out
	if dir == Out {
		other = In
	}
	if el, ok := c.entries[fp]; ok {
		e := el.Value.(*loopEntry)
		if e.dirs&(1<<other) != 0 {
			return false
		}
		e.dirs |= 1 << dir
		e.at = now
		c.order.MoveToBack(el)
		return true
	}
	c.entries[fp] = c.order.PushBack(&loopEntry{fp: fp, dirs: 1 << dir, at: now})
	for c.order.Len() > c.max {
		c.removeLocked(c.order.Front())
	}
	return true
}

// expireLocked drops the entries older than the TTL.
func (c *loopCache) expireLocked(now time.Time) {
	for el := c.order.Front(); el != nil; el = c.order.Front() {
		if now.Sub(el.Value.(*loopEntry).at) < c.ttl {
			return
		}
		c.removeLocked(el)
	}
}

func (c *loopCache) removeLocked(el *list.Element) {
	delete(c.entries, el.Value.(*loopEntry).fp)
	c.order.Remove(el)
}

// len returns the number of entries (expired ones included until the next
// call to forward).
func (c *loopCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
