package auth

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// fxFixedAuth accepts the password "good" and counts its calls.
type fxFixedAuth struct{ calls atomic.Int64 }

func (f *fxFixedAuth) Authenticate(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
	f.calls.Add(1)
	if string(req.Password) == "good" {
		return broker.AuthResult{Code: packet.Success}
	}
	if string(req.Password) == "busy" {
		return broker.AuthResult{Code: packet.ServerBusy}
	}
	return broker.AuthResult{Code: packet.BadUserNameOrPassword}
}

func fxFrom(ip, user, password string) *broker.AuthRequest {
	r := fxConnect(packet.V5, user, password)
	r.Client.RemoteAddr = &net.TCPAddr{IP: net.ParseIP(ip), Port: 50000}
	return r
}

var fxQuiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Five failures within the window lock the address out for the lockout
// period with Banned; then the counting starts over.
func TestRateLimitLockout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := &fxFixedAuth{}
		a := RateLimit(inner, RateLimitConfig{Logger: fxQuiet})
		ctx := context.Background()
		for i := range 4 {
			// A different user each time: only the address is counted up.
			if res := a.Authenticate(ctx, fxFrom("192.0.2.7", string(rune('a'+i)), "bad")); res.Code != packet.BadUserNameOrPassword {
				t.Fatalf("failure %d: %v", i+1, res.Code)
			}
		}
		// Failures that are not about credentials are not counted.
		if res := a.Authenticate(ctx, fxFrom("192.0.2.7", "x", "busy")); res.Code != packet.ServerBusy {
			t.Fatalf("busy: %v", res.Code)
		}
		if res := a.Authenticate(ctx, fxFrom("192.0.2.7", "e", "bad")); res.Code != packet.BadUserNameOrPassword {
			t.Fatalf("failure 5: %v", res.Code)
		}
		calls := inner.calls.Load()
		res := a.Authenticate(ctx, fxFrom("192.0.2.7", "alice", "good"))
		if res.Code != packet.Banned || res.Reason == "" {
			t.Fatalf("locked out address: %v %q", res.Code, res.Reason)
		}
		if inner.calls.Load() != calls {
			t.Fatal("the inner authenticator was consulted during the lockout")
		}
		// Another address is not affected.
		if res := a.Authenticate(ctx, fxFrom("192.0.2.8", "alice", "good")); res.Code != packet.Success {
			t.Fatalf("other address: %v", res.Code)
		}
		time.Sleep(299 * time.Second)
		if res := a.Authenticate(ctx, fxFrom("192.0.2.7", "alice", "good")); res.Code != packet.Banned {
			t.Fatalf("before the lockout ends: %v", res.Code)
		}
		time.Sleep(time.Second)
		if res := a.Authenticate(ctx, fxFrom("192.0.2.7", "alice", "good")); res.Code != packet.Success {
			t.Fatalf("after the lockout: %v", res.Code)
		}
	})
}

// Failures spread over more than the window do not lock out.
func TestRateLimitWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := RateLimit(&fxFixedAuth{}, RateLimitConfig{MaxFailures: 3, Window: 10 * time.Second, Lockout: time.Minute, Logger: fxQuiet})
		ctx := context.Background()
		for range 2 {
			a.Authenticate(ctx, fxFrom("192.0.2.1", "", "bad"))
		}
		time.Sleep(10 * time.Second) // the window is over
		for range 2 {
			a.Authenticate(ctx, fxFrom("192.0.2.1", "", "bad"))
		}
		if res := a.Authenticate(ctx, fxFrom("192.0.2.1", "", "good")); res.Code != packet.Success {
			t.Fatalf("after 2+2 failures in two windows: %v", res.Code)
		}
		a.Authenticate(ctx, fxFrom("192.0.2.1", "", "bad"))
		if res := a.Authenticate(ctx, fxFrom("192.0.2.1", "", "good")); res.Code != packet.Banned {
			t.Fatalf("after 3 failures in one window: %v", res.Code)
		}
	})
}

