package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

var (
	// ErrRequestNeedsV5 is returned by request/response calls on an MQTT
	// 3.1.1 Client: Response Topic and Correlation Data are MQTT 5
	// properties.
	ErrRequestNeedsV5 = errors.New("mqtt client: request/response needs MQTT 5 (Response Topic and Correlation Data)")
	// ErrCorrelationInUse is returned by Request for a message whose
	// Correlation Data is that of a request still waiting for its response.
	ErrCorrelationInUse = errors.New("mqtt client: correlation data already used by a request in flight")
	// ErrRequesterClosed is returned by the requests of a closed Requester.
	ErrRequesterClosed = errors.New("mqtt client: requester closed")
)

// DefaultResponsePrefix is the first level of the response topic of a
// Requester without a ResponseTopic, when the server returned no Response
// Information.
const DefaultResponsePrefix = "responses"

// DefaultMaxInFlightRequests bounds the requests of a Requester waiting
// for their response when RequesterOptions.MaxInFlight is zero.
const DefaultMaxInFlightRequests = 1024

// RequesterOptions configures a Requester.
type RequesterOptions struct {
	// ResponseTopic is the topic responses are sent to (the Response Topic
	// of every request); the Requester subscribes to it. Default:
	// "{Response Information}/{client id}" when the server returned
	// Response Information (Options.RequestResponseInfo), otherwise
	// "{Prefix}/{client id}".
	ResponseTopic string
	// Prefix is the first part of the default response topic; default
	// DefaultResponsePrefix.
	Prefix string
	// QoS is the Maximum QoS of the response subscription (0 by default:
	// responses then arrive at most once).
	QoS byte
	// MaxInFlight bounds the requests waiting for their response; further
	// requests wait for one of them to end (bounded by their context).
	// Default DefaultMaxInFlightRequests.
	MaxInFlight int
	// SubscribeOptions are passed to the Subscribe of the response topic.
	SubscribeOptions []SubscribeOption
	// OnStray, when set, receives the messages on the response topic that
	// answer no pending request (unknown or missing Correlation Data, late
	// responses, duplicates). It runs on the client's dispatch goroutine.
	OnStray func(*Message)
}

// Requester sends MQTT 5 requests and waits for their responses: it
// subscribes once to its response topic, publishes each request with that
// Response Topic and a Correlation Data, and hands each request the
// response that carries its Correlation Data. Many requests may be in
// flight at once, from any goroutine. Use one Requester per response topic
// (a second Subscribe to the same filter replaces the first one's handler).
type Requester struct {
	c     *Client
	o     RequesterOptions
	slots chan struct{} // a token per request in flight
	start chan struct{} // held while subscribing
	done  chan struct{} // closed by Close

	mu      sync.Mutex
	topic   string // set once subscribed
	pending map[string]chan *Message
	closed  bool
}

// NewRequester returns a Requester that uses c. It sends nothing: the
// response topic is subscribed to by Start or the first Request.
func NewRequester(c *Client, o RequesterOptions) (*Requester, error) {
	if c.opts.Version != packet.V5 {
		return nil, ErrRequestNeedsV5
	}
	if o.QoS > 2 {
		return nil, fmt.Errorf("mqtt client: requester QoS %d above 2", o.QoS)
	}
	if o.ResponseTopic != "" {
		if err := validateName(o.ResponseTopic); err != nil {
			return nil, fmt.Errorf("mqtt client: response topic %q: %w", o.ResponseTopic, err)
		}
	}
	if o.Prefix == "" {
		o.Prefix = DefaultResponsePrefix
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlightRequests
	}
	return &Requester{
		c:       c,
		o:       o,
		slots:   make(chan struct{}, o.MaxInFlight),
		start:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: make(map[string]chan *Message),
	}, nil
}

// responseTopic works out the response topic.
func (r *Requester) responseTopic() (string, error) {
	if r.o.ResponseTopic != "" {
		return r.o.ResponseTopic, nil
	}
	info := r.c.connInfo.Load()
	if info == nil {
		return "", ErrNotConnected
	}
	if info.ClientID == "" {
		return "", errors.New("mqtt client: no client id to build the response topic from (set RequesterOptions.ResponseTopic)")
	}
	root := r.o.Prefix
	if ri := strings.TrimSuffix(info.ResponseInfo, "/"); ri != "" {
		root = ri
	}
	t := root + "/" + info.ClientID
	if err := validateName(t); err != nil {
		return "", fmt.Errorf("mqtt client: response topic %q: %w (set RequesterOptions.ResponseTopic)", t, err)
	}
	return t, nil
}

