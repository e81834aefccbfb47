// Package testpackets is a catalogue of MQTT control packets with their
// exact wire bytes, for table tests of the codec (package packet) and, over
// net.Pipe, of the broker.
//
// Every entry is written by hand in hexadecimal and checked by reasoning
// against the standard (MQTT 3.1.1 and 5.0), not produced by our encoder.
// Valid entries carry the packet the bytes decode to; malformed entries
// carry the reason code a receiver must answer with.
//
// Conventions:
//
//   - Expected Properties are built with props(), which marks every
//     property it holds as present (Properties.Set), exactly as decoding
//     does; so a decoded packet is reflect.DeepEqual to Entry.Packet. A
//     property sent with its zero value (Maximum QoS 0, Server Keep Alive
//     0, ...) is set explicitly with Set.
//   - Decoding aliases the body, never copies: an empty Payload, Password,
//     Correlation or Authentication Data that is present on the wire
//     decodes to an empty non-nil slice ([]byte{}), absent ones to nil.
//   - Spec lists the statements of MQTT 5.0 an entry exercises
//     ("MQTT-3.3.1-4"), sections of 5.0 without a numbered statement
//     ("§3.8.3.1"), and statements of 3.1.1 prefixed "3.1.1:".
//   - Canonical is set when the standard lets a sender use a shorter form
//     than Bytes (v5 acknowledgements, DISCONNECT and AUTH may omit a
//     Success reason code and an empty property list): it is what our
//     encoder, which always writes the shortest form, produces.
//   - Truncated entries end before the Remaining Length they declare: a
//     stream reader reports io.ErrUnexpectedEOF at end of stream (it waits
//     for more bytes otherwise); decoding the short body as a complete one
//     is a Malformed Packet (Code).
//
// All returns a fresh copy each call, so tests may modify what they get.
package testpackets

import (
	"bytes"
	"encoding/hex"
	"strings"

	"github.com/mqtt5go/mqtt5/packet"
)

// Entry is one catalogued packet.
type Entry struct {
	Name    string         // "v5/PUBLISH/qos1-all-properties"
	Version packet.Version // protocol version the bytes are read with
	Bytes   []byte         // exact wire bytes, fixed header included
	// Packet is the decoded value; nil for a malformed entry.
	Packet packet.Packet
	// Code is the reason code decoding must fail with; 0 for a valid entry.
	Code packet.ReasonCode
	// Spec lists the statements the entry exercises.
	Spec []string
	// Canonical is the shortest encoding of Packet when it differs from
	// Bytes; nil means Bytes is canonical.
	Canonical []byte
	// Truncated marks bytes that end before the declared Remaining Length.
	Truncated bool
}

// Valid reports whether the entry is a valid packet.
func (e *Entry) Valid() bool { return e.Packet != nil }

// Encoded returns the bytes the encoder writes for Packet: Canonical if
// set, else Bytes.
func (e *Entry) Encoded() []byte {
	if e.Canonical != nil {
		return e.Canonical
	}
	return e.Bytes
}

// All returns every entry (valid and malformed, both versions).
func All() []Entry {
	b := &builder{}
	b.v311Valid()
	b.v5Valid()
	b.malformedBoth()
	b.v311Malformed()
	b.v5Malformed()
	return b.entries
}

// Valid returns the valid entries for version v.
func Valid(v packet.Version) []Entry { return filter(v, true) }

// Malformed returns the malformed entries for version v.
func Malformed(v packet.Version) []Entry { return filter(v, false) }

// Find returns the entry with the given name, or nil.
func Find(name string) *Entry {
	for _, e := range All() {
		if e.Name == name {
			return &e
		}
	}
	return nil
}

func filter(v packet.Version, valid bool) []Entry {
	var out []Entry
	for _, e := range All() {
		if e.Version == v && e.Valid() == valid {
			out = append(out, e)
		}
	}
	return out
}

// hx parses hexadecimal bytes written by hand: whitespace and '|' separate
// fields, '#' starts a comment running to the end of the line.
func hx(s string) []byte {
	var sb strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, r := range line {
			if r != ' ' && r != '\t' && r != '|' && r != '\r' {
				sb.WriteRune(r)
			}
		}
	}
	out, err := hex.DecodeString(sb.String())
	if err != nil {
		panic("testpackets: bad hex " + s + ": " + err.Error())
	}
	return out
}

// allProps lists every property identifier.
var allProps = []packet.PropID{
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

// props builds Properties with f and marks every property it holds as
// present, as decoding does.
func props(f func(p *packet.Properties)) packet.Properties {
	var p packet.Properties
	f(&p)
	return Mark(p)
}

// Mark returns p with every property that Has reports marked present
// (Properties.Set), the state decoding leaves a property in. Comparing a
// decoded packet with one built by hand needs it.
func Mark(p packet.Properties) packet.Properties {
	for _, id := range allProps {
		if p.Has(id) {
			p.Set(id)
		}
	}
	return p
}

var kv = []packet.UserProperty{{Key: "k", Value: "v"}}

func user(pairs ...string) []packet.UserProperty {
	var u []packet.UserProperty
	for i := 0; i+1 < len(pairs); i += 2 {
		u = append(u, packet.UserProperty{Key: pairs[i], Value: pairs[i+1]})
	}
	return u
}

type builder struct{ entries []Entry }

func prefix(v packet.Version) string {
	if v == packet.V5 {
		return "v5/"
	}
	return "v311/"
}

func (b *builder) add(e Entry) { b.entries = append(b.entries, e) }

// ok adds a valid entry whose bytes are canonical.
func (b *builder) ok(v packet.Version, name, h string, p packet.Packet, spec ...string) {
	b.add(Entry{Name: prefix(v) + name, Version: v, Bytes: hx(h), Packet: p, Spec: spec})
}

// short adds a valid entry whose canonical encoding is shorter.
func (b *builder) short(v packet.Version, name, h, canonical string, p packet.Packet, spec ...string) {
	b.add(Entry{Name: prefix(v) + name, Version: v, Bytes: hx(h), Canonical: hx(canonical), Packet: p, Spec: spec})
}

func (b *builder) bad(v packet.Version, name, h string, code packet.ReasonCode, spec ...string) {
	b.add(Entry{Name: prefix(v) + name, Version: v, Bytes: hx(h), Code: code, Spec: spec})
}

func (b *builder) badBoth(name, h string, code packet.ReasonCode, spec ...string) {
	b.bad(packet.V311, name, h, code, spec...)
	b.bad(packet.V5, name, h, code, spec...)
}

func (b *builder) cutBoth(name, h string, spec ...string) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		b.add(Entry{Name: prefix(v) + name, Version: v, Bytes: hx(h), Code: packet.MalformedPacket, Spec: spec, Truncated: true})
	}
}

const (
	v3  = packet.V311
	v5  = packet.V5
	mal = packet.MalformedPacket
	pro = packet.ProtocolError
	upv = packet.UnsupportedProtocolVersion
)

