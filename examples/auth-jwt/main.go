// Command auth-jwt runs a broker that authenticates clients with JSON Web
// Tokens and connects clients to it: an MQTT 5 client sending the token
// under the Authentication Method "JWT" (with re-authentication, which
// fetches a fresh token), an MQTT 3.1.1 client sending it as the CONNECT
// password, and a refused expired token. The token issuer is simulated
// with an Ed25519 key generated at start.
//
//	go run ./examples/auth-jwt
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log"
	"log/slog"
	"net"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/auth"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

func main() {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	// mint is the identity provider: a token for sub valid for ttl.
	mint := func(sub string, ttl time.Duration) string {
		now := time.Now()
		t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
			"iss": "https://idp.example", "aud": "mqtt", "sub": sub,
			"roles": []string{"sensor"}, "iat": now.Unix(), "exp": now.Add(ttl).Unix(),
		})
		t.Header["kid"] = "2025-01"
		s, err := t.SignedString(priv)
		if err != nil {
			log.Fatal(err)
		}
		return s
	}

	authn, err := auth.NewJWT(auth.JWTConfig{
		Keys:       []auth.JWTKey{{ID: "2025-01", Algorithm: "EdDSA", Key: pub}},
		Issuer:     "https://idp.example",
		Audience:   []string{"mqtt"},
		RoleClaims: []string{"roles"},
	})
	if err != nil {
		log.Fatal(err)
	}
	b := broker.New(broker.Config{Authenticator: authn, Logger: slog.New(slog.DiscardHandler)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go b.Serve(l)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	}()
	url := "mqtt://" + l.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// MQTT 5: the token function runs at every connection and
	// re-authentication.
	token := func(context.Context) (string, error) { return mint("sensor-17", 15*time.Minute), nil }
	c, _, err := client.Dial(ctx, url, client.Options{ClientID: "jwt-demo", Auth: client.JWT(token)})
	if err != nil {
		log.Fatalf("connect: %v", err)
	}
	log.Print("connected with Authentication Method JWT")
	if err := c.Reauthenticate(ctx); err != nil {
		log.Fatalf("re-authenticate: %v", err)
	}
	log.Print("re-authenticated with a fresh token")
	c.Disconnect(ctx, packet.NormalDisconnection, 0)

	// MQTT 3.1.1: the token is the password (3.1.1 needs a user name with
	// it; any is accepted by default).
	c3, _, err := client.Dial(ctx, url, client.Options{ClientID: "jwt-demo-311", Version: packet.V311, Username: "sensor-18", Password: []byte(mint("sensor-18", time.Minute))})
	if err != nil {
		log.Fatalf("3.1.1 connect: %v", err)
	}
	log.Print("3.1.1 client connected with the token as password")
	c3.Disconnect(ctx, packet.NormalDisconnection, 0)

	expired := func(context.Context) (string, error) { return mint("sensor-19", -time.Hour), nil }
	_, _, err = client.Dial(ctx, url, client.Options{ClientID: "jwt-expired", Auth: client.JWT(expired), DisableReconnect: true})
	var re *client.ReasonError
	if errors.As(err, &re) {
		log.Printf("expired token refused: %v (reason code 0x%02x)", re, byte(re.Code))
	} else {
		log.Fatalf("expired token: %v", err)
	}
}
