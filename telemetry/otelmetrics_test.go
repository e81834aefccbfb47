package telemetry

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/bridge"
)

// metricsCollector keeps the metrics exported to it.
type metricsCollector struct {
	mu    sync.Mutex
	paths []string
	reqs  []*colmetricpb.ExportMetricsServiceRequest
}

func (c *metricsCollector) add(path string, req *colmetricpb.ExportMetricsServiceRequest) {
	c.mu.Lock()
	c.paths = append(c.paths, path)
	c.reqs = append(c.reqs, req)
	c.mu.Unlock()
}

func (c *metricsCollector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reqs)
}

// last returns the metrics of the last export by name, and its resource
// attributes.
func (c *metricsCollector) last() (map[string]*metricpb.Metric, map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ms, attrs := map[string]*metricpb.Metric{}, map[string]string{}
	if len(c.reqs) == 0 {
		return ms, attrs
	}
	for _, rm := range c.reqs[len(c.reqs)-1].ResourceMetrics {
		for _, kv := range rm.GetResource().GetAttributes() {
			attrs[kv.Key] = kv.GetValue().GetStringValue()
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				ms[m.Name] = m
			}
		}
	}
	return ms, attrs
}

// httpMetricsCollector is an OTLP/HTTP metrics endpoint.
func httpMetricsCollector(t *testing.T) (*metricsCollector, *httptest.Server) {
	c := &metricsCollector{}
	srv := httptest.NewServer(otlpHTTP(func() proto.Message { return &colmetricpb.ExportMetricsServiceRequest{} },
		&colmetricpb.ExportMetricsServiceResponse{}, func(r *http.Request, m proto.Message) {
			c.add(r.URL.Path, m.(*colmetricpb.ExportMetricsServiceRequest))
		}))
	t.Cleanup(srv.Close)
	return c, srv
}

func clearOTelMetricsEnv(t *testing.T) {
	clearOTelEnv(t)
	for _, k := range []string{"OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
		"OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT"} {
		t.Setenv(k, "")
	}
}

// testRegistry is a registry of a broker with traffic, the hook metrics
// and one bridge.
func testRegistry(t *testing.T) (*broker.Broker, *prometheus.Registry) {
	t.Helper()
	m := NewMetrics()
	b := newBroker(t, broker.Config{Hooks: []any{m}})
	reg, err := NewRegistry(b, m)
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(NewBridgeCollector(func() map[string]bridge.Status {
		return map[string]bridge.Status{"cloud": {Connected: true, Forwarded: bridge.Counters{Out: 3}}}
	}))
	traffic(t, b, m, 3)
	return b, reg
}