func (b *builder) v311Valid() {
	// ---- CONNECT ----
	b.ok(v3, "CONNECT/minimal", `
		10 0e              # CONNECT, remaining 14
		00 04 4d 51 54 54  # "MQTT"
		04                 # level 4
		02                 # flags: clean session
		00 3c              # keep alive 60
		00 02 63 31        # client id "c1"`,
		&packet.Connect{ProtocolName: "MQTT", Version: v3, CleanStart: true, KeepAlive: 60, ClientID: "c1"},
		"MQTT-3.1.2-1", "MQTT-3.1.3-3", "MQTT-3.1.3-4")
	b.ok(v3, "CONNECT/empty-client-id-keep-alive-0", `
		10 0c | 00 04 4d 51 54 54 | 04 | 02 | 00 00 | 00 00`,
		&packet.Connect{ProtocolName: "MQTT", Version: v3, CleanStart: true},
		"MQTT-3.1.3-6")
	b.ok(v3, "CONNECT/will-qos1-retain-username-password", `
		10 22                   # remaining 34
		00 04 4d 51 54 54 04    # "MQTT" level 4
		ee                      # user, password, will retain, will QoS 1, will, clean
		00 0a                   # keep alive 10
		00 02 63 31             # client id "c1"
		00 01 77                # will topic "w"
		00 03 62 79 65          # will payload "bye"
		00 04 75 73 65 72       # user name "user"
		00 04 70 61 73 73       # password "pass"`,
		&packet.Connect{ProtocolName: "MQTT", Version: v3, CleanStart: true, KeepAlive: 10, ClientID: "c1",
			Will:     &packet.Will{QoS: 1, Retain: true, Topic: "w", Payload: []byte("bye")},
			Username: "user", UsernameFlag: true, Password: []byte("pass")},
		"MQTT-3.1.2-9", "MQTT-3.1.2-12", "MQTT-3.1.2-15", "MQTT-3.1.2-17", "MQTT-3.1.2-19", "MQTT-3.1.3-1")
	b.ok(v3, "CONNECT/will-qos2-empty-payload-username", `
		10 16 | 00 04 4d 51 54 54 04
		94                      # user, will QoS 2, will; no clean session
		00 3c | 00 02 63 31
		00 01 77                # will topic "w"
		00 00                   # empty will payload
		00 01 75                # user name "u"`,
		&packet.Connect{ProtocolName: "MQTT", Version: v3, KeepAlive: 60, ClientID: "c1",
			Will:     &packet.Will{QoS: 2, Topic: "w", Payload: []byte{}},
			Username: "u", UsernameFlag: true},
		"MQTT-3.1.2-12", "MQTT-3.1.2-14", "MQTT-3.1.2-16")
	b.ok(v3, "CONNECT/empty-username-and-password", `
		10 12 | 00 04 4d 51 54 54 04 | c2 | 00 3c | 00 02 63 31
		00 00                   # empty user name
		00 00                   # empty password`,
		&packet.Connect{ProtocolName: "MQTT", Version: v3, CleanStart: true, KeepAlive: 60, ClientID: "c1",
			UsernameFlag: true, Password: []byte{}},
		"MQTT-3.1.2-17", "MQTT-3.1.2-19")

	// ---- CONNACK ----
	b.ok(v3, "CONNACK/accepted", `20 02 00 00`, &packet.Connack{}, "MQTT-3.2.2-1")
	b.ok(v3, "CONNACK/session-present", `20 02 01 00`, &packet.Connack{SessionPresent: true}, "MQTT-3.2.2-3")
	b.ok(v3, "CONNACK/not-authorized", `20 02 00 05`, &packet.Connack{ReasonCode: packet.V3NotAuthorized})
	b.ok(v3, "CONNACK/unacceptable-protocol-version", `20 02 00 01`,
		&packet.Connack{ReasonCode: packet.V3UnacceptableProtocolVersion})

	// ---- PUBLISH ----
	b.ok(v3, "PUBLISH/qos0", `30 07 | 00 03 61 2f 62 | 68 69`,
		&packet.Publish{Topic: "a/b", Payload: []byte("hi")}, "MQTT-2.2.1-2", "MQTT-3.3.2-1")
	b.ok(v3, "PUBLISH/qos0-retain-empty-payload", `31 05 | 00 03 61 2f 62`,
		&packet.Publish{Retain: true, Topic: "a/b", Payload: []byte{}}, "MQTT-3.3.1-6")
	b.ok(v3, "PUBLISH/qos1-dup", `3a 09 | 00 03 61 2f 62 | 00 07 | 68 69`,
		&packet.Publish{Dup: true, QoS: 1, Topic: "a/b", PacketID: 7, Payload: []byte("hi")}, "MQTT-3.3.1-1")
	b.ok(v3, "PUBLISH/qos2-retain-id-65535", `35 09 | 00 03 61 2f 62 | ff ff | 68 69`,
		&packet.Publish{QoS: 2, Retain: true, Topic: "a/b", PacketID: 65535, Payload: []byte("hi")})
	b.ok(v3, "PUBLISH/bom-kept", `30 06 | 00 04 ef bb bf 61`,
		&packet.Publish{Topic: "\ufeffa", Payload: []byte{}}, "MQTT-1.5.4-3")
	b.ok(v3, "PUBLISH/multibyte-topic", `30 08 | 00 06 c3 bc 2f e2 82 ac`,
		&packet.Publish{Topic: "ü/€", Payload: []byte{}}, "MQTT-1.5.4-1")
	b.add(Entry{Name: "v311/PUBLISH/two-byte-remaining-length", Version: v3,
		Bytes:  append(hx(`30 cb 01 | 00 01 74`), bytes.Repeat([]byte{'x'}, 200)...), // 203 = 0x4b + 1*128
		Packet: &packet.Publish{Topic: "t", Payload: bytes.Repeat([]byte{'x'}, 200)}, Spec: []string{"MQTT-1.5.5-1"}})

	// ---- PUBACK, PUBREC, PUBREL, PUBCOMP ----
	b.ok(v3, "PUBACK/id-1", `40 02 00 01`, &packet.Puback{PacketID: 1}, "MQTT-2.2.1-5")
	b.ok(v3, "PUBACK/id-65535", `40 02 ff ff`, &packet.Puback{PacketID: 65535})
	b.ok(v3, "PUBREC/id-2", `50 02 00 02`, &packet.Pubrec{PacketID: 2})
	b.ok(v3, "PUBREL/id-3", `62 02 00 03`, &packet.Pubrel{PacketID: 3}, "MQTT-3.6.1-1")
	b.ok(v3, "PUBCOMP/id-4", `70 02 00 04`, &packet.Pubcomp{PacketID: 4})
	b.ok(v3, "PUBREC/id-258", `50 02 01 02`, &packet.Pubrec{PacketID: 258})
	b.ok(v3, "PUBREL/id-32768", `62 02 80 00`, &packet.Pubrel{PacketID: 32768})
	b.ok(v3, "PUBCOMP/id-65535", `70 02 ff ff`, &packet.Pubcomp{PacketID: 65535})

	// ---- SUBSCRIBE, SUBACK ----
	b.ok(v3, "SUBSCRIBE/one-filter", `82 08 | 00 0a | 00 03 61 2f 23 | 01`,
		&packet.Subscribe{PacketID: 10, Subscriptions: []packet.Subscription{{Filter: "a/#", QoS: 1}}},
		"MQTT-3.8.1-1", "MQTT-3.8.3-1")
	b.ok(v3, "SUBSCRIBE/three-filters", `
		82 15 | 00 0b
		00 03 61 2f 2b | 00           # "a/+" QoS 0
		00 01 62 | 02                 # "b" QoS 2
		00 06 24 53 59 53 2f 23 | 01  # "$SYS/#" QoS 1`,
		&packet.Subscribe{PacketID: 11, Subscriptions: []packet.Subscription{
			{Filter: "a/+"}, {Filter: "b", QoS: 2}, {Filter: "$SYS/#", QoS: 1}}},
		"MQTT-3.8.4-5")
	b.ok(v3, "SUBACK/granted-qos1", `90 03 00 0a 01`,
		&packet.Suback{PacketID: 10, ReasonCodes: []packet.ReasonCode{1}}, "MQTT-3.8.4-2")
	b.ok(v3, "SUBACK/mixed-with-failure", `90 05 00 0b | 00 02 80`,
		&packet.Suback{PacketID: 11, ReasonCodes: []packet.ReasonCode{0, 2, packet.V3SubackFailure}},
		"MQTT-3.9.3-1")

	// ---- UNSUBSCRIBE, UNSUBACK ----
	b.ok(v3, "UNSUBSCRIBE/one-filter", `a2 05 | 00 0c | 00 01 61`,
		&packet.Unsubscribe{PacketID: 12, Filters: []string{"a"}}, "MQTT-3.10.1-1")
	b.ok(v3, "UNSUBSCRIBE/two-filters", `a2 0a | 00 0d | 00 01 61 | 00 03 61 2f 62`,
		&packet.Unsubscribe{PacketID: 13, Filters: []string{"a", "a/b"}}, "MQTT-3.10.3-1")
	b.ok(v3, "UNSUBACK/id-12", `b0 02 00 0c`, &packet.Unsuback{PacketID: 12}, "MQTT-3.10.4-5")
	b.ok(v3, "UNSUBACK/id-65535", `b0 02 ff ff`, &packet.Unsuback{PacketID: 65535})

	// ---- PINGREQ, PINGRESP, DISCONNECT ----
	b.ok(v3, "PINGREQ", `c0 00`, &packet.Pingreq{})
	b.ok(v3, "PINGRESP", `d0 00`, &packet.Pingresp{})
	b.ok(v3, "DISCONNECT", `e0 00`, &packet.Disconnect{})
}

