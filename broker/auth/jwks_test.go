package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// sjClock is a settable clock.
type sjClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sjClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *sjClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sjIdP is an identity provider's JWKS endpoint over HTTPS.
type sjIdP struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys []jwkset.JWKMarshal
	down bool
	hits atomic.Int32
}

func sjNewIdP(t *testing.T) *sjIdP {
	p := &sjIdP{}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		p.hits.Add(1)
		p.mu.Lock()
		down, keys := p.down, p.keys
		p.mu.Unlock()
		if down {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: keys})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *sjIdP) url() string { return p.srv.URL + "/.well-known/jwks.json" }

// publish replaces the key set with the public halves of keys, by kid.
func (p *sjIdP) publish(t *testing.T, keys map[string]any) {
	t.Helper()
	var ms []jwkset.JWKMarshal
	for kid, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, USE: jwkset.UseSig}})
		if err != nil {
			t.Fatalf("jwk %s: %v", kid, err)
		}
		ms = append(ms, jwk.Marshal())
	}
	p.mu.Lock()
	p.keys = ms
	p.mu.Unlock()
}

func (p *sjIdP) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

func sjEC(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sjFederated(t *testing.T, cfg FederatedConfig) *FederatedJWT {
	t.Helper()
	f, err := NewFederatedJWT(cfg)
	if err != nil {
		t.Fatalf("NewFederatedJWT: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// sjFedToken is an ES256 token from issuer at the clock's time.
func sjFedToken(t *testing.T, clk *sjClock, iss, kid string, key *ecdsa.PrivateKey, extra map[string]any) string {
	c := jwt.MapClaims{"iss": iss, "sub": "alice", "aud": "mqtt", "iat": clk.Now().Unix(), "exp": clk.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		c[k] = v
	}
	return sjSign(t, "ES256", kid, key, c)
}

const sjIss = "https://idp.test"

// TestFederatedRotation rotates the provider's keys: a new kid is accepted
// after a refetch, refetches for unknown kids are rate limited, and a
// retired key stops working.
func TestFederatedRotation(t *testing.T) {
	idp := sjNewIdP(t)
	clk := &sjClock{t: sjEpoch}
	k1, k2, k3 := sjEC(t), sjEC(t), sjEC(t)
	idp.publish(t, map[string]any{"k1": k1})
	f := sjFederated(t, FederatedConfig{
		Issuers:         []FederatedIssuer{{Issuer: sjIss, Alias: "corp", JWKSURL: idp.url(), Audience: []string{"mqtt"}}},
		HTTPClient:      idp.srv.Client(),
		RefreshInterval: -1,
		Now:             clk.Now,
	})
	ctx := sjCtx(t)
	id, err := f.Verify(ctx, sjFedToken(t, clk, sjIss, "k1", k1, nil))
	if err != nil || id.Username != "corp:alice" || id.Subject != "alice" || id.Issuer != "corp" {
		t.Fatalf("k1: %+v %v", id, err)
	}
	if idp.hits.Load() != 1 {
		t.Fatalf("fetches: %d, want 1", idp.hits.Load())
	}

	idp.publish(t, map[string]any{"k2": k2})
	clk.Advance(DefaultJWKSMinRefetch)
	if _, err := f.Verify(ctx, sjFedToken(t, clk, sjIss, "k2", k2, nil)); err != nil {
		t.Fatalf("rotated key k2: %v", err)
	}
	if idp.hits.Load() != 2 {
		t.Fatalf("fetches: %d, want 2", idp.hits.Load())
	}

	// Another unknown kid right away: no refetch.
	idp.publish(t, map[string]any{"k2": k2, "k3": k3})
	clk.Advance(DefaultJWKSMinRefetch - time.Second)
	if _, err := f.Verify(ctx, sjFedToken(t, clk, sjIss, "k3", k3, nil)); !errors.Is(err, ErrJWTUnknownKey) {
		t.Fatalf("k3 within the refetch interval: %v, want unknown key", err)
	}
	if idp.hits.Load() != 2 {
		t.Fatalf("rate limit: %d fetches, want 2", idp.hits.Load())
	}
	clk.Advance(time.Second)
	if _, err := f.Verify(ctx, sjFedToken(t, clk, sjIss, "k3", k3, nil)); err != nil {
		t.Fatalf("k3 after the refetch interval: %v", err)
	}
	// k1 was retired by the rotation.
	if _, err := f.Verify(ctx, sjFedToken(t, clk, sjIss, "k1", k1, nil)); !errors.Is(err, ErrJWTUnknownKey) {
		t.Fatalf("retired k1: %v", err)
	}
	if st, _ := f.Status(sjIss); st.Keys != 2 || st.Failures != 0 || st.BreakerOpen {
		t.Fatalf("status %+v", st)
	}
}

// TestFederatedIdPDown takes the provider down: cached keys keep working,
// the circuit breaker opens after repeated failures and stops fetching,
// fallback keys work, and the breaker closes once the provider is back.
func TestFederatedIdPDown(t *testing.T) {
	idp := sjNewIdP(t)
	clk := &sjClock{t: sjEpoch}
	k1, static := sjEC(t), sjEC(t)
	idp.publish(t, map[string]any{"k1": k1})
	f := sjFederated(t, FederatedConfig{
		Issuers: []FederatedIssuer{{
			Issuer: sjIss, JWKSURL: idp.url(), Audience: []string{"mqtt"},
			FallbackKeys: []JWTKey{{ID: "static", Algorithm: "ES256", Key: &static.PublicKey}},
		}},
		HTTPClient:      idp.srv.Client(),
		RefreshInterval: -1,
		BreakerFailures: 3,
		BreakerCooldown: 5 * time.Minute,
		Now:             clk.Now,
	})
	ctx := sjCtx(t)
	if err := f.Refresh(ctx, sjIss); err != nil {
		t.Fatal(err)
	}
	idp.setDown(true)
	for i := 1; i <= 3; i++ {
		if err := f.Refresh(ctx, sjIss); err == nil || errors.Is(err, ErrJWKSCircuitOpen) {
			t.Fatalf("refresh %d while down: %v", i, err)
		}
	}
	st, _ := f.Status(sjIss)
	if !st.BreakerOpen || st.Failures != 3 || st.Keys != 1 || st.LastError == nil {
		t.Fatalf("status after 3 failures: %+v", st)
	}
	hits := idp.hits.Load()
	if err := f.Refresh(ctx, sjIss); !errors.Is(err, ErrJWKSCircuitOpen) {
		t.Fatalf("refresh with the breaker open: %v", err)
	}
	clk.Advance(time.Minute)
	if _, err := f.Verify(ctx, sjFedToken(t, clk, sjIss, "k9", k1, nil)); !errors.Is(err, ErrJWTUnknownKey) {
		t.Fatalf("unknown kid with the breaker open: %v", err)
	}
	if idp.hits.Load() != hits {
		t.Fatalf("fetched with the breaker open")
	}
	// Cached and fallback keys keep working.
	if id, err := f.Verify(ctx, sjFedToken(t, clk, sjIss, "k1", k1, nil)); err != nil || id.Username != sjIss+":alice" {
		t.Fatalf("cached key while down: %+v %v", id, err)
	}
	if _, err := f.Verify(ctx, sjFedToken(t, clk, sjIss, "static", static, nil)); err != nil {
		t.Fatalf("fallback key while down: %v", err)
	}

	// After the cool-down one fetch is tried; failing, it reopens.
	clk.Advance(5 * time.Minute)
	if err := f.Refresh(ctx, sjIss); err == nil || errors.Is(err, ErrJWKSCircuitOpen) {
		t.Fatalf("half-open refresh: %v", err)
	}
	if idp.hits.Load() != hits+1 {
		t.Fatalf("half-open: %d fetches, want one", idp.hits.Load()-hits)
	}
	if st, _ := f.Status(sjIss); !st.BreakerOpen {
		t.Fatalf("breaker not reopened: %+v", st)
	}
	clk.Advance(5 * time.Minute)
	idp.setDown(false)
	if err := f.Refresh(ctx, sjIss); err != nil {
		t.Fatalf("refresh after recovery: %v", err)
	}
	if st, _ := f.Status(sjIss); st.BreakerOpen || st.Failures != 0 || st.LastError != nil {
		t.Fatalf("status after recovery: %+v", st)
	}
}

// TestFederatedIssuers checks issuer selection: each issuer's tokens
// verify with its own keys only, ids are namespaced, unknown issuers fail.
func TestFederatedIssuers(t *testing.T) {
	clk := &sjClock{t: sjEpoch}
	ka, kb := sjEC(t), sjEC(t)
	f := sjFederated(t, FederatedConfig{
		Issuers: []FederatedIssuer{
			{Issuer: "https://a.test", Alias: "a", Audience: []string{"mqtt"}, FallbackKeys: []JWTKey{{ID: "k", Algorithm: "ES256", Key: &ka.PublicKey}}},
			{Issuer: "https://b.test", Alias: "b", AnyAudience: true, FallbackKeys: []JWTKey{{ID: "k", Algorithm: "ES256", Key: &kb.PublicKey}}},
		},
		Now: clk.Now,
	})
	ctx := sjCtx(t)
	for _, tc := range []struct {
		iss  string
		key  *ecdsa.PrivateKey
		want string
		err  error
	}{
		{"https://a.test", ka, "a:alice", nil},
		{"https://b.test", kb, "b:alice", nil},
		{"https://a.test", kb, "", jwt.ErrTokenSignatureInvalid},
		{"https://b.test", ka, "", jwt.ErrTokenSignatureInvalid},
		{"https://c.test", ka, "", ErrJWTUnknownIssuer},
		{"", ka, "", ErrJWTUnknownIssuer},
	} {
		id, err := f.Verify(ctx, sjFedToken(t, clk, tc.iss, "k", tc.key, nil))
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("iss %q: %v, want %v", tc.iss, err, tc.err)
			}
			continue
		}
		if err != nil || id.Username != tc.want {
			t.Errorf("iss %q: %+v %v, want %s", tc.iss, id, err, tc.want)
		}
	}
	// Audience: a's is checked, b accepts any.
	if _, err := f.Verify(ctx, sjFedToken(t, clk, "https://a.test", "k", ka, map[string]any{"aud": "web"})); !errors.Is(err, jwt.ErrTokenInvalidAudience) {
		t.Errorf("a, wrong audience: %v", err)
	}
	if _, err := f.Verify(ctx, sjFedToken(t, clk, "https://b.test", "k", kb, map[string]any{"aud": "web"})); err != nil {
		t.Errorf("b, any audience: %v", err)
	}
	res := f.Authenticate(ctx, &broker.AuthRequest{Client: &broker.ClientInfo{}, Method: JWTMethod, Data: []byte(sjFedToken(t, clk, "https://c.test", "k", ka, nil))})
	if res.Code != packet.NotAuthorized || res.Reason != "token issuer not accepted" {
		t.Errorf("unknown issuer: %v %q", res.Code, res.Reason)
	}
	res = f.Authenticate(ctx, &broker.AuthRequest{Client: &broker.ClientInfo{Username: "alice"}, Password: []byte(sjFedToken(t, clk, "https://c.test", "k", ka, nil))})
	if res.Code != packet.BadUserNameOrPassword {
		t.Errorf("unknown issuer as password: %v", res.Code)
	}
}

// TestFederatedModes checks where roles come from: nowhere
// (identity-only), claim-binding rules, or trusted role claims.
func TestFederatedModes(t *testing.T) {
	clk := &sjClock{t: sjEpoch}
	key := sjEC(t)
	fallback := []JWTKey{{ID: "k", Algorithm: "ES256", Key: &key.PublicKey}}
	rules := []ClaimRule{
		{Claim: "email", Match: MatchEquals, Value: "boss@corp.test", Roles: []string{"admin"}},
		{Claim: "email", Match: MatchSuffix, Value: "@corp.test", Roles: []string{"staff"}},
		{Claim: "sub", Match: MatchPrefix, Value: "dev-", Roles: []string{"device"}},
		{Claim: "org.groups", Match: MatchContains, Value: "ops", Roles: []string{"ops", "staff"}},
		{Claim: "org.groups", Match: MatchRegex, Value: `team-[0-9]+`, Roles: []string{"team"}},
		{Claim: "org.groups", Match: MatchRegex, Value: `team`, Roles: []string{"partial-regex-never"}},
		{Claim: "missing", Match: MatchEquals, Value: "", Roles: []string{"never"}},
	}
	f := sjFederated(t, FederatedConfig{
		Issuers: []FederatedIssuer{
			{Issuer: "https://id.test", Alias: "id", AnyAudience: true, FallbackKeys: fallback, Mode: FederationIdentityOnly},
			{Issuer: "https://bind.test", Alias: "bind", AnyAudience: true, FallbackKeys: fallback, Mode: FederationClaimBinding, Rules: rules},
			{Issuer: "https://trust.test", Alias: "trust", AnyAudience: true, FallbackKeys: fallback, Mode: FederationTrustedRoles, RoleClaims: []string{"realm_access.roles", "groups"}},
		},
		Now: clk.Now,
	})
	extra := map[string]any{
		"sub":          "dev-42",
		"email":        "boss@corp.test",
		"org":          map[string]any{"groups": []string{"netops", "team-7"}},
		"roles":        []string{"superuser"},
		"realm_access": map[string]any{"roles": []string{"reader"}},
		"groups":       []string{"writers"},
	}
	for _, tc := range []struct{ iss, user, roles string }{
		{"https://id.test", "id:dev-42", ""},
		{"https://bind.test", "bind:dev-42", "admin,staff,device,ops,team"},
		{"https://trust.test", "trust:dev-42", "reader,writers"},
	} {
		res := f.Authenticate(sjCtx(t), &broker.AuthRequest{Client: &broker.ClientInfo{}, Method: JWTMethod, Data: []byte(sjFedToken(t, clk, tc.iss, "k", key, extra))})
		if res.Code != packet.Success || res.Username != tc.user || res.Attributes["roles"] != tc.roles || res.Attributes["issuer"] != strings.TrimPrefix(strings.TrimSuffix(tc.iss, ".test"), "https://") {
			t.Errorf("%s: %v %q attributes %v (%s); want %q roles %q", tc.iss, res.Code, res.Username, res.Attributes, res.Reason, tc.user, tc.roles)
		}
	}
	// Password path with the user name bound to the subject (before
	// namespacing).
	g := sjFederated(t, FederatedConfig{
		Issuers:        []FederatedIssuer{{Issuer: "https://id.test", Alias: "id", AnyAudience: true, FallbackKeys: fallback}},
		Now:            clk.Now,
		UsernamePolicy: UsernameMatchSubject,
	})
	tok := sjFedToken(t, clk, "https://id.test", "k", key, nil)
	if r := g.Authenticate(sjCtx(t), &broker.AuthRequest{Client: &broker.ClientInfo{Username: "alice"}, Password: []byte(tok)}); r.Code != packet.Success || r.Username != "id:alice" {
		t.Errorf("password, matching user name: %v %q", r.Code, r.Username)
	}
	if r := g.Authenticate(sjCtx(t), &broker.AuthRequest{Client: &broker.ClientInfo{Username: "bob"}, Password: []byte(tok)}); r.Code != packet.BadUserNameOrPassword {
		t.Errorf("password, other user name: %v", r.Code)
	}
}

func TestFederatedConfigChecks(t *testing.T) {
	key := sjEC(t)
	fb := []JWTKey{{ID: "k", Algorithm: "ES256", Key: &key.PublicKey}}
	bad := []FederatedConfig{
		{},
		{Issuers: []FederatedIssuer{{Issuer: sjIss, JWKSURL: "http://idp.test/jwks", Audience: []string{"a"}}}},
		{Issuers: []FederatedIssuer{{Issuer: sjIss, JWKSURL: "https://idp.test/jwks"}}},
		{Issuers: []FederatedIssuer{{Issuer: sjIss, Audience: []string{"a"}}}},
		{Issuers: []FederatedIssuer{{Issuer: sjIss, AnyAudience: true, FallbackKeys: fb, Algorithms: []string{"none"}}}},
		{Issuers: []FederatedIssuer{{Issuer: sjIss, AnyAudience: true, FallbackKeys: fb, Rules: []ClaimRule{{Claim: "x", Match: MatchRegex, Value: "("}}}}},
		{Issuers: []FederatedIssuer{{Issuer: sjIss, AnyAudience: true, FallbackKeys: fb}, {Issuer: sjIss, AnyAudience: true, FallbackKeys: fb}}},
		{Issuers: []FederatedIssuer{{AnyAudience: true, FallbackKeys: fb}}},
	}
	for i, cfg := range bad {
		cfg.RefreshInterval = -1
		if f, err := NewFederatedJWT(cfg); err == nil {
			f.Close()
			t.Errorf("config %d accepted", i)
		}
	}
	f, err := NewFederatedJWT(FederatedConfig{
		Issuers:           []FederatedIssuer{{Issuer: sjIss, JWKSURL: "http://127.0.0.1:1/jwks", AnyAudience: true}},
		AllowInsecureHTTP: true,
		RefreshInterval:   -1,
	})
	if err != nil {
		t.Fatalf("http with AllowInsecureHTTP: %v", err)
	}
	f.Close()
}

// TestFederatedRedirectToHTTP refuses a key set redirected to plain http.
func TestFederatedRedirectToHTTP(t *testing.T) {
	srv := httptest.NewTLSServer(http.RedirectHandler("http://127.0.0.1:1/jwks", http.StatusFound))
	defer srv.Close()
	f := sjFederated(t, FederatedConfig{
		Issuers:         []FederatedIssuer{{Issuer: sjIss, JWKSURL: srv.URL, AnyAudience: true}},
		HTTPClient:      srv.Client(),
		RefreshInterval: -1,
	})
	if err := f.Refresh(sjCtx(t), sjIss); err == nil || !strings.Contains(err.Error(), "non-https") {
		t.Fatalf("redirect to http: %v", err)
	}
}

func TestParseJWKS(t *testing.T) {
	k := sjTestKeys(t)
	ec := sjEC(t)
	mk := func(key any, meta jwkset.JWKMetadataOptions, private bool) jwkset.JWKMarshal {
		jwk, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Metadata: meta, Marshal: jwkset.JWKMarshalOptions{Private: private}})
		if err != nil {
			t.Fatal(err)
		}
		return jwk.Marshal()
	}
	doc, _ := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{
		mk(&k.rsa.PublicKey, jwkset.JWKMetadataOptions{KID: "rs", ALG: jwkset.AlgRS256, USE: jwkset.UseSig}, false),
		mk(&ec.PublicKey, jwkset.JWKMetadataOptions{KID: "es"}, false),                             // alg inferred
		mk(k.ed.Public(), jwkset.JWKMetadataOptions{KID: "ed"}, false),                             // alg inferred
		mk(&ec.PublicKey, jwkset.JWKMetadataOptions{KID: "enc", USE: jwkset.UseEnc}, false),        // not for signatures
		mk(k.hs, jwkset.JWKMetadataOptions{KID: "oct", ALG: jwkset.AlgHS256}, true),                // symmetric: never from a key set
		mk(&k.rsa.PublicKey, jwkset.JWKMetadataOptions{KID: "ps", ALG: jwkset.AlgPS256}, false),    // algorithm not accepted
		mk(&ec.PublicKey, jwkset.JWKMetadataOptions{KID: "mismatch", ALG: jwkset.AlgRS256}, false), // alg does not fit the key
	}})
	set, err := parseJWKS(doc, []string{"RS256", "ES256", "EdDSA"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, key := range set.all {
		got = append(got, key.ID+"/"+key.Algorithm)
	}
	if strings.Join(got, " ") != "rs/RS256 es/ES256 ed/EdDSA" {
		t.Fatalf("keys %v", got)
	}
	if _, err := parseJWKS([]byte(`{"keys":[]}`), []string{"ES256"}); err == nil {
		t.Fatalf("empty key set accepted")
	}
	if _, err := parseJWKS([]byte(`not json`), []string{"ES256"}); err == nil {
		t.Fatalf("garbage accepted")
	}
}

// sjWaitFor polls cond until it holds or sjTimeout passes.
func sjWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(sjTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFederatedBackgroundRefresh checks the periodic refresh and the
// background refresh of a key set older than the cache TTL.
func TestFederatedBackgroundRefresh(t *testing.T) {
	idp := sjNewIdP(t)
	k1, k2 := sjEC(t), sjEC(t)
	idp.publish(t, map[string]any{"k1": k1})
	f := sjFederated(t, FederatedConfig{
		Issuers:         []FederatedIssuer{{Issuer: sjIss, JWKSURL: idp.url(), AnyAudience: true}},
		HTTPClient:      idp.srv.Client(),
		RefreshInterval: time.Millisecond,
	})
	idp.publish(t, map[string]any{"k2": k2})
	sjWaitFor(t, "the background refresh to pick up k2", func() bool {
		k := f.issuers[sjIss].keys.Load()
		return k != nil && k.byID["k2"].Key != nil
	})
	f.Close()

	clk := &sjClock{t: sjEpoch}
	g := sjFederated(t, FederatedConfig{
		Issuers:         []FederatedIssuer{{Issuer: sjIss, JWKSURL: idp.url(), AnyAudience: true}},
		HTTPClient:      idp.srv.Client(),
		RefreshInterval: -1,
		CacheTTL:        time.Hour,
		Now:             clk.Now,
	})
	if err := g.Refresh(sjCtx(t), sjIss); err != nil {
		t.Fatal(err)
	}
	hits := idp.hits.Load()
	clk.Advance(2 * time.Hour)
	if _, err := g.Verify(sjCtx(t), sjFedToken(t, clk, sjIss, "k2", k2, nil)); err != nil {
		t.Fatalf("stale keys must still verify: %v", err)
	}
	sjWaitFor(t, "the refresh of the stale key set", func() bool {
		st, _ := g.Status(sjIss)
		return idp.hits.Load() == hits+1 && st.FetchedAt.Equal(clk.Now())
	})
}

// TestFederatedEndToEnd connects our client with a federated token to our
// broker.
func TestFederatedEndToEnd(t *testing.T) {
	idp := sjNewIdP(t)
	key := sjEC(t)
	idp.publish(t, map[string]any{"k1": key})
	f := sjFederated(t, FederatedConfig{
		Issuers: []FederatedIssuer{{
			Issuer: sjIss, Alias: "corp", JWKSURL: idp.url(), Audience: []string{"mqtt"},
			Mode: FederationTrustedRoles, RoleClaims: []string{"groups"},
		}},
		HTTPClient:      idp.srv.Client(),
		RefreshInterval: -1,
	})
	seen := &sjSeen{}
	addr := sjStartBroker(t, broker.Config{Authenticator: f, Authorizer: seen})
	clk := &sjClock{t: time.Now()}
	tok := func(context.Context) (string, error) {
		return sjFedToken(t, clk, sjIss, "k1", key, map[string]any{"groups": []string{"plant-a", "ops"}}), nil
	}
	c, err := sjConnect(t, addr, client.Options{ClientID: "fed-1", Auth: client.JWT(tok)})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if got := sjIdentity(t, c, seen, "fed-1"); got != [2]string{"corp:alice", "plant-a,ops"} {
		t.Fatalf("identity and roles %v", got)
	}
	if err := c.Reauthenticate(sjCtx(t)); err != nil {
		t.Fatalf("re-authenticate: %v", err)
	}
	other := func(context.Context) (string, error) {
		return sjFedToken(t, clk, "https://elsewhere.test", "k1", key, nil), nil
	}
	if _, err := sjConnect(t, addr, client.Options{ClientID: "fed-2", Auth: client.JWT(other)}); sjCode(err) != packet.NotAuthorized {
		t.Fatalf("unknown issuer: %v, want 0x87", err)
	}
}
