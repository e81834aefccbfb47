package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

// conn is one network connection. Its read goroutine (serve) owns the
// inbound protocol state; outbound writes are done by a writer goroutine
// started on demand when there is something to send and exiting when the
// queue is drained, so an idle connection holds no write buffer. A plain
// TCP connection whose read side stays idle for parkAfter also gives up its
// read goroutine and read buffer: it is parked (park_linux.go) until its
// socket is readable, its keep alive expires or it is closed.
//
// Fields under "outbound" are guarded by sess.mu once the session is
// attached (before that, only serve touches them).
type conn struct {
	b    *Broker
	cfg  *Config // the broker's settings when the connection was accepted
	nc   net.Conn
	r    packet.Reader
	info ClientInfo
	sess *session
	// trusted connections (TrustedConn) skip authentication and
	// authorization.
	trusted bool

	version     packet.Version
	keepAlive   time.Duration
	maxOut      uint32 // client's Maximum Packet Size, 0 = none
	recvMax     int    // QoS 1/2 messages we may have in flight to it
	problemInfo bool   // Request Problem Information
	authMethod  string
	authState   any
	reauthStep  int

	// inbound
	pendingAcks atomic.Int64 // acknowledgements waiting for a store commit
	sentOps     []store.Op   // entry updates of the batch being written (writer only)
	aliases     map[uint16]string
	in          *inbound        // allocated on the first PUBLISH
	inLimit     *inboundLimiter // nil without inbound RateLimits

	// read side while idle (owned by whoever reads; see sockReader and
	// park_linux.go). Times are nanoseconds since the broker started.
	mayPark   bool         // plain TCP served by run: may be parked when idle
	inEpoll   bool         // the socket was once added to the parker's epoll set
	woke      bool         // resumed from parking, no packet read since
	pstate    atomic.Int32 // parkRunning or parkParked
	parkID    uint64       // identifier of the current parking
	lastRead  int64        // when the last packet was handled; 0 before the read loop
	kaAt      int64        // when the keep alive expires (keepAlive > 0)
	rdl       int64        // read deadline set on the socket; 0 = none
	kaTimer   *time.Timer  // wakes a parked connection when its keep alive expires
	credTimer *time.Timer  // ends the connection when its credentials expire; sess.mu

	// clientReason is the reason code of the client's DISCONNECT;
	// serverReason (sess.mu) the one the broker disconnected it with.
	clientReason packet.ReasonCode
	serverReason packet.ReasonCode

	// will of this connection, cleared by DISCONNECT 0x00
	will      *Message
	willDelay uint32

	// outbound (sess.mu)
	ctrl       []byte // encoded control packets waiting for the writer
	writing    bool   // a writer goroutine runs
	closed     bool   // no more writes; the socket is or will be closed
	closing    bool   // flush ctrl, then close (server-sent DISCONNECT)
	resend     bool   // retransmit inflight messages first (session resumed)
	ctrlN      int32  // packets in ctrl, counted when written
	ctrlDrain  *sync.Cond
	aliasesOut map[string]uint16
	aliasMax   uint16        // client's Topic Alias Maximum ∩ our OutboundTopicAliases
	outLimit   *outboundRate // RateLimits.OutboundMessages, nil when unlimited
	outWait    bool          // the writer waits for outTimer (outbound rate)
	outTimer   *time.Timer
}

// inbound is the PUBLISH decoding and routing state of a connection that
// publishes; idle and subscribe-only connections do without it.
type inbound struct {
	pub     packet.Publish
	scratch routeScratch
}

// maxCtrlBacklog bounds encoded control packets waiting to be written; the
// read loop waits (and so stops reading the socket) beyond it.
const maxCtrlBacklog = 256 << 10

// writeBatch is how many bytes the writer gathers before one Write call.
const writeBatch = 64 << 10

var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (b *Broker) newConn(nc net.Conn) *conn {
	c := &conn{b: b, cfg: b.conf(), nc: nc}
	if tc, ok := nc.(*net.TCPConn); ok && parkSupported {
		c.nc = &tcpConn{TCPConn: tc, c: c}
	}
	c.r.Reset((*sockReader)(c))
	c.r.MaxPacketSize = int(c.cfg.Capabilities.MaximumPacketSize)
	c.info.RemoteAddr = nc.RemoteAddr()
	c.inLimit, c.outLimit = b.limiters()
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := tc.ConnectionState()
		c.info.TLS = &st
	}
	return c
}

// errClosedByServer ends the read loop after the broker sent DISCONNECT.
var errClosedByServer = errors.New("closed by server")

// run serves the connection on a goroutine of its own and releases it when
// it ends; a plain TCP connection may be parked and resumed in between, on
// other goroutines.
func (c *conn) run() {
	_, tcp := c.nc.(*tcpConn)
	c.mayPark = tcp
	if c.serve(context.Background()) {
		return // parked: resume releases it
	}
	c.release()
}

// release unregisters the connection once it has ended.
func (c *conn) release() {
	c.b.unregister(c)
	c.b.connWG.Done()
}

// serve runs the connection until it ends, or until it is parked (then it
// returns true and the connection belongs to whoever resumes it).
func (c *conn) serve(ctx context.Context) (parked bool) {
	ctx, cancel := context.WithCancel(ctx)
	err := c.handshake(ctx)
	if err != nil {
		cancel()
		c.b.log.Debug("connect failed", "remote", c.info.RemoteAddr, "err", err)
		c.closeSocketAfterFlush()
		return false
	}
	c.touchRead()
	err = c.readLoop(ctx)
	cancel()
	if err == errParked {
		return true
	}
	c.end(err)
	return false
}

// resume reads on from a parked connection, on a new goroutine.
func (c *conn) resume() {
	c.woke = true
	ctx, cancel := context.WithCancel(context.Background())
	err := c.readLoop(ctx)
	cancel()
	if err == errParked {
		return
	}
	c.end(err)
	c.release()
}

