package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// gatedStore wraps a Store; while closed, Apply calls block at the gate.
// entered receives one value per Apply that reached the gate.
type gatedStore struct {
	Store
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	entered chan struct{}
}

func newGated(s Store) *gatedStore {
	return &gatedStore{Store: s, entered: make(chan struct{}, 1000)}
}

func (g *gatedStore) closeGate() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedStore) openGate() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gatedStore) Apply(ctx context.Context, ops []Op) error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	g.entered <- struct{}{}
	if gate != nil {
		<-gate
	}
	return g.Store.Apply(ctx, ops)
}

// failingStore fails Apply with err while err is set.
type failingStore struct {
	Store
	err atomic.Pointer[error]
}

func (f *failingStore) Apply(ctx context.Context, ops []Op) error {
	if e := f.err.Load(); e != nil {
		return *e
	}
	return f.Store.Apply(ctx, ops)
}

func (f *failingStore) fail(err error) {
	if err == nil {
		f.err.Store(nil)
		return
	}
	f.err.Store(&err)
}

func closeCommitter(t testing.TB, c *Committer) {
	t.Helper()
	if err := c.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func queued(c *Committer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

func waiting(c *Committer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

func entryOp(id string, seq uint64) []Op { return []Op{putEntry(smallEntry(id, seq))} }

// errc returns a done function and the channel it reports on.
func errc() (func(error), chan error) {
	ch := make(chan error, 1)
	return func(err error) { ch <- err }, ch
}

// TestCommitterOrder: done callbacks run in submission order, each after
// its ops are in the store, never on the submitter's goroutine.
func TestCommitterOrder(t *testing.T) {
	for _, mode := range []CommitMode{CommitSync, CommitBatch} {
		t.Run(mode.String(), func(t *testing.T) {
			s := NewMemory()
			c := NewCommitter(s, CommitConfig{Mode: mode, Interval: time.Millisecond})
			defer closeCommitter(t, c)
			const n = 500
			var (
				mu    sync.Mutex
				order []int
			)
			for i := 0; i < n; i++ {
				ops := entryOp("c", uint64(i))
				if i%7 == 0 {
					ops = nil // an empty submission keeps its place too
				}
				c.Submit(ops, func(err error) {
					if err != nil {
						t.Errorf("done %d: %v", i, err)
					}
					mu.Lock()
					order = append(order, i)
					mu.Unlock()
				})
			}
			if err := c.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(order) != n {
				t.Fatalf("%d callbacks ran before Flush returned, want %d", len(order), n)
			}
			for i, v := range order {
				if v != i {
					t.Fatalf("callback %d ran at position %d", v, i)
				}
			}
			want := n - (n+6)/7
			if got := len(mustLoad(t, s).Entries); got != want {
				t.Fatalf("%d entries stored, want %d", got, want)
			}
		})
	}
}

// TestCommitterOrderConcurrent: with concurrent submitters each one's
// callbacks still run in its own submission order, and every ops list is
// committed.
func TestCommitterOrderConcurrent(t *testing.T) {
	s := NewMemory()
	c := NewCommitter(s, CommitConfig{})
	const goroutines, each = 16, 100
	var wg sync.WaitGroup
	last := make([]atomic.Int64, goroutines)
	for g := range goroutines {
		last[g].Store(-1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c.Submit(entryOp(fmt.Sprint(g), uint64(i)), func(err error) {
					if err != nil {
						t.Errorf("done: %v", err)
					}
					if prev := last[g].Swap(int64(i)); prev != int64(i)-1 {
						t.Errorf("goroutine %d: callback %d after %d", g, i, prev)
					}
				})
			}
		}()
	}
	wg.Wait()
	closeCommitter(t, c)
	if got := len(mustLoad(t, s).Entries); got != goroutines*each {
		t.Fatalf("%d entries, want %d", got, goroutines*each)
	}
	st := c.Stats()
	if st.Submits != goroutines*each || st.Ops != goroutines*each || st.Commits > st.Submits {
		t.Fatalf("stats %+v", st)
	}
}

// TestCommitterGroupCommit: submissions made while a commit runs share the
// next one: N+1 submissions, 2 commits.
func TestCommitterGroupCommit(t *testing.T) {
	for _, mode := range []CommitMode{CommitSync, CommitBatch} {
		t.Run(mode.String(), func(t *testing.T) {
			g := newGated(NewMemory())
			g.closeGate()
			c := NewCommitter(g, CommitConfig{Mode: mode, Interval: time.Millisecond})
			defer closeCommitter(t, c)
			var done sync.WaitGroup
			done.Add(1)
			c.Submit(entryOp("first", 0), func(error) { done.Done() })
			<-g.entered // the first commit is in progress and held
			const n = 64
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				done.Add(1)
				go func() {
					defer wg.Done()
					c.Submit(entryOp(fmt.Sprint(i), 0), func(err error) {
						if err != nil {
							t.Error(err)
						}
						done.Done()
					})
				}()
			}
			wg.Wait()
			eventually(t, "all submissions queued", func() bool { return queued(c) == n })
			g.openGate()
			done.Wait()
			st := c.Stats()
			if st.Submits != n+1 || st.Commits != 2 || st.Ops != n+1 {
				t.Fatalf("stats %+v, want %d submits in 2 commits", st, n+1)
			}
			if st.Commits >= st.Submits {
				t.Fatal("no group commit")
			}
		})
	}
}

// TestCommitterBatchInterval: batch mode commits after the interval
// without a Flush; Flush does not wait for a long interval.
func TestCommitterBatchInterval(t *testing.T) {
	c := NewCommitter(NewMemory(), CommitConfig{Mode: CommitBatch, Interval: 5 * time.Millisecond})
	fn, ch := errc()
	c.Submit(entryOp("c", 1), fn)
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	closeCommitter(t, c)

	c = NewCommitter(NewMemory(), CommitConfig{Mode: CommitBatch, Interval: time.Hour})
	defer closeCommitter(t, c)
	fn, ch = errc()
	c.Submit(entryOp("c", 1), fn)
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ch:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("Flush returned before the submission's done ran")
	}
}

