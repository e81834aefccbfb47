// Package mqttquic carries MQTT over QUIC: single-stream MQTT (ALPN
// "mqtt") and multistream MQTT with flow headers (ALPN "MQTT-next").
//
// Listen and Dial return net.Listener and net.Conn values whose concrete
// type is *Conn: the broker and the client above them see one MQTT byte
// stream whatever the mode.
//
// In single-stream mode the connection is the first bidirectional stream.
// In multistream mode the connection multiplexes a control flow (the first
// bidirectional stream, opened by the client) and data flows (further
// bidirectional streams, each starting with a flow header) and, when both
// sides enable them, QUIC datagrams for QoS 0 PUBLISH packets. Inbound
// packets from every stream are queued whole, in arrival order, for Read;
// Write splits its bytes into packets and sends each on the stream its
// type, packet identifier, topic and the delivery strategy select. See
// docs/transports.md for the wire format.
package mqttquic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// ALPN protocol identifiers.
const (
	ALPNSingle = "mqtt"      // one bidirectional stream carries MQTT
	ALPNMulti  = "MQTT-next" // control flow plus data flows with flow headers
)

// Delivery is the server's choice of stream for the PUBLISH packets it
// sends to a multistream client.
type Delivery string

// Server delivery strategies.
const (
	// DeliveryControlOnly sends every PUBLISH on the control flow.
	DeliveryControlOnly Delivery = "control_only"
	// DeliveryPerTopic sends the PUBLISH packets of one topic on one
	// server-initiated data flow (an LRU of TopicStreams flows, each
	// closed after TopicStreamIdle without use).
	DeliveryPerTopic Delivery = "per_topic"
	// DeliveryPerPublish opens a server-initiated data flow per PUBLISH.
	DeliveryPerPublish Delivery = "per_publish"
)

// Strategy is the client's choice of stream for the PUBLISH packets it
// sends.
type Strategy string

// Client strategies.
const (
	// StrategyControlOnly sends everything on the control flow.
	StrategyControlOnly Strategy = "control_only"
	// StrategyDataPerPublish opens a client data flow per PUBLISH.
	StrategyDataPerPublish Strategy = "data_per_publish"
	// StrategyDataPerTopic sends the PUBLISH packets of one topic on one
	// client data flow (an LRU of TopicStreams flows). A SUBSCRIBE goes on
	// the flow of its first topic filter, so the server delivers the
	// matching messages on that flow.
	StrategyDataPerTopic Strategy = "data_per_topic"
)

// Defaults of ServerConfig and DialConfig.
const (
	DefaultMaxFlows        = 256
	DefaultTopicStreams    = 100
	DefaultTopicStreamIdle = 300 * time.Second
	DefaultMaxPacketSize   = 1 << 20
	DefaultQueuePackets    = 1024
	DefaultQueueBytes      = 4 << 20
	DefaultOpenTimeout     = 10 * time.Second
	DefaultIdleTimeout     = 120 * time.Second
	DefaultClientKeepAlive = 30 * time.Second
	DefaultLinger          = 2 * time.Second
)

