package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("broker: server closed")

// Broker is an MQTT 5.0 and 3.1.1 broker. Create it with New, feed it
// connections with Serve, ListenAndServe or ServeConn, and stop it with
// Shutdown. The host program can publish and subscribe in-process with
// Publish and Subscribe.
type Broker struct {
	cfg         Config // as given to New, defaults applied; see live
	live        atomic.Pointer[Config]
	reconfMu    sync.Mutex                // serialises Reconfigure
	rates       atomic.Pointer[rateEpoch] // nil until Reconfigure changes RateLimits
	log         *slog.Logger
	topicLimits topic.Limits
	now         func() time.Time
	started     time.Time

	router   router
	recvAuth ReceiveAuthorizer // Config.Authorizer when it checks deliveries
	stats    stats
	persist  *persister // nil without a store

	changeOnly *changeOnly // nil when ChangeOnly is off
	hooks      hookRunner
	ipLimit    *ipLimiter // Limits.MaxConnectionsPerIP
	parker     parker     // idle plain TCP connections (park_linux.go)

	sessMu   sync.Mutex
	sessions map[string]*session
	sessSeq  atomic.Uint64

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]netip.Addr // the address counted by ipLimit, if any
	closed    bool
	ready     chan struct{}
	readyOnce sync.Once
	quit      chan struct{}

	wg     sync.WaitGroup // connection, writer and background goroutines
	connWG sync.WaitGroup // serve goroutines only
}

// New returns a broker with cfg; zero fields take their defaults.
func New(cfg Config) *Broker {
	cfg = cfg.withDefaults()
	b := &Broker{
		cfg:         cfg,
		persist:     newPersister(cfg),
		log:         cfg.Logger,
		topicLimits: topic.Limits{MaxLength: cfg.Limits.MaxTopicLength, MaxLevels: cfg.Limits.MaxTopicLevels},
		now:         time.Now,
		sessions:    make(map[string]*session),
		listeners:   make(map[net.Listener]struct{}),
		conns:       make(map[*conn]netip.Addr),
		ipLimit:     newIPLimiter(cfg.Limits.MaxConnectionsPerIP),
		ready:       make(chan struct{}),
		quit:        make(chan struct{}),
	}
	b.started = b.now()
	live := cfg
	b.live.Store(&live)
	b.hooks.b = b
	b.recvAuth, _ = cfg.Authorizer.(ReceiveAuthorizer)
	b.changeOnly = b.newChangeOnly()
	for i, h := range cfg.Hooks {
		if err := b.AddHook(h); err != nil {
			panic(fmt.Sprintf("broker: Config.Hooks[%d]: %v", i, err))
		}
	}
	if cfg.SysInterval > 0 {
		b.wg.Add(1)
		go b.sysLoop()
	}
	return b
}

// Ready is closed once the broker accepts connections on a listener.
func (b *Broker) Ready() <-chan struct{} { return b.ready }

// Addrs returns the addresses of the listeners being served.
func (b *Broker) Addrs() []net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]net.Addr, 0, len(b.listeners))
	for l := range b.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// ListenAndServe listens on the TCP address addr and serves it.
func (b *Broker) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return b.Serve(l)
}

// Serve accepts connections on l until Shutdown, then returns
// ErrServerClosed. Temporary accept errors are retried with back-off.
func (b *Broker) Serve(l net.Listener) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	b.listeners[l] = struct{}{}
	b.mu.Unlock()
	b.readyOnce.Do(func() { close(b.ready) })
	defer func() {
		b.mu.Lock()
		delete(b.listeners, l)
		b.mu.Unlock()
		l.Close()
	}()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-b.quit:
				return ErrServerClosed
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				b.log.Warn("accept error; retrying", "err", err, "delay", delay)
				select {
				case <-time.After(delay):
				case <-b.quit:
					return ErrServerClosed
				}
				continue
			}
			return err
		}
		delay = 0
		if !b.startConn(nc) {
			b.closeRefused(nc)
		}
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// ServeConn serves one already established connection (a net.Pipe end, a
// connection from another listener, ...) and returns when it ends.
func (b *Broker) ServeConn(nc net.Conn) {
	c := b.register(nc, false)
	if c == nil {
		nc.Close()
		return
	}
	defer b.connWG.Done()
	defer b.unregister(c)
	c.serve(context.Background())
}

// InProcessConn returns the client end of an in-memory connection served by
// the broker, for tests and embedding programs.
func (b *Broker) InProcessConn() net.Conn {
	client, server := net.Pipe()
	if !b.startConn(server) {
		server.Close()
	}
	return client
}

