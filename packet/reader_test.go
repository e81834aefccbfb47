package packet_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/mqtt5go/mqtt5/packet"
)

// rdScript is an io.Reader that returns its chunks one per Read, then
// fails the test if read again (or returns EOF when eof is set).
type rdScript struct {
	t      *testing.T
	chunks [][]byte
	eof    bool
	reads  int
}

func (r *rdScript) Read(p []byte) (int, error) {
	r.reads++
	if len(r.chunks) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		r.t.Errorf("Read called after the script ended (read %d)", r.reads)
		return 0, io.ErrClosedPipe
	}
	n := copy(p, r.chunks[0])
	if n < len(r.chunks[0]) {
		r.chunks[0] = r.chunks[0][n:]
	} else {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// rdHuge is a reader that claims a PUBLISH of the largest size and then
// serves its body without end, counting what it serves.
type rdHuge struct {
	hdr    []byte
	served int
}

func (r *rdHuge) Read(p []byte) (int, error) {
	if len(r.hdr) > 0 {
		n := copy(p, r.hdr)
		r.hdr = r.hdr[n:]
		return n, nil
	}
	r.served += len(p)
	return len(p), nil
}

// TestReaderMaxPacketSizeBeforeBody: a packet over MaxPacketSize is refused
// from its fixed header; the body is neither read nor allocated.
func TestReaderMaxPacketSizeBeforeBody(t *testing.T) {
	// PUBLISH claiming 268,435,455 bytes (ff ff ff 7f).
	hdr := []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}
	src := &rdScript{t: t, chunks: [][]byte{hdr}}
	r := packet.NewReader(src, 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, body, err := r.ReadRaw(packet.V5)
	runtime.ReadMemStats(&after)
	if body != nil || !errors.Is(err, packet.PacketTooLarge) || packet.CodeOf(err) != packet.PacketTooLarge {
		t.Fatalf("ReadRaw: %v, body %d bytes", err, len(body))
	}
	var perr *packet.Error
	if !errors.As(err, &perr) || perr.Type != packet.PUBLISH {
		t.Fatalf("error %#v", err)
	}
	if src.reads != 1 {
		t.Fatalf("%d reads, want 1 (the header)", src.reads)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Fatalf("allocated %d bytes refusing the packet", grew)
	}
	// Asking again costs no read and no buffer: at most the error value.
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := r.ReadRaw(packet.V5); !errors.Is(err, packet.PacketTooLarge) {
			t.Fatal(err)
		}
	})
	if allocs > 1 || src.reads != 1 {
		t.Fatalf("%v allocs, %d reads per refused read", allocs, src.reads)
	}
	if _, err := r.ReadPacket(packet.V5); !errors.Is(err, packet.PacketTooLarge) {
		t.Fatalf("ReadPacket: %v", err)
	}

	// The limit counts the whole packet, fixed header included.
	pkt := []byte{0x30, 0x07, 0, 3, 'a', '/', 'b', 'h', 'i'} // 9 bytes (3.1.1)
	for _, c := range []struct {
		max int
		ok  bool
	}{{9, true}, {10, true}, {8, false}, {0, true}} {
		_, err := packet.NewReader(bytes.NewReader(pkt), c.max).ReadPacket(packet.V311)
		if (err == nil) != c.ok {
			t.Errorf("MaxPacketSize %d: %v", c.max, err)
		}
	}
}

// TestReaderGrowsWithData: with no limit, a header claiming a huge body
// costs memory only as the body actually arrives.
func TestReaderGrowsWithData(t *testing.T) {
	src := &rdScript{t: t, chunks: [][]byte{{0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00}}, eof: true}
	r := packet.NewReader(src, 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := r.ReadRaw(packet.V5)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadRaw: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("allocated %d bytes for a body that never came", grew)
	}
	// A stream that does deliver: memory follows what was received.
	h := &rdHuge{hdr: []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}}
	r = packet.NewReader(iotest.HalfReader(io.LimitReader(h, 3<<20)), 0)
	runtime.ReadMemStats(&before)
	_, _, err = r.ReadRaw(packet.V5)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadRaw: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("allocated %d bytes for %d bytes received", grew, h.served)
	}
}

