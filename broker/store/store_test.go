package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRoundTrip stores every record type with every field set and reads it
// back, from the open store and, for disk engines, after reopening.
func TestRoundTrip(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, e, dir)
			ses := fullSession("c1")
			bare := Session{ClientID: "c0"} // every field zero
			en := fullEntry("c1", 42)
			en2 := fullEntry("c1", 7)
			qos0 := Entry{ClientID: "c1", Seq: 1 << 63, Msg: Message{Topic: "z"}}
			ret := fullMessage("r/x", 1)
			ret0 := Message{Topic: "empty/props"}
			mustApply(t, s, putSession(ses), putSession(bare), putEntry(en), putEntry(en2), putEntry(qos0),
				putRetained(ret), putRetained(ret0))

			want := &Snapshot{
				Sessions: []Session{bare, ses},
				Entries:  []Entry{en2, en, qos0},
				Retained: []Message{ret0, ret},
			}
			checkEqual(t, "snapshot", mustLoad(t, s), want)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if !e.disk {
				return
			}
			s = openStore(t, e, dir)
			defer s.Close()
			checkEqual(t, "snapshot after reopen", mustLoad(t, s), want)
		})
	}
}

// TestTimeRoundTrip checks a wall-clock time with a monotonic reading and
// the zero time.
func TestTimeRoundTrip(t *testing.T) {
	s := NewMemory()
	now := time.Now()
	m := Message{Topic: "t", Created: now}
	ses := Session{ClientID: "c", DisconnectedAt: now}
	mustApply(t, s, putRetained(m), putSession(ses))
	snap := mustLoad(t, s)
	if !snap.Retained[0].Created.Equal(now) || !snap.Sessions[0].DisconnectedAt.Equal(now) {
		t.Fatalf("time changed: %v %v, want %v", snap.Retained[0].Created, snap.Sessions[0].DisconnectedAt, now)
	}
	mustApply(t, s, putRetained(Message{Topic: "t"}))
	if c := mustLoad(t, s).Retained[0].Created; !c.IsZero() {
		t.Fatalf("zero time became %v", c)
	}
}

// TestReplaceAndDelete covers replacement and each delete kind.
func TestReplaceAndDelete(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			s := openStore(t, e, t.TempDir())
			defer s.Close()
			a := fullSession("a")
			mustApply(t, s, putSession(a), putEntry(fullEntry("a", 1)), putEntry(fullEntry("a", 2)),
				putRetained(fullMessage("x", 0)), putRetained(fullMessage("y", 0)))
			a.Username = "changed"
			e1 := fullEntry("a", 1)
			e1.PacketID = 9
			mustApply(t, s, putSession(a), putEntry(e1),
				Op{Kind: DeleteEntry, ClientID: "a", Seq: 2},
				Op{Kind: DeleteRetained, Topic: "x"},
				Op{Kind: DeleteEntry, ClientID: "nobody", Seq: 5}, // deleting what is absent is fine
				Op{Kind: DeleteRetained, Topic: "absent"})
			checkEqual(t, "snapshot", mustLoad(t, s), &Snapshot{
				Sessions: []Session{a},
				Entries:  []Entry{e1},
				Retained: []Message{fullMessage("y", 0)},
			})
		})
	}
}

