package broker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

type ipTestAddr string

func (a ipTestAddr) Network() string { return "test" }
func (a ipTestAddr) String() string  { return string(a) }

func TestIPKey(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	udp := func(s string) net.Addr { return net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	for _, c := range []struct {
		name string
		addr net.Addr
		want string // "" when not counted
	}{
		{"tcp v4", tcp("192.0.2.7:1883"), "192.0.2.7"},
		{"v4-mapped v6", tcp("[::ffff:192.0.2.7]:1883"), "192.0.2.7"},
		{"tcp v6 grouped by /64", tcp("[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:1883"), "2001:db8:1:2::"},
		{"v6 zone dropped", tcp("[fe80::1%eth0]:1883"), "fe80::"},
		{"udp (QUIC)", udp("198.51.100.1:14567"), "198.51.100.1"},
		{"forwarded (WebSocket, port 0)", &net.TCPAddr{IP: net.ParseIP("203.0.113.9")}, "203.0.113.9"},
		{"other transport host:port", ipTestAddr("198.51.100.2:5"), "198.51.100.2"},
		{"other transport bare address", ipTestAddr("2001:db8::1"), "2001:db8::"},
		{"pipe", ipTestAddr("pipe"), ""},
		{"unix", &net.UnixAddr{Name: "/tmp/s", Net: "unix"}, ""},
		{"nil", nil, ""},
	} {
		key, ok := ipKey(c.addr)
		got := ""
		if ok {
			got = key.String()
		}
		if got != c.want {
			t.Errorf("%s: key %q (ok %v), want %q", c.name, got, ok, c.want)
		}
	}
	a, _ := ipKey(tcp("[2001:db8:1:2::1]:1"))
	b, _ := ipKey(tcp("[2001:db8:1:2:ffff::9]:2"))
	d, _ := ipKey(tcp("[2001:db8:1:3::1]:1"))
	if a != b || a == d {
		t.Errorf("/64 grouping: %v %v %v", a, b, d)
	}
}

func TestIPLimiter(t *testing.T) {
	l := newIPLimiter(2)
	k1, k2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if !l.acquire(k1) || !l.acquire(k1) || l.acquire(k1) {
		t.Fatal("limit 2: want two acquisitions, then a refusal")
	}
	if !l.acquire(k2) {
		t.Fatal("another address is refused")
	}
	l.release(k1)
	if !l.acquire(k1) || l.acquire(k1) {
		t.Fatal("a release makes room for exactly one")
	}
	l.release(k1)
	l.release(k1)
	l.release(k2)
	l.release(k2) // more releases than acquisitions: harmless
	if len(l.count) != 0 {
		t.Fatalf("entries left: %v", l.count)
	}
	u := newIPLimiter(-1)
	for range 10 {
		if !u.acquire(k1) {
			t.Fatal("unlimited refused")
		}
	}
	if len(u.count) != 0 {
		t.Fatal("unlimited limiter counts")
	}
}

// ipTestServe serves cfg on a loopback TCP listener.
func ipTestServe(t *testing.T, cfg Config) (*Broker, string) {
	t.Helper()
	b := newTestBroker(t, cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(l)
	<-b.Ready()
	return b, l.Addr().String()
}

// ipTestClient wraps nc in a raw test client.
func ipTestClient(t *testing.T, nc net.Conn, v packet.Version) *tclient {
	t.Cleanup(func() { nc.Close() })
	return &tclient{t: t, nc: nc, r: packet.NewReader(nc, 0), v: v, timeout: recvTimeout}
}

// ipTestRefused checks that the broker closed c without sending anything.
func ipTestRefused(t *testing.T, c *tclient) {
	t.Helper()
	var buf [16]byte
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.nc.Read(buf[:])
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want the connection closed unanswered; got % x, %v", buf[:n], err)
	}
}

func TestMaxConnectionsPerIPOverTCP(t *testing.T) {
	b, addr := ipTestServe(t, Config{Logger: slog.New(slog.DiscardHandler), Limits: Limits{MaxConnectionsPerIP: 3}})
	key := netip.MustParseAddr("127.0.0.1")
	var cs []*tclient
	for i := range 3 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := ipTestClient(t, nc, packet.V5)
		c.connect(&packet.Connect{ClientID: string(rune('a' + i)), CleanStart: true})
		cs = append(cs, c)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ipTestRefused(t, ipTestClient(t, nc, packet.V5)) // nothing sent: closed before reading
	if st := b.Stats(); st.RefusedPerIP != 1 || st.Connections != 3 {
		t.Fatalf("RefusedPerIP %d, Connections %d", st.RefusedPerIP, st.Connections)
	}
	// In-process connections are not counted.
	for i := range 5 {
		c := newTClient(t, b, packet.V311)
		c.connect(&packet.Connect{ClientID: "inproc" + string(rune('a'+i)), CleanStart: true})
	}
	tc := &tclient{t: t, nc: b.TrustedConn(), v: packet.V5, timeout: recvTimeout}
	tc.r = packet.NewReader(tc.nc, 0)
	t.Cleanup(func() { tc.nc.Close() })
	tc.connect(&packet.Connect{ClientID: "trusted", CleanStart: true})
	if n := b.ipLimit.connections(key); n != 3 {
		t.Fatalf("%d connections counted for %v, want 3", n, key)
	}
	// Closing one makes room for one.
	cs[0].disconnect()
	pollUntil(t, func() bool { return b.ipLimit.connections(key) == 2 })
	nc, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ipTestClient(t, nc, packet.V311).connect(&packet.Connect{ClientID: "d", CleanStart: true})
	nc, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ipTestRefused(t, ipTestClient(t, nc, packet.V5))
	// A connection dropped by the client, and one that fails its
	// handshake, are uncounted too.
	cs[1].nc.Close()
	pollUntil(t, func() bool { return b.ipLimit.connections(key) == 2 })
	nc, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	bad := ipTestClient(t, nc, packet.V5)
	bad.sendRaw([]byte{0xc0, 0x00}) // PINGREQ first: not CONNECT
	bad.expectClosed()
	pollUntil(t, func() bool { return b.ipLimit.connections(key) == 2 })
	if got := b.Stats().RefusedPerIP; got != 2 {
		t.Fatalf("RefusedPerIP %d, want 2", got)
	}
}

func TestMaxConnectionsPerIPUnlimited(t *testing.T) {
	b, addr := ipTestServe(t, Config{Limits: Limits{MaxConnectionsPerIP: -1}})
	for i := range 20 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		ipTestClient(t, nc, packet.V5).connect(&packet.Connect{ClientID: "u" + string(rune('a'+i)), CleanStart: true})
	}
	if st := b.Stats(); st.RefusedPerIP != 0 || len(b.ipLimit.count) != 0 {
		t.Fatalf("RefusedPerIP %d, counted %v", st.RefusedPerIP, b.ipLimit.count)
	}
}

