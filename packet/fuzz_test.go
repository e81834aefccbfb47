package packet_test

// Fuzz targets for every decoder. Seed corpora live in
// testdata/fuzz/<FuzzName>/ and are written by TestWriteFuzzSeeds
// (PACKET_WRITE_FUZZ_SEEDS=1 go test -run=TestWriteFuzzSeeds ./packet/);
// minimised crashers found later are added there by hand as regression
// seeds. Run a target with
//
//	go test -run='^$' -fuzz='^FuzzDecode$' -fuzztime=60s ./packet/

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/mqtt5go/mqtt5/packet"
)

// fzVersion maps a fuzzed byte to a protocol version.
func fzVersion(b byte) packet.Version {
	if b&1 == 0 {
		return packet.V311
	}
	return packet.V5
}

func fzVersionByte(v packet.Version) byte {
	if v == packet.V5 {
		return 1
	}
	return 0
}

// ---------------------------------------------------------------------------
// FuzzDecode: arbitrary fixed header byte and body, both versions.
// ---------------------------------------------------------------------------

func FuzzDecode(f *testing.F) {
	f.Add(byte(1), byte(0x30), []byte("\x00\x01t\x00payload"))
	f.Fuzz(func(t *testing.T, ver, hdr byte, body []byte) {
		rtCheckDecode(t, hdr, body, fzVersion(ver))
	})
}

// ---------------------------------------------------------------------------
// FuzzReader: an arbitrary stream read by a Reader with a small
// MaxPacketSize, in chunks, until it fails. The packets and the final error
// must be what a straightforward reference framer predicts.
// ---------------------------------------------------------------------------

// fzReaderConfig decodes the control byte of FuzzReader.
func fzReaderConfig(ctl byte) (v packet.Version, chunk, maxSize, initial int, raw bool) {
	v = fzVersion(ctl)
	chunk = []int{1, 2, 3, 7, 16, 64, 512, 1 << 20}[(ctl>>1)&7]
	maxSize = []int{0, 8, 40, 300}[(ctl>>4)&3]
	initial = []int{0, 1, 16}[int(ctl>>6)%3]
	raw = ctl&0x80 != 0
	return
}

type fzFrame struct {
	h    packet.FixedHeader
	body []byte
}

// fzRefVarint is the decoding algorithm of section 1.5.5 written out, with
// the minimum-length rule [MQTT-1.5.5-1]. short reports that b ended first.
func fzRefVarint(b []byte) (v uint32, n int, short bool, err bool) {
	mult := uint32(1)
	for i := 0; ; i++ {
		if i == 4 {
			return 0, 0, false, true // more than four bytes
		}
		if i >= len(b) {
			return 0, 0, true, false
		}
		v += uint32(b[i]&0x7F) * mult
		mult *= 128
		if b[i]&0x80 == 0 {
			if i > 0 && b[i] == 0 {
				return 0, 0, false, true // not the minimum number of bytes
			}
			return v, i + 1, false, false
		}
	}
}

// fzRefHeaderOK is the fixed-header check of section 2.1: a real packet
// type, and the flag nibble the type requires.
func fzRefHeaderOK(b byte, v packet.Version) bool {
	typ, flags := b>>4, b&0x0F
	switch {
	case typ == 0:
		return false
	case typ == 15 && v == packet.V311:
		return false
	case typ == 3:
		return flags&0x06 != 0x06
	case typ == 6 || typ == 8 || typ == 10:
		return flags == 2
	}
	return flags == 0
}

// fzRefFrames frames data the way a Reader must and returns the packets and
// the error that ends the stream: io.EOF, io.ErrUnexpectedEOF or a reason
// code.
func fzRefFrames(data []byte, v packet.Version, maxSize int) ([]fzFrame, error) {
	var frames []fzFrame
	for pos := 0; ; {
		if pos == len(data) {
			return frames, io.EOF
		}
		if len(data)-pos < 2 {
			return frames, io.ErrUnexpectedEOF
		}
		rem, n, short, bad := fzRefVarint(data[pos+1:])
		switch {
		case short:
			return frames, io.ErrUnexpectedEOF
		case bad:
			return frames, packet.MalformedPacket
		case !fzRefHeaderOK(data[pos], v):
			return frames, packet.MalformedPacket
		}
		size := 1 + n + int(rem)
		if maxSize > 0 && size > maxSize {
			return frames, packet.PacketTooLarge
		}
		if len(data)-pos < size {
			return frames, io.ErrUnexpectedEOF
		}
		h := packet.FixedHeader{Type: packet.Type(data[pos] >> 4), Flags: data[pos] & 0x0F, Remaining: int(rem)}
		frames = append(frames, fzFrame{h, data[pos+1+n : pos+size]})
		pos += size
	}
}

