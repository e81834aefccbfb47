package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// ResultFormat versions the JSON layout of Result.
const ResultFormat = 1

// Result is the outcome of one run. Its JSON form is what --json writes.
type Result struct {
	Format   int       `json:"format"`
	Scenario Scenario  `json:"scenario"`
	Config   Config    `json:"config"`
	Started  time.Time `json:"started"`
	// Elapsed is the whole run, connection set-up excluded, grace included.
	Elapsed float64 `json:"elapsed_s"`
	// Measured is the measurement window (idle: the time to connect).
	Measured float64 `json:"measured_s"`
	// Complete is false when the run stopped early (interrupted, or every
	// publisher reached its share of MaxMessages).
	Complete bool `json:"complete"`
	// Window is the smallest publisher in-flight window in effect (QoS>0).
	Window int `json:"window,omitempty"`

	Messages   *MessageStats  `json:"messages,omitempty"`
	Throughput *Throughput    `json:"throughput,omitempty"`
	Latency    *LatencyStats  `json:"latency,omitempty"`
	Idle       *IdleStats     `json:"idle,omitempty"`
	Broker     *ProcStats     `json:"broker,omitempty"`
	Generator  GeneratorStats `json:"generator"`
	Samples    []Sample       `json:"samples"`
	Errors     []string       `json:"errors,omitempty"`

	hist *hdrhistogram.Histogram
}

// MessageStats is the message accounting of a run, over every message
// including those of the warm-up. A delivery is one PUBLISH received by one
// subscriber (a fan-out message to S subscribers is S deliveries).
type MessageStats struct {
	Sent     int64 `json:"sent"`               // PUBLISH packets written by publishers
	Acked    int64 `json:"acked"`              // QoS>0: PUBACK / PUBREC with a success code
	Rejected int64 `json:"rejected,omitempty"` // QoS>0: acknowledged with a failure code
	// Expected deliveries: each sent (QoS 0) or acknowledged (QoS>0)
	// message times the subscribers (groups, for shared) that should get it.
	Expected int64 `json:"expected"`
	Received int64 `json:"received"` // PUBLISH packets received, duplicates included
	Unique   int64 `json:"unique"`   // distinct expected deliveries received
	Lost     int64 `json:"lost"`     // expected and not received by the end of the grace period
	// Unacked: QoS>0 messages sent, never acknowledged and never received
	// (in flight at the end, so neither lost nor delivered).
	Unacked    int64 `json:"unacked,omitempty"`
	Duplicated int64 `json:"duplicated"` // received more than once (per group)
	Reordered  int64 `json:"reordered"`  // received after a later one of the same publisher
	Misrouted  int64 `json:"misrouted"`  // received by a subscriber that should not get it
	Corrupt    int64 `json:"corrupt"`    // payload without a valid stamp
	Unexpected int64 `json:"unexpected,omitempty"`
	// SubscriberMin/Max: received per subscriber, fewest and most.
	SubscriberMin int64 `json:"subscriber_min"`
	SubscriberMax int64 `json:"subscriber_max"`
}

// Throughput over the measurement window. For idle, "delivered" is
// connections per second.
type Throughput struct {
	SentPerSec      float64 `json:"sent_per_s"`
	DeliveredPerSec float64 `json:"delivered_per_s"`
	// Medians of the per-second samples of the window (equal to the
	// overall rates when the window holds no whole second).
	SentMedian      float64 `json:"sent_median_per_s"`
	DeliveredMedian float64 `json:"delivered_median_per_s"`
	Samples         int     `json:"samples"`
}

// LatencyStats is the end-to-end latency (publisher write to subscriber
// read) of messages sent after the warm-up, in microseconds. For idle it is
// the CONNECT→CONNACK latency (dial included).
type LatencyStats struct {
	Count        int64        `json:"count"`
	Min          float64      `json:"min_us"`
	Mean         float64      `json:"mean_us"`
	P50          float64      `json:"p50_us"`
	P90          float64      `json:"p90_us"`
	P99          float64      `json:"p99_us"`
	P999         float64      `json:"p999_us"`
	Max          float64      `json:"max_us"`
	Distribution []Percentile `json:"distribution,omitempty"`
}