// readLoop reads and handles packets until an error, a DISCONNECT or
// parking (errParked: the caller must then leave c alone).
func (c *conn) readLoop(ctx context.Context) error {
	for {
		if c.in != nil {
			// Subscribers' writers start once per read batch (kickQueue).
			if q := &c.in.scratch.kicks; len(q.s) > 0 && (q.packets >= maxKickBatch || !c.r.Complete()) {
				q.flush()
			}
		}
		h, body, err := c.r.ReadRaw(c.version)
		if err != nil && err != errPark {
			// Not after parking: another goroutine may own c by then
			// (nothing is pending then: ReadRaw was about to block).
			c.flushKicks()
		}
		if err != nil {
			if err == errPark {
				if c.park() {
					return errParked
				}
				c.mayPark = false // the broker is stopping or the socket closed
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.disconnect(packet.KeepAliveTimeout, "keep alive timeout")
				return errKeepAlive
			}
			var pe *packet.Error
			if errors.As(err, &pe) {
				c.disconnect(pe.Code, pe.Reason)
			}
			return err
		}
		c.b.stats.msgsReceived.Add(1)
		c.b.stats.bytesReceived.Add(int64(h.Size()))
		if h.Type != packet.PUBLISH && c.in != nil {
			c.in.scratch.kicks.flush() // other packets may wait on locks or back-pressure
		}
		if err := c.handle(ctx, h, body); err != nil {
			c.flushKicks()
			if errors.Is(err, errNormalDisconnect) {
				return err
			}
			var pe *packet.Error
			switch {
			case errors.As(err, &pe):
				c.disconnect(pe.Code, pe.Reason)
			case errors.Is(err, errClosedByServer):
			default:
				c.disconnect(packet.CodeOf(err), err.Error())
			}
			return err
		}
		c.touchRead()
	}
}

var (
	errKeepAlive        = errors.New("keep alive timeout")
	errNormalDisconnect = errors.New("client disconnected")
	errWillDisconnect   = errors.New("client disconnected with will")
)

func (c *conn) handle(ctx context.Context, h packet.FixedHeader, body []byte) error {
	switch h.Type {
	case packet.PUBLISH:
		return c.handlePublish(ctx, h, body)
	case packet.PUBACK, packet.PUBREC, packet.PUBCOMP:
		var a packet.Puback
		if err := decodeAck(h, body, c.version, &a); err != nil {
			return err
		}
		c.handleAck(h.Type, &a)
		return nil
	case packet.PUBREL:
		var a packet.Pubrel
		if err := a.Decode(h.Flags, body, c.version); err != nil {
			return err
		}
		return c.handlePubrel(&a)
	case packet.SUBSCRIBE:
		var s packet.Subscribe
		if err := s.Decode(h.Flags, body, c.version); err != nil {
			return err
		}
		return c.handleSubscribe(ctx, &s)
	case packet.UNSUBSCRIBE:
		var u packet.Unsubscribe
		if err := u.Decode(h.Flags, body, c.version); err != nil {
			return err
		}
		return c.handleUnsubscribe(&u)
	case packet.PINGREQ:
		if err := (&packet.Pingreq{}).Decode(h.Flags, body, c.version); err != nil {
			return err
		}
		return c.send(&packet.Pingresp{}) // [MQTT-3.12.4-1]
	case packet.DISCONNECT:
		var d packet.Disconnect
		if err := d.Decode(h.Flags, body, c.version); err != nil {
			return err
		}
		return c.handleDisconnect(&d)
	case packet.AUTH:
		var a packet.Auth
		if err := a.Decode(h.Flags, body, c.version); err != nil {
			return err
		}
		return c.handleReauth(ctx, &a)
	case packet.CONNECT:
		// [MQTT-3.1.0-2] a second CONNECT is a protocol error.
		return &packet.Error{Code: packet.ProtocolError, Type: packet.CONNECT, Reason: "second CONNECT"}
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP are server-to-client only.
		return &packet.Error{Code: packet.ProtocolError, Type: h.Type, Reason: "packet not allowed from a client"}
	}
}

func decodeAck(h packet.FixedHeader, body []byte, v packet.Version, a *packet.Puback) error {
	switch h.Type {
	case packet.PUBREC:
		return (*packet.Pubrec)(a).Decode(h.Flags, body, v)
	case packet.PUBCOMP:
		return (*packet.Pubcomp)(a).Decode(h.Flags, body, v)
	}
	return a.Decode(h.Flags, body, v)
}

// ---- outbound ----

// send encodes p and queues it for the writer, waiting while too many
// control packets are queued (back-pressure on a client that does not read).
func (c *conn) send(p packet.Packet) error {
	s := c.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := c.ctrlRoomLocked(); err != nil {
		return err
	}
	return c.appendCtrlLocked(p)
}

// ctrlRoomLocked waits while too many control packets are queued (the read
// loop then stops reading: back-pressure on a client that does not read)
// and fails once the connection is closing.
func (c *conn) ctrlRoomLocked() error {
	for len(c.ctrl) > maxCtrlBacklog && !c.closed {
		c.ctrlDrain.Wait()
	}
	if c.closed || c.closing {
		return errClosedByServer
	}
	return nil
}

// sendAck queues PUBACK, PUBREC, PUBREL or PUBCOMP without properties; it
// encodes in place, so acknowledging does not allocate.
func (c *conn) sendAck(t packet.Type, id uint16, rc packet.ReasonCode) error {
	s := c.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := c.ctrlRoomLocked(); err != nil {
		return err
	}
	c.appendAckLocked(t, id, rc)
	return nil
}

func (c *conn) appendAckLocked(t packet.Type, id uint16, rc packet.ReasonCode) {
	var err error
	a := packet.Puback{PacketID: id, ReasonCode: rc}
	switch t {
	case packet.PUBACK:
		c.ctrl, err = a.AppendTo(c.ctrl, c.version)
	case packet.PUBREC:
		c.ctrl, err = (*packet.Pubrec)(&a).AppendTo(c.ctrl, c.version)
	case packet.PUBREL:
		c.ctrl, err = (*packet.Pubrel)(&a).AppendTo(c.ctrl, c.version)
	case packet.PUBCOMP:
		c.ctrl, err = (*packet.Pubcomp)(&a).AppendTo(c.ctrl, c.version)
	}
	if err != nil {
		c.b.log.Error("encode acknowledgement", "type", t, "err", err)
		return
	}
	c.ctrlN++
	c.kickLocked()
}