func FuzzReader(f *testing.F) {
	f.Add(byte(0x13), []byte("\xc0\x00\xd0\x00\x30\x03\x00\x01t"))
	f.Fuzz(func(t *testing.T, ctl byte, data []byte) {
		v, chunk, maxSize, initial, raw := fzReaderConfig(ctl)
		wantFrames, wantErr := fzRefFrames(data, v, maxSize)

		r := packet.NewReader(&rtChunkReader{b: data, n: chunk}, maxSize)
		r.InitialSize = initial
		r.ShrinkAbove = 64
		for i := 0; ; i++ {
			var (
				h    packet.FixedHeader
				body []byte
				err  error
			)
			if raw || i%2 == 1 {
				h, body, err = r.ReadRaw(v)
			} else {
				var p packet.Packet
				p, err = r.ReadPacket(v)
				if err == nil {
					// Re-encode to recover the frame it came from; a
					// decodable packet must re-encode.
					if i >= len(wantFrames) {
						t.Fatalf("ReadPacket returned packet #%d, reference framer found %d", i, len(wantFrames))
					}
					wf := wantFrames[i]
					if p.Type() != wf.h.Type {
						t.Fatalf("packet #%d: type %v, want %v", i, p.Type(), wf.h.Type)
					}
					want := rtCheckDecode(t, byte(wf.h.Type)<<4|wf.h.Flags, wf.body, v)
					if !rtEqual(want, p, rtWireVersion(p, v)) {
						t.Fatalf("packet #%d: ReadPacket and Decode differ\n%s\n%s", i, rtDump(p), rtDump(want))
					}
					continue
				}
				if i < len(wantFrames) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && packet.CodeOf(err) != packet.PacketTooLarge {
					// A frame the framer accepts but Decode rejects.
					wf := wantFrames[i]
					if rtCheckDecode(t, byte(wf.h.Type)<<4|wf.h.Flags, wf.body, v) != nil {
						t.Fatalf("packet #%d: ReadPacket failed (%v) but Decode accepts the frame", i, err)
					}
					return
				}
			}
			if err != nil {
				if i != len(wantFrames) {
					t.Fatalf("Reader failed after %d packets (%v), reference framer found %d", i, err, len(wantFrames))
				}
				switch want := wantErr.(type) {
				case packet.ReasonCode:
					rtCheckErr(t, err, map[packet.ReasonCode]bool{want: true})
				default:
					if err != want {
						t.Fatalf("Reader ended with %v, want %v", err, want)
					}
				}
				return
			}
			if i >= len(wantFrames) {
				t.Fatalf("Reader returned frame #%d (%+v), reference framer found %d (then %v)", i, h, len(wantFrames), wantErr)
			}
			wf := wantFrames[i]
			if h != wf.h || !bytes.Equal(body, wf.body) {
				t.Fatalf("frame #%d: got %+v % x, want %+v % x", i, h, body, wf.h, wf.body)
			}
			if maxSize > 0 && h.Size() > maxSize {
				t.Fatalf("frame #%d of %d bytes exceeds MaxPacketSize %d", i, h.Size(), maxSize)
			}
			if cap(body) != len(body) {
				t.Fatalf("ReadRaw body capacity %d exceeds its length %d", cap(body), len(body))
			}
			rtCheckDecode(t, byte(h.Type)<<4|h.Flags, body, v)
		}
	})
}

// ---------------------------------------------------------------------------
// FuzzProperties: a property block in every context. The block is wrapped
// in an otherwise valid packet; a reference parser written from the table
// of section 2.2.2.2 says whether it is acceptable, with which reason code
// otherwise, and what it holds.
// ---------------------------------------------------------------------------

type fzKind int

const (
	fzByte fzKind = iota + 1
	fzU16
	fzU32
	fzVarint
	fzString
	fzBinary
	fzPair
)

// fzWill stands for Will Properties in fzSpec.
const fzWill = 16

type fzPropSpec struct {
	kind fzKind
	in   []int // packet types, or fzWill
}

// fzSpec is section 2.2.2.2, typed in from the standard.
var fzSpec = map[byte]fzPropSpec{
	0x01: {fzByte, []int{3, fzWill}},                                         // Payload Format Indicator
	0x02: {fzU32, []int{3, fzWill}},                                          // Message Expiry Interval
	0x03: {fzString, []int{3, fzWill}},                                       // Content Type
	0x08: {fzString, []int{3, fzWill}},                                       // Response Topic
	0x09: {fzBinary, []int{3, fzWill}},                                       // Correlation Data
	0x0B: {fzVarint, []int{3, 8}},                                            // Subscription Identifier
	0x11: {fzU32, []int{1, 2, 14}},                                           // Session Expiry Interval
	0x12: {fzString, []int{2}},                                               // Assigned Client Identifier
	0x13: {fzU16, []int{2}},                                                  // Server Keep Alive
	0x15: {fzString, []int{1, 2, 15}},                                        // Authentication Method
	0x16: {fzBinary, []int{1, 2, 15}},                                        // Authentication Data
	0x17: {fzByte, []int{1}},                                                 // Request Problem Information
	0x18: {fzU32, []int{fzWill}},                                             // Will Delay Interval
	0x19: {fzByte, []int{1}},                                                 // Request Response Information
	0x1A: {fzString, []int{2}},                                               // Response Information
	0x1C: {fzString, []int{2, 14}},                                           // Server Reference
	0x1F: {fzString, []int{2, 4, 5, 6, 7, 9, 11, 14, 15}},                    // Reason String
	0x21: {fzU16, []int{1, 2}},                                               // Receive Maximum
	0x22: {fzU16, []int{1, 2}},                                               // Topic Alias Maximum
	0x23: {fzU16, []int{3}},                                                  // Topic Alias
	0x24: {fzByte, []int{2}},                                                 // Maximum QoS
	0x25: {fzByte, []int{2}},                                                 // Retain Available
	0x26: {fzPair, []int{1, 2, 3, fzWill, 4, 5, 6, 7, 8, 9, 10, 11, 14, 15}}, // User Property
	0x27: {fzU32, []int{1, 2}},                                               // Maximum Packet Size
	0x28: {fzByte, []int{2}},                                                 // Wildcard Subscription Available
	0x29: {fzByte, []int{2}},                                                 // Subscription Identifier Available
	0x2A: {fzByte, []int{2}},                                                 // Shared Subscription Available
}

// fzContexts are the property contexts: packet types with properties, and
// Will Properties.
var fzContexts = []int{1, fzWill, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 15}

// fzRefProps is what the reference parser found: every property's value
// (User Properties and Subscription Identifiers as lists, in order).
type fzRefProps struct {
	single map[packet.PropID]any
	user   []packet.UserProperty
	subIDs []uint32
}

