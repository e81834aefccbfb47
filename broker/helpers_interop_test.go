package broker_test

// Helpers shared by the interoperability tests (interop_*_test.go): a
// broker on a loopback port, polling waits, message recorders, a tapping
// net.Conn that records the raw bytes a third-party client exchanges with
// the broker, and thin wrappers around paho.golang (v5) and
// paho.mqtt.golang (3.1.1) clients.
//
// Every helper here is prefixed with "ix" so that it cannot collide with
// helpers of other test files in package broker_test.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// ixTimeout bounds every wait of the interop tests. It is a deadline for
// conditions that normally hold within milliseconds, not a timing
// assertion: the machine may be loaded and the tests run with -race.
const ixTimeout = 20 * time.Second

// ixCI reports whether the tests run in CI, where missing peers are errors.
func ixCI() bool { return os.Getenv("CI") == "true" }

// ixMissing fails under CI and skips otherwise: a peer program is absent.
func ixMissing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if ixCI() {
		t.Fatalf("%s (CI=true: interop peers are required; run scripts/install-peers.sh)", msg)
	}
	t.Skipf("%s; skipping (run scripts/install-peers.sh to install the interop peers)", msg)
}

// ixBroker is a broker serving a loopback listener for one test.
type ixBroker struct {
	*broker.Broker
	Addr string // host:port
	Host string
	Port string
}

// URL returns the broker's mqtt:// URL.
func (b *ixBroker) URL() string { return "mqtt://" + b.Addr }

