package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// seedRecords are valid framed records of each kind: the fuzz seeds.
func seedRecords(t testing.TB) (sessions, entries, retained [][]byte) {
	enc := func(v []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	full, bare := fullSession("c"), Session{ClientID: "c"}
	last := Session{ClientID: "c", LastPayloads: []PayloadHash{{Topic: "t", Hash: 42}}}
	sessions = [][]byte{enc(encodeSession(nil, &full)), enc(encodeSession(nil, &bare)), enc(encodeSession(nil, &last))}
	fe, se := fullEntry("c", 1), smallEntry("c", 2)
	entries = [][]byte{enc(encodeEntry(nil, &fe)), enc(encodeEntry(nil, &se))}
	fm, bm := fullMessage("t", 2), Message{Topic: "t"}
	retained = [][]byte{enc(encodeRetained(nil, &fm)), enc(encodeRetained(nil, &bm))}
	return
}

// reframe wraps payload in a valid frame, so that fuzzing reaches the
// payload decoders past the checksum.
func reframe(payload []byte) []byte {
	v := []byte{recordFormat, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(v[1:], crc32.Checksum(payload, castagnoli))
	return append(v, payload...)
}

// checkDecode decodes data as the record kind selected by sel. Decoding
// must not panic; what decodes must re-encode and decode to the same value.
func checkDecode(t *testing.T, sel byte, data []byte) {
	if sel&0x80 != 0 {
		data = reframe(data)
	}
	switch sel % 3 {
	case 0:
		s, err := decodeSession("c", data)
		if err != nil {
			return
		}
		v, err := encodeSession(nil, &s)
		if err != nil {
			t.Fatalf("decoded session does not encode: %v\n%+v", err, s)
		}
		s2, err := decodeSession("c", v)
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("session round trip: %v\n%+v\n%+v", err, s, s2)
		}
	case 1:
		e, err := decodeEntry("c", 9, data)
		if err != nil {
			return
		}
		v, err := encodeEntry(nil, &e)
		if err != nil {
			t.Fatalf("decoded entry does not encode: %v\n%+v", err, e)
		}
		e2, err := decodeEntry("c", 9, v)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("entry round trip: %v\n%+v\n%+v", err, e, e2)
		}
	case 2:
		m, err := decodeRetained("t", data)
		if err != nil {
			return
		}
		v, err := encodeRetained(nil, &m)
		if err != nil {
			t.Fatalf("decoded message does not encode: %v\n%+v", err, m)
		}
		m2, err := decodeRetained("t", v)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("message round trip: %v\n%+v\n%+v", err, m, m2)
		}
	}
}

// FuzzDecodeRecords feeds arbitrary bytes to the record decoders, either
// as a whole value (checksum included) or as a payload in a valid frame.
func FuzzDecodeRecords(f *testing.F) {
	s, e, r := seedRecords(f)
	for i, set := range [][][]byte{s, e, r} {
		for _, v := range set {
			f.Add(byte(i), v)
			f.Add(byte(i)|0x80, v[frameHeader:])
		}
	}
	f.Fuzz(checkDecode)
}

// TestDamageDetected: every single-byte change and every truncation of a
// record is reported as ErrCorrupt.
func TestDamageDetected(t *testing.T) {
	s, e, r := seedRecords(t)
	for i, set := range [][][]byte{s, e, r} {
		for _, v := range set {
			decode := func(b []byte) error {
				var err error
				switch i {
				case 0:
					_, err = decodeSession("c", b)
				case 1:
					_, err = decodeEntry("c", 1, b)
				case 2:
					_, err = decodeRetained("t", b)
				}
				return err
			}
			if err := decode(v); err != nil {
				t.Fatalf("valid record: %v", err)
			}
			for j := range v {
				for _, x := range []byte{0x01, 0x80, 0xFF} {
					d := append([]byte(nil), v...)
					d[j] ^= x
					if err := decode(d); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("kind %d: byte %d ^ %#x: err = %v", i, j, x, err)
					}
				}
				if err := decode(v[:j]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("kind %d: truncated to %d: err = %v", i, j, err)
				}
			}
			if err := decode(append(append([]byte(nil), v...), 0)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("kind %d: trailing byte accepted", i)
			}
		}
	}
}

// TestEntrySize keeps an eye on the size of the benchmark's record.
func TestEntrySize(t *testing.T) {
	e := smallEntry("client-0001", 1)
	v, err := encodeEntry(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("64-byte QoS 1 entry: key %d bytes, value %d bytes", len(entryKey(e.ClientID, e.Seq)), len(v))
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzDecodeRecords when
// STORE_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("STORE_WRITE_SEEDS") != "1" {
		t.Skip("set STORE_WRITE_SEEDS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRecords")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, e, r := seedRecords(t)
	n := 0
	write := func(sel byte, data []byte) {
		body := fmt.Sprintf("go test fuzz v1\nbyte(%s)\n[]byte(%s)\n", strconv.QuoteRune(rune(sel)), strconv.Quote(string(data)))
		if sel >= 0x80 {
			body = fmt.Sprintf("go test fuzz v1\nbyte('\\x%02x')\n[]byte(%s)\n", sel, strconv.Quote(string(data)))
		}
		n++
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", n)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, set := range [][][]byte{s, e, r} {
		for _, v := range set {
			write(byte(i), v)
			write(byte(i)|0x80, v[frameHeader:])
			d := append([]byte(nil), v...)
			d[len(d)/2] ^= 0xFF
			write(byte(i), d)
		}
	}
	write(0x80, []byte{})
	write(0x81, []byte{0x02, 0x30, 0x00})
	write(0x82, []byte("\x05\x30\x03\x00\x01t"))
}

// TestSessionLastPayloads: the change-only state round-trips in format 2,
// a session without it is still written in format 1, and a format 1 record
// written before the state existed still loads.
func TestSessionLastPayloads(t *testing.T) {
	s := fullSession("c")
	s.LastPayloads = []PayloadHash{{Topic: "a/b", Hash: 1}, {Topic: "c", Hash: 0xFFFFFFFFFFFFFFFF}}
	v, err := encodeSession(nil, &s)
	if err != nil {
		t.Fatal(err)
	}
	if v[0] != sessionFormatLast {
		t.Fatalf("format %d, want %d", v[0], sessionFormatLast)
	}
	got, err := decodeSession("c", v)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, got, s)
	}
	s.LastPayloads = nil
	if v, err = encodeSession(nil, &s); err != nil || v[0] != recordFormat {
		t.Fatalf("session without state: format %d, %v", v[0], err)
	}

	// Written by the format 1 encoder, before LastPayloads existed.
	old := []byte("\x01\xbaqD0\x04user\x05\x90\x1c\x01\x82\xa0\x87\xea\xaf\xc5Η/\x01\x03a/+\x01\a\x00\x01\t")
	want := Session{ClientID: "c", Username: "user", Version: 5, Expiry: 3600, DisconnectedAt: ts(1_700_000_100_000_000_001),
		Subscriptions: []Subscription{{Filter: "a/+", QoS: 1, SubID: 7}}, InboundQoS2: []uint16{9}}
	got, err = decodeSession("c", old)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("format 1 record: %v\n%+v\n%+v", err, got, want)
	}
	// Format 2 is for sessions only.
	e := smallEntry("c", 1)
	ev, _ := encodeEntry(nil, &e)
	ev[0] = sessionFormatLast
	if _, err := decodeEntry("c", 1, ev); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("entry in format 2: %v", err)
	}
}
