package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options are a whole soak run: warm-up, snapshot, load, snapshot,
// comparison.
type Options struct {
	// Workload is the load phase; its Duration is the soak's length.
	Workload Config
	// Warmup is the length of the warm-up run of the same workload
	// (default 20 s), after which the first snapshot is taken.
	Warmup time.Duration
	// Prober reads the broker's profiles and descriptors.
	Prober *Prober
	// Settle bounds the wait for the broker to become quiet before each
	// snapshot (default 2 minutes).
	Settle    time.Duration
	Tolerance Tolerance
	// Out is the directory of the profiles, diffs and summary.
	Out string
	// GoBin is the go command for the diffs (default: found).
	GoBin string
}

// Report is the outcome of Soak.
type Report struct {
	Warmup, Load  *Result
	Before, After Snapshot
	Growth        Growth
	Diffs         []string
	// Problems are every failed criterion of the load run and of the
	// comparison; empty means the soak passed.
	Problems []string
}

// Soak runs the warm-up, takes the first snapshot once the broker is
// quiet, runs the load, takes the second snapshot, compares them and
// writes everything into o.Out.
func Soak(ctx context.Context, o Options) (*Report, error) {
	if o.Warmup <= 0 {
		o.Warmup = 20 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Minute
	}
	if o.Tolerance == (Tolerance{}) {
		o.Tolerance = DefaultTolerance
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	log := o.Workload.Logger
	rep := &Report{}
	warm := o.Workload
	warm.Duration = o.Warmup
	warm.Prefix = "soak-warmup"
	var err error
	if rep.Warmup, err = Run(ctx, warm); err != nil {
		return rep, fmt.Errorf("warm-up: %w", err)
	}
	for _, p := range rep.Warmup.Problems {
		rep.Problems = append(rep.Problems, "warm-up: "+p)
	}
	if log != nil {
		log.Info("warm-up done; waiting for the broker to settle")
	}
	if rep.Before, err = o.Prober.Settle(ctx, nil, o.Tolerance, o.Settle); err != nil {
		return rep, fmt.Errorf("snapshot before the load: %w", err)
	}
	load := o.Workload
	load.Prefix = "soak-load"
	if rep.Load, err = Run(ctx, load); err != nil {
		return rep, fmt.Errorf("load: %w", err)
	}
	rep.Problems = append(rep.Problems, rep.Load.Problems...)
	if log != nil {
		log.Info("load done; waiting for the broker to settle")
	}
	if rep.After, err = o.Prober.Settle(ctx, &rep.Before, o.Tolerance, o.Settle); err != nil {
		return rep, fmt.Errorf("snapshot after the load: %w", err)
	}
	rep.Growth = Compare(rep.Before, rep.After, o.Tolerance)
	rep.Problems = append(rep.Problems, rep.Growth.Problems...)
	rep.Diffs, err = WriteProfiles(ctx, o.Out, o.GoBin, rep.Before, rep.After)
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	if err := os.WriteFile(filepath.Join(o.Out, "summary.txt"), []byte(rep.String()), 0o644); err != nil {
		return rep, err
	}
	js, _ := json.MarshalIndent(struct {
		Warmup, Load *Result
		Before       snapshotFigures
		After        snapshotFigures
		Growth       Growth
		Problems     []string
	}{rep.Warmup, rep.Load, figures(rep.Before), figures(rep.After), rep.Growth, rep.Problems}, "", "  ")
	return rep, os.WriteFile(filepath.Join(o.Out, "summary.json"), js, 0o644)
}

type snapshotFigures struct {
	Taken                time.Time
	Goroutines, FDs      int
	HeapAlloc, HeapInuse uint64
}

func figures(s Snapshot) snapshotFigures {
	return snapshotFigures{s.Taken, s.Goroutines, s.FDs, s.HeapAlloc, s.HeapInuse}
}

// String is the human summary: both runs, both snapshots, the growth and
// the verdict.
func (r *Report) String() string {
	var b strings.Builder
	if r.Warmup != nil {
		b.WriteString(r.Warmup.String())
	}
	if r.Load != nil {
		b.WriteString(r.Load.String())
	}
	fmt.Fprintf(&b, "broker state (after a forced GC, once quiet)\n")
	fmt.Fprintf(&b, "  %-12s %12s %12s %14s %14s\n", "", "goroutines", "open fds", "live heap", "heap in use")
	for _, s := range []struct {
		name string
		s    Snapshot
	}{{"before load", r.Before}, {"after load", r.After}} {
		fmt.Fprintf(&b, "  %-12s %12d %12d %14s %14s\n", s.name, s.s.Goroutines, s.s.FDs, mib(int64(s.s.HeapAlloc)), mib(int64(s.s.HeapInuse)))
	}
	fmt.Fprintf(&b, "  %-12s %+12d %+12d %14s %14s\n", "growth", r.Growth.Goroutines, r.Growth.FDs, mib(r.Growth.HeapAlloc), "")
	fmt.Fprintf(&b, "  heap growth allowed: %s\n", mib(int64(r.Growth.HeapAllowed)))
	if len(r.Problems) == 0 {
		b.WriteString("SOAK PASSED\n")
	} else {
		b.WriteString("SOAK FAILED\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	return b.String()
}
