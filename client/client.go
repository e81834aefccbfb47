package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// Interface is the part of *Client that application code usually needs. It
// is implemented by *Client and by client/mock.Client, so code written
// against it can be unit-tested without a broker.
type Interface interface {
	Connect(ctx context.Context) (*ConnectInfo, error)
	Publish(ctx context.Context, m *Message) error
	PublishAsync(ctx context.Context, m *Message) *Token
	Subscribe(ctx context.Context, subs []Subscription, h Handler, opts ...SubscribeOption) (*Suback, error)
	Unsubscribe(ctx context.Context, filters ...string) (*Unsuback, error)
	Disconnect(ctx context.Context, reason packet.ReasonCode, sessionExpiry int64) error
}

var _ Interface = (*Client)(nil)

// Subscription is one topic filter with its subscription options: Maximum
// QoS, and in v5 No Local, Retain As Published and Retain Handling
// (0 send retained messages, 1 only for a new subscription, 2 never).
type Subscription = packet.Subscription

// SubscribeOptions are the per-SUBSCRIBE settings of v5.
type SubscribeOptions struct {
	// SubscriptionID (1..268,435,455) is returned by the server with every
	// message delivered through these subscriptions (Message.SubscriptionIDs).
	SubscriptionID uint32
	User           []packet.UserProperty
}

// SubscribeOption sets a SubscribeOptions field.
type SubscribeOption func(*SubscribeOptions)

// WithSubscriptionID sets the Subscription Identifier (v5).
func WithSubscriptionID(id uint32) SubscribeOption {
	return func(o *SubscribeOptions) { o.SubscriptionID = id }
}

// WithUserProperties adds User Properties to the SUBSCRIBE packet (v5).
func WithUserProperties(props ...packet.UserProperty) SubscribeOption {
	return func(o *SubscribeOptions) { o.User = append(o.User, props...) }
}

// Suback is the outcome of Subscribe: the packet identifier used and, per
// filter in order, the granted QoS (0, 1, 2) or a failure code (>= 0x80).
type Suback struct {
	PacketID     uint16
	Codes        []packet.ReasonCode
	ReasonString string
	User         []packet.UserProperty
}

// Unsuback is the outcome of Unsubscribe: per filter, Success or
// NoSubscriptionExisted, or a failure code (v5; all Success in 3.1.1).
type Unsuback struct {
	PacketID     uint16
	Codes        []packet.ReasonCode
	ReasonString string
	User         []packet.UserProperty
}

// ConnectInfo describes an established connection: the CONNACK and the
// values negotiated with the server.
type ConnectInfo struct {
	Server           string // URL connected to, after redirections
	Version          packet.Version
	SessionPresent   bool
	ClientID         string // the identifier in use (assigned or configured)
	AssignedClientID string
	KeepAlive        time.Duration // effective: Server Keep Alive if sent
	// Server limits (v5; defaults for 3.1.1).
	ReceiveMaximum       uint16
	MaximumPacketSize    uint32 // 0: no limit
	TopicAliasMaximum    uint16
	MaximumQoS           byte
	RetainAvailable      bool
	WildcardSubAvailable bool
	SubIDAvailable       bool
	SharedSubAvailable   bool
	ResponseInfo         string
	ReasonString         string
	User                 []packet.UserProperty
	Connack              *packet.Connack
}

// DisconnectInfo describes the end of a connection.
type DisconnectInfo struct {
	// Err says why: nil after Client.Disconnect, a *ReasonError for a
	// DISCONNECT from the server, an error wrapping ErrConnectionLost for
	// network failures (ErrKeepAliveTimeout for a silent server).
	Err error
	// Packet is the server's DISCONNECT, if it sent one.
	Packet *packet.Disconnect
	// Reconnecting reports whether the client will reconnect.
	Reconnecting bool
}

// Client states.
const (
	stateNew int32 = iota
	stateConnecting
	stateRunning
	stateClosed
)

