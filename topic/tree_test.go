package topic

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"unsafe"

	"pgregory.net/rapid"
)

// snapshot renders a match result canonically: non-shared entries as
// "filter|sub=value" and groups as "$share/name/filter:sub=value,...".
func snapshot(m *MatchResult[int, int]) []string {
	var out []string
	for _, s := range m.Subs {
		out = append(out, fmt.Sprintf("%s|%d=%d", s.Filter, s.Sub, s.Value))
	}
	for _, g := range m.Shared {
		var ms []string
		for _, e := range g.Members().AppendTo(nil) {
			ms = append(ms, fmt.Sprintf("%d=%d", e.Sub, e.Value))
		}
		sort.Strings(ms)
		out = append(out, fmt.Sprintf("$share/%s/%s:%s", g.Name(), g.Filter(), strings.Join(ms, ",")))
	}
	sort.Strings(out)
	return out
}

// model is the brute-force reference: a map from (filter, sub) to value.
type subKey struct {
	filter string
	sub    int
}

type model map[subKey]int

func (md model) match(topic string) []string {
	var out []string
	groups := map[string][]string{}
	for k, v := range md {
		if g, inner, ok, _ := ParseShared(k.filter); ok {
			if Matches(inner, topic) {
				key := "$share/" + g + "/" + inner
				groups[key] = append(groups[key], fmt.Sprintf("%d=%d", k.sub, v))
			}
		} else if Matches(k.filter, topic) {
			out = append(out, fmt.Sprintf("%s|%d=%d", k.filter, k.sub, v))
		}
	}
	for key, ms := range groups {
		sort.Strings(ms)
		out = append(out, key+":"+strings.Join(ms, ","))
	}
	sort.Strings(out)
	return out
}

func treeMatch(tr *Tree[int, int], topic string) []string {
	var m MatchResult[int, int]
	tr.Match(topic, &m)
	return snapshot(&m)
}

// countNodes counts the nodes below the root (for pruning checks).
func countNodes[S comparable, V any](n *node[S, V]) int {
	c := 0
	hamtEach(n.children.Load(), func(_ string, k *node[S, V]) bool { c += 1 + countNodes(k); return true })
	if p := n.plus.Load(); p != nil {
		c += 1 + countNodes(p)
	}
	if h := n.hash.Load(); h != nil {
		c += 1 + countNodes(h)
	}
	return c
}

func TestTreeSpecExamples(t *testing.T) {
	var tr Tree[int, int]
	md := model{}
	for i, c := range matchCases {
		if ValidateFilter(c.filter) != nil {
			if _, err := tr.Subscribe(c.filter, i, i); err == nil {
				t.Errorf("Subscribe(%q) accepted an invalid filter", c.filter)
			}
			continue
		}
		if _, err := tr.Subscribe(c.filter, i, i); err != nil {
			t.Fatalf("Subscribe(%q): %v", c.filter, err)
		}
		md[subKey{c.filter, i}] = i
	}
	for _, c := range matchCases {
		if ValidateName(c.topic) != nil {
			continue
		}
		if got, want := treeMatch(&tr, c.topic), md.match(c.topic); !slices.Equal(got, want) {
			t.Errorf("Match(%q) = %q, want %q", c.topic, got, want)
		}
		// and the specific case:
		if ValidateFilter(c.filter) != nil {
			continue
		}
		found := false
		for _, s := range treeMatch(&tr, c.topic) {
			if strings.HasPrefix(s, c.filter+"|") {
				found = true
			}
		}
		if found != c.want {
			t.Errorf("tree: %q matching %q = %v, want %v", c.filter, c.topic, found, c.want)
		}
	}
}

