// Package filewatch calls a function when files change: the TLS
// certificates, the auth files and the configuration file all reload
// through it.
package filewatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Debounce is how long Watch waits after the last change event before it
// calls onChange, so that a file written in several steps is read once.
const Debounce = 200 * time.Millisecond

// PollInterval is how often Watch also compares the files' modification
// times and sizes, in case change events are lost or unavailable.
const PollInterval = time.Second

// Watch calls onChange after files change, until ctx ends. It watches the
// directories of the files and of their symlink targets, so files
// replaced by rename, rewritten by editors, or switched by a symlink swap
// (as Kubernetes does for mounted secrets) are all noticed; it also checks
// the files every PollInterval. With initial set, onChange runs once at
// the start (a change made before the watch began produced no event).
// Watch returns nil when ctx ends, or an error at once when it cannot
// start watching (no inotify instance, a missing directory). Later
// problems are passed to warn.
func Watch(ctx context.Context, files []string, initial bool, onChange func(), warn func(error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := addDirs(w, files); err != nil {
		return err
	}
	events, errs := w.Events, w.Errors
	last := stamps(files)
	run := func() {
		last = stamps(files)
		onChange()
		if err := addDirs(w, files); err != nil {
			warn(err)
		}
	}
	if initial {
		run()
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	poll := time.NewTicker(PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(Debounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			warn(err)
		case <-timer.C:
			run()
		case <-poll.C:
			if st := stamps(files); st != last {
				run()
			}
		}
	}
}

// stamp identifies a version of a file.
type stamp struct {
	mod  time.Time
	size int64
}

// stamps concatenates the files' stamps into a comparable string.
func stamps(files []string) string {
	b := make([]byte, 0, 64*len(files))
	for _, f := range files {
		var s stamp
		if fi, err := os.Stat(f); err == nil {
			s = stamp{fi.ModTime(), fi.Size()}
		}
		b = s.mod.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '/')
		b = appendInt(b, s.size)
		b = append(b, 0)
	}
	return string(b)
}

func appendInt(b []byte, n int64) []byte {
	if n == 0 {
		return append(b, '0')
	}
	var tmp [20]byte
	i := len(tmp)
	for n > 0 {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, tmp[i:]...)
}

// addDirs adds the directories of files and of their symlink targets that
// are not watched yet.
func addDirs(w *fsnotify.Watcher, files []string) error {
	watched := make(map[string]bool)
	for _, d := range w.WatchList() {
		watched[d] = true
	}
	var errs []error
	for _, f := range files {
		dirs := []string{filepath.Dir(f)}
		if t, err := filepath.EvalSymlinks(f); err == nil {
			dirs = append(dirs, filepath.Dir(t))
		}
		for _, d := range dirs {
			if abs, err := filepath.Abs(d); err == nil {
				d = abs
			}
			if watched[d] {
				continue
			}
			if err := w.Add(d); err != nil {
				errs = append(errs, err)
				continue
			}
			watched[d] = true
		}
	}
	return errors.Join(errs...)
}
