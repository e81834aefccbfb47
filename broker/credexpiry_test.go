package broker

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// expiringAuth accepts method "tok" with Authentication Data naming the
// credentials' lifetime in seconds ("" = no expiry).
var expiringAuth = AuthenticatorFunc(func(_ context.Context, req *AuthRequest) AuthResult {
	if req.Method != "tok" {
		return AuthResult{Code: packet.BadAuthenticationMethod}
	}
	res := AuthResult{Code: packet.Success}
	if d, err := time.ParseDuration(string(req.Data)); err == nil {
		res.Expires = time.Now().Add(d)
	}
	return res
})

func connectWithToken(t *testing.T, b *Broker, v packet.Version, id, life string) *tclient {
	t.Helper()
	c := newTClient(t, b, v)
	cp := &packet.Connect{ClientID: id, CleanStart: true}
	if v == packet.V5 {
		cp.Props.AuthMethod = "tok"
		cp.Props.AuthData = []byte(life)
	}
	c.connect(cp)
	return c
}

// A connection whose credentials expire is ended with DISCONNECT 0x87 at
// that moment, not before; a re-authentication moves the limit or, with
// no expiry, removes it.
func TestCredentialExpiryDisconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		b := newTestBroker(t, Config{Authenticator: expiringAuth})
		start := time.Now()
		c := connectWithToken(t, b, packet.V5, "e", "30s")
		d := recvAs[*packet.Disconnect](c)
		if d.ReasonCode != packet.NotAuthorized || d.Props.ReasonString != "credentials expired" {
			t.Fatalf("DISCONNECT %v %q", d.ReasonCode, d.Props.ReasonString)
		}
		if el := time.Since(start); el != 30*time.Second {
			t.Fatalf("disconnected after %v, want 30s", el)
		}
		c.expectClosed()
	})
}

func TestCredentialExpiryMovedByReauth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		b := newTestBroker(t, Config{Authenticator: expiringAuth})
		start := time.Now()
		c := connectWithToken(t, b, packet.V5, "r", "30s")
		time.Sleep(20 * time.Second)
		re := &packet.Auth{ReasonCode: packet.ReAuthenticate}
		re.Props.AuthMethod = "tok"
		re.Props.AuthData = []byte("60s") // now valid until 80 s
		c.send(re)
		if a := recvAs[*packet.Auth](c); a.ReasonCode != packet.Success {
			t.Fatalf("AUTH %v", a.ReasonCode)
		}
		d := recvAs[*packet.Disconnect](c)
		if el := time.Since(start); d.ReasonCode != packet.NotAuthorized || el != 80*time.Second {
			t.Fatalf("DISCONNECT %v after %v, want 0x87 after 80s", d.ReasonCode, el)
		}
	})
}

func TestCredentialExpiryRemovedByReauth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		b := newTestBroker(t, Config{Authenticator: expiringAuth})
		c := connectWithToken(t, b, packet.V5, "n", "30s")
		re := &packet.Auth{ReasonCode: packet.ReAuthenticate}
		re.Props.AuthMethod = "tok"
		c.send(re) // no lifetime: the limit goes
		if a := recvAs[*packet.Auth](c); a.ReasonCode != packet.Success {
			t.Fatalf("AUTH %v", a.ReasonCode)
		}
		time.Sleep(time.Hour)
		c.send(&packet.Pingreq{})
		recvAs[*packet.Pingresp](c)
		c.disconnect()
	})
}

// A 3.1.1 connection (credentials in the password) is closed: it has no
// DISCONNECT to receive.
func TestCredentialExpiryV311(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer setRecvTimeout(time.Hour)()
		auth := AuthenticatorFunc(func(_ context.Context, req *AuthRequest) AuthResult {
			return AuthResult{Code: packet.Success, Expires: time.Now().Add(3 * time.Second)}
		})
		b := newTestBroker(t, Config{Authenticator: auth})
		start := time.Now()
		c := dial(t, b, packet.V311, "old")
		c.expectClosed()
		if el := time.Since(start); el != 3*time.Second {
			t.Fatalf("closed after %v, want 3s", el)
		}
	})
}