// ipTestConn is a connection whose remote address is set by the test, as
// a QUIC stream (UDP address) or another transport would report it.
type ipTestConn struct {
	net.Conn
	remote net.Addr
}

func (c ipTestConn) RemoteAddr() net.Addr { return c.remote }

func TestMaxConnectionsPerIPServeConnIPv6AndUDP(t *testing.T) {
	b := newTestBroker(t, Config{Logger: slog.New(slog.DiscardHandler), Limits: Limits{MaxConnectionsPerIP: 1}})
	serve := func(remote string, udp bool) (c *tclient, done chan struct{}) {
		client, server := net.Pipe()
		ap := netip.MustParseAddrPort(remote)
		var ra net.Addr = net.TCPAddrFromAddrPort(ap)
		if udp {
			ra = net.UDPAddrFromAddrPort(ap)
		}
		done = make(chan struct{})
		go func() {
			defer close(done)
			b.ServeConn(ipTestConn{server, ra})
		}()
		t.Cleanup(func() { client.Close(); <-done })
		return &tclient{t: t, nc: client, r: packet.NewReader(client, 0), v: packet.V5, timeout: recvTimeout}, done
	}
	a, _ := serve("[2001:db8:0:1::1]:1000", false)
	a.connect(&packet.Connect{ClientID: "a", CleanStart: true})
	// The same /64: refused, and ServeConn returns at once.
	_, done := serve("[2001:db8:0:1:ffff::2]:1000", false)
	<-done
	// Another /64 and a UDP (QUIC) address are counted separately.
	c, _ := serve("[2001:db8:0:2::1]:1000", false)
	c.connect(&packet.Connect{ClientID: "c", CleanStart: true})
	q, _ := serve("198.51.100.4:4433", true)
	q.connect(&packet.Connect{ClientID: "q", CleanStart: true})
	_, done = serve("198.51.100.4:5555", true)
	<-done
	if got := b.Stats().RefusedPerIP; got != 2 {
		t.Fatalf("RefusedPerIP %d, want 2", got)
	}
}

// TestMaxConnectionsPerIPWebSocketForwarded counts WebSocket clients behind
// a trusted proxy by their X-Forwarded-For address.
func TestMaxConnectionsPerIPWebSocketForwarded(t *testing.T) {
	b := newTestBroker(t, Config{Logger: slog.New(slog.DiscardHandler), Limits: Limits{MaxConnectionsPerIP: 2}})
	l, err := transport.Listen(context.Background(), transport.ListenConfig{
		URL:       "ws://127.0.0.1:0/mqtt",
		WebSocket: transport.WebSocketConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(l)
	<-b.Ready()
	u, err := url.Parse("ws://" + l.Addr().String() + "/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	dial := func(forwarded string) *tclient {
		t.Helper()
		nc, err := transport.Dial(context.Background(), u, transport.DialConfig{Header: http.Header{"X-Forwarded-For": {forwarded}}})
		if err != nil {
			t.Fatal(err)
		}
		return ipTestClient(t, nc, packet.V5)
	}
	dial("203.0.113.7").connect(&packet.Connect{ClientID: "w1", CleanStart: true})
	dial("203.0.113.7").connect(&packet.Connect{ClientID: "w2", CleanStart: true})
	refused := dial("203.0.113.7")
	refused.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := refused.r.ReadPacket(packet.V5); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection from 203.0.113.7: %v, want closed", err)
	}
	dial("203.0.113.8").connect(&packet.Connect{ClientID: "w3", CleanStart: true})
	if got := b.Stats().RefusedPerIP; got != 1 {
		t.Fatalf("RefusedPerIP %d, want 1", got)
	}
	if n := b.ipLimit.connections(netip.MustParseAddr("127.0.0.1")); n != 0 {
		t.Fatalf("the proxy's own address is counted (%d)", n)
	}
}

func TestMaxConnectionsPerIPDefault(t *testing.T) {
	if got := (Config{}).withDefaults().Limits.MaxConnectionsPerIP; got != 1000 {
		t.Fatalf("default %d, want 1000", got)
	}
}
