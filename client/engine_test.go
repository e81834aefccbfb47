package client

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/url"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// pipeServer is a scripted MQTT server reached through an in-memory pipe,
// for deterministic tests (with testing/synctest for time).
type pipeServer struct {
	t     *testing.T
	conns chan net.Conn
}

func newPipeServer(t *testing.T) *pipeServer {
	return &pipeServer{t: t, conns: make(chan net.Conn, 4)}
}

func (s *pipeServer) options(o Options) Options {
	o.Server = "mqtt://pipe:1883"
	o.Dialers = map[string]Dialer{"mqtt": DialerFunc(func(ctx context.Context, _ *url.URL, _ *tls.Config) (io.ReadWriteCloser, error) {
		c, srv := net.Pipe()
		s.conns <- srv
		return c, nil
	})}
	return o
}

type serverConn struct {
	t *testing.T
	c net.Conn
	r *packet.Reader
	v packet.Version
}

// accept takes the next connection and reads its CONNECT.
func (s *pipeServer) accept(v packet.Version) (*serverConn, *packet.Connect) {
	s.t.Helper()
	c := <-s.conns
	sc := &serverConn{t: s.t, c: c, r: packet.NewReader(c, 0), v: v}
	return sc, expect[*packet.Connect](sc)
}

func (sc *serverConn) read() packet.Packet {
	sc.t.Helper()
	p, err := sc.r.ReadPacket(sc.v)
	if err != nil {
		sc.t.Fatalf("server read: %v", err)
	}
	return p
}

func expect[T packet.Packet](sc *serverConn) T {
	sc.t.Helper()
	p := sc.read()
	v, ok := p.(T)
	if !ok {
		sc.t.Fatalf("server got %s (%+v), want %T", p.Type(), p, v)
	}
	return v
}

func (sc *serverConn) send(ps ...packet.Packet) {
	sc.t.Helper()
	for _, p := range ps {
		b, err := p.AppendTo(nil, sc.v)
		if err != nil {
			sc.t.Fatal(err)
		}
		if _, err := sc.c.Write(b); err != nil {
			sc.t.Fatalf("server write: %v", err)
		}
	}
}

// startPipeClient connects a client to the pipe server, which answers the
// CONNECT with ack.
func startPipeClient(t *testing.T, s *pipeServer, o Options, ack *packet.Connack) (*Client, *serverConn) {
	t.Helper()
	c, err := New(s.options(o))
	if err != nil {
		t.Fatal(err)
	}
	v := c.opts.Version
	done := make(chan *serverConn)
	go func() {
		sc, _ := s.accept(v)
		sc.send(ack)
		done <- sc
	}()
	if _, err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, <-done
}

func stopPipeClient(c *Client, sc *serverConn) {
	sc.c.Close()
	c.Disconnect(context.Background(), 0, KeepSessionExpiry)
}

func TestKeepaliveTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		disc := make(chan DisconnectInfo, 1)
		start := time.Now()
		c, sc := startPipeClient(t, s, Options{Keepalive: KeepaliveConfig{Interval: 10 * time.Second}, DisableReconnect: true,
			OnDisconnect: func(d DisconnectInfo) { disc <- d }}, &packet.Connack{})
		// The server answers the first ping, then goes silent.
		expect[*packet.Pingreq](sc)
		if d := time.Since(start); d != 7500*time.Millisecond {
			t.Errorf("first PINGREQ after %v, want 7.5s", d)
		}
		sc.send(&packet.Pingresp{})
		answered := time.Now()
		expect[*packet.Pingreq](sc)
		if d := time.Since(answered); d != 7500*time.Millisecond {
			t.Errorf("second PINGREQ after %v, want 7.5s", d)
		}
		d := <-disc
		if !errors.Is(d.Err, ErrKeepAliveTimeout) {
			t.Errorf("disconnect %v", d.Err)
		}
		if got := time.Since(answered); got != 15*time.Second {
			t.Errorf("declared dead %v after the last packet, want 15s (150%%)", got)
		}
		<-c.Done()
		sc.c.Close()
	})
}

func TestServerKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		ack := &packet.Connack{}
		ack.Props.ServerKeepAlive = 4
		start := time.Now()
		c, sc := startPipeClient(t, s, Options{Keepalive: KeepaliveConfig{Interval: 60 * time.Second}}, ack)
		expect[*packet.Pingreq](sc)
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("PINGREQ after %v, want 3s (75%% of Server Keep Alive 4s)", d)
		}
		stopPipeClient(c, sc)
	})
}

type testAuth struct {
	steps []string
}

func (a *testAuth) Method() string { return "TEST" }
func (a *testAuth) Start(ctx context.Context) ([]byte, error) {
	a.steps = append(a.steps, "start")
	return []byte("client-first"), nil
}
func (a *testAuth) Continue(ctx context.Context, d []byte) ([]byte, error) {
	a.steps = append(a.steps, "continue:"+string(d))
	return []byte("client-final"), nil
}
func (a *testAuth) Finish(ctx context.Context, d []byte) error {
	a.steps = append(a.steps, "finish:"+string(d))
	if string(d) != "server-final" {
		return errors.New("bad server signature")
	}
	return nil
}

func TestEnhancedAuth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		auth := &testAuth{}
		c, err := New(s.options(Options{Auth: auth}))
		if err != nil {
			t.Fatal(err)
		}
		srv := make(chan *serverConn)
		go func() {
			sc, conn := s.accept(packet.V5)
			if conn.Props.AuthMethod != "TEST" || string(conn.Props.AuthData) != "client-first" {
				t.Errorf("CONNECT auth %q %q", conn.Props.AuthMethod, conn.Props.AuthData)
			}
			challenge := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
			challenge.Props.AuthMethod, challenge.Props.AuthData = "TEST", []byte("server-first")
			sc.send(challenge)
			a := expect[*packet.Auth](sc)
			if a.ReasonCode != packet.ContinueAuthentication || a.Props.AuthMethod != "TEST" || string(a.Props.AuthData) != "client-final" {
				t.Errorf("client AUTH %+v", a)
			}
			ack := &packet.Connack{}
			ack.Props.AuthMethod, ack.Props.AuthData = "TEST", []byte("server-final")
			sc.send(ack)
			srv <- sc
		}()
		if _, err := c.Connect(context.Background()); err != nil {
			t.Fatal(err)
		}
		sc := <-srv
		want := []string{"start", "continue:server-first", "finish:server-final"}
		if !slices.Equal(auth.steps, want) {
			t.Errorf("steps %v", auth.steps)
		}

		// Re-authentication on the live connection.
		auth.steps = nil
		go func() {
			a := expect[*packet.Auth](sc)
			if a.ReasonCode != packet.ReAuthenticate || a.Props.AuthMethod != "TEST" {
				t.Errorf("re-auth AUTH %+v", a)
			}
			ch := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
			ch.Props.AuthMethod, ch.Props.AuthData = "TEST", []byte("server-first")
			sc.send(ch)
			a = expect[*packet.Auth](sc)
			if a.ReasonCode != packet.ContinueAuthentication {
				t.Errorf("re-auth answer %+v", a)
			}
			ok := &packet.Auth{ReasonCode: packet.Success}
			ok.Props.AuthMethod, ok.Props.AuthData = "TEST", []byte("server-final")
			sc.send(ok)
			srv <- sc
		}()
		if err := c.Reauthenticate(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-srv
		if !slices.Equal(auth.steps, want) {
			t.Errorf("re-auth steps %v", auth.steps)
		}
		if _, err := New(Options{Server: "x:1", Version: packet.V311, Auth: auth}); err == nil {
			t.Error("enhanced auth accepted for 3.1.1")
		}
		stopPipeClient(c, sc)
	})
}

