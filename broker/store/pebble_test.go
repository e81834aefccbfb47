package store

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// failFS makes writes and syncs of WAL files fail while fail is set.
type failFS struct {
	vfs.FS
	fail *atomic.Bool
}

type failFile struct {
	vfs.File
	fail *atomic.Bool
}

func (f failFS) wrap(name string, file vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return file, err
	}
	return failFile{file, f.fail}, nil
}

func (f failFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.Create(name, c)
	return f.wrap(name, file, err)
}

func (f failFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.ReuseForWrite(old, name, c)
	return f.wrap(name, file, err)
}

func (f failFile) Write(p []byte) (int, error) {
	if f.fail.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func (f failFile) Sync() error {
	if f.fail.Load() {
		return syscall.ENOSPC
	}
	return f.File.Sync()
}

func (f failFile) SyncData() error {
	if f.fail.Load() {
		return syscall.ENOSPC
	}
	return f.File.SyncData()
}

func (f failFile) SyncTo(n int64) (bool, error) {
	if f.fail.Load() {
		return false, syscall.ENOSPC
	}
	return f.File.SyncTo(n)
}

// TestPebbleWriteError: Pebble treats a failed WAL write as fatal; the store
// turns it into an error for that Apply and every later one, and still
// closes.
func TestPebbleWriteError(t *testing.T) {
	var fail atomic.Bool
	old := pebbleFS
	pebbleFS = func(fs vfs.FS) vfs.FS { return failFS{fs, &fail} }
	defer func() { pebbleFS = old }()

	opts := quietOpts()
	opts.NoSync = false
	s, err := OpenPebble(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, putSession(fullSession("a")))
	fail.Store(true)
	err = s.Apply(context.Background(), []Op{putSession(fullSession("b"))})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Apply with a failing disk = %v, want ENOSPC", err)
	}
	fail.Store(false)
	if err := s.Apply(context.Background(), []Op{putSession(fullSession("c"))}); err == nil {
		t.Fatal("Apply after a fatal error succeeded")
	}
	_ = s.Close()
}
