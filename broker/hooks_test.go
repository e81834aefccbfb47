package broker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// recorder implements every notification hook and records the events.
type recorder struct {
	mu     sync.Mutex
	events []any
}

func (r *recorder) add(ev any) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) OnConnect(ev ConnectEvent)         { r.add(ev) }
func (r *recorder) OnDisconnect(ev DisconnectEvent)   { r.add(ev) }
func (r *recorder) OnSubscribe(ev SubscribeEvent)     { r.add(ev) }
func (r *recorder) OnUnsubscribe(ev UnsubscribeEvent) { r.add(ev) }
func (r *recorder) OnRetained(ev RetainedEvent)       { r.add(ev) }
func (r *recorder) OnDelivered(ev DeliveredEvent)     { r.add(ev) }

// waitFor polls until an event matching match was recorded and returns it.
func waitFor[T any](t *testing.T, r *recorder, match func(T) bool) T {
	t.Helper()
	var found T
	pollUntil(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, ev := range r.events {
			if e, ok := ev.(T); ok && match(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

func TestAddHookRejectsNonHooks(t *testing.T) {
	b := newTestBroker(t, Config{})
	if err := b.AddHook(struct{}{}); !errors.Is(err, errNotAHook) {
		t.Fatalf("AddHook(struct{}{}) = %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a Config.Hooks entry that is no hook")
		}
	}()
	New(Config{Hooks: []any{42}})
}

func TestNotificationHooks(t *testing.T) {
	rec := &recorder{}
	b := newTestBroker(t, Config{Hooks: []any{rec}, Authenticator: passwordIsUsername})
	sub := newTClient(t, b, packet.V5)
	first := authConnect("sub", "alice", 300)
	first.CleanStart = true
	sub.connect(first)
	ce := waitFor(t, rec, func(e ConnectEvent) bool { return e.Client.ClientID == "sub" })
	if ce.Client.Username != "alice" || !ce.CleanStart || ce.SessionPresent {
		t.Fatalf("connect event %+v", ce)
	}
	sub.subscribe(1, packet.Subscription{Filter: "t/#", QoS: 2}, packet.Subscription{Filter: "bad/#/x"})
	se := waitFor(t, rec, func(e SubscribeEvent) bool { return true })
	if len(se.Subscriptions) != 2 || se.Subscriptions[0].Filter != "t/#" || se.Codes[0] != 2 || se.Codes[1] != packet.TopicFilterInvalid {
		t.Fatalf("subscribe event %+v", se)
	}

	pub := newTClient(t, b, packet.V5)
	pub.connect(authConnect("pub", "bob", 0))
	// Retained: set and cleared.
	pub.publish(&packet.Publish{Topic: "t/r", Retain: true, QoS: 1, PacketID: 1, Payload: []byte("kept")})
	if re := waitFor(t, rec, func(e RetainedEvent) bool { return !e.Cleared }); re.Topic != "t/r" || string(re.Message.Payload) != "kept" {
		t.Fatalf("retained event %+v", re)
	}
	p := recvAs[*packet.Publish](sub)
	sub.send(&packet.Puback{PacketID: p.PacketID})
	pub.publish(&packet.Publish{Topic: "t/r", Retain: true, QoS: 1, PacketID: 2})
	if re := waitFor(t, rec, func(e RetainedEvent) bool { return e.Cleared }); re.Topic != "t/r" || re.Message != nil {
		t.Fatalf("retained cleared event %+v", re)
	}
	p = recvAs[*packet.Publish](sub)
	sub.send(&packet.Puback{PacketID: p.PacketID})
	// Delivered: PUBACK for QoS 1 (above), PUBCOMP for QoS 2.
	pub.publish(&packet.Publish{Topic: "t/2", QoS: 2, PacketID: 3, Payload: []byte("two")})
	p = recvAs[*packet.Publish](sub)
	sub.send(&packet.Pubrec{PacketID: p.PacketID})
	recvAs[*packet.Pubrel](sub)
	if n := len(deliveredTo(rec, "t/2")); n != 0 {
		t.Fatalf("QoS 2 delivery reported before PUBCOMP (%d)", n)
	}
	sub.send(&packet.Pubcomp{PacketID: p.PacketID})
	de := waitFor(t, rec, func(e DeliveredEvent) bool { return e.Message.Topic == "t/2" })
	if de.Client.ClientID != "sub" || de.QoS != 2 || de.PacketID != p.PacketID {
		t.Fatalf("delivered event %+v", de)
	}
	if n := len(deliveredTo(rec, "t/r")); n != 2 {
		t.Fatalf("%d QoS 1 deliveries reported, want 2", n)
	}

	sub.send(&packet.Unsubscribe{PacketID: 4, Filters: []string{"t/#", "none"}})
	recvAs[*packet.Unsuback](sub)
	ue := waitFor(t, rec, func(e UnsubscribeEvent) bool { return true })
	if len(ue.Filters) != 2 || ue.Codes[0] != packet.Success || ue.Codes[1] != packet.NoSubscriptionExisted {
		t.Fatalf("unsubscribe event %+v", ue)
	}

	// Disconnections: a normal DISCONNECT is expected ...
	pub.disconnect()
	if de := waitFor(t, rec, func(e DisconnectEvent) bool { return e.Client.ClientID == "pub" }); !de.Expected || de.ReasonCode != packet.Success {
		t.Fatalf("normal disconnect event %+v", de)
	}
	// ... a takeover is not, and the session resumes ...
	sub2 := newTClient(t, b, packet.V5)
	sub2.connect(authConnect("sub", "alice", 300))
	recvAs[*packet.Disconnect](sub) // net.Pipe: the broker's write waits for this read
	if de := waitFor(t, rec, func(e DisconnectEvent) bool { return e.Client.ClientID == "sub" }); de.Expected || de.ReasonCode != packet.SessionTakenOver {
		t.Fatalf("takeover disconnect event %+v", de)
	}
	if ce := waitFor(t, rec, func(e ConnectEvent) bool { return e.Client.ClientID == "sub" && e.SessionPresent }); ce.CleanStart {
		t.Fatalf("resume connect event %+v", ce)
	}
	// ... nor is a lost network connection.
	sub2.nc.Close()
	lost := waitFor(t, rec, func(e DisconnectEvent) bool {
		return e.Client.ClientID == "sub" && e.ReasonCode == packet.UnspecifiedError
	})
	if lost.Expected || lost.Err == nil {
		t.Fatalf("lost connection event %+v", lost)
	}
	if b.Stats().HookEventsDropped != 0 {
		t.Fatal("events dropped")
	}
}

func deliveredTo(r *recorder, topic string) []DeliveredEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []DeliveredEvent
	for _, ev := range r.events {
		if e, ok := ev.(DeliveredEvent); ok && e.Message.Topic == topic {
			out = append(out, e)
		}
	}
	return out
}

// keepAliveRecorder records disconnections only.
type keepAliveRecorder struct{ ch chan DisconnectEvent }

func (k keepAliveRecorder) OnDisconnect(ev DisconnectEvent) { k.ch <- ev }

func TestDisconnectHookKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := keepAliveRecorder{ch: make(chan DisconnectEvent, 1)}
		b := newTestBroker(t, Config{Hooks: []any{k}})
		c := newTClient(t, b, packet.V5)
		c.connect(&packet.Connect{ClientID: "c", CleanStart: true, KeepAlive: 1})
		// The broker gives up after 1.5 s of silence.
		time.Sleep(2 * time.Second)
		synctest.Wait()
		select {
		case ev := <-k.ch:
			if ev.Expected || ev.ReasonCode != packet.KeepAliveTimeout {
				t.Fatalf("keep alive disconnect event %+v", ev)
			}
		default:
			t.Fatal("no disconnect event")
		}
	})
}