// TestCommitterError: a failed commit reports the store's error to every
// done of its batch, and later batches commit.
func TestCommitterError(t *testing.T) {
	for _, cause := range []error{syscall.ENOSPC, fs.ErrPermission} {
		t.Run(cause.Error(), func(t *testing.T) {
			fsx := &failingStore{Store: NewMemory()}
			g := newGated(fsx)
			c := NewCommitter(g, CommitConfig{})
			defer closeCommitter(t, c)

			g.closeGate()
			fn0, ch0 := errc()
			c.Submit(entryOp("ok", 0), fn0)
			<-g.entered
			fsx.fail(fmt.Errorf("write: %w", cause))
			var chs []chan error
			for i := range 5 {
				fn, ch := errc()
				c.Submit(entryOp("bad", uint64(i)), fn)
				chs = append(chs, ch)
			}
			eventually(t, "queued", func() bool { return queued(c) == 5 })
			g.openGate()
			if err := <-ch0; !errors.Is(err, cause) {
				// The first commit ran after fail() too: it fails as well.
				t.Logf("first commit: %v", err)
			}
			for i, ch := range chs {
				err := <-ch
				if !errors.Is(err, cause) {
					t.Fatalf("done %d: %v, want %v", i, err, cause)
				}
				var ce *CommitError
				if !errors.As(err, &ce) || ce.Ops != 5 {
					t.Fatalf("done %d: %#v, want a CommitError of 5 ops", i, err)
				}
			}
			fsx.fail(nil)
			fn, ch := errc()
			c.Submit(entryOp("later", 0), fn)
			if err := <-ch; err != nil {
				t.Fatalf("commit after the failure: %v", err)
			}
			st := c.Stats()
			if st.Failed == 0 || st.Commits < 3 {
				t.Fatalf("stats %+v", st)
			}
			if st.LastLatency <= 0 {
				t.Fatalf("LastLatency %v", st.LastLatency)
			}
		})
	}
}

