package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

func TestOutboundTopicAliases(t *testing.T) {
	b := newTestBroker(t, Config{Capabilities: Capabilities{OutboundTopicAliases: 2}})
	sub := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "s", CleanStart: true}
	cp.Props.TopicAliasMaximum = 1
	sub.connect(cp)
	sub.subscribe(1, packet.Subscription{Filter: "#"})
	pub := dial(t, b, packet.V5, "p")
	for _, tp := range []string{"a/long/topic", "a/long/topic", "other"} {
		pub.publish(&packet.Publish{Topic: tp, Payload: []byte(tp)})
	}
	first := recvAs[*packet.Publish](sub)
	second := recvAs[*packet.Publish](sub)
	third := recvAs[*packet.Publish](sub)
	// First use carries topic and alias, then the alias alone; the client's
	// maximum of 1 leaves the second topic without one [MQTT-3.1.2-26].
	if first.Topic != "a/long/topic" || first.Props.TopicAlias != 1 {
		t.Fatalf("first %q alias %d", first.Topic, first.Props.TopicAlias)
	}
	if second.Topic != "" || second.Props.TopicAlias != 1 || string(second.Payload) != "a/long/topic" {
		t.Fatalf("second %q alias %d", second.Topic, second.Props.TopicAlias)
	}
	if third.Topic != "other" || third.Props.TopicAlias != 0 {
		t.Fatalf("third %q alias %d", third.Topic, third.Props.TopicAlias)
	}
	// A client that allows none gets none [MQTT-3.1.2-27].
	sub2 := dial(t, b, packet.V5, "s2")
	sub2.subscribe(1, packet.Subscription{Filter: "#"})
	pub.publish(&packet.Publish{Topic: "a/long/topic", Payload: []byte("x")})
	if p := recvAs[*packet.Publish](sub2); p.Props.TopicAlias != 0 {
		t.Fatalf("alias %d sent to a client without Topic Alias Maximum", p.Props.TopicAlias)
	}
}

func TestResponseInformation(t *testing.T) {
	b := newTestBroker(t, Config{Capabilities: Capabilities{ResponseInformation: "resp/"}})
	c := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "c", CleanStart: true}
	cp.Props.RequestResponseInfo = 1
	if ack := c.connect(cp); ack.Props.ResponseInfo != "resp/" {
		t.Fatalf("Response Information %q", ack.Props.ResponseInfo)
	}
	c2 := newTClient(t, b, packet.V5)
	// Not requested: not sent [MQTT-3.1.2-28].
	if ack := c2.connect(&packet.Connect{ClientID: "c2", CleanStart: true}); ack.Props.ResponseInfo != "" {
		t.Fatalf("unrequested Response Information %q", ack.Props.ResponseInfo)
	}
}

func TestServerKeepAliveAndSessionExpiryCap(t *testing.T) {
	b := newTestBroker(t, Config{Capabilities: Capabilities{MaxKeepAlive: 30, MaxSessionExpiry: 100}})
	c := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "c", CleanStart: true, KeepAlive: 0}
	cp.Props.SessionExpiry = 1000
	ack := c.connect(cp)
	if !ack.Props.Has(packet.PropServerKeepAlive) || ack.Props.ServerKeepAlive != 30 { // [MQTT-3.2.2-21]
		t.Fatalf("Server Keep Alive %d", ack.Props.ServerKeepAlive)
	}
	if ack.Props.SessionExpiry != 100 {
		t.Fatalf("Session Expiry %d", ack.Props.SessionExpiry)
	}
}

