package netfault_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/internal/netfault"
)

// The TUN link carries TCP between two namespaces, delays it, and a cut
// stops it until Restore.
func TestTUNLink(t *testing.T) {
	a, b := netfault.NewNetns(t, "a"), netfault.NewNetns(t, "b")
	link := netfault.NewTUNLink(t, netfault.End{NS: a, Dev: "mq0", Addr: clientAddr}, netfault.End{NS: b, Dev: "mq0", Addr: brokerAddr},
		netfault.LinkConfig{Impairment: netfault.Impairment{Delay: 20 * time.Millisecond}})
	c := echoConn(t, a, b)
	echo := func() time.Duration {
		t.Helper()
		start := time.Now()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	if rtt := echo(); rtt < 40*time.Millisecond {
		t.Fatalf("round trip %v through a link delaying 20 ms each way", rtt)
	}
	link.Cut()
	c.Write([]byte("lost"))
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 4)); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through a cut link: %d bytes, %v", n, err)
	}
	link.Restore()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "lost" {
		t.Fatalf("after restore: %q, %v", buf, err)
	}
	st := link.Stats()
	if st.CutDropped == 0 {
		t.Fatalf("the cut dropped nothing: %v", st)
	}
	if err := link.Err(); err != nil {
		t.Fatal(err)
	}
	t.Log(st)
}

// A veth pair joins two namespaces (netem, where the kernel has it, is
// tried by TestLossAndLatency).
func TestVethLink(t *testing.T) {
	a, b := netfault.NewNetns(t, "a"), netfault.NewNetns(t, "b")
	netfault.NewVethLink(t, netfault.End{NS: a, Dev: "veth0", Addr: clientAddr}, netfault.End{NS: b, Dev: "veth1", Addr: brokerAddr})
	c := echoConn(t, a, b)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	if err := netfault.NetemAvailable(); err != nil {
		t.Logf("netem: %v", err)
	} else {
		t.Log("netem: available")
	}
}

// echoConn starts a TCP echo server in b and returns a connection to it
// from a; both end with the test.
func echoConn(t *testing.T, a, b *netfault.Netns) net.Conn {
	t.Helper()
	l, err := b.Listen("tcp", brokerAddr.String()+":7000")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "tcp", brokerAddr.String()+":7000")
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		l.Close()
		<-served
	})
	return c
}
