package transport_test

// Interoperability over TLS with Eclipse Mosquitto (Debian packages
// mosquitto and mosquitto-clients): mosquitto_pub and mosquitto_sub
// against our broker, and our client against the mosquitto broker. The
// tests skip when the programs are missing, and fail when CI=true.

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/internal/testcerts"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

// peerMissing fails under CI=true and skips otherwise.
func peerMissing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: interop peers are required; run scripts/install-peers.sh)", msg)
	}
	t.Skipf("%s; skipping (install the Debian packages mosquitto and mosquitto-clients)", msg)
}

// peerPath finds a program in PATH, or at one of the extra paths.
func peerPath(t testing.TB, name string, extra ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range extra {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	peerMissing(t, "%s not found in PATH", name)
	return ""
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
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

// peerProc is a program running in the background until it exits or the test
// ends.
type peerProc struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
	err            error // set before done is closed
}

func startPeer(t testing.TB, name string, args ...string) *peerProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	p := &peerProc{cmd: exec.CommandContext(ctx, name, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

func (p *peerProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// runPeer runs a program to completion (bounded by testTimeout).
func runPeer(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestInteropMosquittoClientsTLS sends QoS 1 messages from mosquitto_pub
// through our broker to mosquitto_sub over TLS, in MQTT 5 and 3.1.1, with
// server authentication only and with client certificates.
func TestInteropMosquittoClientsTLS(t *testing.T) {
	pub := peerPath(t, "mosquitto_pub")
	sub := peerPath(t, "mosquitto_sub")
	ca := testcerts.NewCA(t, "ca")
	clientCA := testcerts.NewCA(t, "client-ca")
	dir := t.TempDir()
	caFile := ca.WriteFile(t, dir, "ca")
	certFile, keyFile := clientCA.Issue(t, "mosquitto-client", testcerts.Options{Client: true}).WriteFiles(t, dir, "client")

	for _, mode := range []string{"server-auth", "client-cert"} {
		t.Run(mode, func(t *testing.T) {
			for _, v := range []string{"mqttv5", "mqttv311"} {
				t.Run(v, func(t *testing.T) {
					var b *tlsBroker
					cnOf := func(string) string { return "-" }
					var creds []string
					if mode == "server-auth" {
						r := serverReloader(t, t.TempDir(), ca, "server", testcerts.Options{}, transport.ServerTLS{})
						b = startTLSBroker(t, r.TLSConfig(), broker.Config{})
					} else {
						b, cnOf = clientCertBroker(t, ca, clientCA, transport.ClientCertRequired)
						creds = []string{"--cert", certFile, "--key", keyFile}
					}
					host, port, _ := net.SplitHostPort(b.Addr)
					base := append([]string{"-h", host, "-p", port, "--cafile", caFile, "-V", v}, creds...)
					topic := "interop/" + mode + "/" + v
					s := startPeer(t, sub, append(base, "-i", "sub-"+v+"-"+mode, "-q", "1", "-t", topic, "-C", "3", "-F", "%t|%q|%p")...)
					waitFor(t, "mosquitto_sub to subscribe", func() bool {
						if s.exited() {
							t.Fatalf("mosquitto_sub exited: %v: %s%s", s.err, s.stdout.String(), s.stderr.String())
						}
						return b.Stats().Subscriptions > 0
					})
					if want := "mosquitto-client"; mode == "client-cert" && cnOf("sub-"+v+"-"+mode) != want {
						t.Errorf("authenticator saw CN %q for mosquitto_sub, want %q", cnOf("sub-"+v+"-"+mode), want)
					}
					for i := range 3 {
						if out, err := runPeer(t, pub, append(base, "-i", "pub-"+v+"-"+mode, "-q", "1", "-t", topic, "-m", "m"+strconv.Itoa(i))...); err != nil {
							t.Fatalf("mosquitto_pub: %v: %s", err, out)
						}
					}
					waitFor(t, "mosquitto_sub to receive 3 messages and exit", s.exited)
					if s.err != nil {
						t.Fatalf("mosquitto_sub: %v: %s", s.err, s.stderr.String())
					}
					want := fmt.Sprintf("%[1]s|1|m0\n%[1]s|1|m1\n%[1]s|1|m2\n", topic)
					if got := s.stdout.String(); got != want {
						t.Errorf("mosquitto_sub printed %q, want %q", got, want)
					}
				})
			}
		})
	}
}

// TestInteropMosquittoPubNoClientCert checks that mosquitto_pub without a
// client certificate is refused by a listener that requires one, and that
// it verifies our server certificate.
func TestInteropMosquittoPubNoClientCert(t *testing.T) {
	pub := peerPath(t, "mosquitto_pub")
	ca := testcerts.NewCA(t, "ca")
	clientCA := testcerts.NewCA(t, "client-ca")
	other := testcerts.NewCA(t, "other")
	dir := t.TempDir()
	caFile := ca.WriteFile(t, dir, "ca")
	otherFile := other.WriteFile(t, dir, "other")
	b, cnOf := clientCertBroker(t, ca, clientCA, transport.ClientCertRequired)
	host, port, _ := net.SplitHostPort(b.Addr)
	for _, v := range []string{"mqttv5", "mqttv311"} {
		t.Run(v, func(t *testing.T) {
			out, err := runPeer(t, pub, "-h", host, "-p", port, "--cafile", caFile, "-V", v, "-i", "nocert-"+v, "-q", "1", "-t", "interop/nocert", "-m", "x")
			if err == nil {
				t.Fatalf("mosquitto_pub without a client certificate succeeded: %s", out)
			}
			t.Logf("mosquitto_pub without a client certificate: %v: %s", err, strings.TrimSpace(out))
			waitFor(t, "the listener to log the missing client certificate", func() bool {
				return b.Log.hasErr(func(e error) bool { return strings.Contains(e.Error(), "didn't provide a certificate") })
			})
			if got := cnOf("nocert-" + v); got != "" {
				t.Errorf("authenticator ran for mosquitto_pub without a certificate (CN %q)", got)
			}
			out, err = runPeer(t, pub, "-h", host, "-p", port, "--cafile", otherFile, "-V", v, "-i", "wrongca-"+v, "-q", "1", "-t", "interop/nocert", "-m", "x")
			if err == nil {
				t.Fatalf("mosquitto_pub trusting another CA succeeded: %s", out)
			}
			t.Logf("mosquitto_pub trusting another CA: %v: %s", err, strings.TrimSpace(out))
		})
	}
}

// mosquittoTLS is a mosquitto broker with a TLS listener requiring client
// certificates, on a loopback port of its own.
type mosquittoTLS struct {
	addr string
	log  string
}

func startMosquittoTLS(t testing.TB, caFile, certFile, keyFile string) *mosquittoTLS {
	t.Helper()
	bin := peerPath(t, "mosquitto", "/usr/sbin/mosquitto")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := strings.Join([]string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"cafile " + caFile,
		"certfile " + certFile,
		"keyfile " + keyFile,
		"require_certificate true",
		"allow_anonymous true",
		"persistence false",
		"user root",
		"log_dest stderr",
	}, "\n") + "\n"
	confFile := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mosquittoTLS{addr: fmt.Sprintf("127.0.0.1:%d", port), log: filepath.Join(dir, "mosquitto.log")}
	logf, err := os.Create(m.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	logf.Close()
	if err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	waitFor(t, "mosquitto to accept connections", func() bool {
		select {
		case <-exited:
			out, _ := os.ReadFile(m.log)
			t.Fatalf("mosquitto exited:\n%s", out)
		default:
		}
		var d net.Dialer
		c, err := d.DialContext(testCtx(t), "tcp", m.addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return m
}

// TestInteropOurClientMosquittoBrokerTLS connects our client to a
// mosquitto broker that requires client certificates, with a
// configuration built by ClientTLS from files, in MQTT 5 and 3.1.1.
func TestInteropOurClientMosquittoBrokerTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	dir := t.TempDir()
	caFile := ca.WriteFile(t, dir, "ca")
	serverCert, serverKey := ca.Issue(t, "mosquitto", testcerts.Options{}).WriteFiles(t, dir, "server")
	clientCert, clientKey := ca.Issue(t, "our-client", testcerts.Options{Client: true}).WriteFiles(t, dir, "client")
	m := startMosquittoTLS(t, caFile, serverCert, serverKey)

	cfg, err := transport.ClientTLS{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}.Config()
	if err != nil {
		t.Fatalf("ClientTLS.Config: %v", err)
	}
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			c := mustConnect(t, m.addr, cfg, "ours-"+fmt.Sprint(v), v)
			roundTrip(t, c, "interop/ours/"+fmt.Sprint(v))
		})
	}

	t.Run("no client certificate", func(t *testing.T) {
		noCert, err := transport.ClientTLS{CAFile: caFile}.Config()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := connect(t, m.addr, noCert, "ours-nocert", packet.V5); err == nil {
			t.Fatal("connected to mosquitto without the client certificate it requires")
		}
	})
	t.Run("wrong CA", func(t *testing.T) {
		wrong, err := transport.ClientTLS{CAPEM: testcerts.NewCA(t, "other").CertPEM, CertFile: clientCert, KeyFile: clientKey}.Config()
		if err != nil {
			t.Fatal(err)
		}
		_, err = connect(t, m.addr, wrong, "ours-wrongca", packet.V5)
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) {
			t.Fatalf("connect trusting another CA: %v, want an unknown authority error", err)
		}
	})
}