func (c *conn) appendCtrlLocked(p packet.Packet) error {
	var err error
	n := len(c.ctrl)
	c.ctrl, err = p.AppendTo(c.ctrl, c.version)
	if err != nil {
		c.ctrl = c.ctrl[:n]
		return err
	}
	if c.maxOut > 0 && uint32(len(c.ctrl)-n) > c.maxOut {
		// The client cannot take it; drop the Reason String and User
		// Properties, which the standard lets a sender omit, and retry.
		c.ctrl = c.ctrl[:n]
		if stripped := stripOptionalProps(p); stripped != nil {
			c.ctrl, err = stripped.AppendTo(c.ctrl, c.version)
			if err != nil || uint32(len(c.ctrl)-n) > c.maxOut {
				c.ctrl = c.ctrl[:n]
			}
		}
	}
	if len(c.ctrl) > n {
		c.ctrlN++
	}
	c.kickLocked()
	return nil
}

// stripOptionalProps returns p without Reason String and User Properties,
// or nil if p has none to strip.
func stripOptionalProps(p packet.Packet) packet.Packet {
	strip := func(pr *packet.Properties) {
		pr.Clear(packet.PropReasonString)
		pr.Clear(packet.PropUser)
	}
	switch q := p.(type) {
	case *packet.Puback:
		cp := *q
		strip(&cp.Props)
		return &cp
	case *packet.Pubrec:
		cp := *q
		strip(&cp.Props)
		return &cp
	case *packet.Pubrel:
		cp := *q
		strip(&cp.Props)
		return &cp
	case *packet.Pubcomp:
		cp := *q
		strip(&cp.Props)
		return &cp
	case *packet.Suback:
		cp := *q
		strip(&cp.Props)
		return &cp
	case *packet.Unsuback:
		cp := *q
		strip(&cp.Props)
		return &cp
	case *packet.Disconnect:
		cp := *q
		strip(&cp.Props)
		return &cp
	case *packet.Connack:
		cp := *q
		strip(&cp.Props)
		return &cp
	case *packet.Auth:
		cp := *q
		strip(&cp.Props)
		return &cp
	}
	return nil
}

// kickLocked starts the writer if there is work and none runs.
func (c *conn) kickLocked() {
	if c.writing || c.closed {
		return
	}
	if len(c.ctrl) == 0 && !c.resend && (c.closing || c.sess == nil || c.sess.queue.len() == 0 || c.outWait) {
		if c.closing {
			c.closed = true
			c.nc.Close()
		}
		return
	}
	c.writing = true
	c.b.wg.Add(1)
	go c.writeLoop()
}

// writeLoop drains control packets and queued deliveries to the socket in
// batches, one Write call per batch.
func (c *conn) writeLoop() {
	defer c.b.wg.Done()
	s := c.sess
	bp := writeBufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= 1<<20 {
			*bp = buf[:0]
			writeBufPool.Put(bp)
		}
	}()
	var sent sentTally
	for {
		s.mu.Lock()
		if c.closed {
			c.writing = false
			s.mu.Unlock()
			return
		}
		buf = append(buf[:0], c.ctrl...)
		sent.ctrl, c.ctrlN = int64(c.ctrlN), 0
		if cap(c.ctrl) > 64<<10 {
			c.ctrl = nil
		} else {
			c.ctrl = c.ctrl[:0]
		}
		c.ctrlDrain.Broadcast()
		now := c.b.now()
		if !c.closing {
			if c.resend {
				c.resend = false
				buf = c.appendResendLocked(buf, now, &sent)
			}
			for s.queue.len() > 0 && len(buf) < writeBatch {
				d := s.queue.peek()
				if d.qos > 0 && len(s.inflight) >= c.recvMax {
					break // [MQTT-4.9.0-2] the client's Receive Maximum
				}
				if d.gate != nil && d.gate.Load() {
					break // kicked again once the publication is durable
				}
				if !c.outTokenLocked(now) {
					break // kicked again when the rate allows
				}
				buf = c.appendDeliveryLocked(buf, s.queue.pop(), now, 0, &sent)
			}
		}
		if len(buf) == 0 {
			c.writing = false
			if c.closing {
				c.closed = true
				c.nc.Close()
			}
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if len(c.sentOps) > 0 {
			c.commitSent()
		}
		c.b.stats.addSent(&sent)
		c.nc.SetWriteDeadline(time.Now().Add(c.b.conf().WriteTimeout))
		n, err := c.nc.Write(buf)
		c.b.stats.bytesSent.Add(int64(n))
		if err != nil {
			s.mu.Lock()
			c.writing = false
			c.closed = true
			c.ctrlDrain.Broadcast()
			s.mu.Unlock()
			c.nc.Close()
			return
		}
	}
}

// commitSent stores the packet identifiers of the messages about to be
// written. A QoS 2 message is written only after that commit: resent after
// a restart under another identifier, it could be delivered twice. QoS 1
// updates are not waited for (a duplicate is allowed at QoS 1).
func (c *conn) commitSent() {
	ops := slices.Clone(c.sentOps)
	c.sentOps = c.sentOps[:0]
	wait := false
	for i := range ops {
		if ops[i].Kind == store.PutEntry && ops[i].Entry.QoS == 2 {
			wait = true
			break
		}
	}
	if !wait {
		c.b.submit(ops, nil)
		return
	}
	done := make(chan error, 1)
	c.b.submit(ops, func(err error) { done <- err })
	if err := <-done; err != nil {
		c.b.logStoreError(err)
	}
}

