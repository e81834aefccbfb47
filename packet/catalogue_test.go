package packet_test

// Table tests driven by the packet catalogue (internal/testpackets): every
// valid entry decodes, through Reader.ReadPacket and through Decode, to
// exactly the catalogued packet and encodes back to the catalogued bytes
// (or to the shorter form the standard allows, Entry.Canonical); every
// malformed entry fails with exactly the catalogued reason code.
//
// Comparison is reflect.DeepEqual. Properties carry an unexported mask of
// the properties seen on the wire; the catalogue builds its expected values
// with testpackets.Mark, which sets that mask the way decoding does, so no
// special comparison is needed. Only decoding into a value that was used
// before (which keeps the capacity of its slices and so may leave an empty
// non-nil slice where a fresh decode leaves nil) is compared with
// catLooseEqual, which treats nil and empty slices alike.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mqtt5go/mqtt5/internal/testpackets"
	"github.com/mqtt5go/mqtt5/packet"
)

// catSplit parses the fixed header at the start of b as a receiver does.
func catSplit(b []byte) (packet.FixedHeader, []byte, error) {
	if len(b) == 0 {
		return packet.FixedHeader{}, nil, io.ErrUnexpectedEOF
	}
	rem, n, err := packet.DecodeVarint(b[1:])
	if err != nil {
		return packet.FixedHeader{}, nil, err
	}
	h := packet.FixedHeader{Type: packet.Type(b[0] >> 4), Flags: b[0] & 0x0F, Remaining: int(rem)}
	return h, b[1+n:], nil
}

type catDecoder interface {
	packet.Packet
	Decode(flags byte, body []byte, v packet.Version) error
}

// catNew returns a new zero value of p's type.
func catNew(p packet.Packet) catDecoder {
	return reflect.New(reflect.TypeOf(p).Elem()).Interface().(catDecoder)
}

// catNewOfType returns a new zero packet of type t.
func catNewOfType(t packet.Type) catDecoder {
	switch t {
	case packet.CONNECT:
		return new(packet.Connect)
	case packet.CONNACK:
		return new(packet.Connack)
	case packet.PUBLISH:
		return new(packet.Publish)
	case packet.PUBACK:
		return new(packet.Puback)
	case packet.PUBREC:
		return new(packet.Pubrec)
	case packet.PUBREL:
		return new(packet.Pubrel)
	case packet.PUBCOMP:
		return new(packet.Pubcomp)
	case packet.SUBSCRIBE:
		return new(packet.Subscribe)
	case packet.SUBACK:
		return new(packet.Suback)
	case packet.UNSUBSCRIBE:
		return new(packet.Unsubscribe)
	case packet.UNSUBACK:
		return new(packet.Unsuback)
	case packet.PINGREQ:
		return new(packet.Pingreq)
	case packet.PINGRESP:
		return new(packet.Pingresp)
	case packet.DISCONNECT:
		return new(packet.Disconnect)
	case packet.AUTH:
		return new(packet.Auth)
	}
	return nil
}

// catDump prints a packet with its pointers followed.
func catDump(p packet.Packet) string {
	if p == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("%T%+v", p, reflect.ValueOf(p).Elem().Interface())
	if c, ok := p.(*packet.Connect); ok && c.Will != nil {
		s += fmt.Sprintf(" Will=%+v", *c.Will)
	}
	return s
}

// catLooseEqual is reflect.DeepEqual except that a nil slice equals an
// empty one.
func catLooseEqual(a, b any) bool { return catLoose(reflect.ValueOf(a), reflect.ValueOf(b)) }

