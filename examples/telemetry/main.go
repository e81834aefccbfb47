// Command telemetry runs a broker with tracing and metrics: spans go to an
// OTLP collector when one is configured (the OTEL_* environment variables,
// or -otlp), and /metrics, /healthz and /readyz are served over HTTP. Two
// in-process clients exchange a few traced messages so that there is
// something to see.
//
//	go run ./examples/telemetry -listen 127.0.0.1:1883 -http 127.0.0.1:9090
//	curl -s 127.0.0.1:9090/metrics | grep ^mqtt5_
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 go run ./examples/telemetry -trace
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/telemetry"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:1883", "MQTT listen address")
	httpAddr := flag.String("http", "127.0.0.1:9090", "address of /metrics, /healthz and /readyz")
	traceOn := flag.Bool("trace", false, "export spans over OTLP")
	endpoint := flag.String("otlp", "", "OTLP endpoint URL (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
	ratio := flag.Float64("sample", 0, "fraction of new traces to record (default: OTEL_TRACES_SAMPLER_ARG, else all)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	// Tracing: off unless asked for; nothing is registered with the broker
	// then.
	tp, shutdownTracing, err := telemetry.Setup(ctx, telemetry.TracingConfig{
		Enabled: *traceOn, Endpoint: *endpoint, SampleRatio: *ratio,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(ctx); err != nil {
			log.Printf("tracing shutdown: %v", err)
		}
	}()

	// Metrics: the hook counters, also counting authentication results.
	metrics := telemetry.NewMetrics()
	cfg := broker.Config{Hooks: []any{metrics}}
	cfg.Authenticator = metrics.WrapAuthenticator(cfg.Authenticator)
	if telemetry.Enabled(tp) {
		bt := telemetry.NewBrokerTracer(tp)
		cfg.Hooks = append(cfg.Hooks, bt)
		cfg.Authenticator = bt.WrapAuthenticator(cfg.Authenticator)
	}
	b := broker.New(cfg)

	reg, err := telemetry.NewRegistry(b, metrics)
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Addr: *httpAddr, Handler: telemetry.NewHTTPHandler(b, reg, nil), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := b.Serve(l); !errors.Is(err, broker.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	<-b.Ready()
	log.Printf("MQTT on %s, metrics on http://%s/metrics", l.Addr(), *httpAddr)

	if err := demo(ctx, b, tp); err != nil {
		log.Printf("demo: %v", err)
	}

	<-ctx.Done()
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hs.Shutdown(shutCtx)
	if err := b.Shutdown(shutCtx); err != nil {
		log.Printf("broker shutdown: %v", err)
	}
}

// demo publishes a few messages from one traced client to another: each
// message's trace runs publisher -> broker -> subscriber.
func demo(ctx context.Context, b *broker.Broker, tp trace.TracerProvider) error {
	opts := func(id string) client.Options {
		return client.Options{
			ClientID: id,
			Dialers: map[string]client.Dialer{"mqtt": client.DialerFunc(
				func(context.Context, *url.URL, *tls.Config) (io.ReadWriteCloser, error) {
					return b.InProcessConn(), nil
				})},
		}
	}
	ct := telemetry.NewClientTracer(tp)
	sub, _, err := client.Dial(ctx, "mqtt://in-process", opts("demo-sub"))
	if err != nil {
		return err
	}
	got := make(chan struct{}, 3)
	_, err = sub.Subscribe(ctx, []client.Subscription{{Filter: "demo/#", QoS: 1}},
		ct.HandlerContext(func(ctx context.Context, m *client.Message) {
			log.Printf("received %s %q", m.Topic, m.Payload)
			got <- struct{}{}
		}))
	if err != nil {
		return err
	}
	pubc, _, err := client.Dial(ctx, "mqtt://in-process", opts("demo-pub"))
	if err != nil {
		return err
	}
	pub := ct.Wrap(pubc)
	for i := range 3 {
		m := &client.Message{Topic: "demo/temperature", QoS: 1, Payload: []byte(strconv.Itoa(20 + i))}
		if err := pub.Publish(ctx, m); err != nil {
			return err
		}
		<-got
	}
	pub.Disconnect(ctx, 0, client.KeepSessionExpiry)
	sub.Disconnect(ctx, 0, client.KeepSessionExpiry)
	return nil
}
