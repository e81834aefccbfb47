package packet

// Connack is the CONNACK packet (section 3.2). In 3.1.1, ReasonCode carries
// the return code (0x00..0x05) and Props are not encoded.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Props          Properties
}

// Type implements Packet.
func (*Connack) Type() Type { return CONNACK }

// AppendTo implements Packet.
func (c *Connack) AppendTo(dst []byte, v Version) ([]byte, error) {
	flags := byte(0)
	if c.SessionPresent {
		flags = 1
	}
	switch v {
	case V311:
		if c.ReasonCode > V3NotAuthorized {
			return dst, malformed(CONNACK, "invalid 3.1.1 return code "+c.ReasonCode.String())
		}
		dst, _ = appendHeader(dst, CONNACK, 0, 2)
		return append(dst, flags, byte(c.ReasonCode)), nil
	case V5:
		if !c.ReasonCode.ValidFor(CONNACK) {
			return dst, malformed(CONNACK, "invalid reason code "+c.ReasonCode.String()) // [MQTT-3.2.2-8]
		}
		if err := c.Props.validate(CONNACK); err != nil {
			return dst, err
		}
		ps := c.Props.size(CONNACK)
		dst, err := appendHeader(dst, CONNACK, 0, 2+VarintSize(uint32(ps))+ps)
		if err != nil {
			return dst, err
		}
		dst = append(dst, flags, byte(c.ReasonCode))
		return c.Props.appendProps(dst, CONNACK, ps), nil
	}
	return dst, ErrUnsupportedVersion
}

// Decode decodes a CONNACK body.
func (c *Connack) Decode(flags byte, body []byte, v Version) error {
	if flags != 0 {
		return malformed(CONNACK, "invalid fixed header flags")
	}
	d := decoder{b: body, typ: CONNACK}
	f := d.byte("acknowledge flags")
	c.ReasonCode = ReasonCode(d.byte("reason code"))
	if d.err != nil {
		return d.err
	}
	if f&0xFE != 0 {
		return malformed(CONNACK, "reserved acknowledge flags set") // [MQTT-3.2.2-1]
	}
	c.SessionPresent = f == 1
	if v == V5 {
		if !c.ReasonCode.ValidFor(CONNACK) {
			return malformed(CONNACK, "invalid reason code "+c.ReasonCode.String())
		}
		c.Props.decode(&d, CONNACK)
	} else {
		c.Props.Reset()
		if c.ReasonCode > 5 {
			return malformed(CONNACK, "invalid return code")
		}
	}
	if d.err != nil {
		return d.err
	}
	if d.len() != 0 {
		return malformed(CONNACK, "trailing bytes")
	}
	return nil
}
