package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// fzConfigEqual compares two configurations, NaN equal to NaN.
func fzConfigEqual(a, b Config) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
}

// fzFinite reports whether every float field of cfg is a finite number.
func fzFinite(cfg Config) bool {
	r := cfg.RateLimits
	for _, x := range []float64{r.InboundMessages, r.InboundBytes, r.OutboundMessages} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// fzNoNilSlices replaces nil string lists by empty ones: TOML has no null,
// so a nil list cannot be written, while an empty one can.
func fzNoNilSlices(cfg *Config) {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		case reflect.Slice:
			if v.IsNil() {
				v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			}
			for i := range v.Len() {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(cfg).Elem())
}

func fzEncodeTOML(t *testing.T, cfg Config) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		t.Fatalf("encoding an accepted configuration as TOML: %v\n%#v", err, cfg)
	}
	return buf.Bytes()
}

// fzCheckAccepted checks a configuration that Parse or ApplyEnv accepted:
// it validates without panicking, a valid one converts to a broker.Config,
// and it survives a round trip through both file formats.
func fzCheckAccepted(t *testing.T, cfg Config) {
	t.Helper()
	if err := cfg.Validate(); err == nil {
		if !fzFinite(cfg) {
			t.Fatalf("Validate accepted a rate that is not a finite number: %+v", cfg.RateLimits)
		}
		_ = cfg.Broker()
	}
	if !fzFinite(cfg) {
		return // not representable in JSON; Validate refuses it
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("encoding an accepted configuration as JSON: %v", err)
	}
	back, err := Parse(j, "json")
	if err != nil {
		t.Fatalf("JSON round trip: %v\n%s", err, j)
	}
	if !fzConfigEqual(back, cfg) {
		t.Fatalf("JSON round trip changed the configuration:\n%#v\n%#v\n%s", cfg, back, j)
	}
	c := cfg
	if cfg.Bridges != nil {
		c.Bridges = append([]Bridge{}, cfg.Bridges...)
	}
	fzNoNilSlices(&c)
	tm := fzEncodeTOML(t, c)
	back, err = Parse(tm, "toml")
	if err != nil {
		t.Fatalf("TOML round trip: %v\n%s", err, tm)
	}
	if !fzConfigEqual(back, c) {
		t.Fatalf("TOML round trip changed the configuration:\n%#v\n%#v\n%s", c, back, tm)
	}
}

func FuzzConfigParseJSON(f *testing.F) {
	def, _ := Generate("json")
	f.Add(def)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"listeners": ["mqtt://127.0.0.1:1884"], "log": {"level": "debug"},
		"storage": {"durability": "batch", "batch_interval": "25ms"}, "limits": {"receive_maximum": 100}}`))
	f.Add([]byte(`{"bridges": [{"name": "b", "url": "mqtt://h:1883", "topics": [{"pattern": "a/#", "qos": 1}]}]}`))
	f.Add([]byte(`{"listeners": null, "rate_limits": {"inbound_messages": 1e308}}`))
	f.Add([]byte(`{"shutdown_timeout": 5}`))
	f.Add([]byte(`{"nope": 1}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "json")
		if err != nil {
			if !strings.Contains(err.Error(), ErrInvalid.Error()) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		fzCheckAccepted(t, cfg)
	})
}

func FuzzConfigParseTOML(f *testing.F) {
	def, _ := Generate("toml")
	f.Add(def)
	f.Add([]byte(``))
	f.Add([]byte("listeners = [\"mqtt://127.0.0.1:1884\"]\n[log]\nlevel = \"debug\"\n[storage]\nbatch_interval = \"25ms\"\n"))
	f.Add([]byte("[[bridges]]\nname = \"b\"\nurl = \"mqtt://h:1883\"\n[[bridges.topics]]\npattern = \"a/#\"\nqos = 1\n"))
	f.Add([]byte("[rate_limits]\ninbound_messages = nan\noutbound_messages = inf\n"))
	f.Add([]byte("[limits]\nmaximum_packet_size = 9223372036854775807\nmax_inflight = -1\n"))
	f.Add([]byte("nope = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "toml")
		if err != nil {
			if !strings.Contains(err.Error(), ErrInvalid.Error()) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		fzCheckAccepted(t, cfg)
	})
}

// fzEnviron turns the fuzz input into environment entries, one a line. A
// line "@<b>=<value>" names the setting with index b, so that the fuzzer
// reaches every field without guessing its name.
func fzEnviron(data string) []string {
	paths := Paths()
	var env []string
	for line := range strings.SplitSeq(data, "\n") {
		if len(line) >= 2 && line[0] == '@' {
			_, v, _ := strings.Cut(line[2:], "=")
			line = EnvName(paths[int(line[1])%len(paths)]) + "=" + v
		}
		env = append(env, line)
	}
	return env
}

func FuzzApplyEnv(f *testing.F) {
	var all strings.Builder
	for i, p := range Paths() {
		fmt.Fprintf(&all, "%s=x\n@%c=1\n", EnvName(p), byte(i))
	}
	f.Add(all.String())
	f.Add("MQTT5_LOG_LEVEL=debug\nMQTT5_LISTENERS=mqtt://127.0.0.1:1884, ws://127.0.0.1:8080/mqtt\nMQTT5_LIMITS_RECEIVE_MAXIMUM= 100 ")
	f.Add("MQTT5_STORAGE_BATCH_INTERVAL=25ms\nMQTT5_STORAGE_PERSISTENCE=false\nPATH=/bin\nMQTT5_CONFIG=x.toml")
	f.Add("MQTT5_RATE_LIMITS_INBOUND_MESSAGES=NaN")
	f.Add("MQTT5_RATE_LIMITS_OUTBOUND_MESSAGES=+Inf")
	f.Add("MQTT5_NOPE=1\nMQTT5_=\nMQTT5_LOG_LEVEL")
	f.Fuzz(func(t *testing.T, data string) {
		env := fzEnviron(data)
		cfg := Default()
		err := ApplyEnv(&cfg, env)
		// Entries are independent: the whole fails exactly when one fails
		// (checked on short environments, to keep an execution fast).
		if len(env) <= 32 {
			anyBad := false
			for _, kv := range env {
				c := Default()
				if ApplyEnv(&c, []string{kv}) != nil {
					anyBad = true
				}
			}
			if (err != nil) != anyBad {
				t.Fatalf("ApplyEnv(%q) = %v, but the entries one by one fail: %v", env, err, anyBad)
			}
		}
		if err != nil {
			return
		}
		// Applying the same environment twice changes nothing more.
		again := cfg
		if err := ApplyEnv(&again, env); err != nil || !fzConfigEqual(again, cfg) {
			t.Fatalf("ApplyEnv is not idempotent on %q: %v", env, err)
		}
		for _, kv := range env {
			if !utf8.ValidString(kv) {
				return // JSON cannot carry invalid UTF-8 strings
			}
		}
		fzCheckAccepted(t, cfg)
	})
}
