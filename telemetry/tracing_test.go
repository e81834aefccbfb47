package telemetry

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/client/mock"
	"github.com/mqtt5go/mqtt5/packet"
)

// recorder is a TracerProvider that keeps every span in memory.
func recorder(tb testing.TB, sampler sdktrace.Sampler) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	tb.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sampler))
	tb.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, exp
}

// spanNamed waits for an ended span called name and returns it.
func spanNamed(tb testing.TB, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	tb.Helper()
	var found tracetest.SpanStub
	waitFor(tb, "span "+name, func() bool {
		for _, s := range exp.GetSpans() {
			if s.Name == name {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

func userProp(props []packet.UserProperty, key string) []string {
	var vs []string
	for _, p := range props {
		if strings.EqualFold(p.Key, key) {
			vs = append(vs, p.Value)
		}
	}
	return vs
}

// TestTraceAcrossBroker follows one message from a traced publisher through
// the broker to a traced subscriber: one trace, publisher span -> broker
// span -> subscriber span, and the acknowledged delivery under the broker
// span.
func TestTraceAcrossBroker(t *testing.T) {
	tp, exp := recorder(t, sdktrace.AlwaysSample())
	b := newBroker(t, broker.Config{Hooks: []any{NewBrokerTracer(tp)}})
	ct := NewClientTracer(tp)

	got := make(chan *client.Message, 1)
	var handlerCtx trace.SpanContext
	sub := connect(t, b, client.Options{ClientID: "sub"})
	if _, err := sub.Subscribe(testCtx(t), []client.Subscription{{Filter: "sensors/+", QoS: 1}},
		ct.HandlerContext(func(ctx context.Context, m *client.Message) {
			handlerCtx = trace.SpanContextFromContext(ctx)
			got <- m
		})); err != nil {
		t.Fatal(err)
	}
	pub := ct.Wrap(connect(t, b, client.Options{ClientID: "pub"}))
	user := []packet.UserProperty{{Key: "k", Value: "v"}, {Key: "traceparent", Value: "stale"}}
	msg := &client.Message{Topic: "sensors/t1", Payload: []byte("21.5"), QoS: 1, User: user}
	if err := pub.Publish(testCtx(t), msg); err != nil {
		t.Fatal(err)
	}
	if msg.User[1].Value != "stale" || len(msg.User) != 2 {
		t.Fatalf("the published message was modified: %v", msg.User)
	}
	m := <-got

	pubSpan := spanNamed(t, exp, "publish sensors/t1")
	route := spanNamed(t, exp, "route sensors/t1")
	proc := spanNamed(t, exp, "process sensors/t1")
	deliver := spanNamed(t, exp, "deliver sensors/t1")

	if pubSpan.SpanKind != trace.SpanKindProducer || route.SpanKind != trace.SpanKindServer || proc.SpanKind != trace.SpanKindConsumer {
		t.Errorf("kinds: publish %v route %v process %v", pubSpan.SpanKind, route.SpanKind, proc.SpanKind)
	}
	tid := pubSpan.SpanContext.TraceID()
	for _, s := range []tracetest.SpanStub{route, proc, deliver} {
		if s.SpanContext.TraceID() != tid {
			t.Errorf("%s: trace %s, want %s", s.Name, s.SpanContext.TraceID(), tid)
		}
	}
	if pubSpan.Parent.IsValid() {
		t.Errorf("publish span has a parent: %v", pubSpan.Parent)
	}
	if route.Parent.SpanID() != pubSpan.SpanContext.SpanID() || !route.Parent.IsRemote() {
		t.Errorf("route parent %v, want remote publish span %v", route.Parent.SpanID(), pubSpan.SpanContext.SpanID())
	}
	if proc.Parent.SpanID() != route.SpanContext.SpanID() {
		t.Errorf("process parent %v, want route span %v", proc.Parent.SpanID(), route.SpanContext.SpanID())
	}
	if deliver.Parent.SpanID() != route.SpanContext.SpanID() {
		t.Errorf("deliver parent %v, want route span %v", deliver.Parent.SpanID(), route.SpanContext.SpanID())
	}
	if !handlerCtx.Equal(proc.SpanContext) {
		t.Errorf("handler context %v, want the process span %v", handlerCtx, proc.SpanContext)
	}
	// The subscriber got the user properties, with one traceparent: the
	// broker span's.
	if v := userProp(m.User, "k"); !slices.Equal(v, []string{"v"}) {
		t.Errorf("user property k: %v", v)
	}
	tp0 := userProp(m.User, "traceparent")
	if len(tp0) != 1 || !strings.Contains(tp0[0], route.SpanContext.SpanID().String()) {
		t.Errorf("traceparent %v, want the route span %s", tp0, route.SpanContext.SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range route.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["messaging.destination.name"] != "sensors/t1" || attrs["messaging.client.id"] != "pub" || attrs["mqtt.qos"] != "1" {
		t.Errorf("route attributes %v", attrs)
	}
}

// TestTraceGarbageTraceparent: a client-supplied traceparent that is not
// valid starts a new trace at the broker, which replaces it.
func TestTraceGarbageTraceparent(t *testing.T) {
	tp, exp := recorder(t, sdktrace.AlwaysSample())
	b := newBroker(t, broker.Config{Hooks: []any{NewBrokerTracer(tp)}})
	ct := NewClientTracer(tp)
	got := make(chan *client.Message, 4)
	sub := connect(t, b, client.Options{ClientID: "sub"})
	if _, err := sub.Subscribe(testCtx(t), []client.Subscription{{Filter: "g/#", QoS: 1}}, ct.Handler(func(m *client.Message) { got <- m })); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, b, client.Options{ClientID: "pub"}) // not traced
	for i, garbage := range [][]packet.UserProperty{
		{{Key: "traceparent", Value: "garbage"}, {Key: "tracestate", Value: "=,=;"}},
		{{Key: "TraceParent", Value: "00-00000000000000000000000000000000-0000000000000000-01"}},
		{{Key: "traceparent", Value: "ff-" + strings.Repeat("z", 60)}, {Key: "traceparent", Value: ""}},
		{{Key: "traceparent", Value: strings.Repeat("0", 10000)}},
	} {
		topicName := "g/" + string(rune('a'+i))
		if err := pub.Publish(testCtx(t), &client.Message{Topic: topicName, QoS: 1, Payload: []byte("x"), User: garbage}); err != nil {
			t.Fatal(err)
		}
		m := <-got
		route := spanNamed(t, exp, "route "+topicName)
		proc := spanNamed(t, exp, "process "+topicName)
		if route.Parent.IsValid() {
			t.Errorf("%d: route span has parent %v", i, route.Parent)
		}
		if proc.Parent.SpanID() != route.SpanContext.SpanID() || proc.SpanContext.TraceID() != route.SpanContext.TraceID() {
			t.Errorf("%d: process span not a child of the route span", i)
		}
		if v := userProp(m.User, "traceparent"); len(v) != 1 || !strings.Contains(v[0], route.SpanContext.TraceID().String()) {
			t.Errorf("%d: delivered traceparent %q", i, v)
		}
	}
}

func TestUserPropertiesCarrier(t *testing.T) {
	tp, _ := recorder(t, sdktrace.AlwaysSample())
	ctx, span := tp.Tracer("test").Start(context.Background(), "s")
	defer span.End()
	want := span.SpanContext()

	orig := []packet.UserProperty{{Key: "a", Value: "1"}, {Key: "TRACEPARENT", Value: "old"}, {Key: "b", Value: "2"}, {Key: "traceparent", Value: "old2"}}
	snapshot := slices.Clone(orig)
	out := Inject(ctx, orig)
	if !slices.Equal(orig, snapshot) {
		t.Fatalf("Inject modified its input: %v", orig)
	}
	if n := len(userProp(out, "traceparent")); n != 1 {
		t.Fatalf("traceparent %d times in %v", n, out)
	}
	if out[0] != orig[0] || out[1] != orig[2] {
		t.Fatalf("other properties lost or reordered: %v", out)
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), out))
	if got.TraceID() != want.TraceID() || got.SpanID() != want.SpanID() || got.TraceFlags() != want.TraceFlags() || !got.IsRemote() {
		t.Fatalf("round trip: %v, want %v", got, want)
	}

	// tracestate travels too.
	ts, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	ctx2 := trace.ContextWithSpanContext(context.Background(), want.WithTraceState(ts))
	if got := trace.SpanContextFromContext(Extract(context.Background(), Inject(ctx2, nil))); got.TraceState().Get("vendor") != "abc" {
		t.Fatalf("tracestate: %v", got.TraceState())
	}

	// No span: nothing added and the input returned as is.
	if out := Inject(context.Background(), orig); &out[0] != &orig[0] || len(out) != len(orig) {
		t.Fatal("Inject without a span changed the properties")
	}
	// Nothing, or garbage: no remote context.
	for _, props := range [][]packet.UserProperty{nil, {{Key: "traceparent", Value: "00-zz"}}, {{Key: "traceparent", Value: ""}}} {
		if sc := trace.SpanContextFromContext(Extract(context.Background(), props)); sc.IsValid() {
			t.Errorf("Extract(%v) = %v", props, sc)
		}
	}

	// The carrier itself.
	c := UserProperties{{Key: "x", Value: "1"}, {Key: "X", Value: "2"}, {Key: "y", Value: "3"}}
	if c.Get("X") != "1" || c.Get("z") != "" {
		t.Fatalf("Get: %q %q", c.Get("X"), c.Get("z"))
	}
	if k := c.Keys(); !slices.Equal(k, []string{"x", "X", "y"}) {
		t.Fatalf("Keys: %v", k)
	}
	c.Set("x", "9")
	if !slices.Equal(c, UserProperties{{Key: "x", Value: "9"}, {Key: "y", Value: "3"}}) {
		t.Fatalf("Set replace: %v", c)
	}
	c.Set("z", "4")
	if len(c) != 3 || c.Get("z") != "4" {
		t.Fatalf("Set append: %v", c)
	}
}

// TestBrokerTracerDecisions checks when OnPublish rewrites the message.
func TestBrokerTracerDecisions(t *testing.T) {
	ctxWith := func(flags trace.TraceFlags) []packet.UserProperty {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: flags,
		})
		return Inject(trace.ContextWithSpanContext(context.Background(), sc), []packet.UserProperty{{Key: "u", Value: "1"}})
	}
	sampled, unsampled := ctxWith(trace.FlagsSampled), ctxWith(0)
	info := &broker.ClientInfo{ClientID: "p", Version: packet.V5}
	for _, tc := range []struct {
		name      string
		sampler   sdktrace.Sampler
		user      []packet.UserProperty
		transform bool
	}{
		{"sampled parent", sdktrace.ParentBased(sdktrace.NeverSample()), sampled, true},
		{"unsampled parent passes through", sdktrace.ParentBased(sdktrace.AlwaysSample()), unsampled, false},
		{"new sampled trace", sdktrace.AlwaysSample(), nil, true},
		{"new unsampled trace still propagates the decision", sdktrace.NeverSample(), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, exp := recorder(t, tc.sampler)
			bt := NewBrokerTracer(tp)
			m := &broker.Message{Topic: "a/b", QoS: 1, Payload: []byte("p"), Props: packet.Properties{User: tc.user}}
			before := slices.Clone(tc.user)
			dec := bt.OnPublish(context.Background(), broker.PublishEvent{Client: info, Message: m})
			if !slices.Equal(m.Props.User, before) {
				t.Fatalf("the routed message was modified")
			}
			if (dec.Action == broker.PublishTransform) != tc.transform {
				t.Fatalf("action %v, want transform %v", dec.Action, tc.transform)
			}
			if !tc.transform {
				return
			}
			r := dec.Message
			if r.Topic != m.Topic || string(r.Payload) != "p" {
				t.Fatalf("replacement %+v", r)
			}
			sc := trace.SpanContextFromContext(Extract(context.Background(), r.Props.User))
			if !sc.IsValid() {
				t.Fatalf("replacement without trace context: %v", r.Props.User)
			}
			if tc.user != nil && (sc.TraceID() != (trace.TraceID{1}) || userProp(r.Props.User, "u") == nil) {
				t.Fatalf("replacement lost the parent trace or user properties: %v", r.Props.User)
			}
			if spans := exp.GetSpans(); sc.IsSampled() != (len(spans) == 1) {
				t.Fatalf("sampled %v, %d spans recorded", sc.IsSampled(), len(spans))
			}
		})
	}
	// A no-op provider never rewrites.
	bt := NewBrokerTracer(noop.NewTracerProvider())
	if dec := bt.OnPublish(context.Background(), broker.PublishEvent{Client: info, Message: &broker.Message{Topic: "a"}}); dec.Action != broker.PublishContinue {
		t.Fatalf("noop: %v", dec.Action)
	}
}

func TestEnabled(t *testing.T) {
	tp, _ := recorder(t, sdktrace.AlwaysSample())
	for _, tc := range []struct {
		tp   trace.TracerProvider
		want bool
	}{{nil, false}, {noop.NewTracerProvider(), false}, {tp, true}} {
		if got := Enabled(tc.tp); got != tc.want {
			t.Errorf("Enabled(%T) = %v", tc.tp, got)
		}
	}
}

// TestClientWrappers drives the client-side wrappers through the mock
// client: publish with and without a tracer, Wrap's Subscribe, the
// DefaultHandler from InstrumentClient, and a panicking handler.
func TestClientWrappers(t *testing.T) {
	tp, exp := recorder(t, sdktrace.AlwaysSample())
	mc := mock.New()
	var opts client.Options
	var mu sync.Mutex
	var seen []string
	opts.DefaultHandler = func(m *client.Message) { mu.Lock(); seen = append(seen, "default:"+m.Topic); mu.Unlock() }
	ct := InstrumentClient(&opts, tp)
	mc.DefaultHandler = opts.DefaultHandler
	wc := ct.Wrap(mc)
	if _, err := wc.Subscribe(testCtx(t), []client.Subscription{{Filter: "a/#"}}, func(m *client.Message) {
		mu.Lock()
		seen = append(seen, "a:"+m.Topic)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := wc.Publish(testCtx(t), &client.Message{Topic: "a/1"}); err != nil {
		t.Fatal(err)
	}
	if tok := wc.PublishAsync(testCtx(t), &client.Message{Topic: "a/2"}); tok.Wait(testCtx(t)) != nil {
		t.Fatal(tok.Err())
	}
	published := mc.Published()
	if len(published) != 2 {
		t.Fatalf("published %d", len(published))
	}
	for _, m := range published {
		mc.Deliver(*m)
	}
	mc.Deliver(client.Message{Topic: "other"})
	mu.Lock()
	if !slices.Equal(seen, []string{"a:a/1", "a:a/2", "default:other"}) {
		t.Errorf("handlers saw %v", seen)
	}
	mu.Unlock()
	for _, topicName := range []string{"a/1", "a/2"} {
		pub := spanNamed(t, exp, "publish "+topicName)
		proc := spanNamed(t, exp, "process "+topicName)
		if proc.Parent.SpanID() != pub.SpanContext.SpanID() {
			t.Errorf("%s: process span not a child of the publish span", topicName)
		}
	}
	if s := spanNamed(t, exp, "process other"); s.Parent.IsValid() {
		t.Errorf("message without context: parent %v", s.Parent)
	}

	// Publish errors are recorded; nil handlers stay nil.
	mc.ScriptPublish(packet.NotAuthorized)
	if err := ct.Publish(testCtx(t), mc, &client.Message{Topic: "denied"}); err == nil {
		t.Fatal("scripted error not returned")
	}
	if s := spanNamed(t, exp, "publish denied"); s.Status.Code.String() != "Error" {
		t.Errorf("status %v", s.Status)
	}
	if ct.Handler(nil) != nil || ct.HandlerContext(nil) != nil {
		t.Error("nil handler wrapped")
	}

	// A handler that panics still ends its span, with an error status.
	h := Handler(tp, func(*client.Message) { panic("boom") })
	func() {
		defer func() { recover() }()
		h(client.NewTestMessage(client.Message{Topic: "panics"}, nil))
	}()
	if s := spanNamed(t, exp, "process panics"); s.Status.Code.String() != "Error" {
		t.Errorf("panic status %v", s.Status)
	}

	// Without a tracer the message is published as it is.
	plain := NewClientTracer(nil)
	m := &client.Message{Topic: "plain", User: []packet.UserProperty{{Key: "k", Value: "v"}}}
	mc.Reset()
	if err := plain.Publish(testCtx(t), mc, m); err != nil {
		t.Fatal(err)
	}
	if p := mc.Published(); len(p) != 1 || len(p[0].User) != 1 || &p[0].User[0] != &m.User[0] {
		t.Errorf("untraced publish sent %v", p)
	}
}
