package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// outMsg is an outbound publish: queued, in flight, or completed. Its
// Token is embedded so that one allocation serves both.
type outMsg struct {
	tok      Token
	pub      packet.Publish // the message as published: full topic, no DUP
	size     int            // approximate size, for the queue bound
	id       uint16         // packet identifier once sent (QoS 1/2)
	seq      uint64         // order of first transmission
	pubrel   bool           // QoS 2: PUBREC received, PUBREL sent
	relAgain bool           // QoS 2: the PUBREL was re-sent on a resumed session
	queuedAt time.Time      // when it entered the queue (message expiry)
}

// inEntry is a received QoS 1/2 message awaiting acknowledgement or, for
// QoS 2 after PUBREC, awaiting PUBREL.
type inEntry struct {
	id         uint16
	qos        byte
	onConn     bool // in the ack queue of the current connection
	decided    bool // the application (or the dispatcher) decided
	code       packet.ReasonCode
	pubrecSent bool
	// stored: the identifier is recorded in the SessionStore, so that a
	// Client resuming the session from the store recognises a re-sent
	// PUBLISH with it as a duplicate. Recorded before the message is handed
	// to a handler, or at the latest before PUBREC leaves.
	stored bool
}

type ackReq struct {
	ent  *inEntry
	code packet.ReasonCode
}

// ctlOp is a SUBSCRIBE or UNSUBSCRIBE waiting to be sent or acknowledged.
type ctlOp struct {
	sub     *packet.Subscribe
	unsub   *packet.Unsubscribe
	handler Handler
	prev    map[string]route // routes replaced by this subscribe
	reply   chan ctlResult   // nil for internal resubscriptions
	resub   bool
	id      uint16
	seq     uint64 // order of the request, kept when re-sent
	replied bool
}

type ctlResult struct {
	suback   *Suback
	unsuback *Unsuback
	err      error
}

// subRecord is a granted subscription, kept for resubscription.
type subRecord struct {
	sub     Subscription
	subID   uint32
	user    []packet.UserProperty
	handler Handler
}

type reauthOp struct {
	in   chan *packet.Auth
	errc chan error
}

// fail reports err to the Reauthenticate call, which may have returned:
// the engine never blocks on it.
func (op *reauthOp) fail(err error) {
	select {
	case op.errc <- err:
	default:
	}
}

type reauthStep struct {
	op   *reauthOp
	code packet.ReasonCode
	data []byte
	fail error // the exchange failed on the client side: close the connection
}

type dialResult struct {
	hs  *handshake
	err error
}

// engine owns the protocol state of a Client. All of its fields are used
// only by the engine goroutine (run), except during Connect, before that
// goroutine starts.
type engine struct {
	c *Client
	o *Options
	v packet.Version

	server        *url.URL // where to connect (updated by Server Moved)
	redirect      *url.URL // next attempt only (Use Another Server)
	clientID      string
	everConnected bool

	conn *conn

	// Negotiated on CONNACK (kept while offline, for local checks).
	recvMax     int
	quota       int // send quota [MQTT-4.9.0-1]
	maxPacket   int // 0: no limit
	aliasMax    uint16
	maxQoS      byte
	retainAvail bool
	subIDAvail  bool
	sharedAvail bool
	wildAvail   bool

	// Keep alive.
	pingEvery, deadAfter time.Duration
	lastSent, lastRecv   time.Time
	pingOut              bool
	kaTimer              *time.Timer
	kaC                  <-chan time.Time

	// Outbound publishes.
	nextID      uint16
	out         map[uint16]*outMsg // in flight, by packet identifier
	seq         uint64
	resend      []*outMsg // waiting for a permit to be re-sent after reconnection
	queue       []*outMsg // accepted, not yet sent
	queuedBytes int
	wblocked    bool // write buffer above its bound: accept no publishes

	// Outbound topic aliases of the current connection.
	aliasOf    map[string]uint16
	aliasTopic []string // index: alias
	aliasTick  []uint64
	tick       uint64
	userAlias  map[uint16]string // topics bound to aliases the user chose

	// SUBSCRIBE / UNSUBSCRIBE.
	ctl        map[uint16]*ctlOp
	ctlPending []*ctlOp
	ctlSeq     uint64
	autoSubID  uint32
	subs       map[string]*subRecord

	// Inbound.
	in      map[uint16]*inEntry
	ackq    []*inEntry
	inAlias map[uint16]string
	pending *Message // waiting for room in the dispatch queue

	// Reconnection.
	attempt    int
	rcTimer    *time.Timer
	rcC        <-chan time.Time
	dialRes    chan dialResult
	dialCancel context.CancelFunc

	scratch packet.Publish // the wire form of the PUBLISH being written

	reauth *reauthOp
	done   bool
	endErr error
}

func newEngine(c *Client) *engine {
	return &engine{
		c:        c,
		o:        &c.opts,
		v:        c.opts.Version,
		server:   c.server,
		clientID: c.opts.ClientID,
		out:      make(map[uint16]*outMsg),
		ctl:      make(map[uint16]*ctlOp),
		subs:     make(map[string]*subRecord),
		in:       make(map[uint16]*inEntry),
		dialRes:  make(chan dialResult, 1),
		recvMax:  65535,
		maxQoS:   2,

		autoSubID: 268_435_456,
	}
}

// loadStore reads the session state left in the store.
func (e *engine) loadStore() error {
	out, in, err := e.o.Store.Load()
	if err != nil {
		return fmt.Errorf("mqtt client: session store: %w", err)
	}
	for _, m := range out {
		om := &outMsg{pub: *m.Publish, id: m.ID, seq: m.Seq, pubrel: m.Pubrel}
		e.out[m.ID] = om
		e.seq = max(e.seq, m.Seq+1)
	}
	for _, id := range in {
		// Recorded before a handler got the message (see recordDelivery):
		// whether its PUBREC left is unknown. The message was delivered,
		// so a re-sent PUBLISH is answered with PUBREC (Success) and not
		// delivered again [MQTT-4.3.3-10], and a PUBREL is answered with
		// PUBCOMP (a server sends PUBREL only after our PUBREC).
		e.in[id] = &inEntry{id: id, qos: 2, decided: true, pubrecSent: true, stored: true}
	}
	return nil
}

// buildConnect returns the CONNECT packet of the next attempt.
func (e *engine) buildConnect() *packet.Connect {
	o := e.o
	cs := false
	switch o.CleanStart {
	case CleanStartFirst:
		cs = !e.everConnected
	case CleanStartAlways:
		cs = true
	}
	if e.v == packet.V311 {
		// 3.1.1 has no expiry: a session outlives the connection only with
		// Clean Session 0, which cannot also start afresh. So a persistent
		// session (SessionExpiry > 0) always resumes unless CleanStartAlways.
		cs = o.SessionExpiry == 0 || e.clientID == "" || o.CleanStart == CleanStartAlways
	}
	p := &packet.Connect{
		Version:    e.v,
		CleanStart: cs,
		KeepAlive:  o.keepAliveSeconds(),
		ClientID:   e.clientID,
		Username:   o.Username,
		Password:   o.Password,
	}
	if e.v == packet.V5 {
		pr := &p.Props
		pr.SessionExpiry = o.SessionExpiry
		pr.ReceiveMaximum = o.ReceiveMaximum
		pr.MaximumPacketSize = o.MaximumPacketSize
		pr.TopicAliasMaximum = o.TopicAliasMaximum
		if o.RequestResponseInfo {
			pr.RequestResponseInfo = 1
		}
		if o.NoProblemInfo {
			pr.RequestProblemInfo = 0
			pr.Set(packet.PropRequestProblemInfo)
		}
		pr.User = o.User
	}
	if w := o.Will; w != nil {
		pw := &packet.Will{QoS: w.QoS, Retain: w.Retain, Topic: w.Topic, Payload: w.Payload}
		if pw.Payload == nil {
			pw.Payload = []byte{}
		}
		if e.v == packet.V5 {
			pr := &pw.Props
			pr.WillDelay = w.Delay
			pr.PayloadFormat = w.PayloadFormat
			pr.MessageExpiry = w.MessageExpiry
			pr.ContentType = w.ContentType
			pr.ResponseTopic = w.ResponseTopic
			pr.CorrelationData = w.CorrelationData
			pr.User = w.User
		}
		p.Will = pw
	}
	return p
}

