package soak

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Snapshot is the broker's resource state at one moment, taken after a
// forced garbage collection.
type Snapshot struct {
	Taken      time.Time
	Goroutines int
	// HeapAlloc is the live heap after a forced GC (runtime.MemStats
	// HeapAlloc: the in-use space of the heap profile, unsampled);
	// HeapInuse counts whole spans, fragmentation included.
	HeapAlloc, HeapInuse uint64
	// FDs is the number of open file descriptors (-1 when /proc/PID/fd
	// cannot be read, e.g. no PID given).
	FDs int
	// GoroutineProfile and HeapProfile are the binary (protobuf) profiles;
	// GoroutineText is the goroutine profile with debug=1 (stacks grouped).
	GoroutineProfile, HeapProfile, GoroutineText []byte
}

// Tolerance is how much growth Compare accepts between two snapshots.
type Tolerance struct {
	Goroutines int
	FDs        int
	// Heap growth is accepted up to the larger of HeapFraction of the
	// first snapshot's live heap and HeapBytes.
	HeapFraction float64
	HeapBytes    uint64
}

// DefaultTolerance: a leaked connection keeps at least one descriptor
// (and, unless parked idle, goroutines), and the workload opens thousands
// of connections, so a leak of even a small fraction of them exceeds 10 by
// far; 10 absorbs the runtime's and the broker's own coming and going (GC
// workers, timers, the $SYS publisher, the profiling connection itself).
// The live heap after a forced GC still varies by a few MiB with pools,
// caches and the store's buffers; 25 % or 4 MiB, whichever is larger, is
// above that noise and below what thousands of leaked sessions or
// connections would hold.
var DefaultTolerance = Tolerance{Goroutines: 10, FDs: 10, HeapFraction: 0.25, HeapBytes: 4 << 20}

// Prober reads snapshots from a broker's profiling endpoint.
type Prober struct {
	// PprofURL is http://host:port of telemetry.pprof_listen.
	PprofURL string
	// PID is the broker's process id, for /proc/PID/fd (0: not counted).
	PID  int
	HTTP *http.Client
}

func (p *Prober) client() *http.Client {
	if p.HTTP != nil {
		return p.HTTP
	}
	// No keep-alive: an idle connection would be one more descriptor and
	// goroutine in the broker.
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

func (p *Prober) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.PprofURL+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("pprof: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("pprof %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("pprof %s: %s: %.200s", path, resp.Status, b)
	}
	return b, nil
}

var (
	goroutineTotalRE = regexp.MustCompile(`goroutine profile: total (\d+)`)
	heapAllocRE      = regexp.MustCompile(`# HeapAlloc = (\d+)`)
	heapInuseRE      = regexp.MustCompile(`# HeapInuse = (\d+)`)
)

// Counts reads the goroutine count and the descriptor count only.
func (p *Prober) Counts(ctx context.Context) (goroutines, fds int, err error) {
	b, err := p.get(ctx, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, 0, err
	}
	m := goroutineTotalRE.FindSubmatch(b)
	if m == nil {
		return 0, 0, fmt.Errorf("pprof: no goroutine total in %.200q", b)
	}
	goroutines, _ = strconv.Atoi(string(m[1]))
	return goroutines, p.fds(), nil
}

func (p *Prober) fds() int {
	if p.PID <= 0 {
		return -1
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID))
	if err != nil {
		return -1
	}
	return len(ents)
}

// Snapshot forces a GC in the broker (heap?gc=1) and reads every figure
// and both profiles.
func (p *Prober) Snapshot(ctx context.Context) (Snapshot, error) {
	s := Snapshot{Taken: time.Now()}
	var err error
	if s.HeapProfile, err = p.get(ctx, "/debug/pprof/heap?gc=1"); err != nil {
		return s, err
	}
	text, err := p.get(ctx, "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return s, err
	}
	a, i := heapAllocRE.FindSubmatch(text), heapInuseRE.FindSubmatch(text)
	if a == nil || i == nil {
		return s, fmt.Errorf("pprof: no HeapAlloc/HeapInuse in the heap profile")
	}
	s.HeapAlloc, _ = strconv.ParseUint(string(a[1]), 10, 64)
	s.HeapInuse, _ = strconv.ParseUint(string(i[1]), 10, 64)
	if s.GoroutineProfile, err = p.get(ctx, "/debug/pprof/goroutine"); err != nil {
		return s, err
	}
	if s.GoroutineText, err = p.get(ctx, "/debug/pprof/goroutine?debug=1"); err != nil {
		return s, err
	}
	m := goroutineTotalRE.FindSubmatch(s.GoroutineText)
	if m == nil {
		return s, fmt.Errorf("pprof: no goroutine total")
	}
	s.Goroutines, _ = strconv.Atoi(string(m[1]))
	s.FDs = p.fds()
	return s, nil
}

