package auth

import (
	"context"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
)

// The result of a JWT authentication carries the token's expiry (exp plus
// the clock skew, as time left on the verifier's clock), so the broker ends
// the connection then; KeepConnectedAfterExpiry leaves it unset.
func TestJWTResultExpires(t *testing.T) {
	k := sjTestKeys(t)
	tok := sjSign(t, "HS256", "hs", k.hs, sjClaims(map[string]any{"exp": sjEpoch.Add(2 * time.Minute).Unix()}))
	req := func() *broker.AuthRequest {
		return &broker.AuthRequest{Client: &broker.ClientInfo{ClientID: "c"}, Method: JWTMethod, Data: []byte(tok)}
	}
	for _, tc := range []struct {
		name string
		cfg  JWTConfig
		left time.Duration // 0: no expiry
	}{
		{"default skew", JWTConfig{}, 2*time.Minute + DefaultJWTClockSkew},
		{"skew 5s", JWTConfig{ClockSkew: 5 * time.Second}, 2*time.Minute + 5*time.Second},
		{"no skew", JWTConfig{ClockSkew: -1}, 2 * time.Minute},
		{"keep connected", JWTConfig{KeepConnectedAfterExpiry: true}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := sjJWT(t, tc.cfg)
			before := time.Now()
			res := a.Authenticate(context.Background(), req())
			after := time.Now()
			if res.Code != 0 {
				t.Fatalf("code %v %s", res.Code, res.Reason)
			}
			if tc.left == 0 {
				if !res.Expires.IsZero() {
					t.Fatalf("Expires %v, want none", res.Expires)
				}
				return
			}
			if res.Expires.Before(before.Add(tc.left)) || res.Expires.After(after.Add(tc.left)) {
				t.Fatalf("Expires %v, want now+%v", res.Expires, tc.left)
			}
		})
	}
	// A token without exp (AllowNoExpiry) does not limit the connection.
	a := sjJWT(t, JWTConfig{AllowNoExpiry: true})
	noExp := sjSign(t, "HS256", "hs", k.hs, sjClaims(map[string]any{"exp": nil}))
	res := a.Authenticate(context.Background(), &broker.AuthRequest{Client: &broker.ClientInfo{ClientID: "c"}, Method: JWTMethod, Data: []byte(noExp)})
	if res.Code != 0 || !res.Expires.IsZero() {
		t.Fatalf("no exp: code %v Expires %v", res.Code, res.Expires)
	}
}
