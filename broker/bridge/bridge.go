package bridge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

// ErrRunning is returned by Run while another Run of the same Bridge is
// active.
var ErrRunning = errors.New("bridge: already running")

// Bridge forwards messages between the local broker and a remote one. Create
// it with New and start it with Run.
type Bridge struct {
	cfg      Config
	dial     func(context.Context) (net.Conn, error)
	log      *slog.Logger
	servers  []string
	cache    *loopCache // nil when not used
	rm       uint16     // Receive Maximum announced on both sides
	localSub []client.Subscription
	remSub   []client.Subscription

	out, in *pipe

	localT  atomic.Pointer[target]
	remoteT atomic.Pointer[target]

	loopsDropped atomic.Uint64
	connects     atomic.Uint64 // remote connections made

	stMu sync.Mutex
	stCh chan struct{} // closed and replaced at every state change

	mu        sync.Mutex
	running   bool
	cancel    context.CancelFunc
	done      chan struct{}
	lastErr   string
	lastErrAt time.Time
	remoteURL string
	// stores hold the session state per side (key "local" or a server
	// URL). Memory stores outlive Run, so that a new Run resumes the
	// sessions; FileStores are opened by each Run and closed at its end.
	stores map[string]client.SessionStore
}

// Status is a snapshot of a Bridge.
type Status struct {
	// Connected reports whether the remote connection is up (after the
	// bridge's subscriptions were made on it).
	Connected bool
	// LocalConnected reports whether the local connection is up.
	LocalConnected bool
	// Remote is the server in use, or the last one tried.
	Remote string
	// QueueDepth counts the messages the bridge holds: received from one
	// side and not yet acknowledged by the other, both directions.
	QueueDepth int
	// LastError is the latest connection or forwarding error ("" if none).
	LastError string
	// LastErrorAt is when LastError happened (zero if none).
	LastErrorAt time.Time
	// Reconnects counts the remote connections made after the first one
	// (after a connection loss, or when switching between servers).
	Reconnects uint64
	// Forwarded counts messages delivered to the other side (acknowledged
	// by it at QoS 1/2).
	Forwarded Counters
	// Dropped counts messages not forwarded for other reasons than loop
	// prevention: refused by the destination, expired, QoS 0 beyond
	// MaxQueued, or matching no mapping.
	Dropped Counters
	// LoopsDropped counts messages not forwarded by loop prevention
	// (origin property, MaxHops, fingerprint cache).
	LoopsDropped uint64
}

// Counters are per-direction counts.
type Counters struct {
	In, Out uint64
}

// New returns a bridge for cfg whose local side is reached through local:
// each call returns a new connection to the local broker (embedders pass
// a function returning broker.InProcessConn()). It validates cfg; errors
// name the offending field. Nothing runs until Run.
func New(cfg Config, local func(context.Context) (net.Conn, error)) (*Bridge, error) {
	if local == nil {
		return nil, errors.New("bridge: the local dialer is nil")
	}
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	b := &Bridge{
		cfg:     cfg,
		dial:    local,
		log:     cfg.Logger.With("bridge", cfg.Name),
		servers: append([]string{cfg.Remote.URL}, cfg.Remote.Backups...),
		rm:      uint16(min(cfg.MaxQueued, math.MaxUint16)),
		stCh:    make(chan struct{}),
		stores:  map[string]client.SessionStore{},
	}
	if cfg.LoopCache == LoopCacheAlways || cfg.LoopCache == LoopCacheAuto && cfg.Remote.Version == packet.V311 {
		b.cache = newLoopCache(cfg.LoopTTL, cfg.LoopCacheSize, nil)
	}
	b.localSub = subscriptions(cfg.Topics, Direction.out, TopicMapping.localFilter)
	b.remSub = subscriptions(cfg.Topics, Direction.in, TopicMapping.remoteFilter)
	b.out = newPipe(b, Out, func() *target { return b.remoteT.Load() })
	b.in = newPipe(b, In, func() *target { return b.localT.Load() })
	return b, nil
}

// subscriptions returns the bridge's subscriptions on one side: one per
// distinct filter, at the highest QoS of its mappings, with No Local (the
// bridge never receives its own forwarded messages back), Retain As
// Published (the retain flag is forwarded) and Retain Handling 1 (retained
// messages are sent when the subscription is new, not at every
// reconnection).
func subscriptions(ms []TopicMapping, dir func(Direction) bool, filter func(TopicMapping) string) []client.Subscription {
	var subs []client.Subscription
	idx := map[string]int{}
	for _, m := range ms {
		if !dir(m.Direction) {
			continue
		}
		f := filter(m)
		if i, ok := idx[f]; ok {
			subs[i].QoS = max(subs[i].QoS, m.QoS)
			continue
		}
		idx[f] = len(subs)
		subs = append(subs, client.Subscription{Filter: f, QoS: m.QoS, NoLocal: true, RetainAsPublished: true, RetainHandling: 1})
	}
	return subs
}