// TestCommitterInvalidIsolated: an invalid submission fails alone; the
// others in its batch commit.
func TestCommitterInvalidIsolated(t *testing.T) {
	s := NewMemory()
	g := newGated(s)
	c := NewCommitter(g, CommitConfig{})
	defer closeCommitter(t, c)
	g.closeGate()
	c.Submit(entryOp("first", 0), nil)
	<-g.entered
	fa, ca := errc()
	fb, cb := errc()
	fc, cc := errc()
	c.Submit(entryOp("a", 1), fa)
	c.Submit([]Op{{Kind: PutSession}}, fb)
	c.Submit(entryOp("c", 1), fc)
	eventually(t, "queued", func() bool { return queued(c) == 3 })
	g.openGate()
	if err := <-ca; err != nil {
		t.Fatalf("a: %v", err)
	}
	if err := <-cb; !errors.Is(err, ErrInvalidOp) {
		t.Fatalf("b: %v, want ErrInvalidOp", err)
	}
	if err := <-cc; err != nil {
		t.Fatalf("c: %v", err)
	}
	if n := len(mustLoad(t, s).Entries); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
}

// TestCommitterBounded: Submit waits while the pending bounds are full;
// SubmitCtx gives up with the context and never calls done then.
func TestCommitterBounded(t *testing.T) {
	g := newGated(NewMemory())
	c := NewCommitter(g, CommitConfig{MaxPending: 4})
	defer closeCommitter(t, c)
	g.closeGate()
	// A submission larger than the bound is accepted when nothing is
	// pending.
	big := append(append(entryOp("c", 1), entryOp("c", 2)...), append(entryOp("c", 3), entryOp("c", 4)...)...)
	big = append(big, entryOp("c", 5)...)
	fbig, cbig := errc()
	if err := c.SubmitCtx(context.Background(), big, fbig); err != nil {
		t.Fatal(err)
	}
	<-g.entered

	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		res <- c.SubmitCtx(ctx, entryOp("c", 6), func(error) { t.Error("done of a refused submission ran") })
	}()
	eventually(t, "submitter waiting", func() bool { return waiting(c) == 1 })
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("SubmitCtx = %v, want context.Canceled", err)
	}

	// Blocking Submit proceeds once the pending ops are done.
	f7, c7 := errc()
	go c.Submit(entryOp("c", 7), f7)
	eventually(t, "submitter waiting", func() bool { return waiting(c) == 1 })
	// A later small submission queues behind it (FIFO), not ahead.
	f8, c8 := errc()
	go c.Submit(entryOp("c", 8), f8)
	eventually(t, "second submitter waiting", func() bool { return waiting(c) == 2 })
	g.openGate()
	for _, ch := range []chan error{cbig, c7, c8} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCommitterByteBound: the byte bound works like the op bound.
func TestCommitterByteBound(t *testing.T) {
	g := newGated(NewMemory())
	c := NewCommitter(g, CommitConfig{MaxPendingBytes: 1})
	defer closeCommitter(t, c)
	g.closeGate()
	c.Submit(entryOp("c", 1), nil)
	<-g.entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.SubmitCtx(ctx, entryOp("c", 2), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SubmitCtx = %v", err)
	}
	g.openGate()
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Nothing is pending any more: a Flush barrier never waits for room.
}

// TestCommitterClose: Close commits what was submitted; afterwards every
// entry point reports ErrClosed.
func TestCommitterClose(t *testing.T) {
	s := NewMemory()
	c := NewCommitter(s, CommitConfig{Mode: CommitBatch, Interval: time.Hour})
	var ran atomic.Int32
	for i := range 10 {
		c.Submit(entryOp("c", uint64(i)), func(err error) {
			if err != nil {
				t.Error(err)
			}
			ran.Add(1)
		})
	}
	closeCommitter(t, c)
	if ran.Load() != 10 {
		t.Fatalf("%d callbacks ran before Close returned", ran.Load())
	}
	if n := len(mustLoad(t, s).Entries); n != 10 {
		t.Fatalf("%d entries", n)
	}
	if err := c.SubmitCtx(context.Background(), entryOp("c", 99), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("SubmitCtx after Close = %v", err)
	}
	fn, ch := errc()
	c.Submit(entryOp("c", 99), fn)
	if err := <-ch; !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: done(%v)", err)
	}
	if err := c.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close = %v", err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// TestCommitterCloseReleasesWaiters: a Submit waiting for room returns
