package bench

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// startBroker runs an in-process broker on a loopback port.
func startBroker(t *testing.T) string {
	t.Helper()
	b := broker.New(broker.Config{SysInterval: -1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.Serve(l); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
		<-done
	})
	return "mqtt://" + l.Addr().String()
}

// brief is a short run: a fraction of a second, a few hundred messages.
func brief(url string, sc Scenario, qos byte) Config {
	return Config{
		Scenario: sc, URL: url, QoS: qos,
		Duration: 300 * time.Millisecond, NoWarmup: true, Grace: 5 * time.Second,
		Publishers: 2, Subscribers: 3, Pairs: 3, MaxMessages: 600,
	}
}

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	return res
}

// checkExact asserts the accounting of a run in which nothing may go wrong:
// every message sent is acknowledged (QoS>0) and arrives exactly once, in
// order, where it should. perMessage is the deliveries each publication
// makes (S for fan-out, 1 otherwise).
func checkExact(t *testing.T, res *Result, perMessage int64) {
	t.Helper()
	m := res.Messages
	if m.Sent == 0 {
		t.Fatalf("nothing sent: %+v", m)
	}
	if res.Config.QoS > 0 && (m.Acked != m.Sent || m.Rejected != 0 || m.Unacked != 0) {
		t.Errorf("acked %d of %d sent, rejected %d, unacked %d", m.Acked, m.Sent, m.Rejected, m.Unacked)
	}
	if m.Expected != m.Sent*perMessage {
		t.Errorf("expected %d, want sent %d x %d", m.Expected, m.Sent, perMessage)
	}
	if m.Lost != 0 || m.Duplicated != 0 || m.Reordered != 0 || m.Misrouted != 0 || m.Corrupt != 0 || m.Unexpected != 0 {
		t.Errorf("accounting: %+v", m)
	}
	if m.Received != m.Expected || m.Unique != m.Expected {
		t.Errorf("received %d unique %d, want %d", m.Received, m.Unique, m.Expected)
	}
	if res.Latency == nil || res.Latency.Count != m.Unique || res.Latency.P50 <= 0 || res.Latency.P999 < res.Latency.P50 {
		t.Errorf("latency %+v for %d unique deliveries", res.Latency, m.Unique)
	}
	// The delivered rate is measured up to the moment the publishers stop;
	// a short run can end before the first delivery is counted, so only
	// the send rate must be positive here.
	if res.Throughput == nil || res.Throughput.SentPerSec <= 0 {
		t.Errorf("throughput %+v", res.Throughput)
	}
}

func TestScenarios(t *testing.T) {
	url := startBroker(t)
	cases := []struct {
		name       string
		cfg        Config
		perMessage int64
	}{
		{"fan-in qos1", brief(url, FanIn, 1), 1},
		{"fan-in qos2", brief(url, FanIn, 2), 1},
		{"fan-in qos1 v3.1.1", func() Config { c := brief(url, FanIn, 1); c.Protocol = packet.V311; return c }(), 1},
		// QoS 0 is exact only below saturation: pace it.
		{"fan-in qos0 paced", func() Config { c := brief(url, FanIn, 0); c.Rate = 2000; return c }(), 1},
		{"fan-out qos1", brief(url, FanOut, 1), 3},
		{"p2p qos1", brief(url, PointToPoint, 1), 1},
		{"shared qos1", brief(url, Shared, 1), 1},
		{"shared qos2", brief(url, Shared, 2), 1},
		{"shared qos0 paced", func() Config { c := brief(url, Shared, 0); c.Rate = 2000; return c }(), 1},
		{"latency qos1", func() Config { c := brief(url, Latency, 1); c.Rate = 1000; return c }(), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, tc.cfg)
			checkExact(t, res, tc.perMessage)
			if res.Config.QoS > 0 && res.Window != 20 {
				t.Errorf("window %d", res.Window)
			}
			if tc.cfg.Scenario == Shared {
				// Every member got something only if the broker spreads the
				// load; that is the broker's business, but all of it arrived.
				if res.Messages.SubscriberMax > res.Messages.Unique {
					t.Errorf("a member got more than all: %+v", res.Messages)
				}
			}
		})
	}
}