// ixStartBroker starts a broker with cfg on 127.0.0.1:0 and shuts it down
// when the test ends. $SYS publishing is off unless cfg asks for it, so
// that "#" subscribers see only the test's traffic.
func ixStartBroker(t testing.TB, cfg broker.Config) *ixBroker {
	t.Helper()
	if cfg.SysInterval == 0 {
		cfg.SysInterval = -1
	}
	if cfg.Logger == nil {
		var w io.Writer = io.Discard
		level := slog.LevelInfo
		if os.Getenv("MQTT5_INTEROP_LOG") != "" {
			w, level = os.Stderr, slog.LevelDebug
		}
		cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	b := broker.New(cfg)
	serveErr := make(chan error, 1)
	go func() { serveErr <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("broker Shutdown: %v", err)
		}
		select {
		case err := <-serveErr:
			if !errors.Is(err, broker.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	select {
	case <-b.Ready():
	case err := <-serveErr:
		t.Fatalf("Serve: %v", err)
	case <-time.After(ixTimeout):
		t.Fatalf("broker not ready")
	}
	host, port, _ := net.SplitHostPort(l.Addr().String())
	return &ixBroker{Broker: b, Addr: l.Addr().String(), Host: host, Port: port}
}

// ixWaitFor polls cond until it holds or ixTimeout passes.
func ixWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ixTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", ixTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ixWaitUntil polls until the wall clock passes at. It is used only where
// the behaviour under test is defined by elapsed time (Will Delay
// Interval, Message Expiry Interval).
func ixWaitUntil(at time.Time) {
	for time.Now().Before(at) {
		time.Sleep(10 * time.Millisecond)
	}
}

// ixWaitConnections waits until the broker reports n network connections;
// a connection is unregistered only after its will (if any) was routed.
func ixWaitConnections(t testing.TB, b *ixBroker, n int64) {
	t.Helper()
	ixWaitFor(t, fmt.Sprintf("%d broker connections", n), func() bool { return b.Stats().Connections == n })
}

// ixRecorder collects values from callbacks running on other goroutines.
type ixRecorder[T any] struct {
	mu    sync.Mutex
	items []T
}

func (r *ixRecorder[T]) add(v T) {
	r.mu.Lock()
	r.items = append(r.items, v)
	r.mu.Unlock()
}

func (r *ixRecorder[T]) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

func (r *ixRecorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.items...)
}

// waitLen waits until at least n values were recorded and returns them.
func (r *ixRecorder[T]) waitLen(t testing.TB, what string, n int) []T {
	t.Helper()
	ixWaitFor(t, fmt.Sprintf("%d %s (have %d)", n, what, r.len()), func() bool { return r.len() >= n })
	return r.all()
}

// waitMatch waits until a recorded value satisfies match and returns all
// values recorded so far.
func (r *ixRecorder[T]) waitMatch(t testing.TB, what string, match func(T) bool) []T {
	t.Helper()
	ixWaitFor(t, what, func() bool {
		for _, v := range r.all() {
			if match(v) {
				return true
			}
		}
		return false
	})
	return r.all()
}

// ---- tapping connection ----

// ixTapConn records the bytes a client reads from and writes to the broker,
// so that tests can decode the exact packets on the wire (properties a
// client library does not expose, such as several Subscription
// Identifiers). Writes are recorded before they are sent and reads after
// they are received, so the log preserves causal order.
//
// It implements sync.Locker: paho.golang writes one packet in several Write
// calls when the connection is not a *net.TCPConn, and holds the lock of a
// connection that is a Locker around them, so packets written by different
// goroutines do not interleave.
type ixTapConn struct {
	net.Conn
	wmu    sync.Mutex // held by paho.golang around each packet it writes
	mu     sync.Mutex // guards the fields below
	in     []byte
	out    []byte
	writes []ixTapWrite
}

type ixTapWrite struct {
	inOff  int // bytes read from the broker when the write started
	outOff int // offset of the write in out
}

func (c *ixTapConn) Lock()   { c.wmu.Lock() }
func (c *ixTapConn) Unlock() { c.wmu.Unlock() }

func (c *ixTapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.in = append(c.in, p[:n]...)
		c.mu.Unlock()
	}
	return n, err
}

func (c *ixTapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, ixTapWrite{inOff: len(c.in), outOff: len(c.out)})
	c.out = append(c.out, p...)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// ixWirePacket is one decoded packet with its position in the stream.
type ixWirePacket struct {
	P     packet.Packet
	Start int // offset of the first byte
	End   int // offset after the last byte
}

// ixDecodeStream decodes every complete packet in b (version v).
func ixDecodeStream(t testing.TB, b []byte, v packet.Version) []ixWirePacket {
	t.Helper()
	r := packet.NewReader(bytes.NewReader(b), 0)
	var out []ixWirePacket
	off := 0
	for {
		h, body, err := r.ReadRaw(v)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return out
			}
			t.Fatalf("decode recorded stream at offset %d: %v", off, err)
		}
		owned := append([]byte(nil), body...)
		p, err := packet.Decode(h, owned, v)
		if err != nil {
			t.Fatalf("decode recorded %s at offset %d: %v", h.Type, off, err)
		}
		out = append(out, ixWirePacket{P: p, Start: off, End: off + h.Size()})
		off += h.Size()
	}
}

// inbound returns the packets the client received so far.
func (c *ixTapConn) inbound(t testing.TB, v packet.Version) []ixWirePacket {
	c.mu.Lock()
	b := append([]byte(nil), c.in...)
	c.mu.Unlock()
	return ixDecodeStream(t, b, v)
}

// outbound returns the packets the client sent so far and, for each, the
// number of inbound bytes the client had read when it started writing it.
func (c *ixTapConn) outbound(t testing.TB, v packet.Version) (pkts []ixWirePacket, inOffAtWrite []int) {
	c.mu.Lock()
	b := append([]byte(nil), c.out...)
	writes := append([]ixTapWrite(nil), c.writes...)
	c.mu.Unlock()
	pkts = ixDecodeStream(t, b, v)
	for _, p := range pkts {
		in := 0
		for _, w := range writes {
			if w.outOff <= p.Start {
				in = w.inOff
			}
		}
		inOffAtWrite = append(inOffAtWrite, in)
	}
	return pkts, inOffAtWrite
}

