package mqttquic

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"sync"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

// Framing errors of a stream reader.
var (
	errMalformed = errors.New("mqttquic: malformed fixed header")
	errTooLarge  = errors.New("mqttquic: packet exceeds the maximum packet size")
)

// Framing status of frameLen.
const (
	frameOK = iota
	frameShort
	frameBad
)

// frameLen returns the total length and the fixed header length of the
// packet at the start of b.
func frameLen(b []byte) (total, hlen, status int) {
	if len(b) < 2 {
		return 0, 0, frameShort
	}
	v := 0
	for i := 0; i < 4; i++ {
		if 1+i >= len(b) {
			return 0, 0, frameShort
		}
		c := b[1+i]
		v |= int(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, 0, frameBad // non-minimal encoding
			}
			return 2 + i + v, 2 + i, frameOK
		}
	}
	return 0, 0, frameBad
}

// smallPacket is the size of the pooled buffers of small inbound packets.
const smallPacket = 256

type pktBuf [smallPacket]byte

var pktPool = sync.Pool{New: func() any { return new(pktBuf) }}

// readPacket reads one whole packet (fixed header and body) from r. A
// small packet lives in a pooled buffer, returned as arr (to be put back
// once consumed), a larger one in a new slice. io.EOF means the stream
// ended cleanly between packets; io.ErrUnexpectedEOF that it ended inside
// one. On errMalformed the bytes of the bad header are returned.
func readPacket(r *bufio.Reader, maxSize int) (pkt []byte, arr *pktBuf, err error) {
	b0, err := r.ReadByte()
	if err != nil {
		return nil, nil, err
	}
	var hdr [5]byte
	hdr[0] = b0
	n := 1
	v := 0
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, err
		}
		hdr[n] = c
		n++
		v |= int(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return append([]byte(nil), hdr[:n]...), nil, errMalformed
			}
			break
		}
		if i == 3 {
			return append([]byte(nil), hdr[:n]...), nil, errMalformed
		}
	}
	total := n + v
	if total > maxSize {
		return nil, nil, errTooLarge
	}
	var buf []byte
	if total <= smallPacket {
		arr = pktPool.Get().(*pktBuf)
		buf = arr[:total]
	} else {
		buf = make([]byte, total)
	}
	copy(buf, hdr[:n])
	if _, err := io.ReadFull(r, buf[n:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if arr != nil {
			pktPool.Put(arr)
		}
		return nil, nil, err
	}
	return buf, arr, nil
}

// readFlowHeader reads a flow header from r, which starts with one.
// flagsKnown reports whether the flags were decoded when it fails.
func readFlowHeader(r *bufio.Reader) (h FlowHeader, flagsKnown bool, err error) {
	var buf [MaxFlowHeaderSize + 1]byte
	n := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h, h.Flags.OptionalHeaders, err
		}
		buf[n] = c
		n++
		ph, _, perr := ParseFlowHeader(buf[:n])
		switch perr {
		case nil:
			ph.Optional = append([]byte(nil), ph.Optional...)
			return ph, true, nil
		case ErrShortHeader:
			h = ph
			continue
		}
		return ph, ph.Flags.OptionalHeaders, perr
	}
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func getReader(r io.Reader) *bufio.Reader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

// be16 reads a big-endian uint16, 0 if b is short.
func be16(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

// publishFields locates the topic and the packet identifier of a PUBLISH
// body, and the start of its properties (v5) or payload. ok is false for
// a body too short to hold them.
func publishFields(body []byte, qos byte, v5 bool) (topic []byte, id uint16, props int, ok bool) {
	if len(body) < 2 {
		return nil, 0, 0, false
	}
	tl := int(be16(body))
	off := 2 + tl
	if len(body) < off {
		return nil, 0, 0, false
	}
	topic = body[2:off]
	if qos > 0 {
		if len(body) < off+2 {
			return nil, 0, 0, false
		}
		id = be16(body[off:])
		off += 2
	}
	if v5 && len(body) <= off {
		return nil, 0, 0, false
	}
	return topic, id, off, true
}

// firstFilter returns the first topic filter of a SUBSCRIBE body.
func firstFilter(body []byte, v5 bool) (string, bool) {
	off := 2
	if v5 {
		if len(body) <= off {
			return "", false
		}
		pl, n, st := uvarint(body[off:])
		if st != frameOK {
			return "", false
		}
		off += n + pl
	}
	if len(body) < off+2 {
		return "", false
	}
	l := int(be16(body[off:]))
	if len(body) < off+2+l {
		return "", false
	}
	return string(body[off+2 : off+2+l]), true
}

// ackReasons returns the reason codes of a SUBACK or UNSUBACK body.
func ackReasons(body []byte, v5 bool) []byte {
	off := 2
	if v5 {
		if len(body) <= off {
			return nil
		}
		pl, n, st := uvarint(body[off:])
		if st != frameOK {
			return nil
		}
		off += n + pl
	}
	if len(body) < off {
		return nil
	}
	return body[off:]
}

// uvarint decodes an MQTT variable byte integer.
func uvarint(b []byte) (v, n, status int) {
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, frameShort
		}
		c := b[i]
		v |= int(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			return v, i + 1, frameOK
		}
	}
	return 0, 0, frameBad
}

// connectVersion returns the protocol level of a CONNECT body.
func connectVersion(body []byte) packet.Version {
	if len(body) < 2 {
		return 0
	}
	l := int(be16(body))
	if len(body) < 3+l {
		return 0
	}
	return packet.Version(body[2+l])
}

// decodeFilters decodes the topic filters of a SUBSCRIBE or UNSUBSCRIBE
// packet; shared subscriptions are reduced to their topic filter.
func decodeFilters(pkt []byte, hlen int, v packet.Version) []string {
	h := packet.FixedHeader{Type: packet.Type(pkt[0] >> 4), Flags: pkt[0] & 0x0F, Remaining: len(pkt) - hlen}
	body := make([]byte, len(pkt)-hlen) // decoded strings alias the body
	copy(body, pkt[hlen:])
	p, err := packet.Decode(h, body, v)
	if err != nil {
		return nil
	}
	var out []string
	add := func(f string) {
		if _, inner, shared, err := topic.ParseShared(f); err == nil && shared {
			f = inner
		}
		out = append(out, f)
	}
	switch p := p.(type) {
	case *packet.Subscribe:
		for i := range p.Subscriptions {
			add(p.Subscriptions[i].Filter)
		}
	case *packet.Unsubscribe:
		for _, f := range p.Filters {
			add(f)
		}
	}
	return out
}
