package client

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Compression names a payload compression algorithm of Codec.
type Compression string

const (
	// NoCompression publishes payloads as they are (a Codec with it only
	// decodes).
	NoCompression Compression = ""
	// Gzip is the gzip format (RFC 1952), Content Type "application/gzip".
	Gzip Compression = "gzip"
	// Deflate is the zlib format (RFC 1950: DEFLATE with a header and an
	// Adler-32 checksum, the "deflate" of HTTP), Content Type
	// "application/x-deflate".
	Deflate Compression = "deflate"
)

// Content Types that select a codec on receipt.
const (
	ContentTypeGzip    = "application/gzip"
	ContentTypeDeflate = "application/x-deflate"
)

// DefaultMaxDecompressed is the decompressed size limit of a Codec whose
// MaxDecompressed is zero: 16 MiB.
const DefaultMaxDecompressed = 16 << 20

var (
	// ErrDecompressedTooLarge is returned (wrapped in a *CodecError) when
	// a payload expands beyond Codec.MaxDecompressed.
	ErrDecompressedTooLarge = errors.New("mqtt client: decompressed payload exceeds the limit")
	// ErrCodecNeedsV5 is returned by New for a Codec with MQTT 3.1.1: the
	// codec is selected by the Content Type property, which 3.1.1 lacks.
	ErrCodecNeedsV5 = errors.New("mqtt client: payload codecs need MQTT 5 (3.1.1 has no Content Type)")
)

// Codec compresses published payloads and decompresses received ones, the
// algorithm being named by the Content Type property (MQTT 5 only). Set it
// in Options.Codec.
//
// On publish, with Compression set, a message whose payload has at least
// MinSize bytes and that has no Content Type of its own is sent compressed,
// with Content Type ContentTypeGzip or ContentTypeDeflate and no Payload
// Format Indicator. The payload stays as it is, and no Content Type is set,
// when it is smaller than MinSize, when the message already has a Content
// Type, or when compressing does not make it smaller. The Message given to
// Publish is not modified.
//
// On receipt, whatever Compression says, a message whose Content Type is
// ContentTypeGzip or ContentTypeDeflate is decompressed before handlers
// run, and its Content Type is cleared; other messages pass through
// untouched. Decompression stops with ErrDecompressedTooLarge as soon as the
// output exceeds MaxDecompressed, so a small payload that expands to
// gigabytes ("zip bomb") costs at most MaxDecompressed bytes of memory. A
// message that fails to decode is not delivered: a *CodecError goes to
// Options.OnError and the message is acknowledged (QoS 1/2, with
// ManualAck too) and dropped — the server would otherwise send it again
// and again.
type Codec struct {
	// Compression is the algorithm of published payloads.
	Compression Compression
	// MinSize is the size in bytes below which payloads are sent raw.
	MinSize int
	// Level is the compression level, 1 (fastest) to 9 (smallest); 0 means
	// the default of package compress/flate (6).
	Level int
	// MaxDecompressed bounds the size of a decompressed payload in bytes.
	// Zero means DefaultMaxDecompressed.
	MaxDecompressed int64
}

// CodecError reports a received payload that could not be decoded.
type CodecError struct {
	Topic       string
	ContentType string
	Err         error
}

func (e *CodecError) Error() string {
	return fmt.Sprintf("mqtt client: decoding the %s payload of a message on %q: %v", e.ContentType, e.Topic, e.Err)
}

// Unwrap returns Err.
func (e *CodecError) Unwrap() error { return e.Err }

