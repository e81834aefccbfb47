package broker

// Conformance tests of connecting: CONNECT validation, client identifiers,
// CONNACK, sessions, session take-over, keep alive, capabilities.

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// TestConformanceConnectReservedFlag sets the reserved bit of the CONNECT
// flags: the connection is closed, after at most a failing CONNACK (0x81 in
// v5), and never a DISCONNECT. [MQTT-3.1.2-3] [MQTT-3.1.4-1] [MQTT-3.14.0-1]
func TestConformanceConnectReservedFlag(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			c := newTClient(t, b, v)
			raw := cfEncode(t, &packet.Connect{ClientID: "rf", CleanStart: true, Version: v}, v)
			// 10 len | 00 04 M Q T T | level | flags
			if raw[9]&0x01 != 0 || raw[1] >= 0x80 {
				t.Fatalf("unexpected CONNECT layout % x", raw)
			}
			raw[9] |= 0x01
			wait := cfWriteAsync(c, raw)
			defer wait()
			rc, v5 := cfCheckRefusal(t, cfReadUntilClosed(c))
			if v5 && rc != packet.MalformedPacket {
				t.Errorf("CONNACK %#x, want 0x81 (Malformed Packet)", byte(rc))
			}
		})
	}
}

// TestConformanceProtocolName sends a CONNECT whose protocol name is not
// "MQTT": the connection is closed, after at most a failing CONNACK.
// [MQTT-3.1.2-1] [MQTT-3.1.2-2]
func TestConformanceProtocolName(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			c := newTClient(t, b, v)
			wait := cfWriteAsync(c, cfEncode(t, &packet.Connect{ProtocolName: "MQTX", ClientID: "pn", CleanStart: true, Version: v}, v))
			defer wait()
			rc, v5 := cfCheckRefusal(t, cfReadUntilClosed(c))
			if v5 && rc != packet.UnsupportedProtocolVersion {
				t.Errorf("CONNACK %#x, want 0x84 (Unsupported Protocol Version)", byte(rc))
			}
		})
	}
}

