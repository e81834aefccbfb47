package transport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/internal/testcerts"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

// testTimeout bounds every wait. It is a deadline for conditions that
// normally hold within milliseconds, not a timing assertion.
const testTimeout = 20 * time.Second

// waitFor polls cond until it holds or testTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", testTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// logRecorder is a slog.Handler that keeps messages and "err" attributes.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
	errs []error
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if e, ok := a.Value.Any().(error); ok && a.Key == "err" {
			h.errs = append(h.errs, e)
		}
		return true
	})
	return nil
}

// hasErr reports whether a logged error satisfies match.
func (h *logRecorder) hasErr(match func(error) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.errs {
		if match(e) {
			return true
		}
	}
	return false
}

func (h *logRecorder) hasMsg(sub string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

var discardLog = slog.New(slog.DiscardHandler)

// tlsBroker is our broker behind an mqtts listener.
type tlsBroker struct {
	*broker.Broker
	Addr string
	Log  *logRecorder // the listener's log
}

// startTLSBroker serves bcfg on mqtts://127.0.0.1:0 with tlsCfg and stops
// it when the test ends.
func startTLSBroker(t testing.TB, tlsCfg *tls.Config, bcfg broker.Config) *tlsBroker {
	t.Helper()
	rec := &logRecorder{}
	l, err := transport.Listen(testCtx(t), transport.ListenConfig{URL: "mqtts://127.0.0.1:0", TLS: tlsCfg, Logger: slog.New(rec)})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if bcfg.Logger == nil {
		bcfg.Logger = discardLog
	}
	if bcfg.SysInterval == 0 {
		bcfg.SysInterval = -1
	}
	b := broker.New(bcfg)
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if !errors.Is(err, broker.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-ctx.Done():
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	select {
	case <-b.Ready():
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	}
	return &tlsBroker{Broker: b, Addr: l.Addr().String(), Log: rec}
}

// connect connects our client to mqtts://addr; on success the client is
// disconnected when the test ends.
func connect(t testing.TB, addr string, cfg *tls.Config, id string, v packet.Version) (*client.Client, error) {
	t.Helper()
	c, err := client.New(client.Options{
		Server:           "mqtts://" + addr,
		ClientID:         id,
		Version:          v,
		TLSConfig:        cfg,
		DisableReconnect: true,
		ConnectTimeout:   testTimeout,
	})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	if _, err := c.Connect(testCtx(t)); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		c.Disconnect(ctx, packet.NormalDisconnection, 0)
	})
	return c, nil
}

func mustConnect(t testing.TB, addr string, cfg *tls.Config, id string, v packet.Version) *client.Client {
	t.Helper()
	c, err := connect(t, addr, cfg, id, v)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

// roundTrip subscribes c to topic and publishes to it at QoS 0, 1 and 2,
// checking that each message comes back.
func roundTrip(t testing.TB, c *client.Client, topic string) {
	t.Helper()
	ctx := testCtx(t)
	got := make(chan *client.Message, 8)
	if _, err := c.Subscribe(ctx, []client.Subscription{{Filter: topic, QoS: 2}}, func(m *client.Message) { got <- m }); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	for qos := byte(0); qos <= 2; qos++ {
		payload := fmt.Sprintf("qos %d", qos)
		if err := c.Publish(ctx, &client.Message{Topic: topic, QoS: qos, Payload: []byte(payload)}); err != nil {
			t.Fatalf("publish QoS %d: %v", qos, err)
		}
		select {
		case m := <-got:
			if string(m.Payload) != payload || m.QoS != qos {
				t.Fatalf("received %q at QoS %d, want %q at QoS %d", m.Payload, m.QoS, payload, qos)
			}
		case <-ctx.Done():
			t.Fatalf("QoS %d message not received", qos)
		}
	}
}

// serverReloader writes a server certificate of ca with o to dir and
// loads it with the settings of st.
func serverReloader(t testing.TB, dir string, ca *testcerts.CA, cn string, o testcerts.Options, st transport.ServerTLS) *transport.CertReloader {
	t.Helper()
	st.CertFile, st.KeyFile = ca.Issue(t, cn, o).WriteFiles(t, dir, "server")
	r, err := transport.NewCertReloader(st, discardLog)
	if err != nil {
		t.Fatalf("NewCertReloader: %v", err)
	}
	return r
}

func clientConfig(ca *testcerts.CA, certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool(), Certificates: certs}
}

