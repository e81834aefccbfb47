package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// CommitMode selects when a Committer commits.
type CommitMode uint8

const (
	// CommitSync commits as soon as the writer is free: everything
	// submitted while the previous commit ran goes into the next one, so
	// concurrent submitters share each fsync (group commit) and a lone
	// submitter waits for one commit.
	CommitSync CommitMode = iota
	// CommitBatch commits at most every Interval: lower fsync rate, higher
	// latency.
	CommitBatch
)

// String returns "sync" or "batch".
func (m CommitMode) String() string {
	if m == CommitBatch {
		return "batch"
	}
	return "sync"
}

// CommitConfig configures a Committer. The zero value is usable.
type CommitConfig struct {
	Mode CommitMode
	// Interval is the batch period of CommitBatch (default 10ms).
	Interval time.Duration
	// MaxPending and MaxPendingBytes bound what has been submitted and whose
	// done has not run yet (defaults 65536 ops, 64 MiB; bytes are an
	// estimate of the records' size). A submission that does not fit waits;
	// one larger than the bounds is accepted when nothing is pending.
	MaxPending      int
	MaxPendingBytes int64
}

// Defaults of CommitConfig.
const (
	DefaultCommitInterval  = 10 * time.Millisecond
	DefaultMaxPending      = 65536
	DefaultMaxPendingBytes = 64 << 20
)

// CommitStats are a Committer's counters.
type CommitStats struct {
	Submits     uint64        // submissions accepted (Flush excluded)
	Commits     uint64        // Store.Apply calls, failed ones included
	Failed      uint64        // Store.Apply calls that returned an error
	Ops         uint64        // ops in successful commits
	LastLatency time.Duration // duration of the last Store.Apply
}

// CommitError is what done receives when the commit carrying its ops
// failed; errors.Is and errors.As see the store's error through it.
type CommitError struct {
	Ops int // ops in the failed Store.Apply
	Err error
}

func (e *CommitError) Error() string {
	return fmt.Sprintf("store: commit of %d ops failed: %v", e.Ops, e.Err)
}

func (e *CommitError) Unwrap() error { return e.Err }

// request is one submission.
type request struct {
	ops    []Op
	done   func(error)
	nops   int
	nbytes int64
	err    error
}

type waiter struct {
	r       *request
	ch      chan struct{} // closed when granted or refused
	settled bool          // under Committer.mu
	err     error
}

// Committer funnels the ops of many goroutines into few Store.Apply calls.
// One writer goroutine commits; one callback goroutine runs the done
// functions in submission order, after their commit, so a slow callback
// delays later callbacks but not commits.
type Committer struct {
	s   Store
	cfg CommitConfig

	ctx    context.Context // for Store.Apply; cancelled when Close gives up
	cancel context.CancelFunc

	mu        sync.Mutex
	queue     []*request // submitted, not taken by the writer
	since     time.Time  // when queue became non-empty
	urgent    bool       // a Flush or Close wants the queue committed now
	pendOps   int        // submitted, done not yet run
	pendBytes int64
	waiters   []*waiter // FIFO of submitters waiting for room
	closing   bool      // no more submissions
	abort     bool      // fail what is left with ErrClosed instead of committing
	cbq       []*request
	wrDone    bool // writer exited

	wake       chan struct{} // to the writer
	cbWake     chan struct{} // to the callback goroutine
	cbFinished chan struct{}

	opsBuf []Op // writer only

	submits, commits, failed, nops atomic.Uint64
	lastLatency                    atomic.Int64
}

