package broker_test

// Hostile-client tests. Each attack runs against a broker serving a
// loopback TCP listener (net.Listen + Serve) while a well-behaved client,
// the canary, publishes QoS 1 messages to itself and measures each round
// trip. Every test checks that the broker stays up (a panic would end the
// test binary), that the canary keeps working during and after the attack,
// and that the bounds the attack aims at hold: connection counts, queue
// depths, retained counts, memory. The canary's latencies and the memory
// figures are logged (go test -v -run Hostile), never asserted on: the
// machine may be loaded and the tests run with -race.
//
// Helpers are prefixed "hs" so that they cannot collide with the helpers of
// other test files of package broker_test.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/auth"
	"github.com/mqtt5go/mqtt5/internal/testpackets"
	"github.com/mqtt5go/mqtt5/packet"
)

// hsWait bounds every wait: a deadline for conditions that normally hold
// within milliseconds, not a timing assertion.
const hsWait = 20 * time.Second

const mib = 1 << 20

var hsVersions = []packet.Version{packet.V311, packet.V5}

// ---- broker ----

type hsBroker struct {
	*broker.Broker
	addr string
}

// hsStart starts a broker with cfg on a loopback TCP listener; it is shut
// down when the test ends. $SYS is off and logs are discarded unless cfg
// says otherwise.
func hsStart(t *testing.T, cfg broker.Config) *hsBroker {
	t.Helper()
	if cfg.SysInterval == 0 {
		cfg.SysInterval = -1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := broker.New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hsWait)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	<-b.Ready()
	return &hsBroker{Broker: b, addr: l.Addr().String()}
}

// waitConnections waits until the broker counts n network connections.
func (b *hsBroker) waitConnections(t testing.TB, n int64) {
	t.Helper()
	hsPoll(t, fmt.Sprintf("%d connections", n), func() bool { return b.Stats().Connections == n })
}

// hsPoll waits for cond, failing after hsWait.
func hsPoll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hsWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %v: %s", hsWait, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// hsGo runs f on a goroutine; the returned function waits for it and
// returns its error.
func hsGo(f func() error) (wait func() error) {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return func() error { return <-done }
}

// ---- raw client ----

// hsClient is a raw MQTT client over TCP: it sends exactly the bytes or
// packets it is given. The methods returning an error may be used from
// other goroutines; the others fail the test.
type hsClient struct {
	t  testing.TB
	nc net.Conn
	r  *packet.Reader
	v  packet.Version
}

// hsDialFrom connects to addr from the local address local ("" for any).
func hsDialFrom(t testing.TB, addr, local string, v packet.Version) (*hsClient, error) {
	d := net.Dialer{Timeout: hsWait}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { nc.Close() })
	return &hsClient{t: t, nc: nc, r: packet.NewReader(nc, 0), v: v}, nil
}

func hsDial(t testing.TB, addr string, v packet.Version) *hsClient {
	t.Helper()
	c, err := hsDialFrom(t, addr, "", v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *hsClient) write(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(hsWait))
	_, err := c.nc.Write(b)
	return err
}

func (c *hsClient) sendErr(p packet.Packet) error {
	b, err := p.AppendTo(nil, c.v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", p.Type(), err)
	}
	return c.write(b)
}

func (c *hsClient) send(p packet.Packet) {
	c.t.Helper()
	if err := c.sendErr(p); err != nil {
		c.t.Fatalf("send %s: %v", p.Type(), err)
	}
}

func (c *hsClient) writeRaw(b []byte) {
	c.t.Helper()
	if err := c.write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// writeAsync writes b from another goroutine: the broker may stop reading
// (and close) half way through. The error is of no interest.
func (c *hsClient) writeAsync(b []byte) (wait func()) {
	w := hsGo(func() error { return c.write(b) })
	return func() { w() }
}

func (c *hsClient) recvErr() (packet.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(hsWait))
	return c.r.ReadPacket(c.v)
}

func (c *hsClient) recv() packet.Packet {
	c.t.Helper()
	p, err := c.recvErr()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return p
}

func hsRecvAs[T packet.Packet](c *hsClient) T {
	c.t.Helper()
	p := c.recv()
	v, ok := p.(T)
	if !ok {
		var zero T
		c.t.Fatalf("got %s %+v, want %T", p.Type(), p, zero)
	}
	return v
}

// connect sends cp (its version is the client's) and fails unless the
// broker accepts it.
func (c *hsClient) connect(cp *packet.Connect) {
	c.t.Helper()
	if ack := c.connectRaw(cp); ack.ReasonCode != packet.Success {
		c.t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
}

func (c *hsClient) connectRaw(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	cp.Version = c.v
	c.send(cp)
	return hsRecvAs[*packet.Connack](c)
}

func (c *hsClient) connectID(id string) {
	c.t.Helper()
	c.connect(&packet.Connect{ClientID: id, CleanStart: true})
}

func (c *hsClient) subscribe(id uint16, subs ...packet.Subscription) []packet.ReasonCode {
	c.t.Helper()
	c.send(&packet.Subscribe{PacketID: id, Subscriptions: subs})
	sa := hsRecvAs[*packet.Suback](c)
	if sa.PacketID != id || len(sa.ReasonCodes) != len(subs) {
		c.t.Fatalf("SUBACK %+v for %d filters with id %d", sa, len(subs), id)
	}
	return sa.ReasonCodes
}

func (c *hsClient) closeWrite() {
	c.t.Helper()
	if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
		c.t.Fatal(err)
	}
}

// hsClosedErr reports whether err from a read means the peer closed the
// connection (not a deadline).
func hsClosedErr(err error) bool {
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// expectEnd reads until the broker closes the connection. A v5 client
// must get a DISCONNECT with the reason code want (any failure code when
// want is 0) first; when optional, getting nothing is accepted too. A
// 3.1.1 client must get nothing.
func (c *hsClient) expectEnd(want packet.ReasonCode, optional bool) {
	c.t.Helper()
	p, err := c.recvErr()
	if err != nil {
		if !hsClosedErr(err) {
			c.t.Fatalf("connection not closed: %v", err)
		}
		if c.v == packet.V5 && !optional {
			c.t.Fatalf("closed without DISCONNECT (%v), want DISCONNECT %v", err, want)
		}
		return
	}
	d, ok := p.(*packet.Disconnect)
	switch {
	case !ok || c.v != packet.V5:
		c.t.Fatalf("got %s %+v, want the connection closed", p.Type(), p)
	case want != 0 && d.ReasonCode != want:
		c.t.Fatalf("DISCONNECT %#x (%v), want %#x (%v)", byte(d.ReasonCode), d.ReasonCode, byte(want), want)
	case !d.ReasonCode.IsError():
		c.t.Fatalf("DISCONNECT %v, want a failure code", d.ReasonCode)
	}
	if p, err := c.recvErr(); !hsClosedErr(err) {
		c.t.Fatalf("after DISCONNECT: %v %v, want the connection closed", p, err)
	}
}

// readUntilClosed returns the bytes the broker sends until it closes the
// connection. Use it on a client whose packet reader was not used.
func (c *hsClient) readUntilClosed() []byte {
	c.t.Helper()
	var out []byte
	buf := make([]byte, 4096)
	c.nc.SetReadDeadline(time.Now().Add(hsWait))
	for {
		n, err := c.nc.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if !hsClosedErr(err) {
				c.t.Fatalf("connection not closed within %v; received % x", hsWait, out)
			}
			return out
		}
	}
}