// run is the engine goroutine: every change of protocol state happens here.
func (e *engine) run() {
	c := e.c
	defer e.shutdown()
	for !e.done {
		var (
			pubCh   chan *outMsg
			inCh    <-chan packet.Packet
			errCh   <-chan error
			drained <-chan struct{}
			dispCh  chan *Message
		)
		if e.acceptingPublishes() {
			pubCh = c.pubCh
		}
		if k := e.conn; k != nil {
			if e.pending == nil {
				inCh = k.in
			}
			errCh = k.errc
			drained = k.drained
		}
		if e.pending != nil {
			dispCh = c.dispatchCh
		}
		select {
		case om := <-pubCh:
			e.onPublish(om)
			// Take what else is waiting without going through the
			// select again: pipelined publishes arrive in bursts.
			for range 255 {
				if !e.acceptingPublishes() {
					break
				}
				select {
				case om := <-pubCh:
					e.onPublish(om)
					continue
				default:
				}
				break
			}
		case r := <-c.ctlCh:
			e.onControl(r)
		case a := <-c.ackCh:
			e.onAck(a)
		case p := <-inCh:
			e.onPacket(p)
		case err := <-errCh:
			e.connLost(e.netError(err), nil)
		case dispCh <- e.pending:
			e.pending = nil
		case <-drained:
			e.onDrained()
		case <-e.kaC:
			e.onKeepalive()
		case <-e.rcC:
			e.rcC = nil
			e.startDial()
		case r := <-e.dialRes:
			e.onDial(r)
		case ent := <-c.recordCh:
			c.recordReply <- e.onDelivering(ent) // buffered: one request at a time
		case <-c.stopCtx.Done():
			e.disconnect()
		}
	}
}

// netError classifies a reader or writer failure.
func (e *engine) netError(err error) error {
	var pe *packet.Error
	if errors.As(err, &pe) {
		// The server sent something we cannot accept: tell it, then close.
		e.sendDisconnect(pe.Code)
		return &ReasonError{Op: "receive", Code: pe.Code, ReasonString: pe.Reason, Local: true}
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: closed by the server", ErrConnectionLost)
	}
	return fmt.Errorf("%w: %w", ErrConnectionLost, err)
}

// acceptingPublishes reports whether the engine takes new publishes now.
// Offline it always does (and refuses them with ErrQueueFull beyond the
// bound); online it stops while the queue or the write buffer is full, so
// publishers wait (back-pressure).
func (e *engine) acceptingPublishes() bool {
	if e.conn == nil {
		return true
	}
	return !e.wblocked && len(e.queue) < e.o.Queue.MaxMessages && e.queuedBytes < e.o.Queue.MaxBytes
}

// ---- connection lifecycle ----

// install takes over an established connection. It returns the
// connection's description (also sent to OnConnect).
func (e *engine) install(hs *handshake) *ConnectInfo {
	c := e.c
	ca := hs.connack
	pr := &ca.Props
	e.conn = c.startConn(hs)
	c.transport.Store(e.conn)
	if hs.moved {
		e.server = hs.server // Server Moved: use the new server from now on
	}
	first := !e.everConnected
	e.everConnected = true
	e.attempt = 0
	if e.v == packet.V5 && pr.AssignedClientID != "" {
		e.clientID = pr.AssignedClientID
	}

	// Negotiated values.
	e.recvMax, e.maxPacket, e.aliasMax = 65535, 0, 0
	e.maxQoS, e.retainAvail, e.subIDAvail, e.sharedAvail, e.wildAvail = 2, true, true, true, true
	ka := time.Duration(hs.connect.KeepAlive) * time.Second
	if e.v == packet.V5 {
		e.recvMax = int(pr.EffectiveReceiveMaximum())
		e.maxPacket = int(pr.MaximumPacketSize)
		e.aliasMax = pr.TopicAliasMaximum
		e.maxQoS = pr.EffectiveMaximumQoS()
		e.retainAvail = pr.IsRetainAvailable()
		e.subIDAvail = pr.IsSubIDAvailable()
		e.sharedAvail = pr.IsSharedSubAvailable()
		e.wildAvail = pr.IsWildcardSubAvailable()
		if pr.Has(packet.PropServerKeepAlive) {
			// [MQTT-3.1.2-21] [MQTT-3.2.2-21] the server's value replaces ours.
			ka = time.Duration(pr.ServerKeepAlive) * time.Second
		}
	}
	e.quota = e.recvMax // [MQTT-4.9.0-1]
	e.aliasOf, e.aliasTopic, e.aliasTick = nil, nil, nil
	e.inAlias = nil // [MQTT-3.3.2-7] aliases do not outlive the connection
	e.pingOut = false
	now := time.Now()
	e.lastSent, e.lastRecv = now, now
	e.pingEvery, e.deadAfter = 0, 0
	if ka > 0 {
		e.pingEvery = ka * time.Duration(e.o.Keepalive.PingIntervalPercent) / 100
		e.deadAfter = ka * time.Duration(e.o.Keepalive.TimeoutPercent) / 100
		e.armKeepalive(now)
	}

	if hs.connect.CleanStart && first {
		// [MQTT-3.1.2-4] Clean Start discards the session: what was loaded
		// from the store belongs to it and nobody waits for it. (Live
		// messages of this Client, on later connections, are handled as
		// for a lost session.)
		clear(e.out)
	}
	if ca.SessionPresent && !hs.connect.CleanStart {
		e.resumeSession()
	} else {
		e.sessionLost(first)
	}
	// SUBSCRIBE / UNSUBSCRIBE waiting for the connection.
	pend := e.ctlPending
	e.ctlPending = nil
	for _, op := range pend {
		e.sendCtl(op)
	}
	e.pump()
	c.connected.Store(true)

	info := &ConnectInfo{
		Server:               hs.server.String(),
		Version:              e.v,
		SessionPresent:       ca.SessionPresent,
		ClientID:             e.clientID,
		AssignedClientID:     pr.AssignedClientID,
		KeepAlive:            ka,
		ReceiveMaximum:       uint16(e.recvMax),
		MaximumPacketSize:    uint32(e.maxPacket),
		TopicAliasMaximum:    e.aliasMax,
		MaximumQoS:           e.maxQoS,
		RetainAvailable:      e.retainAvail,
		WildcardSubAvailable: e.wildAvail,
		SubIDAvailable:       e.subIDAvail,
		SharedSubAvailable:   e.sharedAvail,
		ResponseInfo:         pr.ResponseInfo,
		ReasonString:         pr.ReasonString,
		User:                 pr.User,
		Connack:              ca,
	}
	c.log.Debug("connected", "server", info.Server, "session_present", ca.SessionPresent, "client_id", e.clientID)
	if f := e.o.OnConnect; f != nil {
		c.events.push(func() { f(info) })
	}
	return info
}

