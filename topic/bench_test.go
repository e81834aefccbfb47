package topic

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

type benchOpts struct {
	qos   byte
	subID uint32
}

// benchTree builds 100,000 subscriptions over topics "bld/b{0..99}/r{0..99}/m{0..9}":
// 70,000 exact filters, 20,000 with '+', 5,000 with '#', 5,000 shared.
func benchTree() (*Tree[int, benchOpts], []string) {
	tr := new(Tree[int, benchOpts])
	id := 0
	sub := func(f string) {
		if _, err := tr.Subscribe(f, id, benchOpts{1, uint32(id)}); err != nil {
			panic(err)
		}
		id++
	}
	for i := range 70000 {
		sub(fmt.Sprintf("bld/b%d/r%d/m%d", i/1000, i/10%100, i%10))
	}
	for i := range 1000 {
		for range 5 {
			sub(fmt.Sprintf("bld/b%d/+/m%d", i/10, i%10))
			sub(fmt.Sprintf("bld/+/r%d/m%d", i/10, i%10))
		}
	}
	for i := range 10000 {
		sub(fmt.Sprintf("bld/b%d/r%d/+", i/100, i%100))
	}
	for i := range 100 {
		for range 20 {
			sub(fmt.Sprintf("bld/b%d/#", i))
		}
	}
	for i := range 3000 {
		sub(fmt.Sprintf("bld/b%d/r%d/#", i/100, i%100))
	}
	for i := range 5000 {
		sub(fmt.Sprintf("$share/g%d/bld/b%d/r%d/+", i%3, i/50, i%50))
	}
	if tr.Len() != 100000 {
		panic(tr.Len())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	topics := make([]string, 1024)
	for i := range topics {
		topics[i] = fmt.Sprintf("bld/b%d/r%d/m%d", rng.IntN(100), rng.IntN(100), rng.IntN(10))
	}
	return tr, topics
}

var benchTreeOnce = sync.OnceValues(benchTree)

// BenchmarkMatch matches 4-level topics against 100,000 subscriptions.
// "1024-topics" cycles through 1,024 random topics (the trie paths they
// touch do not all stay in cache); "1-topic" repeats one topic (cache-hot).
func BenchmarkMatch(b *testing.B) {
	tr, topics := benchTreeOnce()
	for _, c := range []struct {
		name string
		mask int
	}{{"1024-topics", 1023}, {"1-topic", 0}} {
		b.Run(c.name, func(b *testing.B) {
			var m MatchResult[int, benchOpts]
			found := 0
			i := 0
			for b.Loop() {
				m.Reset()
				tr.Match(topics[i&c.mask], &m)
				found += len(m.Subs) + len(m.Shared)
				i++
			}
			b.ReportMetric(float64(found)/float64(i), "matches/op")
		})
	}
}

func BenchmarkMatchParallel(b *testing.B) {
	tr, topics := benchTreeOnce()
	b.RunParallel(func(pb *testing.PB) {
		var m MatchResult[int, benchOpts]
		i := 0
		for pb.Next() {
			m.Reset()
			tr.Match(topics[i&1023], &m)
			i++
		}
	})
}

// BenchmarkSubscribeUnsubscribeWhileMatching measures one Subscribe plus one
// Unsubscribe on the 100,000-subscription tree while two goroutines match
// continuously.
func BenchmarkSubscribeUnsubscribeWhileMatching(b *testing.B) {
	tr, topics := benchTreeOnce()
	filters := make([]string, 4096)
	for i := range filters {
		switch i % 4 {
		case 0:
			filters[i] = fmt.Sprintf("bld/b%d/r%d/m%d", i%100, i%97, i%10) // existing path
		case 1:
			filters[i] = fmt.Sprintf("new/%d/+/x", i) // new path
		case 2:
			filters[i] = fmt.Sprintf("bld/b%d/+/m%d", i%100, i%10) // existing '+' node
		default:
			filters[i] = fmt.Sprintf("$share/n%d/bld/b%d/#", i, i%100)
		}
	}
	var stop atomic.Bool
	var matches atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m MatchResult[int, benchOpts]
			n := int64(0)
			for i := g; !stop.Load(); i++ {
				m.Reset()
				tr.Match(topics[i&1023], &m)
				n++
			}
			matches.Add(n)
		}()
	}
	i := 0
	for b.Loop() {
		f := filters[i&4095]
		tr.Subscribe(f, -1-i, benchOpts{})
		tr.Unsubscribe(f, -1-i)
		i++
	}
	elapsed := b.Elapsed()
	stop.Store(true)
	wg.Wait()
	b.ReportMetric(float64(2*i)/elapsed.Seconds(), "sub+unsub/s")
	b.ReportMetric(float64(matches.Load())/elapsed.Seconds(), "matches/s")
}

// BenchmarkSubscribeSameFilter measures subscribing (and unsubscribing) the
// N-th subscriber of one filter, and replacing an existing subscription.
func BenchmarkSubscribeSameFilter(b *testing.B) {
	for _, n := range []int{1, 100, 10000, 1000000} {
		var tr Tree[int, benchOpts]
		for i := range n {
			tr.Subscribe("sensors/+/temp", i, benchOpts{})
		}
		b.Run("N="+strconv.Itoa(n)+"/subscribe+unsubscribe", func(b *testing.B) {
			for b.Loop() {
				tr.Subscribe("sensors/+/temp", -1, benchOpts{qos: 1})
				tr.Unsubscribe("sensors/+/temp", -1)
			}
		})
		b.Run("N="+strconv.Itoa(n)+"/replace", func(b *testing.B) {
			i := 0
			for b.Loop() {
				tr.Subscribe("sensors/+/temp", i%n, benchOpts{qos: byte(i)})
				i++
			}
		})
	}
}

// benchRetained holds 1,000,000 topics "dev/{0..99999}/s{0..9}".
var benchRetained = sync.OnceValue(func() *Retained[int] {
	r := new(Retained[int])
	for i := range 100000 {
		for s := range 10 {
			r.Set("dev/"+strconv.Itoa(i)+"/s"+strconv.Itoa(s), i*10+s)
		}
	}
	return r
})

// BenchmarkRetainedMatch matches filters that select 1 or 10 of 1,000,000
// retained topics: the cost follows the matched subtree, not the index size.
func BenchmarkRetainedMatch(b *testing.B) {
	r := benchRetained()
	if r.Len() != 1000000 {
		b.Fatal(r.Len())
	}
	for _, f := range []string{"dev/4242/+", "dev/4242/#", "dev/4242/s7", "+/4242/+"} {
		b.Run(f, func(b *testing.B) {
			n := 0
			for b.Loop() {
				r.Match(f, func(string, int) bool { n++; return true })
			}
			b.ReportMetric(float64(n)/float64(b.N), "matches/op")
		})
	}
}

func BenchmarkRetainedSet(b *testing.B) {
	r := benchRetained()
	i := 0
	for b.Loop() {
		r.Set("dev/"+strconv.Itoa(i%100000)+"/s"+strconv.Itoa(i%10), i)
		i++
	}
}
