package broker

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// ClientInfo describes a connected client to authenticators, authorizers
// and hooks.
type ClientInfo struct {
	ClientID   string
	Username   string // the identity the authenticator settled on
	Version    packet.Version
	RemoteAddr net.Addr
	// TLS is the connection's TLS state, nil for plain connections.
	TLS *tls.ConnectionState
	// Attributes are set by the authenticator (roles, claims ...) and
	// read by the authorizer.
	Attributes map[string]string
}

// AuthRequest is one step of authenticating a client: the CONNECT
// credentials, or one AUTH packet of an enhanced authentication exchange.
type AuthRequest struct {
	Client   *ClientInfo
	Password []byte
	// Method and Data are the v5 Authentication Method and Data; Method is
	// empty for plain CONNECT authentication.
	Method string
	Data   []byte
	// Step counts the exchange's round trips, 0 for CONNECT (or for the
	// AUTH packet that starts re-authentication).
	Step int
	// Reauth is true when the client re-authenticates on a live connection.
	Reauth bool
	// State is what the authenticator returned at the previous step.
	State any
}

// AuthResult is an authenticator's answer.
type AuthResult struct {
	// Code is Success, ContinueAuthentication (send Data to the client and
	// wait for its AUTH), or a failure such as BadUserNameOrPassword,
	// NotAuthorized or BadAuthenticationMethod.
	Code packet.ReasonCode
	// Data is Authentication Data to send to the client.
	Data []byte
	// Username, when set on Success, replaces the identity.
	Username string
	// Attributes, when set on Success, replace the client's attributes.
	Attributes map[string]string
	// State is handed back at the next step of the exchange.
	State any
	// Reason is a human-readable Reason String for failures.
	Reason string
	// Expires, when set on Success, is when the credentials stop being
	// valid (a token's exp): the broker then ends the connection with
	// DISCONNECT 0x87 Not authorized, reason "credentials expired", unless
	// a re-authentication succeeded before (its result's Expires replaces
	// this one; a zero Expires then removes the limit).
	Expires time.Time
}

// Authenticator decides whether a client may connect. It runs on the
// connection's own goroutine; expensive work (password hashing) should be
// bounded by the implementation.
type Authenticator interface {
	Authenticate(ctx context.Context, req *AuthRequest) AuthResult
}

// Authorizer decides what an authenticated client may do.
type Authorizer interface {
	// CanPublish reports whether the client may publish to topic.
	CanPublish(ctx context.Context, c *ClientInfo, topic string) bool
	// CanSubscribe reports whether the client may subscribe to filter (the
	// inner filter for shared subscriptions).
	CanSubscribe(ctx context.Context, c *ClientInfo, filter string) bool
}

// ReceiveAuthorizer is implemented by an Authorizer that also decides
// each delivery: a subscription may be allowed on a wide filter while some
// topics under it are denied. It is asked once per message and session,
// with the ClientInfo of the session's last connection (sessions of
// in-process subscribers are not checked).
type ReceiveAuthorizer interface {
	CanReceive(ctx context.Context, c *ClientInfo, topic string) bool
}

// AllowAll accepts every client that does not ask for enhanced
// authentication; clients that do get Bad Authentication Method (0x8C).
type AllowAll struct{}

// Authenticate implements Authenticator.
func (AllowAll) Authenticate(_ context.Context, req *AuthRequest) AuthResult {
	if req.Method != "" {
		return AuthResult{Code: packet.BadAuthenticationMethod, Reason: "authentication method not supported"}
	}
	return AuthResult{Code: packet.Success}
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, req *AuthRequest) AuthResult

// Authenticate implements Authenticator.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, req *AuthRequest) AuthResult {
	return f(ctx, req)
}
