package auth

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/internal/testcerts"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

// fxCert is a certificate description; Raw is filled so that it has a
// fingerprint.
func fxCert(cn string, dns, emails []string, uris []string) *x509.Certificate {
	c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns, EmailAddresses: emails,
		Raw: []byte("certificate of " + cn)}
	for _, u := range uris {
		pu, _ := url.Parse(u)
		c.URIs = append(c.URIs, pu)
	}
	return c
}

// fxTLSState is a connection state presenting cert, verified or not.
func fxTLSState(cert *x509.Certificate, verified bool) *tls.ConnectionState {
	st := &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert}}
	if verified {
		st.VerifiedChains = [][]*x509.Certificate{{cert, {Subject: pkix.Name{CommonName: "CA"}}}}
	}
	return st
}

func fxCertReq(st *tls.ConnectionState, v packet.Version) *broker.AuthRequest {
	r := fxConnect(v, "claimed", "")
	r.Client.TLS = st
	return r
}

func TestCertAuthIdentity(t *testing.T) {
	full := fxCert("device-1", []string{"d1.example.com", "alt.example.com"}, []string{"d1@example.com"}, []string{"spiffe://example.com/d1"})
	emailOnly := fxCert("device-2", nil, []string{"d2@example.com"}, nil)
	uriOnly := fxCert("device-3", nil, nil, []string{"urn:device:3"})
	noCN := fxCert("", nil, nil, nil)
	cases := []struct {
		spec string
		cert *x509.Certificate
		want string // "" = refused
	}{
		{"cn", full, "device-1"},
		{"cn", noCN, ""},
		{"san", full, "d1.example.com"},
		{"san", emailOnly, "d2@example.com"},
		{"san", uriOnly, "urn:device:3"},
		{"san", noCN, ""},
		{"san:dns", emailOnly, ""},
		{"san:email", full, "d1@example.com"},
		{"san:uri", full, "spiffe://example.com/d1"},
	}
	for _, c := range cases {
		cfg, err := ParseCertAuthSpec(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		ca, err := NewCertAuth(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []packet.Version{packet.V5, packet.V311} {
			res := ca.Authenticate(context.Background(), fxCertReq(fxTLSState(c.cert, true), v))
			switch {
			case c.want == "" && res.Code != packet.BadUserNameOrPassword:
				t.Errorf("%s %q v%d: %v, want refusal", c.spec, c.cert.Subject.CommonName, v, res.Code)
			case c.want != "" && (res.Code != packet.Success || res.Username != c.want):
				t.Errorf("%s %q v%d: %v %q, want %q", c.spec, c.cert.Subject.CommonName, v, res.Code, res.Username, c.want)
			}
		}
	}
}

func TestCertAuthRefusals(t *testing.T) {
	ca, _ := NewCertAuth(CertAuthConfig{})
	ctx := context.Background()
	if res := ca.Authenticate(ctx, fxConnect(packet.V311, "u", "p")); res.Code != packet.NotAuthorized {
		t.Errorf("plain connection: %v", res.Code)
	}
	if res := ca.Authenticate(ctx, fxCertReq(&tls.ConnectionState{HandshakeComplete: true}, packet.V5)); res.Code != packet.NotAuthorized {
		t.Errorf("TLS without certificate: %v", res.Code)
	}
	unverified := fxCertReq(fxTLSState(fxCert("x", nil, nil, nil), false), packet.V5)
	if res := ca.Authenticate(ctx, unverified); res.Code != packet.BadUserNameOrPassword {
		t.Errorf("unverified certificate: %v", res.Code)
	}
	if ca.Handles(unverified) {
		t.Error("handles an unverified certificate")
	}
	m := fxCertReq(fxTLSState(fxCert("x", nil, nil, nil), true), packet.V5)
	if !ca.Handles(m) {
		t.Error("does not handle a verified certificate")
	}
	m.Method = "PLAIN"
	if ca.Handles(m) || ca.Authenticate(ctx, m).Code != packet.BadAuthenticationMethod {
		t.Error("method")
	}
	for _, bad := range []string{"", "CN", "cn:x", "san:", "san:ip", "fingerprint", "fingerprint:", "subject"} {
		if _, err := ParseCertAuthSpec(bad); err == nil {
			t.Errorf("ParseCertAuthSpec(%q) succeeded", bad)
		}
	}
	if _, err := NewCertAuth(CertAuthConfig{Source: CertSAN, SANType: "ip"}); err == nil {
		t.Error("SAN type ip accepted")
	}
	if _, err := NewCertAuth(CertAuthConfig{Source: CertFingerprint}); err == nil {
		t.Error("fingerprint without file accepted")
	}
}

func TestParseFingerprints(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	lower := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(lower); i += 2 {
		colons = append(colons, strings.ToUpper(lower[i:i+2]))
	}
	m, err := ParseFingerprints([]byte("# devices\n\n" + strings.Join(colons, ":") + " alice\n"))
	if err != nil || m[lower] != "alice" || len(m) != 1 {
		t.Fatalf("%v %v", m, err)
	}
	bad := []struct{ content, want string }{
		{lower + "\n", "line 1: want"},
		{lower + " alice extra\n", "line 1: want"},
		{"# x\nabcd alice\n", "line 2: \"abcd\" is not a SHA-256 fingerprint"},
		{lower + "zz alice\n", "not a SHA-256 fingerprint"},
		{lower + " alice\n" + strings.ToUpper(lower) + " bob\n", "line 2: fingerprint already mapped on line 1"},
	}
	for _, c := range bad {
		if _, err := ParseFingerprints([]byte(c.content)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseFingerprints(%q) = %v, want %q", c.content, err, c.want)
		}
	}
}

func TestCertAuthFingerprintFile(t *testing.T) {
	a, b := fxCert("a", nil, nil, nil), fxCert("b", nil, nil, nil)
	path := fxWriteFile(t, t.TempDir(), "fingerprints", Fingerprint(a)+" alice\n")
	cfg, err := ParseCertAuthSpec("fingerprint:" + path)
	if err != nil || cfg.FingerprintFile != path {
		t.Fatal(cfg, err)
	}
	ca, err := NewCertAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if res := ca.Authenticate(ctx, fxCertReq(fxTLSState(a, true), packet.V311)); res.Code != packet.Success || res.Username != "alice" {
		t.Fatalf("mapped: %+v", res)
	}
	if res := ca.Authenticate(ctx, fxCertReq(fxTLSState(b, true), packet.V5)); res.Code != packet.BadUserNameOrPassword {
		t.Fatalf("unmapped: %v", res.Code)
	}
	fxReplaceFile(t, path, Fingerprint(b)+" bob\n")
	if err := ca.Reload(); err != nil {
		t.Fatal(err)
	}
	if res := ca.Authenticate(ctx, fxCertReq(fxTLSState(b, true), packet.V5)); res.Username != "bob" {
		t.Fatalf("after reload: %+v", res)
	}
	fxReplaceFile(t, path, "nonsense\n")
	if err := ca.Reload(); err == nil {
		t.Fatal("broken file reloaded")
	}
	if res := ca.Authenticate(ctx, fxCertReq(fxTLSState(b, true), packet.V5)); res.Username != "bob" {
		t.Fatalf("after failed reload: %+v", res)
	}
}

// End to end over TLS: the broker takes the identity from the verified
// client certificate (v5 and 3.1.1), the ACL applies to it, and a client
// without a certificate falls through to the password file.
func TestCertAuthEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "test client CA")
	srvCrt, srvKey := ca.Issue(t, "broker", testcerts.Options{}).WriteFiles(t, dir, "server")
	caFile := ca.WriteFile(t, dir, "ca")
	device := ca.Issue(t, "device-9", testcerts.Options{Client: true}).TLSCertificate(t)

	certs, err := transport.NewCertReloader(transport.ServerTLS{CertFile: srvCrt, KeyFile: srvKey, ClientCAFile: caFile, ClientAuth: transport.ClientCertOptional}, fxQuiet)
	if err != nil {
		t.Fatal(err)
	}
	l, err := transport.Listen(context.Background(), transport.ListenConfig{URL: "mqtts://127.0.0.1:0", TLS: certs.TLSConfig(), Logger: fxQuiet})
	if err != nil {
		t.Fatal(err)
	}
	cauth, _ := NewCertAuth(CertAuthConfig{Source: CertCN})
	pf := fxPasswordFile(t, PasswordFileOptions{}, "alice", "wonderland")
	p, _ := ParseACL([]byte("user device-9 topic devices/%u/# permission readwrite\nuser alice topic alice/# permission readwrite\n"))
	b := fxServe(t, l, broker.Config{Authenticator: Chain(cauth, pf), Authorizer: NewACL(p, ACLOptions{})})
	url := "mqtts://" + b.addr
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		c := fxDial(t, url, client.Options{Version: v, ClientID: "dev", Username: "someone-else",
			TLSConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{device}}})
		fxRoundTrip(t, c, "devices/device-9/temp", v)
		if err := fxPublish(c, "alice/x"); !errors.Is(err, packet.NotAuthorized) && v == packet.V5 {
			t.Errorf("v%d: publish outside the ACL: %v", v, err)
		}
		fxClose(c)

		// No certificate: the password file decides.
		c = fxDial(t, url, client.Options{Version: v, ClientID: "alice", Username: "alice", Password: []byte("wonderland"),
			TLSConfig: &tls.Config{RootCAs: ca.Pool()}})
		fxRoundTrip(t, c, "alice/x", v)
		fxClose(c)
		_, err := fxTryDial(url, client.Options{Version: v, ClientID: "anon", TLSConfig: &tls.Config{RootCAs: ca.Pool()}})
		if !errors.Is(err, packet.NotAuthorized) {
			t.Errorf("v%d: anonymous without certificate: %v", v, err)
		}
	}
}
