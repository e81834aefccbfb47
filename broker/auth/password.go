package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/internal/filewatch"
	"github.com/mqtt5go/mqtt5/packet"
)

// PasswordEntry is one user of a password file.
type PasswordEntry struct {
	Username string
	Hash     *Argon2Hash
	Line     int // 1-based line number in the file
}

// ParsePasswordFile parses the content of a password file: one
// "username:$argon2id$v=19$m=..,t=..,p=..$salt$hash" per line; blank lines
// and lines starting with '#' (after optional spaces) are ignored. The
// user name is the text before the first ':' and may not be empty or start
// or end with white space. Errors name the line.
func ParsePasswordFile(data []byte) ([]PasswordEntry, error) {
	var entries []PasswordEntry
	seen := make(map[string]int)
	for n, line := range numberedLines(data) {
		s := strings.TrimSpace(line)
		if s == "" || s[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(s, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want username:$argon2id$..., found no ':'", n)
		}
		if user == "" || strings.TrimSpace(user) != user {
			return nil, fmt.Errorf("line %d: empty user name or user name with surrounding white space", n)
		}
		if prev, dup := seen[user]; dup {
			return nil, fmt.Errorf("line %d: user %q already defined on line %d", n, user, prev)
		}
		h, err := ParseArgon2(hash)
		if err != nil {
			return nil, fmt.Errorf("line %d: user %q: %w", n, user, err)
		}
		seen[user] = n
		entries = append(entries, PasswordEntry{Username: user, Hash: h, Line: n})
	}
	return entries, nil
}

// numberedLines yields the lines of data with their 1-based numbers,
// without the line terminators ("\n" or "\r\n").
func numberedLines(data []byte) func(yield func(int, string) bool) {
	return func(yield func(int, string) bool) {
		rest := data
		for n := 1; len(rest) > 0; n++ {
			line := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				line, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			line = bytes.TrimSuffix(line, []byte("\r"))
			if !yield(n, string(line)) {
				return
			}
		}
	}
}

// PasswordVerifier checks a user name and password; Plain uses one.
// VerifyPassword returns an error only when the check could not be made
// (for example ctx ended while waiting for a verification slot).
type PasswordVerifier interface {
	VerifyPassword(ctx context.Context, username string, password []byte) (bool, error)
}

// PasswordFileOptions configure a PasswordFile.
type PasswordFileOptions struct {
	// Logger receives load and reload messages. Default slog.Default().
	Logger *slog.Logger
	// MaxConcurrent bounds the Argon2 computations running at once;
	// further authentications wait for a slot (or for their context to
	// end). Default runtime.NumCPU().
	MaxConcurrent int
}

// PasswordFile authenticates CONNECT user names and passwords (MQTT 5.0 and
// 3.1.1) against a password file of Argon2id hashes (see
// ParsePasswordFile). It implements broker.Authenticator, Provider (it
// handles requests without an Authentication Method) and PasswordVerifier.
//
// Results: a matching password is Success; a wrong password, an unknown
// user, or a user name without a password is Bad User Name or Password
// (0x86; the broker sends 3.1.1 return code 4); a client with neither user
// name nor password is Not Authorized (0x87; return code 5); a request
// with an Authentication Method is Bad Authentication Method (0x8C).
//
// An unknown user is verified against a dummy hash with the parameters of
// the file's first entry, so that the answer takes as long as for a known
// user. It is safe for concurrent use, including Reload during
// authentications.
type PasswordFile struct {
	path string
	log  *slog.Logger
	sem  chan struct{}

	db       atomic.Pointer[passwordDB]
	reloadMu sync.Mutex

	// hashHook, when set, is called before each Argon2 computation.
	hashHook func()
}

type passwordDB struct {
	users map[string]*Argon2Hash
	dummy *Argon2Hash
	sum   [sha256.Size]byte
}

// NewPasswordFile loads the password file at path.
func NewPasswordFile(path string, opts PasswordFileOptions) (*PasswordFile, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = runtime.NumCPU()
	}
	p := &PasswordFile{path: path, log: opts.Logger, sem: make(chan struct{}, opts.MaxConcurrent)}
	if _, err := p.load(); err != nil {
		return nil, err
	}
	return p, nil
}

// Path returns the file's path.
func (p *PasswordFile) Path() string { return p.path }

// Users returns the number of users loaded.
func (p *PasswordFile) Users() int { return len(p.db.Load().users) }