// appendResendLocked re-sends unacknowledged messages after a session
// resumed: PUBLISH with DUP, or PUBREL for QoS 2 flows past PUBREC
// [MQTT-4.4.0-1], in their original order [MQTT-4.6.0-1].
func (c *conn) appendResendLocked(buf []byte, now time.Time, sent *sentTally) []byte {
	s := c.sess
	for _, id := range s.inflightInOrderLocked() {
		f := s.inflight[id]
		if f.released {
			var err error
			buf, err = (&packet.Pubrel{PacketID: id}).AppendTo(buf, c.version)
			if err != nil {
				c.b.log.Error("encode PUBREL", "err", err)
			} else {
				sent.ctrl++
			}
			continue
		}
		delete(s.inflight, id)
		buf = c.appendDeliveryLocked(buf, f.d, now, id, sent)
	}
	return buf
}

// appendDeliveryLocked encodes one delivery for this client. For QoS > 0 it
// takes a packet identifier, or, when id is non-zero, retransmits with that
// identifier and DUP set; either way it records the message in flight.
func (c *conn) appendDeliveryLocked(buf []byte, d delivery, now time.Time, id uint16, sent *sentTally) []byte {
	s := c.sess
	m := d.msg
	resend := id != 0
	secs, ok := m.remaining(now)
	persist := d.qos > 0 && s.persistentLocked() && c.b.persisting()
	if !ok {
		if !resend {
			c.b.stats.dropped(dropExpired) // [MQTT-3.3.2-5]
			if persist {
				c.sentOps = append(c.sentOps, deleteEntryOp(s, d.seq))
			}
			return buf
		}
		// Expiry no longer applies once a PUBLISH was sent
		// [MQTT-4.3.3-7]; the retransmission keeps the least value.
		secs = 1
	}
	var local packet.PublishShared
	sh, err := m.shared(&local)
	if err != nil {
		c.b.log.Error("encode PUBLISH", "topic", m.Topic, "err", err)
		return buf
	}
	// The shared part is validated and encoded once per message; each
	// copy adds its own fields [MQTT-3.3.4-3].
	p := packet.PublishFrame{Shared: sh, Payload: m.Payload, QoS: d.qos, Retain: d.retain, Dup: resend}
	var ids [4]uint32
	if c.version == packet.V5 {
		if m.hasExpiry() {
			p.HasExpiry, p.MessageExpiry = true, secs // [MQTT-3.3.2-6]
		}
		p.SubscriptionIDs = d.subIDs.appendTo(ids[:0]) // [MQTT-3.3.4-3]
		if alias, topicNeeded := c.outboundAliasLocked(m.Topic); alias != 0 {
			p.TopicAlias = alias
			p.OmitTopic = !topicNeeded
		}
	}
	if c.maxOut > 0 && uint32(p.Size(c.version)) > c.maxOut {
		// [MQTT-3.1.2-24] [MQTT-3.1.2-25] too large for the client:
		// discard as if sent.
		c.b.stats.dropped(dropTooLarge)
		if persist {
			c.sentOps = append(c.sentOps, deleteEntryOp(s, d.seq))
		}
		return buf
	}
	if d.qos > 0 {
		if id == 0 {
			id = s.nextPacketIDLocked()
			if persist {
				// The packet identifier is stored so that a restart
				// resends with the same one [MQTT-4.4.0-1].
				c.sentOps = append(c.sentOps, s.entryOpLocked(&d, id, false))
			}
		}
		p.PacketID = id
		if s.inflight == nil {
			s.inflight = make(map[uint16]outFlight)
		}
		s.inflight[id] = outFlight{d: d}
	}
	out, err := p.AppendTo(buf, c.version)
	if err != nil {
		c.b.log.Error("encode PUBLISH", "topic", m.Topic, "err", err)
		return buf
	}
	sent.addPublish(d.qos, len(out)-len(buf))
	return out
}

// outboundAliasLocked returns the topic alias to use for topic, 0 for
// none, and whether the topic name must still be sent (first use).
func (c *conn) outboundAliasLocked(t string) (uint16, bool) {
	if c.aliasMax == 0 {
		return 0, true
	}
	if a, ok := c.aliasesOut[t]; ok {
		return a, false
	}
	if len(c.aliasesOut) >= int(c.aliasMax) {
		return 0, true // aliases are never reassigned; later topics go without
	}
	if c.aliasesOut == nil {
		c.aliasesOut = make(map[string]uint16)
	}
	a := uint16(len(c.aliasesOut) + 1) // [MQTT-3.1.2-26] never above the client's maximum
	c.aliasesOut[t] = a
	return a, true
}

// authorizePublish asks the Authorizer whether the client may publish to
// topicName. The Authorizer may block (on a remote policy service, say),
// so the deliveries waiting in the kick queue go out first.
func (c *conn) authorizePublish(ctx context.Context, topicName string) bool {
	c.in.scratch.kicks.flush()
	return c.b.cfg.Authorizer.CanPublish(ctx, &c.info, topicName)
}

// disconnect sends a v5 DISCONNECT with rc (when the code is valid for
// DISCONNECT) and closes the connection once it is written [MQTT-4.13.1-1].
func (c *conn) disconnect(rc packet.ReasonCode, reason string) {
	if c.sess == nil {
		c.closeSocketAfterFlush()
		return
	}
	c.sess.mu.Lock()
	c.disconnectLocked(rc, reason)
	c.sess.mu.Unlock()
}

func (c *conn) disconnectLocked(rc packet.ReasonCode, reason string) {
	if c.closed || c.closing {
		return
	}
	if c.version == packet.V5 {
		if !rc.ValidFor(packet.DISCONNECT) {
			if rc == packet.PacketTooLarge || rc < 0x80 {
				rc = packet.UnspecifiedError
			} else {
				rc = packet.ProtocolError
			}
		}
		d := &packet.Disconnect{ReasonCode: rc}
		if c.problemInfo {
			d.Props.ReasonString = reason
		}
		c.appendCtrlLocked(d)
	}
	c.serverReason = rc
	c.closing = true
	c.ctrlDrain.Broadcast()
	c.kickLocked()
}

// closeSocketAfterFlush closes a connection that has no session: what
// serve already wrote directly is on the wire.
func (c *conn) closeSocketAfterFlush() {
	c.nc.Close()
}

// ---- inbound packets ----