// TrustedConn is InProcessConn for the broker's own components (bridges):
// the connection is neither authenticated nor authorized, since the
// embedding program vouches for it. Never hand it to untrusted code.
func (b *Broker) TrustedConn() net.Conn {
	client, server := net.Pipe()
	if !b.startConnTrusted(server, true) {
		server.Close()
	}
	return client
}

func (b *Broker) startConn(nc net.Conn) bool { return b.startConnTrusted(nc, false) }

func (b *Broker) startConnTrusted(nc net.Conn, trusted bool) bool {
	c := b.register(nc, trusted)
	if c == nil {
		return false
	}
	go c.run() // unregisters and calls connWG.Done when it ends
	return true
}

// register admits a new connection, or returns nil when the broker is
// closed or the connection's address has Limits.MaxConnectionsPerIP
// connections already; the caller then closes it, before anything is read
// (no CONNACK can be sent before CONNECT).
func (b *Broker) register(nc net.Conn, trusted bool) *conn {
	key, counted, ok := b.admitIP(nc, trusted)
	if !ok {
		return nil
	}
	if !counted {
		key = netip.Addr{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		if counted {
			b.ipLimit.release(key)
		}
		return nil
	}
	c := b.newConn(nc)
	c.trusted = trusted
	b.conns[c] = key
	b.connWG.Add(1)
	b.stats.connected()
	return c
}

func (b *Broker) unregister(c *conn) {
	b.mu.Lock()
	key := b.conns[c]
	delete(b.conns, c)
	b.mu.Unlock()
	if key.IsValid() {
		b.ipLimit.release(key)
	}
	b.stats.connections.Add(-1)
}

// Shutdown stops the listeners, sends DISCONNECT Server Shutting Down
// (0x8B) to v5 clients, closes every connection and waits for them to end
// or for ctx to be done, whichever is first.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.quit)
	}
	for l := range b.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, c := range conns {
		c.shutdown()
	}
	done := make(chan struct{})
	var storeErr error
	go func() {
		b.connWG.Wait()
		b.stopSessions()
		b.hooks.stop()
		b.wg.Wait()
		storeErr = b.closeStore(ctx)
		close(done)
	}()
	select {
	case <-done:
		return storeErr
	case <-ctx.Done():
		for _, c := range conns {
			c.nc.Close()
		}
		return ctx.Err()
	}
}

// shutdown sends DISCONNECT 0x8B (v5) and closes the connection.
func (c *conn) shutdown() {
	s := c.sessionOrNil()
	if s == nil {
		c.nc.Close()
		return
	}
	s.mu.Lock()
	c.disconnectLocked(packet.ServerShuttingDown, "server shutting down")
	s.mu.Unlock()
	// The read loop ends when the writer closes the socket; make sure it
	// does even if the client stops reading.
	time.AfterFunc(c.b.conf().WriteTimeout, func() { c.nc.Close() })
}

// sessionOrNil returns the attached session, synchronising with the
// handshake that sets it.
func (c *conn) sessionOrNil() *session {
	c.b.sessMu.Lock()
	defer c.b.sessMu.Unlock()
	return c.sess
}

// stopSessions cancels every session timer after the connections ended.
func (b *Broker) stopSessions() {
	b.sessMu.Lock()
	defer b.sessMu.Unlock()
	for _, s := range b.sessions {
		s.mu.Lock()
		s.stopTimersLocked()
		s.mu.Unlock()
	}
}

// newMessage builds the routed message from a decoded PUBLISH whose memory
// belongs to the read buffer: topic, payload and properties are copied into
// one allocation owned by the message.
func (b *Broker) newMessage(p *packet.Publish, topicName, clientID string) *Message {
	m := &Message{QoS: p.QoS, Retain: p.Retain, ClientID: clientID, Created: b.now()}
	props := keepMessageProps(&p.Props)
	n := len(topicName) + len(p.Payload) + len(props.ContentType) + len(props.ResponseTopic) + len(props.CorrelationData)
	for _, u := range props.User {
		n += len(u.Key) + len(u.Value)
	}
	buf := make([]byte, 0, n)
	str := func(s string) string {
		if s == "" {
			return ""
		}
		start := len(buf)
		buf = append(buf, s...)
		return unsafeString(buf[start:])
	}
	m.Topic = str(topicName)
	start := len(buf)
	buf = append(buf, p.Payload...)
	m.Payload = buf[start:len(buf):len(buf)]
	props.ContentType = str(props.ContentType)
	props.ResponseTopic = str(props.ResponseTopic)
	if props.CorrelationData != nil {
		start := len(buf)
		buf = append(buf, props.CorrelationData...)
		props.CorrelationData = buf[start:len(buf):len(buf)]
	}
	if len(props.User) > 0 {
		us := make([]packet.UserProperty, len(props.User))
		for i, u := range props.User {
			us[i] = packet.UserProperty{Key: str(u.Key), Value: str(u.Value)}
		}
		props.User = us
	}
	m.Props = props
	return m
}