// dump describes the packets exchanged so far, for failure messages.
func (c *ixTapConn) dump(t testing.TB, v packet.Version) string {
	var b strings.Builder
	b.WriteString("client received:")
	for _, p := range c.inbound(t, v) {
		fmt.Fprintf(&b, " %s", ixDescribe(p.P))
	}
	b.WriteString("\nclient sent:")
	out, _ := c.outbound(t, v)
	for _, p := range out {
		fmt.Fprintf(&b, " %s", ixDescribe(p.P))
	}
	return b.String()
}

func ixDescribe(p packet.Packet) string {
	switch q := p.(type) {
	case *packet.Publish:
		return fmt.Sprintf("PUBLISH(%s q%d id%d %q)", q.Topic, q.QoS, q.PacketID, ixTrunc(string(q.Payload)))
	case *packet.Puback:
		return fmt.Sprintf("PUBACK(%d %#x)", q.PacketID, byte(q.ReasonCode))
	case *packet.Pubrec:
		return fmt.Sprintf("PUBREC(%d %#x)", q.PacketID, byte(q.ReasonCode))
	case *packet.Pubrel:
		return fmt.Sprintf("PUBREL(%d %#x)", q.PacketID, byte(q.ReasonCode))
	case *packet.Pubcomp:
		return fmt.Sprintf("PUBCOMP(%d %#x)", q.PacketID, byte(q.ReasonCode))
	case *packet.Subscribe:
		return fmt.Sprintf("SUBSCRIBE(%d)", q.PacketID)
	case *packet.Suback:
		return fmt.Sprintf("SUBACK(%d %v)", q.PacketID, q.ReasonCodes)
	case *packet.Disconnect:
		return fmt.Sprintf("DISCONNECT(%#x)", byte(q.ReasonCode))
	case *packet.Connack:
		return fmt.Sprintf("CONNACK(%#x sp=%v)", byte(q.ReasonCode), q.SessionPresent)
	}
	return p.Type().String()
}

func ixTrunc(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}

// inboundPublishes returns the PUBLISH packets the client received.
func (c *ixTapConn) inboundPublishes(t testing.TB, v packet.Version) []*packet.Publish {
	var out []*packet.Publish
	for _, p := range c.inbound(t, v) {
		if pub, ok := p.P.(*packet.Publish); ok {
			out = append(out, pub)
		}
	}
	return out
}

// ---- paho.golang (MQTT v5) ----

// ixV5Client is a connected paho.golang client with everything it
// received recorded.
type ixV5Client struct {
	*paho.Client
	Tap     *ixTapConn
	Connack *paho.Connack
	Msgs    *ixRecorder[*paho.Publish]
	// ServerDisconnects records DISCONNECT packets sent by the broker.
	ServerDisconnects *ixRecorder[*paho.Disconnect]
	done              atomic.Bool
}

// ixV5Options tunes ixDialV5.
type ixV5Options struct {
	Auther      paho.Auther
	PublishHook func(*paho.Publish)
	// OnPublish, when set, is called for each received message after it
	// was recorded; the acknowledgement is sent when it returns.
	OnPublish func(*paho.Publish)
}

// ixConnectV5 dials the broker and connects with cp. It fails the test if
// the connection is refused; use ixTryConnectV5 to examine refusals.
func ixConnectV5(t testing.TB, b *ixBroker, cp *paho.Connect, o *ixV5Options) *ixV5Client {
	t.Helper()
	c, err := ixTryConnectV5(t, b, cp, o)
	if err != nil {
		rc := -1
		if c != nil && c.Connack != nil {
			rc = int(c.Connack.ReasonCode)
		}
		t.Fatalf("paho.golang connect %q: %v (CONNACK reason code %#x)", cp.ClientID, err, rc)
	}
	return c
}