func (b *builder) v5Valid() {
	// ---- CONNECT ----
	b.ok(v5, "CONNECT/minimal", `
		10 0f | 00 04 4d 51 54 54 | 05 | 02 | 00 3c
		00                      # property length 0
		00 02 63 31`,
		&packet.Connect{ProtocolName: "MQTT", Version: v5, CleanStart: true, KeepAlive: 60, ClientID: "c1"},
		"MQTT-2.2.2-1", "MQTT-3.1.2-1")
	b.ok(v5, "CONNECT/all-properties", `
		10 43 | 00 04 4d 51 54 54 | 05
		c2                      # user, password, clean start
		00 1e                   # keep alive 30
		28                      # property length 40
		11 00 00 00 78          # session expiry 120
		15 00 05 53 43 52 41 4d # authentication method "SCRAM"
		16 00 02 01 02          # authentication data 01 02
		17 00                   # request problem information 0
		19 01                   # request response information 1
		21 00 14                # receive maximum 20
		22 00 0a                # topic alias maximum 10
		26 00 01 6b 00 01 76    # user property k=v
		27 00 00 10 00          # maximum packet size 4096
		00 02 63 31             # client id "c1"
		00 04 75 73 65 72       # "user"
		00 04 70 61 73 73       # "pass"`,
		&packet.Connect{ProtocolName: "MQTT", Version: v5, CleanStart: true, KeepAlive: 30, ClientID: "c1",
			Props: props(func(p *packet.Properties) {
				p.SessionExpiry = 120
				p.AuthMethod = "SCRAM"
				p.AuthData = []byte{1, 2}
				p.Set(packet.PropRequestProblemInfo)
				p.RequestResponseInfo = 1
				p.ReceiveMaximum = 20
				p.TopicAliasMaximum = 10
				p.User = kv
				p.MaximumPacketSize = 4096
			}),
			Username: "user", UsernameFlag: true, Password: []byte("pass")},
		"MQTT-3.1.2-23", "MQTT-3.1.2-28", "MQTT-3.1.2-29", "MQTT-3.1.2-30")
	b.ok(v5, "CONNECT/will-all-properties", `
		10 3b | 00 04 4d 51 54 54 | 05
		36                      # will retain, will QoS 2, will, clean start
		00 3c | 00
		00 02 63 31             # client id "c1"
		23                      # will property length 35
		01 01                   # payload format indicator 1
		02 00 00 00 3c          # message expiry 60
		03 00 04 74 65 78 74    # content type "text"
		08 00 01 72             # response topic "r"
		09 00 02 ab cd          # correlation data ab cd
		18 00 00 00 05          # will delay 5
		26 00 01 6b 00 01 76    # user property k=v
		00 01 77                # will topic "w"
		00 03 62 79 65          # will payload "bye"`,
		&packet.Connect{ProtocolName: "MQTT", Version: v5, CleanStart: true, KeepAlive: 60, ClientID: "c1",
			Will: &packet.Will{QoS: 2, Retain: true, Topic: "w", Payload: []byte("bye"),
				Props: props(func(p *packet.Properties) {
					p.PayloadFormat = 1
					p.MessageExpiry = 60
					p.ContentType = "text"
					p.ResponseTopic = "r"
					p.CorrelationData = []byte{0xab, 0xcd}
					p.WillDelay = 5
					p.User = kv
				})}},
		"MQTT-3.1.2-9", "MQTT-3.1.2-15", "MQTT-3.1.3-1", "MQTT-3.1.3-11")
	b.ok(v5, "CONNECT/password-without-username-will-delay-0", `
		10 1e | 00 04 4d 51 54 54 | 05
		44                      # password, will (QoS 0); no clean start
		00 00 | 00 | 00 02 63 31
		05 18 00 00 00 00       # will properties: will delay 0
		00 01 77 | 00 00        # will topic "w", empty will payload
		00 02 70 77             # password "pw"`,
		&packet.Connect{ProtocolName: "MQTT", Version: v5, ClientID: "c1",
			Will: &packet.Will{Topic: "w", Payload: []byte{},
				Props: props(func(p *packet.Properties) { p.Set(packet.PropWillDelay) })},
			Password: []byte("pw")},
		"MQTT-3.1.2-16", "MQTT-3.1.2-19")
	b.ok(v5, "CONNECT/user-properties-order-and-duplicates", `
		10 23 | 00 04 4d 51 54 54 | 05 | 02 | 00 3c
		14                      # property length 20
		26 00 01 61 00 01 31    # a=1
		26 00 01 61 00 01 31    # a=1 again
		26 00 01 62 00 00       # b=""
		00 02 63 31`,
		&packet.Connect{ProtocolName: "MQTT", Version: v5, CleanStart: true, KeepAlive: 60, ClientID: "c1",
			Props: props(func(p *packet.Properties) { p.User = user("a", "1", "a", "1", "b", "") })},
		"MQTT-1.5.7-1", "MQTT-3.1.3-10")

	// ---- CONNACK ----
	b.ok(v5, "CONNACK/minimal", `20 03 00 00 00`, &packet.Connack{}, "MQTT-2.2.2-1", "MQTT-3.2.2-1")
	b.ok(v5, "CONNACK/all-properties", `
		20 41 | 01 | 00
		3e                      # property length 62
		11 ff ff ff ff          # session expiry: never
		12 00 03 61 62 63       # assigned client id "abc"
		13 00 00                # server keep alive 0
		15 00 01 58             # authentication method "X"
		16 00 00                # authentication data, empty
		1a 00 01 69             # response information "i"
		1c 00 01 73             # server reference "s"
		1f 00 02 6f 6b          # reason string "ok"
		21 ff ff                # receive maximum 65535
		22 00 00                # topic alias maximum 0
		24 00                   # maximum QoS 0
		25 00                   # retain available 0
		26 00 01 6b 00 01 76    # k=v
		27 00 01 00 00          # maximum packet size 65536
		28 00                   # wildcard subscription available 0
		29 00                   # subscription identifiers available 0
		2a 01                   # shared subscription available 1`,
		&packet.Connack{SessionPresent: true, Props: props(func(p *packet.Properties) {
			p.SessionExpiry = 0xFFFFFFFF
			p.AssignedClientID = "abc"
			p.Set(packet.PropServerKeepAlive)
			p.AuthMethod = "X"
			p.AuthData = []byte{}
			p.ResponseInfo = "i"
			p.ServerReference = "s"
			p.ReasonString = "ok"
			p.ReceiveMaximum = 65535
			p.Set(packet.PropTopicAliasMaximum)
			p.Set(packet.PropMaximumQoS)
			p.Set(packet.PropRetainAvailable)
			p.User = kv
			p.MaximumPacketSize = 65536
			p.Set(packet.PropWildcardSubAvailable)
			p.Set(packet.PropSubIDAvailable)
			p.SharedSubAvailable = 1
		})},
		"MQTT-3.2.2-3", "MQTT-3.2.2-9", "MQTT-3.2.2-16", "MQTT-3.2.2-21")
	b.ok(v5, "CONNACK/not-authorized", `20 03 00 87 00`,
		&packet.Connack{ReasonCode: packet.NotAuthorized}, "MQTT-3.2.2-6", "MQTT-3.2.2-8")
	b.ok(v5, "CONNACK/use-another-server", `20 08 | 00 9c | 05 | 1c 00 02 68 32`,
		&packet.Connack{ReasonCode: packet.UseAnotherServer,
			Props: props(func(p *packet.Properties) { p.ServerReference = "h2" })}, "MQTT-3.2.2-8")

	// ---- PUBLISH ----
	b.ok(v5, "PUBLISH/qos0-minimal", `30 08 | 00 03 61 2f 62 | 00 | 68 69`,
		&packet.Publish{Topic: "a/b", Payload: []byte("hi")}, "MQTT-2.2.2-1", "MQTT-3.3.2-1")
	b.ok(v5, "PUBLISH/qos1-all-properties", `
		32 3c | 00 03 61 2f 62 | 00 01
		32                      # property length 50
		01 01                   # payload format indicator 1
		02 00 00 0e 10          # message expiry 3600
		03 00 04 6a 73 6f 6e    # content type "json"
		08 00 05 72 65 70 6c 79 # response topic "reply"
		09 00 03 01 02 03       # correlation data
		0b 05                   # subscription identifier 5
		0b 80 01                # subscription identifier 128
		23 00 03                # topic alias 3
		26 00 01 61 00 01 31    # a=1
		26 00 01 61 00 01 32    # a=2
		68 69`,
		&packet.Publish{QoS: 1, Topic: "a/b", PacketID: 1, Payload: []byte("hi"),
			Props: props(func(p *packet.Properties) {
				p.PayloadFormat = 1
				p.MessageExpiry = 3600
				p.ContentType = "json"
				p.ResponseTopic = "reply"
				p.CorrelationData = []byte{1, 2, 3}
				p.SubscriptionIDs = []uint32{5, 128}
				p.TopicAlias = 3
				p.User = user("a", "1", "a", "2")
			})},
		"MQTT-3.3.2-4", "MQTT-3.3.2-13", "MQTT-3.3.2-17", "MQTT-3.3.2-18", "MQTT-3.3.2-19", "MQTT-3.3.4-4")
	b.ok(v5, "PUBLISH/qos2-empty-topic-with-alias-payload-format-0", `
		34 0a | 00 00 | 00 02
		05 | 01 00 | 23 00 01   # payload format 0, topic alias 1`,
		&packet.Publish{QoS: 2, PacketID: 2, Payload: []byte{},
			Props: props(func(p *packet.Properties) {
				p.Set(packet.PropPayloadFormat)
				p.TopicAlias = 1
			})},
		"MQTT-3.3.2-12")
	b.ok(v5, "PUBLISH/retain-message-expiry-0", `31 0a | 00 01 74 | 05 | 02 00 00 00 00 | 78`,
		&packet.Publish{Retain: true, Topic: "t", Payload: []byte("x"),
			Props: props(func(p *packet.Properties) { p.Set(packet.PropMessageExpiry) })},
		"MQTT-3.3.1-5")
	b.ok(v5, "PUBLISH/subscription-id-max", `30 0a | 00 01 74 | 05 | 0b ff ff ff 7f | 78`,
		&packet.Publish{Topic: "t", Payload: []byte("x"),
			Props: props(func(p *packet.Properties) { p.SubscriptionIDs = []uint32{268435455} })},
		"MQTT-1.5.5-1")
	b.add(Entry{Name: "v5/PUBLISH/two-byte-remaining-length", Version: v5,
		Bytes:  append(hx(`30 b0 02 | 00 01 74 | 00`), bytes.Repeat([]byte{'x'}, 300)...), // 304 = 0x30 + 2*128
		Packet: &packet.Publish{Topic: "t", Payload: bytes.Repeat([]byte{'x'}, 300)}, Spec: []string{"MQTT-1.5.5-1"}})

	// ---- PUBACK, PUBREC, PUBREL, PUBCOMP ----
	b.ok(v5, "PUBACK/remaining-2", `40 02 00 01`, &packet.Puback{PacketID: 1}, "MQTT-3.4.2-1")
	b.ok(v5, "PUBACK/remaining-3-no-matching-subscribers", `40 03 00 01 10`,
		&packet.Puback{PacketID: 1, ReasonCode: packet.NoMatchingSubscribers}, "MQTT-3.4.2-1")
	b.short(v5, "PUBACK/remaining-3-success", `40 03 00 01 00`, `40 02 00 01`,
		&packet.Puback{PacketID: 1}, "MQTT-3.4.2-1")
	b.short(v5, "PUBACK/remaining-4-property-length-0", `40 04 00 01 87 00`, `40 03 00 01 87`,
		&packet.Puback{PacketID: 1, ReasonCode: packet.NotAuthorized}, "MQTT-3.4.2-1")
	b.ok(v5, "PUBACK/reason-string-user-property", `
		40 0f | 00 01 | 80 | 0b | 1f 00 01 65 | 26 00 01 6b 00 01 76`,
		&packet.Puback{PacketID: 1, ReasonCode: packet.UnspecifiedError,
			Props: props(func(p *packet.Properties) { p.ReasonString = "e"; p.User = kv })},
		"MQTT-3.4.2-2", "MQTT-3.4.2-3")
	b.ok(v5, "PUBACK/success-with-reason-string", `40 08 | 00 05 | 00 | 04 | 1f 00 01 65`,
		&packet.Puback{PacketID: 5, Props: props(func(p *packet.Properties) { p.ReasonString = "e" })})
	b.ok(v5, "PUBREC/remaining-2", `50 02 00 02`, &packet.Pubrec{PacketID: 2})
	b.ok(v5, "PUBREC/packet-id-in-use", `50 03 00 02 91`,
		&packet.Pubrec{PacketID: 2, ReasonCode: packet.PacketIdentifierInUse}, "MQTT-3.5.2-1")
	b.ok(v5, "PUBREC/reason-string", `50 0a | 00 02 | 00 | 06 | 1f 00 03 61 62 63`,
		&packet.Pubrec{PacketID: 2, Props: props(func(p *packet.Properties) { p.ReasonString = "abc" })},
		"MQTT-3.5.2-2")
	b.ok(v5, "PUBREL/remaining-2", `62 02 00 03`, &packet.Pubrel{PacketID: 3}, "MQTT-3.6.1-1")
	b.ok(v5, "PUBREL/packet-id-not-found", `62 03 00 03 92`,
		&packet.Pubrel{PacketID: 3, ReasonCode: packet.PacketIdentifierNotFound}, "MQTT-3.6.2-1")
	b.short(v5, "PUBREL/remaining-4-property-length-0", `62 04 00 03 92 00`, `62 03 00 03 92`,
		&packet.Pubrel{PacketID: 3, ReasonCode: packet.PacketIdentifierNotFound}, "MQTT-3.6.2-1")
	b.ok(v5, "PUBCOMP/remaining-2", `70 02 00 04`, &packet.Pubcomp{PacketID: 4})
	b.ok(v5, "PUBCOMP/packet-id-not-found", `70 03 00 04 92`,
		&packet.Pubcomp{PacketID: 4, ReasonCode: packet.PacketIdentifierNotFound}, "MQTT-3.7.2-1")
	b.ok(v5, "PUBCOMP/user-property", `70 0b | 00 04 | 00 | 07 | 26 00 01 6b 00 01 76`,
		&packet.Pubcomp{PacketID: 4, Props: props(func(p *packet.Properties) { p.User = kv })}, "MQTT-3.7.2-3")

	// ---- SUBSCRIBE, SUBACK ----
	b.ok(v5, "SUBSCRIBE/minimal", `82 09 | 00 01 | 00 | 00 03 61 2f 62 | 00`,
		&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a/b"}}},
		"MQTT-3.8.1-1", "MQTT-3.8.3-1")
	b.ok(v5, "SUBSCRIBE/options-subscription-id-user-property", `
		82 23 | 00 02
		09 | 0b 0a | 26 00 01 6b 00 01 76  # subscription id 10, k=v
		00 03 61 2f 23 | 1d                # "a/#": QoS 1, no local, retain as published, retain handling 1
		00 0a 24 73 68 61 72 65 2f 67 2f 74 | 22  # "$share/g/t": QoS 2, retain handling 2
		00 01 78 | 00                      # "x": QoS 0`,
		&packet.Subscribe{PacketID: 2,
			Props: props(func(p *packet.Properties) { p.SubscriptionIDs = []uint32{10}; p.User = kv }),
			Subscriptions: []packet.Subscription{
				{Filter: "a/#", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 1},
				{Filter: "$share/g/t", QoS: 2, RetainHandling: 2},
				{Filter: "x"},
			}},
		"MQTT-3.8.3-3", "MQTT-3.3.1-10", "MQTT-3.3.1-11", "MQTT-3.3.1-13")
	b.ok(v5, "SUBSCRIBE/subscription-id-max", `82 0c | 00 03 | 05 | 0b ff ff ff 7f | 00 01 74 | 00`,
		&packet.Subscribe{PacketID: 3,
			Props:         props(func(p *packet.Properties) { p.SubscriptionIDs = []uint32{268435455} }),
			Subscriptions: []packet.Subscription{{Filter: "t"}}},
		"MQTT-1.5.5-1")
	b.ok(v5, "SUBACK/one", `90 04 | 00 01 | 00 | 00`,
		&packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{packet.GrantedQoS0}}, "MQTT-3.8.4-6")
	b.ok(v5, "SUBACK/mixed-with-reason-string", `90 0a | 00 02 | 04 | 1f 00 01 65 | 01 87 a2`,
		&packet.Suback{PacketID: 2, Props: props(func(p *packet.Properties) { p.ReasonString = "e" }),
			ReasonCodes: []packet.ReasonCode{packet.GrantedQoS1, packet.NotAuthorized, packet.WildcardSubscriptionsNotSupported}},
		"MQTT-3.9.3-1", "MQTT-3.9.3-2", "MQTT-3.9.2-1")

	// ---- UNSUBSCRIBE, UNSUBACK ----
	b.ok(v5, "UNSUBSCRIBE/one", `a2 06 | 00 01 | 00 | 00 01 61`,
		&packet.Unsubscribe{PacketID: 1, Filters: []string{"a"}}, "MQTT-3.10.1-1")
	b.ok(v5, "UNSUBSCRIBE/user-property-two-filters", `
		a2 12 | 00 02 | 07 | 26 00 01 6b 00 01 76 | 00 01 61 | 00 03 61 2f 62`,
		&packet.Unsubscribe{PacketID: 2, Props: props(func(p *packet.Properties) { p.User = kv }),
			Filters: []string{"a", "a/b"}}, "MQTT-3.10.3-1")
	b.ok(v5, "UNSUBACK/one", `b0 04 | 00 01 | 00 | 00`,
		&packet.Unsuback{PacketID: 1, ReasonCodes: []packet.ReasonCode{packet.Success}}, "MQTT-3.11.3-2")
	b.ok(v5, "UNSUBACK/mixed", `b0 06 | 00 02 | 00 | 11 00 87`,
		&packet.Unsuback{PacketID: 2, ReasonCodes: []packet.ReasonCode{
			packet.NoSubscriptionExisted, packet.Success, packet.NotAuthorized}}, "MQTT-3.11.3-1")
	b.ok(v5, "UNSUBACK/reason-string", `b0 08 | 00 03 | 04 | 1f 00 01 65 | 8f`,
		&packet.Unsuback{PacketID: 3, Props: props(func(p *packet.Properties) { p.ReasonString = "e" }),
			ReasonCodes: []packet.ReasonCode{packet.TopicFilterInvalid}}, "MQTT-3.11.2-1")

	// ---- PINGREQ, PINGRESP ----
	b.ok(v5, "PINGREQ", `c0 00`, &packet.Pingreq{}, "MQTT-3.12.4-1")
	b.ok(v5, "PINGRESP", `d0 00`, &packet.Pingresp{})

	// ---- DISCONNECT ----
	b.ok(v5, "DISCONNECT/remaining-0", `e0 00`, &packet.Disconnect{}, "MQTT-3.14.2-1")
	b.ok(v5, "DISCONNECT/with-will", `e0 01 04`,
		&packet.Disconnect{ReasonCode: packet.DisconnectWithWillMessage}, "MQTT-3.14.2-1")
	b.ok(v5, "DISCONNECT/session-taken-over", `e0 01 8e`,
		&packet.Disconnect{ReasonCode: packet.SessionTakenOver}, "MQTT-3.1.4-3")
	b.short(v5, "DISCONNECT/remaining-1-success", `e0 01 00`, `e0 00`, &packet.Disconnect{})
	b.short(v5, "DISCONNECT/remaining-2-property-length-0", `e0 02 00 00`, `e0 00`, &packet.Disconnect{})
	b.ok(v5, "DISCONNECT/all-properties", `
		e0 16 | 9c | 14
		11 00 00 00 00          # session expiry 0
		1c 00 01 73             # server reference "s"
		1f 00 01 65             # reason string "e"
		26 00 01 6b 00 01 76`,
		&packet.Disconnect{ReasonCode: packet.UseAnotherServer, Props: props(func(p *packet.Properties) {
			p.Set(packet.PropSessionExpiry)
			p.ServerReference = "s"
			p.ReasonString = "e"
			p.User = kv
		})}, "MQTT-3.14.2-3", "MQTT-3.14.2-4")

	// ---- AUTH ----
	b.ok(v5, "AUTH/remaining-0", `f0 00`, &packet.Auth{}, "MQTT-3.15.2-1")
	b.ok(v5, "AUTH/continue", `
		f0 0f | 18 | 0d
		15 00 05 53 43 52 41 4d # authentication method "SCRAM"
		16 00 02 01 02          # authentication data`,
		&packet.Auth{ReasonCode: packet.ContinueAuthentication, Props: props(func(p *packet.Properties) {
			p.AuthMethod = "SCRAM"
			p.AuthData = []byte{1, 2}
		})}, "MQTT-3.15.2-1")
	b.ok(v5, "AUTH/re-authenticate-reason-string-user", `
		f0 11 | 19 | 0f | 15 00 01 58 | 1f 00 01 65 | 26 00 01 6b 00 01 76`,
		&packet.Auth{ReasonCode: packet.ReAuthenticate, Props: props(func(p *packet.Properties) {
			p.AuthMethod = "X"
			p.ReasonString = "e"
			p.User = kv
		})}, "MQTT-3.15.2-2", "MQTT-3.15.2-3")
	b.short(v5, "AUTH/remaining-1-success", `f0 01 00`, `f0 00`, &packet.Auth{})
	b.short(v5, "AUTH/remaining-2-property-length-0", `f0 02 00 00`, `f0 00`, &packet.Auth{})
}

