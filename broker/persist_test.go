package broker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/packet"
)

// diskBroker opens (or reopens) a store in dir and a broker restored from
// it; the broker is shut down (closing the store) when stop is called or the
// test ends.
func diskBroker(t *testing.T, dir string, cfg Config) (b *Broker, stop func()) {
	t.Helper()
	st, err := store.OpenDefault(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = st
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	if cfg.SysInterval == 0 {
		cfg.SysInterval = -1
	}
	b, err = Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return b, stop
}

func persistentConnect(id string, clean bool) *packet.Connect {
	cp := &packet.Connect{ClientID: id, CleanStart: clean}
	cp.Props.SessionExpiry = 3600
	return cp
}

func TestPersistSessionsQueuesAndRetained(t *testing.T) {
	for _, mode := range []Durability{DurabilitySync, DurabilityBatch, DurabilityNone} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			b, stop := diskBroker(t, dir, Config{Durability: mode})
			sub := newTClient(t, b, packet.V5)
			sub.connect(persistentConnect("sub", true))
			s := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "p/#", QoS: 2, RetainAsPublished: true}}}
			s.Props.SubscriptionIDs = []uint32{9}
			sub.send(s)
			recvAs[*packet.Suback](sub)
			pub := dial(t, b, packet.V5, "pub")
			// Sent and not acknowledged (in flight) ...
			pub.publish(&packet.Publish{Topic: "p/1", QoS: 1, PacketID: 1, Payload: []byte("inflight")})
			inflight := recvAs[*packet.Publish](sub)
			sub.nc.Close()
			pollUntil(t, func() bool { return b.Stats().Connections == 1 })
			// ... queued while offline, with properties ...
			q := &packet.Publish{Topic: "p/2", QoS: 2, PacketID: 2, Payload: []byte("queued")}
			q.Props.ContentType = "text/plain"
			q.Props.User = []packet.UserProperty{{Key: "k", Value: "v"}}
			pub.publish(q)
			// ... and retained.
			pub.publish(&packet.Publish{Topic: "r/x", Retain: true, QoS: 1, PacketID: 3, Payload: []byte("kept")})
			pub.disconnect()
			stop()

			b2, _ := diskBroker(t, dir, Config{Durability: mode})
			sub2 := newTClient(t, b2, packet.V5)
			if ack := sub2.connect(persistentConnect("sub", false)); !ack.SessionPresent {
				t.Fatal("session not restored")
			}
			re := recvAs[*packet.Publish](sub2)
			if !re.Dup || re.PacketID != inflight.PacketID || string(re.Payload) != "inflight" { // [MQTT-4.4.0-1]
				t.Fatalf("in-flight message after restart: %+v", re)
			}
			sub2.send(&packet.Puback{PacketID: re.PacketID})
			got := recvAs[*packet.Publish](sub2)
			if string(got.Payload) != "queued" || got.QoS != 2 || got.Props.ContentType != "text/plain" ||
				len(got.Props.User) != 1 || len(got.Props.SubscriptionIDs) != 1 || got.Props.SubscriptionIDs[0] != 9 {
				t.Fatalf("queued message after restart: %+v", got)
			}
			sub2.send(&packet.Pubrec{PacketID: got.PacketID})
			recvAs[*packet.Pubrel](sub2)
			sub2.send(&packet.Pubcomp{PacketID: got.PacketID})
			// The subscription itself survived.
			pub2 := dial(t, b2, packet.V5, "pub2")
			pub2.publish(&packet.Publish{Topic: "p/3", Payload: []byte("live")})
			if got := recvAs[*packet.Publish](sub2); string(got.Payload) != "live" {
				t.Fatalf("live message after restart: %+v", got)
			}
			// The retained message survived.
			other := dial(t, b2, packet.V5, "other")
			other.subscribe(1, packet.Subscription{Filter: "r/#"})
			if got := recvAs[*packet.Publish](other); !got.Retain || string(got.Payload) != "kept" {
				t.Fatalf("retained after restart: %+v", got)
			}
		})
	}
}