// Client is an MQTT 5.0 / 3.1.1 client. Create it with New, call Connect
// once, then Publish, Subscribe and so on from any goroutine; Disconnect
// ends it. A Client is not reusable after Disconnect: create another one
// (with the same Store to resume the session). See the package
// documentation for the goroutine model and the bounds.
type Client struct {
	opts   Options
	log    *slog.Logger
	server *url.URL

	mu    sync.Mutex // guards state transitions in Connect and Disconnect
	state atomic.Int32

	// stop is cancelled by Disconnect; stopReq holds its arguments.
	stopCtx    context.Context
	stopCancel context.CancelFunc
	stopOnce   sync.Once
	stopReq    disconnectReq

	pubCh      chan *outMsg
	ctlCh      chan any
	ackCh      chan ackReq
	dispatchCh chan *Message
	// recordCh asks the engine to record a QoS 2 message in the store
	// before a handler gets it; the answer comes on recordReply. Both nil
	// when the store is the Client's own (no other Client can load it).
	recordCh    chan *inEntry
	recordReply chan bool
	// dispatchDone is closed when the dispatcher (the goroutine running
	// handlers) has ended; dispatchGID identifies it for Disconnect.
	dispatchDone    chan struct{}
	dispatchStarted bool // guarded by mu
	dispatchGID     atomic.Uint64
	done            chan struct{} // closed when the Client has ended
	err             error         // why it ended; written before done is closed
	wg              sync.WaitGroup

	router    router
	events    eventQueue
	connected atomic.Bool
	transport atomic.Pointer[conn] // the live connection, nil while offline

	// connInfo describes the first connection (Request reads it); rr is
	// the Requester behind Client.Request.
	connInfo atomic.Pointer[ConnectInfo]
	rr       defaultRequester

	// Counters, for tests and diagnostics.
	inflightMax atomic.Int64 // high-water mark of outbound QoS 1/2 in flight
	aliasHits   atomic.Int64 // publishes sent with an empty topic and an alias
	pingsSent   atomic.Int64
}

type disconnectReq struct {
	ctx    context.Context
	reason packet.ReasonCode
	expiry int64
	err    error // outcome, written by the engine before done is closed
}

// New returns a Client for opts. It validates the options and starts
// nothing: no goroutine runs until Connect succeeds.
func New(opts Options) (*Client, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	u, _ := parseServer(o.Server)
	c := &Client{
		opts:         o,
		log:          o.Logger,
		server:       u,
		pubCh:        make(chan *outMsg, 64),
		ctlCh:        make(chan any),
		ackCh:        make(chan ackReq, 16),
		dispatchCh:   make(chan *Message, o.DispatchQueue),
		dispatchDone: make(chan struct{}),
		done:         make(chan struct{}),
	}
	if opts.Store != nil {
		c.recordCh, c.recordReply = make(chan *inEntry), make(chan bool, 1)
	}
	c.stopCtx, c.stopCancel = context.WithCancel(context.Background())
	return c, nil
}

// Dial creates a Client for opts with Server set to url and connects it.
func Dial(ctx context.Context, url string, opts Options) (*Client, *ConnectInfo, error) {
	opts.Server = url
	c, err := New(opts)
	if err != nil {
		return nil, nil, err
	}
	info, err := c.Connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, info, nil
}

// Connect opens the first connection: dial, CONNECT, the AUTH exchange if
// any, CONNACK, following Use Another Server / Server Moved redirections
// (up to three). It makes one attempt (bounded by ctx and
// Options.ConnectTimeout) and returns its error; after a success the
// Client keeps the connection up, reconnecting as configured, until
// Disconnect.
func (c *Client) Connect(ctx context.Context) (*ConnectInfo, error) {
	c.mu.Lock()
	switch c.state.Load() {
	case stateConnecting, stateRunning:
		c.mu.Unlock()
		return nil, ErrAlreadyConnected
	case stateClosed:
		c.mu.Unlock()
		return nil, c.closedErr()
	}
	c.state.Store(stateConnecting)
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.stopCtx, cancel)()

	e := newEngine(c)
	if err := e.loadStore(); err != nil {
		c.state.Store(stateNew)
		return nil, err
	}
	hs, err := c.handshake(ctx, e.buildConnect(), c.server)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopCtx.Err() != nil { // Disconnect was called meanwhile
		if hs != nil {
			hs.rwc.Close()
		}
		c.state.Store(stateClosed)
		close(c.done)
		return nil, ErrClosed
	}
	if err != nil {
		c.state.Store(stateNew)
		return nil, err
	}
	c.state.Store(stateRunning)
	c.events.start()
	info := e.install(hs)
	c.connInfo.Store(info)
	c.dispatchStarted = true
	go c.dispatch()
	go e.run()
	return info, nil
}

