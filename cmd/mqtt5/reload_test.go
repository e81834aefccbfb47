package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
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
