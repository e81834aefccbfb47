package soak

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

// Config is one run of the workload.
type Config struct {
	// URLs are the broker's listener URLs by scheme; the workload needs
	// every scheme of Schemes.
	URLs map[string]string
	// TLS verifies the broker on mqtts, wss and quic.
	TLS *tls.Config
	// Duration of the load.
	Duration time.Duration
	// Rate is the messages per second of each publisher (15 publishers:
	// QoS 0, 1 and 2 on each transport). Default 20.
	Rate float64
	// Window is the number of publishes each publisher keeps in flight
	// (default 16).
	Window int
	// Churn is the mean time between two reconnections of a churning
	// client (publishers and subscribers). Default 10 s.
	Churn time.Duration
	// RetainedKeys is the number of retained topics churned (default 32)
	// and RetainedRate the operations per second on them (default 10).
	RetainedKeys int
	RetainedRate float64
	// Drain bounds the wait, after the load, for the last deliveries
	// (default 2 minutes).
	Drain time.Duration
	// Prefix starts every topic and client identifier (default "soak").
	Prefix string
	// Payload is the largest payload size in bytes (default 512; sizes
	// are drawn between 32 and it).
	Payload int
	Logger  *slog.Logger
}

func (c *Config) defaults() {
	if c.Rate <= 0 {
		c.Rate = 20
	}
	if c.Window <= 0 {
		c.Window = 16
	}
	if c.Churn <= 0 {
		c.Churn = 10 * time.Second
	}
	if c.RetainedKeys <= 0 {
		c.RetainedKeys = 32
	}
	if c.RetainedRate <= 0 {
		c.RetainedRate = 10
	}
	if c.Drain <= 0 {
		c.Drain = 2 * time.Minute
	}
	if c.Prefix == "" {
		c.Prefix = "soak"
	}
	if c.Payload < 32 {
		c.Payload = 512
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Result counts what one run of the workload did and found.
type Result struct {
	Prefix  string
	Elapsed time.Duration // load time
	// Per QoS: publishes started, acknowledged (QoS 0: written), failed,
	// still unresolved after the drain.
	Published, Acked, Failed, Pending [3]int64
	// Receivers is the number of receivers of every data message (the
	// persistent subscribers and the shared group).
	Receivers int
	// Per QoS, over all receivers: deliveries, extra copies of a message
	// already delivered, and acknowledged messages never delivered.
	Delivered, Duplicates, Missing [3]int64
	// Connections made (every CONNACK), abrupt cuts, graceful
	// disconnections, failed connection attempts, resumed sessions found
	// missing.
	Connects, Cuts, Graceful, ConnectErrors, SessionsLost int64
	// PubcompNotFound counts QoS 2 publishes completed by a PUBCOMP
	// 0x92 (Packet Identifier not found) after a reconnection; they are
	// counted as acknowledged.
	PubcompNotFound int64
	// AfterDisconnect counts messages handed to a handler after its
	// Client's Disconnect returned (a client fault; see instance).
	AfterDisconnect int64
	// Wills: expected (clients cut), received, missing, received from
	// clients that disconnected normally.
	WillsExpected, WillsReceived, WillsMissing, WillsUnexpected int64
	// Retained: set/replace/clear operations, topics checked at the end,
	// topics whose retained message was not the last one set.
	RetainedOps, RetainedChecked, RetainedWrong int64
	// Problems are the failed criteria; empty means the run passed.
	Problems []string
}

// Throughput is the acknowledged publishes per second (all QoS).
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Acked[0]+r.Acked[1]+r.Acked[2]) / r.Elapsed.Seconds()
}

