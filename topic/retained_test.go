package topic

import (
	"fmt"
	"slices"
	"sort"
	"testing"

	"pgregory.net/rapid"
)

func retainedMatch(r *Retained[int], filter string) []string {
	var out []string
	r.Match(filter, func(topic string, v int) bool {
		out = append(out, fmt.Sprintf("%s=%d", topic, v))
		return true
	})
	sort.Strings(out)
	return out
}

func countRNodes[V any](n *rnode[V]) int {
	c := 0
	hamtEach(n.children.Load(), func(_ string, k *rnode[V]) bool { c += 1 + countRNodes(k); return true })
	return c
}

func TestRetainedBasics(t *testing.T) {
	var r Retained[int]
	if _, ok := r.Get("a"); ok || r.Len() != 0 {
		t.Fatal("empty index")
	}
	topics := []string{"sport", "sport/", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking",
		"sport/golf", "/finance", "finance", "$SYS/broker/load", "$SYS", "a/$b", "//"}
	for i, tp := range topics {
		r.Set(tp, i)
	}
	r.Set("sport/golf", 100) // replace
	if r.Len() != len(topics) {
		t.Fatalf("Len = %d", r.Len())
	}
	if v, ok := r.Get("sport/golf"); !ok || v != 100 {
		t.Fatalf("Get = %v %v", v, ok)
	}
	if _, ok := r.Get("sport/tennis/player2"); ok {
		t.Fatal("Get of a missing topic")
	}
	if _, ok := r.Get("sport/tennis/player1/ranking/x"); ok {
		t.Fatal("Get below a leaf")
	}
	cases := []struct {
		filter string
		want   []string
	}{
		{"sport/#", []string{"sport", "sport/", "sport/golf", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking"}},
		{"sport/+", []string{"sport/", "sport/golf", "sport/tennis"}},
		{"sport/tennis/+", []string{"sport/tennis/player1"}},
		{"+", []string{"finance", "sport"}},
		{"+/+", []string{"/finance", "a/$b", "sport/", "sport/golf", "sport/tennis"}},
		{"/+", []string{"/finance"}},
		{"#", []string{"//", "/finance", "a/$b", "finance", "sport", "sport/", "sport/golf", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking"}},
		{"$SYS/#", []string{"$SYS", "$SYS/broker/load"}},
		{"+/broker/load", nil},
		{"$SYS/+/load", []string{"$SYS/broker/load"}},
		{"a/+", []string{"a/$b"}},
		{"+/+/+", []string{"$SYS/broker/load"}[:0:0]},
		{"sport/tennis/player1/ranking", []string{"sport/tennis/player1/ranking"}},
		{"sport/tennis/#/x", nil}, // invalid
		{"nothing/#", nil},
	}
	cases[11].want = []string{"//", "sport/tennis/player1"}
	for _, c := range cases {
		var got []string
		r.Match(c.filter, func(topic string, _ int) bool { got = append(got, topic); return true })
		sort.Strings(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("Match(%q) = %q, want %q", c.filter, got, c.want)
		}
		for _, tp := range got {
			if !Matches(c.filter, tp) {
				t.Errorf("Match(%q) gave %q, which Matches rejects", c.filter, tp)
			}
		}
	}
	// Early stop.
	n := 0
	r.Match("#", func(string, int) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("early stop after %d calls", n)
	}
	n = 0
	r.Match("sport/+", func(string, int) bool { n++; return false })
	if n != 1 {
		t.Errorf("early stop after %d calls", n)
	}
	// The callback may write to the index.
	r.Match("sport/#", func(topic string, v int) bool { r.Set("copy/"+topic, v); return true })
	if r.Len() != len(topics)+6 {
		t.Errorf("Len after writes in callback = %d", r.Len())
	}
	r.Match("copy/#", func(topic string, _ int) bool { r.Delete(topic); return true })
	if r.Delete("sport/tennis/player2") || r.Delete("missing") || r.Len() != len(topics) {
		t.Error("Delete of a missing topic")
	}
	for _, tp := range topics {
		r.Delete(tp)
	}
	if r.Len() != 0 || countRNodes(&r.root) != 0 {
		t.Errorf("not empty: Len %d, %d nodes", r.Len(), countRNodes(&r.root))
	}
}

func TestRetainedProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var r Retained[int]
		md := map[string]int{}
		for i := range rapid.IntRange(0, 60).Draw(t, "ops") {
			tp := genTopic().Draw(t, "topic")
			if rapid.IntRange(0, 3).Draw(t, "delete") == 0 {
				_, had := md[tp]
				if r.Delete(tp) != had {
					t.Fatalf("Delete(%q) != %v", tp, had)
				}
				delete(md, tp)
			} else {
				r.Set(tp, i)
				md[tp] = i
			}
		}
		if r.Len() != len(md) {
			t.Fatalf("Len %d, model %d", r.Len(), len(md))
		}
		for _, f := range rapid.SliceOfN(genFilter(), 1, 10).Draw(t, "filters") {
			var want []string
			for tp, v := range md {
				if Matches(f, tp) {
					want = append(want, fmt.Sprintf("%s=%d", tp, v))
				}
			}
			sort.Strings(want)
			if got := retainedMatch(&r, f); !slices.Equal(got, want) {
				t.Fatalf("Match(%q) = %q, want %q", f, got, want)
			}
		}
		for tp, v := range md {
			if got, ok := r.Get(tp); !ok || got != v {
				t.Fatalf("Get(%q) = %v %v", tp, got, ok)
			}
			r.Delete(tp)
		}
		if countRNodes(&r.root) != 0 {
			t.Fatal("not pruned")
		}
	})
}