func (c *conn) handlePublish(ctx context.Context, h packet.FixedHeader, body []byte) error {
	if c.in == nil {
		c.in = new(inbound)
	}
	p, sc := &c.in.pub, &c.in.scratch
	sc.kq = &sc.kicks
	sc.kicks.packets++
	if err := p.Decode(h.Flags, body, c.version); err != nil {
		return err
	}
	c.b.stats.publishReceived.Add(1)
	caps := &c.cfg.Capabilities // as told in CONNACK
	if p.QoS > caps.MaximumQoS {
		// [MQTT-3.2.2-11] receiver side: QoS not supported.
		return &packet.Error{Code: packet.QoSNotSupported, Type: packet.PUBLISH, Reason: "QoS above Maximum QoS"}
	}
	if p.Retain && caps.DisableRetain {
		return &packet.Error{Code: packet.RetainNotSupported, Type: packet.PUBLISH, Reason: "retain not available"}
	}
	if len(p.Props.SubscriptionIDs) > 0 {
		// [MQTT-3.3.4-6] a client must not send Subscription Identifiers.
		return &packet.Error{Code: packet.ProtocolError, Type: packet.PUBLISH, Reason: "Subscription Identifier from client"}
	}
	topicName := p.Topic
	if a := p.Props.TopicAlias; a != 0 {
		if a > caps.TopicAliasMaximum {
			// [MQTT-3.3.2-9] [MQTT-3.3.2-10]
			return &packet.Error{Code: packet.TopicAliasInvalid, Type: packet.PUBLISH, Reason: "topic alias above maximum"}
		}
		if topicName != "" {
			if c.aliases == nil {
				c.aliases = make(map[uint16]string)
			}
			if old, ok := c.aliases[a]; !ok || old != topicName {
				c.aliases[a] = strings.Clone(topicName)
			}
			topicName = c.aliases[a]
		} else {
			t, ok := c.aliases[a]
			if !ok {
				return &packet.Error{Code: packet.ProtocolError, Type: packet.PUBLISH, Reason: "unknown topic alias"}
			}
			topicName = t
		}
	} else if topicName == "" {
		return &packet.Error{Code: packet.ProtocolError, Type: packet.PUBLISH, Reason: "empty topic without alias"}
	}
	if err := c.b.topicLimits.ValidateName(topicName); err != nil {
		// [MQTT-3.3.2-2] no wildcards in a topic name.
		return &packet.Error{Code: packet.TopicNameInvalid, Type: packet.PUBLISH, Reason: err.Error()}
	}
	if rt := p.Props.ResponseTopic; rt != "" || p.Props.Has(packet.PropResponseTopic) {
		if err := c.b.topicLimits.ValidateName(rt); err != nil {
			// [MQTT-3.3.2-14] a Response Topic is a topic name: no wildcards.
			return &packet.Error{Code: packet.ProtocolError, Type: packet.PUBLISH, Reason: "invalid Response Topic: " + err.Error()}
		}
	}
	s := c.sess
	if p.QoS == 2 {
		s.mu.Lock()
		_, dup := s.inQoS2[p.PacketID]
		// 3.1.1 has no Receive Maximum: its flows are bounded by the
		// 65,535 packet identifiers only.
		if !dup && c.version == packet.V5 && len(s.inQoS2) >= int(caps.ReceiveMaximum) {
			s.mu.Unlock()
			// [MQTT-3.3.4-9] more than Receive Maximum QoS 2 flows open.
			return &packet.Error{Code: packet.ReceiveMaximumExceeded, Type: packet.PUBLISH, Reason: "receive maximum exceeded"}
		}
		s.mu.Unlock()
		if dup {
			// [MQTT-4.3.3-9] already received: acknowledge, do not route again.
			return c.sendAck(packet.PUBREC, p.PacketID, packet.Success)
		}
	}
	rc := packet.Success
	switch {
	case !c.inboundAllowed(h.Size()):
		if err := c.overRate(); err != nil {
			return err
		}
		rc = packet.QuotaExceeded // the message is not routed
	case strings.HasPrefix(topicName, "$"):
		// $SYS and other $ topics are the broker's; clients may not publish.
		rc = packet.NotAuthorized
	case p.Props.PayloadFormat == 1 && !packet.ValidUTF8(p.Payload) && p.QoS > 0:
		rc = packet.PayloadFormatInvalid
	case c.b.cfg.Authorizer != nil && !c.trusted && !c.authorizePublish(ctx, topicName):
		rc = packet.NotAuthorized
	}
	sc.ops = sc.ops[:0]
	sc.waiting = sc.waiting[:0]
	sc.gate = nil
	if rc == packet.Success {
		m := c.b.newMessage(p, topicName, c.info.ClientID)
		if hs := c.b.hooks.set.Load(); hs != nil && len(hs.publish) > 0 {
			sc.kicks.flush()                                   // a hook may block: earlier deliveries go first
			m, rc = c.b.hooks.onPublish(ctx, c, hs.publish, m) // nil: not to be routed
		}
		if m != nil {
			if c.b.conf().Stamp.enabled() {
				c.b.stamp(m, &c.info)
			}
			if n := c.b.publish(m, s, sc); n == 0 && c.version == packet.V5 {
				rc = packet.NoMatchingSubscribers
			}
		}
	}
	if rc.IsError() && c.version == packet.V311 {
		rc = packet.Success // 3.1.1 cannot report it; acknowledge and drop
	}
	ackType := packet.PUBACK
	if p.QoS == 2 {
		ackType = packet.PUBREC
		if !rc.IsError() {
			s.mu.Lock()
			if s.inQoS2 == nil {
				s.inQoS2 = make(map[uint16]struct{})
			}
			s.inQoS2[p.PacketID] = struct{}{}
			if s.persistentLocked() && c.b.persisting() {
				// Durable with the deliveries, before PUBREC: a
				// retransmission after a restart is not routed again.
				sc.ops = append(sc.ops, s.sessionOpLocked())
			}
			s.mu.Unlock()
		}
	}
	if p.QoS == 0 {
		c.b.submitPublication(sc, nil)
		return nil
	}
	// Acknowledge once the store has committed the publication: never
	// before the message is durable for its persistent subscribers.
	if len(sc.ops) == 0 {
		return c.ackAfter(nil, ackType, p.PacketID, rc, nil)
	}
	gate, waiting := sc.gate, slices.Clone(sc.waiting)
	return c.ackAfter(slices.Clone(sc.ops), ackType, p.PacketID, rc, func(error) {
		if gate != nil {
			committed(gate, waiting)
		}
	})
}

