package client

import (
	"errors"
	"fmt"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrClosed is returned by calls on a Client that has ended (after
	// Disconnect, or when reconnection gave up), and completes operations
	// that were pending at that moment.
	ErrClosed = errors.New("mqtt client: client closed")
	// ErrNotConnected is returned by calls made before Connect succeeded.
	ErrNotConnected = errors.New("mqtt client: not connected")
	// ErrAlreadyConnected is returned by a second Connect.
	ErrAlreadyConnected = errors.New("mqtt client: already connected")
	// ErrQueueFull is returned by a publish made while disconnected when
	// the offline queue is at its bound (Options.Queue).
	ErrQueueFull = errors.New("mqtt client: publish queue full")
	// ErrSessionLost completes QoS 2 publishes that were in flight when the
	// server lost the session (Session Present 0 on reconnection). Such a
	// message was delivered at most once; it is not re-sent, since the
	// server may already have forwarded it.
	ErrSessionLost = errors.New("mqtt client: session lost with the message in flight")
	// ErrConnectionLost is the cause reported when the network connection
	// fails, and the error of a re-authentication interrupted by it.
	ErrConnectionLost = errors.New("mqtt client: connection lost")
	// ErrKeepAliveTimeout is the cause reported when the server did not
	// answer within the keep alive timeout.
	ErrKeepAliveTimeout = fmt.Errorf("mqtt client: keep alive timeout: %w", ErrConnectionLost)
	// ErrTransportUnavailable is returned when no transport serves the
	// URL scheme (neither a built-in one nor an Options.Dialers entry).
	ErrTransportUnavailable = errors.New("mqtt client: transport not available")
	// ErrAlreadyAcknowledged is returned by a second Ack or Reject.
	ErrAlreadyAcknowledged = errors.New("mqtt client: message already acknowledged")
	// ErrNoAuth is returned by Reauthenticate without Options.Auth.
	ErrNoAuth = errors.New("mqtt client: no authentication handler")
	// ErrReauthInProgress is returned by a Reauthenticate while another runs.
	ErrReauthInProgress = errors.New("mqtt client: re-authentication in progress")
)

// ReasonError is a failure the server reported with a reason code (CONNACK,
// PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH), or one the
// client detected locally and reports with the code the standard names
// (PacketTooLarge, QoSNotSupported, RetainNotSupported, ...). It unwraps to
// the packet.ReasonCode, so errors.Is(err, packet.NotAuthorized) works.
//
// For 3.1.1 CONNACK return codes, Code holds the equivalent v5 code
// (NotAuthorized for return code 5, ...).
type ReasonError struct {
	Op           string // "connect", "publish", "subscribe", "unsubscribe", "disconnect", "auth"
	Code         packet.ReasonCode
	ReasonString string // the Reason String property, if the server sent one
	User         []packet.UserProperty
	Filter       string // the topic filter, for subscribe and unsubscribe
	Local        bool   // detected by the client, nothing was sent
}

func (e *ReasonError) Error() string {
	s := "mqtt client: " + e.Op
	if e.Filter != "" {
		s += " " + e.Filter
	}
	s += ": " + e.Code.String() + " (0x" + fmt.Sprintf("%02x", byte(e.Code)) + ")"
	if e.Local {
		s += " (refused locally)"
	}
	if e.ReasonString != "" {
		s += ": " + e.ReasonString
	}
	return s
}

// Unwrap returns the reason code.
func (e *ReasonError) Unwrap() error { return e.Code }

// RedirectError reports a CONNACK or DISCONNECT with Use Another Server
// (0x9C) or Server Moved (0x9D). The client follows redirects itself (up to
// three in a row); this error surfaces only when it cannot.
type RedirectError struct {
	ReasonError
	ServerReference string
}

func (e *RedirectError) Error() string {
	return e.ReasonError.Error() + " -> " + e.ServerReference
}

func localError(op string, code packet.ReasonCode, why string) error {
	return &ReasonError{Op: op, Code: code, ReasonString: why, Local: true}
}

// v3ConnackCode maps a 3.1.1 CONNACK return code to its v5 equivalent.
func v3ConnackCode(rc packet.ReasonCode) packet.ReasonCode {
	switch rc {
	case packet.V3UnacceptableProtocolVersion:
		return packet.UnsupportedProtocolVersion
	case packet.V3IdentifierRejected:
		return packet.ClientIdentifierNotValid
	case packet.V3ServerUnavailable:
		return packet.ServerUnavailable
	case packet.V3BadUserNameOrPassword:
		return packet.BadUserNameOrPassword
	case packet.V3NotAuthorized:
		return packet.NotAuthorized
	}
	return rc
}

func validateName(name string) error   { return topic.ValidateName(name) }
func validateFilter(name string) error { return topic.ValidateFilter(name) }
