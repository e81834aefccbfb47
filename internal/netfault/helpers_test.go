package netfault_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/internal/netfault"
	"github.com/mqtt5go/mqtt5/packet"
)

// Addresses come from 198.18.0.0/15 (set aside for network test
// equipment) and exist only inside the namespaces the tests make.
var (
	clientAddr  = netip.MustParseAddr("198.18.1.1")
	brokerAddr  = netip.MustParseAddr("198.18.2.1")
	clientAddr2 = netip.MustParseAddr("198.18.3.1") // second link (QUIC migration)
	brokerAddr2 = netip.MustParseAddr("198.18.4.1")
)

// pollTimeout bounds every wait for a condition.
const pollTimeout = 60 * time.Second

// seed returns MQTT5_NETFAULT_SEED when set (to replay a run), else 0
// (a random seed, logged by the link).
func seed(t *testing.T) uint64 {
	s := os.Getenv("MQTT5_NETFAULT_SEED")
	if s == "" {
		return 0
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("MQTT5_NETFAULT_SEED: %v", err)
	}
	return v
}

// waitFor polls cond until it holds, failing the test after pollTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", pollTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startBroker runs one of our brokers on a TCP listener inside ns.
func startBroker(t *testing.T, ns *netfault.Netns, addr netip.Addr) *broker.Broker {
	t.Helper()
	l, err := ns.Listen("tcp", netip.AddrPortFrom(addr, 1883).String())
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, l)
}

func serve(t *testing.T, l net.Listener) *broker.Broker {
	t.Helper()
	b := broker.New(broker.Config{SysInterval: -1, Logger: quietLogger()})
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
		<-errc
	})
	return b
}

// nsDialer dials TCP from inside ns.
func nsDialer(ns *netfault.Netns) client.Dialer {
	return client.DialerFunc(func(ctx context.Context, u *url.URL, _ *tls.Config) (io.ReadWriteCloser, error) {
		return ns.DialContext(ctx, "tcp", u.Host)
	})
}

// inProcess connects to b without a network.
func inProcess(b *broker.Broker) client.Dialer {
	return client.DialerFunc(func(context.Context, *url.URL, *tls.Config) (io.ReadWriteCloser, error) {
		return b.InProcessConn(), nil
	})
}

// events records a client's connections and disconnections.
type events struct {
	mu          sync.Mutex
	connects    []client.ConnectInfo
	connectedAt []time.Time
	disconnects []client.DisconnectInfo
}

func (e *events) hook(o *client.Options) {
	o.OnConnect = func(ci *client.ConnectInfo) {
		e.mu.Lock()
		e.connects = append(e.connects, *ci)
		e.connectedAt = append(e.connectedAt, time.Now())
		e.mu.Unlock()
	}
	o.OnDisconnect = func(di client.DisconnectInfo) {
		e.mu.Lock()
		e.disconnects = append(e.disconnects, di)
		e.mu.Unlock()
	}
}

func (e *events) counts() (connects, disconnects int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.connects), len(e.disconnects)
}

// last returns the latest connection's information and time.
func (e *events) last() (client.ConnectInfo, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.connects[len(e.connects)-1], e.connectedAt[len(e.connectedAt)-1]
}

func (e *events) lastDisconnect() client.DisconnectInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.disconnects[len(e.disconnects)-1]
}

// newClient connects a client; it is disconnected when the test ends.
func newClient(t *testing.T, o client.Options) *client.Client {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	c, err := client.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pollTimeout)
	defer cancel()
	if _, err := c.Connect(ctx); err != nil {
		t.Fatalf("%s: connect: %v", o.ClientID, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Disconnect(ctx, packet.NormalDisconnection, 0)
	})
	return c
}

// tally counts deliveries by payload.
type tally struct {
	mu   sync.Mutex
	got  map[string]int
	dups int // deliveries with the DUP flag
}

func newTally() *tally { return &tally{got: map[string]int{}} }

func (tl *tally) add(payload string, dup bool) {
	tl.mu.Lock()
	tl.got[payload]++
	if dup {
		tl.dups++
	}
	tl.mu.Unlock()
}

func (tl *tally) count(payload string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.got[payload]
}

// missing returns how many of want have not arrived.
func (tl *tally) missing(want []string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, p := range want {
		if tl.got[p] == 0 {
			n++
		}
	}
	return n
}

// extra returns the deliveries beyond the first of each payload, and the
// payloads delivered more than once.
func (tl *tally) extra() (deliveries, payloads int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, n := range tl.got {
		if n > 1 {
			deliveries += n - 1
			payloads++
		}
	}
	return deliveries, payloads
}

func (tl *tally) handler() client.Handler {
	return func(m *client.Message) { tl.add(string(m.Payload), m.Dup) }
}

// acked collects the payloads whose publish was acknowledged.
type acked struct {
	mu   sync.Mutex
	list []string
	errs []error
}

func (a *acked) add(p string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.errs = append(a.errs, fmt.Errorf("%s: %w", p, err))
		return
	}
	a.list = append(a.list, p)
}

func (a *acked) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.list)
}

func (a *acked) snapshot() ([]string, []error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.list...), append([]error(nil), a.errs...)
}

// tcpStats logs the TCP segment counters of the namespaces.
func logTCP(t *testing.T, nss ...*netfault.Netns) string {
	t.Helper()
	s := ""
	for _, ns := range nss {
		st, err := ns.TCPStats()
		if err != nil {
			t.Errorf("TCP stats of %s: %v", ns.Name, err)
			continue
		}
		s += fmt.Sprintf(" [%s: %d TCP segments sent, %d retransmitted]", ns.Name, st.OutSegs, st.RetransSegs)
	}
	return s
}

// mosquittoSub runs mosquitto_sub inside ns with args (payloads printed one
// a line) and counts the payloads it prints. It returns nil, after logging
// why, when mosquitto_sub is not installed. The process is stopped when the
// test ends.
func mosquittoSub(t *testing.T, ns *netfault.Netns, args ...string) *peerSub {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Logf("mosquitto_sub not installed (scripts/install-peers.sh installs it): checked with our client only")
		return nil
	}
	// stdbuf: one line at a time through the pipe, not a block.
	cmd := ns.Exec(context.Background(), "stdbuf", append([]string{"-oL", bin}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &peerSub{tally: newTally(), exited: make(chan struct{})}
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.add(sc.Text(), false)
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-p.exited
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("mosquitto_sub: %s", stderr.String())
		}
	})
	return p
}

// peerSub is a subscriber process: what it printed, and whether its
// output ended (it exited).
type peerSub struct {
	*tally
	exited chan struct{}
}

// running fails the test if the process has exited.
func (p *peerSub) running(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatal("mosquitto_sub exited")
	default:
	}
}