// NewCommitter starts a Committer over s. Close stops it; it does not close
// s.
func NewCommitter(s Store, cfg CommitConfig) *Committer {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultCommitInterval
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.MaxPendingBytes <= 0 {
		cfg.MaxPendingBytes = DefaultMaxPendingBytes
	}
	c := &Committer{
		s:          s,
		cfg:        cfg,
		wake:       make(chan struct{}, 1),
		cbWake:     make(chan struct{}, 1),
		cbFinished: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.writer()
	go c.callbacks()
	return c
}

// Submit hands ops to the committer; done (may be nil) is called with nil
// once they are durable, or with the error. It blocks while the pending
// bounds are exceeded, until there is room or the committer is closed; if
// the committer is closed, done receives ErrClosed on another goroutine.
func (c *Committer) Submit(ops []Op, done func(error)) {
	if err := c.SubmitCtx(context.Background(), ops, done); err != nil && done != nil {
		go done(err)
	}
}

// SubmitCtx is Submit that gives up when ctx ends. It returns ErrClosed if
// the committer is closed, ctx.Err() if ctx ended before there was room;
// then done is never called. When it returns nil, done will be called
// exactly once. The ops (and the records they point to) must not change
// until done runs.
func (c *Committer) SubmitCtx(ctx context.Context, ops []Op, done func(error)) error {
	r := &request{ops: ops, done: done, nops: len(ops), nbytes: opsSize(ops)}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	if len(c.waiters) == 0 && c.fitsLocked(r) {
		c.enqueueLocked(r)
		c.mu.Unlock()
		return nil
	}
	w := &waiter{r: r, ch: make(chan struct{})}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()

	select {
	case <-w.ch:
		return w.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.settled {
		return w.err
	}
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			break
		}
	}
	c.grantLocked() // the head may have been what blocked the others
	return ctx.Err()
}

// Flush waits until everything submitted before it has been committed and
// its done has run.
func (c *Committer) Flush(ctx context.Context) error {
	ch := make(chan error, 1)
	r := &request{done: func(err error) { ch <- err }}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	c.urgent = true
	c.enqueueLocked(r) // no ops: never waits for room
	c.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close refuses new submissions, commits what was submitted, runs the
// done callbacks and stops. If ctx ends first, the ops not yet committed
// fail with ErrClosed (after the commit in progress, if any, returns) and
// Close returns ctx.Err(). Close does not close the Store.
func (c *Committer) Close(ctx context.Context) error {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		c.urgent = true
		for _, w := range c.waiters {
			w.settled, w.err = true, ErrClosed
			close(w.ch)
		}
		c.waiters = nil
		c.signal(c.wake)
	}
	c.mu.Unlock()
	select {
	case <-c.cbFinished:
		c.cancel()
		return nil
	case <-ctx.Done():
	}
	c.mu.Lock()
	c.abort = true
	c.mu.Unlock()
	c.cancel()
	return ctx.Err()
}

// Stats returns the counters.
func (c *Committer) Stats() CommitStats {
	return CommitStats{
		Submits:     c.submits.Load(),
		Commits:     c.commits.Load(),
		Failed:      c.failed.Load(),
		Ops:         c.nops.Load(),
		LastLatency: time.Duration(c.lastLatency.Load()),
	}
}

func (c *Committer) fitsLocked(r *request) bool {
	if c.pendOps == 0 && c.pendBytes == 0 {
		return true
	}
	return c.pendOps+r.nops <= c.cfg.MaxPending && c.pendBytes+r.nbytes <= c.cfg.MaxPendingBytes
}

func (c *Committer) enqueueLocked(r *request) {
	first := len(c.queue) == 0
	if first {
		c.since = time.Now()
	}
	c.queue = append(c.queue, r)
	c.pendOps += r.nops
	c.pendBytes += r.nbytes
	if r.nops > 0 {
		c.submits.Add(1)
	}
	// The writer waits on wake only with an empty queue, or in batch mode
	// for the interval, which only urgency cuts short.
	if first || c.urgent {
		c.signal(c.wake)
	}
}

// grantLocked admits waiters, in order, while they fit.
func (c *Committer) grantLocked() {
	for len(c.waiters) > 0 && c.fitsLocked(c.waiters[0].r) {
		w := c.waiters[0]
		c.waiters[0] = nil
		c.waiters = c.waiters[1:]
		c.enqueueLocked(w.r)
		w.settled = true
		close(w.ch)
	}
}

