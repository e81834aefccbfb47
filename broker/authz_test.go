package broker

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

// passwordIsUsername accepts a client whose password equals its username.
var passwordIsUsername = AuthenticatorFunc(func(_ context.Context, req *AuthRequest) AuthResult {
	if req.Client.Username == "" || string(req.Password) != req.Client.Username {
		return AuthResult{Code: packet.BadUserNameOrPassword}
	}
	return AuthResult{Code: packet.Success}
})

// filterACL allows subscriptions covered by one of its filters and denies
// deliveries on topics under a denied prefix.
type filterACL struct {
	mu      sync.Mutex
	allowed []string
	deny    string
}

func (a *filterACL) CanPublish(context.Context, *ClientInfo, string) bool { return true }

func (a *filterACL) CanSubscribe(_ context.Context, _ *ClientInfo, filter string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range a.allowed {
		if topic.Covers(f, filter) {
			return true
		}
	}
	return false
}

func (a *filterACL) CanReceive(_ context.Context, _ *ClientInfo, t string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.deny == "" || !strings.HasPrefix(t, a.deny)
}

func (a *filterACL) set(allowed ...string) {
	a.mu.Lock()
	a.allowed = allowed
	a.mu.Unlock()
}

func authConnect(id, user string, expiry uint32) *packet.Connect {
	cp := &packet.Connect{ClientID: id, Username: user, Password: []byte(user), CleanStart: false}
	cp.Props.SessionExpiry = expiry
	return cp
}

// With authentication configured, a client identifier whose session belongs
// to another identity is refused with Not Authorized, and the owner keeps
// its connection; the owner itself may take over.
func TestSessionOwnedByIdentity(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{Authenticator: passwordIsUsername})
			alice := newTClient(t, b, v)
			alice.connect(authConnect("dev1", "alice", 300))
			mallory := newTClient(t, b, v)
			ack := mallory.connectRaw(authConnect("dev1", "mallory", 300))
			want := packet.NotAuthorized
			if v == packet.V311 {
				want = packet.V3NotAuthorized
			}
			if ack.ReasonCode != want {
				t.Fatalf("CONNACK %v, want %v", ack.ReasonCode, want)
			}
			mallory.expectClosed()
			// Alice is still connected and served.
			alice.send(&packet.Pingreq{})
			recvAs[*packet.Pingresp](alice)
			// Clean start does not help either: it would end Alice's session.
			m2 := newTClient(t, b, v)
			cp := authConnect("dev1", "mallory", 0)
			cp.CleanStart = true
			if ack := m2.connectRaw(cp); ack.ReasonCode != want {
				t.Fatalf("clean start: CONNACK %v", ack.ReasonCode)
			}
			// Alice herself takes over.
			again := newTClient(t, b, v)
			again.connect(authConnect("dev1", "alice", 300))
			recvOrClosed(alice)
		})
	}
}

// recvOrClosed waits until the connection is closed, reading whatever the
// broker sent before (a v5 DISCONNECT).
func recvOrClosed(c *tclient) {
	c.t.Helper()
	for {
		if _, err := c.tryRecv(10 * time.Second); err != nil {
			return
		}
	}
}

// Without authentication (AllowAll) client identifiers are not bound to
// usernames, as in most brokers.
func TestSessionIdentityNotCheckedWithoutAuthentication(t *testing.T) {
	b := newTestBroker(t, Config{})
	a := newTClient(t, b, packet.V5)
	a.connect(authConnect("dev1", "alice", 300))
	m := newTClient(t, b, packet.V5)
	m.connect(authConnect("dev1", "mallory", 300))
}

// A resumed session's subscriptions are authorized again: one the ACL no
// longer allows is removed and receives nothing.
func TestResumedSubscriptionsReauthorized(t *testing.T) {
	acl := &filterACL{allowed: []string{"a/#", "b/#"}}
	b := newTestBroker(t, Config{Authenticator: passwordIsUsername, Authorizer: acl})
	sub := newTClient(t, b, packet.V5)
	sub.connect(authConnect("s", "alice", 300))
	sub.subscribe(1, packet.Subscription{Filter: "a/#", QoS: 1}, packet.Subscription{Filter: "$share/g/b/#", QoS: 1})
	sub.disconnect()
	acl.set("b/#")
	sub2 := newTClient(t, b, packet.V5)
	if ack := sub2.connect(authConnect("s", "alice", 300)); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	pub := newTClient(t, b, packet.V5)
	pub.connect(authConnect("p", "bob", 0))
	pub.publish(&packet.Publish{Topic: "a/1", QoS: 1, PacketID: 1, Payload: []byte("revoked")})
	pub.publish(&packet.Publish{Topic: "b/1", QoS: 1, PacketID: 2, Payload: []byte("kept")})
	p := recvAs[*packet.Publish](sub2)
	if string(p.Payload) != "kept" {
		t.Fatalf("received %q on %q; the revoked subscription still delivers", p.Payload, p.Topic)
	}
	sub2.send(&packet.Puback{PacketID: p.PacketID})
	sub2.expectNothing(50 * time.Millisecond)
	// Unsubscribing the removed filter reports that it no longer exists.
	sub2.send(&packet.Unsubscribe{PacketID: 3, Filters: []string{"a/#"}})
	if u := recvAs[*packet.Unsuback](sub2); u.ReasonCodes[0] != packet.NoSubscriptionExisted {
		t.Fatalf("UNSUBACK %v", u.ReasonCodes)
	}
}

