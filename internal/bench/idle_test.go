package bench

import (
	"context"
	"net"
	"runtime"
	"testing"
)

func TestIdleDialerSpreadsSourceAddresses(t *testing.T) {
	local := Target{Scheme: "mqtt", Addr: "127.0.0.1:1883"}
	for _, tc := range []struct {
		name    string
		target  Target
		n, want int
	}{
		{"few", local, perSourceAddr, 0},
		{"two", local, perSourceAddr + 1, 2},
		{"100k", local, 100_000, 10},
		{"tcp scheme", Target{Scheme: "tcp", Addr: "127.0.0.5:1883"}, 2*perSourceAddr + 1, 3},
		{"websocket", Target{Scheme: "ws", Addr: "127.0.0.1:8080"}, 100_000, 0},
		{"IPv6", Target{Scheme: "mqtt", Addr: "[::1]:1883"}, 100_000, 0},
		{"name", Target{Scheme: "mqtt", Addr: "localhost:1883"}, 100_000, 0},
	} {
		d, k := idleDialer(tc.target, tc.n)
		if k != tc.want || len(d.src) != tc.want {
			t.Errorf("%s: %d source addresses (%d dialers), want %d", tc.name, k, len(d.src), tc.want)
		}
		if tc.want == 0 && d.at(7) != tc.target.Dialer {
			t.Errorf("%s: not the target's dialer", tc.name)
		}
	}
}

func TestIdleDialerDialsFromEachSource(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("127.0.0.2 and above are loopback on Linux")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, k := idleDialer(Target{Scheme: "mqtt", Addr: l.Addr().String()}, 3*perSourceAddr)
	if k != 3 {
		t.Fatalf("%d source addresses", k)
	}
	for i := range k {
		c, err := d.at(i).Dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got := s.RemoteAddr().(*net.TCPAddr).IP.String()
		if want := net.IPv4(127, 0, 0, byte(1+i)).String(); got != want {
			t.Errorf("connection %d from %s, want %s", i, got, want)
		}
		c.Close()
		s.Close()
	}
}
