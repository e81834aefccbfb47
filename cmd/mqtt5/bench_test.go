package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/internal/bench"
)

func (b *testBroker) url() string { return "mqtt://" + net.JoinHostPort(b.host, b.port) }

func TestBenchJSON(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	dir := t.TempDir()
	out := filepath.Join(dir, "r.json")
	plot := filepath.Join(dir, "r.svg")
	code, stdout, stderr := runCmd(t, "bench", "fan-in", "--url", b.url(),
		"--qos", "1", "--publishers", "2", "--duration", "300ms", "--warmup", "0s", "--max-messages", "400",
		"--quiet", "--json", out, "--plot", plot)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "lost 0") || stderr != "" {
		t.Errorf("stdout %q stderr %q", stdout, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Scenario string `json:"scenario"`
		Config   struct {
			QoS        int     `json:"qos"`
			Publishers int     `json:"publishers"`
			Protocol   string  `json:"protocol"`
			Warmup     float64 `json:"warmup_s"`
		} `json:"config"`
		Messages struct {
			Sent, Acked, Expected, Received, Unique, Lost, Duplicated, Reordered, Misrouted int64
		} `json:"messages"`
		Latency struct {
			Count int64   `json:"count"`
			P99   float64 `json:"p99_us"`
		} `json:"latency"`
		Throughput struct {
			Delivered float64 `json:"delivered_per_s"`
		} `json:"throughput"`
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	m := res.Messages
	if res.Scenario != "fan-in" || res.Config.QoS != 1 || res.Config.Publishers != 2 || res.Config.Protocol != "5.0" || res.Config.Warmup != 0 {
		t.Errorf("config: %s", data)
	}
	if m.Sent == 0 || m.Acked != m.Sent || m.Expected != m.Sent || m.Received != m.Sent || m.Unique != m.Sent ||
		m.Lost != 0 || m.Duplicated != 0 || m.Reordered != 0 || m.Misrouted != 0 {
		t.Errorf("messages %+v", m)
	}
	if res.Latency.Count != m.Unique || res.Latency.P99 <= 0 || res.Throughput.Delivered <= 0 || len(res.Errors) > 0 {
		t.Errorf("latency %+v throughput %+v errors %v", res.Latency, res.Throughput, res.Errors)
	}
	if svg, err := os.ReadFile(plot); err != nil || !strings.Contains(string(svg), "<svg") {
		t.Errorf("plot: %v", err)
	}
}

// The shared-subscription fan-in of scripts/bench-compare.sh (its exact
// scenario arguments, shorter): the four members of the $share group
// together receive each acknowledged message exactly once.
func TestBenchSharedFanIn(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	out := filepath.Join(t.TempDir(), "r.json")
	args := append(strings.Fields("bench shared --qos 1 --publishers 4 --subscribers 4 --window 20"),
		"--url", b.url(), "--duration", "300ms", "--warmup", "0s", "--max-messages", "800", "--quiet", "--json", out)
	if code, _, stderr := runCmd(t, args...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res bench.Result
	if data, err := os.ReadFile(out); err != nil || json.Unmarshal(data, &res) != nil {
		t.Fatalf("result %s: %v", data, err)
	}
	m := res.Messages
	if res.Scenario != bench.Shared || res.Config.Publishers != 4 || res.Config.Subscribers != 4 || len(res.Errors) > 0 || m == nil {
		t.Fatalf("run: %+v", res)
	}
	// One group: expected once per acknowledged message, not once per member.
	if m.Sent == 0 || m.Acked != m.Sent || m.Expected != m.Acked || m.Unique != m.Expected || m.Received != m.Unique ||
		m.Lost != 0 || m.Duplicated != 0 || m.Misrouted != 0 || m.SubscriberMax > m.Unique {
		t.Errorf("messages %+v", m)
	}
}

func TestBenchRefusesRemoteAndUnsupported(t *testing.T) {
	code, _, stderr := runCmd(t, "bench", "--url", "mqtt://192.0.2.1:1883", "--duration", "1s")
	if code != 2 || !strings.Contains(stderr, "non-loopback") || !strings.Contains(stderr, "--allow-remote") {
		t.Errorf("remote: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCmd(t, "bench", "--url", "gopher://127.0.0.1:8080/mqtt")
	if code != 2 || !strings.Contains(stderr, "unknown scheme") {
		t.Errorf("gopher: exit %d, %q", code, stderr)
	}
	for _, args := range [][]string{
		{"bench", "nosuch"},
		{"bench", "--qos", "3"},
		{"bench", "--protocol", "6"},
		{"bench", "--duration", "11m"},
		{"bench", "fan-in", "extra"},
	} {
		if code, _, _ := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestBenchHelp(t *testing.T) {
	code, out, _ := runCmd(t, "help", "bench")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"Usage: mqtt5 bench", "-qos", "-window", "-pid", "-json", "-plot", "-allow-remote", "-max-messages", "fan-out", "shared", "idle", "latency", "p2p"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
