package broker

import (
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

func userProps(p *packet.Publish, key string) []string {
	var vs []string
	for _, u := range p.Props.User {
		if u.Key == key {
			vs = append(vs, u.Value)
		}
	}
	return vs
}

// Routed messages carry the publisher's authenticated identity; what the
// client put under those names is removed. Wills are stamped too.
func TestStampIdentity(t *testing.T) {
	b := newTestBroker(t, Config{Authenticator: passwordIsUsername, Stamp: StampConfig{UsernameProperty: "x-user", ClientIDProperty: "x-client"}})
	sub := newTClient(t, b, packet.V5)
	sub.connect(authConnect("sub", "alice", 0))
	sub.subscribe(1, packet.Subscription{Filter: "#"})
	old := newTClient(t, b, packet.V311)
	old.connect(&packet.Connect{ClientID: "old", CleanStart: true, Username: "carol", Password: []byte("carol")})
	old.subscribe(1, packet.Subscription{Filter: "#"})

	pub := newTClient(t, b, packet.V5)
	cp := authConnect("pub", "bob", 0)
	cp.Will = &packet.Will{Topic: "will", Payload: []byte("gone")}
	cp.Will.Props.User = []packet.UserProperty{{Key: "x-client", Value: "forged"}}
	pub.connect(cp)
	forged := &packet.Publish{Topic: "t", Payload: []byte("m")}
	forged.Props.User = []packet.UserProperty{{Key: "x-user", Value: "admin"}, {Key: "keep", Value: "1"}, {Key: "x-client", Value: "root"}}
	pub.publish(forged)
	p := recvAs[*packet.Publish](sub)
	if u, c, k := userProps(p, "x-user"), userProps(p, "x-client"), userProps(p, "keep"); len(u) != 1 || u[0] != "bob" || len(c) != 1 || c[0] != "pub" || len(k) != 1 {
		t.Fatalf("stamped user properties %v", p.Props.User)
	}
	if p := recvAs[*packet.Publish](old); string(p.Payload) != "m" || len(p.Props.User) != 0 {
		t.Fatalf("3.1.1 subscriber got %+v", p)
	}
	pub.nc.Close() // the will is published
	p = recvAs[*packet.Publish](sub)
	if c := userProps(p, "x-client"); p.Topic != "will" || len(c) != 1 || c[0] != "pub" {
		t.Fatalf("will %q user properties %v", p.Topic, p.Props.User)
	}
}

// A message naming a session in the echo property is not delivered to it,
// whether subscribed directly or through a shared subscription.
func TestEchoSuppression(t *testing.T) {
	b := newTestBroker(t, Config{EchoSuppression: EchoSuppressionConfig{Property: "origin"}})
	a := dial(t, b, packet.V5, "a")
	a.subscribe(1, packet.Subscription{Filter: "chat"})
	c := dial(t, b, packet.V5, "c")
	c.subscribe(1, packet.Subscription{Filter: "chat"})
	g1 := dial(t, b, packet.V5, "g1")
	g1.subscribe(1, packet.Subscription{Filter: "$share/g/chat"})
	pub := dial(t, b, packet.V5, "pub")
	for i := range 3 {
		m := &packet.Publish{Topic: "chat", Payload: []byte{byte('0' + i)}}
		m.Props.User = []packet.UserProperty{{Key: "origin", Value: "a"}, {Key: "origin", Value: "g1"}}
		pub.publish(m)
		if p := recvAs[*packet.Publish](c); p.Payload[0] != byte('0'+i) {
			t.Fatalf("c got %q", p.Payload)
		}
	}
	a.expectNothing(50 * time.Millisecond)
	g1.expectNothing(50 * time.Millisecond)
	if st := b.Stats(); st.EchoSuppressed != 6 {
		t.Fatalf("EchoSuppressed %d, want 6", st.EchoSuppressed)
	}
	// Without the property, everyone gets it.
	pub.publish(&packet.Publish{Topic: "chat", Payload: []byte("x")})
	for _, s := range []*tclient{a, c, g1} {
		if p := recvAs[*packet.Publish](s); string(p.Payload) != "x" {
			t.Fatalf("got %q", p.Payload)
		}
	}
}
