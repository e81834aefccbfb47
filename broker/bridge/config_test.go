package bridge

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

func TestRewrite(t *testing.T) {
	for _, c := range []struct {
		name, from, to, want string
		ok                   bool
	}{
		{"sensors/t1", "", "site1/", "site1/sensors/t1", true},
		{"site1/sensors/t1", "site1/", "", "sensors/t1", true},
		{"a/x/y", "a/", "b/c/", "b/c/x/y", true},
		{"a", "a/", "b/", "b", true},                               // "a/#" matches its parent "a"
		{"a", "a/", "", "", false},                                 // nothing left to name it
		{"alarm", "alarm", "plant/7/alarm", "plant/7/alarm", true}, // empty Pattern
		{"x/y", "a/", "b/", "", false},
	} {
		got, ok := rewrite(c.name, c.from, c.to)
		if got != c.want || ok != c.ok {
			t.Errorf("rewrite(%q, %q, %q) = %q %v, want %q %v", c.name, c.from, c.to, got, ok, c.want, c.ok)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	local := func(context.Context) (net.Conn, error) { return nil, net.ErrClosed }
	good := func() Config {
		return Config{Name: "b1", Remote: RemoteConfig{URL: "mqtt://127.0.0.1:1883"}, Topics: []TopicMapping{{Pattern: "a/#", QoS: 1}}}
	}
	for _, c := range []struct {
		field string
		mod   func(*Config)
	}{
		{"Config.Name", func(c *Config) { c.Name = "" }},
		{"Config.Name", func(c *Config) { c.Name = "a b" }},
		{"Config.Name", func(c *Config) { c.Name = strings.Repeat("x", 65) }},
		{"Config.Remote.URL", func(c *Config) { c.Remote.URL = "" }},
		{"Config.Remote.URL", func(c *Config) { c.Remote.URL = "gopher://x" }},
		{"Config.Remote.Backups[1]", func(c *Config) { c.Remote.Backups = []string{"mqtt://h", "bad://h"} }},
		{"Config.Remote.Version", func(c *Config) { c.Remote.Version = 3 }},
		{"Config.Topics", func(c *Config) { c.Topics = nil }},
		{"Config.Topics[0]: Pattern", func(c *Config) { c.Topics[0].Pattern = "a/#/b" }},
		{"Config.Topics[0]: Pattern", func(c *Config) { c.Topics[0].Pattern = "$share/g/a" }},
		{"Config.Topics[0]: QoS", func(c *Config) { c.Topics[0].QoS = 3 }},
		{"Config.Topics[0]: Direction", func(c *Config) { c.Topics[0].Direction = 7 }},
		{"Config.Topics[0]: LocalPrefix", func(c *Config) { c.Topics[0].LocalPrefix = "a/+/" }},
		{"Config.Topics[0]: RemotePrefix", func(c *Config) { c.Topics[0].RemotePrefix = "#" }},
		{"Config.Topics[1]: empty Pattern", func(c *Config) { c.Topics = append(c.Topics, TopicMapping{LocalPrefix: "x"}) }},
		{"Config.MaxQueued", func(c *Config) { c.MaxQueued = -1 }},
		{"Config.MaxQueuedBytes", func(c *Config) { c.MaxQueuedBytes = -1 }},
		{"Config.LoopTTL", func(c *Config) { c.LoopTTL = -time.Second }},
		{"Config.LoopCacheSize", func(c *Config) { c.LoopCacheSize = -1 }},
		{"Config.LoopCache", func(c *Config) { c.LoopCache = 9 }},
		{"Config.FailbackInterval", func(c *Config) { c.FailbackInterval = -1 }},
		{"Config.MaxHops", func(c *Config) { c.MaxHops = -1 }},
	} {
		cfg := good()
		c.mod(&cfg)
		_, err := New(cfg, local)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %v, want one naming %q", c.field, err, c.field)
		}
	}
	if _, err := New(good(), nil); err == nil {
		t.Error("nil local dialer accepted")
	}
	b, err := New(good(), local)
	if err != nil {
		t.Fatal(err)
	}
	cfg := b.cfg
	if cfg.MaxQueued != DefaultMaxQueued || cfg.MaxQueuedBytes != DefaultMaxQueuedBytes || cfg.LoopTTL != DefaultLoopTTL ||
		cfg.LoopCacheSize != DefaultLoopCacheSize || cfg.FailbackInterval != DefaultFailbackInterval ||
		cfg.MaxHops != DefaultMaxHops || cfg.Remote.Version != packet.V5 || cfg.Remote.ClientID != "mqtt5-bridge-b1" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if b.cache != nil {
		t.Error("fingerprint cache used with an MQTT 5 remote in LoopCacheAuto")
	}
	v3 := good()
	v3.Remote.Version = packet.V311
	if b, _ := New(v3, local); b == nil || b.cache == nil {
		t.Error("no fingerprint cache with an MQTT 3.1.1 remote")
	}
	for _, d := range []string{"in", "out", "both"} {
		var dir Direction
		if err := dir.UnmarshalText([]byte(d)); err != nil || dir.String() != d {
			t.Errorf("direction %q: %v %v", d, dir, err)
		}
	}
}
