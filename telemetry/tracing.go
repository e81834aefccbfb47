package telemetry

import (
	"context"
	"net"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// ScopeName is the instrumentation scope of the tracers and meters this
// package creates.
const ScopeName = "github.com/mqtt5go/mqtt5/telemetry"

// User property names that carry the W3C trace context.
const (
	TraceParentKey = "traceparent"
	TraceStateKey  = "tracestate"
)

// Span attribute keys. The messaging.* keys follow the OpenTelemetry
// messaging semantic conventions; the mqtt.* keys are this package's.
const (
	attrSystem    = attribute.Key("messaging.system")
	attrOpType    = attribute.Key("messaging.operation.type")
	attrOpName    = attribute.Key("messaging.operation.name")
	attrDest      = attribute.Key("messaging.destination.name")
	attrClientID  = attribute.Key("messaging.client.id")
	attrBodySize  = attribute.Key("messaging.message.body.size")
	attrPeerAddr  = attribute.Key("network.peer.address")
	attrQoS       = attribute.Key("mqtt.qos")
	attrRetain    = attribute.Key("mqtt.retain")
	attrPacketID  = attribute.Key("mqtt.packet_id")
	attrReason    = attribute.Key("mqtt.reason_code")
	attrVersion   = attribute.Key("mqtt.protocol_version")
	attrClean     = attribute.Key("mqtt.clean_start")
	attrPresent   = attribute.Key("mqtt.session_present")
	attrExpected  = attribute.Key("mqtt.disconnect.expected")
	attrAuthMeth  = attribute.Key("mqtt.auth.method")
	attrAuthStep  = attribute.Key("mqtt.auth.step")
	attrReauth    = attribute.Key("mqtt.auth.reauthenticate")
	systemMQTT    = "mqtt"
	opPublish     = "publish"
	opProcess     = "process"
	opRoute       = "route"
	opDeliver     = "deliver"
	opTypeSend    = "send"
	opTypeProcess = "process"
	opTypeRecv    = "receive"
)

// propagator is the W3C Trace Context format: traceparent and tracestate.
var propagator = propagation.TraceContext{}

// UserProperties adapts MQTT v5 user properties to a
// propagation.TextMapCarrier (use a *UserProperties). Keys are matched
// without regard to case, as HTTP header names are; the first property
// with a key wins. Set changes the slice's elements in place, so it must
// only be used on a slice the caller owns.
//
// MQTT 3.1.1 has no user properties: over 3.1.1 the trace context does
// not travel and the receiving side starts a new trace.
type UserProperties []packet.UserProperty

var _ propagation.TextMapCarrier = (*UserProperties)(nil)

// Get returns the value of the first property named key, or "".
func (u UserProperties) Get(key string) string {
	for _, p := range u {
		if strings.EqualFold(p.Key, key) {
			return p.Value
		}
	}
	return ""
}

// Set replaces the value of the first property named key and removes the
// others with that name, or appends the property.
func (u *UserProperties) Set(key, value string) {
	s := *u
	found := false
	out := s[:0]
	for _, p := range s {
		if strings.EqualFold(p.Key, key) {
			if found {
				continue
			}
			found = true
			p = packet.UserProperty{Key: key, Value: value}
		}
		out = append(out, p)
	}
	if !found {
		out = append(out, packet.UserProperty{Key: key, Value: value})
	}
	*u = out
}

// Keys returns the distinct property names, in order of first appearance.
func (u UserProperties) Keys() []string {
	keys := make([]string, 0, len(u))
outer:
	for _, p := range u {
		for _, k := range keys {
			if k == p.Key {
				continue outer
			}
		}
		keys = append(keys, p.Key)
	}
	return keys
}

// Inject returns props with the trace context of ctx as traceparent (and
// tracestate) user properties, replacing any that props had. props itself
// is not modified: the result is a new slice. When ctx carries no valid
// span context, props is returned as it is.
func Inject(ctx context.Context, props []packet.UserProperty) []packet.UserProperty {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return props
	}
	out := make(UserProperties, 0, len(props)+2)
	for _, p := range props {
		if !isTraceKey(p.Key) {
			out = append(out, p)
		}
	}
	propagator.Inject(ctx, &out)
	return out
}

// Extract returns ctx with the remote span context found in the
// traceparent and tracestate user properties of props. A missing or
// malformed traceparent leaves ctx as it is, so that spans started from it
// begin a new trace.
func Extract(ctx context.Context, props []packet.UserProperty) context.Context {
	u := UserProperties(props)
	return propagator.Extract(ctx, &u)
}

