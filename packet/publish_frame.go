package packet

// sharedPublishProps are the PUBLISH properties that are the same in every
// copy of a message, in encoding order (propOrder): the Payload Format
// Indicator, then Content Type, Response Topic and Correlation Data, then
// the User Properties. Message Expiry Interval, Subscription Identifiers
// and Topic Alias differ from copy to copy and sit between these groups.
var sharedPublishProps = [...]PropID{
	PropPayloadFormat, PropContentType, PropResponseTopic, PropCorrelationData, PropUser,
}

// PublishShared is what every copy of one message has in common on the
// wire: its topic name, checked once, and the properties that travel with
// it (Payload Format Indicator, Content Type, Response Topic, Correlation
// Data, User Properties), validated and encoded once. A server builds it
// once per message and encodes each receiver's copy with a PublishFrame,
// which adds the fields of that copy (QoS, packet identifier, DUP, RETAIN,
// Message Expiry Interval, Subscription Identifiers, Topic Alias) without
// validating or encoding the shared part again.
//
// The zero value is not usable; a PublishShared is immutable once built and
// safe for concurrent use.
type PublishShared struct {
	topic string
	enc   []byte // Payload Format Indicator | Content Type, Response Topic, Correlation Data | User Properties
	pfi   int    // end of the Payload Format Indicator in enc
	mid   int    // end of Content Type, Response Topic and Correlation Data in enc
	ok    bool
}

// NewPublishShared validates topic and the shared properties of props as
// PUBLISH.AppendTo would (string lengths, MQTT UTF-8, a Payload Format
// Indicator of 0 or 1) and encodes the properties. The other properties of
// props are ignored. It allocates only when props has shared properties;
// the result references no memory of props.
func NewPublishShared(topic string, props *Properties) (PublishShared, error) {
	if err := checkString(PUBLISH, "topic name", topic); err != nil {
		return PublishShared{}, err
	}
	var q Properties
	n := 0
	for _, id := range sharedPublishProps {
		if props.Has(id) {
			q.Set(id)
			n++
		}
	}
	s := PublishShared{topic: topic, ok: true}
	if n == 0 {
		return s, nil
	}
	q.PayloadFormat = props.PayloadFormat
	q.ContentType = props.ContentType
	q.ResponseTopic = props.ResponseTopic
	q.CorrelationData = props.CorrelationData
	q.User = props.User
	if err := q.validate(PUBLISH); err != nil {
		return PublishShared{}, err
	}
	enc := make([]byte, 0, q.size(PUBLISH))
	if q.Has(PropPayloadFormat) {
		enc = q.appendProp(enc, PropPayloadFormat)
	}
	s.pfi = len(enc)
	for _, id := range [...]PropID{PropContentType, PropResponseTopic, PropCorrelationData} {
		if q.Has(id) {
			enc = q.appendProp(enc, id)
		}
	}
	s.mid = len(enc)
	if q.Has(PropUser) {
		enc = q.appendProp(enc, PropUser)
	}
	s.enc = enc
	return s, nil
}

// Topic returns the topic name the PublishShared was built with.
func (s *PublishShared) Topic() string { return s.topic }

// PublishFrame is one copy of a message on the wire: the PublishShared
// part plus the fields of this copy. Its encoding is byte for byte the
// encoding of the equivalent Publish.
type PublishFrame struct {
	Shared *PublishShared
	// OmitTopic sends an empty Topic Name (v5, with TopicAlias set: the
	// receiver already knows the alias).
	OmitTopic bool
	Payload   []byte
	QoS       byte
	Retain    bool
	Dup       bool
	PacketID  uint16
	// HasExpiry adds a Message Expiry Interval of MessageExpiry seconds.
	HasExpiry     bool
	MessageExpiry uint32
	// SubscriptionIDs and TopicAlias (0: none) as in Properties.
	SubscriptionIDs []uint32
	TopicAlias      uint16
}

func (f *PublishFrame) topic() string {
	if f.OmitTopic {
		return ""
	}
	return f.Shared.topic
}

// propsSize returns the size of the v5 properties, without Property Length.
func (f *PublishFrame) propsSize() int {
	n := len(f.Shared.enc)
	if f.HasExpiry {
		n += 5
	}
	for _, v := range f.SubscriptionIDs {
		n += 1 + VarintSize(v)
	}
	if f.TopicAlias != 0 {
		n += 3
	}
	return n
}

func (f *PublishFrame) remaining(v Version) (n, ps int) {
	n = 2 + len(f.topic()) + len(f.Payload)
	if f.QoS > 0 {
		n += 2
	}
	if v == V5 {
		ps = f.propsSize()
		n += VarintSize(uint32(ps)) + ps
	}
	return n, ps
}

// Size returns the encoded size of the frame for version v, the number to
// compare with a peer's Maximum Packet Size.
func (f *PublishFrame) Size(v Version) int {
	n, _ := f.remaining(v)
	return 1 + VarintSize(uint32(n)) + n
}

// AppendTo appends the PUBLISH packet for version v to dst. It checks what
// is particular to the copy (QoS, DUP and packet identifier rules, the
// Subscription Identifier range, a Topic Alias for an empty topic name);
// the shared part was validated when it was built.
func (f *PublishFrame) AppendTo(dst []byte, v Version) ([]byte, error) {
	if !v.Valid() {
		return dst, ErrUnsupportedVersion
	}
	if f.Shared == nil || !f.Shared.ok {
		return dst, protocolErr(PUBLISH, "frame without a shared part")
	}
	if err := checkPublishHeader(f.QoS, f.Dup, f.PacketID); err != nil {
		return dst, err
	}
	topic := f.topic()
	if v == V5 {
		for _, id := range f.SubscriptionIDs {
			if id == 0 || id > MaxVarint {
				return dst, protocolErr(PUBLISH, "Subscription Identifier out of range 1..268435455")
			}
		}
		if topic == "" && f.TopicAlias == 0 {
			// Section 3.3.2.1: a zero-length Topic Name needs a Topic Alias.
			return dst, protocolErr(PUBLISH, "empty topic name without topic alias")
		}
	} else if topic == "" {
		return dst, protocolErr(PUBLISH, "empty topic name")
	}
	n, ps := f.remaining(v)
	flags := f.QoS << 1
	if f.Dup {
		flags |= 0x08
	}
	if f.Retain {
		flags |= 0x01
	}
	dst, err := appendHeader(dst, PUBLISH, flags, n)
	if err != nil {
		return dst, err
	}
	dst = appendString(dst, topic)
	if f.QoS > 0 {
		dst = appendUint16(dst, f.PacketID)
	}
	if v == V5 {
		// The order of propOrder, as Publish.AppendTo writes it.
		s := f.Shared
		dst = AppendVarint(dst, uint32(ps))
		dst = append(dst, s.enc[:s.pfi]...)
		if f.HasExpiry {
			dst = appendUint32(append(dst, byte(PropMessageExpiry)), f.MessageExpiry)
		}
		dst = append(dst, s.enc[s.pfi:s.mid]...)
		for _, id := range f.SubscriptionIDs {
			dst = AppendVarint(append(dst, byte(PropSubscriptionID)), id)
		}
		if f.TopicAlias != 0 {
			dst = appendUint16(append(dst, byte(PropTopicAlias)), f.TopicAlias)
		}
		dst = append(dst, s.enc[s.mid:]...)
	}
	return append(dst, f.Payload...), nil
}
