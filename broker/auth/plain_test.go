package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

func TestParsePlain(t *testing.T) {
	z, c, p, err := ParsePlain([]byte("admin\x00alice\x00pw"))
	if err != nil || z != "admin" || c != "alice" || string(p) != "pw" {
		t.Fatalf("%q %q %q %v", z, c, p, err)
	}
	if z, c, p, err := ParsePlain([]byte("\x00bob\x00secret")); err != nil || z != "" || c != "bob" || string(p) != "secret" {
		t.Fatalf("%q %q %q %v", z, c, p, err)
	}
	bad := []struct{ msg, want string }{
		{"alice\x00pw", "not authzid NUL authcid NUL passwd"},
		{"\x00alice\x00pw\x00x", "not authzid NUL authcid NUL passwd"},
		{"\x00\x00pw", "empty"},
		{"\x00alice\x00", "empty"},
		{"\x00" + strings.Repeat("a", 1025) + "\x00pw", "too long"},
		{"\x00al\xffice\x00pw", "UTF-8"},
	}
	for _, c := range bad {
		if _, _, _, err := ParsePlain([]byte(c.msg)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParsePlain(%q) = %v, want %q", c.msg, err, c.want)
		}
	}
}

func fxPlainReq(data string) *broker.AuthRequest {
	r := fxConnect(packet.V5, "", "")
	r.Method, r.Data = PlainMethod, []byte(data)
	return r
}

func TestPlainAuthenticate(t *testing.T) {
	pf := fxPasswordFile(t, PasswordFileOptions{}, "alice", "wonderland")
	p := NewPlain(pf)
	ctx := context.Background()
	cases := []struct {
		name, data string
		want       packet.ReasonCode
	}{
		{"right", "\x00alice\x00wonderland", packet.Success},
		{"same authzid", "alice\x00alice\x00wonderland", packet.Success},
		{"other authzid", "bob\x00alice\x00wonderland", packet.NotAuthorized},
		{"wrong password", "\x00alice\x00wonder", packet.BadUserNameOrPassword},
		{"unknown user", "\x00bob\x00wonderland", packet.BadUserNameOrPassword},
		{"malformed", "alice:wonderland", packet.BadUserNameOrPassword},
	}
	for _, c := range cases {
		res := p.Authenticate(ctx, fxPlainReq(c.data))
		if res.Code != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, res.Code, res.Reason, c.want)
		}
		if res.Code == packet.Success && res.Username != "alice" {
			t.Errorf("%s: user %q", c.name, res.Username)
		}
	}
	// No initial response: an empty challenge, then the message.
	req := fxPlainReq("")
	res := p.Authenticate(ctx, req)
	if res.Code != packet.ContinueAuthentication || len(res.Data) != 0 {
		t.Fatalf("empty initial response: %+v", res)
	}
	req.Step, req.State, req.Data = 1, res.State, []byte("\x00alice\x00wonderland")
	if res := p.Authenticate(ctx, req); res.Code != packet.Success || res.Username != "alice" {
		t.Fatalf("response to the challenge: %+v", res)
	}
	req.Data = nil
	if res := p.Authenticate(ctx, req); res.Code != packet.BadUserNameOrPassword {
		t.Fatalf("empty response to the challenge: %v", res.Code)
	}
	req.Step, req.Data = 2, []byte("\x00alice\x00wonderland")
	if res := p.Authenticate(ctx, req); res.Code != packet.ProtocolError {
		t.Fatalf("third step: %v", res.Code)
	}
	// Re-authentication must keep the identity.
	re := fxPlainReq("\x00alice\x00wonderland")
	re.Reauth, re.Client.Username = true, "bob"
	if res := p.Authenticate(ctx, re); res.Code != packet.NotAuthorized {
		t.Fatalf("reauth as another user: %v", res.Code)
	}
	re.Client.Username = "alice"
	if res := p.Authenticate(ctx, re); res.Code != packet.Success {
		t.Fatalf("reauth: %v", res.Code)
	}
	if other := fxConnect(packet.V5, "alice", "wonderland"); p.Handles(other) || p.Authenticate(ctx, other).Code != packet.BadAuthenticationMethod {
		t.Fatal("PLAIN handles a CONNECT without method")
	}
}

// fxPlainClient is a client AuthHandler for PLAIN; an empty password sends
// no initial response and answers the server's challenge.
type fxPlainClient struct{ user, password string }

func (f *fxPlainClient) Method() string { return PlainMethod }
func (f *fxPlainClient) msg() []byte    { return []byte("\x00" + f.user + "\x00" + f.password) }
func (f *fxPlainClient) Start(context.Context) ([]byte, error) {
	if f.user == "wait-for-challenge" {
		return nil, nil
	}
	return f.msg(), nil
}
func (f *fxPlainClient) Continue(context.Context, []byte) ([]byte, error) {
	f.user = "alice"
	return f.msg(), nil
}
func (f *fxPlainClient) Finish(context.Context, []byte) error { return nil }

// Our v5 client authenticates with PLAIN, is known by its authentication
// identity (the ACL applies to it), and re-authenticates.
func TestPlainEndToEnd(t *testing.T) {
	pf := fxPasswordFile(t, PasswordFileOptions{}, "alice", "wonderland")
	p, _ := ParseACL([]byte("user alice topic alice/# permission readwrite\n"))
	b := fxStart(t, broker.Config{Authenticator: Chain(pf, NewPlain(pf)), Authorizer: NewACL(p, ACLOptions{})})
	c := fxDial(t, b.url(), client.Options{ClientID: "p1", Auth: &fxPlainClient{"alice", "wonderland"}})
	fxRoundTrip(t, c, "alice/plain", packet.V5)
	ctx, cancel := context.WithTimeout(context.Background(), fxTimeout)
	defer cancel()
	if err := c.Reauthenticate(ctx); err != nil {
		t.Fatalf("reauthenticate: %v", err)
	}
	// The empty-challenge form.
	c2 := fxDial(t, b.url(), client.Options{ClientID: "p2", Auth: &fxPlainClient{"wait-for-challenge", "wonderland"}})
	fxRoundTrip(t, c2, "alice/challenge", packet.V5)
	if _, err := fxTryDial(b.url(), client.Options{ClientID: "p3", Auth: &fxPlainClient{"alice", "nope"}}); !errors.Is(err, packet.BadUserNameOrPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	// PLAIN switched off: the method is refused.
	off := fxStart(t, broker.Config{Authenticator: Chain(pf)})
	if _, err := fxTryDial(off.url(), client.Options{ClientID: "p4", Auth: &fxPlainClient{"alice", "wonderland"}}); !errors.Is(err, packet.BadAuthenticationMethod) {
		t.Fatalf("PLAIN off: %v", err)
	}
}