func TestPersistQoS2StatesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b, stop := diskBroker(t, dir, Config{})
	// Inbound: PUBLISH received and PUBREC sent, PUBREL not yet.
	pub := newTClient(t, b, packet.V5)
	pub.connect(persistentConnect("pub", true))
	sub := newTClient(t, b, packet.V5)
	sub.connect(persistentConnect("sub", true))
	sub.subscribe(1, packet.Subscription{Filter: "q2", QoS: 2})
	pub.send(&packet.Publish{Topic: "q2", QoS: 2, PacketID: 7, Payload: []byte("once")})
	recvAs[*packet.Pubrec](pub)
	// Outbound: delivered, PUBREC received, PUBCOMP not yet.
	m := recvAs[*packet.Publish](sub)
	sub.send(&packet.Pubrec{PacketID: m.PacketID})
	recvAs[*packet.Pubrel](sub)
	pollUntil(t, func() bool {
		b.sessMu.Lock()
		s := b.sessions["sub"]
		b.sessMu.Unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.inflight[m.PacketID].released
	})
	pub.nc.Close()
	sub.nc.Close()
	stop()

	b2, _ := diskBroker(t, dir, Config{})
	sub2 := newTClient(t, b2, packet.V5)
	sub2.connect(persistentConnect("sub", false))
	if rel := recvAs[*packet.Pubrel](sub2); rel.PacketID != m.PacketID { // [MQTT-4.4.0-1]
		t.Fatalf("PUBREL %+v", rel)
	}
	sub2.send(&packet.Pubcomp{PacketID: m.PacketID})
	pub2 := newTClient(t, b2, packet.V5)
	pub2.connect(persistentConnect("pub", false))
	// The retransmitted PUBLISH is acknowledged, not routed again [MQTT-4.3.3-9].
	pub2.send(&packet.Publish{Topic: "q2", QoS: 2, PacketID: 7, Dup: true, Payload: []byte("once")})
	recvAs[*packet.Pubrec](pub2)
	pub2.send(&packet.Pubrel{PacketID: 7})
	if c := recvAs[*packet.Pubcomp](pub2); c.ReasonCode != packet.Success {
		t.Fatalf("PUBCOMP %v", c.ReasonCode)
	}
	sub2.expectNothing(100 * time.Millisecond)
}

// keepOpen is a store that survives the broker's Shutdown, to restart a
// broker on the same in-memory state.
type keepOpen struct{ store.Store }

func (keepOpen) Close() error { return nil }

func TestPersistTimersContinueFromDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		st := keepOpen{store.NewMemory()}
		open := func() *Broker {
			b, err := Open(context.Background(), Config{Store: st, SysInterval: -1, Logger: discardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		b := open()
		c := newTClient(t, b, packet.V5)
		cp := &packet.Connect{ClientID: "short", CleanStart: true}
		cp.Props.SessionExpiry = 10
		c.connect(cp)
		c.subscribe(1, packet.Subscription{Filter: "x", QoS: 1})
		w := newTClient(t, b, packet.V5)
		wcp := &packet.Connect{ClientID: "will", CleanStart: true, Will: &packet.Will{Topic: "x", Payload: []byte("late will")}}
		wcp.Props.SessionExpiry = 100
		wcp.Will.Props.WillDelay = 30
		w.connect(wcp)
		c.nc.Close()
		w.nc.Close()
		synctest.Wait()
		time.Sleep(4 * time.Second)
		if err := b.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // 6 s after the disconnect
		b2 := open()
		defer b2.Shutdown(context.Background())
		if n := b2.Stats().Sessions; n != 2 {
			t.Fatalf("%d sessions restored, want 2", n)
		}
		restarted := time.Now()
		listener := dial(t, b2, packet.V5, "listener")
		listener.subscribe(1, packet.Subscription{Filter: "x"})
		// The 10 s session expiry runs out 4 s after the restart.
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := b2.Stats().Sessions; n != 2 { // "will" and "listener"
			t.Fatalf("%d sessions 10 s after the disconnect, want 2", n)
		}
		// The will's 30 s delay runs out 24 s after the restart.
		got := recvAs[*packet.Publish](listener)
		if el := time.Since(restarted); el != 24*time.Second || string(got.Payload) != "late will" {
			t.Fatalf("will after %v: %+v", el, got)
		}
	})
}

// gateStore holds Apply while closed is set, and fails it with fail.
type gateStore struct {
	store.Store
	mu      sync.Mutex
	closed  bool
	release chan struct{}
	fail    error
}