func (r *Result) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// String is the summary table.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workload %s: %s of load, %.0f acknowledged publishes/s, %d receivers per message\n", r.Prefix, r.Elapsed.Round(time.Second), r.Throughput(), r.Receivers)
	fmt.Fprintf(&b, "  %-4s %10s %10s %8s %8s %12s %10s %8s\n", "qos", "published", "acked", "failed", "pending", "delivered", "duplicate", "missing")
	for q := range 3 {
		fmt.Fprintf(&b, "  %-4d %10d %10d %8d %8d %12d %10d %8d\n", q, r.Published[q], r.Acked[q], r.Failed[q], r.Pending[q], r.Delivered[q], r.Duplicates[q], r.Missing[q])
	}
	if r.PubcompNotFound > 0 {
		fmt.Fprintf(&b, "  QoS 2 publishes completed by PUBCOMP 0x92 after a reconnection (counted as acknowledged): %d\n", r.PubcompNotFound)
	}
	if r.AfterDisconnect > 0 {
		fmt.Fprintf(&b, "  messages handed to a handler after Disconnect returned: %d\n", r.AfterDisconnect)
	}
	fmt.Fprintf(&b, "  connections %d (abrupt cuts %d, graceful disconnects %d, failed attempts %d, sessions lost %d)\n", r.Connects, r.Cuts, r.Graceful, r.ConnectErrors, r.SessionsLost)
	fmt.Fprintf(&b, "  wills expected %d, received %d, missing %d, unexpected %d\n", r.WillsExpected, r.WillsReceived, r.WillsMissing, r.WillsUnexpected)
	fmt.Fprintf(&b, "  retained operations %d, topics checked %d, wrong %d\n", r.RetainedOps, r.RetainedChecked, r.RetainedWrong)
	if len(r.Problems) == 0 {
		b.WriteString("  PASS: no loss, no QoS 2 duplicate, wills and retained messages as expected\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  FAIL: %s\n", p)
	}
	return b.String()
}

// publisher is one publishing client's ledger.
type publisher struct {
	id    string
	qos   byte
	topic string

	mu    sync.Mutex
	state []uint8 // by sequence number: 0 pending, 1 acknowledged, 2 failed
}

const (
	pending uint8 = iota
	acked
	failed
)

func (p *publisher) next() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = append(p.state, pending)
	return len(p.state) - 1
}

func (p *publisher) set(seq int, s uint8) {
	p.mu.Lock()
	p.state[seq] = s
	p.mu.Unlock()
}

// sink counts the deliveries of one receiver, by publisher and sequence
// number.
type sink struct {
	name string
	mu   sync.Mutex
	got  map[string][]uint16
	qos  [3]int64
	bad  int64
}

func newSink(name string) *sink { return &sink{name: name, got: map[string][]uint16{}} }

func (s *sink) handle(m *client.Message) (id string, seq int, n uint16, ok bool) {
	id, rest, ok := strings.Cut(string(m.Payload), " ")
	seqStr, _, _ := strings.Cut(rest, " ")
	seq, err := strconv.Atoi(seqStr)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok || err != nil || seq < 0 || m.QoS > 2 {
		s.bad++
		return "", 0, 0, false
	}
	c := s.got[id]
	for len(c) <= seq {
		c = append(c, 0)
	}
	c[seq]++
	s.got[id] = c
	s.qos[m.QoS]++
	return id, seq, c[seq], true
}

// uncount takes back one delivery of a QoS 2 message (see
// instance.retire).
func (s *sink) uncount(id string, seq int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.got[id]; seq < len(c) && c[seq] > 0 {
		c[seq]--
		s.qos[2]--
	}
}

// missing counts the acknowledged QoS 1/2 messages of pubs that s has not
// received.
func (s *sink) missing(pubs []*publisher) (n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pubs {
		if p.qos == 0 {
			continue
		}
		got := s.got[p.id]
		p.mu.Lock()
		for seq, st := range p.state {
			if st == acked && (seq >= len(got) || got[seq] == 0) {
				n++
			}
		}
		p.mu.Unlock()
	}
	return n
}

// cutter is a client.Dialer that remembers the connection it opened, so
// that the workload can cut it abruptly (no DISCONNECT: the broker sees
// the transport close, as on a network failure).
type cutter struct {
	mu sync.Mutex
	c  io.Closer
}

func (k *cutter) Dial(ctx context.Context, u *url.URL, tc *tls.Config) (io.ReadWriteCloser, error) {
	c, err := transport.Dial(ctx, u, transport.DialConfig{TLS: tc})
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.c = c
	k.mu.Unlock()
	return c, nil
}

func (k *cutter) cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c != nil {
		k.c.Close()
	}
}

// workload is one run.
type workload struct {
	cfg     Config
	ctx     context.Context // the whole run
	load    context.Context // ends when the load stops
	res     *Result
	pubs    []*publisher
	sinks   []*sink
	ids     []string // persistent sessions to end afterwards
	idsMu   sync.Mutex
	willMu  sync.Mutex
	wills   map[string]int // will id -> 0 expected, 1 expected and received; -1 clean (must not come)
	willGot map[string]int

	connects, cuts, graceful, connectErrors, sessionsLost, pubcomp92 atomic.Int64
	afterDisconnect                                                  atomic.Int64
	problemsMu                                                       sync.Mutex
	problems                                                         []string
}

