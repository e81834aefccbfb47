package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// JWTMethod is the MQTT 5 Authentication Method whose Authentication Data
// is a JSON Web Token in compact serialisation.
const JWTMethod = "JWT"

// DefaultJWTClockSkew is the default tolerance of the exp, nbf and iat
// checks.
const DefaultJWTClockSkew = 60 * time.Second

// Token verification errors, wrapped by Verify; jwt/v5's errors
// (jwt.ErrTokenExpired, jwt.ErrTokenSignatureInvalid ...) are wrapped too.
var (
	ErrJWTUnknownKey    = errors.New("jwt: no key with the token's key id")
	ErrJWTAmbiguousKey  = errors.New("jwt: token without key id and more than one key configured")
	ErrJWTUnknownIssuer = errors.New("jwt: unknown issuer")
	ErrJWTNoIdentity    = errors.New("jwt: identity claim missing or not a string")
)

// jwtAlgorithms are the signature algorithms JWT keys may use.
var jwtAlgorithms = []string{"HS256", "RS256", "ES256", "EdDSA"}

// JWTKey is one verification key with the only algorithm it accepts.
type JWTKey struct {
	// ID is the key id (JWS "kid" header). It may be empty only in a key
	// set of one key.
	ID string
	// Algorithm is "HS256", "RS256", "ES256" or "EdDSA". A token signed
	// with any other algorithm is refused for this key.
	Algorithm string
	// Key is a []byte secret of at least 32 bytes (HS256), an
	// *rsa.PublicKey of at least 2048 bits (RS256), a P-256
	// *ecdsa.PublicKey (ES256) or an ed25519.PublicKey (EdDSA). The
	// corresponding private keys are accepted and reduced to their public
	// halves.
	Key any
}

// normalize checks that the key fits its algorithm and keeps only what
// verification needs.
func (k JWTKey) normalize() (JWTKey, error) {
	bad := func(why string) (JWTKey, error) {
		return JWTKey{}, fmt.Errorf("jwt key %q (%s): %s", k.ID, k.Algorithm, why)
	}
	switch k.Algorithm {
	case "HS256":
		b, ok := k.Key.([]byte)
		if !ok {
			return bad("want a []byte secret")
		}
		if len(b) < 32 {
			return bad("secret shorter than 32 bytes")
		}
		k.Key = bytes.Clone(b)
	case "RS256":
		switch key := k.Key.(type) {
		case *rsa.PrivateKey:
			k.Key = &key.PublicKey
		case *rsa.PublicKey:
		default:
			return bad("want an *rsa.PublicKey")
		}
		if k.Key.(*rsa.PublicKey).N.BitLen() < 2048 {
			return bad("RSA key shorter than 2048 bits")
		}
	case "ES256":
		switch key := k.Key.(type) {
		case *ecdsa.PrivateKey:
			k.Key = &key.PublicKey
		case *ecdsa.PublicKey:
		default:
			return bad("want an *ecdsa.PublicKey")
		}
		if k.Key.(*ecdsa.PublicKey).Curve != elliptic.P256() {
			return bad("ES256 needs a P-256 key")
		}
	case "EdDSA":
		switch key := k.Key.(type) {
		case ed25519.PrivateKey:
			k.Key = key.Public().(ed25519.PublicKey)
		case ed25519.PublicKey:
			if len(key) != ed25519.PublicKeySize {
				return bad("malformed Ed25519 key")
			}
		default:
			return bad("want an ed25519.PublicKey")
		}
	default:
		return bad("unsupported algorithm (want HS256, RS256, ES256 or EdDSA)")
	}
	return k, nil
}

