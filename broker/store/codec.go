package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// Record values are framed as
//
//	[format byte][CRC-32C (Castagnoli) of the payload, big-endian][payload]
//
// recordFormat is the format byte of every record but the sessions that
// carry change-only state, which use sessionFormatLast: the format 1
// payload followed by that state. Sessions without it are still written in
// format 1, so that an older broker can read them. A value with another
// format byte (or a bad checksum, or a payload that does not decode
// exactly) is corrupt and quarantined by Load.
const (
	recordFormat      byte = 1
	sessionFormatLast byte = 2
)

const frameHeader = 5 // format byte + CRC-32C

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks a record or a store file that failed its checksum or
// could not be decoded.
var ErrCorrupt = errors.New("store: corrupt record")

// ErrInvalidOp marks an op list that Apply refused before writing anything:
// an unknown kind, a missing record (nil Session for PutSession ...), a
// record that disagrees with the op's key fields, an empty or oversized key,
// a client identifier containing U+0000, or a message the PUBLISH codec
// refuses to encode (QoS 3, invalid UTF-8, properties not allowed in
// PUBLISH).
var ErrInvalidOp = errors.New("store: invalid op")

func corrupt(what string) error { return fmt.Errorf("%w: %s", ErrCorrupt, what) }

// beginFrame reserves the frame header; endFrame fills it in.
func beginFrame(dst []byte, format byte) ([]byte, int) {
	start := len(dst)
	return append(dst, format, 0, 0, 0, 0), start
}

func endFrame(dst []byte, start int) []byte {
	sum := crc32.Checksum(dst[start+frameHeader:], castagnoli)
	binary.BigEndian.PutUint32(dst[start+1:], sum)
	return dst
}

// openFrame checks the frame, whose format byte must be one of formats,
// and returns the format and the payload.
func openFrame(v []byte, formats ...byte) (byte, []byte, error) {
	if len(v) < frameHeader {
		return 0, nil, corrupt("short value")
	}
	if !slices.Contains(formats, v[0]) {
		return 0, nil, corrupt("unknown record format " + strconv.Itoa(int(v[0])))
	}
	p := v[frameHeader:]
	if crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(v[1:]) {
		return 0, nil, corrupt("checksum mismatch")
	}
	return v[0], p, nil
}

// --- encoding -------------------------------------------------------------

func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst []byte, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// appendTime writes 0 for the zero time, else 1 and Unix nanoseconds.
func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	return binary.AppendVarint(dst, t.UnixNano())
}

// appendMessage writes the message as a v5 PUBLISH packet (so every
// property the codec knows round-trips), then the fields PUBLISH lacks.
func appendMessage(dst []byte, m *Message) ([]byte, error) {
	p := packet.Publish{QoS: m.QoS, Retain: m.Retain, Topic: m.Topic, Props: m.Props, Payload: m.Payload}
	if m.QoS > 0 {
		p.PacketID = 1 // required by the codec, ignored on decode
	}
	if m.Topic == "" {
		return dst, fmt.Errorf("%w: message without topic", ErrInvalidOp)
	}
	// Length prefix first: reserve the exact size so the packet is
	// appended in place.
	dst = appendUvarint(dst, uint64(p.Size(packet.V5)))
	before := len(dst)
	dst, err := p.AppendTo(dst, packet.V5)
	if err != nil {
		return dst[:before], fmt.Errorf("%w: message on %q: %v", ErrInvalidOp, m.Topic, err)
	}
	if len(dst)-before != p.Size(packet.V5) {
		return dst, fmt.Errorf("%w: message size mismatch", ErrInvalidOp)
	}
	dst = appendStr(dst, m.ClientID)
	return appendTime(dst, m.Created), nil
}

func subOptions(s *Subscription) (byte, error) {
	if s.QoS > 2 || s.RetainHandling > 2 {
		return 0, fmt.Errorf("%w: subscription %q: invalid options", ErrInvalidOp, s.Filter)
	}
	b := s.QoS | s.RetainHandling<<4
	if s.NoLocal {
		b |= 0x04
	}
	if s.RetainAsPublished {
		b |= 0x08
	}
	return b, nil
}

