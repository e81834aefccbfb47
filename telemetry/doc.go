// Package telemetry connects the broker and the client to OpenTelemetry
// and Prometheus.
//
// Tracing follows a message across MQTT with the W3C Trace Context carried
// in MQTT 5 user properties (traceparent, tracestate): ClientTracer starts
// a producer span "publish <topic>" and sends its context with the
// message; BrokerTracer, a set of broker hooks, starts a server span
// "route <topic>" as its child and routes the message with the broker
// span as its traceparent; ClientTracer.Handler starts the subscriber's
// consumer span "process <topic>" as the broker span's child. One trace
// then shows publisher, broker and every subscriber. Setup builds an
// OTLP (HTTP or gRPC) TracerProvider from TracingConfig and the standard
// OTEL_* environment variables; tracing is off by default, and a broker
// without a BrokerTracer runs no tracing code.
//
// Metrics come from Broker.Stats and Broker.QueueStats, read on each
// scrape (NewStatsCollector), from hook counters and wrappers for what
// Stats does not count (Metrics: also authorization refusals and, as the
// broker's CommitObserver, store commit durations), and from the bridges'
// statuses (NewBridgeCollector): NewRegistry gathers them with the Go
// runtime and process collectors in a registry of its own, NewHTTPHandler
// serves it on /metrics beside /healthz and /readyz, and SetupMetrics
// exports the same registry over OTLP through the OpenTelemetry
// Prometheus bridge. RegisterOTel reports the Stats and hook values
// through a MeterProvider of the caller's.
//
// The package imports broker and client; neither imports it.
package telemetry