func isTraceKey(k string) bool {
	return strings.EqualFold(k, TraceParentKey) || strings.EqualFold(k, TraceStateKey)
}

// Enabled reports whether tp records anything: false for nil and for the
// no-op providers of go.opentelemetry.io/otel/trace/noop (what Setup
// returns when tracing is off). Register the broker hooks only when it is
// true, so that a broker without tracing runs no tracing code at all.
func Enabled(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return false
	}
	return true
}

func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(ScopeName)
}

func spanName(op, topicName string) string {
	if topicName == "" {
		return op
	}
	return op + " " + topicName
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// ---- client side ----

// ClientTracer traces what a client publishes and processes: a producer
// span "publish <topic>" whose context travels in the message's
// traceparent user property, and a consumer span "process <topic>" around
// each handler call, a child of the context the message carries.
type ClientTracer struct {
	tracer trace.Tracer
}

// NewClientTracer returns a ClientTracer recording to tp (nil: nothing is
// recorded and messages are published unchanged).
func NewClientTracer(tp trace.TracerProvider) *ClientTracer {
	return &ClientTracer{tracer: tracerOf(tp)}
}

// startPublish starts the producer span of m and returns the message to
// publish: m itself when there is no trace context to add, else a shallow
// copy of m whose user properties carry the span's context. m is never
// modified.
func (t *ClientTracer) startPublish(ctx context.Context, m *client.Message) (context.Context, trace.Span, *client.Message) {
	ctx, span := t.tracer.Start(ctx, spanName(opPublish, m.Topic), trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(
			attrSystem.String(systemMQTT),
			attrOpType.String(opTypeSend),
			attrOpName.String(opPublish),
			attrDest.String(m.Topic),
			attrBodySize.Int(len(m.Payload)),
			attrQoS.Int(int(m.QoS)),
			attrRetain.Bool(m.Retain),
		)
	}
	if !span.SpanContext().IsValid() {
		return ctx, span, m
	}
	cp := *m
	cp.User = Inject(ctx, m.User)
	return ctx, span, &cp
}

// Publish publishes m through c inside a producer span, a child of the
// span in ctx, and returns c.Publish's error (recorded on the span). The
// span's context is sent as the traceparent user property of a copy of m;
// m is not modified.
func (t *ClientTracer) Publish(ctx context.Context, c client.Interface, m *client.Message) error {
	if m == nil {
		return c.Publish(ctx, m)
	}
	ctx, span, out := t.startPublish(ctx, m)
	err := c.Publish(ctx, out)
	endSpan(span, err)
	return err
}

// PublishAsync is Publish for c.PublishAsync: the span covers handing the
// message to the client, not the acknowledgement.
func (t *ClientTracer) PublishAsync(ctx context.Context, c client.Interface, m *client.Message) *client.Token {
	if m == nil {
		return c.PublishAsync(ctx, m)
	}
	ctx, span, out := t.startPublish(ctx, m)
	tok := c.PublishAsync(ctx, out)
	var err error
	select {
	case <-tok.Done():
		err = tok.Err()
	default:
	}
	endSpan(span, err)
	return tok
}

// Handler wraps h so that each message is processed inside a consumer span
// "process <topic>", a child of the trace context in the message's user
// properties (a new trace when it has none or it is malformed).
func (t *ClientTracer) Handler(h client.Handler) client.Handler {
	if h == nil {
		return nil
	}
	return t.HandlerContext(func(_ context.Context, m *client.Message) { h(m) })
}

// HandlerContext is Handler for a handler that takes the span's context,
// to start child spans or to publish replies that continue the trace.
func (t *ClientTracer) HandlerContext(h func(ctx context.Context, m *client.Message)) client.Handler {
	if h == nil {
		return nil
	}
	return func(m *client.Message) {
		ctx := Extract(context.Background(), m.User)
		ctx, span := t.tracer.Start(ctx, spanName(opProcess, m.Topic), trace.WithSpanKind(trace.SpanKindConsumer))
		if span.IsRecording() {
			span.SetAttributes(
				attrSystem.String(systemMQTT),
				attrOpType.String(opTypeProcess),
				attrOpName.String(opProcess),
				attrDest.String(m.Topic),
				attrBodySize.Int(len(m.Payload)),
				attrQoS.Int(int(m.QoS)),
				attrRetain.Bool(m.Retain),
			)
			if m.PacketID != 0 {
				span.SetAttributes(attrPacketID.Int(int(m.PacketID)))
			}
		}
		defer func() {
			if p := recover(); p != nil {
				span.SetStatus(codes.Error, "handler panicked")
				span.End()
				panic(p)
			}
			span.End()
		}()
		h(ctx, m)
	}
}

// Wrap returns c with tracing: Publish and PublishAsync go through the
// tracer and the handlers given to Subscribe are wrapped with Handler.
// Subscribe with a nil handler uses Options.DefaultHandler, which
// InstrumentClient wraps.
func (t *ClientTracer) Wrap(c client.Interface) client.Interface {
	return &tracedClient{Interface: c, t: t}
}

type tracedClient struct {
	client.Interface
	t *ClientTracer
}

func (c *tracedClient) Publish(ctx context.Context, m *client.Message) error {
	return c.t.Publish(ctx, c.Interface, m)
}

func (c *tracedClient) PublishAsync(ctx context.Context, m *client.Message) *client.Token {
	return c.t.PublishAsync(ctx, c.Interface, m)
}

func (c *tracedClient) Subscribe(ctx context.Context, subs []client.Subscription, h client.Handler, opts ...client.SubscribeOption) (*client.Suback, error) {
	return c.Interface.Subscribe(ctx, subs, c.t.Handler(h), opts...)
}

// InstrumentClient prepares opts for a traced client: Options.DefaultHandler
// is wrapped with Handler. Publish through ClientTracer.Publish (or a
// client wrapped with ClientTracer.Wrap) to send the trace context.
func InstrumentClient(opts *client.Options, tp trace.TracerProvider) *ClientTracer {
	t := NewClientTracer(tp)
	opts.DefaultHandler = t.Handler(opts.DefaultHandler)
	return t
}

// Publish publishes m through c inside a producer span of the global
// TracerProvider (otel.SetTracerProvider); see ClientTracer.Publish.
func Publish(ctx context.Context, c client.Interface, m *client.Message) error {
	return NewClientTracer(otel.GetTracerProvider()).Publish(ctx, c, m)
}

// Handler wraps h with a consumer span per message, recorded to tp; see
// ClientTracer.Handler.
func Handler(tp trace.TracerProvider, h client.Handler) client.Handler {
	return NewClientTracer(tp).Handler(h)
}

// ---- broker side ----

// BrokerTracer traces the broker through its hooks. Register it with
// broker.Config.Hooks or Broker.AddHook, only when tracing is on (see
// Enabled): a broker without it runs no tracing code.
//
//   - PublishHook: a server span "route <topic>", a child of the
//     publisher's span when the message carries a traceparent (else a new
//     trace), from the message's arrival to the routing decision. The
//     message is routed with the broker span as its traceparent, so the
//     subscribers' spans are children of the broker's.
//   - ConnectHook and DisconnectHook: spans "connect" and "disconnect" with
//     the client identifier, protocol version, peer address and, for
//     disconnect, the reason code.
//   - DeliveredHook: a span "deliver <topic>", a child of the broker span
//     of the message, from its arrival to the subscriber's acknowledgement
//     (QoS 1 and 2).
//
// WrapAuthenticator adds a span per authentication step.
type BrokerTracer struct {
	tracer trace.Tracer
}

// NewBrokerTracer returns a BrokerTracer recording to tp.
func NewBrokerTracer(tp trace.TracerProvider) *BrokerTracer {
	return &BrokerTracer{tracer: tracerOf(tp)}
}

var (
	_ broker.PublishHook    = (*BrokerTracer)(nil)
	_ broker.ConnectHook    = (*BrokerTracer)(nil)
	_ broker.DisconnectHook = (*BrokerTracer)(nil)
	_ broker.DeliveredHook  = (*BrokerTracer)(nil)
)

// OnPublish implements broker.PublishHook.
func (t *BrokerTracer) OnPublish(ctx context.Context, ev broker.PublishEvent) broker.PublishDecision {
	m := ev.Message
	parent := Extract(ctx, m.Props.User)
	parentValid := trace.SpanContextFromContext(parent).IsValid()
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	if !m.Created.IsZero() {
		opts = append(opts, trace.WithTimestamp(m.Created))
	}
	sctx, span := t.tracer.Start(parent, spanName(opRoute, m.Topic), opts...)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(
			attrSystem.String(systemMQTT),
			attrOpType.String(opTypeRecv),
			attrOpName.String(opRoute),
			attrDest.String(m.Topic),
			attrBodySize.Int(len(m.Payload)),
			attrQoS.Int(int(m.QoS)),
			attrRetain.Bool(m.Retain),
		)
		if ev.Client != nil {
			span.SetAttributes(attrClientID.String(ev.Client.ClientID))
		}
	}
	// A publisher's unsampled context already travels with the message;
	// only a recorded broker span, or a new trace, needs a new traceparent.
	if !span.SpanContext().IsValid() || (!span.IsRecording() && parentValid) {
		return broker.PublishDecision{}
	}
	repl := &broker.Message{Topic: m.Topic, Payload: m.Payload, Props: m.Props}
	repl.Props.User = Inject(sctx, m.Props.User)
	return broker.PublishDecision{Action: broker.PublishTransform, Message: repl}
}