func (w *workload) problem(format string, args ...any) {
	w.cfg.Logger.Warn("soak problem", "run", w.cfg.Prefix, "problem", fmt.Sprintf(format, args...))
	w.problemsMu.Lock()
	defer w.problemsMu.Unlock()
	if len(w.problems) < 50 {
		w.problems = append(w.problems, fmt.Sprintf(format, args...))
	}
}

func versionName(v packet.Version) string {
	if v == packet.V311 {
		return "3.1.1"
	}
	return "5"
}

// options are the client options every workload client starts from.
func (w *workload) options(scheme, id string, v packet.Version, k *cutter) client.Options {
	return client.Options{
		Server:                w.cfg.URLs[scheme],
		ClientID:              id,
		Version:               v,
		TLSConfig:             w.cfg.TLS,
		Dialers:               map[string]client.Dialer{scheme: k},
		Backoff:               client.Backoff{Initial: 50 * time.Millisecond, Max: time.Second},
		Keepalive:             client.KeepaliveConfig{Interval: 10 * time.Second},
		ConnectTimeout:        20 * time.Second,
		NoAutoSubscriptionIDs: true,
		OnConnect:             func(*client.ConnectInfo) { w.connects.Add(1) },
	}
}

// connect connects c, retrying for up to a minute (a busy machine may
// time out a handshake).
func (w *workload) connect(c *client.Client) (*client.ConnectInfo, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
		info, err := c.Connect(ctx)
		cancel()
		if err == nil {
			return info, nil
		}
		w.connectErrors.Add(1)
		if time.Now().After(deadline) || errors.Is(err, client.ErrClosed) || w.ctx.Err() != nil {
			return nil, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (w *workload) remember(id string) {
	w.idsMu.Lock()
	w.ids = append(w.ids, id)
	w.idsMu.Unlock()
}

// sleep waits d or until the load stops; it reports whether the load
// goes on.
func (w *workload) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.load.Done():
		return false
	case <-t.C:
		return true
	}
}

func (w *workload) churnDelay() time.Duration {
	return w.cfg.Churn/2 + rand.N(w.cfg.Churn)
}

func (w *workload) payload(id string, seq int) []byte {
	n := 32 + rand.IntN(w.cfg.Payload-31)
	b := fmt.Appendf(make([]byte, 0, n), "%s %d ", id, seq)
	for len(b) < n {
		b = append(b, 'x')
	}
	return b
}