func TestTreeBasics(t *testing.T) {
	var tr Tree[string, int]
	var m MatchResult[string, int]
	tr.Match("a", &m) // empty tree
	if len(m.Subs) != 0 || tr.Len() != 0 {
		t.Fatal("empty tree matched")
	}
	mustSub := func(f, s string, v int, wantReplaced bool) {
		t.Helper()
		r, err := tr.Subscribe(f, s, v)
		if err != nil || r != wantReplaced {
			t.Fatalf("Subscribe(%q, %q) = %v, %v; want %v", f, s, r, err, wantReplaced)
		}
	}
	mustSub("sport/#", "c1", 1, false)
	mustSub("sport/tennis/+", "c1", 2, false)
	mustSub("sport/tennis/+", "c2", 3, false)
	mustSub("sport/tennis/+", "c1", 4, true) // replaced [MQTT-3.8.4-3]
	mustSub("#", "c3", 5, false)
	mustSub("$SYS/#", "c3", 6, false)
	mustSub("$share/g1/sport/tennis/+", "c4", 7, false)
	mustSub("$share/g1/sport/tennis/+", "c5", 8, false)
	mustSub("$share/g1/sport/tennis/+", "c5", 9, true)
	mustSub("$share/g2/sport/tennis/+", "c4", 10, false)
	mustSub("$share/g1/#", "c6", 11, false)
	if tr.Len() != 9 {
		t.Fatalf("Len = %d, want 9", tr.Len())
	}
	m.Reset()
	tr.Match("sport/tennis/player1", &m)
	got := map[string]int{}
	for _, s := range m.Subs {
		got[s.Filter+"|"+s.Sub] = s.Value
	}
	want := map[string]int{"sport/#|c1": 1, "sport/tennis/+|c1": 4, "sport/tennis/+|c2": 3, "#|c3": 5}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Subs = %v, want %v", got, want)
	}
	var groups []string
	for _, g := range m.Shared {
		groups = append(groups, g.Name()+":"+g.Filter()+":"+fmt.Sprint(g.Members().Len()))
	}
	sort.Strings(groups)
	if want := []string{"g1:#:1", "g1:sport/tennis/+:2", "g2:sport/tennis/+:1"}; !slices.Equal(groups, want) {
		t.Errorf("groups = %v, want %v", groups, want)
	}

	// '$' topics: only filters starting with '$SYS' match [MQTT-4.7.2-1].
	m.Reset()
	tr.Match("$SYS/broker", &m)
	if len(m.Subs) != 1 || m.Subs[0].Filter != "$SYS/#" || len(m.Shared) != 0 {
		t.Errorf("$SYS match = %+v", m)
	}

	// Errors.
	if _, err := tr.Subscribe("a/#/b", "x", 0); !errors.Is(err, ErrInvalidWildcard) {
		t.Errorf("invalid filter: %v", err)
	}
	if _, err := tr.Subscribe("$share//a", "x", 0); !errors.Is(err, ErrInvalidShare) {
		t.Errorf("invalid share: %v", err)
	}
	if tr.Unsubscribe("a/#/b", "x") || tr.Unsubscribe("sport/#", "nobody") || tr.Unsubscribe("nothing/here", "c1") ||
		tr.Unsubscribe("$share/g3/sport/tennis/+", "c4") || tr.Unsubscribe("$share/g2/sport/tennis/+", "c5") {
		t.Error("Unsubscribe of a missing subscription returned true")
	}

	// Unsubscribe everything: the tree prunes to an empty root.
	for _, u := range [][2]string{
		{"sport/#", "c1"}, {"sport/tennis/+", "c1"}, {"sport/tennis/+", "c2"}, {"#", "c3"}, {"$SYS/#", "c3"},
		{"$share/g1/sport/tennis/+", "c4"}, {"$share/g1/sport/tennis/+", "c5"}, {"$share/g2/sport/tennis/+", "c4"},
		{"$share/g1/#", "c6"},
	} {
		if !tr.Unsubscribe(u[0], u[1]) {
			t.Errorf("Unsubscribe(%q, %q) = false", u[0], u[1])
		}
	}
	if tr.Len() != 0 || countNodes(&tr.root) != 0 || !tr.root.empty() {
		t.Errorf("after unsubscribing all: Len=%d nodes=%d", tr.Len(), countNodes(&tr.root))
	}
}

// The tree must copy what it keeps: a broker may pass strings that view a
// reusable read buffer.
func TestTreeKeepsNoCallerString(t *testing.T) {
	var tr Tree[int, int]
	var r Retained[int]
	buf := []byte("$share/g/a/b/c")
	view := unsafe.String(&buf[0], len(buf))
	tr.Subscribe(view, 1, 1)
	tr.Subscribe(view[len("$share/g/"):], 2, 2)
	r.Set(view[len("$share/g/"):], 3)
	copy(buf, "$share/x/y/z/w") // the buffer is reused
	var m MatchResult[int, int]
	tr.Match("a/b/c", &m)
	if len(m.Subs) != 1 || m.Subs[0].Filter != "a/b/c" || len(m.Shared) != 1 ||
		m.Shared[0].Name() != "g" || m.Shared[0].Filter() != "a/b/c" {
		t.Fatalf("got %+v", m)
	}
	n := 0
	r.Match("a/#", func(topic string, v int) bool { n++; return topic == "a/b/c" && v == 3 })
	if n != 1 {
		t.Fatal("retained topic aliases the caller's buffer")
	}
}

