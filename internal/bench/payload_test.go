package bench

import (
	"bytes"
	"testing"
)

func TestStampRoundTrip(t *testing.T) {
	for _, size := range []int{StampSize, 64, 1000} {
		p := bytes.Repeat([]byte{0xAA}, size)
		Stamp(p, 123456789012, 42, 1<<40+7)
		ts, pub, seq, err := ParseStamp(p)
		if err != nil || ts != 123456789012 || pub != 42 || seq != 1<<40+7 {
			t.Fatalf("size %d: got %d %d %d %v", size, ts, pub, seq, err)
		}
		if size > StampSize && p[StampSize] != 0xAA {
			t.Fatalf("Stamp wrote past the stamp")
		}
	}
}

func TestParseStampRejects(t *testing.T) {
	if _, _, _, err := ParseStamp(make([]byte, StampSize-1)); err == nil {
		t.Error("short payload accepted")
	}
	if _, _, _, err := ParseStamp(make([]byte, 64)); err == nil {
		t.Error("payload without magic accepted")
	}
}
