package packet_test

// Property-based round-trip tests (pgregory.net/rapid).
//
// Generators build random VALID packets of every type for both protocol
// versions and check
//
//   - decode(encode(p)) equals p under rtNorm (see below);
//   - encode(decode(encode(p))) is byte-for-byte encode(p);
//   - the fixed header written matches the type, flags and length;
//   - AppendTo leaves the caller's prefix alone;
//   - decoding into a value that was used before gives the same result;
//   - Reader.ReadPacket over the encoded stream, fed in small chunks, gives
//     the same packets.
//
// and, for random or mutated bytes, that Decode never panics, reports every
// failure as an *Error with a decoding reason code, and that whatever it
// accepts re-encodes canonically and decodes to the same value.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/mqtt5go/mqtt5/packet"
	"pgregory.net/rapid"
)

// rtWill is the property context of Will Properties: PropID.AllowedIn takes
// a Type and the codec uses Type 0 (otherwise the reserved packet type) for
// the Will Properties of CONNECT.
const rtWill packet.Type = 0

// rtPropIDs lists every property identifier in ascending order.
var rtPropIDs = []packet.PropID{
	packet.PropPayloadFormat, packet.PropMessageExpiry, packet.PropContentType,
	packet.PropResponseTopic, packet.PropCorrelationData, packet.PropSubscriptionID,
	packet.PropSessionExpiry, packet.PropAssignedClientID, packet.PropServerKeepAlive,
	packet.PropAuthMethod, packet.PropAuthData, packet.PropRequestProblemInfo,
	packet.PropWillDelay, packet.PropRequestResponseInfo, packet.PropResponseInfo,
	packet.PropServerReference, packet.PropReasonString, packet.PropReceiveMaximum,
	packet.PropTopicAliasMaximum, packet.PropTopicAlias, packet.PropMaximumQoS,
	packet.PropRetainAvailable, packet.PropUser, packet.PropMaximumPacketSize,
	packet.PropWildcardSubAvailable, packet.PropSubIDAvailable, packet.PropSharedSubAvailable,
}

// ---------------------------------------------------------------------------
// Normalisation.
//
// rtNorm returns a deep copy of p in the canonical form in which a packet
// that was encoded for version v and decoded again must come back. The
// differences it irons out are the ones the API allows:
//
//   - Properties: the presence mask. A property is sent when its field is
//     non-zero OR it was marked with Set, and decoding marks every property
//     it sees; so "non-zero but not marked" and "marked" are the same on the
//     wire. The canonical form marks exactly the properties that would be
//     encoded. Properties the context does not allow are never encoded, so
//     they are dropped. User and SubscriptionIDs: a marked but empty list
//     writes nothing, and nil and empty lists are the same (nil).
//     CorrelationData and AuthData keep nil (absent) apart from empty
//     (present, zero length).
//   - For 3.1.1 every v5-only field is dropped: properties, reason codes of
//     acks/DISCONNECT, the SUBSCRIBE options NoLocal, RetainAsPublished and
//     RetainHandling, and UNSUBACK reason codes.
//   - CONNECT: an empty ProtocolName is sent as "MQTT"; Version 0 means the
//     version passed to AppendTo; a non-empty Username implies UsernameFlag.
//     Password keeps nil (no password) apart from empty.
//   - Payloads (PUBLISH, Will) and code/filter lists: nil and empty are the
//     same (nil), since the wire cannot tell them apart.
// ---------------------------------------------------------------------------

func rtNorm(p packet.Packet, v packet.Version) packet.Packet {
	switch p := p.(type) {
	case *packet.Connect:
		c := *p
		if c.Version != 0 {
			v = c.Version // the version AppendTo actually writes
		}
		c.Version = v
		if c.ProtocolName == "" {
			c.ProtocolName = "MQTT"
		}
		c.UsernameFlag = c.UsernameFlag || c.Username != ""
		c.Password = rtCloneBytes(c.Password)
		c.Props = rtNormProps(&p.Props, packet.CONNECT, v)
		if p.Will != nil {
			w := *p.Will
			w.Payload = rtNilIfEmpty(w.Payload)
			w.Props = rtNormProps(&p.Will.Props, rtWill, v)
			c.Will = &w
		}
		return &c
	case *packet.Connack:
		c := *p
		c.Props = rtNormProps(&p.Props, packet.CONNACK, v)
		return &c
	case *packet.Publish:
		q := *p
		q.Payload = rtNilIfEmpty(q.Payload)
		q.Props = rtNormProps(&p.Props, packet.PUBLISH, v)
		return &q
	case *packet.Puback:
		q := *p
		q.ReasonCode, q.Props = rtNormAck(p.ReasonCode, &p.Props, packet.PUBACK, v)
		return &q
	case *packet.Pubrec:
		q := *p
		q.ReasonCode, q.Props = rtNormAck(p.ReasonCode, &p.Props, packet.PUBREC, v)
		return &q
	case *packet.Pubrel:
		q := *p
		q.ReasonCode, q.Props = rtNormAck(p.ReasonCode, &p.Props, packet.PUBREL, v)
		return &q
	case *packet.Pubcomp:
		q := *p
		q.ReasonCode, q.Props = rtNormAck(p.ReasonCode, &p.Props, packet.PUBCOMP, v)
		return &q
	case *packet.Subscribe:
		s := *p
		s.Props = rtNormProps(&p.Props, packet.SUBSCRIBE, v)
		s.Subscriptions = nil
		for _, sub := range p.Subscriptions {
			if v != packet.V5 {
				sub.NoLocal, sub.RetainAsPublished, sub.RetainHandling = false, false, 0
			}
			s.Subscriptions = append(s.Subscriptions, sub)
		}
		return &s
	case *packet.Suback:
		s := *p
		s.Props = rtNormProps(&p.Props, packet.SUBACK, v)
		s.ReasonCodes = rtNilIfEmpty(append([]packet.ReasonCode(nil), p.ReasonCodes...))
		return &s
	case *packet.Unsubscribe:
		u := *p
		u.Props = rtNormProps(&p.Props, packet.UNSUBSCRIBE, v)
		u.Filters = rtNilIfEmpty(append([]string(nil), p.Filters...))
		return &u
	case *packet.Unsuback:
		u := *p
		u.Props = rtNormProps(&p.Props, packet.UNSUBACK, v)
		u.ReasonCodes = rtNilIfEmpty(append([]packet.ReasonCode(nil), p.ReasonCodes...))
		if v != packet.V5 {
			u.ReasonCodes = nil // 3.1.1 UNSUBACK has no payload
		}
		return &u
	case *packet.Disconnect:
		d := *p
		d.ReasonCode, d.Props = rtNormAck(p.ReasonCode, &p.Props, packet.DISCONNECT, v)
		return &d
	case *packet.Auth:
		a := *p
		a.Props = rtNormProps(&p.Props, packet.AUTH, v)
		return &a
	case *packet.Pingreq, *packet.Pingresp:
		return p
	}
	panic(fmt.Sprintf("rtNorm: unexpected %T", p))
}

func rtNormAck(rc packet.ReasonCode, p *packet.Properties, t packet.Type, v packet.Version) (packet.ReasonCode, packet.Properties) {
	if v != packet.V5 {
		return packet.Success, packet.Properties{}
	}
	return rc, rtNormProps(p, t, v)
}

