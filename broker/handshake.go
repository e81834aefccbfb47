package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// writeDirect writes p straight to the socket; used before a session is
// attached (CONNACK refusals, AUTH challenges), when no writer exists.
func (c *conn) writeDirect(p packet.Packet, v packet.Version) error {
	buf, err := p.AppendTo(nil, v)
	if err != nil {
		return err
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.b.conf().WriteTimeout))
	c.b.stats.ctrlSent.Add(1)
	n, err := c.nc.Write(buf)
	c.b.stats.bytesSent.Add(int64(n))
	return err
}

// refuse answers a CONNECT with a failing CONNACK in the client's dialect
// and returns an error for serve to close the connection with
// [MQTT-3.2.2-7] [MQTT-3.1.4-6].
func (c *conn) refuse(v packet.Version, rc packet.ReasonCode, reason string) error {
	ack := &packet.Connack{ReasonCode: rc}
	if v == packet.V5 {
		if !rc.ValidFor(packet.CONNACK) {
			ack.ReasonCode = packet.UnspecifiedError
		}
	} else {
		ack.ReasonCode = v3ConnackCode(rc)
	}
	c.writeRefusal(ack, v, reason)
	return fmt.Errorf("connect refused: %s: %w", reason, rc)
}

// writeRefusal writes a failing CONNACK, with reason as its Reason String
// when the v5 client asked for problem information.
func (c *conn) writeRefusal(ack *packet.Connack, v packet.Version, reason string) {
	if v == packet.V5 && c.problemInfo {
		ack.Props.ReasonString = reason
	}
	if c.maxOut > 0 {
		if buf, err := ack.AppendTo(nil, v); err == nil && uint32(len(buf)) > c.maxOut {
			// [MQTT-3.2.2-19] [MQTT-3.1.2-24] drop the optional properties.
			ack.Props.Clear(packet.PropReasonString)
			ack.Props.Clear(packet.PropUser)
		}
	}
	c.writeDirect(ack, v)
}

// v3ConnackCode maps a v5 reason code to the nearest 3.1.1 return code.
func v3ConnackCode(rc packet.ReasonCode) packet.ReasonCode {
	switch rc {
	case packet.Success:
		return packet.V3Accepted
	case packet.UnsupportedProtocolVersion:
		return packet.V3UnacceptableProtocolVersion
	case packet.ClientIdentifierNotValid:
		return packet.V3IdentifierRejected
	case packet.ServerUnavailable, packet.ServerBusy, packet.QuotaExceeded, packet.ConnectionRateExceeded, packet.ServerShuttingDown:
		return packet.V3ServerUnavailable
	case packet.BadUserNameOrPassword:
		return packet.V3BadUserNameOrPassword
	}
	return packet.V3NotAuthorized
}

