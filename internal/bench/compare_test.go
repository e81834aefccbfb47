package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

func TestResultJSONRoundTrip(t *testing.T) {
	in := &Result{Format: ResultFormat, Scenario: FanIn,
		Config:   Config{Scenario: FanIn, Protocol: packet.V311, QoS: 1, Duration: 1500 * time.Millisecond, Warmup: time.Second},
		Messages: &MessageStats{Sent: 10, Lost: 1}, Throughput: &Throughput{DeliveredMedian: 5}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Result
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Config.Protocol != packet.V311 || out.Config.Duration != 1500*time.Millisecond || out.Config.Warmup != time.Second ||
		out.Config.QoS != 1 || out.Messages.Lost != 1 || out.Throughput.DeliveredMedian != 5 {
		t.Fatalf("round trip: %+v %+v", out.Config, out)
	}
}

func writeResult(t *testing.T, path string, r *Result) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCompareReport(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"scenarios.tsv": "fanin\tfan-in QoS 1\tthroughput\tfan-in --qos 1\nidle\tidle (10)\tbytes_per_conn,connect_rate\tidle\n",
		"tables.tsv":    "pinned\tPinned\tone core each\n",
		"brokers.tsv":   "mqtt5\tmqtt5\nmosquitto\tMosquitto\n",
		"meta.tsv":      "Go\tgo1.26\n",
		"commands.txt":  "mqtt5 bench fan-in --qos 1\n",
	}
	for name, text := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	tp := func(v float64, lost int64, busy float64) *Result {
		return &Result{Scenario: FanIn, Throughput: &Throughput{DeliveredMedian: v}, Messages: &MessageStats{Lost: lost},
			Broker: &ProcStats{CPUPercent: 95}, Generator: GeneratorStats{CPUPercent: 100 * busy, Busy: busy}}
	}
	writeResult(t, filepath.Join(dir, "pinned/fanin/mqtt5-1.json"), tp(200_000, 0, 0.5))
	writeResult(t, filepath.Join(dir, "pinned/fanin/mqtt5-2.json"), tp(300_000, 0, 0.5))
	writeResult(t, filepath.Join(dir, "pinned/fanin/mqtt5-3.json"), tp(250_000, 0, 0.95))
	writeResult(t, filepath.Join(dir, "pinned/fanin/mosquitto-1.json"), tp(100_000, 2, 0.4))
	writeResult(t, filepath.Join(dir, "pinned/idle/mqtt5-1.json"), &Result{Scenario: Idle, Idle: &IdleStats{RSSAfter: 1, BytesPerConnection: 4096, ConnectRate: 1000}})
	writeResult(t, filepath.Join(dir, "pinned/idle/mosquitto-1.json"), &Result{Scenario: Idle, Idle: &IdleStats{RSSAfter: 1, BytesPerConnection: 1024, ConnectRate: 2000}, Errors: []string{"boom"}})
	var b strings.Builder
	if err := CompareReport(dir, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| Go | go1.26 |",
		"### Pinned",
		"| fan-in QoS 1 | delivered msg/s (higher is better) | 250.0k/s (200.0k/s–300.0k/s) | 100.0k/s | 2.50 | 0 / 2 | 95 / 95 | 50† / 40 |",
		"| idle (10) | broker RSS per connection (lower is better) | 4.0 KiB | 1.0 KiB | 4.00 |",
		"| connections/s (higher is better) | 1000/s | 2000/s | 0.50 |",
		"mosquitto mosquitto-1: boom",
		"mqtt5 bench fan-in --qos 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestSpliceDoc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.md")
	const begin, end = "<!-- B -->", "<!-- E -->"
	os.WriteFile(path, []byte("# Title\n\nhand text\n"), 0o644)
	if err := SpliceDoc(path, begin, end, "one\n"); err != nil {
		t.Fatal(err)
	}
	if err := SpliceDoc(path, begin, end, "two\n"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, append(must(os.ReadFile(path)), "\nafter\n"...), 0o644)
	if err := SpliceDoc(path, begin, end, "three"); err != nil {
		t.Fatal(err)
	}
	got := string(must(os.ReadFile(path)))
	want := "# Title\n\nhand text\n\n<!-- B -->\nthree\n<!-- E -->\n\nafter\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	os.WriteFile(path, []byte(end+"\n"+begin+"\n"), 0o644)
	if err := SpliceDoc(path, begin, end, "x"); err == nil {
		t.Fatal("markers out of order accepted")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
