package main

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/internal/testcerts"
	"github.com/mqtt5go/mqtt5/packet"
)

var listeningRE = regexp.MustCompile(`msg=listening url=(\S+)`)

// brokerURLs waits until the in-process broker logged n listeners and
// returns their URLs.
func brokerURLs(t *testing.T, c *bgCmd, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := listeningRE.FindAllStringSubmatch(c.err.String(), -1)
		if len(m) >= n {
			var urls []string
			for _, x := range m {
				urls = append(urls, x[1])
			}
			return urls
		}
		select {
		case <-c.done:
			t.Fatalf("broker ended: exit %d\n%s", c.code, c.err.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker did not start:\n%s", c.err.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tryConnect connects once and disconnects.
func tryConnect(url string, opts client.Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts.DisableReconnect = true
	c, _, err := client.Dial(ctx, url, opts)
	if err != nil {
		return err
	}
	return c.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
}

// publishAs connects, publishes at QoS 1 and returns the publish error.
func publishAs(t *testing.T, url, user, password, topic string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := client.Dial(ctx, url, client.Options{Username: user, Password: []byte(password), DisableReconnect: true})
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	defer c.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
	return c.Publish(ctx, &client.Message{Topic: topic, Payload: []byte("x"), QoS: 1})
}

// The broker command with --password-file, --acl-file and --plain-auth:
// anonymous clients are refused, the ACL applies, PLAIN works, and a
// changed password file is picked up without a restart.
func TestBrokerAuthFlags(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if code, _, errs := runCmd(t, passwdArgs("-c", "-b", pw, "alice", "one")...); code != 0 {
		t.Fatalf("passwd: %d %q", code, errs)
	}
	acl := filepath.Join(dir, "acl")
	os.WriteFile(acl, []byte("user alice topic alice/# permission readwrite\n"), 0o600)
	b := startCmd(t, "broker", "--no-persistence", "--sys-interval", "0", "--listen", "mqtt://127.0.0.1:0",
		"--password-file", pw, "--acl-file", acl, "--plain-auth", "--auth-max-failures", "5")
	url := brokerURLs(t, b, 1)[0]

	if err := tryConnect(url, client.Options{ClientID: "anon"}); !errors.Is(err, packet.NotAuthorized) {
		t.Fatalf("anonymous: %v", err)
	}
	if err := tryConnect(url, client.Options{Version: packet.V311, Username: "alice", Password: []byte("two")}); !errors.Is(err, packet.BadUserNameOrPassword) {
		t.Fatalf("wrong password (3.1.1): %v", err)
	}
	if err := publishAs(t, url, "alice", "one", "alice/x"); err != nil {
		t.Fatalf("allowed publish: %v", err)
	}
	if err := publishAs(t, url, "alice", "one", "bob/x"); !errors.Is(err, packet.NotAuthorized) {
		t.Fatalf("publish outside the ACL: %v", err)
	}
	if err := tryConnect(url, client.Options{Auth: plainAuth("\x00alice\x00one")}); err != nil {
		t.Fatalf("PLAIN: %v", err)
	}

	// The file watcher picks up a new user; clients stay connected.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stay, _, err := client.Dial(ctx, url, client.Options{ClientID: "stay", Username: "alice", Password: []byte("one")})
	if err != nil {
		t.Fatal(err)
	}
	defer stay.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
	if code, _, errs := runCmd(t, passwdArgs("-b", pw, "bob", "two")...); code != 0 {
		t.Fatalf("passwd: %d %q", code, errs)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.err.String(), "password file reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("the password file was not reloaded:\n%s", b.err.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tryConnect(url, client.Options{Username: "bob", Password: []byte("two")}); err != nil {
		t.Fatalf("bob after the reload: %v", err)
	}
	if !stay.IsConnected() {
		t.Fatal("a connected client was dropped by the reload")
	}

	// Repeated failures lock the address out (Banned; 3.1.1 return code
	// 5): the anonymous and wrong-password attempts above count, and three
	// more make five.
	for range 3 {
		tryConnect(url, client.Options{Username: "mallory", Password: []byte("x")})
	}
	if err := tryConnect(url, client.Options{Username: "bob", Password: []byte("two")}); !errors.Is(err, packet.Banned) {
		t.Fatalf("after 5 failures: %v", err)
	}
	if err := tryConnect(url, client.Options{Version: packet.V311, Username: "bob", Password: []byte("two")}); !errors.Is(err, packet.NotAuthorized) {
		t.Fatalf("after 5 failures (3.1.1): %v", err)
	}
}

// plainAuth is a client AuthHandler sending one SASL PLAIN message.
type plainAuth string

func (p plainAuth) Method() string                                   { return "PLAIN" }
func (p plainAuth) Start(context.Context) ([]byte, error)            { return []byte(p), nil }
func (p plainAuth) Continue(context.Context, []byte) ([]byte, error) { return []byte(p), nil }
func (p plainAuth) Finish(context.Context, []byte) error             { return nil }

func TestBrokerAuthFlagErrors(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if code, _, errs := runCmd(t, passwdArgs("-c", "-b", pw, "alice", "one")...); code != 0 {
		t.Fatalf("passwd: %d %q", code, errs)
	}
	badACL := filepath.Join(dir, "acl")
	os.WriteFile(badACL, []byte("user alice topic a/#/b permission read\n"), 0o600)
	base := []string{"broker", "--no-persistence", "--listen", "127.0.0.1:0"}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--plain-auth"}, 2, "auth.plain (--plain-auth): needs auth.password_file (--password-file)"},
		{[]string{"--cert-auth", "cn"}, 2, "auth.cert_auth (--cert-auth): needs tls.ca (--tls-ca)"},
		{[]string{"--cert-auth", "subject", "--tls-ca", pw}, 2, "--cert-auth: certificate identity \"subject\""},
		{[]string{"--auth-max-failures", "-1", "--password-file", pw}, 2, "must not be negative"},
		{[]string{"--password-file", filepath.Join(dir, "none")}, 1, "no such file"},
		{[]string{"--acl-file", badACL}, 1, "line 1: filter \"a/#/b\""},
	}
	for _, c := range cases {
		code, _, errs := runCmd(t, append(append([]string{}, base...), c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d %q, want %d %q", c.args, code, errs, c.code, c.want)
		}
	}
	// Beyond loopback: refused without authentication, accepted with it.
	code, _, errs := runCmd(t, "broker", "--no-persistence", "--listen", "0.0.0.0:0")
	if code != 2 || !strings.Contains(errs, "--password-file or --cert-auth") {
		t.Fatalf("non-loopback without auth: %d %q", code, errs)
	}
	b := startCmd(t, "broker", "--no-persistence", "--sys-interval", "0", "--listen", "mqtt://0.0.0.0:0", "--password-file", pw)
	brokerURLs(t, b, 1)
}

// Client certificates: --cert-auth cn over mqtts, with the password file
// as the fallback for clients without a certificate.
func TestBrokerCertAuthFlag(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "flags CA")
	crt, key := ca.Issue(t, "broker", testcerts.Options{}).WriteFiles(t, dir, "server")
	caFile := ca.WriteFile(t, dir, "ca")
	pw := filepath.Join(dir, "passwd")
	if code, _, errs := runCmd(t, passwdArgs("-c", "-b", pw, "alice", "one")...); code != 0 {
		t.Fatalf("passwd: %d %q", code, errs)
	}
	acl := filepath.Join(dir, "acl")
	os.WriteFile(acl, []byte("user device-1 topic dev/# permission write\nuser alice topic alice/# permission write\n"), 0o600)
	b := startCmd(t, "broker", "--no-persistence", "--sys-interval", "0", "--listen", "mqtts://127.0.0.1:0",
		"--tls-cert", crt, "--tls-key", key, "--tls-ca", caFile, "--cert-auth", "cn", "--password-file", pw, "--acl-file", acl)
	url := brokerURLs(t, b, 1)[0]
	dev := ca.Issue(t, "device-1", testcerts.Options{Client: true}).TLSCertificate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := client.Dial(ctx, url, client.Options{Version: packet.V311, DisableReconnect: true,
		TLSConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{dev}}})
	if err != nil {
		t.Fatalf("certificate client: %v", err)
	}
	c.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
	c, _, err = client.Dial(ctx, url, client.Options{DisableReconnect: true, TLSConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{dev}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &client.Message{Topic: "dev/1", QoS: 1}); err != nil {
		t.Errorf("device publish: %v", err)
	}
	if err := c.Publish(ctx, &client.Message{Topic: "alice/1", QoS: 1}); !errors.Is(err, packet.NotAuthorized) {
		t.Errorf("device publish outside its ACL: %v", err)
	}
	c.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
	if err := tryConnect(url, client.Options{Username: "alice", Password: []byte("one"), TLSConfig: &tls.Config{RootCAs: ca.Pool()}}); err != nil {
		t.Errorf("password over TLS without certificate: %v", err)
	}
	if err := tryConnect(url, client.Options{TLSConfig: &tls.Config{RootCAs: ca.Pool()}}); !errors.Is(err, packet.NotAuthorized) {
		t.Errorf("anonymous over TLS: %v", err)
	}
}

// SIGHUP reloads the password and ACL files of the broker process.
func TestBrokerAuthSIGHUP(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if code, _, errs := runCmd(t, passwdArgs("-c", "-b", pw, "alice", "one")...); code != 0 {
		t.Fatalf("passwd: %d %q", code, errs)
	}
	acl := filepath.Join(dir, "acl")
	os.WriteFile(acl, []byte("user alice topic alice/# permission readwrite\n"), 0o600)
	var log syncBuffer
	cmd := exec.Command(bin, "broker", "--no-persistence", "--sys-interval", "0", "--listen", "mqtt://127.0.0.1:0",
		"--password-file", pw, "--acl-file", acl)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("broker output:\n%s", log.String())
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(log.String(), "msg=listening") {
		if time.Now().After(deadline) {
			t.Fatal("broker did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(log.String(), `msg="reloaded on SIGHUP" what="password file"`) ||
		!strings.Contains(log.String(), `msg="reloaded on SIGHUP" what="ACL file"`) {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the files")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