// rtNormProps returns the canonical Properties for context t: exactly the
// properties that would be encoded, each marked with Set.
func rtNormProps(p *packet.Properties, t packet.Type, v packet.Version) packet.Properties {
	var n packet.Properties
	if v != packet.V5 {
		return n
	}
	for _, id := range rtPropIDs {
		if !id.AllowedIn(t) || !p.Has(id) {
			continue
		}
		switch id {
		case packet.PropUser:
			if len(p.User) == 0 {
				continue
			}
			n.User = append([]packet.UserProperty(nil), p.User...)
		case packet.PropSubscriptionID:
			if len(p.SubscriptionIDs) == 0 {
				continue
			}
			n.SubscriptionIDs = append([]uint32(nil), p.SubscriptionIDs...)
		case packet.PropCorrelationData:
			n.CorrelationData = append([]byte{}, p.CorrelationData...)
		case packet.PropAuthData:
			n.AuthData = append([]byte{}, p.AuthData...)
		default:
			rtCopyProp(&n, p, id)
		}
		n.Set(id)
	}
	return n
}

// rtCopyProp copies the scalar or string property id from src to dst.
func rtCopyProp(dst, src *packet.Properties, id packet.PropID) {
	switch id {
	case packet.PropPayloadFormat:
		dst.PayloadFormat = src.PayloadFormat
	case packet.PropMessageExpiry:
		dst.MessageExpiry = src.MessageExpiry
	case packet.PropContentType:
		dst.ContentType = src.ContentType
	case packet.PropResponseTopic:
		dst.ResponseTopic = src.ResponseTopic
	case packet.PropSessionExpiry:
		dst.SessionExpiry = src.SessionExpiry
	case packet.PropAssignedClientID:
		dst.AssignedClientID = src.AssignedClientID
	case packet.PropServerKeepAlive:
		dst.ServerKeepAlive = src.ServerKeepAlive
	case packet.PropAuthMethod:
		dst.AuthMethod = src.AuthMethod
	case packet.PropRequestProblemInfo:
		dst.RequestProblemInfo = src.RequestProblemInfo
	case packet.PropWillDelay:
		dst.WillDelay = src.WillDelay
	case packet.PropRequestResponseInfo:
		dst.RequestResponseInfo = src.RequestResponseInfo
	case packet.PropResponseInfo:
		dst.ResponseInfo = src.ResponseInfo
	case packet.PropServerReference:
		dst.ServerReference = src.ServerReference
	case packet.PropReasonString:
		dst.ReasonString = src.ReasonString
	case packet.PropReceiveMaximum:
		dst.ReceiveMaximum = src.ReceiveMaximum
	case packet.PropTopicAliasMaximum:
		dst.TopicAliasMaximum = src.TopicAliasMaximum
	case packet.PropTopicAlias:
		dst.TopicAlias = src.TopicAlias
	case packet.PropMaximumQoS:
		dst.MaximumQoS = src.MaximumQoS
	case packet.PropRetainAvailable:
		dst.RetainAvailable = src.RetainAvailable
	case packet.PropMaximumPacketSize:
		dst.MaximumPacketSize = src.MaximumPacketSize
	case packet.PropWildcardSubAvailable:
		dst.WildcardSubAvailable = src.WildcardSubAvailable
	case packet.PropSubIDAvailable:
		dst.SubIDAvailable = src.SubIDAvailable
	case packet.PropSharedSubAvailable:
		dst.SharedSubAvailable = src.SharedSubAvailable
	default:
		panic("rtCopyProp: " + id.String())
	}
}

