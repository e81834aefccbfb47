package packet

import "strconv"

// Type is an MQTT control packet type (the high nibble of the first byte).
type Type byte

// Control packet types (section 2.1.2).
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15
)

var typeNames = [16]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

func (t Type) String() string {
	if t < 16 {
		return typeNames[t]
	}
	return "TYPE(" + strconv.Itoa(int(t)) + ")"
}

// Version is the protocol level carried in CONNECT.
type Version byte

// Supported protocol levels.
const (
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

func (v Version) String() string {
	switch v {
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	case 3:
		return "3.1"
	}
	return "level " + strconv.Itoa(int(v))
}

// Valid reports whether v is a protocol level this package speaks.
func (v Version) Valid() bool { return v == V311 || v == V5 }

// MaxRemainingLength is the largest Remaining Length a variable byte
// integer can carry (268,435,455), so the largest packet is this plus 5.
const MaxRemainingLength = 268_435_455

// FixedHeader is the first byte and the Remaining Length of a packet.
type FixedHeader struct {
	Type      Type
	Flags     byte // low nibble of the first byte
	Remaining int  // Remaining Length
}

// Size is the total encoded size of the packet: header plus body.
func (h FixedHeader) Size() int { return 1 + VarintSize(uint32(h.Remaining)) + h.Remaining }

// requiredFlags holds the fixed-header flag nibble each type must carry;
// PUBLISH (variable) is checked separately.
var requiredFlags = [16]byte{PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2}

// Validate checks the packet type and the reserved flag bits for version v.
func (h FixedHeader) Validate(v Version) error {
	switch {
	case h.Type == 0:
		return malformed(0, "reserved packet type 0")
	case h.Type > AUTH:
		// Not reachable from the wire (the type is a nibble), but a
		// caller-built FixedHeader must not index past requiredFlags.
		return malformed(h.Type, "invalid packet type")
	case h.Type == AUTH && v == V311:
		return malformed(AUTH, "AUTH packet in MQTT 3.1.1")
	case h.Type == PUBLISH:
		if h.Flags&0x06 == 0x06 {
			return malformed(PUBLISH, "QoS 3") // [MQTT-3.3.1-4]
		}
	case h.Flags != requiredFlags[h.Type]:
		return malformed(h.Type, "invalid fixed header flags") // [MQTT-2.1.3-1]
	}
	return nil
}

// Packet is any MQTT control packet. AppendTo appends the encoded packet
// (fixed header included) for protocol version v to dst. The version is a
// parameter rather than a field so that one decoded message can be encoded
// for 3.1.1 and 5.0 receivers alike.
type Packet interface {
	Type() Type
	AppendTo(dst []byte, v Version) ([]byte, error)
}

// appendHeader appends the fixed header.
func appendHeader(dst []byte, t Type, flags byte, remaining int) ([]byte, error) {
	if remaining > MaxRemainingLength {
		return dst, &Error{Code: PacketTooLarge, Type: t, Reason: "remaining length exceeds 268435455"}
	}
	dst = append(dst, byte(t)<<4|flags)
	return AppendVarint(dst, uint32(remaining)), nil
}

// Decode decodes the body of a packet whose fixed header is h, for protocol
// version v. The returned packet references body (strings and byte slices
// alias it): the caller must not modify body while the packet is in use.
// CONNECT is decoded with the version it declares; v is ignored for it.
func Decode(h FixedHeader, body []byte, v Version) (Packet, error) {
	if err := h.Validate(v); err != nil {
		return nil, err
	}
	if len(body) != h.Remaining {
		return nil, malformed(h.Type, "body length does not match remaining length")
	}
	var p interface {
		Packet
		Decode(flags byte, body []byte, v Version) error
	}
	switch h.Type {
	case CONNECT:
		p = new(Connect)
	case CONNACK:
		p = new(Connack)
	case PUBLISH:
		p = new(Publish)
	case PUBACK:
		p = new(Puback)
	case PUBREC:
		p = new(Pubrec)
	case PUBREL:
		p = new(Pubrel)
	case PUBCOMP:
		p = new(Pubcomp)
	case SUBSCRIBE:
		p = new(Subscribe)
	case SUBACK:
		p = new(Suback)
	case UNSUBSCRIBE:
		p = new(Unsubscribe)
	case UNSUBACK:
		p = new(Unsuback)
	case PINGREQ:
		p = new(Pingreq)
	case PINGRESP:
		p = new(Pingresp)
	case DISCONNECT:
		p = new(Disconnect)
	case AUTH:
		p = new(Auth)
	default:
		return nil, malformed(h.Type, "unknown packet type")
	}
	if err := p.Decode(h.Flags, body, v); err != nil {
		return nil, err
	}
	return p, nil
}

// Encode returns p encoded for version v in a new slice.
func Encode(p Packet, v Version) ([]byte, error) { return p.AppendTo(nil, v) }