// malformedBoth adds entries that are malformed in both versions with the
// same bytes: the fixed header is wrong, so the body is never looked at.
func (b *builder) malformedBoth() {
	// Reserved fixed-header flags and the reserved type.
	flags := []struct{ name, h string }{
		{"CONNECT/flags-2", `12 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 63 31`},
		{"CONNACK/flags-1", `21 02 00 00`},
		{"PUBACK/flags-2", `42 02 00 01`},
		{"PUBREC/flags-1", `51 02 00 01`},
		{"PUBREL/flags-0", `60 02 00 01`},
		{"PUBREL/flags-3", `63 02 00 01`},
		{"PUBCOMP/flags-8", `78 02 00 01`},
		{"SUBSCRIBE/flags-0", `80 06 00 01 00 01 61 00`},
		{"SUBSCRIBE/flags-a", `8a 06 00 01 00 01 61 00`},
		{"SUBACK/flags-2", `92 03 00 01 00`},
		{"UNSUBSCRIBE/flags-0", `a0 05 00 01 00 01 61`},
		{"UNSUBSCRIBE/flags-3", `a3 05 00 01 00 01 61`},
		{"UNSUBACK/flags-4", `b4 02 00 01`},
		{"PINGREQ/flags-1", `c1 00`},
		{"PINGRESP/flags-f", `df 00`},
		{"DISCONNECT/flags-2", `e2 00`},
		{"reserved-type-0", `00 00`},
		{"reserved-type-0-flags-f", `0f 00`},
	}
	for _, f := range flags {
		spec := []string{"MQTT-2.1.3-1"}
		switch {
		case strings.HasPrefix(f.name, "PUBREL"):
			spec = append(spec, "MQTT-3.6.1-1")
		case strings.HasPrefix(f.name, "SUBSCRIBE"):
			spec = append(spec, "MQTT-3.8.1-1")
		case strings.HasPrefix(f.name, "UNSUBSCRIBE"):
			spec = append(spec, "MQTT-3.10.1-1")
		case strings.HasPrefix(f.name, "DISCONNECT"):
			spec = append(spec, "MQTT-3.14.1-1")
		}
		b.badBoth(f.name, f.h, mal, spec...)
	}
	b.bad(v5, "AUTH/flags-1", `f1 00`, mal, "MQTT-2.1.3-1", "MQTT-3.15.1-1")
	b.bad(v5, "AUTH/flags-8", `f8 00`, mal, "MQTT-2.1.3-1", "MQTT-3.15.1-1")

	// PUBLISH QoS 3: rejected from the fixed header.
	b.badBoth("PUBLISH/qos-3", `36 07 | 00 03 61 2f 62 | 00 01`, mal, "MQTT-3.3.1-4")
	b.badBoth("PUBLISH/qos-3-dup-retain", `3f 07 | 00 03 61 2f 62 | 00 01`, mal, "MQTT-3.3.1-4")

	// Remaining Length: non-minimal and over-long variable byte integers.
	b.badBoth("PINGREQ/remaining-length-80-00", `c0 80 00`, mal, "MQTT-1.5.5-1")
	b.badBoth("DISCONNECT/remaining-length-80-80-00", `e0 80 80 00`, mal, "MQTT-1.5.5-1")
	b.badBoth("PUBLISH/remaining-length-87-00", `30 87 00 | 00 03 61 2f 62 | 68 69`, mal, "MQTT-1.5.5-1")
	b.badBoth("PUBLISH/remaining-length-5-bytes", `30 ff ff ff ff 7f`, mal, "MQTT-1.5.5-1")
	b.badBoth("PUBLISH/remaining-length-80-80-80-80-01", `30 80 80 80 80 01`, mal, "MQTT-1.5.5-1")

	// The stream ends before the packet does.
	b.cutBoth("PUBLISH/body-shorter-than-remaining-length", `30 0a | 00 03 61 2f 62 | 68 69`)
	b.cutBoth("CONNECT/body-shorter-than-remaining-length", `10 0e | 00 04 4d 51 54 54 04 02 00 3c 00 02`)
	b.cutBoth("PUBACK/no-remaining-length", `40`)
	b.cutBoth("PUBLISH/remaining-length-cut", `30 80`)
	b.cutBoth("PUBLISH/remaining-length-cut-3-bytes", `30 ff ff ff`)

	// Remaining Length too short for the fields.
	b.badBoth("PUBACK/remaining-1", `40 01 00`, mal)
	b.badBoth("PUBREL/remaining-0", `62 00`, mal)
	b.badBoth("CONNACK/remaining-1", `20 01 00`, mal)
	b.badBoth("PUBLISH/remaining-2-topic-cut", `30 02 00 03`, mal, "MQTT-3.3.2-1")
	b.badBoth("PUBLISH/topic-length-beyond-remaining", `30 05 00 05 61 2f 62`, mal, "MQTT-3.3.2-1")
	b.badBoth("PUBLISH/qos2-packet-id-cut", `34 06 | 00 03 61 2f 62 | 00`, mal)
	b.badBoth("CONNECT/protocol-name-cut", `10 04 00 04 4d 51`, mal, "MQTT-3.1.4-1")
	b.badBoth("CONNECT/empty", `10 00`, mal, "MQTT-3.1.4-1")
	// Remaining Length longer than the fields.
	b.badBoth("PINGREQ/remaining-1", `c0 01 00`, mal)
	b.badBoth("PINGRESP/remaining-1", `d0 01 00`, mal)

	// Packet Identifier 0.
	b.badBoth("PUBACK/packet-id-0", `40 02 00 00`, pro, "MQTT-2.2.1-5")
	b.badBoth("PUBREC/packet-id-0", `50 02 00 00`, pro, "MQTT-2.2.1-5")
	b.badBoth("PUBREL/packet-id-0", `62 02 00 00`, pro, "MQTT-2.2.1-5")
	b.badBoth("PUBCOMP/packet-id-0", `70 02 00 00`, pro, "MQTT-2.2.1-5")

	// CONNECT: protocol name and level are read the same way in both
	// versions (the level in the packet decides the rest).
	b.badBoth("CONNECT/protocol-name-MQTX", `10 0e | 00 04 4d 51 54 58 | 04 02 00 3c 00 02 63 31`, upv, "MQTT-3.1.2-1")
	b.badBoth("CONNECT/protocol-name-lower-case", `10 0f | 00 04 6d 71 74 74 | 05 02 00 3c 00 00 02 63 31`, upv, "MQTT-3.1.2-1")
	b.badBoth("CONNECT/MQIsdp-level-3", `10 10 | 00 06 4d 51 49 73 64 70 | 03 | 02 00 3c 00 02 63 31`, upv, "MQTT-3.1.2-2")
	b.badBoth("CONNECT/level-3", `10 0e | 00 04 4d 51 54 54 | 03 | 02 00 3c 00 02 63 31`, upv, "MQTT-3.1.2-2")
	b.badBoth("CONNECT/level-6", `10 0f | 00 04 4d 51 54 54 | 06 | 02 00 3c 00 00 02 63 31`, upv, "MQTT-3.1.2-2")
	b.badBoth("CONNECT/level-0", `10 0e | 00 04 4d 51 54 54 | 00 | 02 00 3c 00 02 63 31`, upv, "MQTT-3.1.2-2")
}

