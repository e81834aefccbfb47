package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// fxTimeout bounds the waits of these tests: a deadline for conditions
// that normally hold within milliseconds, not a timing assertion.
const fxTimeout = 20 * time.Second

// fxCI reports whether the tests run in CI, where missing peers are errors.
func fxCI() bool { return os.Getenv("CI") == "true" }

// fxMissing fails under CI and skips otherwise: a peer program is absent.
func fxMissing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if fxCI() {
		t.Fatalf("%s (CI=true: interop peers are required; run scripts/install-peers.sh)", msg)
	}
	t.Skipf("%s; skipping (run scripts/install-peers.sh to install the interop peers)", msg)
}

// fxWaitFor polls cond until it holds or fxTimeout passes.
func fxWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(fxTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fxWriteFile writes content to dir/name with mode 0600 and returns the
// path.
func fxWriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fxReplaceFile replaces path by rename, as editors and the passwd command
// do.
func fxReplaceFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fxPasswords returns password file content for user:password pairs.
func fxPasswords(t testing.TB, pairs ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# test users\n\n")
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, "%s:%s\n", pairs[i], fxHash(t, pairs[i+1]))
	}
	return b.String()
}

// fxLogger returns a logger writing into a buffer.
func fxLogger() (*slog.Logger, *fxBuffer) {
	b := &fxBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

type fxBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *fxBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *fxBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// fxPasswordFile writes a password file and loads it.
func fxPasswordFile(t testing.TB, opts PasswordFileOptions, pairs ...string) *PasswordFile {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	path := fxWriteFile(t, t.TempDir(), "passwd", fxPasswords(t, pairs...))
	p, err := NewPasswordFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fxConnect is an AuthRequest for a CONNECT.
func fxConnect(v packet.Version, user, password string) *broker.AuthRequest {
	r := &broker.AuthRequest{Client: &broker.ClientInfo{ClientID: "c1", Username: user, Version: v,
		RemoteAddr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}}}
	if password != "" {
		r.Password = []byte(password)
	}
	return r
}

func TestParsePasswordFile(t *testing.T) {
	h := fxHash(t, "pw")
	good := "# comment\n\n  # indented comment\nalice:" + h + "\r\nbob:" + h + "\n   carol:" + h
	entries, err := ParsePasswordFile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s@%d", e.Username, e.Line))
	}
	if strings.Join(got, " ") != "alice@4 bob@5 carol@6" {
		t.Fatalf("entries %v", got)
	}
	if entries, err := ParsePasswordFile(nil); err != nil || len(entries) != 0 {
		t.Fatalf("empty file: %v %v", entries, err)
	}
	bad := []struct{ content, want string }{
		{"# c\nalice " + h + "\n", "line 2: want username:$argon2id$..."},
		{":" + h + "\n", "line 1: empty user name"},
		{"alice :" + h + "\n", "line 1: empty user name or user name with surrounding white space"},
		{"alice:" + h + "\n\nalice:" + h + "\n", `line 3: user "alice" already defined on line 1`},
		{"alice:$2y$10$abcdefghijklmnopqrstuv\n", `line 1: user "alice": argon2id: not a PHC string`},
		{"alice:$argon2id$v=19$m=999999999,t=1,p=1$c29tZXNhbHQ$c29tZXNhbHRzb21lc2FsdA\n", "line 1: user \"alice\": argon2id: memory cost"},
	}
	for _, c := range bad {
		_, err := ParsePasswordFile([]byte(c.content))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParsePasswordFile(%q) = %v, want an error containing %q", c.content, err, c.want)
		}
	}
}

