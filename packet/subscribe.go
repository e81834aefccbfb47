package packet

// Subscription is one topic filter of a SUBSCRIBE with its options
// (section 3.8.3.1).
type Subscription struct {
	Filter            string
	QoS               byte // maximum QoS
	NoLocal           bool // v5
	RetainAsPublished bool // v5
	RetainHandling    byte // v5: 0 send retained, 1 only if new, 2 never
}

// options returns the Subscription Options byte.
func (s *Subscription) options(v Version) byte {
	b := s.QoS
	if v == V5 {
		if s.NoLocal {
			b |= 0x04
		}
		if s.RetainAsPublished {
			b |= 0x08
		}
		b |= s.RetainHandling << 4
	}
	return b
}

// Subscribe is the SUBSCRIBE packet (section 3.8).
type Subscribe struct {
	PacketID      uint16
	Props         Properties // Subscription Identifier and User Properties
	Subscriptions []Subscription
}

// Type implements Packet.
func (*Subscribe) Type() Type { return SUBSCRIBE }

// AppendTo implements Packet.
func (s *Subscribe) AppendTo(dst []byte, v Version) ([]byte, error) {
	if !v.Valid() {
		return dst, ErrUnsupportedVersion
	}
	if s.PacketID == 0 {
		return dst, protocolErr(SUBSCRIBE, "packet identifier 0") // [MQTT-2.2.1-3]
	}
	if len(s.Subscriptions) == 0 {
		return dst, protocolErr(SUBSCRIBE, "no topic filters") // [MQTT-3.8.3-2]
	}
	n := 2
	ps := 0
	if v == V5 {
		if err := s.Props.validate(SUBSCRIBE); err != nil {
			return dst, err
		}
		ps = s.Props.size(SUBSCRIBE)
		n += VarintSize(uint32(ps)) + ps
	}
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		if err := checkString(SUBSCRIBE, "topic filter", sub.Filter); err != nil {
			return dst, err
		}
		if sub.QoS > 2 || (v == V5 && sub.RetainHandling > 2) {
			// The same codes the decoder gives (section 3.8.3.1).
			if v == V5 {
				return dst, protocolErr(SUBSCRIBE, "invalid subscription options")
			}
			return dst, malformed(SUBSCRIBE, "invalid subscription options")
		}
		n += 3 + len(sub.Filter)
	}
	dst, err := appendHeader(dst, SUBSCRIBE, 2, n)
	if err != nil {
		return dst, err
	}
	dst = appendUint16(dst, s.PacketID)
	if v == V5 {
		dst = s.Props.appendProps(dst, SUBSCRIBE, ps)
	}
	for i := range s.Subscriptions {
		dst = appendString(dst, s.Subscriptions[i].Filter)
		dst = append(dst, s.Subscriptions[i].options(v))
	}
	return dst, nil
}