// closedErr is the error of calls on an ended Client.
func (c *Client) closedErr() error {
	select {
	case <-c.done:
		if c.err != nil {
			return fmt.Errorf("%w: %w", ErrClosed, c.err)
		}
	default:
	}
	return ErrClosed
}

// usable reports why calls cannot be made, or nil.
func (c *Client) usable() error {
	switch c.state.Load() {
	case stateRunning:
		return nil
	case stateClosed:
		return c.closedErr()
	}
	return ErrNotConnected
}

// Done returns a channel that is closed when the Client has ended: after
// Disconnect, or when reconnection gave up (see Err).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the Client ended: nil while it runs and after a normal
// Disconnect, otherwise the error that stopped it (for example the last
// connection error once Backoff.MaxAttempts is reached).
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// IsConnected reports whether a network connection is established now.
func (c *Client) IsConnected() bool { return c.connected.Load() }

// Publish sends m and waits until its flow completes: for QoS 0 until the
// packet is handed to the network writer, for QoS 1 until PUBACK, for QoS 2
// until PUBCOMP. A failure reason code from the server is returned as a
// *ReasonError (errors.Is(err, packet.NotAuthorized) works); so are limits
// the server announced and the client enforces before sending: Maximum QoS
// (packet.QoSNotSupported), Retain Available (packet.RetainNotSupported),
// Maximum Packet Size (packet.PacketTooLarge) and Topic Alias Maximum
// (packet.TopicAliasInvalid).
//
// While disconnected, m is queued and sent on reconnection (ErrQueueFull
// when the queue is at its bound). If ctx ends before completion, Publish
// returns ctx.Err(): a message still queued is then dropped, one already
// sent completes in the background.
func (c *Client) Publish(ctx context.Context, m *Message) error {
	t := c.PublishAsync(ctx, m)
	if err, ok := t.result(); ok {
		return err
	}
	select {
	case <-t.Done():
		return t.Err()
	case <-ctx.Done():
		t.cancelled.Store(true)
		return ctx.Err()
	}
}

// PublishAsync starts publishing m and returns a Token that completes with
// the flow. It returns as soon as the message is accepted: it waits only
// while the client is connected and its send queue (Options.Queue) or write
// buffer is full, bounded by ctx. Many publishes may be in flight at once,
// up to the server's Receive Maximum; the rest wait in the queue.
func (c *Client) PublishAsync(ctx context.Context, m *Message) *Token {
	om, err := c.newOutMsg(m)
	if err != nil {
		return CompletedToken(err)
	}
	if err := c.usable(); err != nil {
		return CompletedToken(err)
	}
	select {
	case c.pubCh <- om:
		select {
		case <-c.done:
			// The Client ended: the engine did not take om and the
			// drain at its end may have run before om arrived.
			om.tok.complete(c.closedErr(), packet.UnspecifiedError)
		default:
		}
		return &om.tok
	case <-ctx.Done():
		return CompletedToken(ctx.Err())
	case <-c.done:
		return CompletedToken(c.closedErr())
	}
}

