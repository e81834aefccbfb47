package mqttquic

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/quic-go/quic-go/quicvarint"
)

func TestFlowHeaderEncoding(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    FlowHeader
		want []byte
	}{
		{"client data flow, expire 300", FlowHeader{Type: FlowClientData, ID: ClientFlowID(1), Expire: 300}, []byte{0x12, 0x02, 0x41, 0x2C, 0x00}},
		{"control", FlowHeader{Type: FlowControl}, []byte{0x11, 0x00, 0x00}},
		{"control tolerant", FlowHeader{Type: FlowControl, Flags: FlowFlags{ErrTolerance: 1}}, []byte{0x11, 0x00, 0x04}},
		{"server data flow, discard", FlowHeader{Type: FlowServerData, ID: ServerFlowID(1), Flags: FlowFlags{Clean: true}}, []byte{0x13, 0x03, 0x00, 0x01}},
		{"user defined", FlowHeader{Type: FlowUserDefined, ID: ClientFlowID(2), Expire: 1}, []byte{0x14, 0x04, 0x01, 0x00}},
		// QUIC variable-length integer boundaries: 1, 2, 4 and 8 bytes.
		{"id 63", FlowHeader{Type: FlowClientData, ID: 62, Expire: 63}, []byte{0x12, 0x3E, 0x3F, 0x00}},
		{"expire 64", FlowHeader{Type: FlowClientData, ID: 64, Expire: 64}, []byte{0x12, 0x40, 0x40, 0x40, 0x40, 0x00}},
		{"expire 16383", FlowHeader{Type: FlowClientData, ID: 2, Expire: 16383}, []byte{0x12, 0x02, 0x7F, 0xFF, 0x00}},
		{"expire 16384", FlowHeader{Type: FlowClientData, ID: 2, Expire: 16384}, []byte{0x12, 0x02, 0x80, 0x00, 0x40, 0x00, 0x00}},
		{"expire 2^30-1", FlowHeader{Type: FlowClientData, ID: 2, Expire: 1<<30 - 1}, []byte{0x12, 0x02, 0xBF, 0xFF, 0xFF, 0xFF, 0x00}},
		{"expire 2^30", FlowHeader{Type: FlowClientData, ID: 2, Expire: 1 << 30}, []byte{0x12, 0x02, 0xC0, 0, 0, 0, 0x40, 0, 0, 0, 0x00}},
		{"max values", FlowHeader{Type: FlowClientData, ID: FlowID(quicvarint.Max - 1), Expire: quicvarint.Max},
			[]byte{0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00}},
		// Every flag bit, most significant first.
		{"optional headers", FlowHeader{Type: FlowClientData, ID: 2, Flags: FlowFlags{OptionalHeaders: true}, Optional: []byte{0xAA, 0xBB}},
			[]byte{0x12, 0x02, 0x00, 0x80, 0x02, 0xAA, 0xBB}},
		{"persistent subscriptions", FlowHeader{Type: FlowClientData, ID: 2, Flags: FlowFlags{PersistentSubscriptions: true}}, []byte{0x12, 0x02, 0x00, 0x40}},
		{"persistent topic alias", FlowHeader{Type: FlowClientData, ID: 2, Flags: FlowFlags{PersistentTopicAlias: true}}, []byte{0x12, 0x02, 0x00, 0x20}},
		{"persistent qos", FlowHeader{Type: FlowClientData, ID: 2, Flags: FlowFlags{PersistentQoS: true}}, []byte{0x12, 0x02, 0x00, 0x10}},
		{"err tolerance 2", FlowHeader{Type: FlowClientData, ID: 2, Flags: FlowFlags{ErrTolerance: 2}}, []byte{0x12, 0x02, 0x00, 0x08}},
		{"err tolerance 3", FlowHeader{Type: FlowClientData, ID: 2, Flags: FlowFlags{ErrTolerance: 3}}, []byte{0x12, 0x02, 0x00, 0x0C}},
		{"abort if no state", FlowHeader{Type: FlowClientData, ID: 2, Flags: FlowFlags{AbortIfNoState: true}}, []byte{0x12, 0x02, 0x00, 0x02}},
		{"clean", FlowHeader{Type: FlowClientData, ID: 2, Flags: FlowFlags{Clean: true}}, []byte{0x12, 0x02, 0x00, 0x01}},
		{"all flags", FlowHeader{Type: FlowClientData, ID: 2, Flags: ParseFlowFlags(0xFF), Optional: []byte{}}, []byte{0x12, 0x02, 0x00, 0xFF, 0x00}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.h.AppendTo(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("encoded % x, want % x", got, tc.want)
			}
			h, n, err := ParseFlowHeader(append(got, 0x30, 0x00)) // a packet follows
			if err != nil || n != len(tc.want) {
				t.Fatalf("decode: n=%d err=%v", n, err)
			}
			if !reflect.DeepEqual(h, tc.h) {
				t.Fatalf("decoded %+v, want %+v", h, tc.h)
			}
			for i := 1; i < len(tc.want); i++ {
				if _, _, err := ParseFlowHeader(tc.want[:i]); err != ErrShortHeader {
					t.Fatalf("prefix of %d bytes: %v", i, err)
				}
			}
		})
	}
}