// Run runs the workload for cfg.Duration, waits for the last deliveries,
// checks them, ends every session it made and returns the counts. ctx
// cancels the whole run (the result is then incomplete).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	for _, s := range Schemes {
		if cfg.URLs[s] == "" {
			return nil, fmt.Errorf("soak: no %s:// URL", s)
		}
	}
	res := &Result{Prefix: cfg.Prefix}
	load, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	w := &workload{cfg: cfg, ctx: ctx, load: load, res: res, wills: map[string]int{}, willGot: map[string]int{}}
	log := cfg.Logger.With("run", cfg.Prefix)
	data := cfg.Prefix + "/d/"

	// Receivers first: a persistent subscriber on every transport (3.1.1
	// on mqtts) and a shared group of three members, then the will
	// watcher.
	var subs []*subscriber
	for _, s := range Schemes {
		v := packet.V5
		if s == "mqtts" {
			v = packet.V311
		}
		sk := newSink("sub-" + s)
		w.sinks = append(w.sinks, sk)
		subs = append(subs, &subscriber{w: w, scheme: s, id: cfg.Prefix + "-sub-" + s, v: v, filter: data + "#", sink: sk})
	}
	group := newSink("shared-group")
	w.sinks = append(w.sinks, group)
	for _, s := range []string{"mqtt", "wss", "quic"} {
		subs = append(subs, &subscriber{w: w, scheme: s, id: cfg.Prefix + "-member-" + s, v: packet.V5, filter: "$share/g/" + data + "#", sink: group})
	}
	res.Receivers = len(w.sinks)
	watcher := &subscriber{w: w, scheme: "mqtt", id: cfg.Prefix + "-will-watcher", v: packet.V5, filter: cfg.Prefix + "/will/#", handler: w.willReceived}
	for _, s := range append(subs, watcher) {
		if err := s.start(); err != nil {
			return nil, fmt.Errorf("soak: subscriber %s: %w", s.id, err)
		}
	}
	defer func() {
		for _, s := range append(subs, watcher) {
			s.close()
		}
	}()

	for _, s := range Schemes {
		for q := range byte(3) {
			id := fmt.Sprintf("%s-%d", s, q)
			w.pubs = append(w.pubs, &publisher{id: id, qos: q, topic: data + id})
		}
	}
	log.Info("load starting", "duration", cfg.Duration, "publishers", len(w.pubs), "receivers", res.Receivers)
	start := time.Now()
	var loadWG, pubWG sync.WaitGroup
	// The publishers' outstanding publishes are waited for until drainCtx
	// ends.
	drainCtx, cancelDrain := context.WithCancel(ctx)
	defer cancelDrain()
	for i, p := range w.pubs {
		s := Schemes[i/3]
		v := packet.V5
		if s == "ws" {
			v = packet.V311
		}
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			w.publish(p, s, v, drainCtx)
		}()
	}
	for _, s := range subs {
		loadWG.Add(1)
		go func() {
			defer loadWG.Done()
			s.churn()
		}()
	}
	for i, s := range Schemes {
		loadWG.Add(1)
		go func() {
			defer loadWG.Done()
			w.willChurn(s, i)
		}()
	}
	retained := &retainedChurn{w: w, expected: map[int]string{}, uncertain: map[int]bool{}}
	loadWG.Add(1)
	go func() {
		defer loadWG.Done()
		retained.run()
	}()

	timer := time.NewTimer(cfg.Duration)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	timer.Stop()
	stopLoad()
	res.Elapsed = time.Since(start)
	log.Info("load stopped; waiting for the last acknowledgements and deliveries")
	loadWG.Wait()
	drainDeadline := time.Now().Add(cfg.Drain)
	pubsDone := make(chan struct{})
	go func() { pubWG.Wait(); close(pubsDone) }()
	select {
	case <-pubsDone:
	case <-time.After(time.Until(drainDeadline)):
		cancelDrain()
		<-pubsDone
	}
	// Every receiver is online again (churn has stopped): wait for the
	// acknowledged messages and the wills to arrive.
	for {
		var miss int64
		for _, sk := range w.sinks {
			miss += sk.missing(w.pubs)
		}
		miss += int64(w.willsMissing())
		if miss == 0 || time.Now().After(drainDeadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Quiet period check for late duplicates: one round trip per
	// receiver (a SUBSCRIBE to an unused filter) after which anything
	// the broker had queued has been delivered.
	for _, s := range append(subs, watcher) {
		s.roundTrip()
	}
	retained.check(ctx)
	w.tally(subs)
	res.RetainedOps = int64(retained.ops)
	for _, s := range append(subs, watcher) {
		s.close()
	}
	for _, p := range w.pubs {
		w.remember(cfg.Prefix + "-pub-" + p.id)
	}
	w.endSessions(ctx)
	res.Connects, res.Cuts, res.Graceful = w.connects.Load(), w.cuts.Load(), w.graceful.Load()
	res.ConnectErrors, res.SessionsLost = w.connectErrors.Load(), w.sessionsLost.Load()
	res.PubcompNotFound = w.pubcomp92.Load()
	res.AfterDisconnect = w.afterDisconnect.Load()
	w.problemsMu.Lock()
	res.Problems = append(w.problems, res.Problems...)
	w.problemsMu.Unlock()
	if res.SessionsLost > 0 {
		res.problem("%d resumed sessions were not present on the broker", res.SessionsLost)
	}
	log.Info("run done", "problems", len(res.Problems))
	for _, p := range res.Problems {
		log.Warn("soak problem", "problem", p)
	}
	return res, ctx.Err()
}

// tally fills the result's delivery counts and loss criteria.
func (w *workload) tally(subs []*subscriber) {
	res := w.res
	for _, p := range w.pubs {
		p.mu.Lock()
		for _, st := range p.state {
			res.Published[p.qos]++
			switch st {
			case acked:
				res.Acked[p.qos]++
			case failed:
				res.Failed[p.qos]++
			default:
				res.Pending[p.qos]++
			}
		}
		p.mu.Unlock()
	}
	for _, sk := range w.sinks {
		sk.mu.Lock()
		for q := range 3 {
			res.Delivered[q] += sk.qos[q]
		}
		if sk.bad > 0 {
			res.problem("%s received %d messages that are not the workload's", sk.name, sk.bad)
		}
		var dup [3]int64
		for _, p := range w.pubs {
			got := sk.got[p.id]
			for _, n := range got {
				if n > 1 {
					dup[p.qos] += int64(n - 1)
				}
			}
		}
		sk.mu.Unlock()
		var miss [3]int64
		for _, p := range w.pubs {
			if p.qos == 0 {
				continue
			}
			m := sk.missing([]*publisher{p})
			miss[p.qos] += m
		}
		for q := range 3 {
			res.Duplicates[q] += dup[q]
			res.Missing[q] += miss[q]
		}
		if miss[1]+miss[2] > 0 {
			res.problem("%s: %d acknowledged QoS 1 and %d acknowledged QoS 2 messages never delivered", sk.name, miss[1], miss[2])
		}
		if dup[2] > 0 {
			res.problem("%s: %d QoS 2 messages delivered more than once", sk.name, dup[2])
		}
	}
	// QoS 0: every delivery counted, none required. The number of QoS 0
	// messages never delivered is reported as Missing[0].
	for _, sk := range w.sinks {
		sk.mu.Lock()
		for _, p := range w.pubs {
			if p.qos != 0 {
				continue
			}
			got := sk.got[p.id]
			p.mu.Lock()
			for seq, st := range p.state {
				if st == acked && (seq >= len(got) || got[seq] == 0) {
					res.Missing[0]++
				}
			}
			p.mu.Unlock()
		}
		sk.mu.Unlock()
	}
	if n := res.Failed[1] + res.Failed[2]; n > 0 {
		res.problem("%d QoS 1/2 publishes failed", n)
	}
	if n := res.Pending[1] + res.Pending[2]; n > 0 {
		res.problem("%d QoS 1/2 publishes still unacknowledged %s after the load", n, w.cfg.Drain)
	}
	w.willMu.Lock()
	for id, st := range w.wills {
		got := w.willGot[id]
		switch {
		case st == 0:
			res.WillsExpected++
			if got == 0 {
				res.WillsMissing++
			}
		case got > 0:
			res.WillsUnexpected++
		}
	}
	for id, n := range w.willGot {
		if _, ok := w.wills[id]; !ok || n == 0 {
			res.WillsUnexpected++
		}
		res.WillsReceived += int64(n)
	}
	w.willMu.Unlock()
	if res.WillsMissing > 0 {
		res.problem("%d wills of cut clients never arrived", res.WillsMissing)
	}
	if res.WillsUnexpected > 0 {
		res.problem("%d wills arrived from clients that disconnected normally (or unknown ones)", res.WillsUnexpected)
	}
}

// publish runs one publisher until the load stops, with cfg.Window
// publishes in flight and abrupt cuts of its connection now and then.
func (w *workload) publish(p *publisher, scheme string, v packet.Version, drainCtx context.Context) {
	id := w.cfg.Prefix + "-pub-" + p.id
	k := &cutter{}
	o := w.options(scheme, id, v, k)
	o.SessionExpiry = 3600
	o.Store = client.NewMemoryStore()
	c, err := client.New(o)
	if err != nil {
		w.problem("publisher %s: %v", id, err)
		return
	}
	if _, err := w.connect(c); err != nil {
		w.problem("publisher %s: connect: %v", id, err)
		return
	}
	go func() {
		for w.sleep(w.churnDelay()) {
			w.cuts.Add(1)
			k.cut()
		}
	}()
	var inflight sync.WaitGroup
	sem := make(chan struct{}, w.cfg.Window)
	tick := time.NewTicker(time.Duration(float64(time.Second) / w.cfg.Rate))
	defer tick.Stop()
loop:
	for {
		select {
		case <-w.load.Done():
			break loop
		case <-tick.C:
		}
		select {
		case <-w.load.Done():
			break loop
		case sem <- struct{}{}:
		}
		seq := p.next()
		tok := c.PublishAsync(drainCtx, &client.Message{Topic: p.topic, QoS: p.qos, Payload: w.payload(p.id, seq)})
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-sem }()
			switch err := tok.Wait(drainCtx); {
			case err == nil:
				p.set(seq, acked)
				if tok.ReasonCode() == packet.PacketIdentifierNotFound {
					// PUBCOMP 0x92 to a PUBREL re-sent after a
					// reconnection: "not an error during recovery" (MQTT 5
					// 3.7.2.1); the message must still arrive exactly once.
					w.pubcomp92.Add(1)
				}
			case p.qos == 2 && errors.Is(err, packet.PacketIdentifierNotFound):
				// PUBCOMP 0x92 to a PUBREL sent for the first time on
				// a connection: a session mismatch the client reports.
				p.set(seq, failed)
				w.problem("publisher %s: seq %d: %v", id, seq, err)
			case drainCtx.Err() != nil:
				// unresolved: stays pending
			default:
				p.set(seq, failed)
				w.problem("publisher %s: seq %d: %v", id, seq, err)
			}
		}()
	}
	inflight.Wait()
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Disconnect(dctx, packet.NormalDisconnection, 0)
}