// ixTryConnectV5 dials and connects; the returned client carries the
// CONNACK even when the connection is refused.
func ixTryConnectV5(t testing.TB, b *ixBroker, cp *paho.Connect, o *ixV5Options) (*ixV5Client, error) {
	t.Helper()
	if o == nil {
		o = &ixV5Options{}
	}
	nc, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatalf("dial %s: %v", b.Addr, err)
	}
	tap := &ixTapConn{Conn: nc}
	c := &ixV5Client{
		Tap:               tap,
		Msgs:              &ixRecorder[*paho.Publish]{},
		ServerDisconnects: &ixRecorder[*paho.Disconnect]{},
	}
	cfg := paho.ClientConfig{
		ClientID:    cp.ClientID,
		Conn:        tap,
		AuthHandler: o.Auther,
		PublishHook: o.PublishHook,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				c.Msgs.add(pr.Packet)
				if o.OnPublish != nil {
					o.OnPublish(pr.Packet)
				}
				return true, nil
			},
		},
		OnServerDisconnect: func(d *paho.Disconnect) { c.ServerDisconnects.add(d) },
		PacketTimeout:      ixTimeout,
	}
	c.Client = paho.NewClient(cfg)
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 60
	}
	ctx, cancel := context.WithTimeout(context.Background(), ixTimeout)
	defer cancel()
	ca, err := c.Client.Connect(ctx, cp)
	c.Connack = ca
	if err != nil {
		nc.Close()
		return c, err
	}
	t.Cleanup(c.close)
	return c, nil
}

// close ends the client without DISCONNECT if it is still connected
// (used by cleanup; tests use Disconnect or Drop explicitly).
func (c *ixV5Client) close() {
	if c.done.Swap(true) {
		return
	}
	_ = c.Client.Disconnect(&paho.Disconnect{ReasonCode: 0})
}

// DisconnectWith sends DISCONNECT with reason code rc (and the session
// expiry in props, if any) and closes the connection.
func (c *ixV5Client) DisconnectWith(t testing.TB, rc byte, props *paho.DisconnectProperties) {
	t.Helper()
	c.done.Store(true)
	if err := c.Client.Disconnect(&paho.Disconnect{ReasonCode: rc, Properties: props}); err != nil {
		t.Fatalf("paho.golang Disconnect(%#x): %v", rc, err)
	}
}

// Drop closes the network connection without DISCONNECT (an abnormal
// close, as when the network fails).
func (c *ixV5Client) Drop() {
	c.done.Store(true)
	c.Tap.Conn.Close()
	<-c.Client.Done()
}

// Sub subscribes with one SubscribeOptions and checks the granted code.
func (c *ixV5Client) Sub(t testing.TB, opt paho.SubscribeOptions, props *paho.SubscribeProperties) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ixTimeout)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{opt}, Properties: props})
	if err != nil {
		t.Fatalf("paho.golang subscribe %q: %v\n%s", opt.Topic, err, c.Tap.dump(t, packet.V5))
	}
	// [MQTT-3.8.4-6] [MQTT-3.9.3-1] one reason code, the granted QoS.
	if len(sa.Reasons) != 1 || sa.Reasons[0] != opt.QoS {
		t.Fatalf("SUBACK for %q: reason codes %v, want [%d]", opt.Topic, sa.Reasons, opt.QoS)
	}
}

// Barrier makes a request/response round trip (UNSUBSCRIBE of a filter
// never subscribed) on c's connection. The broker handles one client's
// packets in order, so once the UNSUBACK arrives everything an earlier
// SUBSCRIBE caused (retained messages) has been queued for c.
func (c *ixV5Client) Barrier(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ixTimeout)
	defer cancel()
	ua, err := c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"ix/barrier/never-subscribed"}})
	if err != nil {
		t.Fatalf("barrier UNSUBSCRIBE: %v\n%s", err, c.Tap.dump(t, packet.V5))
	}
	// [MQTT-3.10.4-4] [MQTT-3.10.4-5] UNSUBACK even when nothing matched.
	if len(ua.Reasons) != 1 || ua.Reasons[0] != byte(packet.NoSubscriptionExisted) {
		t.Fatalf("UNSUBACK for a filter never subscribed: %v, want [0x11]", ua.Reasons)
	}
}

