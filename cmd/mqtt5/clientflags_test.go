package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// testBroker is an in-process broker on a loopback port.
type testBroker struct {
	*broker.Broker
	host, port string
}

func startTestBroker(t *testing.T, cfg broker.Config) *testBroker {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.SysInterval = -1
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(cfg)
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Shutdown(ctx)
		<-errc
	})
	host, port, _ := net.SplitHostPort(l.Addr().String())
	return &testBroker{Broker: b, host: host, port: port}
}

// args returns cmd -h host -p port followed by more.
func (b *testBroker) args(cmd string, more ...string) []string {
	return append([]string{cmd, "-h", b.host, "-p", b.port}, more...)
}

// idle waits until the broker has closed every connection: a command that
// reuses a client id right after another then resumes the session rather
// than taking over a connection the broker has not finished reading.
func (b *testBroker) idle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().Connections > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("broker still has %d connections", b.Stats().Connections)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bgCmd is a command running in the background.
type bgCmd struct {
	done     chan struct{}
	code     int
	out, err syncBuffer
	cancel   context.CancelFunc
}

// startCmd runs the command line in the background.
func startCmd(t *testing.T, args ...string) *bgCmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c := &bgCmd{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(c.done)
		c.code = run(ctx, args, &c.out, &c.err)
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

// subscribed waits until a sub (or rr) started with -d reports its
// subscription.
func (c *bgCmd) subscribed(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.err.String(), "subscribed to ") {
		select {
		case <-c.done:
			t.Fatalf("command ended before subscribing: exit %d, stderr %q", c.code, c.err.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the subscription; stderr %q", c.err.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wait waits for the command to end.
func (c *bgCmd) wait(t *testing.T) (code int, stdout, stderr string) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		c.cancel()
		<-c.done
		t.Fatalf("command did not end; stdout %q stderr %q", c.out.String(), c.err.String())
	}
	return c.code, c.out.String(), c.err.String()
}

// runStdin runs the command line with stdin.
func runStdin(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = context.WithValue(ctx, stdinKey{}, strings.NewReader(stdin))
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// jsonLines decodes the output of sub -F json.
func jsonLines(t *testing.T, out string) []jsonMessage {
	t.Helper()
	var msgs []jsonMessage
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var m jsonMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestClientFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pub", "-t", "a", "-m", "x", "--bogus"}, "unknown flag --bogus"},
		{[]string{"pub", "-t", "a", "-m", "x", "-q", "3"}, `-q: "3" is not an integer from 0 to 2`},
		{[]string{"pub", "-t", "a", "-m"}, "flag -m needs a value"},
		{[]string{"pub", "-t", "a", "-m", "x", "-rq", "1"}, "short flags cannot be combined"},
		{[]string{"pub", "-t", "a"}, "no message"},
		{[]string{"pub", "-t", "a", "-m", "x", "-n"}, "only one of -m, -f, -s, -l and -n"},
		{[]string{"pub", "-m", "x"}, "no topic"},
		{[]string{"pub", "-t", "a", "-m", "x", "-V", "31"}, "MQTT 3.1 is not supported"},
		{[]string{"pub", "-t", "a", "-m", "x", "-V", "7"}, "unknown protocol version"},
		{[]string{"pub", "-t", "a", "-m", "x", "-c"}, "needs a client id"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "content-type"}, "needs a command, a property name and a value"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "colour", "red"}, `unknown publish property "colour"`},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "subscribe", "subscription-identifier", "1"}, "not used by this command"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "message-expiry-interval", "soon"}, "not an integer"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "user-property", "k"}, "user-property needs a name and a value"},
		{[]string{"pub", "-t", "a", "-m", "x", "-V", "311", "-D", "publish", "content-type", "t"}, "-D properties need MQTT 5"},
		{[]string{"pub", "-L", "foo://h/a", "-m", "x"}, `unknown scheme "foo"`},
		{[]string{"pub", "-L", "mqtt://h/a", "-h", "h2", "-m", "x"}, "not both"},
		{[]string{"pub", "-t", "a", "-m", "x", "--will-qos", "1"}, "without --will-topic"},
		{[]string{"pub", "-t", "a", "-m", "x", "--cert", "c.pem"}, "--cert and --key go together"},
		{[]string{"pub", "-t", "a", "-m", "x", "extra"}, `unexpected argument "extra"`},
		{[]string{"sub"}, "no topic"},
		{[]string{"sub", "-t", "a/#/b"}, "-t"},
		{[]string{"sub", "-t", "a", "--rh", "3"}, `"3" is not 0, 1 or 2`},
		{[]string{"sub", "-t", "a", "-F", "%t %p"}, "the formats are raw, verbose and json"},
		{[]string{"sub", "-t", "a", "--nl", "-V", "311"}, "need MQTT 5"},
		{[]string{"sub", "-t", "a", "-C", "0"}, "-C"},
		{[]string{"sub", "-t", "a", "-R", "--retained-only"}, "contradict"},
		{[]string{"rr", "-t", "a", "-e", "b", "-m", "x", "-V", "311"}, "request/response needs MQTT 5"},
		{[]string{"rr", "-t", "a", "-m", "x"}, "no response topic"},
		{[]string{"rr", "-t", "a", "-e", "b/#", "-m", "x"}, "a response topic is a topic name"},
		{[]string{"rr", "-t", "a", "-e", "b", "-l"}, "unknown flag -l"},
	} {
		code, _, errs := runCmd(t, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}

func TestClientHelp(t *testing.T) {
	for _, cmd := range []string{"pub", "sub", "rr"} {
		code, out, _ := runCmd(t, "help", cmd)
		if code != 0 || !strings.Contains(out, "Usage: mqtt5 "+cmd) || !strings.Contains(out, "Exit status:") ||
			!strings.Contains(out, "-D, --property") || !strings.Contains(out, "-h, --host") {
			t.Errorf("help %s: exit %d\n%s", cmd, code, out)
		}
		if code, _, _ := runCmd(t, cmd, "--help"); code != 0 {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
	}
}

// parseOptions runs the flag parsing and option building of pub.
func parseOptions(t *testing.T, args ...string) (*connFlags, client.Options) {
	t.Helper()
	c := newCLI("pub", pubSynopsis, "")
	var cf connFlags
	var topic string
	c.stringVar(&topic, "t", "topic", "TOPIC", "")
	cf.register(c, "connect", "publish", "will", "disconnect")
	if _, err := c.parse(args, os.Stderr); err != nil {
		t.Fatal(err)
	}
	o, err := cf.options(os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	return &cf, o
}

func TestClientOptionsFromFlags(t *testing.T) {
	_, o := parseOptions(t, "-L", "mqtt://al%40ice:s3:cret@example.com:1999/a/b/#")
	if o.Server != "mqtt://example.com:1999" || o.Username != "al@ice" || string(o.Password) != "s3:cret" {
		t.Errorf("URL: server %q user %q password %q", o.Server, o.Username, o.Password)
	}
	cf, _ := parseOptions(t, "-L", "mqtts://[::1]/x/+")
	if cf.urlTopic != "x/+" {
		t.Errorf("URL topic %q", cf.urlTopic)
	}
	_, o = parseOptions(t, "-L", "mqtts://[::1]/x")
	if o.Server != "mqtts://[::1]:8883" || o.TLSConfig == nil {
		t.Errorf("mqtts default port: %q", o.Server)
	}

	_, o = parseOptions(t, "-h", "broker", "-i", "me", "-c", "-k", "0", "-V", "mqttv5",
		"--will-topic", "w", "--will-payload", "gone", "--will-qos", "2", "--will-retain",
		"-D", "will", "will-delay-interval", "30", "-D", "will", "content-type", "text/plain",
		"-D", "connect", "user-property", "a", "b", "-D", "connect", "receive-maximum", "10",
		"-D", "connect", "request-problem-information", "0", "-D", "connect", "topic-alias-maximum", "5")
	if o.Server != "mqtt://broker:1883" || o.ClientID != "me" || o.CleanStart != client.CleanStartNever ||
		o.SessionExpiry != math.MaxUint32 || o.Keepalive.Interval >= 0 {
		t.Errorf("session options: %+v", o)
	}
	if w := o.Will; w == nil || w.Topic != "w" || string(w.Payload) != "gone" || w.QoS != 2 || !w.Retain ||
		w.Delay != 30 || w.ContentType != "text/plain" {
		t.Errorf("will: %+v", o.Will)
	}
	if len(o.User) != 1 || o.User[0] != (packet.UserProperty{Key: "a", Value: "b"}) || o.ReceiveMaximum != 10 ||
		!o.NoProblemInfo || o.TopicAliasMaximum != 5 {
		t.Errorf("connect properties: %+v", o)
	}

	_, o = parseOptions(t, "-i", "me", "--no-clean-start", "-x", "60")
	if o.CleanStart != client.CleanStartNever || o.SessionExpiry != 60 {
		t.Errorf("--no-clean-start -x 60: %v %d", o.CleanStart, o.SessionExpiry)
	}
	_, o = parseOptions(t, "-i", "me", "-c", "-x", "0", "--protocol-version=311")
	if o.Version != packet.V311 || o.SessionExpiry != 0 {
		t.Errorf("-c -x 0 (3.1.1): %v %d", o.Version, o.SessionExpiry)
	}
	_, o = parseOptions(t, "-V", "311")
	if !strings.HasPrefix(o.ClientID, "mqtt5-") {
		t.Errorf("3.1.1 client id %q", o.ClientID)
	}
	_, o = parseOptions(t, "-I", "pfx-")
	if !strings.HasPrefix(o.ClientID, "pfx-") || len(o.ClientID) <= 4 {
		t.Errorf("-I client id %q", o.ClientID)
	}

	// TLS flags.
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, testCA(t), 0o600)
	_, o = parseOptions(t, "-h", "b", "--cafile", ca, "--alpn", "mqtt", "--insecure")
	if o.Server != "mqtts://b:8883" || o.TLSConfig == nil || o.TLSConfig.RootCAs == nil ||
		len(o.TLSConfig.NextProtos) != 1 || !o.TLSConfig.InsecureSkipVerify || o.TLSConfig.VerifyConnection == nil {
		t.Errorf("TLS: %q %+v", o.Server, o.TLSConfig)
	}
	if err := o.TLSConfig.VerifyConnection(tls.ConnectionState{}); err == nil {
		t.Error("--insecure accepts a connection without certificate")
	}
}

// testCA returns a self-signed CA certificate in PEM.
func testCA(t *testing.T) []byte {
	ca, _, _ := testPKI(t, "unused.invalid")
	return ca
}

// testPKI returns a CA certificate and a server certificate and key it
// signed for host, in PEM.
func testPKI(t *testing.T, host string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mqtt5 test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestClientTLS runs pub and sub over TLS: --cafile verifies the server;
// a certificate for another host name fails without --insecure and works
// with it; a certificate from an unknown CA fails even with --insecure.
func TestClientTLS(t *testing.T) {
	caPEM, certPEM, keyPEM := testPKI(t, "broker.test.invalid")
	crt, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, caPEM, 0o600)
	other := filepath.Join(dir, "other.pem")
	os.WriteFile(other, testCA(t), 0o600)

	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}})
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(broker.Config{Logger: slog.New(slog.DiscardHandler), SysInterval: -1})
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Shutdown(ctx)
		<-errc
	})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	url := "mqtts://127.0.0.1:" + port + "/tls/topic"

	code, _, errs := runCmd(t, "pub", "-L", url, "--cafile", ca, "-m", "x")
	if code != 1 || !strings.Contains(errs, "certificate") {
		t.Fatalf("host name mismatch accepted: exit %d %q", code, errs)
	}
	code, _, errs = runCmd(t, "pub", "-L", url, "--cafile", other, "--insecure", "-m", "x")
	if code != 1 || !strings.Contains(errs, "certificate") {
		t.Fatalf("unknown CA accepted with --insecure: exit %d %q", code, errs)
	}
	sub := startCmd(t, "sub", "-L", url, "--cafile", ca, "--insecure", "-C", "1", "-d")
	sub.subscribed(t)
	if code, _, errs := runCmd(t, "pub", "-h", "127.0.0.1", "-p", port, "-t", "tls/topic", "--cafile", ca, "--insecure", "--alpn", "mqtt", "-m", "secure", "-q", "1"); code != 0 {
		t.Fatalf("pub over TLS: exit %d %q", code, errs)
	}
	if code, out, errs := sub.wait(t); code != 0 || out != "secure\n" {
		t.Fatalf("sub over TLS: exit %d %q %q", code, out, errs)
	}
}