// fzRefParseProps parses a property block (without its length) for
// context ctx. The first violation decides the reason code: an unknown or
// misplaced identifier or a truncated/invalid value is a Malformed Packet;
// a repeated property or a value the standard forbids is a Protocol Error.
func fzRefParseProps(b []byte, ctx int) (fzRefProps, packet.ReasonCode) {
	res := fzRefProps{single: map[packet.PropID]any{}}
	seen := map[byte]bool{}
	str := func() (string, bool) {
		if len(b) < 2 {
			return "", false
		}
		n := int(b[0])<<8 | int(b[1])
		if len(b) < 2+n {
			return "", false
		}
		s := b[2 : 2+n]
		b = b[2+n:]
		if !utf8.Valid(s) || bytes.IndexByte(s, 0) >= 0 {
			return "", false
		}
		return string(s), true
	}
	for len(b) > 0 {
		idv, n, _, bad := fzRefVarint(b)
		if n == 0 || bad {
			return res, packet.MalformedPacket
		}
		b = b[n:]
		if idv > 0xFF {
			return res, packet.MalformedPacket
		}
		id := byte(idv)
		spec, ok := fzSpec[id]
		allowed := false
		for _, c := range spec.in {
			allowed = allowed || c == ctx
		}
		if !ok || !allowed {
			return res, packet.MalformedPacket
		}
		multi := id == 0x26 || (id == 0x0B && ctx == 3)
		if seen[id] && !multi {
			return res, packet.ProtocolError
		}
		seen[id] = true
		pid := packet.PropID(id)
		switch spec.kind {
		case fzByte:
			if len(b) < 1 {
				return res, packet.MalformedPacket
			}
			res.single[pid] = b[0]
			if b[0] > 1 {
				return res, packet.ProtocolError
			}
			b = b[1:]
		case fzU16:
			if len(b) < 2 {
				return res, packet.MalformedPacket
			}
			x := uint16(b[0])<<8 | uint16(b[1])
			b = b[2:]
			if x == 0 && id == 0x21 { // Receive Maximum
				return res, packet.ProtocolError
			}
			if x == 0 && id == 0x23 { // Topic Alias [MQTT-3.3.2-8]
				return res, packet.TopicAliasInvalid
			}
			res.single[pid] = x
		case fzU32:
			if len(b) < 4 {
				return res, packet.MalformedPacket
			}
			x := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			b = b[4:]
			if x == 0 && id == 0x27 { // Maximum Packet Size
				return res, packet.ProtocolError
			}
			res.single[pid] = x
		case fzVarint:
			x, n, _, bad := fzRefVarint(b)
			if n == 0 || bad {
				return res, packet.MalformedPacket
			}
			b = b[n:]
			if x == 0 {
				return res, packet.ProtocolError
			}
			res.subIDs = append(res.subIDs, x)
		case fzString:
			s, ok := str()
			if !ok {
				return res, packet.MalformedPacket
			}
			res.single[pid] = s
		case fzBinary:
			if len(b) < 2 {
				return res, packet.MalformedPacket
			}
			n := int(b[0])<<8 | int(b[1])
			if len(b) < 2+n {
				return res, packet.MalformedPacket
			}
			res.single[pid] = string(b[2 : 2+n])
			b = b[2+n:]
		case fzPair:
			k, ok := str()
			if !ok {
				return res, packet.MalformedPacket
			}
			v, ok := str()
			if !ok {
				return res, packet.MalformedPacket
			}
			res.user = append(res.user, packet.UserProperty{Key: k, Value: v})
		}
	}
	return res, packet.Success
}

// fzPropValue returns property id of p in the representation fzRefProps
// uses (binary data as a string).
func fzPropValue(p *packet.Properties, id packet.PropID) any {
	switch id {
	case packet.PropPayloadFormat:
		return p.PayloadFormat
	case packet.PropMessageExpiry:
		return p.MessageExpiry
	case packet.PropContentType:
		return p.ContentType
	case packet.PropResponseTopic:
		return p.ResponseTopic
	case packet.PropCorrelationData:
		return string(p.CorrelationData)
	case packet.PropSessionExpiry:
		return p.SessionExpiry
	case packet.PropAssignedClientID:
		return p.AssignedClientID
	case packet.PropServerKeepAlive:
		return p.ServerKeepAlive
	case packet.PropAuthMethod:
		return p.AuthMethod
	case packet.PropAuthData:
		return string(p.AuthData)
	case packet.PropRequestProblemInfo:
		return p.RequestProblemInfo
	case packet.PropWillDelay:
		return p.WillDelay
	case packet.PropRequestResponseInfo:
		return p.RequestResponseInfo
	case packet.PropResponseInfo:
		return p.ResponseInfo
	case packet.PropServerReference:
		return p.ServerReference
	case packet.PropReasonString:
		return p.ReasonString
	case packet.PropReceiveMaximum:
		return p.ReceiveMaximum
	case packet.PropTopicAliasMaximum:
		return p.TopicAliasMaximum
	case packet.PropTopicAlias:
		return p.TopicAlias
	case packet.PropMaximumQoS:
		return p.MaximumQoS
	case packet.PropRetainAvailable:
		return p.RetainAvailable
	case packet.PropMaximumPacketSize:
		return p.MaximumPacketSize
	case packet.PropWildcardSubAvailable:
		return p.WildcardSubAvailable
	case packet.PropSubIDAvailable:
		return p.SubIDAvailable
	case packet.PropSharedSubAvailable:
		return p.SharedSubAvailable
	}
	panic("fzPropValue: " + id.String())
}

// fzWrapProps returns the fixed header byte and body of a v5 packet that is
// valid apart from its property block for context ctx, which is block
// (preceded by its Property Length).
func fzWrapProps(ctx int, block []byte) (byte, []byte) {
	pb := packet.AppendVarint(nil, uint32(len(block)))
	pb = append(pb, block...)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	s := func(x string) []byte { return []byte(x) }
	switch ctx {
	case 1:
		return 0x10, cat(s("\x00\x04MQTT\x05\x02\x00\x3c"), pb, s("\x00\x01c"))
	case fzWill:
		return 0x10, cat(s("\x00\x04MQTT\x05\x06\x00\x3c\x00\x00\x01c"), pb, s("\x00\x01t\x00\x01p"))
	case 2:
		return 0x20, cat(s("\x00\x00"), pb)
	case 3:
		return 0x32, cat(s("\x00\x01t\x00\x07"), pb, s("payload"))
	case 4, 5, 7:
		return byte(ctx) << 4, cat(s("\x00\x07\x00"), pb)
	case 6:
		return 0x62, cat(s("\x00\x07\x00"), pb)
	case 8:
		return 0x82, cat(s("\x00\x07"), pb, s("\x00\x01f\x01"))
	case 9:
		return 0x90, cat(s("\x00\x07"), pb, s("\x00"))
	case 10:
		return 0xA2, cat(s("\x00\x07"), pb, s("\x00\x01f"))
	case 11:
		return 0xB0, cat(s("\x00\x07"), pb, s("\x00"))
	case 14:
		return 0xE0, cat(s("\x00"), pb)
	case 15:
		return 0xF0, cat(s("\x00"), pb)
	}
	panic(fmt.Sprint("fzWrapProps: context ", ctx))
}

