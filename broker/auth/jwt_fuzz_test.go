package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// The fixed key set of FuzzJWTVerify. Keys are derived from constants so
// that tokens stored in the seed corpus keep verifying.
var (
	fzJWTNow    = time.Date(2031, 3, 1, 8, 0, 0, 0, time.UTC)
	fzHSSecret  = []byte("fuzz-hs256-secret-0123456789abcdef")
	fzEdKey     = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, ed25519.SeedSize))
	fzEdOther   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x43}, ed25519.SeedSize))
	fzIssuerA   = "https://idp-a.example"
	fzIssuerB   = "https://idp-b.example"
	fzAliasOf   = map[string]string{fzIssuerA: "a", fzIssuerB: "b"}
	fzJWTRoles  = []string{"roles", "realm_access.roles", "scope"}
	fzHSOnlyKey = []JWTKey{{Algorithm: "HS256", Key: fzHSSecret}}
)

func fzECKey(t testing.TB, b byte) *ecdsa.PrivateKey {
	d := bytes.Repeat([]byte{b}, 32)
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fzJWTSign signs claims with alg and key, kid in the header unless
// empty.
func fzJWTSign(t testing.TB, alg, kid string, key any, claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return s
}

func fzJWTClaims(over map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "alice",
		"iat": fzJWTNow.Add(-time.Minute).Unix(),
		"exp": fzJWTNow.Add(time.Hour).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// fzSigningInput is the signed part of a compact JWS: header.payload.
func fzSigningInput(token string) string {
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		return token[:i]
	}
	return token
}

// fzJWTSeeds returns tokens for the seed corpus and the signing inputs of
// those made with the keys the verifiers trust: a token that verifies
// must be one of them, since nobody else can sign.
func fzJWTSeeds(t testing.TB) (tokens []string, legit map[string]bool) {
	ec := fzECKey(t, 0x21)
	ecOther := fzECKey(t, 0x22)
	legit = map[string]bool{}
	good := func(alg, kid string, key any, over map[string]any) {
		s := fzJWTSign(t, alg, kid, key, fzJWTClaims(over))
		legit[fzSigningInput(s)] = true
		tokens = append(tokens, s)
	}
	forged := func(alg, kid string, key any, over map[string]any) {
		tokens = append(tokens, fzJWTSign(t, alg, kid, key, fzJWTClaims(over)))
	}
	good("HS256", "hs", fzHSSecret, nil)
	good("HS256", "", fzHSSecret, map[string]any{"roles": []any{"ops", "a,b", " x "}})
	good("ES256", "ec", ec, map[string]any{"iss": fzIssuerA, "realm_access": map[string]any{"roles": []any{"r1"}}})
	good("EdDSA", "ed", fzEdKey, map[string]any{"iss": fzIssuerA, "scope": "read write"})
	good("EdDSA", "", fzEdKey, map[string]any{"iss": fzIssuerA})
	good("HS256", "hs", fzHSSecret, map[string]any{"iss": fzIssuerB, "aud": "mqtt", "grp": "admins"})
	good("HS256", "hs", fzHSSecret, map[string]any{"iss": fzIssuerB, "aud": []any{"x", "mqtt"}, "sub": "b\u0007ob"})
	good("HS256", "hs", fzHSSecret, map[string]any{"iss": fzIssuerB, "aud": "other"})
	good("HS256", "hs", fzHSSecret, map[string]any{"exp": fzJWTNow.Add(-time.Hour).Unix()})
	good("HS256", "", fzHSSecret, map[string]any{"exp": nil})
	good("HS256", "hs", fzHSSecret, map[string]any{"iat": fzJWTNow.Add(time.Hour).Unix()})
	good("HS256", "hs", fzHSSecret, map[string]any{"nbf": fzJWTNow.Add(time.Hour).Unix()})
	good("HS256", "hs", fzHSSecret, map[string]any{"sub": nil})
	good("HS256", "hs", fzHSSecret, map[string]any{"sub": 7})
	good("ES256", "ed", ec, nil) // the key of another kid
	good("HS256", "ec", fzHSSecret, nil)
	// Forgeries: another key under a trusted kid, "none", and HS256 keyed
	// with a public key (algorithm confusion).
	forged("HS256", "hs", []byte("another-secret-0123456789abcdef!"), nil)
	forged("ES256", "ec", ecOther, map[string]any{"iss": fzIssuerA})
	forged("EdDSA", "ed", fzEdOther, map[string]any{"iss": fzIssuerA})
	forged("none", "hs", jwt.UnsafeAllowNoneSignatureType, nil)
	forged("none", "", jwt.UnsafeAllowNoneSignatureType, map[string]any{"iss": fzIssuerA})
	forged("HS256", "ed", []byte(fzEdKey.Public().(ed25519.PublicKey)), map[string]any{"iss": fzIssuerA})
	pkix, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	forged("HS256", "ec", pkix, map[string]any{"iss": fzIssuerA})
	forged("HS256", "", fzHSSecret[:31], nil)
	tokens = append(tokens, "", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJIUzI1NiJ9..")
	return tokens, legit
}

// fzVerifiers are the authenticators under test: a JWT with three keys by
// kid, a JWT with one key and no kid, and a FederatedJWT with two issuers
// known by their fallback keys (no key set URL, no background refresh).
func fzVerifiers(t testing.TB) (multi, single *JWT, fed *FederatedJWT) {
	ec := fzECKey(t, 0x21)
	now := func() time.Time { return fzJWTNow }
	var err error
	multi, err = NewJWT(JWTConfig{Now: now, RoleClaims: fzJWTRoles, Keys: []JWTKey{
		{ID: "hs", Algorithm: "HS256", Key: fzHSSecret},
		{ID: "ec", Algorithm: "ES256", Key: &ec.PublicKey},
		{ID: "ed", Algorithm: "EdDSA", Key: fzEdKey.Public()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if single, err = NewJWT(JWTConfig{Now: now, Keys: fzHSOnlyKey, AllowNoExpiry: true}); err != nil {
		t.Fatal(err)
	}
	fed, err = NewFederatedJWT(FederatedConfig{Now: now, RefreshInterval: -1, Issuers: []FederatedIssuer{
		{Issuer: fzIssuerA, Alias: "a", AnyAudience: true, Mode: FederationTrustedRoles, RoleClaims: fzJWTRoles,
			FallbackKeys: []JWTKey{{ID: "ec", Algorithm: "ES256", Key: ec}, {ID: "ed", Algorithm: "EdDSA", Key: fzEdKey}}},
		{Issuer: fzIssuerB, Alias: "b", Audience: []string{"mqtt"}, Algorithms: []string{"HS256"}, Mode: FederationClaimBinding,
			Rules:        []ClaimRule{{Claim: "grp", Match: MatchRegex, Value: "adm.*", Roles: []string{"admin", "x,y"}}},
			FallbackKeys: []JWTKey{{ID: "hs", Algorithm: "HS256", Key: fzHSSecret}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return multi, single, fed
}

// fzJWTPart decodes segment i (0 header, 1 claims) of a compact JWS as a
// JSON object, or returns nil.
func fzJWTPart(token string, i int) map[string]any {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[i], "="))
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

func fzCheckIdentity(t *testing.T, who, token string, id *JWTIdentity, legit map[string]bool) {
	t.Helper()
	if !legit[fzSigningInput(token)] {
		t.Fatalf("%s verified a token the trusted keys never signed: %q", who, token)
	}
	if !looksLikeJWT([]byte(token)) {
		t.Fatalf("%s verified %q, which Handles would not route to it as a password", who, token)
	}
	if id.Subject == "" || strings.ContainsFunc(id.Subject, unicode.IsControl) {
		t.Fatalf("%s: identity %q", who, id.Subject)
	}
	for _, r := range id.Roles {
		if r == "" || strings.ContainsFunc(r, func(c rune) bool { return c == ',' || unicode.IsSpace(c) }) {
			t.Fatalf("%s: role %q would change the roles attribute", who, r)
		}
	}
}

func FuzzJWTVerify(f *testing.F) {
	tokens, legit := fzJWTSeeds(f)
	for _, s := range tokens {
		f.Add(s)
	}
	multi, single, fed := fzVerifiers(f)
	f.Cleanup(func() { fed.Close() })
	keyAlg := map[string]string{"hs": "HS256", "ec": "ES256", "ed": "EdDSA"}
	f.Fuzz(func(t *testing.T, token string) {
		looksLikeJWT([]byte(token))
		if id, err := multi.Verify(token); err == nil {
			fzCheckIdentity(t, "JWT", token, id, legit)
			h := fzJWTPart(token, 0)
			kid, _ := h["kid"].(string)
			if alg, _ := h["alg"].(string); h == nil || alg != keyAlg[kid] {
				t.Fatalf("JWT verified %q: header %v does not name the algorithm of its key", token, h)
			}
			if id.Username != id.Subject || id.Issuer != "" {
				t.Fatalf("JWT identity %+v", id)
			}
		}
		if id, err := single.Verify(token); err == nil {
			fzCheckIdentity(t, "JWT (one key)", token, id, legit)
			if h := fzJWTPart(token, 0); h == nil || h["alg"] != "HS256" {
				t.Fatalf("one-key JWT verified %q with header %v", token, h)
			}
		}
		id, err := fed.Verify(context.Background(), token)
		if err != nil {
			return
		}
		fzCheckIdentity(t, "FederatedJWT", token, id, legit)
		// The issuer read before verification is the one verified: the
		// alias is that of the iss claim, and the user name is namespaced
		// by it.
		claims := fzJWTPart(token, 1)
		iss, _ := claims["iss"].(string)
		h, err := peekJWT(token)
		if err != nil || h.iss != iss || id.Claims["iss"] != iss {
			t.Fatalf("FederatedJWT verified %q: peeked iss %q (%v), claims iss %q, verified %v", token, h.iss, err, iss, id.Claims["iss"])
		}
		alias, ok := fzAliasOf[iss]
		if !ok || id.Issuer != alias || id.Username != alias+":"+id.Subject {
			t.Fatalf("FederatedJWT verified %q from issuer %q as %+v", token, iss, id)
		}
	})
}
