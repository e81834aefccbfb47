// Package mock provides a client.Interface implementation for unit tests:
// scripted results for Connect, Publish, Subscribe, Unsubscribe and
// Disconnect, simulated inbound messages routed to the subscribed handlers,
// and a log of every call.
//
//	m := mock.New()
//	m.ScriptPublish(packet.QuotaExceeded) // the next Publish fails with it
//	svc := NewService(m)                  // code under test takes a client.Interface
//	m.Deliver(client.Message{Topic: "cmd/reboot", QoS: 1})
//	calls := m.CallsTo("Publish")
//
// Unscripted calls succeed: Connect returns a v5 ConnectInfo, Subscribe
// grants the requested QoS. Results scripted for a method are consumed in
// order, one per call. A call whose context has ended returns ctx.Err(),
// like the real client. All methods are safe for concurrent use.
package mock

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

// Call is one logged call.
type Call struct {
	Method           string // "Connect", "Publish", "PublishAsync", "Subscribe", "Unsubscribe", "Disconnect", "Ack", "Reject"
	Message          *client.Message
	Subscriptions    []client.Subscription
	SubscribeOptions client.SubscribeOptions
	Filters          []string
	Reason           packet.ReasonCode // Disconnect reason; Ack/Reject code
	SessionExpiry    int64
	Err              error // what the call returned
}

// Client is a scripted client.Interface.
type Client struct {
	// DefaultHandler receives delivered messages no subscription matches,
	// like client.Options.DefaultHandler.
	DefaultHandler client.Handler

	mu          sync.Mutex
	calls       []Call
	connect     []connectResult
	publish     []error
	subscribe   []subResult
	unsubscribe []unsubResult
	disconnect  []error
	subs        []sub
	connected   bool
}

type connectResult struct {
	info *client.ConnectInfo
	err  error
}

type subResult struct {
	res *client.Suback
	err error
}

type unsubResult struct {
	res *client.Unsuback
	err error
}

type sub struct {
	filter, inner string
	h             client.Handler
}

var _ client.Interface = (*Client)(nil)

// New returns a mock with nothing scripted.
func New() *Client { return &Client{} }

// ScriptConnect queues the result of a Connect call.
func (m *Client) ScriptConnect(info *client.ConnectInfo, err error) {
	m.mu.Lock()
	m.connect = append(m.connect, connectResult{info, err})
	m.mu.Unlock()
}

// ScriptPublish queues the results of Publish/PublishAsync calls, one per
// call (nil for success). A packet.ReasonCode becomes the *client.ReasonError
// the real client returns for it.
func (m *Client) ScriptPublish(errs ...error) {
	m.mu.Lock()
	for _, err := range errs {
		m.publish = append(m.publish, asReasonError("publish", err))
	}
	m.mu.Unlock()
}

// ScriptSubscribe queues the result of a Subscribe call. A nil res grants
// the requested QoS; a packet.ReasonCode err becomes a *client.ReasonError.
func (m *Client) ScriptSubscribe(res *client.Suback, err error) {
	m.mu.Lock()
	m.subscribe = append(m.subscribe, subResult{res, asReasonError("subscribe", err)})
	m.mu.Unlock()
}

// ScriptUnsubscribe queues the result of an Unsubscribe call.
func (m *Client) ScriptUnsubscribe(res *client.Unsuback, err error) {
	m.mu.Lock()
	m.unsubscribe = append(m.unsubscribe, unsubResult{res, asReasonError("unsubscribe", err)})
	m.mu.Unlock()
}

// ScriptDisconnect queues the result of a Disconnect call.
func (m *Client) ScriptDisconnect(err error) {
	m.mu.Lock()
	m.disconnect = append(m.disconnect, err)
	m.mu.Unlock()
}

func asReasonError(op string, err error) error {
	var rc packet.ReasonCode
	var re *client.ReasonError
	if err != nil && errors.As(err, &rc) && !errors.As(err, &re) {
		return &client.ReasonError{Op: op, Code: rc}
	}
	return err
}

func pop[T any](q *[]T) (T, bool) {
	var zero T
	if len(*q) == 0 {
		return zero, false
	}
	v := (*q)[0]
	*q = (*q)[1:]
	return v, true
}

func (m *Client) log(c Call) {
	m.calls = append(m.calls, c)
}

// Connect implements client.Interface.
func (m *Client) Connect(ctx context.Context) (*client.ConnectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		m.log(Call{Method: "Connect", Err: err})
		return nil, err
	}
	r, ok := pop(&m.connect)
	if !ok {
		r.info = &client.ConnectInfo{Version: packet.V5, ReceiveMaximum: 65535, MaximumQoS: 2,
			RetainAvailable: true, WildcardSubAvailable: true, SubIDAvailable: true, SharedSubAvailable: true}
	}
	m.connected = r.err == nil
	m.log(Call{Method: "Connect", Err: r.err})
	return r.info, r.err
}

// Publish implements client.Interface.
func (m *Client) Publish(ctx context.Context, msg *client.Message) error {
	return m.pub(ctx, "Publish", msg)
}