// encodeSession appends the framed record of s (ClientID is in the key).
func encodeSession(dst []byte, s *Session) ([]byte, error) {
	format := recordFormat
	if len(s.LastPayloads) > 0 {
		format = sessionFormatLast
	}
	dst, start := beginFrame(dst, format)
	dst = appendStr(dst, s.Username)
	dst = append(dst, s.Version)
	dst = appendUvarint(dst, uint64(s.Expiry))
	dst = appendTime(dst, s.DisconnectedAt)
	dst = appendUvarint(dst, uint64(len(s.Subscriptions)))
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		o, err := subOptions(sub)
		if err != nil {
			return dst, err
		}
		dst = appendStr(dst, sub.Filter)
		dst = append(dst, o)
		dst = appendUvarint(dst, uint64(sub.SubID))
	}
	if s.Will == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = appendUvarint(dst, uint64(s.Will.Delay))
		var err error
		if dst, err = appendMessage(dst, &s.Will.Message); err != nil {
			return dst, err
		}
	}
	dst = appendUvarint(dst, uint64(len(s.InboundQoS2)))
	for _, id := range s.InboundQoS2 {
		dst = appendUvarint(dst, uint64(id))
	}
	if format == sessionFormatLast {
		dst = appendUvarint(dst, uint64(len(s.LastPayloads)))
		for i := range s.LastPayloads {
			dst = appendStr(dst, s.LastPayloads[i].Topic)
			dst = binary.BigEndian.AppendUint64(dst, s.LastPayloads[i].Hash)
		}
	}
	return endFrame(dst, start), nil
}

// encodeEntry appends the framed record of e (ClientID and Seq are in the
// key).
func encodeEntry(dst []byte, e *Entry) ([]byte, error) {
	if e.QoS > 2 {
		return dst, fmt.Errorf("%w: entry QoS %d", ErrInvalidOp, e.QoS)
	}
	dst, start := beginFrame(dst, recordFormat)
	var err error
	if dst, err = appendMessage(dst, &e.Msg); err != nil {
		return dst, err
	}
	f := e.QoS
	if e.Retain {
		f |= 0x04
	}
	if e.Released {
		f |= 0x08
	}
	dst = append(dst, f)
	dst = appendUvarint(dst, uint64(len(e.SubIDs)))
	for _, id := range e.SubIDs {
		dst = appendUvarint(dst, uint64(id))
	}
	dst = appendStr(dst, e.Group)
	dst = appendUvarint(dst, uint64(e.PacketID))
	return endFrame(dst, start), nil
}

// encodeRetained appends the framed record of a retained message.
func encodeRetained(dst []byte, m *Message) ([]byte, error) {
	dst, start := beginFrame(dst, recordFormat)
	var err error
	if dst, err = appendMessage(dst, m); err != nil {
		return dst, err
	}
	return endFrame(dst, start), nil
}

// --- decoding -------------------------------------------------------------