// names returns the metric family names of g.
func names(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	var out []string
	for name := range gather(t, g) {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// pointValue returns the value of the data point of a sum or gauge with the
// given attribute (key, value), or of its only point.
func pointValue(m *metricpb.Metric, kv ...string) (float64, bool) {
	var pts []*metricpb.NumberDataPoint
	switch d := m.GetData().(type) {
	case *metricpb.Metric_Sum:
		pts = d.Sum.DataPoints
	case *metricpb.Metric_Gauge:
		pts = d.Gauge.DataPoints
	}
next:
	for _, p := range pts {
		for i := 0; i+1 < len(kv); i += 2 {
			found := false
			for _, a := range p.Attributes {
				if a.Key == kv[i] && a.GetValue().GetStringValue() == kv[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return p.GetAsDouble(), true
	}
	return 0, false
}

// The metrics of the registry arrive over OTLP/HTTP with the names and
// values of /metrics; with a long interval the only export is the one
// that shutdown makes, so the last values are not lost.
func TestSetupMetricsOTLPHTTP(t *testing.T) {
	clearOTelMetricsEnv(t)
	c, srv := httpMetricsCollector(t)
	b, reg := testRegistry(t)
	shutdown, err := SetupMetrics(testCtx(t), MetricsConfig{Exporter: ExporterOTLP, Endpoint: srv.URL, Interval: time.Hour,
		ServiceVersion: "v9"}, reg)
	if err != nil {
		t.Fatal(err)
	}
	if n := c.count(); n != 0 {
		t.Fatalf("%d exports before the first interval", n)
	}
	if err := shutdown(testCtx(t)); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if c.count() != 1 || c.paths[0] != "/v1/metrics" {
		t.Fatalf("exports %d, paths %v; want one to /v1/metrics", c.count(), c.paths)
	}
	got, res := c.last()
	var gotNames []string
	for name := range got {
		gotNames = append(gotNames, name)
	}
	slices.Sort(gotNames)
	if want := names(t, reg); !slices.Equal(gotNames, want) {
		t.Errorf("OTLP metrics differ from the registry's:\n got %v\nwant %v", gotNames, want)
	}
	if res["service.name"] != DefaultServiceName || res["service.version"] != "v9" {
		t.Errorf("resource %v", res)
	}
	st := b.Stats()
	for _, c := range []struct {
		name string
		kv   []string
		want float64
	}{
		{"mqtt5_publish_sent_total", []string{"qos", "1"}, float64(st.PublishSentByQoS[1])},
		{"mqtt5_packets_sent_total", nil, float64(st.MessagesSent)},
		{"mqtt5_connections_active", nil, float64(st.Connections)},
		{publishedName, []string{"qos", "1"}, 3},
		{bridgeForwardedName, []string{"bridge", "cloud", "direction", "out"}, 3},
		{bridgeConnectedName, []string{"bridge", "cloud"}, 1},
	} {
		m := got[c.name]
		if m == nil {
			t.Errorf("%s not exported", c.name)
			continue
		}
		if v, ok := pointValue(m, c.kv...); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.kv, v, ok, c.want)
		}
	}
	if s, ok := got["mqtt5_packets_sent_total"].GetData().(*metricpb.Metric_Sum); !ok || !s.Sum.IsMonotonic {
		t.Errorf("mqtt5_packets_sent_total is not a monotonic sum: %v", got["mqtt5_packets_sent_total"])
	}
	if _, ok := got[commitName].GetData().(*metricpb.Metric_Histogram); !ok {
		t.Errorf("%s is not a histogram: %v", commitName, got[commitName])
	}
}

// Endpoint and interval come from the standard variables: exports arrive
// periodically.
func TestSetupMetricsFromEnv(t *testing.T) {
	clearOTelMetricsEnv(t)
	c, srv := httpMetricsCollector(t)
	_, reg := testRegistry(t)
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", srv.URL+"/custom/path")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "20")
	shutdown, err := SetupMetrics(testCtx(t), MetricsConfig{Exporter: ExporterOTLP}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	waitFor(t, "two periodic exports", func() bool { return c.count() >= 2 })
	c.mu.Lock()
	path := c.paths[0]
	c.mu.Unlock()
	if path != "/custom/path" {
		t.Errorf("path %q", path)
	}
	if got, _ := c.last(); got["mqtt5_sessions"] == nil {
		t.Error("mqtt5_sessions not exported")
	}
}

// metricsService is an OTLP/gRPC metrics endpoint.
type metricsService struct {
	colmetricpb.UnimplementedMetricsServiceServer
	c *metricsCollector
}

func (s *metricsService) Export(_ context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	s.c.add("grpc", req)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

func TestSetupMetricsOTLPGRPC(t *testing.T) {
	clearOTelMetricsEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &metricsCollector{}
	gs := grpc.NewServer()
	colmetricpb.RegisterMetricsServiceServer(gs, &metricsService{c: c})
	served := make(chan struct{})
	go func() { gs.Serve(l); close(served) }()
	defer func() { gs.Stop(); <-served }()

	_, reg := testRegistry(t)
	shutdown, err := SetupMetrics(testCtx(t), MetricsConfig{Exporter: ExporterOTLP, Protocol: ProtocolGRPC,
		Endpoint: "http://" + l.Addr().String(), Interval: time.Hour}, reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.last(); got["mqtt5_packets_received_total"] == nil {
		t.Fatalf("nothing received over gRPC (%d exports)", c.count())
	}
}

func TestSetupMetricsOff(t *testing.T) {
	clearOTelMetricsEnv(t)
	c, srv := httpMetricsCollector(t)
	reg := prometheus.NewRegistry()
	ctx := testCtx(t)
	check := func(what string, cfg MetricsConfig) {
		t.Helper()
		shutdown, err := SetupMetrics(ctx, cfg, reg)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if n := c.count(); n != 0 {
			t.Fatalf("%s: %d exports", what, n)
		}
	}
	check("zero config", MetricsConfig{Endpoint: srv.URL})
	check("none", MetricsConfig{Exporter: "none", Endpoint: srv.URL})
	t.Setenv("OTEL_SDK_DISABLED", "true")
	check("OTEL_SDK_DISABLED", MetricsConfig{Exporter: ExporterOTLP, Endpoint: srv.URL})
	t.Setenv("OTEL_SDK_DISABLED", "")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	check("OTEL_METRICS_EXPORTER=none", MetricsConfig{Exporter: ExporterOTLP, Endpoint: srv.URL})
	t.Setenv("OTEL_METRICS_EXPORTER", "")

	for what, cfg := range map[string]MetricsConfig{
		"exporter": {Exporter: "prometheus"},
		"protocol": {Exporter: ExporterOTLP, Protocol: "http/json"},
		"endpoint": {Exporter: ExporterOTLP, Endpoint: "collector:4318"},
	} {
		if _, err := SetupMetrics(ctx, cfg, reg); err == nil {
			t.Errorf("%s: no error", what)
		}
	}
	if _, err := SetupMetrics(ctx, MetricsConfig{}, nil); err == nil {
		t.Error("nil gatherer accepted")
	}
}
