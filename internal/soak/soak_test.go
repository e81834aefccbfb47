package soak

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/client"
)

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// TestSoak is the short soak: the mqtt5 binary with every listener,
// persistence and the profiling endpoint, the full workload for
// SOAK_DURATION (default 60 s) after a warm-up, and the same criteria as
// the long run: no acknowledged QoS 1/2 message lost, no QoS 2 duplicate,
// wills and retained messages exact, and no growth of goroutines,
// descriptors or live heap beyond DefaultTolerance once the broker is
// quiet. SOAK_RATE sets the messages per second of each publisher
// (default 5) and SOAK_OUT keeps the profiles and summary.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	rate := 5.0
	if v := os.Getenv("SOAK_RATE"); v != "" {
		var err error
		if rate, err = strconv.ParseFloat(v, 64); err != nil {
			t.Fatalf("SOAK_RATE: %v", err)
		}
	}
	out := os.Getenv("SOAK_OUT")
	if out == "" {
		out = t.TempDir()
	}
	bin := filepath.Join(t.TempDir(), "mqtt5")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if b, err := exec.Command(gobin, "build", "-o", bin, "github.com/mqtt5go/mqtt5/cmd/mqtt5").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	b, err := StartBroker(ctx, bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Stop(); err != nil {
			t.Errorf("broker stop: %v", err)
		}
		if t.Failed() {
			log, _ := os.ReadFile(b.LogFile)
			t.Logf("broker log (last 4000 bytes):\n%s", log[max(0, len(log)-4000):])
		}
	}()
	pem, err := os.ReadFile(b.Certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	var logBuf syncBuffer // the workload's warnings: problems as they happen, QoS 2 duplicates
	defer func() {
		if t.Failed() {
			t.Logf("workload warnings:\n%s", logBuf.String())
		}
	}()
	rep, err := Soak(ctx, Options{
		Workload: Config{URLs: b.URLs, TLS: &tls.Config{RootCAs: pool}, Duration: envDuration(t, "SOAK_DURATION", time.Minute),
			Rate: rate, Churn: 5 * time.Second, Drain: 3 * time.Minute, Logger: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelWarn}))},
		Warmup: envDuration(t, "SOAK_WARMUP", 10*time.Second),
		Prober: &Prober{PprofURL: b.PprofURL, PID: b.PID},
		Settle: 2 * time.Minute,
		Out:    out,
	})
	if rep != nil {
		t.Logf("\n%s", rep)
	}
	if err != nil {
		t.Fatal(err)
	}
	// The run did what it says: every kind of traffic happened.
	l := rep.Load
	if l.Acked[1] == 0 || l.Acked[2] == 0 || l.Delivered[0] == 0 || l.Cuts == 0 || l.Graceful == 0 ||
		l.WillsExpected == 0 || l.RetainedChecked == 0 || rep.After.Goroutines == 0 || rep.After.FDs <= 0 {
		t.Errorf("workload incomplete: %+v", l)
	}
	for _, p := range rep.Problems {
		t.Error(p)
	}
	for _, f := range []string{"heap-diff.txt", "goroutine-diff.txt", "summary.txt", "heap-before.pb.gz", "goroutine-after.pb.gz"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The accounting: an acknowledged message not delivered is missing, a
// second copy is a duplicate, a failed or pending one is not required.
func TestSinkAccounting(t *testing.T) {
	w := &workload{cfg: Config{Drain: time.Second}, res: &Result{}, wills: map[string]int{}, willGot: map[string]int{}}
	p1 := &publisher{id: "p-1", qos: 1}
	p2 := &publisher{id: "p-2", qos: 2}
	w.pubs = []*publisher{p1, p2}
	for range 4 {
		p1.next()
		p2.next()
	}
	for seq, st := range []uint8{acked, acked, failed, pending} {
		p1.set(seq, st)
		p2.set(seq, st)
	}
	sk := newSink("s")
	w.sinks = []*sink{sk}
	w.cfg.defaults()
	deliver := func(id string, seq int, qos byte) {
		sk.handle(&client.Message{QoS: qos, Payload: w.payload(id, seq)})
	}
	deliver("p-1", 0, 1)
	deliver("p-1", 0, 1) // QoS 1 duplicate: allowed
	deliver("p-2", 0, 2)
	deliver("p-2", 1, 2)
	deliver("p-2", 1, 2) // QoS 2 duplicate: a failure
	deliver("p-2", 2, 2) // failed publish delivered once: fine
	sk.handle(&client.Message{QoS: 1, Payload: []byte("garbage")})
	if n := sk.missing(w.pubs); n != 1 {
		t.Fatalf("missing %d, want 1 (p-1 seq 1)", n)
	}
	w.wills["w1"], w.wills["w2"], w.wills["w3"] = 0, 0, -1
	w.willGot["w1"], w.willGot["w3"] = 1, 1
	w.tally(nil)
	r := w.res
	if r.Missing[1] != 1 || r.Missing[2] != 0 || r.Duplicates[1] != 1 || r.Duplicates[2] != 1 {
		t.Fatalf("missing %v duplicates %v", r.Missing, r.Duplicates)
	}
	if r.Acked[1] != 2 || r.Failed[2] != 1 || r.Pending[2] != 1 {
		t.Fatalf("acked %v failed %v pending %v", r.Acked, r.Failed, r.Pending)
	}
	if r.WillsExpected != 2 || r.WillsMissing != 1 || r.WillsUnexpected != 1 {
		t.Fatalf("wills %d %d %d", r.WillsExpected, r.WillsMissing, r.WillsUnexpected)
	}
	want := []string{"not the workload's", "never delivered", "more than once", "publishes failed", "still unacknowledged", "wills of cut clients", "disconnected normally"}
	all := strings.Join(r.Problems, "\n")
	for _, s := range want {
		if !strings.Contains(all, s) {
			t.Errorf("no problem mentioning %q in\n%s", s, all)
		}
	}
}

func TestCompare(t *testing.T) {
	base := Snapshot{Goroutines: 40, FDs: 30, HeapAlloc: 40 << 20}
	tol := DefaultTolerance
	for _, c := range []struct {
		after Snapshot
		want  int
	}{
		{Snapshot{Goroutines: 50, FDs: 40, HeapAlloc: 50 << 20}, 0},   // at the limits (25 % of 40 MiB = 10 MiB)
		{Snapshot{Goroutines: 51, FDs: 40, HeapAlloc: 40 << 20}, 1},   // one goroutine too many
		{Snapshot{Goroutines: 40, FDs: 41, HeapAlloc: 40 << 20}, 1},   // one descriptor too many
		{Snapshot{Goroutines: 40, FDs: 30, HeapAlloc: 50<<20 + 1}, 1}, // heap
		{Snapshot{Goroutines: 10, FDs: 5, HeapAlloc: 1 << 20}, 0},     // shrinking is fine
		{Snapshot{Goroutines: 60, FDs: 60, HeapAlloc: 100 << 20}, 3},  // all three
		{Snapshot{Goroutines: 40, FDs: -1, HeapAlloc: 40 << 20}, 0},   // descriptors unknown
	} {
		if g := Compare(base, c.after, tol); len(g.Problems) != c.want {
			t.Errorf("%+v: %d problems %q, want %d", c.after, len(g.Problems), g.Problems, c.want)
		}
	}
	// Small heaps: the 4 MiB floor applies.
	if g := Compare(Snapshot{HeapAlloc: 2 << 20}, Snapshot{HeapAlloc: 6 << 20}, tol); len(g.Problems) != 0 || g.HeapAllowed != 4<<20 {
		t.Errorf("floor: %+v", g)
	}
}

// The prober reads the figures of a real net/http/pprof endpoint (this
// process's) and the diffs are made from its profiles.
func TestProberSnapshot(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	p := &Prober{PprofURL: srv.URL, PID: os.Getpid()}
	ctx := context.Background()
	before, err := p.Settle(ctx, nil, DefaultTolerance, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if before.Goroutines < 2 || before.FDs < 3 || before.HeapAlloc == 0 || before.HeapInuse < before.HeapAlloc/2 {
		t.Fatalf("implausible snapshot: %+v", figures(before))
	}
	// Grow: 30 parked goroutines and 8 MiB kept live.
	stop := make(chan struct{})
	done := make(chan struct{})
	for range 30 {
		go func() {
			<-stop
			done <- struct{}{}
		}()
	}
	keep := make([][]byte, 8)
	for i := range keep {
		keep[i] = make([]byte, 1<<20)
		keep[i][0] = 1
	}
	after, err := p.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := Compare(before, after, DefaultTolerance)
	// Other goroutines of the process may end meanwhile: the 30 added
	// must show as growth well past the tolerance, not exactly.
	if g.Goroutines < 20 || g.HeapAlloc < 7<<20 || len(g.Problems) < 2 {
		t.Errorf("growth not seen: %+v", g)
	}
	runtime.KeepAlive(keep)
	close(stop)
	for range 30 {
		<-done
	}
	dir := t.TempDir()
	diffs, err := WriteProfiles(ctx, dir, "", before, after)
	if err != nil {
		t.Fatal(err)
	}
	heap, _ := os.ReadFile(diffs[0])
	if !strings.Contains(string(heap), "inuse_space") || !strings.Contains(string(heap), "TestProberSnapshot") {
		t.Errorf("heap diff does not show the test's allocation:\n%s", Head(heap, 20))
	}
	gor, _ := os.ReadFile(diffs[1])
	if !strings.Contains(string(gor), "TestProberSnapshot") {
		t.Errorf("goroutine diff does not show the parked goroutines:\n%s", Head(gor, 20))
	}
}

// A message handed to a handler after the instance retired (Disconnect
// returned) is counted once and reported as a problem.
func TestInstanceRetire(t *testing.T) {
	w := &workload{}
	w.cfg.defaults()
	sk := newSink("s")
	s := &subscriber{w: w, sink: sk, store: client.NewMemoryStore()}
	inst := &instance{s: s}
	inst.handle(&client.Message{QoS: 2, PacketID: 7, Payload: w.payload("p", 0)})
	if w.afterDisconnect.Load() != 0 || len(w.problems) != 0 {
		t.Fatalf("before retire: after %d problems %v", w.afterDisconnect.Load(), w.problems)
	}
	inst.retire()
	inst.handle(&client.Message{QoS: 2, PacketID: 9, Payload: w.payload("p", 1)}) // after Disconnect
	got := sk.got["p"]
	if len(got) < 2 || got[0] != 1 || got[1] != 1 {
		t.Fatalf("counts %v, want [1 1]", got)
	}
	if w.afterDisconnect.Load() != 1 || sk.qos[2] != 2 || len(w.problems) != 1 {
		t.Fatalf("after %d qos2 %d problems %v", w.afterDisconnect.Load(), sk.qos[2], w.problems)
	}
}