func TestInboundQoS2NoDuplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		col := newCollector()
		c, sc := startPipeClient(t, s, Options{DefaultHandler: col.handle}, &packet.Connack{})
		pub := &packet.Publish{QoS: 2, PacketID: 5, Topic: "q2", Payload: []byte("once")}
		sc.send(pub)
		if r := expect[*packet.Pubrec](sc); r.PacketID != 5 {
			t.Fatalf("PUBREC %+v", r)
		}
		// Re-sent before PUBREL: acknowledged again, not delivered again
		// [MQTT-4.3.3-10].
		dup := *pub
		dup.Dup = true
		sc.send(&dup)
		// Handled in order: the PUBREC for the duplicate proves it was seen.
		// (It is sent only for a message past PUBREC; an entry still being
		// handled would be ignored.)
		if r := expect[*packet.Pubrec](sc); r.PacketID != 5 {
			t.Fatalf("PUBREC %+v", r)
		}
		sc.send(&packet.Pubrel{PacketID: 5})
		if r := expect[*packet.Pubcomp](sc); r.PacketID != 5 || r.ReasonCode != packet.Success {
			t.Fatalf("PUBCOMP %+v", r)
		}
		// After PUBCOMP the identifier names a new message [MQTT-4.3.3-12].
		again := &packet.Publish{QoS: 2, PacketID: 5, Topic: "q2", Payload: []byte("new")}
		sc.send(again)
		expect[*packet.Pubrec](sc)
		// PUBREL for an unknown identifier: PUBCOMP 0x92.
		sc.send(&packet.Pubrel{PacketID: 77})
		if r := expect[*packet.Pubcomp](sc); r.PacketID != 77 || r.ReasonCode != packet.PacketIdentifierNotFound {
			t.Fatalf("PUBCOMP %+v", r)
		}
		synctest.Wait()
		if got := col.payloads(); !slices.Equal(got, []string{"once", "new"}) {
			t.Errorf("delivered %v", got)
		}
		stopPipeClient(c, sc)
	})
}

func TestAckOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		col := newCollector()
		c, sc := startPipeClient(t, s, Options{DefaultHandler: col.handle, ManualAck: true}, &packet.Connack{})
		for id := uint16(1); id <= 3; id++ {
			sc.send(&packet.Publish{QoS: 1, PacketID: id, Topic: "o"})
		}
		synctest.Wait()
		col.mu.Lock()
		msgs := slices.Clone(col.msgs)
		col.mu.Unlock()
		msgs[2].Ack()
		msgs[1].Reject(packet.QuotaExceeded)
		synctest.Wait()
		msgs[0].Ack()
		// [MQTT-4.6.0-2] PUBACKs in the order of the PUBLISHes.
		for id := uint16(1); id <= 3; id++ {
			a := expect[*packet.Puback](sc)
			if a.PacketID != id {
				t.Fatalf("PUBACK %d, want %d", a.PacketID, id)
			}
			if (id == 2) != (a.ReasonCode == packet.QuotaExceeded) {
				t.Errorf("PUBACK %d code %v", id, a.ReasonCode)
			}
		}
		stopPipeClient(c, sc)
	})
}

func TestResendOnSessionPresent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		c, sc := startPipeClient(t, s, Options{SessionExpiry: 60, Backoff: Backoff{Initial: time.Second, Jitter: -1}}, &packet.Connack{})
		ctx := context.Background()
		t1 := c.PublishAsync(ctx, &Message{Topic: "a", QoS: 1, Payload: []byte("1")})
		t2 := c.PublishAsync(ctx, &Message{Topic: "b", QoS: 2, Payload: []byte("2")})
		t3 := c.PublishAsync(ctx, &Message{Topic: "c", QoS: 2, Payload: []byte("3")})
		p1 := expect[*packet.Publish](sc)
		p2 := expect[*packet.Publish](sc)
		p3 := expect[*packet.Publish](sc)
		if p1.Dup || p2.Dup || p3.Dup {
			t.Error("DUP on first transmission")
		}
		sc.send(&packet.Pubrec{PacketID: p3.PacketID}) // p3 reaches the PUBREL stage
		expect[*packet.Pubrel](sc)
		sc.c.Close() // connection lost

		sc2, conn := s.accept(packet.V5)
		if conn.CleanStart {
			t.Error("reconnection with Clean Start")
		}
		sc2.send(&packet.Connack{SessionPresent: true})
		// [MQTT-4.4.0-1] [MQTT-4.6.0-1] in the original order, PUBLISH with
		// DUP and the same identifiers, PUBREL for the one past PUBREC.
		r1 := expect[*packet.Publish](sc2)
		r2 := expect[*packet.Publish](sc2)
		r3 := expect[*packet.Pubrel](sc2)
		if !r1.Dup || r1.PacketID != p1.PacketID || !r2.Dup || r2.PacketID != p2.PacketID || r3.PacketID != p3.PacketID {
			t.Errorf("resent %+v %+v %+v", r1, r2, r3)
		}
		sc2.send(&packet.Puback{PacketID: p1.PacketID}, &packet.Pubrec{PacketID: p2.PacketID})
		expect[*packet.Pubrel](sc2)
		sc2.send(&packet.Pubcomp{PacketID: p2.PacketID}, &packet.Pubcomp{PacketID: p3.PacketID})
		for i, tk := range []*Token{t1, t2, t3} {
			if err := tk.Wait(ctx); err != nil {
				t.Errorf("token %d: %v", i, err)
			}
		}
		stopPipeClient(c, sc2)
	})
}

func TestSessionLostPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		c, sc := startPipeClient(t, s, Options{Backoff: Backoff{Initial: time.Second}}, &packet.Connack{})
		ctx := context.Background()
		subDone := make(chan error)
		go func() {
			_, err := c.Subscribe(ctx, []Subscription{{Filter: "s/#", QoS: 1}}, func(*Message) {})
			subDone <- err
		}()
		sub := expect[*packet.Subscribe](sc)
		sc.send(&packet.Suback{PacketID: sub.PacketID, ReasonCodes: []packet.ReasonCode{1}})
		if err := <-subDone; err != nil {
			t.Fatal(err)
		}
		t1 := c.PublishAsync(ctx, &Message{Topic: "a", QoS: 1, Payload: []byte("1")})
		t2 := c.PublishAsync(ctx, &Message{Topic: "b", QoS: 2, Payload: []byte("2")})
		expect[*packet.Publish](sc)
		expect[*packet.Publish](sc)
		sc.c.Close()

		sc2, _ := s.accept(packet.V5)
		sc2.send(&packet.Connack{SessionPresent: false})
		// The granted subscription is made again, then the QoS 1 message is
		// sent as a new one; the QoS 2 one fails rather than risk a
		// duplicate.
		re := expect[*packet.Subscribe](sc2)
		if len(re.Subscriptions) != 1 || re.Subscriptions[0].Filter != "s/#" || re.Subscriptions[0].QoS != 1 {
			t.Errorf("resubscribe %+v", re)
		}
		p := expect[*packet.Publish](sc2)
		if p.Dup || p.Topic != "a" {
			t.Errorf("re-sent %+v", p)
		}
		if err := t2.Wait(ctx); !errors.Is(err, ErrSessionLost) {
			t.Errorf("QoS 2 in flight: %v", err)
		}
		sc2.send(&packet.Suback{PacketID: re.PacketID, ReasonCodes: []packet.ReasonCode{1}}, &packet.Puback{PacketID: p.PacketID})
		if err := t1.Wait(ctx); err != nil {
			t.Errorf("QoS 1: %v", err)
		}
		stopPipeClient(c, sc2)
	})
}

func TestSubscribeResentAfterConnectionLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		c, sc := startPipeClient(t, s, Options{SessionExpiry: 60, Backoff: Backoff{Initial: time.Second}}, &packet.Connack{})
		ctx := context.Background()
		subDone := make(chan error)
		go func() {
			_, err := c.Subscribe(ctx, []Subscription{{Filter: "x", QoS: 2}}, nil)
			subDone <- err
		}()
		expect[*packet.Subscribe](sc)
		sc.c.Close() // lost before the SUBACK
		sc2, _ := s.accept(packet.V5)
		sc2.send(&packet.Connack{SessionPresent: true})
		sub := expect[*packet.Subscribe](sc2)
		sc2.send(&packet.Suback{PacketID: sub.PacketID, ReasonCodes: []packet.ReasonCode{packet.NotAuthorized}})
		err := <-subDone
		var re *ReasonError
		if !errors.Is(err, packet.NotAuthorized) || !errors.As(err, &re) || re.Filter != "x" {
			t.Errorf("subscribe: %v", err)
		}
		stopPipeClient(c, sc2)
	})
}

