package client

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/xdg-go/scram"
)

// scramTestServer is an xdg-go SCRAM-SHA-256 server knowing user/password
// with 4096 iterations.
func scramTestServer(t *testing.T, user, password string) *scram.Server {
	t.Helper()
	cl, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	creds := cl.GetStoredCredentials(scram.KeyFactors{Salt: "0123456789abcdef", Iters: 4096})
	srv, err := scram.SHA256.NewServer(func(u string) (scram.StoredCredentials, error) {
		if u != user {
			return scram.StoredCredentials{}, errors.New("unknown user")
		}
		return creds, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// scramRun drives h through client-first and client-final against srv
// and returns the server-final-message.
func scramRun(t *testing.T, h AuthHandler, srv *scram.Server) (string, error) {
	t.Helper()
	ctx := context.Background()
	conv := srv.NewConversation()
	first, err := h.Start(ctx)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	s1, err := conv.Step(string(first))
	if err != nil {
		t.Fatalf("server-first: %v", err)
	}
	final, err := h.Continue(ctx, []byte(s1))
	if err != nil {
		t.Fatalf("Continue: %v", err)
	}
	return conv.Step(string(final))
}

func TestSCRAMHandler(t *testing.T) {
	ctx := context.Background()
	srv := scramTestServer(t, "alice", "secret")
	h := SCRAM("alice", "secret")
	if h.Method() != "SCRAM-SHA-256" {
		t.Fatalf("method %q", h.Method())
	}
	for i := range 2 { // a fresh exchange each time (reconnection, re-authentication)
		s2, err := scramRun(t, h, srv)
		if err != nil {
			t.Fatalf("exchange %d: server refused the proof: %v", i, err)
		}
		if err := h.Finish(ctx, []byte(s2)); err != nil {
			t.Fatalf("exchange %d: Finish: %v", i, err)
		}
	}

	// A server signature that does not prove knowledge of the credentials.
	s2, _ := scramRun(t, h, srv)
	forged := "v=" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	if s2 == forged {
		t.Fatal("unexpected")
	}
	if err := h.Finish(ctx, []byte(forged)); !errors.Is(err, ErrServerNotVerified) {
		t.Fatalf("forged server signature: %v, want ErrServerNotVerified", err)
	}
	// A server that reports an error, or sends nothing.
	scramRun(t, h, srv)
	if err := h.Finish(ctx, []byte("e=invalid-proof")); !errors.Is(err, ErrServerNotVerified) {
		t.Fatalf("server error: %v", err)
	}
	scramRun(t, h, srv)
	if err := h.Finish(ctx, nil); !errors.Is(err, ErrServerNotVerified) {
		t.Fatalf("empty server-final: %v", err)
	}
	// A server that accepts without any challenge.
	if _, err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Finish(ctx, nil); !errors.Is(err, ErrServerNotVerified) || !strings.Contains(err.Error(), "before the SCRAM exchange completed") {
		t.Fatalf("success without a challenge: %v", err)
	}
	// A challenge out of turn.
	if _, err := h.Continue(ctx, []byte("r=x,s=eA==,i=4096")); err == nil {
		t.Fatalf("Continue without Start succeeded")
	}
	// A server nonce that does not extend the client's.
	h.Start(ctx)
	if _, err := h.Continue(ctx, []byte("r=other,s=c2FsdA==,i=4096")); err == nil {
		t.Fatalf("server nonce not extending the client nonce accepted")
	}
	// Wrong password: the server refuses the proof.
	if _, err := scramRun(t, SCRAM("alice", "wrong"), srv); err == nil {
		t.Fatalf("wrong password accepted by the server")
	}
	// A password SASLprep rejects fails at Start.
	if _, err := SCRAM("alice", "bad\u0007").Start(ctx); err == nil {
		t.Fatalf("password with a control character accepted")
	}
}
