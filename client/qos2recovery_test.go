package client

// QoS 2 recovery: a PUBCOMP 0x92 answering a PUBREL re-sent on a resumed
// session, and an inbound QoS 2 message handed to a handler of a Client
// that ends before its PUBREC, then re-sent to the next Client on the same
// store.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqttbroker "github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// dropConn passes the server's packets through whole and, while armed,
// swallows the first PUBCOMP and closes the connection: the PUBCOMP is lost
// with it.
type dropConn struct {
	net.Conn
	br      *bufio.Reader
	pending []byte
	armed   *atomic.Bool
	dropped *atomic.Int32
}

func (d *dropConn) Read(p []byte) (int, error) {
	for len(d.pending) == 0 {
		pkt, err := readRawPacket(d.br)
		if err != nil {
			return 0, err
		}
		if pkt[0]>>4 == byte(packet.PUBCOMP) && d.armed.CompareAndSwap(true, false) {
			d.dropped.Add(1)
			d.Conn.Close()
			return 0, net.ErrClosed
		}
		d.pending = pkt
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}

// readRawPacket reads one MQTT control packet: fixed header, remaining
// length, body.
func readRawPacket(r *bufio.Reader) ([]byte, error) {
	b0, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	pkt := []byte{b0}
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		pkt = append(pkt, b)
		n += int(b&0x7F) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return nil, errors.New("bad remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(pkt, body...), nil
}

// TestOurBrokerPubcompNotFoundAfterResume: the broker received our PUBREL
// and released the identifier, its PUBCOMP is lost with the connection; on
// the resumed session the client re-sends PUBREL [MQTT-4.4.0-1] and the
// broker answers PUBCOMP 0x92. The publish completes without error.
func TestOurBrokerPubcompNotFoundAfterResume(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{})
	var armed atomic.Bool
	var dropped atomic.Int32
	d := &cutDialer{wrap: func(c net.Conn) net.Conn {
		return &dropConn{Conn: c, br: bufio.NewReader(c), armed: &armed, dropped: &dropped}
	}}
	col := newCollector()
	sub, _ := connect(t, Options{Server: ob.url()})
	if _, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: "ob/q2/pubcomp", QoS: 2}}, col.handle); err != nil {
		t.Fatal(err)
	}
	connected := make(chan *ConnectInfo, 4)
	c, _ := connect(t, Options{Server: ob.url(), ClientID: "pubcomp-0x92", SessionExpiry: 300,
		Dialers: d.dialers(), Backoff: fastBackoff(),
		OnConnect: func(i *ConnectInfo) { connected <- i }})
	recv(t, connected, "first connection")

	armed.Store(true)
	tok := c.PublishAsync(testCtx(t), &Message{Topic: "ob/q2/pubcomp", QoS: 2, Payload: []byte("once")})
	info := recv(t, connected, "reconnection")
	if !info.SessionPresent {
		t.Fatal("session not resumed")
	}
	if err := tok.Wait(testCtx(t)); err != nil {
		t.Fatalf("publish: %v (dropped PUBCOMPs %d)", err, dropped.Load())
	}
	if dropped.Load() != 1 {
		t.Fatalf("%d PUBCOMPs dropped, want 1", dropped.Load())
	}
	if code := tok.ReasonCode(); code != packet.PacketIdentifierNotFound {
		t.Errorf("reason code %v, want 0x92 (the recovery answer)", code)
	}
	// The next QoS 2 flow on the resumed connection is a normal one.
	if err := c.Publish(testCtx(t), &Message{Topic: "ob/q2/pubcomp", QoS: 2, Payload: []byte("next")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both messages", func() bool { return col.count() == 2 }, func() string { return fmt.Sprint(col.payloads()) })
	if got := col.payloads(); !slices.Equal(got, []string{"once", "next"}) {
		t.Errorf("subscriber got %v", got)
	}
}

// TestPubcompNotFoundFirstPubrel: a 0x92 answering a PUBREL sent for the
// first time on the connection is a session state mismatch, not recovery:
// the publish fails with it.
func TestPubcompNotFoundFirstPubrel(t *testing.T) {
	s := newPipeServer(t)
	c, sc := startPipeClient(t, s, Options{DisableReconnect: true}, &packet.Connack{})
	defer stopPipeClient(c, sc)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Publish(context.Background(), &Message{Topic: "t", QoS: 2, Payload: []byte("x")})
	}()
	p := expect[*packet.Publish](sc)
	sc.send(&packet.Pubrec{PacketID: p.PacketID})
	expect[*packet.Pubrel](sc)
	sc.send(&packet.Pubcomp{PacketID: p.PacketID, ReasonCode: packet.PacketIdentifierNotFound})
	if err := recv(t, errc, "publish result"); !errors.Is(err, packet.PacketIdentifierNotFound) {
		t.Fatalf("publish: %v, want 0x92", err)
	}
}

