package auth

import (
	"bytes"
	"context"
	"errors"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// PlainMethod is the Authentication Method of SASL PLAIN.
const PlainMethod = "PLAIN"

// maxPlainField bounds each field of a PLAIN message; RFC 4616 requires
// accepting 255 octets.
const maxPlainField = 1024

// Plain implements the SASL PLAIN mechanism (RFC 4616) as MQTT 5 enhanced
// authentication with Authentication Method "PLAIN". The Authentication
// Data is "authzid NUL authcid NUL passwd"; authcid and passwd are checked
// with the Verifier and authcid becomes the client's user name. The
// authorization identity must be empty or equal to authcid (acting on
// behalf of another user is not supported). Identities are compared byte
// for byte (no SASLprep normalization).
//
// A CONNECT with the method and no data gets an empty challenge (AUTH
// Continue Authentication), which the client answers with the message, as
// SASL allows. Wrong credentials or a malformed message get Bad User Name
// or Password (0x86). A re-authentication must name the user the
// connection is authenticated as. PLAIN sends the password in clear text:
// use it over TLS.
type Plain struct {
	Verifier PasswordVerifier
}

// NewPlain returns a PLAIN authenticator checking passwords with v.
func NewPlain(v PasswordVerifier) *Plain { return &Plain{Verifier: v} }

// Handles reports whether req's method is PLAIN.
func (p *Plain) Handles(req *broker.AuthRequest) bool { return req.Method == PlainMethod }

// plainChallenged marks the exchange state after the empty challenge.
type plainChallenged struct{}

// Authenticate implements broker.Authenticator.
func (p *Plain) Authenticate(ctx context.Context, req *broker.AuthRequest) broker.AuthResult {
	if req.Method != PlainMethod {
		return broker.AuthResult{Code: packet.BadAuthenticationMethod, Reason: "authentication method not supported"}
	}
	if len(req.Data) == 0 {
		if req.Step == 0 {
			return broker.AuthResult{Code: packet.ContinueAuthentication, State: plainChallenged{}}
		}
		return broker.AuthResult{Code: packet.BadUserNameOrPassword, Reason: "PLAIN: empty response"}
	}
	if req.Step > 0 {
		if _, ok := req.State.(plainChallenged); !ok || req.Step > 1 {
			return broker.AuthResult{Code: packet.ProtocolError, Reason: "PLAIN: unexpected exchange step"}
		}
	}
	authzid, authcid, passwd, err := ParsePlain(req.Data)
	if err != nil {
		return broker.AuthResult{Code: packet.BadUserNameOrPassword, Reason: "PLAIN: " + err.Error()}
	}
	if authzid != "" && authzid != authcid {
		return broker.AuthResult{Code: packet.NotAuthorized, Reason: "PLAIN: authorization identity differs from authentication identity"}
	}
	if req.Reauth && req.Client != nil && authcid != req.Client.Username {
		return broker.AuthResult{Code: packet.NotAuthorized, Reason: "PLAIN: re-authentication as another user"}
	}
	ok, err := p.Verifier.VerifyPassword(ctx, authcid, passwd)
	switch {
	case err != nil:
		return broker.AuthResult{Code: packet.ServerBusy, Reason: "authentication not completed: " + err.Error()}
	case !ok:
		return broker.AuthResult{Code: packet.BadUserNameOrPassword, Reason: "bad user name or password"}
	}
	return broker.AuthResult{Code: packet.Success, Username: authcid}
}

// ParsePlain splits a SASL PLAIN message "authzid NUL authcid NUL passwd".
// authcid and passwd may not be empty; no field may exceed 1024 bytes or
// be invalid UTF-8.
func ParsePlain(msg []byte) (authzid, authcid string, passwd []byte, err error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", "", nil, errors.New("message is not authzid NUL authcid NUL passwd")
	}
	for _, f := range parts {
		if len(f) > maxPlainField {
			return "", "", nil, errors.New("field too long")
		}
		if !packet.ValidUTF8(f) {
			return "", "", nil, errors.New("field is not valid UTF-8")
		}
	}
	if len(parts[1]) == 0 || len(parts[2]) == 0 {
		return "", "", nil, errors.New("empty authentication identity or password")
	}
	return string(parts[0]), string(parts[1]), parts[2], nil
}
