package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/mqtt5go/mqtt5/broker"
)

// Federated JWT defaults.
const (
	DefaultJWKSRefreshInterval = 10 * time.Minute
	DefaultJWKSCacheTTL        = time.Hour
	DefaultJWKSMinRefetch      = 30 * time.Second
	DefaultJWKSBreakerFailures = 5
	DefaultJWKSBreakerCooldown = 5 * time.Minute
	DefaultJWKSFetchTimeout    = 10 * time.Second
	jwksMaxBody                = 1 << 20
)

// JWKS errors.
var (
	// ErrJWKSCircuitOpen is returned by Refresh while an issuer's key
	// endpoint is considered down.
	ErrJWKSCircuitOpen = errors.New("jwks: circuit breaker open")
	// ErrJWKSRateLimited is returned when a refetch for an unknown key id
	// comes sooner than MinRefetchInterval after the previous fetch.
	ErrJWKSRateLimited = errors.New("jwks: refetch rate limited")
)

// FederationMode says where a federated session's roles come from.
type FederationMode int

const (
	// FederationIdentityOnly grants no roles: the ACL decides by the
	// namespaced user name alone.
	FederationIdentityOnly FederationMode = iota
	// FederationClaimBinding grants the roles of the issuer's Rules whose
	// claim matches.
	FederationClaimBinding
	// FederationTrustedRoles takes the roles from the issuer's RoleClaims.
	FederationTrustedRoles
)

// ClaimMatch is how a ClaimRule compares a claim value.
type ClaimMatch int

const (
	MatchEquals ClaimMatch = iota
	MatchPrefix
	MatchSuffix
	MatchContains
	MatchRegex // Value is a regular expression (RE2), matched in full
)

// ClaimRule grants Roles when a value of Claim (a claim path as in
// JWTConfig.RoleClaims; for arrays, any element) matches Value.
type ClaimRule struct {
	Claim string
	Match ClaimMatch
	Value string
	Roles []string
}

// FederatedIssuer is one trusted identity provider.
type FederatedIssuer struct {
	// Issuer must equal the tokens' iss claim.
	Issuer string
	// Alias prefixes user names: "alias:sub". Default: Issuer.
	Alias string
	// JWKSURL is the provider's JSON Web Key Set, fetched over HTTPS.
	// It may be empty when FallbackKeys are given.
	JWKSURL string
	// Audience must contain one of the tokens' aud values; it is required
	// unless AnyAudience is set.
	Audience    []string
	AnyAudience bool
	// Algorithms accepted from the key set (default RS256, ES256, EdDSA).
	// A JWK without "alg" gets the algorithm of its key type.
	Algorithms []string
	// FallbackKeys verify tokens too, by kid, whether or not the key set
	// can be fetched.
	FallbackKeys []JWTKey
	// Mode, RoleClaims (default "roles") and Rules say which roles the
	// session gets.
	Mode       FederationMode
	RoleClaims []string
	Rules      []ClaimRule
	// IdentityClaim names the identity claim (default "sub").
	IdentityClaim string
}

