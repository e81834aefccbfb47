package bench

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

// Scenario names a load shape.
type Scenario string

const (
	// FanIn: Publishers publishers on distinct topics, one subscriber on a
	// wildcard filter matching them all.
	FanIn Scenario = "fan-in"
	// FanOut: one publisher, Subscribers subscribers on its topic.
	FanOut Scenario = "fan-out"
	// PointToPoint: Pairs publisher/subscriber pairs on distinct topics.
	PointToPoint Scenario = "p2p"
	// Shared: Publishers publishers, Subscribers members of one shared
	// subscription ($share/bench/...).
	Shared Scenario = "shared"
	// Idle: Connections connections that connect and stay idle; reports the
	// connect rate and, given the broker's PID, its memory per connection.
	Idle Scenario = "idle"
	// Latency: fan-in at a fixed total Rate (default 1,000 msg/s) below
	// saturation, for the latency distribution.
	Latency Scenario = "latency"
)

// Scenarios lists every scenario with a one-line description.
var Scenarios = []struct {
	Name        Scenario
	Description string
}{
	{FanIn, "P publishers -> 1 wildcard subscriber (default P=4)"},
	{FanOut, "1 publisher -> S subscribers of one topic (default S=50)"},
	{PointToPoint, "N publisher/subscriber pairs on distinct topics (default N=50; alias: pairs)"},
	{Shared, "P publishers -> S members of $share/bench/... (default P=4, S=4)"},
	{Idle, "N idle connections: connect rate, broker bytes per connection with --pid (default N=1000)"},
	{Latency, "fan-in at a fixed total --rate below saturation (default 1000 msg/s, P=4)"},
}

// Limits on a run.
const (
	MaxDuration    = 10 * time.Minute
	MaxWarmup      = time.Minute
	MaxGrace       = time.Minute
	MaxMaxMessages = 1_000_000_000
	MaxClients     = 200_000
	MaxPayload     = 16 << 20
	DefaultMaxMsgs = 50_000_000
)

// Config describes one benchmark run. Zero fields take the defaults given
// beside them (per scenario where it says so).
type Config struct {
	Scenario Scenario `json:"scenario"`
	// URL of the broker: mqtt://, tcp://, mqtts://, ws://, wss:// or
	// quic://host:port (default mqtt://127.0.0.1:1883).
	URL string `json:"url"`
	// TLS is the client TLS configuration of mqtts, wss and quic URLs.
	TLS *tls.Config `json:"-"`
	// QUIC configures quic URLs (ALPN mode, stream strategy, datagrams).
	QUIC mqttquic.DialConfig `json:"-"`
	// Protocol is packet.V5 (default) or packet.V311.
	Protocol packet.Version `json:"protocol"`
	// QoS of publications and subscriptions (0, 1 or 2).
	QoS byte `json:"qos"`
	// PayloadSize in bytes, at least StampSize (default 64).
	PayloadSize int `json:"payload_size"`
	// Publishers for fan-in, shared and latency (default 4).
	Publishers int `json:"publishers,omitempty"`
	// Subscribers for fan-out (default 50) and shared (default 4).
	Subscribers int `json:"subscribers,omitempty"`
	// Pairs for p2p (default 50).
	Pairs int `json:"pairs,omitempty"`
	// Connections for idle (default 1000).
	Connections int `json:"connections,omitempty"`
	// ConnectRate bounds new connections per second for idle (0: as fast
	// as ConnectConcurrency dialers go).
	ConnectRate float64 `json:"connect_rate,omitempty"`
	// ConnectConcurrency is the number of parallel dialers (default 64).
	ConnectConcurrency int `json:"connect_concurrency,omitempty"`
	// SessionExpiry, when non-zero, makes every client's session
	// persistent (Session Expiry Interval in seconds; Clean Session 0 in
	// 3.1.1), so a broker with persistence stores what it queues for the
	// subscribers. Default 0: clean sessions.
	SessionExpiry uint32 `json:"session_expiry,omitempty"`
	// Window is each publisher's in-flight limit for QoS>0 (default 20);
	// it is lowered to the broker's Receive Maximum when that is smaller.
	Window int `json:"window,omitempty"`
	// Rate is the total publish rate in msg/s across all publishers
	// (0: as fast as possible; latency default 1000).
	Rate float64 `json:"rate,omitempty"`
	// Duration of the measurement (default 10 s, at most 10 min). For idle
	// it is how long the connections are held once open.
	Duration time.Duration `json:"-"`
	// Warmup before the measurement starts (default 1 s; 0 with
	// NoWarmup). Messages sent then are checked but not measured.
	Warmup   time.Duration `json:"-"`
	NoWarmup bool          `json:"-"`
	// Grace is how long to wait after the publishers stop for outstanding
	// acknowledgements and deliveries (default 2 s).
	Grace time.Duration `json:"-"`
	// MaxMessages bounds the publications of the run (default 50,000,000).
	MaxMessages int64 `json:"max_messages"`
	// BrokerPID, when non-zero, is sampled each second for CPU and RSS.
	BrokerPID int `json:"broker_pid,omitempty"`
	// AllowRemote permits a non-loopback broker.
	AllowRemote bool `json:"allow_remote,omitempty"`
	// Progress receives one line per second while the run goes (nil: none).
	Progress io.Writer `json:"-"`
}

