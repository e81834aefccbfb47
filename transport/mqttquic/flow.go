package mqttquic

import (
	"errors"
	"fmt"

	"github.com/quic-go/quic-go/quicvarint"
)

// FlowType is the first field of a flow header: it tells what a stream
// carries. The values cannot start an MQTT packet (0x11-0x14 would be a
// CONNECT with reserved flags set), so the first byte of a stream tells a
// header from a packet.
type FlowType uint64

// Flow types.
const (
	FlowControl     FlowType = 0x11 // control flow (optional header of the first stream)
	FlowClientData  FlowType = 0x12 // data flow opened by the client
	FlowServerData  FlowType = 0x13 // data flow opened by the server
	FlowUserDefined FlowType = 0x14 // user-defined flow (parsed, refused with StreamType)
)

func (t FlowType) String() string {
	switch t {
	case FlowControl:
		return "control"
	case FlowClientData:
		return "client-data"
	case FlowServerData:
		return "server-data"
	case FlowUserDefined:
		return "user-defined"
	}
	return fmt.Sprintf("flow-type(0x%x)", uint64(t))
}

// MaxFlowHeaderSize is the largest flow header accepted, in bytes.
const MaxFlowHeaderSize = 32

// FlowID identifies a flow within a connection: the sequence number shifted
// left by one, with the low bit telling who opened it (0 client, 1 server).
// Flow 0 is the control flow.
type FlowID uint64

// ClientFlowID returns the id of the client's seq-th data flow (seq >= 1).
func ClientFlowID(seq uint64) FlowID { return FlowID(seq << 1) }

// ServerFlowID returns the id of the server's seq-th data flow (seq >= 1).
func ServerFlowID(seq uint64) FlowID { return FlowID(seq<<1 | 1) }

// ServerInitiated reports whether the server opened the flow.
func (id FlowID) ServerInitiated() bool { return id&1 == 1 }

// Sequence returns the flow's sequence number.
func (id FlowID) Sequence() uint64 { return uint64(id) >> 1 }

// FlowFlags is the flags byte of a flow header.
type FlowFlags struct {
	OptionalHeaders         bool  // bit 7: optional headers follow the flags
	PersistentSubscriptions bool  // bit 6: subscriptions made on the flow outlive its stream
	PersistentTopicAlias    bool  // bit 5: topic aliases outlive the stream (not supported)
	PersistentQoS           bool  // bit 4: QoS state outlives the stream
	ErrTolerance            uint8 // bits 3-2: 0 a flow error closes the connection; 1-3 it resets the stream only
	AbortIfNoState          bool  // bit 1: refuse the flow (NoFlowState) if its state is unknown
	Clean                   bool  // bit 0: start the flow with fresh state
}

// Byte encodes the flags.
func (f FlowFlags) Byte() byte {
	var b byte
	if f.OptionalHeaders {
		b |= 0x80
	}
	if f.PersistentSubscriptions {
		b |= 0x40
	}
	if f.PersistentTopicAlias {
		b |= 0x20
	}
	if f.PersistentQoS {
		b |= 0x10
	}
	b |= (f.ErrTolerance & 3) << 2
	if f.AbortIfNoState {
		b |= 0x02
	}
	if f.Clean {
		b |= 0x01
	}
	return b
}

// ParseFlowFlags decodes a flags byte.
func ParseFlowFlags(b byte) FlowFlags {
	return FlowFlags{
		OptionalHeaders:         b&0x80 != 0,
		PersistentSubscriptions: b&0x40 != 0,
		PersistentTopicAlias:    b&0x20 != 0,
		PersistentQoS:           b&0x10 != 0,
		ErrTolerance:            (b >> 2) & 3,
		AbortIfNoState:          b&0x02 != 0,
		Clean:                   b&0x01 != 0,
	}
}

// Tolerant reports whether a flow error only resets the flow's stream.
func (f FlowFlags) Tolerant() bool { return f.ErrTolerance != 0 }

// persistent reports whether any persistence bit is set.
func (f FlowFlags) persistent() bool {
	return f.PersistentSubscriptions || f.PersistentTopicAlias || f.PersistentQoS
}