func FuzzProperties(f *testing.F) {
	f.Add(byte(3), []byte("\x0b\x01\x0b\x02\x26\x00\x01k\x00\x01v"))
	f.Fuzz(func(t *testing.T, ctxSel byte, block []byte) {
		ctx := fzContexts[int(ctxSel)%len(fzContexts)]
		hdr, body := fzWrapProps(ctx, block)
		want, wantCode := fzRefParseProps(block, ctx)
		p := rtCheckDecode(t, hdr, body, packet.V5)
		if wantCode != packet.Success {
			if p != nil {
				t.Fatalf("context %d: Decode accepted a property block the reference rejects with %v: % x", ctx, wantCode, block)
			}
			h := packet.FixedHeader{Type: packet.Type(hdr >> 4), Flags: hdr & 0x0F, Remaining: len(body)}
			_, err := packet.Decode(h, body, packet.V5)
			if packet.CodeOf(err) != wantCode {
				t.Fatalf("context %d: Decode failed with %v, reference says %v: % x", ctx, err, wantCode, block)
			}
			return
		}
		if p == nil {
			h := packet.FixedHeader{Type: packet.Type(hdr >> 4), Flags: hdr & 0x0F, Remaining: len(body)}
			_, err := packet.Decode(h, body, packet.V5)
			t.Fatalf("context %d: Decode rejected a property block the reference accepts: %v: % x", ctx, err, block)
		}
		pctx := packet.Type(ctx)
		if ctx == fzWill {
			pctx = rtWill
		}
		props := rtPropsOf(p, pctx)
		for _, id := range rtPropIDs {
			switch id {
			case packet.PropUser:
				if props.Has(id) != (len(want.user) > 0) || !reflect.DeepEqual(rtNilIfEmpty(props.User), want.user) {
					t.Fatalf("context %d: User Properties %q, want %q", ctx, props.User, want.user)
				}
			case packet.PropSubscriptionID:
				if props.Has(id) != (len(want.subIDs) > 0) || !reflect.DeepEqual(rtNilIfEmpty(props.SubscriptionIDs), want.subIDs) {
					t.Fatalf("context %d: Subscription Identifiers %v, want %v", ctx, props.SubscriptionIDs, want.subIDs)
				}
			default:
				wv, ok := want.single[id]
				if props.Has(id) != ok {
					t.Fatalf("context %d: Has(%v) = %v, reference found it: %v", ctx, id, props.Has(id), ok)
				}
				if ok && fzPropValue(props, id) != wv {
					t.Fatalf("context %d: %v = %#v, want %#v", ctx, id, fzPropValue(props, id), wv)
				}
			}
		}
	})
}

// ---------------------------------------------------------------------------
// FuzzVarint: DecodeVarint against the reference algorithm; AppendVarint,
// VarintSize and DecodeVarint agree.
// ---------------------------------------------------------------------------

func FuzzVarint(f *testing.F) {
	f.Add([]byte{0x80, 0x01}, uint32(128))
	f.Fuzz(func(t *testing.T, data []byte, x uint32) {
		got, n, err := packet.DecodeVarint(data)
		want, wn, short, bad := fzRefVarint(data)
		if (err != nil) != (short || bad) {
			t.Fatalf("DecodeVarint(% x) error %v, reference short=%v bad=%v", data, err, short, bad)
		}
		if err != nil {
			rtCheckErr(t, err, map[packet.ReasonCode]bool{packet.MalformedPacket: true})
		} else {
			if got != want || n != wn {
				t.Fatalf("DecodeVarint(% x) = %d, %d; reference %d, %d", data, got, n, want, wn)
			}
			if got > packet.MaxVarint {
				t.Fatalf("DecodeVarint(% x) = %d exceeds MaxVarint", data, got)
			}
			if enc := packet.AppendVarint(nil, got); !bytes.Equal(enc, data[:n]) {
				t.Fatalf("AppendVarint(%d) = % x, decoded from % x", got, enc, data[:n])
			}
			if packet.VarintSize(got) != n {
				t.Fatalf("VarintSize(%d) = %d, encoding has %d bytes", got, packet.VarintSize(got), n)
			}
		}

		y := x & packet.MaxVarint // AppendVarint keeps 28 bits
		prefix := []byte{0xAA}
		enc := packet.AppendVarint(prefix, x)
		if enc[0] != 0xAA || !bytes.Equal(enc[1:], packet.AppendVarint(nil, y)) {
			t.Fatalf("AppendVarint(%d) = % x, want the encoding of %d after the prefix", x, enc, y)
		}
		enc = enc[1:]
		if len(enc) != packet.VarintSize(y) || len(enc) < 1 || len(enc) > 4 {
			t.Fatalf("AppendVarint(%d) wrote %d bytes, VarintSize says %d", y, len(enc), packet.VarintSize(y))
		}
		d, dn, err := packet.DecodeVarint(append(enc, data...))
		if err != nil || d != y || dn != len(enc) {
			t.Fatalf("DecodeVarint(AppendVarint(%d)) = %d, %d, %v", y, d, dn, err)
		}
		if _, _, err := packet.DecodeVarint(enc[:len(enc)-1]); err == nil {
			t.Fatalf("DecodeVarint accepted a truncated encoding of %d", y)
		}
	})
}

