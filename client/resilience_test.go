package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

func TestManualAck(t *testing.T) {
	b := startBroker(t)
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			col := newCollector()
			tp := "manual/" + v.String()
			o := Options{Server: b.url(), Version: v, ManualAck: true}
			if v == packet.V5 {
				o.ReceiveMaximum = 2
			}
			sub, _ := connect(t, o)
			if _, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: tp, QoS: 1}}, col.handle); err != nil {
				t.Fatal(err)
			}
			pub, _ := connect(t, Options{Server: b.url(), Version: v})
			for i := range 4 {
				if err := pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 1, Payload: fmt.Appendf(nil, "%d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			if v == packet.V5 {
				// The server holds back messages while two unacknowledged
				// ones hold our Receive Maximum slots.
				m0 := recv(t, col.ch, "m0")
				m1 := recv(t, col.ch, "m1")
				// Acknowledging the second first sends nothing yet:
				// PUBACKs leave in order [MQTT-4.6.0-2].
				if err := m1.Ack(); err != nil {
					t.Fatal(err)
				}
				if err := m1.Ack(); !errors.Is(err, ErrAlreadyAcknowledged) {
					t.Errorf("second ack: %v", err)
				}
				if col.count() != 2 {
					t.Fatalf("got %d messages with the receive maximum full", col.count())
				}
				if err := m0.Reject(packet.ImplementationSpecificError); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "all messages", func() bool { return col.count() == 4 }, func() string { return fmt.Sprint(col.payloads()) })
			col.mu.Lock()
			for _, m := range col.msgs {
				m.Ack()
			}
			col.mu.Unlock()
			if got := col.payloads(); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
				t.Errorf("got %v", got)
			}
		})
	}
}

// An unacknowledged QoS 1 message is delivered again, with DUP, after the
// connection is lost and the session resumed.
func TestManualAckRedeliveredAfterReconnect(t *testing.T) {
	b := startBroker(t)
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			px := startProxy(t, b.addr())
			col := newCollector()
			tp := "redeliver/" + v.String()
			connected := make(chan *ConnectInfo, 4)
			sub, _ := connect(t, Options{
				Server: px.url(), Version: v, ClientID: "redeliver-" + v.String(), SessionExpiry: 60,
				ManualAck: true, Backoff: Backoff{Initial: 10 * time.Millisecond},
				OnConnect: func(i *ConnectInfo) { connected <- i },
			})
			recv(t, connected, "first connect")
			if _, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: tp, QoS: 2}}, col.handle); err != nil {
				t.Fatal(err)
			}
			pub, _ := connect(t, Options{Server: b.url(), Version: v})
			pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 1, Payload: []byte("q1")})
			pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 2, Payload: []byte("q2")})
			first1 := recv(t, col.ch, "q1")
			first2 := recv(t, col.ch, "q2")
			px.cut()
			info := recv(t, connected, "reconnect")
			if !info.SessionPresent {
				t.Fatal("session not resumed")
			}
			// QoS 1: delivered again with DUP; QoS 2: not delivered twice.
			again := recv(t, col.ch, "redelivery")
			if string(again.Payload) != "q1" || !again.Dup {
				t.Fatalf("redelivered %+v", again)
			}
			if err := first1.Ack(); err != nil { // stale: ignored
				t.Fatal(err)
			}
			again.Ack()
			first2.Ack() // sent on the new connection
			// The broker completes QoS 2 once it has our PUBREC: a marker
			// published afterwards arrives after it would have been resent.
			pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 2, Payload: []byte("marker")})
			m := recv(t, col.ch, "marker")
			m.Ack()
			if string(m.Payload) != "marker" {
				t.Fatalf("got %q, want marker", m.Payload)
			}
			if got := col.payloads(); !slices.Equal(got, []string{"q1", "q2", "q1", "marker"}) {
				t.Errorf("got %v", got)
			}
		})
	}
}

