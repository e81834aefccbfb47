package packet

// ack holds the fields shared by PUBACK, PUBREC, PUBREL and PUBCOMP.
type ack struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Props      Properties
}

func (a *ack) appendAck(dst []byte, t Type, v Version) ([]byte, error) {
	flags := requiredFlags[t]
	if !v.Valid() {
		return dst, ErrUnsupportedVersion
	}
	if a.PacketID == 0 {
		// It echoes the non-zero identifier of a PUBLISH [MQTT-2.2.1-5].
		return dst, protocolErr(t, "packet identifier 0")
	}
	if v == V311 {
		dst, _ = appendHeader(dst, t, flags, 2)
		return appendUint16(dst, a.PacketID), nil
	}
	if !a.ReasonCode.ValidFor(t) {
		// [MQTT-3.4.2-1] [MQTT-3.5.2-1] [MQTT-3.6.2-1] [MQTT-3.7.2-1]
		return dst, malformed(t, "invalid reason code "+a.ReasonCode.String())
	}
	if err := a.Props.validate(t); err != nil {
		return dst, err
	}
	ps := a.Props.size(t)
	switch {
	case ps == 0 && a.ReasonCode == Success:
		// The Reason Code and Property Length can be omitted when the code
		// is 0x00 and there are no properties (sections 3.4.2.1, 3.5.2.1 ...).
		dst, _ = appendHeader(dst, t, flags, 2)
		return appendUint16(dst, a.PacketID), nil
	case ps == 0:
		dst, _ = appendHeader(dst, t, flags, 3)
		return append(appendUint16(dst, a.PacketID), byte(a.ReasonCode)), nil
	}
	dst, err := appendHeader(dst, t, flags, 3+VarintSize(uint32(ps))+ps)
	if err != nil {
		return dst, err
	}
	dst = append(appendUint16(dst, a.PacketID), byte(a.ReasonCode))
	return a.Props.appendProps(dst, t, ps), nil
}

func (a *ack) decodeAck(t Type, flags byte, body []byte, v Version) error {
	if flags != requiredFlags[t] {
		return malformed(t, "invalid fixed header flags") // [MQTT-2.1.3-1]
	}
	d := decoder{b: body, typ: t}
	a.PacketID = d.uint16("packet identifier")
	a.ReasonCode = Success
	a.Props.Reset()
	if d.err != nil {
		return d.err
	}
	if a.PacketID == 0 {
		return protocolErr(t, "packet identifier 0")
	}
	if v == V5 && d.len() > 0 {
		a.ReasonCode = ReasonCode(d.byte("reason code"))
		if !a.ReasonCode.ValidFor(t) {
			return malformed(t, "invalid reason code "+a.ReasonCode.String())
		}
		if d.len() > 0 {
			a.Props.decode(&d, t)
		}
	}
	if d.err != nil {
		return d.err
	}
	if d.len() != 0 {
		return malformed(t, "trailing bytes")
	}
	return nil
}

// Puback is the PUBACK packet (section 3.4).
type Puback ack

// Type implements Packet.
func (*Puback) Type() Type { return PUBACK }

// AppendTo implements Packet.
func (p *Puback) AppendTo(dst []byte, v Version) ([]byte, error) {
	return (*ack)(p).appendAck(dst, PUBACK, v)
}

// Decode decodes a PUBACK body.
func (p *Puback) Decode(flags byte, body []byte, v Version) error {
	return (*ack)(p).decodeAck(PUBACK, flags, body, v)
}

// Pubrec is the PUBREC packet (section 3.5).
type Pubrec ack

// Type implements Packet.
func (*Pubrec) Type() Type { return PUBREC }

// AppendTo implements Packet.
func (p *Pubrec) AppendTo(dst []byte, v Version) ([]byte, error) {
	return (*ack)(p).appendAck(dst, PUBREC, v)
}

// Decode decodes a PUBREC body.
func (p *Pubrec) Decode(flags byte, body []byte, v Version) error {
	return (*ack)(p).decodeAck(PUBREC, flags, body, v)
}

// Pubrel is the PUBREL packet (section 3.6).
type Pubrel ack

// Type implements Packet.
func (*Pubrel) Type() Type { return PUBREL }

// AppendTo implements Packet.
func (p *Pubrel) AppendTo(dst []byte, v Version) ([]byte, error) {
	return (*ack)(p).appendAck(dst, PUBREL, v)
}

// Decode decodes a PUBREL body.
func (p *Pubrel) Decode(flags byte, body []byte, v Version) error {
	return (*ack)(p).decodeAck(PUBREL, flags, body, v)
}

// Pubcomp is the PUBCOMP packet (section 3.7).
type Pubcomp ack

// Type implements Packet.
func (*Pubcomp) Type() Type { return PUBCOMP }

// AppendTo implements Packet.
func (p *Pubcomp) AppendTo(dst []byte, v Version) ([]byte, error) {
	return (*ack)(p).appendAck(dst, PUBCOMP, v)
}

// Decode decodes a PUBCOMP body.
func (p *Pubcomp) Decode(flags byte, body []byte, v Version) error {
	return (*ack)(p).decodeAck(PUBCOMP, flags, body, v)
}