// TestConformanceClientIdentifiers checks that the broker accepts every
// 1..23 character identifier made of [0-9a-zA-Z], assigns an identifier
// to an empty one and treats it as if the client had sent it (the session
// can be resumed with it), and refuses an identifier it does not accept
// with 0x85 (3.1.1: 0x02) and closes the connection.
// [MQTT-3.1.3-5] [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.1.3-8] [MQTT-3.2.2-16]
// [MQTT-3.1.3-2]
func TestConformanceClientIdentifiers(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			for _, id := range []string{"0123456789abcdefghijklm", "nopqrstuvwxyzABCDEFGHIJ", "KLMNOPQRSTUVWXYZ", "Z", "9", "a0"} {
				c := newTClient(t, b, v)
				ack := c.connect(&packet.Connect{ClientID: id, CleanStart: true})
				if ack.ReasonCode != packet.Success {
					t.Fatalf("client id %q refused: %v", id, ack.ReasonCode)
				}
				c.disconnect()
			}
			// Too long for the broker (limit 256): refused, then closed.
			c := newTClient(t, b, v)
			ack := c.connectRaw(&packet.Connect{ClientID: strings.Repeat("x", 300), CleanStart: true})
			want := packet.ClientIdentifierNotValid
			if v == packet.V311 {
				want = packet.V3IdentifierRejected
			}
			if ack.ReasonCode != want || ack.SessionPresent {
				t.Fatalf("long client id: CONNACK %#x session present %v, want %#x", byte(ack.ReasonCode), ack.SessionPresent, byte(want))
			}
			c.expectClosed()
			if v == packet.V311 {
				return // 3.1.1 gets no Assigned Client Identifier
			}
			// An empty identifier: assigned, returned, and usable to resume.
			c = newTClient(t, b, v)
			ack = c.connect(cfPersist("", 300, true))
			id := ack.Props.AssignedClientID
			if id == "" {
				t.Fatal("no Assigned Client Identifier")
			}
			c.subscribe(1, packet.Subscription{Filter: "ci/#", QoS: 1})
			cfDrop(t, b, c, id)
			c2 := newTClient(t, b, v)
			if ack := c2.connect(cfPersist(id, 300, false)); !ack.SessionPresent {
				t.Fatal("session of the assigned identifier not present on resume")
			}
			pub := dial(t, b, v, "pub")
			pub.publish(&packet.Publish{Topic: "ci/x", QoS: 1, PacketID: 1, Payload: []byte("x")})
			if got := recvAs[*packet.Publish](c2); got.Topic != "ci/x" {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

// TestConformanceSessionPresent walks a session through creation, resume
// and Clean Start: Session Present follows, CONNACK is the first packet,
// messages published while the client was away are kept for it, and Clean
// Start discards the subscriptions and the queued messages.
// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.1.2-6] [MQTT-3.1.2-23] [MQTT-3.1.4-4]
// [MQTT-3.1.4-5] [MQTT-3.2.0-1] [MQTT-3.2.2-1] [MQTT-3.2.2-2] [MQTT-3.2.2-3]
// [MQTT-4.5.0-1] [MQTT-3.1.3-2]
func TestConformanceSessionPresent(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			pub := dial(t, b, v, "pub")
			c1 := newTClient(t, b, v)
			// Clean Start 0 and no session: a new one, Session Present 0.
			if ack := c1.connect(cfPersist("sp", 300, false)); ack.SessionPresent {
				t.Fatal("Session Present 1 for a new session")
			}
			c1.subscribe(1, packet.Subscription{Filter: "sp/#", QoS: 1})
			cfDrop(t, b, c1, "sp")
			pub.publish(&packet.Publish{Topic: "sp/a", QoS: 1, PacketID: 1, Payload: []byte("queued")})

			// Resume: the first packet is CONNACK (connect reads it as
			// such; its decoder refuses reserved acknowledge flags), with
			// Session Present 1, then the message kept for the session.
			c2 := newTClient(t, b, v)
			if ack := c2.connect(cfPersist("sp", 300, false)); !ack.SessionPresent {
				t.Fatal("Session Present 0 for an existing session")
			}
			got := recvAs[*packet.Publish](c2)
			if string(got.Payload) != "queued" {
				t.Fatalf("got %+v", got)
			}
			c2.send(&packet.Puback{PacketID: got.PacketID})
			cfDrop(t, b, c2, "sp")
			pub.publish(&packet.Publish{Topic: "sp/a", QoS: 1, PacketID: 2, Payload: []byte("stale")})

			// Clean Start 1: the session is discarded.
			c3 := newTClient(t, b, v)
			if ack := c3.connect(cfPersist("sp", 300, true)); ack.SessionPresent {
				t.Fatal("Session Present 1 after Clean Start")
			}
			c3.expectNothing(50 * time.Millisecond)
			pub.publish(&packet.Publish{Topic: "sp/a", QoS: 1, PacketID: 3, Payload: []byte("after")})
			c3.expectNothing(50 * time.Millisecond)
		})
	}
}

// TestConformanceConnectRefused refuses a client (bad user name) that asks
// to resume an existing session and sends a PUBLISH right behind its
// CONNECT: the CONNACK has the failure code and Session Present 0, the
// connection is closed, and the PUBLISH is not processed.
// [MQTT-3.1.4-2] [MQTT-3.1.4-6] [MQTT-3.2.2-6] [MQTT-3.2.2-7] [MQTT-4.13.2-1]
func TestConformanceConnectRefused(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{Authenticator: cfAuth{}})
			watch := dial(t, b, v, "watch")
			watch.subscribe(1, packet.Subscription{Filter: "leak"})
			c0 := newTClient(t, b, v)
			c0.connect(cfPersist("victim", 300, v == packet.V5)) // 3.1.1: Clean Session 0 persists
			cfDrop(t, b, c0, "victim")

			c := newTClient(t, b, v)
			cp := cfPersist("victim", 300, false)
			cp.Username, cp.Password = "bad", []byte("pw")
			cp.Version = v
			raw := append(cfEncode(t, cp, v), cfEncode(t, &packet.Publish{Topic: "leak", Payload: []byte("x")}, v)...)
			wait := cfWriteAsync(c, raw)
			defer wait()
			ack := recvAs[*packet.Connack](c)
			want := packet.BadUserNameOrPassword
			if v == packet.V311 {
				want = packet.V3BadUserNameOrPassword
			}
			if ack.ReasonCode != want || ack.SessionPresent {
				t.Fatalf("CONNACK %#x session present %v, want %#x and 0", byte(ack.ReasonCode), ack.SessionPresent, byte(want))
			}
			c.expectClosed()
			watch.expectNothing(50 * time.Millisecond)
		})
	}
}