// A user name is locked out whatever the address; a success clears the
// user name's failures. IPv6 addresses count per /64.
func TestRateLimitUserAndIPv6(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := RateLimit(&fxFixedAuth{}, RateLimitConfig{MaxFailures: 2, Logger: fxQuiet})
		ctx := context.Background()
		a.Authenticate(ctx, fxFrom("192.0.2.1", "alice", "bad"))
		a.Authenticate(ctx, fxFrom("192.0.2.2", "alice", "good")) // clears alice
		a.Authenticate(ctx, fxFrom("192.0.2.3", "alice", "bad"))
		if res := a.Authenticate(ctx, fxFrom("192.0.2.4", "alice", "good")); res.Code != packet.Success {
			t.Fatalf("alice after a success in between: %v", res.Code)
		}
		a.Authenticate(ctx, fxFrom("192.0.2.5", "alice", "bad"))
		a.Authenticate(ctx, fxFrom("192.0.2.6", "alice", "bad"))
		if res := a.Authenticate(ctx, fxFrom("192.0.2.7", "alice", "good")); res.Code != packet.Banned {
			t.Fatalf("alice from a fresh address: %v", res.Code)
		}
		if res := a.Authenticate(ctx, fxFrom("192.0.2.7", "bob", "good")); res.Code != packet.Success {
			t.Fatalf("bob: %v", res.Code)
		}
		a.Authenticate(ctx, fxFrom("2001:db8:1:2::1", "", "bad"))
		a.Authenticate(ctx, fxFrom("2001:db8:1:2::ffff", "", "bad"))
		if res := a.Authenticate(ctx, fxFrom("2001:db8:1:2:abcd::9", "", "good")); res.Code != packet.Banned {
			t.Fatalf("same /64: %v", res.Code)
		}
		if res := a.Authenticate(ctx, fxFrom("2001:db8:1:3::1", "", "good")); res.Code != packet.Success {
			t.Fatalf("other /64: %v", res.Code)
		}
		// IPv4-mapped IPv6 is the IPv4 address.
		if k := addrKey(&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.9")}); k != "ip:192.0.2.9" {
			t.Fatalf("mapped key %q", k)
		}
		if k := addrKey(&net.UnixAddr{Name: "@x", Net: "unix"}); k != "" {
			t.Fatalf("unix key %q", k)
		}
	})
}

// Memory is bounded: beyond MaxEntries the least recently updated
// entries are forgotten.
func TestRateLimitBoundedMemory(t *testing.T) {
	a := RateLimit(&fxFixedAuth{}, RateLimitConfig{MaxFailures: 2, MaxEntries: 10, Logger: fxQuiet})
	ctx := context.Background()
	// 192.0.2.0 gets one failure first, then 20 others fail once each.
	a.Authenticate(ctx, fxFrom("192.0.2.0", "", "bad"))
	for i := 1; i <= 20; i++ {
		a.Authenticate(ctx, fxFrom(net.IPv4(192, 0, 2, byte(i)).String(), "", "bad"))
	}
	if n := a.(*rateLimiter).tracked(); n != 10 {
		t.Fatalf("%d entries tracked with a bound of 10", n)
	}
	// The first address was evicted, so one more failure does not lock it.
	a.Authenticate(ctx, fxFrom("192.0.2.0", "", "bad"))
	if res := a.Authenticate(ctx, fxFrom("192.0.2.0", "", "good")); res.Code != packet.Success {
		t.Fatalf("evicted address: %v", res.Code)
	}
	// The most recent one was kept: a second failure locks it.
	a.Authenticate(ctx, fxFrom("192.0.2.20", "", "bad"))
	if res := a.Authenticate(ctx, fxFrom("192.0.2.20", "", "good")); res.Code != packet.Banned {
		t.Fatalf("recent address: %v", res.Code)
	}
}

// The lockout applies at the first step of an exchange only; a Provider
// stays a Provider; the clock can be injected.
func TestRateLimitStepsAndProvider(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	pf := fxPasswordFile(t, PasswordFileOptions{}, "alice", "good")
	a := RateLimit(pf, RateLimitConfig{MaxFailures: 1, Now: func() time.Time { return now }, Logger: fxQuiet})
	p, ok := a.(Provider)
	if !ok || !p.Handles(fxConnect(packet.V5, "alice", "x")) {
		t.Fatal("a rate-limited Provider is not a Provider")
	}
	ctx := context.Background()
	a.Authenticate(ctx, fxFrom("192.0.2.1", "alice", "bad"))
	if res := a.Authenticate(ctx, fxFrom("192.0.2.1", "alice", "good")); res.Code != packet.Banned {
		t.Fatalf("locked: %v", res.Code)
	}
	now = now.Add(301 * time.Second)
	if res := a.Authenticate(ctx, fxFrom("192.0.2.1", "alice", "good")); res.Code != packet.Success {
		t.Fatalf("after lockout with injected clock: %v", res.Code)
	}
	if _, ok := RateLimit(&fxFixedAuth{}, RateLimitConfig{}).(Provider); ok {
		t.Fatal("a plain authenticator became a Provider")
	}
}
