package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mqtt5go/mqtt5/packet"
)

// Event hooks let a program that embeds the broker observe and steer it.
// A hook is any value implementing one or more of the interfaces below; the
// broker checks which ones when the hook is registered (Config.Hooks or
// AddHook), never per event.
//
// PublishHook runs synchronously, on the publishing client's connection
// goroutine, before the message is routed: a slow PublishHook stalls that
// publisher only (its connection is not read meanwhile), never other
// clients. Every other hook is a notification: its events go through one
// bounded queue per broker (HookQueueSize events) to one goroutine that
// calls the hooks in order, so a slow notification hook never stalls a
// client. When the queue is full, new events are dropped and counted
// (Stats().HookEventsDropped). At Shutdown the queued events are delivered
// before Shutdown returns.
//
// Hooks see network clients only: messages the host program publishes
// with Broker.Publish and in-process subscriptions do not reach
// PublishHook, SubscribeHook or UnsubscribeHook (RetainedHook sees every
// change of the retained messages). Event values and the messages they
// point to must not be modified.

// HookQueueSize bounds the notification events waiting for their hooks.
const HookQueueSize = 4096

// ConnectHook is told about every client whose CONNECT was accepted.
type ConnectHook interface {
	OnConnect(ev ConnectEvent)
}

// ConnectEvent describes an accepted connection.
type ConnectEvent struct {
	Client         ClientInfo
	CleanStart     bool // the client asked for a new session
	SessionPresent bool // an existing session was resumed
}

// DisconnectHook is told when a client's connection ends.
type DisconnectHook interface {
	OnDisconnect(ev DisconnectEvent)
}

// DisconnectEvent describes the end of a connection.
type DisconnectEvent struct {
	Client ClientInfo
	// Expected is true when the client sent DISCONNECT; false when the
	// network connection was lost or the broker ended it (keep alive
	// timeout, session taken over, protocol error, quota, shutdown).
	Expected bool
	// ReasonCode is the client's DISCONNECT reason code when Expected;
	// otherwise the code the broker disconnected with (for example 0x8D
	// Keep Alive timeout, 0x8E Session taken over, 0x8B Server shutting
	// down), or 0x80 Unspecified error when the connection just dropped.
	ReasonCode packet.ReasonCode
	// Err is why the connection ended when it was not Expected.
	Err error
}

// SubscribeHook is told about every SUBSCRIBE a client sent.
type SubscribeHook interface {
	OnSubscribe(ev SubscribeEvent)
}

// SubscribeEvent describes a SUBSCRIBE and its outcome.
type SubscribeEvent struct {
	Client        ClientInfo
	Subscriptions []packet.Subscription
	// Codes are the SUBACK reason codes, one per subscription: the granted
	// QoS or a failure.
	Codes []packet.ReasonCode
}

// UnsubscribeHook is told about every UNSUBSCRIBE a client sent.
type UnsubscribeHook interface {
	OnUnsubscribe(ev UnsubscribeEvent)
}

// UnsubscribeEvent describes an UNSUBSCRIBE and its outcome.
type UnsubscribeEvent struct {
	Client  ClientInfo
	Filters []string
	Codes   []packet.ReasonCode // Success or No Subscription Existed
}

// RetainedHook is told whenever a retained message is set or cleared.
type RetainedHook interface {
	OnRetained(ev RetainedEvent)
}

// RetainedEvent describes a change of a topic's retained message.
type RetainedEvent struct {
	Topic string
	// Message is the new retained message; nil when Cleared.
	Message *Message
	Cleared bool
}

// DeliveredHook is told when a subscriber completed a QoS 1 or 2 delivery:
// PUBACK for QoS 1, PUBCOMP for QoS 2.
type DeliveredHook interface {
	OnDelivered(ev DeliveredEvent)
}

// DeliveredEvent describes an acknowledged delivery.
type DeliveredEvent struct {
	Client   ClientInfo // the subscriber
	Message  *Message
	QoS      byte // as delivered
	PacketID uint16
}

// PublishHook decides what happens to each PUBLISH from a client, after it
// was validated and authorized and before it is routed. It runs on the
// publisher's connection goroutine; hooks run in registration order, each
// seeing what the previous one transformed, until one answers
// PublishHandle.
type PublishHook interface {
	OnPublish(ctx context.Context, ev PublishEvent) PublishDecision
}

// PublishEvent describes a message about to be routed.
type PublishEvent struct {
	// Client is the publisher; it must not be retained after OnPublish
	// returns.
	Client *ClientInfo
	// Message is the message as it will be routed. Request/response
	// metadata is in Message.Props.ResponseTopic and
	// Message.Props.CorrelationData.
	Message *Message
}

// PublishAction is a PublishHook's answer.
type PublishAction int