// ResponseTopic returns the response topic once subscribed, "" before.
func (r *Requester) ResponseTopic() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.topic
}

// Start subscribes to the response topic unless that is done, and returns
// the SUBACK (nil when it was done before). A refused subscription is
// returned as with Subscribe, and the next call tries again.
func (r *Requester) Start(ctx context.Context) (*Suback, error) {
	if r.ResponseTopic() != "" {
		return nil, nil
	}
	select {
	case r.start <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.done:
		return nil, ErrRequesterClosed
	}
	defer func() { <-r.start }()
	r.mu.Lock()
	t, closed := r.topic, r.closed
	r.mu.Unlock()
	switch {
	case closed:
		return nil, ErrRequesterClosed
	case t != "":
		return nil, nil
	}
	t, err := r.responseTopic()
	if err != nil {
		return nil, err
	}
	sa, err := r.c.Subscribe(ctx, []Subscription{{Filter: t, QoS: r.o.QoS}}, r.onResponse, r.o.SubscribeOptions...)
	if err != nil {
		return sa, err
	}
	r.mu.Lock()
	r.topic = t
	r.mu.Unlock()
	return sa, nil
}

// onResponse hands a message of the response topic to the request it
// answers.
func (r *Requester) onResponse(m *Message) {
	r.mu.Lock()
	key := string(m.CorrelationData)
	ch := r.pending[key]
	if ch != nil && m.CorrelationData != nil {
		delete(r.pending, key) // the first response wins
	} else {
		ch = nil
	}
	r.mu.Unlock()
	if ch == nil {
		if r.o.OnStray != nil {
			r.o.OnStray(m)
		}
		return
	}
	ch <- m // buffered: one response per request
}

// Request publishes m as a request and returns the response. m keeps its
// topic, payload, QoS and properties; its Response Topic is replaced by the
// Requester's, and its Correlation Data, when empty, by 16 random bytes (m
// itself is not modified). Request waits for the response until ctx ends
// (ctx.Err()), the Requester is closed or the Client ends; responses to
// other requests, and messages without Correlation Data, are ignored.
func (r *Requester) Request(ctx context.Context, m *Message) (*Message, error) {
	if m == nil {
		return nil, errors.New("mqtt client: nil request")
	}
	if _, err := r.Start(ctx); err != nil {
		return nil, err
	}
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.done:
		return nil, ErrRequesterClosed
	case <-r.c.done:
		return nil, r.c.closedErr()
	}
	defer func() { <-r.slots }()

	corr := m.CorrelationData
	if len(corr) == 0 {
		corr = make([]byte, 16)
		rand.Read(corr)
	}
	key := string(corr)
	ch := make(chan *Message, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrRequesterClosed
	}
	if _, dup := r.pending[key]; dup {
		r.mu.Unlock()
		return nil, ErrCorrelationInUse
	}
	r.pending[key] = ch
	t := r.topic
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.pending[key] == ch {
			delete(r.pending, key)
		}
		r.mu.Unlock()
	}()

	req := *m
	req.ack = nil
	req.ResponseTopic = t
	req.CorrelationData = corr
	if err := r.c.Publish(ctx, &req); err != nil {
		return nil, err
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.done:
		return nil, ErrRequesterClosed
	case <-r.c.done:
		return nil, r.c.closedErr()
	}
}

// Pending returns the number of requests waiting for their response.
func (r *Requester) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// Close ends the Requester: waiting requests return ErrRequesterClosed and
// the response topic is unsubscribed from (bounded by ctx).
func (r *Requester) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	t := r.topic
	close(r.done)
	r.mu.Unlock()
	if t == "" {
		return nil
	}
	_, err := r.c.Unsubscribe(ctx, t)
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// defaultRequester is the Requester behind Client.Request, made on first
// use.
type defaultRequester struct {
	mu sync.Mutex
	r  *Requester
}

// Request sends m as an MQTT 5 request and waits for the response, with a
// Requester made on first use (response subscription at QoS 1 to
// "{Response Information or DefaultResponsePrefix}/{client id}"; see
// Requester.Request). It returns ErrRequestNeedsV5 on an MQTT 3.1.1 Client.
func (c *Client) Request(ctx context.Context, m *Message) (*Message, error) {
	if c.opts.Version != packet.V5 {
		return nil, ErrRequestNeedsV5
	}
	if err := c.usable(); err != nil {
		return nil, err
	}
	c.rr.mu.Lock()
	if c.rr.r == nil {
		r, err := NewRequester(c, RequesterOptions{QoS: 1})
		if err != nil {
			c.rr.mu.Unlock()
			return nil, err
		}
		c.rr.r = r
	}
	r := c.rr.r
	c.rr.mu.Unlock()
	return r.Request(ctx, m)
}

