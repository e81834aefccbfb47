package topic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

type stressVal struct {
	filter string
	sub    int
	seq    int
}

var (
	stressFilters = []string{
		"#", "+", "+/+", "+/#", "a", "a/#", "a/+", "a/b", "a/b/c", "a/+/c", "+/b/#", "a/b/#", "$SYS/#",
		"$SYS/+", "$SYS/x", "b", "b/+/+", "/#", "/", "+/+/+", "c/#",
		"$share/g/#", "$share/g/a/+", "$share/h/a/+", "$share/g/a/b", "$share/h/+/b/#", "$share/g/$SYS/#",
	}
	stressTopics = []string{
		"a", "a/b", "a/b/c", "a/x/c", "b", "b/b/b", "$SYS", "$SYS/x", "$SYS/x/y", "/", "/a", "c", "c/d/e/f",
		"x/b", "x/b/y",
	}
)

// checkResult verifies what a reader can check without the writers' state:
// every entry matches, carries a value that was stored under its own filter
// and subscriber, and appears once.
func checkResult(topic string, m *MatchResult[int, stressVal]) error {
	seen := map[subKey]bool{}
	for _, s := range m.Subs {
		if !Matches(s.Filter, topic) {
			return fmt.Errorf("%q returned for %q", s.Filter, topic)
		}
		if s.Value.filter != s.Filter || s.Value.sub != s.Sub {
			return fmt.Errorf("entry %q/%d has value %+v", s.Filter, s.Sub, s.Value)
		}
		k := subKey{s.Filter, s.Sub}
		if seen[k] {
			return fmt.Errorf("duplicate %v", k)
		}
		seen[k] = true
	}
	groups := map[*SharedGroup[int, stressVal]]bool{}
	for _, g := range m.Shared {
		if groups[g] {
			return fmt.Errorf("group %s/%s twice", g.Name(), g.Filter())
		}
		groups[g] = true
		if !Matches(g.Filter(), topic) {
			return fmt.Errorf("group filter %q returned for %q", g.Filter(), topic)
		}
		full := SharePrefix + g.Name() + "/" + g.Filter()
		mem := g.Members()
		subs := map[int]bool{}
		for i := range mem.Len() {
			e := mem.At(i)
			if e.Value.filter != full || e.Value.sub != e.Sub || subs[e.Sub] {
				return fmt.Errorf("group %q member %+v", full, e)
			}
			subs[e.Sub] = true
		}
	}
	return nil
}

// Several writers subscribe and unsubscribe while readers match; the readers
// check every result, and the final tree must equal the writers' models.
func TestTreeConcurrentStress(t *testing.T) {
	const (
		writers     = 4
		readers     = 2
		opsPerWrite = 10000
		subsPerW    = 6
	)
	var tr Tree[int, stressVal]
	// Sentinels stay subscribed throughout: every Match must see them, even
	// while the levels around them are created and pruned.
	sentinels := []string{"a/b/c", "$share/s/+/b/#"}
	for _, f := range sentinels {
		tr.Subscribe(f, -1, stressVal{f, -1, -1})
	}
	var done atomic.Bool
	models := make([]model, writers)
	errs := make(chan error, writers+readers)
	var wg, rg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			md := model{}
			for i := range opsPerWrite {
				f := stressFilters[rng.IntN(len(stressFilters))]
				sub := w*100 + rng.IntN(subsPerW)
				k := subKey{f, sub}
				if rng.IntN(3) == 0 {
					_, had := md[k]
					if tr.Unsubscribe(f, sub) != had {
						errs <- fmt.Errorf("writer %d: Unsubscribe(%q,%d) != %v", w, f, sub, had)
						return
					}
					delete(md, k)
				} else {
					_, had := md[k]
					r, err := tr.Subscribe(f, sub, stressVal{f, sub, i})
					if err != nil || r != had {
						errs <- fmt.Errorf("writer %d: Subscribe(%q,%d) = %v %v, want %v", w, f, sub, r, err, had)
						return
					}
					md[k] = i
				}
			}
			models[w] = md
		}()
	}
	var matches atomic.Int64
	for r := range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			var m MatchResult[int, stressVal]
			for i := r; !done.Load(); i++ {
				topic := stressTopics[i%len(stressTopics)]
				m.Reset()
				tr.Match(topic, &m)
				if err := checkResult(topic, &m); err != nil {
					errs <- err
					return
				}
				if err := checkSentinels(topic, &m); err != nil {
					errs <- err
					return
				}
				matches.Add(1)
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d concurrent matches", matches.Load())

	all := model{}
	for _, f := range sentinels {
		all[subKey{f, -1}] = -1
	}
	for _, md := range models {
		for k, v := range md {
			all[k] = v
		}
	}
	if tr.Len() != len(all) {
		t.Fatalf("Len = %d, model %d", tr.Len(), len(all))
	}
	for _, topic := range stressTopics {
		var m MatchResult[int, stressVal]
		tr.Match(topic, &m)
		var got []string
		for _, s := range m.Subs {
			got = append(got, fmt.Sprintf("%s|%d=%d", s.Filter, s.Sub, s.Value.seq))
		}
		for _, g := range m.Shared {
			for i := range g.Members().Len() {
				e := g.Members().At(i)
				got = append(got, fmt.Sprintf("%s|%d=%d", e.Value.filter, e.Sub, e.Value.seq))
			}
		}
		var want []string
		for k, v := range all {
			inner := k.filter
			if _, in, ok, _ := ParseShared(k.filter); ok {
				inner = in
			}
			if Matches(inner, topic) {
				want = append(want, fmt.Sprintf("%s|%d=%d", k.filter, k.sub, v))
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q) = %q\nwant %q", topic, got, want)
		}
	}
	for k := range all {
		if !tr.Unsubscribe(k.filter, k.sub) {
			t.Fatalf("Unsubscribe(%v)", k)
		}
	}
	if tr.Len() != 0 || countNodes(&tr.root) != 0 || !tr.root.empty() {
		t.Fatalf("not pruned: Len %d, %d nodes", tr.Len(), countNodes(&tr.root))
	}
}

