package packet

import (
	"encoding/binary"
	"unicode/utf8"
	"unsafe"
)

// decoder is a cursor over a packet body. Decoded strings and byte slices
// alias the body; nothing is copied.
type decoder struct {
	b   []byte
	typ Type
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) short(what string) {
	d.fail(malformed(d.typ, "packet too short for "+what))
}

func (d *decoder) len() int { return len(d.b) }

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.short(what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uint16(what string) uint16 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 2 {
		d.short(what)
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *decoder) uint32(what string) uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 4 {
		d.short(what)
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) varint(what string) uint32 {
	if d.err != nil {
		return 0
	}
	v, n, err := DecodeVarint(d.b)
	if err != nil {
		if err == errVarintShort {
			d.short(what)
		} else {
			d.fail(malformed(d.typ, "invalid variable byte integer in "+what))
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

// binary reads Binary Data (two-byte length then bytes). The result has its
// capacity capped so an append by the caller cannot overwrite the body.
func (d *decoder) binary(what string) []byte {
	n := int(d.uint16(what))
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.short(what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// string reads a UTF-8 Encoded String and validates it [MQTT-1.5.4-1]
// [MQTT-1.5.4-2]. A BOM (EF BB BF) is kept as U+FEFF [MQTT-1.5.4-3].
func (d *decoder) string(what string) string {
	b := d.binary(what)
	if d.err != nil {
		return ""
	}
	if !ValidUTF8(b) {
		d.fail(malformed(d.typ, what+" is not valid MQTT UTF-8"))
		return ""
	}
	return bstring(b)
}

// rest returns the remaining bytes (capacity capped).
func (d *decoder) rest() []byte {
	v := d.b[:len(d.b):len(d.b)]
	d.b = d.b[len(d.b):]
	return v
}

// bstring returns a string that shares b's memory. The packet body must not
// change while the string is in use (see the package documentation).
func bstring(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// ValidUTF8 reports whether b is a well-formed MQTT UTF-8 string: valid
// UTF-8 without surrogates (which utf8.Valid already rejects) and without
// U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2].
func ValidUTF8(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			return utf8.Valid(b[i:]) && !containsNull(b[i:])
		}
	}
	return true
}

// ValidUTF8String is ValidUTF8 for a string.
func ValidUTF8String(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			return utf8.ValidString(s[i:]) && !containsNullString(s[i:])
		}
	}
	return true
}

func containsNull(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}

func containsNullString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

func appendUint16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendString(dst []byte, s string) []byte {
	dst = appendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = appendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// checkString validates a string the encoder is about to write.
func checkString(t Type, what, s string) error {
	if len(s) > 65535 {
		return &Error{Code: MalformedPacket, Type: t, Reason: what + " longer than 65535 bytes"}
	}
	if !ValidUTF8String(s) {
		return &Error{Code: MalformedPacket, Type: t, Reason: what + " is not valid MQTT UTF-8"}
	}
	return nil
}

func checkBinary(t Type, what string, b []byte) error {
	if len(b) > 65535 {
		return &Error{Code: MalformedPacket, Type: t, Reason: what + " longer than 65535 bytes"}
	}
	return nil
}
