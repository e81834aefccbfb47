package telemetry

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// collector keeps the spans exported to it.
type collector struct {
	mu     sync.Mutex
	tokens []string // x-token headers
	paths  []string
	reqs   []*coltracepb.ExportTraceServiceRequest
}

func (c *collector) add(path string, req *coltracepb.ExportTraceServiceRequest) {
	c.mu.Lock()
	c.paths = append(c.paths, path)
	c.reqs = append(c.reqs, req)
	c.mu.Unlock()
}

// find returns the resource spans holding a span called name.
func (c *collector) find(name string) (*tracepb.ResourceSpans, *tracepb.Span) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.reqs {
		for _, rs := range r.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					if s.Name == name {
						return rs, s
					}
				}
			}
		}
	}
	return nil, nil
}

func resourceAttr(rs *tracepb.ResourceSpans, key string) string {
	for _, kv := range rs.GetResource().GetAttributes() {
		if kv.Key == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// httpCollector is an OTLP/HTTP endpoint.
func httpCollector(t *testing.T) (*collector, *httptest.Server) {
	c := &collector{}
	srv := httptest.NewServer(otlpHTTP(func() proto.Message { return &coltracepb.ExportTraceServiceRequest{} },
		&coltracepb.ExportTraceServiceResponse{}, func(r *http.Request, m proto.Message) {
			c.add(r.URL.Path, m.(*coltracepb.ExportTraceServiceRequest))
			c.mu.Lock()
			c.tokens = append(c.tokens, r.Header.Get("x-token"))
			c.mu.Unlock()
		}))
	t.Cleanup(srv.Close)
	return c, srv
}

// otlpHTTP serves OTLP/HTTP: each POST body (gzip or not) is decoded into
// a fresh newReq() and handed to got, and resp is the answer.
func otlpHTTP(newReq func() proto.Message, resp proto.Message, got func(*http.Request, proto.Message)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := io.Reader(r.Body)
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		if err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad request", 400)
			return
		}
		req := newReq()
		if err := proto.Unmarshal(data, req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got(r, req)
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(resp)
		w.Write(out)
	})
}