// TestConformanceConnackReasonCodes has the authenticator refuse with codes
// that CONNACK cannot carry: the broker still sends a CONNACK reason code.
// [MQTT-3.2.2-8]
func TestConformanceConnackReasonCodes(t *testing.T) {
	codes := map[string]packet.ReasonCode{
		"taken":  packet.SessionTakenOver,      // DISCONNECT only
		"inuse":  packet.PacketIdentifierInUse, // PUBACK/PUBREC only
		"banned": packet.Banned,                // a CONNACK code: kept
		"busy":   packet.ServerBusy,
	}
	b := newTestBroker(t, Config{Authenticator: AuthenticatorFunc(func(_ context.Context, req *AuthRequest) AuthResult {
		return AuthResult{Code: codes[req.Client.ClientID]}
	})})
	for id, code := range codes {
		t.Run(id, func(t *testing.T) {
			c := newTClient(t, b, packet.V5)
			wait := cfWriteAsync(c, cfEncode(t, &packet.Connect{ClientID: id, CleanStart: true, Version: packet.V5}, packet.V5))
			defer wait()
			rc, v5 := cfCheckRefusal(t, cfReadUntilClosed(c))
			if !v5 {
				t.Fatal("no v5 CONNACK")
			}
			if code.ValidFor(packet.CONNACK) && rc != code {
				t.Fatalf("CONNACK %#x, want %#x", byte(rc), byte(code))
			}
		})
	}
}

// TestConformanceCapabilities checks the CONNACK capability properties and
// that the broker enforces them: Maximum QoS is sent when below 2 and
// SUBSCRIBE at any QoS is still accepted; a will above it is refused with
// 0x9B; a will with Retain when retain is not available with 0x9A; a
// PUBLISH above the Maximum QoS, or with RETAIN when not available, is
// answered with DISCONNECT 0x9B / 0x9A.
// [MQTT-3.2.2-9] [MQTT-3.2.2-10] [MQTT-3.2.2-11] [MQTT-3.2.2-12]
// [MQTT-3.2.2-13] [MQTT-3.2.2-14] [MQTT-3.2.2-7] [MQTT-4.13.2-1]
func TestConformanceCapabilities(t *testing.T) {
	t.Run("max-qos-1", func(t *testing.T) {
		b := newTestBroker(t, Config{Capabilities: Capabilities{MaximumQoS: 1}})
		c := newTClient(t, b, packet.V5)
		ack := c.connect(&packet.Connect{ClientID: "q1", CleanStart: true})
		if !ack.Props.Has(packet.PropMaximumQoS) || ack.Props.MaximumQoS != 1 {
			t.Fatalf("CONNACK Maximum QoS %d (present %v), want 1", ack.Props.MaximumQoS, ack.Props.Has(packet.PropMaximumQoS))
		}
		if sa := c.subscribe(1, packet.Subscription{Filter: "a", QoS: 2}); sa.ReasonCodes[0] != packet.GrantedQoS1 {
			t.Fatalf("SUBACK %v, want granted QoS 1", sa.ReasonCodes)
		}
		c.send(&packet.Publish{Topic: "a", QoS: 2, PacketID: 1, Payload: []byte("x")})
		cfExpectDisconnect(c, packet.QoSNotSupported)

		w := newTClient(t, b, packet.V5)
		ack = w.connectRaw(&packet.Connect{ClientID: "w", CleanStart: true, Will: &packet.Will{Topic: "w", QoS: 2, Payload: []byte("x")}})
		if ack.ReasonCode != packet.QoSNotSupported || ack.SessionPresent {
			t.Fatalf("will QoS 2: CONNACK %v", ack.ReasonCode)
		}
		w.expectClosed()
	})
	t.Run("max-qos-0", func(t *testing.T) {
		b := newTestBroker(t, Config{Capabilities: Capabilities{MaximumQoS: 0, MaximumQoSSet: true}})
		for _, v := range bothVersions {
			c := newTClient(t, b, v)
			ack := c.connect(&packet.Connect{ClientID: "q0", CleanStart: true})
			if v == packet.V5 && (!ack.Props.Has(packet.PropMaximumQoS) || ack.Props.MaximumQoS != 0) {
				t.Fatalf("CONNACK Maximum QoS absent, want 0")
			}
			sa := c.subscribe(1, packet.Subscription{Filter: "a", QoS: 2}, packet.Subscription{Filter: "b", QoS: 1})
			if sa.ReasonCodes[0] != packet.GrantedQoS0 || sa.ReasonCodes[1] != packet.GrantedQoS0 {
				t.Fatalf("%v: SUBACK %v, want granted QoS 0 twice", v, sa.ReasonCodes)
			}
			c.disconnect()
		}
	})
	t.Run("retain-unavailable", func(t *testing.T) {
		b := newTestBroker(t, Config{Capabilities: Capabilities{DisableRetain: true}})
		c := newTClient(t, b, packet.V5)
		ack := c.connect(&packet.Connect{ClientID: "r", CleanStart: true})
		if ack.Props.IsRetainAvailable() {
			t.Fatal("CONNACK Retain Available absent or 1")
		}
		c.send(&packet.Publish{Topic: "a", Retain: true, Payload: []byte("x")})
		cfExpectDisconnect(c, packet.RetainNotSupported)

		w := newTClient(t, b, packet.V5)
		ack = w.connectRaw(&packet.Connect{ClientID: "w", CleanStart: true, Will: &packet.Will{Topic: "w", Retain: true, Payload: []byte("x")}})
		if ack.ReasonCode != packet.RetainNotSupported || ack.SessionPresent {
			t.Fatalf("will retain: CONNACK %v", ack.ReasonCode)
		}
		w.expectClosed()
	})
}

