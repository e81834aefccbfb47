package client

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/mqtt5go/mqtt5/packet"
)

// logBuffer collects log output of a FileStore.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func openTestStore(t *testing.T, dir string) (*FileStore, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	s, err := OpenFileStore(dir, FileStoreOptions{Logger: slog.New(slog.NewTextHandler(lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, lb
}

func fullPublish(i int) *packet.Publish {
	p := &packet.Publish{
		QoS:     byte(1 + i%2),
		Retain:  i%3 == 0,
		Topic:   fmt.Sprintf("t/%d", i),
		Payload: []byte(fmt.Sprintf("payload %d \x00\xff", i)),
	}
	pr := &p.Props
	pr.PayloadFormat = 0
	pr.Set(packet.PropPayloadFormat) // present with its zero value: must survive
	pr.MessageExpiry = uint32(100 + i)
	pr.ContentType = "application/x-test"
	pr.ResponseTopic = "reply/" + fmt.Sprint(i)
	pr.CorrelationData = []byte{0, 1, 2, byte(i)}
	pr.User = []packet.UserProperty{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}, {Key: "", Value: ""}}
	pr.TopicAlias = 3
	return p
}

func TestFileStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, lb := openTestStore(t, dir)
	want := map[uint16]StoredMessage{}
	for i := 1; i <= 10; i++ {
		p := fullPublish(i)
		id := uint16(100 + i)
		if err := s.PutOutbound(id, uint64(20-i), p, false); err != nil {
			t.Fatal(err)
		}
		want[id] = StoredMessage{ID: id, Seq: uint64(20 - i), Publish: p}
	}
	// Stage changes and deletions.
	if err := s.PutOutbound(102, 18, fullPublish(2), true); err != nil {
		t.Fatal(err)
	}
	m := want[102]
	m.Pubrel = true
	want[102] = m
	for _, id := range []uint16{101, 105} {
		if err := s.DeleteOutbound(id); err != nil {
			t.Fatal(err)
		}
		delete(want, id)
	}
	for _, id := range []uint16{7, 8, 9} {
		if err := s.PutInbound(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteInbound(8); err != nil {
		t.Fatal(err)
	}
	check := func(s *FileStore) {
		t.Helper()
		out, in, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, []uint16{7, 9}) {
			t.Fatalf("inbound %v, want [7 9]", in)
		}
		if len(out) != len(want) {
			t.Fatalf("%d outbound messages, want %d", len(out), len(want))
		}
		for i, got := range out {
			if i > 0 && out[i-1].Seq >= got.Seq {
				t.Fatalf("not in seq order: %d then %d", out[i-1].Seq, got.Seq)
			}
			w := want[got.ID]
			if got.Seq != w.Seq || got.Pubrel != w.Pubrel {
				t.Fatalf("message %d: seq %d pubrel %v, want %d %v", got.ID, got.Seq, got.Pubrel, w.Seq, w.Pubrel)
			}
			wp := *w.Publish
			wp.PacketID = got.ID
			wb, _ := wp.AppendTo(nil, packet.V5)
			gb, _ := got.Publish.AppendTo(nil, packet.V5)
			if !bytes.Equal(wb, gb) {
				t.Fatalf("message %d differs:\n got %+v\nwant %+v", got.ID, got.Publish, &wp)
			}
			if !got.Publish.Props.Has(packet.PropPayloadFormat) {
				t.Fatalf("message %d lost its zero-valued Payload Format Indicator", got.ID)
			}
		}
	}
	check(s)
	s.Close()
	if _, _, err := s.Load(); err == nil {
		t.Fatal("Load after Close succeeded")
	}
	s2, _ := openTestStore(t, dir)
	check(s2)

	// Reset persists.
	if err := s2.Reset(); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s3, _ := openTestStore(t, dir)
	if out, in, _ := s3.Load(); len(out) != 0 || len(in) != 0 {
		t.Fatalf("after Reset: %d outbound, %d inbound", len(out), len(in))
	}
	if lb.String() != "" {
		t.Fatalf("unexpected warnings: %s", lb)
	}
}

// fill writes a known state: outbound 1..5, inbound 10, 11.
func fillStore(t *testing.T, s *FileStore) {
	t.Helper()
	for i := 1; i <= 5; i++ {
		if err := s.PutOutbound(uint16(i), uint64(i), fullPublish(i), false); err != nil {
			t.Fatal(err)
		}
	}
	s.PutInbound(10)
	s.PutInbound(11)
}

func logSize(t *testing.T, dir string) int {
	st, err := os.Stat(filepath.Join(dir, "session.log"))
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Size())
}