// handshake reads CONNECT, authenticates, attaches the session and queues
// CONNACK.
func (c *conn) handshake(ctx context.Context) error {
	cfg := c.cfg // settings when the connection was accepted
	deadline := time.Now().Add(cfg.ConnectTimeout)
	c.nc.SetReadDeadline(deadline)
	h, body, err := c.r.ReadRaw(packet.V5)
	if err != nil {
		return err
	}
	if h.Type != packet.CONNECT {
		// [MQTT-3.1.0-1] the first packet must be CONNECT.
		return fmt.Errorf("first packet is %s, not CONNECT: %w", h.Type, packet.ProtocolError)
	}
	var cp packet.Connect
	if err := cp.Decode(h.Flags, body, 0); err != nil {
		code := packet.CodeOf(err)
		switch {
		case code == packet.UnsupportedProtocolVersion && cp.Version == packet.V5:
			return c.refuse(packet.V5, code, err.Error())
		case code == packet.UnsupportedProtocolVersion:
			// [MQTT-3.1.2-2] answer in 3.1.1 form with 0x01, then close.
			return c.refuse(packet.V311, code, err.Error())
		case cp.Version == packet.V5:
			return c.refuse(packet.V5, code, err.Error())
		}
		return err
	}
	c.version = cp.Version
	c.problemInfo = c.version == packet.V5 && cp.Props.WantsProblemInfo()
	if c.version == packet.V5 {
		c.maxOut = cp.Props.MaximumPacketSize // also bounds a refusing CONNACK
	}
	v := c.version

	if c.b.stats.connections.Load() > int64(cfg.Limits.MaxConnections) && cfg.Limits.MaxConnections > 0 {
		return c.refuse(v, packet.QuotaExceeded, "too many connections")
	}

	// Client identifier [MQTT-3.1.3-3] .. [MQTT-3.1.3-8].
	clientID := strings.Clone(cp.ClientID)
	assigned := false
	if len(clientID) > cfg.Limits.MaxClientIDLength && cfg.Limits.MaxClientIDLength > 0 {
		return c.refuse(v, packet.ClientIdentifierNotValid, "client identifier too long")
	}
	if clientID == "" {
		if v == packet.V311 && !cp.CleanStart {
			// [MQTT-3.1.3-8] 3.1.1: empty id needs clean session.
			return c.refuse(v, packet.ClientIdentifierNotValid, "empty client identifier without clean session")
		}
		assigned = true
	}
	if lb := &cfg.LoadBalancer; lb.enabled() && !lb.AfterAuth {
		if done, err := c.loadBalance(clientID); done {
			return err
		}
	}

	// Will [MQTT-3.1.2-12] .. [MQTT-3.1.2-15], [MQTT-3.2.2-12], [MQTT-3.2.2-13].
	if w := cp.Will; w != nil {
		if w.QoS > cfg.Capabilities.MaximumQoS {
			return c.refuse(v, packet.QoSNotSupported, "will QoS above maximum QoS")
		}
		if w.Retain && cfg.Capabilities.DisableRetain {
			return c.refuse(v, packet.RetainNotSupported, "will retain not available")
		}
		if err := c.b.topicLimits.ValidateName(w.Topic); err != nil {
			return c.refuse(v, packet.TopicNameInvalid, "will topic: "+err.Error())
		}
		if rt := w.Props.ResponseTopic; rt != "" || w.Props.Has(packet.PropResponseTopic) {
			if err := c.b.topicLimits.ValidateName(rt); err != nil {
				return c.refuse(v, packet.ProtocolError, "will Response Topic: "+err.Error()) // [MQTT-3.3.2-14]
			}
		}
		if w.Props.PayloadFormat == 1 && !packet.ValidUTF8(w.Payload) {
			return c.refuse(v, packet.PayloadFormatInvalid, "will payload is not UTF-8")
		}
		m := c.b.newMessage(&packet.Publish{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain, Props: w.Props}, w.Topic, "")
		c.will = m
		c.willDelay = w.Props.WillDelay
	}

	// Authentication.
	c.info.ClientID = clientID
	c.info.Username = strings.Clone(cp.Username)
	c.info.Version = v
	ack := &packet.Connack{}
	req := &AuthRequest{Client: &c.info, Password: cp.Password}
	if v == packet.V5 && cp.Props.AuthMethod != "" {
		c.authMethod = strings.Clone(cp.Props.AuthMethod)
		req.Method = c.authMethod
		req.Data = cp.Props.AuthData
	}
	var credExpires time.Time
	for {
		var res AuthResult
		if c.trusted {
			res = AuthResult{Code: packet.Success}
		} else {
			res = cfg.Authenticator.Authenticate(ctx, req)
		}
		if res.Code == packet.ContinueAuthentication && c.authMethod != "" {
			// [MQTT-4.12.0-2] continue the exchange with AUTH 0x18.
			a := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
			a.Props.AuthMethod = c.authMethod
			a.Props.AuthData = res.Data
			if err := c.writeDirect(a, v); err != nil {
				return err
			}
			ah, abody, err := c.r.ReadRaw(v)
			if err != nil {
				return err
			}
			if ah.Type != packet.AUTH {
				// [MQTT-4.12.0-?] only AUTH or DISCONNECT while authenticating.
				return c.refuse(v, packet.ProtocolError, "expected AUTH during authentication")
			}
			var in packet.Auth
			if err := in.Decode(ah.Flags, abody, v); err != nil {
				return c.refuse(v, packet.CodeOf(err), err.Error())
			}
			if in.ReasonCode != packet.ContinueAuthentication || in.Props.AuthMethod != c.authMethod {
				// [MQTT-4.12.0-5] same method throughout.
				return c.refuse(v, packet.ProtocolError, "unexpected AUTH reason code or method")
			}
			req.Step++
			req.Data = in.Props.AuthData
			req.State = res.State
			continue
		}
		if res.Code != packet.Success {
			rc := res.Code
			if rc == packet.ContinueAuthentication || !rc.IsError() {
				rc = packet.NotAuthorized
			}
			reason := res.Reason
			if reason == "" {
				reason = rc.String()
			}
			return c.refuse(v, rc, reason)
		}
		if res.Username != "" {
			c.info.Username = res.Username
		}
		if res.Attributes != nil {
			c.info.Attributes = maps.Clone(res.Attributes)
		}
		c.authState = res.State
		credExpires = res.Expires
		if c.authMethod != "" {
			ack.Props.AuthMethod = c.authMethod
			ack.Props.AuthData = res.Data
		}
		break
	}
	if lb := &cfg.LoadBalancer; lb.enabled() && lb.AfterAuth {
		// Only now: a client that failed authentication learns nothing
		// about the backends.
		if done, err := c.loadBalance(clientID); done {
			return err
		}
	}

	// Negotiated values.
	caps := &cfg.Capabilities
	c.keepAlive = time.Duration(cp.KeepAlive) * time.Second
	if v == packet.V5 {
		ka := cp.KeepAlive
		switch {
		case caps.ServerKeepAlive != 0:
			ka = caps.ServerKeepAlive
		case caps.MaxKeepAlive != 0 && (ka == 0 || ka > caps.MaxKeepAlive):
			ka = caps.MaxKeepAlive
		}
		if ka != cp.KeepAlive {
			// [MQTT-3.2.2-21] the client must use the Server Keep Alive.
			ack.Props.ServerKeepAlive = ka
			ack.Props.Set(packet.PropServerKeepAlive)
		}
		c.keepAlive = time.Duration(ka) * time.Second
	}
	var expiry uint32
	if v == packet.V5 {
		expiry = cp.Props.SessionExpiry
		if expiry > caps.MaxSessionExpiry {
			expiry = caps.MaxSessionExpiry
			ack.Props.SessionExpiry = expiry
			ack.Props.Set(packet.PropSessionExpiry)
		}
		c.recvMax = min(int(cp.Props.EffectiveReceiveMaximum()), cfg.Limits.MaxInflight)
		c.maxOut = cp.Props.MaximumPacketSize
		c.aliasMax = min(cp.Props.TopicAliasMaximum, caps.OutboundTopicAliases)
		if cp.Props.RequestResponseInfo == 1 && caps.ResponseInformation != "" {
			ack.Props.ResponseInfo = caps.ResponseInformation
		}
		if caps.MaximumQoS < 2 {
			ack.Props.MaximumQoS = caps.MaximumQoS
			ack.Props.Set(packet.PropMaximumQoS)
		}
		if caps.DisableRetain {
			ack.Props.Set(packet.PropRetainAvailable)
		}
		if caps.DisableWildcardSubscriptions {
			ack.Props.Set(packet.PropWildcardSubAvailable)
		}
		if caps.DisableSubscriptionIdentifiers {
			ack.Props.Set(packet.PropSubIDAvailable)
		}
		if caps.DisableSharedSubscriptions {
			ack.Props.Set(packet.PropSharedSubAvailable)
		}
		ack.Props.ReceiveMaximum = caps.ReceiveMaximum
		ack.Props.TopicAliasMaximum = caps.TopicAliasMaximum
		ack.Props.MaximumPacketSize = caps.MaximumPacketSize
	} else {
		if !cp.CleanStart {
			expiry = min(0xFFFFFFFF, caps.MaxSessionExpiry) // 3.1.1 persistent session
		}
		c.recvMax = cfg.Limits.MaxInflight
	}
	if c.recvMax <= 0 {
		c.recvMax = 1
	}
	c.nc.SetReadDeadline(time.Time{})
	err = c.attach(clientID, assigned, cp.CleanStart, expiry, ack)
	if errors.Is(err, errIdentityMismatch) {
		return c.refuse(c.version, packet.NotAuthorized, "client identifier in use by another identity")
	}
	if err == nil {
		c.setCredentialExpiry(credExpires)
		c.b.hooks.connected(c, cp.CleanStart, ack.SessionPresent)
	}
	return err
}

