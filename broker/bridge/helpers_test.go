package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/bridge"
	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// waitTimeout bounds every wait. It is a deadline for conditions that
// normally hold within milliseconds, not a timing assertion: the machine may
// be loaded and the tests run with -race.
const waitTimeout = 60 * time.Second

// waitFor polls cond until it holds, failing the test at the deadline.
func waitFor(t testing.TB, what string, cond func() bool, state ...func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			var s string
			for _, f := range state {
				s += "; " + f()
			}
			t.Fatalf("timed out after %v waiting for %s%s", waitTimeout, what, s)
		}
		time.Sleep(delay)
	}
}

// poll is waitFor for goroutines other than the test's: it reports whether
// cond held before the deadline.
func poll(cond func() bool) bool {
	deadline := time.Now().Add(waitTimeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
	}
	return true
}

func testLogger() *slog.Logger {
	if os.Getenv("BRIDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// got is one received message.
type got struct {
	Topic   string
	Payload string
	QoS     byte
	Retain  bool
	Props   packet.Properties // in-process subscribers
	Msg     client.Message    // network subscribers
}

// rec records received messages.
type rec struct {
	mu   sync.Mutex
	msgs []got
	seen map[string]int // copies per payload
}

func (r *rec) add(g got) {
	r.mu.Lock()
	r.msgs = append(r.msgs, g)
	if r.seen == nil {
		r.seen = map[string]int{}
	}
	r.seen[g.Payload]++
	r.mu.Unlock()
}

func (r *rec) all() []got {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]got(nil), r.msgs...)
}

// count returns how many messages had this payload.
func (r *rec) count(payload string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[payload]
}

// missing returns the payloads not received at all.
func (r *rec) missing(payloads []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var m []string
	for _, p := range payloads {
		if r.seen[p] == 0 {
			m = append(m, p)
		}
	}
	return m
}

// total returns the number of messages received.
func (r *rec) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// find returns the first message with this payload.
func (r *rec) find(payload string) (got, bool) {
	for _, g := range r.all() {
		if g.Payload == payload {
			return g, true
		}
	}
	return got{}, false
}

// wait waits until a message with this payload arrived and returns it.
func (r *rec) wait(t testing.TB, payload string) got {
	t.Helper()
	waitFor(t, fmt.Sprintf("message %q", payload), func() bool { return r.count(payload) > 0 })
	g, _ := r.find(payload)
	return g
}

// distinct returns the number of distinct payloads with the prefix and the
// number of extra copies of them.
func (r *rec) distinct(prefix string) (n, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, c := range r.seen {
		if strings.HasPrefix(p, prefix) {
			n++
			dups += c - 1
		}
	}
	return n, dups
}

// exactlyOnce returns the payloads (with their counts) that were not
// received exactly once.
func (r *rec) exactlyOnce(payloads []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var bad []string
	for _, p := range payloads {
		if c := r.seen[p]; c != 1 {
			bad = append(bad, fmt.Sprintf("%s×%d", p, c))
		}
	}
	return bad
}

// node is one of our brokers on a loopback port that can be stopped and
// started again on the same address, optionally with persistence.
type node struct {
	t    testing.TB
	name string
	dir  string // store directory, "" without persistence
	addr string

	mu    sync.Mutex
	b     *broker.Broker
	serve chan error
	subs  []nodeSub
}

type nodeSub struct {
	filter string
	qos    byte
	r      *rec
}

func newNode(t testing.TB, name string, persistent bool) *node {
	t.Helper()
	n := &node{t: t, name: name}
	if persistent {
		n.dir = t.TempDir()
	}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) url() string { return "mqtt://" + n.addr }

// start opens the broker (restoring its store) and serves its address.
func (n *node) start() {
	n.t.Helper()
	addr := n.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	waitFor(n.t, "listening on "+addr, func() bool {
		var err error
		l, err = net.Listen("tcp", addr)
		return err == nil
	})
	n.addr = l.Addr().String()
	cfg := broker.Config{SysInterval: -1, Logger: testLogger()}
	var b *broker.Broker
	if n.dir != "" {
		st, err := store.OpenDefault(n.dir, store.Options{NoSync: true})
		if err != nil {
			n.t.Fatal(err)
		}
		cfg.Store = st
		if b, err = broker.Open(context.Background(), cfg); err != nil {
			n.t.Fatal(err)
		}
	} else {
		b = broker.New(cfg)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.subs {
		n.subscribeLocked(b, s)
	}
	serve := make(chan error, 1)
	go func() { serve <- b.Serve(l) }()
	<-b.Ready()
	n.b, n.serve = b, serve
}

// stop shuts the broker down (a no-op when it is stopped).
func (n *node) stop() {
	n.mu.Lock()
	b, serve := n.b, n.serve
	n.b = nil
	n.mu.Unlock()
	if b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		n.t.Errorf("%s: Shutdown: %v", n.name, err)
	}
	if err := <-serve; !errors.Is(err, broker.ErrServerClosed) {
		n.t.Errorf("%s: Serve returned %v", n.name, err)
	}
}

// broker returns the running broker (nil while stopped).
func (n *node) broker() *broker.Broker {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.b
}

// local is the local dialer of a bridge on this node: an in-process
// connection to whichever broker instance runs now.
func (n *node) local(context.Context) (net.Conn, error) {
	b := n.broker()
	if b == nil {
		return nil, fmt.Errorf("%s is stopped", n.name)
	}
	return b.InProcessConn(), nil
}