// Decode decodes a SUBSCRIBE body. Filters are checked for UTF-8 only;
// wildcard rules are the receiver's (package topic).
func (s *Subscribe) Decode(flags byte, body []byte, v Version) error {
	if flags != 2 {
		return malformed(SUBSCRIBE, "invalid fixed header flags") // [MQTT-3.8.1-1]
	}
	d := decoder{b: body, typ: SUBSCRIBE}
	s.PacketID = d.uint16("packet identifier")
	if d.err == nil && s.PacketID == 0 {
		return protocolErr(SUBSCRIBE, "packet identifier 0")
	}
	if v == V5 {
		s.Props.decode(&d, SUBSCRIBE)
	} else {
		s.Props.Reset()
	}
	s.Subscriptions = s.Subscriptions[:0]
	for d.err == nil && d.len() > 0 {
		var sub Subscription
		sub.Filter = d.string("topic filter")
		o := d.byte("subscription options")
		if d.err != nil {
			break
		}
		sub.QoS = o & 0x03
		if v == V5 {
			if o&0xC0 != 0 {
				return malformed(SUBSCRIBE, "reserved subscription option bits set") // [MQTT-3.8.3-5]
			}
			if sub.QoS == 3 {
				// Section 3.8.3.1: a Maximum QoS of 3 is a Protocol Error in v5.
				return protocolErr(SUBSCRIBE, "maximum QoS 3")
			}
			sub.NoLocal = o&0x04 != 0
			sub.RetainAsPublished = o&0x08 != 0
			sub.RetainHandling = (o >> 4) & 0x03
			if sub.RetainHandling == 3 {
				return protocolErr(SUBSCRIBE, "retain handling 3") // section 3.8.3.1
			}
		} else if sub.QoS == 3 || o&0xFC != 0 {
			// 3.1.1 [MQTT-3-8.3-4]: reserved bits set or QoS 3 is malformed.
			return malformed(SUBSCRIBE, "reserved subscription option bits set or maximum QoS 3")
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	if d.err != nil {
		return d.err
	}
	if len(s.Subscriptions) == 0 {
		return protocolErr(SUBSCRIBE, "no topic filters") // [MQTT-3.8.3-2]
	}
	return nil
}

// Suback is the SUBACK packet (section 3.9): one reason code per filter, in
// the order of the SUBSCRIBE [MQTT-3.9.3-1]. In 3.1.1 the codes are 0, 1, 2
// or 0x80.
type Suback struct {
	PacketID    uint16
	Props       Properties
	ReasonCodes []ReasonCode
}

// Type implements Packet.
func (*Suback) Type() Type { return SUBACK }

// AppendTo implements Packet.
func (s *Suback) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendCodes(dst, SUBACK, v, s.PacketID, &s.Props, s.ReasonCodes)
}

// Decode decodes a SUBACK body.
func (s *Suback) Decode(flags byte, body []byte, v Version) error {
	var err error
	s.PacketID, s.ReasonCodes, err = decodeCodes(SUBACK, flags, body, v, &s.Props, s.ReasonCodes[:0])
	return err
}

func appendCodes(dst []byte, t Type, v Version, id uint16, props *Properties, codes []ReasonCode) ([]byte, error) {
	if !v.Valid() {
		return dst, ErrUnsupportedVersion
	}
	if id == 0 {
		// It echoes the non-zero identifier of a SUBSCRIBE or UNSUBSCRIBE [MQTT-2.2.1-6].
		return dst, protocolErr(t, "packet identifier 0")
	}
	if len(codes) == 0 && (t == SUBACK || v == V5) {
		// [MQTT-3.8.4-6] [MQTT-3.9.3-2] [MQTT-3.11.3-2] one code per filter.
		return dst, protocolErr(t, "no reason codes")
	}
	for _, c := range codes {
		switch {
		case v == V5 && !c.ValidFor(t):
			return dst, malformed(t, "invalid reason code "+c.String())
		case v == V311 && t == SUBACK && c > 2 && c != V3SubackFailure:
			return dst, malformed(t, "invalid return code "+c.String())
		}
	}
	n := 2 + len(codes)
	ps := 0
	if v == V5 {
		if err := props.validate(t); err != nil {
			return dst, err
		}
		ps = props.size(t)
		n += VarintSize(uint32(ps)) + ps
	} else if t == UNSUBACK {
		codes = nil // 3.1.1 UNSUBACK has no payload
		n = 2
	}
	dst, err := appendHeader(dst, t, 0, n)
	if err != nil {
		return dst, err
	}
	dst = appendUint16(dst, id)
	if v == V5 {
		dst = props.appendProps(dst, t, ps)
	}
	for _, c := range codes {
		dst = append(dst, byte(c))
	}
	return dst, nil
}

func decodeCodes(t Type, flags byte, body []byte, v Version, props *Properties, codes []ReasonCode) (uint16, []ReasonCode, error) {
	if flags != 0 {
		return 0, codes, malformed(t, "invalid fixed header flags")
	}
	d := decoder{b: body, typ: t}
	id := d.uint16("packet identifier")
	if d.err == nil && id == 0 {
		return 0, codes, protocolErr(t, "packet identifier 0")
	}
	if v == V5 {
		props.decode(&d, t)
	} else {
		props.Reset()
	}
	if d.err != nil {
		return id, codes, d.err
	}
	for _, b := range d.rest() {
		c := ReasonCode(b)
		switch {
		case v == V5 && !c.ValidFor(t):
			return id, codes, malformed(t, "invalid reason code "+c.String())
		case v == V311 && t == SUBACK && c > 2 && c != V3SubackFailure:
			return id, codes, malformed(t, "invalid return code")
		case v == V311 && t == UNSUBACK:
			return id, codes, malformed(t, "3.1.1 UNSUBACK has no payload")
		}
		codes = append(codes, c)
	}
	if t == SUBACK && len(codes) == 0 {
		return id, codes, protocolErr(t, "no reason codes")
	}
	if t == UNSUBACK && v == V5 && len(codes) == 0 {
		return id, codes, protocolErr(t, "no reason codes")
	}
	return id, codes, nil
}