// countingStore counts the inbound records of the store it wraps.
type countingStore struct {
	SessionStore
	putIn, delIn atomic.Int32
}

func (s *countingStore) PutInbound(id uint16) error {
	s.putIn.Add(1)
	return s.SessionStore.PutInbound(id)
}

func (s *countingStore) DeleteInbound(id uint16) error {
	s.delIn.Add(1)
	return s.SessionStore.DeleteInbound(id)
}

// TestOurBrokerQoS2NotRedeliveredToNewClient: a QoS 2 message reaches a
// handler of client A, which ends (Disconnect, a network cut, or manual
// acknowledgement never given) before its PUBREC leaves. A new client on
// the same FileStore directory (a new process) gets the re-sent PUBLISH,
// answers it with PUBREC without delivering it [MQTT-4.3.3-10], and
// completes the flow.
func TestOurBrokerQoS2NotRedeliveredToNewClient(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{})
	for _, v := range versions {
		for _, mode := range []string{"disconnect", "cut", "manual"} {
			t.Run(fmt.Sprintf("%v/%s", v, mode), func(t *testing.T) {
				tp := fmt.Sprintf("ob/q2/redeliver/%v/%s", v, mode)
				id := fmt.Sprintf("q2-%v-%s", v, mode)
				dir := t.TempDir()
				quiet := FileStoreOptions{Logger: slog.New(slog.DiscardHandler)}
				store, err := OpenFileStore(dir, quiet)
				if err != nil {
					t.Fatal(err)
				}
				entered := make(chan *Message, 1)
				release := make(chan struct{})
				var releaseOnce sync.Once
				unblock := func() { releaseOnce.Do(func() { close(release) }) }
				t.Cleanup(unblock)
				d := &cutDialer{}
				a, err := New(Options{Server: ob.url(), Version: v, ClientID: id, SessionExpiry: 300, Store: store,
					Dialers: d.dialers(), DisableReconnect: true, ManualAck: mode == "manual"})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { a.Disconnect(context.Background(), packet.NormalDisconnection, KeepSessionExpiry) })
				if _, err := a.Connect(testCtx(t)); err != nil {
					t.Fatal(err)
				}
				handler := func(m *Message) {
					entered <- m
					if mode != "manual" {
						<-release
					}
				}
				if _, err := a.Subscribe(testCtx(t), []Subscription{{Filter: tp, QoS: 2}}, handler); err != nil {
					t.Fatal(err)
				}
				pub, _ := connect(t, Options{Server: ob.url(), Version: v})
				if err := pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 2, Payload: []byte("once")}); err != nil {
					t.Fatal(err)
				}
				first := recv(t, entered, "first delivery")

				switch mode {
				case "disconnect":
					discErr := make(chan error, 1)
					go func() {
						discErr <- a.Disconnect(testCtx(t), packet.NormalDisconnection, KeepSessionExpiry)
					}()
					recv(t, a.Done(), "client A ended")
					// The client has ended; Disconnect waits for the
					// handler still running.
					select {
					case err := <-discErr:
						t.Fatalf("Disconnect returned (%v) while a handler was running", err)
					default:
					}
					unblock()
					if err := recv(t, discErr, "Disconnect"); err != nil {
						t.Fatal(err)
					}
				case "cut":
					d.cut()
					recv(t, a.Done(), "client A ended")
					unblock()
				case "manual":
					// The handler returned without Ack: no PUBREC.
					if err := a.Disconnect(testCtx(t), packet.NormalDisconnection, KeepSessionExpiry); err != nil {
						t.Fatal(err)
					}
				}
				if string(first.Payload) != "once" {
					t.Fatalf("first delivery %q", first.Payload)
				}
				store.Close()

				// A new process: the identifier is on disk.
				store2, err := OpenFileStore(dir, quiet)
				if err != nil {
					t.Fatal(err)
				}
				defer store2.Close()
				if _, in, _ := store2.Load(); len(in) != 1 || in[0] != first.PacketID {
					t.Fatalf("stored inbound identifiers %v, want [%d]", in, first.PacketID)
				}
				cs := &countingStore{SessionStore: store2}
				col := newCollector()
				_, info := connect(t, Options{Server: ob.url(), Version: v, ClientID: id, SessionExpiry: 300,
					Store: cs, CleanStart: CleanStartNever, DefaultHandler: col.handle})
				if !info.SessionPresent {
					t.Fatal("session not present")
				}
				// The broker re-sends the PUBLISH first, then the marker.
				if err := pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 2, Payload: []byte("marker")}); err != nil {
					t.Fatal(err)
				}
				m := recv(t, col.ch, "marker")
				if string(m.Payload) != "marker" {
					t.Fatalf("new client got %q before the marker", m.Payload)
				}
				// PUBREC, PUBREL, PUBCOMP: the record of the first
				// message goes (the marker's too, once it completes).
				waitFor(t, 10*time.Second, "the QoS 2 flows to complete", func() bool {
					_, in, _ := store2.Load()
					return len(in) == 0
				}, func() string { _, in, _ := store2.Load(); return fmt.Sprint(in) })
				if cs.delIn.Load() != 2 || cs.putIn.Load() != 1 {
					t.Errorf("inbound records: %d put, %d deleted; want 1 (marker) and 2", cs.putIn.Load(), cs.delIn.Load())
				}
				if got := col.payloads(); !slices.Equal(got, []string{"marker"}) {
					t.Errorf("new client got %v, want only the marker", got)
				}
			})
		}
	}
}