// TestConformanceWillRetainFlag publishes wills with and without Will
// Retain and checks, with a Retain As Published watcher and a later
// subscriber, that they are published as retained messages exactly when
// Will Retain is 1. [MQTT-3.1.2-14] [MQTT-3.1.2-15] [MQTT-3.1.2-7] [MQTT-3.1.2-8]
func TestConformanceWillRetainFlag(t *testing.T) {
	for _, retain := range []bool{false, true} {
		t.Run(map[bool]string{false: "retain-0", true: "retain-1"}[retain], func(t *testing.T) {
			b := newTestBroker(t, Config{})
			watch := dial(t, b, packet.V5, "watch")
			watch.subscribe(1, packet.Subscription{Filter: "wr/#", QoS: 1, RetainAsPublished: true})
			c := newTClient(t, b, packet.V5)
			c.connect(&packet.Connect{ClientID: "w", CleanStart: true, Will: &packet.Will{Topic: "wr/x", Payload: []byte("gone"), QoS: 1, Retain: retain}})
			c.nc.Close()
			got := recvAs[*packet.Publish](watch)
			if got.Topic != "wr/x" || string(got.Payload) != "gone" || got.Retain != retain {
				t.Fatalf("will %+v, want RETAIN %v", got, retain)
			}
			watch.send(&packet.Puback{PacketID: got.PacketID})
			late := dial(t, b, packet.V5, "late")
			late.subscribe(1, packet.Subscription{Filter: "wr/#"})
			if !retain {
				late.expectNothing(50 * time.Millisecond)
				return
			}
			if got := recvAs[*packet.Publish](late); !got.Retain || string(got.Payload) != "gone" {
				t.Fatalf("retained will %+v", got)
			}
		})
	}
}