// maxPendingAcks bounds publications waiting for the store on one
// connection; the read loop waits beyond it (3.1.1 clients have no Receive
// Maximum to bound them).
const maxPendingAcks = 4096

func (c *conn) waitAckBacklog() error {
	if c.pendingAcks.Load() < maxPendingAcks {
		return nil
	}
	c.flushKicks() // called on the read loop, which is about to wait
	s := c.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	for c.pendingAcks.Load() >= maxPendingAcks && !c.closed {
		c.ctrlDrain.Wait()
	}
	if c.closed {
		return errClosedByServer
	}
	return nil
}

func (c *conn) handlePubrel(a *packet.Pubrel) error {
	s := c.sess
	s.mu.Lock()
	_, ok := s.inQoS2[a.PacketID]
	delete(s.inQoS2, a.PacketID)
	var ops []store.Op
	if ok && s.persistentLocked() && c.b.persisting() {
		ops = []store.Op{s.sessionOpLocked()}
	}
	s.mu.Unlock()
	rc := packet.Success
	if !ok {
		rc = packet.PacketIdentifierNotFound
	}
	// [MQTT-4.3.3-11] PUBCOMP; with persistence only once the identifier's
	// release is durable, or a crash would leave it marked as received and
	// the client's next message with the identifier would be taken for a
	// retransmission.
	return c.ackAfter(ops, packet.PUBCOMP, a.PacketID, rc, nil)
}

// ackAfter sends an acknowledgement once ops are committed (at once when
// there are none and no earlier acknowledgement waits for the store).
// Acknowledgements keep their order: while one waits for the store, later
// ones queue behind it. before, if not nil, runs after the commit and
// before the acknowledgement is queued.
func (c *conn) ackAfter(ops []store.Op, t packet.Type, id uint16, rc packet.ReasonCode, before func(error)) error {
	if len(ops) == 0 && c.pendingAcks.Load() == 0 {
		if before != nil {
			before(nil)
		}
		return c.sendAck(t, id, rc)
	}
	if err := c.waitAckBacklog(); err != nil {
		return err
	}
	s := c.sess
	c.pendingAcks.Add(1)
	c.b.submit(ops, func(err error) {
		if before != nil {
			before(err)
		}
		code := rc
		if err != nil {
			c.b.logStoreError(err)
			if t != packet.PUBREL && t != packet.PUBCOMP {
				code = packet.UnspecifiedError // the publisher may retry
			}
		}
		c.sendAck(t, id, code)
		s.mu.Lock()
		c.pendingAcks.Add(-1)
		c.ctrlDrain.Broadcast()
		s.mu.Unlock()
	})
	return nil
}

func (c *conn) handleAck(t packet.Type, a *packet.Puback) {
	s := c.sess
	s.mu.Lock()
	f, ok := s.inflight[a.PacketID]
	if !ok {
		s.mu.Unlock()
		return // unknown or already completed: nothing to do
	}
	var op store.Op
	switch t {
	case packet.PUBACK:
		if f.d.qos != 1 {
			s.mu.Unlock()
			return
		}
		delete(s.inflight, a.PacketID)
		op = deleteEntryOp(s, f.d.seq)
		c.b.hooks.delivered(c, &f.d, a.PacketID)
	case packet.PUBREC:
		if f.d.qos != 2 {
			s.mu.Unlock()
			return
		}
		if a.ReasonCode.IsError() {
			delete(s.inflight, a.PacketID) // [MQTT-4.3.3-4] the flow ends
			op = deleteEntryOp(s, f.d.seq)
			break
		}
		f.released = true // the message is kept: the stored entry needs it
		s.inflight[a.PacketID] = f
		if s.persistentLocked() && c.b.persisting() {
			// PUBREL only once the released state is durable: after a
			// crash the PUBLISH would be resent, and a client that had
			// completed the flow would take it for a new message.
			ops := []store.Op{s.entryOpLocked(&f.d, a.PacketID, true)}
			s.mu.Unlock()
			if err := c.ackAfter(ops, packet.PUBREL, a.PacketID, packet.Success, nil); err != nil {
				c.b.log.Debug("PUBREL not sent", "err", err)
			}
			return
		}
		c.appendAckLocked(packet.PUBREL, a.PacketID, packet.Success)
	case packet.PUBCOMP:
		if !f.released {
			s.mu.Unlock()
			return
		}
		delete(s.inflight, a.PacketID)
		op = deleteEntryOp(s, f.d.seq)
		c.b.hooks.delivered(c, &f.d, a.PacketID)
	}
	c.kickLocked()
	persist := s.persistentLocked()
	s.mu.Unlock()
	if persist {
		c.b.submit([]store.Op{op}, nil)
	}
}

func (c *conn) handleDisconnect(d *packet.Disconnect) error {
	s := c.sess
	if d.Props.Has(packet.PropSessionExpiry) {
		s.mu.Lock()
		cur := s.expiry
		s.mu.Unlock()
		if cur == 0 && d.Props.SessionExpiry != 0 {
			// [MQTT-3.14.2-2] cannot set a non-zero expiry after 0.
			return &packet.Error{Code: packet.ProtocolError, Type: packet.DISCONNECT, Reason: "session expiry raised from 0"}
		}
		s.mu.Lock()
		s.expiry = min(d.Props.SessionExpiry, c.cfg.Capabilities.MaxSessionExpiry)
		s.mu.Unlock()
	}
	c.clientReason = d.ReasonCode
	if d.ReasonCode == packet.DisconnectWithWillMessage {
		return errWillDisconnect
	}
	// [MQTT-3.1.2-10] [MQTT-3.14.4-3] normal disconnection discards the will.
	s.mu.Lock() // a takeover reads the will under the session lock
	c.will = nil
	s.mu.Unlock()
	return errNormalDisconnect
}