func TestPasswordFileAuthenticate(t *testing.T) {
	p := fxPasswordFile(t, PasswordFileOptions{}, "alice", "wonderland", "bob", "builder")
	if p.Users() != 2 {
		t.Fatalf("%d users", p.Users())
	}
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		cases := []struct {
			name     string
			req      *broker.AuthRequest
			want     packet.ReasonCode
			hashRuns int64
		}{
			{"right password", fxConnect(v, "alice", "wonderland"), packet.Success, 1},
			{"other user", fxConnect(v, "bob", "builder"), packet.Success, 1},
			{"wrong password", fxConnect(v, "alice", "builder"), packet.BadUserNameOrPassword, 1},
			{"unknown user", fxConnect(v, "mallory", "wonderland"), packet.BadUserNameOrPassword, 1},
			{"no password", fxConnect(v, "alice", ""), packet.BadUserNameOrPassword, 0},
			{"password without user", fxConnect(v, "", "wonderland"), packet.BadUserNameOrPassword, 0},
			{"anonymous", fxConnect(v, "", ""), packet.NotAuthorized, 0},
		}
		if v == packet.V5 {
			m := fxConnect(v, "alice", "wonderland")
			m.Method = "SCRAM-SHA-1"
			cases = append(cases, struct {
				name     string
				req      *broker.AuthRequest
				want     packet.ReasonCode
				hashRuns int64
			}{"enhanced auth method", m, packet.BadAuthenticationMethod, 0})
		}
		for _, c := range cases {
			var runs atomic.Int64
			p.hashHook = func() { runs.Add(1) }
			res := p.Authenticate(context.Background(), c.req)
			if res.Code != c.want {
				t.Errorf("v%d %s: code %v, want %v (%s)", v, c.name, res.Code, c.want, res.Reason)
			}
			if runs.Load() != c.hashRuns {
				t.Errorf("v%d %s: %d Argon2 computations, want %d", v, c.name, runs.Load(), c.hashRuns)
			}
			if res.Code != packet.Success && res.Reason == "" {
				t.Errorf("v%d %s: no reason", v, c.name)
			}
		}
	}
	p.hashHook = nil
	if !p.Handles(fxConnect(packet.V5, "a", "b")) {
		t.Error("does not handle a CONNECT without method")
	}
	m := fxConnect(packet.V5, "a", "b")
	m.Method = "PLAIN"
	if p.Handles(m) {
		t.Error("handles a CONNECT with a method")
	}
}

// An unknown user costs an Argon2 computation with the parameters of the
// file's hashes, like a known user.
func TestPasswordFileUnknownUserUsesDummyHash(t *testing.T) {
	p := fxPasswordFile(t, PasswordFileOptions{}, "alice", "wonderland")
	db := p.db.Load()
	if db.dummy == nil || db.dummy.Params != db.users["alice"].Params {
		t.Fatalf("dummy params %+v, user params %+v", db.dummy.Params, db.users["alice"].Params)
	}
	var runs atomic.Int64
	p.hashHook = func() { runs.Add(1) }
	for i := range 3 {
		ok, err := p.VerifyPassword(context.Background(), fmt.Sprint("nobody", i), []byte("wonderland"))
		if ok || err != nil {
			t.Fatalf("unknown user: %v %v", ok, err)
		}
	}
	if runs.Load() != 3 {
		t.Fatalf("%d Argon2 computations for 3 unknown users", runs.Load())
	}
	// A file without users still has a dummy hash (default parameters).
	empty := fxPasswordFile(t, PasswordFileOptions{})
	if d := empty.db.Load().dummy; d == nil || d.Params != DefaultArgon2Params {
		t.Fatalf("empty file dummy %+v", d)
	}
}

// At most MaxConcurrent Argon2 computations run at once; the others wait.
func TestPasswordFileConcurrencyBound(t *testing.T) {
	path := fxWriteFile(t, t.TempDir(), "passwd", fxPasswords(t, "alice", "wonderland"))
	synctest.Test(t, func(t *testing.T) {
		p, err := NewPasswordFile(path, PasswordFileOptions{MaxConcurrent: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		var active, maxActive, entered atomic.Int64
		p.hashHook = func() {
			n := active.Add(1)
			entered.Add(1)
			for {
				m := maxActive.Load()
				if n <= m || maxActive.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			active.Add(-1)
		}
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				if ok, err := p.VerifyPassword(context.Background(), "alice", []byte("wonderland")); !ok || err != nil {
					t.Errorf("verify: %v %v", ok, err)
				}
			})
		}
		synctest.Wait() // every goroutine is blocked: in the hook or on the semaphore
		if entered.Load() != 2 {
			t.Fatalf("%d computations started with a bound of 2", entered.Load())
		}
		close(release)
		wg.Wait()
		if entered.Load() != 6 || maxActive.Load() != 2 {
			t.Fatalf("entered %d, max concurrent %d", entered.Load(), maxActive.Load())
		}
	})
}