func clientAttrs(c *broker.ClientInfo) []attribute.KeyValue {
	kv := []attribute.KeyValue{
		attrSystem.String(systemMQTT),
		attrClientID.String(c.ClientID),
		attrVersion.String(c.Version.String()),
	}
	if c.RemoteAddr != nil {
		kv = append(kv, attrPeerAddr.String(peerAddr(c.RemoteAddr)))
	}
	return kv
}

func peerAddr(a net.Addr) string {
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// OnConnect implements broker.ConnectHook.
func (t *BrokerTracer) OnConnect(ev broker.ConnectEvent) {
	_, span := t.tracer.Start(context.Background(), "connect", trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(clientAttrs(&ev.Client)...)
		span.SetAttributes(attrClean.Bool(ev.CleanStart), attrPresent.Bool(ev.SessionPresent))
	}
	span.End()
}

// OnDisconnect implements broker.DisconnectHook.
func (t *BrokerTracer) OnDisconnect(ev broker.DisconnectEvent) {
	_, span := t.tracer.Start(context.Background(), "disconnect", trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(clientAttrs(&ev.Client)...)
		span.SetAttributes(attrExpected.Bool(ev.Expected), attrReason.Int(int(ev.ReasonCode)))
		if ev.ReasonCode.IsError() {
			msg := ev.ReasonCode.String()
			if ev.Err != nil {
				msg = ev.Err.Error()
			}
			span.SetStatus(codes.Error, msg)
		}
	}
	span.End()
}

// OnDelivered implements broker.DeliveredHook.
func (t *BrokerTracer) OnDelivered(ev broker.DeliveredEvent) {
	m := ev.Message
	if m == nil {
		return
	}
	ctx := Extract(context.Background(), m.Props.User)
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
	if !m.Created.IsZero() {
		opts = append(opts, trace.WithTimestamp(m.Created))
	}
	_, span := t.tracer.Start(ctx, spanName(opDeliver, m.Topic), opts...)
	if span.IsRecording() {
		span.SetAttributes(
			attrSystem.String(systemMQTT),
			attrOpName.String(opDeliver),
			attrDest.String(m.Topic),
			attrClientID.String(ev.Client.ClientID),
			attrQoS.Int(int(ev.QoS)),
			attrPacketID.Int(int(ev.PacketID)),
		)
	}
	span.End()
}

// WrapAuthenticator returns a with a server span "authenticate" around each
// authentication step, recording the method, step and result code. A nil
// a and broker.AllowAll are returned unchanged: the broker treats
// AllowAll specially (see broker.Config.AllowSessionIdentityChange).
func (t *BrokerTracer) WrapAuthenticator(a broker.Authenticator) broker.Authenticator {
	if a == nil {
		return nil
	}
	if _, ok := a.(broker.AllowAll); ok {
		return a
	}
	return broker.AuthenticatorFunc(func(ctx context.Context, req *broker.AuthRequest) broker.AuthResult {
		ctx, span := t.tracer.Start(ctx, "authenticate", trace.WithSpanKind(trace.SpanKindServer))
		res := a.Authenticate(ctx, req)
		if span.IsRecording() {
			if req.Client != nil {
				span.SetAttributes(clientAttrs(req.Client)...)
			}
			span.SetAttributes(attrAuthMeth.String(req.Method), attrAuthStep.Int(req.Step),
				attrReauth.Bool(req.Reauth), attrReason.Int(int(res.Code)))
			if res.Code.IsError() {
				span.SetStatus(codes.Error, res.Code.String())
			}
		}
		span.End()
		return res
	})
}