// An Authorizer that implements ReceiveAuthorizer filters deliveries: a
// wide subscription does not receive denied topics, for plain and shared
// subscriptions alike.
func TestReceiveAuthorizer(t *testing.T) {
	acl := &filterACL{allowed: []string{"#"}, deny: "secret/"}
	b := newTestBroker(t, Config{Authenticator: passwordIsUsername, Authorizer: acl})
	sub := newTClient(t, b, packet.V5)
	sub.connect(authConnect("s", "alice", 0))
	sub.subscribe(1, packet.Subscription{Filter: "#"})
	shared := newTClient(t, b, packet.V5)
	shared.connect(authConnect("g", "carol", 0))
	shared.subscribe(1, packet.Subscription{Filter: "$share/g/#"})
	pub := newTClient(t, b, packet.V5)
	pub.connect(authConnect("p", "bob", 0))
	pub.publish(&packet.Publish{Topic: "secret/x", Payload: []byte("no")})
	pub.publish(&packet.Publish{Topic: "public/x", Payload: []byte("yes")})
	for _, c := range []*tclient{sub, shared} {
		if p := recvAs[*packet.Publish](c); p.Topic != "public/x" {
			t.Fatalf("received %q", p.Topic)
		}
	}
}

// Re-authentication keeps the identity: a successful exchange that names
// another user disconnects with Not Authorized.
func TestReauthCannotChangeIdentity(t *testing.T) {
	auth := AuthenticatorFunc(func(_ context.Context, req *AuthRequest) AuthResult {
		if req.Method != "tok" {
			return AuthResult{Code: packet.BadAuthenticationMethod}
		}
		return AuthResult{Code: packet.Success, Username: string(req.Data)}
	})
	b := newTestBroker(t, Config{Authenticator: auth})
	c := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "c", CleanStart: true}
	cp.Props.AuthMethod = "tok"
	cp.Props.AuthData = []byte("alice")
	c.connect(cp)
	same := &packet.Auth{ReasonCode: packet.ReAuthenticate}
	same.Props.AuthMethod = "tok"
	same.Props.AuthData = []byte("alice")
	c.send(same)
	if a := recvAs[*packet.Auth](c); a.ReasonCode != packet.Success {
		t.Fatalf("AUTH %v", a.ReasonCode)
	}
	other := &packet.Auth{ReasonCode: packet.ReAuthenticate}
	other.Props.AuthMethod = "tok"
	other.Props.AuthData = []byte("mallory")
	c.send(other)
	if d := recvAs[*packet.Disconnect](c); d.ReasonCode != packet.NotAuthorized {
		t.Fatalf("DISCONNECT %v", d.ReasonCode)
	}
	c.expectClosed()
}

// TrustedConn connections (the broker's own bridges) are neither
// authenticated nor authorized; ordinary ones still are.
func TestTrustedConn(t *testing.T) {
	acl := &filterACL{allowed: nil, deny: "#"}
	b := newTestBroker(t, Config{Authenticator: passwordIsUsername, Authorizer: acl})
	nc := b.TrustedConn()
	t.Cleanup(func() { nc.Close() })
	tc := &tclient{t: t, nc: nc, r: packet.NewReader(nc, 0), v: packet.V5, timeout: recvTimeout}
	tc.connect(&packet.Connect{ClientID: "mqtt5-bridge-local-x", CleanStart: true})
	if sa := tc.subscribe(1, packet.Subscription{Filter: "a/#", QoS: 1}); sa.ReasonCodes[0].IsError() {
		t.Fatalf("SUBACK %v", sa.ReasonCodes)
	}
	tc.send(&packet.Publish{Topic: "a/1", Payload: []byte("x")})
	if p := recvAs[*packet.Publish](tc); p.Topic != "a/1" {
		t.Fatalf("got %q", p.Topic)
	}
	anon := newTClient(t, b, packet.V5)
	if ack := anon.connectRaw(&packet.Connect{ClientID: "anon", CleanStart: true}); ack.ReasonCode != packet.BadUserNameOrPassword {
		t.Fatalf("untrusted anonymous: %v", ack.ReasonCode)
	}
}
