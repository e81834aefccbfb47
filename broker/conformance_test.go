package broker

// Conformance tests: each TestConformance* function checks the broker's
// side of the MQTT 5.0 normative statements named in its comment, over the
// raw test client of tclient_test.go. docs/conformance.md maps every
// statement to the tests that check it (internal/conformance checks that
// map). Helpers here are prefixed "cf" so that they cannot collide with the
// helpers of other test files of the package.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/internal/testpackets"
	"github.com/mqtt5go/mqtt5/packet"
)

// cfPersist returns a CONNECT for a session that outlives the connection
// (v5: Session Expiry Interval expiry; 3.1.1: Clean Session 0 unless clean).
func cfPersist(id string, expiry uint32, clean bool) *packet.Connect {
	cp := &packet.Connect{ClientID: id, CleanStart: clean}
	cp.Props.SessionExpiry = expiry
	return cp
}

// cfEncode encodes p for v, failing the test on error.
func cfEncode(t testing.TB, p packet.Packet, v packet.Version) []byte {
	t.Helper()
	b, err := p.AppendTo(nil, v)
	if err != nil {
		t.Fatalf("encode %s: %v", p.Type(), err)
	}
	return b
}

// cfWriteAsync writes b to the broker from another goroutine. net.Pipe
// writes block until the other end reads, and the broker may stop reading
// (and start writing a refusal) half way through what a test sends. The
// returned function waits for the write to end (it ends at the latest
// when the connection is closed).
func cfWriteAsync(c *tclient, b []byte) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.nc.Write(b)
	}()
	return func() { <-done }
}

// cfRecvRaw reads the next packet and returns its size on the wire (fixed
// header included) and the decoded packet. Decoding validates it: reserved
// bits, reason codes allowed for the type, property rules.
func cfRecvRaw(c *tclient) (int, packet.Packet) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(c.timeout))
	h, body, err := c.r.ReadRaw(c.v)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	p, err := packet.Decode(h, bytes.Clone(body), c.v)
	if err != nil {
		c.t.Fatalf("decode %s (% x): %v", h.Type, body, err)
	}
	return h.Size(), p
}

// cfReadUntilClosed returns every byte the broker sends until it closes the
// connection, failing if it is not closed within 5 s. Use it on a client
// whose packet reader has not been used yet.
func cfReadUntilClosed(c *tclient) []byte {
	c.t.Helper()
	var out []byte
	buf := make([]byte, 1024)
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := c.nc.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.t.Fatalf("connection not closed; received % x", out)
			}
			return out
		}
	}
}

// cfCheckRefusal checks what a broker sent to refuse a connection: nothing
// at all, or exactly one CONNACK with a failure code and Session Present 0
// (in v5 form, or the 3.1.1 form with a return code 1..5), never a
// DISCONNECT [MQTT-3.14.0-1] [MQTT-3.2.2-6]. It returns the code sent (0
// when nothing was sent) and whether the CONNACK had the v5 form.
func cfCheckRefusal(t testing.TB, raw []byte) (rc packet.ReasonCode, v5 bool) {
	t.Helper()
	if len(raw) == 0 {
		return 0, false
	}
	if raw[0] != 0x20 {
		t.Fatalf("refused connection got % x, want nothing or one CONNACK", raw)
	}
	if len(raw) < 4 || int(raw[1])+2 != len(raw) {
		t.Fatalf("refused connection got % x, want exactly one CONNACK", raw)
	}
	if raw[2] != 0 {
		t.Fatalf("refusing CONNACK % x has acknowledge flags %#x, want 0 (Session Present 0)", raw, raw[2])
	}
	rc = packet.ReasonCode(raw[3])
	if raw[1] == 2 { // 3.1.1 form
		if rc < 1 || rc > 5 {
			t.Fatalf("refusing 3.1.1 CONNACK % x has return code %#x", raw, byte(rc))
		}
		return rc, false
	}
	if !rc.IsError() || !rc.ValidFor(packet.CONNACK) {
		t.Fatalf("refusing CONNACK % x has reason code %#x, want a CONNACK failure code", raw, byte(rc))
	}
	return rc, true
}

// cfOffline reports whether the session of id exists with no connection.
func cfOffline(b *Broker, id string) bool {
	b.sessMu.Lock()
	s := b.sessions[id]
	b.sessMu.Unlock()
	return s != nil && !s.online.Load()
}

// cfDrop closes c's connection abruptly and waits until the broker has
// detached its (persistent) session.
func cfDrop(t testing.TB, b *Broker, c *tclient, id string) {
	t.Helper()
	c.nc.Close()
	pollUntil(t, func() bool { return cfOffline(b, id) })
}