// A client waiting for a verification slot gives up when its context
// ends, with Server Busy.
func TestPasswordFileWaitCanceled(t *testing.T) {
	p := fxPasswordFile(t, PasswordFileOptions{MaxConcurrent: 1}, "alice", "wonderland")
	inHook, release := make(chan struct{}), make(chan struct{})
	p.hashHook = func() { inHook <- struct{}{}; <-release }
	done := make(chan broker.AuthResult)
	go func() { done <- p.Authenticate(context.Background(), fxConnect(packet.V5, "alice", "wonderland")) }()
	<-inHook
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := p.Authenticate(ctx, fxConnect(packet.V5, "alice", "wonderland"))
	if res.Code != packet.ServerBusy {
		t.Fatalf("canceled wait: %v (%s)", res.Code, res.Reason)
	}
	close(release)
	if res := <-done; res.Code != packet.Success {
		t.Fatalf("first authentication: %v", res.Code)
	}
}

func TestPasswordFileReload(t *testing.T) {
	log, logs := fxLogger()
	dir := t.TempDir()
	path := fxWriteFile(t, dir, "passwd", fxPasswords(t, "alice", "one"))
	p, err := NewPasswordFile(path, PasswordFileOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Authentications run while the file is reloaded (race detector).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			p.Authenticate(ctx, fxConnect(packet.V5, "alice", "one"))
		}
	})
	fxReplaceFile(t, path, fxPasswords(t, "alice", "two", "bob", "three"))
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if p.Users() != 2 || !strings.Contains(logs.String(), "password file reloaded") {
		t.Fatalf("users %d; log %s", p.Users(), logs.String())
	}
	if res := p.Authenticate(ctx, fxConnect(packet.V5, "alice", "two")); res.Code != packet.Success {
		t.Fatalf("new password: %v", res.Code)
	}
	if res := p.Authenticate(ctx, fxConnect(packet.V5, "alice", "one")); res.Code != packet.BadUserNameOrPassword {
		t.Fatalf("old password: %v", res.Code)
	}
	// A broken file keeps the users in force.
	fxReplaceFile(t, path, "bob:nothash\n")
	if err := p.Reload(); err == nil || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), path) {
		t.Fatalf("reload of a broken file: %v", err)
	}
	if res := p.Authenticate(ctx, fxConnect(packet.V5, "bob", "three")); res.Code != packet.Success {
		t.Fatalf("after failed reload: %v", res.Code)
	}
	os.Remove(path)
	if err := p.Reload(); err == nil {
		t.Fatal("reload of a missing file succeeded")
	}
	if _, err := NewPasswordFile(filepath.Join(dir, "missing"), PasswordFileOptions{}); err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestPasswordFileModeWarning(t *testing.T) {
	dir := t.TempDir()
	content := fxPasswords(t, "alice", "one")
	for _, c := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o400, false}, {0o640, true}, {0o604, true}} {
		path := fxWriteFile(t, dir, "passwd", content)
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		log, logs := fxLogger()
		if _, err := NewPasswordFile(path, PasswordFileOptions{Logger: log}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "accessible by group or others"); got != c.warn {
			t.Errorf("mode %v: warning %v, want %v; log %q", c.mode, got, c.warn, logs.String())
		}
		os.Remove(path)
	}
}

// Watch reloads a file replaced by rename, and keeps the users when the
// new content does not parse.
func TestPasswordFileWatch(t *testing.T) {
	log, logs := fxLogger()
	path := fxWriteFile(t, t.TempDir(), "passwd", fxPasswords(t, "alice", "one"))
	p, err := NewPasswordFile(path, PasswordFileOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Watch(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	fxReplaceFile(t, path, fxPasswords(t, "alice", "one", "bob", "two"))
	fxWaitFor(t, "the watcher to load two users", func() bool { return p.Users() == 2 })
	fxReplaceFile(t, path, "garbage\n")
	fxWaitFor(t, "the failed reload to be logged", func() bool { return strings.Contains(logs.String(), "reload failed") })
	if p.Users() != 2 {
		t.Fatalf("users after a broken file: %d", p.Users())
	}
	fxReplaceFile(t, path, fxPasswords(t, "carol", "three"))
	fxWaitFor(t, "the watcher to load carol", func() bool {
		ok, _ := p.VerifyPassword(context.Background(), "carol", []byte("three"))
		return ok
	})
}

func TestWatchFilesBadDirectory(t *testing.T) {
	err := WatchFiles(context.Background(), []string{filepath.Join(t.TempDir(), "no", "such", "file")}, func() error { return nil }, nil)
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("WatchFiles on a missing directory: %v", err)
	}
}
