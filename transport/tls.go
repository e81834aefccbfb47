package transport

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqtt5go/mqtt5/internal/filewatch"
)

// ClientAuth says whether a TLS listener asks clients for a certificate.
type ClientAuth int

const (
	// ClientCertNone asks for no client certificate (unless a ClientCAFile
	// is given, which makes it ClientCertOptional).
	ClientCertNone ClientAuth = iota
	// ClientCertOptional asks for a certificate and verifies it against
	// the client CAs when one is presented; clients without one connect.
	ClientCertOptional
	// ClientCertRequired refuses clients without a certificate signed by
	// one of the client CAs.
	ClientCertRequired
)

// String returns "none", "optional" or "required".
func (a ClientAuth) String() string {
	switch a {
	case ClientCertNone:
		return "none"
	case ClientCertOptional:
		return "optional"
	case ClientCertRequired:
		return "required"
	}
	return fmt.Sprintf("ClientAuth(%d)", int(a))
}

// ServerTLS names the files of a TLS listener.
type ServerTLS struct {
	// CertFile holds the server certificate in PEM, followed by the
	// intermediate certificates to send with it.
	CertFile string
	// KeyFile holds the private key of the certificate in PEM (PKCS#1,
	// PKCS#8 or SEC 1; not encrypted).
	KeyFile string
	// ClientCAFile holds the PEM certificates of the authorities that sign
	// client certificates. Giving one with ClientAuth ClientCertNone means
	// ClientCertOptional.
	ClientCAFile string
	// ClientAuth says whether clients must present a certificate.
	// ClientCertOptional and ClientCertRequired need ClientCAFile.
	ClientAuth ClientAuth
	// MinVersion is the lowest TLS version accepted (tls.VersionTLS12 when
	// zero). Cipher suites and curves are Go's defaults.
	MinVersion uint16
}

// tlsHandshakeTimeout bounds the TLS handshake of an accepted connection.
const tlsHandshakeTimeout = 10 * time.Second

// maxPendingHandshakes bounds the connections of one listener that are
// handshaking or waiting for Accept; beyond it the listener stops
// accepting until some finish.
const maxPendingHandshakes = 1024

// CertReloader serves the certificate, key and client CAs of a ServerTLS
// and re-reads them on Reload or, with Watch, when the files change. New
// handshakes use the newest material that loaded without error;
// established connections are not touched.
type CertReloader struct {
	cfg ServerTLS
	log *slog.Logger

	mu  sync.Mutex // serializes loads
	cur atomic.Pointer[tlsMaterial]
}

// tlsMaterial is one loaded generation of the files.
type tlsMaterial struct {
	cert   *tls.Certificate
	config *tls.Config // served through GetConfigForClient
	raw    [3][]byte   // contents of CertFile, KeyFile and ClientCAFile
}

// NewCertReloader loads the files of cfg. Errors name the file and what is
// wrong with it. A nil log uses slog.Default().
func NewCertReloader(cfg ServerTLS, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("transport: TLS listener: CertFile and KeyFile are required")
	}
	switch cfg.ClientAuth {
	case ClientCertNone:
		if cfg.ClientCAFile != "" {
			cfg.ClientAuth = ClientCertOptional
		}
	case ClientCertOptional, ClientCertRequired:
		if cfg.ClientCAFile == "" {
			return nil, fmt.Errorf("transport: TLS listener: client certificates %s but no ClientCAFile to verify them", cfg.ClientAuth)
		}
	default:
		return nil, fmt.Errorf("transport: TLS listener: unknown ClientAuth %d", int(cfg.ClientAuth))
	}
	switch cfg.MinVersion {
	case 0:
		cfg.MinVersion = tls.VersionTLS12
	case tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, fmt.Errorf("transport: TLS listener: unknown MinVersion %#04x", cfg.MinVersion)
	}
	r := &CertReloader{cfg: cfg, log: log}
	raw, err := r.readFiles()
	if err != nil {
		return nil, fmt.Errorf("transport: TLS listener: %w", err)
	}
	m, err := r.parse(raw)
	if err != nil {
		return nil, err
	}
	r.cur.Store(m)
	r.checkValidity(m)
	return r, nil
}

