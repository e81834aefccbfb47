package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// collector gathers received messages.
type collector struct {
	mu   sync.Mutex
	msgs []*Message
	ch   chan *Message
}

func newCollector() *collector { return &collector{ch: make(chan *Message, 1000)} }

func (c *collector) handle(m *Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.ch <- m:
	default:
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *collector) payloads() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s []string
	for _, m := range c.msgs {
		s = append(s, string(m.Payload))
	}
	return s
}

func TestRetained(t *testing.T) {
	b := startBroker(t)
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			pub, _ := connect(t, Options{Server: b.url(), Version: v, ClientID: "ret-pub-" + v.String()})
			tp := "retained/" + v.String()
			if err := pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 1, Retain: true, Payload: []byte("kept")}); err != nil {
				t.Fatal(err)
			}
			col := newCollector()
			sub, _ := connect(t, Options{Server: b.url(), Version: v, ClientID: "ret-sub-" + v.String()})
			if _, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: tp, QoS: 1}}, col.handle); err != nil {
				t.Fatal(err)
			}
			m := recv(t, col.ch, "retained message")
			if !m.Retain || string(m.Payload) != "kept" {
				t.Fatalf("got %+v", m)
			}
			// A live message is not flagged retained.
			if err := pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 1, Payload: []byte("live")}); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, col.ch, "live message"); m.Retain || string(m.Payload) != "live" {
				t.Fatalf("got %+v", m)
			}
			// Clear it.
			if err := pub.Publish(testCtx(t), &Message{Topic: tp, QoS: 1, Retain: true}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWill(t *testing.T) {
	b := startBroker(t)
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			tp := "will/" + v.String()
			col := newCollector()
			sub, _ := connect(t, Options{Server: b.url(), Version: v})
			if _, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: tp, QoS: 1}}, col.handle); err != nil {
				t.Fatal(err)
			}
			px := startProxy(t, b.addr())
			will := &Will{Topic: tp, QoS: 1, Payload: []byte("gone")}
			o := Options{Server: px.url(), Version: v, ClientID: "will-" + v.String(), Will: will, DisableReconnect: true}
			if v == packet.V5 {
				will.Delay = 1
				will.ContentType = "text/plain"
				will.User = []packet.UserProperty{{Key: "why", Value: "cut"}}
				o.SessionExpiry = 10 // the will waits for the delay, not the session end
			}
			c, _ := connect(t, o)
			// A normal disconnection would delete the will; cut the network.
			px.cut()
			<-c.Done()
			if !errors.Is(c.Err(), ErrConnectionLost) {
				t.Errorf("client ended with %v", c.Err())
			}
			m := recv(t, col.ch, "will message")
			if string(m.Payload) != "gone" || m.Topic != tp {
				t.Fatalf("got %+v", m)
			}
			if v == packet.V5 && (m.ContentType != "text/plain" || len(m.User) != 1 || m.User[0].Value != "cut") {
				t.Errorf("will properties lost: %+v", m)
			}
		})
	}
	t.Run("DisconnectWithWillMessage", func(t *testing.T) {
		col := newCollector()
		sub, _ := connect(t, Options{Server: b.url()})
		if _, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: "will/explicit", QoS: 1}}, col.handle); err != nil {
			t.Fatal(err)
		}
		c, _ := connect(t, Options{Server: b.url(), Will: &Will{Topic: "will/explicit", Payload: []byte("bye")}})
		if err := c.Disconnect(testCtx(t), packet.DisconnectWithWillMessage, KeepSessionExpiry); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, col.ch, "will"); string(m.Payload) != "bye" {
			t.Fatalf("got %+v", m)
		}
	})
}