func TestSharedGroupStableAndPick(t *testing.T) {
	var tr Tree[int, string]
	for i := range 5 {
		tr.Subscribe("$share/g/a/+", i, fmt.Sprint("v", i))
	}
	var m MatchResult[int, string]
	tr.Match("a/x", &m)
	if len(m.Shared) != 1 {
		t.Fatalf("shared = %d", len(m.Shared))
	}
	g := m.Shared[0]
	counts := map[int]int{}
	for range 50 {
		mem, ok := g.Pick()
		if !ok {
			t.Fatal("Pick failed")
		}
		counts[mem.Sub]++
	}
	for i := range 5 {
		if counts[i] != 10 {
			t.Errorf("round robin: member %d picked %d times", i, counts[i])
		}
	}
	if g.Counter().Load() != 50 {
		t.Errorf("counter = %d", g.Counter().Load())
	}
	// The group pointer survives membership changes.
	tr.Unsubscribe("$share/g/a/+", 3)
	tr.Subscribe("$share/g/a/+", 7, "v7")
	m.Reset()
	tr.Match("a/y", &m)
	if len(m.Shared) != 1 || m.Shared[0] != g || g.Members().Len() != 5 {
		t.Fatalf("group not stable")
	}
	var subs []int
	for i, mem := range g.Members().All() {
		if g.Members().At(i) != mem {
			t.Error("All and At disagree")
		}
		subs = append(subs, mem.Sub)
	}
	slices.Sort(subs)
	if !slices.Equal(subs, []int{0, 1, 2, 4, 7}) {
		t.Errorf("members = %v", subs)
	}
	snap := g.Members()
	for _, s := range []int{0, 1, 2, 4, 7} {
		tr.Unsubscribe("$share/g/a/+", s)
	}
	if snap.Len() != 5 {
		t.Error("snapshot changed")
	}
	if _, ok := g.Pick(); ok {
		t.Error("Pick on an empty group succeeded")
	}
	m.Reset()
	tr.Match("a/y", &m)
	if len(m.Shared) != 0 || tr.Len() != 0 {
		t.Error("group not removed")
	}
}

// Many subscribers on one filter and many children of one node exercise the
// multi-level vector, its index, and the hash trie.
func TestTreeLarge(t *testing.T) {
	var tr Tree[int, int]
	const n = 3000
	for i := range n {
		if r, _ := tr.Subscribe("a/b", i, i); r {
			t.Fatal("replaced")
		}
		tr.Subscribe(fmt.Sprintf("a/%d", i), i, i)
		tr.Subscribe("$share/g/a/b", i, i)
	}
	for i := 0; i < n; i += 3 {
		if r, _ := tr.Subscribe("a/b", i, -i); !r {
			t.Fatal("not replaced")
		}
	}
	check := func(present func(int) bool) {
		t.Helper()
		var m MatchResult[int, int]
		tr.Match("a/b", &m)
		seen := map[int]bool{}
		for _, s := range m.Subs {
			if seen[s.Sub] {
				t.Fatalf("duplicate %d", s.Sub)
			}
			seen[s.Sub] = true
			want := s.Sub
			if s.Sub%3 == 0 {
				want = -s.Sub
			}
			if s.Value != want {
				t.Fatalf("value of %d = %d", s.Sub, s.Value)
			}
		}
		members := map[int]bool{}
		if len(m.Shared) == 1 {
			mem := m.Shared[0].Members()
			for i := range mem.Len() {
				members[mem.At(i).Sub] = true
			}
		}
		for i := range n {
			if seen[i] != present(i) || members[i] != present(i) {
				t.Fatalf("sub %d: seen %v member %v want %v", i, seen[i], members[i], present(i))
			}
			m.Reset()
			tr.Match(fmt.Sprintf("a/%d", i), &m)
			if (len(m.Subs) == 1) != present(i) {
				t.Fatalf("a/%d: %d subs", i, len(m.Subs))
			}
		}
	}
	check(func(int) bool { return true })
	// Remove in a scrambled order, half of them.
	for j := range n {
		i := (j * 7919) % n
		if i%2 == 1 {
			if !tr.Unsubscribe("a/b", i) || !tr.Unsubscribe(fmt.Sprintf("a/%d", i), i) || !tr.Unsubscribe("$share/g/a/b", i) {
				t.Fatalf("Unsubscribe %d", i)
			}
		}
	}
	check(func(i int) bool { return i%2 == 0 })
	if tr.Len() != 3*n/2 {
		t.Fatalf("Len = %d", tr.Len())
	}
	for i := 0; i < n; i += 2 {
		tr.Unsubscribe("a/b", i)
		tr.Unsubscribe(fmt.Sprintf("a/%d", i), i)
		tr.Unsubscribe("$share/g/a/b", i)
	}
	if tr.Len() != 0 || countNodes(&tr.root) != 0 {
		t.Fatalf("not empty: Len %d nodes %d", tr.Len(), countNodes(&tr.root))
	}
}