func TestServerExceedsReceiveMaximum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		disc := make(chan DisconnectInfo, 1)
		c, sc := startPipeClient(t, s, Options{ReceiveMaximum: 1, ManualAck: true, DisableReconnect: true,
			DefaultHandler: func(*Message) {}, OnDisconnect: func(d DisconnectInfo) { disc <- d }}, &packet.Connack{})
		sc.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "t"}, &packet.Publish{QoS: 1, PacketID: 2, Topic: "t"})
		d := expect[*packet.Disconnect](sc)
		if d.ReasonCode != packet.ReceiveMaximumExceeded {
			t.Errorf("DISCONNECT %v", d.ReasonCode)
		}
		if info := <-disc; !errors.Is(info.Err, packet.ReceiveMaximumExceeded) {
			t.Errorf("disconnect info %v", info.Err)
		}
		<-c.Done()
		sc.c.Close()
	})
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Jitter: -1}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, 60 * time.Second, 60 * time.Second}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w {
			t.Errorf("attempt %d: %v, want %v", i+1, got, w)
		}
	}
	j := Backoff{} // default jitter: half of each delay random
	for n := 1; n <= 10; n++ {
		full := b.Delay(n)
		for range 100 {
			if d := j.Delay(n); d < full/2 || d > full {
				t.Fatalf("attempt %d: %v outside [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

func TestReconnectBackoffAndMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		type attempt struct {
			n int
			d time.Duration
		}
		attempts := make(chan attempt, 10)
		c, sc := startPipeClient(t, s, Options{
			Backoff:        Backoff{Initial: time.Second, Factor: 3, Jitter: -1, MaxAttempts: 3},
			OnReconnecting: func(n int, d time.Duration) { attempts <- attempt{n, d} },
		}, &packet.Connack{})
		sc.c.Close()
		start := time.Now()
		for i, want := range []attempt{{1, time.Second}, {2, 3 * time.Second}, {3, 9 * time.Second}} {
			if got := <-attempts; got != want {
				t.Errorf("attempt %d: %+v, want %+v", i, got, want)
			}
			sc, _ := s.accept(packet.V5)
			sc.send(&packet.Connack{ReasonCode: packet.ServerBusy})
			sc.c.Close()
		}
		<-c.Done()
		if d := time.Since(start); d != 13*time.Second {
			t.Errorf("gave up after %v, want 13s", d)
		}
		if err := c.Err(); !errors.Is(err, packet.ServerBusy) {
			t.Errorf("ended with %v", err)
		}
		if err := c.Publish(context.Background(), &Message{Topic: "x"}); !errors.Is(err, ErrClosed) || !errors.Is(err, packet.ServerBusy) {
			t.Errorf("publish after the end: %v", err)
		}
	})
}

// A slow handler stops the client from reading the socket once the
// dispatch queue is full (the server's writes block), and nothing is lost.
func TestDispatchBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		release := make(chan struct{})
		var got []string
		c, sc := startPipeClient(t, s, Options{DispatchQueue: 2, DefaultHandler: func(m *Message) {
			<-release
			got = append(got, string(m.Payload))
		}}, &packet.Connack{})
		const n = 200
		written := 0
		go func() {
			for i := range n {
				sc.send(&packet.Publish{QoS: byte(i % 2), PacketID: uint16(i%2) * uint16(i+1), Topic: "bp", Payload: []byte{byte(i)}})
				written++
			}
		}()
		synctest.Wait() // everyone is blocked: the handler, and the server in a write
		if written >= n {
			t.Fatalf("the client read all %d messages while its handler was blocked", n)
		}
		t.Logf("server blocked after %d of %d messages", written, n)
		close(release)
		for range n / 2 { // acknowledgements of the QoS 1 messages
			expect[*packet.Puback](sc)
		}
		synctest.Wait()
		if len(got) != n {
			t.Fatalf("delivered %d of %d", len(got), n)
		}
		for i, p := range got {
			if p[0] != byte(i) {
				t.Fatalf("message %d out of order", i)
			}
		}
		stopPipeClient(c, sc)
	})
}
