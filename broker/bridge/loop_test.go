package bridge

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// fakeClock is a manually advanced clock for the loop cache.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLoopCacheTTL(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	c := newLoopCache(60*time.Second, 100, clk.now)
	fp := fingerprintOf("a/b", []byte("x"), 1, false)
	if !c.forward(fp, Out) {
		t.Fatal("first forward refused")
	}
	if !c.forward(fp, Out) {
		t.Fatal("same direction again refused: only the opposite direction is a loop")
	}
	clk.advance(59 * time.Second)
	if c.forward(fp, In) {
		t.Fatal("message coming back within the TTL was forwarded")
	}
	clk.advance(time.Second) // 60 s after the last forward Out
	if !c.forward(fp, In) {
		t.Fatal("message coming back after the TTL was refused")
	}
	if c.forward(fp, Out) {
		t.Fatal("forward In was not recorded")
	}
	clk.advance(61 * time.Second)
	c.forward(fingerprintOf("other", nil, 0, false), Out)
	if n := c.len(); n != 1 {
		t.Fatalf("%d entries after expiry, want 1", n)
	}
}

func TestLoopCacheFingerprintFields(t *testing.T) {
	c := newLoopCache(time.Minute, 100, nil)
	c.forward(fingerprintOf("t", []byte("p"), 1, false), Out)
	for _, fp := range []fingerprint{
		fingerprintOf("t2", []byte("p"), 1, false),
		fingerprintOf("t", []byte("p2"), 1, false),
		fingerprintOf("t", []byte("p"), 2, false),
		fingerprintOf("t", []byte("p"), 1, true),
		fingerprintOf("tp", nil, 1, false), // topic and payload are not just concatenated
	} {
		if !c.forward(fp, In) {
			t.Errorf("a different message was taken for a loop")
		}
	}
	if c.forward(fingerprintOf("t", []byte("p"), 1, false), In) {
		t.Error("the same message was not recognised")
	}
}

func TestLoopCacheBound(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	const max = 100
	c := newLoopCache(time.Hour, max, clk.now)
	fp := func(i int) fingerprint { return fingerprintOf(fmt.Sprintf("t/%d", i), nil, 0, false) }
	for i := range 3 * max {
		clk.advance(time.Millisecond)
		c.forward(fp(i), Out)
		if n := c.len(); n > max {
			t.Fatalf("%d entries, bound %d", n, max)
		}
	}
	if c.len() != max {
		t.Fatalf("%d entries, want %d", c.len(), max)
	}
	// The newest max entries are kept, the older ones were evicted.
	if !c.forward(fp(2*max-1), In) {
		t.Error("evicted entry still present")
	}
	if c.forward(fp(3*max-1), In) {
		t.Error("newest entry evicted")
	}
	// Refreshing an entry makes it the newest: it outlives older ones.
	c = newLoopCache(time.Hour, 3, clk.now)
	c.forward(fp(1), Out)
	c.forward(fp(2), Out)
	c.forward(fp(3), Out)
	c.forward(fp(1), Out) // refresh
	c.forward(fp(4), Out) // evicts 2
	if c.forward(fp(1), In) {
		t.Error("refreshed entry evicted")
	}
	if !c.forward(fp(2), In) {
		t.Error("oldest entry not evicted")
	}
}

func TestOrigins(t *testing.T) {
	user := []packet.UserProperty{{Key: "k", Value: "v"}}
	u1 := withOrigin(user, "a")
	u2 := withOrigin(u1, "b")
	if len(user) != 1 || len(u1) != 2 {
		t.Fatal("withOrigin modified its input")
	}
	if h, own := origins(u2, "a"); h != 2 || !own {
		t.Errorf("origins = %d %v, want 2 true", h, own)
	}
	if h, own := origins(u2, "c"); h != 2 || own {
		t.Errorf("origins = %d %v, want 2 false", h, own)
	}
	if h, _ := origins(user, "a"); h != 0 {
		t.Errorf("hops %d for a local message", h)
	}
}
