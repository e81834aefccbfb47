package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/broker"
)

// TestPubSubCompression: pub --compress, received by sub --decompress and
// by a plain sub that shows what travelled.
func TestPubSubCompression(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	long := strings.Repeat("temperature 21.5 humidity 40 ", 40)

	dec := startCmd(t, b.args("sub", "-t", "z/#", "-q", "1", "-C", "3", "--decompress", "-F", "json", "-d")...)
	dec.subscribed(t)
	wire := startCmd(t, b.args("sub", "-t", "z/#", "-q", "1", "-C", "3", "-F", "json", "-d")...)
	wire.subscribed(t)

	for _, args := range [][]string{
		{"-t", "z/gzip", "-m", long, "--compress", "gzip"},
		{"-t", "z/deflate", "-m", long, "--compress", "DEFLATE", "--compress-level", "9"},
		{"-t", "z/small", "-m", "21.5", "--compress", "gzip", "--compress-min", "64"},
	} {
		if code, _, errs := runCmd(t, b.args("pub", append(args, "-q", "1")...)...); code != 0 {
			t.Fatalf("pub %q: exit %d %q", args, code, errs)
		}
	}

	code, out, errs := dec.wait(t)
	m := jsonLines(t, out)
	if code != 0 || len(m) != 3 {
		t.Fatalf("sub --decompress: exit %d %q %q", code, out, errs)
	}
	for i, want := range []string{long, long, "21.5"} {
		if m[i].Payload != want || m[i].PayloadBase64 || m[i].Properties != nil {
			t.Fatalf("sub --decompress, message %d: %+v", i, m[i])
		}
	}

	code, out, errs = wire.wait(t)
	m = jsonLines(t, out)
	if code != 0 || len(m) != 3 {
		t.Fatalf("plain sub: exit %d %q %q", code, out, errs)
	}
	for i, ct := range []string{"application/gzip", "application/x-deflate"} {
		if m[i].Properties == nil || m[i].Properties.ContentType != ct || !m[i].PayloadBase64 {
			t.Fatalf("on the wire, message %d: %+v", i, m[i])
		}
		raw, _ := base64.StdEncoding.DecodeString(m[i].Payload)
		if len(raw) >= len(long) {
			t.Fatalf("on the wire, message %d: %d bytes", i, len(raw))
		}
	}
	// gzip on the wire is plain gzip.
	raw, _ := base64.StdEncoding.DecodeString(m[0].Payload)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := io.ReadAll(zr); err != nil || string(plain) != long {
		t.Fatalf("gunzip: %q %v", plain, err)
	}
	// Below --compress-min: raw, without Content Type.
	if m[2].Payload != "21.5" || m[2].Properties != nil {
		t.Fatalf("below --compress-min: %+v", m[2])
	}
}

// TestSubMaxDecompressed: a payload that expands beyond the limit is
// reported and skipped; the next one is printed.
func TestSubMaxDecompressed(t *testing.T) {
	b := startTestBroker(t, broker.Config{})
	sub := startCmd(t, b.args("sub", "-t", "z/#", "-q", "1", "-C", "1", "--max-decompressed", "100", "-d")...)
	sub.subscribed(t)
	if code, _, errs := runCmd(t, b.args("pub", "-t", "z/big", "-q", "1", "--compress", "gzip", "-m", strings.Repeat("x", 1000))...); code != 0 {
		t.Fatalf("pub: exit %d %q", code, errs)
	}
	if code, _, errs := runCmd(t, b.args("pub", "-t", "z/next", "-q", "1", "--compress", "gzip", "-m", strings.Repeat("y", 100))...); code != 0 {
		t.Fatalf("pub: exit %d %q", code, errs)
	}
	code, out, errs := sub.wait(t)
	if code != 0 || out != strings.Repeat("y", 100)+"\n" ||
		!strings.Contains(errs, "skipped a message on z/big") || !strings.Contains(errs, "exceeds the limit") {
		t.Fatalf("exit %d %q %q", code, out, errs)
	}
}

func TestCodecFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pub", "-t", "x", "-m", "y", "--compress", "zstd"}, "not gzip or deflate"},
		{[]string{"pub", "-t", "x", "-m", "y", "--compress", "gzip", "--compress-level", "10"}, "from 1 to 9"},
		{[]string{"pub", "-t", "x", "-m", "y", "--compress", "gzip", "--compress-level", "0"}, "from 1 to 9"},
		{[]string{"pub", "-t", "x", "-m", "y", "--compress", "gzip", "--compress-min", "-1"}, "number of bytes"},
		{[]string{"pub", "-t", "x", "-m", "y", "--compress-level", "5"}, "need --compress"},
		{[]string{"pub", "-t", "x", "-m", "y", "--compress-min", "5"}, "need --compress"},
		{[]string{"pub", "-t", "x", "-m", "y", "-V", "311", "--compress", "gzip"}, "needs MQTT 5"},
		{[]string{"sub", "-t", "x", "-V", "311", "--decompress"}, "needs MQTT 5"},
		{[]string{"sub", "-t", "x", "-V", "311", "--max-decompressed", "10"}, "needs MQTT 5"},
		{[]string{"sub", "-t", "x", "--max-decompressed", "0"}, "positive number"},
		{[]string{"sub", "-t", "x", "--compress", "gzip"}, "unknown flag"},
		{[]string{"pub", "-t", "x", "-m", "y", "--decompress"}, "unknown flag"},
	} {
		code, _, errs := runCmd(t, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q (want %q)", tc.args, code, errs, tc.want)
		}
	}
	for cmd, flags := range map[string][]string{
		"pub": {"--compress gzip|deflate", "--compress-level N", "--compress-min BYTES"},
		"sub": {"--decompress", "--max-decompressed BYTES"},
	} {
		code, out, _ := runCmd(t, "help", cmd)
		for _, f := range flags {
			if code != 0 || !strings.Contains(out, f) {
				t.Errorf("help %s: exit %d, no %q", cmd, code, f)
			}
		}
	}
}