// reader decodes a payload; the first error sticks and later reads return
// zero values. It never panics and never allocates more than the input
// justifies.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = corrupt(what)
	}
	r.b = nil
}

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated " + what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint(what string, max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad " + what)
		return 0
	}
	if v > max {
		r.fail(what + " out of range")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uint64(what string) uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("truncated " + what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// count reads a list length; every element takes at least one byte, so a
// count beyond the remaining input is corrupt (and no huge allocation
// happens).
func (r *reader) count(what string) int {
	return int(r.uvarint(what, uint64(len(r.b))))
}

func (r *reader) bytes(what string) []byte {
	n := r.uvarint(what+" length", uint64(len(r.b)))
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)) < n {
		r.fail("truncated " + what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str(what string) string {
	b := r.bytes(what)
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

func (r *reader) time(what string) time.Time {
	switch r.byte(what) {
	case 0:
		return time.Time{}
	case 1:
		if r.err != nil {
			return time.Time{}
		}
		v, n := binary.Varint(r.b)
		if n <= 0 {
			r.fail("bad " + what)
			return time.Time{}
		}
		r.b = r.b[n:]
		return time.Unix(0, v)
	default:
		r.fail("bad " + what + " tag")
		return time.Time{}
	}
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return r.err
}

// message decodes what appendMessage wrote. The payload and property byte
// slices alias the input.
func (r *reader) message() Message {
	raw := r.bytes("message")
	if r.err != nil {
		return Message{}
	}
	if len(raw) < 2 || packet.Type(raw[0]>>4) != packet.PUBLISH {
		r.fail("message is not a PUBLISH")
		return Message{}
	}
	rem, n, err := packet.DecodeVarint(raw[1:])
	if err != nil || int(rem) != len(raw)-1-n {
		r.fail("message length mismatch")
		return Message{}
	}
	var p packet.Publish
	if err := p.Decode(raw[0]&0x0F, raw[1+n:], packet.V5); err != nil {
		r.fail("message: " + err.Error())
		return Message{}
	}
	if p.Topic == "" || p.Dup {
		r.fail("message: not a stored PUBLISH")
		return Message{}
	}
	m := Message{
		Topic:   p.Topic,
		Payload: p.Payload,
		QoS:     p.QoS,
		Retain:  p.Retain,
		Props:   p.Props,
	}
	if len(m.Payload) == 0 {
		m.Payload = nil
	}
	m.ClientID = r.str("message client identifier")
	m.Created = r.time("message creation time")
	return m
}

// decodeSession decodes a session record stored under clientID. Byte
// slices in the result alias v, which the caller must not reuse.
func decodeSession(clientID string, v []byte) (Session, error) {
	format, p, err := openFrame(v, recordFormat, sessionFormatLast)
	if err != nil {
		return Session{}, err
	}
	r := reader{b: p}
	s := Session{ClientID: clientID}
	s.Username = r.str("username")
	s.Version = r.byte("version")
	s.Expiry = uint32(r.uvarint("expiry", 0xFFFFFFFF))
	s.DisconnectedAt = r.time("disconnection time")
	if n := r.count("subscription count"); n > 0 {
		s.Subscriptions = make([]Subscription, n)
		for i := range s.Subscriptions {
			sub := &s.Subscriptions[i]
			sub.Filter = r.str("filter")
			o := r.byte("subscription options")
			if o&0xC0 != 0 || o&0x03 == 3 || (o>>4)&0x03 == 3 {
				r.fail("subscription options")
			}
			sub.QoS = o & 0x03
			sub.NoLocal = o&0x04 != 0
			sub.RetainAsPublished = o&0x08 != 0
			sub.RetainHandling = (o >> 4) & 0x03
			sub.SubID = uint32(r.uvarint("subscription identifier", 0xFFFFFFFF))
			if r.err != nil {
				return Session{}, r.err
			}
		}
	}
	switch r.byte("will tag") {
	case 0:
	case 1:
		w := &Will{}
		w.Delay = uint32(r.uvarint("will delay", 0xFFFFFFFF))
		w.Message = r.message()
		s.Will = w
	default:
		r.fail("will tag")
	}
	if n := r.count("inbound count"); n > 0 {
		s.InboundQoS2 = make([]uint16, n)
		for i := range s.InboundQoS2 {
			s.InboundQoS2[i] = uint16(r.uvarint("inbound packet identifier", 0xFFFF))
		}
	}
	if format == sessionFormatLast {
		if n := r.count("last payload count"); n > 0 {
			s.LastPayloads = make([]PayloadHash, n)
			for i := range s.LastPayloads {
				lp := &s.LastPayloads[i]
				lp.Topic = r.str("last payload topic")
				lp.Hash = r.uint64("last payload hash")
			}
		}
	}
	if err := r.end(); err != nil {
		return Session{}, err
	}
	return s, nil
}

// decodeEntry decodes an entry record stored under (clientID, seq).
func decodeEntry(clientID string, seq uint64, v []byte) (Entry, error) {
	_, p, err := openFrame(v, recordFormat)
	if err != nil {
		return Entry{}, err
	}
	r := reader{b: p}
	e := Entry{ClientID: clientID, Seq: seq}
	e.Msg = r.message()
	f := r.byte("entry flags")
	if f&0xF0 != 0 || f&0x03 == 3 {
		r.fail("entry flags")
	}
	e.QoS = f & 0x03
	e.Retain = f&0x04 != 0
	e.Released = f&0x08 != 0
	if n := r.count("subscription identifier count"); n > 0 {
		e.SubIDs = make([]uint32, n)
		for i := range e.SubIDs {
			e.SubIDs[i] = uint32(r.uvarint("subscription identifier", 0xFFFFFFFF))
		}
	}
	e.Group = r.str("group")
	e.PacketID = uint16(r.uvarint("packet identifier", 0xFFFF))
	if err := r.end(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// decodeRetained decodes a retained message stored under topic.
func decodeRetained(topic string, v []byte) (Message, error) {
	_, p, err := openFrame(v, recordFormat)
	if err != nil {
		return Message{}, err
	}
	r := reader{b: p}
	m := r.message()
	if err := r.end(); err != nil {
		return Message{}, err
	}
	if m.Topic != topic {
		return Message{}, corrupt("retained message topic does not match its key")
	}
	return m, nil
}