// JWTKeyFromPEM parses a public key for alg (RS256, ES256 or EdDSA) from
// PEM: a PKIX "PUBLIC KEY", a PKCS #1 "RSA PUBLIC KEY" or a "CERTIFICATE".
func JWTKeyFromPEM(id, alg string, data []byte) (JWTKey, error) {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return JWTKey{}, fmt.Errorf("jwt key %q: no PEM block", id)
	}
	var key any
	var err error
	switch blk.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(blk.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(blk.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
			key = c.PublicKey
		}
	default:
		return JWTKey{}, fmt.Errorf("jwt key %q: unsupported PEM block %q", id, blk.Type)
	}
	if err != nil {
		return JWTKey{}, fmt.Errorf("jwt key %q: %w", id, err)
	}
	return JWTKey{ID: id, Algorithm: alg, Key: key}.normalize()
}

// jwtKeySet is an immutable set of keys, by id.
type jwtKeySet struct {
	byID map[string]JWTKey
	all  []JWTKey
}

func newJWTKeySet(keys []JWTKey, strict bool) (*jwtKeySet, error) {
	s := &jwtKeySet{byID: make(map[string]JWTKey, len(keys))}
	for _, k := range keys {
		k, err := k.normalize()
		if err != nil {
			if strict {
				return nil, err
			}
			continue
		}
		if _, dup := s.byID[k.ID]; dup {
			if strict {
				return nil, fmt.Errorf("jwt: key id %q listed twice", k.ID)
			}
			continue
		}
		if k.ID == "" && len(keys) > 1 && strict {
			return nil, errors.New("jwt: a key without id must be the only key")
		}
		s.byID[k.ID] = k
		s.all = append(s.all, k)
	}
	return s, nil
}

// jwtHeader is what Verify reads from a token before checking it.
type jwtHeader struct {
	kid    string
	hasKID bool
	iss    string
}

// peekJWT decodes a token's header and claims without verifying them.
func peekJWT(token string) (jwtHeader, error) {
	t, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		return jwtHeader{}, err
	}
	var h jwtHeader
	if v, ok := t.Header["kid"]; ok {
		s, ok := v.(string)
		if !ok {
			return jwtHeader{}, fmt.Errorf("%w: kid is not a string", jwt.ErrTokenMalformed)
		}
		h.kid, h.hasKID = s, true
	}
	if c, ok := t.Claims.(jwt.MapClaims); ok {
		h.iss, _ = c["iss"].(string)
	}
	return h, nil
}

// looksLikeJWT reports whether b has the shape of a compact JWS whose
// header names an algorithm.
func looksLikeJWT(b []byte) bool {
	if bytes.Count(b, []byte{'.'}) != 2 {
		return false
	}
	seg := b[:bytes.IndexByte(b, '.')]
	raw := make([]byte, base64.RawURLEncoding.DecodedLen(len(seg)))
	n, err := base64.RawURLEncoding.Decode(raw, seg)
	if err != nil {
		return false
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	return json.Unmarshal(raw[:n], &hdr) == nil && hdr.Alg != ""
}

// pick chooses the key for a token: by kid, or the only key when the
// token has none.
func (s *jwtKeySet) pick(h jwtHeader) (JWTKey, error) {
	if s == nil {
		return JWTKey{}, ErrJWTUnknownKey
	}
	if h.hasKID {
		if k, ok := s.byID[h.kid]; ok {
			return k, nil
		}
		return JWTKey{}, fmt.Errorf("%w %q", ErrJWTUnknownKey, h.kid)
	}
	if len(s.all) == 1 {
		return s.all[0], nil
	}
	return JWTKey{}, ErrJWTAmbiguousKey
}

// jwtChecks are the claim checks of one issuer.
type jwtChecks struct {
	issuer        string
	audience      []string
	skew          time.Duration
	now           func() time.Time
	requireExp    bool
	identityClaim string
}

// verify checks token's signature with key (and only with key's
// algorithm) and its claims.
func (c *jwtChecks) verify(token string, key JWTKey) (jwt.MapClaims, string, error) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{key.Algorithm}),
		jwt.WithLeeway(c.skew),
		jwt.WithIssuedAt(),
	}
	if c.now != nil {
		opts = append(opts, jwt.WithTimeFunc(c.now))
	}
	if c.issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.issuer))
	}
	if len(c.audience) > 0 {
		opts = append(opts, jwt.WithAudience(c.audience...))
	}
	if c.requireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(opts...).ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if kid, ok := t.Header["kid"].(string); ok && kid != key.ID {
			return nil, ErrJWTUnknownKey
		}
		return key.Key, nil
	})
	if err != nil {
		return nil, "", err
	}
	id, _ := jwtClaim(claims, c.identityClaim)
	s, _ := id.(string)
	if s == "" || strings.ContainsFunc(s, unicode.IsControl) {
		return nil, "", fmt.Errorf("%w (%s)", ErrJWTNoIdentity, c.identityClaim)
	}
	return claims, s, nil
}