// presentAnyway returns a client configuration that sends cert whatever
// authorities the server names in its certificate request, as OpenSSL
// clients do (Go clients send nothing when no certificate matches).
func presentAnyway(ca *testcerts.CA, cert tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool(), GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &cert, nil
	}}
}

// peerCN handshakes with addr and returns the common name of the
// certificate the server presented.
func peerCN(t testing.TB, addr string, ca *testcerts.CA) string {
	t.Helper()
	d := tls.Dialer{Config: &tls.Config{RootCAs: ca.Pool()}}
	c, err := d.DialContext(testCtx(t), "tcp", addr)
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName
}

// replaceFile writes data to name by writing a temporary file in the same
// directory and renaming it over name.
func replaceFile(t testing.TB, name string, data []byte) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// watchFiles runs r.Watch until the test ends.
func watchFiles(t testing.TB, r *transport.CertReloader) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
}

// TestTLSRoundTrip runs QoS 0, 1 and 2 through our broker on an mqtts
// listener with our client, in MQTT 5 and 3.1.1.
func TestTLSRoundTrip(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	r := serverReloader(t, t.TempDir(), ca, "server", testcerts.Options{}, transport.ServerTLS{})
	b := startTLSBroker(t, r.TLSConfig(), broker.Config{})
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			c := mustConnect(t, b.Addr, clientConfig(ca), "rt", v)
			roundTrip(t, c, "tls/rt")
		})
	}
}

// TestTLSServerVerificationErrors checks that the client reports the
// x509 error of each kind of bad server certificate.
func TestTLSServerVerificationErrors(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	other := testcerts.NewCA(t, "other")
	cases := []struct {
		name    string
		opts    testcerts.Options
		trust   *testcerts.CA
		matches func(error) bool
	}{
		{"unknown authority", testcerts.Options{}, other, func(err error) bool {
			var e x509.UnknownAuthorityError
			return errors.As(err, &e)
		}},
		{"expired", testcerts.Options{Expired: true}, ca, func(err error) bool {
			var e x509.CertificateInvalidError
			return errors.As(err, &e) && e.Reason == x509.Expired
		}},
		{"hostname mismatch", testcerts.Options{Hosts: []string{"localhost"}}, ca, func(err error) bool {
			var e x509.HostnameError
			return errors.As(err, &e) && e.Host == "127.0.0.1"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := serverReloader(t, t.TempDir(), ca, "server", tc.opts, transport.ServerTLS{})
			b := startTLSBroker(t, r.TLSConfig(), broker.Config{})
			_, err := connect(t, b.Addr, clientConfig(tc.trust), "bad", packet.V5)
			if err == nil || !tc.matches(err) {
				t.Fatalf("client connect: %v (%T), want the %s error", err, err, tc.name)
			}
			// transport.Dial reports the same.
			u, perr := transport.ParseServerURL("mqtts://" + b.Addr)
			if perr != nil {
				t.Fatal(perr)
			}
			c, err := transport.Dial(testCtx(t), u, transport.DialConfig{TLS: clientConfig(tc.trust)})
			if err == nil {
				c.Close()
			}
			if err == nil || !tc.matches(err) {
				t.Fatalf("transport.Dial: %v (%T), want the %s error", err, err, tc.name)
			}
		})
	}
}

