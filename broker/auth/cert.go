package auth

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// CertSource selects where CertAuth takes the identity from.
type CertSource int

const (
	// CertCN uses the Subject Common Name.
	CertCN CertSource = iota
	// CertSAN uses a Subject Alternative Name (see CertAuthConfig.SANType).
	CertSAN
	// CertFingerprint maps the certificate's SHA-256 fingerprint to a user
	// name through a file.
	CertFingerprint
)

// CertAuthConfig configures CertAuth.
type CertAuthConfig struct {
	Source CertSource
	// SANType selects the Subject Alternative Name of CertSAN: "dns",
	// "email" or "uri"; empty takes the first DNS name, else the first
	// email address, else the first URI.
	SANType string
	// FingerprintFile is the mapping file of CertFingerprint (see
	// ParseFingerprints).
	FingerprintFile string
	// Logger receives reload messages. Default slog.Default().
	Logger *slog.Logger
}

// ParseCertAuthSpec parses the command-line form of a CertAuthConfig:
// "cn", "san", "san:dns", "san:email", "san:uri" or "fingerprint:FILE".
func ParseCertAuthSpec(spec string) (CertAuthConfig, error) {
	kind, arg, hasArg := strings.Cut(spec, ":")
	switch kind {
	case "cn":
		if !hasArg {
			return CertAuthConfig{Source: CertCN}, nil
		}
	case "san":
		switch arg {
		case "", "dns", "email", "uri":
			if hasArg && arg == "" {
				break
			}
			return CertAuthConfig{Source: CertSAN, SANType: arg}, nil
		}
	case "fingerprint":
		if arg != "" {
			return CertAuthConfig{Source: CertFingerprint, FingerprintFile: arg}, nil
		}
	}
	return CertAuthConfig{}, fmt.Errorf("certificate identity %q: want cn, san, san:dns, san:email, san:uri or fingerprint:FILE", spec)
}

// CertAuth authenticates clients by their TLS client certificate, verified
// by the listener against its client CA: the identity (Common Name, a
// Subject Alternative Name, or the user name mapped to the certificate's
// SHA-256 fingerprint) becomes the client's user name, replacing any
// user name sent in CONNECT. It works for MQTT 5.0 and 3.1.1 clients.
//
// A client without a certificate gets Not Authorized (0x87; 3.1.1 return
// code 5). A certificate that was not verified, that lacks the selected
// identity, or whose fingerprint is not in the file gets Bad User Name or
// Password (0x86; return code 4). A request with an Authentication Method
// gets Bad Authentication Method (0x8C).
//
// As a Provider, CertAuth handles requests without an Authentication
// Method from clients that present a verified certificate; in a Chain
// before a PasswordFile, clients without a certificate fall through to
// the password check.
type CertAuth struct {
	cfg CertAuthConfig

	fingerprints atomic.Pointer[fingerprintDB]
	reloadMu     sync.Mutex
}

type fingerprintDB struct {
	users map[string]string // lower-case hex → user name
	sum   [sha256.Size]byte
}