// ---- subscribe ----

func (c *conn) handleSubscribe(ctx context.Context, sp *packet.Subscribe) error {
	caps := &c.cfg.Capabilities // as told in CONNACK
	subID := uint32(0)
	if len(sp.Props.SubscriptionIDs) > 0 {
		if caps.DisableSubscriptionIdentifiers {
			return &packet.Error{Code: packet.SubscriptionIdentifiersNotSupported, Type: packet.SUBSCRIBE, Reason: "subscription identifiers not supported"}
		}
		subID = sp.Props.SubscriptionIDs[0]
	}
	codes := make([]packet.ReasonCode, len(sp.Subscriptions))
	type accepted struct {
		i      int
		filter string
		opts   subOpts
		shared bool
	}
	var ok []accepted
	// First pass, without locks: validation and authorisation.
	for i, sub := range sp.Subscriptions {
		filter := sub.Filter
		_, inner, shared, err := topic.ParseShared(filter)
		if !shared {
			inner = filter
		}
		switch {
		case err != nil:
			codes[i] = packet.TopicFilterInvalid
			continue
		case shared && sub.NoLocal:
			// [MQTT-3.8.3-4] No Local on a shared subscription.
			return &packet.Error{Code: packet.ProtocolError, Type: packet.SUBSCRIBE, Reason: "No Local on a shared subscription"}
		}
		if err := c.b.topicLimits.ValidateFilter(filter); err != nil {
			codes[i] = packet.TopicFilterInvalid
			continue
		}
		if shared && caps.DisableSharedSubscriptions {
			codes[i] = packet.SharedSubscriptionsNotSupported
			continue
		}
		if caps.DisableWildcardSubscriptions && strings.ContainsAny(inner, "+#") {
			codes[i] = packet.WildcardSubscriptionsNotSupported
			continue
		}
		if c.b.cfg.Authorizer != nil && !c.trusted && !c.b.cfg.Authorizer.CanSubscribe(ctx, &c.info, inner) {
			codes[i] = packet.NotAuthorized
			continue
		}
		qos := min(sub.QoS, caps.MaximumQoS) // [MQTT-3.8.4-6] granted may be lower
		ok = append(ok, accepted{i, strings.Clone(filter), subOpts{qos: qos, noLocal: sub.NoLocal, rap: sub.RetainAsPublished, rh: sub.RetainHandling, subID: subID}, shared})
	}
	// Second pass, under the session lock: the subscriptions, the retained
	// messages and the SUBACK are queued together, so a message published
	// after the SUBACK cannot overtake a retained one [MQTT-4.6.0-5], and
	// the SUBACK goes first (control packets precede queued messages).
	s := c.sess
	var ops []store.Op
	var opp *[]store.Op
	if c.b.persisting() {
		opp = &ops
	}
	s.mu.Lock()
	if err := c.ctrlRoomLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	for _, a := range ok {
		_, existed := s.subs[a.filter]
		if !existed && !within(len(s.subs), c.b.conf().Limits.MaxSubscriptionsPerClient) {
			codes[a.i] = packet.QuotaExceeded
			continue
		}
		// [MQTT-3.8.4-3] a repeated filter replaces the old subscription.
		if _, err := c.b.router.subscribe(a.filter, s, a.opts); err != nil {
			codes[a.i] = packet.TopicFilterInvalid
			continue
		}
		if s.subs == nil {
			s.subs = make(map[string]subOpts)
		}
		s.subs[a.filter] = a.opts
		codes[a.i] = packet.ReasonCode(a.opts.qos)
		// [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]; never for shared
		// subscriptions.
		if !a.shared && (a.opts.rh == 0 || (a.opts.rh == 1 && !existed)) {
			c.b.sendRetainedLocked(s, a.filter, a.opts, opp)
		}
	}
	if c.version == packet.V311 {
		for i, rc := range codes {
			if rc.IsError() {
				codes[i] = packet.V3SubackFailure
			}
		}
	}
	if opp != nil && len(ok) > 0 && s.persistentLocked() {
		ops = append(ops, s.sessionOpLocked())
	}
	// [MQTT-3.8.4-1] SUBACK with the same packet identifier, one code per
	// filter in order [MQTT-3.9.3-1].
	err := c.appendCtrlLocked(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: codes})
	s.mu.Unlock()
	c.b.submit(ops, nil)
	c.b.hooks.subscribed(c, sp.Subscriptions, codes)
	return err
}

func (c *conn) handleUnsubscribe(u *packet.Unsubscribe) error {
	s := c.sess
	codes := make([]packet.ReasonCode, len(u.Filters))
	var taken []delivery
	for i, f := range u.Filters {
		s.mu.Lock()
		_, ok := s.subs[f]
		delete(s.subs, f)
		s.mu.Unlock()
		if ok && c.b.router.unsubscribe(f, s) {
			codes[i] = packet.Success
			if _, _, shared, _ := topic.ParseShared(f); shared {
				s.mu.Lock()
				taken = append(taken, s.takeSharedLocked()...)
				s.mu.Unlock()
			}
		} else {
			codes[i] = packet.NoSubscriptionExisted
		}
	}
	c.b.redispatch(taken, s)
	c.b.saveSession(s)
	c.b.hooks.unsubscribed(c, u.Filters, codes)
	// [MQTT-3.10.4-4] UNSUBACK even when nothing matched.
	return c.send(&packet.Unsuback{PacketID: u.PacketID, ReasonCodes: codes})
}

// ---- end of a connection ----

// end runs when the read loop returns: it detaches the session, handles the
// will and closes the socket.
func (c *conn) end(err error) {
	s := c.sess
	switch {
	case errors.Is(err, errNormalDisconnect):
	case errors.Is(err, errWillDisconnect):
		c.b.log.Debug("client disconnected with will", "client", c.info.ClientID)
	default:
		c.b.log.Debug("connection lost", "client", c.info.ClientID, "err", err)
	}
	c.b.detach(c, s)
	s.mu.Lock()
	if c.outTimer != nil {
		c.outTimer.Stop()
	}
	if c.credTimer != nil {
		c.credTimer.Stop()
		c.credTimer = nil
	}
	if !c.closing {
		c.closed = true
		c.ctrlDrain.Broadcast()
		s.mu.Unlock()
		c.nc.Close()
	} else {
		s.mu.Unlock()
	}
	c.b.hooks.disconnected(c, err)
}