// hsCheckRefusal checks what a broker sent to refuse a connection: nothing,
// or exactly one failing CONNACK. It returns the code (0 for nothing) and
// whether the CONNACK has the v5 form.
func hsCheckRefusal(t testing.TB, raw []byte) (rc packet.ReasonCode, v5 bool) {
	t.Helper()
	if len(raw) == 0 {
		return 0, false
	}
	if raw[0] != 0x20 || len(raw) < 4 || int(raw[1])+2 != len(raw) || raw[2] != 0 {
		t.Fatalf("refused connection got % x, want nothing or one CONNACK", raw)
	}
	rc = packet.ReasonCode(raw[3])
	if raw[1] == 2 {
		if rc < 1 || rc > 5 {
			t.Fatalf("3.1.1 CONNACK % x is not a refusal", raw)
		}
		return rc, false
	}
	if !rc.IsError() {
		t.Fatalf("CONNACK % x is not a refusal", raw)
	}
	return rc, true
}

// encodeAll encodes n packets built by mk into batches of about 64 KiB and
// writes them; it returns the first write error.
func (c *hsClient) writeAll(n int, mk func(i int) packet.Packet) error {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	var buf []byte
	for i := range n {
		var err error
		buf, err = mk(i).AppendTo(buf[:0], c.v)
		if err != nil {
			return err
		}
		c.nc.SetWriteDeadline(time.Now().Add(hsWait))
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	c.nc.SetWriteDeadline(time.Now().Add(hsWait))
	return w.Flush()
}

// ---- subscribers that collect on their own goroutine ----

// hsCollector reads PUBLISH packets on its own goroutine, acknowledging
// them when ack is set, and records their payloads (the first 32 bytes).
type hsCollector struct {
	c      *hsClient
	ack    bool
	mu     sync.Mutex
	got    []string
	err    error
	notify chan struct{} // signalled after each message
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func hsCollect(c *hsClient, ack bool) *hsCollector {
	h := &hsCollector{c: c, ack: ack, notify: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	c.nc.SetReadDeadline(time.Time{})
	go h.loop()
	c.t.Cleanup(func() { h.finish() })
	return h
}

func (h *hsCollector) loop() {
	defer close(h.done)
	for {
		p, err := h.c.r.ReadPacket(h.c.v)
		if err != nil {
			select {
			case <-h.stop:
			default:
				h.mu.Lock()
				h.err = err
				h.mu.Unlock()
			}
			return
		}
		pub, ok := p.(*packet.Publish)
		if !ok {
			h.mu.Lock()
			h.err = fmt.Errorf("unexpected %s", p.Type())
			h.mu.Unlock()
			return
		}
		h.mu.Lock()
		h.got = append(h.got, string(pub.Payload[:min(len(pub.Payload), 32)]))
		h.mu.Unlock()
		if h.ack && pub.QoS == 1 {
			h.c.sendErr(&packet.Puback{PacketID: pub.PacketID})
		}
		select {
		case h.notify <- struct{}{}:
		default:
		}
	}
}

// reached waits until n messages arrived; it may be called from any
// goroutine (one at a time).
func (h *hsCollector) reached(n int) error {
	deadline := time.NewTimer(hsWait)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		got, err := len(h.got), h.err
		h.mu.Unlock()
		switch {
		case got >= n:
			return nil
		case err != nil:
			return err
		}
		select {
		case <-h.notify:
		case <-h.done:
		case <-deadline.C:
			return fmt.Errorf("%d messages collected within %v, want %d", got, hsWait, n)
		}
	}
}

func (h *hsCollector) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.got)
}

// waitFor waits until n messages arrived, failing on an error first.
func (h *hsCollector) waitFor(t testing.TB, n int) {
	t.Helper()
	hsPoll(t, fmt.Sprintf("%d messages collected", n), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.err != nil {
			t.Fatalf("collector: %v", h.err)
		}
		return len(h.got) >= n
	})
}