// ServerConfig configures a QUIC listener. The zero value is a working
// configuration: every zero field takes the default documented beside it.
type ServerConfig struct {
	// Delivery is the strategy for PUBLISH packets sent to multistream
	// clients. Default DeliveryPerTopic. A PUBLISH matching a subscription
	// the client made on one of its data flows goes on that flow instead.
	Delivery Delivery
	// FlowFlags are the flags of the server's data flow headers. Default
	// zero: err_tolerance 0, no persistence.
	FlowFlags FlowFlags
	// MaxFlows bounds the data flows a client may have open (plus detached
	// flow states kept for persistent subscriptions). Default 256; the
	// stream beyond is reset with FlowRefused.
	MaxFlows int
	// TopicStreams is the size of the per_topic LRU. Default 100.
	TopicStreams int
	// TopicStreamIdle closes a per_topic flow unused for this long.
	// Default 300 s.
	TopicStreamIdle time.Duration
	// MaxPacketSize bounds one inbound MQTT packet (header included) in
	// multistream mode, where packets are reassembled before they are
	// queued. Default 1 MiB; set it to at least the broker's maximum
	// packet size.
	MaxPacketSize int
	// QueuePackets and QueueBytes bound the inbound packet queue of a
	// multistream connection; when it is full the stream readers stop and
	// QUIC flow control pushes back on the peer. Defaults 1024 packets and
	// 4 MiB (raised to MaxPacketSize when smaller).
	QueuePackets int
	QueueBytes   int
	// Datagrams enables QUIC datagrams (RFC 9221): QoS 0 PUBLISH packets
	// are sent as datagrams to multistream clients that enabled them too.
	// Default false.
	Datagrams bool
	// OpenTimeout bounds the wait for a new connection's first stream and
	// for a data flow's header. Default 10 s.
	OpenTimeout time.Duration
	// IdleTimeout is the QUIC idle timeout. Default 120 s.
	IdleTimeout time.Duration
	// KeepAlivePeriod makes the server send QUIC keep-alives. Default 0
	// (the client keeps the connection alive).
	KeepAlivePeriod time.Duration
	// Linger is how long Close waits for the peer to finish the control
	// stream, so that what was written is delivered before the connection
	// closes. Default 2 s; negative closes at once.
	Linger time.Duration
	// QUIC, when set, is the base quic.Config (copied); the fields above
	// override its idle timeout, keep-alive, stream limits and datagrams.
	QUIC *quic.Config
}

// DialConfig configures a QUIC client connection. The zero value is a
// working configuration.
type DialConfig struct {
	// Single offers only ALPN "mqtt" (single-stream mode). By default the
	// client offers "MQTT-next" then "mqtt" and the server picks.
	Single bool
	// Strategy is the client's strategy for its PUBLISH packets in
	// multistream mode. Default StrategyControlOnly.
	Strategy Strategy
	// FlowFlags and FlowExpire (seconds) fill the client's data flow
	// headers. Defaults zero.
	FlowFlags  FlowFlags
	FlowExpire uint64
	// ControlHeader, when set, starts the control stream with the control
	// flow header 11 00 <flags>. Its err_tolerance also applies to errors
	// on streams whose header could not be read.
	ControlHeader *FlowFlags
	// RefuseServerFlows resets server-initiated data flows with
	// ServerPushNotWelcome (the server then uses the control flow).
	RefuseServerFlows bool
	// MaxFlows, TopicStreams, TopicStreamIdle, MaxPacketSize, QueuePackets,
	// QueueBytes, Datagrams, OpenTimeout and Linger are as in ServerConfig.
	MaxFlows        int
	TopicStreams    int
	TopicStreamIdle time.Duration
	MaxPacketSize   int
	QueuePackets    int
	QueueBytes      int
	Datagrams       bool
	OpenTimeout     time.Duration
	Linger          time.Duration
	// IdleTimeout is the QUIC idle timeout. Default 120 s.
	IdleTimeout time.Duration
	// KeepAlivePeriod is the QUIC keep-alive period. Default 30 s.
	KeepAlivePeriod time.Duration
	// QUIC, when set, is the base quic.Config (copied).
	QUIC *quic.Config
}

// options is the configuration one Conn runs with.
type options struct {
	server            bool
	delivery          Delivery
	strategy          Strategy
	flowFlags         FlowFlags
	flowExpire        uint64
	controlHeader     *FlowFlags
	refuseServerFlows bool
	maxFlows          int
	topicStreams      int
	topicIdle         time.Duration
	maxPacket         int
	queuePackets      int
	queueBytes        int
	openTimeout       time.Duration
	linger            time.Duration
}

