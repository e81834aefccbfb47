package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// BoltFile is the name of the bbolt data file inside the store directory.
const BoltFile = "mqtt5.db"

var boltBucket = []byte("mqtt5")

// OpenBolt opens (creating if needed) a bbolt store in directory dir. The
// whole key space lives in one bucket of one file, dir/mqtt5.db. A store
// that another process holds open is refused after one second.
func OpenBolt(dir string, opts Options) (Store, error) {
	log := opts.logger()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if other := detectEngine(dir); other != "" && other != "bbolt" {
		return nil, fmt.Errorf("store: %s holds a %s store, not bbolt", dir, other)
	}
	path := filepath.Join(dir, BoltFile)
	var db *bolt.DB
	err := guard(func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout: time.Second,
			NoSync:  opts.NoSync,
			// The freelist stays on disk (NoFreelistSync false): without
			// it, Open rebuilds it by walking the tree on a goroutine of
			// bbolt's own, where a corrupt page panics beyond recovery.
			FreelistType: bolt.FreelistMapType,
		})
		return err
	})
	if errors.Is(err, ErrCorrupt) {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("store: %s is in use by another process: %w", path, err)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
			errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
			return nil, fmt.Errorf("%w: open %s: %w", ErrCorrupt, path, err)
		}
		if fi, serr := os.Stat(path); serr == nil && fi.Size() > 0 && fi.Size() < 2*int64(os.Getpagesize()) {
			return nil, fmt.Errorf("%w: open %s: %w", ErrCorrupt, path, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	b := &boltBackend{db: db}
	if err := b.init(path); err != nil {
		_ = db.Close()
		return nil, err
	}
	s, err := openKV("bbolt", b, log)
	if err != nil {
		return nil, err
	}
	return s, nil
}

type boltBackend struct{ db *bolt.DB }

// init checks that the file is as long as its meta page says (a truncated
// file would otherwise fault on first access) and creates the bucket.
func (b *boltBackend) init(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var want int64
	if err := b.db.View(func(tx *bolt.Tx) error { want = tx.Size(); return nil }); err != nil {
		return fmt.Errorf("store: %s: %w", path, err)
	}
	if fi.Size() < want {
		return fmt.Errorf("%w: %s is truncated: %d bytes, its meta page needs %d", ErrCorrupt, path, fi.Size(), want)
	}
	return guard(func() error {
		return b.db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(boltBucket)
			return err
		})
	})
}

// guard turns a panic or memory fault inside bbolt (which it raises on
// corrupt pages) into an ErrCorrupt error.
func guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: bbolt: %v", ErrCorrupt, r)
		}
	}()
	return fn()
}

func (b *boltBackend) write(ops []kvOp) error {
	return guard(func() error {
		return b.db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(boltBucket)
			for i := range ops {
				op := &ops[i]
				var err error
				switch op.kind {
				case kvSet:
					err = bk.Put(op.key, op.val)
				case kvDelete:
					err = bk.Delete(op.key)
				case kvDeletePrefix:
					// Collect first: deleting under a cursor skips keys.
					var keys [][]byte
					c := bk.Cursor()
					for k, _ := c.Seek(op.key); k != nil && bytes.HasPrefix(k, op.key); k, _ = c.Next() {
						keys = append(keys, bytes.Clone(k))
					}
					for _, k := range keys {
						if err = bk.Delete(k); err != nil {
							break
						}
					}
				}
				if err != nil {
					return fmt.Errorf("store: bbolt: %w", err)
				}
			}
			return nil
		})
	})
}

func (b *boltBackend) scan(from []byte, fn func(k, v []byte) error) error {
	err := guard(func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(boltBucket).Cursor()
			var k, v []byte
			if from == nil {
				k, v = c.First()
			} else {
				k, v = c.Seek(from)
			}
			for ; k != nil; k, v = c.Next() {
				if v == nil {
					continue // a nested bucket: not ours
				}
				if err := fn(k, v); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if errors.Is(err, errStopScan) {
		return nil
	}
	return err
}

func (b *boltBackend) get(key []byte) (val []byte, ok bool, err error) {
	err = guard(func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			if v := tx.Bucket(boltBucket).Get(key); v != nil {
				val, ok = bytes.Clone(v), true
			}
			return nil
		})
	})
	return val, ok, err
}

func (b *boltBackend) close() error { return b.db.Close() }

// detectEngine names the engine whose files dir holds, "" if none.
func detectEngine(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, BoltFile)); err == nil {
		return "bbolt"
	}
	if _, err := os.Stat(filepath.Join(dir, "CURRENT")); err == nil {
		return "pebble"
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*")); len(m) > 0 {
		return "pebble"
	}
	return ""
}