// newOutMsg validates m locally and builds its outbound state.
func (c *Client) newOutMsg(m *Message) (*outMsg, error) {
	if m == nil {
		return nil, errors.New("mqtt client: nil message")
	}
	if m.QoS > 2 {
		return nil, localError("publish", packet.QoSNotSupported, "QoS above 2")
	}
	if len(m.SubscriptionIDs) > 0 {
		// [MQTT-3.3.4-6] a client PUBLISH carries no Subscription Identifier.
		return nil, localError("publish", packet.ProtocolError, "a published message cannot carry subscription identifiers")
	}
	if m.Topic != "" || c.opts.Version == packet.V311 || m.TopicAlias == 0 {
		// [MQTT-3.3.2-2] no wildcards in a topic name.
		if err := validateName(m.Topic); err != nil {
			return nil, &ReasonError{Op: "publish", Code: packet.TopicNameInvalid, ReasonString: err.Error(), Local: true}
		}
	}
	if m.Topic != "" {
		if err := checkNamespace(c.opts.Namespace, "publish", m.Topic); err != nil {
			return nil, err
		}
	}
	if m.ResponseTopic != "" {
		if err := validateName(m.ResponseTopic); err != nil { // [MQTT-3.3.2-14]
			return nil, &ReasonError{Op: "publish", Code: packet.ProtocolError, ReasonString: "response topic: " + err.Error(), Local: true}
		}
	}
	if m.PayloadFormat > 1 {
		return nil, localError("publish", packet.ProtocolError, "payload format indicator above 1")
	}
	if c.opts.Codec != nil {
		var err error
		if m, err = c.opts.Codec.encodeMessage(m); err != nil {
			return nil, err
		}
	}
	om := &outMsg{pub: m.toPacket()}
	if c.opts.Version == packet.V311 {
		om.pub.Props = packet.Properties{}
	}
	om.size = len(om.pub.Topic) + len(om.pub.Payload) + len(om.pub.Props.ContentType) +
		len(om.pub.Props.ResponseTopic) + len(om.pub.Props.CorrelationData) + 16
	for _, u := range om.pub.Props.User {
		om.size += len(u.Key) + len(u.Value) + 5
	}
	return om, nil
}

// Subscribe subscribes to the filters and routes the messages that match
// them to h (nil h: Options.DefaultHandler). It waits for SUBACK and
// returns it; if the server refused some filters the Suback is returned
// with a *ReasonError for the first refusal, and h is registered only for
// the granted ones. Shared subscriptions ("$share/group/filter") are routed
// by their inner filter. The client remembers granted subscriptions and
// subscribes again after a reconnection when the server lost the session.
//
// While disconnected the SUBSCRIBE waits and is sent on reconnection; a
// SUBSCRIBE in flight when the connection is lost is sent again.
func (c *Client) Subscribe(ctx context.Context, subs []Subscription, h Handler, opts ...SubscribeOption) (*Suback, error) {
	var so SubscribeOptions
	for _, f := range opts {
		f(&so)
	}
	if len(subs) == 0 {
		return nil, localError("subscribe", packet.ProtocolError, "no topic filters") // [MQTT-3.8.3-2]
	}
	if so.SubscriptionID > 268_435_455 {
		return nil, localError("subscribe", packet.ProtocolError, "subscription identifier out of range")
	}
	for i := range subs {
		s := &subs[i]
		if err := validateFilter(s.Filter); err != nil {
			return nil, &ReasonError{Op: "subscribe", Code: packet.TopicFilterInvalid, Filter: s.Filter, ReasonString: err.Error(), Local: true}
		}
		if s.QoS > 2 || s.RetainHandling > 2 {
			return nil, &ReasonError{Op: "subscribe", Code: packet.ProtocolError, Filter: s.Filter, ReasonString: "invalid subscription options", Local: true}
		}
		if s.NoLocal && strings.HasPrefix(s.Filter, "$share/") {
			// [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
			return nil, &ReasonError{Op: "subscribe", Code: packet.ProtocolError, Filter: s.Filter, ReasonString: "No Local on a shared subscription", Local: true}
		}
		if err := checkNamespace(c.opts.Namespace, "subscribe", s.Filter); err != nil {
			return nil, err
		}
	}
	if err := c.usable(); err != nil {
		return nil, err
	}
	op := &ctlOp{
		sub:     &packet.Subscribe{Subscriptions: append([]Subscription(nil), subs...)},
		handler: h,
		reply:   make(chan ctlResult, 1),
	}
	if c.opts.Version == packet.V5 {
		if so.SubscriptionID > 0 {
			op.sub.Props.SubscriptionIDs = []uint32{so.SubscriptionID}
		}
		op.sub.Props.User = so.User
	}
	r, err := c.control(ctx, op)
	if err != nil {
		return nil, err
	}
	return r.suback, r.err
}

