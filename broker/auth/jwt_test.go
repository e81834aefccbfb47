package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// sjKeys are signing keys shared by the JWT tests (RSA generation is slow).
type sjKeys struct {
	hs  []byte
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
}

var (
	sjKeysOnce sync.Once
	sjKeySet   sjKeys
)

func sjTestKeys(t testing.TB) *sjKeys {
	sjKeysOnce.Do(func() {
		k := &sjKeySet
		k.hs = make([]byte, 32)
		rand.Read(k.hs)
		var err error
		if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return &sjKeySet
}

// sjEpoch is the fixed time the JWT tests run at.
var sjEpoch = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

func sjSign(t testing.TB, alg, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
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

// sjClaims are valid claims at sjEpoch, changed by over (nil deletes).
func sjClaims(over map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "alice",
		"iss": "https://issuer.test",
		"aud": "mqtt",
		"iat": sjEpoch.Add(-time.Minute).Unix(),
		"exp": sjEpoch.Add(time.Hour).Unix(),
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

func sjJWTKeys(k *sjKeys) []JWTKey {
	return []JWTKey{
		{ID: "hs", Algorithm: "HS256", Key: k.hs},
		{ID: "rs", Algorithm: "RS256", Key: &k.rsa.PublicKey},
		{ID: "es", Algorithm: "ES256", Key: &k.ec.PublicKey},
		{ID: "ed", Algorithm: "EdDSA", Key: k.ed.Public()},
	}
}

func sjJWT(t testing.TB, cfg JWTConfig) *JWT {
	t.Helper()
	if cfg.Keys == nil {
		cfg.Keys = sjJWTKeys(sjTestKeys(t))
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return sjEpoch }
	}
	a, err := NewJWT(cfg)
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	return a
}

func TestJWTVerify(t *testing.T) {
	k := sjTestKeys(t)
	pubPEM := func() []byte {
		der, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}()
	at := func(d time.Duration) int64 { return sjEpoch.Add(d).Unix() }
	cfg := JWTConfig{Issuer: "https://issuer.test", Audience: []string{"mqtt", "other"}}
	noneToken := func() string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, sjClaims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}
	tamper := func(s string) string {
		p := strings.Split(s, ".")
		claims := sjSign(t, "HS256", "hs", k.hs, sjClaims(map[string]any{"sub": "mallory"}))
		return p[0] + "." + strings.Split(claims, ".")[1] + "." + p[2]
	}
	tests := []struct {
		name  string
		token string
		cfg   func(*JWTConfig)
		want  error // nil: accepted
	}{
		{"HS256", sjSign(t, "HS256", "hs", k.hs, sjClaims(nil)), nil, nil},
		{"RS256", sjSign(t, "RS256", "rs", k.rsa, sjClaims(nil)), nil, nil},
		{"ES256", sjSign(t, "ES256", "es", k.ec, sjClaims(nil)), nil, nil},
		{"EdDSA", sjSign(t, "EdDSA", "ed", k.ed, sjClaims(nil)), nil, nil},
		{"expired", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"exp": at(-2 * time.Minute)})), nil, jwt.ErrTokenExpired},
		{"expired within skew", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"exp": at(-30 * time.Second)})), nil, nil},
		{"expired, no skew", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"exp": at(-30 * time.Second)})), func(c *JWTConfig) { c.ClockSkew = -1 }, jwt.ErrTokenExpired},
		{"expired, larger skew", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"exp": at(-2 * time.Minute)})), func(c *JWTConfig) { c.ClockSkew = 5 * time.Minute }, nil},
		{"not yet valid", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"nbf": at(2 * time.Minute)})), nil, jwt.ErrTokenNotValidYet},
		{"nbf within skew", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"nbf": at(30 * time.Second)})), nil, nil},
		{"issued in the future", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"iat": at(10 * time.Minute)})), nil, jwt.ErrTokenUsedBeforeIssued},
		{"no exp", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"exp": nil})), nil, jwt.ErrTokenRequiredClaimMissing},
		{"no exp allowed", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"exp": nil})), func(c *JWTConfig) { c.AllowNoExpiry = true }, nil},
		{"wrong issuer", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"iss": "https://evil.test"})), nil, jwt.ErrTokenInvalidIssuer},
		{"wrong audience", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"aud": "web"})), nil, jwt.ErrTokenInvalidAudience},
		{"one of the audiences", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"aud": []string{"web", "other"}})), nil, nil},
		{"tampered claims", tamper(sjSign(t, "HS256", "hs", k.hs, sjClaims(nil))), nil, jwt.ErrTokenSignatureInvalid},
		{"signed with another key", sjSign(t, "HS256", "hs", []byte(strings.Repeat("x", 32)), sjClaims(nil)), nil, jwt.ErrTokenSignatureInvalid},
		{"alg none", noneToken(), nil, ErrJWTAmbiguousKey},
		{"alg none, single key", noneToken(), func(c *JWTConfig) { c.Keys = c.Keys[:1] }, jwt.ErrTokenSignatureInvalid},
		{"HS256 with the RSA public key as secret", sjSign(t, "HS256", "rs", pubPEM, sjClaims(nil)), nil, jwt.ErrTokenSignatureInvalid},
		{"RS256 token under an HS256 kid", sjSign(t, "RS256", "hs", k.rsa, sjClaims(nil)), nil, jwt.ErrTokenSignatureInvalid},
		{"unknown kid", sjSign(t, "ES256", "nope", k.ec, sjClaims(nil)), nil, ErrJWTUnknownKey},
		{"no kid, several keys", sjSign(t, "ES256", "", k.ec, sjClaims(nil)), nil, ErrJWTAmbiguousKey},
		{"no kid, one key", sjSign(t, "EdDSA", "", k.ed, sjClaims(nil)), func(c *JWTConfig) { c.Keys = []JWTKey{{ID: "ed", Algorithm: "EdDSA", Key: k.ed.Public()}} }, nil},
		{"no sub", sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"sub": nil})), nil, ErrJWTNoIdentity},
		{"malformed", "not.a.token", nil, jwt.ErrTokenMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.Keys = sjJWTKeys(k)
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			id, err := sjJWT(t, c).Verify(tc.token)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == nil && id.Username != "alice":
				t.Fatalf("identity %q, want alice", id.Username)
			case tc.want != nil && err == nil:
				t.Fatalf("accepted, want %v", tc.want)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestJWTKeys(t *testing.T) {
	k := sjTestKeys(t)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	bad := [][]JWTKey{
		{{ID: "a", Algorithm: "none", Key: k.hs}},
		{{ID: "a", Algorithm: "HS256", Key: []byte("short")}},
		{{ID: "a", Algorithm: "HS256", Key: &k.rsa.PublicKey}},
		{{ID: "a", Algorithm: "RS256", Key: k.hs}},
		{{ID: "a", Algorithm: "RS256", Key: &small.PublicKey}},
		{{ID: "a", Algorithm: "ES256", Key: &p384.PublicKey}},
		{{ID: "a", Algorithm: "EdDSA", Key: &k.ec.PublicKey}},
		{{ID: "a", Algorithm: "HS256", Key: k.hs}, {ID: "a", Algorithm: "HS256", Key: k.hs}},
		{{ID: "", Algorithm: "HS256", Key: k.hs}, {ID: "b", Algorithm: "HS256", Key: k.hs}},
		nil,
	}
	for i, keys := range bad {
		if _, err := NewJWT(JWTConfig{Keys: keys}); err == nil {
			t.Errorf("key set %d accepted", i)
		}
	}
	// Private keys are reduced to public ones; PEM loading.
	a := sjJWT(t, JWTConfig{Keys: []JWTKey{{ID: "rs", Algorithm: "RS256", Key: k.rsa}}})
	if _, ok := a.keys.Load().byID["rs"].Key.(*rsa.PublicKey); !ok {
		t.Errorf("private RSA key kept")
	}
	der, _ := x509.MarshalPKIXPublicKey(k.ed.Public())
	key, err := JWTKeyFromPEM("ed", "EdDSA", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	a = sjJWT(t, JWTConfig{Keys: []JWTKey{key}})
	if _, err := a.Verify(sjSign(t, "EdDSA", "ed", k.ed, sjClaims(nil))); err != nil {
		t.Errorf("PEM key: %v", err)
	}
	if _, err := JWTKeyFromPEM("x", "RS256", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err == nil {
		t.Errorf("Ed25519 PEM accepted for RS256")
	}
	// SetKeys rotates atomically.
	if err := a.SetKeys([]JWTKey{{ID: "es", Algorithm: "ES256", Key: &k.ec.PublicKey}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(sjSign(t, "EdDSA", "ed", k.ed, sjClaims(nil))); !errors.Is(err, ErrJWTUnknownKey) {
		t.Errorf("retired key: %v", err)
	}
}

func TestJWTClaimsAndRoles(t *testing.T) {
	k := sjTestKeys(t)
	a := sjJWT(t, JWTConfig{RoleClaims: []string{"roles", "groups", "realm_access.roles", "scope", "https://example.com/claims/roles"}, IdentityClaim: "preferred_username"})
	tok := sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{
		"preferred_username":               "bob",
		"roles":                            []string{"reader", "writer"},
		"groups":                           []any{"ops", 7, "reader"},
		"realm_access":                     map[string]any{"roles": []string{"admin"}},
		"scope":                            "mqtt:pub mqtt:sub",
		"https://example.com/claims/roles": "auditor,viewer",
	}))
	id, err := a.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.Username != "bob" || strings.Join(id.Roles, ",") != "reader,writer,ops,7,admin,mqtt:pub,mqtt:sub,auditor,viewer" {
		t.Fatalf("identity %q roles %v", id.Username, id.Roles)
	}
	res := a.Authenticate(context.Background(), &broker.AuthRequest{Client: &broker.ClientInfo{}, Method: JWTMethod, Data: []byte(tok)})
	if res.Code != packet.Success || res.Username != "bob" || res.Attributes["roles"] != "reader,writer,ops,7,admin,mqtt:pub,mqtt:sub,auditor,viewer" {
		t.Fatalf("result %+v", res)
	}
}

// TestJWTAuthenticateCodes checks the reason codes of both ways to send a
// token, the user name policies, re-authentication and Handles.
func TestJWTAuthenticateCodes(t *testing.T) {
	k := sjTestKeys(t)
	good := sjSign(t, "ES256", "es", k.ec, sjClaims(nil))
	expired := sjSign(t, "ES256", "es", k.ec, sjClaims(map[string]any{"exp": sjEpoch.Add(-time.Hour).Unix()}))
	auth := func(a *JWT, req broker.AuthRequest) broker.AuthResult {
		if req.Client == nil {
			req.Client = &broker.ClientInfo{}
		}
		return a.Authenticate(context.Background(), &req)
	}
	a := sjJWT(t, JWTConfig{})
	cases := []struct {
		name string
		a    *JWT
		req  broker.AuthRequest
		want packet.ReasonCode
	}{
		{"method ok", a, broker.AuthRequest{Method: JWTMethod, Data: []byte(good)}, packet.Success},
		{"method expired", a, broker.AuthRequest{Method: JWTMethod, Data: []byte(expired)}, packet.NotAuthorized},
		{"method empty", a, broker.AuthRequest{Method: JWTMethod}, packet.NotAuthorized},
		{"method second step", a, broker.AuthRequest{Method: JWTMethod, Data: []byte(good), Step: 1}, packet.NotAuthorized},
		{"password ok", a, broker.AuthRequest{Password: []byte(good)}, packet.Success},
		{"password expired", a, broker.AuthRequest{Password: []byte(expired)}, packet.BadUserNameOrPassword},
		{"password garbage", a, broker.AuthRequest{Password: []byte("hunter2")}, packet.BadUserNameOrPassword},
		{"no password", a, broker.AuthRequest{}, packet.NotAuthorized},
		{"other method", a, broker.AuthRequest{Method: "SCRAM-SHA-256"}, packet.BadAuthenticationMethod},
		{"password disabled", sjJWT(t, JWTConfig{DisablePassword: true}), broker.AuthRequest{Password: []byte(good)}, packet.NotAuthorized},
		{"user must match, matches", sjJWT(t, JWTConfig{UsernamePolicy: UsernameMatchSubject}), broker.AuthRequest{Client: &broker.ClientInfo{Username: "alice"}, Password: []byte(good)}, packet.Success},
		{"user must match, differs", sjJWT(t, JWTConfig{UsernamePolicy: UsernameMatchSubject}), broker.AuthRequest{Client: &broker.ClientInfo{Username: "bob"}, Password: []byte(good)}, packet.BadUserNameOrPassword},
		{"fixed user, matches", sjJWT(t, JWTConfig{UsernamePolicy: UsernameFixed, Username: "jwt"}), broker.AuthRequest{Client: &broker.ClientInfo{Username: "jwt"}, Password: []byte(good)}, packet.Success},
		{"fixed user, differs", sjJWT(t, JWTConfig{UsernamePolicy: UsernameFixed, Username: "jwt"}), broker.AuthRequest{Client: &broker.ClientInfo{Username: "alice"}, Password: []byte(good)}, packet.BadUserNameOrPassword},
		{"reauth same identity", a, broker.AuthRequest{Client: &broker.ClientInfo{Username: "alice"}, Method: JWTMethod, Data: []byte(good), Reauth: true}, packet.Success},
		{"reauth other identity", a, broker.AuthRequest{Client: &broker.ClientInfo{Username: "bob"}, Method: JWTMethod, Data: []byte(good), Reauth: true}, packet.NotAuthorized},
	}
	for _, tc := range cases {
		if got := auth(tc.a, tc.req); got.Code != tc.want {
			t.Errorf("%s: %v (%s), want %v", tc.name, got.Code, got.Reason, tc.want)
		} else if got.Code == packet.Success && got.Username != "alice" {
			t.Errorf("%s: identity %q", tc.name, got.Username)
		}
	}
	if r := auth(a, broker.AuthRequest{Method: JWTMethod, Data: []byte(expired)}); r.Reason != "token expired" {
		t.Errorf("reason %q", r.Reason)
	}
	for _, h := range []struct {
		req  broker.AuthRequest
		want bool
	}{
		{broker.AuthRequest{Method: JWTMethod}, true},
		{broker.AuthRequest{Password: []byte(good)}, true},
		{broker.AuthRequest{Password: []byte("hunter2")}, false},
		{broker.AuthRequest{Password: []byte("a.b.c")}, false},
		{broker.AuthRequest{Method: "PLAIN"}, false},
	} {
		if got := a.Handles(&h.req); got != h.want {
			t.Errorf("Handles(%q, %q) = %v", h.req.Method, h.req.Password, got)
		}
	}
}

// sjPahoJWT answers no challenge: JWT has a single step.
type sjPahoJWT struct{}

func (sjPahoJWT) Authenticate(*paho.Auth) *paho.Auth {
	return &paho.Auth{ReasonCode: 0x18, Properties: &paho.AuthProperties{AuthMethod: JWTMethod}}
}
func (sjPahoJWT) Authenticated() {}

// TestJWTEndToEnd runs tokens against our broker from our client (method
// JWT with re-authentication, and as a 3.1.1 password), from paho.golang
// (AUTH packets), and from mosquitto_pub (3.1.1, -u/-P).
func TestJWTEndToEnd(t *testing.T) {
	k := sjTestKeys(t)
	now := time.Now() // the broker runs on the wall clock here
	claims := func(sub string, ttl time.Duration) jwt.MapClaims {
		return jwt.MapClaims{"sub": sub, "aud": "mqtt", "roles": []string{"sensor"}, "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix()}
	}
	a, err := NewJWT(JWTConfig{Keys: sjJWTKeys(k), Audience: []string{"mqtt"}, RoleClaims: []string{"roles"}})
	if err != nil {
		t.Fatal(err)
	}
	seen := &sjSeen{}
	addr := sjStartBroker(t, broker.Config{Authenticator: a, Authorizer: seen})

	var fetched atomic.Int32
	tokenFunc := func(context.Context) (string, error) {
		fetched.Add(1)
		return sjSign(t, "RS256", "rs", k.rsa, claims("dev-1", time.Hour)), nil
	}
	c, err := sjConnect(t, addr, client.Options{ClientID: "jwt-1", Auth: client.JWT(tokenFunc)})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if got := sjIdentity(t, c, seen, "jwt-1"); got != [2]string{"dev-1", "sensor"} {
		t.Fatalf("identity and roles %v", got)
	}
	if err := c.Reauthenticate(sjCtx(t)); err != nil {
		t.Fatalf("re-authenticate: %v", err)
	}
	if fetched.Load() != 2 {
		t.Fatalf("token fetched %d times, want once per connection and re-authentication", fetched.Load())
	}

	bad := func(context.Context) (string, error) {
		return sjSign(t, "RS256", "rs", k.rsa, claims("dev-2", -time.Hour)), nil
	}
	if _, err := sjConnect(t, addr, client.Options{ClientID: "jwt-2", Auth: client.JWT(bad)}); sjCode(err) != packet.NotAuthorized {
		t.Fatalf("expired token via AUTH method: %v, want 0x87", err)
	}
	failing := func(context.Context) (string, error) { return "", errors.New("identity provider unreachable") }
	if _, err := sjConnect(t, addr, client.Options{ClientID: "jwt-3", Auth: client.JWT(failing)}); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("token function error: %v", err)
	}

	// Our client, 3.1.1, token as password.
	tok := sjSign(t, "EdDSA", "ed", k.ed, claims("dev-4", time.Hour))
	c4, err := sjConnect(t, addr, client.Options{ClientID: "jwt-4", Version: packet.V311, Username: "ignored", Password: []byte(tok)})
	if err != nil {
		t.Fatalf("3.1.1 with token password: %v", err)
	}
	if got := sjIdentity(t, c4, seen, "jwt-4"); got[0] != "dev-4" {
		t.Fatalf("3.1.1 identity %q", got[0])
	}
	if _, err := sjConnect(t, addr, client.Options{ClientID: "jwt-5", Version: packet.V311, Username: "dev-5", Password: []byte("not a token")}); sjCode(err) != packet.BadUserNameOrPassword {
		t.Fatalf("3.1.1 with a bad password: %v, want return code 4", err)
	}

	// paho.golang over AUTH packets, with re-authentication.
	cp := &paho.Connect{ClientID: "paho-jwt", Properties: &paho.ConnectProperties{AuthMethod: JWTMethod, AuthData: []byte(sjSign(t, "ES256", "es", k.ec, claims("dev-6", time.Hour)))}}
	pc, ca, err := sjPaho(t, addr, cp, sjPahoJWT{})
	if err != nil || ca.ReasonCode != 0 || ca.Properties.AuthMethod != JWTMethod {
		t.Fatalf("paho connect: %+v %v", ca, err)
	}
	if _, err := pc.Publish(sjCtx(t), &paho.Publish{Topic: "p", QoS: 1, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if got := seen.get("paho-jwt"); got[0] != "dev-6" {
		t.Fatalf("paho identity %q", got[0])
	}
	ar, err := pc.Authenticate(sjCtx(t), &paho.Auth{ReasonCode: 0x19, Properties: &paho.AuthProperties{AuthMethod: JWTMethod, AuthData: []byte(sjSign(t, "ES256", "es", k.ec, claims("dev-6", 2*time.Hour)))}})
	if err != nil || !ar.Success {
		t.Fatalf("paho re-authentication: %+v %v", ar, err)
	}
	cp = &paho.Connect{ClientID: "paho-jwt-bad", Properties: &paho.ConnectProperties{AuthMethod: JWTMethod, AuthData: []byte(tok + "x")}}
	if _, ca, err := sjPaho(t, addr, cp, sjPahoJWT{}); err == nil || ca == nil || ca.ReasonCode != byte(packet.NotAuthorized) {
		t.Fatalf("paho with a tampered token: %+v %v, want CONNACK 0x87", ca, err)
	}

	// mosquitto_pub, MQTT 3.1.1, -u/-P.
	pub := sjNeed(t, "mosquitto_pub")
	host, port, _ := net.SplitHostPort(addr)
	run := func(id, password string) (string, error) {
		ctx := sjCtx(t)
		out, err := exec.CommandContext(ctx, pub, "-h", host, "-p", port, "-V", "mqttv311", "-i", id,
			"-u", "device", "-P", password, "-t", "m/x", "-m", "hello", "-q", "1").CombinedOutput()
		return string(out), err
	}
	if out, err := run("mosq-jwt", sjSign(t, "HS256", "hs", k.hs, claims("dev-7", time.Hour))); err != nil {
		t.Fatalf("mosquitto_pub with a token: %v: %s", err, out)
	}
	if got := seen.get("mosq-jwt"); got[0] != "dev-7" {
		t.Fatalf("mosquitto_pub identity %q", got[0])
	}
	out, err := run("mosq-bad", sjSign(t, "HS256", "hs", k.hs, claims("dev-8", -time.Hour)))
	if err == nil || !strings.Contains(strings.ToLower(out), "bad user name or password") {
		t.Fatalf("mosquitto_pub with an expired token: err %v, output %q; want refusal with return code 4", err, out)
	}
}
