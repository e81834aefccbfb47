package telemetry

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/bridge"
	"github.com/mqtt5go/mqtt5/client"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// One trace spans publisher → broker A → bridge → broker B → subscriber:
// the bridge carries the user properties, so broker B's route span is a
// child of broker A's.
func TestTraceAcrossBridge(t *testing.T) {
	tp, exp := recorder(t, sdktrace.AlwaysSample())
	a := newBroker(t, broker.Config{Hooks: []any{NewBrokerTracer(tp)}})
	b := newBroker(t, broker.Config{Hooks: []any{NewBrokerTracer(tp)}})
	br, err := bridge.New(bridge.Config{
		Name: "ab",
		Remote: bridge.RemoteConfig{URL: "mqtt://in-process", Dialers: map[string]client.Dialer{"mqtt": client.DialerFunc(
			func(context.Context, *url.URL, *tls.Config) (io.ReadWriteCloser, error) {
				return b.InProcessConn(), nil
			})}},
		Topics: []bridge.TopicMapping{{Pattern: "x/#", Direction: bridge.Out, QoS: 1}},
	}, func(context.Context) (net.Conn, error) { return a.TrustedConn(), nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); br.Run(ctx) }()
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		br.Close(cctx)
		cancel()
		<-done
	})

	ct := NewClientTracer(tp)
	got := make(chan *client.Message, 100)
	sub := connect(t, b, client.Options{ClientID: "sub"})
	if _, err := sub.Subscribe(testCtx(t), []client.Subscription{{Filter: "x/#", QoS: 1}}, ct.Handler(func(m *client.Message) { got <- m })); err != nil {
		t.Fatal(err)
	}
	pub := ct.Wrap(connect(t, a, client.Options{ClientID: "pub"}))
	// The bridge subscribes asynchronously: publish until a message arrives.
	deadline := time.Now().Add(20 * time.Second)
	for arrived := false; !arrived; {
		if err := pub.Publish(testCtx(t), &client.Message{Topic: "x/1", QoS: 1, Payload: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
			arrived = true
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("nothing crossed the bridge")
			}
		}
	}
	// Find the process span of the subscriber and walk its parents back to
	// the publisher's span through both brokers.
	var byID map[string]tracetest.SpanStub
	var proc tracetest.SpanStub
	poll := time.Now().Add(10 * time.Second)
	for {
		byID = map[string]tracetest.SpanStub{}
		proc = tracetest.SpanStub{}
		for _, s := range exp.GetSpans() {
			byID[s.SpanContext.SpanID().String()] = s
			if s.Name == "process x/1" {
				proc = s
			}
		}
		if proc.Name != "" {
			break
		}
		if time.Now().After(poll) {
			t.Fatal("no process span")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var chain []string
	for s := proc; ; {
		chain = append(chain, s.Name)
		if s.SpanContext.TraceID() != proc.SpanContext.TraceID() {
			t.Fatalf("span %s in another trace", s.Name)
		}
		parent, ok := byID[s.Parent.SpanID().String()]
		if !s.Parent.IsValid() || !ok {
			break
		}
		s = parent
	}
	want := []string{"process x/1", "route x/1", "route x/1", "publish x/1"}
	if len(chain) != len(want) {
		t.Fatalf("span chain %q, want %q", chain, want)
	}
	for i := range want {
		if chain[i] != want[i] {
			t.Fatalf("span chain %q, want %q", chain, want)
		}
	}
}