// ---------------------------------------------------------------------------
// FuzzUTF8: ValidUTF8 against utf8.Valid plus the U+0000 rule, directly and
// through the decoder and encoder (a topic filter of UNSUBSCRIBE).
// ---------------------------------------------------------------------------

func FuzzUTF8(f *testing.F) {
	f.Add([]byte("a/b\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		want := utf8.Valid(data) && bytes.IndexByte(data, 0) < 0
		if got := packet.ValidUTF8(data); got != want {
			t.Fatalf("ValidUTF8(%q) = %v, want %v", data, got, want)
		}
		if got := packet.ValidUTF8String(string(data)); got != want {
			t.Fatalf("ValidUTF8String(%q) = %v, want %v", data, got, want)
		}
		if len(data) > 65535 {
			return
		}
		body := append([]byte{0, 1, 0, byte(len(data) >> 8), byte(len(data))}, data...)
		p := rtCheckDecode(t, 0xA2, body, packet.V5)
		if (p != nil) != want {
			t.Fatalf("UNSUBSCRIBE with filter %q: decoded %v, want %v", data, p != nil, want)
		}
		if p != nil && p.(*packet.Unsubscribe).Filters[0] != string(data) {
			t.Fatalf("decoded filter %q, want %q", p.(*packet.Unsubscribe).Filters[0], data)
		}
		_, err := packet.Encode(&packet.Unsubscribe{PacketID: 1, Filters: []string{string(data)}}, packet.V311)
		if (err == nil) != want {
			t.Fatalf("encoding filter %q: %v, want success %v", data, err, want)
		}
	})
}

// ---------------------------------------------------------------------------
// Seed corpora.
// ---------------------------------------------------------------------------

type fzSeed struct {
	name string
	v    packet.Version
	p    packet.Packet
}

