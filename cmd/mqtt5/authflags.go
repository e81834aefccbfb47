package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/auth"
	"github.com/mqtt5go/mqtt5/config"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// authFlagHelp is the usage text of the broker's authentication flags.
var authFlagHelp = map[string]string{
	"password-file":      "file of username:$argon2id$... lines (see \"mqtt5 passwd\"); clients must then authenticate; reloaded on SIGHUP and when the file changes",
	"acl-file":           "access control list file (user/role/assign lines, see docs/auth.md); without a matching rule access is denied; reloaded on SIGHUP and when the file changes",
	"cert-auth":          "authenticate by the verified TLS client certificate (needs --tls-ca): cn, san, san:dns, san:email, san:uri or fingerprint:FILE (lines of \"<sha256 hex> <username>\")",
	"plain-auth":         "accept MQTT 5 enhanced authentication with method PLAIN (SASL, RFC 4616) checked against --password-file",
	"auth-max-failures":  "failed authentications per client address or user name within --auth-window that trigger a lockout (0 disables the lockout; default 5)",
	"auth-window":        "period over which failed authentications are counted (default 1m0s)",
	"auth-lockout":       "how long a locked-out address or user name is refused (CONNACK Banned / not authorized; default 5m0s)",
	"scram-file":         "SCRAM-SHA-256 credential file (see \"mqtt5 scram\"): MQTT 5 enhanced authentication with method SCRAM-SHA-256; reloaded on SIGHUP and when the file changes",
	"jwt-key":            "JWT verification key, [KID=]ALG:FILE with ALG HS256 (FILE holds the secret), RS256, ES256 or EdDSA (FILE holds a PEM public key or certificate); repeatable; tokens come as Authentication Method JWT or as the CONNECT password",
	"jwt-issuer":         "required iss claim of JWTs (with --jwt-jwks-url: the issuer whose key set is fetched)",
	"jwt-audience":       "required aud claim of JWTs, comma-separated (default: not checked)",
	"jwt-jwks-url":       "https URL of the JWKS of --jwt-issuer: keys fetched and refreshed in the background (federated JWT)",
	"jwt-role-claim":     "claim whose values become the client's roles for the ACL, e.g. roles, groups, realm_access.roles (repeatable)",
	"jwt-identity-claim": "claim that names the client's identity (default sub)",
}

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

// buildAuth checks the settings and loads the files. tlsCA tells whether
// client certificates can be verified.
func buildAuth(f config.Auth, logger *slog.Logger, tlsCA bool) (*authSetup, error) {
	s := &authSetup{}
	if f.MaxFailures < 0 {
		return nil, fmt.Errorf("%w: --auth-max-failures must not be negative", errUsage)
	}
	if f.Plain && f.PasswordFile == "" {
		return nil, fmt.Errorf("%w: --plain-auth needs --password-file", errUsage)
	}
	var providers []auth.Provider
	if f.CertAuth != "" {
		cfg, err := auth.ParseCertAuthSpec(f.CertAuth)
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
	if f.PasswordFile != "" {
		pf, err := auth.NewPasswordFile(f.PasswordFile, auth.PasswordFileOptions{Logger: logger})
		if err != nil {
			return nil, err
		}
		logger.Info("password authentication", "file", f.PasswordFile, "users", pf.Users())
		providers = append(providers, pf)
		if f.Plain {
			providers = append(providers, auth.NewPlain(pf))
		}
		s.reloaders = append(s.reloaders, reloader{"password file", pf.Reload})
		s.watchers = append(s.watchers, pf.Watch)
	}
	if f.SCRAMFile != "" {
		sc, err := auth.NewSCRAM(auth.SCRAMConfig{File: f.SCRAMFile})
		if err != nil {
			return nil, err
		}
		logger.Info("SCRAM-SHA-256 authentication", "file", f.SCRAMFile)
		providers = append(providers, sc)
		s.reloaders = append(s.reloaders, reloader{"SCRAM credential file", sc.Reload})
		s.watchers = append(s.watchers, sc.Watch)
	}
	if len(f.JWT.Keys) > 0 || f.JWT.JWKSURL != "" {
		keys, err := parseJWTKeys(f.JWT.Keys)
		if err != nil {
			return nil, err
		}
		if f.JWT.JWKSURL != "" {
			if f.JWT.Issuer == "" {
				return nil, fmt.Errorf("%w: --jwt-jwks-url needs --jwt-issuer", errUsage)
			}
			fj, err := auth.NewFederatedJWT(auth.FederatedConfig{Issuers: []auth.FederatedIssuer{{
				Issuer: f.JWT.Issuer, JWKSURL: f.JWT.JWKSURL, Audience: audiences(f.JWT.Audience), AnyAudience: f.JWT.Audience == "",
				FallbackKeys: keys, Mode: jwtMode(f.JWT.RoleClaims), RoleClaims: f.JWT.RoleClaims, IdentityClaim: f.JWT.IdentityClaim,
			}}, KeepConnectedAfterExpiry: f.JWT.KeepConnectedAfterExpiry})
			if err != nil {
				return nil, err
			}
			logger.Info("federated JWT authentication", "issuer", f.JWT.Issuer, "jwks", f.JWT.JWKSURL)
			providers = append(providers, fj)
			s.closers = append(s.closers, fj.Close)
		} else {
			j, err := auth.NewJWT(auth.JWTConfig{Keys: keys, Issuer: f.JWT.Issuer, Audience: audiences(f.JWT.Audience),
				RoleClaims: f.JWT.RoleClaims, IdentityClaim: f.JWT.IdentityClaim, KeepConnectedAfterExpiry: f.JWT.KeepConnectedAfterExpiry})
			if err != nil {
				return nil, err
			}
			logger.Info("JWT authentication", "keys", len(keys))
			providers = append(providers, j)
		}
	}
	if len(providers) > 0 {
		s.authenticator = auth.Chain(providers...)
		if f.MaxFailures > 0 {
			s.authenticator = auth.RateLimit(s.authenticator, auth.RateLimitConfig{
				MaxFailures: f.MaxFailures, Window: f.Window.D(), Lockout: f.Lockout.D(), Logger: logger})
		}
	}
	if f.ACLFile != "" {
		acl, err := auth.LoadACL(f.ACLFile, auth.ACLOptions{Logger: logger})
		if err != nil {
			return nil, err
		}
		logger.Info("access control list", "file", f.ACLFile, "rules", len(acl.Policy().Rules()))
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