func (b *builder) v311Malformed() {
	b.bad(v3, "AUTH/in-3.1.1", `f0 00`, mal, "MQTT-2.1.3-1")
	b.bad(v3, "AUTH/in-3.1.1-with-body", `f0 02 18 00`, mal, "MQTT-2.1.3-1")

	// PUBLISH
	b.bad(v3, "PUBLISH/dup-on-qos-0", `38 07 | 00 03 61 2f 62 | 68 69`, mal, "MQTT-3.3.1-2")
	b.bad(v3, "PUBLISH/qos1-packet-id-0", `32 07 | 00 03 61 2f 62 | 00 00`, pro, "MQTT-2.2.1-3", "MQTT-2.2.1-4")
	b.bad(v3, "PUBLISH/qos2-packet-id-0", `34 09 | 00 03 61 2f 62 | 00 00 | 68 69`, pro, "MQTT-2.2.1-3")
	b.bad(v3, "PUBLISH/topic-invalid-utf8-ff", `30 06 | 00 02 61 ff | 68 69`, mal, "MQTT-1.5.4-1", "MQTT-3.3.2-1")
	b.bad(v3, "PUBLISH/topic-overlong-c0-af", `30 06 | 00 02 c0 af | 68 69`, mal, "MQTT-1.5.4-1")
	b.bad(v3, "PUBLISH/topic-surrogate-ed-a0-80", `30 05 | 00 03 ed a0 80`, mal, "MQTT-1.5.4-1")
	b.bad(v3, "PUBLISH/topic-above-10ffff", `30 06 | 00 04 f4 90 80 80`, mal, "MQTT-1.5.4-1")
	b.bad(v3, "PUBLISH/topic-nul", `30 05 | 00 03 61 00 62`, mal, "MQTT-1.5.4-2")
	b.bad(v3, "PUBLISH/topic-multibyte-cut", `30 04 | 00 02 e2 82`, mal, "MQTT-1.5.4-1")

	// CONNACK
	b.bad(v3, "CONNACK/trailing-byte", `20 03 00 00 00`, mal)
	b.bad(v3, "CONNACK/reserved-ack-flags", `20 02 02 00`, mal, "MQTT-3.2.2-1")
	b.bad(v3, "CONNACK/reserved-ack-flag-7", `20 02 80 00`, mal, "MQTT-3.2.2-1")
	b.bad(v3, "CONNACK/return-code-6", `20 02 00 06`, mal)
	b.bad(v3, "CONNACK/return-code-0x80", `20 02 00 80`, mal)

	// Acknowledgements have exactly two bytes in 3.1.1.
	b.bad(v3, "PUBACK/trailing-byte", `40 03 00 01 00`, mal)
	b.bad(v3, "PUBCOMP/trailing-bytes", `70 04 00 01 00 00`, mal)
	b.bad(v3, "DISCONNECT/remaining-1", `e0 01 00`, mal)
	b.bad(v3, "UNSUBACK/payload", `b0 03 00 01 00`, mal)

	// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK
	b.bad(v3, "SUBSCRIBE/no-filters", `82 02 00 01`, pro, "MQTT-3.8.3-2")
	b.bad(v3, "SUBSCRIBE/packet-id-0", `82 06 | 00 00 | 00 01 61 | 00`, pro, "MQTT-2.2.1-3")
	b.bad(v3, "SUBSCRIBE/reserved-option-bit-2", `82 06 | 00 01 | 00 01 61 | 04`, mal, "3.1.1:MQTT-3-8.3-4")
	b.bad(v3, "SUBSCRIBE/reserved-option-bits-7-6", `82 06 | 00 01 | 00 01 61 | c1`, mal, "3.1.1:MQTT-3-8.3-4")
	b.bad(v3, "SUBSCRIBE/qos-3", `82 06 | 00 01 | 00 01 61 | 03`, mal, "3.1.1:MQTT-3-8.3-4")
	b.bad(v3, "SUBSCRIBE/filter-without-options", `82 05 | 00 01 | 00 01 61`, mal)
	b.bad(v3, "SUBSCRIBE/filter-cut", `82 05 | 00 01 | 00 04 61`, mal, "MQTT-3.8.3-1")
	b.bad(v3, "SUBSCRIBE/filter-invalid-utf8", `82 07 | 00 01 | 00 02 61 ff | 00`, mal, "MQTT-1.5.4-1", "MQTT-3.8.3-1")
	b.bad(v3, "SUBACK/packet-id-0", `90 03 00 00 00`, pro, "MQTT-2.2.1-6")
	b.bad(v3, "SUBACK/no-return-codes", `90 02 00 01`, pro, "MQTT-3.8.4-6")
	b.bad(v3, "SUBACK/return-code-3", `90 03 00 01 03`, mal)
	b.bad(v3, "SUBACK/return-code-0x87", `90 03 00 01 87`, mal)
	b.bad(v3, "UNSUBSCRIBE/no-filters", `a2 02 00 01`, pro, "MQTT-3.10.3-2")
	b.bad(v3, "UNSUBSCRIBE/packet-id-0", `a2 05 | 00 00 | 00 01 61`, pro, "MQTT-2.2.1-3")
	b.bad(v3, "UNSUBSCRIBE/filter-surrogate", `a2 07 | 00 01 | 00 03 ed a0 80`, mal, "MQTT-1.5.4-1", "MQTT-3.10.3-1")
	b.bad(v3, "UNSUBACK/packet-id-0", `b0 02 00 00`, pro, "MQTT-2.2.1-6")

	// CONNECT
	const h = `00 04 4d 51 54 54 04` // "MQTT" level 4
	b.bad(v3, "CONNECT/reserved-flag", `10 0e | `+h+` | 03 | 00 3c | 00 02 63 31`, mal, "MQTT-3.1.2-3")
	b.bad(v3, "CONNECT/will-qos-without-will", `10 0e | `+h+` | 0a | 00 3c | 00 02 63 31`, mal, "MQTT-3.1.2-11")
	b.bad(v3, "CONNECT/will-retain-without-will", `10 0e | `+h+` | 22 | 00 3c | 00 02 63 31`, mal, "MQTT-3.1.2-13")
	b.bad(v3, "CONNECT/will-qos-3", `10 13 | `+h+` | 1e | 00 3c | 00 02 63 31 | 00 01 77 | 00 00`, mal, "MQTT-3.1.2-12")
	b.bad(v3, "CONNECT/password-without-username", `10 12 | `+h+` | 42 | 00 3c | 00 02 63 31 | 00 02 70 77`, mal, "3.1.1:MQTT-3.1.2-22")
	b.bad(v3, "CONNECT/will-flag-without-will-fields", `10 0e | `+h+` | 06 | 00 3c | 00 02 63 31`, mal, "MQTT-3.1.2-9")
	b.bad(v3, "CONNECT/username-flag-without-username", `10 0e | `+h+` | 82 | 00 3c | 00 02 63 31`, mal, "MQTT-3.1.2-17")
	b.bad(v3, "CONNECT/password-flag-without-password", `10 11 | `+h+` | c2 | 00 3c | 00 02 63 31 | 00 01 75`, mal, "MQTT-3.1.2-19")
	b.bad(v3, "CONNECT/trailing-byte", `10 0f | `+h+` | 02 | 00 3c | 00 02 63 31 | 00`, mal, "MQTT-3.1.4-1")
	b.bad(v3, "CONNECT/keep-alive-cut", `10 09 | `+h+` | 02 | 00`, mal, "MQTT-3.1.4-1")
	b.bad(v3, "CONNECT/client-id-length-beyond-remaining", `10 0e | `+h+` | 02 | 00 3c | 00 05 63 31`, mal, "MQTT-3.1.3-3")
	b.bad(v3, "CONNECT/client-id-nul", `10 0e | `+h+` | 02 | 00 3c | 00 02 63 00`, mal, "MQTT-1.5.4-2", "MQTT-3.1.3-4")
	b.bad(v3, "CONNECT/username-invalid-utf8", `10 11 | `+h+` | 82 | 00 3c | 00 02 63 31 | 00 01 ff`, mal, "MQTT-1.5.4-1", "MQTT-3.1.3-12")
	b.bad(v3, "CONNECT/will-topic-surrogate", `10 15 | `+h+` | 06 | 00 3c | 00 02 63 31 | 00 03 ed bf bf | 00 00`, mal, "MQTT-1.5.4-1", "MQTT-3.1.3-11")
}

