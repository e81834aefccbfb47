package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	"github.com/xdg-go/scram"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// The tests derive credentials with 4096 PBKDF2 iterations (the RFC 7677
// minimum, also the xdg-go client's) to keep them fast.
func init() { minSCRAMIterations = 4096 }

const sjIters = 4096

// sjTimeout bounds the waits of these tests; it is a deadline for things
// that normally happen within milliseconds, not a timing assertion.
const sjTimeout = 20 * time.Second

func sjCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), sjTimeout)
	t.Cleanup(cancel)
	return ctx
}

func sjCred(t testing.TB, user, pass string) SCRAMCredential {
	t.Helper()
	c, err := NewSCRAMCredential(user, pass, sjIters)
	if err != nil {
		t.Fatalf("NewSCRAMCredential: %v", err)
	}
	return c
}

func sjSCRAM(t testing.TB, cfg SCRAMConfig) *SCRAM {
	t.Helper()
	s, err := NewSCRAM(cfg)
	if err != nil {
		t.Fatalf("NewSCRAM: %v", err)
	}
	return s
}

// sjStartBroker serves a broker on a loopback port until the test ends
// and returns its address.
func sjStartBroker(t *testing.T, cfg broker.Config) string {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.SysInterval = -1
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(cfg)
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), sjTimeout)
		defer cancel()
		b.Shutdown(ctx)
		<-errc
	})
	return l.Addr().String()
}

// sjSeen is an authorizer that records the identity and roles of each
// publishing client, by client identifier.
type sjSeen struct {
	mu   sync.Mutex
	seen map[string][2]string
}

func (a *sjSeen) CanPublish(_ context.Context, c *broker.ClientInfo, _ string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[string][2]string{}
	}
	a.seen[c.ClientID] = [2]string{c.Username, c.Attributes["roles"]}
	return true
}

func (a *sjSeen) CanSubscribe(context.Context, *broker.ClientInfo, string) bool { return true }

func (a *sjSeen) get(id string) [2]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[id]
}

// sjConnect connects our client to addr; on success it is disconnected
// when the test ends.
func sjConnect(t *testing.T, addr string, o client.Options) (*client.Client, error) {
	t.Helper()
	o.Server = "mqtt://" + addr
	o.DisableReconnect = true
	o.ConnectTimeout = sjTimeout
	c, err := client.New(o)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	if _, err := c.Connect(sjCtx(t)); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), sjTimeout)
		defer cancel()
		c.Disconnect(ctx, packet.NormalDisconnection, 0)
	})
	return c, nil
}