// errIdentityMismatch refuses a connection whose client identifier names a
// session that belongs to another authenticated identity.
var errIdentityMismatch = errors.New("session belongs to another identity")

// identityChecked reports whether a session may only be resumed or taken
// over by the identity that owns it: whenever authentication is configured
// (an Authenticator other than AllowAll).
func (b *Broker) identityChecked() bool {
	_, open := b.cfg.Authenticator.(AllowAll)
	return !open && !b.conf().AllowSessionIdentityChange
}

// attach binds the connection to its session, taking the client identifier
// over from another connection if needed, and queues CONNACK.
func (c *conn) attach(clientID string, assign, cleanStart bool, expiry uint32, ack *packet.Connack) error {
	b := c.b
	var (
		wills   []*Message
		ended   *session
		oldConn *conn
		s       *session
		resumed bool
	)
	if !assign && !cleanStart && b.cfg.Authorizer != nil && !c.trusted {
		// A session about to be resumed loses the subscriptions its
		// owner may no longer make, before CONNACK and before any new
		// message can match them.
		b.sessMu.Lock()
		old := b.sessions[clientID]
		b.sessMu.Unlock()
		if old != nil {
			old.mu.Lock()
			owner := old.username
			old.mu.Unlock()
			if !b.identityChecked() || owner == c.info.Username {
				c.reauthorizeSubscriptions(old)
			}
		}
	}
	b.sessMu.Lock()
	if assign {
		clientID = b.assignClientIDLocked()
		c.info.ClientID = clientID
		if c.version == packet.V5 {
			ack.Props.AssignedClientID = clientID // [MQTT-3.2.2-16]
		}
	}
	if c.will != nil && b.conf().Stamp.enabled() {
		// The will is routed as the client's message: it carries the
		// identity too (nothing else sees c.will yet).
		b.stamp(c.will, &c.info)
	}
	old := b.sessions[clientID]
	if old != nil && b.identityChecked() && !c.trusted {
		old.mu.Lock()
		owner := old.username
		old.mu.Unlock()
		if owner != c.info.Username {
			b.sessMu.Unlock()
			return errIdentityMismatch
		}
	}
	if old != nil {
		old.mu.Lock()
		if oc := old.conn; oc != nil {
			// [MQTT-3.1.4-3] take over: DISCONNECT 0x8E to the existing
			// client and close its connection. Its will is published now
			// when it has no delay or the session ends; otherwise the
			// new connection to the session cancels it [MQTT-3.1.3-9].
			old.conn = nil
			old.online.Store(false)
			oldConn = oc
			if oc.will != nil && (oc.willDelay == 0 || cleanStart || expiry == 0) {
				wills = append(wills, oc.will)
			}
			oc.will = nil
			oc.disconnectLocked(packet.SessionTakenOver, "session taken over")
		}
		old.stopTimersLocked()
		if old.pendingWill != nil {
			if cleanStart {
				wills = append(wills, old.pendingWill) // the session ends
			}
			old.pendingWill = nil
		}
		old.mu.Unlock()
	}
	if cleanStart || old == nil {
		// [MQTT-3.1.2-4] discard any existing session.
		if old != nil {
			b.endSessionLocked(old)
			ended = old
		}
		s = b.newSession(clientID)
		b.sessions[clientID] = s
	} else {
		// [MQTT-3.1.2-5] resume the existing session.
		s = old
		resumed = true
	}
	s.mu.Lock()
	c.ctrlDrain = sync.NewCond(&s.mu)
	c.sess = s
	s.conn = c
	s.online.Store(true)
	s.expiry = expiry
	s.version = c.version
	s.username = c.info.Username
	if c.trusted {
		s.info.Store(nil) // deliveries are not authorized either
	} else {
		info := c.info
		s.info.Store(&info)
	}
	// [MQTT-3.2.2-2] [MQTT-3.2.2-3] Session Present.
	ack.SessionPresent = resumed
	ack.ReasonCode = packet.Success
	if err := c.appendCtrlLocked(ack); err != nil {
		s.mu.Unlock()
		b.sessMu.Unlock()
		return err
	}
	if resumed && len(s.inflight) > 0 {
		c.resend = true
	}
	c.kickLocked()
	s.mu.Unlock()
	b.sessMu.Unlock()

	b.saveSession(s)
	if oldConn != nil {
		b.log.Debug("session taken over", "client", clientID)
	}
	if ended != nil {
		b.redispatch(b.finishEnd(ended), nil)
	}
	for _, w := range wills {
		b.publishWill(w, s)
	}
	return nil
}