func orInt(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

func orDur(v, d time.Duration) time.Duration {
	if v <= 0 {
		return d
	}
	return v
}

func (o *options) fill() {
	o.maxFlows = orInt(o.maxFlows, DefaultMaxFlows)
	o.topicStreams = orInt(o.topicStreams, DefaultTopicStreams)
	o.topicIdle = orDur(o.topicIdle, DefaultTopicStreamIdle)
	o.maxPacket = orInt(o.maxPacket, DefaultMaxPacketSize)
	o.queuePackets = orInt(o.queuePackets, DefaultQueuePackets)
	o.queueBytes = max(orInt(o.queueBytes, DefaultQueueBytes), o.maxPacket)
	o.openTimeout = orDur(o.openTimeout, DefaultOpenTimeout)
	if o.linger == 0 {
		o.linger = DefaultLinger
	}
	if o.delivery == "" {
		o.delivery = DeliveryPerTopic
	}
	if o.strategy == "" {
		o.strategy = StrategyControlOnly
	}
}

func (c *ServerConfig) options() (options, error) {
	o := options{
		server: true, delivery: c.Delivery, flowFlags: c.FlowFlags,
		maxFlows: c.MaxFlows, topicStreams: c.TopicStreams, topicIdle: c.TopicStreamIdle,
		maxPacket: c.MaxPacketSize, queuePackets: c.QueuePackets, queueBytes: c.QueueBytes,
		openTimeout: c.OpenTimeout, linger: c.Linger,
	}
	switch o.delivery {
	case "", DeliveryControlOnly, DeliveryPerTopic, DeliveryPerPublish:
	default:
		return o, fmt.Errorf("mqttquic: unknown delivery strategy %q", c.Delivery)
	}
	o.fill()
	return o, nil
}

func (c *DialConfig) options() (options, error) {
	o := options{
		strategy: c.Strategy, flowFlags: c.FlowFlags, flowExpire: c.FlowExpire,
		controlHeader: c.ControlHeader, refuseServerFlows: c.RefuseServerFlows,
		maxFlows: c.MaxFlows, topicStreams: c.TopicStreams, topicIdle: c.TopicStreamIdle,
		maxPacket: c.MaxPacketSize, queuePackets: c.QueuePackets, queueBytes: c.QueueBytes,
		openTimeout: c.OpenTimeout, linger: c.Linger,
	}
	switch o.strategy {
	case "", StrategyControlOnly, StrategyDataPerPublish, StrategyDataPerTopic:
	default:
		return o, fmt.Errorf("mqttquic: unknown client strategy %q", c.Strategy)
	}
	o.fill()
	return o, nil
}

// quicConfig builds the quic.Config of one side.
func quicConfig(base *quic.Config, o *options, datagrams bool, idle, keepAlive time.Duration) *quic.Config {
	var qc *quic.Config
	if base != nil {
		qc = base.Clone()
	} else {
		qc = &quic.Config{}
	}
	qc.MaxIdleTimeout = orDur(idle, DefaultIdleTimeout)
	if keepAlive > 0 {
		qc.KeepAlivePeriod = keepAlive
	}
	// Room for the control stream and some slack above MaxFlows, so that
	// the flow beyond the limit is refused with FlowRefused by this
	// package rather than stalled by QUIC stream credit.
	qc.MaxIncomingStreams = int64(o.maxFlows) + 16
	qc.MaxIncomingUniStreams = -1
	qc.EnableDatagrams = datagrams
	if qc.HandshakeIdleTimeout == 0 {
		qc.HandshakeIdleTimeout = o.openTimeout
	}
	return qc
}

// Listen listens for QUIC connections on addr (host:port, UDP). tlsConf is
// required; when its NextProtos is empty the listener offers "MQTT-next"
// and "mqtt" (in that order of preference). Accepted connections are
// returned once the client has opened its first stream.
func Listen(ctx context.Context, addr string, tlsConf *tls.Config, cfg ServerConfig) (net.Listener, error) {
	if tlsConf == nil {
		return nil, errors.New("mqttquic: a QUIC listener needs a TLS configuration")
	}
	o, err := cfg.options()
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	tc := tlsConf.Clone()
	if len(tc.NextProtos) == 0 {
		tc.NextProtos = []string{ALPNMulti, ALPNSingle}
	}
	tr := &quic.Transport{Conn: pc}
	ql, err := tr.Listen(tc, quicConfig(cfg.QUIC, &o, cfg.Datagrams, cfg.IdleTimeout, cfg.KeepAlivePeriod))
	if err != nil {
		tr.Close()
		pc.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{
		ql: ql, tr: tr, pc: pc, opts: o,
		ready: make(chan *Conn), done: make(chan struct{}),
		ctx: ctx, cancel: cancel,
		setups: make(chan struct{}, 256),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// listener is the net.Listener of Listen.
type listener struct {
	ql   *quic.Listener
	tr   *quic.Transport
	pc   net.PacketConn
	opts options

	ready  chan *Conn
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	setups chan struct{} // bounds connections waiting for their first stream
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	live   int // accepted connections not yet closed
	freed  bool
}

func (l *listener) acceptLoop() {
	defer l.wg.Done()
	for {
		qc, err := l.ql.Accept(l.ctx)
		if err != nil {
			return
		}
		select {
		case l.setups <- struct{}{}:
		case <-l.done:
			qc.CloseWithError(quic.ApplicationErrorCode(ConnNoError), "")
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.setups }()
			l.setup(qc)
		}()
	}
}

// setup waits for the client's first stream and hands the connection to
// Accept.
func (l *listener) setup(qc *quic.Conn) {
	if !l.acquire() {
		qc.CloseWithError(quic.ApplicationErrorCode(ConnNoError), "")
		return
	}
	c, err := newServerConn(l.ctx, qc, &l.opts, l.release)
	if err != nil {
		l.release()
		return
	}
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *listener) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.live++
	return true
}

// release is called when an accepted connection has closed; the UDP
// socket is closed with the last one after the listener is.
func (l *listener) release() {
	l.mu.Lock()
	l.live--
	free := l.closed && l.live == 0 && !l.freed
	if free {
		l.freed = true
	}
	l.mu.Unlock()
	if free {
		l.free()
	}
}

func (l *listener) free() {
	l.tr.Close()
	l.pc.Close()
}

// Accept waits for the next connection. It returns net.ErrClosed after
// Close.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting. Connections already accepted stay open; the
// socket is released when the last of them closes.
func (l *listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()
	l.cancel()
	l.ql.Close()
	l.wg.Wait()
	l.mu.Lock()
	free := l.live == 0 && !l.freed
	if free {
		l.freed = true
	}
	l.mu.Unlock()
	if free {
		l.free()
	}
	return nil
}

// Addr returns the UDP address the listener is bound to.
func (l *listener) Addr() net.Addr { return l.pc.LocalAddr() }

// Dial connects to addr (host:port, UDP). When tlsConf.NextProtos is empty
// the client offers "MQTT-next" then "mqtt" ("mqtt" only with
// cfg.Single). The connection dials through its own UDP socket, which
// Close releases; Migrate moves it to a new one.
func Dial(ctx context.Context, addr string, tlsConf *tls.Config, cfg DialConfig) (net.Conn, error) {
	return DialConn(ctx, addr, tlsConf, cfg)
}

// DialConn is Dial returning the concrete *Conn.
func DialConn(ctx context.Context, addr string, tlsConf *tls.Config, cfg DialConfig) (*Conn, error) {
	o, err := cfg.options()
	if err != nil {
		return nil, err
	}
	raddr, err := resolveUDP(ctx, addr)
	if err != nil {
		return nil, err
	}
	udp, err := listenUDPFor(raddr)
	if err != nil {
		return nil, err
	}
	tc := tlsConf.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	if len(tc.NextProtos) == 0 {
		if cfg.Single {
			tc.NextProtos = []string{ALPNSingle}
		} else {
			tc.NextProtos = []string{ALPNMulti, ALPNSingle}
		}
	}
	tr := &quic.Transport{Conn: udp}
	qconf := quicConfig(cfg.QUIC, &o, cfg.Datagrams, cfg.IdleTimeout, orDur(cfg.KeepAlivePeriod, DefaultClientKeepAlive))
	qc, err := tr.Dial(ctx, raddr, tc, qconf)
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, err
	}
	c, err := newClientConn(ctx, qc, &o, tr, udp, raddr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func resolveUDP(ctx context.Context, addr string) (*net.UDPAddr, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("mqttquic: no address for %q", host)
	}
	p, err := net.DefaultResolver.LookupPort(ctx, "udp", port)
	if err != nil {
		return nil, err
	}
	ip := ips[0]
	for _, a := range ips {
		if a.Is4() || a.Is4In6() {
			ip = a
			break
		}
	}
	return &net.UDPAddr{IP: ip.Unmap().AsSlice(), Port: p, Zone: ip.Zone()}, nil
}

// listenUDPFor opens a UDP socket on an ephemeral port of the family of
// raddr.
func listenUDPFor(raddr *net.UDPAddr) (*net.UDPConn, error) {
	if raddr.IP.To4() != nil {
		return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	}
	return net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified})
}