func rtNilIfEmpty[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

func rtCloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// rtEqual reports whether a and b are the same packet for version v.
func rtEqual(a, b packet.Packet, v packet.Version) bool {
	return reflect.DeepEqual(rtNorm(a, v), rtNorm(b, v))
}

// rtDump formats a packet for failure messages.
func rtDump(p packet.Packet) string {
	if p == nil {
		return "<nil>"
	}
	switch p := p.(type) {
	case *packet.Connect:
		s := fmt.Sprintf("%T%+v", p, *p)
		if p.Will != nil {
			s += fmt.Sprintf(" will=%+v", *p.Will)
		}
		return s
	}
	return fmt.Sprintf("%T%+v", p, p)
}

// ---------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------

// rtRune draws any rune that is legal in an MQTT UTF-8 string (not U+0000,
// not a surrogate), including U+FEFF and non-characters.
var rtRune = rapid.OneOf(
	rapid.RuneFrom([]rune("abcxyz/+#$ _-09")),
	rapid.RuneFrom([]rune{0x01, 0x1F, 0x7F, 0x80, 0x7FF, 0x800, 0xFEFF, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF, 'é', '日', '😀'}),
	rapid.Rune().Filter(func(r rune) bool { return r != 0 && utf8.ValidRune(r) }),
)

// rtString draws a valid MQTT UTF-8 string, occasionally long enough to
// need a two-byte property length.
func rtString(t *rapid.T, label string) string {
	if rapid.IntRange(0, 15).Draw(t, label+".long") == 0 {
		return rapid.StringOfN(rtRune, 100, 300, -1).Draw(t, label)
	}
	return rapid.StringOfN(rtRune, 0, 12, -1).Draw(t, label)
}

// rtBytes draws a byte slice, nil with some probability when allowNil.
func rtBytes(t *rapid.T, label string, maxLen int, allowNil bool) []byte {
	if allowNil && rapid.IntRange(0, 3).Draw(t, label+".nil") == 0 {
		return nil
	}
	b := rapid.SliceOfN(rapid.Byte(), 0, maxLen).Draw(t, label)
	if b == nil {
		b = []byte{}
	}
	return b
}

// rtPayload draws a payload; occasionally large enough for a three-byte
// Remaining Length.
func rtPayload(t *rapid.T, label string) []byte {
	switch rapid.IntRange(0, 19).Draw(t, label+".kind") {
	case 0:
		return nil
	case 1:
		n := rapid.IntRange(16_384, 70_000).Draw(t, label+".bigLen")
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}
	return rtBytes(t, label, 200, false)
}

var rtVarintEdges = []uint32{1, 2, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, packet.MaxVarint}

func rtSubID(t *rapid.T, label string) uint32 {
	if rapid.Bool().Draw(t, label+".edge") {
		return rapid.SampledFrom(rtVarintEdges).Draw(t, label)
	}
	return rapid.Uint32Range(1, packet.MaxVarint).Draw(t, label)
}

func rtU32(t *rapid.T, label string, min uint32) uint32 {
	switch rapid.IntRange(0, 3).Draw(t, label+".kind") {
	case 0:
		return min
	case 1:
		return math.MaxUint32
	}
	return rapid.Uint32Range(min, math.MaxUint32).Draw(t, label)
}

func rtU16(t *rapid.T, label string, min uint16) uint16 {
	switch rapid.IntRange(0, 3).Draw(t, label+".kind") {
	case 0:
		return min
	case 1:
		return math.MaxUint16
	}
	return rapid.Uint16Range(min, math.MaxUint16).Draw(t, label)
}

// rtProps draws a random valid subset of the properties context t allows.
// Properties drawn with their zero value are marked with Set. With noise,
// fields of properties the context does NOT allow are filled as well: the
// encoder must leave them out.
func rtProps(t *rapid.T, ctx packet.Type, label string, noise bool) packet.Properties {
	var p packet.Properties
	for _, id := range rtPropIDs {
		allowed := id.AllowedIn(ctx)
		if !allowed && !noise {
			continue
		}
		if !rapid.Bool().Draw(t, label+"."+id.String()) {
			continue
		}
		l := label + "." + id.String()
		switch id {
		case packet.PropPayloadFormat:
			p.PayloadFormat = rapid.Byte().Draw(t, l) & 1
		case packet.PropMessageExpiry:
			p.MessageExpiry = rtU32(t, l, 0)
		case packet.PropContentType:
			p.ContentType = rtString(t, l)
		case packet.PropResponseTopic:
			p.ResponseTopic = rtString(t, l)
		case packet.PropCorrelationData:
			p.CorrelationData = rtBytes(t, l, 40, false)
		case packet.PropSubscriptionID:
			n := 1
			if ctx == packet.PUBLISH {
				n = rapid.IntRange(1, 4).Draw(t, l+".n")
			}
			for i := 0; i < n; i++ {
				p.SubscriptionIDs = append(p.SubscriptionIDs, rtSubID(t, l))
			}
		case packet.PropSessionExpiry:
			p.SessionExpiry = rtU32(t, l, 0)
		case packet.PropAssignedClientID:
			p.AssignedClientID = rtString(t, l)
		case packet.PropServerKeepAlive:
			p.ServerKeepAlive = rtU16(t, l, 0)
		case packet.PropAuthMethod:
			p.AuthMethod = rtString(t, l)
		case packet.PropAuthData:
			p.AuthData = rtBytes(t, l, 40, false)
		case packet.PropRequestProblemInfo:
			p.RequestProblemInfo = rapid.Byte().Draw(t, l) & 1
		case packet.PropWillDelay:
			p.WillDelay = rtU32(t, l, 0)
		case packet.PropRequestResponseInfo:
			p.RequestResponseInfo = rapid.Byte().Draw(t, l) & 1
		case packet.PropResponseInfo:
			p.ResponseInfo = rtString(t, l)
		case packet.PropServerReference:
			p.ServerReference = rtString(t, l)
		case packet.PropReasonString:
			p.ReasonString = rtString(t, l)
		case packet.PropReceiveMaximum:
			p.ReceiveMaximum = rtU16(t, l, 1) // 0 is a Protocol Error
		case packet.PropTopicAliasMaximum:
			p.TopicAliasMaximum = rtU16(t, l, 0)
		case packet.PropTopicAlias:
			p.TopicAlias = rtU16(t, l, 1) // 0 is a Protocol Error
		case packet.PropMaximumQoS:
			p.MaximumQoS = rapid.Byte().Draw(t, l) & 1
		case packet.PropRetainAvailable:
			p.RetainAvailable = rapid.Byte().Draw(t, l) & 1
		case packet.PropUser:
			n := rapid.IntRange(1, 4).Draw(t, l+".n")
			for i := 0; i < n; i++ {
				k := rtString(t, l+".key")
				if i > 0 && rapid.IntRange(0, 3).Draw(t, l+".dup") == 0 {
					k = p.User[0].Key // duplicate names are kept, in order
				}
				p.User = append(p.User, packet.UserProperty{Key: k, Value: rtString(t, l+".value")})
			}
		case packet.PropMaximumPacketSize:
			p.MaximumPacketSize = rtU32(t, l, 1) // 0 is a Protocol Error
		case packet.PropWildcardSubAvailable:
			p.WildcardSubAvailable = rapid.Byte().Draw(t, l) & 1
		case packet.PropSubIDAvailable:
			p.SubIDAvailable = rapid.Byte().Draw(t, l) & 1
		case packet.PropSharedSubAvailable:
			p.SharedSubAvailable = rapid.Byte().Draw(t, l) & 1
		}
		// Mark zero values (and, sometimes, non-zero ones) as present.
		if !p.Has(id) || rapid.IntRange(0, 3).Draw(t, l+".set") == 0 {
			p.Set(id)
		}
	}
	return p
}

// rtCodesFor lists the reason codes MQTT v5.0 allows in packet type t.
func rtCodesFor(t packet.Type) []packet.ReasonCode {
	var cs []packet.ReasonCode
	for c := 0; c < 256; c++ {
		if packet.ReasonCode(c).ValidFor(t) {
			cs = append(cs, packet.ReasonCode(c))
		}
	}
	return cs
}

var (
	rtV3ConnackCodes = []packet.ReasonCode{0, 1, 2, 3, 4, 5}
	rtV3SubackCodes  = []packet.ReasonCode{0, 1, 2, 0x80}
)

func rtPacketID(t *rapid.T, label string) uint16 {
	if rapid.Bool().Draw(t, label+".edge") {
		return rapid.SampledFrom([]uint16{1, 255, 256, 65535}).Draw(t, label)
	}
	return rapid.Uint16Range(1, math.MaxUint16).Draw(t, label)
}

// rtV5Only draws whether a 3.1.1 packet gets v5-only fields anyway (rarely):
// AppendTo must drop them.
func rtV5Only(t *rapid.T, v packet.Version) bool {
	return v == packet.V5 || rapid.IntRange(0, 9).Draw(t, "v5onlyNoise") == 0
}

// rtTypes lists the packet types that exist in version v.
func rtTypes(v packet.Version) []packet.Type {
	ts := []packet.Type{packet.CONNECT, packet.CONNACK, packet.PUBLISH, packet.PUBACK, packet.PUBREC,
		packet.PUBREL, packet.PUBCOMP, packet.SUBSCRIBE, packet.SUBACK, packet.UNSUBSCRIBE,
		packet.UNSUBACK, packet.PINGREQ, packet.PINGRESP, packet.DISCONNECT}
	if v == packet.V5 {
		ts = append(ts, packet.AUTH)
	}
	return ts
}

// rtPacketOf draws a random valid packet of type typ for version v.
func rtPacketOf(t *rapid.T, typ packet.Type, v packet.Version) packet.Packet {
	props := func(ctx packet.Type) packet.Properties {
		if !rtV5Only(t, v) {
			return packet.Properties{}
		}
		return rtProps(t, ctx, "props", rapid.IntRange(0, 4).Draw(t, "noise") == 0)
	}
	ackCode := func(tt packet.Type) packet.ReasonCode {
		if !rtV5Only(t, v) || rapid.Bool().Draw(t, "success") {
			return packet.Success
		}
		return rapid.SampledFrom(rtCodesFor(tt)).Draw(t, "reason")
	}
	switch typ {
	case packet.CONNECT:
		c := &packet.Connect{
			CleanStart: rapid.Bool().Draw(t, "clean"),
			KeepAlive:  rtU16(t, "keepAlive", 0),
			ClientID:   rtString(t, "clientID"),
		}
		if rapid.Bool().Draw(t, "explicitVersion") {
			c.Version = v
		}
		if rapid.Bool().Draw(t, "explicitName") {
			c.ProtocolName = "MQTT"
		}
		c.Props = props(packet.CONNECT)
		if rapid.Bool().Draw(t, "will") {
			w := &packet.Will{
				QoS:     rapid.ByteRange(0, 2).Draw(t, "willQoS"),
				Retain:  rapid.Bool().Draw(t, "willRetain"),
				Topic:   rtString(t, "willTopic"),
				Payload: rtBytes(t, "willPayload", 64, true),
			}
			if rtV5Only(t, v) {
				w.Props = rtProps(t, rtWill, "willProps", rapid.IntRange(0, 4).Draw(t, "willNoise") == 0)
			}
			c.Will = w
		}
		if rapid.Bool().Draw(t, "user") {
			c.Username = rtString(t, "username")
			c.UsernameFlag = c.Username == "" || rapid.Bool().Draw(t, "userFlag")
		}
		if rapid.Bool().Draw(t, "password") {
			c.Password = rtBytes(t, "pw", 32, false)
			if v == packet.V311 && c.Username == "" {
				c.UsernameFlag = true // 3.1.1: no password without user name
			}
		}
		return c
	case packet.CONNACK:
		c := &packet.Connack{SessionPresent: rapid.Bool().Draw(t, "sp")}
		if v == packet.V5 {
			c.ReasonCode = rapid.SampledFrom(rtCodesFor(packet.CONNACK)).Draw(t, "rc")
		} else {
			c.ReasonCode = rapid.SampledFrom(rtV3ConnackCodes).Draw(t, "rc")
		}
		c.Props = props(packet.CONNACK)
		return c
	case packet.PUBLISH:
		p := &packet.Publish{
			QoS:     rapid.ByteRange(0, 2).Draw(t, "qos"),
			Retain:  rapid.Bool().Draw(t, "retain"),
			Topic:   rtString(t, "topic"),
			Payload: rtPayload(t, "payload"),
		}
		if p.QoS > 0 {
			p.PacketID = rtPacketID(t, "pid")
			p.Dup = rapid.Bool().Draw(t, "dup")
		}
		if v == packet.V311 && p.Topic == "" {
			p.Topic = "t" // 3.1.1 has no topic aliases
		}
		p.Props = props(packet.PUBLISH)
		if p.Topic == "" && !p.Props.Has(packet.PropTopicAlias) {
			// A zero-length Topic Name needs a Topic Alias (section 3.3.2.1).
			p.Props.TopicAlias = rtU16(t, "alias", 1)
		}
		return p
	case packet.PUBACK:
		return &packet.Puback{PacketID: rtPacketID(t, "pid"), ReasonCode: ackCode(packet.PUBACK), Props: props(packet.PUBACK)}
	case packet.PUBREC:
		return &packet.Pubrec{PacketID: rtPacketID(t, "pid"), ReasonCode: ackCode(packet.PUBREC), Props: props(packet.PUBREC)}
	case packet.PUBREL:
		return &packet.Pubrel{PacketID: rtPacketID(t, "pid"), ReasonCode: ackCode(packet.PUBREL), Props: props(packet.PUBREL)}
	case packet.PUBCOMP:
		return &packet.Pubcomp{PacketID: rtPacketID(t, "pid"), ReasonCode: ackCode(packet.PUBCOMP), Props: props(packet.PUBCOMP)}
	case packet.SUBSCRIBE:
		s := &packet.Subscribe{PacketID: rtPacketID(t, "pid"), Props: props(packet.SUBSCRIBE)}
		n := rapid.IntRange(1, 5).Draw(t, "nsubs")
		for i := 0; i < n; i++ {
			sub := packet.Subscription{Filter: rtString(t, "filter"), QoS: rapid.ByteRange(0, 2).Draw(t, "subQoS")}
			if rtV5Only(t, v) {
				sub.NoLocal = rapid.Bool().Draw(t, "noLocal")
				sub.RetainAsPublished = rapid.Bool().Draw(t, "rap")
				sub.RetainHandling = rapid.ByteRange(0, 2).Draw(t, "rh")
			}
			s.Subscriptions = append(s.Subscriptions, sub)
		}
		return s
	case packet.SUBACK:
		s := &packet.Suback{PacketID: rtPacketID(t, "pid"), Props: props(packet.SUBACK)}
		codes := rtV3SubackCodes
		if v == packet.V5 {
			codes = rtCodesFor(packet.SUBACK)
		}
		s.ReasonCodes = rapid.SliceOfN(rapid.SampledFrom(codes), 1, 6).Draw(t, "codes")
		return s
	case packet.UNSUBSCRIBE:
		u := &packet.Unsubscribe{PacketID: rtPacketID(t, "pid"), Props: props(packet.UNSUBSCRIBE)}
		n := rapid.IntRange(1, 5).Draw(t, "nfilters")
		for i := 0; i < n; i++ {
			u.Filters = append(u.Filters, rtString(t, "filter"))
		}
		return u
	case packet.UNSUBACK:
		u := &packet.Unsuback{PacketID: rtPacketID(t, "pid"), Props: props(packet.UNSUBACK)}
		if rtV5Only(t, v) {
			u.ReasonCodes = rapid.SliceOfN(rapid.SampledFrom(rtCodesFor(packet.UNSUBACK)), 1, 6).Draw(t, "codes")
		}
		return u
	case packet.PINGREQ:
		return &packet.Pingreq{}
	case packet.PINGRESP:
		return &packet.Pingresp{}
	case packet.DISCONNECT:
		return &packet.Disconnect{ReasonCode: ackCode(packet.DISCONNECT), Props: props(packet.DISCONNECT)}
	case packet.AUTH:
		return &packet.Auth{ReasonCode: ackCode(packet.AUTH), Props: props(packet.AUTH)}
	}
	panic("rtPacketOf: " + typ.String())
}

func rtVersion(t *rapid.T) packet.Version {
	return rapid.SampledFrom([]packet.Version{packet.V311, packet.V5}).Draw(t, "version")
}

func rtPacket(t *rapid.T, v packet.Version) packet.Packet {
	return rtPacketOf(t, rapid.SampledFrom(rtTypes(v)).Draw(t, "type"), v)
}

// ---------------------------------------------------------------------------
// Checks shared with the fuzz targets and the capture test.
// ---------------------------------------------------------------------------

// rtTB is what the checks need from *testing.T and *rapid.T.
type rtTB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// rtSplit parses the fixed header of one encoded packet and checks that the
// Remaining Length accounts for exactly the rest of b.
func rtSplit(t rtTB, b []byte) (packet.FixedHeader, []byte) {
	t.Helper()
	if len(b) < 2 {
		t.Fatalf("encoding of %d bytes is shorter than a fixed header: % x", len(b), b)
	}
	rem, n, err := packet.DecodeVarint(b[1:])
	if err != nil {
		t.Fatalf("encoding has a bad Remaining Length: %v: % x", err, b)
	}
	h := packet.FixedHeader{Type: packet.Type(b[0] >> 4), Flags: b[0] & 0x0F, Remaining: int(rem)}
	if 1+n+int(rem) != len(b) {
		t.Fatalf("Remaining Length %d does not match encoding of %d bytes (header %d)", rem, len(b), 1+n)
	}
	if h.Size() != len(b) {
		t.Fatalf("FixedHeader.Size() = %d, encoding has %d bytes", h.Size(), len(b))
	}
	return h, b[1+n:]
}

// rtWireVersion is the version p is actually written in when encoded for v.
func rtWireVersion(p packet.Packet, v packet.Version) packet.Version {
	if c, ok := p.(*packet.Connect); ok && c.Version != 0 {
		return c.Version
	}
	return v
}

// rtNewOf returns a new zero packet of p's concrete type.
func rtNewOf(p packet.Packet) packet.Packet {
	return reflect.New(reflect.TypeOf(p).Elem()).Interface().(packet.Packet)
}

type rtDecoder interface {
	packet.Packet
	Decode(flags byte, body []byte, v packet.Version) error
}

// rtCheckValid checks everything a valid packet p must satisfy when encoded
// for v, and returns its encoding.
func rtCheckValid(t rtTB, p packet.Packet, v packet.Version, prefix []byte) []byte {
	t.Helper()
	want := rtNorm(p, v)
	out, err := p.AppendTo(prefix, v)
	if err != nil {
		t.Fatalf("AppendTo(%v) of valid packet: %v\n%s", v, err, rtDump(p))
	}
	if !bytes.Equal(out[:len(prefix)], prefix) {
		t.Fatalf("AppendTo modified the destination prefix")
	}
	enc := out[len(prefix):]
	h, body := rtSplit(t, enc)
	if h.Type != p.Type() {
		t.Fatalf("encoded type %v, want %v", h.Type, p.Type())
	}
	if pub, ok := p.(*packet.Publish); ok {
		if h.Flags != pub.Flags() {
			t.Fatalf("PUBLISH flags %#x, want %#x", h.Flags, pub.Flags())
		}
		if pub.Size(v) != len(enc) {
			t.Fatalf("Publish.Size(%v) = %d, encoding has %d bytes", v, pub.Size(v), len(enc))
		}
	}
	wv := rtWireVersion(p, v)
	if err := h.Validate(wv); err != nil {
		t.Fatalf("encoded fixed header does not validate: %v", err)
	}
	q, err := packet.Decode(h, body, v)
	if err != nil {
		t.Fatalf("Decode of encoded packet: %v\npacket: %s\nbytes: % x", err, rtDump(p), enc)
	}
	if got := rtNorm(q, wv); !reflect.DeepEqual(got, want) {
		t.Fatalf("decode(encode(p)) != p for %v\nwant %s\ngot  %s\nbytes: % x", v, rtDump(want), rtDump(got), enc)
	}
	enc2, err := packet.Encode(q, v)
	if err != nil {
		t.Fatalf("re-encoding decoded packet: %v\n%s", err, rtDump(q))
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("encode(decode(encode(p))) differs\nfirst:  % x\nsecond: % x", enc, enc2)
	}

	// Decoding into a value that already holds another packet of the same
	// type gives the same result (slices are reused, nothing leaks over).
	reused := rtNewOf(p).(rtDecoder)
	if other := rtReuseDirt(p, v); other != nil {
		oe, err := packet.Encode(other, v)
		if err == nil {
			oh, ob := rtSplit(t, oe)
			_ = reused.Decode(oh.Flags, ob, v)
		}
	}
	if err := reused.Decode(h.Flags, body, v); err != nil {
		t.Fatalf("Decode into a reused value: %v", err)
	}
	if got := rtNorm(reused, wv); !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode into a reused value differs\nwant %s\ngot  %s", rtDump(want), rtDump(got))
	}
	return enc
}