// TestTLSServerNameAndIP checks how the server name follows the URL: an IP
// literal is verified against IP SANs and sends no SNI; an explicit
// ServerName is verified against DNS SANs and sent as SNI.
func TestTLSServerNameAndIP(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	var mu sync.Mutex
	var snis []string
	sawSNI := func(cfg *tls.Config) *tls.Config {
		next := cfg.GetConfigForClient
		cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			snis = append(snis, h.ServerName)
			mu.Unlock()
			return next(h)
		}
		return cfg
	}
	lastSNI := func() string {
		mu.Lock()
		defer mu.Unlock()
		return snis[len(snis)-1]
	}

	t.Run("IP SAN only", func(t *testing.T) {
		r := serverReloader(t, t.TempDir(), ca, "ip-only", testcerts.Options{Hosts: []string{"127.0.0.1"}}, transport.ServerTLS{})
		b := startTLSBroker(t, sawSNI(r.TLSConfig()), broker.Config{})
		c := mustConnect(t, b.Addr, clientConfig(ca), "ip", packet.V5)
		roundTrip(t, c, "tls/ip")
		if sni := lastSNI(); sni != "" {
			t.Errorf("client sent SNI %q for an IP literal, want none", sni)
		}
		u, err := transport.ParseServerURL("mqtts://" + b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := transport.Dial(testCtx(t), u, transport.DialConfig{TLS: clientConfig(ca)})
		if err != nil {
			t.Fatalf("transport.Dial: %v", err)
		}
		defer nc.Close()
		st := nc.(transport.TLSConn).ConnectionState()
		if !st.HandshakeComplete || len(st.VerifiedChains) == 0 {
			t.Fatalf("connection state: handshake %v, %d verified chains", st.HandshakeComplete, len(st.VerifiedChains))
		}
		if sni := lastSNI(); sni != "" {
			t.Errorf("transport.Dial sent SNI %q for an IP literal, want none", sni)
		}
	})

	t.Run("DNS SAN only", func(t *testing.T) {
		r := serverReloader(t, t.TempDir(), ca, "dns-only", testcerts.Options{Hosts: []string{"localhost"}}, transport.ServerTLS{})
		b := startTLSBroker(t, sawSNI(r.TLSConfig()), broker.Config{})
		_, err := connect(t, b.Addr, clientConfig(ca), "dns", packet.V5)
		var he x509.HostnameError
		if !errors.As(err, &he) {
			t.Fatalf("connect to 127.0.0.1 with a localhost certificate: %v, want a HostnameError", err)
		}
		cfg := clientConfig(ca)
		cfg.ServerName = "localhost"
		c := mustConnect(t, b.Addr, cfg, "dns", packet.V5)
		roundTrip(t, c, "tls/dns")
		if sni := lastSNI(); sni != "localhost" {
			t.Errorf("SNI %q, want localhost", sni)
		}
	})
}

// clientCertBroker starts a broker whose listener asks for client
// certificates signed by clientCA, and whose authenticator records the
// common name of the verified client certificate ("-" when none).
func clientCertBroker(t testing.TB, ca, clientCA *testcerts.CA, auth transport.ClientAuth) (*tlsBroker, func(id string) string) {
	t.Helper()
	dir := t.TempDir()
	r := serverReloader(t, dir, ca, "server", testcerts.Options{}, transport.ServerTLS{
		ClientCAFile: clientCA.WriteFile(t, dir, "client-ca"),
		ClientAuth:   auth,
	})
	var mu sync.Mutex
	cns := map[string]string{}
	authn := broker.AuthenticatorFunc(func(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
		cn := "-"
		if st := req.Client.TLS; st != nil && len(st.PeerCertificates) > 0 {
			cn = st.PeerCertificates[0].Subject.CommonName
			if len(st.VerifiedChains) == 0 {
				cn = "unverified " + cn
			}
		}
		mu.Lock()
		cns[req.Client.ClientID] = cn
		mu.Unlock()
		return broker.AuthResult{Code: packet.Success}
	})
	b := startTLSBroker(t, r.TLSConfig(), broker.Config{Authenticator: authn})
	return b, func(id string) string {
		mu.Lock()
		defer mu.Unlock()
		return cns[id]
	}
}