// Publish routes m as if a client had published it, from the host program.
// m must not be modified afterwards.
func (b *Broker) Publish(ctx context.Context, m *Message) error {
	if err := b.topicLimits.ValidateName(m.Topic); err != nil {
		return &packet.Error{Code: packet.TopicNameInvalid, Type: packet.PUBLISH, Reason: err.Error()}
	}
	if m.QoS > 2 {
		return &packet.Error{Code: packet.QoSNotSupported, Type: packet.PUBLISH, Reason: "QoS above 2"}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.Created.IsZero() {
		m.Created = b.now()
	}
	sc := scratchPool.Get().(*routeScratch)
	b.publish(m, nil, sc)
	if len(sc.ops) > 0 {
		// Durable before Publish returns, as for a network publisher.
		done := make(chan error, 1)
		b.submitPublication(sc, func(err error) { done <- err })
		scratchPool.Put(sc)
		return <-done
	}
	scratchPool.Put(sc)
	return nil
}

// Subscribe subscribes the host program to filter at qos: matching
// messages are passed to handler, one at a time, on a goroutine of the
// broker's. The returned function removes the subscription.
func (b *Broker) Subscribe(filter string, qos byte, handler func(*Message)) (unsubscribe func(), err error) {
	if err := b.topicLimits.ValidateFilter(filter); err != nil {
		return nil, &packet.Error{Code: packet.TopicFilterInvalid, Type: packet.SUBSCRIBE, Reason: err.Error()}
	}
	if qos > 2 {
		return nil, &packet.Error{Code: packet.QoSNotSupported, Type: packet.SUBSCRIBE, Reason: "QoS above 2"}
	}
	s := b.newSession("")
	s.handler = handler
	s.online.Store(true)
	if _, err := b.router.subscribe(filter, s, subOpts{qos: qos}); err != nil {
		return nil, err
	}
	if _, _, shared, _ := topic.ParseShared(filter); !shared {
		b.sendRetained(s, filter, subOpts{qos: qos})
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			b.router.unsubscribe(filter, s)
			s.mu.Lock()
			s.ended = true
			s.mu.Unlock()
		})
	}, nil
}

func (b *Broker) newSession(id string) *session {
	s := &session{b: b, id: id, seq: b.sessSeq.Add(1)}
	if co := b.changeOnly; co != nil {
		s.unchangedExempt = co.exempt(id)
	}
	return s
}

// assignClientID returns a client identifier no session uses
// [MQTT-3.2.2-16]. The caller holds sessMu.
func (b *Broker) assignClientIDLocked() string {
	for {
		var r [12]byte
		rand.Read(r[:])
		id := "auto-" + hex.EncodeToString(r[:])
		if _, used := b.sessions[id]; !used {
			return id
		}
	}
}

// Stats returns a snapshot of the broker's counters.
func (b *Broker) Stats() Stats {
	st := Stats{
		Connections:      b.stats.connections.Load(),
		ConnectionsTotal: b.stats.connectionsTotal.Load(),
		MaxConnections:   b.stats.maxConnections.Load(),
		Subscriptions:    int64(b.router.tree.Len()),
		Retained:         int64(b.router.retained.Len()),
		MessagesReceived: b.stats.msgsReceived.Load(),
		BytesReceived:    b.stats.bytesReceived.Load(),
		BytesSent:        b.stats.bytesSent.Load(),
		PublishReceived:  b.stats.publishReceived.Load(),
		Dropped:          make(map[string]int64, numDropReasons),

		Redirects:            b.stats.redirects.Load(),
		ChangeOnlySuppressed: b.stats.unchanged.Load(),
		EchoSuppressed:       b.stats.echoes.Load(),
		HookEventsDropped:    b.stats.hookDrops.Load(),
		RateLimited:          b.stats.rateLimited.Load(),
		RateLimitDisconnects: b.stats.rateDisconnects.Load(),
		RefusedPerIP:         b.stats.refusedPerIP.Load(),
	}
	for i := range b.stats.drops {
		st.Dropped[dropNames[i]] = b.stats.drops[i].Load()
	}
	b.stats.fillSent(&st)
	b.sessMu.Lock()
	st.Sessions = int64(len(b.sessions))
	b.sessMu.Unlock()
	return st
}