// Status returns a snapshot of the bridge's state and counters.
func (b *Bridge) Status() Status {
	var s Status
	if t := b.remoteT.Load(); t != nil {
		s.Connected = t.c.IsConnected()
	}
	if t := b.localT.Load(); t != nil {
		s.LocalConnected = t.c.IsConnected()
	}
	b.mu.Lock()
	s.Remote, s.LastError, s.LastErrorAt = b.remoteURL, b.lastErr, b.lastErrAt
	b.mu.Unlock()
	s.QueueDepth = b.out.depth() + b.in.depth()
	s.Forwarded = Counters{In: b.in.forwarded.Load(), Out: b.out.forwarded.Load()}
	s.Dropped = Counters{In: b.in.dropped.Load(), Out: b.out.dropped.Load()}
	s.LoopsDropped = b.loopsDropped.Load()
	if n := b.connects.Load(); n > 1 {
		s.Reconnects = n - 1
	}
	return s
}

// Run connects both sides and forwards messages until ctx ends (or Close is
// called); it then disconnects, keeping both sessions, and returns nil.
// Connection failures are retried with Config.Backoff, never returned.
// Messages received and not yet acknowledged when Run returns stay with the
// brokers, which send them again at the next Run. Run may be called again
// after it returned; a concurrent second call returns ErrRunning.
func (b *Bridge) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.mu.Lock()
	if b.running {
		b.mu.Unlock()
		return ErrRunning
	}
	b.running, b.cancel, b.done = true, cancel, make(chan struct{})
	done := b.done
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		for k, s := range b.stores {
			if fs, ok := s.(*client.FileStore); ok {
				fs.Close()
				delete(b.stores, k)
			}
		}
		b.running, b.cancel = false, nil
		b.mu.Unlock()
		close(done)
	}()

	// Messages held by a previous Run belong to connections that are gone:
	// their sources send them again.
	b.out.reset()
	b.in.reset()
	lt := b.connectLocal(ctx)
	if lt == nil {
		return nil
	}
	defer b.retire(lt)
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){b.out.forward, b.out.complete, b.in.forward, b.in.complete} {
		wg.Go(func() { f(ctx) })
	}
	if len(b.localSub) > 0 {
		b.subscribe(ctx, lt, b.localSub)
	}
	wg.Go(func() { b.remoteLoop(ctx) })
	<-ctx.Done()
	wg.Wait()
	b.localT.Store(nil)
	b.notify()
	return nil
}

