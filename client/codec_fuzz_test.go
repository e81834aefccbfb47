package client

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"strings"
	"testing"
)

var fzContentTypes = []string{
	ContentTypeGzip, ContentTypeDeflate, " Application/GZIP ; charset=binary", "APPLICATION/X-DEFLATE;",
	"text/plain", "", "application/gzipx", "application/x-deflate\x00",
}

func fzCompress(t testing.TB, c Compression, data []byte) []byte {
	var buf bytes.Buffer
	var w io.WriteCloser
	if c == Gzip {
		w = gzip.NewWriter(&buf)
	} else {
		w = zlib.NewWriter(&buf)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fzRefDecompress decompresses payload with at most max+1 bytes of output.
func fzRefDecompress(ct string, payload []byte, max int64) ([]byte, error) {
	var r io.Reader
	var err error
	if ct == ContentTypeGzip {
		r, err = gzip.NewReader(bytes.NewReader(payload))
	} else {
		r, err = zlib.NewReader(bytes.NewReader(payload))
	}
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r, max+1))
}

func FuzzCodecDecompress(f *testing.F) {
	hello := []byte(strings.Repeat("hello, world ", 20))
	bomb := make([]byte, 1<<20)
	f.Add(byte(0), uint16(4096), fzCompress(f, Gzip, hello))
	f.Add(byte(1), uint16(4096), fzCompress(f, Deflate, hello))
	f.Add(byte(2), uint16(259), fzCompress(f, Gzip, hello))
	f.Add(byte(3), uint16(260), fzCompress(f, Deflate, hello))
	f.Add(byte(0), uint16(1000), fzCompress(f, Gzip, bomb))
	f.Add(byte(1), uint16(0), fzCompress(f, Deflate, bomb))
	f.Add(byte(0), uint16(4096), append(fzCompress(f, Gzip, hello), fzCompress(f, Gzip, hello)...))
	f.Add(byte(0), uint16(4096), append(fzCompress(f, Gzip, hello), "trailing"...))
	f.Add(byte(1), uint16(4096), fzCompress(f, Deflate, nil))
	f.Add(byte(4), uint16(1), []byte("plain text"))
	f.Add(byte(0x80), uint16(0), fzCompress(f, Gzip, hello))
	f.Add(byte(0), uint16(100), []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, sel byte, capHint uint16, payload []byte) {
		ct := fzContentTypes[int(sel&0x7f)%len(fzContentTypes)]
		limit := int64(capHint) + 1
		c := &Codec{MaxDecompressed: limit}
		if sel&0x80 != 0 {
			c.MaxDecompressed, limit = 0, DefaultMaxDecompressed
		}
		out, decoded, err := c.Decompress(ct, payload)
		media := strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
		if decoded != (media == ContentTypeGzip || media == ContentTypeDeflate) {
			t.Fatalf("Decompress(%q): decoded %v", ct, decoded)
		}
		if !decoded {
			if err != nil || len(out) != len(payload) || (len(out) > 0 && &out[0] != &payload[0]) {
				t.Fatalf("Decompress(%q) changed a payload it does not decode: %v", ct, err)
			}
			return
		}
		if int64(len(out)) > limit {
			t.Fatalf("Decompress returned %d bytes, over the limit of %d", len(out), limit)
		}
		ref, refErr := fzRefDecompress(media, payload, limit)
		switch {
		case errors.Is(err, ErrDecompressedTooLarge):
			if int64(len(ref)) <= limit {
				t.Fatalf("Decompress: %v, but the payload expands to %d bytes (%v), within %d", err, len(ref), refErr, limit)
			}
			if out != nil {
				t.Fatal("output returned with ErrDecompressedTooLarge")
			}
		case int64(len(ref)) > limit:
			t.Fatalf("Decompress = %d bytes, %v; the payload expands beyond the limit %d", len(out), err, limit)
		case err != nil:
			if refErr == nil {
				t.Fatalf("Decompress: %v; the reference decodes %d bytes", err, len(ref))
			}
		default:
			if refErr != nil || !bytes.Equal(out, ref) {
				t.Fatalf("Decompress = %d bytes; the reference %d bytes, %v", len(out), len(ref), refErr)
			}
			// What was decoded encodes and decodes back.
			for _, comp := range []Compression{Gzip, Deflate} {
				enc := &Codec{Compression: comp, MaxDecompressed: limit}
				z, ct2, err := enc.Compress(out)
				if err != nil {
					t.Fatal(err)
				}
				back, _, err := enc.Decompress(ct2, z)
				if err != nil || !bytes.Equal(back, out) {
					t.Fatalf("%s round trip of %d bytes: %v", comp, len(out), err)
				}
			}
		}
	})
}