func TestClientBrokerRefusals(t *testing.T) {
	b := startTestBroker(t, broker.Config{
		Authenticator: broker.AuthenticatorFunc(func(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
			if req.Client.Username == "bad" {
				return broker.AuthResult{Code: packet.BadUserNameOrPassword}
			}
			return broker.AuthResult{Code: packet.Success}
		}),
		Authorizer: denyForbidden{},
	})
	code, _, errs := runCmd(t, b.args("pub", "-t", "forbidden/x", "-m", "x", "-q", "1")...)
	if code != 1 || !strings.Contains(errs, "publish refused: not authorized (0x87)") {
		t.Errorf("publish: exit %d, %q", code, errs)
	}
	code, _, errs = runCmd(t, b.args("pub", "-t", "ok", "-m", "x", "-u", "bad", "-P", "pw")...)
	if code != 1 || !strings.Contains(errs, "connection refused: bad user name or password (0x86)") {
		t.Errorf("connect: exit %d, %q", code, errs)
	}
	code, _, errs = runCmd(t, b.args("pub", "-V", "311", "-t", "ok", "-m", "x", "-u", "bad", "-P", "pw")...)
	if code != 1 || !strings.Contains(errs, "connection refused: bad user name or password") {
		t.Errorf("connect 3.1.1: exit %d, %q", code, errs)
	}
	code, _, errs = runCmd(t, b.args("sub", "-t", "forbidden/#", "-C", "1")...)
	if code != 1 || !strings.Contains(errs, "subscribe forbidden/# refused: not authorized (0x87)") {
		t.Errorf("subscribe: exit %d, %q", code, errs)
	}
	code, _, errs = runCmd(t, b.args("rr", "-t", "forbidden/x", "-e", "ok/reply", "-m", "x", "-q", "1")...)
	if code != 1 || !strings.Contains(errs, "request refused: not authorized (0x87)") {
		t.Errorf("rr: exit %d, %q", code, errs)
	}
	// Nobody listening on a WebSocket URL: a clear connection error.
	code, _, errs = runCmd(t, "pub", "-L", "ws://127.0.0.1:1/a", "-m", "x")
	if code != 1 || !strings.Contains(errs, "connection failed") || !strings.Contains(errs, "ws://127.0.0.1:1/mqtt") {
		t.Errorf("ws: exit %d, %q", code, errs)
	}
	// Nobody listening.
	code, _, errs = runCmd(t, "pub", "-h", "127.0.0.1", "-p", "1", "-t", "a", "-m", "x")
	if code != 1 || !strings.Contains(errs, "connection failed") {
		t.Errorf("no broker: exit %d, %q", code, errs)
	}
}