// Pub publishes and, for QoS 1 and 2, checks a success acknowledgement.
func (c *ixV5Client) Pub(t testing.TB, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ixTimeout)
	defer cancel()
	pr, err := c.Publish(ctx, p)
	if err != nil {
		t.Fatalf("paho.golang publish %q QoS %d: %v\n%s", p.Topic, p.QoS, err, c.Tap.dump(t, packet.V5))
	}
	if p.QoS > 0 && pr.ReasonCode >= 0x80 {
		t.Fatalf("publish %q: reason code %#x", p.Topic, pr.ReasonCode)
	}
	return pr
}

// ixMsg is a comparable summary of a received message.
type ixMsg struct {
	Topic   string
	Payload string
	QoS     byte
	Retain  bool
}

func (m ixMsg) String() string {
	return fmt.Sprintf("{%s %q qos=%d retain=%v}", m.Topic, m.Payload, m.QoS, m.Retain)
}

func ixSummarizeV5(ps []*paho.Publish) []ixMsg {
	out := make([]ixMsg, len(ps))
	for i, p := range ps {
		out[i] = ixMsg{Topic: p.Topic, Payload: string(p.Payload), QoS: p.QoS, Retain: p.Retain}
	}
	return out
}

func ixEqualMsgs(a, b []ixMsg) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ixCleanV5 returns a CONNECT with Clean Start for id.
func ixCleanV5(id string) *paho.Connect {
	return &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 60}
}

func ixU32(v uint32) *uint32 { return &v }
func ixU16(v uint16) *uint16 { return &v }
func ixByte(v byte) *byte    { return &v }
func ixInt(v int) *int       { return &v }

// ---- paho.mqtt.golang (MQTT 3.1.1) ----

// ixV3Client is a connected paho.mqtt.golang client.
type ixV3Client struct {
	mqtt3.Client
	Msgs           *ixRecorder[ixMsg]
	SessionPresent bool
	mu             sync.Mutex
	conn           net.Conn // the current network connection
}

// ixQuiesce is the quiesce argument for paho.mqtt.golang's Disconnect: it
// waits at most this many milliseconds for the DISCONNECT to be sent and
// returns as soon as it is. With 0 it may close the socket first.
const ixQuiesce = 5000

// ixV3Options tunes ixConnectV3.
type ixV3Options struct {
	CleanSession bool
	Will         *ixMsg // Will: Topic, Payload, QoS, Retain
}

// ixConnectV3 connects a 3.1.1 client with id. Messages that arrive
// without a subscription handler (a resumed session) are recorded too.
func ixConnectV3(t testing.TB, b *ixBroker, id string, o ixV3Options) *ixV3Client {
	t.Helper()
	c := &ixV3Client{Msgs: &ixRecorder[ixMsg]{}}
	opts := mqtt3.NewClientOptions().
		AddBroker("tcp://" + b.Addr).
		SetClientID(id).
		SetProtocolVersion(4).
		SetCleanSession(o.CleanSession).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).
		SetConnectTimeout(ixTimeout).
		SetWriteTimeout(ixTimeout).
		SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) {
			c.Msgs.add(ixMsg{Topic: m.Topic(), Payload: string(m.Payload()), QoS: m.Qos(), Retain: m.Retained()})
		}).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt3.ClientOptions) (net.Conn, error) {
			nc, err := net.Dial("tcp", u.Host)
			if err == nil {
				c.mu.Lock()
				c.conn = nc
				c.mu.Unlock()
			}
			return nc, err
		})
	if w := o.Will; w != nil {
		opts.SetWill(w.Topic, w.Payload, w.QoS, w.Retain)
	}
	c.Client = mqtt3.NewClient(opts)
	tok := c.Client.Connect()
	if !tok.WaitTimeout(ixTimeout) {
		t.Fatalf("paho.mqtt.golang connect %q: timeout", id)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho.mqtt.golang connect %q: %v", id, err)
	}
	c.SessionPresent = tok.(*mqtt3.ConnectToken).SessionPresent()
	t.Cleanup(func() {
		if c.Client.IsConnectionOpen() {
			c.Client.Disconnect(ixQuiesce)
		}
	})
	return c
}