// Close stops Run and waits until it returned or ctx ended.
func (b *Bridge) Close(ctx context.Context) error {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ---- state ----

// changed returns a channel that is closed at the next state change
// (connection up or down, remote target replaced).
func (b *Bridge) changed() <-chan struct{} {
	b.stMu.Lock()
	defer b.stMu.Unlock()
	return b.stCh
}

func (b *Bridge) notify() {
	b.stMu.Lock()
	close(b.stCh)
	b.stCh = make(chan struct{})
	b.stMu.Unlock()
}

func (b *Bridge) setErr(err error) {
	b.mu.Lock()
	b.lastErr, b.lastErrAt = err.Error(), time.Now()
	b.mu.Unlock()
}

func (b *Bridge) setRemoteURL(u string) {
	b.mu.Lock()
	b.remoteURL = u
	b.mu.Unlock()
}

// store returns the session store of one side (key "local" or a server
// URL): in memory, or a FileStore under QueueDir. A client created again
// for the same server resumes the state of the previous one.
func (b *Bridge) store(key string) (client.SessionStore, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.stores[key]; ok {
		return s, nil
	}
	var s client.SessionStore
	if b.cfg.QueueDir == "" {
		s = client.NewMemoryStore()
	} else {
		name := "local"
		if key != "local" {
			h := sha256.Sum256([]byte(key))
			name = "remote-" + hex.EncodeToString(h[:8])
		}
		dir := filepath.Join(b.cfg.QueueDir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("bridge: QueueDir: %w", err)
		}
		fs, err := client.OpenFileStore(dir, client.FileStoreOptions{Logger: b.log})
		if err != nil {
			return nil, fmt.Errorf("bridge: QueueDir: %w", err)
		}
		s = fs
	}
	b.stores[key] = s
	return s, nil
}

// ---- connections ----

// target is one client the pipes publish to.
type target struct {
	c      *client.Client
	url    string
	index  int // position in the server list (remote), 0 for local
	ctx    context.Context
	cancel context.CancelFunc
	maxQoS atomic.Uint32
	retain atomic.Bool
	v5     bool
}

func (t *target) setInfo(info *client.ConnectInfo) {
	t.maxQoS.Store(uint32(info.MaximumQoS))
	t.retain.Store(info.RetainAvailable)
}

func (b *Bridge) sessionExpiry() uint32 {
	return uint32(min(b.cfg.SessionExpiry/time.Second, math.MaxUint32))
}

func (b *Bridge) queueLimits() client.QueueLimits {
	return client.QueueLimits{MaxMessages: b.cfg.MaxQueued, MaxBytes: int(min(b.cfg.MaxQueuedBytes, math.MaxInt32))}
}

// callbacks returns connection callbacks that keep t's limits current and
// wake the pipes.
func (b *Bridge) callbacks(o *client.Options, t *target, side string) {
	o.OnConnect = func(info *client.ConnectInfo) {
		t.setInfo(info)
		if side == "remote" {
			b.connects.Add(1)
		}
		b.log.Info("bridge connected", "side", side, "server", info.Server, "session_present", info.SessionPresent)
		b.notify()
	}
	o.OnDisconnect = func(di client.DisconnectInfo) {
		if di.Err != nil {
			b.setErr(fmt.Errorf("%s %s: %w", side, t.url, di.Err))
			b.log.Warn("bridge connection lost", "side", side, "server", t.url, "err", di.Err, "reconnecting", di.Reconnecting)
		}
		b.notify()
	}
	o.OnError = func(err error) {
		b.setErr(fmt.Errorf("%s %s: %w", side, t.url, err))
		b.log.Warn("bridge client error", "side", side, "err", err)
	}
}

// connectLocal connects the local side, retrying until it succeeds or ctx
// ends (nil).
func (b *Bridge) connectLocal(ctx context.Context) *target {
	st, err := b.store("local")
	if err != nil {
		b.setErr(err)
		b.log.Error("bridge local store", "err", err)
		<-ctx.Done()
		return nil
	}
	for attempt := 1; ; attempt++ {
		t := &target{url: "in-process", v5: true}
		t.ctx, t.cancel = context.WithCancel(ctx)
		o := client.Options{
			Server:         "mqtt://in-process:1883",
			ClientID:       LocalClientIDPrefix + b.cfg.Name,
			CleanStart:     client.CleanStartNever,
			SessionExpiry:  b.sessionExpiry(),
			ReceiveMaximum: b.rm,
			ManualAck:      true,
			DefaultHandler: func(m *client.Message) { b.accept(Out, m) },
			Backoff:        b.cfg.Backoff,
			Queue:          b.queueLimits(),
			Store:          st,
			Logger:         b.log.With("side", "local"),
			Dialers: map[string]client.Dialer{"mqtt": client.DialerFunc(
				func(ctx context.Context, _ *url.URL, _ *tls.Config) (io.ReadWriteCloser, error) {
					return b.dial(ctx)
				})},
		}
		b.callbacks(&o, t, "local")
		c, err := client.New(o)
		if err == nil {
			t.c = c
			var info *client.ConnectInfo
			if info, err = c.Connect(ctx); err == nil {
				t.setInfo(info)
				b.localT.Store(t)
				b.notify()
				return t
			}
		}
		t.cancel()
		if ctx.Err() != nil {
			return nil
		}
		b.setErr(fmt.Errorf("local: %w", err))
		b.log.Warn("bridge local connect failed", "err", err, "attempt", attempt)
		if !sleepCtx(ctx, b.cfg.Backoff.Delay(attempt)) {
			return nil
		}
	}
}

// dialRemote makes one connection attempt to server i and returns its
// target, or nil.
func (b *Bridge) dialRemote(ctx context.Context, i int) *target {
	u := b.servers[i]
	st, err := b.store(u)
	if err != nil {
		b.setErr(err)
		return nil
	}
	r := b.cfg.Remote
	t := &target{url: u, index: i, v5: r.Version == packet.V5}
	t.ctx, t.cancel = context.WithCancel(ctx)
	bo := b.cfg.Backoff
	if len(b.servers) > 1 {
		bo.MaxAttempts = b.cfg.FailoverAttempts
	}
	o := client.Options{
		Server:          u,
		ClientID:        r.ClientID,
		Version:         r.Version,
		Username:        r.Username,
		Password:        r.Password,
		Auth:            r.Auth,
		CleanStart:      client.CleanStartNever,
		SessionExpiry:   b.sessionExpiry(),
		ReceiveMaximum:  b.rm,
		ManualAck:       true,
		DefaultHandler:  func(m *client.Message) { b.accept(In, m) },
		Backoff:         bo,
		Keepalive:       client.KeepaliveConfig{Interval: r.Keepalive},
		ConnectTimeout:  r.ConnectTimeout,
		TLSConfig:       r.TLS,
		WebSocketHeader: r.WebSocketHeader,
		QUIC:            r.QUIC,
		Dialers:         r.Dialers,
		Queue:           b.queueLimits(),
		Store:           st,
		Logger:          b.log.With("side", "remote"),
	}
	b.callbacks(&o, t, "remote")
	c, err := client.New(o)
	if err == nil {
		t.c = c
		var info *client.ConnectInfo
		if info, err = c.Connect(ctx); err == nil {
			t.setInfo(info)
			return t
		}
	}
	t.cancel()
	if ctx.Err() == nil {
		b.setErr(fmt.Errorf("remote %s: %w", u, err))
		b.log.Warn("bridge remote connect failed", "server", u, "err", err)
	}
	return nil
}

// remoteLoop keeps the remote side connected: each round tries the primary,
// then the backups in order, waiting Backoff between rounds that found no
// server.
func (b *Bridge) remoteLoop(ctx context.Context) {
	for failures := 0; ; {
		var t *target
		for i := range b.servers {
			b.setRemoteURL(b.servers[i])
			if t = b.dialRemote(ctx, i); t != nil || ctx.Err() != nil {
				break
			}
		}
		if ctx.Err() != nil {
			if t != nil {
				b.retire(t)
			}
			return
		}
		if t == nil {
			failures++
			if !sleepCtx(ctx, b.cfg.Backoff.Delay(failures)) {
				return
			}
			continue
		}
		failures = 0
		b.serveRemote(ctx, t)
		if ctx.Err() != nil {
			return
		}
	}
}

// serveRemote runs the remote side on t until its client gives up (then the
// next round of remoteLoop fails over) or ctx ends. While t is a backup it
// tries the primary every FailbackInterval and moves to it when it answers.
func (b *Bridge) serveRemote(ctx context.Context, t *target) {
	for {
		if len(b.remSub) > 0 {
			b.subscribe(ctx, t, b.remSub)
		}
		b.remoteT.Store(t)
		b.setRemoteURL(t.url)
		b.notify()
		if t.index > 0 {
			b.log.Info("bridge on a backup server", "server", t.url)
		}
		next := b.waitRemote(ctx, t)
		if next == nil {
			return
		}
		b.log.Info("bridge failing back to the primary", "from", t.url, "to", next.url)
		b.retire(t)
		t = next
	}
}

// waitRemote waits until t's client ends or ctx ends (nil), or, while t is a
// backup, until the primary answers (its new target).
func (b *Bridge) waitRemote(ctx context.Context, t *target) *target {
	var fb <-chan time.Time
	if t.index > 0 {
		timer := time.NewTicker(b.cfg.FailbackInterval)
		defer timer.Stop()
		fb = timer.C
	}
	for {
		select {
		case <-ctx.Done():
			b.remoteT.CompareAndSwap(t, nil)
			b.retire(t)
			return nil
		case <-t.c.Done():
			if err := t.c.Err(); err != nil {
				b.setErr(fmt.Errorf("remote %s: %w", t.url, err))
			}
			b.log.Warn("bridge giving up on server", "server", t.url, "err", t.c.Err())
			b.remoteT.CompareAndSwap(t, nil)
			t.cancel()
			b.notify()
			return nil
		case <-fb:
			if p := b.dialRemote(ctx, 0); p != nil {
				return p
			}
		}
	}
}

// retire disconnects t's client, keeping its session on the server.
func (b *Bridge) retire(t *target) {
	t.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.c.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
	b.notify()
}

// subscribe subscribes t's client to subs; refusals are logged.
func (b *Bridge) subscribe(ctx context.Context, t *target, subs []client.Subscription) {
	_, err := t.c.Subscribe(t.ctx, append([]client.Subscription(nil), subs...), nil)
	if err != nil && ctx.Err() == nil && t.ctx.Err() == nil {
		b.setErr(fmt.Errorf("subscribe on %s: %w", t.url, err))
		b.log.Error("bridge subscribe failed", "server", t.url, "err", err)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ---- forwarding ----

// accept takes a message received on the side dir forwards from (the local
// side for Out, the remote side for In). It runs on that client's dispatch
// goroutine and never blocks: the message is queued for the pipe.
func (b *Bridge) accept(dir Direction, m *client.Message) {
	p := b.in
	if dir == Out {
		p = b.out
	}
	name, ok := b.mapTopic(dir, m.Topic)
	if !ok {
		p.dropped.Add(1)
		b.log.Debug("bridge: no mapping for topic", "direction", dir, "topic", m.Topic)
		m.Ack()
		return
	}
	hops, own := origins(m.User, b.cfg.Name)
	if own || hops >= b.cfg.MaxHops {
		b.loopsDropped.Add(1)
		m.Ack()
		return
	}
	if b.cache != nil {
		local := m.Topic
		if dir == In {
			local = name
		}
		if !b.cache.forward(fingerprintOf(local, m.Payload, m.QoS, m.Retain), dir) {
			b.loopsDropped.Add(1)
			m.Ack()
			return
		}
	}
	fw := &client.Message{
		Topic:           name,
		Payload:         m.Payload,
		QoS:             m.QoS,
		Retain:          m.Retain,
		PayloadFormat:   m.PayloadFormat,
		MessageExpiry:   m.MessageExpiry,
		ContentType:     m.ContentType,
		ResponseTopic:   m.ResponseTopic,
		CorrelationData: m.CorrelationData,
		User:            m.User,
	}
	if dir == In || b.cfg.Remote.Version == packet.V5 {
		fw.User = withOrigin(m.User, b.cfg.Name)
	}
	size := len(name) + len(m.Payload) + len(m.ContentType) + len(m.ResponseTopic) + len(m.CorrelationData) + 16
	for _, u := range fw.User {
		size += len(u.Key) + len(u.Value) + 4
	}
	p.push(&entry{src: m, msg: fw, qos: m.QoS, retain: m.Retain, expiry: m.MessageExpiry, size: size, at: time.Now()})
}

// mapTopic returns the topic name on the other side for a message received
// on topic name travelling in direction dir, through the first mapping
// that matches.
func (b *Bridge) mapTopic(dir Direction, name string) (string, bool) {
	for _, m := range b.cfg.Topics {
		if dir == Out && m.Direction.out() && topic.Matches(m.localFilter(), name) {
			return rewrite(name, m.LocalPrefix, m.RemotePrefix)
		}
		if dir == In && m.Direction.in() && topic.Matches(m.remoteFilter(), name) {
			return rewrite(name, m.RemotePrefix, m.LocalPrefix)
		}
	}
	return "", false
}

// entry is one message held by a pipe.
type entry struct {
	seq    uint64
	src    *client.Message // as received: acknowledged when forwarded
	msg    *client.Message // to publish
	qos    byte
	retain bool
	expiry uint32 // Message Expiry Interval when received
	size   int
	at     time.Time // when received
}

// prepare adapts e.msg to t's limits and counts down the Message Expiry
// Interval; it returns false when the message expired.
func (e *entry) prepare(t *target) bool {
	e.msg.QoS = min(e.qos, byte(t.maxQoS.Load()))
	e.msg.Retain = e.retain && t.retain.Load()
	if e.expiry > 0 {
		left := int64(e.expiry) - int64(time.Since(e.at)/time.Second)
		if left <= 0 {
			return false
		}
		e.msg.MessageExpiry = uint32(left)
	}
	return true
}

// pipe forwards the messages of one direction: accept queues them, the
// forward goroutine publishes them in order to the destination while it is
// connected, and the complete goroutine waits for each publish to finish,
// in order, and acknowledges the source message. A publish that fails
// without a verdict from the destination (connection or session lost,
// destination replaced) is queued again, in its original place.
type pipe struct {
	b    *Bridge
	dir  Direction
	dest func() *target
	wake chan struct{}
	done chan pending

	forwarded, dropped atomic.Uint64

	mu       sync.Mutex
	q        []*entry
	seq      uint64
	qBytes   int64
	inflight int
	failures int       // consecutive transient refusals
	pause    time.Time // no publishing before
}

type pending struct {
	e   *entry
	tok *client.Token
}

func newPipe(b *Bridge, dir Direction, dest func() *target) *pipe {
	return &pipe{b: b, dir: dir, dest: dest, wake: make(chan struct{}, 1), done: make(chan pending, 256)}
}

// reset forgets every message (Run is not running).
func (p *pipe) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.q, p.qBytes, p.inflight, p.failures, p.pause = nil, 0, 0, 0, time.Time{}
	for {
		select {
		case <-p.done:
		default:
			return
		}
	}
}

func (p *pipe) depth() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.q) + p.inflight
}

