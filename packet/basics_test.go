package packet_test

// Unit tests of the building blocks: variable byte integers, UTF-8 rules,
// reason codes, the property table and error wrapping.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/packet"
)

func TestVarintBoundaries(t *testing.T) {
	cases := []struct {
		v uint32
		b []byte
	}{
		{0, []byte{0x00}},
		{1, []byte{0x01}},
		{127, []byte{0x7F}},
		{128, []byte{0x80, 0x01}},
		{16383, []byte{0xFF, 0x7F}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{2097151, []byte{0xFF, 0xFF, 0x7F}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}},
		{268435455, []byte{0xFF, 0xFF, 0xFF, 0x7F}},
	}
	for _, c := range cases {
		if got := packet.AppendVarint([]byte{0xAA}, c.v); !bytes.Equal(got, append([]byte{0xAA}, c.b...)) {
			t.Errorf("AppendVarint(%d) = % x, want % x", c.v, got[1:], c.b)
		}
		if n := packet.VarintSize(c.v); n != len(c.b) {
			t.Errorf("VarintSize(%d) = %d, want %d", c.v, n, len(c.b))
		}
		v, n, err := packet.DecodeVarint(append(append([]byte{}, c.b...), 0x55, 0x80))
		if err != nil || v != c.v || n != len(c.b) {
			t.Errorf("DecodeVarint(% x) = %d, %d, %v", c.b, v, n, err)
		}
		// A fixed header with this remaining length.
		h := packet.FixedHeader{Type: packet.PUBLISH, Remaining: int(c.v)}
		if h.Size() != 1+len(c.b)+int(c.v) {
			t.Errorf("FixedHeader{Remaining: %d}.Size() = %d", c.v, h.Size())
		}
	}
	if packet.MaxVarint != 268435455 || packet.MaxRemainingLength != 268435455 {
		t.Error("maximum variable byte integer is not 268,435,455")
	}
}

// TestVarintRejects checks non-minimal [MQTT-1.5.5-1], over-long and
// truncated encodings.
func TestVarintRejects(t *testing.T) {
	bad := [][]byte{
		{0x80, 0x00}, {0xFF, 0x00}, {0x80, 0x80, 0x00}, {0x81, 0x80, 0x00},
		{0x80, 0x80, 0x80, 0x00}, {0xFF, 0xFF, 0xFF, 0x00},
		{0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, {0x80, 0x80, 0x80, 0x80, 0x01}, {0x80, 0x80, 0x80, 0x80},
	}
	for _, b := range bad {
		if v, n, err := packet.DecodeVarint(b); err == nil || packet.CodeOf(err) != packet.MalformedPacket {
			t.Errorf("DecodeVarint(% x) = %d, %d, %v; want Malformed Packet", b, v, n, err)
		}
	}
	for _, b := range [][]byte{nil, {}, {0x80}, {0xFF, 0xFF}, {0x80, 0x80, 0x80}} {
		if _, _, err := packet.DecodeVarint(b); err == nil || packet.CodeOf(err) != packet.MalformedPacket {
			t.Errorf("DecodeVarint(% x) (truncated) = %v; want Malformed Packet", b, err)
		}
	}
	// Every two-byte encoding is accepted exactly when it is minimal.
	for a := 0x80; a <= 0xFF; a++ {
		for c := 0; c < 0x80; c++ {
			v, n, err := packet.DecodeVarint([]byte{byte(a), byte(c)})
			if (err == nil) != (c != 0) {
				t.Fatalf("DecodeVarint(%02x %02x): %v", a, c, err)
			}
			if err == nil && (n != 2 || v != uint32(a&0x7F)|uint32(c)<<7) {
				t.Fatalf("DecodeVarint(%02x %02x) = %d, %d", a, c, v, n)
			}
		}
	}
	// Round trip over a spread of values.
	for v := uint32(0); v <= packet.MaxVarint; v = v*3 + 1 {
		b := packet.AppendVarint(nil, v)
		got, n, err := packet.DecodeVarint(b)
		if err != nil || got != v || n != len(b) || n != packet.VarintSize(v) {
			t.Fatalf("round trip %d: % x -> %d, %d, %v", v, b, got, n, err)
		}
	}
}

// TestUTF8Rules covers [MQTT-1.5.4-1], [MQTT-1.5.4-2] and [MQTT-1.5.4-3].
func TestUTF8Rules(t *testing.T) {
	cases := []struct {
		name string
		s    string
		ok   bool
	}{
		{"empty", "", true},
		{"ascii", "a/b/c", true},
		{"two-three-four-byte", "ü€𝄞", true},
		{"bom", "\xEF\xBB\xBF", true},
		{"bom-inside", "a\xEF\xBB\xBFb", true},
		{"noncharacter-U+FFFF", "\xEF\xBF\xBF", true}, // SHOULD NOT, not malformed
		{"control-U+0001", "\x01", true},
		{"max-U+10FFFF", "\xF4\x8F\xBF\xBF", true},
		{"nul", "\x00", false},
		{"nul-after-ascii", "ab\x00", false},
		{"nul-after-multibyte", "é\x00", false},
		{"overlong-nul", "\xC0\x80", false},
		{"overlong-slash", "\xC0\xAF", false},
		{"overlong-3-byte", "\xE0\x80\xAF", false},
		{"surrogate-D800", "\xED\xA0\x80", false},
		{"surrogate-DFFF", "\xED\xBF\xBF", false},
		{"surrogate-after-ascii", "a\xED\xB0\x80", false},
		{"above-10FFFF", "\xF4\x90\x80\x80", false},
		{"lone-continuation", "\x80", false},
		{"ff", "a\xFF", false},
		{"cut-3-byte", "\xE2\x82", false},
		{"cut-4-byte", "\xF0\x9F\x98", false},
	}
	for _, c := range cases {
		if got := packet.ValidUTF8([]byte(c.s)); got != c.ok {
			t.Errorf("%s: ValidUTF8(% x) = %v", c.name, c.s, got)
		}
		if got := packet.ValidUTF8String(c.s); got != c.ok {
			t.Errorf("%s: ValidUTF8String(% x) = %v", c.name, c.s, got)
		}
		// The decoder applies the same rule to a topic (v5, QoS 0).
		b := []byte{0x30, byte(3 + len(c.s)), 0, byte(len(c.s))}
		b = append(append(b, c.s...), 0)
		p, err := packet.NewReader(bytes.NewReader(b), 0).ReadPacket(packet.V5)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: decode: %v", c.name, err)
		case c.ok && p.(*packet.Publish).Topic != c.s:
			t.Errorf("%s: decoded topic % x", c.name, p.(*packet.Publish).Topic) // BOM kept, not stripped
		case !c.ok && packet.CodeOf(err) != packet.MalformedPacket:
			t.Errorf("%s: decode: %v, want Malformed Packet", c.name, err)
		}
		// And the encoder refuses what it must not write.
		_, err = (&packet.Publish{Topic: "t", Props: packet.Properties{ContentType: c.s}}).AppendTo(nil, packet.V5)
		if c.s != "" && (err == nil) != c.ok {
			t.Errorf("%s: encode content type: %v", c.name, err)
		}
	}
}