// Sub subscribes filter at qos, recording messages.
func (c *ixV3Client) Sub(t testing.TB, filter string, qos byte) {
	t.Helper()
	tok := c.Subscribe(filter, qos, func(_ mqtt3.Client, m mqtt3.Message) {
		c.Msgs.add(ixMsg{Topic: m.Topic(), Payload: string(m.Payload()), QoS: m.Qos(), Retain: m.Retained()})
	})
	ixWaitToken(t, "subscribe "+filter, tok)
	st := tok.(*mqtt3.SubscribeToken)
	if got := st.Result()[filter]; got != qos {
		t.Fatalf("SUBACK for %q: granted %d, want %d", filter, got, qos)
	}
}

// Pub publishes and waits for the flow to complete.
func (c *ixV3Client) Pub(t testing.TB, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	ixWaitToken(t, "publish "+topic, c.Publish(topic, qos, retain, payload))
}

// Drop closes the TCP connection without DISCONNECT (an abnormal close).
func (c *ixV3Client) Drop(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	nc := c.conn
	c.mu.Unlock()
	if nc == nil {
		t.Fatalf("no network connection to drop")
	}
	// paho.mqtt.golang treats a read on its own closed socket as the end
	// of input and notices nothing until its next write; the broker sees
	// the close at once.
	nc.Close()
}

func ixWaitToken(t testing.TB, what string, tok mqtt3.Token) {
	t.Helper()
	if !tok.WaitTimeout(ixTimeout) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// ---- external programs ----

// ixLookPath finds a peer program, failing under CI and skipping otherwise.
func ixLookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		ixMissing(t, "%s not found in PATH", name)
	}
	return p
}

// ixRun runs a program to completion with a timeout and returns stdout.
func ixRun(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	return ixRunInput(t, "", name, args...)
}

// ixRunInput is ixRun with stdin.
func ixRunInput(t testing.TB, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ixTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w (stderr: %s)", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), err
}

// ixProc is a program running in the background.
type ixProc struct {
	cmd    *exec.Cmd
	stdout *ixSyncBuffer
	stderr *ixSyncBuffer
	done   chan struct{}
	err    error
}

// ixSyncBuffer is a bytes.Buffer safe for a writer and concurrent readers.
type ixSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *ixSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *ixSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ixStart starts a program that is killed when the test ends if it is
// still running.
func ixStart(t testing.TB, name string, args ...string) *ixProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*ixTimeout)
	cmd := exec.CommandContext(ctx, name, args...)
	p := &ixProc{cmd: cmd, stdout: &ixSyncBuffer{}, stderr: &ixSyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// kill kills the program (SIGKILL: its sockets are closed by the kernel,
// without any MQTT DISCONNECT) and waits for it to exit.
func (p *ixProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// wait waits for the program to exit and returns its stdout.
func (p *ixProc) wait(t testing.TB) string {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(2 * ixTimeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not exit; stdout: %q stderr: %q", p.cmd.Path, p.stdout.String(), p.stderr.String())
	}
	if p.err != nil {
		t.Fatalf("%s: %v; stdout: %q stderr: %q", strings.Join(p.cmd.Args, " "), p.err, p.stdout.String(), p.stderr.String())
	}
	return p.stdout.String()
}