// when the committer closes.
func TestCommitterCloseReleasesWaiters(t *testing.T) {
	g := newGated(NewMemory())
	c := NewCommitter(g, CommitConfig{MaxPending: 1})
	g.closeGate()
	c.Submit(entryOp("c", 1), nil)
	<-g.entered
	res := make(chan error, 1)
	go func() { res <- c.SubmitCtx(context.Background(), entryOp("c", 2), nil) }()
	eventually(t, "waiting", func() bool { return waiting(c) == 1 })
	closed := make(chan error, 1)
	go func() { closed <- c.Close(context.Background()) }()
	if err := <-res; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting SubmitCtx = %v", err)
	}
	g.openGate()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestCommitterCloseTimeout: when Close's context ends first, it returns
// the context's error, the commit in progress completes, and what was
// still queued fails with ErrClosed.
func TestCommitterCloseTimeout(t *testing.T) {
	g := newGated(NewMemory())
	c := NewCommitter(g, CommitConfig{})
	g.closeGate()
	f1, c1 := errc()
	c.Submit(entryOp("c", 1), f1)
	<-g.entered
	f2, c2 := errc()
	c.Submit(entryOp("c", 2), f2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v", err)
	}
	fctx, fcancel := context.WithCancel(context.Background())
	fcancel()
	if err := c.Flush(fctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush while closing = %v", err)
	}
	g.openGate()
	// The commit in progress completes, or fails with the cancellation
	// Close passed to Store.Apply.
	if err := <-c1; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("commit in progress: %v", err)
	}
	if err := <-c2; !errors.Is(err, ErrClosed) {
		t.Fatalf("queued: %v, want ErrClosed", err)
	}
	closeCommitter(t, c) // waits for the goroutines
}

// TestCommitterFlushContext: Flush gives up with its context.
func TestCommitterFlushContext(t *testing.T) {
	g := newGated(NewMemory())
	c := NewCommitter(g, CommitConfig{})
	g.closeGate()
	c.Submit(entryOp("c", 1), nil)
	<-g.entered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := c.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush = %v", err)
	}
	g.openGate()
	closeCommitter(t, c)
}

// TestCommitterDisk runs concurrent submitters against each disk engine
// with fsync on.
func TestCommitterDisk(t *testing.T) {
	for _, e := range diskEngines() {
		for _, mode := range []CommitMode{CommitSync, CommitBatch} {
			t.Run(e.name+"/"+mode.String(), func(t *testing.T) {
				opts := quietOpts()
				opts.NoSync = false
				s, err := e.open(t.TempDir(), opts)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				c := NewCommitter(s, CommitConfig{Mode: mode})
				var wg sync.WaitGroup
				for g := range 16 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						id := fmt.Sprint("c", g)
						for i := range 20 {
							fn, ch := errc()
							c.Submit(entryOp(id, uint64(i)), fn)
							if err := <-ch; err != nil {
								t.Error(err)
								return
							}
							if i%2 == 0 {
								c.Submit([]Op{{Kind: DeleteEntry, ClientID: id, Seq: uint64(i)}}, nil)
							}
						}
					}()
				}
				wg.Wait()
				closeCommitter(t, c)
				if n := len(mustLoad(t, s).Entries); n != 16*10 {
					t.Fatalf("%d entries, want 160", n)
				}
				st := c.Stats()
				t.Logf("%+v", st)
				if st.Commits > st.Submits {
					t.Fatalf("stats %+v", st)
				}
			})
		}
	}
}
