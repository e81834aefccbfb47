package topic

import (
	"hash/maphash"
	"math/bits"
	"unsafe"
)

// This file holds a persistent (immutable, path-copying) hash array mapped
// trie from string keys to values. It holds the children of a trie node: a
// lookup is lock-free and allocation-free (one atomic load of the root by the
// caller, then plain reads), and an insert or delete copies only the
// O(log32 n) nodes on the key's path, so a node with a million children costs
// no more to change than one with ten.

const (
	hamtBits  = 5
	hamtWidth = 1 << hamtBits
	hamtMask  = hamtWidth - 1
)

// seed keys the hash of every trie in the process; it is random per process.
var seed = maphash.MakeSeed()

func hashKey(key string) uint64 { return maphash.String(seed, key) }

// hslot is one slot of an immutable trie node. A node is an array of slots
// whose first element is a header holding the bitmap and the number of slots
// that follow it (one per set bit of the bitmap, in bit order); a node
// pointer points to that header, so a node is one allocation and a lookup
// costs one cache miss per level rather than two (node, then its slice).
// Below 64 bits of hash (a full collision, practically never) a node is a
// plain list compared by key. (Node and slot share one type rather than a
// generic alias: Go 1.26's compiler deadlocks importing generic aliases.)
type hslot[T any] struct {
	hash uint64 // in a header: bitmap | count<<32
	key  string
	val  T
	sub  *hslot[T] // non-nil: the slot is a sub-trie, key and val are unused
}

// newHnode allocates a node and returns it with its (zeroed) slots.
func newHnode[T any](bitmap uint32, count int) (*hslot[T], []hslot[T]) {
	a := make([]hslot[T], 1+count)
	a[0].hash = uint64(bitmap) | uint64(count)<<32
	return &a[0], a[1:]
}

func (n *hslot[T]) bitmap() uint32 { return uint32(n.hash) }

// slots returns the slots of node n. n is the first element of an array of
// 1+count slots allocated by newHnode, so the slice stays inside it.
func (n *hslot[T]) slots() []hslot[T] {
	return unsafe.Slice(n, 1+int(n.hash>>32))[1:]
}

// hamtGet returns the value stored under key.
func hamtGet[T any](n *hslot[T], key string) (T, bool) {
	if n == nil {
		var zero T
		return zero, false
	}
	return hamtGetHash(n, hashKey(key), key)
}

// hamtGetHash is hamtGet with the hash of key given.
func hamtGetHash[T any](n *hslot[T], h uint64, key string) (T, bool) {
	if n != nil {
		for shift := uint(0); ; shift += hamtBits {
			slots := n.slots()
			if shift >= 64 {
				for i := range slots {
					if slots[i].key == key {
						return slots[i].val, true
					}
				}
				break
			}
			bit := uint32(1) << ((h >> shift) & hamtMask)
			bm := n.bitmap()
			if bm&bit == 0 {
				break
			}
			s := &slots[bits.OnesCount32(bm&(bit-1))]
			if s.sub != nil {
				n = s.sub
				continue
			}
			if s.hash == h && s.key == key {
				return s.val, true
			}
			break
		}
	}
	var zero T
	return zero, false
}

// hamtPut returns a trie that maps key to val and otherwise equals n, and
// whether key was present in n. n is not modified.
func hamtPut[T any](n *hslot[T], key string, val T) (*hslot[T], bool) {
	return hamtPutAt(n, 0, hashKey(key), key, val)
}

