package packet

import (
	"bytes"
	"testing"
)

// TestReaderShrinksAfterLargePacket looks inside the Reader: the buffer
// grows for a large packet and is released once the data in it has been
// consumed, so an idle connection does not keep it; the large packet's
// body stays valid until the next read.
func TestReaderShrinksAfterLargePacket(t *testing.T) {
	big := &Publish{Topic: "big", Payload: bytes.Repeat([]byte{'x'}, 100_000)}
	bb, err := big.AppendTo(nil, V311)
	if err != nil {
		t.Fatal(err)
	}
	ping := []byte{0xC0, 0x00}
	for _, shrink := range []int{0, 1024} { // 0: the 64 KiB default
		stream := append(append(append(append([]byte{}, ping...), bb...), ping...), ping...)
		r := NewReader(bytes.NewReader(stream), 0)
		r.ShrinkAbove = shrink

		if _, _, err := r.ReadRaw(V311); err != nil {
			t.Fatal(err)
		}
		if len(r.buf) != 512 {
			t.Fatalf("initial buffer %d bytes, want 512", len(r.buf))
		}
		_, body, err := r.ReadRaw(V311)
		if err != nil || !bytes.Equal(body, bb[len(bb)-100_000-5:]) {
			t.Fatalf("big: %v, %d bytes", err, len(body))
		}
		if len(r.buf) < 100_000 && r.buf != nil {
			t.Fatalf("buffer %d bytes while holding the big packet", len(r.buf))
		}
		for range 2 {
			if h, _, err := r.ReadRaw(V311); err != nil || h.Type != PINGREQ {
				t.Fatalf("ping: %v", err)
			}
		}
		// The large buffer was released when the big packet was consumed;
		// the pings came through a buffer of the initial size.
		if len(r.buf) > 512 {
			t.Fatalf("shrink %d: buffer of %d bytes kept after draining", shrink, len(r.buf))
		}
		r.r = bytes.NewReader(ping)
		if _, _, err := r.ReadRaw(V311); err != nil || len(r.buf) != 512 {
			t.Fatalf("after shrink: %v, buffer %d", err, len(r.buf))
		}
	}

	// Below the threshold the buffer is kept for reuse.
	r := NewReader(bytes.NewReader(append(append([]byte{}, bb...), ping...)), 0)
	r.ShrinkAbove = 1 << 20
	for range 2 {
		if _, _, err := r.ReadRaw(V311); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.buf) < 100_000 {
		t.Fatalf("buffer of %d bytes, want kept", len(r.buf))
	}
}
