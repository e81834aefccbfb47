package packet

// PropID is a v5 property identifier (section 2.2.2.2).
type PropID byte

// Property identifiers.
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUser                 PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A
)

// willContext is the pseudo packet type used for Will Properties, which live
// in the CONNECT payload and have their own allowed set (section 3.1.3.2).
const willContext Type = 0

type propKind byte

const (
	kindByte propKind = iota + 1
	kindUint16
	kindUint32
	kindVarint
	kindString
	kindBinary
	kindPair
)

type propInfo struct {
	name    string
	kind    propKind
	allowed uint16 // bit per Type; bit 0 = will properties
	multi   bool   // may appear more than once
}

func on(ts ...Type) uint16 {
	var m uint16
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

// propTable is the table of section 2.2.2.2: identifier, wire type and the
// packets each property may appear in.
var propTable = [0x2B]propInfo{
	PropPayloadFormat:        {"Payload Format Indicator", kindByte, on(PUBLISH, willContext), false},
	PropMessageExpiry:        {"Message Expiry Interval", kindUint32, on(PUBLISH, willContext), false},
	PropContentType:          {"Content Type", kindString, on(PUBLISH, willContext), false},
	PropResponseTopic:        {"Response Topic", kindString, on(PUBLISH, willContext), false},
	PropCorrelationData:      {"Correlation Data", kindBinary, on(PUBLISH, willContext), false},
	PropSubscriptionID:       {"Subscription Identifier", kindVarint, on(PUBLISH, SUBSCRIBE), true},
	PropSessionExpiry:        {"Session Expiry Interval", kindUint32, on(CONNECT, CONNACK, DISCONNECT), false},
	PropAssignedClientID:     {"Assigned Client Identifier", kindString, on(CONNACK), false},
	PropServerKeepAlive:      {"Server Keep Alive", kindUint16, on(CONNACK), false},
	PropAuthMethod:           {"Authentication Method", kindString, on(CONNECT, CONNACK, AUTH), false},
	PropAuthData:             {"Authentication Data", kindBinary, on(CONNECT, CONNACK, AUTH), false},
	PropRequestProblemInfo:   {"Request Problem Information", kindByte, on(CONNECT), false},
	PropWillDelay:            {"Will Delay Interval", kindUint32, on(willContext), false},
	PropRequestResponseInfo:  {"Request Response Information", kindByte, on(CONNECT), false},
	PropResponseInfo:         {"Response Information", kindString, on(CONNACK), false},
	PropServerReference:      {"Server Reference", kindString, on(CONNACK, DISCONNECT), false},
	PropReasonString:         {"Reason String", kindString, on(CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH), false},
	PropReceiveMaximum:       {"Receive Maximum", kindUint16, on(CONNECT, CONNACK), false},
	PropTopicAliasMaximum:    {"Topic Alias Maximum", kindUint16, on(CONNECT, CONNACK), false},
	PropTopicAlias:           {"Topic Alias", kindUint16, on(PUBLISH), false},
	PropMaximumQoS:           {"Maximum QoS", kindByte, on(CONNACK), false},
	PropRetainAvailable:      {"Retain Available", kindByte, on(CONNACK), false},
	PropUser:                 {"User Property", kindPair, on(willContext, CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH), true},
	PropMaximumPacketSize:    {"Maximum Packet Size", kindUint32, on(CONNECT, CONNACK), false},
	PropWildcardSubAvailable: {"Wildcard Subscription Available", kindByte, on(CONNACK), false},
	PropSubIDAvailable:       {"Subscription Identifier Available", kindByte, on(CONNACK), false},
	PropSharedSubAvailable:   {"Shared Subscription Available", kindByte, on(CONNACK), false},
}

func (id PropID) info() *propInfo {
	if int(id) < len(propTable) && propTable[id].kind != 0 {
		return &propTable[id]
	}
	return nil
}

// String returns the property's name from the standard.
func (id PropID) String() string {
	if pi := id.info(); pi != nil {
		return pi.name
	}
	return "property 0x" + hex2(byte(id))
}

// AllowedIn reports whether property id may appear in a packet of type t.
func (id PropID) AllowedIn(t Type) bool {
	pi := id.info()
	return pi != nil && pi.allowed&(1<<t) != 0
}

// UserProperty is one User Property name/value pair (a UTF-8 String Pair,
// section 1.5.7). Order and duplicates are preserved.
type UserProperty struct {
	Key, Value string
}

// Properties holds every MQTT v5 property. A property is encoded when its
// field is non-zero (non-empty string, non-nil byte slice, non-empty list)
// or when it has been marked present with Set; decoding marks every property
// it sees, so a property sent with its zero value (Maximum QoS 0, Server Keep
// Alive 0, ...) survives a round trip. Only the properties the packet type
// allows are encoded or accepted.
type Properties struct {
	present uint64 // bit per PropID, for properties carrying their zero value

	PayloadFormat        byte     // 0x01: 0 unspecified bytes, 1 UTF-8
	MessageExpiry        uint32   // 0x02: seconds
	ContentType          string   // 0x03
	ResponseTopic        string   // 0x08
	CorrelationData      []byte   // 0x09
	SubscriptionIDs      []uint32 // 0x0B: several in PUBLISH, at most one in SUBSCRIBE
	SessionExpiry        uint32   // 0x11: seconds; 0xFFFFFFFF never expires
	AssignedClientID     string   // 0x12
	ServerKeepAlive      uint16   // 0x13
	AuthMethod           string   // 0x15
	AuthData             []byte   // 0x16
	RequestProblemInfo   byte     // 0x17: absent means 1
	WillDelay            uint32   // 0x18
	RequestResponseInfo  byte     // 0x19
	ResponseInfo         string   // 0x1A
	ServerReference      string   // 0x1C
	ReasonString         string   // 0x1F
	ReceiveMaximum       uint16   // 0x21: absent means 65535
	TopicAliasMaximum    uint16   // 0x22
	TopicAlias           uint16   // 0x23
	MaximumQoS           byte     // 0x24: absent means 2
	RetainAvailable      byte     // 0x25: absent means 1
	User                 []UserProperty
	MaximumPacketSize    uint32 // 0x27: absent means no limit
	WildcardSubAvailable byte   // 0x28: absent means 1
	SubIDAvailable       byte   // 0x29: absent means 1
	SharedSubAvailable   byte   // 0x2A: absent means 1
}

// Set marks property id as present, so that it is encoded even when its
// field holds the zero value (for example Maximum QoS 0).
func (p *Properties) Set(id PropID) { p.present |= 1 << id }

// Clear removes property id: it zeroes the field and the present mark.
func (p *Properties) Clear(id PropID) {
	p.present &^= 1 << id
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = 0
	case PropMessageExpiry:
		p.MessageExpiry = 0
	case PropContentType:
		p.ContentType = ""
	case PropResponseTopic:
		p.ResponseTopic = ""
	case PropCorrelationData:
		p.CorrelationData = nil
	case PropSubscriptionID:
		p.SubscriptionIDs = p.SubscriptionIDs[:0]
	case PropSessionExpiry:
		p.SessionExpiry = 0
	case PropAssignedClientID:
		p.AssignedClientID = ""
	case PropServerKeepAlive:
		p.ServerKeepAlive = 0
	case PropAuthMethod:
		p.AuthMethod = ""
	case PropAuthData:
		p.AuthData = nil
	case PropRequestProblemInfo:
		p.RequestProblemInfo = 0
	case PropWillDelay:
		p.WillDelay = 0
	case PropRequestResponseInfo:
		p.RequestResponseInfo = 0
	case PropResponseInfo:
		p.ResponseInfo = ""
	case PropServerReference:
		p.ServerReference = ""
	case PropReasonString:
		p.ReasonString = ""
	case PropReceiveMaximum:
		p.ReceiveMaximum = 0
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = 0
	case PropTopicAlias:
		p.TopicAlias = 0
	case PropMaximumQoS:
		p.MaximumQoS = 0
	case PropRetainAvailable:
		p.RetainAvailable = 0
	case PropUser:
		p.User = p.User[:0]
	case PropMaximumPacketSize:
		p.MaximumPacketSize = 0
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = 0
	case PropSubIDAvailable:
		p.SubIDAvailable = 0
	case PropSharedSubAvailable:
		p.SharedSubAvailable = 0
	}
}

