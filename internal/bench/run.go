package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

// ErrInvalidConfig matches (errors.Is) every error Run returns for a
// configuration it refuses: bad values, an unsupported transport, a remote
// target without AllowRemote, an unreadable broker PID.
var ErrInvalidConfig = errors.New("invalid benchmark configuration")

type configError struct{ error }

func (e configError) Is(target error) bool { return target == ErrInvalidConfig }
func (e configError) Unwrap() error        { return e.error }

// maxErrors bounds the error messages kept in a Result.
const maxErrors = 20

// runner holds one run's shared state.
type runner struct {
	cfg    Config
	target Target
	runID  string
	start  time.Time

	stopFlag atomic.Bool   // publishers stop
	stopAt   atomic.Int64  // when they were told to, since start (ns)
	stopCh   chan struct{} // closed with stopFlag
	stopOnce sync.Once
	closing  atomic.Bool // connections are being closed: read errors are expected
	wg       sync.WaitGroup
	pubWG    sync.WaitGroup

	errMu    sync.Mutex
	errs     []string
	errCount int

	pubs   []*publisher
	subs   []*subscriber
	groups []*group

	sampleMu sync.Mutex
	samples  []Sample
}

func (r *runner) stopping() bool { return r.stopFlag.Load() }

// stop tells the publishers to stop (once).
func (r *runner) stop(at time.Time) {
	r.stopOnce.Do(func() {
		r.stopAt.Store(int64(at.Sub(r.start)))
		r.stopFlag.Store(true)
		close(r.stopCh)
	})
}

func (r *runner) addError(format string, args ...any) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	r.errCount++
	if len(r.errs) < maxErrors {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
}

func (r *runner) errors() []string {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	out := append([]string(nil), r.errs...)
	if r.errCount > len(r.errs) {
		out = append(out, fmt.Sprintf("... and %d more errors", r.errCount-len(r.errs)))
	}
	return out
}

// Run executes one benchmark and returns its result. It returns an error
// when the run cannot start (bad configuration, a refused target, a broker
// that does not accept the clients); problems during the run are reported
// in Result.Errors.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, configError{err}
	}
	target, err := ParseTarget(cfg.URL, transport.DialConfig{TLS: cfg.TLS, QUIC: cfg.QUIC})
	if err != nil {
		return nil, configError{err}
	}
	if !cfg.AllowRemote {
		if err := checkLoopback(ctx, target.Addr); err != nil {
			if errors.Is(err, ErrRemoteTarget) {
				err = configError{err}
			}
			return nil, err
		}
	}
	if cfg.BrokerPID != 0 {
		if _, err := readProc(cfg.BrokerPID); err != nil {
			return nil, configError{fmt.Errorf("broker PID %d: %v", cfg.BrokerPID, err)}
		}
	}
	r := &runner{cfg: cfg, target: target, runID: newRunID(), stopCh: make(chan struct{})}
	if cfg.Scenario == Idle {
		return r.runIdle(ctx)
	}
	return r.runMessages(ctx)
}

func newRunID() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *runner) clientID(kind string, i int) string {
	return fmt.Sprintf("b%s-%s%d", r.runID, kind, i)
}