func catLoose(a, b reflect.Value) bool {
	if a.Kind() != b.Kind() || a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return catLoose(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !catLoose(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !catLoose(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.String:
		return a.String() == b.String()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return a.Uint() == b.Uint()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	}
	panic("catLoose: unexpected kind " + a.Kind().String())
}

func catVersions() []packet.Version { return []packet.Version{packet.V311, packet.V5} }

func TestCatalogueValid(t *testing.T) {
	all := testpackets.All()
	for _, e := range all {
		if !e.Valid() {
			continue
		}
		t.Run(e.Name, func(t *testing.T) {
			want := e.Packet

			// Reader.ReadPacket, whole stream at once and one byte per read.
			for _, mode := range []string{"whole", "one-byte"} {
				var src io.Reader = bytes.NewReader(e.Bytes)
				if mode == "one-byte" {
					src = iotest.OneByteReader(src)
				}
				r := packet.NewReader(src, 0)
				got, err := r.ReadPacket(e.Version)
				if err != nil {
					t.Fatalf("%s: ReadPacket: %v", mode, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: ReadPacket:\n got %s\nwant %s", mode, catDump(got), catDump(want))
				}
				if _, err := r.ReadPacket(e.Version); err != io.EOF {
					t.Fatalf("%s: after the packet: %v, want io.EOF (remaining length wrong?)", mode, err)
				}
			}

			// Decode from the fixed header and body.
			h, body, err := catSplit(e.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if h.Type != want.Type() {
				t.Fatalf("type %v, want %v", h.Type, want.Type())
			}
			if h.Remaining != len(body) || h.Size() != len(e.Bytes) {
				t.Fatalf("remaining length %d, body %d, size %d of %d", h.Remaining, len(body), h.Size(), len(e.Bytes))
			}
			if err := h.Validate(e.Version); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got, err := packet.Decode(h, body, e.Version)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Decode:\n got %s\nwant %s", catDump(got), catDump(want))
			}

			// Decoding into a value used before by every entry of the same
			// type and version gives the same packet.
			dirty := catNew(want)
			for _, o := range all {
				if o.Version != e.Version || o.Bytes[0]>>4 != e.Bytes[0]>>4 {
					continue
				}
				oh, ob, err := catSplit(o.Bytes)
				if err != nil || len(ob) != oh.Remaining {
					continue
				}
				_ = dirty.Decode(oh.Flags, ob, o.Version) // malformed ones too
				if err := dirty.Decode(h.Flags, body, e.Version); err != nil {
					t.Fatalf("Decode after %s: %v", o.Name, err)
				}
				if !catLooseEqual(dirty, want) {
					t.Fatalf("Decode after %s:\n got %s\nwant %s", o.Name, catDump(dirty), catDump(want))
				}
			}

			// Encode: the catalogued value and the decoded one.
			enc := e.Encoded()
			for _, p := range []packet.Packet{want, got} {
				b, err := p.AppendTo(nil, e.Version)
				if err != nil {
					t.Fatalf("AppendTo: %v", err)
				}
				if !bytes.Equal(b, enc) {
					t.Fatalf("AppendTo:\n got % x\nwant % x", b, enc)
				}
				pre := []byte("prefix")
				b, err = p.AppendTo(pre, e.Version)
				if err != nil || !bytes.Equal(b[:6], []byte("prefix")) || !bytes.Equal(b[6:], enc) {
					t.Fatalf("AppendTo(prefix): % x, %v", b, err)
				}
				if b, err := packet.Encode(p, e.Version); err != nil || !bytes.Equal(b, enc) {
					t.Fatalf("Encode: % x, %v", b, err)
				}
			}
			if pub, ok := want.(*packet.Publish); ok && pub.Size(e.Version) != len(enc) {
				t.Fatalf("Publish.Size = %d, want %d", pub.Size(e.Version), len(enc))
			}
			if e.Canonical != nil {
				// The shorter form decodes to the same packet.
				if bytes.Equal(e.Canonical, e.Bytes) || len(e.Canonical) >= len(e.Bytes) {
					t.Fatalf("Canonical % x is not shorter than Bytes", e.Canonical)
				}
				got, err := packet.NewReader(bytes.NewReader(e.Canonical), 0).ReadPacket(e.Version)
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("Canonical decodes to %s, %v", catDump(got), err)
				}
			}
		})
	}
}

func TestCatalogueMalformed(t *testing.T) {
	for _, e := range testpackets.All() {
		if e.Valid() {
			continue
		}
		t.Run(e.Name, func(t *testing.T) {
			if e.Code == 0 || !e.Code.IsError() {
				t.Fatalf("catalogue: malformed entry without a failure code")
			}
			checkCode := func(how string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: no error, want %v", how, e.Code)
				}
				if !errors.Is(err, e.Code) || packet.CodeOf(err) != e.Code {
					t.Fatalf("%s: %v (code %#x), want code %#x", how, err, byte(packet.CodeOf(err)), byte(e.Code))
				}
				var perr *packet.Error
				if !errors.As(err, &perr) || perr.Code != e.Code {
					t.Fatalf("%s: %v is not an *packet.Error with code %#x", how, err, byte(e.Code))
				}
				var rc packet.ReasonCode
				if !errors.As(err, &rc) || rc != e.Code {
					t.Fatalf("%s: errors.As(ReasonCode) = %v", how, rc)
				}
			}

			for _, mode := range []string{"whole", "one-byte"} {
				var src io.Reader = bytes.NewReader(e.Bytes)
				if mode == "one-byte" {
					src = iotest.OneByteReader(src)
				}
				p, err := packet.NewReader(src, 0).ReadPacket(e.Version)
				if p != nil {
					t.Fatalf("%s: ReadPacket returned %s", mode, catDump(p))
				}
				if e.Truncated {
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("%s: ReadPacket: %v, want io.ErrUnexpectedEOF", mode, err)
					}
					continue
				}
				checkCode("ReadPacket/"+mode, err)
			}

			h, body, err := catSplit(e.Bytes)
			if err != nil {
				checkCode("remaining length", err)
				return
			}
			if !e.Truncated && len(body) != h.Remaining {
				t.Fatalf("catalogue: body %d bytes, remaining length %d", len(body), h.Remaining)
			}
			p, err := packet.Decode(h, body, e.Version)
			if p != nil {
				t.Fatalf("Decode returned %s", catDump(p))
			}
			checkCode("Decode", err)

			// The type's own Decode on the body agrees, unless the failure
			// is in the fixed header, which Decode(FixedHeader) checks first.
			if h.Validate(e.Version) == nil && len(body) == h.Remaining {
				d := catNewOfType(h.Type)
				checkCode("(*"+h.Type.String()+").Decode", d.Decode(h.Flags, body, e.Version))
			}
		})
	}
}