// NewCertAuth returns a CertAuth; for CertFingerprint it loads the file.
func NewCertAuth(cfg CertAuthConfig) (*CertAuth, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch cfg.SANType {
	case "", "dns", "email", "uri":
	default:
		return nil, fmt.Errorf("certificate SAN type %q: want dns, email or uri", cfg.SANType)
	}
	c := &CertAuth{cfg: cfg}
	if cfg.Source == CertFingerprint {
		if cfg.FingerprintFile == "" {
			return nil, fmt.Errorf("certificate fingerprint identity needs a mapping file")
		}
		if _, err := c.load(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ParseFingerprints parses a fingerprint mapping file: lines of
// "<sha256 hex> <username>", where the fingerprint is the SHA-256 digest
// of the certificate's DER encoding in hex (upper or lower case, colons
// allowed, as printed by "openssl x509 -fingerprint -sha256"). Blank lines
// and lines starting with '#' are ignored. Errors name the line.
func ParseFingerprints(data []byte) (map[string]string, error) {
	m := map[string]string{}
	at := map[string]int{}
	for n, line := range numberedLines(data) {
		s := strings.TrimSpace(line)
		if s == "" || s[0] == '#' {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"<sha256 fingerprint> <username>\"", n)
		}
		fp := strings.ToLower(strings.ReplaceAll(f[0], ":", ""))
		if b, err := hex.DecodeString(fp); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("line %d: %q is not a SHA-256 fingerprint (64 hex digits)", n, f[0])
		}
		if prev, dup := at[fp]; dup {
			return nil, fmt.Errorf("line %d: fingerprint already mapped on line %d", n, prev)
		}
		at[fp] = n
		m[fp] = f[1]
	}
	return m, nil
}

// Fingerprint returns the SHA-256 fingerprint of cert in lower-case hex.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// Reload reads the fingerprint file again (CertFingerprint only) and, if
// it parses, puts it in force atomically.
func (c *CertAuth) Reload() error {
	if c.cfg.Source != CertFingerprint {
		return nil
	}
	changed, err := c.load()
	if err == nil && changed {
		c.cfg.Logger.Info("certificate fingerprint file reloaded", "file", c.cfg.FingerprintFile, "entries", len(c.fingerprints.Load().users))
	}
	return err
}

func (c *CertAuth) load() (bool, error) {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	data, err := readAuthFile(c.cfg.FingerprintFile, "certificate fingerprint file", c.cfg.Logger, false)
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(data)
	if old := c.fingerprints.Load(); old != nil && old.sum == sum {
		return false, nil
	}
	m, err := ParseFingerprints(data)
	if err != nil {
		return false, fmt.Errorf("certificate fingerprint file %s: %w", c.cfg.FingerprintFile, err)
	}
	c.fingerprints.Store(&fingerprintDB{users: m, sum: sum})
	return true, nil
}

// Watch reloads the fingerprint file when it changes until ctx ends (see
// WatchFiles); without one it waits for ctx.
func (c *CertAuth) Watch(ctx context.Context) error {
	if c.cfg.Source != CertFingerprint {
		<-ctx.Done()
		return nil
	}
	return WatchFiles(ctx, []string{c.cfg.FingerprintFile}, c.Reload, c.cfg.Logger)
}

// Handles reports whether req has no Authentication Method and comes with
// a verified client certificate.
func (c *CertAuth) Handles(req *broker.AuthRequest) bool {
	return req.Method == "" && verifiedLeaf(req.Client) != nil
}

func verifiedLeaf(ci *broker.ClientInfo) *x509.Certificate {
	if ci == nil || ci.TLS == nil || len(ci.TLS.VerifiedChains) == 0 || len(ci.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return ci.TLS.VerifiedChains[0][0]
}

// Identity returns the user name CertAuth derives from cert, or "".
func (c *CertAuth) Identity(cert *x509.Certificate) string {
	switch c.cfg.Source {
	case CertCN:
		return cert.Subject.CommonName
	case CertSAN:
		var dns, email, uri string
		if len(cert.DNSNames) > 0 {
			dns = cert.DNSNames[0]
		}
		if len(cert.EmailAddresses) > 0 {
			email = cert.EmailAddresses[0]
		}
		if len(cert.URIs) > 0 {
			uri = cert.URIs[0].String()
		}
		switch c.cfg.SANType {
		case "dns":
			return dns
		case "email":
			return email
		case "uri":
			return uri
		}
		for _, s := range []string{dns, email, uri} {
			if s != "" {
				return s
			}
		}
	case CertFingerprint:
		if db := c.fingerprints.Load(); db != nil {
			return db.users[Fingerprint(cert)]
		}
	}
	return ""
}

// Authenticate implements broker.Authenticator.
func (c *CertAuth) Authenticate(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
	if req.Method != "" {
		return broker.AuthResult{Code: packet.BadAuthenticationMethod, Reason: "authentication method not supported"}
	}
	ci := req.Client
	if ci == nil || ci.TLS == nil || len(ci.TLS.PeerCertificates) == 0 {
		return broker.AuthResult{Code: packet.NotAuthorized, Reason: "client certificate required"}
	}
	leaf := verifiedLeaf(ci)
	if leaf == nil {
		return broker.AuthResult{Code: packet.BadUserNameOrPassword, Reason: "client certificate not verified"}
	}
	id := c.Identity(leaf)
	if id == "" {
		return broker.AuthResult{Code: packet.BadUserNameOrPassword, Reason: "client certificate carries no accepted identity"}
	}
	return broker.AuthResult{Code: packet.Success, Username: id}
}
