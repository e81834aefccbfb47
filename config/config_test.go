package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEmptyConfigIsDefault(t *testing.T) {
	for _, tc := range []struct{ data, format string }{{"{}", "json"}, {"", "toml"}, {"# nothing\n", "toml"}} {
		cfg, err := Parse([]byte(tc.data), tc.format)
		if err != nil {
			t.Fatalf("%s %q: %v", tc.format, tc.data, err)
		}
		if !reflect.DeepEqual(cfg, Default()) {
			t.Errorf("%s %q: %+v differs from the defaults", tc.format, tc.data, cfg)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("defaults invalid: %v", err)
		}
	}
}

func TestParseFile(t *testing.T) {
	j := `{"listeners": ["mqtt://127.0.0.1:1884", "ws://127.0.0.1:8080/mqtt"],
		"log": {"level": "debug"}, "storage": {"durability": "batch", "batch_interval": "25ms"},
		"auth": {"jwt": {"role_claims": ["roles"]}}, "limits": {"receive_maximum": 100}}`
	cfg, err := Parse([]byte(j), "json")
	if err != nil {
		t.Fatal(err)
	}
	tm := `listeners = ["mqtt://127.0.0.1:1884", "ws://127.0.0.1:8080/mqtt"]
[log]
level = "debug"
[storage]
durability = "batch"
batch_interval = "25ms"
[auth.jwt]
role_claims = ["roles"]
[limits]
receive_maximum = 100
`
	cfg2, err := Parse([]byte(tm), "toml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, cfg2) {
		t.Fatalf("JSON and TOML differ:\n%+v\n%+v", cfg, cfg2)
	}
	if cfg.Log.Level != "debug" || cfg.Log.Format != "text" || cfg.Storage.BatchInterval.D() != 25*time.Millisecond ||
		cfg.Limits.ReceiveMaximum != 100 || cfg.Limits.MaxInflight != 1024 || len(cfg.Listeners) != 2 {
		t.Fatalf("parsed %+v", cfg)
	}
}

func TestUnknownAndBadFieldsAreNamed(t *testing.T) {
	for _, tc := range []struct{ data, format, want string }{
		{`{"listners": []}`, "json", `unknown field "listners"`},
		{`{"log": {"colour": "red"}}`, "json", `unknown field "colour"`},
		{`{"limits": {"receive_maximum": "many"}}`, "json", "limits.receive_maximum"},
		{`{"storage": {"batch_interval": "soon"}}`, "json", `invalid duration "soon"`},
		{`{"log": {"level": "info"}`, "json", "unexpected EOF"},
		{"listners = []", "toml", "unknown field listners"},
		{"[auth.jwt]\nissuer = 'x'\nkid = 'y'\n", "toml", "unknown field auth.jwt.kid"},
		{"[limits]\nmax_inflight = 'x'\n", "toml", "max_inflight"},
	} {
		_, err := Parse([]byte(tc.data), tc.format)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want %q", tc.format, tc.data, err, tc.want)
		}
	}
}

func TestValidationNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Listeners = nil }, "listeners (--listen): at least one"},
		{func(c *Config) { c.Listeners = []string{"gopher://x:1"} }, "listeners[0] (--listen)"},
		{func(c *Config) { c.Listeners = []string{"mqtt://0.0.0.0:1883"} }, "without authentication"},
		{func(c *Config) { c.Listeners = []string{"mqtts://127.0.0.1:8883"} }, "tls.cert (--tls-cert)"},
		{func(c *Config) { c.Log.Level = "loud" }, `log.level (--log-level): "loud"`},
		{func(c *Config) { c.Storage.Durability = "maybe" }, "storage.durability"},
		{func(c *Config) { c.Queue.Policy = "drop_all" }, "queue.policy"},
		{func(c *Config) { c.Queue.MaxMessages = 0 }, "queue.max_messages"},
		{func(c *Config) { c.Limits.MaximumQoS = 3 }, "limits.maximum_qos"},
		{func(c *Config) { c.Limits.ReceiveMaximum = 0 }, "limits.receive_maximum"},
		{func(c *Config) { c.Limits.MaximumPacketSize = 1 << 30 }, "limits.maximum_packet_size"},
		{func(c *Config) { c.Limits.SharedStrategy = "fair" }, "limits.shared_strategy"},
		{func(c *Config) { c.QUIC.Delivery = "all" }, "quic.delivery (--quic-delivery)"},
		{func(c *Config) { c.WebSocket.TrustedProxies = []string{"10.0.0.0/99"} }, "websocket.trusted_proxies[0]"},
		{func(c *Config) { c.Auth.Plain = true }, "auth.plain (--plain-auth)"},
		{func(c *Config) { c.Auth.JWT.Keys = []string{"RS512:/k"} }, "auth.jwt.keys[0] (--jwt-key)"},
		{func(c *Config) { c.Auth.JWT.JWKSURL = "https://idp/jwks" }, "auth.jwt.jwks_url"},
		{func(c *Config) { c.Auth.MaxFailures = -1 }, "auth.max_failures"},
		{func(c *Config) { c.ShutdownTimeout = -1 }, "shutdown_timeout"},
		{func(c *Config) { c.Bridges = []Bridge{{Name: "b", URL: "gopher://x"}} }, "bridges[0].url"},
		{func(c *Config) { c.Bridges = []Bridge{{Name: "b", URL: "mqtt://x"}} }, "bridges[0].topics: at least one"},
		{func(c *Config) {
			c.Bridges = []Bridge{{Name: "b", URL: "mqtt://x", Topics: []BridgeTopic{{Pattern: "#", Direction: "sideways"}}}}
		}, "bridges[0].topics[0].direction"},
		{func(c *Config) {
			c.Bridges = []Bridge{{Name: "b", URL: "mqtt://x", Topics: []BridgeTopic{{Pattern: "#"}}}, {Name: "b", URL: "mqtt://y", Topics: []BridgeTopic{{Pattern: "#"}}}}
		}, "bridges[1].name: \"b\" is used"},
	} {
		cfg := Default()
		tc.mut(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
	// Authentication or allow_anonymous lift the loopback rule.
	cfg := Default()
	cfg.Listeners = []string{"mqtt://:1883"}
	cfg.Auth.PasswordFile = "/etc/mqtt5/passwd"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Auth.PasswordFile, cfg.AllowAnonymous = "", true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Flags override the environment, which overrides the file.
func TestPrecedence(t *testing.T) {
	cfg, err := Parse([]byte(`{"log": {"level": "warn", "format": "json"}, "listeners": ["mqtt://127.0.0.1:1"],
		"websocket": {"allowed_origins": ["a.example"]}, "sys": {"interval": "1s"}}`), "json")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/bin", "MQTT5_LOG_LEVEL=debug", "MQTT5_WEBSOCKET_ALLOWED_ORIGINS=b.example, c.example",
		"MQTT5_STORAGE_PERSISTENCE=false", "MQTT5_SYS_INTERVAL=2s", "MQTT5_CONFIG=ignored.json"}
	if err := ApplyEnv(&cfg, env); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	BindFlags(fs, &cfg, nil)
	if err := fs.Parse([]string{"--sys-interval", "3s", "--listen", "mqtt://127.0.0.1:2", "--listen", "ws://127.0.0.1:3/mqtt", "--allow-anonymous"}); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Log = Log{Level: "debug", Format: "json"}
	want.WebSocket.AllowedOrigins = []string{"b.example", "c.example"}
	want.Storage.Persistence = false
	want.Sys.Interval = Duration(3 * time.Second)
	want.Listeners = []string{"mqtt://127.0.0.1:2", "ws://127.0.0.1:3/mqtt"}
	want.AllowAnonymous = true
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestEnvErrors(t *testing.T) {
	cfg := Default()
	err := ApplyEnv(&cfg, []string{"MQTT5_LOG_LEVLE=debug", "MQTT5_LIMITS_MAX_INFLIGHT=lots"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "MQTT5_LOG_LEVLE names no setting") ||
		!strings.Contains(err.Error(), "MQTT5_LIMITS_MAX_INFLIGHT (limits.max_inflight)") {
		t.Fatalf("%v", err)
	}
}

func TestGenerateRoundTrip(t *testing.T) {
	for _, format := range []string{"json", "toml"} {
		b, err := Generate(format)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := Parse(b, format)
		if err != nil {
			t.Fatalf("%s: %v\n%s", format, err, b)
		}
		if !reflect.DeepEqual(cfg, Default()) {
			t.Errorf("%s: generated config does not read back as the defaults", format)
		}
		for _, p := range Paths() {
			key := p[strings.LastIndexByte(p, '.')+1:]
			if !strings.Contains(string(b), key) {
				t.Errorf("%s: %s missing from the generated file", format, p)
			}
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "mqtt5.toml")
	os.WriteFile(f, []byte("[log]\nlevel = 'error'\n"), 0o600)
	cfg, err := LoadFile(f)
	if err != nil || cfg.Log.Level != "error" {
		t.Fatalf("%+v %v", cfg.Log, err)
	}
	bad := filepath.Join(dir, "mqtt5.yaml")
	os.WriteFile(bad, []byte("log: {}"), 0o600)
	if _, err := LoadFile(bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), ".json or .toml") {
		t.Fatalf("%v", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%v", err)
	}
}

// Every setting is documented in docs/configuration.md with its key path,
// so the document cannot drift from the code.
func TestEveryFieldDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Paths() {
		if !strings.Contains(string(doc), "| `"+p+"` |") {
			t.Errorf("%s is not documented in docs/configuration.md (a table row starting with `%s`)", p, p)
		}
	}
	for _, p := range ListPaths() {
		if !strings.Contains(string(doc), "| `"+p+"` |") {
			t.Errorf("%s is not documented in docs/configuration.md", p)
		}
	}
	for f := range Flags() {
		if !strings.Contains(string(doc), "`--"+f) {
			t.Errorf("flag --%s is not documented in docs/configuration.md", f)
		}
	}
}

// The broker configuration built from the defaults matches the broker's
// own defaults.
func TestBrokerMapping(t *testing.T) {
	cfg := Default()
	bc := cfg.Broker()
	if bc.Capabilities.MaximumQoS != 2 || bc.Capabilities.ReceiveMaximum != 1024 || bc.Capabilities.TopicAliasMaximum != 64 ||
		bc.Capabilities.MaximumPacketSize != 1<<20 || bc.Limits.MaxInflight != 1024 || bc.Queue.MaxMessages != 10000 ||
		bc.SysInterval != 10*time.Second || bc.ConnectTimeout != 10*time.Second || bc.Capabilities.DisableRetain {
		t.Fatalf("%+v", bc)
	}
	cfg.Sys.Interval = 0
	cfg.Limits.RetainAvailable = false
	cfg.Limits.MaximumQoS = 1
	bc = cfg.Broker()
	if bc.SysInterval >= 0 || !bc.Capabilities.DisableRetain || bc.Capabilities.MaximumQoS != 1 || !bc.Capabilities.MaximumQoSSet {
		t.Fatalf("%+v", bc)
	}
}