// subscriber is a persistent subscriber (or shared group member, or the
// will watcher) that reconnects now and then: abruptly (the client
// resumes its session) or gracefully, coming back a little later as a new
// Client on the same session.
type subscriber struct {
	w       *workload
	scheme  string
	id      string
	v       packet.Version
	filter  string
	sink    *sink
	handler client.Handler

	store *client.MemoryStore
	k     *cutter
	inst  *instance // of the current Client
	mu    sync.Mutex
	c     *client.Client
	first bool
}

// instance is one Client of a subscriber. The client records a QoS 2
// packet identifier in its session store before the handler sees the
// message, so the next Client of the session answers a re-sent PUBLISH
// with PUBREC without delivering it again [MQTT-4.3.3-x]; and Disconnect
// waits for the running handler, after which no handler starts. A handler
// call after retire (Disconnect returned) is therefore a client fault,
// counted in AfterDisconnect and reported as a problem.
type instance struct {
	s       *subscriber
	mu      sync.Mutex
	retired bool
}

func (i *instance) handle(m *client.Message) {
	s := i.s
	if s.handler != nil {
		s.handler(m)
		return
	}
	i.mu.Lock()
	retired := i.retired
	i.mu.Unlock()
	if retired {
		s.w.afterDisconnect.Add(1)
		s.w.problem("%s: message handed to a handler after Disconnect returned", s.id)
	}
	pub, seq, n, ok := s.sink.handle(m)
	if ok && m.QoS == 2 && n > 1 {
		s.w.cfg.Logger.Warn("QoS 2 duplicate", "run", s.w.cfg.Prefix, "receiver", s.sink.name, "client", s.id,
			"publisher", pub, "seq", seq, "copies", n, "dup_flag", m.Dup, "packet_id", m.PacketID)
	}
}