// TestTLSClientCertRequired checks a listener that requires client
// certificates: the verified certificate reaches the authenticator, and
// clients without one, or with one from another CA, are refused.
func TestTLSClientCertRequired(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	clientCA := testcerts.NewCA(t, "client-ca")
	other := testcerts.NewCA(t, "other")
	b, cnOf := clientCertBroker(t, ca, clientCA, transport.ClientCertRequired)

	t.Run("valid", func(t *testing.T) {
		cert := clientCA.Issue(t, "alice", testcerts.Options{Client: true}).TLSCertificate(t)
		c := mustConnect(t, b.Addr, clientConfig(ca, cert), "alice-device", packet.V5)
		if got := cnOf("alice-device"); got != "alice" {
			t.Errorf("authenticator saw client certificate CN %q, want alice", got)
		}
		roundTrip(t, c, "tls/alice")
	})
	t.Run("missing", func(t *testing.T) {
		_, err := connect(t, b.Addr, clientConfig(ca), "nobody", packet.V5)
		if err == nil {
			t.Fatal("connected without a client certificate")
		}
		if !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("connect error %q does not say a certificate is required", err)
		}
		waitFor(t, "the listener to log the handshake failure", func() bool {
			return b.Log.hasErr(func(e error) bool { return strings.Contains(e.Error(), "didn't provide a certificate") })
		})
		if got := cnOf("nobody"); got != "" {
			t.Errorf("authenticator ran for a refused client (CN %q)", got)
		}
	})
	t.Run("other CA", func(t *testing.T) {
		cert := other.Issue(t, "mallory", testcerts.Options{Client: true}).TLSCertificate(t)
		_, err := connect(t, b.Addr, presentAnyway(ca, cert), "mallory", packet.V5)
		if err == nil {
			t.Fatal("connected with a client certificate of another CA")
		}
		if !strings.Contains(err.Error(), "unknown certificate authority") {
			t.Errorf("connect error %q does not say the certificate authority is unknown", err)
		}
		waitFor(t, "the listener to log an UnknownAuthorityError", func() bool {
			return b.Log.hasErr(func(e error) bool {
				var ua x509.UnknownAuthorityError
				return errors.As(e, &ua)
			})
		})
		if got := cnOf("mallory"); got != "" {
			t.Errorf("authenticator ran for a refused client (CN %q)", got)
		}
		// A Go client holding only a certificate of another CA sends none.
		_, err = connect(t, b.Addr, clientConfig(ca, cert), "mallory-go", packet.V5)
		if err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("connect error %v, want certificate required", err)
		}
	})
}

// TestTLSClientCertOptional checks that a ClientCAFile without ClientAuth
// means optional client certificates: clients without one connect, ones
// presented are verified.
func TestTLSClientCertOptional(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	clientCA := testcerts.NewCA(t, "client-ca")
	other := testcerts.NewCA(t, "other")
	b, cnOf := clientCertBroker(t, ca, clientCA, transport.ClientCertNone)

	mustConnect(t, b.Addr, clientConfig(ca), "anonymous", packet.V311)
	if got := cnOf("anonymous"); got != "-" {
		t.Errorf("client without certificate: authenticator saw %q", got)
	}
	cert := clientCA.Issue(t, "bob", testcerts.Options{Client: true}).TLSCertificate(t)
	mustConnect(t, b.Addr, clientConfig(ca, cert), "bob-device", packet.V311)
	if got := cnOf("bob-device"); got != "bob" {
		t.Errorf("authenticator saw %q, want bob", got)
	}
	bad := other.Issue(t, "mallory", testcerts.Options{Client: true}).TLSCertificate(t)
	if _, err := connect(t, b.Addr, presentAnyway(ca, bad), "mallory", packet.V311); err == nil {
		t.Error("connected with a client certificate of another CA")
	}
	if got := cnOf("mallory"); got != "" {
		t.Errorf("authenticator ran for a refused client (CN %q)", got)
	}
}

// TestCertReloaderWatchRename replaces the certificate and key by rename
// while a client is connected: new handshakes get the new certificate and
// the connected client keeps working.
func TestCertReloaderWatchRename(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, "one", testcerts.Options{}).WriteFiles(t, dir, "server")
	rec := &logRecorder{}
	r, err := transport.NewCertReloader(transport.ServerTLS{CertFile: certFile, KeyFile: keyFile}, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	b := startTLSBroker(t, r.TLSConfig(), broker.Config{})

	first := mustConnect(t, b.Addr, clientConfig(ca), "first", packet.V5)
	roundTrip(t, first, "tls/before")
	if cn := peerCN(t, b.Addr, ca); cn != "one" {
		t.Fatalf("served CN %q, want one", cn)
	}
	watchFiles(t, r)

	two := ca.Issue(t, "two", testcerts.Options{})
	replaceFile(t, certFile, two.CertPEM)
	replaceFile(t, keyFile, two.KeyPEM)
	waitFor(t, "new handshakes to present CN two", func() bool { return peerCN(t, b.Addr, ca) == "two" })
	waitFor(t, "the reload to be logged", func() bool { return rec.hasMsg("reloaded") })
	if cn := r.Certificate().Subject.CommonName; cn != "two" {
		t.Errorf("Certificate() CN %q, want two", cn)
	}

	if !first.IsConnected() {
		t.Fatal("the client connected before the reload was disconnected")
	}
	roundTrip(t, first, "tls/after")
	mustConnect(t, b.Addr, clientConfig(ca), "second", packet.V5)
}

