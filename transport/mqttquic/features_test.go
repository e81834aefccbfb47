package mqttquic_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

// TestSingleStreamNeverGetsServerStreams: whatever the delivery strategy,
// a client that negotiated "mqtt" only ever sees its one stream.
func TestSingleStreamNeverGetsServerStreams(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{Delivery: mqttquic.DeliveryPerPublish, Datagrams: true}, broker.Config{})
	sub := e.connect("sub", mqttquic.DialConfig{Single: true, Datagrams: true}, nil)
	pub := e.connect("pub", mqttquic.DialConfig{}, nil)
	sub.subscribe("n/#", 2)
	for i := 0; i < 9; i++ {
		pub.publish("n/x", byte(i%3), payload(i))
		if p := sub.receive(); string(p.Payload) != string(payload(i)) {
			t.Fatalf("got %+v", p)
		}
	}
	sub.ping()
	srv := e.serverConn(sub.c)
	if s := srv.Stats(); s.StreamsOpened != 0 || s.DatagramsOut != 0 {
		t.Fatalf("server stats %+v", s)
	}
	if s := sub.c.Stats(); s.StreamsAccepted != 0 || s.ALPN != mqttquic.ALPNSingle {
		t.Fatalf("client stats %+v", s)
	}
	pub.disconnect()
	sub.disconnect()
}

// TestDatagrams: QoS 0 PUBLISH packets travel as datagrams when both
// sides enable them, and on streams otherwise or when too large.
func TestDatagrams(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{Datagrams: true}, broker.Config{})
	sub := e.connect("sub", mqttquic.DialConfig{Datagrams: true}, nil)
	plain := e.connect("plain", mqttquic.DialConfig{}, nil)
	pub := e.connect("pub", mqttquic.DialConfig{Datagrams: true}, nil)
	sub.subscribe("g/#", 1)
	plain.subscribe("g/#", 1)
	const n = 10
	for i := 0; i < n; i++ {
		pub.publish("g/x", 0, payload(i))
		for _, c := range []*mclient{sub, plain} {
			if p := c.receive(); string(p.Payload) != string(payload(i)) {
				t.Fatalf("got %+v", p)
			}
		}
	}
	pub.publish("g/x", 1, payload(n))
	big := make([]byte, 4000)
	pub.publish("g/x", 0, big)
	for _, c := range []*mclient{sub, plain} {
		if p := c.receive(); p.QoS != 1 {
			t.Fatalf("got %+v", p)
		}
		if p := c.receive(); len(p.Payload) != len(big) {
			t.Fatalf("got %d bytes", len(p.Payload))
		}
	}
	if s := sub.c.Stats(); s.DatagramsIn != n {
		t.Errorf("subscriber datagrams in %d, want %d", s.DatagramsIn, n)
	}
	if s := plain.c.Stats(); s.DatagramsIn != 0 {
		t.Errorf("plain subscriber datagrams in %d", s.DatagramsIn)
	}
	if s := pub.c.Stats(); s.DatagramsOut != n {
		t.Errorf("publisher datagrams out %d, want %d", s.DatagramsOut, n)
	}
	if s := e.serverConn(pub.c).Stats(); s.DatagramsIn != n {
		t.Errorf("broker datagrams in %d, want %d", s.DatagramsIn, n)
	}
	pub.disconnect()
	plain.disconnect()
	sub.disconnect()
}

