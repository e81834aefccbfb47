package packet

// Disconnect is the DISCONNECT packet (section 3.14). In 3.1.1 it has no
// body and ReasonCode and Props are not encoded.
type Disconnect struct {
	ReasonCode ReasonCode
	Props      Properties
}

// Type implements Packet.
func (*Disconnect) Type() Type { return DISCONNECT }

// AppendTo implements Packet.
func (p *Disconnect) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendReasonOnly(dst, DISCONNECT, v, p.ReasonCode, &p.Props)
}

// Decode decodes a DISCONNECT body.
func (p *Disconnect) Decode(flags byte, body []byte, v Version) error {
	var err error
	p.ReasonCode, err = decodeReasonOnly(DISCONNECT, flags, body, v, &p.Props)
	return err
}

// Auth is the AUTH packet (section 3.15), v5 only.
type Auth struct {
	ReasonCode ReasonCode
	Props      Properties
}

// Type implements Packet.
func (*Auth) Type() Type { return AUTH }

// AppendTo implements Packet.
func (p *Auth) AppendTo(dst []byte, v Version) ([]byte, error) {
	switch v {
	case V5:
		return appendReasonOnly(dst, AUTH, v, p.ReasonCode, &p.Props)
	case V311:
		return dst, malformed(AUTH, "AUTH packet in MQTT 3.1.1")
	}
	return dst, ErrUnsupportedVersion
}

// Decode decodes an AUTH body.
func (p *Auth) Decode(flags byte, body []byte, v Version) error {
	if v != V5 {
		return malformed(AUTH, "AUTH packet in MQTT 3.1.1")
	}
	var err error
	p.ReasonCode, err = decodeReasonOnly(AUTH, flags, body, v, &p.Props)
	return err
}

// appendReasonOnly encodes DISCONNECT and AUTH: an optional reason code and
// optional properties; the shortest form is used (sections 3.14.2.1, 3.15.2.1).
func appendReasonOnly(dst []byte, t Type, v Version, rc ReasonCode, props *Properties) ([]byte, error) {
	switch v {
	case V311:
		return append(dst, byte(t)<<4, 0), nil
	case V5:
	default:
		return dst, ErrUnsupportedVersion
	}
	if !rc.ValidFor(t) {
		// [MQTT-3.14.2-1] [MQTT-3.15.2-1]
		return dst, malformed(t, "invalid reason code "+rc.String())
	}
	if err := props.validate(t); err != nil {
		return dst, err
	}
	ps := props.size(t)
	switch {
	case ps == 0 && rc == Success:
		return append(dst, byte(t)<<4, 0), nil
	case ps == 0:
		return append(dst, byte(t)<<4, 1, byte(rc)), nil
	}
	dst, err := appendHeader(dst, t, 0, 1+VarintSize(uint32(ps))+ps)
	if err != nil {
		return dst, err
	}
	dst = append(dst, byte(rc))
	return props.appendProps(dst, t, ps), nil
}

func decodeReasonOnly(t Type, flags byte, body []byte, v Version, props *Properties) (ReasonCode, error) {
	props.Reset()
	if flags != 0 {
		return 0, malformed(t, "invalid fixed header flags") // [MQTT-2.1.3-1]
	}
	if v == V311 {
		if len(body) != 0 {
			return 0, malformed(t, "non-zero remaining length")
		}
		return Success, nil
	}
	if len(body) == 0 {
		return Success, nil
	}
	d := decoder{b: body, typ: t}
	rc := ReasonCode(d.byte("reason code"))
	if !rc.ValidFor(t) {
		return rc, malformed(t, "invalid reason code "+rc.String())
	}
	if d.len() > 0 {
		props.decode(&d, t)
	}
	if d.err != nil {
		return rc, d.err
	}
	if d.len() != 0 {
		return rc, malformed(t, "trailing bytes")
	}
	return rc, nil
}
