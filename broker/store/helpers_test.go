package store

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/mqtt5go/mqtt5/packet"
)

// engine is one Store implementation under test.
type engine struct {
	name string
	disk bool
	open func(dir string, opts Options) (Store, error)
}

func engines() []engine {
	return []engine{
		{"memory", false, nil},
		{"bbolt", true, OpenBolt},
		{"pebble", true, OpenPebble},
	}
}

func diskEngines() []engine {
	var out []engine
	for _, e := range engines() {
		if e.disk {
			out = append(out, e)
		}
	}
	return out
}

// testLogger collects log output so that tests can assert on it and keep
// the test output quiet.
type testLogger struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *testLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *testLogger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func quietOpts() Options {
	return Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoSync: true}
}

// openStore opens a fresh store of engine e in dir (ignored for memory).
func openStore(t testing.TB, e engine, dir string) Store {
	t.Helper()
	if !e.disk {
		return NewMemory()
	}
	s, err := e.open(dir, quietOpts())
	if err != nil {
		t.Fatalf("open %s: %v", e.name, err)
	}
	return s
}

func mustApply(t testing.TB, s Store, ops ...Op) {
	t.Helper()
	if err := s.Apply(context.Background(), ops); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func mustLoad(t testing.TB, s Store) *Snapshot {
	t.Helper()
	snap, err := s.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return snap
}

// ts returns a time as decoding produces it (time.Unix: local zone, no
// monotonic reading), so that reflect.DeepEqual compares records.
func ts(n int64) time.Time { return time.Unix(0, n) }

// fullProps sets every property a PUBLISH may carry, zero-valued present
// ones included, and marks them present as decoding does.
func fullProps() packet.Properties {
	var p packet.Properties
	p.PayloadFormat = 1
	p.MessageExpiry = 3600
	p.ContentType = "application/json; charset=utf-8"
	p.ResponseTopic = "reply/to/me"
	p.CorrelationData = []byte{0, 1, 2, 0xFF}
	p.SubscriptionIDs = []uint32{1, 268435455}
	p.TopicAlias = 7
	p.User = []packet.UserProperty{
		{Key: "k", Value: "v"}, {Key: "k", Value: "v2"}, {Key: "", Value: ""}, {Key: "ключ", Value: "значение"},
	}
	for _, id := range []packet.PropID{
		packet.PropPayloadFormat, packet.PropMessageExpiry, packet.PropContentType,
		packet.PropResponseTopic, packet.PropCorrelationData, packet.PropSubscriptionID,
		packet.PropTopicAlias, packet.PropUser,
	} {
		p.Set(id)
	}
	return p
}

func fullMessage(topic string, qos byte) Message {
	return Message{
		Topic:    topic,
		Payload:  []byte("payload \x00 with binary \xff"),
		QoS:      qos,
		Retain:   true,
		Props:    fullProps(),
		ClientID: "publisher-1",
		Created:  ts(1_700_000_000_123_456_789),
	}
}

func fullSession(id string) Session {
	return Session{
		ClientID:       id,
		Username:       "user",
		Version:        5,
		Expiry:         0xFFFFFFFF,
		DisconnectedAt: ts(1_700_000_100_000_000_001),
		Subscriptions: []Subscription{
			{Filter: "a/+/c", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, SubID: 268435455},
			{Filter: "$share/g/x/#", QoS: 1, RetainHandling: 1, SubID: 1},
			{Filter: "#"},
		},
		Will:        &Will{Message: fullMessage("will/"+id, 1), Delay: 30},
		InboundQoS2: []uint16{1, 2, 65535},
	}
}

func fullEntry(id string, seq uint64) Entry {
	return Entry{
		ClientID: id,
		Seq:      seq,
		Msg:      fullMessage("t/"+id, 2),
		QoS:      1,
		Retain:   true,
		SubIDs:   []uint32{3, 268435455},
		Group:    "$share/g/t/#",
		PacketID: 65535,
		Released: true,
	}
}

// smallEntry is the QoS 1 benchmark record: a 64-byte payload.
func smallEntry(id string, seq uint64) Entry {
	return Entry{
		ClientID: id,
		Seq:      seq,
		Msg: Message{
			Topic:    "bench/topic",
			Payload:  bytes.Repeat([]byte{'x'}, 64),
			QoS:      1,
			ClientID: "pub",
			Created:  ts(1_700_000_000_000_000_000),
		},
		QoS: 1,
	}
}

func putSession(s Session) Op { return Op{Kind: PutSession, Session: &s} }
func putEntry(e Entry) Op     { return Op{Kind: PutEntry, Entry: &e} }
func putRetained(m Message) Op {
	return Op{Kind: PutRetained, Retained: &m}
}

func checkEqual(t testing.TB, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// eventually polls cond until it holds or ten seconds pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// rawPut writes key=val directly through the engine's own API, bypassing
// encoding and validation.
func rawPut(t testing.TB, e engine, dir string, key, val []byte) {
	t.Helper()
	switch e.name {
	case "bbolt":
		db, err := bolt.Open(dir+"/"+BoltFile, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Put(key, val) })
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	case "pebble":
		db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{quietOpts().Logger}})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Set(key, val, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("rawPut: no raw access to %s", e.name)
	}
}

// rawKeys lists every key with prefix through the engine's own API.
func rawKeys(t testing.TB, e engine, dir string, prefix string) []string {
	t.Helper()
	var keys []string
	switch e.name {
	case "bbolt":
		db, err := bolt.Open(dir+"/"+BoltFile, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		_ = db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(boltBucket).ForEach(func(k, _ []byte) error {
				if strings.HasPrefix(string(k), prefix) {
					keys = append(keys, string(k))
				}
				return nil
			})
		})
	case "pebble":
		db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{quietOpts().Logger}})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		it, err := db.NewIter(nil)
		if err != nil {
			t.Fatal(err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			if strings.HasPrefix(string(it.Key()), prefix) {
				keys = append(keys, string(it.Key()))
			}
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