const (
	// PublishContinue routes the message (as it is so far).
	PublishContinue PublishAction = iota
	// PublishHandle acknowledges the message normally (Success) and does
	// not route it: the hook took care of it.
	PublishHandle
	// PublishTransform routes PublishDecision.Message instead.
	PublishTransform
)

// PublishDecision is what a PublishHook returns.
type PublishDecision struct {
	Action PublishAction
	// Message replaces the message for PublishTransform: its Topic, Payload
	// and Props (the message properties: payload format, expiry, content
	// type, response topic, correlation data, user properties) are used;
	// QoS, Retain, publisher and creation time stay those of the
	// original. The broker owns it afterwards. A replacement whose topic
	// is not a valid topic name is not routed; the publisher gets
	// Implementation specific error (0x83).
	Message *Message
}

// hookSet is the registered hooks by interface. It is replaced, never
// modified, so that events read it without a lock.
type hookSet struct {
	connect     []ConnectHook
	disconnect  []DisconnectHook
	subscribe   []SubscribeHook
	unsubscribe []UnsubscribeHook
	retained    []RetainedHook
	delivered   []DeliveredHook
	publish     []PublishHook
}

// hookRunner holds the hooks and the notification queue.
type hookRunner struct {
	set atomic.Pointer[hookSet] // nil until a hook is registered

	b       *Broker
	mu      sync.Mutex // registration, start and stop
	queue   chan any   // notification events; made with the first such hook
	done    chan struct{}
	stopped bool
}

var errNotAHook = errors.New("implements none of the hook interfaces")

// AddHook registers h, which must implement at least one of ConnectHook,
// DisconnectHook, SubscribeHook, UnsubscribeHook, PublishHook,
// RetainedHook and DeliveredHook; it is called for the events that follow.
func (b *Broker) AddHook(h any) error {
	r := &b.hooks
	r.mu.Lock()
	defer r.mu.Unlock()
	// Readers hold the old set: appending past its lengths is invisible
	// to them.
	var ns hookSet
	if old := r.set.Load(); old != nil {
		ns = *old
	}
	notify, pub := false, false
	if x, ok := h.(ConnectHook); ok {
		ns.connect, notify = append(ns.connect, x), true
	}
	if x, ok := h.(DisconnectHook); ok {
		ns.disconnect, notify = append(ns.disconnect, x), true
	}
	if x, ok := h.(SubscribeHook); ok {
		ns.subscribe, notify = append(ns.subscribe, x), true
	}
	if x, ok := h.(UnsubscribeHook); ok {
		ns.unsubscribe, notify = append(ns.unsubscribe, x), true
	}
	if x, ok := h.(RetainedHook); ok {
		ns.retained, notify = append(ns.retained, x), true
	}
	if x, ok := h.(DeliveredHook); ok {
		ns.delivered, notify = append(ns.delivered, x), true
	}
	if x, ok := h.(PublishHook); ok {
		ns.publish, pub = append(ns.publish, x), true
	}
	if !notify && !pub {
		return fmt.Errorf("broker: hook %T %w", h, errNotAHook)
	}
	if notify && r.queue == nil && !r.stopped {
		r.queue = make(chan any, HookQueueSize)
		r.done = make(chan struct{})
		b.wg.Add(1)
		go r.run()
	}
	r.set.Store(&ns)
	return nil
}

// run calls the notification hooks for queued events until stop.
func (r *hookRunner) run() {
	defer r.b.wg.Done()
	for {
		select {
		case ev := <-r.queue:
			r.dispatch(ev)
		case <-r.done:
			for {
				select {
				case ev := <-r.queue:
					r.dispatch(ev)
				default:
					return
				}
			}
		}
	}
}

// stop ends the dispatcher after it delivered the queued events.
func (r *hookRunner) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopped && r.done != nil {
		close(r.done)
	}
	r.stopped = true
}

// post queues a notification event, or drops and counts it when the queue
// is full.
func (r *hookRunner) post(ev any) {
	select {
	case r.queue <- ev:
	default:
		r.b.stats.hookDrops.Add(1)
	}
}

func (r *hookRunner) dispatch(ev any) {
	hs := r.set.Load()
	defer func() {
		if p := recover(); p != nil {
			r.b.log.Error("hook panicked", "event", fmt.Sprintf("%T", ev), "panic", p)
		}
	}()
	switch e := ev.(type) {
	case ConnectEvent:
		for _, h := range hs.connect {
			h.OnConnect(e)
		}
	case DisconnectEvent:
		for _, h := range hs.disconnect {
			h.OnDisconnect(e)
		}
	case SubscribeEvent:
		for _, h := range hs.subscribe {
			h.OnSubscribe(e)
		}
	case UnsubscribeEvent:
		for _, h := range hs.unsubscribe {
			h.OnUnsubscribe(e)
		}
	case RetainedEvent:
		for _, h := range hs.retained {
			h.OnRetained(e)
		}
	case DeliveredEvent:
		for _, h := range hs.delivered {
			h.OnDelivered(e)
		}
	}
}