// sub subscribes in-process (again at every start) and records messages.
func (n *node) sub(filter string, qos byte) *rec {
	s := nodeSub{filter: filter, qos: qos, r: &rec{}}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.subs = append(n.subs, s)
	if n.b != nil {
		n.subscribeLocked(n.b, s)
	}
	return s.r
}

func (n *node) subscribeLocked(b *broker.Broker, s nodeSub) {
	if _, err := b.Subscribe(s.filter, s.qos, func(m *broker.Message) {
		s.r.add(got{Topic: m.Topic, Payload: string(m.Payload), QoS: m.QoS, Retain: m.Retain, Props: m.Props})
	}); err != nil {
		n.t.Fatal(err)
	}
}

// pub publishes in-process.
func (n *node) pub(topic, payload string, qos byte) {
	n.t.Helper()
	if err := n.broker().Publish(context.Background(), &broker.Message{Topic: topic, Payload: []byte(payload), QoS: qos}); err != nil {
		n.t.Fatalf("%s: publish %s: %v", n.name, topic, err)
	}
}

// fastBackoff keeps reconnections quick in tests.
var fastBackoff = client.Backoff{Initial: 20 * time.Millisecond, Max: 250 * time.Millisecond}

// runBridge creates a bridge and runs it until the test ends.
func runBridge(t testing.TB, cfg bridge.Config, local func(context.Context) (net.Conn, error)) *bridge.Bridge {
	t.Helper()
	if cfg.Backoff == (client.Backoff{}) {
		cfg.Backoff = fastBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger().With("test_bridge", cfg.Name)
	}
	br, err := bridge.New(cfg, local)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bridge %s: Run: %v", cfg.Name, err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("bridge %s: Run did not return", cfg.Name)
		}
	})
	return br
}

// waitConnected waits until both sides of br are up.
func waitConnected(t testing.TB, br *bridge.Bridge) {
	t.Helper()
	waitFor(t, "bridge connected", func() bool { s := br.Status(); return s.Connected && s.LocalConnected },
		func() string { return fmt.Sprintf("status %+v", br.Status()) })
}

// netSub connects a client to url, subscribes and records messages.
func netSub(t testing.TB, url, id string, subs ...client.Subscription) *rec {
	t.Helper()
	r := &rec{}
	c := dialClient(t, client.Options{Server: url, ClientID: id, DefaultHandler: func(m *client.Message) {
		r.add(got{Topic: m.Topic, Payload: string(m.Payload), QoS: m.QoS, Retain: m.Retain, Msg: *m})
	}})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Subscribe(ctx, subs, nil); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return r
}

// dialClient connects a client, disconnecting it when the test ends.
func dialClient(t testing.TB, o client.Options) *client.Client {
	t.Helper()
	if o.Backoff == (client.Backoff{}) {
		o.Backoff = fastBackoff
	}
	c, err := client.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s: %v", o.Server, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
	})
	return c
}

// ---- mosquitto ----

// mosquittoPath finds the Mosquitto broker binary.
func mosquittoPath() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	return ""
}

// mosquitto is a Mosquitto process on a loopback port with persistence,
// which can be killed and started again on the same port and directory.
type mosquitto struct {
	t     testing.TB
	bin   string
	dir   string
	conf  string
	port  int
	mu    sync.Mutex
	cmd   *exec.Cmd
	exitc chan struct{}
}

// newMosquitto writes the configuration; start launches the process. The
// test is skipped when Mosquitto is not installed, and fails when CI=true.
func newMosquitto(t testing.TB) *mosquitto {
	t.Helper()
	bin := mosquittoPath()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto not found (CI=true: install the Debian package mosquitto; scripts/install-peers.sh does)")
		}
		t.Skip("mosquitto not found: install it (apt-get install mosquitto) to run the Mosquitto bridge tests")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m := &mosquitto{t: t, bin: bin, dir: t.TempDir(), port: port}
	lines := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + m.dir + "/",
		// Save after every change, so that a SIGKILL loses as little as
		// Mosquitto's design allows.
		"autosave_on_changes true",
		"autosave_interval 1",
		"max_queued_messages 100000",
		"max_inflight_messages 0",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
	}
	if os.Geteuid() == 0 {
		lines = append(lines, "user root")
	}
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.kill)
	return m
}

func (m *mosquitto) addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }
func (m *mosquitto) url() string  { return "mqtt://" + m.addr() }

// start launches Mosquitto and waits until its port accepts connections.
func (m *mosquitto) start() {
	m.t.Helper()
	logf, err := os.OpenFile(filepath.Join(m.dir, "mosquitto.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	logf.Close()
	if err != nil {
		m.t.Fatal(err)
	}
	exitc := make(chan struct{})
	go func() { cmd.Wait(); close(exitc) }()
	m.mu.Lock()
	m.cmd, m.exitc = cmd, exitc
	m.mu.Unlock()
	waitFor(m.t, "mosquitto to listen", func() bool {
		select {
		case <-exitc:
			log, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
			m.t.Fatalf("mosquitto exited:\n%s", log)
		default:
		}
		c, err := net.DialTimeout("tcp", m.addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (m *mosquitto) signal(sig os.Signal) {
	m.mu.Lock()
	cmd, exitc := m.cmd, m.exitc
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	<-exitc
}

// log returns what Mosquitto logged.
func (m *mosquitto) log() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
	return string(b)
}

func (m *mosquitto) kill()      { m.signal(syscall.SIGKILL) }
func (m *mosquitto) terminate() { m.signal(syscall.SIGTERM) }
