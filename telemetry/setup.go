package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// DefaultServiceName is the service.name of the broker's spans unless
// configured otherwise.
const DefaultServiceName = "mqtt5"

// OTLP protocols.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// TracingConfig configures Setup. The zero value turns tracing off. Every
// other zero field takes its value from the standard OpenTelemetry
// environment variables named beside it, then from the default.
type TracingConfig struct {
	// Enabled turns tracing on. Default false. OTEL_SDK_DISABLED=true or
	// OTEL_TRACES_EXPORTER=none turn it off even when Enabled.
	Enabled bool

	// Protocol is the OTLP protocol: "http/protobuf" or "grpc".
	// Env: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL.
	// Default "http/protobuf".
	Protocol string

	// Endpoint is the collector's URL, for example http://collector:4318
	// (HTTP; /v1/traces is added when the URL has no path) or
	// https://collector:4317 (gRPC). An http:// URL means no TLS.
	// Env: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT.
	// Default http://localhost:4318 (HTTP) or localhost:4317 (gRPC).
	Endpoint string

	// Headers are sent with every export (for example an authorization
	// token). Env: OTEL_EXPORTER_OTLP_TRACES_HEADERS,
	// OTEL_EXPORTER_OTLP_HEADERS.
	Headers map[string]string

	// Timeout bounds one export. Env: OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
	// OTEL_EXPORTER_OTLP_TIMEOUT. Default 10 s.
	Timeout time.Duration

	// SampleRatio is the fraction of new traces that are recorded (0 to 1);
	// a span whose parent came with the message follows the parent's
	// decision (parent-based ratio sampling). Zero takes OTEL_TRACES_SAMPLER
	// and OTEL_TRACES_SAMPLER_ARG when OTEL_TRACES_SAMPLER is set, else
	// OTEL_TRACES_SAMPLER_ARG alone as the ratio, else 1. Negative records
	// no new trace: only those a publisher started and sampled.
	SampleRatio float64

	// ServiceName is the service.name resource attribute. Env:
	// OTEL_SERVICE_NAME, service.name in OTEL_RESOURCE_ATTRIBUTES.
	// Default "mqtt5".
	ServiceName string
	// ServiceVersion is the service.version resource attribute, if set.
	ServiceVersion string

	// Exporter, when set, receives the spans instead of an OTLP exporter
	// (for tests, or another exporter); Protocol, Endpoint, Headers and
	// Timeout are then unused.
	Exporter sdktrace.SpanExporter
}

// Setup returns the TracerProvider described by cfg and the function that
// flushes and stops it (call it at exit, after the broker's Shutdown).
// When tracing is off it returns a no-op provider (Enabled reports false)
// and a shutdown that does nothing. Setup does not install the provider
// as the global one (otel.SetTracerProvider): the caller decides.
func Setup(ctx context.Context, cfg TracingConfig) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	off := func(context.Context) error { return nil }
	if !cfg.Enabled || envBool("OTEL_SDK_DISABLED") {
		return noop.NewTracerProvider(), off, nil
	}
	switch e := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER"))); e {
	case "", "otlp":
	case "none":
		return noop.NewTracerProvider(), off, nil
	default:
		if cfg.Exporter == nil {
			return nil, nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q is not supported (otlp or none)", e)
		}
	}
	sampler, err := samplerFor(cfg.SampleRatio)
	if err != nil {
		return nil, nil, err
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	exp := cfg.Exporter
	if exp == nil {
		if exp, err = newOTLPExporter(ctx, cfg); err != nil {
			return nil, nil, err
		}
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if sampler != nil {
		opts = append(opts, sdktrace.WithSampler(sampler))
	}
	p := sdktrace.NewTracerProvider(opts...)
	return p, p.Shutdown, nil
}

// samplerFor returns the sampler for ratio, or nil to let the SDK read
// OTEL_TRACES_SAMPLER.
func samplerFor(ratio float64) (sdktrace.Sampler, error) {
	switch {
	case ratio < 0:
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case ratio > 0:
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(min(ratio, 1))), nil
	}
	if strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER")) != "" {
		return nil, nil
	}
	arg := strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER_ARG"))
	if arg == "" {
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	}
	r, err := strconv.ParseFloat(arg, 64)
	if err != nil || r < 0 || r > 1 {
		return nil, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG=%q: want a ratio from 0 to 1", arg)
	}
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
}