func (p *pipe) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// push queues a new message. QoS 0 messages beyond MaxQueued or
// MaxQueuedBytes are dropped; QoS 1/2 messages are bounded by the Receive
// Maximum the bridge announces.
func (p *pipe) push(e *entry) {
	p.mu.Lock()
	if e.qos == 0 && (len(p.q) >= p.b.cfg.MaxQueued || p.qBytes+int64(e.size) > p.b.cfg.MaxQueuedBytes) {
		p.mu.Unlock()
		p.dropped.Add(1)
		return
	}
	p.seq++
	e.seq = p.seq
	p.q = append(p.q, e)
	p.qBytes += int64(e.size)
	p.mu.Unlock()
	p.signal()
}

// requeue puts e back in sequence order.
func (p *pipe) requeue(e *entry) {
	p.mu.Lock()
	i := len(p.q)
	for i > 0 && p.q[i-1].seq > e.seq {
		i--
	}
	p.q = append(p.q, nil)
	copy(p.q[i+1:], p.q[i:])
	p.q[i] = e
	p.qBytes += int64(e.size)
	p.mu.Unlock()
	p.signal()
}

// forward publishes queued messages while the destination is connected.
func (p *pipe) forward(ctx context.Context) {
	for {
		changed := p.b.changed()
		p.mu.Lock()
		n, pause := len(p.q), p.pause
		p.mu.Unlock()
		if n == 0 {
			select {
			case <-p.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		if d := time.Until(pause); d > 0 {
			if !sleepCtx(ctx, d) {
				return
			}
			continue
		}
		t := p.dest()
		if t == nil || !t.c.IsConnected() {
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
			continue
		}
		p.mu.Lock()
		e := p.q[0]
		p.q[0] = nil
		p.q = p.q[1:]
		p.qBytes -= int64(e.size)
		p.inflight++
		p.mu.Unlock()
		var tok *client.Token
		if e.prepare(t) {
			tok = t.c.PublishAsync(t.ctx, e.msg)
		} else {
			tok = client.CompletedToken(client.ErrMessageExpired)
		}
		select {
		case p.done <- pending{e, tok}:
		case <-ctx.Done():
			return
		}
	}
}

// complete waits for each publish, in order, and settles it.
func (p *pipe) complete(ctx context.Context) {
	for {
		var pd pending
		select {
		case pd = <-p.done:
		case <-ctx.Done():
			return
		}
		select {
		case <-pd.tok.Done():
		case <-ctx.Done():
			return
		}
		p.settle(ctx, pd)
	}
}

// transient reports whether a refusal may succeed later.
func transient(c packet.ReasonCode) bool {
	return c == packet.QuotaExceeded || c == packet.ServerBusy
}

func (p *pipe) settle(ctx context.Context, pd pending) {
	e, err := pd.e, pd.tok.Err()
	p.mu.Lock()
	p.inflight--
	if err == nil {
		p.failures = 0
	}
	p.mu.Unlock()
	var re *client.ReasonError
	switch {
	case err == nil:
		p.forwarded.Add(1)
		e.src.Ack()
	case ctx.Err() != nil:
		// Stopping: the source keeps the message and sends it again.
	case errors.As(err, &re) && transient(re.Code) && !re.Local:
		p.mu.Lock()
		p.failures++
		p.pause = time.Now().Add(p.b.cfg.Backoff.Delay(p.failures))
		p.mu.Unlock()
		p.b.setErr(fmt.Errorf("%s %q: %w", p.dir, e.msg.Topic, err))
		p.requeue(e)
	case errors.As(err, &re), errors.Is(err, client.ErrMessageExpired):
		p.dropped.Add(1)
		p.b.setErr(fmt.Errorf("%s %q: %w", p.dir, e.msg.Topic, err))
		p.b.log.Warn("bridge dropped a message", "direction", p.dir, "topic", e.msg.Topic, "err", err)
		e.src.Ack()
	case e.qos == 0:
		p.dropped.Add(1)
	default:
		// Connection or session lost, destination replaced: publish again.
		p.requeue(e)
	}
}
