package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testACL = `# test ACL
user * topic sensors/+ permission read
user alice topic alice/# permission readwrite
user alice topic alice/private permission deny
role ops topic ops/# permission readwrite
assign carol ops
user * topic clients/%c/# permission read
`

func writeACL(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(f, []byte(testACL), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestACLCheckCommand(t *testing.T) {
	f := writeACL(t)
	cases := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"alice", "alice/notes", "write"}, 0, "allowed: allowed by line 3\nrule: " + f + ":3: user alice topic alice/# permission readwrite\n"},
		{[]string{"alice", "alice/private", "read"}, 1, "denied: denied by line 4\nrule: " + f + ":4: user alice topic alice/private permission deny\n"},
		{[]string{"alice", "alice/#", "subscribe"}, 1, "denied: the filter includes topics denied by line 4\n"},
		{[]string{"bob", "sensors/+", "subscribe"}, 0, "allowed: allowed by line 2\n"},
		{[]string{"bob", "sensors/#", "subscribe"}, 1, "denied: no read rule covers the whole filter (default deny)\n"},
		{[]string{"bob", "$share/g/sensors/+", "subscribe"}, 0, "allowed: allowed by line 2\n"},
		{[]string{"bob", "sensors/x", "write"}, 1, "denied: no rule allows it (default deny)\n"},
		{[]string{"carol", "ops/deploy", "write"}, 0, "allowed: allowed by line 5\n"},
		{[]string{"--role", "ops", "bob", "ops/deploy", "write"}, 0, "allowed: allowed by line 5\n"},
		{[]string{"--client-id", "c7", "", "clients/c7/x", "read"}, 0, "allowed: allowed by line 7\n"},
		{[]string{"--client-id", "c+", "", "clients/c+/x", "read"}, 1, "denied: invalid topic name"},
	}
	for _, c := range cases {
		args := append([]string{"acl", "check", "--acl-file", f}, c.args...)
		code, out, errs := runCmd(t, args...)
		if code != c.code || !strings.HasPrefix(out, c.out) {
			t.Errorf("%v: exit %d, stdout %q stderr %q; want %d %q", c.args, code, out, errs, c.code, c.out)
		}
		if code == 1 && !strings.Contains(errs, "access denied") {
			t.Errorf("%v: stderr %q", c.args, errs)
		}
	}
}

func TestACLCheckErrors(t *testing.T) {
	f := writeACL(t)
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("user alice topic a permission maybe\n"), 0o600)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"acl"}, 2, "subcommand \"check\""},
		{[]string{"acl", "list"}, 2, "subcommand \"check\""},
		{[]string{"acl", "check", "alice", "a", "read"}, 2, "--acl-file is required"},
		{[]string{"acl", "check", "--acl-file", f, "alice", "a"}, 2, "want USER TOPIC ACCESS"},
		{[]string{"acl", "check", "--acl-file", f, "alice", "a", "publish"}, 2, "want read, write or subscribe"},
		{[]string{"acl", "check", "--acl-file", bad, "alice", "a", "read"}, 1, "line 1: permission \"maybe\""},
		{[]string{"acl", "check", "--acl-file", filepath.Join(t.TempDir(), "none"), "alice", "a", "read"}, 1, "no such file"},
	}
	for _, c := range cases {
		code, _, errs := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d %q, want %d %q", c.args, code, errs, c.code, c.want)
		}
	}
	if code, out, _ := runCmd(t, "help", "acl"); code != 0 || !strings.Contains(out, "Usage: mqtt5 acl check") {
		t.Errorf("help acl: %d %q", code, out)
	}
}