func TestFlowFlagsByte(t *testing.T) {
	for b := 0; b < 256; b++ {
		f := ParseFlowFlags(byte(b))
		if f.Byte() != byte(b) {
			t.Fatalf("0x%02x -> %+v -> 0x%02x", b, f, f.Byte())
		}
		if f.Tolerant() != (b&0x0C != 0) {
			t.Fatalf("0x%02x tolerant %v", b, f.Tolerant())
		}
	}
}

func TestFlowHeaderErrors(t *testing.T) {
	// Optional headers making the header 33 bytes long.
	long := append([]byte{0x12, 0x02, 0x00, 0x84, 28}, make([]byte, 28)...)
	if _, _, err := ParseFlowHeader(long); err != ErrHeaderTooLong {
		t.Fatalf("33-byte header: %v", err)
	}
	// Exactly 32 bytes is fine.
	ok := append([]byte{0x12, 0x02, 0x00, 0x84, 27}, make([]byte, 27)...)
	if h, n, err := ParseFlowHeader(ok); err != nil || n != 32 || !h.Flags.Tolerant() {
		t.Fatalf("32-byte header: n=%d err=%v", n, err)
	}
	// A length announcing too much fails before the bytes arrive.
	if _, _, err := ParseFlowHeader([]byte{0x12, 0x02, 0x00, 0x80, 0x40, 0x40}); err != ErrHeaderTooLong {
		t.Fatalf("announced 64 bytes: %v", err)
	}
	if _, _, err := ParseFlowHeader([]byte{0x15, 0x02, 0x00, 0x00}); err != ErrUnknownFlow {
		t.Fatalf("type 0x15: %v", err)
	}
	if _, _, err := ParseFlowHeader(nil); err != ErrShortHeader {
		t.Fatalf("empty: %v", err)
	}
	// A non-minimal encoding decodes (RFC 9000 allows it).
	if h, n, err := ParseFlowHeader([]byte{0x40, 0x12, 0x40, 0x02, 0x00, 0x00}); err != nil || n != 6 || h.Type != FlowClientData || h.ID != 2 {
		t.Fatalf("non-minimal: %+v %d %v", h, n, err)
	}
	h := FlowHeader{Type: FlowClientData, ID: 2, Flags: FlowFlags{OptionalHeaders: true}, Optional: make([]byte, 28)}
	if _, err := h.AppendTo(nil); err != ErrHeaderTooLong {
		t.Fatalf("encode 33 bytes: %v", err)
	}
	if _, err := (&FlowHeader{Type: FlowClientData, Expire: quicvarint.Max + 1}).AppendTo(nil); err == nil {
		t.Fatal("encoded an expire interval beyond 2^62-1")
	}
	if _, err := (&FlowHeader{Type: 0x10}).AppendTo(nil); err != ErrUnknownFlow {
		t.Fatalf("encode type 0x10: %v", err)
	}
}

