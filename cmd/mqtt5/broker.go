package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/store"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("broker", "broker [flags]", stderr)
	var listen stringList
	fs.Var(&listen, "listen", "address to listen on, host:port or mqtt://host:port (repeatable; default 127.0.0.1:1883)")
	allowAnon := fs.Bool("allow-anonymous", false, "allow clients without credentials on non-loopback listeners")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	sysInterval := fs.Duration("sys-interval", 10*time.Second, "interval between $SYS updates (0 disables)")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	dataDir := fs.String("data-dir", "data", "directory of the persistent state (sessions, queues, retained messages, wills)")
	noPersist := fs.Bool("no-persistence", false, "keep all state in memory only")
	durability := fs.String("durability", "sync", "when QoS 1/2 publications are acknowledged: sync (after fsync), batch (after a group commit every --batch-interval), none (state saved at graceful shutdown only)")
	batchInterval := fs.Duration("batch-interval", 10*time.Millisecond, "commit interval of --durability batch")
	maxQueued := fs.Int("max-queued-messages", 0, "bound of each session's outbound queue in messages (default 10000; -1 unlimited)")
	maxQueuedBytes := fs.Int64("max-queued-bytes", 0, "bound of each session's outbound queue in bytes (default 64 MiB)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	if len(listen) == 0 {
		listen = stringList{"127.0.0.1:1883"}
	}
	addrs := make([]string, 0, len(listen))
	for _, l := range listen {
		addr, err := listenAddr(l)
		if err != nil {
			return fmt.Errorf("%w: --listen %s: %v", errUsage, l, err)
		}
		if !isLoopbackAddr(addr) && !*allowAnon {
			return fmt.Errorf("%w: refusing to listen on %s without authentication: anonymous access is allowed only on loopback; pass --allow-anonymous to accept anonymous clients there", errUsage, addr)
		}
		addrs = append(addrs, addr)
	}
	dur, err := broker.ParseDurability(*durability)
	if err != nil {
		return fmt.Errorf("%w: --durability: %v", errUsage, err)
	}
	cfg := broker.Config{Logger: logger, SysInterval: *sysInterval, Durability: dur, BatchInterval: *batchInterval,
		Queue: broker.QueueConfig{MaxMessages: *maxQueued, MaxBytes: *maxQueuedBytes}}
	if *sysInterval == 0 {
		cfg.SysInterval = -1
	}
	ver, _ := buildInfo()
	cfg.Version = "mqtt5 " + ver
	if !*noPersist {
		st, err := store.OpenDefault(*dataDir, store.Options{Logger: logger})
		if err != nil {
			return fmt.Errorf("open data directory: %w", err)
		}
		cfg.Store = st
		logger.Info("persistence", "dir", *dataDir, "durability", dur.String())
	}
	b, err := broker.Open(ctx, cfg)
	if err != nil {
		if cfg.Store != nil {
			cfg.Store.Close()
		}
		return err
	}

	listeners := make([]net.Listener, 0, len(addrs))
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			b.Shutdown(context.Background())
			return err
		}
		listeners = append(listeners, l)
	}
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		logger.Info("listening", "transport", "tcp", "addr", l.Addr().String())
		go func(l net.Listener) { errc <- b.Serve(l) }(l)
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-errc:
		logger.Error("listener failed", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	for range listeners {
		if err := <-errc; err != nil && !errors.Is(err, broker.ErrServerClosed) {
			logger.Warn("listener ended", "err", err)
		}
	}
	return nil
}

// listenAddr turns a --listen value into host:port. Plain host:port and
// mqtt:// / tcp:// URLs are TCP.
func listenAddr(s string) (string, error) {
	for _, p := range []string{"mqtt://", "tcp://"} {
		if strings.HasPrefix(s, p) {
			s = strings.TrimPrefix(s, p)
			break
		}
	}
	if strings.Contains(s, "://") {
		return "", fmt.Errorf("unsupported scheme (supported: mqtt://, tcp://)")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", err
	}
	if port == "" {
		port = "1883"
	}
	return net.JoinHostPort(host, port), nil
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level: %v", errUsage, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%w: --log-format must be text or json", errUsage)
}
