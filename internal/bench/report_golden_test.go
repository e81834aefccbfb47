package bench

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of the report tests")

// writeFiles writes name → text into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// golden compares got with testdata/name (or rewrites it with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -run %s -update rewrites it):\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// Fixture results.
func tpResult(v, sent float64, lost, dups int64, brokerCPU, busy float64) *Result {
	return &Result{Scenario: FanIn, Throughput: &Throughput{DeliveredMedian: v, SentMedian: sent}, Messages: &MessageStats{Lost: lost, Duplicated: dups},
		Broker: &ProcStats{CPUPercent: brokerCPU}, Generator: GeneratorStats{CPUPercent: 100 * busy, Busy: busy}}
}

func latResult(p50, p99, p999 float64) *Result {
	return &Result{Scenario: Latency, Latency: &LatencyStats{Count: 10, P50: p50, P99: p99, P999: p999}, Messages: &MessageStats{},
		Broker: &ProcStats{CPUPercent: 20}, Generator: GeneratorStats{CPUPercent: 20, Busy: 0.2}}
}

// compareFixture is a results directory as scripts/bench-compare.sh
// writes it: two tables, three repetitions, a missing result, an error, an
// idle scenario, a generator-bound run.
func compareFixture(t *testing.T) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"scenarios.tsv": "# name\tlabel\tmetrics\targs\n" +
			"fanin-q0\tfan-in QoS 0 (4→1)\tthroughput,sent\tfan-in --qos 0\n" +
			"latency-q1\tlatency QoS 1\tp99,p50,p999\tlatency --qos 1\n" +
			"idle\tidle (10)\tbytes_per_conn,connect_rate\tidle\n",
		"tables.tsv":   "pinned\tPinned\tone core each\nunpinned\tUnpinned\tevery core\n",
		"brokers.tsv":  "mqtt5\tmqtt5\nmosquitto\tMosquitto\n",
		"meta.tsv":     "Date\t2026-01-01\nGo\tgo1.26\n",
		"commands.txt": "mqtt5 bench fan-in --qos 0\nmqtt5 bench idle", // no final newline
	})
	for _, table := range []string{"pinned", "unpinned"} {
		p := func(rel string, r *Result) { writeResult(t, filepath.Join(dir, table, rel), r) }
		p("fanin-q0/mqtt5-1.json", tpResult(200_000, 210_000, 0, 0, 95, 0.5))
		p("fanin-q0/mqtt5-2.json", tpResult(300_000, 310_000, 3, 0, 97, 0.5))
		p("fanin-q0/mqtt5-3.json", tpResult(1_250_000, 1_300_000, 0, 0, 99, 0.95))
		p("fanin-q0/mosquitto-1.json", tpResult(9_000, 9_500, 2, 0, 100, 0.4))
		p("fanin-q0/mosquitto-2.json", tpResult(11_000, 12_000, 0, 0, 100, 0.4))
		p("latency-q1/mqtt5-1.json", latResult(100, 1500, 2_500_000))
		if table == "pinned" {
			p("latency-q1/mosquitto-1.json", latResult(120, 600, 900))
		}
		p("idle/mqtt5-1.json", &Result{Scenario: Idle, Idle: &IdleStats{RSSAfter: 1, BytesPerConnection: 4096, ConnectRate: 1000}})
		p("idle/mosquitto-1.json", &Result{Scenario: Idle, Idle: &IdleStats{RSSAfter: 1, BytesPerConnection: 3 << 20, ConnectRate: 2000}, Errors: []string{"boom"}})
	}
	os.WriteFile(filepath.Join(dir, "unpinned", "idle", "mqtt5-2.json"), []byte("{not json"), 0o644)
	return dir
}

func TestCompareReportGolden(t *testing.T) {
	var b strings.Builder
	if err := CompareReport(compareFixture(t), &b); err != nil {
		t.Fatal(err)
	}
	golden(t, "compare.md", b.String())
}