// retire is called once the instance's Client has ended.
func (i *instance) retire() {
	i.mu.Lock()
	i.retired = true
	i.mu.Unlock()
}

func (s *subscriber) newClient(resume bool) (*client.Client, error) {
	s.k = &cutter{}
	s.inst = &instance{s: s}
	o := s.w.options(s.scheme, s.id, s.v, s.k)
	o.SessionExpiry = 3600
	o.Store = s.store
	o.DefaultHandler = s.inst.handle
	if resume {
		o.CleanStart = client.CleanStartNever
	}
	o.OnConnect = func(info *client.ConnectInfo) {
		s.w.connects.Add(1)
		s.mu.Lock()
		first := s.first
		s.first = false
		s.mu.Unlock()
		if !first && !info.SessionPresent {
			s.w.sessionsLost.Add(1)
			s.w.problem("%s: session not present on reconnection", s.id)
		}
	}
	return client.New(o)
}

func (s *subscriber) start() error {
	s.store = client.NewMemoryStore()
	s.first = true
	c, err := s.newClient(false)
	if err != nil {
		return err
	}
	if _, err := s.w.connect(c); err != nil {
		return err
	}
	if err := s.subscribe(c); err != nil {
		return err
	}
	s.w.remember(s.id)
	s.mu.Lock()
	s.c = c
	s.mu.Unlock()
	return nil
}

func (s *subscriber) subscribe(c *client.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sa, err := c.Subscribe(ctx, []client.Subscription{{Filter: s.filter, QoS: 2}}, s.inst.handle)
	if err != nil {
		return err
	}
	if len(sa.Codes) != 1 || sa.Codes[0] > packet.GrantedQoS2 {
		return fmt.Errorf("subscribe %s refused: %v", s.filter, sa.Codes)
	}
	return nil
}