// Has reports whether property id will be encoded: marked present or
// holding a non-zero value.
func (p *Properties) Has(id PropID) bool {
	if p.present&(1<<id) != 0 {
		return true
	}
	switch id {
	case PropPayloadFormat:
		return p.PayloadFormat != 0
	case PropMessageExpiry:
		return p.MessageExpiry != 0
	case PropContentType:
		return p.ContentType != ""
	case PropResponseTopic:
		return p.ResponseTopic != ""
	case PropCorrelationData:
		return p.CorrelationData != nil
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	case PropSessionExpiry:
		return p.SessionExpiry != 0
	case PropAssignedClientID:
		return p.AssignedClientID != ""
	case PropServerKeepAlive:
		return p.ServerKeepAlive != 0
	case PropAuthMethod:
		return p.AuthMethod != ""
	case PropAuthData:
		return p.AuthData != nil
	case PropRequestProblemInfo:
		return p.RequestProblemInfo != 0
	case PropWillDelay:
		return p.WillDelay != 0
	case PropRequestResponseInfo:
		return p.RequestResponseInfo != 0
	case PropResponseInfo:
		return p.ResponseInfo != ""
	case PropServerReference:
		return p.ServerReference != ""
	case PropReasonString:
		return p.ReasonString != ""
	case PropReceiveMaximum:
		return p.ReceiveMaximum != 0
	case PropTopicAliasMaximum:
		return p.TopicAliasMaximum != 0
	case PropTopicAlias:
		return p.TopicAlias != 0
	case PropMaximumQoS:
		return p.MaximumQoS != 0
	case PropRetainAvailable:
		return p.RetainAvailable != 0
	case PropUser:
		return len(p.User) > 0
	case PropMaximumPacketSize:
		return p.MaximumPacketSize != 0
	case PropWildcardSubAvailable:
		return p.WildcardSubAvailable != 0
	case PropSubIDAvailable:
		return p.SubIDAvailable != 0
	case PropSharedSubAvailable:
		return p.SharedSubAvailable != 0
	}
	return false
}