// jwtClaim finds a claim by path: the whole path as a claim name first
// (names such as "https://example.com/roles" contain dots), then
// dot-separated steps into nested objects ("realm_access.roles").
func jwtClaim(m map[string]any, path string) (any, bool) {
	if v, ok := m[path]; ok {
		return v, true
	}
	for i := 0; i < len(path); i++ {
		if path[i] != '.' {
			continue
		}
		if sub, ok := m[path[:i]].(map[string]any); ok {
			if v, ok := jwtClaim(sub, path[i+1:]); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// jwtValues flattens a claim value to strings: a string, the strings
// of an array, or a number or boolean in JSON form.
func jwtValues(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			switch e.(type) {
			case string, float64, bool, json.Number:
				out = append(out, jwtValues(e)...)
			}
		}
		return out
	case []string:
		return v
	case float64, bool, json.Number:
		return []string{fmt.Sprint(v)}
	}
	return nil
}

// jwtRoles collects the roles named by the claims at paths: arrays of
// strings, or strings of names separated by commas or spaces (OAuth
// "scope"). Duplicates are dropped, the order kept.
func jwtRoles(claims map[string]any, paths []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range paths {
		v, ok := jwtClaim(claims, p)
		if !ok {
			continue
		}
		for _, s := range jwtValues(v) {
			for _, r := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
				if !seen[r] {
					seen[r] = true
					out = append(out, r)
				}
			}
		}
	}
	return out
}

// jwtReason is the Reason String of a refused token.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, ErrJWTUnknownIssuer):
		return "token issuer not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token audience not accepted"
	}
	return "invalid token"
}

// JWTIdentity is a verified token's outcome.
type JWTIdentity struct {
	// Username is the client identity: the identity claim, prefixed with
	// the issuer alias and ':' by FederatedJWT.
	Username string
	// Subject is the identity claim's value.
	Subject string
	// Issuer is the issuer alias (FederatedJWT only).
	Issuer string
	// Roles are the roles granted to the session.
	Roles []string
	// Claims are the token's claims.
	Claims map[string]any
}

// UsernamePolicy says what CONNECT User Name must accompany a token sent
// as the CONNECT password.
type UsernamePolicy int

const (
	// UsernameAny accepts any user name, or none.
	UsernameAny UsernamePolicy = iota
	// UsernameMatchSubject requires the user name to equal the token's
	// identity claim (sub by default).
	UsernameMatchSubject
	// UsernameFixed requires the configured user name (which may be empty).
	UsernameFixed
)

// jwtFront is the MQTT side shared by JWT and FederatedJWT.
type jwtFront struct {
	disablePassword bool
	policy          UsernamePolicy
	username        string
	// skew is the accepted clock skew; keepAfterExpiry leaves the
	// connection open when the token's exp passes.
	skew            time.Duration
	now             func() time.Time
	keepAfterExpiry bool
}

func (f *jwtFront) handles(req *broker.AuthRequest) bool {
	switch req.Method {
	case JWTMethod:
		return true
	case "":
		return !f.disablePassword && looksLikeJWT(req.Password)
	}
	return false
}