func (c *Committer) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// writer takes the queue whenever it is due and commits it.
func (c *Committer) writer() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer func() {
		c.mu.Lock()
		c.wrDone = true
		c.signal(c.cbWake)
		c.mu.Unlock()
	}()
	var spare []*request
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			if c.closing {
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			<-c.wake
			continue
		}
		if c.cfg.Mode == CommitBatch && !c.urgent && !c.closing {
			if wait := c.cfg.Interval - time.Since(c.since); wait > 0 {
				c.mu.Unlock()
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-c.wake:
					timer.Stop()
				}
				continue
			}
		}
		batch := c.queue
		c.queue = spare[:0]
		c.urgent = false
		abort := c.abort
		c.mu.Unlock()

		c.commit(batch, abort)

		c.mu.Lock()
		c.cbq = append(c.cbq, batch...)
		c.signal(c.cbWake)
		c.mu.Unlock()
		clear(batch)
		spare = batch
	}
}

// commit applies the ops of batch in one Store.Apply and records each
// request's outcome. If the store refuses the list as invalid, the
// requests are applied one by one so that one bad submission does not fail
// the others.
func (c *Committer) commit(batch []*request, abort bool) {
	if abort {
		for _, r := range batch {
			r.err = ErrClosed
		}
		return
	}
	ops := c.opsBuf[:0]
	withOps := 0
	for _, r := range batch {
		if len(r.ops) > 0 {
			ops = append(ops, r.ops...)
			withOps++
		}
	}
	if len(ops) == 0 {
		return
	}
	err := c.apply(ops)
	clear(ops)
	c.opsBuf = ops[:0]
	switch {
	case err == nil:
	case errors.Is(err, ErrInvalidOp) && withOps > 1:
		for _, r := range batch {
			if len(r.ops) > 0 {
				if e := c.apply(r.ops); e != nil {
					r.err = &CommitError{Ops: len(r.ops), Err: e}
				}
			}
		}
	default:
		for _, r := range batch {
			if len(r.ops) > 0 {
				r.err = &CommitError{Ops: len(ops), Err: err}
			}
		}
	}
}

func (c *Committer) apply(ops []Op) error {
	start := time.Now()
	err := c.s.Apply(c.ctx, ops)
	c.lastLatency.Store(int64(time.Since(start)))
	c.commits.Add(1)
	if err != nil {
		c.failed.Add(1)
	} else {
		c.nops.Add(uint64(len(ops)))
	}
	return err
}

// callbacks runs done functions in order and then releases their room.
func (c *Committer) callbacks() {
	defer close(c.cbFinished)
	var spare []*request
	for {
		c.mu.Lock()
		for len(c.cbq) == 0 && !c.wrDone {
			c.mu.Unlock()
			<-c.cbWake
			c.mu.Lock()
		}
		if len(c.cbq) == 0 {
			c.mu.Unlock()
			return
		}
		rs := c.cbq
		c.cbq = spare[:0]
		c.mu.Unlock()

		var nops int
		var nbytes int64
		for _, r := range rs {
			if r.done != nil {
				r.done(r.err)
			}
			nops += r.nops
			nbytes += r.nbytes
		}
		clear(rs)
		spare = rs

		c.mu.Lock()
		c.pendOps -= nops
		c.pendBytes -= nbytes
		c.grantLocked()
		c.mu.Unlock()
	}
}

// opsSize estimates the stored size of ops, for the byte bound.
func opsSize(ops []Op) int64 {
	var n int64
	for i := range ops {
		op := &ops[i]
		n += 32 + int64(len(op.ClientID)+len(op.Topic))
		if s := op.Session; s != nil {
			n += int64(len(s.ClientID) + len(s.Username) + 2*len(s.InboundQoS2))
			for j := range s.Subscriptions {
				n += 8 + int64(len(s.Subscriptions[j].Filter))
			}
			if s.Will != nil {
				n += messageSize(&s.Will.Message)
			}
		}
		if e := op.Entry; e != nil {
			n += messageSize(&e.Msg) + int64(len(e.ClientID)+len(e.Group)+4*len(e.SubIDs))
		}
		if m := op.Retained; m != nil {
			n += messageSize(m)
		}
	}
	return n
}

func messageSize(m *Message) int64 {
	n := 32 + len(m.Topic) + len(m.Payload) + len(m.ClientID) +
		len(m.Props.ContentType) + len(m.Props.ResponseTopic) + len(m.Props.CorrelationData)
	for _, u := range m.Props.User {
		n += 4 + len(u.Key) + len(u.Value)
	}
	return int64(n)
}