// reauthorizeSubscriptions checks the subscriptions of a resumed session
// against the Authorizer again (permissions may have changed while the
// client was away) and removes those it no longer allows.
func (c *conn) reauthorizeSubscriptions(s *session) {
	az := c.b.cfg.Authorizer
	if az == nil {
		return
	}
	s.mu.Lock()
	filters := make([]string, 0, len(s.subs))
	for f := range s.subs {
		filters = append(filters, f)
	}
	s.mu.Unlock()
	var taken []delivery
	for _, f := range filters {
		inner := f
		if _, in, shared, err := topic.ParseShared(f); err == nil && shared {
			inner = in
		}
		if az.CanSubscribe(context.Background(), &c.info, inner) {
			continue
		}
		s.mu.Lock()
		delete(s.subs, f)
		s.mu.Unlock()
		if c.b.router.unsubscribe(f, s) {
			if _, _, shared, _ := topic.ParseShared(f); shared {
				s.mu.Lock()
				taken = append(taken, s.takeSharedLocked()...)
				s.mu.Unlock()
			}
		}
		c.b.log.Info("subscription no longer authorized; removed", "client", s.id, "filter", f)
	}
	c.b.redispatch(taken, s)
}

// endSessionLocked removes s from the registry; the caller holds sessMu
// and then calls finishEnd.
func (b *Broker) endSessionLocked(s *session) {
	if b.sessions[s.id] == s {
		delete(b.sessions, s.id)
	}
	s.mu.Lock()
	s.ended = true
	s.online.Store(false)
	s.stopTimersLocked()
	s.mu.Unlock()
}