// setup connects and subscribes every client of the scenario.
func (r *runner) setup(ctx context.Context) error {
	cfg := r.cfg
	base := "bench/" + r.runID
	npub := cfg.Publishers
	pubTopic := make([]string, npub)
	for i := range pubTopic {
		if cfg.Scenario == FanOut {
			pubTopic[i] = base + "/out"
		} else {
			pubTopic[i] = fmt.Sprintf("%s/%d", base, i)
		}
	}
	quota := make([]uint64, npub)
	for i := range quota {
		quota[i] = uint64(cfg.MaxMessages) / uint64(npub)
		if uint64(i) < uint64(cfg.MaxMessages)%uint64(npub) {
			quota[i]++
		}
	}
	// Groups and the subscribers' expectations.
	newGroup := func(pubs ...int) *group {
		g := &group{seen: make([]*seqSet, npub)}
		for _, p := range pubs {
			g.seen[p] = newSeqSet(quota[p])
		}
		r.groups = append(r.groups, g)
		return g
	}
	all := make([]int, npub)
	for i := range all {
		all[i] = i
	}
	type subSpec struct {
		g      *group
		filter string
		topics []string
	}
	var specs []subSpec
	switch cfg.Scenario {
	case FanIn, Latency:
		specs = append(specs, subSpec{newGroup(all...), base + "/+", pubTopic})
	case FanOut:
		for range cfg.Subscribers {
			specs = append(specs, subSpec{newGroup(0), base + "/out", pubTopic})
		}
	case PointToPoint:
		for i := range cfg.Pairs {
			topics := make([]string, npub)
			topics[i] = pubTopic[i]
			specs = append(specs, subSpec{newGroup(i), pubTopic[i], topics})
		}
	case Shared:
		g := newGroup(all...)
		for range cfg.Subscribers {
			specs = append(specs, subSpec{g, "$share/bench/" + base + "/+", pubTopic})
		}
	}
	for i, sp := range specs {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := dialMQTT(ctx, r.target.Dialer, cfg.Protocol, r.clientID("s", i), 4<<10, cfg.SessionExpiry)
		if err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		s := newSubscriber(r, i, c, sp.g, sp.topics)
		r.subs = append(r.subs, s)
		if err := c.subscribe(sp.filter, cfg.QoS); err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
	}
	for i := range npub {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := dialMQTT(ctx, r.target.Dialer, cfg.Protocol, r.clientID("p", i), writeBufferSize, cfg.SessionExpiry)
		if err != nil {
			return fmt.Errorf("publisher %d: %w", i, err)
		}
		r.pubs = append(r.pubs, newPublisher(r, uint32(i), c, pubTopic[i], quota[i]))
	}
	return nil
}

// closeAll ends every connection: read deadlines wake the reader goroutines,
// which exit; then each connection sends DISCONNECT and closes.
func (r *runner) closeAll() {
	r.closing.Store(true)
	r.stop(time.Now())
	now := time.Now()
	for _, p := range r.pubs {
		p.c.nc.SetReadDeadline(now)
	}
	for _, s := range r.subs {
		s.c.nc.SetReadDeadline(now)
	}
	r.wg.Wait()
	for _, p := range r.pubs {
		p.c.disconnect()
	}
	for _, s := range r.subs {
		s.c.disconnect()
	}
}

// counters is a snapshot of the run's progress.
type counters struct {
	at       time.Time
	sent     int64
	received int64
	broker   procSample
	brokerOK bool
	cpu      time.Duration // generator user+sys
}

func (r *runner) snapshot() counters {
	c := counters{at: time.Now()}
	for _, p := range r.pubs {
		c.sent += int64(p.sent.Load())
	}
	for _, s := range r.subs {
		c.received += s.received.Load()
	}
	if r.cfg.BrokerPID != 0 {
		var err error
		c.broker, err = readProc(r.cfg.BrokerPID)
		c.brokerOK = err == nil
	}
	u, s := selfCPU()
	c.cpu = u + s
	return c
}

// complete reports whether every group has every message its publishers
// sent and every acknowledgement flow has finished.
func (r *runner) complete() bool {
	for _, p := range r.pubs {
		if p.outstanding() {
			return false
		}
	}
	var want, got int64
	for _, g := range r.groups {
		for i, s := range g.seen {
			if s != nil {
				want += int64(r.pubs[i].sent.Load())
			}
		}
	}
	for _, s := range r.subs {
		got += s.received.Load() - s.dups.Load() - s.misrouted.Load() - s.corrupt.Load()
	}
	return got >= want
}