func TestReaderOneByteReads(t *testing.T) {
	var stream []byte
	var want []packet.Packet
	for i := 1; i <= 50; i++ {
		p := &packet.Publish{QoS: 1, PacketID: uint16(i), Topic: "a/b", Payload: bytes.Repeat([]byte{byte(i)}, i*10)}
		p.Props.User = []packet.UserProperty{{Key: "n", Value: string(rune('a' + i%26))}}
		b, err := p.AppendTo(nil, packet.V5)
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, b...)
		want = append(want, p)
	}
	for _, raw := range []bool{false, true} {
		r := packet.NewReader(iotest.OneByteReader(bytes.NewReader(stream)), 0)
		for i, w := range want {
			var got packet.Packet
			var err error
			if raw {
				var h packet.FixedHeader
				var body []byte
				h, body, err = r.ReadRaw(packet.V5)
				if err == nil {
					got, err = packet.Decode(h, body, packet.V5)
				}
			} else {
				got, err = r.ReadPacket(packet.V5)
			}
			if err != nil {
				t.Fatalf("packet %d: %v", i, err)
			}
			gb, _ := got.AppendTo(nil, packet.V5)
			wb, _ := w.AppendTo(nil, packet.V5)
			if !bytes.Equal(gb, wb) {
				t.Fatalf("packet %d differs", i)
			}
		}
		if _, err := r.ReadPacket(packet.V5); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	}
}

// TestReaderSeveralPacketsOneRead: packets that arrive together cost one
// Read call, and ReadPacket results stay valid after later reads.
func TestReaderSeveralPacketsOneRead(t *testing.T) {
	var stream []byte
	for i := 1; i <= 20; i++ {
		stream = append(stream, 0x40, 0x02, 0x00, byte(i)) // PUBACK i
	}
	stream = append(stream, 0xC0, 0x00) // PINGREQ
	src := &rdScript{t: t, chunks: [][]byte{stream}, eof: true}
	r := packet.NewReader(src, 0)
	var got []packet.Packet
	for i := 1; i <= 20; i++ {
		p, err := r.ReadPacket(packet.V5)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
		if r.Buffered() != len(stream)-4*i {
			t.Fatalf("Buffered = %d after %d packets", r.Buffered(), i)
		}
	}
	if p, err := r.ReadPacket(packet.V5); err != nil || p.Type() != packet.PINGREQ {
		t.Fatalf("PINGREQ: %v %v", p, err)
	}
	if src.reads != 1 {
		t.Fatalf("%d reads for one chunk", src.reads)
	}
	if _, err := r.ReadPacket(packet.V5); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	for i, p := range got {
		if p.(*packet.Puback).PacketID != uint16(i+1) {
			t.Fatalf("packet %d changed: %+v", i, p)
		}
	}
}

// TestReaderLargeThenSmall reads a packet larger than the initial buffer
// and the shrink threshold, then small ones; ReadRaw's body stays valid
// until the next read.
func TestReaderLargeThenSmall(t *testing.T) {
	big := &packet.Publish{Topic: "big", Payload: bytes.Repeat([]byte("0123456789"), 20_000)}
	bb, _ := big.AppendTo(nil, packet.V311)
	small := []byte{0xC0, 0x00}
	stream := append(append(append([]byte{}, bb...), small...), small...)
	for _, chunk := range []int{1 << 20, 1000, 7} {
		r := packet.NewReader(catChunks(stream, chunk), 0)
		r.ShrinkAbove = 4096
		h, body, err := r.ReadRaw(packet.V311)
		if err != nil || h.Remaining != len(bb)-4 {
			t.Fatalf("big: %v %+v", err, h)
		}
		if !bytes.Equal(body, bb[4:]) {
			t.Fatal("big body differs")
		}
		for i := 0; i < 2; i++ {
			if h, body, err := r.ReadRaw(packet.V311); err != nil || h.Type != packet.PINGREQ || len(body) != 0 {
				t.Fatalf("small %d: %v %+v", i, err, h)
			}
		}
		if _, _, err := r.ReadRaw(packet.V311); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	}
}

func TestReaderEOF(t *testing.T) {
	cases := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"empty", nil, io.EOF},
		{"first-byte-only", []byte{0x30}, io.ErrUnexpectedEOF},
		{"mid-remaining-length", []byte{0x30, 0x80}, io.ErrUnexpectedEOF},
		{"no-body", []byte{0x30, 0x05}, io.ErrUnexpectedEOF},
		{"mid-body", []byte{0x30, 0x05, 0x00, 0x03, 'a'}, io.ErrUnexpectedEOF},
		{"after-one-packet-mid-next", []byte{0xC0, 0x00, 0x40, 0x02, 0x00}, io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		for _, one := range []bool{false, true} {
			var src io.Reader = bytes.NewReader(c.stream)
			if one {
				src = iotest.OneByteReader(src)
			}
			r := packet.NewReader(src, 0)
			var err error
			for err == nil {
				_, err = r.ReadPacket(packet.V5)
			}
			if err != c.want {
				t.Errorf("%s (one byte %v): %v, want %v", c.name, one, err, c.want)
			}
		}
	}
	// Data and io.EOF in the same Read: the packet, then io.EOF.
	r := packet.NewReader(iotest.DataErrReader(bytes.NewReader([]byte{0xC0, 0x00})), 0)
	if p, err := r.ReadPacket(packet.V5); err != nil || p.Type() != packet.PINGREQ {
		t.Fatalf("DataErrReader: %v %v", p, err)
	}
	if _, err := r.ReadPacket(packet.V5); err != io.EOF {
		t.Fatalf("DataErrReader end: %v", err)
	}
}