// resumeSession re-sends what the session has in flight, in the order of
// first transmission: PUBLISH with DUP for messages not acknowledged,
// PUBREL for QoS 2 messages past PUBREC [MQTT-4.4.0-1] [MQTT-4.6.0-1].
func (e *engine) resumeSession() {
	for _, ent := range e.in {
		ent.onConn = false
	}
	msgs := e.inflightInOrder()
	e.resend = e.resend[:0]
	for _, om := range msgs {
		switch {
		case om.pubrel:
			e.quota-- // still unacknowledged: holds its permit
			om.relAgain = true
			e.write(&packet.Pubrel{PacketID: om.id})
		case e.quota > 0:
			e.quota--
			e.writeResend(om)
		default:
			e.resend = append(e.resend, om) // sent when a permit frees up
		}
	}
}

// sessionLost applies Session Present 0: the server has no session, so the
// client discards its own [MQTT-3.2.2-5]. Inbound QoS 2 state goes; QoS 1
// messages in flight are queued again as new messages (at least once is
// kept); QoS 2 messages in flight fail with ErrSessionLost (they may have
// been delivered once; sending them again could deliver them twice).
// Granted subscriptions are subscribed again.
func (e *engine) sessionLost(first bool) {
	clear(e.in)
	e.ackq = e.ackq[:0]
	var requeue []*outMsg
	for _, om := range e.inflightInOrder() {
		switch {
		case om.pub.QoS == 1:
			om.id, om.pubrel = 0, false
			requeue = append(requeue, om)
		default:
			om.tok.complete(ErrSessionLost, packet.UnspecifiedError)
		}
	}
	clear(e.out)
	e.resend = e.resend[:0]
	if len(requeue) > 0 {
		now := time.Now()
		for _, om := range requeue {
			om.queuedAt = now
			e.queuedBytes += om.size
		}
		e.queue = append(requeue, e.queue...)
	}
	if err := e.o.Store.Reset(); err != nil {
		e.storeError(err)
	}
	// In-flight SUBSCRIBEs were moved to ctlPending by connLost; internal
	// resubscriptions are rebuilt here.
	e.ctlPending = slices.DeleteFunc(e.ctlPending, func(op *ctlOp) bool { return op.resub })
	if !first && len(e.subs) > 0 {
		e.resubscribe()
	}
}

