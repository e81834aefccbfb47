package mqttquic

import (
	"errors"
	"fmt"

	"github.com/quic-go/quic-go"
)

// ConnErrorCode is an application error code closing a QUIC connection
// (CONNECTION_CLOSE).
type ConnErrorCode uint64

// Connection error codes.
const (
	ConnNoError                ConnErrorCode = 0x00 // normal close
	ConnTLSError               ConnErrorCode = 0xB1 // the TLS session is unusable (no MQTT ALPN negotiated)
	ConnUnspecified            ConnErrorCode = 0xB2 // internal error
	ConnTooManyRecoverAttempts ConnErrorCode = 0xB3 // flow recovery attempted too often (not sent)
	ConnProtocolLevel0         ConnErrorCode = 0xB4 // protocol error on the control flow, or on a flow with err_tolerance 0
)

var connErrorNames = map[ConnErrorCode]string{
	ConnNoError:                "NoError",
	ConnTLSError:               "TlsError",
	ConnUnspecified:            "Unspecified",
	ConnTooManyRecoverAttempts: "TooManyRecoverAttempts",
	ConnProtocolLevel0:         "ProtocolLevel0",
}

func (c ConnErrorCode) String() string {
	if s, ok := connErrorNames[c]; ok {
		return s
	}
	return fmt.Sprintf("ConnErrorCode(0x%x)", uint64(c))
}

// StreamErrorCode is an application error code resetting one stream
// (RESET_STREAM and STOP_SENDING).
type StreamErrorCode uint64

// Stream error codes.
const (
	StreamNoFlowState          StreamErrorCode = 0xB3 // abort_if_no_state and the flow's state is unknown
	StreamNotFlowOwner         StreamErrorCode = 0xB4 // flow owned by another party (not sent)
	StreamStreamType           StreamErrorCode = 0xB5 // wrong or missing flow header for this stream
	StreamBadFlowID            StreamErrorCode = 0xB6 // flow id 0, wrong initiator bit, or reused
	StreamPersistentTopic      StreamErrorCode = 0xB7 // persistent topic aliases requested (not supported)
	StreamPersistentSub        StreamErrorCode = 0xB8 // persistent subscriptions refused (not sent)
	StreamOptionalHeader       StreamErrorCode = 0xB9 // optional headers malformed or header over 32 bytes
	StreamIncompletePacket     StreamErrorCode = 0xBA // the stream ended inside a header or packet
	StreamFlowOpenIdle         StreamErrorCode = 0xBB // no flow header within the open timeout
	StreamFlowCancelled        StreamErrorCode = 0xBC // flow cancelled (the connection is closing)
	StreamFlowPacketCancelled  StreamErrorCode = 0xBD // a packet exceeded the maximum packet size
	StreamFlowRefused          StreamErrorCode = 0xBE // too many flows
	StreamDiscardState         StreamErrorCode = 0xBF // the flow's state was discarded by the peer
	StreamServerPushNotWelcome StreamErrorCode = 0xC0 // the client refuses server-initiated flows
	StreamRecoveryFailed       StreamErrorCode = 0xC1 // flow recovery failed (not sent)
)

var streamErrorNames = map[StreamErrorCode]string{
	StreamNoFlowState:          "NoFlowState",
	StreamNotFlowOwner:         "NotFlowOwner",
	StreamStreamType:           "StreamType",
	StreamBadFlowID:            "BadFlowId",
	StreamPersistentTopic:      "PersistentTopic",
	StreamPersistentSub:        "PersistentSub",
	StreamOptionalHeader:       "OptionalHeader",
	StreamIncompletePacket:     "IncompletePacket",
	StreamFlowOpenIdle:         "FlowOpenIdle",
	StreamFlowCancelled:        "FlowCancelled",
	StreamFlowPacketCancelled:  "FlowPacketCancelled",
	StreamFlowRefused:          "FlowRefused",
	StreamDiscardState:         "DiscardState",
	StreamServerPushNotWelcome: "ServerPushNotWelcome",
	StreamRecoveryFailed:       "RecoveryFailed",
}

func (c StreamErrorCode) String() string {
	if s, ok := streamErrorNames[c]; ok {
		return s
	}
	return fmt.Sprintf("StreamErrorCode(0x%x)", uint64(c))
}

// FlowError is a protocol error of one flow: the stream is reset with
// Code, and when the flow is not error tolerant the connection is closed
// with ConnProtocolLevel0.
type FlowError struct {
	Code   StreamErrorCode
	Flow   FlowID
	Reason string
}

func (e *FlowError) Error() string {
	return fmt.Sprintf("mqttquic: flow %d: %s: %s", uint64(e.Flow), e.Code, e.Reason)
}

// StreamErrorCodeOf returns the application error code of a QUIC stream
// reset found in err's chain.
func StreamErrorCodeOf(err error) (StreamErrorCode, bool) {
	var se *quic.StreamError
	if errors.As(err, &se) {
		return StreamErrorCode(se.ErrorCode), true
	}
	return 0, false
}

// ConnErrorCodeOf returns the application error code that closed a QUIC
// connection, found in err's chain.
func ConnErrorCodeOf(err error) (ConnErrorCode, bool) {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) {
		return ConnErrorCode(ae.ErrorCode), true
	}
	return 0, false
}