type rdErr struct{ err error }

func (r rdErr) Read([]byte) (int, error) { return 0, r.err }

type rdNothing struct{}

func (rdNothing) Read([]byte) (int, error) { return 0, nil }

func TestReaderErrors(t *testing.T) {
	boom := errors.New("network down")
	if _, err := packet.NewReader(rdErr{boom}, 0).ReadPacket(packet.V5); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
	r := packet.NewReader(io.MultiReader(bytes.NewReader([]byte{0x30, 0x05, 0x00}), rdErr{boom}), 0)
	if _, err := r.ReadPacket(packet.V5); !errors.Is(err, boom) {
		t.Errorf("read error mid-packet: %v", err)
	}
	if _, err := packet.NewReader(rdNothing{}, 0).ReadPacket(packet.V5); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("empty reads: %v", err)
	}
	// Header errors are reported before the body is read.
	for _, c := range []struct {
		b    []byte
		v    packet.Version
		code packet.ReasonCode
	}{
		{[]byte{0x00, 0x00}, packet.V5, packet.MalformedPacket},
		{[]byte{0xF0, 0x00}, packet.V311, packet.MalformedPacket},
		{[]byte{0x36, 0x10}, packet.V5, packet.MalformedPacket},
		{[]byte{0x30, 0x80, 0x00}, packet.V5, packet.MalformedPacket},
		{[]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF}, packet.V5, packet.MalformedPacket},
	} {
		src := &rdScript{t: t, chunks: [][]byte{c.b}}
		if _, _, err := packet.NewReader(src, 0).ReadRaw(c.v); packet.CodeOf(err) != c.code {
			t.Errorf("% x: %v", c.b, err)
		}
	}
}

func TestReaderReset(t *testing.T) {
	r := packet.NewReader(bytes.NewReader([]byte{0xC0, 0x00, 0xD0}), 0)
	if p, err := r.ReadPacket(packet.V5); err != nil || p.Type() != packet.PINGREQ {
		t.Fatal(p, err)
	}
	if r.Buffered() != 1 {
		t.Fatalf("Buffered = %d", r.Buffered())
	}
	r.Reset(bytes.NewReader([]byte{0xD0, 0x00}))
	if r.Buffered() != 0 {
		t.Fatalf("Buffered after Reset = %d", r.Buffered())
	}
	if p, err := r.ReadPacket(packet.V5); err != nil || p.Type() != packet.PINGRESP {
		t.Fatal(p, err)
	}
	// The zero Reader (after Reset) works too.
	var z packet.Reader
	z.Reset(bytes.NewReader([]byte{0xE0, 0x00}))
	if p, err := z.ReadPacket(packet.V311); err != nil || p.Type() != packet.DISCONNECT {
		t.Fatal(p, err)
	}
}

// TestReaderSteadyStateAllocs: reading publishes with ReadRaw from a
// stream allocates nothing once the buffer has its size.
func TestReaderSteadyStateAllocs(t *testing.T) {
	p := &packet.Publish{Topic: "sensors/1/temp", Payload: bytes.Repeat([]byte{'x'}, 100)}
	b, _ := p.AppendTo(nil, packet.V5)
	r := packet.NewReader(&bmLoop{b: bytes.Repeat(b, 50)}, 0)
	var pub packet.Publish
	allocs := testing.AllocsPerRun(1000, func() {
		h, body, err := r.ReadRaw(packet.V5)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Decode(h.Flags, body, packet.V5); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per packet", allocs)
	}
}

// Complete tells whether ReadRaw would return without reading: what is
// left in the buffer after one packet decides it.
func TestReaderComplete(t *testing.T) {
	pub, err := (&packet.Publish{Topic: "a/b", Payload: []byte("hello")}).AppendTo(nil, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		rest []byte
		want bool
	}{
		{"nothing", nil, false},
		{"one header byte", pub[:1], false},
		{"header without body", pub[:2], false},
		{"part of the body", pub[:len(pub)-1], false},
		{"whole packet", pub, true},
		{"invalid remaining length", []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, true},
	}
	for _, tc := range cases {
		in := append(append([]byte{}, pub...), tc.rest...)
		r := packet.NewReader(bytes.NewReader(in), 0) // one Read returns all of it
		if r.Complete() {
			t.Fatalf("%s: complete before any read", tc.name)
		}
		if _, _, err := r.ReadRaw(packet.V5); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := r.Complete(); got != tc.want {
			t.Errorf("%s: Complete() = %v, want %v", tc.name, got, tc.want)
		}
	}
}