func TestFileStoreCorruption(t *testing.T) {
	t.Run("flipped byte in the middle", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openTestStore(t, dir)
		fillStore(t, s)
		s.Close()
		data, _ := os.ReadFile(filepath.Join(dir, "session.log"))
		// The third record (outbound 3): find it by its magic.
		idx := 0
		for range 2 {
			idx += bytes.Index(data[idx+1:], []byte("M5SR")) + 1
		}
		data[idx+20] ^= 0x55
		os.WriteFile(filepath.Join(dir, "session.log"), data, 0o600)

		s2, lb := openTestStore(t, dir)
		out, in, err := s2.Load()
		if err != nil {
			t.Fatal(err)
		}
		var ids []uint16
		for _, m := range out {
			ids = append(ids, m.ID)
		}
		if !reflect.DeepEqual(ids, []uint16{1, 2, 4, 5}) || !reflect.DeepEqual(in, []uint16{10, 11}) {
			t.Fatalf("after damage: outbound %v inbound %v", ids, in)
		}
		if !strings.Contains(lb.String(), "damaged record skipped") || !strings.Contains(lb.String(), "checksum mismatch") {
			t.Fatalf("no warning logged: %q", lb)
		}
		// The log was rewritten without the damage.
		s2.Close()
		s3, lb3 := openTestStore(t, dir)
		if out, _, _ := s3.Load(); len(out) != 4 || lb3.String() != "" {
			t.Fatalf("after rewrite: %d messages, log %q", len(out), lb3)
		}
	})
	t.Run("torn tail", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openTestStore(t, dir)
		fillStore(t, s)
		s.Close()
		path := filepath.Join(dir, "session.log")
		os.Truncate(path, int64(logSize(t, dir)-2)) // inbound 11 half written
		s2, lb := openTestStore(t, dir)
		out, in, _ := s2.Load()
		if len(out) != 5 || !reflect.DeepEqual(in, []uint16{10}) {
			t.Fatalf("after torn tail: %d outbound, inbound %v", len(out), in)
		}
		if !strings.Contains(lb.String(), "torn or corrupt tail") {
			t.Fatalf("no warning logged: %q", lb)
		}
		// New records go after the intact ones.
		if err := s2.PutInbound(12); err != nil {
			t.Fatal(err)
		}
		s2.Close()
		s3, lb3 := openTestStore(t, dir)
		if _, in, _ := s3.Load(); !reflect.DeepEqual(in, []uint16{10, 12}) || lb3.String() != "" {
			t.Fatalf("after append: inbound %v, log %q", in, lb3)
		}
	})
	t.Run("garbage file", func(t *testing.T) {
		dir := t.TempDir()
		junk := make([]byte, 4096)
		for i := range junk {
			junk[i] = byte(rand.IntN(256))
		}
		copy(junk[100:], "M5SR\x00\x00\x00\x10") // a magic with a bad checksum
		os.WriteFile(filepath.Join(dir, "session.log"), junk, 0o600)
		s, lb := openTestStore(t, dir)
		if out, in, _ := s.Load(); len(out) != 0 || len(in) != 0 {
			t.Fatalf("state from garbage: %d %d", len(out), len(in))
		}
		if !strings.Contains(lb.String(), "damaged record skipped") {
			t.Fatalf("no warning: %q", lb)
		}
	})
	t.Run("random damage never panics", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openTestStore(t, dir)
		fillStore(t, s)
		s.Close()
		orig, _ := os.ReadFile(filepath.Join(dir, "session.log"))
		r := rand.New(rand.NewPCG(1, 2))
		for i := range 300 {
			data := bytes.Clone(orig)
			switch i % 3 {
			case 0:
				data = data[:r.IntN(len(data))]
			case 1:
				for range 1 + r.IntN(4) {
					data[r.IntN(len(data))] ^= byte(1 + r.IntN(255))
				}
			case 2:
				data = append(data[:r.IntN(len(data))], data[r.IntN(len(data)):]...)
			}
			d := t.TempDir()
			os.WriteFile(filepath.Join(d, "session.log"), data, 0o600)
			s, err := OpenFileStore(d, FileStoreOptions{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			out, in, err := s.Load()
			if err != nil || len(out) > 5 || len(in) > 2 {
				t.Fatalf("iteration %d: %d %d %v", i, len(out), len(in), err)
			}
			for _, m := range out {
				if m.Publish == nil || m.Publish.QoS == 0 {
					t.Fatalf("iteration %d: bad message %+v", i, m)
				}
			}
			s.Close()
		}
	})
}

func TestFileStoreConcurrent(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestStore(t, dir)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := uint16(g*1000 + 1)
			for i := range 50 {
				id := base + uint16(i)
				if err := s.PutOutbound(id, uint64(id), fullPublish(i), false); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					if err := s.PutOutbound(id, uint64(id), fullPublish(i), true); err != nil {
						t.Error(err)
					}
					if err := s.DeleteOutbound(id); err != nil {
						t.Error(err)
					}
				}
				if err := s.PutInbound(id); err != nil {
					t.Error(err)
				}
				if i%5 == 0 {
					s.DeleteInbound(id)
				}
				s.Load()
			}
		}()
	}
	wg.Wait()
	s.Close()
	s2, lb := openTestStore(t, dir)
	out, in, _ := s2.Load()
	if len(out) != 4*25 || len(in) != 4*40 {
		t.Fatalf("%d outbound (want 100), %d inbound (want 160)", len(out), len(in))
	}
	if lb.String() != "" {
		t.Fatalf("warnings: %s", lb)
	}
}

func TestFileStoreCompaction(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFileStore(dir, FileStoreOptions{CompactAfter: 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 1; i <= 500; i++ {
		id := uint16(i%7 + 1)
		s.PutOutbound(id, uint64(i), fullPublish(i), false)
		if i%7 != 0 {
			s.DeleteOutbound(id)
		}
	}
	if n := logSize(t, dir); n > 30*300 {
		t.Fatalf("log not compacted: %d bytes", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "session.log.tmp")); err == nil {
		t.Fatal("temporary file left behind")
	}
	want, _, _ := s.Load()
	s.Close()
	s2, _ := openTestStore(t, dir)
	got, _, _ := s2.Load()
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("after compaction and reopen: %d messages, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID || got[i].Seq != want[i].Seq {
			t.Fatalf("message %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
