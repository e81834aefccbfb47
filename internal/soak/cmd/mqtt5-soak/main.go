// Command mqtt5-soak runs the soak test of package soak against an mqtt5
// broker: either one it starts (--broker-bin, every listener, persistence
// and the profiling endpoint on loopback) or a running one (--url for each
// transport, --pprof, --pid, --ca). It prints the summary and the profile
// diffs, writes everything into --out, and exits 1 when a message was
// lost, a QoS 2 message duplicated, or goroutines, descriptors or the
// live heap grew beyond the tolerance. See docs/soak.md.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mqtt5go/mqtt5/internal/soak"
)

type urlList []string

func (l *urlList) String() string     { return strings.Join(*l, ",") }
func (l *urlList) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mqtt5-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		brokerBin  = fs.String("broker-bin", "", "mqtt5 binary to start as the broker (every listener, persistence and pprof on loopback)")
		brokerArgs urlList
		urls       urlList
		caFile     = fs.String("ca", "", "CA file (PEM) of the broker's certificate, with --url")
		pprofURL   = fs.String("pprof", "", "base URL of the broker's profiling endpoint (http://127.0.0.1:6060), with --url")
		pid        = fs.Int("pid", 0, "broker process id, for its open file descriptors (/proc/PID/fd), with --url")
		out        = fs.String("out", filepath.Join(os.TempDir(), "mqtt5-soak-"+time.Now().UTC().Format("20060102T150405Z")), "directory of the profiles, diffs, summary and (with --broker-bin) the broker's data and log")
		duration   = fs.Duration("duration", 30*time.Minute, "length of the load")
		warmup     = fs.Duration("warmup", 20*time.Second, "length of the warm-up before the first snapshot")
		rate       = fs.Float64("rate", 20, "messages per second of each of the 15 publishers")
		churn      = fs.Duration("churn", 10*time.Second, "mean time between reconnections of each churning client")
		retained   = fs.Float64("retained-rate", 10, "retained set/replace/clear operations per second")
		drain      = fs.Duration("drain", 2*time.Minute, "longest wait for the last deliveries after the load")
		settle     = fs.Duration("settle", 2*time.Minute, "longest wait for the broker to become quiet before a snapshot")
		goBin      = fs.String("go", "", "go command for the pprof diffs (default: found)")
		verbose    = fs.Bool("v", false, "log progress")
	)
	fs.Var(&brokerArgs, "broker-arg", "extra argument of the broker command line (repeatable)")
	fs.Var(&urls, "url", "broker URL of one transport (repeatable; one each of mqtt, mqtts, ws, wss, quic), with --pprof")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mqtt5-soak: "+format+"\n", a...)
		return 2
	}
	if (*brokerBin == "") == (len(urls) == 0) {
		return usage("give either --broker-bin or --url (one per transport) with --pprof")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "mqtt5-soak:", err)
		return 1
	}
	cfg := soak.Config{Duration: *duration, Rate: *rate, Churn: *churn, RetainedRate: *retained, Drain: *drain, Logger: logger, URLs: map[string]string{}}
	prober := &soak.Prober{PprofURL: *pprofURL, PID: *pid}
	if *brokerBin != "" {
		dir, err := filepath.Abs(filepath.Join(*out, "broker"))
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err != nil {
			fmt.Fprintln(stderr, "mqtt5-soak:", err)
			return 1
		}
		b, err := soak.StartBroker(ctx, *brokerBin, dir, brokerArgs...)
		if err != nil {
			fmt.Fprintln(stderr, "mqtt5-soak:", err)
			return 1
		}
		defer func() {
			if err := b.Stop(); err != nil {
				fmt.Fprintln(stderr, "mqtt5-soak: broker stop:", err)
			}
		}()
		fmt.Fprintf(stdout, "broker pid %d: %s %s\n  log %s\n", b.PID, *brokerBin, strings.Join(b.Args, " "), b.LogFile)
		cfg.URLs = b.URLs
		prober = &soak.Prober{PprofURL: b.PprofURL, PID: b.PID}
		*caFile = b.Certs.CAFile
	} else {
		for _, raw := range urls {
			u, err := url.Parse(raw)
			if err != nil {
				return usage("--url %q: %v", raw, err)
			}
			if !loopback(u.Hostname()) {
				return usage("--url %q: the soak test sends load to loopback addresses only", raw)
			}
			cfg.URLs[u.Scheme] = raw
		}
		if *pprofURL == "" {
			return usage("--url needs --pprof")
		}
		if u, err := url.Parse(*pprofURL); err != nil || !loopback(u.Hostname()) {
			return usage("--pprof %q: want a loopback http URL", *pprofURL)
		}
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintln(stderr, "mqtt5-soak:", err)
			return 1
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return usage("--ca %s: no certificate", *caFile)
		}
		cfg.TLS = &tls.Config{RootCAs: pool}
	}
	fmt.Fprintf(stdout, "soak: %s of load after %s of warm-up, %g msg/s per publisher, churn every ~%s; output in %s\n", *duration, *warmup, *rate, *churn, *out)
	rep, err := soak.Soak(ctx, soak.Options{Workload: cfg, Warmup: *warmup, Prober: prober, Settle: *settle, Out: *out, GoBin: *goBin})
	if rep != nil {
		fmt.Fprint(stdout, rep.String())
		for _, d := range rep.Diffs {
			b, _ := os.ReadFile(d)
			fmt.Fprintf(stdout, "\n== %s (first 25 lines)\n%s", d, soak.Head(b, 25))
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "mqtt5-soak:", err)
		return 1
	}
	if len(rep.Problems) > 0 {
		return 1
	}
	return 0
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