// cfComplete acknowledges a PUBLISH received by c as its QoS requires.
func cfComplete(c *tclient, p *packet.Publish) {
	c.t.Helper()
	switch p.QoS {
	case 1:
		c.send(&packet.Puback{PacketID: p.PacketID})
	case 2:
		c.send(&packet.Pubrec{PacketID: p.PacketID})
		if rel := recvAs[*packet.Pubrel](c); rel.PacketID != p.PacketID {
			c.t.Fatalf("PUBREL %d for PUBLISH %d", rel.PacketID, p.PacketID)
		}
		c.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
}

// cfExpectDisconnect reads a DISCONNECT (v5), checks its reason code and
// that the server sends no Session Expiry Interval [MQTT-3.14.2-2], then
// checks that the connection is closed with nothing after it [MQTT-3.14.4-1]
// [MQTT-3.14.4-2]. want 0 accepts any failure code. For 3.1.1 it only
// checks the close.
func cfExpectDisconnect(c *tclient, want packet.ReasonCode) {
	c.t.Helper()
	if c.v == packet.V5 {
		d := recvAs[*packet.Disconnect](c)
		switch {
		case want != 0 && d.ReasonCode != want:
			c.t.Fatalf("DISCONNECT %#x (%v), want %#x (%v)", byte(d.ReasonCode), d.ReasonCode, byte(want), want)
		case !d.ReasonCode.IsError():
			c.t.Fatalf("DISCONNECT %v, want a failure code", d.ReasonCode)
		case d.Props.Has(packet.PropSessionExpiry):
			c.t.Fatalf("server DISCONNECT carries a Session Expiry Interval [MQTT-3.14.2-2]")
		}
	}
	c.expectClosed()
}

// ---- a small enhanced-authentication provider ----

// cfAuthMethod is the authentication method of cfAuth.
const cfAuthMethod = "TEST"

// cfAuth authenticates plain CONNECTs by user name ("bad" is refused with
// Bad User Name or Password) and runs a one-round challenge for method
// "TEST": the broker sends "challenge", the client must answer "answer".
// Re-authentication runs the same exchange.
type cfAuth struct{}

func (cfAuth) Authenticate(_ context.Context, req *AuthRequest) AuthResult {
	switch {
	case req.Method == "":
		if req.Client.Username == "bad" {
			return AuthResult{Code: packet.BadUserNameOrPassword, Reason: "bad user name"}
		}
		return AuthResult{Code: packet.Success}
	case req.Method != cfAuthMethod:
		return AuthResult{Code: packet.BadAuthenticationMethod, Reason: "unknown method"}
	case req.Step == 0:
		return AuthResult{Code: packet.ContinueAuthentication, Data: []byte("challenge"), State: "sent"}
	case req.State == "sent" && string(req.Data) == "answer":
		return AuthResult{Code: packet.Success, Data: []byte("ok")}
	}
	return AuthResult{Code: packet.NotAuthorized, Reason: "wrong answer"}
}

// ---- the packet catalogue against the broker ----

// clientToServer reports whether a client may send packets of type t.
func clientToServer(t packet.Type) bool {
	switch t {
	case packet.CONNECT, packet.PUBLISH, packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP,
		packet.SUBSCRIBE, packet.UNSUBSCRIBE, packet.PINGREQ, packet.DISCONNECT, packet.AUTH:
		return true
	}
	return false
}

// TestConformanceMalformedPacketsCloseConnection sends every malformed entry
// of the packet catalogue (internal/testpackets) to the broker. A malformed
// CONNECT, as the first packet, gets nothing or one failing CONNACK and the
// connection is closed; any other malformed packet, on an established
// connection, gets a v5 DISCONNECT with the catalogued reason code (3.1.1:
// no packet) and the connection is closed.
// [MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-1.5.5-1] [MQTT-1.5.7-1] [MQTT-2.1.3-1]
// [MQTT-2.2.2-1] [MQTT-3.1.2-3] [MQTT-3.1.2-9] [MQTT-3.1.2-11]
// [MQTT-3.1.2-12] [MQTT-3.1.2-13] [MQTT-3.1.2-17] [MQTT-3.1.2-19]
// [MQTT-3.1.3-3] [MQTT-3.1.3-4] [MQTT-3.1.3-11] [MQTT-3.1.3-12]
// [MQTT-3.1.4-1] [MQTT-3.3.1-2] [MQTT-3.3.1-4] [MQTT-3.3.2-1]
// [MQTT-3.3.2-8] [MQTT-3.3.2-19] [MQTT-3.6.1-1] [MQTT-3.8.1-1]
// [MQTT-3.8.3-1] [MQTT-3.8.3-2] [MQTT-3.8.3-5] [MQTT-3.10.1-1]
// [MQTT-3.10.3-1] [MQTT-3.10.3-2] [MQTT-3.14.0-1] [MQTT-3.14.1-1]
// [MQTT-3.15.1-1] [MQTT-4.13.1-1] [MQTT-4.13.2-1]
func TestConformanceMalformedPacketsCloseConnection(t *testing.T) {
	for _, v := range bothVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := newTestBroker(t, Config{})
			for i, e := range testpackets.Malformed(v) {
				if e.Truncated {
					continue // the broker would wait for the rest
				}
				typ := packet.Type(e.Bytes[0] >> 4)
				t.Run(e.Name, func(t *testing.T) {
					c := newTClient(t, b, v)
					if typ == packet.CONNECT {
						wait := cfWriteAsync(c, e.Bytes)
						rc, v5 := cfCheckRefusal(t, cfReadUntilClosed(c))
						wait()
						if v5 && e.Code.ValidFor(packet.CONNACK) && rc != e.Code {
							t.Errorf("CONNACK %#x, want %#x (%v)", byte(rc), byte(e.Code), e.Code)
						}
						return
					}
					c.connect(&packet.Connect{ClientID: fmt.Sprintf("m%d", i), CleanStart: true})
					wait := cfWriteAsync(c, e.Bytes)
					defer wait()
					want := packet.ReasonCode(0)
					if clientToServer(typ) && e.Code.ValidFor(packet.DISCONNECT) {
						want = e.Code
					}
					cfExpectDisconnect(c, want)
				})
			}
		})
	}
}