// fzSeedPackets is a catalogue of real packets: every type, both versions,
// minimal and property-laden forms.
func fzSeedPackets() []fzSeed {
	var connProps packet.Properties
	connProps.SessionExpiry = 60
	connProps.ReceiveMaximum = 10
	connProps.MaximumPacketSize = 1024
	connProps.TopicAliasMaximum = 5
	connProps.RequestResponseInfo = 1
	connProps.Set(packet.PropRequestProblemInfo) // 0, sent
	connProps.User = []packet.UserProperty{{"a", "b"}, {"a", "c"}}
	connProps.AuthMethod = "SCRAM-SHA-1"
	connProps.AuthData = []byte("client-first")

	var willProps packet.Properties
	willProps.WillDelay = 10
	willProps.PayloadFormat = 1
	willProps.MessageExpiry = 30
	willProps.ContentType = "text/plain"
	willProps.ResponseTopic = "resp"
	willProps.CorrelationData = []byte("corr")
	willProps.User = []packet.UserProperty{{"w", "x"}}

	var ackProps packet.Properties
	ackProps.SessionExpiry = 7200
	ackProps.AssignedClientID = "auto-1234"
	ackProps.ServerKeepAlive = 30
	ackProps.ReceiveMaximum = 100
	ackProps.TopicAliasMaximum = 10
	ackProps.MaximumPacketSize = 1 << 20
	ackProps.Set(packet.PropMaximumQoS) // 0, sent
	ackProps.Set(packet.PropRetainAvailable)
	ackProps.WildcardSubAvailable = 1
	ackProps.Set(packet.PropSubIDAvailable)
	ackProps.SharedSubAvailable = 1
	ackProps.ResponseInfo = "resp/"
	ackProps.ServerReference = "other:1883"
	ackProps.ReasonString = "welcome"
	ackProps.User = []packet.UserProperty{{"srv", "1"}}
	ackProps.AuthMethod = "SCRAM-SHA-1"
	ackProps.AuthData = []byte("server-final")

	var pubProps packet.Properties
	pubProps.PayloadFormat = 1
	pubProps.MessageExpiry = 30
	pubProps.ContentType = "text/plain"
	pubProps.ResponseTopic = "r"
	pubProps.CorrelationData = []byte("c")
	pubProps.TopicAlias = 3
	pubProps.SubscriptionIDs = []uint32{1, 300, 70000, packet.MaxVarint}
	pubProps.User = []packet.UserProperty{{"k", "v"}, {"k", "v2"}, {"", ""}}

	reason := packet.Properties{ReasonString: "because", User: []packet.UserProperty{{"x", "y"}}}
	userOnly := packet.Properties{User: []packet.UserProperty{{"x", "y"}}}

	var discProps packet.Properties
	discProps.Set(packet.PropSessionExpiry)
	discProps.ReasonString = "bye"
	discProps.ServerReference = "other"
	discProps.User = []packet.UserProperty{{"x", "y"}}

	var authProps packet.Properties
	authProps.AuthMethod = "SCRAM-SHA-1"
	authProps.AuthData = []byte{}
	authProps.ReasonString = "more"

	big := bytes.Repeat([]byte("0123456789abcdef"), 1100) // > 16383: 3-byte Remaining Length

	seeds := []fzSeed{
		{"connect-min", packet.V5, &packet.Connect{Version: packet.V5}},
		{"connect-full", packet.V5, &packet.Connect{Version: packet.V5, CleanStart: true, KeepAlive: 60, Props: connProps,
			ClientID: "client-1", Will: &packet.Will{QoS: 1, Retain: true, Props: willProps, Topic: "will/t", Payload: []byte("bye")},
			Username: "user", Password: []byte("pass")}},
		{"connect-password-only", packet.V5, &packet.Connect{Version: packet.V5, ClientID: "c", Password: []byte{}}},
		{"connack-ok", packet.V5, &packet.Connack{}},
		{"connack-full", packet.V5, &packet.Connack{SessionPresent: true, Props: ackProps}},
		{"connack-refused", packet.V5, &packet.Connack{ReasonCode: packet.NotAuthorized, Props: reason}},
		{"publish-qos0", packet.V5, &packet.Publish{Topic: "a/b", Payload: []byte("hello")}},
		{"publish-qos1-props", packet.V5, &packet.Publish{QoS: 1, PacketID: 7, Topic: "a/b", Props: pubProps, Payload: []byte("{}")}},
		{"publish-qos2-dup-retain", packet.V5, &packet.Publish{QoS: 2, PacketID: 65535, Dup: true, Retain: true, Topic: "x"}},
		{"publish-alias-only", packet.V5, &packet.Publish{Props: packet.Properties{TopicAlias: 3}, Payload: []byte("p")}},
		{"publish-big", packet.V5, &packet.Publish{Topic: "big", Payload: big}},
		{"puback-min", packet.V5, &packet.Puback{PacketID: 1}},
		{"puback-code", packet.V5, &packet.Puback{PacketID: 2, ReasonCode: packet.NoMatchingSubscribers}},
		{"puback-props", packet.V5, &packet.Puback{PacketID: 3, ReasonCode: packet.QuotaExceeded, Props: reason}},
		{"pubrec-props", packet.V5, &packet.Pubrec{PacketID: 4, Props: reason}},
		{"pubrel-notfound", packet.V5, &packet.Pubrel{PacketID: 5, ReasonCode: packet.PacketIdentifierNotFound}},
		{"pubcomp-min", packet.V5, &packet.Pubcomp{PacketID: 6}},
		{"subscribe", packet.V5, &packet.Subscribe{PacketID: 8, Props: packet.Properties{SubscriptionIDs: []uint32{42}, User: userOnly.User},
			Subscriptions: []packet.Subscription{{Filter: "a/+/c", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}, {Filter: "$share/g/#", QoS: 1}}}},
		{"suback", packet.V5, &packet.Suback{PacketID: 8, Props: reason, ReasonCodes: []packet.ReasonCode{2, 1, 0, 0x80, 0x87, 0xA2}}},
		{"unsubscribe", packet.V5, &packet.Unsubscribe{PacketID: 9, Props: userOnly, Filters: []string{"a/+/c", "d"}}},
		{"unsuback", packet.V5, &packet.Unsuback{PacketID: 9, Props: reason, ReasonCodes: []packet.ReasonCode{0, 0x11}}},
		{"pingreq", packet.V5, &packet.Pingreq{}},
		{"pingresp", packet.V5, &packet.Pingresp{}},
		{"disconnect-min", packet.V5, &packet.Disconnect{}},
		{"disconnect-will", packet.V5, &packet.Disconnect{ReasonCode: packet.DisconnectWithWillMessage}},
		{"disconnect-props", packet.V5, &packet.Disconnect{ReasonCode: packet.ServerMoved, Props: discProps}},
		{"auth-min", packet.V5, &packet.Auth{}},
		{"auth-continue", packet.V5, &packet.Auth{ReasonCode: packet.ContinueAuthentication, Props: authProps}},

		{"connect-min", packet.V311, &packet.Connect{Version: packet.V311, ClientID: "c", CleanStart: true}},
		{"connect-full", packet.V311, &packet.Connect{Version: packet.V311, KeepAlive: 10, ClientID: "client-1",
			Will: &packet.Will{QoS: 2, Topic: "will/t", Payload: []byte("bye")}, Username: "user", Password: []byte("pass")}},
		{"connack-ok", packet.V311, &packet.Connack{SessionPresent: true}},
		{"connack-refused", packet.V311, &packet.Connack{ReasonCode: packet.V3NotAuthorized}},
		{"publish-qos0", packet.V311, &packet.Publish{Topic: "a/b", Payload: []byte("hello")}},
		{"publish-qos1", packet.V311, &packet.Publish{QoS: 1, PacketID: 7, Topic: "a/b", Payload: []byte("x")}},
		{"publish-qos2-dup-retain", packet.V311, &packet.Publish{QoS: 2, PacketID: 9, Dup: true, Retain: true, Topic: "x"}},
		{"puback", packet.V311, &packet.Puback{PacketID: 1}},
		{"pubrec", packet.V311, &packet.Pubrec{PacketID: 2}},
		{"pubrel", packet.V311, &packet.Pubrel{PacketID: 3}},
		{"pubcomp", packet.V311, &packet.Pubcomp{PacketID: 4}},
		{"subscribe", packet.V311, &packet.Subscribe{PacketID: 5, Subscriptions: []packet.Subscription{{Filter: "a/#", QoS: 1}, {Filter: "b", QoS: 2}}}},
		{"suback", packet.V311, &packet.Suback{PacketID: 5, ReasonCodes: []packet.ReasonCode{1, 2, 0, packet.V3SubackFailure}}},
		{"unsubscribe", packet.V311, &packet.Unsubscribe{PacketID: 6, Filters: []string{"a/#"}}},
		{"unsuback", packet.V311, &packet.Unsuback{PacketID: 6}},
		{"pingreq", packet.V311, &packet.Pingreq{}},
		{"pingresp", packet.V311, &packet.Pingresp{}},
		{"disconnect", packet.V311, &packet.Disconnect{}},
	}
	return seeds
}