// Reset clears every property, keeping the capacity of the User and
// SubscriptionIDs slices for reuse.
func (p *Properties) Reset() {
	u, s := p.User[:0], p.SubscriptionIDs[:0]
	*p = Properties{User: u, SubscriptionIDs: s}
}

// Defaults the standard gives to absent properties.

// EffectiveReceiveMaximum returns Receive Maximum, 65535 when absent.
func (p *Properties) EffectiveReceiveMaximum() uint16 {
	if p.ReceiveMaximum == 0 {
		return 65535
	}
	return p.ReceiveMaximum
}

// EffectiveMaximumQoS returns Maximum QoS, 2 when absent.
func (p *Properties) EffectiveMaximumQoS() byte {
	if !p.Has(PropMaximumQoS) {
		return 2
	}
	return p.MaximumQoS
}

// IsRetainAvailable returns Retain Available, true when absent.
func (p *Properties) IsRetainAvailable() bool {
	return !p.Has(PropRetainAvailable) || p.RetainAvailable == 1
}

// IsWildcardSubAvailable returns Wildcard Subscription Available, true when absent.
func (p *Properties) IsWildcardSubAvailable() bool {
	return !p.Has(PropWildcardSubAvailable) || p.WildcardSubAvailable == 1
}

// IsSubIDAvailable returns Subscription Identifier Available, true when absent.
func (p *Properties) IsSubIDAvailable() bool {
	return !p.Has(PropSubIDAvailable) || p.SubIDAvailable == 1
}