// rtReuseDirt returns a packet of p's type with many fields and list
// entries set, to be decoded into a value before it is reused.
func rtReuseDirt(p packet.Packet, v packet.Version) packet.Packet {
	var props packet.Properties
	if v == packet.V5 {
		props.User = []packet.UserProperty{{"a", "b"}, {"c", "d"}, {"e", "f"}}
		props.ReasonString = "dirt"
	}
	switch p.(type) {
	case *packet.Connect:
		props.SessionExpiry = 9
		return &packet.Connect{ClientID: "dirt", Username: "u", Password: []byte("p"), Props: props,
			Will: &packet.Will{Topic: "w", Payload: []byte("x"), QoS: 1}}
	case *packet.Publish:
		props.SubscriptionIDs = []uint32{1, 2, 3}
		props.ContentType = "x"
		return &packet.Publish{QoS: 1, PacketID: 9, Topic: "dirt", Payload: []byte("dirt"), Props: props, Dup: true, Retain: true}
	case *packet.Subscribe:
		return &packet.Subscribe{PacketID: 9, Subscriptions: []packet.Subscription{{Filter: "a", QoS: 1}, {Filter: "b"}, {Filter: "c"}, {Filter: "d"}, {Filter: "e"}, {Filter: "f"}}}
	case *packet.Suback:
		return &packet.Suback{PacketID: 9, ReasonCodes: []packet.ReasonCode{0, 1, 2, 0, 1, 2, 0}}
	case *packet.Unsubscribe:
		return &packet.Unsubscribe{PacketID: 9, Filters: []string{"a", "b", "c", "d", "e", "f"}}
	case *packet.Unsuback:
		return &packet.Unsuback{PacketID: 9, ReasonCodes: []packet.ReasonCode{0, 0, 0, 0, 0, 0, 0}}
	case *packet.Puback:
		return &packet.Puback{PacketID: 9, Props: props}
	case *packet.Connack:
		return &packet.Connack{SessionPresent: true, Props: props}
	case *packet.Disconnect:
		return &packet.Disconnect{Props: props}
	}
	return nil
}