// finish stops the collector and returns what it got.
func (h *hsCollector) finish() []string {
	h.once.Do(func() {
		close(h.stop)
		h.c.nc.SetReadDeadline(time.Now())
		<-h.done
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// ---- the well-behaved client ----

// hsCanary is a well-behaved v5 client that, until finish, publishes a QoS
// 1 message to a topic it subscribes to every 5 ms and records the time
// until it has both the PUBACK and the message back.
type hsCanary struct {
	t     testing.TB
	c     *hsClient
	topic string
	seq   uint32
	lat   []time.Duration
	err   error
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// hsStartCanary connects the canary from local ("" for any address);
// edit, if not nil, changes its CONNECT.
func hsStartCanary(t testing.TB, addr, local string, edit func(*packet.Connect)) *hsCanary {
	t.Helper()
	c, err := hsDialFrom(t, addr, local, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	cp := &packet.Connect{ClientID: "canary", CleanStart: true}
	if edit != nil {
		edit(cp)
	}
	c.connect(cp)
	k := &hsCanary{t: t, c: c, topic: "canary/round-trip", stop: make(chan struct{}), done: make(chan struct{})}
	if rc := c.subscribe(1, packet.Subscription{Filter: k.topic, QoS: 1}); rc[0] != packet.GrantedQoS1 {
		t.Fatalf("canary SUBACK %v", rc)
	}
	go k.loop()
	t.Cleanup(k.halt)
	return k
}

func (k *hsCanary) loop() {
	defer close(k.done)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-tick.C:
		}
		d, err := k.roundTrip()
		if err != nil {
			k.err = err
			return
		}
		k.lat = append(k.lat, d)
	}
}

func (k *hsCanary) roundTrip() (time.Duration, error) {
	k.seq++
	id := uint16(k.seq%65535 + 1)
	want := strconv.FormatUint(uint64(k.seq), 10)
	start := time.Now()
	if err := k.c.sendErr(&packet.Publish{Topic: k.topic, QoS: 1, PacketID: id, Payload: []byte(want)}); err != nil {
		return 0, fmt.Errorf("round trip %d: %w", k.seq, err)
	}
	acked, back := false, false
	for !acked || !back {
		p, err := k.c.recvErr()
		if err != nil {
			return 0, fmt.Errorf("round trip %d: %w", k.seq, err)
		}
		switch p := p.(type) {
		case *packet.Puback:
			if p.PacketID != id || p.ReasonCode.IsError() {
				return 0, fmt.Errorf("round trip %d: PUBACK %+v", k.seq, p)
			}
			acked = true
		case *packet.Publish:
			if string(p.Payload) != want {
				return 0, fmt.Errorf("round trip %d: got message %q", k.seq, p.Payload)
			}
			back = true
			if err := k.c.sendErr(&packet.Puback{PacketID: p.PacketID}); err != nil {
				return 0, err
			}
		default:
			return 0, fmt.Errorf("round trip %d: unexpected %s %+v", k.seq, p.Type(), p)
		}
	}
	return time.Since(start), nil
}

func (k *hsCanary) halt() {
	k.once.Do(func() {
		close(k.stop)
		<-k.done
	})
}

// hsLatency summarises the canary's round trips during an attack.
type hsLatency struct {
	n             int
	p50, p99, max time.Duration
}

func (l hsLatency) String() string {
	return fmt.Sprintf("%d round trips, p50 %v, p99 %v, max %v", l.n,
		l.p50.Round(time.Microsecond), l.p99.Round(time.Microsecond), l.max.Round(time.Microsecond))
}

// finish stops the canary, fails the test if a round trip failed during
// the attack, checks that one more succeeds after it and summarises the
// latencies.
func (k *hsCanary) finish() hsLatency {
	k.t.Helper()
	k.halt()
	if k.err != nil {
		k.t.Fatalf("well-behaved client failed after %d round trips: %v", len(k.lat), k.err)
	}
	d, err := k.roundTrip()
	if err != nil {
		k.t.Fatalf("well-behaved client failed after the attack: %v", err)
	}
	lat := k.lat
	if len(lat) == 0 {
		lat = []time.Duration{d}
	}
	slices.Sort(lat)
	return hsLatency{n: len(k.lat), p50: lat[len(lat)/2], p99: lat[min(len(lat)-1, len(lat)*99/100)], max: lat[len(lat)-1]}
}

// ---- memory ----

// hsMem samples the heap while an attack runs.
type hsMem struct {
	base runtime.MemStats
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

// hsMemFigures are the memory figures of an attack.
type hsMemFigures struct {
	heapBase, heapPeakGrowth, allocated uint64
	rssKiB, hwmKiB                      int64 // -1 when unknown
}

func (f hsMemFigures) String() string {
	s := fmt.Sprintf("heap %.1f MiB before, peak +%.1f MiB, %.1f MiB allocated during the attack",
		float64(f.heapBase)/mib, float64(f.heapPeakGrowth)/mib, float64(f.allocated)/mib)
	if f.rssKiB >= 0 {
		s += fmt.Sprintf("; process RSS %.0f MiB (high-water %.0f MiB)", float64(f.rssKiB)/1024, float64(f.hwmKiB)/1024)
	}
	return s
}

func hsWatchMem(t testing.TB) *hsMem {
	runtime.GC()
	m := &hsMem{stop: make(chan struct{}), done: make(chan struct{})}
	runtime.ReadMemStats(&m.base)
	m.peak.Store(m.base.HeapAlloc)
	go func() {
		defer close(m.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > m.peak.Load() {
				m.peak.Store(ms.HeapAlloc)
			}
		}
	}()
	t.Cleanup(m.halt)
	return m
}

func (m *hsMem) halt() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
}

func (m *hsMem) finish() hsMemFigures {
	m.halt()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	peak := max(m.peak.Load(), ms.HeapAlloc)
	f := hsMemFigures{heapBase: m.base.HeapAlloc, allocated: ms.TotalAlloc - m.base.TotalAlloc, rssKiB: -1, hwmKiB: -1}
	if peak > m.base.HeapAlloc {
		f.heapPeakGrowth = peak - m.base.HeapAlloc
	}
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(st), "\n") {
			k, v, _ := strings.Cut(line, ":")
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			switch {
			case err != nil:
			case k == "VmRSS":
				f.rssKiB = n
			case k == "VmHWM":
				f.hwmKiB = n
			}
		}
	}
	return f
}

// hsReport logs the figures of one attack.
func hsReport(t testing.TB, attack string, l hsLatency, f hsMemFigures) {
	t.Helper()
	t.Logf("%s: well-behaved client: %v; %v", attack, l, f)
}

// ---- attacks ----

// TestHostileMalformedPackets sends every malformed packet of the packet
// catalogue (internal/testpackets) over TCP: a malformed CONNECT gets
// nothing or one failing CONNACK (with the catalogued code when it is a
// CONNACK code); any other malformed packet as the first packet gets the
// connection closed, and on an established connection a v5 DISCONNECT with
// the catalogued reason code (3.1.1: nothing) and the close. Truncated
// packets are followed by a half close (EOF).
func TestHostileMalformedPackets(t *testing.T) {
	b := hsStart(t, broker.Config{})
	k := hsStartCanary(t, b.addr, "", nil)
	mem := hsWatchMem(t)
	sent := 0
	for _, v := range hsVersions {
		for i, e := range testpackets.Malformed(v) {
			typ := packet.Type(e.Bytes[0] >> 4)
			t.Run(v.String()+"/"+e.Name, func(t *testing.T) {
				first := hsDial(t, b.addr, v)
				first.writeRaw(e.Bytes)
				if e.Truncated {
					first.closeWrite()
				}
				rc, v5 := hsCheckRefusal(t, first.readUntilClosed())
				sent++
				if typ == packet.CONNECT {
					if v5 && !e.Truncated && e.Code.ValidFor(packet.CONNACK) && rc != e.Code {
						t.Errorf("CONNACK %#x, want %#x (%v)", byte(rc), byte(e.Code), e.Code)
					}
					return
				}
				if rc != 0 {
					t.Errorf("a first packet that is not CONNECT got CONNACK %v", rc)
				}
				c := hsDial(t, b.addr, v)
				c.connectID(fmt.Sprintf("malformed-%d", i))
				c.writeRaw(e.Bytes)
				sent++
				if e.Truncated {
					c.closeWrite()
					c.expectEnd(0, true)
					return
				}
				want := packet.ReasonCode(0)
				if hsClientToServer(typ) && e.Code.ValidFor(packet.DISCONNECT) {
					want = e.Code
				}
				c.expectEnd(want, false)
			})
		}
	}
	b.waitConnections(t, 1)
	hsReport(t, fmt.Sprintf("%d malformed packets", sent), k.finish(), mem.finish())
}

func hsClientToServer(t packet.Type) bool {
	switch t {
	case packet.CONNECT, packet.PUBLISH, packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP,
		packet.SUBSCRIBE, packet.UNSUBSCRIBE, packet.PINGREQ, packet.DISCONNECT, packet.AUTH:
		return true
	}
	return false
}

// TestHostileHugeRemainingLength sends packets whose Remaining Length
// claims 256 MiB (268,435,455 bytes, the largest encodable), from 40
// connections at once, each followed by 64 KiB: established connections
// get DISCONNECT Packet Too Large (0x95; 3.1.1: closed), a CONNECT that
// large is closed. The broker must refuse from the fixed header without
// allocating the body: the heap grows by less than 32 MiB and less than 32
// MiB are allocated in all (10 GiB were claimed).
func TestHostileHugeRemainingLength(t *testing.T) {
	b := hsStart(t, broker.Config{})
	k := hsStartCanary(t, b.addr, "", nil)
	mem := hsWatchMem(t)
	junk := bytes.Repeat([]byte("x"), 64<<10)
	hugePublish := append([]byte{0x32, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01, 't', 0x00, 0x01}, junk...)
	hugeConnect := append([]byte{0x10, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05}, junk...)
	const each = 10
	type attacker struct {
		c       *hsClient
		connect bool
	}
	var as []attacker
	for _, v := range hsVersions {
		for i := range each {
			c := hsDial(t, b.addr, v)
			c.connectID(fmt.Sprintf("huge-%v-%d", v, i))
			as = append(as, attacker{c, false})
			as = append(as, attacker{hsDial(t, b.addr, v), true})
		}
	}
	var waits []func()
	for _, a := range as {
		if a.connect {
			waits = append(waits, a.c.writeAsync(hugeConnect))
		} else {
			waits = append(waits, a.c.writeAsync(hugePublish))
		}
	}
	for _, a := range as {
		if a.connect {
			if rc, v5 := hsCheckRefusal(t, a.c.readUntilClosed()); v5 && rc != packet.PacketTooLarge {
				t.Errorf("huge CONNECT: CONNACK %v, want nothing or Packet Too Large", rc)
			}
			continue
		}
		a.c.expectEnd(packet.PacketTooLarge, false)
	}
	for _, w := range waits {
		w()
	}
	b.waitConnections(t, 1)
	f := mem.finish()
	hsReport(t, fmt.Sprintf("%d packets claiming 256 MiB", len(as)), k.finish(), f)
	if f.heapPeakGrowth >= 32*mib || f.allocated >= 32*mib {
		t.Errorf("memory: %v; want less than 32 MiB of growth and of allocation", f)
	}
}

// TestHostileSlowlorisAndSilentConnections opens 20 connections that send
// a CONNECT one byte every 100 ms (the whole packet would take 6 s)
// and 20 that send nothing, with ConnectTimeout 300 ms: every one is
// closed without a CONNACK (each is waited for until closed), and the
// broker's connection count returns to the canary alone.
func TestHostileSlowlorisAndSilentConnections(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b := hsStart(t, broker.Config{ConnectTimeout: timeout})
	k := hsStartCanary(t, b.addr, "", nil)
	mem := hsWatchMem(t)
	connect, err := (&packet.Connect{Version: packet.V5, ClientID: strings.Repeat("s", 40), CleanStart: true}).AppendTo(nil, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		slow     bool
		received int
		after    time.Duration
		err      error
	}
	const each = 20
	results := make(chan result, 2*each)
	var drips sync.WaitGroup
	for i := range 2 * each {
		c := hsDial(t, b.addr, packet.V5)
		start := time.Now()
		slow := i%2 == 0
		closed := make(chan struct{})
		if slow {
			drips.Add(1)
			go func() {
				defer drips.Done()
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for _, by := range connect {
					select {
					case <-closed:
						return
					case <-tick.C:
					}
					if c.write([]byte{by}) != nil {
						return
					}
				}
			}()
		}
		go func() {
			defer close(closed)
			buf := make([]byte, 256)
			n := 0
			c.nc.SetReadDeadline(time.Now().Add(hsWait))
			for {
				m, err := c.nc.Read(buf)
				n += m
				if err != nil {
					results <- result{slow, n, time.Since(start), err}
					return
				}
			}
		}()
	}
	var slowAfter, silentAfter []time.Duration
	for range 2 * each {
		r := <-results
		if !hsClosedErr(r.err) {
			t.Errorf("connection (slow %v) not closed within %v", r.slow, hsWait)
		}
		if r.received != 0 {
			t.Errorf("connection (slow %v) received %d bytes before it was closed", r.slow, r.received)
		}
		if r.slow {
			slowAfter = append(slowAfter, r.after)
		} else {
			silentAfter = append(silentAfter, r.after)
		}
	}
	drips.Wait()
	b.waitConnections(t, 1)
	slices.Sort(slowAfter)
	slices.Sort(silentAfter)
	t.Logf("ConnectTimeout %v: slowloris connections closed after %v..%v, silent ones after %v..%v",
		timeout, slowAfter[0].Round(time.Millisecond), slowAfter[len(slowAfter)-1].Round(time.Millisecond),
		silentAfter[0].Round(time.Millisecond), silentAfter[len(silentAfter)-1].Round(time.Millisecond))
	hsReport(t, fmt.Sprintf("%d slowloris and %d silent connections", each, each), k.finish(), mem.finish())
}

// TestHostileConnectionFloodFromOneAddress opens 200 connections from
// 127.0.0.1 with MaxConnectionsPerIP 50 while the canary is connected from
// 127.0.0.2: exactly 50 get a CONNACK, the 150 others are closed unread
// and counted in Stats().RefusedPerIP; closing 10 makes room for exactly
// 10 more.
func TestHostileConnectionFloodFromOneAddress(t *testing.T) {
	const limit, total = 50, 200
	b := hsStart(t, broker.Config{Limits: broker.Limits{MaxConnectionsPerIP: limit}})
	canaryFrom, slots := "127.0.0.2", limit
	if c, err := hsDialFrom(t, b.addr, canaryFrom, packet.V5); err != nil {
		t.Logf("cannot connect from %s (%v): the canary takes one of 127.0.0.1's connections", canaryFrom, err)
		canaryFrom, slots = "127.0.0.1", limit-1
	} else {
		c.nc.Close()
		b.waitConnections(t, 0)
	}
	k := hsStartCanary(t, b.addr, canaryFrom, nil)
	mem := hsWatchMem(t)
	// connectAll connects n clients from 127.0.0.1, returning those that
	// got a CONNACK and the number closed unanswered.
	seq := 0
	connectAll := func(n int) (accepted []*hsClient, refused int) {
		t.Helper()
		var cs []*hsClient
		for range n {
			c, err := hsDialFrom(t, b.addr, "127.0.0.1", packet.V5)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		for _, c := range cs {
			seq++
			if err := c.sendErr(&packet.Connect{Version: packet.V5, ClientID: fmt.Sprintf("flood-%d", seq), CleanStart: true}); err != nil {
				refused++
				continue
			}
			p, err := c.recvErr()
			switch {
			case err == nil:
				if ack, ok := p.(*packet.Connack); !ok || ack.ReasonCode != packet.Success {
					t.Fatalf("got %v, want CONNACK Success or the connection closed", p)
				}
				accepted = append(accepted, c)
			case hsClosedErr(err):
				refused++
			default:
				t.Fatalf("connection neither accepted nor closed: %v", err)
			}
		}
		return accepted, refused
	}
	accepted, refused := connectAll(total)
	if len(accepted) != slots || refused != total-slots {
		t.Fatalf("%d accepted and %d refused, want %d and %d", len(accepted), refused, slots, total-slots)
	}
	if st := b.Stats(); st.RefusedPerIP != int64(total-slots) || st.Connections != limit+1 {
		t.Fatalf("Stats: RefusedPerIP %d, Connections %d; want %d and %d", st.RefusedPerIP, st.Connections, total-slots, limit+1)
	}
	for _, c := range accepted[:10] {
		c.nc.Close()
	}
	b.waitConnections(t, limit+1-10)
	more, refusedMore := connectAll(11)
	if len(more) != 10 || refusedMore != 1 {
		t.Fatalf("after 10 closed: %d accepted and %d refused, want 10 and 1", len(more), refusedMore)
	}
	if got := b.Stats().RefusedPerIP; got != int64(total-slots+1) {
		t.Fatalf("RefusedPerIP %d, want %d", got, total-slots+1)
	}
	hsReport(t, fmt.Sprintf("%d connections from one address (limit %d)", total+11, limit), k.finish(), mem.finish())
}

// TestHostileSubscribeFlood sends, per protocol version, 5,000 SUBSCRIBE
// packets of one new filter each, and one SUBSCRIBE of 10,000 filters:
// each session gets exactly MaxSubscriptionsPerClient (default 1,000)
// filters granted and Quota Exceeded (0x97; 3.1.1: 0x80) for the others.
func TestHostileSubscribeFlood(t *testing.T) {
	const limit, flood, wide = 1000, 5000, 10000
	b := hsStart(t, broker.Config{})
	k := hsStartCanary(t, b.addr, "", nil)
	mem := hsWatchMem(t)
	for _, v := range hsVersions {
		refusal := packet.QuotaExceeded
		if v == packet.V311 {
			refusal = packet.V3SubackFailure
		}
		count := func(codes []packet.ReasonCode) (granted, refused int) {
			for _, rc := range codes {
				switch rc {
				case packet.GrantedQoS1:
					granted++
				case refusal:
					refused++
				default:
					t.Fatalf("%v: SUBACK code %v", v, rc)
				}
			}
			return
		}
		c := hsDial(t, b.addr, v)
		c.connectID("sub-flood-" + v.String())
		wait := hsGo(func() error {
			return c.writeAll(flood, func(i int) packet.Packet {
				return &packet.Subscribe{PacketID: uint16(i + 1), Subscriptions: []packet.Subscription{{Filter: "flood/" + strconv.Itoa(i), QoS: 1}}}
			})
		})
		var codes []packet.ReasonCode
		for range flood {
			codes = append(codes, hsRecvAs[*packet.Suback](c).ReasonCodes...)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		if g, r := count(codes); g != limit || r != flood-limit {
			t.Fatalf("%v: %d SUBSCRIBE packets: %d granted, %d refused; want %d and %d", v, flood, g, r, limit, flood-limit)
		}
		c2 := hsDial(t, b.addr, v)
		c2.connectID("sub-wide-" + v.String())
		subs := make([]packet.Subscription, wide)
		for i := range subs {
			subs[i] = packet.Subscription{Filter: "wide/" + strconv.Itoa(i), QoS: 1}
		}
		if g, r := count(c2.subscribe(1, subs...)); g != limit || r != wide-limit {
			t.Fatalf("%v: one SUBSCRIBE of %d filters: %d granted, %d refused; want %d and %d", v, wide, g, r, limit, wide-limit)
		}
	}
	if got, most := b.Stats().Subscriptions, int64(4*limit+1); got > most {
		t.Fatalf("%d subscriptions in the router, want at most %d", got, most)
	}
	hsReport(t, fmt.Sprintf("subscribe flood (2×%d SUBSCRIBE, 2×%d filters in one)", flood, wide), k.finish(), mem.finish())
}

// TestHostileTopicBombs sends topic names and filters of 10,000 levels
// (refused by MaxTopicLevels, default 128: SUBACK Topic Filter Invalid
// 0x8F, 3.1.1 0x80; PUBLISH: DISCONNECT Topic Name Invalid 0x90, 3.1.1
// closed), a 65,535-byte filter to a broker with MaxTopicLength 1024
// (refused, 0x8F) and a SUBSCRIBE whose filter runs 100 bytes past the
// 65,535 its length field can say (the surplus is read as the
// subscription options, whose reserved bits are set: DISCONNECT Malformed
// Packet 0x81, 3.1.1 closed). A 65,535-byte single-level filter is within
// the default limits and granted.
func TestHostileTopicBombs(t *testing.T) {
	b := hsStart(t, broker.Config{})
	short := hsStart(t, broker.Config{Limits: broker.Limits{MaxTopicLength: 1024}})
	k := hsStartCanary(t, b.addr, "", nil)
	mem := hsWatchMem(t)
	levels := strings.TrimSuffix(strings.Repeat("a/", 10000), "/")
	wildLevels := strings.TrimSuffix(strings.Repeat("+/", 10000), "/")
	longest := strings.Repeat("x", 65535)
	for _, v := range hsVersions {
		refused := packet.TopicFilterInvalid
		if v == packet.V311 {
			refused = packet.V3SubackFailure
		}
		c := hsDial(t, b.addr, v)
		c.connectID("topic-bomb-" + v.String())
		codes := c.subscribe(1, packet.Subscription{Filter: levels, QoS: 1}, packet.Subscription{Filter: wildLevels, QoS: 1},
			packet.Subscription{Filter: longest, QoS: 1})
		if codes[0] != refused || codes[1] != refused || codes[2] != packet.GrantedQoS1 {
			t.Fatalf("%v: SUBACK %v, want %v, %v and granted QoS 1", v, codes, refused, refused)
		}
		cs := hsDial(t, short.addr, v)
		cs.connectID("topic-long-" + v.String())
		if codes := cs.subscribe(1, packet.Subscription{Filter: longest, QoS: 1}); codes[0] != refused {
			t.Fatalf("%v: 65,535-byte filter over MaxTopicLength 1024: SUBACK %v, want %v", v, codes, refused)
		}
		cs.send(&packet.Publish{Topic: longest, QoS: 1, PacketID: 1})
		cs.expectEnd(packet.TopicNameInvalid, false)

		// A filter longer than its length field can say.
		body := []byte{0x00, 0x01} // packet identifier
		if v == packet.V5 {
			body = append(body, 0x00) // no properties
		}
		body = append(body, 0xff, 0xff)
		body = append(body, bytes.Repeat([]byte("a"), 65535+100)...)
		raw := append([]byte{0x82}, packet.AppendVarint(nil, uint32(len(body)))...)
		wait := c.writeAsync(append(raw, body...))
		c.expectEnd(packet.MalformedPacket, false)
		wait()

		p := hsDial(t, b.addr, v)
		p.connectID("topic-levels-" + v.String())
		p.send(&packet.Publish{Topic: levels, QoS: 1, PacketID: 1})
		p.expectEnd(packet.TopicNameInvalid, false)
	}
	b.waitConnections(t, 1)
	hsReport(t, "topic bombs (10,000 levels, 65,535+ bytes)", k.finish(), mem.finish())
}

// TestHostilePropertyBombs publishes 50 messages carrying 10,000 User
// Properties each (70 KB, within the default 1 MiB Maximum Packet Size):
// each is delivered, properties intact to a v5 subscriber and without them
// to a 3.1.1 one; one carrying 200,000 (1.4 MB) gets DISCONNECT Packet Too
// Large (0x95); a CONNECT with 10,000 User Properties is accepted. The
// heap grows by less than 64 MiB.
func TestHostilePropertyBombs(t *testing.T) {
	b := hsStart(t, broker.Config{})
	k := hsStartCanary(t, b.addr, "", nil)
	mem := hsWatchMem(t)
	user := make([]packet.UserProperty, 10000)
	for i := range user {
		user[i] = packet.UserProperty{Key: "k", Value: "v"}
	}
	sub5 := hsDial(t, b.addr, packet.V5)
	sub5.connectID("props-sub5")
	sub5.subscribe(1, packet.Subscription{Filter: "bomb", QoS: 1})
	sub3 := hsDial(t, b.addr, packet.V311)
	sub3.connectID("props-sub3")
	sub3.subscribe(1, packet.Subscription{Filter: "bomb", QoS: 1})
	pub := hsDial(t, b.addr, packet.V5)
	cp := &packet.Connect{ClientID: "props-pub", CleanStart: true}
	cp.Props.User = user
	pub.connect(cp)
	const rounds = 50
	for i := 1; i <= rounds; i++ {
		p := &packet.Publish{Topic: "bomb", QoS: 1, PacketID: uint16(i), Payload: []byte(strconv.Itoa(i))}
		p.Props.User = user
		pub.send(p)
		if a := hsRecvAs[*packet.Puback](pub); a.PacketID != uint16(i) || a.ReasonCode.IsError() {
			t.Fatalf("PUBACK %+v", a)
		}
		for _, s := range []*hsClient{sub5, sub3} {
			got := hsRecvAs[*packet.Publish](s)
			if string(got.Payload) != strconv.Itoa(i) {
				t.Fatalf("%v subscriber got %q, want %d", s.v, got.Payload, i)
			}
			if s.v == packet.V5 && len(got.Props.User) != len(user) {
				t.Fatalf("v5 subscriber got %d User Properties, want %d", len(got.Props.User), len(user))
			}
			s.send(&packet.Puback{PacketID: got.PacketID})
		}
	}
	huge := make([]packet.UserProperty, 200000)
	for i := range huge {
		huge[i] = packet.UserProperty{Key: "k", Value: "v"}
	}
	p := &packet.Publish{Topic: "bomb", QoS: 1, PacketID: 1}
	p.Props.User = huge
	buf, err := p.AppendTo(nil, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	wait := pub.writeAsync(buf)
	pub.expectEnd(packet.PacketTooLarge, false)
	wait()
	f := mem.finish()
	hsReport(t, fmt.Sprintf("%d messages of 10,000 User Properties, one of 200,000", rounds), k.finish(), f)
	if f.heapPeakGrowth >= 64*mib {
		t.Errorf("memory: %v; want less than 64 MiB of heap growth", f)
	}
}

// TestHostileQoS2PacketIDExhaustion sends 65,535 QoS 2 PUBLISH packets
// (every packet identifier) without ever sending PUBREL. From a v5 client,
// the broker acknowledges Receive Maximum (1,024) of them and then sends
// DISCONNECT Receive Maximum Exceeded (0x93); every acknowledged one was
// delivered. From a 3.1.1 client, which has no Receive Maximum, all 65,535
// are acknowledged with PUBREC, then completed by PUBREL/PUBCOMP, and every
// one reaches the subscriber exactly once: none is lost. (The subscriber's
// queue is made large enough to hold them, so that any loss would be the
// broker's, not the documented overflow of a slow subscriber's queue.)
func TestHostileQoS2PacketIDExhaustion(t *testing.T) {
	const ids = 65535
	b := hsStart(t, broker.Config{Queue: broker.QueueConfig{MaxMessages: 2 * ids}})
	k := hsStartCanary(t, b.addr, "", nil)
	mem := hsWatchMem(t)
	publish := func(i int) packet.Packet {
		return &packet.Publish{Topic: "qos2", QoS: 2, PacketID: uint16(i + 1), Payload: []byte(strconv.Itoa(i))}
	}

	// v5: Receive Maximum.
	sub := hsDial(t, b.addr, packet.V5)
	sub.connectID("qos2-sub5")
	sub.subscribe(1, packet.Subscription{Filter: "qos2", QoS: 1})
	got := hsCollect(sub, true)
	pub := hsDial(t, b.addr, packet.V5)
	pub.connectID("qos2-pub5")
	wait := hsGo(func() error { return pub.writeAll(ids, publish) })
	pubrecs := 0
	for {
		p := pub.recv()
		if rec, ok := p.(*packet.Pubrec); ok {
			if rec.PacketID != uint16(pubrecs+1) || rec.ReasonCode.IsError() {
				t.Fatalf("PUBREC %+v after %d", rec, pubrecs)
			}
			pubrecs++
			continue
		}
		d, ok := p.(*packet.Disconnect)
		if !ok || d.ReasonCode != packet.ReceiveMaximumExceeded {
			t.Fatalf("after %d PUBREC: %s %+v, want DISCONNECT Receive Maximum Exceeded", pubrecs, p.Type(), p)
		}
		break
	}
	if _, err := pub.recvErr(); !hsClosedErr(err) {
		t.Fatalf("after DISCONNECT: %v", err)
	}
	wait()
	if pubrecs != 1024 {
		t.Fatalf("%d PUBREC before DISCONNECT, want Receive Maximum (1024)", pubrecs)
	}
	got.waitFor(t, pubrecs)
	if n := len(got.finish()); n != pubrecs {
		t.Fatalf("subscriber got %d messages, want %d", n, pubrecs)
	}
	l5, f5 := k.finish(), mem.finish()
	hsReport(t, "v5: 65,535 unreleased QoS 2 PUBLISH", l5, f5)

	// 3.1.1: no Receive Maximum; nothing may be lost.
	k = hsStartCanary(t, b.addr, "", func(cp *packet.Connect) { cp.ClientID = "canary-2" })
	mem = hsWatchMem(t)
	sub = hsDial(t, b.addr, packet.V5)
	sub.connectID("qos2-sub3")
	sub.subscribe(1, packet.Subscription{Filter: "qos2", QoS: 1})
	got = hsCollect(sub, true)
	pub = hsDial(t, b.addr, packet.V311)
	pub.connectID("qos2-pub3")
	wait = hsGo(func() error { return pub.writeAll(ids, publish) })
	seen := make([]bool, ids+1)
	for range ids {
		rec := hsRecvAs[*packet.Pubrec](pub)
		if seen[rec.PacketID] {
			t.Fatalf("PUBREC %d twice", rec.PacketID)
		}
		seen[rec.PacketID] = true
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wait = hsGo(func() error {
		return pub.writeAll(ids, func(i int) packet.Packet { return &packet.Pubrel{PacketID: uint16(i + 1)} })
	})
	for range ids {
		hsRecvAs[*packet.Pubcomp](pub)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, ids)
	msgs := got.finish()
	distinct := map[string]bool{}
	for _, m := range msgs {
		distinct[m] = true
	}
	if len(msgs) != ids || len(distinct) != ids {
		t.Fatalf("subscriber got %d messages, %d distinct; want %d", len(msgs), len(distinct), ids)
	}
	if d := b.Stats().Dropped["queue_full"]; d != 0 {
		t.Fatalf("%d messages dropped", d)
	}
	hsReport(t, "3.1.1: 65,535 unreleased QoS 2 PUBLISH, then released", k.finish(), mem.finish())
}

// TestHostileSlowSubscribers publishes 5,000 QoS 1 messages of 4 KiB (20
// MiB, more than the socket buffers hold) to three subscribers: one that
// never reads its socket, one that reads but never acknowledges (Receive
// Maximum 10), and a good one. With Queue.MaxMessages 1,000 and
// Queue.MaxBytes 1 MiB, the two bad subscribers' queues never exceed their
// bounds (sampled every millisecond), the excess is dropped and counted,
// the publisher gets every PUBACK, and the good subscriber gets every
// message in order. The publisher stays at most 64 messages ahead of the
// good subscriber (a publisher paced by its consumer), so that the good
// subscriber's own queue, under the same small bounds, never overflows
// whatever the speed of the machine: only the bad subscribers fall behind.
func TestHostileSlowSubscribers(t *testing.T) {
	const n, size, maxMsgs, maxBytes = 5000, 4 << 10, 1000, 1 << 20
	b := hsStart(t, broker.Config{Queue: broker.QueueConfig{MaxMessages: maxMsgs, MaxBytes: maxBytes}})
	k := hsStartCanary(t, b.addr, "", nil)
	mem := hsWatchMem(t)
	deaf := hsDial(t, b.addr, packet.V5)
	deaf.connectID("never-reads")
	deaf.subscribe(1, packet.Subscription{Filter: "feed", QoS: 1})
	mute := hsDial(t, b.addr, packet.V5)
	cp := &packet.Connect{ClientID: "never-acks", CleanStart: true}
	cp.Props.ReceiveMaximum = 10
	mute.connect(cp)
	mute.subscribe(1, packet.Subscription{Filter: "feed", QoS: 1})
	muteGot := hsCollect(mute, false)
	good := hsDial(t, b.addr, packet.V5)
	good.connectID("good")
	good.subscribe(1, packet.Subscription{Filter: "feed", QoS: 1})
	goodGot := hsCollect(good, true)

	type depth struct {
		msgs  int
		bytes int64
	}
	var peakMu sync.Mutex
	peak := map[string]depth{}
	stopSampling := make(chan struct{})
	sampled := hsGo(func() error {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return nil
			case <-tick.C:
			}
			for _, id := range []string{"never-reads", "never-acks"} {
				m, by, _, ok := b.SessionQueueForTest(id)
				if !ok {
					return fmt.Errorf("session %s gone", id)
				}
				peakMu.Lock()
				p := peak[id]
				peak[id] = depth{max(p.msgs, m), max(p.bytes, by)}
				peakMu.Unlock()
			}
		}
	})

	pub := hsDial(t, b.addr, packet.V5)
	pub.connectID("feeder")
	const ahead = 64
	wait := hsGo(func() error {
		payload := make([]byte, size)
		var buf []byte
		for i := range n {
			if err := goodGot.reached(i - ahead); err != nil {
				return err
			}
			copy(payload, fmt.Sprintf("%08d", i))
			var err error
			buf, err = (&packet.Publish{Topic: "feed", QoS: 1, PacketID: uint16(i + 1), Payload: payload}).AppendTo(buf[:0], packet.V5)
			if err != nil {
				return err
			}
			if err := pub.write(buf); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range n {
		if a := hsRecvAs[*packet.Puback](pub); a.PacketID != uint16(i+1) || a.ReasonCode.IsError() {
			t.Fatalf("PUBACK %+v, want %d Success", a, i+1)
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	goodGot.waitFor(t, n)
	close(stopSampling)
	if err := sampled(); err != nil {
		t.Fatal(err)
	}
	for i, m := range goodGot.finish() {
		if want := fmt.Sprintf("%08d", i); m[:8] != want {
			t.Fatalf("good subscriber: message %d is %q, want %s", i, m[:8], want)
		}
	}
	for id, p := range peak {
		m, by, inflight, _ := b.SessionQueueForTest(id)
		t.Logf("%s: queue peak %d messages / %.2f MiB; now %d / %.2f MiB, %d in flight", id, p.msgs, float64(p.bytes)/mib, m, float64(by)/mib, inflight)
		if p.msgs > maxMsgs || p.bytes > maxBytes {
			t.Errorf("%s: queue reached %d messages / %d bytes, bounds %d / %d", id, p.msgs, p.bytes, maxMsgs, maxBytes)
		}
	}
	dropped := b.Stats().Dropped["queue_full"]
	t.Logf("never-acks received %d messages; %d dropped (queue_full)", muteGot.count(), dropped)
	if dropped == 0 {
		t.Error("no message counted as dropped")
	}
	hsReport(t, fmt.Sprintf("%d×4 KiB to a subscriber that never reads and one that never acknowledges", n), k.finish(), mem.finish())
}

// TestHostileNonReaderDisconnected publishes 4 KiB QoS 0 messages, as
// fast as the publisher can, to a subscriber that never reads its socket,
// with WriteTimeout 300 ms: once the socket buffers are full the broker's
// write to it blocks, and the broker disconnects it (its session, which
// has no expiry, ends); the publisher is never blocked by it.
func TestHostileNonReaderDisconnected(t *testing.T) {
	b := hsStart(t, broker.Config{WriteTimeout: 300 * time.Millisecond})
	k := hsStartCanary(t, b.addr, "", nil)
	mem := hsWatchMem(t)
	deaf := hsDial(t, b.addr, packet.V5)
	deaf.connectID("never-reads")
	deaf.subscribe(1, packet.Subscription{Filter: "feed", QoS: 1})
	pub := hsDial(t, b.addr, packet.V5)
	pub.connectID("feeder")
	stop := make(chan struct{})
	var published atomic.Int64
	wait := hsGo(func() error {
		buf, err := (&packet.Publish{Topic: "feed", Payload: make([]byte, 4<<10)}).AppendTo(nil, packet.V5)
		if err != nil {
			return err
		}
		for {
			select {
			case <-stop:
				return nil
			default:
			}
			if err := pub.write(buf); err != nil {
				return err
			}
			published.Add(1)
		}
	})
	hsPoll(t, "the subscriber that never reads disconnected", func() bool {
		_, _, _, ok := b.SessionQueueForTest("never-reads")
		return !ok
	})
	close(stop)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	pub.send(&packet.Pingreq{})
	hsRecvAs[*packet.Pingresp](pub)
	st := b.Stats()
	t.Logf("published %d messages (%.0f MiB) before the subscriber was disconnected; dropped %v", published.Load(),
		float64(published.Load())*4/1024, st.Dropped)
	hsReport(t, "a subscriber that never reads, WriteTimeout 300 ms", k.finish(), mem.finish())
}

// TestHostileRetainedBomb publishes 1,000 retained messages of 1 KiB on
// distinct topics with MaxRetainedMessages 100 and MaxRetainedBytes 256
// KiB: exactly 100 are retained, the others are still delivered live and
// acknowledged with success (the documented policy: beyond a bound a
// message is not retained). Replacing the 100 with 8 KiB messages stops at
// the byte bound (the old message stays). A new subscriber gets exactly
// the retained set; deleting retained messages makes room again.
func TestHostileRetainedBomb(t *testing.T) {
	const n, maxMsgs, maxBytes = 1000, 100, 256 << 10
	b := hsStart(t, broker.Config{Limits: broker.Limits{MaxRetainedMessages: maxMsgs, MaxRetainedBytes: maxBytes}})
	k := hsStartCanary(t, b.addr, "", nil)
	mem := hsWatchMem(t)
	live := hsDial(t, b.addr, packet.V5)
	live.connectID("retained-live")
	live.subscribe(1, packet.Subscription{Filter: "r/#", QoS: 1})
	liveGot := hsCollect(live, true)
	pub := hsDial(t, b.addr, packet.V5)
	pub.connectID("retained-bomb")
	publishAll := func(count, size int, topic func(i int) string) {
		t.Helper()
		payload := bytes.Repeat([]byte("r"), size)
		wait := hsGo(func() error {
			return pub.writeAll(count, func(i int) packet.Packet {
				return &packet.Publish{Topic: topic(i), QoS: 1, Retain: true, PacketID: uint16(i + 1), Payload: payload}
			})
		})
		for range count {
			if a := hsRecvAs[*packet.Puback](pub); a.ReasonCode.IsError() {
				t.Fatalf("PUBACK %+v", a)
			}
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(stage string, wantCount int64) {
		t.Helper()
		st, by := b.Stats(), b.RetainedBytesForTest()
		t.Logf("%s: %d retained messages, %d bytes", stage, st.Retained, by)
		if st.Retained != wantCount || by > maxBytes {
			t.Fatalf("%s: %d retained messages of %d bytes; want %d and at most %d bytes", stage, st.Retained, by, wantCount, maxBytes)
		}
	}
	publishAll(n, 1024, func(i int) string { return "r/" + strconv.Itoa(i) })
	check("1,000 topics", maxMsgs)
	liveGot.waitFor(t, n)
	publishAll(maxMsgs, 8<<10, func(i int) string { return "r/" + strconv.Itoa(i) })
	check("replaced by 8 KiB", maxMsgs)
	liveGot.waitFor(t, n+maxMsgs)

	late := hsDial(t, b.addr, packet.V5)
	late.connectID("retained-late")
	late.subscribe(1, packet.Subscription{Filter: "r/#", QoS: 0})
	for range maxMsgs {
		if p := hsRecvAs[*packet.Publish](late); !p.Retain {
			t.Fatalf("late subscriber got a message without RETAIN: %q", p.Topic)
		}
	}
	publishAll(maxMsgs/2, 0, func(i int) string { return "r/" + strconv.Itoa(i) })
	check("half deleted", maxMsgs/2)
	publishAll(1, 10, func(int) string { return "r/new" })
	check("one more", maxMsgs/2+1)
	hsReport(t, fmt.Sprintf("retained bomb (%d topics, limit %d messages / %d KiB)", n, maxMsgs, maxBytes>>10), k.finish(), mem.finish())
}

// TestHostileAuthBruteForce guesses alice's password 50 times from
// 127.0.0.1 against auth.RateLimit (5 failures lock out for a minute) over
// an authenticator that counts its calls: the first 5 guesses reach it and
// get Bad User Name or Password (0x86), every later attempt, the right
// password included and 3.1.1 attempts (return code 5), gets Banned
// (0x8A) without calling it. Another user from another address still
// connects, and the canary, connected before, keeps working.
func TestHostileAuthBruteForce(t *testing.T) {
	var aliceCalls atomic.Int64
	inner := broker.AuthenticatorFunc(func(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
		user, pass := req.Client.Username, string(req.Password)
		if user == "alice" {
			aliceCalls.Add(1)
		}
		if (user == "alice" && pass == "right") || (user == "bob" && pass == "bob's") || (user == "canary" && pass == "canary's") {
			return broker.AuthResult{Code: packet.Success}
		}
		return broker.AuthResult{Code: packet.BadUserNameOrPassword}
	})
	quiet := slog.New(slog.DiscardHandler)
	b := hsStart(t, broker.Config{Authenticator: auth.RateLimit(inner, auth.RateLimitConfig{
		MaxFailures: 5, Window: time.Minute, Lockout: time.Minute, Logger: quiet})})
	canaryFrom := "127.0.0.2"
	if c, err := hsDialFrom(t, b.addr, canaryFrom, packet.V5); err != nil {
		canaryFrom = ""
	} else {
		c.nc.Close()
	}
	k := hsStartCanary(t, b.addr, canaryFrom, func(cp *packet.Connect) {
		cp.Username, cp.Password = "canary", []byte("canary's")
	})
	mem := hsWatchMem(t)
	attempt := func(local string, v packet.Version, user, pass string) packet.ReasonCode {
		t.Helper()
		c, err := hsDialFrom(t, b.addr, local, v)
		if err != nil {
			t.Fatal(err)
		}
		ack := c.connectRaw(&packet.Connect{ClientID: "guess", CleanStart: true, Username: user, Password: []byte(pass)})
		if ack.ReasonCode != packet.Success {
			c.expectEnd(0, true)
		}
		c.nc.Close()
		return ack.ReasonCode
	}
	const guesses = 50
	codes := map[packet.ReasonCode]int{}
	for i := range guesses {
		codes[attempt("127.0.0.1", packet.V5, "alice", "guess-"+strconv.Itoa(i))]++
	}
	if codes[packet.BadUserNameOrPassword] != 5 || codes[packet.Banned] != guesses-5 || aliceCalls.Load() != 5 {
		t.Fatalf("%d guesses: reason codes %v, authenticator called %d times; want 5 × 0x86, %d × 0x8A, 5 calls",
			guesses, codes, aliceCalls.Load(), guesses-5)
	}
	if rc := attempt("127.0.0.1", packet.V5, "alice", "right"); rc != packet.Banned {
		t.Fatalf("right password during the lockout: %v, want Banned", rc)
	}
	if rc := attempt("127.0.0.1", packet.V311, "alice", "right"); rc != packet.V3NotAuthorized {
		t.Fatalf("3.1.1 during the lockout: return code %d, want 5", rc)
	}
	if aliceCalls.Load() != 5 {
		t.Fatalf("authenticator called %d times, want 5: the lockout must not consult it", aliceCalls.Load())
	}
	if canaryFrom != "" {
		if rc := attempt(canaryFrom, packet.V5, "bob", "bob's"); rc != packet.Success {
			t.Fatalf("another user from another address: %v", rc)
		}
	}
	hsReport(t, fmt.Sprintf("password guessing (%d attempts)", guesses+2), k.finish(), mem.finish())
}