// RequestHandler answers one request. A nil response (with a nil error)
// sends nothing; an error is passed to Options.OnError and sends nothing.
type RequestHandler func(ctx context.Context, req *Message) (*Message, error)

// maxConcurrentRequests bounds the handlers a Responder runs at once.
const maxConcurrentRequests = 64

// Responder serves requests; see Client.HandleRequests.
type Responder struct {
	c      *Client
	filter string
	ctx    context.Context // handlers' context, cancelled when serving stops
	cancel context.CancelFunc
	slots  chan struct{}
	stop   chan struct{}
	once   sync.Once
	done   chan struct{}

	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

// HandleRequests serves MQTT 5 requests on filter. It subscribes to filter
// at QoS 1 (waiting for SUBACK; a refusal is returned) and then, in the
// background, runs h for each message that has a Response Topic — up to 64
// at once, each on a goroutine of its own; messages without a Response
// Topic are ignored — and publishes the response h returns to the
// request's Response Topic with the request's Correlation Data (the
// response's own topic and Correlation Data are replaced; its QoS and other
// properties are kept). Serving stops when ctx ends, on Responder.Stop, or
// when the Client ends; the subscription is then removed, the context
// given to running handlers is cancelled and they are waited for. It
// returns ErrRequestNeedsV5 on an MQTT 3.1.1 Client.
func (c *Client) HandleRequests(ctx context.Context, filter string, h RequestHandler, opts ...SubscribeOption) (*Responder, error) {
	if c.opts.Version != packet.V5 {
		return nil, ErrRequestNeedsV5
	}
	if h == nil {
		return nil, errors.New("mqtt client: nil request handler")
	}
	r := &Responder{
		c:      c,
		filter: filter,
		slots:  make(chan struct{}, maxConcurrentRequests),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	handler := func(m *Message) {
		if m.ResponseTopic == "" {
			return
		}
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return
		}
		r.wg.Add(1)
		r.mu.Unlock()
		select {
		case r.slots <- struct{}{}:
			go r.serve(h, m)
		case <-r.ctx.Done():
			r.wg.Done()
		}
	}
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: filter, QoS: 1}}, handler, opts...); err != nil {
		r.cancel()
		return nil, err
	}
	go r.run()
	return r, nil
}

// run waits for the end of serving and cleans up.
func (r *Responder) run() {
	defer close(r.done)
	clientEnded := false
	select {
	case <-r.ctx.Done():
	case <-r.stop:
	case <-r.c.done:
		clientEnded = true
	}
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.cancel()
	if !clientEnded {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r.c.Unsubscribe(uctx, r.filter)
		cancel()
	}
	r.wg.Wait()
}

// serve runs h for one request and publishes its response.
func (r *Responder) serve(h RequestHandler, req *Message) {
	defer r.wg.Done()
	c := r.c
	resp, err := c.runRequestHandler(r.ctx, h, req)
	<-r.slots
	if err != nil {
		c.reportError(err)
		return
	}
	if resp == nil {
		return
	}
	out := *resp
	out.ack = nil
	out.Topic = req.ResponseTopic
	out.CorrelationData = req.CorrelationData
	out.ResponseTopic = ""
	out.TopicAlias = 0
	out.SubscriptionIDs = nil
	if err := c.PublishAsync(r.ctx, &out).Wait(r.ctx); err != nil && r.ctx.Err() == nil {
		c.reportError(fmt.Errorf("mqtt client: publishing the response to %q: %w", out.Topic, err))
	}
}

// Stop stops serving: the subscription is removed and running handlers
// are waited for, bounded by ctx.
func (r *Responder) Stop(ctx context.Context) error {
	r.once.Do(func() { close(r.stop) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when the Responder has stopped.
func (r *Responder) Done() <-chan struct{} { return r.done }

// runRequestHandler calls h, turning a panic into an error.
func (c *Client) runRequestHandler(ctx context.Context, h RequestHandler, req *Message) (resp *Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, fmt.Errorf("mqtt client: request handler panic on %q: %v", req.Topic, p)
		}
	}()
	resp, err = h(ctx, req)
	if err != nil {
		err = fmt.Errorf("mqtt client: request handler on %q: %w", req.Topic, err)
	}
	return resp, err
}