// FederatedConfig configures a FederatedJWT.
type FederatedConfig struct {
	Issuers []FederatedIssuer
	// HTTPClient fetches the key sets (default: a client with
	// FetchTimeout). Redirects to plain http are refused.
	HTTPClient *http.Client
	// AllowInsecureHTTP permits http:// key set URLs.
	AllowInsecureHTTP bool
	// RefreshInterval is the period of the background refresh (default
	// 10 min; negative disables it).
	RefreshInterval time.Duration
	// CacheTTL is the age after which a key set is refreshed in the
	// background when a token needs it (default 1 h). A stale set keeps
	// being used while its provider is unreachable.
	CacheTTL time.Duration
	// MinRefetchInterval bounds the refetches caused by tokens with an
	// unknown kid: at most one per interval per issuer (default 30 s).
	MinRefetchInterval time.Duration
	// BreakerFailures consecutive failed fetches (default 5) open an
	// issuer's circuit breaker: no fetch for BreakerCooldown (default
	// 5 min), cached and fallback keys keep working. After the cool-down
	// one fetch is tried; its failure opens the breaker again.
	BreakerFailures int
	BreakerCooldown time.Duration
	// FetchTimeout bounds one fetch (default 10 s).
	FetchTimeout time.Duration
	// ClockSkew, Now, AllowNoExpiry, DisablePassword, UsernamePolicy and
	// Username are as in JWTConfig. UsernameMatchSubject compares with the
	// identity claim before namespacing.
	ClockSkew       time.Duration
	Now             func() time.Time
	AllowNoExpiry   bool
	DisablePassword bool
	// KeepConnectedAfterExpiry: as JWTConfig.
	KeepConnectedAfterExpiry bool
	UsernamePolicy           UsernamePolicy
	Username                 string
	// Logger receives fetch failures and breaker changes (default: none).
	Logger *slog.Logger
}

// FederatedJWT authenticates JWTs from several identity providers, each
// with its JSON Web Key Set. A token's issuer is read from its unverified
// iss claim, then the token is verified with that issuer's keys and checks
// only; an unknown issuer fails. The user name is namespaced by the
// issuer's alias ("alias:sub"), and the session gets the attributes
// "issuer" (the alias) and "roles" per the issuer's FederationMode. Tokens
// arrive as with JWT, with the same reason codes.
type FederatedJWT struct {
	front    jwtFront
	issuers  map[string]*fedIssuer
	client   *http.Client
	interval time.Duration
	ttl      time.Duration
	minFetch time.Duration
	failures int
	cooldown time.Duration
	timeout  time.Duration
	now      func() time.Time
	log      *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // guards closed and wg.Add
	closed bool
}

type fedRule struct {
	ClaimRule
	re *regexp.Regexp
}

type fedIssuer struct {
	alias    string
	url      string
	algs     []string
	mode     FederationMode
	roles    []string
	rules    []fedRule
	checks   jwtChecks
	fallback *jwtKeySet
	keys     atomic.Pointer[jwtKeySet] // fetched
	stale    atomic.Bool               // a background refresh is running

	fetchMu     sync.Mutex // one fetch at a time
	mu          sync.Mutex // guards the fields below
	fetchedAt   time.Time
	lastAttempt time.Time
	fails       int
	openUntil   time.Time
	lastErr     error
}

// NewFederatedJWT validates cfg and starts the background refresh, which
// fetches every key set at once and then every RefreshInterval. Close
// stops it.
func NewFederatedJWT(cfg FederatedConfig) (*FederatedJWT, error) {
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("jwks: no issuers")
	}
	f := &FederatedJWT{
		front:    jwtFront{disablePassword: cfg.DisablePassword, policy: cfg.UsernamePolicy, username: cfg.Username, skew: effectiveSkew(cfg.ClockSkew), now: nowOr(cfg.Now), keepAfterExpiry: cfg.KeepConnectedAfterExpiry},
		issuers:  map[string]*fedIssuer{},
		interval: jwksDefault(cfg.RefreshInterval, DefaultJWKSRefreshInterval),
		ttl:      jwksDefault(cfg.CacheTTL, DefaultJWKSCacheTTL),
		minFetch: jwksDefault(cfg.MinRefetchInterval, DefaultJWKSMinRefetch),
		failures: cfg.BreakerFailures,
		cooldown: jwksDefault(cfg.BreakerCooldown, DefaultJWKSBreakerCooldown),
		timeout:  jwksDefault(cfg.FetchTimeout, DefaultJWKSFetchTimeout),
		now:      cfg.Now,
		log:      cfg.Logger,
	}
	if f.failures <= 0 {
		f.failures = DefaultJWKSBreakerFailures
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	hc := http.Client{Timeout: f.timeout}
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	insecure := cfg.AllowInsecureHTTP
	next := hc.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" && !insecure {
			return errors.New("jwks: redirect to a non-https URL refused")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 5 {
			return errors.New("jwks: too many redirects")
		}
		return nil
	}
	f.client = &hc

	for _, ic := range cfg.Issuers {
		is, err := newFedIssuer(ic, cfg)
		if err != nil {
			return nil, err
		}
		if _, dup := f.issuers[ic.Issuer]; dup {
			return nil, fmt.Errorf("jwks: issuer %q listed twice", ic.Issuer)
		}
		f.issuers[ic.Issuer] = is
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	if f.interval > 0 {
		f.wg.Add(1)
		go f.loop()
	}
	return f, nil
}

func jwksDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func newFedIssuer(ic FederatedIssuer, cfg FederatedConfig) (*fedIssuer, error) {
	if ic.Issuer == "" {
		return nil, errors.New("jwks: issuer without Issuer")
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("jwks: issuer %q: %s", ic.Issuer, fmt.Sprintf(format, args...))
	}
	if len(ic.Audience) == 0 && !ic.AnyAudience {
		return nil, bad("no Audience (set AnyAudience to accept tokens for any audience)")
	}
	is := &fedIssuer{alias: ic.Alias, url: ic.JWKSURL, algs: ic.Algorithms, mode: ic.Mode, roles: ic.RoleClaims}
	if is.alias == "" {
		is.alias = ic.Issuer
	}
	if len(is.algs) == 0 {
		is.algs = []string{"RS256", "ES256", "EdDSA"}
	}
	for _, a := range is.algs {
		if !slices.Contains(jwtAlgorithms, a) {
			return nil, bad("unsupported algorithm %q", a)
		}
	}
	if len(is.roles) == 0 {
		is.roles = []string{"roles"}
	}
	if is.url != "" {
		u, err := url.Parse(is.url)
		if err != nil || u.Host == "" {
			return nil, bad("invalid JWKSURL %q", is.url)
		}
		switch {
		case u.Scheme == "https":
		case u.Scheme == "http" && cfg.AllowInsecureHTTP:
		default:
			return nil, bad("JWKSURL must be https (AllowInsecureHTTP permits http)")
		}
	} else if len(ic.FallbackKeys) == 0 {
		return nil, bad("neither JWKSURL nor FallbackKeys")
	}
	var err error
	if is.fallback, err = newJWTKeySet(ic.FallbackKeys, true); err != nil {
		return nil, bad("%v", err)
	}
	for _, r := range ic.Rules {
		fr := fedRule{ClaimRule: r}
		if r.Match == MatchRegex {
			if fr.re, err = regexp.Compile("^(?:" + r.Value + ")$"); err != nil {
				return nil, bad("rule on %q: %v", r.Claim, err)
			}
		}
		is.rules = append(is.rules, fr)
	}
	is.checks = newJWTChecks(ic.Issuer, ic.Audience, cfg.ClockSkew, cfg.Now, cfg.AllowNoExpiry, ic.IdentityClaim)
	return is, nil
}

// Close stops the background refresh and waits for fetches in progress.
func (f *FederatedJWT) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
	return nil
}

