package topic

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// checkHamt verifies the trie against the model and its structural
// invariants (bitmap/slot agreement, canonical form: no sub-trie holding a
// single key, no empty node).
func checkHamt(t *rapid.T, root *hslot[int], md map[string]int, hash func(string) uint64) {
	got := map[string]int{}
	var walk func(n *hslot[int], shift uint, isRoot bool)
	walk = func(n *hslot[int], shift uint, isRoot bool) {
		if len(n.slots()) == 0 {
			t.Fatalf("empty node")
		}
		if shift < 64 && popcount(n.bitmap()) != len(n.slots()) {
			t.Fatalf("bitmap %b with %d slots", n.bitmap(), len(n.slots()))
		}
		if !isRoot && len(n.slots()) == 1 && n.slots()[0].sub == nil {
			t.Fatalf("non-canonical single-key sub-trie")
		}
		for _, s := range n.slots() {
			if s.sub != nil {
				walk(s.sub, shift+hamtBits, false)
				continue
			}
			if s.hash != hash(s.key) {
				t.Fatalf("stale hash for %q", s.key)
			}
			if _, dup := got[s.key]; dup {
				t.Fatalf("duplicate key %q", s.key)
			}
			got[s.key] = s.val
		}
	}
	if root != nil {
		walk(root, 0, true)
	}
	if !maps.Equal(got, md) {
		t.Fatalf("trie %v, model %v", got, md)
	}
	for k, v := range md {
		if g, ok := hamtGetHash(root, hash(k), k); !ok || g != v {
			t.Fatalf("get(%q) = %v %v, want %v", k, g, ok, v)
		}
	}
	if _, ok := hamtGetHash(root, hash("absent"), "absent"); ok && md["absent"] == 0 {
		if _, in := md["absent"]; !in {
			t.Fatalf("found an absent key")
		}
	}
}

func popcount(x uint32) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

func TestHamtProperty(t *testing.T) {
	hashes := map[string]func(string) uint64{
		"maphash": hashKey,
		// Degenerate hashes force deep paths and full collisions.
		"collide": func(s string) uint64 { return uint64(len(s)%3) << 62 },
		"low":     func(s string) uint64 { return uint64(len(s) % 4) },
	}
	for name, hash := range hashes {
		t.Run(name, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				var root *hslot[int]
				md := map[string]int{}
				var versions []*hslot[int]
				var models []map[string]int
				for i := range rapid.IntRange(0, 200).Draw(t, "ops") {
					k := rapid.StringMatching(`[a-e]{0,6}`).Draw(t, "key")
					if rapid.IntRange(0, 2).Draw(t, "del") == 0 {
						_, had := md[k]
						var found bool
						root, found = hamtDeleteHash(root, hash(k), k)
						if found != had {
							t.Fatalf("delete(%q) found=%v, model %v", k, found, had)
						}
						delete(md, k)
					} else {
						_, had := md[k]
						var replaced bool
						root, replaced = hamtPutAt(root, 0, hash(k), k, i)
						if replaced != had {
							t.Fatalf("put(%q) replaced=%v, model %v", k, replaced, had)
						}
						md[k] = i
					}
					versions = append(versions, root)
					models = append(models, maps.Clone(md))
				}
				checkHamt(t, root, md, hash)
				// Old versions are unchanged (persistence).
				for i, v := range versions {
					checkHamt(t, v, models[i], hash)
				}
			})
		})
	}
}

func TestHamtWide(t *testing.T) {
	var root *hslot[int]
	const n = 20000
	for i := range n {
		root, _ = hamtPut(root, fmt.Sprint(i), i)
	}
	count := 0
	hamtEach(root, func(k string, v int) bool { count++; return k == fmt.Sprint(v) })
	if count != n {
		t.Fatalf("each saw %d", count)
	}
	for i := range n {
		if v, ok := hamtGet(root, fmt.Sprint(i)); !ok || v != i {
			t.Fatalf("get %d", i)
		}
	}
	for i := range n {
		var ok bool
		if root, ok = hamtDelete(root, fmt.Sprint(i)); !ok {
			t.Fatalf("delete %d", i)
		}
	}
	if root != nil {
		t.Fatal("not empty")
	}
}

func vecItems(v *vec[int]) []int {
	var out []int
	v.each(func(e int) bool { out = append(out, e); return true })
	return out
}

func checkVec(t *rapid.T, v *vec[int], want []int) {
	if v.len() != len(want) {
		t.Fatalf("len %d, want %d", v.len(), len(want))
	}
	if len(want) == 0 {
		if v != nil {
			t.Fatalf("empty vec not nil")
		}
		return
	}
	if got := vecItems(v); !slices.Equal(got, want) {
		t.Fatalf("items %v, want %v", got, want)
	}
	var leaves []int
	for _, l := range v.leaves(nil) {
		leaves = append(leaves, l...)
	}
	if !slices.Equal(leaves, want) {
		t.Fatalf("leaves %v", leaves)
	}
	for i, w := range want {
		if v.get(i) != w {
			t.Fatalf("get(%d) = %d, want %d", i, v.get(i), w)
		}
	}
	// Dense and canonical: the root is binary or more when it is inner,
	// and the tree is no higher than needed.
	if v.shift > 0 && (len(v.root.kids) < 2 || v.n <= vecWidth<<(v.shift-vecBits)) {
		t.Fatalf("non-canonical root: n=%d shift=%d kids=%d", v.n, v.shift, len(v.root.kids))
	}
}

func TestVecProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var v *vec[int]
		var model []int
		var versions []*vec[int]
		var models [][]int
		// Start from a random size so that multi-level trees are common.
		for i := range rapid.IntRange(0, 2500).Draw(t, "initial") {
			v = v.push(i)
			model = append(model, i)
		}
		for i := range rapid.IntRange(0, 100).Draw(t, "ops") {
			switch op := rapid.IntRange(0, 3).Draw(t, "op"); {
			case op == 0 && len(model) > 0:
				v = v.pop()
				model = model[:len(model)-1]
			case op == 1 && len(model) > 0:
				j := rapid.IntRange(0, len(model)-1).Draw(t, "index")
				v = v.set(j, -i)
				model[j] = -i
			case op == 2:
				n := rapid.IntRange(0, len(model)).Draw(t, "popN")
				for range n {
					v = v.pop()
				}
				model = model[:len(model)-n]
			default:
				v = v.push(1000 + i)
				model = append(model, 1000+i)
			}
			versions = append(versions, v)
			models = append(models, slices.Clone(model))
		}
		checkVec(t, v, model)
		for i := range versions {
			checkVec(t, versions[i], models[i])
		}
	})
}
