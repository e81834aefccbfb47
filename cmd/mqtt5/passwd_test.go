package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/broker/auth"
)

// cheapArgon2 keeps the hashes of these tests fast.
var cheapArgon2 = []string{"-argon2-memory", "64", "-argon2-time", "1", "-argon2-threads", "1"}

func passwdArgs(args ...string) []string {
	return append(append([]string{"passwd"}, cheapArgon2...), args...)
}

// checkPasswords loads file and checks that each user:password pair
// verifies and that the users are exactly those.
func checkPasswords(t *testing.T, file string, pairs ...string) {
	t.Helper()
	pf, err := auth.NewPasswordFile(file, auth.PasswordFileOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if pf.Users() != len(pairs)/2 {
		t.Fatalf("%d users, want %d", pf.Users(), len(pairs)/2)
	}
	for i := 0; i < len(pairs); i += 2 {
		ok, err := pf.VerifyPassword(context.Background(), pairs[i], []byte(pairs[i+1]))
		if !ok || err != nil {
			t.Fatalf("user %s with password %q does not verify (%v)", pairs[i], pairs[i+1], err)
		}
	}
}

func TestPasswdCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")

	// Without -c the file must exist.
	if code, _, errs := runStdin(t, "pw\n", passwdArgs(file, "alice")...); code != 1 || !strings.Contains(errs, "does not exist (use -c") {
		t.Fatalf("missing file: exit %d %q", code, errs)
	}
	// Create with -c -b.
	if code, _, errs := runCmd(t, passwdArgs("-c", "-b", file, "alice", "one")...); code != 0 {
		t.Fatalf("create: exit %d %q", code, errs)
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	checkPasswords(t, file, "alice", "one")

	// Comments and other lines are kept; users are added at the end and
	// updated in place.
	data, _ := os.ReadFile(file)
	os.WriteFile(file, append([]byte("# managed by ops\n\n"), data...), 0o644)
	if code, _, errs := runCmd(t, passwdArgs("-b", file, "bob", "two")...); code != 0 {
		t.Fatalf("add: exit %d %q", code, errs)
	}
	// Non-terminal standard input: the first line is the password.
	if code, _, errs := runStdin(t, "three words here\r\nignored\n", passwdArgs(file, "carol")...); code != 0 {
		t.Fatalf("add from stdin: exit %d %q", code, errs)
	}
	if code, _, errs := runCmd(t, passwdArgs("-b", file, "alice", "uno")...); code != 0 {
		t.Fatalf("update: exit %d %q", code, errs)
	}
	checkPasswords(t, file, "alice", "uno", "bob", "two", "carol", "three words here")
	data, _ = os.ReadFile(file)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 5 || lines[0] != "# managed by ops" || lines[1] != "" ||
		!strings.HasPrefix(lines[2], "alice:$argon2id$v=19$m=64,t=1,p=1$") || !strings.HasPrefix(lines[3], "bob:") || !strings.HasPrefix(lines[4], "carol:") {
		t.Fatalf("file:\n%s", data)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode after update %v", st.Mode())
	}

	// Delete.
	if code, _, errs := runCmd(t, "passwd", "-D", file, "bob"); code != 0 {
		t.Fatalf("delete: exit %d %q", code, errs)
	}
	checkPasswords(t, file, "alice", "uno", "carol", "three words here")
	if code, _, errs := runCmd(t, "passwd", "-D", file, "bob"); code != 1 || !strings.Contains(errs, `user "bob" not found`) {
		t.Fatalf("delete unknown: exit %d %q", code, errs)
	}
	data, _ = os.ReadFile(file)
	if !strings.HasPrefix(string(data), "# managed by ops\n\n") {
		t.Fatalf("comments lost:\n%s", data)
	}

	// -c overwrites.
	if code, _, errs := runCmd(t, passwdArgs("-c", "-b", file, "dave", "four")...); code != 0 {
		t.Fatalf("overwrite: exit %d %q", code, errs)
	}
	checkPasswords(t, file, "dave", "four")

	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries", len(entries))
	}
}

func TestPasswdErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")
	if code, _, errs := runCmd(t, passwdArgs("-c", "-b", file, "alice", "one")...); code != 0 {
		t.Fatalf("create: exit %d %q", code, errs)
	}
	cases := []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"", []string{"-D", "-c", file, "alice"}, 2, "-D cannot be combined"},
		{"", []string{"-b", file, "alice"}, 2, "want FILE USER PASSWORD with -b"},
		{"", []string{file, "alice", "extra"}, 2, "pass -b"},
		{"", []string{file}, 2, "want FILE USER"},
		{"", []string{"-b", file, "al:ice", "pw"}, 2, "may not contain ':'"},
		{"", []string{"-b", file, " alice", "pw"}, 2, "white space"},
		{"", []string{"-b", file, "#alice", "pw"}, 2, "may not start with '#'"},
		{"", []string{"-b", file, "alice", ""}, 1, "empty password"},
		{"", []string{file, "alice"}, 1, "no password on standard input"},
		{"\n", []string{file, "alice"}, 1, "empty password"},
		{"", []string{"-argon2-threads", "0", "-b", file, "alice", "pw"}, 1, "parallelism"},
		{"", []string{"-argon2-threads", "300", "-b", file, "alice", "pw"}, 2, "out of range"},
	}
	for _, c := range cases {
		args := append([]string{"passwd"}, c.args...)
		if c.args[0] != "-argon2-threads" {
			args = passwdArgs(c.args...)
		}
		code, _, errs := runStdin(t, c.stdin, args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d %q, want %d %q", c.args, code, errs, c.code, c.want)
		}
	}
	// A broken file is not rewritten.
	os.WriteFile(file, []byte("alice:nohash\n"), 0o600)
	if code, _, errs := runCmd(t, passwdArgs("-b", file, "bob", "pw")...); code != 1 || !strings.Contains(errs, "line 1") {
		t.Fatalf("broken file: exit %d %q", code, errs)
	}
	if data, _ := os.ReadFile(file); string(data) != "alice:nohash\n" {
		t.Fatalf("broken file changed: %q", data)
	}
	// The default parameters are the documented ones.
	if code, out, _ := runCmd(t, "help", "passwd"); code != 0 || !strings.Contains(out, "-argon2-memory uint") || !strings.Contains(out, "(default 65536)") {
		t.Fatalf("help: %d %q", code, out)
	}
}

// A password file reached through a symbolic link is updated in place of
// its target; the link stays.
func TestPasswdSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real")
	link := filepath.Join(dir, "link")
	if code, _, errs := runCmd(t, passwdArgs("-c", "-b", target, "alice", "one")...); code != 0 {
		t.Fatalf("create: %d %q", code, errs)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Skip("symbolic links not available:", err)
	}
	if code, _, errs := runCmd(t, passwdArgs("-b", link, "bob", "two")...); code != 0 {
		t.Fatalf("add via link: %d %q", code, errs)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the link was replaced by a file")
	}
	checkPasswords(t, target, "alice", "one", "bob", "two")
}