func (f *FederatedJWT) loop() {
	defer f.wg.Done()
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		for _, is := range f.issuers {
			if is.url != "" {
				f.refresh(f.ctx, is, false)
			}
		}
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh fetches the key set of issuer now, unless its circuit breaker is
// open.
func (f *FederatedJWT) Refresh(ctx context.Context, issuer string) error {
	is := f.issuers[issuer]
	if is == nil {
		return fmt.Errorf("%w %q", ErrJWTUnknownIssuer, issuer)
	}
	if is.url == "" {
		return fmt.Errorf("jwks: issuer %q has no JWKSURL", issuer)
	}
	return f.refresh(ctx, is, false)
}

// JWKSStatus describes one issuer's key cache.
type JWKSStatus struct {
	Keys        int       // keys from the key set
	FetchedAt   time.Time // last successful fetch
	Failures    int       // consecutive failed fetches
	BreakerOpen bool      // fetching suspended until OpenUntil
	OpenUntil   time.Time
	LastError   error
}

// Status returns the key cache state of issuer.
func (f *FederatedJWT) Status(issuer string) (JWKSStatus, bool) {
	is := f.issuers[issuer]
	if is == nil {
		return JWKSStatus{}, false
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	st := JWKSStatus{FetchedAt: is.fetchedAt, Failures: is.fails, OpenUntil: is.openUntil, LastError: is.lastErr}
	st.BreakerOpen = f.now().Before(is.openUntil)
	if k := is.keys.Load(); k != nil {
		st.Keys = len(k.all)
	}
	return st, true
}

// refresh fetches is's key set. onDemand fetches (for an unknown kid) are
// rate limited; every fetch respects the circuit breaker.
func (f *FederatedJWT) refresh(ctx context.Context, is *fedIssuer, onDemand bool) error {
	is.fetchMu.Lock()
	defer is.fetchMu.Unlock()
	now := f.now()
	is.mu.Lock()
	if now.Before(is.openUntil) {
		is.mu.Unlock()
		return ErrJWKSCircuitOpen
	}
	if onDemand && !is.lastAttempt.IsZero() && now.Sub(is.lastAttempt) < f.minFetch {
		is.mu.Unlock()
		return ErrJWKSRateLimited
	}
	is.lastAttempt = now
	is.mu.Unlock()

	set, err := f.fetch(ctx, is)

	is.mu.Lock()
	defer is.mu.Unlock()
	if err != nil {
		is.fails++
		is.lastErr = err
		if is.fails >= f.failures {
			is.openUntil = f.now().Add(f.cooldown)
			f.log.Warn("jwks: circuit breaker open", "issuer", is.alias, "failures", is.fails, "until", is.openUntil, "err", err)
		} else {
			f.log.Warn("jwks: fetch failed", "issuer", is.alias, "failures", is.fails, "err", err)
		}
		return err
	}
	is.fails, is.openUntil, is.lastErr = 0, time.Time{}, nil
	is.fetchedAt = now
	is.keys.Store(set)
	return nil
}

func (f *FederatedJWT) fetch(ctx context.Context, is *fedIssuer) (*jwtKeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, is.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, jwksMaxBody))
		return nil, fmt.Errorf("jwks: GET %s: %s", is.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > jwksMaxBody {
		return nil, fmt.Errorf("jwks: %s: key set larger than %d bytes", is.url, jwksMaxBody)
	}
	return parseJWKS(body, is.algs)
}

// parseJWKS turns a JWK Set document into verification keys: public
// signature keys of an accepted algorithm. Other keys are skipped; a set
// without any usable key is an error.
func parseJWKS(body []byte, algs []string) (*jwtKeySet, error) {
	var doc jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var keys []JWTKey
	for _, m := range doc.Keys {
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue
		}
		k := JWTKey{ID: m.KID, Algorithm: string(m.ALG), Key: jwk.Key()}
		if k.Algorithm == "" {
			k.Algorithm = jwkAlgorithm(k.Key)
		}
		if !slices.Contains(algs, k.Algorithm) {
			continue
		}
		keys = append(keys, k)
	}
	set, _ := newJWTKeySet(keys, false)
	if len(set.all) == 0 {
		return nil, errors.New("jwks: no usable signature key in the key set")
	}
	return set, nil
}

// jwkAlgorithm is the algorithm of a JWK without "alg", by key type.
func jwkAlgorithm(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return "RS256"
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return "ES256"
		}
	case ed25519.PublicKey:
		return "EdDSA"
	}
	return ""
}

