package broker

import (
	"context"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/packet"
)

// publishPayloads publishes each payload on topic at QoS 1 (acknowledged with
// Success whether delivered or skipped).
func publishPayloads(c *tclient, topic string, payloads ...string) {
	c.t.Helper()
	for i, p := range payloads {
		c.send(&packet.Publish{Topic: topic, QoS: 1, PacketID: uint16(i + 1), Payload: []byte(p)})
		if a := recvAs[*packet.Puback](c); a.ReasonCode != packet.Success {
			c.t.Fatalf("PUBACK %v for %q", a.ReasonCode, p)
		}
	}
}

// expectPayloads receives QoS 0 messages and checks their payloads in order,
// then that nothing else arrives.
func expectPayloads(c *tclient, want ...string) {
	c.t.Helper()
	for _, w := range want {
		if p := recvAs[*packet.Publish](c); string(p.Payload) != w {
			c.t.Fatalf("got %q on %q, want %q", p.Payload, p.Topic, w)
		}
	}
	c.expectNothing(50 * time.Millisecond)
}

func TestChangeOnlySkipsRepeatedPayloads(t *testing.T) {
	b := newTestBroker(t, Config{ChangeOnly: ChangeOnlyConfig{Patterns: []string{"sensors/+/temp"}}})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "#"})
	bridge := dial(t, b, packet.V5, DefaultExemptClientPrefix+"1")
	bridge.subscribe(1, packet.Subscription{Filter: "#"})
	pub := dial(t, b, packet.V5, "pub")

	publishPayloads(pub, "sensors/a/temp", "20", "20", "21", "20", "20")
	expectPayloads(sub, "20", "21", "20")
	expectPayloads(bridge, "20", "20", "21", "20", "20") // exempt
	// Per topic: another topic has its own last value.
	publishPayloads(pub, "sensors/b/temp", "20")
	expectPayloads(sub, "20")
	// Topics outside the patterns always deliver.
	publishPayloads(pub, "sensors/a/hum", "50", "50")
	expectPayloads(sub, "50", "50")
	expectPayloads(bridge, "20", "50", "50")
	if st := b.Stats(); st.ChangeOnlySuppressed != 2 {
		t.Fatalf("ChangeOnlySuppressed %d, want 2", st.ChangeOnlySuppressed)
	}
	// A skipped repeat is still acknowledged as a success when nobody
	// else receives it (not No Matching Subscribers).
	only := newTestBroker(t, Config{ChangeOnly: ChangeOnlyConfig{Patterns: []string{"#"}}})
	s := dial(t, only, packet.V5, "s")
	s.subscribe(1, packet.Subscription{Filter: "x"})
	p := dial(t, only, packet.V5, "p")
	publishPayloads(p, "x", "same", "same")
	expectPayloads(s, "same")
}

func TestChangeOnlyBoundEvictsLeastRecentlyUsed(t *testing.T) {
	b := newTestBroker(t, Config{ChangeOnly: ChangeOnlyConfig{Patterns: []string{"t/#"}, MaxTopicsPerSession: 2}})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "t/#"})
	pub := dial(t, b, packet.V5, "pub")
	publishPayloads(pub, "t/1", "v")
	publishPayloads(pub, "t/2", "v")
	publishPayloads(pub, "t/1", "v") // skipped; t/1 is now the most recently used
	publishPayloads(pub, "t/3", "v") // forgets t/2
	publishPayloads(pub, "t/1", "v") // still remembered: skipped
	publishPayloads(pub, "t/2", "v") // forgotten: delivered
	expectPayloads(sub, "v", "v", "v", "v")
	b.sessMu.Lock()
	s := b.sessions["sub"]
	b.sessMu.Unlock()
	s.mu.Lock()
	n := s.last.len()
	s.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d topics remembered, bound 2", n)
	}
}

