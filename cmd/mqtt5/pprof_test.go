package main

import (
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/config"
)

// --pprof-listen serves the runtime profiles on loopback and stops with the
// broker.
func TestBrokerPprofEndpoint(t *testing.T) {
	b := startCmd(t, "broker", "--no-persistence", "--sys-interval", "0", "--listen", "mqtt://127.0.0.1:0",
		"--pprof-listen", "127.0.0.1:0")
	brokerURLs(t, b, 1)
	waitLog(t, b, "msg=\"pprof listening\"")
	m := regexp.MustCompile(`msg="pprof listening" url=(\S+)/debug/pprof/`).FindStringSubmatch(b.err.String())
	if m == nil {
		t.Fatalf("no pprof URL in\n%s", b.err.String())
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) (int, string, error) {
		resp, err := hc.Get(m[1] + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	for path, want := range map[string]string{
		"/debug/pprof/":                     "goroutine",
		"/debug/pprof/goroutine?debug=1":    "goroutine profile: total ",
		"/debug/pprof/heap?gc=1&debug=1":    "# HeapInuse = ",
		"/debug/pprof/cmdline":              "mqtt5",
		"/debug/pprof/threadcreate?debug=1": "threadcreate profile",
		"/debug/pprof/symbol":               "num_symbols",
		"/debug/pprof/heap?gc=1":            "", // binary (gzip) profile
		"/debug/pprof/allocs?debug=1":       "heap profile",
		"/debug/pprof/goroutine?debug=2":    "goroutine ",
		"/debug/pprof/nonexistent?debug=1":  "Unknown profile",
		"/debug/pprof/block?debug=1":        "",
		"/debug/pprof/mutex?debug=1":        "",
		"/debug/pprof/trace?seconds=0.01":   "",
		"/debug/pprof/profile?seconds=1":    "",
	} {
		code, body, err := get(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if strings.Contains(path, "nonexistent") {
			if code != http.StatusNotFound || !strings.Contains(body, want) {
				t.Errorf("%s: %d %.200q", path, code, body)
			}
			continue
		}
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%s: %d %.200q", path, code, body)
		}
	}
	// Only the profiles: the private mux serves nothing else (not the
	// metrics, not whatever a library registered on http.DefaultServeMux).
	registerOnDefaultMux.Do(func() {
		http.DefaultServeMux.HandleFunc("/pprof-test-only", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "x") })
	})
	for _, p := range []string{"/", "/metrics", "/pprof-test-only"} {
		if code, _, err := get(p); err != nil || code != http.StatusNotFound {
			t.Errorf("%s: %d %v, want 404", p, code, err)
		}
	}

	b.cancel()
	<-b.done
	if b.code != 0 {
		t.Fatalf("broker exit %d\n%s", b.code, b.err.String())
	}
	if _, _, err := get("/debug/pprof/"); err == nil {
		t.Fatal("pprof endpoint still serving after the broker stopped")
	}
}

var registerOnDefaultMux sync.Once

// Off by default; a non-loopback address is refused by the configuration.
func TestPprofListenConfig(t *testing.T) {
	if config.Default().Telemetry.PprofListen != "" {
		t.Fatalf("pprof on by default: %q", config.Default().Telemetry.PprofListen)
	}
	for addr, ok := range map[string]bool{
		"127.0.0.1:6060": true, "[::1]:6060": true, "localhost:0": true,
		"0.0.0.0:6060": false, ":6060": false, "192.168.1.2:6060": false, "example.com:6060": false, "6060": false,
	} {
		_, _, err := loadBrokerConfig([]string{"--pprof-listen", addr}, nil, io.Discard)
		if ok && err != nil {
			t.Errorf("%s: %v", addr, err)
		}
		if !ok && (!errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "telemetry.pprof_listen")) {
			t.Errorf("%s: err %v, want a refusal naming telemetry.pprof_listen", addr, err)
		}
	}
	// The environment variable derived from the key path works too.
	cfg, _, err := loadBrokerConfig(nil, []string{"MQTT5_TELEMETRY_PPROF_LISTEN=127.0.0.1:6061"}, io.Discard)
	if err != nil || cfg.Telemetry.PprofListen != "127.0.0.1:6061" {
		t.Fatalf("env: %q %v", cfg.Telemetry.PprofListen, err)
	}
	if _, _, err := loadBrokerConfig(nil, []string{"MQTT5_TELEMETRY_PPROF_LISTEN=0.0.0.0:6061"}, io.Discard); !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("env non-loopback: %v", err)
	}
}