// TLSConfig returns a server configuration that hands every handshake the
// material loaded last (through GetConfigForClient, and GetCertificate for
// code that only looks at that). Each call returns a new *tls.Config; its
// NextProtos, when set before use, are applied to every handshake. Code
// that clones the returned config and changes the clone must apply the
// same changes to the configs the clone's GetConfigForClient returns;
// ServerConfigWithALPN does that for NextProtos.
func (r *CertReloader) TLSConfig() *tls.Config {
	c := &tls.Config{
		MinVersion: r.cfg.MinVersion,
		ClientAuth: r.cfg.ClientAuth.tls(),
	}
	c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return r.cur.Load().cert, nil
	}
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := r.cur.Load()
		if len(c.NextProtos) == 0 {
			return m.config, nil
		}
		cc := m.config.Clone()
		cc.NextProtos = c.NextProtos
		return cc, nil
	}
	return c
}

// ServerConfigWithALPN returns a clone of cfg that offers the application
// protocols protos, set also on the configs cfg's GetConfigForClient
// returns (a CertReloader's config has one), so that listeners that need
// ALPN (QUIC, HTTP/2) negotiate it on every handshake.
func ServerConfigWithALPN(cfg *tls.Config, protos ...string) *tls.Config {
	c := cfg.Clone()
	if c == nil {
		c = &tls.Config{}
	}
	c.NextProtos = append([]string(nil), protos...)
	if next := c.GetConfigForClient; next != nil {
		alpn := c.NextProtos
		c.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			cc, err := next(h)
			if cc == nil || err != nil {
				return cc, err
			}
			cc = cc.Clone()
			cc.NextProtos = alpn
			return cc, nil
		}
	}
	return c
}

// Certificate returns the leaf certificate served now.
func (r *CertReloader) Certificate() *x509.Certificate {
	return r.cur.Load().cert.Leaf
}

// Reload re-reads the files. On error the material loaded before stays in
// use and the error (naming the file) is returned. Files that did not
// change since the last load are not parsed again.
func (r *CertReloader) Reload() error {
	_, err := r.reload()
	return err
}

// reload loads the files if their contents changed and reports whether
// new material is in use.
func (r *CertReloader) reload() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	raw, err := r.readFiles()
	if err != nil {
		return false, fmt.Errorf("transport: TLS reload: %w", err)
	}
	if sameFiles(raw, r.cur.Load().raw) {
		return false, nil
	}
	m, err := r.parse(raw)
	if err != nil {
		return false, fmt.Errorf("transport: TLS reload: %w", err)
	}
	r.cur.Store(m)
	leaf := m.cert.Leaf
	r.log.Info("TLS certificate reloaded", "cert", r.cfg.CertFile, "subject", leaf.Subject.String(),
		"not_after", leaf.NotAfter, "client_ca", r.cfg.ClientCAFile)
	r.checkValidity(m)
	return true, nil
}