// MarshalJSON writes durations as seconds.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	proto := ""
	if c.Protocol.Valid() {
		proto = c.Protocol.String()
	}
	return json.Marshal(struct {
		plain
		Protocol string  `json:"protocol,omitempty"`
		Duration float64 `json:"duration_s"`
		Warmup   float64 `json:"warmup_s"`
		Grace    float64 `json:"grace_s"`
	}{plain(c), proto, c.Duration.Seconds(), c.Warmup.Seconds(), c.Grace.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Config) UnmarshalJSON(data []byte) error {
	type plain Config
	var v struct {
		plain
		Protocol string  `json:"protocol,omitempty"`
		Duration float64 `json:"duration_s"`
		Warmup   float64 `json:"warmup_s"`
		Grace    float64 `json:"grace_s"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*c = Config(v.plain)
	if v.Protocol != "" {
		p, err := ParseProtocol(v.Protocol)
		if err != nil {
			return err
		}
		c.Protocol = p
	}
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	c.Duration, c.Warmup, c.Grace = sec(v.Duration), sec(v.Warmup), sec(v.Grace)
	return nil
}

// ParseScenario accepts a scenario name (and a few aliases).
func ParseScenario(s string) (Scenario, error) {
	switch strings.ToLower(s) {
	case "fan-in", "fanin":
		return FanIn, nil
	case "fan-out", "fanout":
		return FanOut, nil
	case "p2p", "pairs", "point-to-point":
		return PointToPoint, nil
	case "shared", "shared-fan-in":
		return Shared, nil
	case "idle", "connections":
		return Idle, nil
	case "latency":
		return Latency, nil
	}
	return "", fmt.Errorf("unknown scenario %q (fan-in, fan-out, p2p, shared, idle, latency)", s)
}

// ParseProtocol accepts 5, 5.0, 4, 3.1.1 or 311.
func ParseProtocol(s string) (packet.Version, error) {
	switch s {
	case "5", "5.0", "v5", "v5.0":
		return packet.V5, nil
	case "4", "3.1.1", "311", "v3.1.1":
		return packet.V311, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (5 or 3.1.1)", s)
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Scenario == "" {
		c.Scenario = FanIn
	}
	if _, err := ParseScenario(string(c.Scenario)); err != nil {
		return c, err
	}
	if c.URL == "" {
		c.URL = "mqtt://127.0.0.1:1883"
	}
	if c.Protocol == 0 {
		c.Protocol = packet.V5
	}
	if !c.Protocol.Valid() {
		return c, fmt.Errorf("protocol must be 5 or 3.1.1")
	}
	if c.QoS > 2 {
		return c, fmt.Errorf("qos must be 0, 1 or 2")
	}
	if c.PayloadSize == 0 {
		c.PayloadSize = 64
	}
	if c.PayloadSize < StampSize || c.PayloadSize > MaxPayload {
		return c, fmt.Errorf("payload size must be between %d and %d bytes", StampSize, MaxPayload)
	}
	switch c.Scenario {
	case FanIn, Latency:
		c.Publishers = def(c.Publishers, 4)
		c.Subscribers = 1
	case FanOut:
		c.Publishers = 1
		c.Subscribers = def(c.Subscribers, 50)
	case PointToPoint:
		c.Pairs = def(c.Pairs, 50)
		c.Publishers, c.Subscribers = c.Pairs, c.Pairs
	case Shared:
		c.Publishers = def(c.Publishers, 4)
		c.Subscribers = def(c.Subscribers, 4)
	case Idle:
		c.Connections = def(c.Connections, 1000)
		c.Publishers, c.Subscribers = 0, 0
	}
	if c.Publishers < 0 || c.Subscribers < 0 || c.Publishers+c.Subscribers > MaxClients || c.Connections < 0 || c.Connections > MaxClients {
		return c, fmt.Errorf("client counts must be between 1 and %d", MaxClients)
	}
	if c.Scenario != Idle && (c.Publishers < 1 || c.Subscribers < 1) {
		return c, fmt.Errorf("need at least one publisher and one subscriber")
	}
	c.ConnectConcurrency = def(c.ConnectConcurrency, 64)
	if c.ConnectRate < 0 || c.Rate < 0 {
		return c, fmt.Errorf("rates must not be negative")
	}
	if c.Scenario == Latency && c.Rate == 0 {
		c.Rate = 1000
	}
	c.Window = def(c.Window, 20)
	if c.Window < 1 || c.Window > 65535 {
		return c, fmt.Errorf("window must be between 1 and 65535")
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Duration < 0 || c.Duration > MaxDuration {
		return c, fmt.Errorf("duration must be positive and at most %v", MaxDuration)
	}
	if c.NoWarmup {
		c.Warmup = 0
	} else if c.Warmup == 0 {
		c.Warmup = time.Second
	}
	if c.Warmup < 0 || c.Warmup > MaxWarmup {
		return c, fmt.Errorf("warm-up must be between 0 and %v", MaxWarmup)
	}
	if c.Grace == 0 {
		c.Grace = 2 * time.Second
	}
	if c.Grace < 0 || c.Grace > MaxGrace {
		return c, fmt.Errorf("grace must be between 0 and %v", MaxGrace)
	}
	if c.MaxMessages == 0 {
		c.MaxMessages = DefaultMaxMsgs
	}
	if c.MaxMessages < 1 || c.MaxMessages > MaxMaxMessages {
		return c, fmt.Errorf("max messages must be between 1 and %d", MaxMaxMessages)
	}
	if c.BrokerPID < 0 {
		return c, fmt.Errorf("invalid broker PID")
	}
	return c, nil
}

func def(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}
