package broker

// Conformance tests of enhanced authentication (section 4.12) with the
// cfAuth challenge/response provider of conformance_test.go.

import (
	"context"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

func cfAuthConnect(id, method string) *packet.Connect {
	cp := &packet.Connect{ClientID: id, CleanStart: true}
	cp.Props.AuthMethod = method
	cp.Props.AuthData = []byte("hello")
	return cp
}

func cfAuthPacket(rc packet.ReasonCode, method, data string) *packet.Auth {
	a := &packet.Auth{ReasonCode: rc}
	a.Props.AuthMethod = method
	a.Props.AuthData = []byte(data)
	return a
}

// cfExpectChallenge reads the broker's AUTH 0x18 carrying the method and
// the challenge. [MQTT-4.12.0-2] [MQTT-4.12.0-5]
func cfExpectChallenge(c *tclient) {
	c.t.Helper()
	a := recvAs[*packet.Auth](c)
	if a.ReasonCode != packet.ContinueAuthentication || a.Props.AuthMethod != cfAuthMethod || string(a.Props.AuthData) != "challenge" {
		c.t.Fatalf("AUTH %v method %q data %q, want 0x18 %q \"challenge\"", a.ReasonCode, a.Props.AuthMethod, a.Props.AuthData, cfAuthMethod)
	}
}

// cfAuthenticated runs a successful exchange and returns the client.
func cfAuthenticated(t *testing.T, b *Broker, id string) *tclient {
	t.Helper()
	c := newTClient(t, b, packet.V5)
	c.send(cfAuthConnect(id, cfAuthMethod))
	cfExpectChallenge(c)
	c.send(cfAuthPacket(packet.ContinueAuthentication, cfAuthMethod, "answer"))
	ack := recvAs[*packet.Connack](c)
	if ack.ReasonCode != packet.Success || ack.Props.AuthMethod != cfAuthMethod || string(ack.Props.AuthData) != "ok" {
		t.Fatalf("CONNACK %v method %q data %q, want success with method %q", ack.ReasonCode, ack.Props.AuthMethod, ack.Props.AuthData, cfAuthMethod)
	}
	return c
}

// TestConformanceEnhancedAuth runs the CONNECT exchange: AUTH 0x18 with the
// method before CONNACK, CONNACK with the method on success; refusals
// (wrong answer, unknown method, a client AUTH that is not 0x18 or names
// another method, a PUBLISH before CONNACK) get a failing CONNACK with
// Session Present 0 and the connection is closed, and the PUBLISH is not
// processed.
// [MQTT-4.12.0-1] [MQTT-4.12.0-2] [MQTT-4.12.0-3] [MQTT-4.12.0-4]
// [MQTT-4.12.0-5] [MQTT-3.2.0-1] [MQTT-3.1.2-30] [MQTT-3.1.4-6]
// [MQTT-3.15.2-1] [MQTT-3.2.2-7]
func TestConformanceEnhancedAuth(t *testing.T) {
	b := newTestBroker(t, Config{Authenticator: cfAuth{}})
	t.Run("success", func(t *testing.T) {
		c := cfAuthenticated(t, b, "ok")
		c.send(&packet.Pingreq{})
		recvAs[*packet.Pingresp](c)
	})
	refused := func(t *testing.T, c *tclient, codes ...packet.ReasonCode) {
		t.Helper()
		ack := recvAs[*packet.Connack](c)
		ok := false
		for _, rc := range codes {
			ok = ok || ack.ReasonCode == rc
		}
		if !ok || ack.SessionPresent || ack.Props.AuthMethod != "" && ack.ReasonCode == packet.Success {
			t.Fatalf("CONNACK %#x (%v) session present %v, want one of %v", byte(ack.ReasonCode), ack.ReasonCode, ack.SessionPresent, codes)
		}
		c.expectClosed()
	}
	t.Run("wrong-answer", func(t *testing.T) {
		c := newTClient(t, b, packet.V5)
		c.send(cfAuthConnect("wrong", cfAuthMethod))
		cfExpectChallenge(c)
		c.send(cfAuthPacket(packet.ContinueAuthentication, cfAuthMethod, "guess"))
		refused(t, c, packet.NotAuthorized, packet.BadAuthenticationMethod)
	})
	t.Run("unknown-method", func(t *testing.T) {
		c := newTClient(t, b, packet.V5)
		c.send(cfAuthConnect("unknown", "NOPE"))
		refused(t, c, packet.BadAuthenticationMethod, packet.NotAuthorized)
	})
	t.Run("client-auth-not-continue", func(t *testing.T) {
		c := newTClient(t, b, packet.V5)
		c.send(cfAuthConnect("rc", cfAuthMethod))
		cfExpectChallenge(c)
		c.send(cfAuthPacket(packet.ReAuthenticate, cfAuthMethod, "answer"))
		refused(t, c, packet.ProtocolError)
	})
	t.Run("client-auth-other-method", func(t *testing.T) {
		c := newTClient(t, b, packet.V5)
		c.send(cfAuthConnect("om", cfAuthMethod))
		cfExpectChallenge(c)
		c.send(cfAuthPacket(packet.ContinueAuthentication, "OTHER", "answer"))
		refused(t, c, packet.ProtocolError)
	})
	t.Run("publish-before-connack", func(t *testing.T) {
		watch := dial(t, b, packet.V5, "watch")
		watch.subscribe(1, packet.Subscription{Filter: "early"})
		c := newTClient(t, b, packet.V5)
		c.send(cfAuthConnect("early", cfAuthMethod))
		cfExpectChallenge(c)
		c.send(&packet.Publish{Topic: "early", Payload: []byte("x")})
		refused(t, c, packet.ProtocolError)
		watch.expectNothing(50 * time.Millisecond)
	})
}

// TestConformanceReauthentication re-authenticates with AUTH 0x19: the
// broker answers with AUTH 0x18 then AUTH 0x00, both with the method, and
// the connection goes on; a failed re-authentication, or one naming
// another method, ends with DISCONNECT and the connection is closed.
// [MQTT-4.12.1-1] [MQTT-4.12.1-2] [MQTT-4.12.0-5] [MQTT-3.15.2-1]
func TestConformanceReauthentication(t *testing.T) {
	b := newTestBroker(t, Config{Authenticator: cfAuth{}})
	c := cfAuthenticated(t, b, "re")
	for range 2 {
		c.send(cfAuthPacket(packet.ReAuthenticate, cfAuthMethod, "hello"))
		cfExpectChallenge(c)
		c.send(cfAuthPacket(packet.ContinueAuthentication, cfAuthMethod, "answer"))
		a := recvAs[*packet.Auth](c)
		if a.ReasonCode != packet.Success || a.Props.AuthMethod != cfAuthMethod {
			t.Fatalf("AUTH %v method %q, want 0x00 %q", a.ReasonCode, a.Props.AuthMethod, cfAuthMethod)
		}
		c.send(&packet.Pingreq{})
		recvAs[*packet.Pingresp](c)
	}
	c.send(cfAuthPacket(packet.ReAuthenticate, cfAuthMethod, "hello"))
	cfExpectChallenge(c)
	c.send(cfAuthPacket(packet.ContinueAuthentication, cfAuthMethod, "guess"))
	cfExpectDisconnect(c, 0)

	c2 := cfAuthenticated(t, b, "re2")
	c2.send(cfAuthPacket(packet.ReAuthenticate, "OTHER", "hello"))
	cfExpectDisconnect(c2, packet.ProtocolError)
}

// TestConformanceNoAuthMethod checks the broker's side when the client
// named no Authentication Method: no AUTH is sent even if the
// authenticator asks to continue, CONNACK carries no Authentication
// Method, and an AUTH from the client is a Protocol Error.
// [MQTT-4.12.0-6] [MQTT-4.12.0-7]
func TestConformanceNoAuthMethod(t *testing.T) {
	cont := AuthenticatorFunc(func(_ context.Context, req *AuthRequest) AuthResult {
		if req.Client.ClientID == "cont" {
			return AuthResult{Code: packet.ContinueAuthentication, Data: []byte("more?")}
		}
		return AuthResult{Code: packet.Success}
	})
	b := newTestBroker(t, Config{Authenticator: cont})
	c := newTClient(t, b, packet.V5)
	c.send(&packet.Connect{ClientID: "cont", CleanStart: true, Version: packet.V5})
	ack := recvAs[*packet.Connack](c) // an AUTH here fails recvAs
	if !ack.ReasonCode.IsError() || ack.Props.AuthMethod != "" {
		t.Fatalf("CONNACK %v method %q, want a failure without method", ack.ReasonCode, ack.Props.AuthMethod)
	}
	c.expectClosed()

	c = newTClient(t, b, packet.V5)
	if ack := c.connect(&packet.Connect{ClientID: "plain", CleanStart: true}); ack.Props.Has(packet.PropAuthMethod) || ack.Props.Has(packet.PropAuthData) {
		t.Fatalf("CONNACK carries Authentication Method %q / Data", ack.Props.AuthMethod)
	}
	c.send(cfAuthPacket(packet.ReAuthenticate, cfAuthMethod, "hello"))
	cfExpectDisconnect(c, packet.ProtocolError)
}