func sameFiles(a, b [3][]byte) bool {
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// checkValidity warns about a certificate outside its validity period.
func (r *CertReloader) checkValidity(m *tlsMaterial) {
	now := time.Now()
	leaf := m.cert.Leaf
	if now.After(leaf.NotAfter) {
		r.log.Warn("TLS certificate has expired", "cert", r.cfg.CertFile, "not_after", leaf.NotAfter)
	} else if now.Before(leaf.NotBefore) {
		r.log.Warn("TLS certificate is not valid yet", "cert", r.cfg.CertFile, "not_before", leaf.NotBefore)
	}
}

// readFiles returns the contents of the files. os errors name the file.
func (r *CertReloader) readFiles() (raw [3][]byte, err error) {
	names := [3]string{r.cfg.CertFile, r.cfg.KeyFile, r.cfg.ClientCAFile}
	for i, name := range names {
		if name == "" {
			continue
		}
		if raw[i], err = os.ReadFile(name); err != nil {
			return raw, err
		}
	}
	return raw, nil
}

func (r *CertReloader) parse(raw [3][]byte) (*tlsMaterial, error) {
	cert, err := keyPair(raw[0], raw[1], "certificate file "+r.cfg.CertFile, "key file "+r.cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   r.cfg.MinVersion,
		ClientAuth:   r.cfg.ClientAuth.tls(),
		Certificates: []tls.Certificate{*cert},
	}
	if r.cfg.ClientCAFile != "" {
		certs, err := parseCertificates(raw[2], "client CA file "+r.cfg.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = x509.NewCertPool()
		for _, c := range certs {
			cfg.ClientCAs.AddCert(c)
		}
	}
	return &tlsMaterial{cert: cert, config: cfg, raw: raw}, nil
}

func (a ClientAuth) tls() tls.ClientAuthType {
	switch a {
	case ClientCertOptional:
		return tls.VerifyClientCertIfGiven
	case ClientCertRequired:
		return tls.RequireAndVerifyClientCert
	}
	return tls.NoClientCert
}

// Watch reloads the files when they change until ctx ends, then returns
// nil; it returns an error only when it cannot start watching. It watches the directories of the files (and of their symlink
// targets), so files replaced by rename, rewritten by editors, or switched
// by a symlink swap as Kubernetes does for mounted secrets are all
// noticed, and checks the files every second besides (package
// internal/filewatch). Events are debounced; each reload is logged, and a
// failed one keeps the material in use.
func (r *CertReloader) Watch(ctx context.Context) error {
	var files []string
	for _, f := range []string{r.cfg.CertFile, r.cfg.KeyFile, r.cfg.ClientCAFile} {
		if f != "" {
			files = append(files, f)
		}
	}
	err := filewatch.Watch(ctx, files, true, func() {
		if _, err := r.reload(); err != nil {
			r.log.Error("TLS certificate reload failed; keeping the certificate in use", "err", err)
		}
	}, func(err error) { r.log.Warn("watching TLS files", "err", err) })
	if err != nil {
		return fmt.Errorf("transport: watching TLS files: %w", err)
	}
	return nil
}

// ClientTLS describes the TLS side of a client: whom to trust and which
// certificate to present. Files and in-memory bytes are alternatives for
// each item.
type ClientTLS struct {
	// CAFile and CAPEM hold the certificates of the authorities trusted to
	// sign the server's certificate, in PEM (CAPEM may also be DER). Both
	// may be given; with neither, the system roots are used.
	CAFile string
	CAPEM  []byte
	// CertFile and KeyFile, or CertPEM and KeyPEM, are the client
	// certificate (followed by intermediates) and its private key. Bytes
	// may be PEM or DER; keys may be PKCS#1, PKCS#8 or SEC 1, not
	// encrypted.
	CertFile, KeyFile string
	CertPEM, KeyPEM   []byte
	// ServerName is the name verified against the server's certificate and
	// sent as SNI. Empty means the host of the server URL; an IP literal is
	// verified against the certificate's IP addresses and sends no SNI.
	ServerName string
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool
	// ALPN lists the application protocols to offer.
	ALPN []string
	// MinVersion is the lowest TLS version accepted (tls.VersionTLS12 when
	// zero).
	MinVersion uint16
}

// Config builds the client configuration. Errors name the file or field
// and what is wrong with it.
func (c ClientTLS) Config() (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify,
		NextProtos:         append([]string(nil), c.ALPN...),
		MinVersion:         c.MinVersion,
	}
	switch c.MinVersion {
	case 0:
		cfg.MinVersion = tls.VersionTLS12
	case tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, fmt.Errorf("transport: client TLS: unknown MinVersion %#04x", c.MinVersion)
	}
	if c.CAFile != "" || len(c.CAPEM) > 0 {
		cfg.RootCAs = x509.NewCertPool()
		if c.CAFile != "" {
			data, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("transport: client TLS: %w", err)
			}
			certs, err := parseCertificates(data, "CA file "+c.CAFile)
			if err != nil {
				return nil, err
			}
			for _, ca := range certs {
				cfg.RootCAs.AddCert(ca)
			}
		}
		if len(c.CAPEM) > 0 {
			certs, err := parseCertificates(c.CAPEM, "CAPEM")
			if err != nil {
				return nil, err
			}
			for _, ca := range certs {
				cfg.RootCAs.AddCert(ca)
			}
		}
	}
	certData, keyData := c.CertPEM, c.KeyPEM
	certName, keyName := "CertPEM", "KeyPEM"
	switch {
	case c.CertFile != "" && len(c.CertPEM) > 0:
		return nil, errors.New("transport: client TLS: both CertFile and CertPEM are set")
	case c.KeyFile != "" && len(c.KeyPEM) > 0:
		return nil, errors.New("transport: client TLS: both KeyFile and KeyPEM are set")
	}
	if c.CertFile != "" {
		data, err := os.ReadFile(c.CertFile)
		if err != nil {
			return nil, fmt.Errorf("transport: client TLS: %w", err)
		}
		certData, certName = data, "certificate file "+c.CertFile
	}
	if c.KeyFile != "" {
		data, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("transport: client TLS: %w", err)
		}
		keyData, keyName = data, "key file "+c.KeyFile
	}
	switch {
	case len(certData) > 0 && len(keyData) == 0:
		return nil, fmt.Errorf("transport: client TLS: %s has no private key to go with it (set KeyFile or KeyPEM)", certName)
	case len(certData) == 0 && len(keyData) > 0:
		return nil, fmt.Errorf("transport: client TLS: %s has no certificate to go with it (set CertFile or CertPEM)", keyName)
	case len(certData) > 0:
		cert, err := keyPair(certData, keyData, certName, keyName)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg, nil
}