// setCredentialExpiry ends the connection with DISCONNECT 0x87 when its
// credentials expire at t (zero: never), replacing an earlier limit.
func (c *conn) setCredentialExpiry(t time.Time) {
	s := c.sess
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.credTimer != nil {
		c.credTimer.Stop()
		c.credTimer = nil
	}
	if t.IsZero() || c.closed || c.closing {
		return
	}
	c.credTimer = time.AfterFunc(time.Until(t), func() {
		c.b.log.Info("credentials expired; disconnecting", "client", c.info.ClientID)
		c.disconnect(packet.NotAuthorized, "credentials expired")
	})
}

// ---- idle read side ----

// parkAfter is how long a plain TCP connection's read side stays idle, with
// nothing buffered, before it is parked: its read goroutine and read buffer
// are given up until the socket is readable again. A wake-up costs a
// goroutine start and an epoll_ctl call, which only connections that pause
// this long pay.
var parkAfter = 250 * time.Millisecond

const (
	parkRunning int32 = iota // a goroutine owns the read side
	parkParked               // the parker holds the connection
)

var (
	// errPark, from sockReader: the connection is idle, park it.
	errPark = errors.New("idle")
	// errParked, from readLoop: the connection was parked.
	errParked = errors.New("parked")
)

// sockReader is the socket as the connection's packet.Reader reads it.
// Read deadlines are hints: when one passes, the clock decides whether the
// keep alive expired (the timeout is returned), whether the connection is
// idle (errPark), or whether to set the next deadline and read on. So a
// deadline may be set early, never late, and a busy connection need not
// move it on every packet.
type sockReader conn

func (r *sockReader) Read(p []byte) (int, error) {
	c := (*conn)(r)
	for {
		n, err := c.nc.Read(p)
		if n > 0 || err == nil || c.lastRead == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err // the handshake sets its own deadline
		}
		now := c.clock()
		if c.keepAlive > 0 && now >= c.kaAt {
			return 0, err // [MQTT-3.1.2-22] one and a half times the keep alive
		}
		if c.idleAt() <= now && c.r.Buffered() == 0 && (c.keepAlive == 0 || c.kaAt-now >= int64(parkAfter)) {
			return 0, errPark
		}
		next := c.nextCheck()
		if next != 0 && next <= now {
			// Idle, but not to be parked (in the middle of a packet, or
			// the keep alive expires soon): wait for data or the keep
			// alive only.
			next = 0
			if c.keepAlive > 0 {
				next = c.kaAt
			}
		}
		c.setReadDeadline(next)
	}
}

// clock is the time in nanoseconds since the broker started (monotonic),
// plus one so that it is never 0 (lastRead 0 means "before the read loop").
func (c *conn) clock() int64 { return int64(time.Since(c.b.started)) + 1 }

// idleAt is when the read side counts as idle, or math.MaxInt64 when it
// cannot be parked.
func (c *conn) idleAt() int64 {
	if !c.mayPark || c.woke {
		return math.MaxInt64
	}
	return c.lastRead + int64(parkAfter)
}

// nextCheck is when the read side must next look at the clock (0: never).
func (c *conn) nextCheck() int64 {
	next := c.idleAt()
	if c.keepAlive > 0 {
		next = min(next, c.kaAt)
	}
	if next == math.MaxInt64 {
		return 0
	}
	return next
}

// readDeadlineSets counts setReadDeadline calls (tests check that an idle
// connection does not spin on its deadline).
var readDeadlineSets atomic.Uint64

func (c *conn) setReadDeadline(at int64) {
	readDeadlineSets.Add(1)
	c.rdl = at
	if at == 0 {
		c.nc.SetReadDeadline(time.Time{})
		return
	}
	c.nc.SetReadDeadline(c.b.started.Add(time.Duration(at - 1))) // see clock
}

// touchRead records that a packet was handled: the keep alive starts again
// [MQTT-3.1.2-22] and so does the idle period. The socket's deadline is
// moved only when it is more than half an idle period early.
func (c *conn) touchRead() {
	now := c.clock()
	c.lastRead = now
	c.woke = false
	if c.keepAlive > 0 {
		c.kaAt = now + int64(c.keepAlive*3/2)
	}
	next := c.nextCheck()
	if next == c.rdl || (c.rdl != 0 && next != 0 && c.rdl <= next && next-c.rdl < int64(parkAfter/2)) {
		return
	}
	c.setReadDeadline(next)
}

// park hands the idle connection to the parker, dropping its read buffer.
// On true the caller must not touch c again.
func (c *conn) park() bool {
	tc, ok := c.nc.(*tcpConn)
	if !ok {
		return false
	}
	var ka time.Duration
	if c.keepAlive > 0 {
		ka = time.Duration(c.kaAt - c.clock())
	}
	c.r.Reset((*sockReader)(c))
	if s := c.sess; s != nil {
		s.mu.Lock()
		if !c.writing && len(c.ctrl) == 0 {
			c.ctrl = nil // the control-packet buffer goes too
		}
		s.mu.Unlock()
	}
	return c.b.parker.add(c, tc.TCPConn, ka)
}

// keepAliveWake runs when a parked connection's keep alive expires: the
// read loop finds the deadline passed and disconnects it.
func (c *conn) keepAliveWake() {
	if c.b.parker.claim(c) {
		c.resume()
	}
}

// tcpConn is a plain TCP connection whose Close also wakes its connection
// when parked, so that the read side ends.
type tcpConn struct {
	*net.TCPConn
	c *conn
}

func (t *tcpConn) Close() error {
	err := t.TCPConn.Close()
	if c := t.c; c.pstate.Load() == parkParked && c.b.parker.claim(c) {
		go c.resume()
	}
	return err
}
