package store

// Benchmarks of the engines under the broker's workload. See
// docs/persistence.md for the figures and the choice they support.
//
//	go test -run '^$' -bench . -benchtime 200x ./broker/store/         smoke run (CI)
//	go test -run '^$' -bench 'QoS1' ./broker/store/                     commits/s, entries/s
//	go test -run '^$' -bench Churn -benchtime 1000000x ./broker/store/  size after 1,000,000 put+delete
//	STORE_BENCH_FULL=1 go test -run '^$' -bench Load ./broker/store/   100,000 sessions, 1,000,000 retained
//
// STORE_BENCH_DIR puts the stores in a directory of your choice (the disk
// matters: fsync is what these measure).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func benchEngines() []engine { return diskEngines() }

func benchDir(b *testing.B) string {
	if d := os.Getenv("STORE_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "storebench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func benchOpen(b *testing.B, e engine, dir string, sync bool) Store {
	opts := quietOpts()
	opts.NoSync = !sync
	s, err := e.open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkQoS1 is the QoS 1 path through the group committer: each
// submitter puts an entry (64-byte payload) and waits for its commit, as
// the broker does before PUBACK, then deletes it without waiting, as on the
// subscriber's PUBACK. One op of the benchmark is one message. The store
// starts empty.
func BenchmarkQoS1(b *testing.B) {
	for _, e := range benchEngines() {
		for _, mode := range []CommitMode{CommitSync, CommitBatch} {
			for _, n := range []int{1, 16, 64} {
				b.Run(fmt.Sprintf("%s/%s/%d", e.name, mode, n), func(b *testing.B) {
					s := benchOpen(b, e, benchDir(b), true)
					defer s.Close()
					runQoS1(b, s, mode, n, func(g int) string { return fmt.Sprintf("sub-%03d", g) })
				})
			}
		}
	}
}

// BenchmarkQoS1Filled is BenchmarkQoS1 with 64 submitters on a store that
// already holds 10,000 sessions with 10 queued entries each and 100,000
// retained messages; the submitters' client identifiers are spread among
// the stored ones, as subscribers of a busy broker would be.
func BenchmarkQoS1Filled(b *testing.B) {
	for _, e := range benchEngines() {
		for _, mode := range []CommitMode{CommitSync, CommitBatch} {
			b.Run(fmt.Sprintf("%s/%s/64", e.name, mode), func(b *testing.B) {
				dir := benchDir(b)
				fill(b, benchOpen(b, e, dir, false), 10_000, 10, 100_000)
				s := benchOpen(b, e, dir, true)
				defer s.Close()
				runQoS1(b, s, mode, 64, func(g int) string { return fmt.Sprintf("client-%07d", g*150) })
			})
		}
	}
}

func runQoS1(b *testing.B, s Store, mode CommitMode, n int, id func(int) string) {
	c := NewCommitter(s, CommitConfig{Mode: mode, Interval: 10 * time.Millisecond})
	w0 := procWritten(b)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for g := range n {
		count := b.N / n
		if g < b.N%n {
			count++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := id(g)
			done := make(chan error, 1)
			for i := range count {
				en := smallEntry(id, 1<<40+uint64(i))
				c.Submit([]Op{{Kind: PutEntry, Entry: &en}}, func(err error) { done <- err })
				if err := <-done; err != nil {
					b.Error(err)
					return
				}
				c.Submit([]Op{{Kind: DeleteEntry, ClientID: id, Seq: en.Seq}}, nil)
			}
		}()
	}
	wg.Wait()
	if err := c.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start).Seconds()
	b.StopTimer()
	st := c.Stats()
	b.ReportMetric(float64(b.N)/el, "entries/s")
	b.ReportMetric(float64(st.Commits)/el, "commits/s")
	b.ReportMetric(float64(st.Ops)/float64(max(st.Commits, 1)), "ops/commit")
	b.ReportMetric(float64(procWritten(b)-w0)/float64(b.N), "written-B/entry")
}

// procWritten is the bytes this process passed to write system calls
// (wchar of /proc/self/io), 0 where that file does not exist.
func procWritten(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// fill writes sessions (two subscriptions and a will each) with
// perSession queued entries each, and retained messages with random
// 64-byte payloads, without fsync, and closes s.
func fill(b *testing.B, s Store, sessions, perSession, retained int) {
	ctx := context.Background()
	ops := make([]Op, 0, 10_000)
	flush := func() {
		if err := s.Apply(ctx, ops); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	add := func(op Op) {
		ops = append(ops, op)
		if len(ops) == cap(ops) {
			flush()
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	randPayload := func() []byte {
		// Incompressible: the worst case for Pebble's block compression,
		// the usual case for bbolt.
		p := make([]byte, 64)
		for k := range p {
			p[k] = byte(rnd.Uint32())
		}
		return p
	}
	for i := range sessions {
		id := fmt.Sprintf("client-%07d", i)
		ses := Session{
			ClientID: id, Username: "user", Version: 5, Expiry: 3600,
			Subscriptions: []Subscription{{Filter: "devices/" + id + "/cmd/#", QoS: 1}, {Filter: "broadcast/+", QoS: 0}},
			Will:          &Will{Message: Message{Topic: "devices/" + id + "/status", Payload: []byte("offline"), QoS: 1, Retain: true}},
		}
		add(Op{Kind: PutSession, Session: &ses})
		for q := range perSession {
			en := smallEntry(id, uint64(q))
			en.Msg.Payload = randPayload()
			add(Op{Kind: PutEntry, Entry: &en})
		}
	}
	for i := range retained {
		m := Message{Topic: fmt.Sprintf("devices/%07d/state", i), Payload: randPayload(), QoS: 1, Retain: true, Created: time.Now()}
		add(Op{Kind: PutRetained, Retained: &m})
	}
	flush()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkChurn puts and deletes b.N entries (64-byte payloads) spread
// over 64 sessions, in fsync'd commits of 64 puts and the 64 deletes of
// the previous commit's entries (what the committer produces with 64
// publishers), and reports the store's size on disk after it, open and
// after Close. Run it with -benchtime 1000000x for the full churn.
func BenchmarkChurn(b *testing.B) {
	const group = 64
	for _, e := range benchEngines() {
		b.Run(e.name, func(b *testing.B) {
			dir := benchDir(b)
			s := benchOpen(b, e, dir, true)
			ctx := context.Background()
			entries := make([]Entry, 0, group)
			var prev []Op
			b.ResetTimer()
			for i := 0; i < b.N; i += group {
				entries = entries[:0]
				ops := make([]Op, 0, 2*group)
				for j := i; j < min(i+group, b.N); j++ {
					entries = append(entries, smallEntry(fmt.Sprintf("sub-%03d", j%64), uint64(j/64)))
				}
				for k := range entries {
					ops = append(ops, Op{Kind: PutEntry, Entry: &entries[k]})
				}
				ops = append(ops, prev...)
				if err := s.Apply(ctx, ops); err != nil {
					b.Fatal(err)
				}
				prev = prev[:0]
				for _, en := range entries {
					prev = append(prev, Op{Kind: DeleteEntry, ClientID: en.ClientID, Seq: en.Seq})
				}
			}
			if err := s.Apply(ctx, prev); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			open := dirSize(b, dir)
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(open), "bytes-open")
			b.ReportMetric(float64(dirSize(b, dir)), "bytes-closed")
		})
	}
}

// BenchmarkLoad measures Open plus Load of a store with S sessions (two
// subscriptions and a will each) and R retained messages (64-byte
// random payloads): 10,000 and 100,000 by default, 100,000 and 1,000,000 with
// STORE_BENCH_FULL=1.
func BenchmarkLoad(b *testing.B) {
	sessions, retained := 10_000, 100_000
	if os.Getenv("STORE_BENCH_FULL") == "1" {
		sessions, retained = 100_000, 1_000_000
	}
	for _, e := range benchEngines() {
		b.Run(fmt.Sprintf("%s/%dS/%dR", e.name, sessions, retained), func(b *testing.B) {
			dir := benchDir(b)
			fill(b, benchOpen(b, e, dir, false), sessions, 0, retained)
			ctx := context.Background()
			size := dirSize(b, dir)
			var loadTime time.Duration
			b.ResetTimer()
			for range b.N {
				s := benchOpen(b, e, dir, true)
				t0 := time.Now()
				snap, err := s.Load(ctx)
				loadTime += time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				if len(snap.Sessions) != sessions || len(snap.Retained) != retained || snap.Quarantined != 0 {
					b.Fatalf("loaded %d sessions, %d retained, %d quarantined", len(snap.Sessions), len(snap.Retained), snap.Quarantined)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(loadTime.Milliseconds())/float64(b.N), "load-ms")
			b.ReportMetric(float64(size), "bytes")
		})
	}
}