// IsSharedSubAvailable returns Shared Subscription Available, true when absent.
func (p *Properties) IsSharedSubAvailable() bool {
	return !p.Has(PropSharedSubAvailable) || p.SharedSubAvailable == 1
}

// WantsProblemInfo returns Request Problem Information, true when absent.
func (p *Properties) WantsProblemInfo() bool {
	return !p.Has(PropRequestProblemInfo) || p.RequestProblemInfo == 1
}

// propOrder is the order properties are encoded in: ascending identifier,
// which keeps encodings deterministic.
var propOrder = [...]PropID{
	PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic, PropCorrelationData,
	PropSubscriptionID, PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive, PropAuthMethod,
	PropAuthData, PropRequestProblemInfo, PropWillDelay, PropRequestResponseInfo, PropResponseInfo,
	PropServerReference, PropReasonString, PropReceiveMaximum, PropTopicAliasMaximum, PropTopicAlias,
	PropMaximumQoS, PropRetainAvailable, PropUser, PropMaximumPacketSize, PropWildcardSubAvailable,
	PropSubIDAvailable, PropSharedSubAvailable,
}

// size returns the encoded length of the properties allowed in context t,
// excluding the Property Length prefix.
func (p *Properties) size(t Type) int {
	n := 0
	for _, id := range propOrder {
		if propTable[id].allowed&(1<<t) == 0 || !p.Has(id) {
			continue
		}
		switch propTable[id].kind {
		case kindByte:
			n += 2
		case kindUint16:
			n += 3
		case kindUint32:
			n += 5
		case kindVarint:
			for _, v := range p.SubscriptionIDs {
				n += 1 + VarintSize(v)
			}
		case kindString:
			n += 3 + len(p.stringValue(id))
		case kindBinary:
			n += 3 + len(p.binaryValue(id))
		case kindPair:
			for _, u := range p.User {
				n += 5 + len(u.Key) + len(u.Value)
			}
		}
	}
	return n
}

// encodedSize returns the size including the Property Length varint.
func (p *Properties) encodedSize(t Type) int {
	n := p.size(t)
	return VarintSize(uint32(n)) + n
}

func (p *Properties) stringValue(id PropID) string {
	switch id {
	case PropContentType:
		return p.ContentType
	case PropResponseTopic:
		return p.ResponseTopic
	case PropAssignedClientID:
		return p.AssignedClientID
	case PropAuthMethod:
		return p.AuthMethod
	case PropResponseInfo:
		return p.ResponseInfo
	case PropServerReference:
		return p.ServerReference
	case PropReasonString:
		return p.ReasonString
	}
	return ""
}

func (p *Properties) setString(id PropID, s string) {
	switch id {
	case PropContentType:
		p.ContentType = s
	case PropResponseTopic:
		p.ResponseTopic = s
	case PropAssignedClientID:
		p.AssignedClientID = s
	case PropAuthMethod:
		p.AuthMethod = s
	case PropResponseInfo:
		p.ResponseInfo = s
	case PropServerReference:
		p.ServerReference = s
	case PropReasonString:
		p.ReasonString = s
	}
}

func (p *Properties) binaryValue(id PropID) []byte {
	if id == PropCorrelationData {
		return p.CorrelationData
	}
	return p.AuthData
}

func (p *Properties) byteField(id PropID) *byte {
	switch id {
	case PropPayloadFormat:
		return &p.PayloadFormat
	case PropRequestProblemInfo:
		return &p.RequestProblemInfo
	case PropRequestResponseInfo:
		return &p.RequestResponseInfo
	case PropMaximumQoS:
		return &p.MaximumQoS
	case PropRetainAvailable:
		return &p.RetainAvailable
	case PropWildcardSubAvailable:
		return &p.WildcardSubAvailable
	case PropSubIDAvailable:
		return &p.SubIDAvailable
	case PropSharedSubAvailable:
		return &p.SharedSubAvailable
	}
	return nil
}