// PublishAsync implements client.Interface: the token is already complete.
func (m *Client) PublishAsync(ctx context.Context, msg *client.Message) *client.Token {
	return client.CompletedToken(m.pub(ctx, "PublishAsync", msg))
}

func (m *Client) pub(ctx context.Context, method string, msg *client.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := ctx.Err()
	if err == nil {
		err, _ = pop(&m.publish)
	}
	cp := *msg
	m.log(Call{Method: method, Message: &cp, Err: err})
	return err
}

// Subscribe implements client.Interface. On success the handler is
// registered for the granted filters, as Deliver routes.
func (m *Client) Subscribe(ctx context.Context, subs []client.Subscription, h client.Handler, opts ...client.SubscribeOption) (*client.Suback, error) {
	var so client.SubscribeOptions
	for _, f := range opts {
		f(&so)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := Call{Method: "Subscribe", Subscriptions: slices.Clone(subs), SubscribeOptions: so}
	if err := ctx.Err(); err != nil {
		c.Err = err
		m.log(c)
		return nil, err
	}
	r, _ := pop(&m.subscribe)
	if r.res == nil {
		r.res = &client.Suback{PacketID: uint16(len(m.calls) + 1)}
		for _, s := range subs {
			code := packet.ReasonCode(s.QoS)
			if r.err != nil {
				code = packet.CodeOf(r.err)
			}
			r.res.Codes = append(r.res.Codes, code)
		}
	}
	for i, s := range subs {
		if i < len(r.res.Codes) && r.res.Codes[i].IsError() {
			continue
		}
		inner := s.Filter
		if _, in, ok, err := topic.ParseShared(s.Filter); ok && err == nil {
			inner = in
		}
		m.subs = slices.DeleteFunc(m.subs, func(x sub) bool { return x.filter == s.Filter })
		if h != nil {
			m.subs = append(m.subs, sub{filter: s.Filter, inner: inner, h: h})
		}
	}
	c.Err = r.err
	m.log(c)
	return r.res, r.err
}

// Unsubscribe implements client.Interface.
func (m *Client) Unsubscribe(ctx context.Context, filters ...string) (*client.Unsuback, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := Call{Method: "Unsubscribe", Filters: slices.Clone(filters)}
	if err := ctx.Err(); err != nil {
		c.Err = err
		m.log(c)
		return nil, err
	}
	r, _ := pop(&m.unsubscribe)
	if r.res == nil {
		r.res = &client.Unsuback{PacketID: uint16(len(m.calls) + 1), Codes: make([]packet.ReasonCode, len(filters))}
	}
	if r.err == nil {
		for _, f := range filters {
			m.subs = slices.DeleteFunc(m.subs, func(x sub) bool { return x.filter == f })
		}
	}
	c.Err = r.err
	m.log(c)
	return r.res, r.err
}

// Disconnect implements client.Interface.
func (m *Client) Disconnect(ctx context.Context, reason packet.ReasonCode, sessionExpiry int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err, _ := pop(&m.disconnect)
	m.connected = false
	m.log(Call{Method: "Disconnect", Reason: reason, SessionExpiry: sessionExpiry, Err: err})
	return err
}

// Connected reports whether Connect succeeded and Disconnect was not called.
func (m *Client) Connected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connected
}

// Deliver simulates an inbound message: it calls, on the caller's
// goroutine, the handler of every subscription whose filter matches
// msg.Topic, or DefaultHandler when none does, and returns how many handlers
// ran. Ack and Reject on the delivered message are logged as calls.
func (m *Client) Deliver(msg client.Message) int {
	m.mu.Lock()
	var hs []client.Handler
	for _, s := range m.subs {
		if topic.Matches(s.inner, msg.Topic) {
			hs = append(hs, s.h)
		}
	}
	if len(hs) == 0 && m.DefaultHandler != nil {
		hs = append(hs, m.DefaultHandler)
	}
	m.mu.Unlock()
	cp := msg
	delivered := client.NewTestMessage(msg, func(code packet.ReasonCode) error {
		method := "Ack"
		if code.IsError() {
			method = "Reject"
		}
		m.mu.Lock()
		m.log(Call{Method: method, Message: &cp, Reason: code})
		m.mu.Unlock()
		return nil
	})
	for _, h := range hs {
		h(delivered)
	}
	return len(hs)
}

// Calls returns a copy of the call log.
func (m *Client) Calls() []Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

// CallsTo returns the logged calls of one method.
func (m *Client) CallsTo(method string) []Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Call
	for _, c := range m.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Published returns the messages passed to Publish and PublishAsync that
// succeeded, in order.
func (m *Client) Published() []*client.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*client.Message
	for _, c := range m.calls {
		if (c.Method == "Publish" || c.Method == "PublishAsync") && c.Err == nil {
			out = append(out, c.Message)
		}
	}
	return out
}

// Reset clears the log, the scripts and the subscriptions.
func (m *Client) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls, m.subs = nil, nil
	m.connect, m.publish, m.subscribe, m.unsubscribe, m.disconnect = nil, nil, nil, nil, nil
	m.connected = false
}
