package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdg-go/scram"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// SCRAMMethod is the MQTT 5 Authentication Method of SCRAM-SHA-256.
const SCRAMMethod = "SCRAM-SHA-256"

// SCRAM defaults.
const (
	DefaultSCRAMMaxInFlight = 1024
	DefaultSCRAMTimeout     = 30 * time.Second
)

// SCRAMConfig configures a SCRAM authenticator. The zero value plus File
// (or Credentials) is usable.
type SCRAMConfig struct {
	// File is the credential file (see ParseSCRAMCredentials); Reload
	// reads it again.
	File string
	// Credentials are used when File is empty.
	Credentials []SCRAMCredential
	// Secret keys the fake salts and keys given to unknown user names.
	// Set it (32 random bytes) to keep them stable across restarts; when
	// empty a random secret is drawn at start-up.
	Secret []byte
	// FakeIterations is the iteration count announced for unknown user
	// names. Default: the most common count of the loaded credentials,
	// or DefaultSCRAMIterations when there are none.
	FakeIterations int
	// MaxInFlight bounds the exchanges between client-first-message and
	// client-final-message; more get Server Busy (0x89). Default 1024.
	MaxInFlight int
	// Timeout bounds one exchange, from client-first-message to
	// client-final-message; a late client-final-message fails. Default
	// 30 s.
	Timeout time.Duration
}

// SCRAM authenticates clients with SCRAM-SHA-256 (RFC 5802, RFC 7677) over
// MQTT 5 enhanced authentication, Authentication Method "SCRAM-SHA-256":
//
//	CONNECT   (client-first-message)
//	AUTH 0x18 (server-first-message)   ← Continue authentication
//	AUTH 0x18 (client-final-message)
//	CONNACK   (server-final-message)   ← Success, or 0x86
//
// Re-authentication runs the same exchange from AUTH 0x19 and ends with
// AUTH 0x00 carrying the server-final-message. The SCRAM user name becomes
// the client's identity.
//
// An unknown user name is answered with a salt and iteration count derived
// from it (HMAC with the secret), so it looks like a known one, and fails
// only at the final step with Bad User Name or Password (0x86), exactly as
// a wrong password does. A failed re-authentication, or one under another
// user name, gets Not Authorized (0x87), which the broker sends in
// DISCONNECT.
type SCRAM struct {
	file      string
	secret    []byte
	fakeIters int
	timeout   time.Duration
	sem       chan struct{}
	creds     atomic.Pointer[scramCredSet]
	server    *scram.Server
}

type scramCredSet struct {
	users     map[string]SCRAMCredential
	fakeIters int
}

// scramExchange is the state of one exchange between its two steps.
type scramExchange struct {
	conv     *scram.ServerConversation
	deadline time.Time
	known    bool // the user name has a credential
	timer    *time.Timer
	once     sync.Once
	sem      chan struct{}
}

// release frees the exchange's in-flight slot, once: at its final step or
// when its timeout passes, whichever comes first.
func (x *scramExchange) release() {
	x.once.Do(func() { <-x.sem })
}

// finish stops the timeout and frees the slot.
func (x *scramExchange) finish() {
	if x.timer != nil {
		x.timer.Stop()
	}
	x.release()
}

// NewSCRAM returns a SCRAM authenticator with the credentials of cfg.File
// (or cfg.Credentials).
func NewSCRAM(cfg SCRAMConfig) (*SCRAM, error) {
	s := &SCRAM{
		file:      cfg.File,
		secret:    cfg.Secret,
		fakeIters: cfg.FakeIterations,
		timeout:   cfg.Timeout,
	}
	if len(s.secret) == 0 {
		s.secret = make([]byte, 32)
		rand.Read(s.secret)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultSCRAMTimeout
	}
	n := cfg.MaxInFlight
	if n <= 0 {
		n = DefaultSCRAMMaxInFlight
	}
	s.sem = make(chan struct{}, n)
	if s.fakeIters != 0 && s.fakeIters < minSCRAMIterations {
		return nil, errors.New("scram: FakeIterations below the minimum iteration count")
	}
	creds := cfg.Credentials
	if s.file != "" {
		var err error
		if creds, err = LoadSCRAMFile(s.file); err != nil {
			return nil, err
		}
	}
	if err := s.SetCredentials(creds); err != nil {
		return nil, err
	}
	srv, err := scram.SHA256.NewServer(s.lookup)
	if err != nil {
		return nil, err
	}
	s.server = srv
	return s, nil
}

// Reload reads the credential file again and swaps it in atomically:
// exchanges in progress finish with the credentials they started with. On
// error the current credentials stay.
func (s *SCRAM) Reload() error {
	if s.file == "" {
		return errors.New("scram: no credential file to reload")
	}
	creds, err := LoadSCRAMFile(s.file)
	if err != nil {
		return err
	}
	return s.SetCredentials(creds)
}

// Watch reloads the credential file whenever it changes (see WatchFiles),
// until ctx ends.
func (s *SCRAM) Watch(ctx context.Context) error {
	if s.file == "" {
		<-ctx.Done()
		return nil
	}
	return WatchFiles(ctx, []string{s.file}, s.Reload, nil)
}