func (f *jwtFront) authenticate(ctx context.Context, req *broker.AuthRequest, verify func(context.Context, string) (*JWTIdentity, error)) broker.AuthResult {
	var token string
	fail := packet.NotAuthorized
	switch req.Method {
	case JWTMethod:
		if req.Step != 0 {
			return broker.AuthResult{Code: packet.NotAuthorized, Reason: "JWT authentication has a single step"}
		}
		token = string(req.Data)
	case "":
		if f.disablePassword {
			return broker.AuthResult{Code: packet.NotAuthorized, Reason: "authentication method JWT required"}
		}
		if len(req.Password) == 0 {
			return broker.AuthResult{Code: packet.NotAuthorized, Reason: "token required as password"}
		}
		fail = packet.BadUserNameOrPassword
		token = string(req.Password)
	default:
		return broker.AuthResult{Code: packet.BadAuthenticationMethod, Reason: "authentication method not supported"}
	}
	if token == "" {
		return broker.AuthResult{Code: fail, Reason: "token required"}
	}
	id, err := verify(ctx, token)
	if err != nil {
		return broker.AuthResult{Code: fail, Reason: jwtReason(err)}
	}
	if req.Method == "" && req.Client != nil {
		switch {
		case f.policy == UsernameMatchSubject && req.Client.Username != id.Subject,
			f.policy == UsernameFixed && req.Client.Username != f.username:
			return broker.AuthResult{Code: fail, Reason: "user name not accepted with this token"}
		}
	}
	if req.Reauth && req.Client != nil && req.Client.Username != id.Username {
		return broker.AuthResult{Code: packet.NotAuthorized, Reason: "re-authentication under another identity"}
	}
	attrs := map[string]string{}
	if len(id.Roles) > 0 {
		attrs["roles"] = strings.Join(id.Roles, ",")
	}
	if id.Issuer != "" {
		attrs["issuer"] = id.Issuer
	}
	res := broker.AuthResult{Code: packet.Success, Username: id.Username, Attributes: attrs}
	if !f.keepAfterExpiry {
		// The connection ends when the token expires, unless a
		// re-authentication with a fresh token comes first.
		if exp, err := jwt.MapClaims(id.Claims).GetExpirationTime(); err == nil && exp != nil {
			// The time left on the verifier's clock, from now on the
			// broker's.
			res.Expires = time.Now().Add(exp.Time.Add(f.skew).Sub(f.now()))
		}
	}
	return res
}

// JWTConfig configures a JWT authenticator.
type JWTConfig struct {
	// Keys is the key set; a token's "kid" header selects its key, and a
	// token without kid is accepted only when the set has exactly one key.
	Keys []JWTKey
	// Issuer, when set, must equal the token's iss claim.
	Issuer string
	// Audience, when set, must contain one of the token's aud values.
	Audience []string
	// ClockSkew is the tolerance of the exp, nbf and iat checks. Default
	// 60 s; negative means none.
	ClockSkew time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AllowNoExpiry accepts tokens without exp claim.
	AllowNoExpiry bool
	// IdentityClaim names the claim that becomes the client identity
	// (default "sub").
	IdentityClaim string
	// RoleClaims are claim paths ("roles", "groups", "realm_access.roles",
	// "scope") whose values become the session's roles: attribute "roles",
	// comma-separated.
	RoleClaims []string
	// DisablePassword refuses tokens sent as the CONNECT password; only
	// Authentication Method "JWT" is then accepted.
	DisablePassword bool
	// KeepConnectedAfterExpiry leaves a connection open when its token's
	// exp (plus ClockSkew) passes. By default the broker then ends it with
	// DISCONNECT 0x87 Not authorized, unless the client re-authenticated
	// with a fresh token before.
	KeepConnectedAfterExpiry bool
	// UsernamePolicy and Username constrain the CONNECT User Name sent with
	// a token in the password.
	UsernamePolicy UsernamePolicy
	Username       string
}