// isPEM reports whether data looks like PEM rather than DER.
func isPEM(data []byte) bool {
	return bytes.Contains(data, []byte("-----BEGIN "))
}

// parseCertificates parses PEM CERTIFICATE blocks (other blocks are
// skipped) or, when data is not PEM, one or more DER certificates.
func parseCertificates(data []byte, name string) ([]*x509.Certificate, error) {
	if !isPEM(data) {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, fmt.Errorf("transport: %s: no certificates found (empty)", name)
		}
		certs, err := x509.ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("transport: %s: neither PEM nor a DER certificate: %w", name, err)
		}
		return certs, nil
	}
	var certs []*x509.Certificate
	var others []string
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			others = append(others, b.Type)
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("transport: %s: certificate %d: %w", name, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if len(others) > 0 {
			return nil, fmt.Errorf("transport: %s: no certificates found (only PEM blocks of type %s)", name, strings.Join(others, ", "))
		}
		return nil, fmt.Errorf("transport: %s: no certificates found (no valid PEM block)", name)
	}
	return certs, nil
}

// parsePrivateKey parses the first PEM private key block of data, or data
// as a DER key, in PKCS#1, PKCS#8 or SEC 1 form.
func parsePrivateKey(data []byte, name string) (crypto.Signer, error) {
	der := data
	form := "no private key found: neither PEM nor a DER key in PKCS#1, PKCS#8 or SEC 1 form"
	if isPEM(data) {
		form = "the PEM private key is not in PKCS#1, PKCS#8 or SEC 1 form"
		der = nil
		var types []string
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] == "4,ENCRYPTED" {
				return nil, fmt.Errorf("transport: %s: the private key is encrypted; decrypt it first (for example with openssl pkey)", name)
			}
			if b.Type == "PRIVATE KEY" || strings.HasSuffix(b.Type, " PRIVATE KEY") {
				der = b.Bytes
				break
			}
			types = append(types, b.Type)
		}
		if der == nil {
			if len(types) > 0 {
				return nil, fmt.Errorf("transport: %s: no private key found (only PEM blocks of type %s)", name, strings.Join(types, ", "))
			}
			return nil, fmt.Errorf("transport: %s: no private key found (no valid PEM block)", name)
		}
	} else if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("transport: %s: no private key found (empty)", name)
	}
	var key any
	var err error
	if key, err = x509.ParsePKCS8PrivateKey(der); err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(der); err != nil {
			if key, err = x509.ParseECPrivateKey(der); err != nil {
				return nil, fmt.Errorf("transport: %s: %s", name, form)
			}
		}
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("transport: %s: %T keys cannot sign TLS handshakes (use RSA, ECDSA or Ed25519)", name, key)
}

