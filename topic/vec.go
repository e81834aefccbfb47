package topic

// This file holds a persistent (immutable, path-copying) vector, a 32-way
// radix tree of entries. It holds the subscribers of one filter and the
// members of one shared group: readers iterate a snapshot they loaded with
// one atomic load, and a writer that adds, replaces or removes the N-th entry
// copies only O(32·log32 N) words instead of the whole set.

const (
	vecBits  = 5
	vecWidth = 1 << vecBits
	vecMask  = vecWidth - 1
)

// vnode is a leaf (leaf != nil) or an inner node (kids != nil).
type vnode[E any] struct {
	leaf []E
	kids []*vnode[E]
}

// vec is an immutable vector; a nil *vec is empty. The tree is dense: it
// holds entries 0..n-1 filling leaves from the left, and when shift > 0 the
// root has at least two kids.
type vec[E any] struct {
	n     int
	shift uint // height of the tree times vecBits; 0 when root is a leaf
	root  vnode[E]
	// small holds the entries of a vector of at most two (the common case
	// of a filter with one subscriber): root.leaf then points into the
	// vector itself, which saves an allocation and a cache miss per read.
	small [2]E
}

// leafVec returns a vector whose root is a leaf holding a copy of the
// entries of a followed by e (when withE).
func leafVec[E any](a []E, e E, withE bool) *vec[E] {
	n := len(a)
	if withE {
		n++
	}
	v := &vec[E]{n: n}
	var leaf []E
	if n <= len(v.small) {
		leaf = v.small[:n:n]
	} else {
		leaf = make([]E, n)
	}
	copy(leaf, a)
	if withE {
		leaf[n-1] = e
	}
	v.root.leaf = leaf
	return v
}

func (v *vec[E]) len() int {
	if v == nil {
		return 0
	}
	return v.n
}

// get returns entry i; 0 <= i < v.len().
func (v *vec[E]) get(i int) E {
	n := &v.root
	for s := v.shift; s > 0; s -= vecBits {
		n = n.kids[(i>>s)&vecMask]
	}
	return n.leaf[i&vecMask]
}

// push returns v with e appended.
func (v *vec[E]) push(e E) *vec[E] {
	if v == nil {
		return leafVec(nil, e, true)
	}
	if v.shift == 0 && v.n < vecWidth {
		return leafVec(v.root.leaf, e, true)
	}
	if v.n == vecWidth<<v.shift { // full: grow a level
		old := &vnode[E]{leaf: v.root.leaf, kids: v.root.kids}
		return &vec[E]{
			n:     v.n + 1,
			shift: v.shift + vecBits,
			root:  vnode[E]{kids: []*vnode[E]{old, newVecPath(v.shift, e)}},
		}
	}
	return &vec[E]{n: v.n + 1, shift: v.shift, root: pushInto(&v.root, v.shift, v.n, e)}
}

func newVecPath[E any](shift uint, e E) *vnode[E] {
	if shift == 0 {
		return &vnode[E]{leaf: []E{e}}
	}
	return &vnode[E]{kids: []*vnode[E]{newVecPath(shift-vecBits, e)}}
}

func pushInto[E any](n *vnode[E], shift uint, i int, e E) vnode[E] {
	if shift == 0 {
		leaf := make([]E, len(n.leaf)+1)
		copy(leaf, n.leaf)
		leaf[len(n.leaf)] = e
		return vnode[E]{leaf: leaf}
	}
	sub := (i >> shift) & vecMask
	if sub < len(n.kids) {
		kids := make([]*vnode[E], len(n.kids))
		copy(kids, n.kids)
		c := pushInto(n.kids[sub], shift-vecBits, i, e)
		kids[sub] = &c
		return vnode[E]{kids: kids}
	}
	kids := make([]*vnode[E], len(n.kids)+1)
	copy(kids, n.kids)
	kids[sub] = newVecPath(shift-vecBits, e)
	return vnode[E]{kids: kids}
}

// set returns v with entry i replaced by e; 0 <= i < v.len().
func (v *vec[E]) set(i int, e E) *vec[E] {
	if v.shift == 0 {
		var zero E
		nv := leafVec(v.root.leaf, zero, false)
		nv.root.leaf[i] = e
		return nv
	}
	return &vec[E]{n: v.n, shift: v.shift, root: setIn(&v.root, v.shift, i, e)}
}

func setIn[E any](n *vnode[E], shift uint, i int, e E) vnode[E] {
	if shift == 0 {
		leaf := make([]E, len(n.leaf))
		copy(leaf, n.leaf)
		leaf[i&vecMask] = e
		return vnode[E]{leaf: leaf}
	}
	sub := (i >> shift) & vecMask
	kids := make([]*vnode[E], len(n.kids))
	copy(kids, n.kids)
	c := setIn(n.kids[sub], shift-vecBits, i, e)
	kids[sub] = &c
	return vnode[E]{kids: kids}
}

// pop returns v without its last entry (nil when that leaves it empty).
func (v *vec[E]) pop() *vec[E] {
	if v.n == 1 {
		return nil
	}
	if v.shift == 0 {
		var zero E
		return leafVec(v.root.leaf[:v.n-1], zero, false)
	}
	root, _ := popFrom(&v.root, v.shift, v.n-1)
	shift := v.shift
	for shift > 0 && len(root.kids) == 1 { // keep the root at least binary
		root = *root.kids[0]
		shift -= vecBits
	}
	return &vec[E]{n: v.n - 1, shift: shift, root: root}
}

// popFrom removes entry i, the last one, below n; empty reports that n held
// only that entry.
func popFrom[E any](n *vnode[E], shift uint, i int) (_ vnode[E], empty bool) {
	if shift == 0 {
		if len(n.leaf) == 1 {
			return vnode[E]{}, true
		}
		leaf := make([]E, len(n.leaf)-1)
		copy(leaf, n.leaf)
		return vnode[E]{leaf: leaf}, false
	}
	sub := (i >> shift) & vecMask // == len(n.kids)-1
	c, cempty := popFrom(n.kids[sub], shift-vecBits, i)
	if cempty {
		if sub == 0 {
			return vnode[E]{}, true
		}
		kids := make([]*vnode[E], sub)
		copy(kids, n.kids[:sub])
		return vnode[E]{kids: kids}, false
	}
	kids := make([]*vnode[E], len(n.kids))
	copy(kids, n.kids)
	kids[sub] = &c
	return vnode[E]{kids: kids}, false
}

// each calls fn for every entry in order until fn returns false.
func (v *vec[E]) each(fn func(E) bool) bool {
	if v == nil {
		return true
	}
	return eachIn(&v.root, v.shift, fn)
}

func eachIn[E any](n *vnode[E], shift uint, fn func(E) bool) bool {
	if shift == 0 {
		for _, e := range n.leaf {
			if !fn(e) {
				return false
			}
		}
		return true
	}
	for _, k := range n.kids {
		if !eachIn(k, shift-vecBits, fn) {
			return false
		}
	}
	return true
}

// leaves appends the leaf slices of v, in order, to dst. Together they hold
// all entries; they are immutable and may be kept.
func (v *vec[E]) leaves(dst [][]E) [][]E {
	if v == nil {
		return dst
	}
	return leavesIn(dst, &v.root, v.shift)
}

func leavesIn[E any](dst [][]E, n *vnode[E], shift uint) [][]E {
	if shift == 0 {
		return append(dst, n.leaf)
	}
	for _, k := range n.kids {
		dst = leavesIn(dst, k, shift-vecBits)
	}
	return dst
}