func (b *builder) v5Malformed() {
	// PUBLISH
	b.bad(v5, "PUBLISH/dup-on-qos-0", `38 08 | 00 03 61 2f 62 | 00 | 68 69`, mal, "MQTT-3.3.1-2")
	b.bad(v5, "PUBLISH/qos1-packet-id-0", `32 08 | 00 03 61 2f 62 | 00 00 | 00`, pro, "MQTT-2.2.1-3", "MQTT-2.2.1-4")
	b.bad(v5, "PUBLISH/topic-invalid-utf8-ff", `30 07 | 00 02 61 ff | 00 | 68 69`, mal, "MQTT-1.5.4-1", "MQTT-3.3.2-1")
	b.bad(v5, "PUBLISH/topic-overlong-c0-af", `30 07 | 00 02 c0 af | 00 | 68 69`, mal, "MQTT-1.5.4-1")
	b.bad(v5, "PUBLISH/topic-surrogate-ed-a0-80", `30 06 | 00 03 ed a0 80 | 00`, mal, "MQTT-1.5.4-1")
	b.bad(v5, "PUBLISH/topic-above-10ffff", `30 07 | 00 04 f4 90 80 80 | 00`, mal, "MQTT-1.5.4-1")
	b.bad(v5, "PUBLISH/topic-nul", `30 06 | 00 03 61 00 62 | 00`, mal, "MQTT-1.5.4-2")
	b.bad(v5, "PUBLISH/topic-multibyte-cut", `30 05 | 00 02 e2 82 | 00`, mal, "MQTT-1.5.4-1")
	b.bad(v5, "PUBLISH/property-length-missing", `30 05 | 00 03 61 2f 62`, mal, "MQTT-2.2.2-1")
	b.bad(v5, "PUBLISH/property-length-beyond-remaining", `30 08 | 00 03 61 2f 62 | 09 | 68 69`, mal)
	b.bad(v5, "PUBLISH/property-length-non-minimal", `30 09 | 00 03 61 2f 62 | 80 00 | 68 69`, mal, "MQTT-1.5.5-1")
	b.bad(v5, "PUBLISH/property-cut-by-property-length", `30 0a | 00 03 61 2f 62 | 02 | 02 00 | 68 69`, mal)
	b.bad(v5, "PUBLISH/user-property-value-cut", `30 0c | 00 01 74 | 08 | 26 00 01 6b 00 05 76 76`, mal, "MQTT-1.5.7-1")
	b.bad(v5, "PUBLISH/user-property-invalid-utf8", `30 0c | 00 01 74 | 07 | 26 00 01 ff 00 01 76 | 78`, mal, "MQTT-1.5.7-1")
	b.bad(v5, "PUBLISH/content-type-nul", `30 09 | 00 01 74 | 05 | 03 00 02 61 00`, mal, "MQTT-1.5.4-2", "MQTT-3.3.2-19")
	b.bad(v5, "PUBLISH/session-expiry-not-allowed", `30 0d | 00 03 61 2f 62 | 05 | 11 00 00 00 0a | 68 69`, mal, "§2.2.2.2")
	b.bad(v5, "PUBLISH/unknown-property-0x05", `30 07 | 00 01 74 | 02 | 05 00 | 78`, mal, "§2.2.2.2")
	b.bad(v5, "PUBLISH/property-id-128", `30 07 | 00 01 74 | 03 | 80 01 00`, mal, "§2.2.2.2")
	b.bad(v5, "PUBLISH/property-id-non-minimal", `30 07 | 00 01 74 | 03 | 81 00 01`, mal, "MQTT-1.5.5-1")
	b.bad(v5, "PUBLISH/topic-alias-twice", `30 0b | 00 01 74 | 06 | 23 00 01 | 23 00 02 | 78`, pro, "§3.3.2.3.4")
	b.bad(v5, "PUBLISH/payload-format-twice", `30 09 | 00 01 74 | 04 | 01 00 | 01 01 | 78`, pro, "§3.3.2.3.2")
	b.bad(v5, "PUBLISH/payload-format-2", `30 07 | 00 01 74 | 02 | 01 02 | 78`, pro, "§3.3.2.3.2")
	b.bad(v5, "PUBLISH/topic-alias-0", `30 08 | 00 01 74 | 03 | 23 00 00 | 78`, packet.TopicAliasInvalid, "MQTT-3.3.2-8")
	b.bad(v5, "PUBLISH/subscription-id-0", `30 07 | 00 01 74 | 02 | 0b 00 | 78`, pro, "§3.3.2.3.8")
	b.bad(v5, "PUBLISH/subscription-id-non-minimal", `30 08 | 00 01 74 | 03 | 0b 80 00 | 78`, mal, "MQTT-1.5.5-1")
	b.bad(v5, "PUBLISH/subscription-id-5-bytes", `30 0a | 00 01 74 | 06 | 0b ff ff ff ff 7f`, mal, "MQTT-1.5.5-1")

	// CONNACK
	b.bad(v5, "CONNACK/property-length-missing", `20 02 00 00`, mal, "MQTT-2.2.2-1")
	b.bad(v5, "CONNACK/trailing-byte", `20 04 00 00 00 00`, mal)
	b.bad(v5, "CONNACK/reserved-ack-flags", `20 03 02 00 00`, mal, "MQTT-3.2.2-1")
	b.bad(v5, "CONNACK/reason-0x01", `20 03 00 01 00`, mal, "MQTT-3.2.2-8")
	b.bad(v5, "CONNACK/reason-0x8e", `20 03 00 8e 00`, mal, "MQTT-3.2.2-8")
	b.bad(v5, "CONNACK/will-delay-not-allowed", `20 08 | 00 00 | 05 | 18 00 00 00 01`, mal, "§2.2.2.2")
	b.bad(v5, "CONNACK/maximum-qos-twice", `20 07 | 00 00 | 04 | 24 00 | 24 01`, pro, "§3.2.2.3.4")
	b.bad(v5, "CONNACK/maximum-qos-2", `20 05 | 00 00 | 02 | 24 02`, pro, "§3.2.2.3.4")
	b.bad(v5, "CONNACK/retain-available-2", `20 05 | 00 00 | 02 | 25 02`, pro, "§3.2.2.3.5")
	b.bad(v5, "CONNACK/wildcard-subscription-available-2", `20 05 | 00 00 | 02 | 28 02`, pro, "§3.2.2.3.11")
	b.bad(v5, "CONNACK/subscription-id-available-ff", `20 05 | 00 00 | 02 | 29 ff`, pro, "§3.2.2.3.12")
	b.bad(v5, "CONNACK/shared-subscription-available-2", `20 05 | 00 00 | 02 | 2a 02`, pro, "§3.2.2.3.13")
	b.bad(v5, "CONNACK/receive-maximum-0", `20 06 | 00 00 | 03 | 21 00 00`, pro, "§3.2.2.3.3")
	b.bad(v5, "CONNACK/maximum-packet-size-0", `20 08 | 00 00 | 05 | 27 00 00 00 00`, pro, "§3.2.2.3.6")

	// Acknowledgements
	b.bad(v5, "PUBACK/trailing-byte", `40 05 | 00 01 | 00 | 00 | 00`, mal)
	b.bad(v5, "PUBACK/property-length-beyond-remaining", `40 05 | 00 01 | 00 | 05 | 1f`, mal)
	b.bad(v5, "PUBACK/reason-0x92", `40 03 00 01 92`, mal, "MQTT-3.4.2-1")
	b.bad(v5, "PUBACK/subscription-id-not-allowed", `40 06 | 00 01 | 00 | 02 | 0b 01`, mal, "§2.2.2.2")
	b.bad(v5, "PUBACK/reason-string-twice", `40 0c | 00 01 | 00 | 08 | 1f 00 01 61 | 1f 00 01 62`, pro, "§3.4.2.2.2")
	b.bad(v5, "PUBREC/reason-0x04", `50 03 00 01 04`, mal, "MQTT-3.5.2-1")
	b.bad(v5, "PUBREL/reason-0x10", `62 03 00 01 10`, mal, "MQTT-3.6.2-1")
	b.bad(v5, "PUBCOMP/reason-0x80", `70 03 00 01 80`, mal, "MQTT-3.7.2-1")

	// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK
	b.bad(v5, "SUBSCRIBE/no-filters", `82 03 | 00 01 | 00`, pro, "MQTT-3.8.3-2")
	b.bad(v5, "SUBSCRIBE/packet-id-0", `82 07 | 00 00 | 00 | 00 01 61 | 00`, pro, "MQTT-2.2.1-3")
	b.bad(v5, "SUBSCRIBE/reserved-option-bit-6", `82 07 | 00 01 | 00 | 00 01 61 | 40`, mal, "MQTT-3.8.3-5")
	b.bad(v5, "SUBSCRIBE/reserved-option-bit-7", `82 07 | 00 01 | 00 | 00 01 61 | 80`, mal, "MQTT-3.8.3-5")
	b.bad(v5, "SUBSCRIBE/qos-3", `82 07 | 00 01 | 00 | 00 01 61 | 03`, pro, "§3.8.3.1")
	b.bad(v5, "SUBSCRIBE/retain-handling-3", `82 07 | 00 01 | 00 | 00 01 61 | 30`, pro, "§3.8.3.1")
	b.bad(v5, "SUBSCRIBE/filter-without-options", `82 06 | 00 01 | 00 | 00 01 61`, mal)
	b.bad(v5, "SUBSCRIBE/filter-invalid-utf8", `82 08 | 00 01 | 00 | 00 02 61 ff | 00`, mal, "MQTT-1.5.4-1", "MQTT-3.8.3-1")
	b.bad(v5, "SUBSCRIBE/topic-alias-not-allowed", `82 0a | 00 01 | 03 | 23 00 01 | 00 01 74 | 00`, mal, "§2.2.2.2")
	b.bad(v5, "SUBSCRIBE/subscription-id-twice", `82 0b | 00 01 | 04 | 0b 01 | 0b 02 | 00 01 74 | 00`, pro, "§3.8.2.1.2")
	b.bad(v5, "SUBSCRIBE/subscription-id-0", `82 09 | 00 01 | 02 | 0b 00 | 00 01 74 | 00`, pro, "§3.8.2.1.2")
	b.bad(v5, "SUBACK/packet-id-0", `90 04 00 00 00 00`, pro, "MQTT-2.2.1-6")
	b.bad(v5, "SUBACK/no-reason-codes", `90 03 00 01 00`, pro, "MQTT-3.8.4-6", "MQTT-3.9.3-2")
	b.bad(v5, "SUBACK/reason-0x03", `90 04 | 00 01 | 00 | 03`, mal, "MQTT-3.9.3-2")
	b.bad(v5, "SUBACK/reason-0x11", `90 04 | 00 01 | 00 | 11`, mal, "MQTT-3.9.3-2")
	b.bad(v5, "UNSUBSCRIBE/no-filters", `a2 03 | 00 01 | 00`, pro, "MQTT-3.10.3-2")
	b.bad(v5, "UNSUBSCRIBE/packet-id-0", `a2 06 | 00 00 | 00 | 00 01 61`, pro, "MQTT-2.2.1-3")
	b.bad(v5, "UNSUBSCRIBE/filter-surrogate", `a2 08 | 00 01 | 00 | 00 03 ed a0 80`, mal, "MQTT-1.5.4-1", "MQTT-3.10.3-1")
	b.bad(v5, "UNSUBSCRIBE/subscription-id-not-allowed", `a2 08 | 00 01 | 02 | 0b 01 | 00 01 61`, mal, "§2.2.2.2")
	b.bad(v5, "UNSUBACK/packet-id-0", `b0 04 00 00 00 00`, pro, "MQTT-2.2.1-6")
	b.bad(v5, "UNSUBACK/no-reason-codes", `b0 03 00 01 00`, pro, "MQTT-3.11.3-2")
	b.bad(v5, "UNSUBACK/reason-0x02", `b0 04 | 00 01 | 00 | 02`, mal, "MQTT-3.11.3-2")

	// DISCONNECT, AUTH
	b.bad(v5, "DISCONNECT/trailing-byte", `e0 03 00 00 00`, mal)
	b.bad(v5, "DISCONNECT/reason-0x01", `e0 01 01`, mal, "MQTT-3.14.2-1")
	b.bad(v5, "DISCONNECT/reason-0x84", `e0 01 84`, mal, "MQTT-3.14.2-1")
	b.bad(v5, "DISCONNECT/auth-method-not-allowed", `e0 06 | 00 | 04 | 15 00 01 58`, mal, "§2.2.2.2")
	b.bad(v5, "DISCONNECT/reason-string-twice", `e0 0a | 00 | 08 | 1f 00 01 61 | 1f 00 01 62`, pro, "§3.14.2.2.3")
	b.bad(v5, "AUTH/trailing-byte", `f0 03 00 00 00`, mal)
	b.bad(v5, "AUTH/reason-0x01", `f0 01 01`, mal, "MQTT-3.15.2-1")
	b.bad(v5, "AUTH/reason-0x87", `f0 01 87`, mal, "MQTT-3.15.2-1")
	b.bad(v5, "AUTH/session-expiry-not-allowed", `f0 07 | 18 | 05 | 11 00 00 00 01`, mal, "§2.2.2.2")
	b.bad(v5, "AUTH/authentication-method-twice", `f0 0a | 18 | 08 | 15 00 01 61 | 15 00 01 62`, pro, "§3.15.2.2.2")

	// CONNECT
	const h = `00 04 4d 51 54 54 05` // "MQTT" level 5
	b.bad(v5, "CONNECT/reserved-flag", `10 0f | `+h+` | 03 | 00 3c | 00 | 00 02 63 31`, mal, "MQTT-3.1.2-3")
	b.bad(v5, "CONNECT/will-qos-without-will", `10 0f | `+h+` | 0a | 00 3c | 00 | 00 02 63 31`, mal, "MQTT-3.1.2-11")
	b.bad(v5, "CONNECT/will-retain-without-will", `10 0f | `+h+` | 22 | 00 3c | 00 | 00 02 63 31`, mal, "MQTT-3.1.2-13")
	b.bad(v5, "CONNECT/will-qos-3", `10 15 | `+h+` | 1e | 00 3c | 00 | 00 02 63 31 | 00 | 00 01 77 | 00 00`, mal, "MQTT-3.1.2-12")
	b.bad(v5, "CONNECT/will-flag-without-will-fields", `10 0f | `+h+` | 06 | 00 3c | 00 | 00 02 63 31`, mal, "MQTT-3.1.2-9")
	b.bad(v5, "CONNECT/trailing-byte", `10 10 | `+h+` | 02 | 00 3c | 00 | 00 02 63 31 | 00`, mal, "MQTT-3.1.4-1")
	b.bad(v5, "CONNECT/client-id-length-beyond-remaining", `10 0f | `+h+` | 02 | 00 3c | 00 | 00 05 63 31`, mal, "MQTT-3.1.3-3")
	b.bad(v5, "CONNECT/client-id-nul", `10 0f | `+h+` | 02 | 00 3c | 00 | 00 02 63 00`, mal, "MQTT-1.5.4-2", "MQTT-3.1.3-4")
	b.bad(v5, "CONNECT/property-length-beyond-remaining", `10 0f | `+h+` | 02 | 00 3c | 7f | 00 02 63 31`, mal)
	b.bad(v5, "CONNECT/topic-alias-not-allowed", `10 12 | `+h+` | 02 | 00 3c | 03 | 23 00 01 | 00 02 63 31`, mal, "§2.2.2.2")
	b.bad(v5, "CONNECT/will-delay-in-connect-properties", `10 14 | `+h+` | 02 | 00 3c | 05 | 18 00 00 00 05 | 00 02 63 31`, mal, "§2.2.2.2")
	b.bad(v5, "CONNECT/will-properties-session-expiry-not-allowed",
		`10 1a | `+h+` | 06 | 00 3c | 00 | 00 02 63 31 | 05 | 11 00 00 00 0a | 00 01 77 | 00 00`, mal, "§2.2.2.2", "§3.1.3.2")
	b.bad(v5, "CONNECT/session-expiry-twice", `10 19 | `+h+` | 02 | 00 3c | 0a | 11 00 00 00 01 | 11 00 00 00 02 | 00 02 63 31`, pro, "§3.1.2.11.2")
	b.bad(v5, "CONNECT/will-delay-twice",
		`10 1f | `+h+` | 06 | 00 3c | 00 | 00 02 63 31 | 0a | 18 00 00 00 01 | 18 00 00 00 02 | 00 01 77 | 00 00`, pro, "§3.1.3.2.2")
	b.bad(v5, "CONNECT/receive-maximum-0", `10 12 | `+h+` | 02 | 00 3c | 03 | 21 00 00 | 00 02 63 31`, pro, "§3.1.2.11.3")
	b.bad(v5, "CONNECT/maximum-packet-size-0", `10 14 | `+h+` | 02 | 00 3c | 05 | 27 00 00 00 00 | 00 02 63 31`, pro, "§3.1.2.11.4")
	b.bad(v5, "CONNECT/request-problem-information-2", `10 11 | `+h+` | 02 | 00 3c | 02 | 17 02 | 00 02 63 31`, pro, "§3.1.2.11.7")
	b.bad(v5, "CONNECT/request-response-information-2", `10 11 | `+h+` | 02 | 00 3c | 02 | 19 02 | 00 02 63 31`, pro, "§3.1.2.11.6")
	b.bad(v5, "CONNECT/will-payload-format-2", `10 17 | `+h+` | 06 | 00 3c | 00 | 00 02 63 31 | 02 | 01 02 | 00 01 77 | 00 00`, pro, "§3.1.3.2.3")
	b.bad(v5, "CONNECT/user-property-name-invalid-utf8", `10 16 | `+h+` | 02 | 00 3c | 07 | 26 00 01 c3 00 01 76 | 00 02 63 31`, mal, "MQTT-1.5.7-1")
}