func (r *runner) runMessages(ctx context.Context) (*Result, error) {
	if err := r.setup(ctx); err != nil {
		r.closeAll()
		return nil, err
	}
	cfg := r.cfg
	res := &Result{Format: ResultFormat, Scenario: cfg.Scenario, Config: cfg, Started: time.Now().UTC()}
	r.start = time.Now()
	for _, s := range r.subs {
		r.wg.Add(1)
		go s.run()
	}
	for _, p := range r.pubs {
		r.wg.Add(1)
		go p.readAcks()
	}
	samplerDone := make(chan struct{})
	stopSampler := r.startSampler(samplerDone)
	first := r.snapshot()
	for _, p := range r.pubs {
		r.wg.Add(1)
		r.pubWG.Add(1)
		go func() {
			defer r.pubWG.Done()
			p.run()
		}()
	}
	pubsDone := make(chan struct{})
	go func() { r.pubWG.Wait(); close(pubsDone) }()

	wait := func(d time.Duration) bool { // false when cut short
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
		case <-pubsDone:
		}
		return false
	}
	warm := first
	full := true
	if cfg.Warmup > 0 {
		full = wait(cfg.Warmup)
		warm = r.snapshot()
	}
	if full {
		full = wait(cfg.Duration)
	}
	end := r.snapshot()
	r.stop(end.at)
	<-pubsDone

	// Grace: wait for outstanding acknowledgements and deliveries.
	// When interrupted, wait at most a second: enough for the accounting of
	// a healthy broker, short enough for someone pressing ^C.
	grace := cfg.Grace
	if ctx.Err() != nil {
		grace = min(grace, time.Second)
	}
	graceEnd := time.Now().Add(grace)
	for !r.complete() && time.Now().Before(graceEnd) {
		time.Sleep(10 * time.Millisecond)
	}
	close(samplerDone)
	stopSampler()
	r.closeAll()
	after := r.snapshot()

	res.Elapsed = after.at.Sub(r.start).Seconds()
	res.Measured = end.at.Sub(warm.at).Seconds()
	res.Complete = full
	if !full && ctx.Err() != nil {
		res.Errors = append(res.Errors, "run interrupted: "+ctx.Err().Error())
	}
	r.fillMessages(res)
	r.fillThroughput(res, warm, end)
	r.fillLatency(res)
	r.fillProc(res, first, warm, end, after)
	res.Samples = r.samples
	res.Errors = append(res.Errors, r.errors()...)
	return res, nil
}

func (r *runner) fillMessages(res *Result) {
	m := &MessageStats{}
	for _, p := range r.pubs {
		m.Sent += int64(p.sent.Load())
		m.Acked += p.nAcked.Load()
		m.Rejected += p.nRejected.Load()
		m.Unexpected += p.unexpected.Load()
		if p.qos > 0 && (res.Window == 0 || p.window < res.Window) {
			res.Window = p.window
		}
	}
	for gi, g := range r.groups {
		_ = gi
		for i, s := range g.seen {
			if s == nil {
				continue
			}
			p := r.pubs[i]
			t := tallyStream(p.sent.Load(), p.acked, s)
			m.Expected += t.Expected
			m.Unique += t.Unique
			m.Lost += t.Lost
			m.Unacked += t.Unacked
		}
	}
	for i, s := range r.subs {
		n := s.received.Load()
		m.Received += n
		m.Duplicated += s.dups.Load()
		m.Reordered += s.reordered.Load()
		m.Misrouted += s.misrouted.Load()
		m.Corrupt += s.corrupt.Load()
		m.Unexpected += s.unexpected.Load()
		if i == 0 || n < m.SubscriberMin {
			m.SubscriberMin = n
		}
		if n > m.SubscriberMax {
			m.SubscriberMax = n
		}
	}
	res.Messages = m
}

func (r *runner) fillThroughput(res *Result, warm, end counters) {
	t := &Throughput{}
	if d := end.at.Sub(warm.at).Seconds(); d > 0 {
		t.SentPerSec = float64(end.sent-warm.sent) / d
		t.DeliveredPerSec = float64(end.received-warm.received) / d
	}
	var sent, del []float64
	for _, s := range r.samples {
		if s.Phase == PhaseMeasure {
			sent = append(sent, s.SentPerSec)
			del = append(del, s.DeliveredPerSec)
		}
	}
	t.Samples = len(del)
	if len(del) > 0 {
		t.SentMedian = median(sent)
		t.DeliveredMedian = median(del)
	} else {
		t.SentMedian, t.DeliveredMedian = t.SentPerSec, t.DeliveredPerSec
	}
	res.Throughput = t
}

func (r *runner) fillLatency(res *Result) {
	h := newHistogram()
	for _, s := range r.subs {
		h.Merge(s.hist)
	}
	res.hist = h
	res.Latency = latencyStats(h)
}

