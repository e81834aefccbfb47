package broker

import (
	"errors"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// Values advertised in CONNACK change for new connections only: a client
// connected before keeps the Topic Alias Maximum and Maximum Packet Size
// it was told, a client connecting after gets and is held to the new ones.
func TestReconfigureCapabilitiesNewConnectionsOnly(t *testing.T) {
	b := newTestBroker(t, Config{})
	old := newTClient(t, b, packet.V5)
	ack := old.connect(&packet.Connect{ClientID: "old", CleanStart: true})
	if ack.Props.TopicAliasMaximum != 64 || ack.Props.MaximumPacketSize != 1<<20 || ack.Props.ReceiveMaximum != 1024 {
		t.Fatalf("CONNACK before: %+v", ack.Props)
	}

	s := b.Settings()
	s.Capabilities.TopicAliasMaximum = 5
	s.Capabilities.MaximumPacketSize = 1000
	s.Capabilities.ReceiveMaximum = 10
	s.Capabilities.ServerKeepAlive = 30
	if err := b.Reconfigure(s); err != nil {
		t.Fatal(err)
	}

	newer := newTClient(t, b, packet.V5)
	ack = newer.connect(&packet.Connect{ClientID: "new", CleanStart: true, KeepAlive: 60})
	if p := ack.Props; p.TopicAliasMaximum != 5 || p.MaximumPacketSize != 1000 || p.ReceiveMaximum != 10 || p.ServerKeepAlive != 30 {
		t.Fatalf("CONNACK after: %+v", p)
	}

	// The old client may still use alias 50 and send 2,000 bytes.
	big := make([]byte, 2000)
	old.publish(&packet.Publish{Topic: "a", QoS: 1, PacketID: 1, Props: packet.Properties{TopicAlias: 50}})
	old.publish(&packet.Publish{Topic: "a", QoS: 1, PacketID: 2, Payload: big})
	old.sync()

	// The new one may not.
	newer.send(&packet.Publish{Topic: "a", QoS: 1, PacketID: 1, Props: packet.Properties{TopicAlias: 50}})
	if d := recvAs[*packet.Disconnect](newer); d.ReasonCode != packet.TopicAliasInvalid {
		t.Fatalf("alias above the new maximum: DISCONNECT %v", d.ReasonCode)
	}
	newer.expectClosed()
	third := dial(t, b, packet.V5, "third")
	raw, err := (&packet.Publish{Topic: "a", QoS: 1, PacketID: 1, Payload: big}).AppendTo(nil, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	// The broker stops reading at the header: write on the side, since a
	// pipe write waits for its reader (it fails once the pipe is closed).
	go third.nc.Write(raw)
	if d := recvAs[*packet.Disconnect](third); d.ReasonCode != packet.PacketTooLarge {
		t.Fatalf("packet above the new maximum: DISCONNECT %v", d.ReasonCode)
	}
	third.expectClosed()
	old.sync()
}

// A rate limit set while a client is connected applies to its next
// PUBLISH; raising the rate or removing the limit applies too.
func TestReconfigureInboundRateOnConnectedClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, Config{})
		pub := dial(t, b, packet.V5, "pub")
		id := uint16(0)
		ack := func() packet.ReasonCode {
			id++
			pub.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: id})
			return recvAs[*packet.Puback](pub).ReasonCode
		}
		for range 5 {
			if rc := ack(); rc.IsError() {
				t.Fatalf("unlimited: %v", rc)
			}
		}
		if err := b.SetRateLimits(RateLimits{InboundMessages: 1, InboundMessagesBurst: 2}); err != nil {
			t.Fatal(err)
		}
		// A new bucket starts full: two, then over the limit.
		for i, want := range []bool{true, true, false, false} {
			if rc := ack(); rc.IsError() == want {
				t.Fatalf("after the limit, message %d: %v", i, rc)
			}
		}
		// A faster rate re-parameterises the bucket: the tokens are still
		// spent, but 100 ms now brings 10 back (at 1/s it would bring none).
		if err := b.SetRateLimits(RateLimits{InboundMessages: 100, InboundMessagesBurst: 100}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		for i := range 10 {
			if rc := ack(); rc.IsError() {
				t.Fatalf("after raising the rate, message %d: %v", i, rc)
			}
		}
		if rc := ack(); rc != packet.QuotaExceeded {
			t.Fatalf("11th after raising the rate: %v", rc)
		}
		// Removing the limit frees the client at once.
		if err := b.SetRateLimits(RateLimits{}); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			if rc := ack(); rc.IsError() {
				t.Fatalf("limit removed: %v", rc)
			}
		}
		if st := b.Stats(); st.RateLimited != 3 {
			t.Fatalf("RateLimited %d, want 3", st.RateLimited)
		}
	})
}