// rtDecodeCodes are the reason codes a decoding failure may carry.
var rtDecodeCodes = map[packet.ReasonCode]bool{
	packet.MalformedPacket:            true,
	packet.ProtocolError:              true,
	packet.UnsupportedProtocolVersion: true,
	packet.TopicAliasInvalid:          true, // Topic Alias 0 in PUBLISH [MQTT-3.3.2-8]
}

// rtCheckErr checks that a decoding error is an *Error with a decoding
// reason code, reachable through errors.Is, errors.As and CodeOf.
func rtCheckErr(t rtTB, err error, allowed map[packet.ReasonCode]bool) {
	t.Helper()
	var e *packet.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *packet.Error", err, err)
	}
	if !allowed[e.Code] {
		t.Fatalf("error %v carries unexpected reason code %#x", err, byte(e.Code))
	}
	if packet.CodeOf(err) != e.Code || !errors.Is(err, e.Code) {
		t.Fatalf("CodeOf/errors.Is disagree with Code for %v", err)
	}
	if e.Error() == "" {
		t.Fatalf("empty error message")
	}
}

// rtCheckDecode feeds one fixed header byte and body to Decode for version
// v. It must not panic; a failure must be an *Error; a success must
// re-encode (to the same header byte, never longer) and decode to an equal
// value, and that re-encoding must be stable. It returns the decoded packet
// (nil on error).
func rtCheckDecode(t rtTB, hdr byte, body []byte, v packet.Version) packet.Packet {
	t.Helper()
	h := packet.FixedHeader{Type: packet.Type(hdr >> 4), Flags: hdr & 0x0F, Remaining: len(body)}
	// Decode aliases its input: work on a copy so the caller's bytes can be
	// checked unchanged afterwards.
	in := append([]byte(nil), body...)
	p, err := packet.Decode(h, in, v)
	if !bytes.Equal(in, body) {
		t.Fatalf("Decode modified its input")
	}
	if err != nil {
		if p != nil {
			t.Fatalf("Decode returned both a packet and an error")
		}
		rtCheckErr(t, err, rtDecodeCodes)
		if packet.CodeOf(err) == packet.UnsupportedProtocolVersion && h.Type != packet.CONNECT {
			t.Fatalf("UnsupportedProtocolVersion for a %v", h.Type)
		}
		return nil
	}
	if p.Type() != h.Type {
		t.Fatalf("Decode of a %v returned a %T", h.Type, p)
	}
	wv := rtWireVersion(p, v)
	if !wv.Valid() {
		t.Fatalf("decoded %v with invalid version %v", h.Type, wv)
	}
	enc, err := packet.Encode(p, wv)
	if err != nil {
		if pub, ok := p.(*packet.Publish); ok && pub.Topic == "" && (wv == packet.V311 || !pub.Props.Has(packet.PropTopicAlias)) {
			// The decoder leaves topic-name rules to the receiver (they
			// depend on session state); the encoder refuses an empty topic
			// without a Topic Alias.
			return p
		}
		t.Fatalf("re-encoding a decoded packet failed: %v\npacket: %s\ninput: %02x % x", err, rtDump(p), hdr, body)
	}
	h2, body2 := rtSplit(t, enc)
	if pub, ok := p.(*packet.Publish); ok && pub.Size(wv) != len(enc) {
		t.Fatalf("Publish.Size(%v) = %d, encoding has %d bytes", wv, pub.Size(wv), len(enc))
	}
	if enc[0] != hdr {
		t.Fatalf("re-encoded header byte %#02x, input had %#02x", enc[0], hdr)
	}
	if len(body2) > len(body) {
		t.Fatalf("re-encoding is longer than the input (%d > %d)\ninput: % x\nenc:   % x", len(body2), len(body), body, body2)
	}
	switch h.Type {
	case packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP, packet.DISCONNECT, packet.AUTH:
		// These may drop a Success reason code and an empty property block.
	default:
		if len(body2) != len(body) {
			t.Fatalf("re-encoding of a %v has %d body bytes, input had %d\ninput: % x\nenc:   % x", h.Type, len(body2), len(body), body, body2)
		}
	}
	q, err := packet.Decode(h2, body2, v)
	if err != nil {
		t.Fatalf("decoding the re-encoding failed: %v\ninput: %02x % x\nenc:   % x", err, hdr, body, enc)
	}
	if a, b := rtNorm(p, wv), rtNorm(q, wv); !reflect.DeepEqual(a, b) {
		t.Fatalf("decode(encode(decode(x))) != decode(x)\nfirst:  %s\nsecond: %s", rtDump(a), rtDump(b))
	}
	enc2, err := packet.Encode(q, wv)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("re-encoding is not stable (%v)\nfirst:  % x\nsecond: % x", err, enc, enc2)
	}
	return p
}