// Unsubscribe removes subscriptions and waits for UNSUBACK. The handlers
// of the filters are removed when the UNSUBACK arrives (messages sent
// before it are still routed to them).
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) (*Unsuback, error) {
	if len(filters) == 0 {
		return nil, localError("unsubscribe", packet.ProtocolError, "no topic filters") // [MQTT-3.10.3-2]
	}
	for _, f := range filters {
		if err := validateFilter(f); err != nil {
			return nil, &ReasonError{Op: "unsubscribe", Code: packet.TopicFilterInvalid, Filter: f, ReasonString: err.Error(), Local: true}
		}
	}
	if err := c.usable(); err != nil {
		return nil, err
	}
	op := &ctlOp{
		unsub: &packet.Unsubscribe{Filters: append([]string(nil), filters...)},
		reply: make(chan ctlResult, 1),
	}
	r, err := c.control(ctx, op)
	if err != nil {
		return nil, err
	}
	return r.unsuback, r.err
}

// control hands op to the engine and waits for its result.
func (c *Client) control(ctx context.Context, op *ctlOp) (ctlResult, error) {
	select {
	case c.ctlCh <- op:
	case <-ctx.Done():
		return ctlResult{}, ctx.Err()
	case <-c.done:
		return ctlResult{}, c.closedErr()
	}
	select {
	case r := <-op.reply:
		return r, nil
	case <-ctx.Done():
		return ctlResult{}, ctx.Err()
	case <-c.done:
		// The engine answers every pending operation before it ends.
		select {
		case r := <-op.reply:
			return r, nil
		default:
			return ctlResult{}, c.closedErr()
		}
	}
}