// publishHook handles topics under "handled/", rewrites those under "rw/",
// and records what it saw.
type publishHook struct {
	mu   sync.Mutex
	seen []PublishEvent
}

func (h *publishHook) OnPublish(_ context.Context, ev PublishEvent) PublishDecision {
	h.mu.Lock()
	h.seen = append(h.seen, PublishEvent{Client: &ClientInfo{ClientID: ev.Client.ClientID}, Message: ev.Message})
	h.mu.Unlock()
	switch {
	case strings.HasPrefix(ev.Message.Topic, "handled/"):
		return PublishDecision{Action: PublishHandle}
	case strings.HasPrefix(ev.Message.Topic, "rw/"):
		m := &Message{Topic: "out/" + ev.Message.Topic[3:], Payload: []byte(strings.ToUpper(string(ev.Message.Payload)))}
		m.Props.User = []packet.UserProperty{{Key: "rewritten", Value: "yes"}}
		return PublishDecision{Action: PublishTransform, Message: m}
	case ev.Message.Topic == "bad":
		return PublishDecision{Action: PublishTransform, Message: &Message{Topic: "a/+"}}
	}
	return PublishDecision{}
}

func TestPublishHookDecisions(t *testing.T) {
	h := &publishHook{}
	b := newTestBroker(t, Config{Logger: discardLogger()})
	if err := b.AddHook(h); err != nil {
		t.Fatal(err)
	}
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "#", QoS: 1})
	pub := dial(t, b, packet.V5, "pub")

	req := &packet.Publish{Topic: "req", QoS: 1, PacketID: 1, Payload: []byte("q")}
	req.Props.ResponseTopic = "resp/pub"
	req.Props.CorrelationData = []byte{1, 2}
	pub.publish(req)
	if p := recvAs[*packet.Publish](sub); p.Topic != "req" {
		t.Fatalf("continued message %+v", p)
	} else {
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
	h.mu.Lock()
	ev := h.seen[0]
	h.mu.Unlock()
	if ev.Client.ClientID != "pub" || ev.Message.Props.ResponseTopic != "resp/pub" || string(ev.Message.Props.CorrelationData) != "\x01\x02" {
		t.Fatalf("publish event %+v", ev)
	}

	// Handled: acknowledged with Success, not routed.
	pub.send(&packet.Publish{Topic: "handled/x", QoS: 2, PacketID: 2, Payload: []byte("h")})
	if a := recvAs[*packet.Pubrec](pub); a.ReasonCode != packet.Success {
		t.Fatalf("PUBREC %v", a.ReasonCode)
	}
	pub.send(&packet.Pubrel{PacketID: 2})
	recvAs[*packet.Pubcomp](pub)
	sub.expectNothing(50 * time.Millisecond)

	// Transformed: the replacement is routed.
	pub.publish(&packet.Publish{Topic: "rw/a", QoS: 1, PacketID: 3, Payload: []byte("abc")})
	p := recvAs[*packet.Publish](sub)
	if p.Topic != "out/a" || string(p.Payload) != "ABC" || len(p.Props.User) != 1 || p.QoS != 1 {
		t.Fatalf("transformed message %+v", p)
	}
	sub.send(&packet.Puback{PacketID: p.PacketID})

	// An invalid replacement is refused.
	pub.send(&packet.Publish{Topic: "bad", QoS: 1, PacketID: 4})
	if a := recvAs[*packet.Puback](pub); a.ReasonCode != packet.ImplementationSpecificError {
		t.Fatalf("PUBACK %v for an invalid replacement", a.ReasonCode)
	}
	sub.expectNothing(50 * time.Millisecond)
}

