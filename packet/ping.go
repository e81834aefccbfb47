package packet

// Pingreq is the PINGREQ packet (section 3.12).
type Pingreq struct{}

// Type implements Packet.
func (*Pingreq) Type() Type { return PINGREQ }

// AppendTo implements Packet.
func (*Pingreq) AppendTo(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGREQ)<<4, 0), nil
}

// Decode decodes a PINGREQ body, which must be empty.
func (*Pingreq) Decode(flags byte, body []byte, _ Version) error {
	return decodeEmpty(PINGREQ, flags, body)
}

// Pingresp is the PINGRESP packet (section 3.13).
type Pingresp struct{}

// Type implements Packet.
func (*Pingresp) Type() Type { return PINGRESP }

// AppendTo implements Packet.
func (*Pingresp) AppendTo(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGRESP)<<4, 0), nil
}

// Decode decodes a PINGRESP body, which must be empty.
func (*Pingresp) Decode(flags byte, body []byte, _ Version) error {
	return decodeEmpty(PINGRESP, flags, body)
}

func decodeEmpty(t Type, flags byte, body []byte) error {
	if flags != 0 {
		return malformed(t, "invalid fixed header flags") // [MQTT-2.1.3-1]
	}
	if len(body) != 0 {
		return malformed(t, "non-zero remaining length")
	}
	return nil
}