// TestConformanceServerKeepAlive checks that a Server Keep Alive (or a
// keep alive capped by MaxKeepAlive) is sent in CONNACK and is the one the
// broker applies: the connection is closed after 1.5 times it.
// [MQTT-3.1.2-22] [MQTT-3.2.2-22]
func TestConformanceServerKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name        string
		caps        Capabilities
		clientKA    uint16
		serverKA    uint16
		closedAfter time.Duration
	}{
		{"server-keep-alive", Capabilities{ServerKeepAlive: 4}, 60, 4, 6 * time.Second},
		{"max-keep-alive-for-zero", Capabilities{MaxKeepAlive: 10}, 0, 10, 15 * time.Second},
		{"client-keep-alive", Capabilities{MaxKeepAlive: 100}, 2, 0, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				defer setRecvTimeout(time.Hour)()
				b := newTestBroker(t, Config{Capabilities: tc.caps})
				c := newTClient(t, b, packet.V5)
				start := time.Now()
				ack := c.connect(&packet.Connect{ClientID: "ka", CleanStart: true, KeepAlive: tc.clientKA})
				if tc.serverKA == 0 {
					if ack.Props.Has(packet.PropServerKeepAlive) {
						t.Fatalf("Server Keep Alive %d sent, want none", ack.Props.ServerKeepAlive)
					}
				} else if !ack.Props.Has(packet.PropServerKeepAlive) || ack.Props.ServerKeepAlive != tc.serverKA {
					t.Fatalf("Server Keep Alive %d, want %d", ack.Props.ServerKeepAlive, tc.serverKA)
				}
				cfExpectDisconnect(c, packet.KeepAliveTimeout)
				if el := time.Since(start); el != tc.closedAfter {
					t.Fatalf("closed after %v, want %v", el, tc.closedAfter)
				}
			})
		})
	}
}

// TestConformanceRequestProblemInformation connects with Request Problem
// Information 0 and provokes failure acknowledgements: none carries a
// Reason String or User Properties. [MQTT-3.1.2-29]
func TestConformanceRequestProblemInformation(t *testing.T) {
	b := newTestBroker(t, Config{})
	c := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "np", CleanStart: true}
	cp.Props.Set(packet.PropRequestProblemInfo) // explicitly 0
	c.connect(cp)
	clean := func(what string, p *packet.Properties) {
		t.Helper()
		if p.Has(packet.PropReasonString) || p.Has(packet.PropUser) {
			t.Errorf("%s carries Reason String %q / User Properties %v", what, p.ReasonString, p.User)
		}
	}
	c.send(&packet.Publish{Topic: "$SYS/x", QoS: 1, PacketID: 1, Payload: []byte("x")})
	if a := recvAs[*packet.Puback](c); a.ReasonCode != packet.NotAuthorized {
		t.Fatalf("PUBACK %v", a.ReasonCode)
	} else {
		clean("PUBACK", &a.Props)
	}
	c.send(&packet.Publish{Topic: "$SYS/x", QoS: 2, PacketID: 2, Payload: []byte("x")})
	if a := recvAs[*packet.Pubrec](c); a.ReasonCode != packet.NotAuthorized {
		t.Fatalf("PUBREC %v", a.ReasonCode)
	} else {
		clean("PUBREC", &a.Props)
	}
	c.send(&packet.Pubrel{PacketID: 3})
	clean("PUBCOMP", &recvAs[*packet.Pubcomp](c).Props)
	sa := c.subscribe(4, packet.Subscription{Filter: "a/#/b"})
	if sa.ReasonCodes[0] != packet.TopicFilterInvalid {
		t.Fatalf("SUBACK %v", sa.ReasonCodes)
	}
	clean("SUBACK", &sa.Props)
	c.send(&packet.Unsubscribe{PacketID: 5, Filters: []string{"none"}})
	clean("UNSUBACK", &recvAs[*packet.Unsuback](c).Props)
}

// TestConformanceConnackRefusalRespectsMaximumPacketSize refuses a client
// that set a small Maximum Packet Size, with a long reason: the CONNACK must
// leave out the Reason String rather than exceed the client's maximum.
// [MQTT-3.2.2-19] [MQTT-3.1.2-24]
func TestConformanceConnackRefusalRespectsMaximumPacketSize(t *testing.T) {
	const max = 32
	b := newTestBroker(t, Config{Authenticator: AuthenticatorFunc(func(_ context.Context, req *AuthRequest) AuthResult {
		return AuthResult{Code: packet.BadUserNameOrPassword, Reason: strings.Repeat("r", 100)}
	})})
	c := newTClient(t, b, packet.V5)
	cp := &packet.Connect{ClientID: "small", CleanStart: true, Username: "u", Password: []byte("p")}
	cp.Props.MaximumPacketSize = max
	c.send(cp)
	size, p := cfRecvRaw(c)
	ack, ok := p.(*packet.Connack)
	if !ok || ack.ReasonCode != packet.BadUserNameOrPassword {
		t.Fatalf("got %+v, want CONNACK 0x86", p)
	}
	if size > max {
		t.Errorf("CONNACK of %d bytes (Reason String %d bytes) to a client with Maximum Packet Size %d", size, len(ack.Props.ReasonString), max)
	}
	c.expectClosed()
}

