package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// --metrics-listen serves Prometheus metrics and the health endpoints.
func TestBrokerMetricsEndpoint(t *testing.T) {
	b := startCmd(t, "broker", "--no-persistence", "--sys-interval", "0", "--listen", "mqtt://127.0.0.1:0",
		"--metrics-listen", "127.0.0.1:0")
	brokerURLs(t, b, 1)
	waitLog(t, b, "msg=\"metrics listening\"")
	m := regexp.MustCompile(`msg="metrics listening" url=(\S+)/metrics`).FindStringSubmatch(b.err.String())
	if m == nil {
		t.Fatalf("no metrics URL in\n%s", b.err.String())
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "mqtt5_") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics: %d\n%.500s", code, body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(p); code != 200 {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
}
