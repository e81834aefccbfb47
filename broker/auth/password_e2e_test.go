package auth

// End-to-end tests of the password file with the broker: our client, the
// Mosquitto command-line clients (mosquitto_pub from Debian's
// mosquitto-clients) and MQTT.js (test/node/auth.mjs). Missing peers fail
// the test when CI=true and skip it otherwise.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// fxBroker is a broker serving one listener for a test.
type fxBroker struct {
	*broker.Broker
	addr, host, port string
}

// fxStart serves cfg on 127.0.0.1:0.
func fxStart(t testing.TB, cfg broker.Config) *fxBroker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return fxServe(t, l, cfg)
}

// fxServe serves cfg on l until the test ends.
func fxServe(t testing.TB, l net.Listener, cfg broker.Config) *fxBroker {
	t.Helper()
	cfg.SysInterval = -1
	if cfg.Logger == nil {
		cfg.Logger = fxQuiet
	}
	b := broker.New(cfg)
	serveErr := make(chan error, 1)
	go func() { serveErr <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), fxTimeout)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("broker Shutdown: %v", err)
		}
		if err := <-serveErr; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case <-b.Ready():
	case err := <-serveErr:
		t.Fatalf("Serve: %v", err)
	case <-time.After(fxTimeout):
		t.Fatal("broker not ready")
	}
	host, port, _ := net.SplitHostPort(l.Addr().String())
	return &fxBroker{Broker: b, addr: l.Addr().String(), host: host, port: port}
}

func (b *fxBroker) url() string { return "mqtt://" + b.addr }

// fxTryDial connects once, without reconnection.
func fxTryDial(url string, opts client.Options) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fxTimeout)
	defer cancel()
	opts.DisableReconnect = true
	c, _, err := client.Dial(ctx, url, opts)
	return c, err
}

// fxDial connects or fails the test; the client is closed at the end.
func fxDial(t testing.TB, url string, opts client.Options) *client.Client {
	t.Helper()
	c, err := fxTryDial(url, opts)
	if err != nil {
		t.Fatalf("connect %s as %q: %v", url, opts.Username, err)
	}
	t.Cleanup(func() { fxClose(c) })
	return c
}

func fxClose(c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), fxTimeout)
	defer cancel()
	c.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
}

// fxPublish publishes at QoS 1 and waits for the acknowledgement.
func fxPublish(c *client.Client, topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), fxTimeout)
	defer cancel()
	return c.Publish(ctx, &client.Message{Topic: topic, Payload: []byte("x"), QoS: 1})
}

// fxSubscribe subscribes to filter at QoS 1 and returns the channel of
// the received topics.
func fxSubscribe(c *client.Client, filter string) (<-chan string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fxTimeout)
	defer cancel()
	ch := make(chan string, 100)
	_, err := c.Subscribe(ctx, []client.Subscription{{Filter: filter, QoS: 1}}, func(m *client.Message) { ch <- m.Topic })
	return ch, err
}

// fxRoundTrip subscribes to topic, publishes to it and waits for the
// message.
func fxRoundTrip(t testing.TB, c *client.Client, topic string, v packet.Version) {
	t.Helper()
	ch, err := fxSubscribe(c, topic)
	if err != nil {
		t.Fatalf("v%d subscribe %s: %v", v, topic, err)
	}
	if err := fxPublish(c, topic); err != nil {
		t.Fatalf("v%d publish %s: %v", v, topic, err)
	}
	select {
	case got := <-ch:
		if got != topic {
			t.Fatalf("v%d received %s, want %s", v, got, topic)
		}
	case <-time.After(fxTimeout):
		t.Fatalf("v%d: %s not received", v, topic)
	}
	ctx, cancel := context.WithTimeout(context.Background(), fxTimeout)
	defer cancel()
	c.Unsubscribe(ctx, topic)
}

// fxPasswordBroker serves a broker with a password file of alice and bob,
// rate limited, and returns it with the file.
func fxPasswordBroker(t testing.TB, plain bool) (*fxBroker, *PasswordFile) {
	t.Helper()
	pf := fxPasswordFile(t, PasswordFileOptions{}, "alice", "wonder land", "bob", "builder")
	providers := []Provider{pf}
	if plain {
		providers = append(providers, NewPlain(pf))
	}
	authn := RateLimit(Chain(providers...), RateLimitConfig{MaxFailures: 1000, Logger: fxQuiet})
	return fxStart(t, broker.Config{Authenticator: authn}), pf
}