// Percentile is one point of the latency distribution.
type Percentile struct {
	Percentile float64 `json:"percentile"`
	Micros     float64 `json:"us"`
}

// IdleStats is the outcome of the idle scenario.
type IdleStats struct {
	Requested      int     `json:"requested"`
	Connected      int     `json:"connected"`
	Failed         int     `json:"failed"`
	AliveAtEnd     int     `json:"alive_at_end"`
	ConnectSeconds float64 `json:"connect_s"`
	ConnectRate    float64 `json:"connect_per_s"`
	// Broker resident memory before connecting and after holding the
	// connections, and their difference per connection (needs BrokerPID).
	RSSBefore          int64   `json:"rss_before,omitempty"`
	RSSAfter           int64   `json:"rss_after,omitempty"`
	BytesPerConnection float64 `json:"bytes_per_connection,omitempty"`
	// SourceAddresses is how many loopback source addresses the
	// connections were spread over (0: one, the system's choice).
	SourceAddresses int `json:"source_addresses,omitempty"`
}

// ProcStats samples the broker process (needs BrokerPID).
type ProcStats struct {
	PID           int     `json:"pid"`
	CPUPercent    float64 `json:"cpu_percent"` // mean over the window, 100 = one core
	CPUMaxPercent float64 `json:"cpu_max_percent"`
	RSSStart      int64   `json:"rss_start"`
	RSSEnd        int64   `json:"rss_end"`
	RSSMax        int64   `json:"rss_max"`
}

// GeneratorStats is the load generator's own CPU use over the window: when
// Busy nears 1 the generator, not the broker, may be the bottleneck.
type GeneratorStats struct {
	CPUPercent  float64 `json:"cpu_percent"` // 100 = one core
	Busy        float64 `json:"busy"`        // CPUPercent / (100 * usable cores)
	UserSeconds float64 `json:"user_s"`      // whole process
	SysSeconds  float64 `json:"sys_s"`
	NumCPU      int     `json:"num_cpu"`
	GOMAXPROCS  int     `json:"gomaxprocs"`
}

// Sample is one second of the run.
type Sample struct {
	T               float64 `json:"t"` // seconds since the start, at the end of the interval
	Phase           string  `json:"phase"`
	SentPerSec      float64 `json:"sent_per_s"`
	DeliveredPerSec float64 `json:"delivered_per_s"`
	BrokerCPU       float64 `json:"broker_cpu_percent,omitempty"`
	BrokerRSS       int64   `json:"broker_rss,omitempty"`
	GeneratorCPU    float64 `json:"generator_cpu_percent"`
}

// Sample phases.
const (
	PhaseWarmup  = "warmup"
	PhaseMeasure = "measure"
	PhaseDrain   = "drain"
	PhaseIdle    = "idle"
)

// GeneratorBound reports whether the generator used most of the CPU it had
// (90% or more), so that the broker may not have been the limit.
func (r *Result) GeneratorBound() bool { return r.Generator.Busy >= 0.9 }

func latencyStats(h *hdrhistogram.Histogram) *LatencyStats {
	l := &LatencyStats{Count: h.TotalCount()}
	if l.Count == 0 {
		return l
	}
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	l.Min, l.Max, l.Mean = us(h.Min()), us(h.Max()), h.Mean()/1e3
	l.P50, l.P90 = us(h.ValueAtQuantile(50)), us(h.ValueAtQuantile(90))
	l.P99, l.P999 = us(h.ValueAtQuantile(99)), us(h.ValueAtQuantile(99.9))
	// Log-spaced towards the tail: 0, 20.6, 36.9, ... as far as the sample
	// count resolves (99.9% needs 1000 samples), then 100.
	for k := 0; k <= 60; k++ {
		if math.Pow(10, float64(k)/10) > float64(l.Count) {
			break
		}
		q := 100 * (1 - math.Pow(10, -float64(k)/10))
		l.Distribution = append(l.Distribution, Percentile{round(q, 4), us(h.ValueAtQuantile(q))})
	}
	l.Distribution = append(l.Distribution, Percentile{100, l.Max})
	return l
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// human formats a rate: 1234567 -> "1.23M".
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func bytesHuman(v float64) string {
	switch {
	case math.Abs(v) >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case math.Abs(v) >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case math.Abs(v) >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}

func fmtUs(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2f s", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2f ms", us/1e3)
	default:
		return fmt.Sprintf("%.0f µs", us)
	}
}