// sjIdentity publishes with QoS 1 (acknowledged after the authorizer ran)
// and returns the identity and roles the broker holds for the client.
func sjIdentity(t *testing.T, c *client.Client, seen *sjSeen, id string) [2]string {
	t.Helper()
	if err := c.Publish(sjCtx(t), &client.Message{Topic: "who/am/i", Payload: []byte("x"), QoS: 1}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	return seen.get(id)
}

func sjCode(err error) packet.ReasonCode {
	var re *client.ReasonError
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

func TestSCRAMCredentialFormatParse(t *testing.T) {
	a := sjCred(t, "alice", "secret")
	b := sjCred(t, "bob:with:colons", "other")
	var buf bytes.Buffer
	buf.WriteString("# SCRAM credentials\n\n")
	if err := WriteSCRAMCredentials(&buf, []SCRAMCredential{a, b}); err != nil {
		t.Fatal(err)
	}
	got, err := ParseSCRAMCredentials(&buf)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if len(got) != 2 || got[0].String() != a.String() || got[1].String() != b.String() || got[1].Username != "bob:with:colons" {
		t.Fatalf("round trip: got %v", got)
	}
	if len(a.Salt) != scramSaltLen || a.Iterations != sjIters || len(a.StoredKey) != 32 || len(a.ServerKey) != 32 {
		t.Fatalf("credential shape: %+v", a)
	}
	// The stored keys are those a SCRAM client derives from the password.
	cl, _ := scram.SHA256.NewClient("alice", "secret", "")
	sc := cl.GetStoredCredentials(scram.KeyFactors{Salt: string(a.Salt), Iters: a.Iterations})
	if !bytes.Equal(sc.StoredKey, a.StoredKey) || !bytes.Equal(sc.ServerKey, a.ServerKey) {
		t.Fatalf("stored keys differ from the client's derivation")
	}

	line := a.String()
	f := strings.Split(line, ":")
	bad := []struct{ text, want string }{
		{"alice:c2FsdA==:4096:xx", "line 2: want username:salt"},
		{strings.Join([]string{"alice", "!!", f[2], f[3], f[4]}, ":"), "line 2: salt"},
		{strings.Join([]string{"alice", f[1], "many", f[3], f[4]}, ":"), "line 2: iteration count"},
		{strings.Join([]string{"alice", f[1], "1000", f[3], f[4]}, ":"), "line 2: 1000 iterations is below the minimum"},
		{strings.Join([]string{"alice", f[1], f[2], "c2hvcnQ=", f[4]}, ":"), "line 2: stored key"},
		{strings.Join([]string{"alice", f[1], f[2], f[3], "c2hvcnQ="}, ":"), "line 2: server key"},
		{strings.Join([]string{"", f[1], f[2], f[3], f[4]}, ":"), "line 2: scram: empty user name"},
		{line, "line 2: user \"alice\" already defined on line 1"},
	}
	for _, tc := range bad {
		_, err := ParseSCRAMCredentials(strings.NewReader(line + "\n" + tc.text + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parse %q: error %v, want %q", tc.text, err, tc.want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "creds")
	os.WriteFile(path, []byte(line+"\nbroken\n"), 0o600)
	if _, err := LoadSCRAMFile(path); err == nil || !strings.Contains(err.Error(), path+": line 2") {
		t.Errorf("LoadSCRAMFile: error %v, want it to name the file and line 2", err)
	}
	if _, err := NewSCRAMCredential("alice", "pw", 1000); err == nil {
		t.Errorf("NewSCRAMCredential accepted 1000 iterations")
	}
	for _, u := range []string{"", "#x", " x", "a\nb"} {
		if _, err := NewSCRAMCredential(u, "pw", sjIters); err == nil {
			t.Errorf("NewSCRAMCredential accepted user name %q", u)
		}
	}
}

// sjStep0 sends the client-first-message of conv.
func sjStep0(t *testing.T, s *SCRAM, conv *scram.ClientConversation, info *broker.ClientInfo, reauth bool) (broker.AuthResult, string) {
	t.Helper()
	first, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	res := s.Authenticate(context.Background(), &broker.AuthRequest{Client: info, Method: SCRAMMethod, Data: []byte(first), Reauth: reauth})
	return res, first
}

// sjExchange runs a whole exchange and returns the final result.
func sjExchange(t *testing.T, s *SCRAM, user, pass string, info *broker.ClientInfo, reauth bool) (broker.AuthResult, *scram.ClientConversation) {
	t.Helper()
	cl, err := scram.SHA256.NewClient(user, pass, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := cl.NewConversation()
	res, _ := sjStep0(t, s, conv, info, reauth)
	if res.Code != packet.ContinueAuthentication {
		t.Fatalf("step 0: %v (%s), want Continue authentication", res.Code, res.Reason)
	}
	final, err := conv.Step(string(res.Data))
	if err != nil {
		t.Fatalf("client-final: %v", err)
	}
	return s.Authenticate(context.Background(), &broker.AuthRequest{Client: info, Method: SCRAMMethod, Data: []byte(final), Step: 1, Reauth: reauth, State: res.State}), conv
}

func TestSCRAMExchange(t *testing.T) {
	s := sjSCRAM(t, SCRAMConfig{Credentials: []SCRAMCredential{sjCred(t, "alice", "secret")}})
	info := &broker.ClientInfo{ClientID: "c1"}

	res, conv := sjExchange(t, s, "alice", "secret", info, false)
	if res.Code != packet.Success || res.Username != "alice" {
		t.Fatalf("success: %v %q (%s)", res.Code, res.Username, res.Reason)
	}
	if _, err := conv.Step(string(res.Data)); err != nil || !conv.Valid() {
		t.Fatalf("server-final not accepted by the client: %v", err)
	}

	wrong, _ := sjExchange(t, s, "alice", "guess", info, false)
	if wrong.Code != packet.BadUserNameOrPassword {
		t.Fatalf("wrong password: %v, want 0x86", wrong.Code)
	}
	if s.InFlight() != 0 {
		t.Fatalf("%d exchanges in flight after completion", s.InFlight())
	}

	// Re-authentication as the same user, then as another one.
	info.Username = "alice"
	if res, _ := sjExchange(t, s, "alice", "secret", info, true); res.Code != packet.Success {
		t.Fatalf("re-authentication: %v (%s)", res.Code, res.Reason)
	}
	if res, _ := sjExchange(t, s, "alice", "guess", info, true); res.Code != packet.NotAuthorized {
		t.Fatalf("failed re-authentication: %v, want 0x87 (a DISCONNECT reason code)", res.Code)
	}
	s.SetCredentials([]SCRAMCredential{sjCred(t, "alice", "secret"), sjCred(t, "bob", "pw")})
	if res, _ := sjExchange(t, s, "bob", "pw", info, true); res.Code != packet.NotAuthorized {
		t.Fatalf("re-authentication as another user: %v, want 0x87", res.Code)
	}

	// Another method, and a malformed client-first-message.
	if r := s.Authenticate(context.Background(), &broker.AuthRequest{Client: info, Method: "PLAIN"}); r.Code != packet.BadAuthenticationMethod {
		t.Fatalf("other method: %v", r.Code)
	}
	if r := s.Authenticate(context.Background(), &broker.AuthRequest{Client: info, Method: SCRAMMethod, Data: []byte("garbage")}); r.Code != packet.NotAuthorized {
		t.Fatalf("malformed client-first: %v", r.Code)
	}
	if !s.Handles(&broker.AuthRequest{Method: SCRAMMethod}) || s.Handles(&broker.AuthRequest{}) {
		t.Fatalf("Handles")
	}
	if s.InFlight() != 0 {
		t.Fatalf("%d exchanges in flight", s.InFlight())
	}
}

// TestSCRAMUnknownUser checks that an unknown user name cannot be told
// from a known one: a plausible, stable salt and the usual iteration
// count, then failure at the final step with the same code and reason as
// a wrong password.
func TestSCRAMUnknownUser(t *testing.T) {
	s := sjSCRAM(t, SCRAMConfig{Credentials: []SCRAMCredential{sjCred(t, "alice", "secret")}})
	info := &broker.ClientInfo{ClientID: "c"}
	serverFirst := func(user string) (salt string, iters string) {
		cl, _ := scram.SHA256.NewClient(user, "x", "")
		res, _ := sjStep0(t, s, cl.NewConversation(), info, false)
		if res.Code != packet.ContinueAuthentication {
			t.Fatalf("%s step 0: %v", user, res.Code)
		}
		res.State.(*scramExchange).finish()
		for _, f := range strings.Split(string(res.Data), ",") {
			switch {
			case strings.HasPrefix(f, "s="):
				salt = f[2:]
			case strings.HasPrefix(f, "i="):
				iters = f[2:]
			}
		}
		return salt, iters
	}
	aliceSalt, aliceIters := serverFirst("alice")
	ghostSalt, ghostIters := serverFirst("ghost")
	ghostSalt2, _ := serverFirst("ghost")
	otherSalt, _ := serverFirst("phantom")
	if ghostIters != aliceIters {
		t.Errorf("unknown user gets %s iterations, known user %s", ghostIters, aliceIters)
	}
	raw, err := base64.StdEncoding.DecodeString(ghostSalt)
	if err != nil || len(raw) != len(mustB64(t, aliceSalt)) {
		t.Errorf("unknown user salt %q does not look like a real one (%q)", ghostSalt, aliceSalt)
	}
	if ghostSalt != ghostSalt2 || ghostSalt == otherSalt {
		t.Errorf("fake salts must be stable per user and differ between users: %q %q %q", ghostSalt, ghostSalt2, otherSalt)
	}

	unknown, _ := sjExchange(t, s, "ghost", "secret", info, false)
	wrong, _ := sjExchange(t, s, "alice", "wrong", info, false)
	if unknown.Code != packet.BadUserNameOrPassword || unknown.Code != wrong.Code || unknown.Reason != wrong.Reason || unknown.Data != nil || wrong.Data != nil {
		t.Fatalf("unknown user: %v %q; wrong password: %v %q; want identical 0x86 failures", unknown.Code, unknown.Reason, wrong.Code, wrong.Reason)
	}
}

func mustB64(t *testing.T, s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSCRAMReplayAndTamper replays a recorded client-final-message in a new
// exchange, and tampers with the nonce and the proof.
func TestSCRAMReplayAndTamper(t *testing.T) {
	s := sjSCRAM(t, SCRAMConfig{Credentials: []SCRAMCredential{sjCred(t, "alice", "secret")}})
	info := &broker.ClientInfo{ClientID: "c"}
	cl, _ := scram.SHA256.NewClient("alice", "secret", "")
	cl.WithNonceGenerator(func() string { return "fixedclientnonce" })

	// A recorded successful exchange.
	conv := cl.NewConversation()
	res, _ := sjStep0(t, s, conv, info, false)
	recorded, _ := conv.Step(string(res.Data))
	if r := s.Authenticate(context.Background(), &broker.AuthRequest{Client: info, Method: SCRAMMethod, Data: []byte(recorded), Step: 1, State: res.State}); r.Code != packet.Success {
		t.Fatalf("recorded exchange: %v", r.Code)
	}

	final := func(mutate func(string) string) broker.AuthResult {
		conv := cl.NewConversation() // same client nonce: same client-first-message
		res, _ := sjStep0(t, s, conv, info, false)
		msg, err := conv.Step(string(res.Data))
		if err != nil {
			t.Fatal(err)
		}
		return s.Authenticate(context.Background(), &broker.AuthRequest{Client: info, Method: SCRAMMethod, Data: []byte(mutate(msg)), Step: 1, State: res.State})
	}
	if r := final(func(string) string { return recorded }); r.Code != packet.BadUserNameOrPassword {
		t.Errorf("replayed client-final-message: %v, want 0x86", r.Code)
	}
	if r := final(func(m string) string {
		return strings.Replace(m, "r=fixedclientnonce", "r=fixedclientnonceX", 1)
	}); r.Code != packet.BadUserNameOrPassword {
		t.Errorf("mismatched nonce: %v, want 0x86", r.Code)
	}
	if r := final(func(m string) string {
		i := strings.LastIndex(m, ",p=")
		proof := mustB64(t, m[i+3:])
		proof[0] ^= 1
		return m[:i+3] + base64.StdEncoding.EncodeToString(proof)
	}); r.Code != packet.BadUserNameOrPassword {
		t.Errorf("tampered proof: %v, want 0x86", r.Code)
	}
	if r := final(func(m string) string { return m }); r.Code != packet.Success {
		t.Errorf("untampered: %v", r.Code)
	}
}

func TestSCRAMTimeout(t *testing.T) {
	cred := sjCred(t, "alice", "secret")
	synctest.Test(t, func(t *testing.T) {
		s := sjSCRAM(t, SCRAMConfig{Credentials: []SCRAMCredential{cred}, MaxInFlight: 1})
		info := &broker.ClientInfo{ClientID: "c"}
		cl, _ := scram.SHA256.NewClient("alice", "secret", "")
		conv := cl.NewConversation()
		res, _ := sjStep0(t, s, conv, info, false)
		msg, _ := conv.Step(string(res.Data))
		if s.InFlight() != 1 {
			t.Fatalf("in flight: %d", s.InFlight())
		}
		// An abandoned exchange frees its slot when the timeout passes.
		time.Sleep(DefaultSCRAMTimeout)
		synctest.Wait()
		if s.InFlight() != 0 {
			t.Fatalf("slot still held after the timeout")
		}
		r := s.Authenticate(context.Background(), &broker.AuthRequest{Client: info, Method: SCRAMMethod, Data: []byte(msg), Step: 1, State: res.State})
		if r.Code != packet.NotAuthorized || !strings.Contains(r.Reason, "timed out") {
			t.Fatalf("late client-final-message: %v %q", r.Code, r.Reason)
		}
		// Just inside the timeout succeeds.
		conv = cl.NewConversation()
		res, _ = sjStep0(t, s, conv, info, false)
		msg, _ = conv.Step(string(res.Data))
		time.Sleep(DefaultSCRAMTimeout - time.Second)
		r = s.Authenticate(context.Background(), &broker.AuthRequest{Client: info, Method: SCRAMMethod, Data: []byte(msg), Step: 1, State: res.State})
		if r.Code != packet.Success {
			t.Fatalf("client-final-message within the timeout: %v %q", r.Code, r.Reason)
		}
	})
}

func TestSCRAMConcurrencyBound(t *testing.T) {
	s := sjSCRAM(t, SCRAMConfig{Credentials: []SCRAMCredential{sjCred(t, "alice", "secret")}, MaxInFlight: 2})
	info := &broker.ClientInfo{ClientID: "c"}
	start := func() (broker.AuthResult, *scram.ClientConversation) {
		cl, _ := scram.SHA256.NewClient("alice", "secret", "")
		conv := cl.NewConversation()
		res, _ := sjStep0(t, s, conv, info, false)
		return res, conv
	}
	r1, c1 := start()
	r2, _ := start()
	if r1.Code != packet.ContinueAuthentication || r2.Code != packet.ContinueAuthentication {
		t.Fatalf("first two: %v %v", r1.Code, r2.Code)
	}
	if r3, _ := start(); r3.Code != packet.ServerBusy {
		t.Fatalf("third exchange in flight: %v, want Server busy (0x89)", r3.Code)
	}
	msg, _ := c1.Step(string(r1.Data))
	if r := s.Authenticate(context.Background(), &broker.AuthRequest{Client: info, Method: SCRAMMethod, Data: []byte(msg), Step: 1, State: r1.State}); r.Code != packet.Success {
		t.Fatalf("finishing the first: %v", r.Code)
	}
	r4, _ := start()
	if r4.Code != packet.ContinueAuthentication {
		t.Fatalf("after a slot freed: %v", r4.Code)
	}
	r2.State.(*scramExchange).finish()
	r4.State.(*scramExchange).finish()
}

func TestSCRAMReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scram.txt")
	write := func(creds ...SCRAMCredential) {
		var b bytes.Buffer
		WriteSCRAMCredentials(&b, creds)
		if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(sjCred(t, "alice", "one"))
	s := sjSCRAM(t, SCRAMConfig{File: path})
	info := &broker.ClientInfo{ClientID: "c"}
	if r, _ := sjExchange(t, s, "alice", "one", info, false); r.Code != packet.Success {
		t.Fatalf("before reload: %v", r.Code)
	}
	write(sjCred(t, "alice", "two"))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if r, _ := sjExchange(t, s, "alice", "one", info, false); r.Code != packet.BadUserNameOrPassword {
		t.Fatalf("old password after reload: %v", r.Code)
	}
	if r, _ := sjExchange(t, s, "alice", "two", info, false); r.Code != packet.Success {
		t.Fatalf("new password after reload: %v", r.Code)
	}
	os.WriteFile(path, []byte("broken line\n"), 0o600)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("reload of a broken file: %v", err)
	}
	if r, _ := sjExchange(t, s, "alice", "two", info, false); r.Code != packet.Success {
		t.Fatalf("a failed reload must keep the credentials: %v", r.Code)
	}
}

// sjImpostor accepts any proof and answers with a made-up server
// signature: a server that does not know the credentials.
type sjImpostor struct{ inner *SCRAM }

func (a sjImpostor) Authenticate(ctx context.Context, req *broker.AuthRequest) broker.AuthResult {
	r := a.inner.Authenticate(ctx, req)
	if req.Step == 1 {
		return broker.AuthResult{Code: packet.Success, Data: []byte("v=" + base64.StdEncoding.EncodeToString(make([]byte, 32)))}
	}
	return r
}

// TestSCRAMEndToEnd runs our client's SCRAM handler against our broker:
// connection, identity, re-authentication, refusals, and a server that
// cannot prove its knowledge of the credentials.
func TestSCRAMEndToEnd(t *testing.T) {
	s := sjSCRAM(t, SCRAMConfig{Credentials: []SCRAMCredential{sjCred(t, "alice", "secret")}})
	seen := &sjSeen{}
	addr := sjStartBroker(t, broker.Config{Authenticator: s, Authorizer: seen})

	c, err := sjConnect(t, addr, client.Options{ClientID: "e2e-alice", Auth: client.SCRAM("alice", "secret")})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if got := sjIdentity(t, c, seen, "e2e-alice"); got[0] != "alice" {
		t.Fatalf("identity %q, want alice", got[0])
	}
	for range 2 {
		if err := c.Reauthenticate(sjCtx(t)); err != nil {
			t.Fatalf("re-authenticate: %v", err)
		}
	}
	if got := sjIdentity(t, c, seen, "e2e-alice"); got[0] != "alice" {
		t.Fatalf("identity after re-authentication %q", got[0])
	}

	for _, tc := range []struct{ user, pass string }{{"alice", "wrong"}, {"nobody", "secret"}} {
		_, err := sjConnect(t, addr, client.Options{ClientID: "e2e-bad", Auth: client.SCRAM(tc.user, tc.pass)})
		if sjCode(err) != packet.BadUserNameOrPassword {
			t.Errorf("%s/%s: connect error %v, want CONNACK 0x86", tc.user, tc.pass, err)
		}
	}
	if s.InFlight() != 0 {
		t.Errorf("%d exchanges in flight after the connections", s.InFlight())
	}

	// A failed re-authentication closes the connection.
	s.SetCredentials([]SCRAMCredential{sjCred(t, "alice", "changed")})
	if err := c.Reauthenticate(sjCtx(t)); err == nil {
		t.Fatalf("re-authentication with a stale password succeeded")
	}
	select {
	case <-c.Done():
	case <-time.After(sjTimeout):
		t.Fatalf("connection not closed after a failed re-authentication")
	}

	imp := sjStartBroker(t, broker.Config{Authenticator: sjImpostor{sjSCRAM(t, SCRAMConfig{})}})
	_, err = sjConnect(t, imp, client.Options{ClientID: "e2e-imp", Auth: client.SCRAM("alice", "secret")})
	if !errors.Is(err, client.ErrServerNotVerified) {
		t.Fatalf("impostor server: %v, want ErrServerNotVerified", err)
	}
}

// sjPahoSCRAM is paho.golang's side of SCRAM-SHA-256, built on the xdg-go
// client: Authenticate answers the server-first-message.
type sjPahoSCRAM struct {
	mu   sync.Mutex
	conv *scram.ClientConversation
	err  error
}

func (a *sjPahoSCRAM) start(t *testing.T, user, pass string) []byte {
	cl, err := scram.SHA256.NewClient(user, pass, "")
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.conv = cl.NewConversation()
	first, _ := a.conv.Step("")
	return []byte(first)
}

func (a *sjPahoSCRAM) Authenticate(in *paho.Auth) *paho.Auth {
	a.mu.Lock()
	defer a.mu.Unlock()
	final, err := a.conv.Step(string(in.Properties.AuthData))
	if err != nil {
		a.err = err
	}
	return &paho.Auth{ReasonCode: 0x18, Properties: &paho.AuthProperties{AuthMethod: SCRAMMethod, AuthData: []byte(final)}}
}

func (a *sjPahoSCRAM) Authenticated() {}

// verify checks the server-final-message.
func (a *sjPahoSCRAM) verify(t *testing.T, data []byte) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.conv.Step(string(data)); err != nil || !a.conv.Valid() || a.err != nil {
		t.Fatalf("server-final-message %q not verified: %v %v", data, err, a.err)
	}
}

// sjTap records what a connection reads, for packets whose content
// paho.golang does not hand back (the Authentication Data of the AUTH
// that ends a re-authentication).
type sjTap struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *sjTap) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// lastAuth returns the last AUTH packet read so far.
func (c *sjTap) lastAuth(t *testing.T) *packet.Auth {
	t.Helper()
	c.mu.Lock()
	data := bytes.Clone(c.buf.Bytes())
	c.mu.Unlock()
	r := packet.NewReader(bytes.NewReader(data), 0)
	var last *packet.Auth
	for {
		p, err := r.ReadPacket(packet.V5)
		if err != nil {
			break
		}
		if a, ok := p.(*packet.Auth); ok {
			last = a
		}
	}
	if last == nil {
		t.Fatalf("no AUTH packet received")
	}
	return last
}

// sjPaho connects a paho.golang v5 client; the connection closes when the
// test ends.
func sjPaho(t *testing.T, addr string, cp *paho.Connect, auther paho.Auther) (*paho.Client, *paho.Connack, error) {
	c, _, ca, err := sjPahoTap(t, addr, cp, auther)
	return c, ca, err
}

func sjPahoTap(t *testing.T, addr string, cp *paho.Connect, auther paho.Auther) (*paho.Client, *sjTap, *paho.Connack, error) {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc := &sjTap{Conn: raw}
	done := make(chan struct{})
	c := paho.NewClient(paho.ClientConfig{
		ClientID:      cp.ClientID,
		Conn:          nc,
		AuthHandler:   auther,
		PacketTimeout: sjTimeout,
		OnClientError: func(error) {},
		OnServerDisconnect: func(*paho.Disconnect) {
			select {
			case <-done:
			default:
				close(done)
			}
		},
	})
	cp.KeepAlive = 60
	cp.CleanStart = true
	ca, err := c.Connect(sjCtx(t), cp)
	if err != nil {
		nc.Close()
		return nil, nc, ca, err
	}
	t.Cleanup(func() {
		c.Disconnect(&paho.Disconnect{ReasonCode: 0})
		<-c.Done()
	})
	return c, nc, ca, nil
}

// TestSCRAMPaho runs SCRAM-SHA-256 between paho.golang (with an Auther on
// the xdg-go client) and our broker: CONNECT, re-authentication with AUTH
// 0x19 ending in AUTH 0x00, and a wrong password.
func TestSCRAMPaho(t *testing.T) {
	s := sjSCRAM(t, SCRAMConfig{Credentials: []SCRAMCredential{sjCred(t, "carol", "pa55")}})
	seen := &sjSeen{}
	addr := sjStartBroker(t, broker.Config{Authenticator: s, Authorizer: seen})

	a := &sjPahoSCRAM{}
	cp := &paho.Connect{ClientID: "paho-scram", Properties: &paho.ConnectProperties{AuthMethod: SCRAMMethod, AuthData: a.start(t, "carol", "pa55")}}
	c, tap, ca, err := sjPahoTap(t, addr, cp, a)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if ca.Properties == nil || ca.Properties.AuthMethod != SCRAMMethod {
		t.Fatalf("CONNACK without the authentication method")
	}
	a.verify(t, ca.Properties.AuthData)
	if _, err := c.Publish(sjCtx(t), &paho.Publish{Topic: "p", QoS: 1, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if got := seen.get("paho-scram"); got[0] != "carol" {
		t.Fatalf("identity %q", got[0])
	}

	ar, err := c.Authenticate(sjCtx(t), &paho.Auth{ReasonCode: 0x19, Properties: &paho.AuthProperties{AuthMethod: SCRAMMethod, AuthData: a.start(t, "carol", "pa55")}})
	if err != nil || !ar.Success || ar.ReasonCode != 0 {
		t.Fatalf("re-authentication: %+v %v", ar, err)
	}
	// paho.golang drops the final AUTH's Authentication Data: read it from
	// the wire.
	last := tap.lastAuth(t)
	if last.ReasonCode != packet.Success || last.Props.AuthMethod != SCRAMMethod {
		t.Fatalf("final AUTH: reason %v method %q", last.ReasonCode, last.Props.AuthMethod)
	}
	a.verify(t, last.Props.AuthData)

	b := &sjPahoSCRAM{}
	cp = &paho.Connect{ClientID: "paho-wrong", Properties: &paho.ConnectProperties{AuthMethod: SCRAMMethod, AuthData: b.start(t, "carol", "nope")}}
	if _, ca, err := sjPaho(t, addr, cp, b); err == nil || ca == nil || ca.ReasonCode != byte(packet.BadUserNameOrPassword) {
		t.Fatalf("wrong password: CONNACK %+v, err %v; want 0x86", ca, err)
	}
}

// sjNeed returns the path of an external program, skipping the test when
// it is missing (failing it when CI=true).
func sjNeed(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (CI=true: interop peers are required; run scripts/install-peers.sh)", name)
		}
		t.Skipf("%s not found; skipping (run scripts/install-peers.sh to install it)", name)
	}
	return p
}