// emit records one span named name with tp and flushes it with shutdown.
func emit(t *testing.T, tp trace.TracerProvider, shutdown func(context.Context) error, name string) {
	t.Helper()
	_, span := tp.Tracer("test").Start(context.Background(), name)
	span.End()
	if err := shutdown(testCtx(t)); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func clearOTelEnv(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_TRACES_SAMPLER",
		"OTEL_TRACES_SAMPLER_ARG", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
}

func TestSetupOTLPHTTPFromEnv(t *testing.T) {
	clearOTelEnv(t)
	c, srv := httpCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-token=secret")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "1")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")

	tp, shutdown, err := Setup(testCtx(t), TracingConfig{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if !Enabled(tp) {
		t.Fatal("tracing off")
	}
	emit(t, tp, shutdown, "env-span")
	rs, span := c.find("env-span")
	if span == nil {
		t.Fatalf("span not received; paths %v", c.paths)
	}
	if c.paths[0] != "/v1/traces" || c.tokens[0] != "secret" {
		t.Errorf("path %q, x-token %q", c.paths[0], c.tokens[0])
	}
	if got := resourceAttr(rs, "service.name"); got != DefaultServiceName {
		t.Errorf("service.name %q", got)
	}
	if got := resourceAttr(rs, "deployment.environment"); got != "test" {
		t.Errorf("deployment.environment %q", got)
	}
}

func TestSetupOTLPHTTPFromConfig(t *testing.T) {
	clearOTelEnv(t)
	c, srv := httpCollector(t)
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	tp, shutdown, err := Setup(testCtx(t), TracingConfig{
		Enabled: true, Endpoint: srv.URL, Protocol: ProtocolHTTP, ServiceName: "edge-broker", SampleRatio: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	emit(t, tp, shutdown, "cfg-span")
	rs, span := c.find("cfg-span")
	if span == nil {
		t.Fatal("span not received")
	}
	if got := resourceAttr(rs, "service.name"); got != "edge-broker" {
		t.Errorf("service.name %q", got)
	}
}

// traceService is an OTLP/gRPC endpoint.
type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	c *collector
}

func (s *traceService) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.c.add("grpc", req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func TestSetupOTLPGRPC(t *testing.T) {
	clearOTelEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, &traceService{c: c})
	served := make(chan struct{})
	go func() { gs.Serve(l); close(served) }()
	defer func() { gs.Stop(); <-served }()

	// From the environment.
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+l.Addr().String())
	tp, shutdown, err := Setup(testCtx(t), TracingConfig{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	emit(t, tp, shutdown, "grpc-env-span")
	if _, span := c.find("grpc-env-span"); span == nil {
		t.Fatal("span not received over gRPC")
	}

	// From the configuration.
	clearOTelEnv(t)
	tp, shutdown, err = Setup(testCtx(t), TracingConfig{Enabled: true, Protocol: ProtocolGRPC, Endpoint: "http://" + l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	emit(t, tp, shutdown, "grpc-cfg-span")
	if _, span := c.find("grpc-cfg-span"); span == nil {
		t.Fatal("span not received over gRPC")
	}
}

func TestSetupOff(t *testing.T) {
	clearOTelEnv(t)
	ctx := testCtx(t)
	check := func(what string, cfg TracingConfig) {
		t.Helper()
		tp, shutdown, err := Setup(ctx, cfg)
		if err != nil || Enabled(tp) {
			t.Fatalf("%s: enabled %v err %v", what, Enabled(tp), err)
		}
		if err := shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check("zero config", TracingConfig{})
	t.Setenv("OTEL_SDK_DISABLED", "true")
	check("OTEL_SDK_DISABLED", TracingConfig{Enabled: true})
	t.Setenv("OTEL_SDK_DISABLED", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	check("OTEL_TRACES_EXPORTER=none", TracingConfig{Enabled: true})
	t.Setenv("OTEL_TRACES_EXPORTER", "")

	for what, cfg := range map[string]TracingConfig{
		"protocol": {Enabled: true, Protocol: "http/json"},
		"endpoint": {Enabled: true, Endpoint: "collector:4318"},
	} {
		if _, _, err := Setup(ctx, cfg); err == nil {
			t.Errorf("%s: no error", what)
		}
	}
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "lots")
	if _, _, err := Setup(ctx, TracingConfig{Enabled: true, Exporter: tracetest.NewInMemoryExporter()}); err == nil {
		t.Error("bad OTEL_TRACES_SAMPLER_ARG accepted")
	}
}

// TestSetupSampling checks the parent-based ratio sampler.
func TestSetupSampling(t *testing.T) {
	clearOTelEnv(t)
	remote := func(sampled bool) context.Context {
		var f trace.TraceFlags
		if sampled {
			f = trace.FlagsSampled
		}
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}, TraceFlags: f, Remote: true})
		return trace.ContextWithSpanContext(context.Background(), sc)
	}
	for _, tc := range []struct {
		name             string
		ratio            float64
		env              string
		root, underTrue  bool
		underFalseSample bool
	}{
		{"default samples all", 0, "", true, true, false},
		{"negative ratio samples only sampled parents", -1, "", false, true, false},
		{"OTEL_TRACES_SAMPLER_ARG=0", 0, "0", false, true, false},
		{"ratio 1", 1, "0", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OTEL_TRACES_SAMPLER_ARG", tc.env)
			exp := tracetest.NewInMemoryExporter()
			tp, shutdown, err := Setup(testCtx(t), TracingConfig{Enabled: true, SampleRatio: tc.ratio, Exporter: exp})
			if err != nil {
				t.Fatal(err)
			}
			defer shutdown(context.Background())
			tr := tp.Tracer("test")
			for _, c := range []struct {
				ctx  context.Context
				want bool
			}{{context.Background(), tc.root}, {remote(true), tc.underTrue}, {remote(false), tc.underFalseSample}} {
				_, span := tr.Start(c.ctx, "s")
				if span.SpanContext().IsSampled() != c.want {
					t.Errorf("sampled %v, want %v", span.SpanContext().IsSampled(), c.want)
				}
				span.End()
			}
		})
	}
	// OTEL_TRACES_SAMPLER is left to the SDK.
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	tp, shutdown, err := Setup(testCtx(t), TracingConfig{Enabled: true, Exporter: tracetest.NewInMemoryExporter()})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if _, span := tp.Tracer("t").Start(context.Background(), "s"); span.SpanContext().IsSampled() {
		t.Error("OTEL_TRACES_SAMPLER=always_off ignored")
	}
}