// keyPair parses a certificate chain and its private key and checks that
// they belong together.
func keyPair(certData, keyData []byte, certName, keyName string) (*tls.Certificate, error) {
	certs, err := parseCertificates(certData, certName)
	if err != nil {
		return nil, err
	}
	key, err := parsePrivateKey(keyData, keyName)
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("transport: the private key in %s does not match the certificate in %s (subject %q; the first certificate must be the one the key belongs to)",
			keyName, certName, leaf.Subject.String())
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, x := range certs {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c, nil
}

// hasServerCertificate reports whether cfg can present a certificate.
func hasServerCertificate(cfg *tls.Config) bool {
	return len(cfg.Certificates) > 0 || cfg.GetCertificate != nil || cfg.GetConfigForClient != nil
}

// tlsListener accepts TCP connections and returns them once their TLS
// handshake is complete, so that the connection state (the verified
// client certificate) is known from the start. Handshakes run
// concurrently, each bounded by tlsHandshakeTimeout; failures are logged at
// debug level and never reach Accept.
type tlsListener struct {
	net.Listener // the TCP listener
	config       *tls.Config
	log          *slog.Logger

	conns  chan net.Conn
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	sem    chan struct{}

	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup

	failed    chan struct{} // closed when the accept loop ends on an error
	acceptErr error         // written before failed is closed
}

func newTLSListener(l net.Listener, cfg *tls.Config, log *slog.Logger) *tlsListener {
	ctx, cancel := context.WithCancel(context.Background())
	tl := &tlsListener{
		Listener: l,
		config:   cfg,
		log:      log,
		conns:    make(chan net.Conn),
		ctx:      ctx,
		cancel:   cancel,
		sem:      make(chan struct{}, maxPendingHandshakes),
		failed:   make(chan struct{}),
	}
	tl.wg.Add(1)
	go tl.acceptLoop()
	return tl
}

func (l *tlsListener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		select {
		case l.sem <- struct{}{}:
		case <-l.ctx.Done():
			return
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			if l.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || temporaryAcceptError(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.log.Warn("TLS listener: accept error; retrying", "addr", l.Addr(), "err", err, "delay", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-l.ctx.Done():
					t.Stop()
					return
				}
				continue
			}
			l.acceptErr = err
			close(l.failed)
			return
		}
		delay = 0
		l.wg.Add(1)
		go l.handshake(c)
	}
}

func temporaryAcceptError(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (l *tlsListener) handshake(c net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.sem }()
	tc := tls.Server(c, l.config)
	ctx, cancel := context.WithTimeout(l.ctx, tlsHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.log.Debug("TLS handshake failed", "remote", c.RemoteAddr(), "err", err)
		tc.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.ctx.Done():
		tc.Close()
	}
}

// Accept returns the next connection whose handshake succeeded.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	case <-l.failed:
		return nil, l.acceptErr
	}
}

// Close stops the listener, abandons handshakes in progress and waits for
// them to end.
func (l *tlsListener) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		l.closeErr = l.Listener.Close()
		l.wg.Wait()
	})
	return l.closeErr
}
