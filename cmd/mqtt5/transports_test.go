package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/internal/testcerts"
)

// freeUDPAddr returns a loopback UDP address that was free a moment ago.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// allTransports is the mqtt5 binary serving every transport at once.
type allTransports struct {
	urls    map[string]string // transport name → server URL
	ca      *testcerts.CA
	cmd     *exec.Cmd
	log     syncBuffer
	crtFile string
	keyFile string
}

func startAllTransports(t *testing.T) *allTransports {
	t.Helper()
	bin := buildBinary(t)
	dir := t.TempDir()
	a := &allTransports{ca: testcerts.NewCA(t, "mqtt5 test CA")}
	a.crtFile, a.keyFile = a.ca.Issue(t, "one", testcerts.Options{}).WriteFiles(t, dir, "server")
	a.urls = map[string]string{
		"mqtt":  "mqtt://" + freeAddr(t),
		"mqtts": "mqtts://" + freeAddr(t),
		"ws":    "ws://" + freeAddr(t) + "/mqtt",
		"wss":   "wss://" + freeAddr(t) + "/mqtt",
		"quic":  "quic://" + freeUDPAddr(t),
	}
	args := []string{"broker", "--no-persistence", "--sys-interval", "0", "--log-level", "info",
		"--tls-cert", a.crtFile, "--tls-key", a.keyFile}
	for _, u := range a.urls {
		args = append(args, "--listen", u)
	}
	a.cmd = exec.Command(bin, args...)
	a.cmd.Stdout = &a.log
	a.cmd.Stderr = &a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.cmd.Process.Signal(syscall.SIGTERM)
		a.cmd.Wait()
		if t.Failed() {
			t.Logf("broker output:\n%s", a.log.String())
		}
	})
	// Ready once every listener is logged.
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(a.log.String(), "msg=listening") < len(a.urls) {
		if time.Now().After(deadline) {
			t.Fatalf("broker did not start:\n%s", a.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return a
}

func (a *allTransports) clientTLS() *tls.Config { return &tls.Config{RootCAs: a.ca.Pool()} }

func (a *allTransports) connect(t *testing.T, name, id string, h client.Handler) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.New(client.Options{Server: a.urls[name], ClientID: id, TLSConfig: a.clientTLS(), DefaultHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(ctx); err != nil {
		t.Fatalf("%s: connect: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Disconnect(ctx, 0, client.KeepSessionExpiry)
	})
	return c
}

// inbox collects message topics and payloads.
type inbox struct {
	mu  sync.Mutex
	got []string
}

func (b *inbox) handle(m *client.Message) {
	b.mu.Lock()
	b.got = append(b.got, m.Topic+"="+string(m.Payload))
	b.mu.Unlock()
}

func (b *inbox) waitFor(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.mu.Lock()
		got := slices.Clone(b.got)
		b.mu.Unlock()
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			t.Fatalf("received %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// One broker process serves TCP, TLS, WebSocket, secure WebSocket and QUIC
// at once; a client on each transport publishes at QoS 0, 1 and 2, and
// every client receives every message exactly once whatever transport it
// was published on.
func TestAllTransportsOneBroker(t *testing.T) {
	a := startAllTransports(t)
	names := []string{"mqtt", "mqtts", "ws", "wss", "quic"}
	boxes := map[string]*inbox{}
	clients := map[string]*client.Client{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range names {
		box := &inbox{}
		c := a.connect(t, n, "sub-"+n, box.handle)
		if _, err := c.Subscribe(ctx, []client.Subscription{{Filter: "all/#", QoS: 2}}, box.handle); err != nil {
			t.Fatalf("%s: subscribe: %v", n, err)
		}
		boxes[n], clients[n] = box, c
	}
	var want []string
	for _, n := range names {
		for qos := byte(0); qos <= 2; qos++ {
			topic := fmt.Sprintf("all/%s/%d", n, qos)
			if err := clients[n].Publish(ctx, &client.Message{Topic: topic, QoS: qos, Payload: []byte(n)}); err != nil {
				t.Fatalf("%s: publish QoS %d: %v", n, qos, err)
			}
			want = append(want, topic+"="+n)
		}
	}
	slices.Sort(want)
	for _, n := range names {
		t.Run(n, func(t *testing.T) { boxes[n].waitFor(t, want) })
	}
}

// SIGHUP reloads the TLS certificate: new handshakes see the new one, and a
// client connected before keeps working.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	a := startAllTransports(t)
	box := &inbox{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old := a.connect(t, "mqtts", "old", box.handle)
	if _, err := old.Subscribe(ctx, []client.Subscription{{Filter: "r/#", QoS: 1}}, box.handle); err != nil {
		t.Fatal(err)
	}
	two := a.ca.Issue(t, "two", testcerts.Options{})
	// Replace the files in place (no rename), so only SIGHUP can tell.
	if err := os.WriteFile(a.crtFile, two.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.keyFile, two.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(a.urls["mqtts"], "mqtts://")
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: a.ca.Pool(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName
		c.Close()
		if cn == "two" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving %q", cn)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !old.IsConnected() {
		t.Fatal("the connected client was dropped by the reload")
	}
	if err := old.Publish(ctx, &client.Message{Topic: "r/1", QoS: 1, Payload: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	box.waitFor(t, []string{"r/1=after"})
}