// fzMalformed are hand-made invalid packets: header byte, body, version.
var fzMalformed = []struct {
	name string
	v    packet.Version
	hdr  byte
	body string
}{
	{"connect-reserved-flag", packet.V5, 0x10, "\x00\x04MQTT\x05\x03\x00\x3c\x00\x00\x01c"},
	{"connect-mqtt31", packet.V311, 0x10, "\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01c"},
	{"connect-level6", packet.V5, 0x10, "\x00\x04MQTT\x06\x02\x00\x3c\x00\x00\x01c"},
	{"connect-will-qos3", packet.V311, 0x10, "\x00\x04MQTT\x04\x1e\x00\x3c\x00\x01c\x00\x01t\x00\x00"},
	{"connect-trailing", packet.V311, 0x10, "\x00\x04MQTT\x04\x02\x00\x3c\x00\x01cX"},
	{"publish-qos3", packet.V5, 0x36, "\x00\x01t\x00\x01\x00"},
	{"publish-qos0-dup", packet.V311, 0x38, "\x00\x01t"},
	{"publish-pid0", packet.V311, 0x32, "\x00\x01t\x00\x00"},
	{"publish-bad-utf8", packet.V311, 0x30, "\x00\x02\xc0\x80"},
	{"publish-nul-topic", packet.V5, 0x30, "\x00\x01\x00\x00"},
	{"publish-prop-len-too-long", packet.V5, 0x30, "\x00\x01t\x05\x01\x01"},
	{"publish-topic-alias-0", packet.V5, 0x30, "\x00\x01t\x03\x23\x00\x00"},
	{"publish-dup-content-type", packet.V5, 0x30, "\x00\x01t\x06\x03\x00\x00\x03\x00\x00"},
	{"publish-nonminimal-proplen", packet.V5, 0x30, "\x00\x01t\x80\x00"},
	{"puback-pid0", packet.V5, 0x40, "\x00\x00"},
	{"puback-bad-code", packet.V5, 0x40, "\x00\x01\x02"},
	{"puback-v311-trailing", packet.V311, 0x40, "\x00\x01\x00"},
	{"pubrel-flags", packet.V311, 0x60, "\x00\x01"},
	{"subscribe-flags", packet.V311, 0x80, "\x00\x01\x00\x01a\x00"},
	{"subscribe-empty", packet.V311, 0x82, "\x00\x01"},
	{"subscribe-rh3", packet.V5, 0x82, "\x00\x01\x00\x00\x01a\x30"},
	{"subscribe-two-subids", packet.V5, 0x82, "\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00"},
	{"suback-v311-bad-code", packet.V311, 0x90, "\x00\x01\x03"},
	{"unsuback-v311-payload", packet.V311, 0xB0, "\x00\x01\x00"},
	{"pingreq-body", packet.V311, 0xC0, "\x00"},
	{"disconnect-v311-body", packet.V311, 0xE0, "\x00"},
	{"auth-v311", packet.V311, 0xF0, ""},
	{"reserved-type-0", packet.V5, 0x00, ""},
	{"connack-reserved-flags", packet.V5, 0x20, "\x02\x00\x00"},
	{"connack-will-delay", packet.V5, 0x20, "\x00\x00\x05\x18\x00\x00\x00\x01"},
}

// fzPropBlocks are property blocks for FuzzProperties that the packets do
// not cover: each error class once.
var fzPropBlocks = []struct {
	name  string
	ctx   int
	block string
}{
	{"dup-session-expiry", 1, "\x11\x00\x00\x00\x01\x11\x00\x00\x00\x02"},
	{"not-allowed-topic-alias", 1, "\x23\x00\x01"},
	{"unknown-id", 2, "\x7f\x00"},
	{"id-2-bytes", 2, "\x80\x01\x00"},
	{"receive-max-0", 2, "\x21\x00\x00"},
	{"max-qos-2", 2, "\x24\x02"},
	{"max-packet-0", 1, "\x27\x00\x00\x00\x00"},
	{"subid-0", 8, "\x0b\x00"},
	{"subid-5-bytes", 3, "\x0b\xff\xff\xff\xff\x01"},
	{"subid-multi-publish", 3, "\x0b\x01\x0b\x80\x01\x0b\xff\xff\xff\x7f"},
	{"user-truncated", 4, "\x26\x00\x01k\x00"},
	{"user-bad-utf8", 11, "\x26\x00\x01k\x00\x01\xff"},
	{"reason-string-twice", 14, "\x1f\x00\x00\x1f\x00\x00"},
	{"will-delay-in-will", fzWill, "\x18\x00\x00\x00\x05\x01\x01"},
	{"will-delay-in-connect", 1, "\x18\x00\x00\x00\x05"},
	{"auth-data-empty", 15, "\x15\x00\x01m\x16\x00\x00"},
	{"truncated-u32", 1, "\x11\x00\x00"},
}

func fzCorpusFile(vals ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		case uint32:
			fmt.Fprintf(&b, "uint32(%d)\n", v)
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		default:
			panic(fmt.Sprintf("fzCorpusFile: %T", v))
		}
	}
	return b.Bytes()
}

