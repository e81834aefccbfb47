package packet

// Unsubscribe is the UNSUBSCRIBE packet (section 3.10).
type Unsubscribe struct {
	PacketID uint16
	Props    Properties // User Properties
	Filters  []string
}

// Type implements Packet.
func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }

// AppendTo implements Packet.
func (u *Unsubscribe) AppendTo(dst []byte, v Version) ([]byte, error) {
	if !v.Valid() {
		return dst, ErrUnsupportedVersion
	}
	if u.PacketID == 0 {
		return dst, protocolErr(UNSUBSCRIBE, "packet identifier 0") // [MQTT-2.2.1-3]
	}
	if len(u.Filters) == 0 {
		return dst, protocolErr(UNSUBSCRIBE, "no topic filters") // [MQTT-3.10.3-2]
	}
	n := 2
	ps := 0
	if v == V5 {
		if err := u.Props.validate(UNSUBSCRIBE); err != nil {
			return dst, err
		}
		ps = u.Props.size(UNSUBSCRIBE)
		n += VarintSize(uint32(ps)) + ps
	}
	for _, f := range u.Filters {
		if err := checkString(UNSUBSCRIBE, "topic filter", f); err != nil {
			return dst, err
		}
		n += 2 + len(f)
	}
	dst, err := appendHeader(dst, UNSUBSCRIBE, 2, n)
	if err != nil {
		return dst, err
	}
	dst = appendUint16(dst, u.PacketID)
	if v == V5 {
		dst = u.Props.appendProps(dst, UNSUBSCRIBE, ps)
	}
	for _, f := range u.Filters {
		dst = appendString(dst, f)
	}
	return dst, nil
}

// Decode decodes an UNSUBSCRIBE body.
func (u *Unsubscribe) Decode(flags byte, body []byte, v Version) error {
	if flags != 2 {
		return malformed(UNSUBSCRIBE, "invalid fixed header flags") // [MQTT-3.10.1-1]
	}
	d := decoder{b: body, typ: UNSUBSCRIBE}
	u.PacketID = d.uint16("packet identifier")
	if d.err == nil && u.PacketID == 0 {
		return protocolErr(UNSUBSCRIBE, "packet identifier 0")
	}
	if v == V5 {
		u.Props.decode(&d, UNSUBSCRIBE)
	} else {
		u.Props.Reset()
	}
	u.Filters = u.Filters[:0]
	for d.err == nil && d.len() > 0 {
		f := d.string("topic filter")
		if d.err == nil {
			u.Filters = append(u.Filters, f)
		}
	}
	if d.err != nil {
		return d.err
	}
	if len(u.Filters) == 0 {
		return protocolErr(UNSUBSCRIBE, "no topic filters") // [MQTT-3.10.3-2]
	}
	return nil
}

// Unsuback is the UNSUBACK packet (section 3.11). In 3.1.1 it carries no
// reason codes; in v5 one per filter, in order [MQTT-3.11.3-1].
type Unsuback struct {
	PacketID    uint16
	Props       Properties
	ReasonCodes []ReasonCode
}

// Type implements Packet.
func (*Unsuback) Type() Type { return UNSUBACK }

// AppendTo implements Packet.
func (u *Unsuback) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendCodes(dst, UNSUBACK, v, u.PacketID, &u.Props, u.ReasonCodes)
}

// Decode decodes an UNSUBACK body.
func (u *Unsuback) Decode(flags byte, body []byte, v Version) error {
	var err error
	u.PacketID, u.ReasonCodes, err = decodeCodes(UNSUBACK, flags, body, v, &u.Props, u.ReasonCodes[:0])
	return err
}
