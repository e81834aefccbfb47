package broker

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// newTestBroker returns a broker that is shut down when the test ends.
// $SYS is off unless the config asks for it.
func newTestBroker(t testing.TB, cfg Config) *Broker {
	t.Helper()
	if cfg.SysInterval == 0 {
		cfg.SysInterval = -1
	}
	b := New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return b
}

// tclient is a raw MQTT client for tests: it sends and receives packets
// exactly as given, so tests can check the broker's every byte.
type tclient struct {
	t       testing.TB
	timeout time.Duration // how long recv waits; long under synctest
	nc      net.Conn
	r       *packet.Reader
	v       packet.Version
}

func newTClient(t testing.TB, b *Broker, v packet.Version) *tclient {
	t.Helper()
	nc := b.InProcessConn()
	t.Cleanup(func() { nc.Close() })
	return &tclient{t: t, nc: nc, r: packet.NewReader(nc, 0), v: v, timeout: recvTimeout}
}

func (c *tclient) send(p packet.Packet) {
	c.t.Helper()
	buf, err := p.AppendTo(nil, c.v)
	if err != nil {
		c.t.Fatalf("encode %s: %v", p.Type(), err)
	}
	c.sendRaw(buf)
}

func (c *tclient) sendRaw(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recvTimeout is how long recv waits. Tests under testing/synctest run on
// fake time, where waiting costs nothing, so it is generous.
var recvTimeout = 5 * time.Second

// recv returns the next packet, failing the test after c.timeout.
func (c *tclient) recv() packet.Packet {
	c.t.Helper()
	p, err := c.tryRecv(c.timeout)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return p
}

func (c *tclient) tryRecv(d time.Duration) (packet.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	return c.r.ReadPacket(c.v)
}

// expectNothing checks that no packet arrives within d (fake time under
// synctest, so it costs nothing there).
func (c *tclient) expectNothing(d time.Duration) {
	c.t.Helper()
	p, err := c.tryRecv(d)
	if err == nil {
		c.t.Fatalf("unexpected %s: %+v", p.Type(), p)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("expected silence, got error %v", err)
	}
}

// expectClosed checks that the broker closed the connection.
func (c *tclient) expectClosed() {
	c.t.Helper()
	p, err := c.tryRecv(5 * time.Second)
	if err == nil {
		c.t.Fatalf("expected close, got %s %+v", p.Type(), p)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, io.ErrUnexpectedEOF) {
		c.t.Fatalf("expected close, got %v", err)
	}
}

func recvAs[T packet.Packet](c *tclient) T {
	c.t.Helper()
	p := c.recv()
	v, ok := p.(T)
	if !ok {
		var zero T
		c.t.Fatalf("got %s %+v, want %T", p.Type(), p, zero)
	}
	return v
}

// connect sends CONNECT and returns the CONNACK, failing unless it is a
// success.
func (c *tclient) connect(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	ack := c.connectRaw(cp)
	if ack.ReasonCode != packet.Success {
		c.t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	return ack
}

func (c *tclient) connectRaw(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	if cp.Version == 0 {
		cp.Version = c.v
	}
	c.send(cp)
	return recvAs[*packet.Connack](c)
}

// dial connects a new test client with a clean session.
func dial(t testing.TB, b *Broker, v packet.Version, id string) *tclient {
	t.Helper()
	c := newTClient(t, b, v)
	c.connect(&packet.Connect{ClientID: id, CleanStart: true})
	return c
}

func (c *tclient) subscribe(id uint16, subs ...packet.Subscription) *packet.Suback {
	c.t.Helper()
	c.send(&packet.Subscribe{PacketID: id, Subscriptions: subs})
	return recvAs[*packet.Suback](c)
}

func (c *tclient) publish(p *packet.Publish) {
	c.t.Helper()
	c.send(p)
	switch p.QoS {
	case 1:
		a := recvAs[*packet.Puback](c)
		if a.PacketID != p.PacketID || a.ReasonCode.IsError() {
			c.t.Fatalf("PUBACK %+v", a)
		}
	case 2:
		a := recvAs[*packet.Pubrec](c)
		if a.PacketID != p.PacketID || a.ReasonCode.IsError() {
			c.t.Fatalf("PUBREC %+v", a)
		}
		c.send(&packet.Pubrel{PacketID: p.PacketID})
		if cp := recvAs[*packet.Pubcomp](c); cp.PacketID != p.PacketID {
			c.t.Fatalf("PUBCOMP %+v", cp)
		}
	}
}

// sync waits for a PINGRESP: the broker handles a connection's packets in
// order, so every packet sent before it (QoS 0 publishes included) has been
// routed when it returns.
func (c *tclient) sync() {
	c.t.Helper()
	c.send(&packet.Pingreq{})
	recvAs[*packet.Pingresp](c)
}

func (c *tclient) disconnect() {
	c.t.Helper()
	c.send(&packet.Disconnect{})
	c.expectClosed()
}