// churn reconnects until the load stops, and leaves the subscriber
// connected.
func (s *subscriber) churn() {
	for s.w.sleep(s.w.churnDelay()) {
		if rand.IntN(2) == 0 {
			s.w.cuts.Add(1)
			s.k.cut()
			continue
		}
		s.mu.Lock()
		old := s.c
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		old.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
		cancel()
		s.inst.retire()
		s.w.graceful.Add(1)
		// Offline for a moment: the broker queues for the session.
		time.Sleep(200*time.Millisecond + rand.N(1800*time.Millisecond))
		c, err := s.newClient(true)
		if err != nil {
			s.w.problem("%s: %v", s.id, err)
			return
		}
		info, err := s.w.connect(c)
		if err != nil {
			s.w.problem("%s: reconnect: %v", s.id, err)
			return
		}
		if !info.SessionPresent {
			if err := s.subscribe(c); err != nil {
				s.w.problem("%s: subscribe: %v", s.id, err)
			}
		}
		s.mu.Lock()
		s.c = c
		s.mu.Unlock()
	}
}

// roundTrip waits for one SUBSCRIBE/SUBACK exchange on an unused filter,
// after which every message the broker queued before it has been
// received.
func (s *subscriber) roundTrip() {
	s.mu.Lock()
	c := s.c
	s.mu.Unlock()
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.Subscribe(ctx, []client.Subscription{{Filter: s.w.cfg.Prefix + "/round-trip", QoS: 0}}, func(*client.Message) {})
}

func (s *subscriber) close() {
	s.mu.Lock()
	c := s.c
	s.c = nil
	s.mu.Unlock()
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c.Disconnect(ctx, packet.NormalDisconnection, 0)
		cancel()
	}
}

func (w *workload) willReceived(m *client.Message) {
	w.willMu.Lock()
	w.willGot[string(m.Payload)]++
	w.willMu.Unlock()
}

func (w *workload) willsMissing() (n int) {
	w.willMu.Lock()
	defer w.willMu.Unlock()
	for id, st := range w.wills {
		if st == 0 && w.willGot[id] == 0 {
			n++
		}
	}
	return n
}

// willChurn connects short-lived clients with a will on one transport
// until the load stops; each is either cut (its will must be published)
// or disconnects normally (its will must not).
func (w *workload) willChurn(scheme string, i int) {
	for n := 0; w.load.Err() == nil; n++ {
		id := fmt.Sprintf("%s-will-%s-%d", w.cfg.Prefix, scheme, n)
		v := packet.V5
		if (n+i)%3 == 0 {
			v = packet.V311
		}
		k := &cutter{}
		o := w.options(scheme, id, v, k)
		o.CleanStart = client.CleanStartAlways
		o.DisableReconnect = true
		o.Will = &client.Will{Topic: w.cfg.Prefix + "/will/" + id, Payload: []byte(id), QoS: 1}
		c, err := client.New(o)
		if err != nil {
			w.problem("%s: %v", id, err)
			return
		}
		ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
		_, err = c.Connect(ctx)
		cancel()
		if err != nil {
			w.connectErrors.Add(1)
			c.Disconnect(context.Background(), packet.NormalDisconnection, 0)
			w.sleep(100 * time.Millisecond)
			continue
		}
		w.sleep(50*time.Millisecond + rand.N(450*time.Millisecond))
		w.willMu.Lock()
		cut := rand.IntN(2) == 0
		if cut {
			w.wills[id] = 0
		} else {
			w.wills[id] = -1
		}
		w.willMu.Unlock()
		if cut {
			w.cuts.Add(1)
			k.cut()
			select {
			case <-c.Done():
			case <-time.After(30 * time.Second):
				w.problem("%s: client did not end after its connection was cut", id)
			}
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c.Disconnect(ctx, packet.NormalDisconnection, 0)
			cancel()
			w.graceful.Add(1)
		}
		w.sleep(rand.N(200 * time.Millisecond))
	}
}

// retainedChurn sets, replaces and clears retained messages on
// cfg.RetainedKeys topics, from one client that moves to the next
// transport every 100 operations.
type retainedChurn struct {
	w         *workload
	expected  map[int]string // last acknowledged payload; "" cleared
	uncertain map[int]bool   // a publish failed: state unknown
	ops       int
}

func (r *retainedChurn) topic(k int) string { return fmt.Sprintf("%s/r/%d", r.w.cfg.Prefix, k) }