// finishEnd removes an ended session's subscriptions and stored state and
// returns the shared-subscription deliveries it held.
func (b *Broker) finishEnd(s *session) []delivery {
	if b.persisting() {
		b.submit([]store.Op{{Kind: store.DeleteSession, ClientID: s.id}}, nil)
	}
	s.mu.Lock()
	filters := make([]string, 0, len(s.subs))
	for f := range s.subs {
		filters = append(filters, f)
	}
	s.subs = nil
	taken := s.takeSharedLocked()
	s.queue = queue{}
	s.inflight = nil
	s.inQoS2 = nil
	s.mu.Unlock()
	for _, f := range filters {
		b.router.unsubscribe(f, s)
	}
	return taken
}

// detach runs when a connection ends: the session lives on (expiry > 0)
// or ends, and the will is published, delayed or discarded.
func (b *Broker) detach(c *conn, s *session) {
	b.sessMu.Lock()
	s.mu.Lock()
	if s.conn != c {
		// Taken over: the new connection handled the will.
		s.mu.Unlock()
		b.sessMu.Unlock()
		return
	}
	s.conn = nil
	s.online.Store(false)
	s.disconnectedAt = b.now()
	will := c.will
	c.will = nil
	var (
		publishNow []*Message
		end        bool
		taken      []delivery
	)
	if s.expiry == 0 {
		end = true
		if will != nil {
			publishNow = append(publishNow, will)
		}
	} else {
		if will != nil {
			if c.willDelay == 0 {
				publishNow = append(publishNow, will)
			} else {
				// [MQTT-3.1.3-9] publish after the Will Delay Interval or
				// when the session ends, whichever is first.
				s.pendingWill = will
				s.pendingWillDelay = c.willDelay
				delay := time.Duration(min(c.willDelay, s.expiry)) * time.Second
				s.willTimer = time.AfterFunc(delay, func() { b.fireWill(s) })
			}
		}
		if s.expiry != 0xFFFFFFFF {
			s.expireTimer = time.AfterFunc(time.Duration(s.expiry)*time.Second, func() { b.expire(s) })
		}
		taken = s.takeSharedLocked()
	}
	s.mu.Unlock()
	if end {
		// Still under sessMu: no connection can resume s in between.
		b.endSessionLocked(s)
		b.sessMu.Unlock()
		t := b.finishEnd(s)
		taken = append(taken, t...)
		b.redispatch(taken, nil)
	} else {
		b.sessMu.Unlock()
		b.redispatch(taken, s)
		b.saveSession(s)
	}
	for _, w := range publishNow {
		b.publishWill(w, s)
	}
}