// ---- event sources ----

func (r *hookRunner) connected(c *conn, cleanStart, present bool) {
	if hs := r.set.Load(); hs != nil && len(hs.connect) > 0 {
		r.post(ConnectEvent{Client: c.info, CleanStart: cleanStart, SessionPresent: present})
	}
}

func (r *hookRunner) disconnected(c *conn, err error) {
	hs := r.set.Load()
	if hs == nil || len(hs.disconnect) == 0 {
		return
	}
	ev := DisconnectEvent{Client: c.info}
	switch {
	case errors.Is(err, errNormalDisconnect), errors.Is(err, errWillDisconnect):
		ev.Expected, ev.ReasonCode = true, c.clientReason
	default:
		ev.Err = err
		c.sess.mu.Lock()
		ev.ReasonCode = c.serverReason
		c.sess.mu.Unlock()
		if ev.ReasonCode == packet.Success {
			ev.ReasonCode = packet.UnspecifiedError
		}
	}
	r.post(ev)
}

func (r *hookRunner) subscribed(c *conn, subs []packet.Subscription, codes []packet.ReasonCode) {
	hs := r.set.Load()
	if hs == nil || len(hs.subscribe) == 0 {
		return
	}
	own := make([]packet.Subscription, len(subs))
	for i, s := range subs {
		own[i] = s
		own[i].Filter = strings.Clone(s.Filter) // s aliases the read buffer
	}
	r.post(SubscribeEvent{Client: c.info, Subscriptions: own, Codes: codes})
}

func (r *hookRunner) unsubscribed(c *conn, filters []string, codes []packet.ReasonCode) {
	hs := r.set.Load()
	if hs == nil || len(hs.unsubscribe) == 0 {
		return
	}
	own := make([]string, len(filters))
	for i, f := range filters {
		own[i] = strings.Clone(f)
	}
	r.post(UnsubscribeEvent{Client: c.info, Filters: own, Codes: codes})
}

func (r *hookRunner) retainedChanged(m *Message) {
	hs := r.set.Load()
	if hs == nil || len(hs.retained) == 0 {
		return
	}
	ev := RetainedEvent{Topic: m.Topic, Message: m}
	if len(m.Payload) == 0 {
		ev.Message, ev.Cleared = nil, true
	}
	r.post(ev)
}

func (r *hookRunner) delivered(c *conn, d *delivery, id uint16) {
	if hs := r.set.Load(); hs != nil && len(hs.delivered) > 0 {
		r.post(DeliveredEvent{Client: c.info, Message: d.msg, QoS: d.qos, PacketID: id})
	}
}

// onPublish runs the PublishHooks for m. It returns the message to route
// (m, or a replacement), or nil when a hook handled it; rc is an error when
// a replacement cannot be routed.
func (r *hookRunner) onPublish(ctx context.Context, c *conn, hooks []PublishHook, m *Message) (out *Message, rc packet.ReasonCode) {
	for _, h := range hooks {
		dec := callPublishHook(ctx, c, h, m)
		switch dec.Action {
		case PublishHandle:
			return nil, packet.Success
		case PublishTransform:
			repl := dec.Message
			if repl == nil {
				c.b.log.Error("publish hook: PublishTransform without a message", "hook", fmt.Sprintf("%T", h))
				return nil, packet.ImplementationSpecificError
			}
			if err := c.b.topicLimits.ValidateName(repl.Topic); err != nil {
				c.b.log.Error("publish hook: invalid replacement topic", "hook", fmt.Sprintf("%T", h), "topic", repl.Topic, "err", err)
				return nil, packet.ImplementationSpecificError
			}
			m = &Message{Topic: repl.Topic, Payload: repl.Payload, QoS: m.QoS, Retain: m.Retain,
				Props: keepMessageProps(&repl.Props), ClientID: m.ClientID, Created: m.Created}
		}
	}
	return m, packet.Success
}

// callPublishHook calls one PublishHook; a hook that panics is logged and
// taken to answer PublishContinue.
func callPublishHook(ctx context.Context, c *conn, h PublishHook, m *Message) (dec PublishDecision) {
	defer func() {
		if p := recover(); p != nil {
			c.b.log.Error("publish hook panicked", "hook", fmt.Sprintf("%T", h), "panic", p)
			dec = PublishDecision{}
		}
	}()
	return h.OnPublish(ctx, PublishEvent{Client: &c.info, Message: m})
}