// TestMigration: 500 QoS 1 messages flow publisher -> broker ->
// subscriber while both clients move to new UDP sockets; none is lost
// and the broker sees the new addresses.
func TestMigration(t *testing.T) {
	const total = 500
	e := newEnv(t, mqttquic.ServerConfig{}, broker.Config{})
	sub := e.connect("sub", mqttquic.DialConfig{}, nil)
	pub := e.connect("pub", mqttquic.DialConfig{Strategy: mqttquic.StrategyDataPerTopic}, nil)
	sub.subscribe("m/#", 1)
	srvPub, srvSub := e.serverConn(pub.c), e.serverConn(sub.c)
	oldPub, oldSub := srvPub.RemoteAddr().String(), srvSub.RemoteAddr().String()

	var received atomic.Int64
	subErr := make(chan error, 1)
	seen := make([]int, total)
	go func() {
		subErr <- func() error {
			for received.Load() < total {
				sub.c.SetReadDeadline(time.Now().Add(waitFor))
				p, err := sub.r.ReadPacket(packet.V5)
				if err != nil {
					return err
				}
				pp, ok := p.(*packet.Publish)
				if !ok {
					return errors.New("not a PUBLISH")
				}
				var i int
				for _, c := range pp.Payload[1:] {
					i = i*10 + int(c-'0')
				}
				seen[i]++
				b, _ := (&packet.Puback{PacketID: pp.PacketID}).AppendTo(nil, packet.V5)
				if _, err := sub.c.Write(b); err != nil {
					return err
				}
				received.Add(1)
			}
			return nil
		}()
	}()
	pubErr := make(chan error, 1)
	var sent atomic.Int64
	go func() {
		pubErr <- func() error {
			for i := 0; i < total; i++ {
				b, _ := (&packet.Publish{Topic: "m/x", QoS: 1, PacketID: uint16(i + 1), Payload: payload(i)}).AppendTo(nil, packet.V5)
				if _, err := pub.c.Write(b); err != nil {
					return err
				}
				pub.c.SetReadDeadline(time.Now().Add(waitFor))
				p, err := pub.r.ReadPacket(packet.V5)
				if err != nil {
					return err
				}
				if a, ok := p.(*packet.Puback); !ok || a.PacketID != uint16(i+1) {
					return errors.New("unexpected acknowledgement")
				}
				sent.Add(1)
			}
			return nil
		}()
	}()
	poll(t, "traffic to start", func() bool { return received.Load() >= total/4 })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := pub.c.Migrate(ctx); err != nil {
		t.Fatalf("migrate publisher: %v", err)
	}
	if err := sub.c.Migrate(ctx); err != nil {
		t.Fatalf("migrate subscriber: %v", err)
	}
	if err := <-pubErr; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	if err := <-subErr; err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("message %d received %d times", i, n)
		}
	}
	// The server follows the path the client switched to.
	poll(t, "broker to see the new addresses", func() bool {
		return srvPub.RemoteAddr().String() != oldPub && srvSub.RemoteAddr().String() != oldSub
	})
	if got, want := srvPub.RemoteAddr().(*net.UDPAddr).Port, pub.c.LocalAddr().(*net.UDPAddr).Port; got != want {
		t.Fatalf("broker sees port %d, publisher is on %d", got, want)
	}
	if s := pub.c.Stats(); s.Migrations != 1 {
		t.Fatalf("stats %+v", s)
	}
	sub.ping()
	pub.disconnect()
	sub.disconnect()
}

// TestTopicAliases: aliases set by the publisher and by the broker are
// resolved by the transport, so deliveries over several flows always
// carry their topic.
func TestTopicAliases(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{Delivery: mqttquic.DeliveryPerPublish},
		broker.Config{Capabilities: broker.Capabilities{OutboundTopicAliases: 10}})
	sub := e.connect("sub", mqttquic.DialConfig{}, &packet.Connect{Props: packet.Properties{TopicAliasMaximum: 10}})
	pub := e.connect("pub", mqttquic.DialConfig{Strategy: mqttquic.StrategyDataPerPublish}, nil)
	sub.subscribe("a/#", 1)
	for i := 0; i < 6; i++ {
		p := &packet.Publish{Topic: "a/b", QoS: 1, PacketID: pub.nextID(), Payload: payload(i)}
		p.Props.TopicAlias = 1
		if i > 0 {
			p.Topic = "" // the alias alone
		}
		pub.send(p)
		if a, ok := pub.recv().(*packet.Puback); !ok || a.ReasonCode != packet.Success {
			t.Fatalf("PUBACK %+v", a)
		}
		d := sub.receive()
		if d.Topic != "a/b" || d.Props.Has(packet.PropTopicAlias) || string(d.Payload) != string(payload(i)) {
			t.Fatalf("delivery %d: %+v", i, d)
		}
	}
	pub.disconnect()
	sub.disconnect()
}

// TestTopicStreamsLRUAndIdle: per-topic flows beyond TopicStreams evict
// the least recently used one, and idle ones are closed.
func TestTopicStreamsLRUAndIdle(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{TopicStreams: 2, TopicStreamIdle: 50 * time.Millisecond}, broker.Config{})
	sub := e.connect("sub", mqttquic.DialConfig{}, nil)
	pub := e.connect("pub", mqttquic.DialConfig{}, nil)
	sub.subscribe("l/#", 0)
	for _, topic := range []string{"l/a", "l/b", "l/c", "l/a"} {
		pub.publish(topic, 0, nil)
		if p := sub.receive(); p.Topic != topic {
			t.Fatalf("got %+v", p)
		}
	}
	srv := e.serverConn(sub.c)
	if s := srv.Stats(); s.StreamsOpened != 4 {
		t.Fatalf("streams opened %d, want 4 (l/a evicted by l/c, reopened)", s.StreamsOpened)
	}
	poll(t, "idle topic flows to close", func() bool {
		return srv.Stats().FlowsOpen == 0 && sub.c.Stats().FlowsOpen == 0
	})
	pub.publish("l/a", 0, nil)
	if p := sub.receive(); p.Topic != "l/a" {
		t.Fatalf("got %+v", p)
	}
	pub.disconnect()
	sub.disconnect()
}