func (e *engine) inflightInOrder() []*outMsg {
	msgs := make([]*outMsg, 0, len(e.out))
	for _, om := range e.out {
		msgs = append(msgs, om)
	}
	slices.SortFunc(msgs, func(a, b *outMsg) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return msgs
}

// resubscribe queues SUBSCRIBE packets for every granted subscription,
// grouped by subscription identifier.
func (e *engine) resubscribe() {
	groups := map[uint32][]*subRecord{}
	var ids []uint32
	for _, r := range e.subs {
		if _, ok := groups[r.subID]; !ok {
			ids = append(ids, r.subID)
		}
		groups[r.subID] = append(groups[r.subID], r)
	}
	slices.Sort(ids)
	for _, id := range ids {
		recs := groups[id]
		slices.SortFunc(recs, func(a, b *subRecord) int { return strings.Compare(a.sub.Filter, b.sub.Filter) })
		for len(recs) > 0 {
			n := min(len(recs), 64)
			op := &ctlOp{sub: &packet.Subscribe{}, resub: true}
			for _, r := range recs[:n] {
				op.sub.Subscriptions = append(op.sub.Subscriptions, r.sub)
			}
			if e.v == packet.V5 {
				if id > 0 {
					op.sub.Props.SubscriptionIDs = []uint32{id}
				}
				op.sub.Props.User = recs[0].user
			}
			e.ctlPending = append(e.ctlPending, op)
			recs = recs[n:]
		}
	}
}

// connLost handles the end of the connection: teardown, events, and either
// reconnection or the end of the Client.
func (e *engine) connLost(cause error, d *packet.Disconnect) {
	if e.conn == nil {
		return
	}
	c := e.c
	e.conn.teardown(d == nil && !errors.Is(cause, ErrConnectionLost))
	c.transport.CompareAndSwap(e.conn, nil)
	e.conn = nil
	c.connected.Store(false)
	e.stopKeepalive()
	c.log.Info("connection lost", "error", cause)

	// Acknowledgements not sent are per connection: QoS 1 messages will be
	// re-sent by the server; QoS 2 ones are remembered (no duplicate).
	for id, ent := range e.in {
		if ent.qos == 1 {
			delete(e.in, id)
		} else {
			ent.onConn = false
		}
	}
	e.ackq = e.ackq[:0]
	// SUBSCRIBE / UNSUBSCRIBE in flight are sent again on reconnection.
	var again []*ctlOp
	for id, op := range e.ctl {
		delete(e.ctl, id)
		op.id = 0
		if !op.resub {
			again = append(again, op)
		}
	}
	slices.SortFunc(again, func(a, b *ctlOp) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	e.ctlPending = append(again, e.ctlPending...)
	if e.reauth != nil {
		e.reauth.fail(fmt.Errorf("%w: during re-authentication", ErrConnectionLost))
		e.reauth = nil
	}
	e.wblocked = false

	reconnect := !e.o.DisableReconnect
	if f := e.o.OnDisconnect; f != nil {
		info := DisconnectInfo{Err: cause, Packet: d, Reconnecting: reconnect}
		c.events.push(func() { f(info) })
	}
	if !reconnect {
		e.finish(cause)
		return
	}
	e.scheduleReconnect(e.redirect != nil)
}

func (e *engine) scheduleReconnect(now bool) {
	n := e.attempt + 1
	d := time.Duration(0)
	if !now {
		d = e.o.Backoff.Delay(n)
	}
	if f := e.o.OnReconnecting; f != nil {
		e.c.events.push(func() { f(n, d) })
	}
	if e.rcTimer == nil {
		e.rcTimer = time.NewTimer(d)
	} else {
		e.rcTimer.Reset(d)
	}
	e.rcC = e.rcTimer.C
}

func (e *engine) startDial() {
	e.attempt++
	server := e.server
	if e.redirect != nil {
		server, e.redirect = e.redirect, nil
	}
	connect := e.buildConnect()
	ctx, cancel := context.WithCancel(context.Background())
	e.dialCancel = cancel
	res := e.dialRes
	c := e.c
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		hs, err := c.handshake(ctx, connect, server)
		res <- dialResult{hs, err} // buffered: never blocks
	}()
}

func (e *engine) onDial(r dialResult) {
	e.dialCancel()
	e.dialCancel = nil
	if r.err != nil {
		e.c.log.Info("reconnection failed", "attempt", e.attempt, "error", r.err)
		e.c.reportError(r.err)
		if max := e.o.Backoff.MaxAttempts; max > 0 && e.attempt >= max {
			e.finish(fmt.Errorf("mqtt client: reconnection failed after %d attempts: %w", e.attempt, r.err))
			return
		}
		e.scheduleReconnect(false)
		return
	}
	e.install(r.hs)
}

// disconnect runs Client.Disconnect: DISCONNECT, flush, end.
func (e *engine) disconnect() {
	req := &e.c.stopReq
	if e.conn != nil {
		// Acknowledgements the application made before Disconnect leave
		// before the DISCONNECT (the select of run may have picked the
		// stop first); otherwise the server would send them again.
		for drained := false; !drained; {
			select {
			case a := <-e.c.ackCh:
				e.onAck(a)
			default:
				drained = true
			}
		}
		d := &packet.Disconnect{ReasonCode: req.reason}
		if e.v == packet.V5 && req.expiry >= 0 {
			d.Props.SessionExpiry = uint32(req.expiry)
			d.Props.Set(packet.PropSessionExpiry)
		}
		if _, _, err := e.conn.append(d, e.v, e.maxPacket); err != nil {
			req.err = err
		} else {
			ctx, cancel := context.WithTimeout(req.ctx, disconnectFlushTimeout)
			req.err = e.waitFlush(ctx)
			cancel()
		}
		// [MQTT-3.14.4-1] nothing more is sent; [MQTT-3.14.4-2] close.
		e.conn.teardown(false)
		e.c.transport.Store(nil)
		e.conn = nil
		e.c.connected.Store(false)
		if f := e.o.OnDisconnect; f != nil {
			e.c.events.push(func() { f(DisconnectInfo{}) })
		}
	}
	e.finish(nil)
}

// disconnectFlushTimeout bounds the wait for DISCONNECT to be written,
// whatever the context of Disconnect.
const disconnectFlushTimeout = 5 * time.Second

// waitFlush waits until the writer has written everything, the connection
// fails, or ctx ends.
func (e *engine) waitFlush(ctx context.Context) error {
	k := e.conn
	for k.pendingBytes() > 0 {
		select {
		case <-k.drained:
		case err := <-k.errc:
			var we *writeError
			if errors.As(err, &we) {
				return fmt.Errorf("%w: %w", ErrConnectionLost, err)
			}
			// The reader ended (the server may close as soon as it reads
			// DISCONNECT): keep waiting for the writer.
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (e *engine) finish(err error) {
	e.done = true
	e.endErr = err
}

// shutdown ends the Client: everything pending completes, goroutines end.
func (e *engine) shutdown() {
	c := e.c
	if e.conn != nil {
		e.conn.teardown(false)
		e.conn = nil
	}
	c.transport.Store(nil)
	c.connected.Store(false)
	e.stopKeepalive()
	if e.rcTimer != nil {
		e.rcTimer.Stop()
	}
	if e.dialCancel != nil {
		e.dialCancel()
	}
	cerr := ErrClosed
	if e.endErr != nil {
		cerr = fmt.Errorf("%w: %w", ErrClosed, e.endErr)
	}
	for _, om := range e.queue {
		om.tok.complete(cerr, packet.UnspecifiedError)
	}
	e.queue = nil
	for _, om := range e.out {
		// Still in the store: a Client resuming the session sends them.
		om.tok.complete(cerr, packet.UnspecifiedError)
	}
	for _, op := range e.ctl {
		e.replyCtl(op, ctlResult{err: cerr})
	}
	for _, op := range e.ctlPending {
		e.replyCtl(op, ctlResult{err: cerr})
	}
	if e.reauth != nil {
		e.reauth.fail(cerr)
	}
	c.mu.Lock()
	c.err = e.endErr
	c.state.Store(stateClosed)
	c.mu.Unlock()
	if e.endErr != nil {
		c.log.Error("client ended", "error", e.endErr)
		c.reportError(e.endErr)
	}
	c.wg.Wait() // reader, writer and dial goroutines: their streams are closed
	select {
	case r := <-e.dialRes:
		if r.hs != nil {
			r.hs.rwc.Close()
		}
	default:
	}
	c.events.close()
	close(c.done)
	// Publishes accepted into the channel that the engine never took:
	// complete them, or their callers would wait forever (PublishAsync
	// completes those that arrive after this drain itself).
	for {
		select {
		case om := <-c.pubCh:
			om.tok.complete(cerr, packet.UnspecifiedError)
		default:
			return
		}
	}
}

// ---- keep alive ----

func (e *engine) armKeepalive(now time.Time) {
	next := e.lastRecv.Add(e.deadAfter)
	if !e.pingOut {
		next = minTime(next, minTime(e.lastSent, e.lastRecv).Add(e.pingEvery))
	}
	d := next.Sub(now)
	if e.kaTimer == nil {
		e.kaTimer = time.NewTimer(d)
	} else {
		e.kaTimer.Reset(d)
	}
	e.kaC = e.kaTimer.C
}

func (e *engine) stopKeepalive() {
	if e.kaTimer != nil {
		e.kaTimer.Stop()
	}
	e.kaC = nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (e *engine) onKeepalive() {
	if e.conn == nil || e.pingEvery == 0 {
		return
	}
	now := time.Now()
	if now.Sub(e.lastRecv) >= e.deadAfter {
		e.c.log.Info("keep alive timeout", "silent_for", now.Sub(e.lastRecv))
		e.connLost(ErrKeepAliveTimeout, nil)
		return
	}
	if !e.pingOut && (now.Sub(e.lastSent) >= e.pingEvery || now.Sub(e.lastRecv) >= e.pingEvery) {
		// [MQTT-3.1.2-20] nothing sent (or heard) for a while: PINGREQ.
		e.write(&packet.Pingreq{})
		e.pingOut = true
		e.c.pingsSent.Add(1)
	}
	e.armKeepalive(now)
}

// ---- writing ----

// write encodes p for the current connection. Errors other than local
// refusals end the connection.
func (e *engine) write(p packet.Packet) error {
	if e.conn == nil {
		return ErrConnectionLost
	}
	_, pending, err := e.conn.append(p, e.v, e.maxPacket)
	if err != nil {
		return err
	}
	e.lastSent = time.Now()
	if pending > e.o.WriteBuffer {
		e.wblocked = true
	}
	return nil
}

func (e *engine) onDrained() {
	if e.wblocked && e.conn != nil && e.conn.pendingBytes() <= e.o.WriteBuffer/2 {
		e.wblocked = false
		e.pump()
	}
}

// sendDisconnect writes a DISCONNECT with code (v5) before the connection
// is closed for a protocol violation by the server.
func (e *engine) sendDisconnect(code packet.ReasonCode) {
	if e.conn != nil && e.v == packet.V5 && code.ValidFor(packet.DISCONNECT) {
		e.conn.append(&packet.Disconnect{ReasonCode: code}, e.v, e.maxPacket)
	}
}

// violation closes the connection because the server broke the protocol.
func (e *engine) violation(code packet.ReasonCode, why string) {
	e.sendDisconnect(code)
	err := &ReasonError{Op: "receive", Code: code, ReasonString: why, Local: true}
	e.c.reportError(err)
	e.connLost(err, nil)
}

// ---- outbound publishes ----

func (e *engine) onPublish(om *outMsg) {
	if om.tok.cancelled.Load() {
		om.tok.complete(context.Canceled, packet.UnspecifiedError)
		return
	}
	p := &om.pub
	// Limits the server announced, checked before anything is sent.
	if p.QoS > e.maxQoS {
		// [MQTT-3.2.2-11]
		om.tok.complete(localError("publish", packet.QoSNotSupported, fmt.Sprintf("server maximum QoS is %d", e.maxQoS)), packet.QoSNotSupported)
		return
	}
	if p.Retain && !e.retainAvail {
		// [MQTT-3.2.2-14]
		om.tok.complete(localError("publish", packet.RetainNotSupported, "server has no retained messages"), packet.RetainNotSupported)
		return
	}
	if a := p.Props.TopicAlias; a != 0 {
		if a > e.aliasMax {
			// [MQTT-3.2.2-17] [MQTT-3.3.2-9] (and [MQTT-3.2.2-18] when absent).
			om.tok.complete(localError("publish", packet.TopicAliasInvalid, fmt.Sprintf("server topic alias maximum is %d", e.aliasMax)), packet.TopicAliasInvalid)
			return
		}
		if p.Topic == "" {
			t, ok := e.userAlias[a]
			if !ok {
				om.tok.complete(localError("publish", packet.ProtocolError, "empty topic with an alias never bound"), packet.ProtocolError)
				return
			}
			p.Topic = t
		} else {
			if e.userAlias == nil {
				e.userAlias = make(map[uint16]string)
			}
			e.userAlias[a] = p.Topic
		}
	}
	if e.maxPacket > 0 && p.Size(e.v) > e.maxPacket {
		// [MQTT-3.2.2-15]
		err := localError("publish", packet.PacketTooLarge, fmt.Sprintf("%d bytes, server maximum %d", p.Size(e.v), e.maxPacket))
		om.tok.complete(err, packet.PacketTooLarge)
		return
	}
	// Only PUBLISH waits for the send quota: other packets are sent and
	// received as usual while it is zero [MQTT-3.3.4-8] [MQTT-4.9.0-3].
	if e.conn == nil || len(e.queue) > 0 || len(e.resend) > 0 || e.wblocked || (p.QoS > 0 && e.quota <= 0) {
		if e.conn == nil && (len(e.queue) >= e.o.Queue.MaxMessages || e.queuedBytes+om.size > e.o.Queue.MaxBytes) {
			om.tok.complete(ErrQueueFull, packet.QuotaExceeded)
			return
		}
		om.queuedAt = time.Now()
		e.queue = append(e.queue, om)
		e.queuedBytes += om.size
		return
	}
	e.sendPublish(om)
}

// pump sends what waits, in order, while permits and buffer space last.
func (e *engine) pump() {
	if e.conn == nil {
		return
	}
	for len(e.resend) > 0 && e.quota > 0 && !e.wblocked {
		om := e.resend[0]
		e.resend = e.resend[1:]
		if e.out[om.id] != om {
			continue
		}
		e.quota--
		e.writeResend(om)
	}
	if len(e.resend) > 0 {
		return
	}
	n := 0
	for n < len(e.queue) && !e.wblocked && e.conn != nil {
		om := e.queue[n]
		if om.tok.cancelled.Load() {
			e.queuedBytes -= om.size
			e.queue[n] = nil
			n++
			om.tok.complete(context.Canceled, packet.UnspecifiedError)
			continue
		}
		if om.pub.QoS > 0 && e.quota <= 0 {
			break
		}
		e.queuedBytes -= om.size
		e.queue[n] = nil
		n++
		// Expiry applies only while the message waits unsent
		// [MQTT-4.3.3-7]: once sent it is never dropped.
		if exp := om.pub.Props.MessageExpiry; exp > 0 {
			waited := uint32(time.Since(om.queuedAt) / time.Second)
			if waited >= exp {
				om.tok.complete(ErrMessageExpired, packet.UnspecifiedError)
				continue
			}
			om.pub.Props.MessageExpiry = exp - waited
		}
		if om.pub.QoS > e.maxQoS || (om.pub.Retain && !e.retainAvail) || (e.maxPacket > 0 && om.pub.Size(e.v) > e.maxPacket) {
			// The server's limits changed while the message waited.
			e.onPublishLimits(om)
			continue
		}
		e.sendPublish(om)
	}
	e.queue = e.queue[n:]
	if len(e.queue) == 0 {
		e.queue = nil
	}
}

func (e *engine) onPublishLimits(om *outMsg) {
	var code packet.ReasonCode
	switch {
	case om.pub.QoS > e.maxQoS:
		code = packet.QoSNotSupported
	case om.pub.Retain && !e.retainAvail:
		code = packet.RetainNotSupported
	default:
		code = packet.PacketTooLarge
	}
	om.tok.complete(localError("publish", code, "refused by the limits of the new connection"), code)
}

// ErrMessageExpired completes a queued publish whose Message Expiry
// Interval elapsed before it could be sent.
var ErrMessageExpired = errors.New("mqtt client: message expired in the queue")

// sendPublish sends a new message (not a re-send).
func (e *engine) sendPublish(om *outMsg) {
	p := &om.pub
	if p.QoS > 0 {
		id := e.allocID()
		if id == 0 {
			om.tok.complete(errors.New("mqtt client: no free packet identifier"), packet.UnspecifiedError)
			return
		}
		// [MQTT-2.2.1-3] [MQTT-4.3.2-1] [MQTT-4.3.3-1] an unused identifier.
		p.PacketID, om.id = id, id
		om.seq = e.seq
		e.seq++
		e.out[id] = om
		e.quota-- // [MQTT-4.9.0-2] [MQTT-3.3.4-7]
		if n := int64(len(e.out)); n > e.c.inflightMax.Load() {
			e.c.inflightMax.Store(n)
		}
		if err := e.o.Store.PutOutbound(id, om.seq, p, false); err != nil {
			e.storeError(err)
		}
	}
	// [MQTT-4.3.1-1] [MQTT-4.3.2-2] [MQTT-4.3.3-2] DUP 0 on first sending.
	wire := &e.scratch
	*wire = *p
	e.applyAlias(wire)
	err := e.write(wire)
	*wire = packet.Publish{}
	if err != nil {
		e.failOut(om, err)
		return
	}
	if p.QoS == 0 {
		om.tok.complete(nil, packet.Success)
	}
}

// writeResend re-sends an unacknowledged PUBLISH on a new connection.
func (e *engine) writeResend(om *outMsg) {
	wire := &e.scratch
	*wire = om.pub
	defer func() { *wire = packet.Publish{} }()
	wire.Dup = true // [MQTT-3.3.1-1]
	wire.PacketID = om.id
	if a := wire.Props.TopicAlias; a != 0 {
		if a > e.aliasMax {
			wire.Props.TopicAlias = 0
		} else {
			e.setAlias(wire.Topic, a) // full topic with the alias: binds it again
		}
	}
	if err := e.write(wire); err != nil {
		e.failOut(om, err)
	}
}

// failOut completes an in-flight message that could not be written.
func (e *engine) failOut(om *outMsg, err error) {
	if om.id != 0 && e.out[om.id] == om {
		delete(e.out, om.id)
		e.quota++
		if serr := e.o.Store.DeleteOutbound(om.id); serr != nil {
			e.storeError(serr)
		}
	}
	om.tok.complete(err, packet.CodeOf(err))
}

func (e *engine) allocID() uint16 {
	for range 65535 {
		e.nextID++
		if e.nextID == 0 {
			e.nextID = 1
		}
		if _, used := e.out[e.nextID]; used {
			continue
		}
		if _, used := e.ctl[e.nextID]; used {
			continue
		}
		return e.nextID
	}
	return 0
}

// applyAlias sets the Topic Alias of an outbound PUBLISH (v5): explicit
// aliases are kept (and the topic omitted when the alias is bound to it on
// this connection), automatic ones are assigned when enabled.
func (e *engine) applyAlias(p *packet.Publish) {
	if e.v != packet.V5 || e.aliasMax == 0 {
		p.Props.TopicAlias = 0 // [MQTT-3.2.2-18]
		return
	}
	if a := p.Props.TopicAlias; a != 0 {
		if int(a) < len(e.aliasTopic) && e.aliasTopic[a] == p.Topic {
			e.useAlias(a)
			p.Topic = ""
			e.c.aliasHits.Add(1)
		} else {
			e.setAlias(p.Topic, a)
		}
		return
	}
	if !e.o.TopicAliases {
		return
	}
	if a, ok := e.aliasOf[p.Topic]; ok {
		e.useAlias(a)
		p.Topic = ""
		p.Props.TopicAlias = a
		e.c.aliasHits.Add(1)
		return
	}
	// Assign: a free alias, else the least recently used one.
	// [MQTT-3.3.2-8] never 0; [MQTT-3.3.2-9] never above the server's maximum.
	var a uint16
	if n := len(e.aliasTopic); n == 0 {
		a = 1
	} else if n <= int(e.aliasMax) {
		a = uint16(n)
	} else {
		oldest := ^uint64(0)
		for i := 1; i < len(e.aliasTick); i++ {
			if e.aliasTick[i] < oldest {
				oldest, a = e.aliasTick[i], uint16(i)
			}
		}
	}
	e.setAlias(p.Topic, a)
	p.Props.TopicAlias = a
}

func (e *engine) setAlias(topic string, a uint16) {
	if e.aliasOf == nil {
		e.aliasOf = make(map[string]uint16)
		e.aliasTopic = make([]string, 1, 8)
		e.aliasTick = make([]uint64, 1, 8)
	}
	for int(a) >= len(e.aliasTopic) {
		e.aliasTopic = append(e.aliasTopic, "")
		e.aliasTick = append(e.aliasTick, 0)
	}
	if old := e.aliasTopic[a]; old != "" && e.aliasOf[old] == a {
		delete(e.aliasOf, old)
	}
	e.aliasTopic[a] = topic
	e.aliasOf[topic] = a
	e.useAlias(a)
}

func (e *engine) useAlias(a uint16) {
	e.tick++
	e.aliasTick[a] = e.tick
}

// ---- control requests ----

func (e *engine) onControl(r any) {
	switch r := r.(type) {
	case *ctlOp:
		r.seq = e.ctlSeq
		e.ctlSeq++
		if r.sub != nil {
			if err := e.checkSubscribe(r.sub); err != nil {
				e.replyCtl(r, ctlResult{err: err})
				return
			}
			e.registerHandlers(r)
		}
		if e.conn == nil {
			e.ctlPending = append(e.ctlPending, r)
			return
		}
		e.sendCtl(r)
	case reauthStep:
		e.onReauthStep(r)
	}
}

// checkSubscribe enforces the server's announced capabilities locally.
func (e *engine) checkSubscribe(s *packet.Subscribe) error {
	if len(s.Props.SubscriptionIDs) > 0 && !e.subIDAvail {
		return localError("subscribe", packet.SubscriptionIdentifiersNotSupported, "server has no subscription identifiers")
	}
	for _, sub := range s.Subscriptions {
		shared := strings.HasPrefix(sub.Filter, "$share/")
		if shared && !e.sharedAvail {
			return &ReasonError{Op: "subscribe", Code: packet.SharedSubscriptionsNotSupported, Filter: sub.Filter, Local: true}
		}
		if !e.wildAvail && strings.ContainsAny(sub.Filter, "+#") {
			return &ReasonError{Op: "subscribe", Code: packet.WildcardSubscriptionsNotSupported, Filter: sub.Filter, Local: true}
		}
	}
	return nil
}

// registerHandlers routes the filters of a SUBSCRIBE to its handler before
// the packet is sent, so that messages following SUBACK (retained ones) are
// not missed. A refused filter gets its previous handler back.
func (e *engine) registerHandlers(op *ctlOp) {
	pr := &op.sub.Props
	if e.v == packet.V5 && len(pr.SubscriptionIDs) == 0 && e.subIDAvail && !e.o.NoAutoSubscriptionIDs {
		// An identifier of our own routes each copy the server sends to
		// this call's handler only (see router). Counted down from the top
		// of the range, away from the small numbers users pick.
		e.autoSubID--
		pr.SubscriptionIDs = []uint32{e.autoSubID}
	}
	var id uint32
	if len(pr.SubscriptionIDs) > 0 {
		id = pr.SubscriptionIDs[0]
	}
	for _, s := range op.sub.Subscriptions {
		if rt, ok := e.c.router.get(s.Filter); ok && e.subs[s.Filter] != nil {
			if op.prev == nil {
				op.prev = make(map[string]route)
			}
			op.prev[s.Filter] = rt
		}
		if err := e.c.router.add(s.Filter, op.handler, id); err != nil {
			e.c.log.Error("router", "filter", s.Filter, "error", err)
		}
	}
}

func (e *engine) sendCtl(op *ctlOp) {
	id := e.allocID()
	if id == 0 {
		e.replyCtl(op, ctlResult{err: errors.New("mqtt client: no free packet identifier")})
		return
	}
	op.id = id
	var p packet.Packet
	if op.sub != nil {
		op.sub.PacketID = id
		p = op.sub
	} else {
		op.unsub.PacketID = id
		p = op.unsub
	}
	e.ctl[id] = op
	if err := e.write(p); err != nil {
		delete(e.ctl, id)
		e.failCtl(op, err)
	}
}

// failCtl completes an operation that will not be acknowledged.
func (e *engine) failCtl(op *ctlOp, err error) {
	if op.sub != nil {
		for _, s := range op.sub.Subscriptions {
			e.restoreHandler(op, s.Filter)
		}
	}
	e.replyCtl(op, ctlResult{err: err})
}

func (e *engine) restoreHandler(op *ctlOp, filter string) {
	if rt, ok := op.prev[filter]; ok {
		e.c.router.add(filter, rt.h, rt.id) // was accepted before
	} else if e.subs[filter] == nil {
		e.c.router.remove(filter)
	}
}

func (e *engine) replyCtl(op *ctlOp, r ctlResult) {
	if op.reply != nil && !op.replied {
		op.reply <- r // buffered, one result per operation
		op.replied = true
	}
}

func (e *engine) onSuback(p *packet.Suback) {
	op := e.ctl[p.PacketID]
	if op == nil || op.sub == nil {
		e.c.log.Debug("SUBACK for unknown packet id", "id", p.PacketID)
		return
	}
	delete(e.ctl, p.PacketID)
	res := &Suback{PacketID: p.PacketID, ReasonString: p.Props.ReasonString, User: p.Props.User}
	var ferr error
	for i, s := range op.sub.Subscriptions {
		code := packet.UnspecifiedError
		if i < len(p.ReasonCodes) {
			code = p.ReasonCodes[i] // [MQTT-3.8.4-6] one code per filter, in order
		}
		res.Codes = append(res.Codes, code)
		if code.IsError() {
			if ferr == nil {
				ferr = &ReasonError{Op: "subscribe", Code: code, Filter: s.Filter, ReasonString: p.Props.ReasonString, User: p.Props.User}
			}
			if op.resub {
				delete(e.subs, s.Filter)
				e.c.router.remove(s.Filter)
				continue
			}
			e.restoreHandler(op, s.Filter)
			continue
		}
		if op.resub {
			continue
		}
		rec := &subRecord{sub: s, user: op.sub.Props.User, handler: op.handler}
		if ids := op.sub.Props.SubscriptionIDs; len(ids) > 0 {
			rec.subID = ids[0]
		}
		e.subs[s.Filter] = rec
	}
	if op.resub && ferr != nil {
		e.c.log.Error("resubscription refused", "error", ferr)
		e.c.reportError(ferr)
	}
	e.replyCtl(op, ctlResult{suback: res, err: ferr})
}

func (e *engine) onUnsuback(p *packet.Unsuback) {
	op := e.ctl[p.PacketID]
	if op == nil || op.unsub == nil {
		e.c.log.Debug("UNSUBACK for unknown packet id", "id", p.PacketID)
		return
	}
	delete(e.ctl, p.PacketID)
	res := &Unsuback{PacketID: p.PacketID, ReasonString: p.Props.ReasonString, User: p.Props.User}
	var ferr error
	for i, f := range op.unsub.Filters {
		code := packet.Success
		if e.v == packet.V5 {
			code = packet.UnspecifiedError
			if i < len(p.ReasonCodes) {
				code = p.ReasonCodes[i]
			}
		}
		res.Codes = append(res.Codes, code)
		if code.IsError() {
			if ferr == nil {
				ferr = &ReasonError{Op: "unsubscribe", Code: code, Filter: f, ReasonString: p.Props.ReasonString, User: p.Props.User}
			}
			continue
		}
		delete(e.subs, f)
		e.c.router.remove(f)
	}
	e.replyCtl(op, ctlResult{unsuback: res, err: ferr})
}

// ---- re-authentication ----

func (e *engine) onReauthStep(r reauthStep) {
	switch {
	case r.fail != nil:
		if e.reauth == r.op {
			e.reauth = nil
			// [MQTT-4.12.1-2] a failed re-authentication closes the connection.
			e.violation(packet.NotAuthorized, "re-authentication failed: "+r.fail.Error())
		}
	case r.code == packet.ReAuthenticate && e.reauth != nil:
		r.op.fail(ErrReauthInProgress)
	case r.code == packet.ReAuthenticate && e.conn == nil:
		r.op.fail(fmt.Errorf("%w: not connected", ErrConnectionLost))
	case r.code == packet.ReAuthenticate || e.reauth == r.op:
		e.reauth = r.op
		// [MQTT-4.12.1-1] same Authentication Method as in CONNECT.
		a := &packet.Auth{ReasonCode: r.code}
		a.Props.AuthMethod = e.o.Auth.Method()
		a.Props.AuthData = r.data
		if err := e.write(a); err != nil {
			e.reauth = nil
			r.op.fail(err)
		}
	default:
		r.op.fail(fmt.Errorf("%w: re-authentication interrupted", ErrConnectionLost))
	}
}

func (e *engine) onAuth(p *packet.Auth) {
	if e.reauth == nil || e.o.Auth == nil {
		// [MQTT-4.12.0-6] unsolicited AUTH.
		e.violation(packet.ProtocolError, "unexpected AUTH")
		return
	}
	op := e.reauth
	if p.ReasonCode != packet.ContinueAuthentication {
		e.reauth = nil
	}
	select {
	case op.in <- p: // buffered; the exchange is lockstep
	default:
		e.reauth = nil
		e.violation(packet.ProtocolError, "AUTH before the previous one was answered")
	}
}

// ---- inbound packets ----

func (e *engine) onPacket(p packet.Packet) {
	e.lastRecv = time.Now()
	switch p := p.(type) {
	case *packet.Publish:
		e.onInboundPublish(p)
	case *packet.Puback:
		e.onPuback(p)
	case *packet.Pubrec:
		e.onPubrec(p)
	case *packet.Pubrel:
		e.onPubrel(p)
	case *packet.Pubcomp:
		e.onPubcomp(p)
	case *packet.Suback:
		e.onSuback(p)
	case *packet.Unsuback:
		e.onUnsuback(p)
	case *packet.Pingresp:
		e.pingOut = false
		if e.conn != nil && e.pingEvery > 0 {
			// The next PINGREQ is due a ping interval after the last
			// packet sent, not at the dead-peer deadline [MQTT-3.1.2-20].
			e.armKeepalive(time.Now())
		}
	case *packet.Disconnect:
		e.onServerDisconnect(p)
	case *packet.Auth:
		e.onAuth(p)
	default:
		e.violation(packet.ProtocolError, "unexpected "+p.Type().String())
	}
}

func (e *engine) onServerDisconnect(p *packet.Disconnect) {
	err := &ReasonError{Op: "disconnect", Code: p.ReasonCode, ReasonString: p.Props.ReasonString, User: p.Props.User}
	if e.v == packet.V311 {
		e.violation(packet.ProtocolError, "DISCONNECT from a 3.1.1 server")
		return
	}
	if (p.ReasonCode == packet.UseAnotherServer || p.ReasonCode == packet.ServerMoved) && p.Props.ServerReference != "" {
		cur := e.server
		u, perr := resolveReference(cur, p.Props.ServerReference)
		if perr == nil {
			e.redirect = u
			if p.ReasonCode == packet.ServerMoved {
				e.server = u
			}
		}
	}
	e.connLost(err, p)
}

func (e *engine) onPuback(p *packet.Puback) {
	om := e.out[p.PacketID]
	if om == nil || om.pub.QoS != 1 {
		e.c.log.Debug("PUBACK for unknown packet id", "id", p.PacketID)
		return
	}
	e.complete(om, p.ReasonCode, &p.Props)
}

func (e *engine) onPubrec(p *packet.Pubrec) {
	om := e.out[p.PacketID]
	if om == nil || om.pub.QoS != 2 {
		if e.v == packet.V5 {
			// Not ours: release the identifier on the server side.
			e.write(&packet.Pubrel{PacketID: p.PacketID, ReasonCode: packet.PacketIdentifierNotFound})
		}
		return
	}
	if p.ReasonCode.IsError() {
		// [MQTT-4.4.0-2] acknowledged (refused): not re-sent; permit freed.
		e.complete(om, p.ReasonCode, &p.Props)
		return
	}
	if !om.pubrel {
		om.pubrel = true
		if err := e.o.Store.PutOutbound(om.id, om.seq, &om.pub, true); err != nil {
			e.storeError(err)
		}
	}
	// [MQTT-4.3.3-4] PUBREL with the same identifier; PUBRELs leave in the
	// order PUBRECs arrive [MQTT-4.6.0-4]. [MQTT-4.3.3-6] the PUBLISH is
	// not sent again.
	e.write(&packet.Pubrel{PacketID: om.id})
}

func (e *engine) onPubcomp(p *packet.Pubcomp) {
	om := e.out[p.PacketID]
	if om == nil || !om.pubrel {
		e.c.log.Debug("PUBCOMP for unknown packet id", "id", p.PacketID)
		return
	}
	if p.ReasonCode == packet.PacketIdentifierNotFound && om.relAgain {
		// Section 3.7.2.1: 0x92 in PUBCOMP "is not an error during
		// recovery". This PUBREL was re-sent on the resumed session
		// [MQTT-4.4.0-1]; it can only be answered 0x92 when the server
		// had already released the identifier, that is, it received our
		// first PUBREL and its PUBCOMP was lost with the connection. It
		// sent PUBREC before, so it owned the message [MQTT-4.3.3-8]: the
		// flow is complete (Token.ReasonCode still says 0x92).
		// A 0x92 answering a PUBREL sent for the first time on this
		// connection has no such explanation (the server acknowledged the
		// PUBLISH with PUBREC and then lost the identifier while it had to
		// keep it [MQTT-4.3.3-10]): it is a session state mismatch and
		// stays an error. PUBREC never carries 0x92 (section 3.5.2.1; the
		// reader refuses it as malformed): a re-sent PUBLISH is answered
		// PUBREC Success by a server that still has the identifier
		// [MQTT-4.3.3-10], or handled as a new message.
		e.c.log.Debug("PUBCOMP 0x92 for a PUBREL re-sent on session resumption: completed", "id", p.PacketID)
		e.complete(om, packet.PacketIdentifierNotFound, nil)
		return
	}
	e.complete(om, p.ReasonCode, &p.Props)
}

// complete ends an outbound QoS 1/2 flow: the permit returns, the store
// forgets it, the token completes (with an error for an error code,
// unless pr is nil: a code that is not an error here).
// Until then the message stays unacknowledged [MQTT-4.3.2-3]
// [MQTT-4.3.3-3] [MQTT-4.3.3-5] and the session keeps it, also while the
// connection is down [MQTT-4.1.0-1] [MQTT-3.1.2-23].
func (e *engine) complete(om *outMsg, code packet.ReasonCode, pr *packet.Properties) {
	delete(e.out, om.id)
	e.quota++ // [MQTT-4.9.0-2] a PUBACK, PUBCOMP or error PUBREC returns the permit
	if err := e.o.Store.DeleteOutbound(om.id); err != nil {
		e.storeError(err)
	}
	var err error
	if code.IsError() && pr != nil {
		err = &ReasonError{Op: "publish", Code: code, ReasonString: pr.ReasonString, User: slices.Clone(pr.User)}
	}
	om.tok.complete(err, code)
	e.pump()
}

func (e *engine) onInboundPublish(p *packet.Publish) {
	name := p.Topic
	if e.v == packet.V5 && p.Props.Has(packet.PropTopicAlias) {
		a := p.Props.TopicAlias
		if a == 0 || a > e.o.TopicAliasMaximum {
			// [MQTT-3.3.2-10] only aliases 1..our maximum are valid.
			e.violation(packet.TopicAliasInvalid, "topic alias out of range")
			return
		}
		if name == "" {
			name = e.inAlias[a]
			if name == "" {
				e.violation(packet.ProtocolError, "unknown topic alias")
				return
			}
		} else {
			if e.inAlias == nil {
				e.inAlias = make(map[uint16]string)
			}
			e.inAlias[a] = strings.Clone(name)
		}
	} else if name == "" {
		e.violation(packet.ProtocolError, "empty topic name")
		return
	}
	if p.QoS == 0 {
		e.deliver(messageFrom(p, name))
		return
	}
	if ent := e.in[p.PacketID]; ent != nil {
		if ent.qos == 2 && p.QoS == 2 {
			// [MQTT-4.3.3-10] until PUBREL, a PUBLISH with this identifier
			// is the same message: acknowledge it, never deliver it again.
			if !ent.onConn {
				ent.onConn = true
				e.ackq = append(e.ackq, ent)
				e.flushAcks()
			}
		}
		return
	}
	if e.v == packet.V5 && e.o.ReceiveMaximum > 0 && len(e.in) >= int(e.o.ReceiveMaximum) {
		// The server exceeded the Receive Maximum we announced.
		e.violation(packet.ReceiveMaximumExceeded, "receive maximum exceeded")
		return
	}
	ent := &inEntry{id: p.PacketID, qos: p.QoS, onConn: true}
	e.in[p.PacketID] = ent
	e.ackq = append(e.ackq, ent)
	m := messageFrom(p, name)
	m.ack = &ackRef{c: e.c, ent: ent}
	e.deliver(m)
}

// deliver hands m to the dispatch queue or, when it is full, parks it and
// stops reading from the network until there is room.
func (e *engine) deliver(m *Message) {
	select {
	case e.c.dispatchCh <- m:
	default:
		e.pending = m
	}
}

func (e *engine) onAck(a ackReq) {
	ent := a.ent
	if e.in[ent.id] != ent || ent.decided {
		return // stale: the entry belongs to a previous connection or session
	}
	ent.decided = true
	ent.code = a.code
	if e.v == packet.V311 || !a.code.IsError() {
		ent.code = packet.Success
	}
	e.flushAcks()
}

// flushAcks sends the decided acknowledgements at the head of the queue:
// PUBACK and PUBREC leave in the order the PUBLISHes arrived
// [MQTT-4.6.0-2] [MQTT-4.6.0-3].
func (e *engine) flushAcks() {
	for len(e.ackq) > 0 && e.ackq[0].decided && e.conn != nil {
		ent := e.ackq[0]
		e.ackq[0] = nil
		e.ackq = e.ackq[1:]
		if e.in[ent.id] != ent {
			continue
		}
		ent.onConn = false // out of the queue: a re-sent PUBLISH re-queues it
		if ent.qos == 1 {
			// [MQTT-4.3.2-4] PUBACK with the identifier; [MQTT-3.4.2-1] a PUBACK code.
			delete(e.in, ent.id)
			e.write(&packet.Puback{PacketID: ent.id, ReasonCode: ent.code})
			continue
		}
		switch {
		case !ent.code.IsError() && !ent.stored:
			// Usually recorded when a handler got the message
			// (onDelivering); otherwise (no handler, a private store) at
			// the latest before the PUBREC leaves: once the server has it,
			// a restarted client must still recognise a re-sent PUBLISH
			// with this identifier as a duplicate [MQTT-4.3.3-10].
			ent.stored = true
			if err := e.o.Store.PutInbound(ent.id); err != nil {
				e.storeError(err)
			}
		case ent.code.IsError() && ent.stored:
			// Forgotten before the error PUBREC leaves: the server may
			// then use the identifier for a new message [MQTT-4.3.3-9],
			// which a stale record would swallow.
			ent.stored = false
			if err := e.o.Store.DeleteInbound(ent.id); err != nil {
				e.storeError(err)
			}
		}
		// [MQTT-4.3.3-8] PUBREC with the identifier.
		ent.pubrecSent = true
		e.write(&packet.Pubrec{PacketID: ent.id, ReasonCode: ent.code})
		if ent.code.IsError() {
			// [MQTT-4.3.3-9] after an error PUBREC the identifier is free.
			delete(e.in, ent.id)
			continue
		}
	}
	if len(e.ackq) == 0 {
		e.ackq = nil
	}
}

// onDelivering records a received QoS 2 message in the store before the
// dispatcher hands it to a handler, so that no Client resuming the session
// from the store delivers it again when the server re-sends it
// [MQTT-4.3.3-10]: the one record serves until PUBREL (flushAcks does not
// write another for the PUBREC). It reports whether the message may be
// delivered: always, as the engine runs (an entry that is no longer in the
// session, because the server lost it, is delivered unrecorded: the server
// will not re-send it).
func (e *engine) onDelivering(ent *inEntry) bool {
	if e.in[ent.id] != ent || ent.stored {
		return true
	}
	ent.stored = true
	if err := e.o.Store.PutInbound(ent.id); err != nil {
		e.storeError(err)
	}
	return true
}

func (e *engine) onPubrel(p *packet.Pubrel) {
	ent := e.in[p.PacketID]
	switch {
	case ent != nil && ent.qos == 2 && ent.pubrecSent:
		// [MQTT-4.3.3-11] PUBCOMP; [MQTT-4.3.3-12] the identifier is free.
		delete(e.in, p.PacketID)
		if ent.stored {
			if err := e.o.Store.DeleteInbound(p.PacketID); err != nil {
				e.storeError(err)
			}
		}
		e.write(&packet.Pubcomp{PacketID: p.PacketID})
	case ent == nil:
		// [MQTT-4.3.3-11] answer anyway; v5 says the identifier is unknown.
		e.write(&packet.Pubcomp{PacketID: p.PacketID, ReasonCode: packet.PacketIdentifierNotFound})
	default:
		e.c.log.Debug("PUBREL before PUBREC", "id", p.PacketID)
	}
}

func (e *engine) storeError(err error) {
	e.c.log.Error("session store", "error", err)
	e.c.reportError(fmt.Errorf("mqtt client: session store: %w", err))
}
