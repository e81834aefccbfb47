package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Options configures an on-disk store.
type Options struct {
	// Logger receives quarantine reports and engine messages; nil means
	// slog.Default().
	Logger *slog.Logger
	// NoSync skips fsync on commit: Apply is then atomic but not durable
	// across a machine crash. For tests and benchmarks only.
	NoSync bool
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// Version is the on-disk layout version this code writes (the value of
// the meta/version key).
const Version uint32 = 1

// ErrVersion marks a store whose on-disk version this program cannot use.
var ErrVersion = errors.New("store: unsupported on-disk version")

// migrations upgrade a store in place: migrations[v] takes a store at
// version v to v+1, inside the same write as the new version marker. It is
// empty while Version is 1; a change to the key layout or to the record
// encoding adds an entry here and increments Version.
var migrations = map[uint32]func(b backend) ([]kvOp, error){}

// storeVersion is Version; tests raise it to exercise migrations.
var storeVersion = Version

// backend is what an engine provides to kvStore: atomic writes, an ordered
// scan and point reads over one flat key space.
type backend interface {
	// write applies ops atomically (all or none) and, unless the store was
	// opened with NoSync, durably.
	write(ops []kvOp) error
	// scan calls fn for every key at or after from in ascending order; k and
	// v are valid only during the call. fn returning errStopScan ends the
	// scan without error.
	scan(from []byte, fn func(k, v []byte) error) error
	// get returns a copy of the value of key, or nil, false.
	get(key []byte) ([]byte, bool, error)
	close() error
}

var errStopScan = errors.New("stop scan")

// kvStore implements Store over a backend: validation and encoding,
// Load with quarantine, the closed state.
type kvStore struct {
	name string
	log  *slog.Logger

	mu     sync.RWMutex // Apply and Load hold it shared, Close exclusively
	closed bool
	b      backend
}

// openKV checks the version marker (writing it into a new store, running
// migrations on an older one) and returns the Store.
func openKV(name string, b backend, log *slog.Logger) (*kvStore, error) {
	s := &kvStore{name: name, log: log, b: b}
	if err := s.checkVersion(); err != nil {
		_ = b.close()
		return nil, err
	}
	return s, nil
}

func versionValue(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func (s *kvStore) checkVersion() error {
	raw, ok, err := s.b.get([]byte(keyVersion))
	if err != nil {
		return fmt.Errorf("store: %s: reading version: %w", s.name, err)
	}
	if !ok {
		empty := true
		err := s.b.scan(nil, func(k, _ []byte) error {
			empty = false
			return errStopScan
		})
		if err != nil {
			return fmt.Errorf("store: %s: %w", s.name, err)
		}
		if !empty {
			return fmt.Errorf("%w: %s store has data but no version marker", ErrVersion, s.name)
		}
		return s.b.write([]kvOp{{kind: kvSet, key: []byte(keyVersion), val: versionValue(storeVersion)}})
	}
	if len(raw) != 4 {
		return fmt.Errorf("%w: %s: malformed version marker %x", ErrVersion, s.name, raw)
	}
	v := binary.BigEndian.Uint32(raw)
	switch {
	case v == storeVersion:
		return nil
	case v > storeVersion:
		return fmt.Errorf("%w: %s store is version %d, this program supports up to version %d", ErrVersion, s.name, v, storeVersion)
	case v == 0:
		return fmt.Errorf("%w: %s store has version 0", ErrVersion, s.name)
	}
	for ; v < storeVersion; v++ {
		m := migrations[v]
		if m == nil {
			return fmt.Errorf("%w: %s store is version %d, no migration to version %d", ErrVersion, s.name, v, v+1)
		}
		ops, err := m(s.b)
		if err != nil {
			return fmt.Errorf("store: %s: migration %d→%d: %w", s.name, v, v+1, err)
		}
		ops = append(ops, kvOp{kind: kvSet, key: []byte(keyVersion), val: versionValue(v + 1)})
		if err := s.b.write(ops); err != nil {
			return fmt.Errorf("store: %s: migration %d→%d: %w", s.name, v, v+1, err)
		}
		s.log.Info("store: migrated", "engine", s.name, "from", v, "to", v+1)
	}
	return nil
}

// Apply implements Store.
func (s *kvStore) Apply(ctx context.Context, ops []Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	kops, err := encodeOps(ops)
	if err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if len(kops) == 0 {
		return nil
	}
	return s.b.write(kops)
}

// Load implements Store. Records that fail their checksum or decoding, and
// keys outside the layout, are moved under q/ and counted.
func (s *kvStore) Load(ctx context.Context) (*Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	var (
		snap        = &Snapshot{}
		sessions    chunked[Session]
		entries     chunked[Entry]
		retained    chunked[Message]
		bad         []kvOp
		quarantined int
		ar          arena
		n           int
	)
	err := s.b.scan(nil, func(k, v []byte) error {
		if n++; n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var err error
		switch {
		case bytes.HasPrefix(k, []byte(prefixMeta)):
			return nil
		case bytes.HasPrefix(k, []byte(prefixQuarantine)):
			quarantined++
			return nil
		case bytes.HasPrefix(k, []byte(prefixSession)) && len(k) > len(prefixSession):
			var ses Session
			if ses, err = decodeSession(string(k[len(prefixSession):]), ar.copy(v)); err == nil {
				sessions.add(ses)
			}
		case bytes.HasPrefix(k, []byte(prefixEntry)):
			id, seq, ok := parseEntryKey(k[len(prefixEntry):])
			if !ok {
				err = corrupt("malformed entry key")
				break
			}
			var e Entry
			if e, err = decodeEntry(id, seq, ar.copy(v)); err == nil {
				entries.add(e)
			}
		case bytes.HasPrefix(k, []byte(prefixRetained)) && len(k) > len(prefixRetained):
			var m Message
			if m, err = decodeRetained(string(k[len(prefixRetained):]), ar.copy(v)); err == nil {
				retained.add(m)
			}
		default:
			err = corrupt("key outside the layout")
		}
		if err != nil {
			s.log.Error("store: quarantining record", "engine", s.name, "key", fmt.Sprintf("%q", k), "err", err)
			qk := append([]byte(prefixQuarantine), k...)
			bad = append(bad,
				kvOp{kind: kvSet, key: qk, val: bytes.Clone(v)},
				kvOp{kind: kvDelete, key: bytes.Clone(k)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: %s: load: %w", s.name, err)
	}
	snap.Sessions, snap.Entries, snap.Retained = sessions.all(), entries.all(), retained.all()
	snap.Quarantined = len(bad) / 2
	if len(bad) > 0 {
		// Setting records aside must not stop start-up: they are skipped
		// either way, and the next Load finds them again if this fails.
		if err := s.b.write(bad); err != nil {
			s.log.Error("store: could not move corrupt records to quarantine", "engine", s.name, "count", snap.Quarantined, "err", err)
		}
	}
	if quarantined > 0 {
		s.log.Warn("store: records in quarantine from earlier loads", "engine", s.name, "count", quarantined)
	}
	return snap, nil
}

// Close implements Store: it waits for Apply and Load calls in progress.
func (s *kvStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.b.close()
}

// arena copies values into shared chunks so that loading a million records
// does not make a million allocations. Decoded records alias it.
type arena struct{ buf []byte }

const arenaChunk = 64 << 10

func (a *arena) copy(v []byte) []byte {
	if len(v) > arenaChunk/4 {
		return bytes.Clone(v)
	}
	if cap(a.buf)-len(a.buf) < len(v) {
		a.buf = make([]byte, 0, arenaChunk)
	}
	n := len(a.buf)
	a.buf = append(a.buf, v...)
	return a.buf[n:len(a.buf):len(a.buf)]
}

// chunked collects values in fixed-size chunks and copies them once into
// an exact-size slice: growing one slice of a million 360-byte messages
// by append allocates several times its final size.
type chunked[T any] struct {
	done [][]T
	cur  []T
	n    int
}

const chunkLen = 4096

func (c *chunked[T]) add(v T) {
	if len(c.cur) == cap(c.cur) {
		if c.cur != nil {
			c.done = append(c.done, c.cur)
		}
		c.cur = make([]T, 0, min(max(2*cap(c.cur), 16), chunkLen))
	}
	c.cur = append(c.cur, v)
	c.n++
}

func (c *chunked[T]) all() []T {
	if c.n == 0 {
		return nil
	}
	if len(c.done) == 0 {
		return c.cur[:len(c.cur):len(c.cur)]
	}
	out := make([]T, 0, c.n)
	for _, ch := range c.done {
		out = append(out, ch...)
	}
	return append(out, c.cur...)
}
