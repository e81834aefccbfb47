package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// OpenPebble opens (creating if needed) a Pebble store in directory dir.
// Pebble takes a lock file: a store another process holds is refused.
//
// Pebble treats a failed WAL write or sync as fatal (its Logger.Fatalf);
// this store turns that into an error for the Apply in progress and every
// later one, instead of exiting the process.
func OpenPebble(dir string, opts Options) (Store, error) {
	log := opts.logger()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if other := detectEngine(dir); other != "" && other != "pebble" {
		return nil, fmt.Errorf("store: %s holds a %s store, not pebble", dir, other)
	}
	b := &pebbleBackend{sync: pebble.Sync}
	if opts.NoSync {
		b.sync = pebble.NoSync
	}
	// Pebble's own disk-health wrapper leaks its goroutine when Open
	// fails; this one is closed on every path.
	fs, fsCloser := vfs.WithDiskHealthChecks(pebbleFS(vfs.Default), 5*time.Second, nil, func(info vfs.DiskSlowInfo) {
		log.Warn("store: pebble: slow disk", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
	})
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 fs,
		Logger:             pebbleLogger{log},
		FormatMajorVersion: pebble.FormatValueSeparation,
	})
	if err != nil {
		_ = fsCloser.Close()
		if pebble.IsCorruptionError(err) {
			return nil, fmt.Errorf("%w: open pebble %s: %w", ErrCorrupt, dir, err)
		}
		return nil, fmt.Errorf("store: open pebble %s: %w", dir, err)
	}
	b.db, b.fsCloser = db, fsCloser
	return openKV("pebble", b, log)
}

// pebbleFS lets tests wrap Pebble's file system (to inject I/O errors).
var pebbleFS = func(fs vfs.FS) vfs.FS { return fs }

type pebbleBackend struct {
	db       *pebble.DB
	fsCloser io.Closer
	sync     *pebble.WriteOptions
	broken   atomic.Pointer[error] // set once Pebble reported a fatal error
}

// pebbleFatal is what pebbleLogger.Fatalf panics with: the message and
// the error among its arguments, if any.
type pebbleFatal struct {
	msg string
	err error
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	f := pebbleFatal{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if e, ok := a.(error); ok {
			f.err = e
			break
		}
	}
	p.l.Error("pebble: fatal: " + f.msg)
	panic(f)
}

func (b *pebbleBackend) isBroken() error {
	if e := b.broken.Load(); e != nil {
		return *e
	}
	return nil
}

func (b *pebbleBackend) write(ops []kvOp) (err error) {
	if err := b.isBroken(); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(pebbleFatal)
			if !ok {
				panic(r)
			}
			e := fmt.Errorf("store: pebble: %s (restart needed)", f.msg)
			if f.err != nil {
				e = fmt.Errorf("store: pebble: fatal, restart needed: %w", f.err)
			}
			b.broken.CompareAndSwap(nil, &e)
			err = e
		}
	}()
	batch := b.db.NewBatch()
	defer batch.Close()
	for i := range ops {
		op := &ops[i]
		switch op.kind {
		case kvSet:
			err = batch.Set(op.key, op.val, nil)
		case kvDelete:
			err = batch.Delete(op.key, nil)
		case kvDeletePrefix:
			err = batch.DeleteRange(op.key, prefixEnd(op.key), nil)
		}
		if err != nil {
			return fmt.Errorf("store: pebble: %w", err)
		}
	}
	if err := batch.Commit(b.sync); err != nil {
		return fmt.Errorf("store: pebble: %w", err)
	}
	return nil
}

func (b *pebbleBackend) scan(from []byte, fn func(k, v []byte) error) error {
	it, err := b.db.NewIterWithContext(context.Background(), &pebble.IterOptions{LowerBound: from})
	if err != nil {
		return pebbleErr(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return pebbleErr(err)
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			if errors.Is(err, errStopScan) {
				return nil
			}
			return err
		}
	}
	if err := it.Close(); err != nil {
		return pebbleErr(err)
	}
	return nil
}

func (b *pebbleBackend) get(key []byte) ([]byte, bool, error) {
	v, closer, err := b.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, pebbleErr(err)
	}
	out := append([]byte(nil), v...)
	_ = closer.Close()
	return out, true, nil
}

func (b *pebbleBackend) close() error {
	if err := b.isBroken(); err != nil {
		// The commit pipeline is in an unknown state after a fatal error;
		// closing may panic. Release what can be released.
		defer func() { _ = recover() }()
	}
	defer b.fsCloser.Close()
	return b.db.Close()
}

func pebbleErr(err error) error {
	if pebble.IsCorruptionError(err) {
		return fmt.Errorf("%w: pebble: %w", ErrCorrupt, err)
	}
	return fmt.Errorf("store: pebble: %w", err)
}