// SetCredentials replaces the credential set atomically.
func (s *SCRAM) SetCredentials(creds []SCRAMCredential) error {
	set := &scramCredSet{users: make(map[string]SCRAMCredential, len(creds)), fakeIters: s.fakeIters}
	count := map[int]int{}
	for _, c := range creds {
		if _, dup := set.users[c.Username]; dup {
			return errors.New("scram: user " + c.Username + " listed twice")
		}
		if c.Iterations < minSCRAMIterations || len(c.Salt) == 0 || len(c.StoredKey) != sha256.Size || len(c.ServerKey) != sha256.Size {
			return errors.New("scram: invalid credential for user " + c.Username)
		}
		set.users[c.Username] = c
		count[c.Iterations]++
	}
	if set.fakeIters == 0 {
		set.fakeIters = DefaultSCRAMIterations
		best := 0
		for it, n := range count {
			if n > best || (n == best && it > set.fakeIters) {
				set.fakeIters, best = it, n
			}
		}
	}
	s.creds.Store(set)
	return nil
}

// InFlight returns the number of exchanges waiting for their final step.
func (s *SCRAM) InFlight() int { return len(s.sem) }

// Handles reports whether req belongs to this authenticator: the
// SCRAM-SHA-256 Authentication Method.
func (s *SCRAM) Handles(req *broker.AuthRequest) bool { return req.Method == SCRAMMethod }

// lookup returns the stored credential of user, or a fake one derived from
// the secret for an unknown user.
func (s *SCRAM) lookup(user string) (scram.StoredCredentials, error) {
	set := s.creds.Load()
	if c, ok := set.users[user]; ok {
		return scram.StoredCredentials{
			KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
			StoredKey:  c.StoredKey,
			ServerKey:  c.ServerKey,
		}, nil
	}
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(s.derive("salt", user)[:scramSaltLen]), Iters: set.fakeIters},
		StoredKey:  s.derive("stored-key", user),
		ServerKey:  s.derive("server-key", user),
	}, nil
}

func (s *SCRAM) derive(label, user string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("mqtt5 scram fake " + label + "\x00" + user))
	return m.Sum(nil)
}

// Authenticate implements broker.Authenticator.
func (s *SCRAM) Authenticate(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
	if req.Method != SCRAMMethod {
		return broker.AuthResult{Code: packet.BadAuthenticationMethod, Reason: "authentication method not supported"}
	}
	switch req.Step {
	case 0:
		return s.first(req)
	case 1:
		x, ok := req.State.(*scramExchange)
		if !ok {
			return broker.AuthResult{Code: packet.NotAuthorized, Reason: "SCRAM exchange state missing"}
		}
		return s.final(req, x)
	}
	if x, ok := req.State.(*scramExchange); ok {
		x.finish()
	}
	return broker.AuthResult{Code: packet.NotAuthorized, Reason: "SCRAM exchange already complete"}
}

func (s *SCRAM) first(req *broker.AuthRequest) broker.AuthResult {
	if x, ok := req.State.(*scramExchange); ok {
		x.finish() // a re-authentication abandoned midway
	}
	select {
	case s.sem <- struct{}{}:
	default:
		return broker.AuthResult{Code: packet.ServerBusy, Reason: "too many authentications in progress"}
	}
	x := &scramExchange{conv: s.server.NewConversation(), deadline: time.Now().Add(s.timeout), sem: s.sem}
	x.timer = time.AfterFunc(s.timeout, x.release)
	serverFirst, err := x.conv.Step(string(req.Data))
	if err != nil {
		x.finish()
		return broker.AuthResult{Code: packet.NotAuthorized, Reason: "malformed SCRAM client-first-message"}
	}
	if a := x.conv.AuthzID(); a != "" && a != x.conv.Username() {
		x.finish()
		return broker.AuthResult{Code: packet.NotAuthorized, Reason: "SCRAM authorization identity not supported"}
	}
	_, x.known = s.creds.Load().users[x.conv.Username()]
	return broker.AuthResult{Code: packet.ContinueAuthentication, Data: []byte(serverFirst), State: x}
}

func (s *SCRAM) final(req *broker.AuthRequest, x *scramExchange) broker.AuthResult {
	x.finish()
	fail := packet.BadUserNameOrPassword
	if req.Reauth {
		fail = packet.NotAuthorized // 0x86 is not a DISCONNECT reason code
	}
	if !time.Now().Before(x.deadline) {
		return broker.AuthResult{Code: packet.NotAuthorized, Reason: "SCRAM exchange timed out"}
	}
	serverFinal, err := x.conv.Step(string(req.Data))
	if err != nil || !x.conv.Valid() || !x.known {
		return broker.AuthResult{Code: fail, Reason: "authentication failed"}
	}
	user := x.conv.Username()
	if req.Reauth && req.Client != nil && user != req.Client.Username {
		return broker.AuthResult{Code: packet.NotAuthorized, Reason: "re-authentication under another user name"}
	}
	return broker.AuthResult{Code: packet.Success, Data: []byte(serverFinal), Username: user}
}
