package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqttbroker "github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

func TestIsAWSIoTEndpoint(t *testing.T) {
	for _, tc := range []struct {
		host   string
		region string
	}{
		{"a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com", "us-east-1"},
		{"a1b2c3d4e5f6g7.iot.eu-west-3.amazonaws.com", "eu-west-3"},
		{"A1B2C3-ATS.IOT.AP-SOUTHEAST-2.AMAZONAWS.COM", "ap-southeast-2"},
		{"abc-ats.iot.us-gov-west-1.amazonaws.com", "us-gov-west-1"},
		{"abc-ats.iot.cn-north-1.amazonaws.com.cn", "cn-north-1"},
		{"abc-ats.iot.us-east-1.amazonaws.com:8883", "us-east-1"},
		{"mqtts://abc-ats.iot.us-east-1.amazonaws.com:443/", "us-east-1"},
		{"iot.us-east-1.amazonaws.com", ""},                 // control plane
		{"abc.credentials.iot.us-east-1.amazonaws.com", ""}, // credentials provider
		{"abc.iot.useast1.amazonaws.com", ""},
		{"abc.iot.us-east-x.amazonaws.com", ""},
		{"abc.iot.us-east-1.amazonaws.com.evil.example", ""},
		{"abc.iot.us-east-1.example.com", ""},
		{"broker.example.com", ""},
		{"127.0.0.1:8883", ""},
		{"", ""},
	} {
		region, ok := AWSIoTRegion(tc.host)
		if region != tc.region || ok != (tc.region != "") || IsAWSIoTEndpoint(tc.host) != ok {
			t.Errorf("%q: region %q %v, want %q", tc.host, region, ok, tc.region)
		}
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and client
// certificates.
type testPKI struct {
	caPEM  []byte
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	server tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca: ca, caKey: key}
	sder, skey := p.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	p.server = tls.Certificate{Certificate: [][]byte{sder}, PrivateKey: skey}
	return p
}

// issue returns a certificate (DER) and its key.
func (p *testPKI) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

// clientCert returns a client certificate and key in PEM and in DER.
func (p *testPKI) clientCert(t *testing.T, cn string) (certPEM, keyPEM, certDER, keyDER []byte) {
	t.Helper()
	der, key := p.issue(t, cn, x509.ExtKeyUsageClientAuth)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), der, kder
}

// awsBroker is our broker behind a TLS listener that behaves as AWS IoT
// Core's port 443: client certificates required, ALPN x-amzn-mqtt-ca
// required, and AWS IoT's topic limits.
type awsBroker struct {
	b       *mqttbroker.Broker
	port    string
	refused atomic.Int32 // handshakes refused for their ALPN

	mu    sync.Mutex
	conns []string // "ALPN CN client-id" of each MQTT connection
}

func (a *awsBroker) Authenticate(_ context.Context, req *mqttbroker.AuthRequest) mqttbroker.AuthResult {
	cs := req.Client.TLS
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return mqttbroker.AuthResult{Code: packet.NotAuthorized}
	}
	a.mu.Lock()
	a.conns = append(a.conns, cs.NegotiatedProtocol+" "+cs.PeerCertificates[0].Subject.CommonName+" "+req.Client.ClientID)
	a.mu.Unlock()
	return mqttbroker.AuthResult{Code: packet.Success}
}

func (a *awsBroker) connections() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.conns...)
}

func startAWSBroker(t *testing.T, p *testPKI) *awsBroker {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	a := &awsBroker{}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{AWSIoTALPN},
		MinVersion:   tls.VersionTLS12,
		// A client that offers other protocols fails the negotiation;
		// one that offers none is refused here.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != AWSIoTALPN {
				a.refused.Add(1)
				return errors.New("ALPN " + AWSIoTALPN + " required")
			}
			return nil
		},
	}
	log := slog.New(slog.DiscardHandler)
	l, err := transport.Listen(context.Background(), transport.ListenConfig{URL: "mqtts://127.0.0.1:0", TLS: cfg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	a.b = mqttbroker.New(mqttbroker.Config{
		Logger:        log,
		SysInterval:   -1,
		Authenticator: a,
		Limits:        mqttbroker.Limits{MaxTopicLength: AWSMaxTopicBytes, MaxTopicLevels: AWSMaxTopicSlashes + 1},
	})
	errc := make(chan error, 1)
	go func() { errc <- a.b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.b.Shutdown(ctx)
		<-errc
	})
	_, a.port, _ = net.SplitHostPort(l.Addr().String())
	return a
}

