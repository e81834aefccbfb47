package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateAndCheckConfig(t *testing.T) {
	dir := t.TempDir()
	for _, format := range []string{"json", "toml"} {
		code, out, errs := runCmd(t, "broker", "generate-config", "--format", format)
		if code != 0 || !strings.Contains(out, "max_inflight") {
			t.Fatalf("generate-config %s: %d %q", format, code, errs)
		}
		f := filepath.Join(dir, "gen."+format)
		os.WriteFile(f, []byte(out), 0o600)
		if code, out, errs := runCmd(t, "broker", "check-config", f); code != 0 || !strings.Contains(out, "configuration is valid") {
			t.Fatalf("check-config %s: %d %q %q", format, code, out, errs)
		}
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("listeners = ['mqtt://0.0.0.0:1883']\n[log]\nlevel = 'loud'\n"), 0o600)
	code, _, errs := runCmd(t, "broker", "check-config", bad)
	if code != 1 || !strings.Contains(errs, "log.level (--log-level)") || !strings.Contains(errs, "listeners[0] (--listen)") {
		t.Fatalf("check-config bad: %d %q", code, errs)
	}
	unknown := filepath.Join(dir, "unknown.json")
	os.WriteFile(unknown, []byte(`{"storage": {"dir": "x"}}`), 0o600)
	if code, _, errs := runCmd(t, "broker", "check-config", unknown); code != 1 || !strings.Contains(errs, `unknown field "dir"`) {
		t.Fatalf("unknown field: %d %q", code, errs)
	}
	if code, _, _ := runCmd(t, "broker", "generate-config", "--format", "yaml"); code != 2 {
		t.Fatalf("yaml: exit %d", code)
	}
}

// The broker runs from a configuration file; the environment overrides
// the file and flags override both.
func TestBrokerConfigFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "mqtt5.toml")
	os.WriteFile(f, []byte("listeners = ['mqtt://127.0.0.1:0']\n[storage]\npersistence = false\n[sys]\ninterval = '0s'\n[log]\nlevel = 'error'\n"), 0o600)
	t.Setenv("MQTT5_LOG_LEVEL", "warn")
	b := startCmd(t, "broker", "--config", f, "--log-level", "info")
	url := brokerURLs(t, b, 1)[0]
	if !strings.HasPrefix(url, "mqtt://127.0.0.1:") {
		t.Fatalf("listening on %s", url)
	}
	if !strings.Contains(b.err.String(), "msg=configuration file="+f) {
		t.Fatalf("the info line of --log-level info is missing:\n%s", b.err.String())
	}
	// An unknown MQTT5_ variable is refused.
	t.Setenv("MQTT5_LOG_LEVLE", "debug")
	if code, _, errs := runCmd(t, "broker", "--config", f); code != 2 || !strings.Contains(errs, "MQTT5_LOG_LEVLE names no setting") {
		t.Fatalf("typo in the environment: %d %q", code, errs)
	}
}