func TestCapabilitiesAdvertisedAndEnforced(t *testing.T) {
	b := newTestBroker(t, Config{Capabilities: Capabilities{
		MaximumQoS: 1, DisableRetain: true, DisableWildcardSubscriptions: true,
		DisableSubscriptionIdentifiers: true, DisableSharedSubscriptions: true,
	}})
	c := newTClient(t, b, packet.V5)
	ack := c.connect(&packet.Connect{ClientID: "c", CleanStart: true})
	p := &ack.Props
	if p.EffectiveMaximumQoS() != 1 || p.IsRetainAvailable() || p.IsWildcardSubAvailable() || p.IsSubIDAvailable() || p.IsSharedSubAvailable() {
		t.Fatalf("CONNACK %+v", p)
	}
	sa := c.subscribe(1,
		packet.Subscription{Filter: "a/#", QoS: 2},
		packet.Subscription{Filter: "$share/g/a", QoS: 2},
		packet.Subscription{Filter: "plain", QoS: 2})
	want := []packet.ReasonCode{packet.WildcardSubscriptionsNotSupported, packet.SharedSubscriptionsNotSupported, packet.GrantedQoS1}
	for i := range want {
		if sa.ReasonCodes[i] != want[i] {
			t.Fatalf("SUBACK %v, want %v", sa.ReasonCodes, want)
		}
	}
	c.send(&packet.Publish{Topic: "x", QoS: 2, PacketID: 1})
	if d := recvAs[*packet.Disconnect](c); d.ReasonCode != packet.QoSNotSupported {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
	c2 := dial(t, b, packet.V5, "c2")
	c2.send(&packet.Publish{Topic: "x", Retain: true})
	if d := recvAs[*packet.Disconnect](c2); d.ReasonCode != packet.RetainNotSupported {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
	c3 := newTClient(t, b, packet.V5)
	if ack := c3.connectRaw(&packet.Connect{ClientID: "c3", CleanStart: true, Will: &packet.Will{Topic: "w", QoS: 2}}); ack.ReasonCode != packet.QoSNotSupported {
		t.Fatalf("will QoS 2: CONNACK %v", ack.ReasonCode) // [MQTT-3.2.2-12]
	}
	c4 := newTClient(t, b, packet.V5)
	if ack := c4.connectRaw(&packet.Connect{ClientID: "c4", CleanStart: true, Will: &packet.Will{Topic: "w", Retain: true}}); ack.ReasonCode != packet.RetainNotSupported {
		t.Fatalf("will retain: CONNACK %v", ack.ReasonCode) // [MQTT-3.2.2-13]
	}
	c5 := dial(t, b, packet.V5, "c5")
	s := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "x"}}}
	s.Props.SubscriptionIDs = []uint32{3}
	c5.send(s)
	if d := recvAs[*packet.Disconnect](c5); d.ReasonCode != packet.SubscriptionIdentifiersNotSupported {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
}

func TestSharedStrategyHashClient(t *testing.T) {
	b := newTestBroker(t, Config{SharedStrategy: SharedHashClient})
	var members []*tclient
	for i := range 3 {
		m := dial(t, b, packet.V5, fmt.Sprintf("m%d", i))
		m.subscribe(1, packet.Subscription{Filter: "$share/g/h"})
		members = append(members, m)
	}
	pub := dial(t, b, packet.V5, "one-publisher")
	for range 6 {
		pub.publish(&packet.Publish{Topic: "h", Payload: []byte("x")})
	}
	// All six go to the same member: the one the publisher's id hashes to.
	got := 0
	for _, m := range members {
		n := 0
		for {
			if _, err := m.tryRecv(50 * time.Millisecond); err != nil {
				break
			}
			n++
		}
		if n != 0 && n != 6 {
			t.Fatalf("member got %d of 6", n)
		}
		got += n
	}
	if got != 6 {
		t.Fatalf("delivered %d", got)
	}
}

func TestSharedRedispatchOnLeave(t *testing.T) {
	b := newTestBroker(t, Config{})
	a := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "a", CleanStart: true}
	cp.Props.ReceiveMaximum = 1
	a.connect(cp)
	a.subscribe(1, packet.Subscription{Filter: "$share/g/w", QoS: 1})
	pub := dial(t, b, packet.V5, "p")
	for i := range 3 {
		pub.publish(&packet.Publish{Topic: "w", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{'0' + byte(i)}})
	}
	// a holds message 0 unacknowledged and 1, 2 queued behind its window.
	if p := recvAs[*packet.Publish](a); string(p.Payload) != "0" {
		t.Fatalf("a got %q", p.Payload)
	}
	c := dial(t, b, packet.V5, "c")
	c.subscribe(1, packet.Subscription{Filter: "$share/g/w", QoS: 1})
	a.nc.Close() // a leaves: its three messages go to c
	got := map[string]bool{}
	for range 3 {
		p := recvAs[*packet.Publish](c)
		c.send(&packet.Puback{PacketID: p.PacketID})
		got[string(p.Payload)] = true
	}
	if len(got) != 3 {
		t.Fatalf("c got %v", got)
	}
}