// fzBuildCorpus returns the seed corpus: target name -> file name -> content.
func fzBuildCorpus(t *testing.T) map[string]map[string][]byte {
	corpus := map[string]map[string][]byte{}
	add := func(target, name string, vals ...any) {
		if corpus[target] == nil {
			corpus[target] = map[string][]byte{}
		}
		corpus[target][name] = fzCorpusFile(vals...)
	}
	streams := map[packet.Version][]byte{}
	for _, s := range fzSeedPackets() {
		enc, err := packet.Encode(s.p, s.v)
		if err != nil {
			t.Fatalf("seed %s: %v", s.name, err)
		}
		name := fmt.Sprintf("v%d-%s", s.v, s.name)
		h, body := rtSplit(t, enc)
		add("FuzzDecode", name, fzVersionByte(s.v), byte(h.Type)<<4|h.Flags, body)
		if len(enc) < 4096 {
			streams[s.v] = append(streams[s.v], enc...)
		}
		// The property blocks of the v5 packets, in their context.
		if s.v == packet.V5 {
			for _, ctx := range fzContexts {
				pctx := packet.Type(ctx)
				if ctx == fzWill {
					pctx = rtWill
				}
				if (pctx == rtWill && s.p.Type() != packet.CONNECT) || (pctx != rtWill && pctx != s.p.Type()) {
					continue
				}
				props := rtPropsOf(s.p, pctx)
				if props == nil || (pctx == rtWill && s.p.(*packet.Connect).Will == nil) {
					continue
				}
				blk, err := packet.Encode(rtWrapProps(pctx, *props), packet.V5)
				if err != nil {
					t.Fatalf("seed %s props: %v", s.name, err)
				}
				block := fzExtractProps(t, blk, ctx)
				if len(block) == 0 {
					continue
				}
				sel := byte(0)
				for i, c := range fzContexts {
					if c == ctx {
						sel = byte(i)
					}
				}
				add("FuzzProperties", fmt.Sprintf("%s-ctx%d", s.name, ctx), sel, block)
			}
		}
	}
	for _, m := range fzMalformed {
		add("FuzzDecode", fmt.Sprintf("bad-v%d-%s", m.v, m.name), fzVersionByte(m.v), m.hdr, []byte(m.body))
	}
	for _, pb := range fzPropBlocks {
		sel := byte(0)
		for i, c := range fzContexts {
			if c == pb.ctx {
				sel = byte(i)
			}
		}
		add("FuzzProperties", "bad-"+pb.name, sel, []byte(pb.block))
	}

	// Reader: whole sessions in several read/limit configurations, and
	// broken streams.
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		s := streams[v]
		vb := fzVersionByte(v)
		add("FuzzReader", fmt.Sprintf("v%d-session-nolimit-chunk1", v), vb|0<<1|0<<4, s)
		add("FuzzReader", fmt.Sprintf("v%d-session-nolimit-chunk7-raw", v), vb|3<<1|0<<4|0x80, s)
		add("FuzzReader", fmt.Sprintf("v%d-session-max300-chunk64", v), vb|5<<1|3<<4, s)
		add("FuzzReader", fmt.Sprintf("v%d-session-max40-all", v), vb|7<<1|2<<4|1<<6, s)
		add("FuzzReader", fmt.Sprintf("v%d-truncated", v), vb|2<<1, s[:len(s)-3])
		add("FuzzReader", fmt.Sprintf("v%d-half-header", v), vb|1<<1, append(append([]byte{}, s[:20]...), 0x30, 0x80))
	}
	add("FuzzReader", "bad-varint-5", byte(1), []byte("\xc0\x00\x30\xff\xff\xff\xff\x01"))
	add("FuzzReader", "bad-varint-nonminimal", byte(1|1<<1), []byte("\xc0\x00\x30\x80\x00"))
	add("FuzzReader", "too-large-header-only", byte(1|1<<4), []byte("\x30\xff\xff\xff\x7f"))
	add("FuzzReader", "reserved-type", byte(0), []byte("\xd0\x00\x00\x00"))
	add("FuzzReader", "auth-in-v311", byte(0), []byte("\xf0\x00"))

	for _, vs := range []struct {
		name string
		b    []byte
		x    uint32
	}{
		{"zero", []byte{0}, 0}, {"127", []byte{0x7f}, 127}, {"128", []byte{0x80, 0x01}, 128},
		{"16383", []byte{0xff, 0x7f}, 16383}, {"16384", []byte{0x80, 0x80, 0x01}, 16384},
		{"2097151", []byte{0xff, 0xff, 0x7f}, 2097151}, {"2097152", []byte{0x80, 0x80, 0x80, 0x01}, 2097152},
		{"max", []byte{0xff, 0xff, 0xff, 0x7f}, packet.MaxVarint}, {"over-max", []byte{0xff, 0xff, 0xff, 0xff, 0x01}, 0xFFFFFFFF},
		{"nonminimal", []byte{0x80, 0x00}, 1 << 28}, {"nonminimal-3", []byte{0xff, 0x80, 0x00}, 0},
		{"short", []byte{0x80}, 0}, {"empty", nil, 1},
	} {
		add("FuzzVarint", vs.name, vs.b, vs.x)
	}

	for _, us := range []struct{ name, s string }{
		{"ascii", "sport/tennis/player1"}, {"empty", ""}, {"nul", "a\x00b"}, {"bom", "\xef\xbb\xbfa"},
		{"surrogate", "\xed\xa0\x80"}, {"overlong", "\xc0\xaf"}, {"max-rune", "\xf4\x8f\xbf\xbf"},
		{"beyond-max", "\xf4\x90\x80\x80"}, {"truncated", "\xe6\x97"}, {"nonchar", "\xef\xbf\xbf"},
		{"mixed", "日本/😀/é"}, {"control", "\x01\x1f\x7f\xc2\x80\xc2\x9f"},
	} {
		add("FuzzUTF8", us.name, []byte(us.s))
	}
	return corpus
}

// fzExtractProps returns the property block (without its length) for
// context ctx from the encoding of rtWrapProps(ctx, props).
func fzExtractProps(t *testing.T, enc []byte, ctx int) []byte {
	_, body := rtSplit(t, enc)
	var off int
	switch ctx {
	case 1:
		off = 10
	case fzWill:
		off = 10 + 1 + 3 // empty CONNECT properties, client id "c"
	case 2:
		off = 2
	case 3:
		off = 3 // topic "t", QoS 0
	case 4, 5, 6, 7:
		off = 3
	case 8, 9, 10, 11:
		off = 2
	case 14, 15:
		off = 1
	}
	if off >= len(body) {
		return nil // a short form without a property block
	}
	n, k, err := packet.DecodeVarint(body[off:])
	if err != nil {
		t.Fatalf("extracting properties: %v", err)
	}
	return body[off+k : off+k+int(n)]
}

// TestWriteFuzzSeeds (re)writes the seed corpora under testdata/fuzz when
// PACKET_WRITE_FUZZ_SEEDS=1; otherwise it checks the generated seeds are
// all present, so the checked-in corpus cannot silently fall behind.
func TestWriteFuzzSeeds(t *testing.T) {
	corpus := fzBuildCorpus(t)
	write := os.Getenv("PACKET_WRITE_FUZZ_SEEDS") == "1"
	for target, files := range corpus {
		dir := filepath.Join("testdata", "fuzz", target)
		if write {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, content := range files {
			path := filepath.Join(dir, name)
			if write {
				if err := os.WriteFile(path, content, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("seed %s missing (run with PACKET_WRITE_FUZZ_SEEDS=1): %v", path, err)
			} else if !bytes.Equal(got, content) {
				t.Errorf("seed %s is out of date (run with PACKET_WRITE_FUZZ_SEEDS=1)", path)
			}
		}
	}
}