// TestCatalogueStream reads every valid entry of a version from one stream,
// in chunks of several sizes, with ReadPacket and with ReadRaw.
func TestCatalogueStream(t *testing.T) {
	for _, v := range catVersions() {
		entries := testpackets.Valid(v)
		var stream []byte
		for _, e := range entries {
			stream = append(stream, e.Bytes...)
		}
		for _, chunk := range []int{1, 2, 3, 7, 64, 1 << 20} {
			t.Run(fmt.Sprintf("%v/chunk-%d", v, chunk), func(t *testing.T) {
				r := packet.NewReader(catChunks(stream, chunk), 0)
				r.InitialSize = 16 // force growth and compaction
				for _, e := range entries {
					got, err := r.ReadPacket(v)
					if err != nil || !reflect.DeepEqual(got, e.Packet) {
						t.Fatalf("%s: %s, %v", e.Name, catDump(got), err)
					}
				}
				if _, err := r.ReadPacket(v); err != io.EOF {
					t.Fatalf("end: %v", err)
				}
				r = packet.NewReader(catChunks(stream, chunk), 0)
				for _, e := range entries {
					h, body, err := r.ReadRaw(v)
					if err != nil {
						t.Fatalf("%s: ReadRaw: %v", e.Name, err)
					}
					got, err := packet.Decode(h, body, v)
					if err != nil || !reflect.DeepEqual(got, e.Packet) {
						t.Fatalf("%s: %s, %v", e.Name, catDump(got), err)
					}
				}
				if _, _, err := r.ReadRaw(v); err != io.EOF {
					t.Fatalf("end: %v", err)
				}
			})
		}
	}
}

