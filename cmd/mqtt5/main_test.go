package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd(t, "version")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out, "mqtt5 ") || !strings.Contains(out, runtime.Version()) || !strings.Contains(out, "commit ") {
		t.Fatalf("unexpected version output %q", out)
	}
}

func TestHelpListsCommands(t *testing.T) {
	code, out, _ := runCmd(t, "help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(out, c.name) {
			t.Errorf("help does not list %q:\n%s", c.name, out)
		}
	}
	if code, out, _ := runCmd(t, "help", "version"); code != 0 || !strings.Contains(out, "Usage: mqtt5 version") {
		t.Fatalf("help version: exit %d, %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	if code, _, _ := runCmd(t); code != 2 {
		t.Errorf("no args: exit %d, want 2", code)
	}
	if code, _, errs := runCmd(t, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: exit %d, %q", code, errs)
	}
	if code, _, errs := runCmd(t, "version", "--bogus"); code != 2 || !strings.Contains(errs, "bogus") {
		t.Errorf("bad flag: exit %d, %q", code, errs)
	}
	if code, _, _ := runCmd(t, "help", "nope"); code != 2 {
		t.Errorf("help for unknown command: exit %d", code)
	}
}
