package telemetry

import (
	"context"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
)

// discard is a span exporter that drops what it is given.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// benchProvider records spans through a batch processor into discard.
func benchProvider(b *testing.B, sampler sdktrace.Sampler) *sdktrace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}), sdktrace.WithSampler(sampler))
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp
}

// benchPublish publishes QoS 1 messages from one client to one subscriber
// through an in-process broker: each operation is one PUBLISH/PUBACK round
// trip plus the delivery. ct, when set, traces both clients.
func benchPublish(b *testing.B, cfg broker.Config, ct *ClientTracer) {
	br := newBroker(b, cfg)
	var got atomic.Int64
	var h client.Handler = func(*client.Message) { got.Add(1) }
	if ct != nil {
		h = ct.Handler(h)
	}
	ctx := context.Background()
	sub := connect(b, br, client.Options{ClientID: "sub"})
	if _, err := sub.Subscribe(ctx, []client.Subscription{{Filter: "bench/+", QoS: 1}}, h); err != nil {
		b.Fatal(err)
	}
	var pub client.Interface = connect(b, br, client.Options{ClientID: "pub"})
	if ct != nil {
		pub = ct.Wrap(pub)
	}
	msg := &client.Message{Topic: "bench/t", QoS: 1, Payload: make([]byte, 64)}
	n := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		if err := pub.Publish(ctx, msg); err != nil {
			b.Fatal(err)
		}
		n++
	}
	waitFor(b, "deliveries", func() bool { return got.Load() == n })
}

// BenchmarkPublishTracingOff is the broker and clients without telemetry.
func BenchmarkPublishTracingOff(b *testing.B) {
	benchPublish(b, broker.Config{}, nil)
}

// BenchmarkPublishTracingOn traces publisher, broker and subscriber:
// every span sampled, or none (the decision still travels).
func BenchmarkPublishTracingOn(b *testing.B) {
	b.Run("sampled", func(b *testing.B) {
		tp := benchProvider(b, sdktrace.AlwaysSample())
		benchPublish(b, broker.Config{Hooks: []any{NewBrokerTracer(tp)}}, NewClientTracer(tp))
	})
	b.Run("unsampled", func(b *testing.B) {
		tp := benchProvider(b, sdktrace.ParentBased(sdktrace.NeverSample()))
		benchPublish(b, broker.Config{Hooks: []any{NewBrokerTracer(tp)}}, NewClientTracer(tp))
	})
	b.Run("broker-only", func(b *testing.B) {
		tp := benchProvider(b, sdktrace.AlwaysSample())
		benchPublish(b, broker.Config{Hooks: []any{NewBrokerTracer(tp)}}, nil)
	})
}

// BenchmarkPublishMetricsHook measures the hook-based counters.
func BenchmarkPublishMetricsHook(b *testing.B) {
	benchPublish(b, broker.Config{Hooks: []any{NewMetrics()}}, nil)
}
