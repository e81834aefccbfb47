package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/config"
	"github.com/mqtt5go/mqtt5/packet"
)

// waitLog waits until the command's log contains s.
func waitLog(t *testing.T, c *bgCmd, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.err.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log has no %q:\n%s", s, c.err.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A bridge configured in the file forwards to a remote broker; editing the
// file removes it without a restart, a changed listener is reported as
// needing one, and an invalid file is rejected while the broker keeps
// running.
func TestConfigBridgeAndReload(t *testing.T) {
	remote := broker.New(broker.Config{SysInterval: -1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go remote.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		remote.Shutdown(ctx)
	})
	got := make(chan string, 10)
	unsub, err := remote.Subscribe("site/#", 1, func(m *broker.Message) { got <- m.Topic + "=" + string(m.Payload) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	dir := t.TempDir()
	f := filepath.Join(dir, "mqtt5.toml")
	base := "listeners = ['mqtt://127.0.0.1:0']\n[storage]\npersistence = false\n[sys]\ninterval = '100ms'\n"
	withBridge := base + fmt.Sprintf("[[bridges]]\nname = 'up'\nurl = 'mqtt://%s'\n[[bridges.topics]]\npattern = 'data/#'\ndirection = 'out'\nqos = 1\nremote_prefix = 'site/'\n", l.Addr())
	os.WriteFile(f, []byte(withBridge), 0o600)
	b := startCmd(t, "broker", "--config", f)
	url := brokerURLs(t, b, 1)[0]
	waitLog(t, b, `msg="bridge started" bridge=up`)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := client.Dial(ctx, url, client.Options{ClientID: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
	// The bridge subscribes asynchronously: publish until one arrives.
	deadline := time.Now().Add(20 * time.Second)
	for arrived := false; !arrived; {
		if err := c.Publish(ctx, &client.Message{Topic: "data/t", QoS: 1, Payload: []byte("21")}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m != "site/data/t=21" {
				t.Fatalf("remote got %q", m)
			}
			arrived = true
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("nothing crossed the bridge")
			}
		}
	}

	// The bridge's status is in $SYS.
	status := make(chan string, 100)
	if _, err := c.Subscribe(ctx, []client.Subscription{{Filter: "$SYS/broker/bridge/up/connected"}}, func(m *client.Message) {
		status <- string(m.Payload)
	}); err != nil {
		t.Fatal(err)
	}
	for connected := false; !connected; {
		select {
		case v := <-status:
			connected = v == "1"
		case <-ctx.Done():
			t.Fatal("no $SYS/broker/bridge/up/connected = 1")
		}
	}

	// Remove the bridge and change a listener: the bridge stops, the
	// listener change is reported, clients stay connected.
	os.WriteFile(f, []byte(strings.Replace(base, "127.0.0.1:0", "127.0.0.1:1", 1)), 0o600)
	waitLog(t, b, `msg="bridge removed" bridge=up`)
	waitLog(t, b, `settings=listeners`)
	// An invalid file is rejected; SIGHUP tries again.
	os.WriteFile(f, []byte(base+"[log]\nlevel = 'loud'\n"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP) // the broker runs in this process
	waitLog(t, b, "configuration rejected")
	if !c.IsConnected() {
		t.Fatal("client dropped by a reload")
	}
	if err := c.Publish(ctx, &client.Message{Topic: "x", QoS: 1}); err != nil {
		t.Fatal(err)
	}
}

// Editing the file changes limits and rate limits of the running broker
// (the real binary, in a process of its own): the new connection limit
// refuses the next client, the new rate applies to a client connected
// before, and an unrelated client stays connected. A changed certificate
// path is reported as needing a restart. An invalid edit is rejected and
// the limit in force kept; a valid one applies again.
func TestReloadLimitsAndRateLimits(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "mqtt5.toml")
	base := "listeners = ['mqtt://127.0.0.1:0']\n[storage]\npersistence = false\n[sys]\ninterval = '0s'\n"
	var log syncBuffer
	cmd := exec.Command(bin, "broker", "--config", f)
	cmd.Stdout, cmd.Stderr = &log, &log
	// edit replaces the file at once (a reload never sees it half
	// written) and sends SIGHUP as well: the file watcher may not have
	// started yet when the first edit is made. Two reloads of the same
	// content are harmless; the waits below look for content.
	edit := func(s string) {
		t.Helper()
		tmp := f + ".new"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f); err != nil {
			t.Fatal(err)
		}
		if cmd.Process != nil {
			if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor := func(s string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(log.String(), s) {
			if time.Now().After(deadline) {
				t.Fatalf("log has no %s:\n%s", s, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	edit(base)
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
	waitFor("msg=listening")
	url := listeningRE.FindStringSubmatch(log.String())[1]

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dialC := func(id string) (*client.Client, error) {
		c, _, err := client.Dial(ctx, url, client.Options{ClientID: id, DisableReconnect: true})
		if err == nil {
			t.Cleanup(func() { c.Disconnect(context.Background(), packet.NormalDisconnection, client.KeepSessionExpiry) })
		}
		return c, err
	}
	bystander, err := dialC("bystander")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := dialC("pub")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := pub.Publish(ctx, &client.Message{Topic: "t", QoS: 1}); err != nil {
			t.Fatalf("before the limit: %v", err)
		}
	}

	limited := base + "[tls]\ncert = 'elsewhere.pem'\n[limits]\nmax_connections = 2\n" +
		"[rate_limits]\ninbound_messages = 0.001\ninbound_messages_burst = 1\n"
	edit(limited)
	waitFor(`applied="limits.max_connections, rate_limits.inbound_messages, rate_limits.inbound_messages_burst"`)
	waitFor(`settings=tls.cert`)
	if _, err := dialC("third"); !errors.Is(err, packet.QuotaExceeded) {
		t.Fatalf("third connection over max_connections 2: %v, want Quota Exceeded", err)
	}
	// The new bucket starts with its burst of one message, then refuses.
	if err := pub.Publish(ctx, &client.Message{Topic: "t", QoS: 1}); err != nil {
		t.Fatalf("first after the limit: %v", err)
	}
	if err := pub.Publish(ctx, &client.Message{Topic: "t", QoS: 1}); !errors.Is(err, packet.QuotaExceeded) {
		t.Fatalf("second after the limit: %v, want Quota Exceeded", err)
	}

	// An invalid edit is rejected: the limit in force stays.
	edit(strings.Replace(limited, "max_connections = 2", "max_connections = 0", 1))
	waitFor(`configuration rejected; the running one is kept" trigger=`)
	if _, err := dialC("third"); !errors.Is(err, packet.QuotaExceeded) {
		t.Fatalf("after the rejected edit: %v, want Quota Exceeded", err)
	}

	// A valid edit applies again (the rejected one never became current).
	edit(strings.Replace(limited, "max_connections = 2", "max_connections = 3", 1))
	waitFor(`applied=limits.max_connections`)
	if _, err := dialC("third"); err != nil {
		t.Fatalf("after raising max_connections: %v", err)
	}
	if !bystander.IsConnected() || !pub.IsConnected() {
		t.Fatal("a client was dropped by a reload")
	}
	if _, err := bystander.Subscribe(ctx, []client.Subscription{{Filter: "x"}}, func(*client.Message) {}); err != nil {
		t.Fatalf("bystander after the reloads: %v", err)
	}
}

// classify names the keys a reload applies and those that need a
// restart; a pending restart is reported again at the next reload.
func TestReloadClassify(t *testing.T) {
	start := config.Default()
	next := start
	next.Limits.MaxConnections = 5
	next.Limits.MaxTopicLevels = 9
	next.RateLimits.OutboundMessages = 10
	next.Queue.Policy = "drop_new"
	next.LoadBalancer.AfterAuth = true
	next.TLS.Cert = "other.pem"
	next.Log.Format = "json"
	next.Stamp.ClientIDProperty = "from"
	next.ChangeOnly.MaxTopicsPerSession = 7
	applied, restart := classify(&start, &start, &next)
	if got, want := strings.Join(applied, ","), "queue.policy,limits.max_connections,load_balancer.after_auth,stamp.client_id_property,rate_limits.outbound_messages"; got != want {
		t.Errorf("applied %s, want %s", got, want)
	}
	if got, want := strings.Join(restart, ","), "log.format,tls.cert,limits.max_topic_levels,change_only.max_topics_per_session"; got != want {
		t.Errorf("restart %s, want %s", got, want)
	}
	// Reloading the same file again applies nothing and still reports
	// what waits for a restart.
	applied, restart = classify(&start, &next, &next)
	if len(applied) != 0 || len(restart) != 4 {
		t.Errorf("second reload: applied %v, restart %v", applied, restart)
	}
}