func TestSessionResume(t *testing.T) {
	b := startBroker(t)
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			store := NewMemoryStore()
			id := "resume-" + v.String()
			tp := "resume/" + v.String()
			o := Options{Server: b.url(), Version: v, ClientID: id, SessionExpiry: 300, Store: store}
			first, info := connect(t, o)
			if info.SessionPresent {
				t.Fatal("session present on clean start")
			}
			if _, err := first.Subscribe(testCtx(t), []Subscription{{Filter: tp + "/#", QoS: 2}}, func(*Message) {}); err != nil {
				t.Fatal(err)
			}
			if err := first.Disconnect(testCtx(t), packet.NormalDisconnection, KeepSessionExpiry); err != nil {
				t.Fatal(err)
			}
			pub, _ := connect(t, Options{Server: b.url(), Version: v})
			for i := range 4 {
				if err := pub.Publish(testCtx(t), &Message{Topic: tp + "/x", QoS: byte(1 + i%2), Payload: fmt.Appendf(nil, "m%d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			col := newCollector()
			o.CleanStart = CleanStartNever
			o.DefaultHandler = col.handle
			second, info := connect(t, o)
			if !info.SessionPresent {
				t.Fatal("session not present")
			}
			waitFor(t, 10*time.Second, "queued messages", func() bool { return col.count() >= 4 })
			if got := col.payloads(); !slices.Equal(got, []string{"m0", "m1", "m2", "m3"}) {
				t.Errorf("got %v", got)
			}
			// The subscription is part of the session: a handler can be set
			// again for it without a SUBSCRIBE reaching a different state.
			if v == packet.V5 {
				if err := second.Disconnect(testCtx(t), packet.NormalDisconnection, 0); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestHandlerRouting(t *testing.T) {
	b := startBroker(t)
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			var h1, h2, h3, def = newCollector(), newCollector(), newCollector(), newCollector()
			c, _ := connect(t, Options{Server: b.url(), Version: v, DefaultHandler: def.handle})
			ctx := testCtx(t)
			for _, s := range []struct {
				f string
				h Handler
			}{{"route/+/c", h1.handle}, {"route/#", h2.handle}, {"$share/grp/shared/#", h3.handle}, {"nohandler/#", nil}} {
				if _, err := c.Subscribe(ctx, []Subscription{{Filter: s.f, QoS: 1}}, s.h); err != nil {
					t.Fatal(s.f, err)
				}
			}
			for _, tp := range []string{"route/b/c", "route/x", "shared/1", "nohandler/z"} {
				if err := c.Publish(ctx, &Message{Topic: tp, QoS: 1, Payload: []byte(tp)}); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "routing", func() bool {
				return h1.count() == 1 && h2.count() == 2 && h3.count() == 1 && def.count() == 1
			}, func() string {
				return fmt.Sprintf("h1 %v h2 %v h3 %v def %v", h1.payloads(), h2.payloads(), h3.payloads(), def.payloads())
			})
			if got := h1.payloads(); !slices.Equal(got, []string{"route/b/c"}) {
				t.Errorf("h1 %v", got)
			}
			if got := h2.payloads(); !slices.Equal(got, []string{"route/b/c", "route/x"}) {
				t.Errorf("h2 %v", got)
			}
			if got := def.payloads(); !slices.Equal(got, []string{"nohandler/z"}) {
				t.Errorf("default %v", got)
			}
			// After Unsubscribe, a message to the filter is not delivered: a
			// later message on another filter (same QoS, same connection)
			// arrives after it would have.
			res, err := c.Unsubscribe(ctx, "route/+/c")
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Codes) != 1 || res.Codes[0] != packet.Success {
				t.Errorf("unsuback %+v", res)
			}
			c.Publish(ctx, &Message{Topic: "route/q/c", QoS: 1, Payload: []byte("after")})
			c.Publish(ctx, &Message{Topic: "shared/2", QoS: 1, Payload: []byte("marker")})
			waitFor(t, 10*time.Second, "marker", func() bool { return h3.count() == 2 })
			waitFor(t, 10*time.Second, "h2", func() bool { return h2.count() == 3 })
			if h1.count() != 1 {
				t.Errorf("h1 got a message after Unsubscribe: %v", h1.payloads())
			}
		})
	}
}

func TestSubscriptionIdentifiers(t *testing.T) {
	b := startBroker(t)
	col := newCollector()
	c, info := connect(t, Options{Server: b.url()})
	if !info.SubIDAvailable {
		t.Skip("broker has no subscription identifiers")
	}
	ctx := testCtx(t)
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: "sid/#", QoS: 1}}, col.handle, WithSubscriptionID(7)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: "sid/only", QoS: 1}}, col.handle, WithSubscriptionID(9),
		WithUserProperties(packet.UserProperty{Key: "a", Value: "b"})); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &Message{Topic: "sid/only", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &Message{Topic: "sid/other", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	ids := map[string][]uint32{}
	waitFor(t, 10*time.Second, "messages", func() bool {
		col.mu.Lock()
		defer col.mu.Unlock()
		clear(ids)
		for _, m := range col.msgs {
			ids[m.Topic] = append(ids[m.Topic], m.SubscriptionIDs...)
		}
		return len(ids["sid/other"]) == 1 && len(ids["sid/only"]) == 2
	}, func() string { return fmt.Sprint(ids) })
	slices.Sort(ids["sid/only"])
	if !slices.Equal(ids["sid/only"], []uint32{7, 9}) || ids["sid/other"][0] != 7 {
		t.Errorf("subscription ids %v", ids)
	}
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: "x", QoS: 1}}, nil, WithSubscriptionID(1<<28)); !errors.Is(err, packet.ProtocolError) {
		t.Errorf("out of range id: %v", err)
	}
}

