package packet

import (
	"errors"
	"fmt"
)

// Error is a decoding or encoding failure. Code is the reason code the
// standard names for the violation (MalformedPacket, ProtocolError,
// PacketTooLarge, ...); Reason says what was wrong. errors.Is(err, Code) and
// errors.As(err, *ReasonCode) both work on an *Error.
type Error struct {
	Code   ReasonCode
	Type   Type   // packet type being processed, 0 if unknown
	Reason string // human-readable detail
}

func (e *Error) Error() string {
	if e.Type != 0 {
		return fmt.Sprintf("mqtt: %s: %s: %s", e.Type, e.Code.String(), e.Reason)
	}
	return fmt.Sprintf("mqtt: %s: %s", e.Code.String(), e.Reason)
}

// Unwrap returns the reason code.
func (e *Error) Unwrap() error { return e.Code }

func malformed(t Type, reason string) error {
	return &Error{Code: MalformedPacket, Type: t, Reason: reason}
}

func protocolErr(t Type, reason string) error {
	return &Error{Code: ProtocolError, Type: t, Reason: reason}
}

// CodeOf returns the reason code carried by err: the code of an *Error or a
// bare ReasonCode anywhere in its chain, otherwise UnspecifiedError. A nil
// error yields Success.
func CodeOf(err error) ReasonCode {
	if err == nil {
		return Success
	}
	var rc ReasonCode
	if errors.As(err, &rc) {
		return rc
	}
	return UnspecifiedError
}

// Sentinel errors that are not protocol violations.
var (
	// ErrUnsupportedVersion is returned when encoding for a protocol version
	// other than 3.1.1 (4) or 5.0 (5).
	ErrUnsupportedVersion = errors.New("mqtt: unsupported protocol version")
)