func TestBOMInPropertyKept(t *testing.T) {
	// v5 PUBLISH, topic "t", content type "\uFEFFx", user property "\uFEFF"="".
	b := []byte{0x30, 0x13, 0x00, 0x01, 't', 0x0F,
		0x03, 0x00, 0x04, 0xEF, 0xBB, 0xBF, 'x',
		0x26, 0x00, 0x03, 0xEF, 0xBB, 0xBF, 0x00, 0x00}
	p, err := packet.NewReader(bytes.NewReader(b), 0).ReadPacket(packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	pub := p.(*packet.Publish)
	if pub.Props.ContentType != "\uFEFFx" || len(pub.Props.User) != 1 || pub.Props.User[0].Key != "\uFEFF" {
		t.Fatalf("BOM not kept: %+v", pub.Props)
	}
	if out, err := pub.AppendTo(nil, packet.V5); err != nil || !bytes.Equal(out, b) {
		t.Fatalf("re-encode: % x, %v", out, err)
	}
}

// specReasons lists, from the tables of sections 3.2.2.2, 3.4.2.1, 3.5.2.1,
// 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1 and 3.15.2.1, the reason codes
// each packet may carry.
var specReasons = map[packet.Type][]byte{
	packet.CONNACK: {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
		0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F},
	packet.PUBACK:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
	packet.PUBREC:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
	packet.PUBREL:   {0x00, 0x92},
	packet.PUBCOMP:  {0x00, 0x92},
	packet.SUBACK:   {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2},
	packet.UNSUBACK: {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91},
	packet.DISCONNECT: {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F,
		0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2},
	packet.AUTH: {0x00, 0x18, 0x19},
}

func TestReasonCodeValidFor(t *testing.T) {
	for typ := packet.Type(0); typ < 20; typ++ {
		for c := 0; c < 256; c++ {
			want := bytes.IndexByte(specReasons[typ], byte(c)) >= 0
			if got := packet.ReasonCode(c).ValidFor(typ); got != want {
				t.Errorf("ReasonCode(%#02x).ValidFor(%v) = %v, want %v", c, typ, got, want)
			}
		}
	}
}

func TestReasonCodeStrings(t *testing.T) {
	known := 0
	for c := 0; c < 256; c++ {
		rc := packet.ReasonCode(c)
		if rc.IsError() != (c >= 0x80) {
			t.Errorf("%#02x IsError = %v", c, rc.IsError())
		}
		s, e := rc.String(), rc.Error()
		if !strings.HasPrefix(e, "mqtt: "+s+" (0x") || !strings.HasSuffix(e, fmt.Sprintf("%02x)", c)) {
			t.Errorf("%#02x: Error() = %q, String() = %q", c, e, s)
		}
		if rc.Known() {
			known++
			if strings.HasPrefix(s, "reason code") {
				t.Errorf("%#02x: known code without a name", c)
			}
		} else if s != fmt.Sprintf("reason code 0x%02x", c) {
			t.Errorf("%#02x: String() = %q", c, s)
		}
	}
	if known != 43 { // the 43 distinct values of section 2.4
		t.Errorf("%d known reason codes, want 43", known)
	}
	for rc, s := range map[packet.ReasonCode]string{
		packet.Success: "success", packet.MalformedPacket: "malformed packet",
		packet.NotAuthorized: "not authorized", packet.TopicAliasInvalid: "topic alias invalid",
		packet.WildcardSubscriptionsNotSupported: "wildcard subscriptions not supported",
	} {
		if rc.String() != s {
			t.Errorf("%#02x: %q, want %q", byte(rc), rc.String(), s)
		}
	}
	if got := packet.NotAuthorized.Error(); got != "mqtt: not authorized (0x87)" {
		t.Errorf("Error() = %q", got)
	}
}

func TestErrorWrapping(t *testing.T) {
	_, err := packet.Decode(packet.FixedHeader{Type: packet.PUBACK, Remaining: 2}, []byte{0, 0}, packet.V5)
	wrapped := fmt.Errorf("connection 7: %w", err)
	for _, e := range []error{err, wrapped} {
		if !errors.Is(e, packet.ProtocolError) || errors.Is(e, packet.MalformedPacket) {
			t.Errorf("errors.Is on %v", e)
		}
		var perr *packet.Error
		if !errors.As(e, &perr) || perr.Code != packet.ProtocolError || perr.Type != packet.PUBACK || perr.Reason == "" {
			t.Errorf("errors.As(*Error) on %v: %+v", e, perr)
		}
		var rc packet.ReasonCode
		if !errors.As(e, &rc) || rc != packet.ProtocolError {
			t.Errorf("errors.As(ReasonCode) on %v: %v", e, rc)
		}
		if packet.CodeOf(e) != packet.ProtocolError {
			t.Errorf("CodeOf(%v) = %v", e, packet.CodeOf(e))
		}
	}
	if s := err.Error(); s != "mqtt: PUBACK: protocol error: packet identifier 0" {
		t.Errorf("Error() = %q", s)
	}
	if s := (&packet.Error{Code: packet.MalformedPacket, Reason: "x"}).Error(); s != "mqtt: malformed packet: x" {
		t.Errorf("Error() without type = %q", s)
	}
	// CodeOf on other errors.
	for err, want := range map[error]packet.ReasonCode{
		nil:                                   packet.Success,
		io.EOF:                                packet.UnspecifiedError,
		packet.ErrUnsupportedVersion:          packet.UnspecifiedError,
		packet.Banned:                         packet.Banned,
		fmt.Errorf("auth: %w", packet.Banned): packet.Banned,
		errors.Join(io.EOF, packet.QoSNotSupported): packet.QoSNotSupported,
	} {
		if got := packet.CodeOf(err); got != want {
			t.Errorf("CodeOf(%v) = %v, want %v", err, got, want)
		}
	}
	// A bare ReasonCode returned as an error works with errors.Is.
	var e error = packet.NotAuthorized
	if !errors.Is(fmt.Errorf("x: %w", e), packet.NotAuthorized) {
		t.Error("errors.Is on a wrapped ReasonCode")
	}
}

func TestTypeAndVersionStrings(t *testing.T) {
	if packet.PUBLISH.String() != "PUBLISH" || packet.AUTH.String() != "AUTH" || packet.Type(0).String() != "RESERVED" ||
		packet.Type(16).String() != "TYPE(16)" {
		t.Error("Type.String")
	}
	if packet.V311.String() != "3.1.1" || packet.V5.String() != "5.0" || packet.Version(3).String() != "3.1" ||
		packet.Version(6).String() != "level 6" {
		t.Error("Version.String")
	}
	if !packet.V311.Valid() || !packet.V5.Valid() || packet.Version(3).Valid() || packet.Version(6).Valid() {
		t.Error("Version.Valid")
	}
}

// TestFixedHeaderValidate checks the type and reserved flags of every
// first byte [MQTT-2.1.3-1], and that a caller-built header with a type
// above 15 is refused rather than panicking.
func TestFixedHeaderValidate(t *testing.T) {
	want := map[packet.Type]byte{packet.PUBREL: 2, packet.SUBSCRIBE: 2, packet.UNSUBSCRIBE: 2}
	for _, v := range catVersions() {
		for b := 0; b < 256; b++ {
			h := packet.FixedHeader{Type: packet.Type(b >> 4), Flags: byte(b & 0x0F)}
			var ok bool
			switch {
			case h.Type == 0:
			case h.Type == packet.AUTH && v == packet.V311:
			case h.Type == packet.PUBLISH:
				ok = h.Flags&0x06 != 0x06 // QoS 3 [MQTT-3.3.1-4]
			default:
				ok = h.Flags == want[h.Type]
			}
			if err := h.Validate(v); (err == nil) != ok || (err != nil && packet.CodeOf(err) != packet.MalformedPacket) {
				t.Errorf("%v: Validate(%#02x) = %v", v, b, err)
			}
		}
	}
	for _, typ := range []packet.Type{16, 200, 255} {
		h := packet.FixedHeader{Type: typ}
		if err := h.Validate(packet.V5); packet.CodeOf(err) != packet.MalformedPacket {
			t.Errorf("Validate(type %d) = %v", typ, err)
		}
		if _, err := packet.Decode(h, nil, packet.V5); packet.CodeOf(err) != packet.MalformedPacket {
			t.Errorf("Decode(type %d) = %v", typ, err)
		}
	}
}

// specProps is the table of section 2.2.2.2: the packets (0 = Will
// Properties) each property may appear in.
var specProps = map[packet.PropID][]packet.Type{
	0x01: {packet.PUBLISH, 0}, 0x02: {packet.PUBLISH, 0}, 0x03: {packet.PUBLISH, 0},
	0x08: {packet.PUBLISH, 0}, 0x09: {packet.PUBLISH, 0}, 0x0B: {packet.PUBLISH, packet.SUBSCRIBE},
	0x11: {packet.CONNECT, packet.CONNACK, packet.DISCONNECT}, 0x12: {packet.CONNACK},
	0x13: {packet.CONNACK}, 0x15: {packet.CONNECT, packet.CONNACK, packet.AUTH},
	0x16: {packet.CONNECT, packet.CONNACK, packet.AUTH}, 0x17: {packet.CONNECT}, 0x18: {0},
	0x19: {packet.CONNECT}, 0x1A: {packet.CONNACK}, 0x1C: {packet.CONNACK, packet.DISCONNECT},
	0x1F: {packet.CONNACK, packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP, packet.SUBACK,
		packet.UNSUBACK, packet.DISCONNECT, packet.AUTH},
	0x21: {packet.CONNECT, packet.CONNACK}, 0x22: {packet.CONNECT, packet.CONNACK}, 0x23: {packet.PUBLISH},
	0x24: {packet.CONNACK}, 0x25: {packet.CONNACK},
	0x26: {packet.CONNECT, packet.CONNACK, packet.PUBLISH, 0, packet.PUBACK, packet.PUBREC, packet.PUBREL,
		packet.PUBCOMP, packet.SUBSCRIBE, packet.SUBACK, packet.UNSUBSCRIBE, packet.UNSUBACK, packet.DISCONNECT,
		packet.AUTH},
	0x27: {packet.CONNECT, packet.CONNACK}, 0x28: {packet.CONNACK}, 0x29: {packet.CONNACK}, 0x2A: {packet.CONNACK},
}

func TestPropertyTable(t *testing.T) {
	for id := 0; id < 256; id++ {
		allowed := specProps[packet.PropID(id)]
		for typ := packet.Type(0); typ < 16; typ++ {
			want := false
			for _, a := range allowed {
				want = want || a == typ
			}
			if got := packet.PropID(id).AllowedIn(typ); got != want {
				t.Errorf("PropID(%#02x).AllowedIn(%v) = %v, want %v", id, typ, got, want)
			}
		}
		if name := packet.PropID(id).String(); (allowed != nil) == strings.HasPrefix(name, "property 0x") {
			t.Errorf("PropID(%#02x).String() = %q", id, name)
		}
	}
}