func TestTopicAliasOutbound(t *testing.T) {
	b := startBroker(t, "max_topic_alias 4")
	col := newCollector()
	sub, _ := connect(t, Options{Server: b.url()})
	if _, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: "alias/#", QoS: 1}}, col.handle); err != nil {
		t.Fatal(err)
	}
	c, info := connect(t, Options{Server: b.url(), TopicAliases: true})
	if info.TopicAliasMaximum != 4 {
		t.Fatalf("topic alias maximum %d", info.TopicAliasMaximum)
	}
	ctx := testCtx(t)
	var want []string
	// Ten topics, round robin, three rounds: aliases are reused (LRU) and
	// every message must arrive with its own topic.
	var toks []*Token
	for round := range 3 {
		for i := range 10 {
			tp := fmt.Sprintf("alias/%d", i%6)
			if i >= 6 {
				tp = fmt.Sprintf("alias/%d", i-6) // the first four again: hits
			}
			want = append(want, fmt.Sprintf("%s#%d", tp, round))
			toks = append(toks, c.PublishAsync(ctx, &Message{Topic: tp, QoS: 1, Payload: fmt.Appendf(nil, "%s#%d", tp, round)}))
		}
	}
	for _, tk := range toks {
		if err := tk.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "messages", func() bool { return col.count() == len(want) })
	col.mu.Lock()
	for i, m := range col.msgs {
		if want[i] != string(m.Payload) || !strings.HasPrefix(want[i], m.Topic+"#") {
			t.Errorf("message %d: topic %q payload %q, want %q", i, m.Topic, m.Payload, want[i])
		}
	}
	col.mu.Unlock()
	if c.aliasHits.Load() == 0 {
		t.Error("no publish used an alias")
	}
	// An explicit alias above the server's maximum is refused locally.
	err := c.Publish(ctx, &Message{Topic: "alias/x", TopicAlias: 5})
	if !errors.Is(err, packet.TopicAliasInvalid) {
		t.Errorf("alias 5: %v", err)
	}
	// An explicit alias, then the alias alone.
	if err := c.Publish(ctx, &Message{Topic: "alias/explicit", TopicAlias: 2, QoS: 1, Payload: []byte("e1")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &Message{TopicAlias: 2, QoS: 1, Payload: []byte("e2")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "explicit", func() bool { return col.count() == len(want)+2 })
	col.mu.Lock()
	for _, m := range col.msgs[len(want):] {
		if m.Topic != "alias/explicit" {
			t.Errorf("explicit alias: topic %q", m.Topic)
		}
	}
	col.mu.Unlock()
}

func TestReceiveMaximumPermits(t *testing.T) {
	b := startBroker(t, "max_inflight_messages 2")
	disc := make(chan DisconnectInfo, 10)
	c, info := connect(t, Options{Server: b.url(), OnDisconnect: func(d DisconnectInfo) { disc <- d }})
	if info.ReceiveMaximum != 2 {
		t.Fatalf("receive maximum %d", info.ReceiveMaximum)
	}
	ctx := testCtx(t)
	var toks []*Token
	for i := range 60 {
		toks = append(toks, c.PublishAsync(ctx, &Message{Topic: "rm/x", QoS: byte(1 + i%2), Payload: []byte("x")}))
	}
	for i, tk := range toks {
		if err := tk.Wait(ctx); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if m := c.inflightMax.Load(); m > 2 || m < 1 {
		t.Errorf("in flight high-water mark %d, want <= 2", m)
	}
	select {
	case d := <-disc:
		t.Errorf("disconnected: %+v", d)
	default:
	}
}

func TestServerLimits(t *testing.T) {
	b := startBroker(t, "max_packet_size 1000", "max_qos 1", "retain_available false")
	c, info := connect(t, Options{Server: b.url()})
	if info.MaximumPacketSize != 1000 || info.MaximumQoS != 1 || info.RetainAvailable {
		t.Fatalf("limits %+v", info)
	}
	ctx := testCtx(t)
	err := c.Publish(ctx, &Message{Topic: "big", QoS: 1, Payload: make([]byte, 2000)})
	var re *ReasonError
	if !errors.Is(err, packet.PacketTooLarge) || !errors.As(err, &re) || !re.Local {
		t.Errorf("oversize publish: %v", err)
	}
	if err := c.Publish(ctx, &Message{Topic: "q2", QoS: 2}); !errors.Is(err, packet.QoSNotSupported) {
		t.Errorf("QoS 2: %v", err)
	}
	if err := c.Publish(ctx, &Message{Topic: "r", Retain: true}); !errors.Is(err, packet.RetainNotSupported) {
		t.Errorf("retain: %v", err)
	}
	if err := c.Publish(ctx, &Message{Topic: "small", QoS: 1, Payload: make([]byte, 900)}); err != nil {
		t.Errorf("small publish: %v", err)
	}
	if !c.IsConnected() {
		t.Error("refusals must not cost the connection")
	}
}

func TestServerErrorReason(t *testing.T) {
	// An ACL that allows only "open/#": the server refuses other publishes
	// with a reason code (v5) that the client returns as a *ReasonError.
	// (mosquitto grants refused subscriptions and filters at delivery; a
	// SUBACK refusal is covered by TestSubscribeResentAfterConnectionLoss.)
	dir := t.TempDir()
	acl := dir + "/acl"
	if err := os.WriteFile(acl, []byte("topic readwrite open/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, "acl_file "+acl)
	c, _ := connect(t, Options{Server: b.url()})
	ctx := testCtx(t)
	err := c.Publish(ctx, &Message{Topic: "closed/x", QoS: 1})
	var re *ReasonError
	if !errors.Is(err, packet.NotAuthorized) || !errors.As(err, &re) || re.Local || re.Op != "publish" {
		t.Errorf("publish: %v", err)
	}
	if err := c.Publish(ctx, &Message{Topic: "open/x", QoS: 2}); err != nil {
		t.Errorf("allowed publish: %v", err)
	}
}

func TestLocalRefusals(t *testing.T) {
	b := startBroker(t)
	c, _ := connect(t, Options{Server: b.url()})
	ctx := testCtx(t)
	var re *ReasonError
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: "a/#+", QoS: 1}}, nil); !errors.Is(err, packet.TopicFilterInvalid) || !errors.As(err, &re) || !re.Local {
		t.Errorf("invalid filter: %v", err)
	}
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: "$share/g/a", NoLocal: true}}, nil); !errors.Is(err, packet.ProtocolError) {
		t.Errorf("No Local on a shared subscription: %v", err)
	}
	if err := c.Publish(ctx, &Message{Topic: "a/+", QoS: 1}); !errors.Is(err, packet.TopicNameInvalid) {
		t.Errorf("wildcard topic: %v", err)
	}
	if err := c.Publish(ctx, &Message{Topic: "a", QoS: 3}); !errors.Is(err, packet.QoSNotSupported) {
		t.Errorf("QoS 3: %v", err)
	}
	if err := c.Publish(ctx, &Message{Topic: "a", SubscriptionIDs: []uint32{1}}); !errors.Is(err, packet.ProtocolError) {
		t.Errorf("subscription id in a publish: %v", err)
	}
	if err := c.Disconnect(ctx, packet.NormalDisconnection, 60); !errors.Is(err, packet.ProtocolError) {
		t.Errorf("raising a zero session expiry: %v", err)
	}
	if err := c.Disconnect(ctx, packet.GrantedQoS1, KeepSessionExpiry); !errors.Is(err, packet.ProtocolError) {
		t.Errorf("not a DISCONNECT code: %v", err)
	}
	if !c.IsConnected() {
		t.Error("refusals must not cost the connection")
	}
}

