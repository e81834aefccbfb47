package main

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/mqtt5go/mqtt5/broker"
)

// --metrics-listen serves Prometheus metrics and the health endpoints.
func TestBrokerMetricsEndpoint(t *testing.T) {
	b := startCmd(t, "broker", "--no-persistence", "--sys-interval", "0", "--listen", "mqtt://127.0.0.1:0",
		"--metrics-listen", "127.0.0.1:0")
	brokerURLs(t, b, 1)
	waitLog(t, b, "msg=\"metrics listening\"")
	m := regexp.MustCompile(`msg="metrics listening" url=(\S+)/metrics`).FindStringSubmatch(b.err.String())
	if m == nil {
		t.Fatalf("no metrics URL in\n%s", b.err.String())
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "mqtt5_") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics: %d\n%.500s", code, body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(p); code != 200 {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
}

// scrapeText returns the /metrics text of the server at base.
func scrapeText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	return string(body)
}

// The configured bridges are in /metrics, also after a reload adds or
// removes one; with telemetry.metrics.exporter = "otlp" the same metrics
// go to the collector, and a graceful shutdown sends the last values.
func TestBrokerMetricsBridgesAndOTLP(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
		"OTEL_METRIC_EXPORT_INTERVAL"} {
		t.Setenv(k, "")
	}
	var mu sync.Mutex
	var exports []*colmetricpb.ExportMetricsServiceRequest
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := io.Reader(r.Body)
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		data, _ := io.ReadAll(body)
		req := &colmetricpb.ExportMetricsServiceRequest{}
		if err := proto.Unmarshal(data, req); err != nil || r.URL.Path != "/v1/metrics" {
			http.Error(w, "bad request", 400)
			return
		}
		mu.Lock()
		exports = append(exports, req)
		mu.Unlock()
		out, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	defer collector.Close()

	remote := broker.New(broker.Config{SysInterval: -1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go remote.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		remote.Shutdown(ctx)
	})

	dir := t.TempDir()
	f := filepath.Join(dir, "mqtt5.toml")
	base := "listeners = ['mqtt://127.0.0.1:0']\n[storage]\npersistence = false\n[sys]\ninterval = '0s'\n" +
		"[telemetry]\nmetrics_listen = '127.0.0.1:0'\n[telemetry.metrics]\nexporter = 'otlp'\ninterval = '1h'\nendpoint = '" + collector.URL + "'\n"
	withBridge := base + fmt.Sprintf("[[bridges]]\nname = 'up'\nurl = 'mqtt://%s'\n[[bridges.topics]]\npattern = 'data/#'\ndirection = 'out'\nqos = 1\n", l.Addr())
	os.WriteFile(f, []byte(withBridge), 0o600)
	b := startCmd(t, "broker", "--config", f)
	brokerURLs(t, b, 1)
	waitLog(t, b, `msg="metrics export on"`)
	m := regexp.MustCompile(`msg="metrics listening" url=(\S+)/metrics`).FindStringSubmatch(b.err.String())
	if m == nil {
		t.Fatalf("no metrics URL in\n%s", b.err.String())
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(scrapeText(t, m[1]), `mqtt5_bridge_connected{bridge="up"} 1`) {
		if time.Now().After(deadline) {
			t.Fatalf("bridge not reported connected:\n%s", scrapeText(t, m[1]))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A reload removes the bridge: its series go.
	os.WriteFile(f, []byte(base), 0o600)
	waitLog(t, b, `msg="bridge removed" bridge=up`)
	if text := scrapeText(t, m[1]); strings.Contains(text, `bridge="up"`) {
		t.Errorf("removed bridge still in /metrics:\n%s", text)
	}
	mu.Lock()
	n := len(exports)
	mu.Unlock()
	if n != 0 {
		t.Fatalf("%d exports before the interval or the shutdown", n)
	}

	// Graceful shutdown: one last export.
	b.cancel()
	<-b.done
	mu.Lock()
	defer mu.Unlock()
	if len(exports) != 1 {
		t.Fatalf("%d exports after shutdown, want 1\n%s", len(exports), b.err.String())
	}
	got := map[string]bool{}
	for _, rm := range exports[0].ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, md := range sm.Metrics {
				got[md.Name] = true
			}
		}
	}
	for _, name := range []string{"mqtt5_connections_accepted_total", "mqtt5_packets_sent_total", "mqtt5_publish_sent_total",
		"mqtt5_queued_messages", "mqtt5_authorization_denied_total", "mqtt5_store_commit_duration_seconds", "go_goroutines"} {
		if !got[name] {
			t.Errorf("%s not exported", name)
		}
	}
}