type denyForbidden struct{}

func (denyForbidden) CanPublish(_ context.Context, _ *broker.ClientInfo, topic string) bool {
	return !strings.HasPrefix(topic, "forbidden/")
}

func (denyForbidden) CanSubscribe(_ context.Context, _ *broker.ClientInfo, filter string) bool {
	return !strings.HasPrefix(filter, "forbidden/")
}

func TestClientURLCredentials(t *testing.T) {
	b := startTestBroker(t, broker.Config{
		Authenticator: broker.AuthenticatorFunc(func(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
			if req.Client.Username == "al@ice" && string(req.Password) == "s3cret" {
				return broker.AuthResult{Code: packet.Success}
			}
			return broker.AuthResult{Code: packet.NotAuthorized}
		}),
	})
	url := "mqtt://al%40ice:s3cret@" + net.JoinHostPort(b.host, b.port) + "/url/topic"
	sub := startCmd(t, "sub", "-L", url, "-C", "1", "-d")
	sub.subscribed(t)
	if code, _, errs := runCmd(t, "pub", "-L", url, "-m", "via url", "-q", "1"); code != 0 {
		t.Fatalf("pub: exit %d %q", code, errs)
	}
	if code, out, errs := sub.wait(t); code != 0 || out != "via url\n" {
		t.Fatalf("sub: exit %d, %q, %q", code, out, errs)
	}
	code, _, errs := runCmd(t, "pub", "-L", url, "-P", "wrong", "-m", "x")
	if code != 1 || !strings.Contains(errs, "connection refused: not authorized") {
		t.Fatalf("-P overrides the URL: exit %d %q", code, errs)
	}
}