// resolve finds the key for a token of is: fetched keys first, then the
// fallback keys; an unknown kid triggers a (rate-limited) refetch.
func (f *FederatedJWT) resolve(ctx context.Context, is *fedIssuer, h jwtHeader) (JWTKey, error) {
	f.refreshIfStale(is)
	if k, err := is.pick(h); err == nil || is.url == "" || !errors.Is(err, ErrJWTUnknownKey) {
		return k, err
	}
	f.refresh(ctx, is, true)
	return is.pick(h)
}

func (is *fedIssuer) pick(h jwtHeader) (JWTKey, error) {
	fetched := is.keys.Load()
	if h.hasKID {
		if fetched != nil {
			if k, ok := fetched.byID[h.kid]; ok {
				return k, nil
			}
		}
		return is.fallback.pick(h)
	}
	var all []JWTKey
	if fetched != nil {
		all = append(all, fetched.all...)
	}
	all = append(all, is.fallback.all...)
	switch len(all) {
	case 0:
		return JWTKey{}, ErrJWTUnknownKey
	case 1:
		return all[0], nil
	}
	return JWTKey{}, ErrJWTAmbiguousKey
}

// refreshIfStale starts a background fetch when is's key set is older than
// the cache TTL; tokens are verified meanwhile with the keys at hand.
func (f *FederatedJWT) refreshIfStale(is *fedIssuer) {
	if is.url == "" {
		return
	}
	is.mu.Lock()
	fresh := !is.fetchedAt.IsZero() && f.now().Sub(is.fetchedAt) < f.ttl
	is.mu.Unlock()
	if fresh || is.keys.Load() == nil || !is.stale.CompareAndSwap(false, true) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		is.stale.Store(false)
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer is.stale.Store(false)
		f.refresh(f.ctx, is, true)
	}()
}

// Verify checks token against its issuer and returns the identity.
func (f *FederatedJWT) Verify(ctx context.Context, token string) (*JWTIdentity, error) {
	h, err := peekJWT(token)
	if err != nil {
		return nil, err
	}
	is := f.issuers[h.iss]
	if is == nil {
		return nil, fmt.Errorf("%w %q", ErrJWTUnknownIssuer, h.iss)
	}
	key, err := f.resolve(ctx, is, h)
	if err != nil {
		return nil, err
	}
	claims, sub, err := is.checks.verify(token, key)
	if err != nil {
		return nil, err
	}
	id := &JWTIdentity{Username: is.alias + ":" + sub, Subject: sub, Issuer: is.alias, Claims: claims}
	switch is.mode {
	case FederationTrustedRoles:
		id.Roles = jwtRoles(claims, is.roles)
	case FederationClaimBinding:
		id.Roles = is.bind(claims)
	}
	return id, nil
}

// bind returns the roles of the rules that match claims.
func (is *fedIssuer) bind(claims map[string]any) []string {
	var out []string
	for _, r := range is.rules {
		v, ok := jwtClaim(claims, r.Claim)
		if !ok {
			continue
		}
		if !slices.ContainsFunc(jwtValues(v), r.matches) {
			continue
		}
		for _, role := range r.Roles {
			if role != "" && !strings.Contains(role, ",") && !slices.Contains(out, role) {
				out = append(out, role)
			}
		}
	}
	return out
}

func (r *fedRule) matches(s string) bool {
	switch r.Match {
	case MatchEquals:
		return s == r.Value
	case MatchPrefix:
		return strings.HasPrefix(s, r.Value)
	case MatchSuffix:
		return strings.HasSuffix(s, r.Value)
	case MatchContains:
		return strings.Contains(s, r.Value)
	case MatchRegex:
		return r.re.MatchString(s)
	}
	return false
}

// Handles reports whether req belongs to this authenticator (as
// JWT.Handles).
func (f *FederatedJWT) Handles(req *broker.AuthRequest) bool { return f.front.handles(req) }

// Authenticate implements broker.Authenticator.
func (f *FederatedJWT) Authenticate(ctx context.Context, req *broker.AuthRequest) broker.AuthResult {
	return f.front.authenticate(ctx, req, f.Verify)
}