// TestInboundQoS2OneRecord: each inbound QoS 2 message costs one store
// record when it is delivered (none more for its PUBREC) and one when
// PUBREL releases it, the same two fsyncs with a FileStore as when the
// record was written at PUBREC.
func TestInboundQoS2OneRecord(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{})
	for _, manual := range []bool{false, true} {
		t.Run(fmt.Sprintf("manual=%v", manual), func(t *testing.T) {
			tp := fmt.Sprintf("ob/q2/records/%v", manual)
			fs, err := OpenFileStore(t.TempDir(), FileStoreOptions{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			cs := &countingStore{SessionStore: fs}
			col := newCollector()
			h := col.handle
			if manual {
				h = func(m *Message) { col.handle(m); m.Ack() }
			}
			sub, _ := connect(t, Options{Server: ob.url(), Store: cs, ManualAck: manual})
			if _, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: tp, QoS: 2}}, h); err != nil {
				t.Fatal(err)
			}
			pub, _ := connect(t, Options{Server: ob.url()})
			const n = 50
			for i := range n {
				if err := pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 2, Payload: fmt.Appendf(nil, "%d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "all flows released", func() bool { return cs.delIn.Load() == n })
			if col.count() != n || cs.putIn.Load() != n {
				t.Errorf("%d delivered, %d inbound records put; want %d and %d", col.count(), cs.putIn.Load(), n, n)
			}
		})
	}
}

// TestDisconnectFromHandler: Disconnect called by a handler does not wait
// for that handler (it would wait for itself).
func TestDisconnectFromHandler(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{})
	c, _ := connect(t, Options{Server: ob.url()})
	res := make(chan error, 1)
	if _, err := c.Subscribe(testCtx(t), []Subscription{{Filter: "ob/q2/selfdisc", QoS: 1}}, func(m *Message) {
		res <- c.Disconnect(context.Background(), packet.NormalDisconnection, KeepSessionExpiry)
	}); err != nil {
		t.Fatal(err)
	}
	// Its PUBACK may or may not arrive before the handler disconnects.
	c.PublishAsync(testCtx(t), &Message{Topic: "ob/q2/selfdisc", QoS: 1})
	if err := recv(t, res, "Disconnect from the handler"); err != nil {
		t.Fatal(err)
	}
	// From another goroutine, Disconnect returns once the handler has.
	if err := c.Disconnect(testCtx(t), packet.NormalDisconnection, KeepSessionExpiry); err != nil {
		t.Fatal(err)
	}
}