func (p *Properties) uint16Field(id PropID) *uint16 {
	switch id {
	case PropServerKeepAlive:
		return &p.ServerKeepAlive
	case PropReceiveMaximum:
		return &p.ReceiveMaximum
	case PropTopicAliasMaximum:
		return &p.TopicAliasMaximum
	case PropTopicAlias:
		return &p.TopicAlias
	}
	return nil
}

func (p *Properties) uint32Field(id PropID) *uint32 {
	switch id {
	case PropMessageExpiry:
		return &p.MessageExpiry
	case PropSessionExpiry:
		return &p.SessionExpiry
	case PropWillDelay:
		return &p.WillDelay
	case PropMaximumPacketSize:
		return &p.MaximumPacketSize
	}
	return nil
}

// validate checks what the encoder is about to write for context t.
func (p *Properties) validate(t Type) error {
	et := t // the packet type errors name: Will Properties are in CONNECT
	if t == willContext {
		et = CONNECT
	}
	for _, id := range propOrder {
		if propTable[id].allowed&(1<<t) == 0 || !p.Has(id) {
			continue
		}
		switch propTable[id].kind {
		case kindByte:
			// Every byte property is 0 or 1 (section 3 per property).
			if *p.byteField(id) > 1 {
				return protocolErr(et, id.String()+" must be 0 or 1")
			}
		case kindUint16:
			if *p.uint16Field(id) == 0 {
				switch id {
				case PropReceiveMaximum:
					return protocolErr(et, "Receive Maximum of 0")
				case PropTopicAlias:
					return &Error{Code: TopicAliasInvalid, Type: et, Reason: "Topic Alias of 0"} // [MQTT-3.3.2-8]
				}
			}
		case kindUint32:
			if id == PropMaximumPacketSize && p.MaximumPacketSize == 0 {
				return protocolErr(et, "Maximum Packet Size of 0")
			}
		case kindString:
			if err := checkString(et, id.String(), p.stringValue(id)); err != nil {
				return err
			}
		case kindBinary:
			if err := checkBinary(et, id.String(), p.binaryValue(id)); err != nil {
				return err
			}
		case kindPair:
			for _, u := range p.User {
				if err := checkString(et, "user property name", u.Key); err != nil {
					return err
				}
				if err := checkString(et, "user property value", u.Value); err != nil {
					return err
				}
			}
		case kindVarint:
			if t == SUBSCRIBE && len(p.SubscriptionIDs) > 1 {
				return protocolErr(et, "more than one Subscription Identifier")
			}
			for _, v := range p.SubscriptionIDs {
				if v == 0 || v > MaxVarint {
					return protocolErr(et, "Subscription Identifier out of range 1..268435455")
				}
			}
		}
	}
	return nil
}

// appendProps appends Property Length and the properties allowed in
// context t. A packet without properties gets a Property Length of zero
// [MQTT-2.2.2-1].
func (p *Properties) appendProps(dst []byte, t Type, size int) []byte {
	dst = AppendVarint(dst, uint32(size))
	for _, id := range propOrder {
		if propTable[id].allowed&(1<<t) == 0 || !p.Has(id) {
			continue
		}
		dst = p.appendProp(dst, id)
	}
	return dst
}