func TestFlowIDs(t *testing.T) {
	if ClientFlowID(1) != 2 || ServerFlowID(1) != 3 || ClientFlowID(5).Sequence() != 5 {
		t.Fatal("flow id arithmetic")
	}
	if ClientFlowID(1).ServerInitiated() || !ServerFlowID(1).ServerInitiated() {
		t.Fatal("initiator bit")
	}
}

func TestErrorCodeNames(t *testing.T) {
	for code, name := range streamErrorNames {
		if code.String() != name {
			t.Fatalf("%x: %q", uint64(code), code.String())
		}
	}
	if StreamFlowRefused.String() != "FlowRefused" || StreamBadFlowID.String() != "BadFlowId" ||
		ConnProtocolLevel0.String() != "ProtocolLevel0" || ConnNoError.String() != "NoError" {
		t.Fatal("names")
	}
	if StreamErrorCode(0x42).String() != "StreamErrorCode(0x42)" || ConnErrorCode(0x42).String() != "ConnErrorCode(0x42)" {
		t.Fatal("unknown codes")
	}
	if FlowType(0x99).String() != "flow-type(0x99)" || FlowClientData.String() != "client-data" {
		t.Fatal("flow type names")
	}
	fe := &FlowError{Code: StreamBadFlowID, Flow: 4, Reason: "x"}
	if fe.Error() != "mqttquic: flow 4: BadFlowId: x" {
		t.Fatal(fe.Error())
	}
	if _, ok := StreamErrorCodeOf(errors.New("x")); ok {
		t.Fatal("code of a plain error")
	}
}

func TestFrameLen(t *testing.T) {
	for _, tc := range []struct {
		b             []byte
		total, status int
	}{
		{[]byte{0xC0, 0x00}, 2, frameOK},
		{[]byte{0x30}, 0, frameShort},
		{[]byte{0x30, 0x80}, 0, frameShort},
		{[]byte{0x30, 0x80, 0x01}, 3 + 128, frameOK},
		{[]byte{0x30, 0x80, 0x00}, 0, frameBad},
		{[]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF}, 0, frameBad},
		{[]byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, 5 + 268435455, frameOK},
	} {
		total, _, st := frameLen(tc.b)
		if total != tc.total || st != tc.status {
			t.Fatalf("% x: %d %d", tc.b, total, st)
		}
	}
}

// FuzzFlowHeader: whatever decodes re-encodes to bytes that decode to the
// same header, and encoding is stable.
func FuzzFlowHeader(f *testing.F) {
	f.Add([]byte{0x12, 0x02, 0x41, 0x2C, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseFlowHeader(b)
		if err != nil {
			return
		}
		if n <= 0 || n > MaxFlowHeaderSize || n > len(b) {
			t.Fatalf("length %d of %d", n, len(b))
		}
		enc, err := h.AppendTo(nil)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", h, err)
		}
		if len(enc) > n {
			t.Fatalf("re-encoded %d bytes from %d", len(enc), n)
		}
		h2, n2, err := ParseFlowHeader(enc)
		if err != nil || n2 != len(enc) {
			t.Fatalf("decode re-encoded % x: %d %v", enc, n2, err)
		}
		if h2.Optional == nil && h.Optional != nil && len(h.Optional) == 0 {
			h2.Optional = h.Optional
		}
		if !reflect.DeepEqual(h, h2) {
			t.Fatalf("%+v != %+v", h, h2)
		}
		enc2, _ := h2.AppendTo(nil)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("% x != % x", enc, enc2)
		}
	})
}