func TestAWSIoTOptions(t *testing.T) {
	p := newTestPKI(t)
	certPEM, keyPEM, _, _ := p.clientCert(t, "dev-1")
	for _, tc := range []struct {
		name      string
		endpoint  string
		opts      []AWSOption
		server    string
		alpn      bool
		keepalive time.Duration
	}{
		{"defaults", "abc-ats.iot.us-east-1.amazonaws.com", nil, "mqtts://abc-ats.iot.us-east-1.amazonaws.com:8883", false, AWSDefaultKeepAlive},
		{"port 443", "abc-ats.iot.us-east-1.amazonaws.com", []AWSOption{AWSPort443()}, "mqtts://abc-ats.iot.us-east-1.amazonaws.com:443", true, AWSDefaultKeepAlive},
		{"explicit 443", "abc-ats.iot.us-east-1.amazonaws.com:443", nil, "mqtts://abc-ats.iot.us-east-1.amazonaws.com:443", true, AWSDefaultKeepAlive},
		{"URL", "mqtts://abc-ats.iot.us-east-1.amazonaws.com:8883/", nil, "mqtts://abc-ats.iot.us-east-1.amazonaws.com:8883", false, AWSDefaultKeepAlive},
		{"custom domain, ALPN on its port", "iot.example.com:9443", []AWSOption{AWSPort443()}, "mqtts://iot.example.com:9443", true, AWSDefaultKeepAlive},
		{"short keep alive", "h", []AWSOption{AWSKeepAlive(5 * time.Second)}, "mqtts://h:8883", false, AWSMinKeepAlive},
		{"long keep alive", "h", []AWSOption{AWSKeepAlive(2 * time.Hour)}, "mqtts://h:8883", false, AWSMaxKeepAlive},
		{"keep alive", "h", []AWSOption{AWSKeepAlive(90 * time.Second)}, "mqtts://h:8883", false, 90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := AWSIoT(tc.endpoint, certPEM, keyPEM, append(tc.opts, AWSThingName("dev-1"))...)
			if err != nil {
				t.Fatal(err)
			}
			alpn := len(o.TLSConfig.NextProtos) == 1 && o.TLSConfig.NextProtos[0] == AWSIoTALPN
			ns, _ := o.Namespace.(AWSIoTNamespace)
			if o.Server != tc.server || alpn != tc.alpn || o.Keepalive.Interval != tc.keepalive ||
				o.ClientID != "dev-1" || ns.ThingName != "dev-1" || o.Version != packet.V5 || len(o.TLSConfig.Certificates) != 1 {
				t.Fatalf("options: server %q alpn %v keepalive %v client id %q namespace %#v", o.Server, o.TLSConfig.NextProtos,
					o.Keepalive.Interval, o.ClientID, o.Namespace)
			}
			if _, err := New(o); err != nil {
				t.Fatal(err)
			}
		})
	}
	for name, f := range map[string]func() (Options, error){
		"bad thing name":   func() (Options, error) { return AWSIoT("h", certPEM, keyPEM, AWSThingName("my thing")) },
		"no certificate":   func() (Options, error) { return AWSIoT("h", nil, nil) },
		"key without cert": func() (Options, error) { return AWSIoT("h", nil, keyPEM) },
		"cert without key": func() (Options, error) { return AWSIoT("h", certPEM, nil) },
		"mismatched key":   func() (Options, error) { return AWSIoT("h", certPEM, p.caPEM) },
		"plain mqtt":       func() (Options, error) { return AWSIoT("mqtt://h", certPEM, keyPEM) },
		"websocket":        func() (Options, error) { return AWSIoT("wss://h", certPEM, keyPEM) },
		"path":             func() (Options, error) { return AWSIoT("h/x", certPEM, keyPEM) },
		"empty":            func() (Options, error) { return AWSIoT("", certPEM, keyPEM) },
		"missing file": func() (Options, error) {
			return AWSIoT("h", nil, nil, AWSCertFiles("/nonexistent/c", "/nonexistent/k"))
		},
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestAWSIoTOurBroker connects in AWS mode to our broker behind a listener
// that, like AWS IoT Core on port 443, requires client certificates and
// ALPN x-amzn-mqtt-ca, with AWS IoT's topic limits.
func TestAWSIoTOurBroker(t *testing.T) {
	p := newTestPKI(t)
	ab := startAWSBroker(t, p)
	endpoint := "127.0.0.1:" + ab.port
	certPEM, keyPEM, certDER, keyDER := p.clientCert(t, "dev-1")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "dev-1.crt"), filepath.Join(dir, "dev-1.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	awsOpts := func(t *testing.T, cert, key []byte, extra ...AWSOption) Options {
		t.Helper()
		o, err := AWSIoT(endpoint, cert, key, append([]AWSOption{AWSThingName("dev-1"), AWSRootCA(p.caPEM)}, extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		o.DisableReconnect = true
		return o
	}

	for _, tc := range []struct {
		name      string
		cert, key []byte
		extra     []AWSOption
	}{
		{"PEM bytes", certPEM, keyPEM, nil},
		{"DER bytes", certDER, keyDER, nil},
		{"files", nil, nil, []AWSOption{AWSCertFiles(certFile, keyFile)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ab.connections())
			c, info := connect(t, awsOpts(t, tc.cert, tc.key, append(tc.extra, AWSPort443())...))
			if info.ClientID != "dev-1" {
				t.Fatalf("client id %q", info.ClientID)
			}
			conns := ab.connections()
			if len(conns) != before+1 || conns[before] != AWSIoTALPN+" dev-1 dev-1" {
				t.Fatalf("broker saw %q", conns)
			}
			ctx := testCtx(t)
			if err := c.Publish(ctx, &Message{Topic: "sensors/dev-1/temp", Payload: []byte("21.5"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
			c.Disconnect(ctx, packet.NormalDisconnection, KeepSessionExpiry)
		})
	}

	t.Run("without ALPN", func(t *testing.T) {
		// The endpoint names its port: no ALPN unless AWSPort443.
		o := awsOpts(t, certPEM, keyPEM)
		if len(o.TLSConfig.NextProtos) != 0 {
			t.Fatalf("ALPN %q", o.TLSConfig.NextProtos)
		}
		before := ab.b.Stats().ConnectionsTotal
		c, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Connect(testCtx(t)); err == nil {
			c.Disconnect(testCtx(t), packet.NormalDisconnection, KeepSessionExpiry)
			t.Fatal("connected without ALPN")
		}
		waitFor(t, 10*time.Second, "the refused handshake", func() bool { return ab.refused.Load() >= 1 })
		// Another protocol fails the negotiation itself.
		o.TLSConfig.NextProtos = []string{"mqtt"}
		if c, err = New(o); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Connect(testCtx(t)); err == nil || !strings.Contains(err.Error(), "application protocol") {
			t.Fatalf("other ALPN: %v", err)
		}
		if n := ab.b.Stats().ConnectionsTotal; n != before {
			t.Fatalf("the broker accepted %d connections", n-before)
		}
	})

	t.Run("namespace", func(t *testing.T) {
		c, _ := connect(t, awsOpts(t, certPEM, keyPEM, AWSPort443()))
		ctx := testCtx(t)
		before := ab.b.Stats()
		for _, m := range []*Message{
			{Topic: "$aws/things/dev-2/shadow/update", QoS: 1},
			{Topic: "a/b/c/d/e/f/g/h/i", QoS: 1},
			{Topic: strings.Repeat("t", AWSMaxTopicBytes+1), QoS: 1},
			{Topic: strings.Repeat("é", AWSMaxTopicBytes/2+1), QoS: 1},
			{Topic: "$SYS/x", QoS: 1},
		} {
			if err := c.Publish(ctx, m); !errors.Is(err, ErrNamespace) {
				t.Fatalf("publish %.40q: %v", m.Topic, err)
			}
			if tok := c.PublishAsync(ctx, m); !errors.Is(tok.Wait(ctx), ErrNamespace) {
				t.Fatalf("async publish %.40q: %v", m.Topic, tok.Err())
			}
		}
		for _, f := range []string{"$aws/things/+/shadow/#", "$aws/#", "+/+/+/+/+/+/+/+/#"} {
			if _, _, err := c.SubscribeQoS(ctx, f, 1, nil); !errors.Is(err, ErrNamespace) {
				t.Fatalf("subscribe %q: %v", f, err)
			}
		}
		// The broker saw none of them: a QoS 1 publish and a subscription
		// sent afterwards on the same connection are the first ones it
		// counts.
		if err := c.Publish(ctx, &Message{Topic: "a/b/c/d/e/f/g/h", QoS: 1}); err != nil {
			t.Fatal(err)
		}
		id, granted, err := c.SubscribeQoS(ctx, "$aws/things/dev-1/shadow/update/accepted", 1, nil)
		if err != nil || id == 0 || granted != 1 {
			t.Fatalf("own shadow subscription: id %d granted %d %v", id, granted, err)
		}
		after := ab.b.Stats()
		if n := after.PublishReceived - before.PublishReceived; n != 1 {
			t.Fatalf("the broker received %d PUBLISH packets, want 1", n)
		}
		if n := after.Subscriptions - before.Subscriptions; n != 1 {
			t.Fatalf("the broker has %d new subscriptions, want 1", n)
		}
	})
}