// Settle polls the goroutine and descriptor counts once a second until
// they are the same three times in a row and, when base is not nil, within
// tol of it — or until max has passed — and then takes a Snapshot.
// Connections the clients closed take the broker a moment to tear down
// (QUIC connections drain for a few round trips), so the comparison waits
// for the broker to be quiet instead of for a fixed time.
func (p *Prober) Settle(ctx context.Context, base *Snapshot, tol Tolerance, max time.Duration) (Snapshot, error) {
	deadline := time.Now().Add(max)
	var lastG, lastF, same int
	for {
		g, f, err := p.Counts(ctx)
		if err != nil {
			return Snapshot{}, err
		}
		if g == lastG && f == lastF {
			same++
		} else {
			same = 0
		}
		lastG, lastF = g, f
		within := base == nil || (g-base.Goroutines <= tol.Goroutines && (f < 0 || f-base.FDs <= tol.FDs))
		if (same >= 2 && within) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return Snapshot{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return p.Snapshot(ctx)
}

// Growth is the comparison of two snapshots.
type Growth struct {
	Goroutines, FDs int
	HeapAlloc       int64
	HeapAllowed     uint64
	Problems        []string
}

// Compare returns the growth from before to after and a problem for each
// figure beyond tol.
func Compare(before, after Snapshot, tol Tolerance) Growth {
	g := Growth{
		Goroutines: after.Goroutines - before.Goroutines,
		FDs:        after.FDs - before.FDs,
		HeapAlloc:  int64(after.HeapAlloc) - int64(before.HeapAlloc),
	}
	g.HeapAllowed = max(uint64(float64(before.HeapAlloc)*tol.HeapFraction), tol.HeapBytes)
	if g.Goroutines > tol.Goroutines {
		g.Problems = append(g.Problems, fmt.Sprintf("goroutines grew by %d (%d -> %d; tolerance %d)", g.Goroutines, before.Goroutines, after.Goroutines, tol.Goroutines))
	}
	if before.FDs >= 0 && after.FDs >= 0 && g.FDs > tol.FDs {
		g.Problems = append(g.Problems, fmt.Sprintf("file descriptors grew by %d (%d -> %d; tolerance %d)", g.FDs, before.FDs, after.FDs, tol.FDs))
	}
	if g.HeapAlloc > 0 && uint64(g.HeapAlloc) > g.HeapAllowed {
		g.Problems = append(g.Problems, fmt.Sprintf("live heap grew by %s (%s -> %s; tolerance %s)", mib(g.HeapAlloc), mib(int64(before.HeapAlloc)), mib(int64(after.HeapAlloc)), mib(int64(g.HeapAllowed))))
	}
	return g
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// WriteProfiles writes both snapshots' profiles into dir, and the output
// of "go tool pprof -top -diff_base" for the heap (in-use space) and the
// goroutines when a go command is found (goBin, else $GOROOT/bin/go, else
// go on $PATH). It returns the diff files written.
func WriteProfiles(ctx context.Context, dir, goBin string, before, after Snapshot) ([]string, error) {
	files := map[string][]byte{
		"heap-before.pb.gz":           before.HeapProfile,
		"heap-after.pb.gz":            after.HeapProfile,
		"goroutine-before.pb.gz":      before.GoroutineProfile,
		"goroutine-after.pb.gz":       after.GoroutineProfile,
		"goroutine-before-debug1.txt": before.GoroutineText,
		"goroutine-after-debug1.txt":  after.GoroutineText,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	goBin = findGo(goBin)
	if goBin == "" {
		return nil, fmt.Errorf("no go command found: profiles written, diffs not made")
	}
	var diffs []string
	for _, d := range []struct {
		name, before, after string
		args                []string
	}{
		{"heap-diff.txt", "heap-before.pb.gz", "heap-after.pb.gz", []string{"-sample_index=inuse_space"}},
		{"goroutine-diff.txt", "goroutine-before.pb.gz", "goroutine-after.pb.gz", nil},
	} {
		args := append([]string{"tool", "pprof", "-top"}, d.args...)
		args = append(args, "-diff_base", filepath.Join(dir, d.before), filepath.Join(dir, d.after))
		cmd := exec.CommandContext(ctx, goBin, args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return diffs, fmt.Errorf("go tool pprof %s: %w\n%s", d.name, err, out)
		}
		path := filepath.Join(dir, d.name)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			return diffs, err
		}
		diffs = append(diffs, path)
	}
	return diffs, nil
}

func findGo(goBin string) string {
	if goBin != "" {
		return goBin
	}
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Head returns the first n lines of b.
func Head(b []byte, n int) string {
	lines := strings.SplitAfterN(string(b), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "")
}