func TestTreeMatchNoAlloc(t *testing.T) {
	var tr Tree[int, int]
	for i := range 100 {
		tr.Subscribe(fmt.Sprintf("s/%d/+/t", i), i, i)
		tr.Subscribe(fmt.Sprintf("s/%d/#", i), i, i)
		tr.Subscribe(fmt.Sprintf("$share/g/s/%d/r/t", i), i, i)
		tr.Subscribe("s/+/r/t", i, i)
	}
	var m MatchResult[int, int]
	tr.Match("s/5/r/t", &m)
	n := testing.AllocsPerRun(100, func() {
		m.Reset()
		tr.Match("s/5/r/t", &m)
	})
	if n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
	if len(m.Subs) != 102 || len(m.Shared) != 1 {
		t.Errorf("got %d subs, %d groups", len(m.Subs), len(m.Shared))
	}
}

// genSubFilter draws plain and shared filters.
func genSubFilter() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		f := genFilter().Draw(t, "f")
		if rapid.IntRange(0, 4).Draw(t, "share") == 0 {
			return "$share/" + rapid.SampledFrom([]string{"g", "h"}).Draw(t, "group") + "/" + f
		}
		return f
	})
}

// Tree.Match equals the brute-force model after any sequence of
// subscriptions, replacements and unsubscriptions.
func TestTreeProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var tr Tree[int, int]
		md := model{}
		filters := rapid.SliceOfN(genSubFilter(), 1, 12).Draw(t, "filters")
		ops := rapid.IntRange(1, 80).Draw(t, "ops")
		for i := range ops {
			f := rapid.SampledFrom(filters).Draw(t, "filter")
			sub := rapid.IntRange(0, 3).Draw(t, "sub")
			k := subKey{f, sub}
			if rapid.IntRange(0, 2).Draw(t, "unsub") == 0 {
				_, had := md[k]
				if got := tr.Unsubscribe(f, sub); got != had {
					t.Fatalf("Unsubscribe(%q,%d) = %v, model %v", f, sub, got, had)
				}
				delete(md, k)
			} else {
				_, had := md[k]
				r, err := tr.Subscribe(f, sub, i)
				if err != nil || r != had {
					t.Fatalf("Subscribe(%q,%d) = %v,%v, model %v", f, sub, r, err, had)
				}
				md[k] = i
			}
			if tr.Len() != len(md) {
				t.Fatalf("Len = %d, model %d", tr.Len(), len(md))
			}
		}
		topics := append(rapid.SliceOfN(genTopic(), 1, 10).Draw(t, "topics"), instances(filters[0])...)
		for _, topic := range topics {
			if got, want := treeMatch(&tr, topic), md.match(topic); !slices.Equal(got, want) {
				t.Fatalf("Match(%q) = %q\nmodel %q", topic, got, want)
			}
		}
		for k := range md {
			tr.Unsubscribe(k.filter, k.sub)
		}
		if tr.Len() != 0 || countNodes(&tr.root) != 0 || !tr.root.empty() {
			t.Fatalf("not pruned: %d nodes", countNodes(&tr.root))
		}
	})
}