// FlowHeader is the header that starts a flow's stream. All integers are
// QUIC variable-length integers (RFC 9000 section 16):
//
//	control:      0x11, flow id (0), flags
//	data, other:  type, flow id, expire interval (seconds), flags
//
// When the OptionalHeaders flag is set, the flags are followed by a
// length (variable-length integer) and that many bytes of optional headers,
// which this implementation skips. The whole header is at most
// MaxFlowHeaderSize bytes.
type FlowHeader struct {
	Type     FlowType
	ID       FlowID
	Expire   uint64 // expire interval in seconds (not in control headers)
	Flags    FlowFlags
	Optional []byte // optional headers (only with Flags.OptionalHeaders)
}

// Errors of flow header decoding.
var (
	ErrShortHeader   = errors.New("mqttquic: flow header truncated")
	ErrHeaderTooLong = errors.New("mqttquic: flow header longer than 32 bytes")
	ErrUnknownFlow   = errors.New("mqttquic: unknown flow type")
)

// AppendTo appends the encoded header to b. It fails if the header would
// be longer than MaxFlowHeaderSize or holds a value quicvarint cannot
// carry.
func (h *FlowHeader) AppendTo(b []byte) ([]byte, error) {
	if h.Type < FlowControl || h.Type > FlowUserDefined {
		return b, ErrUnknownFlow
	}
	if uint64(h.ID) > quicvarint.Max || h.Expire > quicvarint.Max {
		return b, fmt.Errorf("mqttquic: flow header value exceeds %d", uint64(quicvarint.Max))
	}
	start := len(b)
	b = quicvarint.Append(b, uint64(h.Type))
	b = quicvarint.Append(b, uint64(h.ID))
	if h.Type != FlowControl {
		b = quicvarint.Append(b, h.Expire)
	}
	b = append(b, h.Flags.Byte())
	if h.Flags.OptionalHeaders {
		b = quicvarint.Append(b, uint64(len(h.Optional)))
		b = append(b, h.Optional...)
	}
	if len(b)-start > MaxFlowHeaderSize {
		return b[:start], ErrHeaderTooLong
	}
	return b, nil
}

// ParseFlowHeader decodes a header from the start of b and returns it with
// its length. ErrShortHeader means b ends before the header does (a
// stream reader waits for more bytes); ErrHeaderTooLong that the header
// claims more than MaxFlowHeaderSize bytes (the flags, decoded by then,
// are returned with it).
func ParseFlowHeader(b []byte) (FlowHeader, int, error) {
	var h FlowHeader
	limit := b
	if len(limit) > MaxFlowHeaderSize {
		limit = limit[:MaxFlowHeaderSize]
	}
	n := 0
	next := func() (uint64, error) {
		v, l, err := quicvarint.Parse(limit[n:])
		if err != nil {
			if len(b) > MaxFlowHeaderSize {
				return 0, ErrHeaderTooLong
			}
			return 0, ErrShortHeader
		}
		n += l
		return v, nil
	}
	t, err := next()
	if err != nil {
		return h, 0, err
	}
	h.Type = FlowType(t)
	if h.Type < FlowControl || h.Type > FlowUserDefined {
		return h, 0, ErrUnknownFlow
	}
	id, err := next()
	if err != nil {
		return h, 0, err
	}
	h.ID = FlowID(id)
	if h.Type != FlowControl {
		if h.Expire, err = next(); err != nil {
			return h, 0, err
		}
	}
	if n >= len(limit) {
		if len(b) > MaxFlowHeaderSize {
			return h, 0, ErrHeaderTooLong
		}
		return h, 0, ErrShortHeader
	}
	h.Flags = ParseFlowFlags(limit[n])
	n++
	if h.Flags.OptionalHeaders {
		// The length is read from the unlimited buffer so that a header
		// announcing too much is told apart from one still arriving.
		l, ll, err := quicvarint.Parse(b[n:])
		if err != nil {
			if len(b) > MaxFlowHeaderSize {
				return h, 0, ErrHeaderTooLong
			}
			return h, 0, ErrShortHeader
		}
		if uint64(n+ll) > MaxFlowHeaderSize || l > uint64(MaxFlowHeaderSize-n-ll) {
			return h, 0, ErrHeaderTooLong
		}
		n += ll
		if len(b) < n+int(l) {
			return h, 0, ErrShortHeader
		}
		h.Optional = b[n : n+int(l) : n+int(l)]
		n += int(l)
	}
	return h, n, nil
}

// isFlowHeaderByte reports whether a stream starting with b starts with a
// flow header.
func isFlowHeaderByte(b byte) bool { return b >= byte(FlowControl) && b <= byte(FlowUserDefined) }
