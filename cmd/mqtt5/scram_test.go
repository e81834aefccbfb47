package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdg-go/scram"

	"github.com/mqtt5go/mqtt5/broker/auth"
)

// scramCheck reports whether file holds a credential of user that
// password matches.
func scramCheck(t *testing.T, file, user, password string) bool {
	t.Helper()
	creds, err := auth.LoadSCRAMFile(file)
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	for _, c := range creds {
		if c.Username != user {
			continue
		}
		cl, _ := scram.SHA256.NewClient(user, password, "")
		sc := cl.GetStoredCredentials(scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations})
		return string(sc.StoredKey) == string(c.StoredKey) && string(sc.ServerKey) == string(c.ServerKey)
	}
	return false
}

func TestScramCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "scram.txt")
	it := "10000" // the minimum: fast enough for tests

	if code, _, errs := runCmd(t, "scram", "-b", "-i", it, file, "alice", "pw1"); code != 1 || !strings.Contains(errs, "does not exist") {
		t.Fatalf("add to a missing file: exit %d %q", code, errs)
	}
	if code, _, errs := runCmd(t, "scram", "-c", "-b", "-i", it, file, "alice", "pw1"); code != 0 {
		t.Fatalf("create: exit %d %q", code, errs)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v, want 0600", st.Mode(), err)
	}
	if !scramCheck(t, file, "alice", "pw1") {
		t.Fatalf("alice/pw1 not in the file")
	}
	creds, _ := auth.LoadSCRAMFile(file)
	if creds[0].Iterations != 10000 {
		t.Fatalf("iterations %d", creds[0].Iterations)
	}

	// Add bob with a comment in the file, update alice: the comment and
	// the order stay.
	b, _ := os.ReadFile(file)
	os.WriteFile(file, append([]byte("# team credentials\n"), b...), 0o600)
	if code, _, errs := runCmd(t, "scram", "-b", "-i", it, file, "bob", "pw2"); code != 0 {
		t.Fatalf("add bob: exit %d %q", code, errs)
	}
	before, _ := os.ReadFile(file)
	if code, _, errs := runCmd(t, "scram", "-b", "-i", it, file, "alice", "pw3"); code != 0 {
		t.Fatalf("update alice: exit %d %q", code, errs)
	}
	if scramCheck(t, file, "alice", "pw1") || !scramCheck(t, file, "alice", "pw3") || !scramCheck(t, file, "bob", "pw2") {
		t.Fatalf("after update: alice must have pw3, bob pw2")
	}
	after, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimSpace(string(after)), "\n")
	if len(lines) != 3 || lines[0] != "# team credentials" || !strings.HasPrefix(lines[1], "alice:") || !strings.HasPrefix(lines[2], "bob:") || string(before) == string(after) {
		t.Fatalf("file after update:\n%s", after)
	}

	// Delete.
	if code, _, errs := runCmd(t, "scram", "-D", file, "alice"); code != 0 {
		t.Fatalf("delete: exit %d %q", code, errs)
	}
	if scramCheck(t, file, "alice", "pw3") || !scramCheck(t, file, "bob", "pw2") {
		t.Fatalf("after delete")
	}
	if code, _, errs := runCmd(t, "scram", "-D", file, "alice"); code != 1 || !strings.Contains(errs, "not found") {
		t.Fatalf("delete a missing user: exit %d %q", code, errs)
	}

	// Usage errors: minimum iterations, argument counts, -D with -c.
	for _, args := range [][]string{
		{"-b", "-i", "9999", file, "carol", "pw"},
		{"-b", file, "carol"},
		{file, "carol", "pw"},
		{"-D", "-c", file, "bob"},
		{"-D", file},
	} {
		if code, _, errs := runCmd(t, append([]string{"scram"}, args...)...); code != 2 {
			t.Errorf("scram %v: exit %d %q, want 2", args, code, errs)
		}
	}
	if _, _, errs := runCmd(t, "scram", "-b", "-i", "9999", file, "carol", "pw"); !strings.Contains(errs, "below the minimum of 10000") {
		t.Errorf("minimum iterations message: %q", errs)
	}
	if scramCheck(t, file, "carol", "pw") {
		t.Fatalf("carol added despite the refusal")
	}

	// A broken file is not rewritten; the error names the line.
	broken := filepath.Join(dir, "broken.txt")
	os.WriteFile(broken, []byte("# ok\nnot a credential\n"), 0o600)
	if code, _, errs := runCmd(t, "scram", "-b", "-i", it, broken, "dave", "pw"); code != 1 || !strings.Contains(errs, "line 2") {
		t.Fatalf("broken file: exit %d %q", code, errs)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestScramCommandPrompt(t *testing.T) {
	file := filepath.Join(t.TempDir(), "scram.txt")
	var answers []string
	var prompts []string
	origRead, origInteractive := scramReadPassword, scramInteractive
	scramReadPassword = func(prompt string, _ io.Writer) (string, error) {
		prompts = append(prompts, prompt)
		if len(answers) == 0 {
			return "", errors.New("no more input")
		}
		a := answers[0]
		answers = answers[1:]
		return a, nil
	}
	interactive := true
	scramInteractive = func() bool { return interactive }
	t.Cleanup(func() { scramReadPassword, scramInteractive = origRead, origInteractive })

	answers = []string{"s3cret", "s3cret"}
	if code, _, errs := runCmd(t, "scram", "-c", "-i", "10000", file, "erin"); code != 0 {
		t.Fatalf("interactive create: exit %d %q", code, errs)
	}
	if len(prompts) != 2 || !scramCheck(t, file, "erin", "s3cret") {
		t.Fatalf("prompts %q", prompts)
	}
	answers = []string{"one", "two"}
	if code, _, errs := runCmd(t, "scram", "-i", "10000", file, "erin"); code != 1 || !strings.Contains(errs, "do not match") {
		t.Fatalf("mismatched passwords: exit %d %q", code, errs)
	}
	answers = []string{"", ""}
	if code, _, errs := runCmd(t, "scram", "-i", "10000", file, "erin"); code != 1 || !strings.Contains(errs, "empty password") {
		t.Fatalf("empty password: exit %d %q", code, errs)
	}
	if !scramCheck(t, file, "erin", "s3cret") {
		t.Fatalf("a refused update changed the file")
	}
	// Not a terminal: one line, no confirmation.
	interactive = false
	prompts = nil
	answers = []string{"piped"}
	if code, _, errs := runCmd(t, "scram", "-i", "10000", file, "erin"); code != 0 || len(prompts) != 1 || !scramCheck(t, file, "erin", "piped") {
		t.Fatalf("password from a pipe: exit %d %q, %d prompts", code, errs, len(prompts))
	}
}
