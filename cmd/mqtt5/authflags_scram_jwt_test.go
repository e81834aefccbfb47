package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// The broker command with --scram-file and --jwt-key: SCRAM-SHA-256 and JWT
// (as Authentication Method and as the CONNECT password) authenticate,
// wrong credentials are refused, and the password file still works beside
// them.
func TestBrokerSCRAMAndJWTFlags(t *testing.T) {
	dir := t.TempDir()
	scramFile := filepath.Join(dir, "scram")
	if code, _, errs := runCmd(t, "scram", "-c", "-b", "-i", "10000", scramFile, "alice", "s3cret"); code != 0 {
		t.Fatalf("scram: %d %q", code, errs)
	}
	secretFile := filepath.Join(dir, "hs256.key")
	secret := []byte("a shared secret of at least thirty-two bytes")
	if err := os.WriteFile(secretFile, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startCmd(t, "broker", "--no-persistence", "--sys-interval", "0", "--listen", "mqtt://127.0.0.1:0",
		"--scram-file", scramFile, "--jwt-key", "k1=HS256:"+secretFile, "--jwt-issuer", "https://idp.example",
		"--auth-max-failures", "0")
	url := brokerURLs(t, b, 1)[0]

	if err := tryConnect(url, client.Options{Auth: client.SCRAM("alice", "s3cret")}); err != nil {
		t.Fatalf("SCRAM: %v", err)
	}
	if err := tryConnect(url, client.Options{Auth: client.SCRAM("alice", "wrong")}); !errors.Is(err, packet.BadUserNameOrPassword) {
		t.Fatalf("SCRAM wrong password: %v", err)
	}
	token := func(iss string, exp time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "bob", "iss": iss, "exp": exp.Unix()})
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := token("https://idp.example", time.Now().Add(time.Hour))
	jwtAuth := client.JWT(func(context.Context) (string, error) { return good, nil })
	if err := tryConnect(url, client.Options{Auth: jwtAuth}); err != nil {
		t.Fatalf("JWT method: %v", err)
	}
	if err := tryConnect(url, client.Options{Version: packet.V311, Username: "bob", Password: []byte(good)}); err != nil {
		t.Fatalf("JWT as 3.1.1 password: %v", err)
	}
	expired := token("https://idp.example", time.Now().Add(-time.Hour))
	if err := tryConnect(url, client.Options{Username: "bob", Password: []byte(expired)}); !errors.Is(err, packet.BadUserNameOrPassword) {
		t.Fatalf("expired JWT: %v", err)
	}
	other := token("https://evil.example", time.Now().Add(time.Hour))
	if err := tryConnect(url, client.Options{Auth: client.JWT(func(context.Context) (string, error) { return other, nil })}); !errors.Is(err, packet.NotAuthorized) {
		t.Fatalf("wrong issuer: %v", err)
	}
	if err := tryConnect(url, client.Options{ClientID: "anon"}); !errors.Is(err, packet.NotAuthorized) {
		t.Fatalf("anonymous: %v", err)
	}
}