// Retained messages sent on SUBSCRIBE are delivered and remembered.
func TestChangeOnlyRetainedOnSubscribe(t *testing.T) {
	b := newTestBroker(t, Config{ChangeOnly: ChangeOnlyConfig{Patterns: []string{"r"}}})
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "r", Retain: true, QoS: 1, PacketID: 1, Payload: []byte("v")})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "r"})
	if p := recvAs[*packet.Publish](sub); !p.Retain || string(p.Payload) != "v" {
		t.Fatalf("retained %+v", p)
	}
	publishPayloads(pub, "r", "v", "w")
	expectPayloads(sub, "w")
}

// The state belongs to the session: it survives a reconnection that
// resumes the session and a restart of the broker with a store.
func TestChangeOnlySurvivesReconnectAndRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{ChangeOnly: ChangeOnlyConfig{Patterns: []string{"s/#"}}}
	b, stop := diskBroker(t, dir, cfg)
	sub := newTClient(t, b, packet.V5)
	sub.connect(persistentConnect("sub", true))
	sub.subscribe(1, packet.Subscription{Filter: "s/#"})
	pub := dial(t, b, packet.V5, "pub")
	publishPayloads(pub, "s/1", "a")
	expectPayloads(sub, "a")
	sub.disconnect()

	sub = newTClient(t, b, packet.V5)
	if !sub.connect(persistentConnect("sub", false)).SessionPresent {
		t.Fatal("session not resumed")
	}
	publishPayloads(pub, "s/1", "a", "b")
	expectPayloads(sub, "b")
	sub.disconnect()
	pub.disconnect()
	stop()

	b2, _ := diskBroker(t, dir, cfg)
	sub = newTClient(t, b2, packet.V5)
	if !sub.connect(persistentConnect("sub", false)).SessionPresent {
		t.Fatal("session not restored")
	}
	pub = dial(t, b2, packet.V5, "pub")
	publishPayloads(pub, "s/1", "b", "c", "c")
	expectPayloads(sub, "c")
	if st := b2.Stats(); st.ChangeOnlySuppressed != 2 {
		t.Fatalf("ChangeOnlySuppressed %d after restart, want 2", st.ChangeOnlySuppressed)
	}
	// A new session (clean start) starts with no state.
	sub.disconnect()
	sub = newTClient(t, b2, packet.V5)
	sub.connect(persistentConnect("sub", true))
	sub.subscribe(1, packet.Subscription{Filter: "s/#"})
	publishPayloads(pub, "s/1", "c")
	expectPayloads(sub, "c")
}

// Once restored, the state is no longer in the store: a broker that
// stops without a graceful shutdown starts with none, so a repeat may be
// delivered after a crash but a change is never skipped.
func TestChangeOnlyStateLeavesStoreWhileRunning(t *testing.T) {
	mem := store.NewMemory()
	rec := &store.Session{ClientID: "sub", Version: 5, Expiry: 3600,
		Subscriptions: []store.Subscription{{Filter: "s/#"}},
		LastPayloads:  []store.PayloadHash{{Topic: "s/1", Hash: payloadHash([]byte("a"))}}}
	ctx := context.Background()
	if err := mem.Apply(ctx, []store.Op{{Kind: store.PutSession, ClientID: "sub", Session: rec}}); err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, Config{Store: mem, SysInterval: -1, Logger: discardLogger(), ChangeOnly: ChangeOnlyConfig{Patterns: []string{"s/#"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Shutdown(ctx) })
	snap, err := mem.Load(ctx)
	if err != nil || len(snap.Sessions) != 1 || len(snap.Sessions[0].LastPayloads) != 0 {
		t.Fatalf("stored sessions after Open: %v %+v", err, snap)
	}
	sub := newTClient(t, b, packet.V5)
	if !sub.connect(persistentConnect("sub", false)).SessionPresent {
		t.Fatal("session not restored")
	}
	pub := dial(t, b, packet.V5, "pub")
	publishPayloads(pub, "s/1", "a", "b")
	expectPayloads(sub, "b")
}
