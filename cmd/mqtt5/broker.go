package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/transport"
	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("broker", "broker [flags]", stderr)
	var listen stringList
	fs.Var(&listen, "listen", "listener URL: mqtt://host:port, mqtts://host:port, ws://host:port/path, wss://host:port/path, quic://host:port, or host:port for TCP (repeatable; default mqtt://127.0.0.1:1883)")
	tlsCert := fs.String("tls-cert", "", "server certificate file (PEM) of mqtts, wss and quic listeners; reloaded on SIGHUP and when the file changes")
	tlsKey := fs.String("tls-key", "", "private key file (PEM) of --tls-cert")
	tlsCA := fs.String("tls-ca", "", "CA certificates file (PEM) that client certificates are verified against (clients may then present one)")
	tlsRequire := fs.Bool("tls-require-client-cert", false, "require a client certificate verified against --tls-ca on TLS listeners")
	var wsOrigins, wsProxies stringList
	fs.Var(&wsOrigins, "ws-allowed-origin", "Origin host pattern a browser may connect from over ws/wss, e.g. example.com or *.example.com (repeatable; default any)")
	fs.Var(&wsProxies, "ws-trusted-proxy", "network (CIDR) whose X-Forwarded-For header is trusted on ws/wss listeners (repeatable; default none)")
	quicDelivery := fs.String("quic-delivery", "per_topic", "stream strategy of quic listeners for PUBLISH to multistream (ALPN MQTT-next) clients: control_only, per_topic, per_publish")
	quicDatagrams := fs.Bool("quic-datagrams", false, "quic listeners: send QoS 0 PUBLISH as QUIC datagrams to clients that enable them too")
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
	af := registerAuthFlags(fs)
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
		listen = stringList{"mqtt://127.0.0.1:1883"}
	}
	urls := make([]*url.URL, 0, len(listen))
	needTLS := false
	for _, l := range listen {
		u, err := transport.ParseListenURL(l)
		if err != nil {
			return fmt.Errorf("%w: --listen %s: %v", errUsage, l, err)
		}
		if !isLoopbackAddr(u.Host) && !*allowAnon && !af.authenticates() {
			return fmt.Errorf("%w: refusing to listen on %s without authentication: anonymous access is allowed only on loopback; configure --password-file or --cert-auth, or pass --allow-anonymous to accept anonymous clients there", errUsage, u.Host)
		}
		switch u.Scheme {
		case "mqtts", "ssl", "tls", "wss", "quic":
			needTLS = true
		}
		urls = append(urls, u)
	}
	if needTLS && (*tlsCert == "" || *tlsKey == "") {
		return fmt.Errorf("%w: mqtts, wss and quic listeners need --tls-cert and --tls-key", errUsage)
	}
	if *tlsRequire && *tlsCA == "" {
		return fmt.Errorf("%w: --tls-require-client-cert needs --tls-ca", errUsage)
	}
	wsCfg := transport.WebSocketConfig{AllowedOrigins: wsOrigins}
	for _, p := range wsProxies {
		pfx, err := parsePrefix(p)
		if err != nil {
			return fmt.Errorf("%w: --ws-trusted-proxy %s: %v", errUsage, p, err)
		}
		wsCfg.TrustedProxies = append(wsCfg.TrustedProxies, pfx)
	}
	var certs *transport.CertReloader
	if needTLS {
		auth := transport.ClientCertNone
		if *tlsCA != "" {
			auth = transport.ClientCertOptional
		}
		if *tlsRequire {
			auth = transport.ClientCertRequired
		}
		certs, err = transport.NewCertReloader(transport.ServerTLS{CertFile: *tlsCert, KeyFile: *tlsKey, ClientCAFile: *tlsCA, ClientAuth: auth}, logger)
		if err != nil {
			return err
		}
	}
	dur, err := broker.ParseDurability(*durability)
	if err != nil {
		return fmt.Errorf("%w: --durability: %v", errUsage, err)
	}
	authn, err := af.build(logger, *tlsCA != "")
	if err != nil {
		return err
	}
	cfg := broker.Config{Logger: logger, SysInterval: *sysInterval, Durability: dur, BatchInterval: *batchInterval,
		Queue: broker.QueueConfig{MaxMessages: *maxQueued, MaxBytes: *maxQueuedBytes}}
	if *sysInterval == 0 {
		cfg.SysInterval = -1
	}
	authn.apply(&cfg)
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

	listeners := make([]net.Listener, 0, len(urls))
	for _, u := range urls {
		lc := transport.ListenConfig{URL: u.String(), WebSocket: wsCfg, Logger: logger,
			QUIC: mqttquic.ServerConfig{Delivery: mqttquic.Delivery(*quicDelivery), Datagrams: *quicDatagrams}}
		if certs != nil {
			lc.TLS = certs.TLSConfig()
		}
		l, err := transport.Listen(ctx, lc)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			b.Shutdown(context.Background())
			return fmt.Errorf("listen %s: %w", u, err)
		}
		listeners = append(listeners, l)
		logger.Info("listening", "url", listenerURL(u, l.Addr()))
	}
	reloaders := authn.reloaders
	if certs != nil {
		go certs.Watch(ctx)
		reloaders = append(reloaders, reloader{"TLS certificates", certs.Reload})
	}
	if len(reloaders) > 0 {
		go reloadOnHangup(ctx, reloaders, logger)
	}
	defer authn.start(ctx, logger)()
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
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

// listenerURL is u with the port the listener really bound (port 0 picks
// one).
func listenerURL(u *url.URL, a net.Addr) string {
	cp := *u
	if _, port, err := net.SplitHostPort(a.String()); err == nil {
		cp.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return cp.String()
}

// parsePrefix parses a CIDR network or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// reloadOnHangup reloads the TLS certificates and the auth files on each
// SIGHUP; a failed reload keeps what is in use. Connected clients stay.
func reloadOnHangup(ctx context.Context, reloaders []reloader, logger *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			for _, r := range reloaders {
				if err := r.reload(); err != nil {
					logger.Error("reload on SIGHUP failed; keeping the current content", "what", r.name, "err", err)
				} else {
					logger.Info("reloaded on SIGHUP", "what", r.name)
				}
			}
		}
	}
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" {
		return false // every address
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