// An outbound rate set while a subscriber is connected shapes its
// deliveries from then on, and drops none.
func TestReconfigureOutboundRateOnConnectedClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, Config{})
		sub := dial(t, b, packet.V5, "sub")
		sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 1})
		pub := dial(t, b, packet.V5, "pub")
		pub.publish(&packet.Publish{Topic: "t", QoS: 1, PacketID: 1})
		p := recvAs[*packet.Publish](sub) // the writer has run unlimited
		sub.send(&packet.Puback{PacketID: p.PacketID})

		if err := b.SetRateLimits(RateLimits{OutboundMessages: 10}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		const n = 25
		for i := range n {
			pub.publish(&packet.Publish{Topic: "t", QoS: 1, PacketID: uint16(i + 2), Payload: []byte{byte(i)}})
		}
		for i := range n {
			p := recvAs[*packet.Publish](sub)
			if p.Payload[0] != byte(i) {
				t.Fatalf("got %d, want %d", p.Payload[0], i)
			}
			sub.send(&packet.Puback{PacketID: p.PacketID})
		}
		// Burst 10, then 10 a second: the last 15 take 1.5 s of fake time.
		if d := time.Since(start); d < 1500*time.Millisecond {
			t.Fatalf("%d messages in %v at 10/s with a burst of 10", n, d)
		}
		if st := b.Stats(); st.Dropped["queue_full"] != 0 {
			t.Fatalf("dropped %v", st.Dropped)
		}
	})
}

// Lowering MaxConnections refuses the next connection and keeps the
// existing ones; once one leaves, a new one is accepted again.
func TestReconfigureMaxConnections(t *testing.T) {
	b := newTestBroker(t, Config{})
	var cs []*tclient
	for _, id := range []string{"a", "b", "c"} {
		cs = append(cs, dial(t, b, packet.V5, id))
	}
	l := b.Settings().Limits
	l.MaxConnections = 2
	if err := b.SetLimits(l); err != nil {
		t.Fatal(err)
	}
	refused := newTClient(t, b, packet.V5)
	if ack := refused.connectRaw(&packet.Connect{ClientID: "d", CleanStart: true}); ack.ReasonCode != packet.QuotaExceeded {
		t.Fatalf("CONNACK %v, want Quota Exceeded", ack.ReasonCode)
	}
	refused.expectClosed()
	for _, c := range cs {
		c.sync() // still connected
	}
	cs[0].disconnect()
	cs[1].disconnect()
	pollUntil(t, func() bool { return b.Stats().Connections == 1 })
	dial(t, b, packet.V5, "e")
	cs[2].sync()
}

// Lowering MaxConnectionsPerIP refuses the next connection from an
// address above it and keeps the existing ones.
func TestReconfigureMaxConnectionsPerIP(t *testing.T) {
	b, addr := ipTestServe(t, Config{Logger: slog.New(slog.DiscardHandler)})
	key := netip.MustParseAddr("127.0.0.1")
	connect := func(id string) *tclient {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := ipTestClient(t, nc, packet.V5)
		c.connect(&packet.Connect{ClientID: id, CleanStart: true})
		return c
	}
	cs := []*tclient{connect("a"), connect("b"), connect("c")}
	l := b.Settings().Limits
	l.MaxConnectionsPerIP = 2
	if err := b.SetLimits(l); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ipTestRefused(t, ipTestClient(t, nc, packet.V5))
	for _, c := range cs {
		c.sync()
	}
	cs[0].disconnect()
	cs[1].disconnect()
	pollUntil(t, func() bool { return b.ipLimit.connections(key) == 1 })
	connect("d")
	cs[2].sync()
	if got := b.Stats().RefusedPerIP; got != 1 {
		t.Fatalf("RefusedPerIP %d, want 1", got)
	}
}

// Shrinking a queue bound keeps what is queued; the bound and the policy
// apply to the next message.
func TestReconfigureQueueBoundKeepsQueued(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "sub"}
	cp.Props.SessionExpiry = 300
	sub.connect(cp)
	sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 1})
	sub.disconnect()
	pub := dial(t, b, packet.V5, "pub")
	for i := range 5 {
		pub.publish(&packet.Publish{Topic: "t", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{byte(i)}})
	}
	s := b.Settings()
	s.Queue.MaxMessages = 2
	s.Queue.Policy = DropNew
	if err := b.Reconfigure(s); err != nil {
		t.Fatal(err)
	}
	pub.publish(&packet.Publish{Topic: "t", QoS: 1, PacketID: 6, Payload: []byte{5}})
	if got := b.Stats().Dropped["queue_full"]; got != 1 {
		t.Fatalf("queue_full drops %d, want 1 (the message after the change)", got)
	}
	sub = newTClient(t, b, packet.V5)
	cp.CleanStart = false
	if ack := sub.connect(cp); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	for i := range 5 {
		p := recvAs[*packet.Publish](sub)
		if p.Payload[0] != byte(i) {
			t.Fatalf("got %d, want %d", p.Payload[0], i)
		}
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
	sub.expectNothing(100 * time.Millisecond)
}

