package packet

import (
	"errors"
	"io"
)

// Reader reads MQTT packets from a byte stream. It buffers what the stream
// delivers, so several small packets arriving together cost one read call.
//
// Memory: nothing is allocated until the first read; the buffer grows to
// the largest packet seen (bounded by MaxPacketSize) and shrinks back to
// its initial size once a packet larger than ShrinkAbove has been consumed,
// so an idle connection that once received a large packet does not keep
// the memory.
type Reader struct {
	r io.Reader
	// MaxPacketSize bounds the total size of a packet (header included). A
	// larger packet is refused with PacketTooLarge before its body is read
	// or any memory is allocated for it. Zero means the protocol maximum.
	MaxPacketSize int
	// InitialSize is the buffer's first size (default 512 bytes).
	InitialSize int
	// ShrinkAbove is the buffer size above which the buffer is released when
	// empty (default 64 KiB).
	ShrinkAbove int

	buf        []byte
	start, end int // unread data is buf[start:end]
}

// NewReader returns a Reader on r refusing packets larger than maxPacketSize
// (0 = protocol maximum).
func NewReader(r io.Reader, maxPacketSize int) *Reader {
	return &Reader{r: r, MaxPacketSize: maxPacketSize}
}

// Reset makes the Reader read from r, dropping buffered data and memory.
func (r *Reader) Reset(rd io.Reader) {
	r.r = rd
	r.buf = nil
	r.start, r.end = 0, 0
}

// Buffered returns the number of bytes read from the stream but not yet
// returned as packets.
func (r *Reader) Buffered() int { return r.end - r.start }

// fill reads at least once, growing the buffer so that need bytes of unread
// data fit.
func (r *Reader) fill(need int) error {
	if r.buf == nil {
		size := r.InitialSize
		if size <= 0 {
			size = 512
		}
		if size < need {
			size = need
		}
		r.buf = make([]byte, size)
	}
	if r.start > 0 && (r.end == r.start || len(r.buf)-r.start < need) {
		n := copy(r.buf, r.buf[r.start:r.end])
		r.start, r.end = 0, n
	}
	if len(r.buf) < need {
		// Grow geometrically with the data actually received, so a header
		// that merely claims a large body costs no memory up front.
		nb := make([]byte, min(need, max(2*len(r.buf), 4096)))
		r.end = copy(nb, r.buf[r.start:r.end])
		r.start = 0
		r.buf = nb
	}
	if r.end == len(r.buf) {
		return nil // grown as far as this call allows; the caller loops
	}
	for range 100 {
		n, err := r.r.Read(r.buf[r.end:])
		r.end += n
		if n > 0 {
			return nil
		}
		if err != nil {
			if err == io.EOF && r.end > r.start {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return io.ErrNoProgress
}

// ReadRaw reads the next packet and returns its fixed header and body. The
// body lives in the Reader's buffer and is valid only until the next call;
// decode it, copy it, or use ReadPacket. The fixed header is validated
// (type, reserved flags) for version v.
func (r *Reader) ReadRaw(v Version) (FixedHeader, []byte, error) {
	var h FixedHeader
	hl := 0 // length of the fixed header
	// Fixed header: one byte plus a varint of up to four bytes. It stays
	// unread until the whole packet is buffered, so Buffered is 0 only
	// between packets.
	for {
		avail := r.buf[r.start:r.end]
		if len(avail) >= 2 {
			rem, n, err := DecodeVarint(avail[1:])
			if err == nil {
				h = FixedHeader{Type: Type(avail[0] >> 4), Flags: avail[0] & 0x0F, Remaining: int(rem)}
				if err := h.Validate(v); err != nil {
					return h, nil, err
				}
				max := r.MaxPacketSize
				if max <= 0 {
					max = MaxRemainingLength + 5
				}
				if h.Size() > max {
					return h, nil, &Error{Code: PacketTooLarge, Type: h.Type, Reason: "packet exceeds maximum packet size"}
				}
				hl = 1 + n
				break
			}
			if err != errVarintShort {
				return h, nil, malformed(Type(avail[0]>>4), "invalid remaining length")
			}
		}
		if err := r.fill(r.end - r.start + 1); err != nil {
			return h, nil, err
		}
	}
	for r.end-r.start < hl+h.Remaining {
		if err := r.fill(hl + h.Remaining); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return h, nil, err
		}
	}
	r.start += hl
	body := r.buf[r.start : r.start+h.Remaining : r.start+h.Remaining]
	r.start += h.Remaining
	if r.start == r.end {
		shrink := r.ShrinkAbove
		if shrink <= 0 {
			shrink = 64 << 10
		}
		if len(r.buf) > shrink {
			// Hand the large buffer to the caller's body and start afresh.
			r.buf = nil
			r.start, r.end = 0, 0
		}
	}
	return h, body, nil
}

// ReadPacket reads and decodes the next packet for version v. The packet
// owns its memory (one allocation for the body) and stays valid after later
// reads.
func (r *Reader) ReadPacket(v Version) (Packet, error) {
	h, body, err := r.ReadRaw(v)
	if err != nil {
		return nil, err
	}
	owned := make([]byte, len(body))
	copy(owned, body)
	return Decode(h, owned, v)
}

// Complete reports whether a whole packet (or a fixed header ReadRaw will
// refuse) is buffered, so that the next ReadRaw returns without reading
// from the underlying reader.
func (r *Reader) Complete() bool {
	avail := r.buf[r.start:r.end]
	if len(avail) < 2 {
		return false
	}
	rem, n, err := DecodeVarint(avail[1:])
	if err != nil {
		return err != errVarintShort
	}
	return len(avail) >= 1+n+int(rem)
}