func (r *retainedChurn) run() {
	w := r.w
	tick := time.NewTicker(time.Duration(float64(time.Second) / w.cfg.RetainedRate))
	defer tick.Stop()
	for round := 0; w.load.Err() == nil; round++ {
		scheme := Schemes[round%len(Schemes)]
		id := fmt.Sprintf("%s-retainer-%d", w.cfg.Prefix, round)
		o := w.options(scheme, id, packet.V5, &cutter{})
		o.CleanStart = client.CleanStartAlways
		c, err := client.New(o)
		if err != nil {
			w.problem("%s: %v", id, err)
			return
		}
		if _, err := w.connect(c); err != nil {
			w.problem("%s: connect: %v", id, err)
			return
		}
		for i := 0; i < 100 && w.load.Err() == nil; i++ {
			select {
			case <-w.load.Done():
			case <-tick.C:
			}
			k := rand.IntN(w.cfg.RetainedKeys)
			val := ""
			if rand.IntN(3) != 0 {
				val = fmt.Sprintf("%s %d", id, r.ops)
			}
			ctx, cancel := context.WithTimeout(w.ctx, time.Minute)
			err := c.Publish(ctx, &client.Message{Topic: r.topic(k), QoS: 1, Retain: true, Payload: []byte(val)})
			cancel()
			r.ops++
			if err != nil {
				r.uncertain[k] = true
				w.problem("%s: retained publish: %v", id, err)
				continue
			}
			r.expected[k] = val
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c.Disconnect(ctx, packet.NormalDisconnection, 0)
		cancel()
		w.graceful.Add(1)
	}
}

// check compares the retained messages a new subscriber gets with the
// last ones set, then clears them all.
func (r *retainedChurn) check(ctx context.Context) {
	w := r.w
	var mu sync.Mutex
	got := map[string]string{}
	o := w.options("mqtt", w.cfg.Prefix+"-retained-check", packet.V5, &cutter{})
	o.CleanStart = client.CleanStartAlways
	h := func(m *client.Message) {
		if m.Retain {
			mu.Lock()
			got[m.Topic] = string(m.Payload)
			mu.Unlock()
		}
	}
	o.DefaultHandler = h
	c, err := client.New(o)
	if err == nil {
		_, err = w.connect(c)
	}
	if err != nil {
		w.res.problem("retained check: connect: %v", err)
		return
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c.Disconnect(dctx, packet.NormalDisconnection, 0)
		cancel()
	}()
	want := map[string]string{}
	for k, v := range r.expected {
		if !r.uncertain[k] && v != "" {
			want[r.topic(k)] = v
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := c.Subscribe(sctx, []client.Subscription{{Filter: w.cfg.Prefix + "/r/#", QoS: 1}}, h); err != nil {
		w.res.problem("retained check: subscribe: %v", err)
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// One more round trip: any retained message sent for the
	// subscription has arrived before its answer.
	c.Subscribe(sctx, []client.Subscription{{Filter: w.cfg.Prefix + "/round-trip", QoS: 0}}, func(*client.Message) {})
	mu.Lock()
	for k := range w.cfg.RetainedKeys {
		if r.uncertain[k] {
			continue
		}
		t := r.topic(k)
		r.w.res.RetainedChecked++
		if got[t] != want[t] {
			r.w.res.RetainedWrong++
			if r.w.res.RetainedWrong <= 5 {
				w.res.problem("retained %s: got %q, want %q", t, got[t], want[t])
			}
		}
	}
	mu.Unlock()
	if r.w.res.RetainedWrong > 5 {
		w.res.problem("%d retained topics wrong in all", r.w.res.RetainedWrong)
	}
	for k := range w.cfg.RetainedKeys {
		if err := c.Publish(sctx, &client.Message{Topic: r.topic(k), QoS: 1, Retain: true}); err != nil {
			w.res.problem("clearing retained %s: %v", r.topic(k), err)
			return
		}
	}
}

// endSessions ends every persistent session the run made: a clean-start
// connection with session expiry 0 (Clean Session 1 in 3.1.1) for each
// identifier, so that the broker keeps nothing of the run.
func (w *workload) endSessions(ctx context.Context) {
	w.idsMu.Lock()
	ids := w.ids
	w.idsMu.Unlock()
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		o := w.options("mqtt", id, packet.V5, &cutter{})
		o.CleanStart = client.CleanStartAlways
		o.DisableReconnect = true
		c, err := client.New(o)
		if err == nil {
			_, err = w.connect(c)
		}
		if err != nil {
			w.res.problem("ending session %s: %v", id, err)
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c.Disconnect(dctx, packet.NormalDisconnection, 0)
		cancel()
	}
}