// Disconnect ends the Client: it stops reconnecting, sends DISCONNECT with
// reason (v5; NormalDisconnection, or DisconnectWithWillMessage to have the
// server publish the will) and, in v5, a new Session Expiry Interval unless
// sessionExpiry is KeepSessionExpiry, waits until the packet is written (at
// most until ctx ends, and never more than 5 seconds), and closes the
// connection. Pending operations
// complete with ErrClosed; QoS 1/2 messages in flight stay in the Store.
//
// Then Disconnect waits, bounded by ctx, for the handler running at that
// moment to return: once it returns nil no handler of this Client runs any
// more, so a new Client on the same Store never overlaps with it. Messages
// still waiting in the dispatch queue are not handed to handlers: the
// server sends them again on the resumed session (QoS 1 and 2; QoS 0 ones
// are lost). If ctx ends first, Disconnect returns ctx.Err() and the
// handler finishes on its own (the Client has ended all the same). Called
// from a handler, Disconnect does not wait for that handler.
//
// Disconnect never waits for the network beyond ctx: when the connection is
// gone or stuck it returns promptly. It is safe to call more than once and
// from any goroutine, handlers included.
func (c *Client) Disconnect(ctx context.Context, reason packet.ReasonCode, sessionExpiry int64) error {
	if c.opts.Version == packet.V5 {
		if !reason.ValidFor(packet.DISCONNECT) {
			// [MQTT-3.14.2-1] only DISCONNECT reason codes.
			return localError("disconnect", packet.ProtocolError, "not a DISCONNECT reason code")
		}
		if sessionExpiry > 0 && c.opts.SessionExpiry == 0 {
			// Section 3.14.2.2.2: a Session Expiry Interval that was 0 in
			// CONNECT cannot be set non-zero in DISCONNECT.
			return localError("disconnect", packet.ProtocolError, "session expiry was 0 in CONNECT")
		}
		if sessionExpiry > 0xFFFFFFFF {
			return localError("disconnect", packet.ProtocolError, "session expiry out of range")
		}
	}
	c.mu.Lock()
	st := c.state.Load()
	c.stopOnce.Do(func() {
		c.stopReq = disconnectReq{ctx: ctx, reason: reason, expiry: sessionExpiry}
		c.stopCancel()
	})
	if st == stateNew {
		c.state.Store(stateClosed)
		close(c.done)
	}
	c.mu.Unlock()
	if st == stateNew {
		return nil
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := c.waitHandlers(ctx); err != nil {
		return err
	}
	return c.stopReq.err
}

// waitHandlers waits until the dispatcher has ended (it ends after the
// Client, once its current handler returns), unless it never started or the
// caller is the dispatcher itself (Disconnect from a handler).
func (c *Client) waitHandlers(ctx context.Context) error {
	c.mu.Lock()
	started := c.dispatchStarted
	c.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-c.dispatchDone:
		return nil
	default:
	}
	if gid := c.dispatchGID.Load(); gid != 0 && gid == goroutineID() {
		return nil
	}
	select {
	case <-c.dispatchDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reauthenticate performs v5 re-authentication (section 4.12.1) with
// Options.Auth while the connection stays up: AUTH with reason
// Re-authenticate, then the exchange until the server's AUTH Success. If it
// fails, the client closes the connection [MQTT-4.12.1-2] and reconnects
// (authenticating afresh).
func (c *Client) Reauthenticate(ctx context.Context) error {
	a := c.opts.Auth
	if a == nil {
		// [MQTT-4.12.0-7] no AUTH without an Authentication Method in CONNECT.
		return ErrNoAuth
	}
	if err := c.usable(); err != nil {
		return err
	}
	data, err := a.Start(ctx)
	if err != nil {
		return err
	}
	op := &reauthOp{in: make(chan *packet.Auth, 1), errc: make(chan error, 1)}
	send := func(r any) error {
		select {
		case c.ctlCh <- r:
			return nil
		case <-c.done:
			return c.closedErr()
		}
	}
	if err := send(reauthStep{op: op, code: packet.ReAuthenticate, data: data}); err != nil {
		return err
	}
	for {
		select {
		case p := <-op.in:
			switch p.ReasonCode {
			case packet.ContinueAuthentication:
				data, err := a.Continue(ctx, p.Props.AuthData)
				if err != nil {
					send(reauthStep{op: op, fail: err})
					return err
				}
				// [MQTT-4.12.0-3] the answer carries Continue Authentication.
				if err := send(reauthStep{op: op, code: packet.ContinueAuthentication, data: data}); err != nil {
					return err
				}
			case packet.Success:
				if err := a.Finish(ctx, p.Props.AuthData); err != nil {
					send(reauthStep{op: op, fail: err})
					return err
				}
				return nil
			default:
				err := &ReasonError{Op: "auth", Code: p.ReasonCode, ReasonString: p.Props.ReasonString}
				send(reauthStep{op: op, fail: err})
				return err
			}
		case err := <-op.errc:
			return err
		case <-ctx.Done():
			send(reauthStep{op: op, fail: ctx.Err()})
			return ctx.Err()
		case <-c.done:
			return c.closedErr()
		}
	}
}

// ErrNotMigratable is returned by Migrate when the connection's transport
// cannot move to another network path (only QUIC can).
var ErrNotMigratable = errors.New("mqtt client: transport does not support migration")

// Migrate moves the live connection to a new local network path (a new
// UDP socket for QUIC) without losing the session or messages in flight,
// for example after the device changed networks. It fails with
// ErrNotMigratable for transports other than quic://, and with
// ErrNotConnected while offline.
func (c *Client) Migrate(ctx context.Context) error {
	k := c.transport.Load()
	if k == nil {
		return ErrNotConnected
	}
	m, ok := k.rwc.(interface{ Migrate(context.Context) error })
	if !ok {
		return ErrNotMigratable
	}
	return m.Migrate(ctx)
}

// sendAck hands an acknowledgement decision to the engine.
func (c *Client) sendAck(ent *inEntry, code packet.ReasonCode) error {
	select {
	case c.ackCh <- ackReq{ent: ent, code: code}:
		return nil
	case <-c.done:
		return c.closedErr()
	}
}

// dispatch runs handlers for received messages, in order. Once the Client
// has ended it starts no handler: the messages still queued were not
// acknowledged, so the server sends them again (QoS 1/2) to the Client that
// resumes the session.
func (c *Client) dispatch() {
	defer close(c.dispatchDone)
	c.dispatchGID.Store(goroutineID())
	for {
		select {
		case <-c.done:
			return
		default:
		}
		select {
		case m := <-c.dispatchCh:
			c.handle(m)
		case <-c.done:
			return
		}
	}
}

// recordDelivery has the engine record a received QoS 2 message in the
// store before a handler gets it (see engine.onDelivering). It reports
// false when the Client ended first: the message is then not delivered
// (nor acknowledged), and the server sends it again on the resumed session.
func (c *Client) recordDelivery(ent *inEntry) bool {
	select {
	case c.recordCh <- ent:
		// The engine answers in the same step it takes the request.
		return <-c.recordReply
	case <-c.done:
		return false
	}
}

func (c *Client) handle(m *Message) {
	if a := m.ack; a != nil && a.ent != nil && a.ent.qos == 2 && c.recordCh != nil {
		// [MQTT-4.3.3-10] recorded before any handler runs: a Client
		// resuming the session from the same store answers the re-sent
		// PUBLISH with PUBREC and does not deliver it again.
		if !c.recordDelivery(a.ent) {
			return
		}
	}
	if c.opts.Codec != nil {
		if err := c.opts.Codec.decodeMessage(m); err != nil {
			c.log.Error("payload decoding", "topic", m.Topic, "error", err)
			c.reportError(err)
			if m.ack != nil {
				m.decide(packet.Success) // dropped, not redelivered
			}
			return
		}
	}
	n := c.router.match(m.Topic, m.SubscriptionIDs, func(h Handler) { c.callHandler(h, m) })
	if n == 0 && c.opts.DefaultHandler != nil {
		n = 1
		c.callHandler(c.opts.DefaultHandler, m)
	}
	if m.ack != nil && (!c.opts.ManualAck || n == 0) {
		// [MQTT-4.5.0-2] every message is acknowledged, handled or not.
		m.decide(packet.Success)
	}
}

func (c *Client) callHandler(h Handler, m *Message) {
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("mqtt client: handler panic on %q: %v", m.Topic, r)
			c.log.Error("handler panic", "topic", m.Topic, "panic", r)
			c.reportError(err)
		}
	}()
	h(m)
}