func (r *runner) fillProc(res *Result, first, warm, end, after counters) {
	if r.cfg.BrokerPID != 0 && warm.brokerOK && end.brokerOK {
		b := &ProcStats{PID: r.cfg.BrokerPID, CPUPercent: cpuPercent(warm.broker, end.broker)}
		b.RSSStart = first.broker.rss
		b.RSSEnd = end.broker.rss
		b.RSSMax = max(first.broker.rss, end.broker.rss, after.broker.rss)
		for _, s := range r.samples {
			b.RSSMax = max(b.RSSMax, s.BrokerRSS)
			if s.Phase == PhaseMeasure {
				b.CPUMaxPercent = max(b.CPUMaxPercent, s.BrokerCPU)
			}
		}
		b.CPUMaxPercent = max(b.CPUMaxPercent, b.CPUPercent)
		res.Broker = b
	}
	res.Generator = generatorStats(warm, end)
}

func generatorStats(a, b counters) GeneratorStats {
	g := GeneratorStats{NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	u, s := selfCPU()
	g.UserSeconds, g.SysSeconds = u.Seconds(), s.Seconds()
	if d := b.at.Sub(a.at); d > 0 {
		g.CPUPercent = 100 * float64(b.cpu-a.cpu) / float64(d)
	}
	cores := float64(min(g.NumCPU, g.GOMAXPROCS))
	g.Busy = g.CPUPercent / (100 * cores)
	return g
}

// startSampler samples progress each second until done is closed; the
// returned function waits for it to finish.
func (r *runner) startSampler(done <-chan struct{}) func() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		prev := r.snapshot()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			cur := r.snapshot()
			r.addSample(prev, cur, cur.sent-prev.sent, cur.received-prev.received)
			prev = cur
		}
	}()
	return wg.Wait
}

// addSample records one interval and prints the progress line.
func (r *runner) addSample(prev, cur counters, sent, delivered int64) {
	d := cur.at.Sub(prev.at).Seconds()
	if d <= 0 {
		return
	}
	s := Sample{T: cur.at.Sub(r.start).Seconds(), SentPerSec: float64(sent) / d, DeliveredPerSec: float64(delivered) / d}
	mid := (prev.at.Sub(r.start) + cur.at.Sub(r.start)) / 2
	switch {
	case r.cfg.Scenario == Idle:
		s.Phase = PhaseIdle
	case r.stopFlag.Load() && mid > time.Duration(r.stopAt.Load()):
		s.Phase = PhaseDrain
	case mid < r.cfg.Warmup:
		s.Phase = PhaseWarmup
	case mid > r.cfg.Warmup+r.cfg.Duration:
		s.Phase = PhaseDrain
	default:
		s.Phase = PhaseMeasure
	}
	if prev.brokerOK && cur.brokerOK {
		s.BrokerCPU = cpuPercent(prev.broker, cur.broker)
		s.BrokerRSS = cur.broker.rss
	}
	s.GeneratorCPU = 100 * float64(cur.cpu-prev.cpu) / float64(cur.at.Sub(prev.at))
	r.sampleMu.Lock()
	r.samples = append(r.samples, s)
	r.sampleMu.Unlock()
	if w := r.cfg.Progress; w != nil {
		line := fmt.Sprintf("[%5.1fs %-7s]", s.T, s.Phase)
		if r.cfg.Scenario == Idle {
			line += fmt.Sprintf(" connected %d (%s/s)", cur.received, human(s.DeliveredPerSec))
		} else {
			line += fmt.Sprintf(" sent %s/s  delivered %s/s  total %d/%d", human(s.SentPerSec), human(s.DeliveredPerSec), cur.sent, cur.received)
		}
		if cur.brokerOK {
			line += fmt.Sprintf("  broker cpu %3.0f%% rss %s", s.BrokerCPU, bytesHuman(float64(s.BrokerRSS)))
		}
		line += fmt.Sprintf("  gen cpu %3.0f%%", s.GeneratorCPU)
		if n := r.errCountNow(); n > 0 {
			line += fmt.Sprintf("  errors %d", n)
		}
		fmt.Fprintln(w, line)
	}
}

func (r *runner) errCountNow() int {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.errCount
}

var _ = packet.V5
