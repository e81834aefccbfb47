package packet

// MaxVarint is the largest value a Variable Byte Integer can carry.
const MaxVarint = 268_435_455

// VarintSize returns the number of bytes AppendVarint uses for v.
func VarintSize(v uint32) int {
	switch {
	case v < 128:
		return 1
	case v < 16_384:
		return 2
	case v < 2_097_152:
		return 3
	default:
		return 4
	}
}

// AppendVarint appends v as a Variable Byte Integer (section 1.5.5) using
// the minimum number of bytes [MQTT-1.5.5-1]. Values above MaxVarint are
// the caller's error; they are truncated to 28 bits.
func AppendVarint(dst []byte, v uint32) []byte {
	v &= 0x0FFF_FFFF
	for {
		b := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(dst, b)
		}
		dst = append(dst, b|0x80)
	}
}

// errVarintShort is returned by DecodeVarint when b ends before the integer
// does; callers reading a stream wait for more bytes.
var errVarintShort = malformed(0, "truncated variable byte integer")

// DecodeVarint decodes a Variable Byte Integer from the start of b and
// returns its value and length. It rejects encodings longer than four bytes
// and non-minimal encodings (a trailing 0x00 continuation) [MQTT-1.5.5-1].
func DecodeVarint(b []byte) (uint32, int, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, errVarintShort
		}
		c := b[i]
		v |= uint32(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				// [MQTT-1.5.5-1] 0x80 0x00 encodes 0 in two bytes: not minimal.
				return 0, 0, malformed(0, "non-minimal variable byte integer")
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, malformed(0, "variable byte integer longer than 4 bytes")
}