// TestRefuseServerFlows: a client refusing server-initiated flows still
// receives everything, on the control flow.
func TestRefuseServerFlows(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{Delivery: mqttquic.DeliveryPerPublish}, broker.Config{})
	sub := e.connect("sub", mqttquic.DialConfig{RefuseServerFlows: true}, nil)
	pub := e.connect("pub", mqttquic.DialConfig{}, nil)
	sub.subscribe("r/#", 1)
	srv := e.serverConn(sub.c)
	for i := 0; i < 5; i++ {
		pub.publish("r/x", 1, payload(i))
		if p := sub.receive(); string(p.Payload) != string(payload(i)) {
			t.Fatalf("got %+v", p)
		}
		// The first flow is read, and refused; the broker then keeps to
		// the control flow.
		poll(t, "refused flow to end", func() bool { return srv.Stats().FlowsOpen == 0 })
	}
	if s := sub.c.Stats(); s.StreamsAccepted != 1 || s.DataIn != 1 || s.DataOut != 0 || s.StreamsReset != 1 {
		t.Fatalf("stats %+v", s)
	}
	pub.disconnect()
	sub.disconnect()
}

// TestKeepAlive: the broker's keep alive works through the multistream
// read deadline.
func TestKeepAlive(t *testing.T) {
	e := newEnv(t, mqttquic.ServerConfig{}, broker.Config{})
	c := e.connect("idle", mqttquic.DialConfig{}, &packet.Connect{KeepAlive: 1})
	d, ok := c.recv().(*packet.Disconnect)
	if !ok || d.ReasonCode != packet.KeepAliveTimeout {
		t.Fatalf("got %+v", d)
	}
}

// TestConnBasics: deadlines, Close unblocking Read, partial writes.
func TestConnBasics(t *testing.T) {
	for _, single := range []bool{false, true} {
		e := newEnv(t, mqttquic.ServerConfig{}, broker.Config{})
		c := e.connect("basics", mqttquic.DialConfig{Single: single}, nil)
		// A packet written in pieces.
		b, _ := (&packet.Pingreq{}).AppendTo(nil, packet.V5)
		b2, _ := (&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "x"}}}).AppendTo(nil, packet.V5)
		all := append(b, b2...)
		for _, part := range [][]byte{all[:1], all[1:3], all[3:]} {
			if _, err := c.c.Write(part); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok := c.recv().(*packet.Pingresp); !ok {
			t.Fatal("no PINGRESP")
		}
		if _, ok := c.recv().(*packet.Suback); !ok {
			t.Fatal("no SUBACK")
		}
		c.c.SetReadDeadline(time.Now().Add(-time.Second))
		var buf [16]byte
		_, err := c.c.Read(buf[:])
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read after deadline: %v", err)
		}
		c.c.SetReadDeadline(time.Time{})
		done := make(chan error, 1)
		go func() {
			_, err := c.c.Read(buf[:])
			done <- err
		}()
		c.c.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
		if _, err := c.c.Write(b); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after close: %v", err)
		}
		if err := c.c.Migrate(context.Background()); err == nil {
			t.Fatal("migrate after close succeeded")
		}
	}
}

// TestControlStreamErrors: a data flow header on the control stream, or
// a control header with a non-zero flow id, closes the connection.
func TestControlStreamErrors(t *testing.T) {
	for _, h := range [][]byte{{0x12, 0x02, 0x00, 0x04}, {0x11, 0x02, 0x04}} {
		e := newEnv(t, mqttquic.ServerConfig{}, broker.Config{})
		rc := e.rawDial(h)
		if code := rc.closedWith(); code != mqttquic.ConnProtocolLevel0 {
			t.Fatalf("header % x: closed with %v", h, code)
		}
	}
	// A valid control header is accepted.
	e := newEnv(t, mqttquic.ServerConfig{}, broker.Config{})
	rc := e.rawDial([]byte{0x11, 0x00, 0x04})
	rc.connect("ok")
	rc.ping()
}

// TestDisconnectDelivered: a DISCONNECT written just before Close reaches
// the peer (Close lets the streams drain).
func TestDisconnectDelivered(t *testing.T) {
	for _, single := range []bool{false, true} {
		e := newEnv(t, mqttquic.ServerConfig{}, broker.Config{})
		// The broker takes over a client id and disconnects the old
		// connection with Session Taken Over.
		old := e.connect("same", mqttquic.DialConfig{Single: single}, nil)
		e.connect("same", mqttquic.DialConfig{Single: single}, nil)
		d, ok := old.recv().(*packet.Disconnect)
		if !ok || d.ReasonCode != packet.SessionTakenOver {
			t.Fatalf("got %+v", d)
		}
		old.c.SetReadDeadline(time.Now().Add(waitFor))
		var buf [8]byte
		if _, err := old.c.Read(buf[:]); err == nil || !strings.Contains(err.Error(), "EOF") {
			t.Fatalf("after DISCONNECT: %v", err)
		}
	}
}
