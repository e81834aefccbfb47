package client

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	mqttbroker "github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// text returns n bytes of deterministic, compressible text.
func text(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"temperature", "humidity", "sensor", "kitchen", "value", "21.5", "ok", "alarm", "{", "}", ":"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

func gzipBytes(t testing.TB, data []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func zlibBytes(t testing.TB, data []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := zlib.NewWriterLevel(&b, level)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func TestCodecRoundTrip(t *testing.T) {
	payload := text(8 << 10)
	for _, alg := range []Compression{Gzip, Deflate} {
		for _, level := range []int{0, 1, 5, 9} {
			t.Run(fmt.Sprintf("%s/level%d", alg, level), func(t *testing.T) {
				c := &Codec{Compression: alg, Level: level}
				out, ct, err := c.Compress(payload)
				if err != nil {
					t.Fatal(err)
				}
				want := map[Compression]string{Gzip: ContentTypeGzip, Deflate: ContentTypeDeflate}[alg]
				if ct != want || len(out) >= len(payload) {
					t.Fatalf("content type %q, %d -> %d bytes", ct, len(payload), len(out))
				}
				back, decoded, err := (&Codec{}).Decompress(ct, out)
				if err != nil || !decoded || !bytes.Equal(back, payload) {
					t.Fatalf("decompress: decoded %v, err %v, equal %v", decoded, err, bytes.Equal(back, payload))
				}
			})
		}
	}
	// The formats are the standard ones: the standard readers decode them.
	out, _, _ := (&Codec{Compression: Gzip}).Compress(payload)
	if zr, err := gzip.NewReader(bytes.NewReader(out)); err != nil {
		t.Fatal(err)
	} else if b := new(bytes.Buffer); func() error { _, err := b.ReadFrom(zr); return err }() != nil || !bytes.Equal(b.Bytes(), payload) {
		t.Fatal("gzip output not readable by compress/gzip")
	}
	out, _, _ = (&Codec{Compression: Deflate}).Compress(payload)
	if zr, err := zlib.NewReader(bytes.NewReader(out)); err != nil {
		t.Fatal(err)
	} else if b := new(bytes.Buffer); func() error { _, err := b.ReadFrom(zr); return err }() != nil || !bytes.Equal(b.Bytes(), payload) {
		t.Fatal("deflate output not readable by compress/zlib")
	}
}

func TestCodecLevel(t *testing.T) {
	payload := text(64 << 10)
	for _, alg := range []Compression{Gzip, Deflate} {
		fast, _, err1 := (&Codec{Compression: alg, Level: 1}).Compress(payload)
		best, _, err9 := (&Codec{Compression: alg, Level: 9}).Compress(payload)
		if err1 != nil || err9 != nil || len(best) >= len(fast) {
			t.Errorf("%s: level 1 %d bytes, level 9 %d bytes (%v %v)", alg, len(fast), len(best), err1, err9)
		}
	}
	for _, bad := range []Codec{{Compression: Gzip, Level: 10}, {Compression: Gzip, Level: -1}, {Compression: "brotli"},
		{MinSize: -1}, {MaxDecompressed: -1}} {
		if _, _, err := bad.Compress(payload); err == nil {
			t.Errorf("%+v accepted", bad)
		}
		if _, err := New(Options{Server: "mqtt://127.0.0.1:1", Codec: &bad}); err == nil {
			t.Errorf("New with %+v accepted", bad)
		}
	}
}

func TestCodecThreshold(t *testing.T) {
	c := &Codec{Compression: Gzip, MinSize: 100}
	below := text(99)
	out, ct, err := c.Compress(below)
	if err != nil || ct != "" || !bytes.Equal(out, below) {
		t.Fatalf("below the threshold: %q %d bytes %v", ct, len(out), err)
	}
	at := bytes.Repeat([]byte("a"), 100)
	if out, ct, err = c.Compress(at); err != nil || ct != ContentTypeGzip || len(out) >= 100 {
		t.Fatalf("at the threshold: %q %d bytes %v", ct, len(out), err)
	}
	// Incompressible data stays raw: compressing would make it bigger.
	noise := make([]byte, 4096)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	if out, ct, err = c.Compress(noise); err != nil || ct != "" || !bytes.Equal(out, noise) {
		t.Fatalf("incompressible: %q %d bytes %v", ct, len(out), err)
	}
	// NoCompression only decodes.
	if out, ct, err = (&Codec{}).Compress(at); err != nil || ct != "" || !bytes.Equal(out, at) {
		t.Fatalf("NoCompression: %q %v", ct, err)
	}

	// Messages: the original is not modified; a Content Type of the
	// application's own leaves the payload alone.
	m := &Message{Topic: "t", Payload: at, PayloadFormat: 1}
	enc, err := c.encodeMessage(m)
	if err != nil || enc == m || enc.ContentType != ContentTypeGzip || enc.PayloadFormat != 0 ||
		m.ContentType != "" || m.PayloadFormat != 1 || !bytes.Equal(m.Payload, at) {
		t.Fatalf("encodeMessage: %+v (original %+v) %v", enc, m, err)
	}
	m = &Message{Topic: "t", Payload: at, ContentType: "application/json"}
	if enc, err = c.encodeMessage(m); err != nil || enc != m {
		t.Fatalf("own content type: %+v %v", enc, err)
	}
}

func TestCodecPassThroughAndErrors(t *testing.T) {
	c := &Codec{}
	raw := []byte{0x1f, 0x8b, 1, 2, 3}
	for _, ct := range []string{"", "application/json", "application/gzip+json", "text/plain"} {
		out, decoded, err := c.Decompress(ct, raw)
		if err != nil || decoded || !bytes.Equal(out, raw) {
			t.Errorf("content type %q: decoded %v err %v", ct, decoded, err)
		}
	}
	// Media types are compared without parameters and case.
	gz := gzipBytes(t, []byte("hello"), 9)
	if out, decoded, err := c.Decompress("Application/GZIP; charset=binary", gz); err != nil || !decoded || string(out) != "hello" {
		t.Errorf("parameters and case: %q %v %v", out, decoded, err)
	}
	// Corrupt or truncated payloads fail.
	for name, tc := range map[string]struct {
		ct      string
		payload []byte
	}{
		"gzip garbage":    {ContentTypeGzip, []byte("not gzip at all")},
		"gzip truncated":  {ContentTypeGzip, gz[:len(gz)-6]},
		"gzip trailing":   {ContentTypeGzip, append(append([]byte(nil), gz...), "junk"...)},
		"deflate garbage": {ContentTypeDeflate, []byte("not zlib")},
		"deflate gzip":    {ContentTypeDeflate, gz},
		"empty":           {ContentTypeGzip, nil},
	} {
		if _, decoded, err := c.Decompress(tc.ct, tc.payload); err == nil || !decoded {
			t.Errorf("%s: decoded %v err %v", name, decoded, err)
		}
	}
	// decodeMessage wraps the failure in a *CodecError and leaves the
	// message alone.
	m := &Message{Topic: "t", ContentType: ContentTypeGzip, Payload: []byte("x")}
	var ce *CodecError
	if err := c.decodeMessage(m); !errors.As(err, &ce) || ce.Topic != "t" || ce.ContentType != ContentTypeGzip {
		t.Errorf("decodeMessage: %v", err)
	}
}

func TestCodecCap(t *testing.T) {
	const limit = 1 << 20
	c := &Codec{MaxDecompressed: limit}
	exact := bytes.Repeat([]byte{'z'}, limit)
	for name, enc := range map[string]func([]byte) ([]byte, string){
		"gzip":    func(b []byte) ([]byte, string) { return gzipBytes(t, b, 1), ContentTypeGzip },
		"deflate": func(b []byte) ([]byte, string) { return zlibBytes(t, b, 1), ContentTypeDeflate },
	} {
		p, ct := enc(exact)
		if out, _, err := c.Decompress(ct, p); err != nil || len(out) != limit {
			t.Errorf("%s: exactly the limit: %d bytes, %v", name, len(out), err)
		}
		p, ct = enc(append(exact, 'z'))
		if _, _, err := c.Decompress(ct, p); !errors.Is(err, ErrDecompressedTooLarge) {
			t.Errorf("%s: one byte over the limit: %v", name, err)
		}
		p, ct = enc(make([]byte, 4<<20))
		if _, _, err := c.Decompress(ct, p); !errors.Is(err, ErrDecompressedTooLarge) {
			t.Errorf("%s: 4 MiB: %v", name, err)
		}
	}
	// The default limit (gzip streams concatenate: 17 members of 1 MiB).
	p := bytes.Repeat(gzipBytes(t, make([]byte, 1<<20), 9), DefaultMaxDecompressed>>20+1)
	if _, _, err := (&Codec{}).Decompress(ContentTypeGzip, p); !errors.Is(err, ErrDecompressedTooLarge) {
		t.Errorf("default limit: %v", err)
	}
}

// bitWriter writes a DEFLATE bit stream (RFC 1951, section 3.1.1).
type bitWriter struct {
	buf []byte
	acc uint64
	n   uint
}

// bits writes the n low bits of v, least significant first.
func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.n
	w.n += n
	for w.n >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

// code writes a Huffman code of n bits, most significant first.
func (w *bitWriter) code(c uint64, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.bits(c>>uint(i)&1, 1)
	}
}

// zeros writes n zero bits.
func (w *bitWriter) zeros(n int) {
	for ; n > 0 && w.n != 0; n-- {
		w.bits(0, 1)
	}
	w.buf = append(w.buf, make([]byte, n/8)...)
	w.bits(0, uint(n%8))
}

func (w *bitWriter) flush() []byte {
	if w.n > 0 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc, w.n = 0, 0
	}
	return w.buf
}

// zlibZeroBomb returns a zlib stream that expands to size = 1+258*matches
// zero bytes: one dynamic Huffman block in which a literal 0 is followed by
// matches of length 258 at distance 1, each coded in two zero bits, so that
// the stream is almost only zero bytes (and itself compresses ~1000:1).
func zlibZeroBomb(matches int) (stream []byte, size int64) {
	var w bitWriter
	w.buf = []byte{0x78, 0x01} // zlib header: DEFLATE, 32 KiB window
	w.bits(1, 1)               // BFINAL
	w.bits(2, 2)               // BTYPE: dynamic Huffman codes
	w.bits(29, 5)              // HLIT: 286 literal/length codes
	w.bits(0, 5)               // HDIST: 1 distance code
	w.bits(14, 4)              // HCLEN: 18 code length codes
	// Code length code lengths, in the order of RFC 1951: 18 -> 1 bit,
	// 2 -> 2 bits, 1 -> 2 bits.
	for _, sym := range []int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1} {
		l := map[int]uint64{18: 1, 2: 2, 1: 2}[sym]
		w.bits(l, 3)
	}
	// Canonical code length codes: 18 = 0, 1 = 10, 2 = 11.
	two := func() { w.code(3, 2) }
	one := func() { w.code(2, 2) }
	zeroRun := func(n int) { w.code(0, 1); w.bits(uint64(n-11), 7) }
	two()                         // literal 0: 2 bits
	zeroRun(138)                  // literals 1..138: unused
	zeroRun(117)                  // literals 139..255: unused
	two()                         // 256 (end of block): 2 bits
	zeroRun(28)                   // lengths 257..284: unused
	one()                         // 285 (length 258): 1 bit
	one()                         // distance code 0 (distance 1): 1 bit
	w.code(2, 2)                  // literal 0 (code 10)
	w.zeros(2 * matches)          // matches: 285 (code 0), distance 0 (code 0)
	w.code(3, 2)                  // end of block (code 11)
	size = 1 + 258*int64(matches) // all zeros: Adler-32 a = 1, b = size
	b := uint32(size % 65521)
	out := w.flush()
	return append(out, byte(b>>8), byte(b), 0, 1), size
}

