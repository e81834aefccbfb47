package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Bad command lines exit 2 before any traffic, and load goes to loopback
// only.
func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "either --broker-bin or --url"},
		{[]string{"--broker-bin", "x", "--url", "mqtt://127.0.0.1:1883"}, "either --broker-bin or --url"},
		{[]string{"--url", "mqtt://192.0.2.1:1883", "--pprof", "http://127.0.0.1:6060"}, "loopback addresses only"},
		{[]string{"--url", "mqtt://127.0.0.1:1883"}, "--url needs --pprof"},
		{[]string{"--url", "mqtt://127.0.0.1:1883", "--pprof", "http://example.com:6060"}, "want a loopback http URL"},
		{[]string{"--bogus"}, "flag provided but not defined"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), append(c.args, "--out", t.TempDir()), &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}