func hamtPutAt[T any](n *hslot[T], shift uint, h uint64, key string, val T) (*hslot[T], bool) {
	if n == nil {
		var bitmap uint32
		if shift < 64 {
			bitmap = uint32(1) << ((h >> shift) & hamtMask)
		}
		c, cs := newHnode[T](bitmap, 1)
		cs[0] = hslot[T]{hash: h, key: key, val: val}
		return c, false
	}
	slots := n.slots()
	if shift >= 64 { // collision list
		for i := range slots {
			if slots[i].key == key {
				c, cs := cloneNode(n)
				cs[i].val = val
				return c, true
			}
		}
		c, cs := newHnode[T](0, len(slots)+1)
		copy(cs, slots)
		cs[len(slots)] = hslot[T]{hash: h, key: key, val: val}
		return c, false
	}
	bit := uint32(1) << ((h >> shift) & hamtMask)
	bm := n.bitmap()
	idx := bits.OnesCount32(bm & (bit - 1))
	if bm&bit == 0 {
		c, cs := newHnode[T](bm|bit, len(slots)+1)
		copy(cs, slots[:idx])
		cs[idx] = hslot[T]{hash: h, key: key, val: val}
		copy(cs[idx+1:], slots[idx:])
		return c, false
	}
	s := slots[idx]
	c, cs := cloneNode(n)
	switch {
	case s.sub != nil:
		sub, replaced := hamtPutAt(s.sub, shift+hamtBits, h, key, val)
		cs[idx].sub = sub
		return c, replaced
	case s.hash == h && s.key == key:
		cs[idx].val = val
		return c, true
	default:
		// Two keys share this slot: push both one level down.
		sub, _ := hamtPutAt[T](nil, shift+hamtBits, s.hash, s.key, s.val)
		sub, _ = hamtPutAt(sub, shift+hamtBits, h, key, val)
		cs[idx] = hslot[T]{sub: sub}
		return c, false
	}
}

// hamtDelete returns a trie without key and whether key was present. It
// returns nil for an empty trie. n is not modified.
func hamtDelete[T any](n *hslot[T], key string) (*hslot[T], bool) {
	if n == nil {
		return nil, false
	}
	return hamtDeleteAt(n, 0, hashKey(key), key)
}

// hamtDeleteHash is hamtDelete with the hash of key given.
func hamtDeleteHash[T any](n *hslot[T], h uint64, key string) (*hslot[T], bool) {
	if n == nil {
		return nil, false
	}
	return hamtDeleteAt(n, 0, h, key)
}

func hamtDeleteAt[T any](n *hslot[T], shift uint, h uint64, key string) (*hslot[T], bool) {
	slots := n.slots()
	if shift >= 64 {
		for i := range slots {
			if slots[i].key == key {
				return removeSlot(n, 0, i), true
			}
		}
		return n, false
	}
	bit := uint32(1) << ((h >> shift) & hamtMask)
	bm := n.bitmap()
	if bm&bit == 0 {
		return n, false
	}
	idx := bits.OnesCount32(bm & (bit - 1))
	s := slots[idx]
	if s.sub == nil {
		if s.hash != h || s.key != key {
			return n, false
		}
		return removeSlot(n, bit, idx), true
	}
	sub, found := hamtDeleteAt(s.sub, shift+hamtBits, h, key)
	if !found {
		return n, false
	}
	if sub == nil {
		return removeSlot(n, bit, idx), true
	}
	c, cs := cloneNode(n)
	if ss := sub.slots(); len(ss) == 1 && ss[0].sub == nil {
		// Keep the trie canonical: a lone key moves up.
		cs[idx] = ss[0]
	} else {
		cs[idx].sub = sub
	}
	return c, true
}

// removeSlot returns a copy of n without slot idx (and bit), or nil if that
// leaves it empty.
func removeSlot[T any](n *hslot[T], bit uint32, idx int) *hslot[T] {
	slots := n.slots()
	if len(slots) == 1 {
		return nil
	}
	c, cs := newHnode[T](n.bitmap()&^bit, len(slots)-1)
	copy(cs, slots[:idx])
	copy(cs[idx:], slots[idx+1:])
	return c
}

func cloneNode[T any](n *hslot[T]) (*hslot[T], []hslot[T]) {
	slots := n.slots()
	c, cs := newHnode[T](n.bitmap(), len(slots))
	copy(cs, slots)
	return c, cs
}

// hamtEach calls fn for every entry of n until fn returns false; it reports
// whether it went through all of them.
func hamtEach[T any](n *hslot[T], fn func(key string, val T) bool) bool {
	if n == nil {
		return true
	}
	slots := n.slots()
	for i := range slots {
		s := &slots[i]
		if s.sub != nil {
			if !hamtEach(s.sub, fn) {
				return false
			}
		} else if !fn(s.key, s.val) {
			return false
		}
	}
	return true
}