// TestCodecZipBomb: a payload of about 1 KiB that expands to 1 GiB (a
// bomb inside a bomb), and the 1 MiB inner bomb that expands to 1 GiB in a
// single layer, are refused after at most MaxDecompressed bytes of output,
// with memory bounded by it; only one layer is ever decoded.
func TestCodecZipBomb(t *testing.T) {
	// The construction, checked in full on a small instance.
	small, size := zlibZeroBomb(4000)
	out, decoded, err := (&Codec{MaxDecompressed: 2 << 20}).Decompress(ContentTypeDeflate, small)
	if err != nil || !decoded || int64(len(out)) != size || bytes.Count(out, []byte{0}) != len(out) {
		t.Fatalf("small bomb: %d bytes (want %d zeros), %v", len(out), size, err)
	}

	inner, size := zlibZeroBomb((1<<30 + 257) / 258)
	nested := gzipBytes(t, inner, 9)
	t.Logf("inner bomb %d bytes, nested bomb %d bytes, expanding to %d bytes", len(inner), len(nested), size)
	if size < 1<<30 || len(nested) > 1200 {
		t.Fatalf("bomb of %d bytes expanding to %d", len(nested), size)
	}

	const limit = 1 << 20
	c := &Codec{MaxDecompressed: limit}
	for name, tc := range map[string]struct {
		ct      string
		payload []byte
	}{
		"inner zlib bomb": {ContentTypeDeflate, inner},
		// 1024 gzip members of 1 MiB of zeros each: gzip streams concatenate.
		"multi-member gzip bomb": {ContentTypeGzip, bytes.Repeat(gzipBytes(t, make([]byte, 1<<20), 9), 1024)},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, decoded, err := c.Decompress(tc.ct, tc.payload)
		runtime.ReadMemStats(&after)
		if !decoded || !errors.Is(err, ErrDecompressedTooLarge) {
			t.Fatalf("%s: decoded %v, err %v", name, decoded, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
			t.Fatalf("%s: %d bytes allocated while decoding (limit %d)", name, alloc, limit)
		}
	}

	// One layer is decoded, never more: the nested bomb gives back the
	// inner one, and a smaller limit stops even that.
	out, _, err = (&Codec{}).Decompress(ContentTypeGzip, nested)
	if err != nil || !bytes.Equal(out, inner) {
		t.Fatalf("nested bomb, default limit: %d bytes, %v", len(out), err)
	}
	if _, _, err := (&Codec{MaxDecompressed: 64 << 10}).Decompress(ContentTypeGzip, nested); !errors.Is(err, ErrDecompressedTooLarge) {
		t.Fatalf("nested bomb, 64 KiB limit: %v", err)
	}
}

func TestCodecNeedsV5(t *testing.T) {
	_, err := New(Options{Server: "mqtt://127.0.0.1:1", Version: packet.V311, Codec: &Codec{Compression: Gzip}})
	if !errors.Is(err, ErrCodecNeedsV5) {
		t.Fatalf("3.1.1 with a codec: %v", err)
	}
	if _, err := New(Options{Server: "mqtt://127.0.0.1:1", Version: packet.V311, Codec: &Codec{}}); !errors.Is(err, ErrCodecNeedsV5) {
		t.Fatalf("3.1.1 with a decoding codec: %v", err)
	}
}

// TestCodecOurBroker publishes through the codec and receives with and
// without it.
func TestCodecOurBroker(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{})
	ctx := testCtx(t)

	rawCh := make(chan *Message, 16)
	raw, _ := connect(t, Options{Server: ob.url(), ClientID: "raw"})
	if _, err := raw.Subscribe(ctx, []Subscription{{Filter: "z/#", QoS: 1}}, func(m *Message) { rawCh <- m }); err != nil {
		t.Fatal(err)
	}
	decCh := make(chan *Message, 16)
	errCh := make(chan error, 16)
	dec, _ := connect(t, Options{Server: ob.url(), ClientID: "dec",
		Codec: &Codec{MaxDecompressed: 1 << 20}, ManualAck: true, ReceiveMaximum: 1,
		OnError: func(err error) { errCh <- err }})
	if _, err := dec.Subscribe(ctx, []Subscription{{Filter: "z/#", QoS: 1}}, func(m *Message) {
		decCh <- m
		m.Ack()
	}); err != nil {
		t.Fatal(err)
	}
	gz, _ := connect(t, Options{Server: ob.url(), ClientID: "gz", Codec: &Codec{Compression: Gzip, MinSize: 64, Level: 9}})
	zl, _ := connect(t, Options{Server: ob.url(), ClientID: "zl", Codec: &Codec{Compression: Deflate}})
	plain, _ := connect(t, Options{Server: ob.url(), ClientID: "plain"})

	big := text(4096)
	for _, tc := range []struct {
		name   string
		pub    *Client
		msg    Message
		wireCT string
	}{
		{"gzip", gz, Message{Topic: "z/gzip", Payload: big, QoS: 1}, ContentTypeGzip},
		{"deflate", zl, Message{Topic: "z/deflate", Payload: big, QoS: 1}, ContentTypeDeflate},
		{"below the threshold", gz, Message{Topic: "z/small", Payload: []byte("21.5"), QoS: 1}, ""},
		{"own content type", gz, Message{Topic: "z/json", Payload: big, QoS: 1, ContentType: "application/json"}, "application/json"},
	} {
		if err := tc.pub.Publish(ctx, &tc.msg); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		w := recv(t, rawCh, tc.name+" (raw)")
		if w.ContentType != tc.wireCT {
			t.Fatalf("%s: on the wire with content type %q", tc.name, w.ContentType)
		}
		if tc.wireCT == ContentTypeGzip || tc.wireCT == ContentTypeDeflate {
			if len(w.Payload) >= len(big) {
				t.Fatalf("%s: %d bytes on the wire", tc.name, len(w.Payload))
			}
		} else if !bytes.Equal(w.Payload, tc.msg.Payload) {
			t.Fatalf("%s: payload changed on the wire", tc.name)
		}
		d := recv(t, decCh, tc.name+" (decoded)")
		wantCT := tc.wireCT
		if wantCT == ContentTypeGzip || wantCT == ContentTypeDeflate {
			wantCT = ""
		}
		if !bytes.Equal(d.Payload, tc.msg.Payload) || d.ContentType != wantCT {
			t.Fatalf("%s: decoded %d bytes with content type %q", tc.name, len(d.Payload), d.ContentType)
		}
	}

	// A bomb and a corrupt payload go to OnError and are acknowledged: with
	// Receive Maximum 1 the next message arrives only then.
	bomb := gzipBytes(t, make([]byte, 2<<20), 9)
	for _, m := range []*Message{
		{Topic: "z/bomb", Payload: bomb, ContentType: ContentTypeGzip, QoS: 1},
		{Topic: "z/corrupt", Payload: []byte("garbage"), ContentType: ContentTypeDeflate, QoS: 1},
		{Topic: "z/after", Payload: []byte("after"), QoS: 1},
	} {
		if err := plain.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var ce *CodecError
	if err := recv(t, errCh, "bomb error"); !errors.As(err, &ce) || ce.Topic != "z/bomb" || !errors.Is(err, ErrDecompressedTooLarge) {
		t.Fatalf("bomb: %v", err)
	}
	if err := recv(t, errCh, "corrupt error"); !errors.As(err, &ce) || ce.Topic != "z/corrupt" {
		t.Fatalf("corrupt: %v", err)
	}
	if m := recv(t, decCh, "message after the bomb"); m.Topic != "z/after" || string(m.Payload) != "after" {
		t.Fatalf("after the bomb: %s %q", m.Topic, m.Payload)
	}
	for _, name := range []string{"bomb", "corrupt", "after"} {
		if m := recv(t, rawCh, name+" (raw)"); !strings.HasSuffix(m.Topic, name) {
			t.Fatalf("raw subscriber got %s", m.Topic)
		}
	}
}