// fireWill publishes a delayed will if its session is still disconnected.
func (b *Broker) fireWill(s *session) {
	s.mu.Lock()
	w := s.pendingWill
	if s.conn != nil {
		w = nil
	}
	s.pendingWill = nil
	s.willTimer = nil
	s.mu.Unlock()
	if w != nil {
		b.publishWill(w, s)
		b.saveSession(s)
	}
}

// expire ends a disconnected session whose expiry interval has passed
// [MQTT-3.1.2-23]; its pending will is published.
func (b *Broker) expire(s *session) {
	b.sessMu.Lock()
	s.mu.Lock()
	if s.conn != nil || s.ended {
		s.mu.Unlock()
		b.sessMu.Unlock()
		return
	}
	w := s.pendingWill
	s.pendingWill = nil
	s.mu.Unlock()
	b.endSessionLocked(s)
	b.sessMu.Unlock()
	taken := b.finishEnd(s)
	b.redispatch(taken, nil)
	if w != nil {
		b.publishWill(w, s)
	}
}

// publishWill routes a will message [MQTT-3.1.2-8].
func (b *Broker) publishWill(w *Message, from *session) {
	m := *w
	m.Created = b.now()
	m.ClientID = from.id
	sc := scratchPool.Get().(*routeScratch)
	b.publish(&m, from, sc)
	b.submitPublication(sc, nil)
	scratchPool.Put(sc)
}

// handleReauth runs a re-authentication exchange started by the client
// with AUTH 0x19, or continued with 0x18 (section 4.12.1).
func (c *conn) handleReauth(ctx context.Context, a *packet.Auth) error {
	if c.authMethod == "" || a.Props.AuthMethod != c.authMethod {
		// [MQTT-4.12.1-1] re-authentication uses the CONNECT method.
		return &packet.Error{Code: packet.ProtocolError, Type: packet.AUTH, Reason: "AUTH without matching authentication method"}
	}
	switch a.ReasonCode {
	case packet.ReAuthenticate:
		c.reauthStep = 0
	case packet.ContinueAuthentication:
		if c.reauthStep == 0 {
			return &packet.Error{Code: packet.ProtocolError, Type: packet.AUTH, Reason: "AUTH continue without re-authentication"}
		}
	default:
		return &packet.Error{Code: packet.ProtocolError, Type: packet.AUTH, Reason: "unexpected AUTH reason code"}
	}
	req := &AuthRequest{Client: &c.info, Method: c.authMethod, Data: a.Props.AuthData, Step: c.reauthStep, Reauth: true, State: c.authState}
	res := c.b.cfg.Authenticator.Authenticate(ctx, req)
	switch res.Code {
	case packet.ContinueAuthentication:
		c.reauthStep++
		c.authState = res.State
		out := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
		out.Props.AuthMethod = c.authMethod
		out.Props.AuthData = res.Data
		return c.send(out)
	case packet.Success:
		if res.Username != "" && res.Username != c.info.Username {
			// The session stays with the identity that opened it.
			return &packet.Error{Code: packet.NotAuthorized, Type: packet.AUTH, Reason: "re-authentication as another identity"}
		}
		c.reauthStep = 0
		c.authState = res.State
		c.setCredentialExpiry(res.Expires)
		if res.Attributes != nil {
			c.info.Attributes = res.Attributes
			info := c.info
			c.sess.info.Store(&info)
		}
		out := &packet.Auth{ReasonCode: packet.Success}
		out.Props.AuthMethod = c.authMethod
		out.Props.AuthData = res.Data
		return c.send(out)
	}
	rc := res.Code
	if !rc.IsError() {
		rc = packet.NotAuthorized
	}
	// [MQTT-4.12.1-2] a failed re-authentication disconnects.
	return &packet.Error{Code: rc, Type: packet.AUTH, Reason: "re-authentication failed"}
}