// Our client, v5 and 3.1.1: the right password connects; a wrong or
// missing password and an unknown user are refused with the reason code
// of the version (the client reports 3.1.1 return codes as the matching
// v5 codes).
func TestPasswordEndToEnd(t *testing.T) {
	b, pf := fxPasswordBroker(t, false)
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		c := fxDial(t, b.url(), client.Options{Version: v, ClientID: fmt.Sprint("alice-", v), Username: "alice", Password: []byte("wonder land")})
		fxRoundTrip(t, c, "t/alice", v)
		fxClose(c)
		for _, bad := range []struct {
			name     string
			user, pw string
			want     packet.ReasonCode
		}{
			{"wrong password", "alice", "builder", packet.BadUserNameOrPassword},
			{"unknown user", "carol", "builder", packet.BadUserNameOrPassword},
			{"no password", "alice", "", packet.BadUserNameOrPassword},
			{"anonymous", "", "", packet.NotAuthorized},
		} {
			opts := client.Options{Version: v, ClientID: "x", Username: bad.user}
			if bad.pw != "" {
				opts.Password = []byte(bad.pw)
			}
			c, err := fxTryDial(b.url(), opts)
			var re *client.ReasonError
			if err == nil {
				fxClose(c)
			}
			if !errors.As(err, &re) || re.Code != bad.want {
				t.Errorf("v%d %s: %v, want %v", v, bad.name, err, bad.want)
			}
		}
	}
	// A reload changes who may connect; connected clients stay.
	stay := fxDial(t, b.url(), client.Options{ClientID: "stay", Username: "bob", Password: []byte("builder")})
	fxReplaceFile(t, pf.Path(), fxPasswords(t, "bob", "new"))
	if err := pf.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := fxTryDial(b.url(), client.Options{ClientID: "y", Username: "bob", Password: []byte("builder")}); !errors.Is(err, packet.BadUserNameOrPassword) {
		t.Fatalf("old password after reload: %v", err)
	}
	c := fxDial(t, b.url(), client.Options{ClientID: "z", Username: "bob", Password: []byte("new")})
	fxClose(c)
	fxRoundTrip(t, stay, "t/stay", packet.V5)
}

// fxLookPath finds a peer program or skips (fails under CI).
func fxLookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		fxMissing(t, "%s not found in PATH", name)
	}
	return p
}

// fxRun runs a program with a deadline and returns its combined output.
func fxRun(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fxTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// mosquitto_pub with -u/-P against the password file, in v5 and 3.1.1:
// the right password publishes (an in-process subscriber receives it), a
// wrong one makes mosquitto_pub fail with its "not authorised" / bad
// credentials message.
func TestPasswordMosquittoPub(t *testing.T) {
	pub := fxLookPath(t, "mosquitto_pub")
	b, _ := fxPasswordBroker(t, false)
	got := make(chan string, 10)
	unsub, err := b.Subscribe("mq/#", 1, func(m *broker.Message) { got <- m.Topic + "=" + string(m.Payload) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	for _, v := range []string{"mqttv5", "mqttv311"} {
		args := []string{"-h", b.host, "-p", b.port, "-V", v, "-q", "1", "-t", "mq/" + v, "-m", "hello", "-u", "alice"}
		if out, err := fxRun(t, pub, append(args, "-P", "wonder land")...); err != nil {
			t.Fatalf("%s right password: %v: %s", v, err, out)
		}
		select {
		case m := <-got:
			if m != "mq/"+v+"=hello" {
				t.Fatalf("%s received %q", v, m)
			}
		case <-time.After(fxTimeout):
			t.Fatalf("%s: message not received", v)
		}
		out, err := fxRun(t, pub, append(args, "-P", "wrong")...)
		if err == nil {
			t.Fatalf("%s wrong password: mosquitto_pub succeeded: %s", v, out)
		}
		low := strings.ToLower(out)
		if !strings.Contains(low, "not authori") && !strings.Contains(low, "bad user name or password") {
			t.Fatalf("%s wrong password: unexpected output %q", v, out)
		}
	}
}

// MQTT.js with user name and password in v5 and 3.1.1, and PLAIN in v5.
func TestPasswordMQTTJS(t *testing.T) {
	node := fxLookPath(t, "node")
	nodeDir := filepath.Join("..", "..", "test", "node")
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "mqtt", "package.json")); err != nil {
		fxMissing(t, "MQTT.js is not installed in test/node (npm install there)")
	}
	b, _ := fxPasswordBroker(t, true)
	var mu sync.Mutex
	var plainSeen bool
	unsub, err := b.Subscribe("jsauth/v5/plain", 1, func(*broker.Message) { mu.Lock(); plainSeen = true; mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	for _, v := range []int{5, 4} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*fxTimeout)
		cmd := exec.CommandContext(ctx, node, "auth.mjs", b.url(), fmt.Sprint(v), "alice", "wonder land", "plain")
		cmd.Dir = nodeDir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var res struct {
			OK       bool              `json:"ok"`
			Errors   []string          `json:"errors"`
			Received []json.RawMessage `json:"received"`
			Codes    map[string]any    `json:"codes"`
		}
		if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil {
			t.Fatalf("v%d: output %q: %v; stderr %s", v, out, jerr, stderr.String())
		}
		if err != nil || !res.OK || len(res.Errors) > 0 || len(res.Received) != 1 {
			t.Fatalf("v%d: exit %v, errors %v, received %d; stderr %s", v, err, res.Errors, len(res.Received), stderr.String())
		}
		want := map[string]any{"wrong": float64(4), "unknown": float64(4)}
		if v == 5 {
			want = map[string]any{"wrong": float64(0x86), "unknown": float64(0x86), "plainWrong": float64(0x86)}
		}
		if fmt.Sprint(res.Codes) != fmt.Sprint(want) {
			t.Errorf("v%d: refusal codes %v, want %v", v, res.Codes, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !plainSeen {
		t.Error("the message published after PLAIN authentication was not routed")
	}
}