func TestOfflineQueueBound(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			b := startBroker(t)
			px := startProxy(t, b.addr())
			col := newCollector()
			sub, _ := connect(t, Options{Server: b.url(), Version: v})
			if _, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: "offline/#", QoS: 1}}, col.handle); err != nil {
				t.Fatal(err)
			}
			reconnecting := make(chan int, 100)
			c, _ := connect(t, Options{
				Server: px.url(), Version: v, Queue: QueueLimits{MaxMessages: 3, MaxBytes: 1 << 20},
				Backoff:        Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond},
				OnReconnecting: func(n int, _ time.Duration) { reconnecting <- n },
			})
			px.down()
			waitFor(t, 10*time.Second, "disconnection", func() bool { return !c.IsConnected() })
			ctx := testCtx(t)
			var toks []*Token
			for i := range 3 {
				toks = append(toks, c.PublishAsync(ctx, &Message{Topic: "offline/q", QoS: byte(i % 3), Payload: fmt.Appendf(nil, "%d", i)}))
			}
			over := c.PublishAsync(ctx, &Message{Topic: "offline/q", QoS: 1, Payload: []byte("over")})
			<-over.Done()
			if !errors.Is(over.Err(), ErrQueueFull) {
				t.Fatalf("over the bound: %v", over.Err())
			}
			big := c.PublishAsync(ctx, &Message{Topic: "offline/big", Payload: make([]byte, 2<<20)})
			if err := big.Wait(ctx); !errors.Is(err, ErrQueueFull) {
				t.Fatalf("over the byte bound: %v", err)
			}
			for _, tk := range toks {
				select {
				case <-tk.Done():
					t.Fatalf("queued publish completed offline: %v", tk.Err())
				default:
				}
			}
			recv(t, reconnecting, "reconnection attempt")
			px.up(t)
			for i, tk := range toks {
				if err := tk.Wait(ctx); err != nil {
					t.Fatalf("queued publish %d: %v", i, err)
				}
			}
			waitFor(t, 10*time.Second, "queued messages", func() bool { return col.count() == 3 })
			if got := col.payloads(); !slices.Equal(got, []string{"0", "1", "2"}) {
				t.Errorf("got %v", got)
			}
		})
	}
}

// reconnectScenario publishes QoS 1 and 2 messages continuously while the
// broker goes away and comes back, and checks delivery: QoS 2 never twice;
// every publish acknowledged after the subscriber is back delivered; with
// a session the broker kept, every acknowledged publish delivered and none
// failed.
func reconnectScenario(t *testing.T, v packet.Version, restart func(b *broker), persistent bool) {
	extra := []string{"max_queued_messages 100000"}
	if persistent {
		extra = append(extra, "persistence true", "autosave_interval 0")
	}
	b := startBroker(t, extra...)
	back := Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	var mu sync.Mutex
	got := map[string]int{}
	subConns := make(chan *ConnectInfo, 10)
	sub, _ := connect(t, Options{Server: b.url(), Version: v, ClientID: "rc-sub", SessionExpiry: 300, Backoff: back,
		OnConnect: func(i *ConnectInfo) { subConns <- i },
		DefaultHandler: func(m *Message) {
			mu.Lock()
			got[string(m.Payload)]++
			mu.Unlock()
		}})
	recv(t, subConns, "subscriber connection")
	for qos := byte(1); qos <= 2; qos++ {
		if _, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: fmt.Sprintf("rc/%d", qos), QoS: qos}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	pubConns := make(chan *ConnectInfo, 10)
	pub, _ := connect(t, Options{Server: b.url(), Version: v, ClientID: "rc-pub", SessionExpiry: 300, Backoff: back,
		OnConnect: func(i *ConnectInfo) { pubConns <- i }})
	recv(t, pubConns, "publisher connection")

	type result struct {
		payload string
		qos     byte
		late    bool // published after the subscriber was back
		err     error
	}
	var late atomic.Bool
	results := make(chan result, 100000)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qos := byte(1 + w%2)
			for i := 0; ctx.Err() == nil; i++ {
				p := fmt.Sprintf("w%d-%d", w, i)
				l := late.Load()
				pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := pub.Publish(pctx, &Message{Topic: fmt.Sprintf("rc/%d", qos), QoS: qos, Payload: []byte(p)})
				pcancel()
				results <- result{p, qos, l, err}
			}
		}()
	}
	waitFor(t, 10*time.Second, "traffic", func() bool { return len(results) > 100 })
	restart(b)
	pubInfo := recv(t, pubConns, "publisher reconnection")
	subInfo := recv(t, subConns, "subscriber reconnection")
	kept := pubInfo.SessionPresent && subInfo.SessionPresent
	t.Logf("sessions present after the restart: publisher %v, subscriber %v", pubInfo.SessionPresent, subInfo.SessionPresent)
	// Probe until the subscriber receives again (it may be subscribing anew).
	for i := 0; ; i++ {
		probe := fmt.Sprintf("probe-%d", i)
		if err := pub.Publish(testCtx(t), &Message{Topic: "rc/1", QoS: 1, Payload: []byte(probe)}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := got[probe]
			mu.Unlock()
			if n > 0 {
				goto back
			}
			time.Sleep(5 * time.Millisecond)
		}
		if i > 100 {
			t.Fatal("subscriber never received again")
		}
	}
