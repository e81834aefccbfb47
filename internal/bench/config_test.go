package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct{ in, scheme, addr string }{
		{"mqtt://127.0.0.1:1883", "mqtt", "127.0.0.1:1883"},
		{"tcp://localhost:2000", "tcp", "localhost:2000"},
		{"mqtt://[::1]", "mqtt", "[::1]:1883"},
		{"127.0.0.1:1884", "mqtt", "127.0.0.1:1884"},
		{"mqtts://127.0.0.1", "mqtts", "127.0.0.1:8883"},
		{"ws://127.0.0.1:8080/mqtt", "ws", "127.0.0.1:8080"},
		{"wss://localhost", "wss", "localhost:443"},
		{"quic://127.0.0.1", "quic", "127.0.0.1:14567"},
	} {
		tg, err := ParseTarget(tc.in, transport.DialConfig{})
		if err != nil || tg.Scheme != tc.scheme || tg.Addr != tc.addr || tg.Dialer == nil {
			t.Errorf("%s: %+v %v", tc.in, tg, err)
		}
	}
	if _, err := ParseTarget("gopher://x:1", transport.DialConfig{}); !errors.Is(err, transport.ErrUnknownScheme) {
		t.Errorf("unknown scheme: %v", err)
	}
}

func TestRemoteTargetRefused(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"mqtt://192.0.2.1:1883", "tcp://[2001:db8::1]:1883", "10.1.2.3:1883"} {
		_, err := Run(ctx, Config{URL: u, Duration: time.Second})
		if !errors.Is(err, ErrRemoteTarget) || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrRemoteTarget", u, err)
		}
	}
	for _, a := range []string{"127.0.0.1:1", "[::1]:1", "localhost:1"} {
		if err := checkLoopback(ctx, a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
}

func TestConfigDefaultsAndLimits(t *testing.T) {
	c, err := Config{Scenario: FanOut}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Publishers != 1 || c.Subscribers != 50 || c.Protocol != packet.V5 || c.PayloadSize != 64 ||
		c.Duration != 10*time.Second || c.Warmup != time.Second || c.Window != 20 || c.MaxMessages != DefaultMaxMsgs {
		t.Fatalf("defaults: %+v", c)
	}
	if c, _ := (Config{Scenario: Latency}).withDefaults(); c.Rate != 1000 || c.Publishers != 4 {
		t.Fatalf("latency defaults: %+v", c)
	}
	if c, _ := (Config{NoWarmup: true}).withDefaults(); c.Warmup != 0 {
		t.Fatalf("NoWarmup: %v", c.Warmup)
	}
	for name, bad := range map[string]Config{
		"duration":  {Duration: 11 * time.Minute},
		"payload":   {PayloadSize: StampSize - 1},
		"qos":       {QoS: 3},
		"scenario":  {Scenario: "nope"},
		"window":    {Window: 70000},
		"messages":  {MaxMessages: MaxMaxMessages + 1},
		"protocol":  {Protocol: 3},
		"rate":      {Rate: -1},
		"clients":   {Scenario: FanOut, Subscribers: MaxClients + 1},
		"no client": {Scenario: FanIn, Publishers: -1},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%s: accepted %+v", name, bad)
		}
		if _, err := Run(context.Background(), bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Run error %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestParseScenarioAndProtocol(t *testing.T) {
	for _, s := range Scenarios {
		if got, err := ParseScenario(string(s.Name)); err != nil || got != s.Name {
			t.Errorf("%s: %v %v", s.Name, got, err)
		}
	}
	if got, _ := ParseScenario("pairs"); got != PointToPoint {
		t.Errorf("pairs -> %v", got)
	}
	if v, err := ParseProtocol("3.1.1"); err != nil || v != packet.V311 {
		t.Errorf("3.1.1 -> %v %v", v, err)
	}
	if _, err := ParseProtocol("3"); err == nil {
		t.Error("protocol 3 accepted")
	}
}
