//go:build linux

package broker

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// tcpBroker serves b on a loopback listener and returns its address.
// parkingBroker skips where connections are not parked and otherwise
// returns a default broker serving TCP on a loopback address.
func parkingBroker(t *testing.T) (*Broker, string) {
	t.Helper()
	if !parkSupported {
		t.Skip("parking is Linux only")
	}
	b := newTestBroker(t, Config{})
	return b, tcpBroker(t, b)
}

func tcpBroker(t *testing.T, b *Broker) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(l)
	<-b.Ready()
	return l.Addr().String()
}

// dialTCP connects a test client over TCP.
func dialTCP(t *testing.T, addr, id string, keepAlive uint16) *tclient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &tclient{t: t, nc: nc, r: packet.NewReader(nc, 0), v: packet.V5, timeout: recvTimeout}
	c.connect(&packet.Connect{ClientID: id, CleanStart: true, KeepAlive: keepAlive})
	return c
}

// connByID returns the broker's connection of client id.
func connByID(b *Broker, id string) *conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		if c.sessionOrNil() != nil && c.info.ClientID == id {
			return c
		}
	}
	return nil
}

// waitParked polls until client id's connection is parked.
func waitParked(t *testing.T, b *Broker, id string) *conn {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c := connByID(b, id); c != nil && c.pstate.Load() == parkParked {
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("connection %s not parked", id)
	return nil
}

func TestIdleConnectionParksAndResumes(t *testing.T) {
	b, addr := parkingBroker(t)
	sub := dialTCP(t, addr, "sub", 0)
	sub.subscribe(1, packet.Subscription{Filter: "a/#", QoS: 1})
	pub := dialTCP(t, addr, "pub", 0)

	// Both go idle: parked, without a read buffer.
	for _, id := range []string{"sub", "pub"} {
		c := waitParked(t, b, id)
		b.parker.mu.Lock()
		if c.r.Buffered() != 0 || b.parker.conns[c.parkID] != c {
			t.Errorf("%s: parked with %d bytes buffered, registered %v", id, c.r.Buffered(), b.parker.conns[c.parkID] == c)
		}
		b.parker.mu.Unlock()
	}

	// Data wakes a parked connection; deliveries reach a parked one (the
	// write side does not depend on the read side).
	for i := range 3 {
		pub.publish(&packet.Publish{Topic: "a/b", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{byte(i)}})
		p := recvAs[*packet.Publish](sub)
		if p.Topic != "a/b" || len(p.Payload) != 1 || p.Payload[0] != byte(i) {
			t.Fatalf("got %+v", p)
		}
		sub.send(&packet.Puback{PacketID: p.PacketID})
		// Parked again after each round.
		waitParked(t, b, "pub")
		waitParked(t, b, "sub")
	}
	sub.sync()

	// A packet split across the parking: the first byte wakes the
	// connection, which waits for the rest without parking again.
	buf, _ := (&packet.Pingreq{}).AppendTo(nil, packet.V5)
	waitParked(t, b, "pub")
	pub.sendRaw(buf[:1])
	time.Sleep(2 * parkAfter)
	pub.sendRaw(buf[1:])
	recvAs[*packet.Pingresp](pub)

	// A packet left incomplete on an active connection: once idle it is
	// not parked (the rest is awaited), and its read side does not spin
	// on a passed deadline: a few deadline updates at most.
	pub.sync()
	pub.sendRaw(buf[:1])
	sets := readDeadlineSets.Load()
	time.Sleep(4 * parkAfter)
	if c := connByID(b, "pub"); c.pstate.Load() == parkParked {
		t.Error("parked in the middle of a packet")
	}
	if n := readDeadlineSets.Load() - sets; n > 10 {
		t.Errorf("%d read deadline updates while waiting for the rest of a packet", n)
	}
	pub.sendRaw(buf[1:])
	recvAs[*packet.Pingresp](pub)

	pub.disconnect()
	sub.disconnect()
}

func TestParkedConnectionKeepAliveExpires(t *testing.T) {
	b, addr := parkingBroker(t)
	c := dialTCP(t, addr, "ka", 1)
	waitParked(t, b, "ka")
	start := time.Now()
	// [MQTT-3.1.2-22] disconnected after one and a half times the keep
	// alive without a packet, parked or not.
	if d := recvAs[*packet.Disconnect](c); d.ReasonCode != packet.KeepAliveTimeout {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
	c.expectClosed()
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("keep alive expired after %v", el)
	}
}

func TestParkedConnectionKeepAliveRenewed(t *testing.T) {
	b, addr := parkingBroker(t)
	c := dialTCP(t, addr, "ka", 1)
	// A PINGREQ every second, each after the connection parked, keeps it.
	for range 4 {
		waitParked(t, b, "ka")
		time.Sleep(time.Second - parkAfter)
		c.sync()
	}
	c.disconnect()
}

func TestParkedConnectionTakeoverAndShutdown(t *testing.T) {
	b, addr := parkingBroker(t)
	old := dialTCP(t, addr, "x", 0)
	waitParked(t, b, "x")
	// [MQTT-3.1.4-3] the parked connection is taken over: DISCONNECT
	// 0x8E, its socket closed, and its read side ends.
	nw := dialTCP(t, addr, "x", 0)
	if d := recvAs[*packet.Disconnect](old); d.ReasonCode != packet.SessionTakenOver {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
	old.expectClosed()
	waitParked(t, b, "x")
	before := runtime.NumGoroutine()
	others := make([]*tclient, 20)
	for i := range others {
		others[i] = dialTCP(t, addr, "o"+string(rune('a'+i)), 0)
	}
	for i := range others {
		waitParked(t, b, "o"+string(rune('a'+i)))
	}
	// Parked connections hold no goroutine.
	if n := runtime.NumGoroutine(); n > before+5 {
		t.Errorf("%d goroutines with 20 parked connections, %d before", n, before)
	}
	// Shutdown wakes and ends every parked connection (goleak checks that
	// nothing is left); a v5 client hears why.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := recvAs[*packet.Disconnect](nw); d.ReasonCode != packet.ServerShuttingDown {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
	nw.expectClosed()
	for _, o := range others {
		recvAs[*packet.Disconnect](o)
		o.expectClosed()
	}
}
