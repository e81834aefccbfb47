package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTransportsReport(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"scenarios.tsv":  "fanin-q1\tfan-in QoS 1\tthroughput\tfan-in --qos 1\nlatency\tlatency\tp99,p50\tlatency --qos 1\n",
		"transports.tsv": "mqtt\tmqtt://\tyes\nquic\tquic://\tno\nquic-single\tquic:// single\tno\n",
		"tables.tsv":     "all\tAll\tboth brokers\tmqtt quic\t-\nquic\tQUIC\tours only\tquic quic-single\tquic\n",
		"brokers.tsv":    "mqtt5\tmqtt5\nmosquitto\tMosquitto\n",
		"meta.tsv":       "Go\tgo1.26\n",
		"commands.txt":   "mqtt5 bench fan-in --qos 1\n",
	}
	for name, text := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	tp := func(v float64, busy float64) *Result {
		return &Result{Scenario: FanIn, Throughput: &Throughput{DeliveredMedian: v}, Messages: &MessageStats{},
			Broker: &ProcStats{CPUPercent: 95}, Generator: GeneratorStats{CPUPercent: 100 * busy, Busy: busy}}
	}
	lat := func(p50, p99 float64) *Result {
		return &Result{Scenario: Latency, Latency: &LatencyStats{Count: 10, P50: p50, P99: p99}, Messages: &MessageStats{},
			Broker: &ProcStats{CPUPercent: 20}, Generator: GeneratorStats{CPUPercent: 20, Busy: 0.2}}
	}
	writeResult(t, filepath.Join(dir, "mqtt/fanin-q1/mqtt5-1.json"), tp(200_000, 0.5))
	writeResult(t, filepath.Join(dir, "mqtt/fanin-q1/mosquitto-1.json"), tp(50_000, 0.95))
	writeResult(t, filepath.Join(dir, "mqtt/latency/mqtt5-1.json"), lat(100, 300))
	writeResult(t, filepath.Join(dir, "mqtt/latency/mosquitto-1.json"), lat(120, 600))
	writeResult(t, filepath.Join(dir, "quic/fanin-q1/mqtt5-1.json"), tp(100_000, 0.6))
	writeResult(t, filepath.Join(dir, "quic/latency/mqtt5-1.json"), lat(200, 400))
	writeResult(t, filepath.Join(dir, "quic-single/fanin-q1/mqtt5-1.json"), tp(150_000, 0.6))
	writeResult(t, filepath.Join(dir, "quic-single/latency/mqtt5-1.json"), lat(200, 200))

	var b strings.Builder
	if err := TransportsReport(dir, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| Go | go1.26 |",
		"| mqtt:// | fan-in QoS 1 | delivered msg/s (higher is better) | 200.0k/s | 50.0k/s | 4.00 | 0 / 0 | 95 / 95 | 50 / 95† |",
		"|  | latency | latency p99 (lower is better) | 300 µs | 600 µs | 0.50 | 0 / 0 | 20 / 20 | 20 / 20 |",
		"| quic:// | fan-in QoS 1 | delivered msg/s (higher is better) | 100.0k/s | — | — | 0 / — | 95 / — | 60 / — |",
		"| Variant | Scenario | Metric | mqtt5 median (min–max) | / baseline |",
		"| quic:// single | fan-in QoS 1 | delivered msg/s (higher is better) | 150.0k/s | 1.50 | 0 | 95 | 60 |",
		"|  | latency | latency p99 (lower is better) | 200 µs | 0.50 | 0 | 20 | 20 |",
		"mqtt5 bench fan-in --qos 1\n```\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "no result") {
		t.Errorf("report notes a missing result:\n%s", out)
	}
}