// TestDeleteSession removes the session and all its entries, and only
// its: a client whose identifier extends the deleted one keeps its own.
func TestDeleteSession(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			s := openStore(t, e, t.TempDir())
			defer s.Close()
			var ops []Op
			for _, id := range []string{"a", "ab", "a\x01", "b"} {
				ops = append(ops, putSession(Session{ClientID: id}))
				for seq := uint64(0); seq < 5; seq++ {
					ops = append(ops, putEntry(smallEntry(id, seq<<56|seq)))
				}
			}
			mustApply(t, s, ops...)
			mustApply(t, s, Op{Kind: DeleteSession, ClientID: "a"})
			snap := mustLoad(t, s)
			var ids []string
			for _, ses := range snap.Sessions {
				ids = append(ids, ses.ClientID)
			}
			checkEqual(t, "sessions", ids, []string{"a\x01", "ab", "b"})
			if len(snap.Entries) != 15 {
				t.Fatalf("%d entries, want 15", len(snap.Entries))
			}
			for _, en := range snap.Entries {
				if en.ClientID == "a" {
					t.Fatalf("entry %d of deleted session survived", en.Seq)
				}
			}
			// Within one Apply, ops take effect in order: a put after the
			// delete survives it.
			mustApply(t, s, putEntry(smallEntry("b", 99)), Op{Kind: DeleteSession, ClientID: "b"},
				putSession(Session{ClientID: "b", Username: "new"}), putEntry(smallEntry("b", 100)))
			snap = mustLoad(t, s)
			var bEntries []uint64
			for _, en := range snap.Entries {
				if en.ClientID == "b" {
					bEntries = append(bEntries, en.Seq)
				}
			}
			checkEqual(t, "entries of b", bEntries, []uint64{100})
		})
	}
}

// TestEntryOrder: entries come back ordered by client then sequence,
// whatever the order of writing.
func TestEntryOrder(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			s := openStore(t, e, t.TempDir())
			defer s.Close()
			seqs := []uint64{300, 1, 1 << 40, 2, 256, 0, 255}
			var ops []Op
			for _, id := range []string{"z", "a", "m"} {
				for _, q := range seqs {
					ops = append(ops, putEntry(smallEntry(id, q)))
				}
			}
			mustApply(t, s, ops...)
			snap := mustLoad(t, s)
			for i := 1; i < len(snap.Entries); i++ {
				p, c := snap.Entries[i-1], snap.Entries[i]
				if p.ClientID > c.ClientID || (p.ClientID == c.ClientID && p.Seq >= c.Seq) {
					t.Fatalf("entries out of order at %d: %s/%d then %s/%d", i, p.ClientID, p.Seq, c.ClientID, c.Seq)
				}
			}
		})
	}
}

// TestApplyAtomic: an op list with one invalid op applies nothing.
func TestApplyAtomic(t *testing.T) {
	bad := []struct {
		name string
		op   Op
	}{
		{"unknown kind", Op{Kind: 99}},
		{"zero kind", Op{}},
		{"nil session", Op{Kind: PutSession, ClientID: "x"}},
		{"nil entry", Op{Kind: PutEntry, ClientID: "x"}},
		{"nil retained", Op{Kind: PutRetained, Topic: "x"}},
		{"empty client id", putSession(Session{})},
		{"NUL in client id", putSession(Session{ClientID: "a\x00b"})},
		{"client id mismatch", Op{Kind: PutSession, ClientID: "other", Session: &Session{ClientID: "x"}}},
		{"seq mismatch", Op{Kind: PutEntry, Seq: 3, Entry: &Entry{ClientID: "x", Seq: 4, Msg: Message{Topic: "t"}}}},
		{"topic mismatch", Op{Kind: PutRetained, Topic: "a", Retained: &Message{Topic: "b"}}},
		{"empty topic", putRetained(Message{})},
		{"entry message without topic", putEntry(Entry{ClientID: "x"})},
		{"QoS 3 message", putRetained(Message{Topic: "t", QoS: 3})},
		{"QoS 3 entry", putEntry(Entry{ClientID: "x", QoS: 3, Msg: Message{Topic: "t"}})},
		{"invalid UTF-8 topic", putRetained(Message{Topic: "a\xffb"})},
		{"bad subscription options", putSession(Session{ClientID: "x", Subscriptions: []Subscription{{Filter: "f", RetainHandling: 3}}})},
		{"will without topic", putSession(Session{ClientID: "x", Will: &Will{}})},
		{"delete session without id", Op{Kind: DeleteSession}},
		{"delete entry without id", Op{Kind: DeleteEntry, Seq: 1}},
		{"delete retained without topic", Op{Kind: DeleteRetained}},
		{"topic too long", putRetained(Message{Topic: strings.Repeat("t", 40000)})},
	}
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			s := openStore(t, e, t.TempDir())
			defer s.Close()
			base := fullSession("keep")
			mustApply(t, s, putSession(base), putEntry(fullEntry("keep", 1)), putRetained(fullMessage("keep", 1)))
			before := mustLoad(t, s)
			for _, b := range bad {
				changed := base
				changed.Username = "changed"
				ops := []Op{
					putSession(changed),
					{Kind: DeleteEntry, ClientID: "keep", Seq: 1},
					{Kind: DeleteRetained, Topic: "keep"},
					putEntry(fullEntry("new", 1)),
					b.op,
				}
				err := s.Apply(context.Background(), ops)
				if !errors.Is(err, ErrInvalidOp) {
					t.Fatalf("%s: Apply = %v, want ErrInvalidOp", b.name, err)
				}
				checkEqual(t, b.name+": snapshot", mustLoad(t, s), before)
			}
		})
	}
}