// validate checks the configuration.
func (c *Codec) validate() error {
	switch c.Compression {
	case NoCompression, Gzip, Deflate:
	default:
		return fmt.Errorf("mqtt client: unknown compression %q (use %q or %q)", c.Compression, Gzip, Deflate)
	}
	if c.Level < 0 || c.Level > 9 {
		return fmt.Errorf("mqtt client: compression level %d (use 1 to 9, or 0 for the default)", c.Level)
	}
	if c.MinSize < 0 {
		return fmt.Errorf("mqtt client: negative codec MinSize %d", c.MinSize)
	}
	if c.MaxDecompressed < 0 {
		return fmt.Errorf("mqtt client: negative codec MaxDecompressed %d", c.MaxDecompressed)
	}
	return nil
}

func (c *Codec) level() int {
	if c.Level == 0 {
		return flate.DefaultCompression
	}
	return c.Level
}

// ContentType returns the Content Type of payloads compressed by c ("" for
// NoCompression).
func (c *Codec) ContentType() string {
	switch c.Compression {
	case Gzip:
		return ContentTypeGzip
	case Deflate:
		return ContentTypeDeflate
	}
	return ""
}

// Compress returns payload compressed with its Content Type, or payload
// itself and "" when it stays raw (NoCompression, shorter than MinSize, or
// not made smaller by compression).
func (c *Codec) Compress(payload []byte) (out []byte, contentType string, err error) {
	if err := c.validate(); err != nil {
		return nil, "", err
	}
	if c.Compression == NoCompression || len(payload) < c.MinSize {
		return payload, "", nil
	}
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c.Compression {
	case Gzip:
		w, err = gzip.NewWriterLevel(&buf, c.level())
	case Deflate:
		w, err = zlib.NewWriterLevel(&buf, c.level())
	}
	if err != nil {
		return nil, "", err
	}
	if _, err := w.Write(payload); err != nil {
		return nil, "", err
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	if buf.Len() >= len(payload) {
		return payload, "", nil
	}
	return buf.Bytes(), c.ContentType(), nil
}

// mediaType returns the media type of a Content Type, without parameters,
// in lower case.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// Decompress decodes payload if contentType names a codec (decoded is then
// true) and returns it unchanged otherwise. The output is bounded by
// MaxDecompressed (ErrDecompressedTooLarge).
func (c *Codec) Decompress(contentType string, payload []byte) (out []byte, decoded bool, err error) {
	var r io.Reader
	switch mediaType(contentType) {
	case ContentTypeGzip:
		zr, err := gzip.NewReader(bytes.NewReader(payload))
		if err != nil {
			return nil, true, err
		}
		r = zr
	case ContentTypeDeflate:
		zr, err := zlib.NewReader(bytes.NewReader(payload))
		if err != nil {
			return nil, true, err
		}
		defer zr.Close()
		r = zr
	default:
		return payload, false, nil
	}
	limit := c.MaxDecompressed
	if limit <= 0 {
		limit = DefaultMaxDecompressed
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if n > limit {
		return nil, true, fmt.Errorf("%w (%d bytes)", ErrDecompressedTooLarge, limit)
	}
	if err != nil {
		return nil, true, err
	}
	return buf.Bytes(), true, nil
}

// encodeMessage returns m, or a compressed copy of it.
func (c *Codec) encodeMessage(m *Message) (*Message, error) {
	if c.Compression == NoCompression || m.ContentType != "" || len(m.Payload) < c.MinSize {
		return m, nil
	}
	out, ct, err := c.Compress(m.Payload)
	if err != nil {
		return nil, fmt.Errorf("mqtt client: compressing the payload: %w", err)
	}
	if ct == "" {
		return m, nil
	}
	cp := *m
	cp.ack = nil
	cp.Payload = out
	cp.ContentType = ct
	cp.PayloadFormat = 0
	return &cp, nil
}

// decodeMessage decompresses a received message in place.
func (c *Codec) decodeMessage(m *Message) error {
	out, decoded, err := c.Decompress(m.ContentType, m.Payload)
	if err != nil {
		return &CodecError{Topic: m.Topic, ContentType: m.ContentType, Err: err}
	}
	if decoded {
		m.Payload = out
		m.ContentType = ""
	}
	return nil
}
