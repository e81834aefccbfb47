package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/auth"
)

// authFlags are the broker's authentication and authorization flags.
type authFlags struct {
	passwordFile string
	aclFile      string
	certAuth     string
	plain        bool
	maxFailures  int
	window       time.Duration
	lockout      time.Duration
	scramFile    string
	jwtKeys      stringList
	jwtIssuer    string
	jwtAudience  string
	jwtJWKS      string
	jwtRoles     stringList
	jwtIdentity  string
}

func registerAuthFlags(fs *flag.FlagSet) *authFlags {
	f := &authFlags{}
	fs.StringVar(&f.passwordFile, "password-file", "", "file of username:$argon2id$... lines (see \"mqtt5 passwd\"); clients must then authenticate; reloaded on SIGHUP and when the file changes")
	fs.StringVar(&f.aclFile, "acl-file", "", "access control list file (user/role/assign lines, see docs/auth.md); without a matching rule access is denied; reloaded on SIGHUP and when the file changes")
	fs.StringVar(&f.certAuth, "cert-auth", "", "authenticate by the verified TLS client certificate (needs --tls-ca): cn, san, san:dns, san:email, san:uri or fingerprint:FILE (lines of \"<sha256 hex> <username>\")")
	fs.BoolVar(&f.plain, "plain-auth", false, "accept MQTT 5 enhanced authentication with method PLAIN (SASL, RFC 4616) checked against --password-file")
	fs.IntVar(&f.maxFailures, "auth-max-failures", 5, "failed authentications per client address or user name within --auth-window that trigger a lockout (0 disables the lockout)")
	fs.DurationVar(&f.window, "auth-window", 60*time.Second, "period over which failed authentications are counted")
	fs.DurationVar(&f.lockout, "auth-lockout", 300*time.Second, "how long a locked-out address or user name is refused (CONNACK Banned / not authorized)")
	fs.StringVar(&f.scramFile, "scram-file", "", "SCRAM-SHA-256 credential file (see \"mqtt5 scram\"): MQTT 5 enhanced authentication with method SCRAM-SHA-256; reloaded on SIGHUP and when the file changes")
	fs.Var(&f.jwtKeys, "jwt-key", "JWT verification key, [KID=]ALG:FILE with ALG HS256 (FILE holds the secret), RS256, ES256 or EdDSA (FILE holds a PEM public key or certificate); repeatable; tokens come as Authentication Method JWT or as the CONNECT password")
	fs.StringVar(&f.jwtIssuer, "jwt-issuer", "", "required iss claim of JWTs (with --jwt-jwks-url: the issuer whose key set is fetched)")
	fs.StringVar(&f.jwtAudience, "jwt-audience", "", "required aud claim of JWTs (default: not checked)")
	fs.StringVar(&f.jwtJWKS, "jwt-jwks-url", "", "https URL of the JWKS of --jwt-issuer: keys fetched and refreshed in the background (federated JWT)")
	fs.Var(&f.jwtRoles, "jwt-role-claim", "claim whose values become the client's roles for the ACL, e.g. roles, groups, realm_access.roles (repeatable)")
	fs.StringVar(&f.jwtIdentity, "jwt-identity-claim", "sub", "claim that names the client's identity")
	return f
}

// jwtEnabled reports whether JWT authentication is configured.
func (f *authFlags) jwtEnabled() bool { return len(f.jwtKeys) > 0 || f.jwtJWKS != "" }