back:
	late.Store(true)
	n0 := len(results)
	waitFor(t, 20*time.Second, "traffic after restart", func() bool { return len(results) > n0+200 })
	cancel()
	wg.Wait()
	close(results)
	// The last messages are delivered before checking: a QoS 2 probe on
	// each topic (same connection, same QoS: ordered).
	for qos := byte(1); qos <= 2; qos++ {
		probe := fmt.Sprintf("final-%d", qos)
		if err := pub.Publish(testCtx(t), &Message{Topic: fmt.Sprintf("rc/%d", qos), QoS: qos, Payload: []byte(probe)}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, probe, func() bool { mu.Lock(); defer mu.Unlock(); return got[probe] > 0 })
	}

	mu.Lock()
	defer mu.Unlock()
	var ok, failed, lost, lateOK int
	for r := range results {
		n := got[r.payload]
		if r.qos == 2 && n > 1 {
			t.Errorf("QoS 2 message %s delivered %d times", r.payload, n)
		}
		if r.err != nil {
			failed++
			// Only QoS 2 messages in flight when the session was lost may
			// fail; never a late one.
			if kept || r.late || r.qos != 2 || !errors.Is(r.err, ErrSessionLost) {
				t.Errorf("publish %s (QoS %d, late %v) failed: %v", r.payload, r.qos, r.late, r.err)
			}
			continue
		}
		ok++
		if r.late {
			lateOK++
		}
		if n == 0 {
			lost++
			// Messages the broker acknowledged and then lost with its
			// session are gone; nothing else may be.
			if kept || r.late {
				t.Errorf("acknowledged message %s (QoS %d, late %v) not delivered", r.payload, r.qos, r.late)
			}
		}
	}
	t.Logf("%d publishes acknowledged (%d after the subscriber was back), %d failed with the session, %d acknowledged but lost with the broker's session",
		ok, lateOK, failed, lost)
}

func TestReconnectBrokerRestart(t *testing.T) {
	// Graceful restart with persistence: sessions survive (mosquitto 2.0.11
	// restores 3.1.1 sessions but not v5 ones; the checks follow what the
	// broker reports), in-flight messages are re-sent with DUP, nothing
	// acknowledged is lost and QoS 2 is delivered exactly once.
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			reconnectScenario(t, v, func(b *broker) { b.terminate(); b.start() }, true)
		})
	}
}