// transportsFixture is a results directory as scripts/bench-transports.sh
// writes it.
func transportsFixture(t *testing.T) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"scenarios.tsv":  "fanin-q1\tfan-in QoS 1\tthroughput\tfan-in --qos 1\nlatency\tlatency\tp99,p50\tlatency --qos 1\n",
		"transports.tsv": "mqtt\tmqtt://\tyes\nws\tws://\tyes\nquic\tquic://\tno\nquic-single\tquic:// single\tno\n",
		"tables.tsv":     "all\tAll\tboth brokers\tmqtt ws quic\t-\nquic\tQUIC\tours only\tquic quic-single\tquic\n",
		"brokers.tsv":    "mqtt5\tmqtt5\nmosquitto\tMosquitto\n",
		"meta.tsv":       "Go\tgo1.26\n",
		"commands.txt":   "mqtt5 bench fan-in --qos 1\n",
	})
	p := func(rel string, r *Result) { writeResult(t, filepath.Join(dir, rel), r) }
	p("mqtt/fanin-q1/mqtt5-1.json", tpResult(200_000, 0, 0, 0, 95, 0.5))
	p("mqtt/fanin-q1/mqtt5-2.json", tpResult(220_000, 0, 0, 0, 96, 0.5))
	p("mqtt/fanin-q1/mosquitto-1.json", tpResult(50_000, 0, 1, 0, 95, 0.95))
	p("mqtt/latency/mqtt5-1.json", latResult(100, 300, 0))
	p("mqtt/latency/mosquitto-1.json", latResult(120, 600, 0))
	p("ws/fanin-q1/mqtt5-1.json", tpResult(150_000, 0, 0, 0, 90, 0.5))
	p("ws/latency/mosquitto-1.json", &Result{Scenario: Latency, Errors: []string{"refused"}})
	p("quic/fanin-q1/mqtt5-1.json", tpResult(100_000, 0, 0, 0, 80, 0.6))
	p("quic/latency/mqtt5-1.json", lat(200, 400))
	p("quic-single/fanin-q1/mqtt5-1.json", tpResult(150_000, 0, 0, 0, 85, 0.6))
	return dir
}

func lat(p50, p99 float64) *Result { return latResult(p50, p99, 0) }

func TestTransportsReportGolden(t *testing.T) {
	var b strings.Builder
	if err := TransportsReport(transportsFixture(t), &b); err != nil {
		t.Fatal(err)
	}
	golden(t, "transports.md", b.String())
}

// scalingFixture is a run of scripts/bench-compare.sh with SCALING=1: the
// throughput scenarios pinned and with both cores shared.
func scalingFixture(t *testing.T) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"scenarios.tsv": "fanin-q0\tfan-in QoS 0\tthroughput\tfan-in --qos 0\n" +
			"shared-q1\tshared fan-in QoS 1\tthroughput\tshared --qos 1\n" +
			"latency-q1\tlatency QoS 1\tp99,p50\tlatency --qos 1\n",
		"tables.tsv":   "pinned\tPinned\tone core each\n",
		"scaling.tsv":  "pinned\tpinned\tboth\tboth cores\tScaling\tbase and scaled\n",
		"brokers.tsv":  "mqtt5\tmqtt5\nmosquitto\tMosquitto\n",
		"meta.tsv":     "Go\tgo1.26\n",
		"commands.txt": "taskset -c 0,1 mqtt5 bench fan-in --qos 0\n",
	})
	p := func(rel string, r *Result) { writeResult(t, filepath.Join(dir, rel), r) }
	p("pinned/fanin-q0/mqtt5-1.json", tpResult(300_000, 0, 0, 0, 99, 0.5))
	p("pinned/fanin-q0/mqtt5-2.json", tpResult(320_000, 0, 0, 0, 99, 0.5))
	p("both/fanin-q0/mqtt5-1.json", tpResult(450_000, 0, 0, 0, 150, 0.4))
	p("both/fanin-q0/mqtt5-2.json", tpResult(510_000, 0, 0, 0, 160, 0.4))
	p("pinned/fanin-q0/mosquitto-1.json", tpResult(100_000, 0, 5, 0, 100, 0.4))
	p("both/fanin-q0/mosquitto-1.json", tpResult(90_000, 0, 7, 0, 100, 0.3))
	p("pinned/shared-q1/mqtt5-1.json", tpResult(200_000, 0, 0, 0, 99, 0.5))
	p("both/shared-q1/mqtt5-1.json", tpResult(300_000, 0, 0, 0, 170, 0.5))
	p("pinned/shared-q1/mosquitto-1.json", tpResult(40_000, 0, 0, 0, 100, 0.5))
	p("both/shared-q1/mosquitto-1.json", tpResult(40_000, 0, 0, 3, 100, 0.5))
	// Latency has no throughput: not in the scaling table.
	p("pinned/latency-q1/mqtt5-1.json", lat(100, 200))
	return dir
}