func checkSentinels(topic string, m *MatchResult[int, stressVal]) error {
	if Matches("a/b/c", topic) && !slices.ContainsFunc(m.Subs, func(s Subscription[int, stressVal]) bool {
		return s.Sub == -1 && s.Filter == "a/b/c"
	}) {
		return fmt.Errorf("sentinel a/b/c missing for %q", topic)
	}
	if Matches("+/b/#", topic) && !slices.ContainsFunc(m.Shared, func(g *SharedGroup[int, stressVal]) bool {
		mem := g.Members()
		for i := range mem.Len() {
			if mem.At(i).Sub == -1 {
				return g.Name() == "s"
			}
		}
		return false
	}) {
		return fmt.Errorf("sentinel group s missing for %q", topic)
	}
	return nil
}

// The same for the retained index: writers own disjoint topics (by first
// level), readers check that every result matches its filter and that values
// belong to their topics.
func TestRetainedConcurrentStress(t *testing.T) {
	const (
		writers     = 3
		readers     = 2
		opsPerWrite = 6000
	)
	var r Retained[string]
	var done atomic.Bool
	models := make([]map[string]string, writers)
	errs := make(chan error, writers+readers)
	levels := []string{"a", "b", "", "$x"}
	var wg, rg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			md := map[string]string{}
			for i := range opsPerWrite {
				topic := fmt.Sprintf("w%d", w)
				if w == 0 {
					topic = "$w0" // a '$' topic tree
				}
				for range rng.IntN(4) {
					topic += "/" + levels[rng.IntN(len(levels))]
				}
				if rng.IntN(3) == 0 {
					_, had := md[topic]
					if r.Delete(topic) != had {
						errs <- fmt.Errorf("Delete(%q) != %v", topic, had)
						return
					}
					delete(md, topic)
				} else {
					v := fmt.Sprintf("%s#%d", topic, i)
					r.Set(topic, v)
					md[topic] = v
				}
			}
			models[w] = md
		}()
	}
	filters := []string{"#", "+", "+/+", "w1/#", "w1/+/a", "$w0/#", "+/a/#", "w2/+", "w2", "$w0/+/+"}
	for g := range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for i := g; !done.Load(); i++ {
				f := filters[i%len(filters)]
				seen := map[string]bool{}
				var err error
				r.Match(f, func(topic, v string) bool {
					if !Matches(f, topic) || seen[topic] || len(v) <= len(topic) || v[:len(topic)+1] != topic+"#" {
						err = fmt.Errorf("Match(%q) gave %q=%q", f, topic, v)
						return false
					}
					seen[topic] = true
					return true
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := map[string]string{}
	for _, md := range models {
		for k, v := range md {
			all[k] = v
		}
	}
	if r.Len() != len(all) {
		t.Fatalf("Len = %d, model %d", r.Len(), len(all))
	}
	for _, f := range filters {
		var got, want []string
		r.Match(f, func(topic, v string) bool { got = append(got, topic+"="+v); return true })
		for k, v := range all {
			if Matches(f, k) {
				want = append(want, k+"="+v)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q) = %q\nwant %q", f, got, want)
		}
	}
	for k := range all {
		r.Delete(k)
	}
	if r.Len() != 0 || countRNodes(&r.root) != 0 {
		t.Fatal("not pruned")
	}
}