// rtChunkReader returns at most n bytes per Read.
type rtChunkReader struct {
	b []byte
	n int
}

func (r *rtChunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}

// ---------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------

// rtRepeat runs rapid.Check n times (each with a fresh seed), n times the
// usual number of cases, or once with -short.
func rtRepeat(t *testing.T, n int, prop func(*rapid.T)) {
	t.Helper()
	if testing.Short() {
		n = 1
	}
	for i := 0; i < n && !t.Failed(); i++ {
		rapid.Check(t, prop)
	}
}

func TestRoundTripProperty(t *testing.T) {
	rtRepeat(t, 10, func(t *rapid.T) {
		v := rtVersion(t)
		p := rtPacket(t, v)
		prefix := rtBytes(t, "prefix", 8, true)
		rtCheckValid(t, p, v, prefix)
	})
}

// TestRoundTripEveryType runs the round trip per type and version, so that
// every type gets a fair share of cases however rapid draws.
func TestRoundTripEveryType(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		for _, typ := range rtTypes(v) {
			t.Run(fmt.Sprintf("%v/%v", typ, v), func(t *testing.T) {
				rapid.Check(t, func(t *rapid.T) {
					rtCheckValid(t, rtPacketOf(t, typ, v), v, nil)
				})
			})
		}
	}
}

// TestRoundTripPublishProperties focuses on the PUBLISH property block:
// every PUBLISH property at once, several Subscription Identifiers of every
// varint width and several User Properties.
func TestRoundTripPublishProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := &packet.Publish{Topic: rtString(t, "topic"), QoS: 1, PacketID: 1, Payload: rtBytes(t, "payload", 16, true)}
		p.Props.PayloadFormat = 1
		p.Props.MessageExpiry = rtU32(t, "expiry", 0)
		p.Props.ContentType = rtString(t, "ct")
		p.Props.ResponseTopic = rtString(t, "rt")
		p.Props.CorrelationData = rtBytes(t, "cd", 40, false)
		p.Props.TopicAlias = rtU16(t, "alias", 1)
		p.Props.SubscriptionIDs = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) uint32 { return rtSubID(t, "id") }), 2, 8).Draw(t, "subids")
		for i, n := 0, rapid.IntRange(2, 8).Draw(t, "nuser"); i < n; i++ {
			p.Props.User = append(p.Props.User, packet.UserProperty{Key: rtString(t, "k"), Value: rtString(t, "v")})
		}
		ids := []packet.PropID{packet.PropPayloadFormat, packet.PropMessageExpiry, packet.PropContentType,
			packet.PropResponseTopic, packet.PropCorrelationData, packet.PropTopicAlias, packet.PropSubscriptionID, packet.PropUser}
		for _, id := range ids {
			p.Props.Set(id) // zero-valued ones (expiry 0, empty strings) too
		}
		enc := rtCheckValid(t, p, packet.V5, nil)
		var q packet.Publish
		h, body := rtSplit(t, enc)
		if err := q.Decode(h.Flags, body, packet.V5); err != nil {
			t.Fatalf("decode: %v", err)
		}
		for _, id := range ids {
			if !q.Props.Has(id) {
				t.Fatalf("decoded PUBLISH lacks %v", id)
			}
		}
		if !reflect.DeepEqual(q.Props.SubscriptionIDs, p.Props.SubscriptionIDs) || !reflect.DeepEqual(q.Props.User, p.Props.User) {
			t.Fatalf("lists differ: %v %v", q.Props.SubscriptionIDs, q.Props.User)
		}
	})
}

// TestRoundTripZeroValuedProperties checks that properties marked with Set
// while holding their zero value are sent and come back marked, for every
// context a property is allowed in.
func TestRoundTripZeroValuedProperties(t *testing.T) {
	ctxs := []packet.Type{rtWill, packet.CONNECT, packet.CONNACK, packet.PUBLISH, packet.PUBACK, packet.PUBREC,
		packet.PUBREL, packet.PUBCOMP, packet.SUBSCRIBE, packet.SUBACK, packet.UNSUBSCRIBE, packet.UNSUBACK,
		packet.DISCONNECT, packet.AUTH}
	for _, ctx := range ctxs {
		for _, id := range rtPropIDs {
			if !id.AllowedIn(ctx) {
				continue
			}
			switch id {
			case packet.PropReceiveMaximum, packet.PropTopicAlias, packet.PropMaximumPacketSize,
				packet.PropSubscriptionID, packet.PropUser:
				continue // zero is not a legal value / empty list is nothing
			}
			var props packet.Properties
			props.Set(id)
			p := rtWrapProps(ctx, props)
			enc := rtCheckValid(t, p, packet.V5, nil)
			h, body := rtSplit(t, enc)
			q, err := packet.Decode(h, body, packet.V5)
			if err != nil {
				t.Fatalf("%v in %v: %v", id, ctx, err)
			}
			if got := rtPropsOf(q, ctx); !got.Has(id) {
				t.Errorf("zero-valued %v marked with Set did not survive a round trip in %v", id, rtCtxName(ctx))
			}
		}
	}
}