// TestClosed: a closed store refuses Apply and Load; Close is idempotent.
func TestClosed(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			s := openStore(t, e, t.TempDir())
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if err := s.Apply(context.Background(), []Op{putSession(Session{ClientID: "x"})}); !errors.Is(err, ErrClosed) {
				t.Fatalf("Apply after Close = %v", err)
			}
			if _, err := s.Load(context.Background()); !errors.Is(err, ErrClosed) {
				t.Fatalf("Load after Close = %v", err)
			}
		})
	}
}

// TestConcurrentApply exercises concurrent Apply, Load and Close under the
// race detector.
func TestConcurrentApply(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			s := openStore(t, e, t.TempDir())
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("c%d", g)
					for i := uint64(0); i < 50; i++ {
						mustApply(t, s, putEntry(smallEntry(id, i)), Op{Kind: DeleteEntry, ClientID: id, Seq: i / 2})
						if i%10 == 0 {
							mustLoad(t, s)
						}
					}
				}()
			}
			wg.Wait()
			snap := mustLoad(t, s)
			if len(snap.Entries) != 8*25 {
				t.Fatalf("%d entries, want %d", len(snap.Entries), 8*25)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestQuarantine writes bad values and keys straight through each engine,
// reopens, and expects Load to set them aside and load the rest.
func TestQuarantine(t *testing.T) {
	valid, err := encodeEntry(nil, &Entry{Msg: Message{Topic: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(valid)
	flipped[len(flipped)-1] ^= 0x01
	future := bytes.Clone(valid)
	future[0] = recordFormat + 1
	cases := []struct {
		name     string
		key, val []byte
	}{
		{"garbage entry", entryKey("c1", 3), []byte("not a record at all")},
		{"checksum mismatch", entryKey("c1", 3), flipped},
		{"unknown record format", entryKey("c1", 3), future},
		{"empty value", entryKey("c1", 3), []byte{}},
		{"session key with garbage", sessionKey("c9"), []byte{recordFormat, 1, 2, 3, 4, 5}},
		{"malformed entry key", []byte("e/no-separator"), valid},
		{"retained under another topic", retainedKey("other"), mustEncodeRetained(t, Message{Topic: "t"})},
		{"unknown prefix", []byte("x/unknown"), valid},
	}
	for _, e := range diskEngines() {
		for _, c := range cases {
			t.Run(e.name+"/"+c.name, func(t *testing.T) {
				dir := t.TempDir()
				s := openStore(t, e, dir)
				mustApply(t, s, putSession(fullSession("c1")), putEntry(fullEntry("c1", 1)),
					putEntry(fullEntry("c1", 5)), putRetained(fullMessage("r", 0)))
				want := mustLoad(t, s)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				rawPut(t, e, dir, c.key, c.val)

				log := &testLogger{}
				s, err := e.open(dir, Options{Logger: slog.New(slog.NewTextHandler(log, nil)), NoSync: true})
				if err != nil {
					t.Fatalf("reopen: %v", err)
				}
				snap := mustLoad(t, s)
				if snap.Quarantined != 1 {
					t.Fatalf("Quarantined = %d, want 1", snap.Quarantined)
				}
				want.Quarantined = 1
				checkEqual(t, "snapshot", snap, want)
				if !strings.Contains(log.String(), "quarantin") {
					t.Fatalf("nothing logged: %q", log.String())
				}
				// Set aside, not loaded again, not lost.
				if snap := mustLoad(t, s); snap.Quarantined != 0 || len(snap.Entries) != 2 {
					t.Fatalf("second Load: quarantined %d, %d entries", snap.Quarantined, len(snap.Entries))
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				q := rawKeys(t, e, dir, prefixQuarantine)
				checkEqual(t, "quarantine keys", q, []string{prefixQuarantine + string(c.key)})
			})
		}
	}
}

func mustEncodeRetained(t testing.TB, m Message) []byte {
	v, err := encodeRetained(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestBoltDamagedFile: a truncated or overwritten bbolt file is refused at
// Open with ErrCorrupt; nothing panics.
func TestBoltDamagedFile(t *testing.T) {
	fill := func(t *testing.T) string {
		dir := t.TempDir()
		s := openStore(t, engine{"bbolt", true, OpenBolt}, dir)
		var ops []Op
		for i := 0; i < 2000; i++ {
			ops = append(ops, putRetained(fullMessage(fmt.Sprintf("topic/%d", i), 0)))
		}
		mustApply(t, s, ops...)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, BoltFile)
	}
	t.Run("truncated", func(t *testing.T) {
		path := fill(t)
		fi, _ := os.Stat(path)
		if err := os.Truncate(path, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
		_, err := OpenBolt(filepath.Dir(path), quietOpts())
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		path := fill(t)
		fi, _ := os.Stat(path)
		if err := os.WriteFile(path, bytes.Repeat([]byte("garbage!"), int(fi.Size()/8)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenBolt(filepath.Dir(path), quietOpts())
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("short", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, BoltFile), []byte("tiny"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenBolt(dir, quietOpts())
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("garbage data pages", func(t *testing.T) {
		// Meta pages intact, every other page overwritten: Open may
		// succeed, but Load must fail with an error instead of crashing.
		path := fill(t)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		ps := int64(os.Getpagesize())
		junk := bytes.Repeat([]byte{0xA5}, int(fi.Size()-2*ps))
		if _, err := f.WriteAt(junk, 2*ps); err != nil {
			t.Fatal(err)
		}
		f.Close()
		s, err := OpenBolt(filepath.Dir(path), quietOpts())
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
			return
		}
		defer s.Close()
		if _, err := s.Load(context.Background()); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Load = %v, want ErrCorrupt", err)
		}
	})
}

// TestPebbleDamagedManifest: Pebble detects a damaged MANIFEST at Open.
func TestPebbleDamagedManifest(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, engine{"pebble", true, OpenPebble}, dir)
	mustApply(t, s, putSession(fullSession("c")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	if len(m) == 0 {
		t.Fatal("no MANIFEST")
	}
	for _, p := range m {
		fi, _ := os.Stat(p)
		if err := os.WriteFile(p, bytes.Repeat([]byte{0x5A}, int(fi.Size())), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenPebble(dir, quietOpts())
	if err == nil {
		s.Close()
		t.Fatal("Open of a damaged store succeeded")
	}
}

// TestEngineMismatch: each engine refuses a directory of the other.
func TestEngineMismatch(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir, quietOpts())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenPebble(dir, quietOpts()); err == nil || !strings.Contains(err.Error(), "bbolt") {
		t.Fatalf("OpenPebble on a bbolt dir = %v", err)
	}
	dir = t.TempDir()
	s, err = OpenPebble(dir, quietOpts())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenBolt(dir, quietOpts()); err == nil || !strings.Contains(err.Error(), "pebble") {
		t.Fatalf("OpenBolt on a pebble dir = %v", err)
	}
}

// TestVersionMarker: a new store gets the marker; a newer one is refused
// with both versions named; data without a marker is refused.
func TestVersionMarker(t *testing.T) {
	for _, e := range diskEngines() {
		t.Run(e.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, e, dir)
			s.Close()
			if got := rawKeys(t, e, dir, prefixMeta); len(got) != 1 || got[0] != keyVersion {
				t.Fatalf("meta keys %q", got)
			}
			rawPut(t, e, dir, []byte(keyVersion), binary.BigEndian.AppendUint32(nil, Version+1))
			_, err := e.open(dir, quietOpts())
			if !errors.Is(err, ErrVersion) {
				t.Fatalf("open newer = %v, want ErrVersion", err)
			}
			for _, v := range []string{fmt.Sprint(Version + 1), fmt.Sprint(Version)} {
				if !strings.Contains(err.Error(), "version "+v) {
					t.Fatalf("error %q does not name version %s", err, v)
				}
			}
			rawPut(t, e, dir, []byte(keyVersion), []byte{1})
			if _, err := e.open(dir, quietOpts()); !errors.Is(err, ErrVersion) {
				t.Fatalf("open with malformed marker = %v", err)
			}

			dir = t.TempDir()
			rawInit(t, e, dir)
			rawPut(t, e, dir, sessionKey("c"), []byte("x"))
			if _, err := e.open(dir, quietOpts()); !errors.Is(err, ErrVersion) {
				t.Fatalf("open without marker = %v", err)
			}
		})
	}
}

// rawInit creates an empty engine database with our bucket but no marker.
func rawInit(t *testing.T, e engine, dir string) {
	if e.name == "bbolt" {
		s, err := OpenBolt(dir, quietOpts())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.(*kvStore).b.write([]kvOp{{kind: kvDelete, key: []byte(keyVersion)}}); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

// TestMigration runs a migration registered for a raised version.
func TestMigration(t *testing.T) {
	for _, e := range diskEngines() {
		t.Run(e.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, e, dir)
			mustApply(t, s, putRetained(Message{Topic: "old"}))
			s.Close()

			storeVersion = Version + 1
			migrations[Version] = func(b backend) ([]kvOp, error) {
				v, ok, err := b.get(retainedKey("old"))
				if err != nil || !ok {
					return nil, fmt.Errorf("get: %v %v", ok, err)
				}
				m, err := decodeRetained("old", v)
				if err != nil {
					return nil, err
				}
				m.Topic = "new"
				nv, err := encodeRetained(nil, &m)
				return []kvOp{{kind: kvDelete, key: retainedKey("old")}, {kind: kvSet, key: retainedKey("new"), val: nv}}, err
			}
			defer func() {
				storeVersion = Version
				delete(migrations, Version)
			}()
			s = openStore(t, e, dir)
			snap := mustLoad(t, s)
			s.Close()
			checkEqual(t, "migrated", snap.Retained, []Message{{Topic: "new"}})

			// Without the migration, an old store is refused.
			storeVersion = Version + 2
			if _, err := e.open(dir, quietOpts()); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "no migration") {
				t.Fatalf("open without migration = %v", err)
			}
		})
	}
}

// TestLoadContext: a cancelled context stops Load.
func TestLoadContext(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			s := openStore(t, e, t.TempDir())
			defer s.Close()
			var ops []Op
			for i := 0; i < 3000; i++ {
				ops = append(ops, putRetained(Message{Topic: fmt.Sprint(i)}))
			}
			mustApply(t, s, ops...)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := s.Load(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Load = %v", err)
			}
			if err := s.Apply(ctx, ops[:1]); !errors.Is(err, context.Canceled) {
				t.Fatalf("Apply = %v", err)
			}
		})
	}
}

// TestOpenDefault opens the default engine and reopens it.
func TestOpenDefault(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenDefault(dir, quietOpts())
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, putSession(fullSession("c")))
	s.Close()
	s, err = OpenDefault(dir, Options{}) // nil logger, fsync on
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkEqual(t, "sessions", mustLoad(t, s).Sessions, []Session{fullSession("c")})
}

// TestInUse: a store open in one place is refused in another.
func TestInUse(t *testing.T) {
	for _, e := range diskEngines() {
		t.Run(e.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, e, dir)
			defer s.Close()
			if s2, err := e.open(dir, quietOpts()); err == nil {
				s2.Close()
				t.Fatal("second Open succeeded")
			}
		})
	}
}