// TestConformanceTakeover connects a second client with the identifier of a
// connected one that has messages in flight and queued: the old connection
// gets DISCONNECT 0x8E (no Session Expiry Interval), then nothing more,
// and is closed; the new one resumes the session.
// [MQTT-3.1.4-3] [MQTT-3.14.2-2] [MQTT-3.14.4-1] [MQTT-3.14.4-2] [MQTT-4.4.0-1]
func TestConformanceTakeover(t *testing.T) {
	b := newTestBroker(t, Config{})
	old := newTClient(t, b, packet.V5)
	cp := cfPersist("to", 300, true)
	cp.Props.ReceiveMaximum = 1
	old.connect(cp)
	old.subscribe(1, packet.Subscription{Filter: "to/#", QoS: 1})
	pub := dial(t, b, packet.V5, "pub")
	for i := range 3 {
		pub.publish(&packet.Publish{Topic: "to/x", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{'0' + byte(i)}})
	}
	first := recvAs[*packet.Publish](old) // the other two wait for the window
	nc := newTClient(t, b, packet.V5)
	if ack := nc.connect(cfPersist("to", 300, false)); !ack.SessionPresent {
		t.Fatal("session not present on take-over")
	}
	cfExpectDisconnect(old, packet.SessionTakenOver)
	re := recvAs[*packet.Publish](nc)
	if !re.Dup || re.PacketID != first.PacketID || string(re.Payload) != "0" {
		t.Fatalf("retransmission %+v", re)
	}
	for i := 1; i < 3; i++ {
		nc.send(&packet.Puback{PacketID: re.PacketID})
		re = recvAs[*packet.Publish](nc)
		if string(re.Payload) != string(rune('0'+i)) {
			t.Fatalf("message %d: %+v", i, re)
		}
	}
}

// TestConformanceSessionKeptWhileConnected connects with a 2 s Session
// Expiry Interval and stays connected for longer: the session is intact.
// [MQTT-4.1.0-1]
func TestConformanceSessionKeptWhileConnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		b := newTestBroker(t, Config{})
		c := newTClient(t, b, packet.V5)
		c.connect(cfPersist("keep", 2, true))
		c.subscribe(1, packet.Subscription{Filter: "k", QoS: 1})
		time.Sleep(10 * time.Second)
		pub := dial(t, b, packet.V5, "pub")
		pub.publish(&packet.Publish{Topic: "k", QoS: 1, PacketID: 1, Payload: []byte("x")})
		got := recvAs[*packet.Publish](c)
		c.send(&packet.Puback{PacketID: got.PacketID})
		c.nc.Close()
		synctest.Wait()
		c2 := newTClient(t, b, packet.V5)
		if ack := c2.connect(cfPersist("keep", 2, false)); !ack.SessionPresent {
			t.Fatal("session discarded while its connection was open")
		}
	})
}

// TestConformanceSessionExpiry checks that a disconnected session lives for
// its Session Expiry Interval and is discarded after it.
// [MQTT-4.1.0-2] [MQTT-3.1.2-23]
func TestConformanceSessionExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		b := newTestBroker(t, Config{})
		c := newTClient(t, b, packet.V5)
		c.connect(cfPersist("exp", 5, true))
		c.nc.Close()
		synctest.Wait()
		time.Sleep(4 * time.Second)
		c2 := newTClient(t, b, packet.V5)
		if ack := c2.connect(cfPersist("exp", 5, false)); !ack.SessionPresent {
			t.Fatal("session gone before its expiry interval")
		}
		c2.nc.Close()
		synctest.Wait()
		time.Sleep(6 * time.Second)
		c3 := newTClient(t, b, packet.V5)
		if ack := c3.connect(cfPersist("exp", 5, false)); ack.SessionPresent {
			t.Fatal("session still present after its expiry interval")
		}
	})
}