// blockingHook blocks publishes on "slow" and every connect event until
// release is closed.
type blockingHook struct {
	release chan struct{}
	entered chan struct{}
}

func (h *blockingHook) OnPublish(_ context.Context, ev PublishEvent) PublishDecision {
	if ev.Message.Topic == "slow" {
		h.entered <- struct{}{}
		<-h.release
	}
	return PublishDecision{}
}

func (h *blockingHook) OnConnect(ConnectEvent) { <-h.release }

func (h *blockingHook) OnRetained(RetainedEvent) {}

// A blocked PublishHook stalls its own publisher only, and a blocked
// notification hook stalls nobody: another client keeps round-tripping,
// and events beyond the queue are dropped and counted.
func TestBlockingHooksStallNoOtherClient(t *testing.T) {
	h := &blockingHook{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	b := newTestBroker(t, Config{Hooks: []any{h}})
	released := false
	release := func() {
		if !released {
			released = true
			close(h.release)
		}
	}
	defer release()
	sub := dial(t, b, packet.V5, "sub") // its connect event blocks the queue
	sub.subscribe(1, packet.Subscription{Filter: "#", QoS: 1})
	slow := dial(t, b, packet.V5, "slow")
	slow.send(&packet.Publish{Topic: "slow", QoS: 1, PacketID: 1, Payload: []byte("s")})
	<-h.entered // the slow publisher's goroutine is inside the hook

	other := dial(t, b, packet.V5, "other")
	for i := range 20 {
		other.publish(&packet.Publish{Topic: "fast", QoS: 1, PacketID: uint16(i + 1), Payload: []byte("f")})
		p := recvAs[*packet.Publish](sub)
		if p.Topic != "fast" {
			t.Fatalf("got %q", p.Topic)
		}
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
	// Fill the notification queue: events are dropped beyond it.
	for range HookQueueSize + 10 {
		other.send(&packet.Publish{Topic: "r", Retain: true, Payload: []byte("r")})
	}
	other.publish(&packet.Publish{Topic: "done", QoS: 1, PacketID: 100}) // after those
	for range HookQueueSize + 10 {
		recvAs[*packet.Publish](sub) // QoS 0, no acknowledgement
	}
	if p := recvAs[*packet.Publish](sub); p.Topic != "done" {
		t.Fatalf("got %q", p.Topic)
	} else {
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
	if d := b.Stats().HookEventsDropped; d == 0 {
		t.Fatal("no hook event dropped with the queue full")
	}
	slow.expectNothing(10 * time.Millisecond) // still stalled
	release()
	if a := recvAs[*packet.Puback](slow); a.PacketID != 1 {
		t.Fatalf("PUBACK %+v", a)
	}
	if p := recvAs[*packet.Publish](sub); p.Topic != "slow" {
		t.Fatalf("got %q after release", p.Topic)
	}
}