// WriteTable prints the result as an aligned text table.
func (r *Result) WriteTable(w io.Writer) error {
	var b strings.Builder
	row := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "  %-22s %s\n", k, fmt.Sprintf(format, args...))
	}
	c := r.Config
	if r.Scenario == Idle {
		fmt.Fprintf(&b, "mqtt5 bench idle against %s (MQTT %s)\n", c.URL, c.Protocol)
	} else {
		fmt.Fprintf(&b, "mqtt5 bench %s against %s (MQTT %s, QoS %d, %d-byte payload)\n", r.Scenario, c.URL, c.Protocol, c.QoS, c.PayloadSize)
	}
	switch r.Scenario {
	case Idle:
		row("connections", "%d requested, %d connected, %d failed, %d alive at end", c.Connections, r.Idle.Connected, r.Idle.Failed, r.Idle.AliveAtEnd)
		row("connect", "%.2f s, %s conn/s", r.Idle.ConnectSeconds, human(r.Idle.ConnectRate))
		if r.Latency != nil && r.Latency.Count > 0 {
			l := r.Latency
			row("connect latency", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", fmtUs(l.P50), fmtUs(l.P90), fmtUs(l.P99), fmtUs(l.P999), fmtUs(l.Max))
		}
		if r.Idle.RSSAfter > 0 {
			row("broker memory", "%s before, %s after: %s per connection", bytesHuman(float64(r.Idle.RSSBefore)), bytesHuman(float64(r.Idle.RSSAfter)), bytesHuman(r.Idle.BytesPerConnection))
		}
	default:
		row("clients", "%d publishers, %d subscribers", c.Publishers, c.Subscribers)
		if c.QoS > 0 {
			row("window", "%d in flight per publisher", r.Window)
		}
		rate := "unlimited"
		if c.Rate > 0 {
			rate = human(c.Rate) + " msg/s target"
		}
		row("timing", "%.1f s measured after %.1f s warm-up, rate %s", r.Measured, c.Warmup.Seconds(), rate)
		t := r.Throughput
		row("sent", "%s msg/s (median %s/s)", human(t.SentPerSec), human(t.SentMedian))
		row("delivered", "%s msg/s (median %s/s of %d samples)", human(t.DeliveredPerSec), human(t.DeliveredMedian), t.Samples)
		if l := r.Latency; l != nil && l.Count > 0 {
			row("latency", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%d samples)", fmtUs(l.P50), fmtUs(l.P90), fmtUs(l.P99), fmtUs(l.P999), fmtUs(l.Max), l.Count)
		}
		m := r.Messages
		row("messages", "sent %d, acked %d, expected %d, received %d", m.Sent, m.Acked, m.Expected, m.Received)
		row("accounting", "lost %d, duplicated %d, reordered %d, misrouted %d, corrupt %d", m.Lost, m.Duplicated, m.Reordered, m.Misrouted, m.Corrupt)
		if m.Unacked > 0 || m.Rejected > 0 {
			row("", "unacknowledged at end %d, rejected %d", m.Unacked, m.Rejected)
		}
	}
	if p := r.Broker; p != nil {
		row("broker process", "pid %d: cpu %.0f%% (max %.0f%%), rss %s -> %s (max %s)", p.PID, p.CPUPercent, p.CPUMaxPercent,
			bytesHuman(float64(p.RSSStart)), bytesHuman(float64(p.RSSEnd)), bytesHuman(float64(p.RSSMax)))
	}
	g := r.Generator
	note := ""
	if r.GeneratorBound() {
		note = "  <- the generator may be the bottleneck"
	}
	row("generator cpu", "%.0f%% (100%% = one core; %.0f%% of the %d it may use)%s", g.CPUPercent, 100*g.Busy, min(g.NumCPU, g.GOMAXPROCS), note)
	if !r.Complete {
		row("note", "the run ended early (interrupted or --max-messages reached)")
	}
	for _, e := range r.Errors {
		row("error", "%s", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