func TestTokenAPI(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			b := startBroker(t)
			c, _ := connect(t, Options{Server: b.url(), Version: v})
			ctx := testCtx(t)
			tk := c.PublishAsync(ctx, &Message{Topic: "tok", QoS: 1, Payload: []byte("x")})
			select {
			case <-tk.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("token not done")
			}
			if tk.Err() != nil || tk.Wait(ctx) != nil {
				t.Fatal(tk.Err())
			}
			if rc := tk.ReasonCode(); rc != packet.Success && rc != packet.NoMatchingSubscribers {
				t.Errorf("reason code %v", rc)
			}
			// Pipelining: many in flight at once, all complete.
			toks := make([]*Token, 2000)
			for i := range toks {
				toks[i] = c.PublishAsync(ctx, &Message{Topic: "tok/many", QoS: byte(i % 3), Payload: []byte("y")})
			}
			for i, tk := range toks {
				if err := tk.Wait(ctx); err != nil {
					t.Fatalf("token %d: %v", i, err)
				}
			}
			// A local refusal is a completed token.
			tk = c.PublishAsync(ctx, &Message{Topic: "bad/#"})
			<-tk.Done()
			if !errors.Is(tk.Err(), packet.TopicNameInvalid) {
				t.Errorf("bad topic: %v", tk.Err())
			}
			// Wait honours its context.
			short, cancel := context.WithCancel(ctx)
			cancel()
			pending := &Token{done: make(chan struct{})}
			if err := pending.Wait(short); !errors.Is(err, context.Canceled) {
				t.Errorf("wait: %v", err)
			}
			if pending.Err() != nil {
				t.Error("Err before completion")
			}
		})
	}
}