func rtCtxName(ctx packet.Type) string {
	if ctx == rtWill {
		return "Will Properties"
	}
	return ctx.String()
}

// rtWrapProps returns a small valid v5 packet whose property block for
// context ctx is props.
func rtWrapProps(ctx packet.Type, props packet.Properties) packet.Packet {
	switch ctx {
	case rtWill:
		return &packet.Connect{ClientID: "c", Will: &packet.Will{Topic: "w", Props: props}}
	case packet.CONNECT:
		return &packet.Connect{ClientID: "c", Props: props}
	case packet.CONNACK:
		return &packet.Connack{Props: props}
	case packet.PUBLISH:
		return &packet.Publish{Topic: "t", Props: props}
	case packet.PUBACK:
		return &packet.Puback{PacketID: 1, Props: props}
	case packet.PUBREC:
		return &packet.Pubrec{PacketID: 1, Props: props}
	case packet.PUBREL:
		return &packet.Pubrel{PacketID: 1, Props: props}
	case packet.PUBCOMP:
		return &packet.Pubcomp{PacketID: 1, Props: props}
	case packet.SUBSCRIBE:
		return &packet.Subscribe{PacketID: 1, Props: props, Subscriptions: []packet.Subscription{{Filter: "f"}}}
	case packet.SUBACK:
		return &packet.Suback{PacketID: 1, Props: props, ReasonCodes: []packet.ReasonCode{0}}
	case packet.UNSUBSCRIBE:
		return &packet.Unsubscribe{PacketID: 1, Props: props, Filters: []string{"f"}}
	case packet.UNSUBACK:
		return &packet.Unsuback{PacketID: 1, Props: props, ReasonCodes: []packet.ReasonCode{0}}
	case packet.DISCONNECT:
		return &packet.Disconnect{Props: props}
	case packet.AUTH:
		return &packet.Auth{Props: props}
	}
	panic("rtWrapProps: " + ctx.String())
}

// rtPropsOf returns the property block of context ctx in p (nil if p has
// none for it).
func rtPropsOf(p packet.Packet, ctx packet.Type) *packet.Properties {
	switch p := p.(type) {
	case *packet.Connect:
		if ctx == rtWill {
			if p.Will == nil {
				return nil
			}
			return &p.Will.Props
		}
		return &p.Props
	case *packet.Connack:
		return &p.Props
	case *packet.Publish:
		return &p.Props
	case *packet.Puback:
		return &p.Props
	case *packet.Pubrec:
		return &p.Props
	case *packet.Pubrel:
		return &p.Props
	case *packet.Pubcomp:
		return &p.Props
	case *packet.Subscribe:
		return &p.Props
	case *packet.Suback:
		return &p.Props
	case *packet.Unsubscribe:
		return &p.Props
	case *packet.Unsuback:
		return &p.Props
	case *packet.Disconnect:
		return &p.Props
	case *packet.Auth:
		return &p.Props
	}
	return nil
}

// TestRoundTripReaderStream encodes a random sequence of packets, feeds the
// stream to a Reader in random-sized chunks and checks that ReadPacket and
// ReadRaw give back the same packets, then io.EOF.
func TestRoundTripReaderStream(t *testing.T) {
	rtRepeat(t, 5, func(t *rapid.T) {
		v := rtVersion(t)
		n := rapid.IntRange(1, 8).Draw(t, "n")
		var stream []byte
		var pkts []packet.Packet
		for i := 0; i < n; i++ {
			p := rtPacket(t, v)
			if c, ok := p.(*packet.Connect); ok {
				c.Version = v // a Reader reads one version
			}
			var err error
			stream, err = p.AppendTo(stream, v)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			pkts = append(pkts, p)
		}
		chunk := rapid.IntRange(1, 600).Draw(t, "chunk")
		r := packet.NewReader(&rtChunkReader{b: stream, n: chunk}, 0)
		r.InitialSize = rapid.IntRange(0, 64).Draw(t, "initial")
		r.ShrinkAbove = rapid.IntRange(0, 1024).Draw(t, "shrink")
		raw := rapid.Bool().Draw(t, "raw")
		for i, want := range pkts {
			var got packet.Packet
			if raw {
				h, body, err := r.ReadRaw(v)
				if err != nil {
					t.Fatalf("ReadRaw #%d: %v", i, err)
				}
				got, err = packet.Decode(h, body, v)
				if err != nil {
					t.Fatalf("Decode #%d: %v", i, err)
				}
			} else {
				var err error
				got, err = r.ReadPacket(v)
				if err != nil {
					t.Fatalf("ReadPacket #%d: %v", i, err)
				}
			}
			if !rtEqual(want, got, v) {
				t.Fatalf("packet #%d differs\nwant %s\ngot  %s", i, rtDump(rtNorm(want, v)), rtDump(rtNorm(got, v)))
			}
		}
		if _, err := r.ReadPacket(v); err != io.EOF {
			t.Fatalf("after the last packet: %v, want io.EOF", err)
		}
	})
}

// TestReaderMaxPacketSizeBoundary: a packet of exactly MaxPacketSize bytes
// is read; one byte less refuses it with PacketTooLarge.
func TestReaderMaxPacketSizeBoundary(t *testing.T) {
	rtRepeat(t, 3, func(t *rapid.T) {
		v := rtVersion(t)
		p := rtPacket(t, v)
		if c, ok := p.(*packet.Connect); ok {
			c.Version = v
		}
		enc, err := packet.Encode(p, v)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		chunk := rapid.IntRange(1, 64).Draw(t, "chunk")
		got, err := packet.NewReader(&rtChunkReader{b: enc, n: chunk}, len(enc)).ReadPacket(v)
		if err != nil || !rtEqual(p, got, v) {
			t.Fatalf("MaxPacketSize = size (%d): %v", len(enc), err)
		}
		_, _, err = packet.NewReader(&rtChunkReader{b: enc, n: chunk}, len(enc)-1).ReadRaw(v)
		rtCheckErr(t, err, map[packet.ReasonCode]bool{packet.PacketTooLarge: true})
	})
}

// TestDecodeRandomBytes feeds random header bytes and bodies to Decode.
// Half the header bytes carry the flags their type requires, so that the
// bodies get past the fixed-header check.
func TestDecodeRandomBytes(t *testing.T) {
	required := [16]byte{6: 2, 8: 2, 10: 2}
	rtRepeat(t, 20, func(t *rapid.T) {
		v := rtVersion(t)
		hdr := rapid.Byte().Draw(t, "hdr")
		if typ := hdr >> 4; typ != 3 && rapid.Bool().Draw(t, "validFlags") {
			hdr = typ<<4 | required[typ]
		}
		body := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "body")
		rtCheckDecode(t, hdr, body, v)
	})
}