// appendProp appends property id (every instance of it, for the repeatable
// ones) without checking that it is present.
func (p *Properties) appendProp(dst []byte, id PropID) []byte {
	switch propTable[id].kind {
	case kindByte:
		dst = append(dst, byte(id), *p.byteField(id))
	case kindUint16:
		dst = appendUint16(append(dst, byte(id)), *p.uint16Field(id))
	case kindUint32:
		dst = appendUint32(append(dst, byte(id)), *p.uint32Field(id))
	case kindVarint:
		for _, v := range p.SubscriptionIDs {
			dst = AppendVarint(append(dst, byte(id)), v)
		}
	case kindString:
		dst = appendString(append(dst, byte(id)), p.stringValue(id))
	case kindBinary:
		dst = appendBinary(append(dst, byte(id)), p.binaryValue(id))
	case kindPair:
		for _, u := range p.User {
			dst = appendString(append(dst, byte(id)), u.Key)
			dst = appendString(dst, u.Value)
		}
	}
	return dst
}

// decode reads Property Length and the properties for context t into p,
// which it resets first.
func (p *Properties) decode(d *decoder, t Type) {
	p.Reset()
	n := d.varint("property length")
	if d.err != nil {
		return
	}
	if int(n) > d.len() {
		d.fail(malformed(d.typ, "property length exceeds remaining length"))
		return
	}
	sub := decoder{b: d.b[:n], typ: d.typ}
	d.b = d.b[n:]
	var seen uint64
	for sub.len() > 0 && sub.err == nil {
		idv := sub.varint("property identifier")
		if sub.err != nil {
			break
		}
		if idv > 0x7F {
			sub.fail(malformed(d.typ, "unknown property identifier"))
			break
		}
		id := PropID(idv)
		pi := id.info()
		if pi == nil || pi.allowed&(1<<t) == 0 {
			// section 2.2.2.2: an identifier not valid for the packet is a Malformed Packet.
			sub.fail(malformed(d.typ, "property "+id.String()+" not allowed in "+contextName(t)))
			break
		}
		if seen&(1<<id) != 0 && !(pi.multi && (id == PropUser || t == PUBLISH)) {
			sub.fail(protocolErr(d.typ, id.String()+" included more than once"))
			break
		}
		seen |= 1 << id
		p.present |= 1 << id
		switch pi.kind {
		case kindByte:
			v := sub.byte(pi.name)
			if sub.err == nil && v > 1 {
				sub.fail(protocolErr(d.typ, pi.name+" must be 0 or 1"))
			}
			*p.byteField(id) = v
		case kindUint16:
			v := sub.uint16(pi.name)
			switch {
			case sub.err != nil || v != 0:
			case id == PropReceiveMaximum:
				sub.fail(protocolErr(d.typ, pi.name+" of 0"))
			case id == PropTopicAlias:
				// [MQTT-3.3.2-8] The standard's code for a bad alias is
				// Topic Alias invalid (0x94), as other brokers send.
				sub.fail(&Error{Code: TopicAliasInvalid, Type: d.typ, Reason: "Topic Alias of 0"})
			}
			*p.uint16Field(id) = v
		case kindUint32:
			v := sub.uint32(pi.name)
			if sub.err == nil && v == 0 && id == PropMaximumPacketSize {
				sub.fail(protocolErr(d.typ, pi.name+" of 0"))
			}
			*p.uint32Field(id) = v
		case kindVarint:
			v := sub.varint(pi.name)
			if sub.err == nil && v == 0 {
				sub.fail(protocolErr(d.typ, "Subscription Identifier of 0"))
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, v)
		case kindString:
			p.setString(id, sub.string(pi.name))
		case kindBinary:
			v := sub.binary(pi.name)
			if v == nil {
				v = sub.b[:0:0] // present but empty: keep it non-nil
			}
			if id == PropCorrelationData {
				p.CorrelationData = v
			} else {
				p.AuthData = v
			}
		case kindPair:
			k := sub.string("user property name")
			v := sub.string("user property value")
			p.User = append(p.User, UserProperty{k, v})
		}
	}
	if sub.err != nil {
		d.fail(sub.err)
	}
}

func contextName(t Type) string {
	if t == willContext {
		return "Will Properties"
	}
	return t.String()
}