// TestSubMosquittoPubInterop drives mqtt5 sub with mosquitto_pub.
func TestSubMosquittoPubInterop(t *testing.T) {
	mp, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/mosquitto_pub"); serr == nil {
			mp = "/usr/bin/mosquitto_pub"
		} else if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto_pub not found (install the Debian package mosquitto-clients)")
		} else {
			t.Skip("mosquitto_pub not found: install mosquitto-clients to run this test")
		}
	}
	b := startTestBroker(t, broker.Config{})
	for _, v := range []struct{ ours, theirs string }{{"5", "mqttv5"}, {"311", "mqttv311"}} {
		t.Run(v.ours, func(t *testing.T) {
			tp := "interop/" + v.ours
			sub := startCmd(t, b.args("sub", "-V", v.ours, "-t", tp+"/#", "-q", "2", "-C", "3", "-F", "json", "-d")...)
			sub.subscribed(t)
			mosq := func(args ...string) {
				t.Helper()
				args = append([]string{"-h", b.host, "-p", b.port, "-V", v.theirs}, args...)
				if out, err := exec.Command(mp, args...).CombinedOutput(); err != nil {
					t.Fatalf("mosquitto_pub %q: %v\n%s", args, err, out)
				}
			}
			if v.ours == "5" {
				mosq("-t", tp+"/a", "-m", "hello", "-q", "1", "-D", "publish", "user-property", "k", "v",
					"-D", "publish", "content-type", "text/x", "-D", "publish", "correlation-data", "c1")
			} else {
				mosq("-t", tp+"/a", "-m", "hello", "-q", "1")
			}
			mosq("-t", tp+"/b", "-m", "two", "-q", "2")
			f := filepath.Join(t.TempDir(), "bin")
			os.WriteFile(f, []byte{0xff, 0x00, 0xfe}, 0o600)
			mosq("-t", tp+"/c", "-f", f, "-q", "0")
			code, out, errs := sub.wait(t)
			if code != 0 {
				t.Fatalf("sub: exit %d %q", code, errs)
			}
			msgs := jsonLines(t, out)
			if len(msgs) != 3 {
				t.Fatalf("got %d messages:\n%s", len(msgs), out)
			}
			a, bm, c := msgs[0], msgs[1], msgs[2]
			if a.Topic != tp+"/a" || a.Payload != "hello" || a.QoS != 1 || bm.Payload != "two" || bm.QoS != 2 ||
				c.Payload != "/wD+" || !c.PayloadBase64 {
				t.Fatalf("messages:\n%s", out)
			}
			if v.ours == "5" {
				p := a.Properties
				if p == nil || p.ContentType != "text/x" || len(p.UserProperties) != 1 ||
					p.UserProperties[0] != (jsonUser{"k", "v"}) || p.CorrelationData == nil || *p.CorrelationData != "c1" {
					t.Fatalf("properties lost: %s", out)
				}
			}
		})
	}
}