func newGateStore() *gateStore {
	return &gateStore{Store: store.NewMemory(), release: make(chan struct{})}
}

func (g *gateStore) Apply(ctx context.Context, ops []store.Op) error {
	g.mu.Lock()
	closed, release, fail := g.closed, g.release, g.fail
	g.mu.Unlock()
	if closed {
		<-release
	}
	if fail != nil {
		return fail
	}
	return g.Store.Apply(ctx, ops)
}

func (g *gateStore) set(closed bool, fail error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed && !closed {
		close(g.release)
		g.release = make(chan struct{})
	}
	g.closed, g.fail = closed, fail
}

func TestPersistAckWaitsForCommit(t *testing.T) {
	g := newGateStore()
	b := newTestBroker(t, Config{Store: g})
	sub := newTClient(t, b, packet.V5)
	sub.connect(persistentConnect("sub", true))
	sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 1})
	b.persist.com.Flush(context.Background())
	g.set(true, nil)
	defer g.set(false, nil)
	pub := dial(t, b, packet.V5, "pub")
	pub.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("x")})
	// Neither the publisher is acknowledged nor the persistent
	// subscriber served while the store has not committed the message
	// [MQTT-4.4.0-1]: the subscriber's in-flight record must follow the
	// publication's record.
	pub.expectNothing(100 * time.Millisecond)
	sub.expectNothing(10 * time.Millisecond)
	g.set(false, nil)
	if a := recvAs[*packet.Puback](pub); a.PacketID != 1 || a.ReasonCode != packet.Success {
		t.Fatalf("PUBACK %+v", a)
	}
	recvAs[*packet.Publish](sub)
}

func TestPersistStoreErrorRefusesPublish(t *testing.T) {
	g := newGateStore()
	b := newTestBroker(t, Config{Store: g, Logger: discardLogger()})
	sub := newTClient(t, b, packet.V5)
	sub.connect(persistentConnect("sub", true))
	sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 1})
	g.set(false, errors.New("disk full"))
	pub := dial(t, b, packet.V5, "pub")
	pub.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("x")})
	if a := recvAs[*packet.Puback](pub); a.ReasonCode != packet.UnspecifiedError {
		t.Fatalf("PUBACK %v, want 0x80 when the store fails", a.ReasonCode)
	}
	if b.stats.storeErrors.Load() == 0 {
		t.Fatal("store errors not counted")
	}
	// QoS 0 keeps flowing.
	pub2 := dial(t, b, packet.V5, "pub2")
	pub2.publish(&packet.Publish{Topic: "t", Payload: []byte("q0")})
	for {
		p := recvAs[*packet.Publish](sub)
		if p.QoS == 1 {
			sub.send(&packet.Puback{PacketID: p.PacketID})
			continue
		}
		if string(p.Payload) != "q0" {
			t.Fatalf("got %q", p.Payload)
		}
		break
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestPersistQoS2HeldUntilDurable(t *testing.T) {
	g := newGateStore()
	b := newTestBroker(t, Config{Store: g, Logger: discardLogger()})
	sub := newTClient(t, b, packet.V5)
	sub.connect(persistentConnect("sub", true))
	sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 2})
	clean := dial(t, b, packet.V5, "clean") // not persistent: not held
	clean.subscribe(1, packet.Subscription{Filter: "t", QoS: 2})
	b.persist.com.Flush(context.Background())
	g.set(true, nil)
	defer g.set(false, nil)
	pub := dial(t, b, packet.V5, "pub")
	pub.send(&packet.Publish{Topic: "t", QoS: 2, PacketID: 1, Payload: []byte("x")})
	recvAs[*packet.Publish](clean)
	// A crash now must not leave the persistent subscriber with a copy the
	// publisher's retransmission would duplicate: nothing is sent to it,
	// and the publisher gets no PUBREC, until the commit.
	sub.expectNothing(100 * time.Millisecond)
	pub.expectNothing(10 * time.Millisecond)
	g.set(false, nil)
	if p := recvAs[*packet.Publish](sub); p.QoS != 2 || string(p.Payload) != "x" {
		t.Fatalf("got %+v", p)
	}
	recvAs[*packet.Pubrec](pub)
}