func TestScalingReport(t *testing.T) {
	dir := scalingFixture(t)
	var b strings.Builder
	if err := ScalingReport(dir, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| Scenario | mqtt5 pinned | mqtt5 both cores | mqtt5 both cores / pinned | Mosquitto pinned | Mosquitto both cores | Mosquitto both cores / pinned |",
		// 480k / 310k = 1.55 for ours, 90k / 100k = 0.90 for Mosquitto.
		"| fan-in QoS 0 | 310.0k/s (300.0k/s–320.0k/s) | 480.0k/s (450.0k/s–510.0k/s) | 1.55 | 100.0k/s | 90.0k/s | 0.90 | 0 / 7 | 155 / 100 | 40 / 30 |",
		"| shared fan-in QoS 1 | 200.0k/s | 300.0k/s | 1.50 | 40.0k/s | 40.0k/s | 1.00 | 0 / 0 | 170 / 100 | 50 / 50 |",
		// Duplicated deliveries are a note, whatever the scenario.
		"- shared fan-in QoS 1, both cores: mosquitto: 3 duplicated and 0 misrouted deliveries (summed over the repetitions)",
		"taskset -c 0,1 mqtt5 bench fan-in --qos 0\n```\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "latency") {
		t.Errorf("a scenario without throughput is in the scaling table:\n%s", out)
	}
	golden(t, "scaling.md", out)

	// A missing result is a note, not a failure.
	os.RemoveAll(filepath.Join(dir, "both", "shared-q1"))
	b.Reset()
	if err := ScalingReport(dir, &b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| shared fan-in QoS 1 | 200.0k/s | n/a | n/a | 40.0k/s | n/a | n/a | n/a / n/a |") ||
		!strings.Contains(b.String(), "- shared fan-in QoS 1, both cores: mqtt5: no result") {
		t.Errorf("missing results:\n%s", b.String())
	}
	// Without scaling.tsv there is nothing to render.
	os.Remove(filepath.Join(dir, "scaling.tsv"))
	if err := ScalingReport(dir, &b); err == nil {
		t.Error("no error without scaling.tsv")
	}
}

// The per-run columns of one side and the narrow trailing cells.
func TestMarkdownRow(t *testing.T) {
	var b markdown
	b.row("", "a", "", "b", "", "")
	if got, want := b.String(), "|  | a |  | b | | |\n"; got != want {
		t.Fatalf("row %q, want %q", got, want)
	}
	s := side{runs: []*Result{tpResult(1, 0, 2, 0, 50, 0.95), tpResult(1, 0, 3, 0, 70, 0.1)}}
	if got := strings.Join(pairCells(s, absentSide), ","); got != "5 / —,60 / —,52† / —" {
		t.Fatalf("pair cells %q", got)
	}
}