func TestReconnectBrokerKilled(t *testing.T) {
	// kill -9 without persistence: sessions are lost. QoS 2 in flight fails
	// with ErrSessionLost rather than risk a duplicate; QoS 1 in flight is
	// sent again; the subscriber subscribes again.
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			reconnectScenario(t, v, func(b *broker) { b.kill(); b.start() }, false)
		})
	}
}

func TestDisconnectWhileNetworkGone(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			b := startBroker(t)
			px := startProxy(t, b.addr())
			c, _ := connect(t, Options{Server: px.url(), Version: v, WriteBuffer: 64 << 10})
			px.freeze()
			// Fill the socket buffers and the write buffer until the client
			// pushes back: the writer is stuck in a write that never ends.
			payload := make([]byte, 256<<10)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				tk := c.PublishAsync(ctx, &Message{Topic: "stuck", Payload: payload})
				cancel()
				if errors.Is(tk.Err(), context.DeadlineExceeded) {
					break // not accepted: back-pressure
				}
			}
			start := time.Now()
			dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
			defer dcancel()
			err := c.Disconnect(dctx, packet.NormalDisconnection, KeepSessionExpiry)
			if !errors.Is(err, context.DeadlineExceeded) && err != nil {
				t.Errorf("disconnect: %v", err)
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("client did not end")
			}
			t.Logf("Disconnect returned in %v (%v)", time.Since(start), err)
		})
	}
}

func TestDisconnectWhileReconnecting(t *testing.T) {
	b := startBroker(t)
	px := startProxy(t, b.addr())
	c, _ := connect(t, Options{Server: px.url(), Backoff: Backoff{Initial: time.Hour}})
	px.down()
	waitFor(t, 10*time.Second, "disconnection", func() bool { return !c.IsConnected() })
	tk := c.PublishAsync(testCtx(t), &Message{Topic: "queued", QoS: 1})
	if err := c.Disconnect(testCtx(t), 0, KeepSessionExpiry); err != nil {
		t.Fatal(err)
	}
	if err := tk.Wait(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("queued publish: %v", err)
	}
}

func TestKeepaliveDeadPeer(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			b := startBroker(t)
			px := startProxy(t, b.addr())
			disc := make(chan DisconnectInfo, 1)
			c, info := connect(t, Options{
				Server: px.url(), Version: v, Keepalive: KeepaliveConfig{Interval: time.Second}, DisableReconnect: true,
				OnDisconnect: func(d DisconnectInfo) { disc <- d },
			})
			if info.KeepAlive != time.Second {
				t.Fatalf("keep alive %v", info.KeepAlive)
			}
			// Pings keep a live connection up across several intervals.
			waitFor(t, 30*time.Second, "pings", func() bool { return c.pingsSent.Load() >= 3 })
			if !c.IsConnected() {
				t.Fatal("live connection lost")
			}
			px.freeze()
			d := recv(t, disc, "keep alive timeout")
			if !errors.Is(d.Err, ErrKeepAliveTimeout) || d.Reconnecting {
				t.Errorf("disconnect %+v", d)
			}
			<-c.Done()
			if !errors.Is(c.Err(), ErrKeepAliveTimeout) {
				t.Errorf("ended with %v", c.Err())
			}
		})
	}
}

// serveConnack answers CONNECT with CONNACK ack, then runs after.
func serveConnack(t *testing.T, ack *packet.Connack, after func(net.Conn)) func(net.Conn) {
	return func(c net.Conn) {
		r := packet.NewReader(c, 0)
		if _, err := r.ReadPacket(packet.V5); err != nil {
			return
		}
		buf, _ := ack.AppendTo(nil, packet.V5)
		if _, err := c.Write(buf); err != nil {
			return
		}
		if after != nil {
			after(c)
		}
	}
}