// JWT authenticates clients with JSON Web Tokens signed with HS256, RS256,
// ES256 or EdDSA (golang-jwt/jwt/v5). The token arrives as the
// Authentication Data of Authentication Method "JWT" (MQTT 5, single step,
// also for re-authentication) or as the CONNECT password (any protocol
// version, including 3.1.1).
//
// The key is chosen by the token's kid and verifies only with its own
// algorithm: "none", and a token whose header names another algorithm
// than its key's (such as HS256 with an RSA public key as the secret),
// are refused. exp (required unless AllowNoExpiry), nbf and iat are
// checked with ClockSkew, iss and aud when configured.
//
// A refused token gets Not Authorized (0x87) under the JWT method, since
// the credential is not a user name or password, and Bad User Name or
// Password (0x86; 3.1.1 return code 4) as a CONNECT password.
type JWT struct {
	front  jwtFront
	checks jwtChecks
	roles  []string
	keys   atomic.Pointer[jwtKeySet]
}

// NewJWT returns a JWT authenticator.
func NewJWT(cfg JWTConfig) (*JWT, error) {
	a := &JWT{
		front:  jwtFront{disablePassword: cfg.DisablePassword, policy: cfg.UsernamePolicy, username: cfg.Username, skew: effectiveSkew(cfg.ClockSkew), now: nowOr(cfg.Now), keepAfterExpiry: cfg.KeepConnectedAfterExpiry},
		checks: newJWTChecks(cfg.Issuer, cfg.Audience, cfg.ClockSkew, cfg.Now, cfg.AllowNoExpiry, cfg.IdentityClaim),
		roles:  cfg.RoleClaims,
	}
	if err := a.SetKeys(cfg.Keys); err != nil {
		return nil, err
	}
	return a, nil
}

// effectiveSkew is the clock skew the checks apply for a configured one.
func effectiveSkew(skew time.Duration) time.Duration {
	switch {
	case skew == 0:
		return DefaultJWTClockSkew
	case skew < 0:
		return 0
	}
	return skew
}

// nowOr returns now, or time.Now when nil.
func nowOr(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

func newJWTChecks(iss string, aud []string, skew time.Duration, now func() time.Time, noExp bool, idClaim string) jwtChecks {
	skew = effectiveSkew(skew)
	if idClaim == "" {
		idClaim = "sub"
	}
	return jwtChecks{issuer: iss, audience: aud, skew: skew, now: now, requireExp: !noExp, identityClaim: idClaim}
}

// SetKeys replaces the key set atomically (key rotation).
func (a *JWT) SetKeys(keys []JWTKey) error {
	if len(keys) == 0 {
		return errors.New("jwt: no keys")
	}
	s, err := newJWTKeySet(keys, true)
	if err != nil {
		return err
	}
	a.keys.Store(s)
	return nil
}

// Verify checks token and returns the identity it carries.
func (a *JWT) Verify(token string) (*JWTIdentity, error) {
	h, err := peekJWT(token)
	if err != nil {
		return nil, err
	}
	key, err := a.keys.Load().pick(h)
	if err != nil {
		return nil, err
	}
	claims, sub, err := a.checks.verify(token, key)
	if err != nil {
		return nil, err
	}
	return &JWTIdentity{Username: sub, Subject: sub, Roles: jwtRoles(claims, a.roles), Claims: claims}, nil
}

// Handles reports whether req belongs to this authenticator: the JWT
// Authentication Method, or no method and a password shaped like a JWT
// (unless DisablePassword).
func (a *JWT) Handles(req *broker.AuthRequest) bool { return a.front.handles(req) }

// Authenticate implements broker.Authenticator.
func (a *JWT) Authenticate(ctx context.Context, req *broker.AuthRequest) broker.AuthResult {
	return a.front.authenticate(ctx, req, func(_ context.Context, t string) (*JWTIdentity, error) { return a.Verify(t) })
}