// TestOurBrokerQoS2QueuedNotLost: a QoS 2 message still waiting in the
// dispatch queue when the client ends was never handed to a handler: it is
// not recorded, and the next client on the store gets it (once), while the
// one a handler had is not delivered again.
func TestOurBrokerQoS2QueuedNotLost(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{})
	const tp, id = "ob/q2/queued", "q2-queued"
	store := NewMemoryStore() // shared by two Clients in the process
	entered := make(chan *Message, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	a, _ := connect(t, Options{Server: ob.url(), ClientID: id, SessionExpiry: 300, Store: store, DisableReconnect: true})
	if _, err := a.Subscribe(testCtx(t), []Subscription{{Filter: tp, QoS: 2}}, func(m *Message) {
		entered <- m
		<-release
	}); err != nil {
		t.Fatal(err)
	}
	pub, _ := connect(t, Options{Server: ob.url()})
	for _, p := range []string{"handled", "queued"} {
		if err := pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 2, Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	first := recv(t, entered, "first delivery")
	waitFor(t, 10*time.Second, "the second message in the dispatch queue", func() bool { return len(a.dispatchCh) == 1 })
	discErr := make(chan error, 1)
	go func() { discErr <- a.Disconnect(testCtx(t), packet.NormalDisconnection, KeepSessionExpiry) }()
	recv(t, a.Done(), "client A ended")
	unblock()
	if err := recv(t, discErr, "Disconnect"); err != nil {
		t.Fatal(err)
	}
	if string(first.Payload) != "handled" {
		t.Fatalf("first delivery %q", first.Payload)
	}
	if _, in, _ := store.Load(); len(in) != 1 || in[0] != first.PacketID {
		t.Fatalf("stored inbound identifiers %v, want [%d]", in, first.PacketID)
	}
	col := newCollector()
	_, info := connect(t, Options{Server: ob.url(), ClientID: id, SessionExpiry: 300,
		Store: store, CleanStart: CleanStartNever, DefaultHandler: col.handle})
	if !info.SessionPresent {
		t.Fatal("session not present")
	}
	if err := pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 2, Payload: []byte("marker")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the marker", func() bool { return col.count() == 2 }, func() string { return fmt.Sprint(col.payloads()) })
	waitFor(t, 10*time.Second, "the QoS 2 flows to complete", func() bool {
		_, in, _ := store.Load()
		return len(in) == 0
	})
	if got := col.payloads(); !slices.Equal(got, []string{"queued", "marker"}) {
		t.Errorf("new client got %v, want [queued marker]", got)
	}
}

// BenchmarkInboundQoS2 receives b.N QoS 2 messages from our broker through
// a subscriber whose store is its own MemoryStore (no record before
// delivery needed), a shared MemoryStore, or a FileStore (one fsync per
// record), and reports messages per second.
func BenchmarkInboundQoS2(b *testing.B) {
	ob := startOurBroker(b, mqttbroker.Config{})
	for _, kind := range []string{"private", "memory", "file"} {
		b.Run(kind, func(b *testing.B) {
			tp := "bench/in/q2/" + kind
			var store SessionStore
			switch kind {
			case "memory":
				store = NewMemoryStore()
			case "file":
				fs, err := OpenFileStore(b.TempDir(), FileStoreOptions{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				defer fs.Close()
				store = fs
			}
			var got atomic.Int64
			all := make(chan struct{})
			n := int64(b.N)
			sub, _ := connect(b, Options{Server: ob.url(), Store: store})
			if _, err := sub.Subscribe(testCtx(b), []Subscription{{Filter: tp, QoS: 2}}, func(*Message) {
				if got.Add(1) == n {
					close(all)
				}
			}); err != nil {
				b.Fatal(err)
			}
			pub, _ := connect(b, Options{Server: ob.url(), Queue: QueueLimits{MaxMessages: 10000}})
			m := &Message{Topic: tp, QoS: 2, Payload: benchPayload}
			var ring [1024]*Token
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				slot := &ring[i%len(ring)]
				if *slot != nil {
					(*slot).Wait(context.Background())
				}
				*slot = pub.PublishAsync(context.Background(), m)
			}
			<-all
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
		})
	}
}
