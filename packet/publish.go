package packet

// Publish is the PUBLISH packet (section 3.3). Decoding aliases the body:
// Topic and Payload (and string properties) share the decoded bytes.
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    string // may be empty in v5 when Props.TopicAlias is set
	PacketID uint16 // only for QoS 1 and 2 [MQTT-2.2.1-2]
	Props    Properties
	Payload  []byte
}

// Type implements Packet.
func (*Publish) Type() Type { return PUBLISH }

// Flags returns the fixed-header flag nibble.
func (p *Publish) Flags() byte {
	f := p.QoS << 1
	if p.Dup {
		f |= 0x08
	}
	if p.Retain {
		f |= 0x01
	}
	return f
}

// Size returns the encoded size of the packet for version v, the number
// to compare with a peer's Maximum Packet Size.
func (p *Publish) Size(v Version) int {
	n := p.remaining(v)
	return 1 + VarintSize(uint32(n)) + n
}

func (p *Publish) remaining(v Version) int {
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if v == V5 {
		n += p.Props.encodedSize(PUBLISH)
	}
	return n
}

// checkPublishHeader checks QoS, DUP and the packet identifier of a
// PUBLISH about to be encoded.
func checkPublishHeader(qos byte, dup bool, id uint16) error {
	switch {
	case qos > 2:
		return malformed(PUBLISH, "QoS 3") // [MQTT-3.3.1-4]
	case qos == 0 && dup:
		return malformed(PUBLISH, "DUP set on QoS 0") // [MQTT-3.3.1-2]
	case qos == 0 && id != 0:
		return protocolErr(PUBLISH, "QoS 0 PUBLISH with packet identifier") // [MQTT-2.2.1-2]
	case qos > 0 && id == 0:
		return protocolErr(PUBLISH, "packet identifier 0") // [MQTT-2.2.1-3] [MQTT-2.2.1-4]
	}
	return nil
}

// AppendTo implements Packet. It validates what it writes: QoS, the packet
// identifier, the topic's UTF-8 and the properties.
func (p *Publish) AppendTo(dst []byte, v Version) ([]byte, error) {
	if !v.Valid() {
		return dst, ErrUnsupportedVersion
	}
	if err := checkPublishHeader(p.QoS, p.Dup, p.PacketID); err != nil {
		return dst, err
	}
	if err := checkString(PUBLISH, "topic name", p.Topic); err != nil {
		return dst, err
	}
	ps := 0
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if v == V5 {
		if err := p.Props.validate(PUBLISH); err != nil {
			return dst, err
		}
		if p.Topic == "" && !p.Props.Has(PropTopicAlias) {
			// Section 3.3.2.1: a zero-length Topic Name needs a Topic Alias.
			return dst, protocolErr(PUBLISH, "empty topic name without topic alias")
		}
		ps = p.Props.size(PUBLISH)
		n += VarintSize(uint32(ps)) + ps
	} else if p.Topic == "" {
		return dst, protocolErr(PUBLISH, "empty topic name")
	}
	dst, err := appendHeader(dst, PUBLISH, p.Flags(), n)
	if err != nil {
		return dst, err
	}
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if v == V5 {
		dst = p.Props.appendProps(dst, PUBLISH, ps)
	}
	return append(dst, p.Payload...), nil
}

// Decode decodes a PUBLISH body into p, reusing p's property slices; it does
// not allocate. Topic validation beyond UTF-8 (wildcards, empty names without
// an alias) is the receiver's, since it depends on session state.
func (p *Publish) Decode(flags byte, body []byte, v Version) error {
	p.Dup = flags&0x08 != 0
	p.QoS = (flags >> 1) & 0x03
	p.Retain = flags&0x01 != 0
	if p.QoS == 3 {
		return malformed(PUBLISH, "QoS 3") // [MQTT-3.3.1-4]
	}
	if p.QoS == 0 && p.Dup {
		return malformed(PUBLISH, "DUP set on QoS 0") // [MQTT-3.3.1-2]
	}
	d := decoder{b: body, typ: PUBLISH}
	p.Topic = d.string("topic name")
	p.PacketID = 0
	if p.QoS > 0 {
		p.PacketID = d.uint16("packet identifier")
		if d.err == nil && p.PacketID == 0 {
			return protocolErr(PUBLISH, "packet identifier 0") // [MQTT-2.2.1-3]
		}
	}
	if v == V5 {
		p.Props.decode(&d, PUBLISH)
	} else {
		p.Props.Reset()
	}
	if d.err != nil {
		return d.err
	}
	p.Payload = d.rest()
	return nil
}