func newResource(ctx context.Context, cfg TracingConfig) (*resource.Resource, error) {
	opts := []resource.Option{
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName)),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
	}
	var own []attribute.KeyValue
	if cfg.ServiceName != "" {
		own = append(own, attribute.String("service.name", cfg.ServiceName))
	}
	if cfg.ServiceVersion != "" {
		own = append(own, attribute.String("service.version", cfg.ServiceVersion))
	}
	if len(own) > 0 {
		opts = append(opts, resource.WithAttributes(own...))
	}
	res, err := resource.New(ctx, opts...)
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	// A partial resource (an unreadable host name ...) is still usable.
	return res, nil
}

func protocolOf(cfg TracingConfig) (string, error) {
	return otlpProtocol(cfg.Protocol, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
}

// otlpProtocol is the OTLP protocol: the configured one, else the
// signal's environment variable, else OTEL_EXPORTER_OTLP_PROTOCOL, else
// HTTP.
func otlpProtocol(configured, signalEnv string) (string, error) {
	p := configured
	if p == "" {
		p = os.Getenv(signalEnv)
	}
	if p == "" {
		p = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch p = strings.ToLower(strings.TrimSpace(p)); p {
	case "", ProtocolHTTP, "http":
		return ProtocolHTTP, nil
	case ProtocolGRPC:
		return ProtocolGRPC, nil
	}
	return "", fmt.Errorf("telemetry: OTLP protocol %q is not supported (%s or %s)", p, ProtocolHTTP, ProtocolGRPC)
}

// otlpEndpoint parses a configured collector URL; nil when not set (the
// exporter then reads OTEL_EXPORTER_OTLP_*ENDPOINT). For HTTP, path is
// the signal's default path used when the URL has none.
func otlpEndpoint(s, proto, path string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("telemetry: endpoint %q: want http://host:port or https://host:port", s)
	}
	if proto == ProtocolHTTP && (u.Path == "" || u.Path == "/") {
		u.Path = path
	}
	return u, nil
}

// otlpOptions builds the options of an OTLP exporter of any signal and
// protocol from the endpoint (nil: the exporter's default or OTEL_*
// variables), headers and timeout, with the option constructors of the
// exporter's package.
func otlpOptions[O any](endpoint *url.URL, headers map[string]string, timeout time.Duration,
	withURL func(string) O, withHeaders func(map[string]string) O, withTimeout func(time.Duration) O) []O {
	var opts []O
	if endpoint != nil {
		opts = append(opts, withURL(endpoint.String()))
	}
	if len(headers) > 0 {
		opts = append(opts, withHeaders(headers))
	}
	if timeout > 0 {
		opts = append(opts, withTimeout(timeout))
	}
	return opts
}

func newOTLPExporter(ctx context.Context, cfg TracingConfig) (sdktrace.SpanExporter, error) {
	proto, err := protocolOf(cfg)
	if err != nil {
		return nil, err
	}
	endpoint, err := otlpEndpoint(cfg.Endpoint, proto, "/v1/traces")
	if err != nil {
		return nil, err
	}
	switch proto {
	case ProtocolGRPC:
		return otlptracegrpc.New(ctx, otlpOptions(endpoint, cfg.Headers, cfg.Timeout,
			otlptracegrpc.WithEndpointURL, otlptracegrpc.WithHeaders, otlptracegrpc.WithTimeout)...)
	default:
		return otlptracehttp.New(ctx, otlpOptions(endpoint, cfg.Headers, cfg.Timeout,
			otlptracehttp.WithEndpointURL, otlptracehttp.WithHeaders, otlptracehttp.WithTimeout)...)
	}
}

func envBool(name string) bool {
	v, err := strconv.ParseBool(strings.TrimSpace(os.Getenv(name)))
	return err == nil && v
}

var errNoBroker = errors.New("telemetry: nil broker")