func TestUseAnotherServer(t *testing.T) {
	b := startBroker(t)
	ack := &packet.Connack{ReasonCode: packet.UseAnotherServer}
	ack.Props.ServerReference = b.addr()
	fake := startFakeServer(t, serveConnack(t, ack, nil))
	c, info := connect(t, Options{Server: "mqtt://" + fake.addr()})
	if info.Server != b.url() {
		t.Errorf("connected to %s, want %s", info.Server, b.url())
	}
	if err := c.Publish(testCtx(t), &Message{Topic: "redirected", QoS: 1}); err != nil {
		t.Fatal(err)
	}

	t.Run("loop", func(t *testing.T) {
		// A server that redirects to itself: three hops, then the error.
		f := startFakeServer(t, func(c net.Conn) {
			self := &packet.Connack{ReasonCode: packet.ServerMoved}
			self.Props.ServerReference = c.LocalAddr().String()
			serveConnack(t, self, nil)(c)
		})
		cl, err := New(Options{Server: f.addr()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Connect(testCtx(t))
		var re *RedirectError
		if !errors.As(err, &re) || !errors.Is(err, packet.ServerMoved) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		// DISCONNECT Server Moved on an established connection: the client
		// reconnects at once to the reference.
		moved := &packet.Disconnect{ReasonCode: packet.ServerMoved}
		moved.Props.ServerReference = "mqtt://" + b.addr()
		f := startFakeServer(t, serveConnack(t, &packet.Connack{}, func(c net.Conn) {
			buf, _ := moved.AppendTo(nil, packet.V5)
			c.Write(buf)
			c.Read(make([]byte, 1))
		}))
		conns := make(chan *ConnectInfo, 2)
		discs := make(chan DisconnectInfo, 2)
		connect(t, Options{Server: f.addr(), Backoff: Backoff{Initial: time.Hour},
			OnConnect: func(i *ConnectInfo) { conns <- i }, OnDisconnect: func(d DisconnectInfo) { discs <- d }})
		recv(t, conns, "first connection")
		d := recv(t, discs, "disconnect")
		if !errors.Is(d.Err, packet.ServerMoved) || d.Packet == nil || !d.Reconnecting {
			t.Errorf("disconnect %+v", d)
		}
		if i := recv(t, conns, "second connection"); i.Server != b.url() {
			t.Errorf("reconnected to %s", i.Server)
		}
	})
}

// Every transport scheme is built in; a refused connection is a dial error,
// and an unknown scheme is refused up front.
func TestBuiltInTransports(t *testing.T) {
	for _, u := range []string{"ws://127.0.0.1:1", "wss://127.0.0.1:1", "quic://127.0.0.1:1", "mqtts://127.0.0.1:1"} {
		c, err := New(Options{Server: u, DisableReconnect: true, ConnectTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Connect(testCtx(t))
		if err == nil || errors.Is(err, ErrTransportUnavailable) {
			t.Errorf("%s: %v", u, err)
		}
	}
	if _, err := New(Options{Server: "gopher://x"}); err == nil {
		t.Error("unknown scheme accepted")
	}
}

// A Dialer registered for a scheme serves it: here "ws" is carried over
// plain TCP to mosquitto, standing in for a WebSocket transport.
func TestDialerSeam(t *testing.T) {
	b := startBroker(t)
	var dialed atomic.Int32
	ws := DialerFunc(func(ctx context.Context, u *url.URL, _ *tls.Config) (io.ReadWriteCloser, error) {
		dialed.Add(1)
		if u.Scheme != "ws" || u.Port() != "80" {
			return nil, fmt.Errorf("unexpected URL %s", u)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", b.addr())
	})
	c, info := connect(t, Options{Server: "ws://broker.example", Dialers: map[string]Dialer{"ws": ws}})
	if dialed.Load() != 1 || info.Server != "ws://broker.example:80/mqtt" {
		t.Errorf("dialed %d times, server %s", dialed.Load(), info.Server)
	}
	if err := c.Publish(testCtx(t), &Message{Topic: "ws", QoS: 1}); err != nil {
		t.Fatal(err)
	}
}