// A run bounded by MaxMessages stops early and says so.
func TestMaxMessages(t *testing.T) {
	url := startBroker(t)
	cfg := brief(url, FanIn, 1)
	cfg.Duration = time.Minute
	cfg.MaxMessages = 101
	res := run(t, cfg)
	if res.Messages.Sent != 101 || res.Complete {
		t.Fatalf("sent %d complete %v, want 101 and false", res.Messages.Sent, res.Complete)
	}
	checkExact(t, res, 1)
}

// Broker sampling, JSON and the plot, with the in-process broker's PID.
func TestBrokerSamplingJSONAndPlot(t *testing.T) {
	url := startBroker(t)
	cfg := brief(url, FanIn, 1)
	cfg.BrokerPID = os.Getpid()
	var progress strings.Builder
	cfg.Progress = &progress
	cfg.Duration = 1200 * time.Millisecond // one progress sample
	res := run(t, cfg)
	if res.Broker == nil || res.Broker.PID != os.Getpid() || res.Broker.RSSEnd <= 0 || res.Broker.RSSMax < res.Broker.RSSEnd {
		t.Fatalf("broker stats %+v", res.Broker)
	}
	if res.Generator.NumCPU < 1 || res.Generator.UserSeconds+res.Generator.SysSeconds <= 0 {
		t.Fatalf("generator stats %+v", res.Generator)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "config", "messages", "throughput", "latency", "broker", "generator", "samples"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	if c := back["config"].(map[string]any); c["protocol"] != "5.0" || c["duration_s"] != 1.2 {
		t.Errorf("config JSON %v", c)
	}
	var table strings.Builder
	if err := res.WriteTable(&table); err != nil || !strings.Contains(table.String(), "lost 0") {
		t.Errorf("table %q %v", table.String(), err)
	}
	path := filepath.Join(t.TempDir(), "p.svg")
	if err := res.WritePlot(path); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(svg), "<svg") || !strings.Contains(string(svg), "Latency distribution") {
		t.Fatalf("plot: %v %.200s", err, svg)
	}
	if res.Complete && !strings.Contains(progress.String(), "delivered") {
		t.Errorf("no progress line in %q", progress.String())
	}
}

func TestIdle(t *testing.T) {
	url := startBroker(t)
	cfg := Config{Scenario: Idle, URL: url, Connections: 50, ConnectConcurrency: 8, Duration: 200 * time.Millisecond, BrokerPID: os.Getpid()}
	res := run(t, cfg)
	i := res.Idle
	if i == nil || i.Connected != 50 || i.Failed != 0 || i.AliveAtEnd != 50 || i.ConnectRate <= 0 {
		t.Fatalf("idle %+v", i)
	}
	if i.RSSAfter <= 0 || res.Latency.Count != 50 {
		t.Fatalf("idle memory %+v latency %+v", i, res.Latency)
	}
	path := filepath.Join(t.TempDir(), "idle.svg")
	if err := res.WritePlot(path); err != nil {
		t.Fatal(err)
	}
	// Paced connections.
	cfg.ConnectRate = 500
	cfg.Connections = 20
	cfg.BrokerPID = 0
	if res := run(t, cfg); res.Idle.Connected != 20 {
		t.Fatalf("paced idle %+v", res.Idle)
	}
}

func TestRefusedByBroker(t *testing.T) {
	// Nothing listens: the run fails to start with an error, not a result.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := Run(context.Background(), Config{URL: "mqtt://" + addr, Duration: time.Second}); err == nil {
		t.Fatal("no error without a broker")
	}
}

func TestInterrupted(t *testing.T) {
	url := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := brief(url, FanIn, 1)
	cfg.Duration = time.Minute
	cfg.MaxMessages = 1_000_000_000
	cfg.Rate = 1000
	time.AfterFunc(300*time.Millisecond, cancel)
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Complete || res.Messages.Lost != 0 || res.Messages.Sent == 0 {
		t.Fatalf("complete %v messages %+v", res.Complete, res.Messages)
	}
}