// catChunkReader returns at most n bytes per Read.
type catChunkReader struct {
	b []byte
	n int
}

func catChunks(b []byte, n int) io.Reader { return &catChunkReader{b, n} }

func (r *catChunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}

var (
	catStatementRe = regexp.MustCompile(`^MQTT-\d\.\d+\.\d+-\d+$`)
	catV311Re      = regexp.MustCompile(`^3\.1\.1:MQTT-\d[.-]\d+\.\d+-\d+$`)
	catSectionRe   = regexp.MustCompile(`^§\d+(\.\d+)+$`)
)

// TestCatalogueShape checks the catalogue itself: unique names, every type
// covered in both versions, statement IDs that exist in the standard.
func TestCatalogueShape(t *testing.T) {
	all := testpackets.All()
	names := map[string]bool{}
	type key struct {
		v packet.Version
		t packet.Type
	}
	valid, malformed := map[key]int{}, map[key]int{}
	nv, nm := map[packet.Version]int{}, map[packet.Version]int{}
	var statements map[string]bool
	// The statement IDs of MQTT 5.0, kept beside the conformance check.
	b, err := os.ReadFile("../internal/conformance/testdata/statement-ids.txt")
	if err != nil {
		t.Fatal(err)
	}
	statements = map[string]bool{}
	for _, id := range strings.Fields(string(b)) {
		statements[id] = true
	}
	for _, e := range all {
		if names[e.Name] {
			t.Errorf("duplicate name %s", e.Name)
		}
		names[e.Name] = true
		if !strings.HasPrefix(e.Name, map[packet.Version]string{packet.V311: "v311/", packet.V5: "v5/"}[e.Version]) {
			t.Errorf("%s: name does not start with its version", e.Name)
		}
		if e.Valid() == (e.Code != 0) {
			t.Errorf("%s: a valid entry has no code, a malformed one has no packet", e.Name)
		}
		if e.Truncated && e.Valid() {
			t.Errorf("%s: truncated but valid", e.Name)
		}
		k := key{e.Version, packet.Type(e.Bytes[0] >> 4)}
		if e.Valid() {
			valid[k]++
			nv[e.Version]++
		} else {
			malformed[k]++
			nm[e.Version]++
		}
		for _, s := range e.Spec {
			switch {
			case catStatementRe.MatchString(s):
				if statements != nil && !statements[s] {
					t.Errorf("%s: %s is not a statement of MQTT 5.0", e.Name, s)
				}
			case catV311Re.MatchString(s), catSectionRe.MatchString(s):
			default:
				t.Errorf("%s: bad spec reference %q", e.Name, s)
			}
		}
	}
	for _, v := range catVersions() {
		for typ := packet.CONNECT; typ <= packet.AUTH; typ++ {
			k := key{v, typ}
			min := 2
			switch {
			case typ == packet.AUTH && v == packet.V311:
				min = 0
			case typ == packet.PINGREQ || typ == packet.PINGRESP,
				v == packet.V311 && typ == packet.DISCONNECT:
				min = 1 // a single valid form
			}
			if valid[k] < min {
				t.Errorf("%v %v: %d valid entries, want at least %d", v, typ, valid[k], min)
			}
			if malformed[k] == 0 {
				t.Errorf("%v %v: no malformed entry", v, typ)
			}
		}
		t.Logf("%v: %d valid, %d malformed", v, nv[v], nm[v])
	}
	if statements == nil {
		t.Log("normative statements not found; statement IDs checked for form only")
	}
}
