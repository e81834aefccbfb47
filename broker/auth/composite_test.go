package auth

import (
	"context"
	"fmt"
	"testing"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// fxTwoStep is a two-step method: step 0 answers Continue with state
// "started", step 1 succeeds when it gets that state back and data "ok".
type fxTwoStep struct {
	name string
	log  *[]string
}

func (f fxTwoStep) Authenticate(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
	*f.log = append(*f.log, fmt.Sprintf("%s step %d state %v reauth %v", f.name, req.Step, req.State, req.Reauth))
	switch {
	case req.Step == 0:
		return broker.AuthResult{Code: packet.ContinueAuthentication, Data: []byte("challenge"), State: f.name + "-started"}
	case req.State == f.name+"-started" && string(req.Data) == "ok":
		return broker.AuthResult{Code: packet.Success, Username: f.name + "-user", State: f.name + "-done"}
	}
	return broker.AuthResult{Code: packet.NotAuthorized}
}

// fxDecides answers code for every request it is given.
type fxDecides struct {
	code packet.ReasonCode
	log  *[]string
	name string
}

func (f fxDecides) Authenticate(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
	*f.log = append(*f.log, f.name)
	return broker.AuthResult{Code: f.code}
}

func TestChainPicksFirstHandler(t *testing.T) {
	var log []string
	c := Chain(
		ByMethod("TWO", fxTwoStep{"two", &log}),
		WithoutMethod(fxDecides{packet.BadUserNameOrPassword, &log, "first-plain"}),
		WithoutMethod(fxDecides{packet.Success, &log, "second-plain"}),
	)
	ctx := context.Background()
	// Without a method: the first provider for "no method" decides, even
	// when it refuses; the next one is not consulted.
	if res := c.Authenticate(ctx, fxConnect(packet.V311, "u", "p")); res.Code != packet.BadUserNameOrPassword {
		t.Fatalf("no method: %v", res.Code)
	}
	if fmt.Sprint(log) != "[first-plain]" {
		t.Fatalf("consulted %v", log)
	}
	// An unknown method.
	req := fxConnect(packet.V5, "u", "")
	req.Method = "KERBEROS"
	if res := c.Authenticate(ctx, req); res.Code != packet.BadAuthenticationMethod {
		t.Fatalf("unknown method: %v", res.Code)
	}
	// Nothing handles a CONNECT without method: Not Authorized.
	only := Chain(ByMethod("TWO", fxTwoStep{"two", &log}))
	if res := only.Authenticate(ctx, fxConnect(packet.V5, "u", "p")); res.Code != packet.NotAuthorized {
		t.Fatalf("no handler: %v", res.Code)
	}
	if !c.(Provider).Handles(fxConnect(packet.V5, "", "")) || only.(Provider).Handles(fxConnect(packet.V5, "", "")) {
		t.Fatal("chain Handles")
	}
}

// A multi-step exchange stays with its provider, which gets its own state
// back; a re-authentication gets the state of the previous success.
func TestChainMultiStep(t *testing.T) {
	var log []string
	c := Chain(
		ByMethod("ONE", fxTwoStep{"one", &log}),
		ByMethod("TWO", fxTwoStep{"two", &log}),
	)
	ctx := context.Background()
	req := fxConnect(packet.V5, "", "")
	req.Method = "TWO"
	res := c.Authenticate(ctx, req)
	if res.Code != packet.ContinueAuthentication || string(res.Data) != "challenge" {
		t.Fatalf("step 0: %+v", res)
	}
	// The broker hands the state back with the client's AUTH data.
	req.Step, req.Data, req.State = 1, []byte("ok"), res.State
	res = c.Authenticate(ctx, req)
	if res.Code != packet.Success || res.Username != "two-user" {
		t.Fatalf("step 1: %+v", res)
	}
	// Re-authentication: step 0 again, with the state of the success.
	re := &broker.AuthRequest{Client: req.Client, Method: "TWO", Reauth: true, State: res.State}
	res = c.Authenticate(ctx, re)
	if res.Code != packet.ContinueAuthentication {
		t.Fatalf("reauth: %+v", res)
	}
	want := []string{
		"two step 0 state <nil> reauth false",
		"two step 1 state two-started reauth false",
		"two step 0 state two-done reauth true",
	}
	if fmt.Sprint(log) != fmt.Sprint(want) {
		t.Fatalf("calls\n%v\nwant\n%v", log, want)
	}
	// A later step without chain state is refused.
	if res := c.Authenticate(ctx, &broker.AuthRequest{Client: req.Client, Method: "TWO", Step: 1, State: "forged"}); res.Code != packet.ProtocolError {
		t.Fatalf("lost state: %v", res.Code)
	}
}

// The password file, PLAIN and certificates in one chain, rate limited.
func TestChainProviders(t *testing.T) {
	pf := fxPasswordFile(t, PasswordFileOptions{}, "alice", "wonderland")
	ca, err := NewCertAuth(CertAuthConfig{Source: CertCN})
	if err != nil {
		t.Fatal(err)
	}
	c := RateLimit(Chain(ca, pf, NewPlain(pf)), RateLimitConfig{Logger: fxQuiet})
	ctx := context.Background()
	if res := c.Authenticate(ctx, fxConnect(packet.V311, "alice", "wonderland")); res.Code != packet.Success {
		t.Fatalf("password: %v", res.Code)
	}
	req := fxConnect(packet.V5, "", "")
	req.Method, req.Data = "PLAIN", []byte("\x00alice\x00wonderland")
	if res := c.Authenticate(ctx, req); res.Code != packet.Success || res.Username != "alice" {
		t.Fatalf("PLAIN: %+v", res)
	}
	req = fxConnect(packet.V311, "ignored", "")
	req.Client.TLS = fxTLSState(fxCert("device-7", nil, nil, nil), true)
	if res := c.Authenticate(ctx, req); res.Code != packet.Success || res.Username != "device-7" {
		t.Fatalf("certificate: %+v", res)
	}
	if res := c.Authenticate(ctx, fxConnect(packet.V5, "", "")); res.Code != packet.NotAuthorized {
		t.Fatalf("anonymous: %v", res.Code)
	}
}

// fxAllow allows publishing and subscribing by a fixed answer, and has no
// CanReceive.
type fxAllow struct{ pub, sub bool }

func (f fxAllow) CanPublish(context.Context, *broker.ClientInfo, string) bool   { return f.pub }
func (f fxAllow) CanSubscribe(context.Context, *broker.ClientInfo, string) bool { return f.sub }

func TestAuthorizeCombinations(t *testing.T) {
	p, _ := ParseACL([]byte("user * topic a/# permission readwrite\nuser * topic a/secret permission deny\n"))
	acl := NewACL(p, ACLOptions{})
	ctx := context.Background()
	ci := &broker.ClientInfo{Username: "u"}
	yes, no := fxAllow{true, true}, fxAllow{false, false}
	cases := []struct {
		name          string
		z             broker.Authorizer
		topic         string
		pub, sub, rcv bool
	}{
		{"all yes+acl", AuthorizeAll(yes, acl), "a/x", true, true, true},
		{"all yes+acl denied", AuthorizeAll(yes, acl), "a/secret", false, false, false},
		{"all no+acl", AuthorizeAll(no, acl), "a/x", false, false, false},
		{"all empty", AuthorizeAll(), "b", true, true, true},
		{"any no+acl", AuthorizeAny(no, acl), "a/x", true, true, true},
		{"any no+acl outside", AuthorizeAny(no, acl), "b", false, false, false},
		{"any yes+acl", AuthorizeAny(yes, acl), "a/secret", true, true, true},
		{"any empty", AuthorizeAny(), "b", false, false, false},
	}
	for _, c := range cases {
		pub := c.z.CanPublish(ctx, ci, c.topic)
		sub := c.z.CanSubscribe(ctx, ci, c.topic)
		rcv := c.z.(Receiver).CanReceive(ctx, ci, c.topic)
		if pub != c.pub || sub != c.sub || rcv != c.rcv {
			t.Errorf("%s %q: publish %v subscribe %v receive %v; want %v %v %v", c.name, c.topic, pub, sub, rcv, c.pub, c.sub, c.rcv)
		}
	}
}