// Reload reads the file again and, if it parses, replaces the users in one
// atomic step; otherwise the current users stay and the error is
// returned. Connected clients are not affected.
func (p *PasswordFile) Reload() error {
	changed, err := p.load()
	if err == nil && changed {
		p.log.Info("password file reloaded", "file", p.path, "users", p.Users())
	}
	return err
}

// load reads and swaps in the file; changed is false when the content is
// the one already loaded.
func (p *PasswordFile) load() (changed bool, err error) {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	data, err := readAuthFile(p.path, "password file", p.log, true)
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(data)
	if old := p.db.Load(); old != nil && old.sum == sum {
		return false, nil
	}
	entries, err := ParsePasswordFile(data)
	if err != nil {
		return false, fmt.Errorf("password file %s: %w", p.path, err)
	}
	db := &passwordDB{users: make(map[string]*Argon2Hash, len(entries)), sum: sum}
	params := DefaultArgon2Params
	for i, e := range entries {
		if i == 0 {
			params = e.Hash.Params
		}
		db.users[e.Username] = e.Hash
	}
	db.dummy = dummyHash(params)
	p.db.Store(db)
	return true, nil
}

// readAuthFile reads a password, ACL or mapping file; for a private one
// (holding secrets) it warns when group or others may read or write it.
func readAuthFile(path, what string, log *slog.Logger, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && private && runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		log.Warn(what+" is accessible by group or others; restrict it with chmod 600", "file", path, "mode", st.Mode().Perm().String())
	}
	data, err := readAllLimited(f, maxAuthFileSize)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return data, nil
}

// maxAuthFileSize bounds the password, ACL and fingerprint files.
const maxAuthFileSize = 64 << 20

func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// VerifyPassword reports whether password is username's. It waits for a
// verification slot (bounded by PasswordFileOptions.MaxConcurrent) and
// returns ctx's error if ctx ends first. Unknown users cost one Argon2
// computation like known ones.
func (p *PasswordFile) VerifyPassword(ctx context.Context, username string, password []byte) (bool, error) {
	db := p.db.Load()
	h, known := db.users[username]
	if !known {
		h = db.dummy
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-p.sem }()
	if p.hashHook != nil {
		p.hashHook()
	}
	ok := h.Verify(password)
	return ok && known, nil
}

// Handles reports whether req is a CONNECT without an Authentication
// Method, the only kind PasswordFile answers.
func (p *PasswordFile) Handles(req *broker.AuthRequest) bool { return req.Method == "" }

// Authenticate implements broker.Authenticator.
func (p *PasswordFile) Authenticate(ctx context.Context, req *broker.AuthRequest) broker.AuthResult {
	if req.Method != "" {
		return broker.AuthResult{Code: packet.BadAuthenticationMethod, Reason: "authentication method not supported"}
	}
	user := req.Client.Username
	switch {
	case user == "" && len(req.Password) == 0:
		return broker.AuthResult{Code: packet.NotAuthorized, Reason: "anonymous access is not allowed"}
	case user == "" || len(req.Password) == 0:
		return broker.AuthResult{Code: packet.BadUserNameOrPassword, Reason: "user name and password required"}
	}
	ok, err := p.VerifyPassword(ctx, user, req.Password)
	switch {
	case err != nil:
		return broker.AuthResult{Code: packet.ServerBusy, Reason: "authentication not completed: " + err.Error()}
	case !ok:
		return broker.AuthResult{Code: packet.BadUserNameOrPassword, Reason: "bad user name or password"}
	}
	return broker.AuthResult{Code: packet.Success}
}

// Watch reloads the file when it changes until ctx ends (see WatchFiles).
func (p *PasswordFile) Watch(ctx context.Context) error {
	return WatchFiles(ctx, []string{p.path}, p.Reload, p.log)
}

// WatchFiles calls reload when one of files changes, until ctx ends; then
// it returns nil. It returns an error only when it cannot start watching.
// It watches the directories of the files and of their
// symlink targets, so files replaced by rename (as the passwd command and
// most editors do) or switched by a symlink swap (as Kubernetes does for
// mounted secrets and config maps) are noticed, and also checks the files
// every second (package internal/filewatch). Changes are debounced; a
// failed reload is logged and the current content stays in use.
func WatchFiles(ctx context.Context, files []string, reload func() error, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	err := filewatch.Watch(ctx, files, true, func() {
		if err := reload(); err != nil {
			log.Error("reload failed; keeping the current content", "err", err)
		}
	}, func(err error) { log.Warn("watching auth files", "files", strings.Join(files, ", "), "err", err) })
	if err != nil {
		return fmt.Errorf("auth: watching %s: %w", strings.Join(files, ", "), err)
	}
	return nil
}