// reportError passes err to Options.OnError on the events goroutine.
func (c *Client) reportError(err error) {
	if f := c.opts.OnError; f != nil {
		c.events.push(func() { f(err) })
	}
}

// eventQueue runs callbacks on one goroutine, in order, off the protocol
// goroutine. Events are rare (one per connection change), so the queue is
// an unbounded slice.
type eventQueue struct {
	mu     sync.Mutex
	q      []func()
	sig    chan struct{}
	closed bool
}

func (q *eventQueue) start() {
	q.sig = make(chan struct{}, 1)
	go q.run()
}

func (q *eventQueue) push(f func()) {
	q.mu.Lock()
	if q.closed || q.sig == nil {
		q.mu.Unlock()
		return
	}
	q.q = append(q.q, f)
	q.mu.Unlock()
	select {
	case q.sig <- struct{}{}:
	default:
	}
}

// close lets the queue drain what it holds, then stops it.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.sig <- struct{}{}:
	default:
	}
}

func (q *eventQueue) run() {
	for range q.sig {
		for {
			q.mu.Lock()
			if len(q.q) == 0 {
				closed := q.closed
				q.mu.Unlock()
				if closed {
					return
				}
				break
			}
			f := q.q[0]
			q.q[0] = nil
			q.q = q.q[1:]
			q.mu.Unlock()
			f()
		}
	}
}

// goroutineID returns the identifier of the calling goroutine, read from
// the header of its stack trace ("goroutine 123 [running]:"). It is used
// only to recognise the dispatcher in Disconnect, never on a hot path.
func goroutineID() uint64 {
	var buf [32]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b, ok := bytes.CutPrefix(b, []byte("goroutine "))
	if !ok {
		return 0
	}
	var id uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			break
		}
		id = id*10 + uint64(ch-'0')
	}
	return id
}
