package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// The crash tests run the mqtt5 binary as a child process with persistence
// on, kill it with SIGKILL at random moments while QoS 1 and QoS 2
// publishers and persistent subscribers work, restart it on the same data
// directory, and check that nothing acknowledged was lost and nothing was
// delivered twice at QoS 2.

// brokerProc is the broker child process.
type brokerProc struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	args []string
	cmd  *exec.Cmd
	log  syncBuffer // the child's output (see clientflags_test.go)
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mqtt5")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func (p *brokerProc) start() {
	p.t.Helper()
	args := append([]string{"broker", "--listen", p.addr, "--data-dir", p.dir, "--sys-interval", "0", "--log-level", "warn"}, p.args...)
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.Stdout = &p.log
	p.cmd.Stderr = &p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("broker did not start: %v\n%s", err, p.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *brokerProc) kill() {
	p.cmd.Process.Kill() // SIGKILL
	p.cmd.Wait()
}

func (p *brokerProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
}

// tally counts deliveries per message.
type tally struct {
	mu  sync.Mutex
	got map[string]int
}

func (t *tally) add(s string) {
	t.mu.Lock()
	t.got[s]++
	t.mu.Unlock()
}

func (t *tally) count(s string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.got[s]
}

func crashClientOptions(addr, id string) client.Options {
	return client.Options{
		Server:        "mqtt://" + addr,
		ClientID:      id,
		SessionExpiry: 3600,
		Backoff:       client.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	}
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: long, skipped with -short")
	}
	for _, mode := range []string{"sync", "batch"} {
		t.Run(mode, func(t *testing.T) { crashRounds(t, mode) })
	}
}

func crashRounds(t *testing.T, durability string) {
	p := &brokerProc{t: t, bin: buildBinary(t), dir: t.TempDir(), addr: freeAddr(t), args: []string{"--durability", durability}}
	p.start()
	defer func() {
		if p.cmd.ProcessState == nil {
			p.stop()
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", p.log.String())
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	received := map[byte]*tally{1: {got: map[string]int{}}, 2: {got: map[string]int{}}}
	var subs []*client.Client
	for _, qos := range []byte{1, 2} {
		opts := crashClientOptions(p.addr, fmt.Sprintf("crash-sub-%d", qos))
		c, err := client.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		tl := received[qos]
		if _, err := c.Subscribe(ctx, []client.Subscription{{Filter: fmt.Sprintf("crash/q%d/#", qos), QoS: qos}}, func(m *client.Message) {
			tl.add(string(m.Payload))
		}); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, c)
	}
	defer func() {
		for _, c := range subs {
			dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
			c.Disconnect(dctx, packet.NormalDisconnection, 0)
			dcancel()
		}
	}()
	// A second persistent QoS 1 subscriber that nobody here wrote:
	// paho.golang's autopaho, reconnecting on its own.
	pahoGot := &tally{got: map[string]int{}}
	u, err := url.Parse("mqtt://" + p.addr)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         3600,
		ReconnectBackoff:              func(int) time.Duration { return 20 * time.Millisecond },
		ConnectTimeout:                5 * time.Second,
		ClientConfig: paho.ClientConfig{
			ClientID: "crash-paho-1",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				pahoGot.add(string(pr.Packet.Payload))
				return true, nil
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		cm.Disconnect(dctx)
		dcancel()
	}()
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	if err := cm.AwaitConnection(actx); err != nil {
		t.Fatal(err)
	}
	if _, err := cm.Subscribe(actx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "crash/q1/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	acancel()

	// Publishers: each publishes numbered messages one after the other and
	// records the ones whose acknowledgement (PUBACK / PUBCOMP) arrived.
	acked := map[byte]*tally{1: {got: map[string]int{}}, 2: {got: map[string]int{}}}
	var wg sync.WaitGroup
	pubCtx, stopPub := context.WithCancel(ctx)
	for _, qos := range []byte{1, 2} {
		opts := crashClientOptions(p.addr, fmt.Sprintf("crash-pub-%d", qos))
		c, err := client.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
				c.Disconnect(dctx, packet.NormalDisconnection, 0)
				dcancel()
			}()
			for n := 0; pubCtx.Err() == nil; n++ {
				payload := fmt.Sprintf("q%d-%d", qos, n)
				pctx, pcancel := context.WithTimeout(pubCtx, 10*time.Second)
				err := c.Publish(pctx, &client.Message{Topic: fmt.Sprintf("crash/q%d/%d", qos, n%4), QoS: qos, Payload: []byte(payload)})
				pcancel()
				if err == nil {
					acked[qos].add(payload)
				}
			}
		}()
	}

	const rounds = 4
	for i := range rounds {
		time.Sleep(time.Duration(200+rand.IntN(500)) * time.Millisecond)
		p.kill()
		p.start()
		if strings.Contains(p.log.String(), "corrupt") {
			t.Fatalf("round %d: store reported corruption:\n%s", i, p.log.String())
		}
	}
	time.Sleep(300 * time.Millisecond)
	stopPub()
	wg.Wait()

	// Every acknowledged message reaches its persistent subscriber: at
	// least once at QoS 1, exactly once at QoS 2.
	deadline := time.Now().Add(30 * time.Second)
	for _, qos := range []byte{1, 2} {
		acked[qos].mu.Lock()
		want := make([]string, 0, len(acked[qos].got))
		for s := range acked[qos].got {
			want = append(want, s)
		}
		acked[qos].mu.Unlock()
		if len(want) == 0 {
			t.Fatalf("QoS %d: no message was acknowledged", qos)
		}
		for _, s := range want {
			for received[qos].count(s) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("QoS %d: acknowledged message %s never delivered (%d acknowledged)", qos, s, len(want))
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if qos == 1 {
			for _, s := range want {
				for pahoGot.count(s) == 0 {
					if time.Now().After(deadline) {
						t.Fatalf("QoS 1: acknowledged message %s never delivered to the paho.golang subscriber", s)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}
		t.Logf("%s: QoS %d: %d messages acknowledged across %d crashes, all delivered", durability, qos, len(want), rounds)
	}
	received[2].mu.Lock()
	defer received[2].mu.Unlock()
	for s, n := range received[2].got {
		if n != 1 {
			t.Errorf("QoS 2 message %s delivered %d times", s, n)
		}
	}
}