// An invalid Settings, or one that changes a restart-only limit, changes
// nothing; applying the settings in force changes nothing either.
func TestReconfigureRejects(t *testing.T) {
	b := newTestBroker(t, Config{RateLimits: RateLimits{InboundMessages: 5}})
	before := b.Settings()
	for name, mod := range map[string]func(*Settings){
		"NaN rate":       func(s *Settings) { s.RateLimits.InboundMessages = math.NaN() },
		"negative rate":  func(s *Settings) { s.RateLimits.OutboundMessages = -1 },
		"infinite rate":  func(s *Settings) { s.RateLimits.InboundBytes = math.Inf(1) },
		"negative burst": func(s *Settings) { s.RateLimits.InboundMessagesBurst = -2 },
		"QoS 3":          func(s *Settings) { s.Capabilities.MaximumQoS = 3 },
		"policy":         func(s *Settings) { s.Queue.Policy = 7 },
		"strategy":       func(s *Settings) { s.SharedStrategy = -1 },
	} {
		s := b.Settings()
		s.Limits.MaxConnections = 7 // would be applied with the rest
		mod(&s)
		if err := b.Reconfigure(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s := b.Settings()
	s.Limits.MaxTopicLevels = 3
	if err := b.Reconfigure(s); !errors.Is(err, ErrNotReconfigurable) {
		t.Errorf("MaxTopicLevels: %v, want ErrNotReconfigurable", err)
	}
	if got := b.Settings(); got.Limits != before.Limits || got.RateLimits != before.RateLimits {
		t.Fatalf("settings changed by rejected calls: %+v", got)
	}
	if err := b.Reconfigure(before); err != nil {
		t.Fatal(err)
	}
	if e := b.rates.Load(); e != nil {
		t.Fatalf("rate epoch %d after unchanged rate limits", e.gen)
	}
	// Zero fields take their defaults, as in New.
	if err := b.SetLimits(Limits{}); err != nil {
		t.Fatal(err)
	}
	if got := b.Settings().Limits; got != (Config{}).withDefaults().Limits {
		t.Fatalf("zero Limits: %+v", got)
	}
}

// Stamp and EchoSuppression set at run time apply to the next message of
// a client connected before.
func TestReconfigureStampAndEcho(t *testing.T) {
	b := newTestBroker(t, Config{})
	sub := dial(t, b, packet.V5, "sub")
	sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 1})
	pub := dial(t, b, packet.V5, "pub")
	pub.subscribe(1, packet.Subscription{Filter: "t", QoS: 1})
	from := func(p *packet.Publish) string {
		for _, u := range p.Props.User {
			if u.Key == "from" {
				return u.Value
			}
		}
		return ""
	}
	recv := func(c *tclient) *packet.Publish {
		t.Helper()
		p := recvAs[*packet.Publish](c)
		c.send(&packet.Puback{PacketID: p.PacketID})
		return p
	}
	pub.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: 1})
	if a := recvAs[*packet.Puback](pub); a.ReasonCode.IsError() {
		t.Fatalf("PUBACK %v", a.ReasonCode)
	}
	if p := recv(sub); from(p) != "" {
		t.Fatalf("stamped before the change: %+v", p.Props.User)
	}
	if p := recv(pub); from(p) != "" {
		t.Fatalf("own message stamped before the change: %+v", p.Props.User)
	}

	s := b.Settings()
	s.Stamp.ClientIDProperty = "from"
	s.EchoSuppression.Property = "from"
	if err := b.Reconfigure(s); err != nil {
		t.Fatal(err)
	}
	pub.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: 2, Props: packet.Properties{User: []packet.UserProperty{{Key: "from", Value: "forged"}}}})
	if a := recvAs[*packet.Puback](pub); a.ReasonCode.IsError() {
		t.Fatalf("PUBACK %v", a.ReasonCode)
	}
	if p := recv(sub); from(p) != "pub" || len(p.Props.User) != 1 {
		t.Fatalf("after the change: %+v, want from=pub only", p.Props.User)
	}
	pub.expectNothing(100 * time.Millisecond) // its own message is suppressed
	if got := b.Stats().EchoSuppressed; got != 1 {
		t.Fatalf("EchoSuppressed %d, want 1", got)
	}
}