// TestDecodeMutatedPackets encodes a random valid packet, damages it (bit
// flips, byte changes, insertions, deletions, truncation, a different
// header byte or version) and feeds it to Decode: most mutants are near
// enough to valid to get deep into the decoders.
func TestDecodeMutatedPackets(t *testing.T) {
	rtRepeat(t, 20, func(t *rapid.T) {
		v := rtVersion(t)
		p := rtPacket(t, v)
		enc, err := packet.Encode(p, v)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		h, body := rtSplit(t, enc)
		hdr := enc[0]
		body = append([]byte(nil), body...)
		for i, n := 0, rapid.IntRange(1, 4).Draw(t, "nmut"); i < n; i++ {
			switch rapid.IntRange(0, 6).Draw(t, "mut") {
			case 0:
				if len(body) > 0 {
					j := rapid.IntRange(0, len(body)-1).Draw(t, "pos")
					body[j] ^= 1 << rapid.IntRange(0, 7).Draw(t, "bit")
				}
			case 1:
				if len(body) > 0 {
					j := rapid.IntRange(0, len(body)-1).Draw(t, "pos")
					body[j] = rapid.SampledFrom([]byte{0, 1, 2, 0x7F, 0x80, 0xFF, 0x26, 0x0B, 0x23}).Draw(t, "val")
				}
			case 2:
				j := rapid.IntRange(0, len(body)).Draw(t, "pos")
				body = append(body[:j], append([]byte{rapid.Byte().Draw(t, "ins")}, body[j:]...)...)
			case 3:
				if len(body) > 0 {
					j := rapid.IntRange(0, len(body)-1).Draw(t, "pos")
					body = append(body[:j], body[j+1:]...)
				}
			case 4:
				body = body[:rapid.IntRange(0, len(body)).Draw(t, "trunc")]
			case 5:
				hdr = byte(h.Type)<<4 | rapid.ByteRange(0, 15).Draw(t, "flags")
			case 6:
				v ^= packet.V311 ^ packet.V5
			}
		}
		rtCheckDecode(t, hdr, body, v)
	})
}

// ---------------------------------------------------------------------------
// Encoder/decoder agreement: what AppendTo writes, Decode must accept.
// AppendTo "validates what it writes" (package documentation); each case
// below is a value AppendTo accepted although the bytes it wrote are
// rejected by Decode, i.e. a peer using this codec would close the
// connection with the reason code shown.
// ---------------------------------------------------------------------------

func TestEncodeAcceptsOnlyWhatDecodeAccepts(t *testing.T) {
	zeroProp := func(id packet.PropID) packet.Properties {
		var p packet.Properties
		p.Set(id)
		return p
	}
	cases := []struct {
		name string
		p    packet.Packet
		v    packet.Version
	}{
		// Property values the decoder rejects with Protocol Error.
		{"v5 CONNECT Receive Maximum 0 (Set)", &packet.Connect{ClientID: "c", Props: zeroProp(packet.PropReceiveMaximum)}, packet.V5},
		{"v5 CONNACK Maximum Packet Size 0 (Set)", &packet.Connack{Props: zeroProp(packet.PropMaximumPacketSize)}, packet.V5},
		{"v5 PUBLISH Topic Alias 0 (Set)", &packet.Publish{Topic: "t", Props: zeroProp(packet.PropTopicAlias)}, packet.V5},
		{"v5 CONNACK Maximum QoS 2", &packet.Connack{Props: packet.Properties{MaximumQoS: 2}}, packet.V5},
		{"v5 PUBLISH Payload Format Indicator 2", &packet.Publish{Topic: "t", Props: packet.Properties{PayloadFormat: 2}}, packet.V5},
		{"v5 CONNECT Request Problem Information 7", &packet.Connect{ClientID: "c", Props: packet.Properties{RequestProblemInfo: 7}}, packet.V5},
		// Reason codes the packet type does not allow.
		{"v5 PUBACK reason 0x02", &packet.Puback{PacketID: 1, ReasonCode: 0x02}, packet.V5},
		{"v5 DISCONNECT reason 0x01", &packet.Disconnect{ReasonCode: 0x01}, packet.V5},
		{"v5 AUTH reason 0x87", &packet.Auth{ReasonCode: packet.NotAuthorized}, packet.V5},
		{"v5 CONNACK reason 0x04", &packet.Connack{ReasonCode: 0x04}, packet.V5},
		{"v5 SUBACK reason 0x03", &packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{3}}, packet.V5},
		{"3.1.1 CONNACK return code 0x87", &packet.Connack{ReasonCode: packet.NotAuthorized}, packet.V311},
		{"3.1.1 SUBACK return code 0x87", &packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{packet.NotAuthorized}}, packet.V311},
		// Structural rules.
		{"v5 SUBACK without reason codes", &packet.Suback{PacketID: 1}, packet.V5},
		{"3.1.1 SUBACK without return codes", &packet.Suback{PacketID: 1}, packet.V311},
		{"v5 UNSUBACK without reason codes", &packet.Unsuback{PacketID: 1}, packet.V5},
		{"v5 SUBACK packet identifier 0", &packet.Suback{ReasonCodes: []packet.ReasonCode{0}}, packet.V5},
		{"v5 UNSUBACK packet identifier 0", &packet.Unsuback{ReasonCodes: []packet.ReasonCode{0}}, packet.V5},
		{"3.1.1 UNSUBACK packet identifier 0", &packet.Unsuback{}, packet.V311},
		{"3.1.1 PUBACK packet identifier 0", &packet.Puback{}, packet.V311},
		{"3.1.1 PUBREL packet identifier 0", &packet.Pubrel{}, packet.V311},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			enc, err := packet.Encode(c.p, c.v)
			if err != nil {
				return // refused: consistent
			}
			h, body := rtSplit(t, enc)
			if _, err := packet.Decode(h, body, c.v); err != nil {
				t.Errorf("AppendTo accepted it and wrote % x, which Decode rejects: %v", enc, err)
			}
		})
	}
}

// TestEncodeProtocolNameLength: AppendTo writes ProtocolName with a 16-bit
// length prefix without checking its length or UTF-8, so a long name
// produces a corrupt packet whose length prefix disagrees with its bytes.
func TestEncodeProtocolNameLength(t *testing.T) {
	for _, name := range []string{string(make([]byte, 65536+4)), "MQ\x00TT"} {
		c := &packet.Connect{ProtocolName: name, ClientID: "c"}
		enc, err := packet.Encode(c, packet.V5)
		if err != nil {
			continue
		}
		h, body := rtSplit(t, enc)
		_, err = packet.Decode(h, body, packet.V5)
		if packet.CodeOf(err) == packet.MalformedPacket {
			t.Errorf("ProtocolName of %d bytes: AppendTo wrote a Malformed Packet (%v) instead of refusing it", len(name), err)
		}
	}
}

// TestDecodeFixedHeaderTypeOutOfRange: Decode and FixedHeader.Validate
// take a caller-built FixedHeader; a Type above 15 must be an error, not an
// index-out-of-range panic.
func TestDecodeFixedHeaderTypeOutOfRange(t *testing.T) {
	for _, typ := range []packet.Type{16, 0x20, 0xFF} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("Decode(FixedHeader{Type: %d}) panicked: %v", typ, r)
				}
			}()
			_, err := packet.Decode(packet.FixedHeader{Type: typ}, nil, packet.V5)
			if err == nil {
				t.Errorf("Decode(FixedHeader{Type: %d}) succeeded", typ)
			}
		}()
	}
}