// TestCertReloaderWatchSymlinkSwap switches the certificate the way
// Kubernetes updates a mounted secret: the files are symlinks through a
// "..data" symlink that is atomically replaced.
func TestCertReloaderWatchSymlinkSwap(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	dir := t.TempDir()
	version := func(name string, p *testcerts.Pair) {
		vdir := filepath.Join(dir, name)
		if err := os.Mkdir(vdir, 0o700); err != nil {
			t.Fatal(err)
		}
		p.WriteFiles(t, vdir, "tls")
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", ca.Issue(t, "one", testcerts.Options{}))
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	rec := &logRecorder{}
	r, err := transport.NewCertReloader(transport.ServerTLS{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	b := startTLSBroker(t, r.TLSConfig(), broker.Config{})
	first := mustConnect(t, b.Addr, clientConfig(ca), "first", packet.V5)
	if cn := peerCN(t, b.Addr, ca); cn != "one" {
		t.Fatalf("served CN %q, want one", cn)
	}
	watchFiles(t, r)

	version("..v2", ca.Issue(t, "two", testcerts.Options{}))
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new handshakes to present CN two", func() bool { return peerCN(t, b.Addr, ca) == "two" })
	waitFor(t, "the reload to be logged", func() bool { return rec.hasMsg("reloaded") })
	roundTrip(t, first, "tls/swap")
}

// TestCertReloaderReloadErrors checks that Reload keeps serving the
// material in use when the new files are broken, and picks them up once
// they are fixed.
func TestCertReloaderReloadErrors(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	dir := t.TempDir()
	r := serverReloader(t, dir, ca, "one", testcerts.Options{}, transport.ServerTLS{})
	b := startTLSBroker(t, r.TLSConfig(), broker.Config{})
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	two := ca.Issue(t, "two", testcerts.Options{})

	replaceFile(t, certFile, two.CertPEM)
	replaceFile(t, keyFile, []byte("not a key\n"))
	err := r.Reload()
	if err == nil || !strings.Contains(err.Error(), keyFile) || !strings.Contains(err.Error(), "no private key found") {
		t.Fatalf("Reload with a broken key: %v, want an error naming %s", err, keyFile)
	}
	if cn := peerCN(t, b.Addr, ca); cn != "one" {
		t.Fatalf("served CN %q after a failed reload, want one", cn)
	}

	three := ca.Issue(t, "three", testcerts.Options{})
	replaceFile(t, keyFile, three.KeyPEM)
	err = r.Reload()
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("Reload with a key of another certificate: %v, want a mismatch error", err)
	}
	if cn := peerCN(t, b.Addr, ca); cn != "one" {
		t.Fatalf("served CN %q after a failed reload, want one", cn)
	}

	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	err = r.Reload()
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("Reload with a missing file: %v, want ErrNotExist naming %s", err, certFile)
	}

	replaceFile(t, certFile, two.CertPEM)
	replaceFile(t, keyFile, two.KeyPEM)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if cn := peerCN(t, b.Addr, ca); cn != "two" {
		t.Fatalf("served CN %q, want two", cn)
	}
}

// TestCertReloaderReloadClientCA checks that the client CA file is
// reloaded with the certificate.
func TestCertReloaderReloadClientCA(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	oldCA, newCA := testcerts.NewCA(t, "old-client-ca"), testcerts.NewCA(t, "new-client-ca")
	dir := t.TempDir()
	caFile := oldCA.WriteFile(t, dir, "client-ca")
	r := serverReloader(t, dir, ca, "server", testcerts.Options{}, transport.ServerTLS{ClientCAFile: caFile, ClientAuth: transport.ClientCertRequired})
	b := startTLSBroker(t, r.TLSConfig(), broker.Config{})
	oldCert := oldCA.Issue(t, "old", testcerts.Options{Client: true}).TLSCertificate(t)
	newCert := newCA.Issue(t, "new", testcerts.Options{Client: true}).TLSCertificate(t)

	first := mustConnect(t, b.Addr, clientConfig(ca, oldCert), "old", packet.V5)
	if _, err := connect(t, b.Addr, presentAnyway(ca, newCert), "new", packet.V5); err == nil {
		t.Fatal("certificate of the new CA accepted before the reload")
	}
	replaceFile(t, caFile, newCA.CertPEM)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	mustConnect(t, b.Addr, clientConfig(ca, newCert), "new", packet.V5)
	if _, err := connect(t, b.Addr, presentAnyway(ca, oldCert), "old-again", packet.V5); err == nil {
		t.Fatal("certificate of the old CA accepted after the reload")
	}
	roundTrip(t, first, "tls/old")
}

// TestNewCertReloaderErrors checks that configuration errors name the
// file and the problem.
func TestNewCertReloaderErrors(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, "server", testcerts.Options{}).WriteFiles(t, dir, "good")
	_, otherKey := ca.Issue(t, "other", testcerts.Options{}).WriteFiles(t, dir, "other")
	caFile := ca.WriteFile(t, dir, "ca")
	missing := filepath.Join(dir, "missing.crt")
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	encrypted := filepath.Join(dir, "encrypted.key")
	if err := os.WriteFile(encrypted, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  transport.ServerTLS
		want []string
	}{
		{"no files", transport.ServerTLS{}, []string{"CertFile and KeyFile are required"}},
		{"missing cert", transport.ServerTLS{CertFile: missing, KeyFile: keyFile}, []string{missing, "no such file"}},
		{"key as cert", transport.ServerTLS{CertFile: keyFile, KeyFile: keyFile}, []string{keyFile, "no certificates found", "EC PRIVATE KEY"}},
		{"cert as key", transport.ServerTLS{CertFile: certFile, KeyFile: certFile}, []string{certFile, "no private key found"}},
		{"empty cert", transport.ServerTLS{CertFile: empty, KeyFile: keyFile}, []string{empty, "no certificates found"}},
		{"mismatch", transport.ServerTLS{CertFile: certFile, KeyFile: otherKey}, []string{otherKey, certFile, "does not match"}},
		{"encrypted key", transport.ServerTLS{CertFile: certFile, KeyFile: encrypted}, []string{encrypted, "encrypted"}},
		{"required without CA", transport.ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientAuth: transport.ClientCertRequired}, []string{"ClientCAFile"}},
		{"empty CA", transport.ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: empty}, []string{empty, "client CA", "no certificates found"}},
		{"bad version", transport.ServerTLS{CertFile: certFile, KeyFile: keyFile, MinVersion: 0x1234}, []string{"MinVersion"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := transport.NewCertReloader(tc.cfg, discardLog)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	r, err := transport.NewCertReloader(transport.ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile, MinVersion: tls.VersionTLS13}, discardLog)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := r.TLSConfig().GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientAuth != tls.VerifyClientCertIfGiven || cfg.MinVersion != tls.VersionTLS13 || cfg.ClientCAs == nil {
		t.Errorf("config: ClientAuth %v MinVersion %#x ClientCAs %v; want optional verified certificates, TLS 1.3, a CA pool", cfg.ClientAuth, cfg.MinVersion, cfg.ClientCAs != nil)
	}
	r, err = transport.NewCertReloader(transport.ServerTLS{CertFile: certFile, KeyFile: keyFile}, discardLog)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := r.TLSConfig(); cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("default config: MinVersion %#x ClientAuth %v", cfg.MinVersion, cfg.ClientAuth)
	}
}

