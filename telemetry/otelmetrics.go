package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promb "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// MetricsConfig configures SetupMetrics, the export of the Prometheus
// metrics over OTLP. The zero value turns the export off. Every other zero
// field takes its value from the standard OpenTelemetry environment
// variables named beside it, then from the default.
type MetricsConfig struct {
	// Exporter is "otlp" to export, "" or "none" for no export (the
	// default). OTEL_SDK_DISABLED=true or OTEL_METRICS_EXPORTER=none turn
	// the export off even when Exporter is "otlp".
	Exporter string

	// Protocol is the OTLP protocol: "http/protobuf" or "grpc".
	// Env: OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL.
	// Default "http/protobuf".
	Protocol string

	// Endpoint is the collector's URL, for example http://collector:4318
	// (HTTP; /v1/metrics is added when the URL has no path) or
	// https://collector:4317 (gRPC). An http:// URL means no TLS.
	// Env: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT.
	// Default http://localhost:4318 (HTTP) or localhost:4317 (gRPC).
	Endpoint string

	// Headers are sent with every export. Env:
	// OTEL_EXPORTER_OTLP_METRICS_HEADERS, OTEL_EXPORTER_OTLP_HEADERS.
	Headers map[string]string

	// Timeout bounds one export. Env: OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
	// OTEL_EXPORTER_OTLP_TIMEOUT. Default 10 s.
	Timeout time.Duration

	// Interval is the time between two exports. Env:
	// OTEL_METRIC_EXPORT_INTERVAL (milliseconds). Default 60 s.
	Interval time.Duration

	// ServiceName and ServiceVersion are the service.name and
	// service.version resource attributes, as in TracingConfig.
	ServiceName    string
	ServiceVersion string
}

// ExporterOTLP is the value of MetricsConfig.Exporter that turns the OTLP
// export on.
const ExporterOTLP = "otlp"

// SetupMetrics exports every metric of g (a registry from NewRegistry, with
// its bridge and other collectors) over OTLP, as cfg says: a periodic
// reader gathers g at each interval through the OpenTelemetry Prometheus
// bridge, so the OTLP metrics carry the same names, labels (as
// attributes) and values as /metrics. It returns the function that stops
// the export after a last one (call it at exit, after the broker's
// Shutdown, so that the final values are sent). When the export is off it
// returns a shutdown that does nothing.
func SetupMetrics(ctx context.Context, cfg MetricsConfig, g prometheus.Gatherer) (shutdown func(context.Context) error, err error) {
	off := func(context.Context) error { return nil }
	if g == nil {
		return nil, errors.New("telemetry: nil gatherer")
	}
	on, err := metricsOn(cfg)
	if err != nil || !on {
		return off, err
	}
	res, err := newResource(ctx, TracingConfig{ServiceName: cfg.ServiceName, ServiceVersion: cfg.ServiceVersion})
	if err != nil {
		return nil, err
	}
	exp, err := newOTLPMetricExporter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	opts := []sdkmetric.PeriodicReaderOption{sdkmetric.WithProducer(promb.NewMetricProducer(promb.WithGatherer(g)))}
	if cfg.Interval > 0 {
		opts = append(opts, sdkmetric.WithInterval(cfg.Interval))
	}
	// The provider has no instruments of its own: the reader's producer
	// brings every metric. Its Shutdown collects and exports once more.
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, opts...)), sdkmetric.WithResource(res))
	return mp.Shutdown, nil
}

// metricsOn reports whether cfg and the environment ask for the export.
func metricsOn(cfg MetricsConfig) (bool, error) {
	switch e := strings.ToLower(strings.TrimSpace(cfg.Exporter)); e {
	case "", "none":
		return false, nil
	case ExporterOTLP:
	default:
		return false, fmt.Errorf("telemetry: metrics exporter %q is not supported (otlp or none)", cfg.Exporter)
	}
	if envBool("OTEL_SDK_DISABLED") {
		return false, nil
	}
	switch e := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_METRICS_EXPORTER"))); e {
	case "none":
		return false, nil
	case "", "otlp":
		return true, nil
	default:
		return false, fmt.Errorf("telemetry: OTEL_METRICS_EXPORTER=%q is not supported (otlp or none)", e)
	}
}

func metricsProtocolOf(cfg MetricsConfig) (string, error) {
	return otlpProtocol(cfg.Protocol, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
}

func newOTLPMetricExporter(ctx context.Context, cfg MetricsConfig) (sdkmetric.Exporter, error) {
	proto, err := metricsProtocolOf(cfg)
	if err != nil {
		return nil, err
	}
	endpoint, err := otlpEndpoint(cfg.Endpoint, proto, "/v1/metrics")
	if err != nil {
		return nil, err
	}
	switch proto {
	case ProtocolGRPC:
		return otlpmetricgrpc.New(ctx, otlpOptions(endpoint, cfg.Headers, cfg.Timeout,
			otlpmetricgrpc.WithEndpointURL, otlpmetricgrpc.WithHeaders, otlpmetricgrpc.WithTimeout)...)
	default:
		return otlpmetrichttp.New(ctx, otlpOptions(endpoint, cfg.Headers, cfg.Timeout,
			otlpmetrichttp.WithEndpointURL, otlpmetrichttp.WithHeaders, otlpmetrichttp.WithTimeout)...)
	}
}
