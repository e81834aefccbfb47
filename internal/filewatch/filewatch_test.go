package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitCount polls until n reaches want.
func waitCount(t *testing.T, n *atomic.Int32, want int32, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d calls, want %d", what, n.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A rewrite and a rename over the file each call onChange (symlink swaps
// are tested through transport.CertReloader).
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("1"), 0o600)
	var n atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := Watch(ctx, []string{f}, true, func() { n.Add(1) }, func(err error) { t.Errorf("warn: %v", err) }); err != nil {
			t.Error(err)
		}
	}()
	defer func() { cancel(); <-done }()
	waitCount(t, &n, 1, "initial")
	os.WriteFile(f, []byte("22"), 0o600)
	waitCount(t, &n, 2, "rewrite")
	tmp := filepath.Join(dir, "f.tmp")
	os.WriteFile(tmp, []byte("333"), 0o600)
	os.Rename(tmp, f)
	waitCount(t, &n, 3, "rename")

}

// A watch that cannot start reports it at once.
func TestWatchMissingDirectory(t *testing.T) {
	err := Watch(context.Background(), []string{filepath.Join(t.TempDir(), "no", "such", "f")}, false, func() {}, func(error) {})
	if err == nil {
		t.Fatal("no error for a missing directory")
	}
}