// TestTLSListenerNeedsCertificate checks Listen refuses a TLS listener
// without a certificate.
func TestTLSListenerNeedsCertificate(t *testing.T) {
	for _, cfg := range []*tls.Config{nil, {}} {
		l, err := transport.Listen(testCtx(t), transport.ListenConfig{URL: "mqtts://127.0.0.1:0", TLS: cfg})
		if err == nil {
			l.Close()
			t.Fatalf("Listen with TLS %v: no error", cfg)
		}
	}
}

// TestTLSListenerStalledHandshake checks that a connection that never
// handshakes does not hold back other clients, and that Close ends its
// handshake.
func TestTLSListenerStalledHandshake(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	r := serverReloader(t, t.TempDir(), ca, "server", testcerts.Options{}, transport.ServerTLS{})
	b := startTLSBroker(t, r.TLSConfig(), broker.Config{})
	var d net.Dialer
	stalled, err := d.DialContext(testCtx(t), "tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	c := mustConnect(t, b.Addr, clientConfig(ca), "after-stalled", packet.V5)
	roundTrip(t, c, "tls/stalled")
	if n := b.Stats().Connections; n != 1 {
		t.Errorf("broker has %d connections, want 1 (the stalled one must not reach it)", n)
	}
}

// TestTLSListenerClose checks that Accept returns net.ErrClosed after
// Close, with a handshake in progress.
func TestTLSListenerClose(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	r := serverReloader(t, t.TempDir(), ca, "server", testcerts.Options{}, transport.ServerTLS{})
	l, err := transport.Listen(testCtx(t), transport.ListenConfig{URL: "mqtts://127.0.0.1:0", TLS: r.TLSConfig(), Logger: discardLog})
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	stalled, err := d.DialContext(testCtx(t), "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The stalled connection was closed by the listener.
	stalled.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := stalled.Read(make([]byte, 1)); err == nil {
		t.Fatal("stalled connection still open after Close")
	}
}

// clientIdentity issues a client certificate for key signed by ca.
func clientIdentity(t testing.TB, ca *testcerts.CA, cn string, pub any) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestClientTLSConfig builds client configurations from PEM bytes, DER
// bytes (PKCS#1, PKCS#8 and SEC 1 keys) and files, and uses each against a
// listener that requires client certificates.
func TestClientTLSConfig(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	clientCA := testcerts.NewCA(t, "client-ca")
	b, cnOf := clientCertBroker(t, ca, clientCA, transport.ClientCertRequired)
	dir := t.TempDir()

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecDER := clientIdentity(t, clientCA, "ec", &ecKey.PublicKey)
	rsaDER := clientIdentity(t, clientCA, "rsa", &rsaKey.PublicKey)
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PrivateKey(rsaKey)
	rsaPKCS8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	caDER, _ := pem.Decode(ca.CertPEM)
	certPEM := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }
	keyPEM := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pair := clientCA.Issue(t, "files", testcerts.Options{Client: true})
	certFile, keyFile := pair.WriteFiles(t, dir, "client")

	cases := []struct {
		name string
		cfg  transport.ClientTLS
		cn   string
	}{
		{"PEM SEC1", transport.ClientTLS{CAPEM: ca.CertPEM, CertPEM: certPEM(ecDER), KeyPEM: keyPEM("EC PRIVATE KEY", sec1)}, "ec"},
		{"PEM PKCS8", transport.ClientTLS{CAPEM: ca.CertPEM, CertPEM: certPEM(ecDER), KeyPEM: keyPEM("PRIVATE KEY", pkcs8)}, "ec"},
		{"PEM PKCS1", transport.ClientTLS{CAPEM: ca.CertPEM, CertPEM: certPEM(rsaDER), KeyPEM: keyPEM("RSA PRIVATE KEY", pkcs1)}, "rsa"},
		{"DER SEC1", transport.ClientTLS{CAPEM: caDER.Bytes, CertPEM: ecDER, KeyPEM: sec1}, "ec"},
		{"DER PKCS8", transport.ClientTLS{CAPEM: caDER.Bytes, CertPEM: ecDER, KeyPEM: pkcs8}, "ec"},
		{"DER PKCS1", transport.ClientTLS{CAPEM: caDER.Bytes, CertPEM: rsaDER, KeyPEM: pkcs1}, "rsa"},
		{"DER RSA PKCS8", transport.ClientTLS{CAPEM: caDER.Bytes, CertPEM: rsaDER, KeyPEM: rsaPKCS8}, "rsa"},
		{"files", transport.ClientTLS{CAFile: ca.WriteFile(t, dir, "ca"), CertFile: certFile, KeyFile: keyFile}, "files"},
		{"files and bytes", transport.ClientTLS{CAFile: write("other-ca.crt", testcerts.NewCA(t, "x").CertPEM), CAPEM: ca.CertPEM, CertFile: certFile, KeyPEM: pair.KeyPEM}, "files"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.cfg.Config()
			if err != nil {
				t.Fatalf("Config: %v", err)
			}
			if cfg.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion %#x, want TLS 1.2", cfg.MinVersion)
			}
			id := fmt.Sprintf("client-%d", i)
			c := mustConnect(t, b.Addr, cfg, id, packet.V5)
			if got := cnOf(id); got != tc.cn {
				t.Errorf("authenticator saw CN %q, want %q", got, tc.cn)
			}
			roundTrip(t, c, "tls/"+id)
		})
	}

	t.Run("system roots", func(t *testing.T) {
		cfg, err := transport.ClientTLS{ServerName: "example.com", ALPN: []string{"mqtt"}, MinVersion: tls.VersionTLS13}.Config()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.RootCAs != nil || cfg.ServerName != "example.com" || len(cfg.NextProtos) != 1 || cfg.MinVersion != tls.VersionTLS13 || len(cfg.Certificates) != 0 {
			t.Errorf("config %+v", cfg)
		}
		if _, err := connect(t, b.Addr, cfg, "system", packet.V5); err == nil {
			t.Error("the test CA is trusted without being configured")
		}
	})

	otherKey := keyPEM("EC PRIVATE KEY", sec1)
	errCases := []struct {
		name string
		cfg  transport.ClientTLS
		want []string
	}{
		{"mismatched key", transport.ClientTLS{CertPEM: pair.CertPEM, KeyPEM: otherKey}, []string{"KeyPEM", "does not match", "CertPEM"}},
		{"mismatched key file", transport.ClientTLS{CertFile: certFile, KeyFile: write("ec.key", otherKey)}, []string{filepath.Join(dir, "ec.key"), "does not match", certFile}},
		{"no certificates", transport.ClientTLS{CAPEM: pair.KeyPEM}, []string{"CAPEM", "no certificates found"}},
		{"missing CA file", transport.ClientTLS{CAFile: filepath.Join(dir, "nope.crt")}, []string{filepath.Join(dir, "nope.crt")}},
		{"CA file with a key", transport.ClientTLS{CAFile: keyFile}, []string{keyFile, "no certificates found"}},
		{"garbage DER", transport.ClientTLS{CAPEM: []byte{0x30, 0x03, 1, 2, 3}}, []string{"CAPEM", "neither PEM nor a DER certificate"}},
		{"garbage key", transport.ClientTLS{CertPEM: pair.CertPEM, KeyPEM: []byte{0x30, 0x03, 1, 2, 3}}, []string{"KeyPEM", "PKCS#8"}},
		{"cert without key", transport.ClientTLS{CertFile: certFile}, []string{certFile, "no private key"}},
		{"key without cert", transport.ClientTLS{KeyPEM: pair.KeyPEM}, []string{"KeyPEM", "no certificate"}},
		{"both cert sources", transport.ClientTLS{CertFile: certFile, CertPEM: pair.CertPEM, KeyPEM: pair.KeyPEM}, []string{"CertFile and CertPEM"}},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.Config()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestServerConfigALPN checks that application protocols set on a
// reloader's config, in place or through ServerConfigWithALPN on a clone,
// are negotiated.
func TestServerConfigALPN(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	r := serverReloader(t, t.TempDir(), ca, "server", testcerts.Options{}, transport.ServerTLS{})
	inPlace := r.TLSConfig()
	inPlace.NextProtos = []string{"mqtt"}
	for name, cfg := range map[string]*tls.Config{
		"in place":             inPlace,
		"ServerConfigWithALPN": transport.ServerConfigWithALPN(r.TLSConfig(), "mqtt"),
	} {
		t.Run(name, func(t *testing.T) {
			l, err := transport.Listen(testCtx(t), transport.ListenConfig{URL: "mqtts://127.0.0.1:0", TLS: cfg, Logger: discardLog})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}()
			d := tls.Dialer{Config: &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"other", "mqtt"}}}
			c, err := d.DialContext(testCtx(t), "tcp", l.Addr().String())
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "mqtt" {
				t.Errorf("client negotiated %q, want mqtt", p)
			}
			sc, ok := <-accepted
			if !ok {
				t.Fatal("Accept failed")
			}
			defer sc.Close()
			if p := sc.(transport.TLSConn).ConnectionState().NegotiatedProtocol; p != "mqtt" {
				t.Errorf("server negotiated %q, want mqtt", p)
			}
		})
	}
}