// jwtKeys parses the --jwt-key values.
func parseJWTKeys(vals []string) ([]auth.JWTKey, error) {
	keys := make([]auth.JWTKey, 0, len(vals))
	for _, v := range vals {
		kid, rest := "", v
		if k, r, ok := strings.Cut(v, "="); ok && !strings.Contains(k, ":") {
			kid, rest = k, r
		}
		alg, file, ok := strings.Cut(rest, ":")
		if !ok || file == "" {
			return nil, fmt.Errorf("%w: --jwt-key %q: want [KID=]ALG:FILE", errUsage, v)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--jwt-key %q: %w", v, err)
		}
		var key auth.JWTKey
		if strings.EqualFold(alg, "HS256") {
			secret := []byte(strings.TrimRight(string(data), "\r\n"))
			key = auth.JWTKey{ID: kid, Algorithm: "HS256", Key: secret}
		} else {
			key, err = auth.JWTKeyFromPEM(kid, strings.ToUpper(alg), data)
			if strings.EqualFold(alg, "eddsa") {
				key, err = auth.JWTKeyFromPEM(kid, "EdDSA", data)
			}
			if err != nil {
				return nil, fmt.Errorf("--jwt-key %q: %w", v, err)
			}
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// authenticates reports whether an authentication method is configured,
// so that anonymous clients are refused.
func (f *authFlags) authenticates() bool {
	return f.passwordFile != "" || f.certAuth != "" || f.scramFile != "" || f.jwtEnabled()
}

// reloader is something that reloads its files on SIGHUP.
type reloader struct {
	name   string
	reload func() error
}

// authSetup is what the flags build: the broker's authenticator and
// authorizer (nil when not configured), reloaders for SIGHUP and watchers
// of the files.
type authSetup struct {
	authenticator broker.Authenticator
	authorizer    broker.Authorizer
	reloaders     []reloader
	watchers      []func(ctx context.Context) error
	closers       []func() error
}

// audiences turns a comma-separated --jwt-audience into a list.
func audiences(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// jwtMode takes roles from claims when role claims are configured, and
// leaves decisions to the ACL otherwise.
func jwtMode(roleClaims []string) auth.FederationMode {
	if len(roleClaims) > 0 {
		return auth.FederationTrustedRoles
	}
	return auth.FederationIdentityOnly
}

// build checks the flags and loads the files. tlsCA tells whether client
// certificates can be verified.
func (f *authFlags) build(logger *slog.Logger, tlsCA bool) (*authSetup, error) {
	s := &authSetup{}
	if f.maxFailures < 0 {
		return nil, fmt.Errorf("%w: --auth-max-failures must not be negative", errUsage)
	}
	if f.plain && f.passwordFile == "" {
		return nil, fmt.Errorf("%w: --plain-auth needs --password-file", errUsage)
	}
	var providers []auth.Provider
	if f.certAuth != "" {
		cfg, err := auth.ParseCertAuthSpec(f.certAuth)
		if err != nil {
			return nil, fmt.Errorf("%w: --cert-auth: %v", errUsage, err)
		}
		if !tlsCA {
			return nil, fmt.Errorf("%w: --cert-auth needs --tls-ca to verify client certificates", errUsage)
		}
		cfg.Logger = logger
		ca, err := auth.NewCertAuth(cfg)
		if err != nil {
			return nil, err
		}
		providers = append(providers, ca)
		if cfg.Source == auth.CertFingerprint {
			s.reloaders = append(s.reloaders, reloader{"certificate fingerprint file", ca.Reload})
			s.watchers = append(s.watchers, ca.Watch)
		}
	}
	if f.passwordFile != "" {
		pf, err := auth.NewPasswordFile(f.passwordFile, auth.PasswordFileOptions{Logger: logger})
		if err != nil {
			return nil, err
		}
		logger.Info("password authentication", "file", f.passwordFile, "users", pf.Users())
		providers = append(providers, pf)
		if f.plain {
			providers = append(providers, auth.NewPlain(pf))
		}
		s.reloaders = append(s.reloaders, reloader{"password file", pf.Reload})
		s.watchers = append(s.watchers, pf.Watch)
	}
	if f.scramFile != "" {
		sc, err := auth.NewSCRAM(auth.SCRAMConfig{File: f.scramFile})
		if err != nil {
			return nil, err
		}
		logger.Info("SCRAM-SHA-256 authentication", "file", f.scramFile)
		providers = append(providers, sc)
		s.reloaders = append(s.reloaders, reloader{"SCRAM credential file", sc.Reload})
		s.watchers = append(s.watchers, sc.Watch)
	}
	if f.jwtEnabled() {
		keys, err := parseJWTKeys(f.jwtKeys)
		if err != nil {
			return nil, err
		}
		if f.jwtJWKS != "" {
			if f.jwtIssuer == "" {
				return nil, fmt.Errorf("%w: --jwt-jwks-url needs --jwt-issuer", errUsage)
			}
			fj, err := auth.NewFederatedJWT(auth.FederatedConfig{Issuers: []auth.FederatedIssuer{{
				Issuer: f.jwtIssuer, JWKSURL: f.jwtJWKS, Audience: audiences(f.jwtAudience), AnyAudience: f.jwtAudience == "",
				FallbackKeys: keys, Mode: jwtMode(f.jwtRoles), RoleClaims: f.jwtRoles, IdentityClaim: f.jwtIdentity,
			}}})
			if err != nil {
				return nil, err
			}
			logger.Info("federated JWT authentication", "issuer", f.jwtIssuer, "jwks", f.jwtJWKS)
			providers = append(providers, fj)
			s.closers = append(s.closers, fj.Close)
		} else {
			j, err := auth.NewJWT(auth.JWTConfig{Keys: keys, Issuer: f.jwtIssuer, Audience: audiences(f.jwtAudience),
				RoleClaims: f.jwtRoles, IdentityClaim: f.jwtIdentity})
			if err != nil {
				return nil, err
			}
			logger.Info("JWT authentication", "keys", len(keys))
			providers = append(providers, j)
		}
	}
	if len(providers) > 0 {
		s.authenticator = auth.Chain(providers...)
		if f.maxFailures > 0 {
			s.authenticator = auth.RateLimit(s.authenticator, auth.RateLimitConfig{
				MaxFailures: f.maxFailures, Window: f.window, Lockout: f.lockout, Logger: logger})
		}
	}
	if f.aclFile != "" {
		acl, err := auth.LoadACL(f.aclFile, auth.ACLOptions{Logger: logger})
		if err != nil {
			return nil, err
		}
		logger.Info("access control list", "file", f.aclFile, "rules", len(acl.Policy().Rules()))
		s.authorizer = acl
		s.reloaders = append(s.reloaders, reloader{"ACL file", acl.Reload})
		s.watchers = append(s.watchers, acl.Watch)
	}
	return s, nil
}

// apply sets the broker configuration.
func (s *authSetup) apply(cfg *broker.Config) {
	if s.authenticator != nil {
		cfg.Authenticator = s.authenticator
	}
	if s.authorizer != nil {
		cfg.Authorizer = s.authorizer
	}
}

// start runs the file watchers; the returned function stops them and
// waits for them to end.
func (s *authSetup) start(ctx context.Context, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, w := range s.watchers {
		wg.Go(func() {
			if err := w(ctx); err != nil {
				logger.Warn("not watching auth file for changes; SIGHUP still reloads it", "err", err)
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
		for _, c := range s.closers {
			c()
		}
	}
}
