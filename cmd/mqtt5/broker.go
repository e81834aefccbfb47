package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/config"
	"github.com/mqtt5go/mqtt5/telemetry"
	"github.com/mqtt5go/mqtt5/transport"
	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

// brokerFlagHelp is the usage text of each broker flag.
var brokerFlagHelp = map[string]string{
	"listen":                  "listener URL: mqtt://host:port, mqtts://host:port, ws://host:port/path, wss://host:port/path, quic://host:port, or host:port for TCP (repeatable; default mqtt://127.0.0.1:1883)",
	"tls-cert":                "server certificate file (PEM) of mqtts, wss and quic listeners; reloaded on SIGHUP and when the file changes",
	"tls-key":                 "private key file (PEM) of --tls-cert",
	"tls-ca":                  "CA certificates file (PEM) that client certificates are verified against (clients may then present one)",
	"tls-require-client-cert": "require a client certificate verified against --tls-ca on TLS listeners",
	"ws-allowed-origin":       "Origin host pattern a browser may connect from over ws/wss, e.g. example.com or *.example.com (repeatable; default any)",
	"ws-trusted-proxy":        "network (CIDR) whose X-Forwarded-For header is trusted on ws/wss listeners (repeatable; default none)",
	"quic-delivery":           "stream strategy of quic listeners for PUBLISH to multistream (ALPN MQTT-next) clients: control_only, per_topic, per_publish (default per_topic)",
	"quic-datagrams":          "quic listeners: send QoS 0 PUBLISH as QUIC datagrams to clients that enable them too",
	"allow-anonymous":         "allow clients without credentials on non-loopback listeners",
	"log-level":               "log level: debug, info, warn, error (default info)",
	"log-format":              "log format: text or json (default text)",
	"sys-interval":            "interval between $SYS updates (0 disables; default 10s)",
	"shutdown-timeout":        "how long a graceful shutdown may take (default 10s)",
	"data-dir":                "directory of the persistent state (sessions, queues, retained messages, wills; default data)",
	"durability":              "when QoS 1/2 publications are acknowledged: sync (after fsync; default), batch (after a group commit every --batch-interval), none (state saved at graceful shutdown only)",
	"batch-interval":          "commit interval of --durability batch (default 10ms)",
	"max-queued-messages":     "bound of each session's outbound queue in messages (default 10000; -1 unlimited)",
	"max-queued-bytes":        "bound of each session's outbound queue in bytes (default 64 MiB; -1 unlimited)",
	"metrics-listen":          "host:port of the HTTP server of /metrics (Prometheus), /healthz and /readyz (default off)",
	"tracing":                 "OpenTelemetry tracing, exported over OTLP as the OTEL_* variables say (default off)",
	"metrics-exporter":        "otlp: export the metrics over OpenTelemetry OTLP as telemetry.metrics and the OTEL_* variables say (default off)",
}

func init() {
	for k, v := range authFlagHelp {
		brokerFlagHelp[k] = v
	}
}

const brokerSynopsis = "broker [--config FILE] [flags] | broker generate-config [--format json|toml] | broker check-config FILE"

// brokerFlags defines the broker's flags over cfg, plus --config and
// --no-persistence.
func brokerFlags(w io.Writer, cfg *config.Config, configFile *string, noPersist *bool) *flag.FlagSet {
	fs := newFlagSet("broker", brokerSynopsis, w)
	fs.StringVar(configFile, "config", "", "configuration file (.json or .toml; default $"+config.EnvConfigFile+"); flags override the environment (MQTT5_*), which overrides the file")
	fs.BoolVar(noPersist, "no-persistence", false, "keep all state in memory only (storage.persistence = false)")
	config.BindFlags(fs, cfg, brokerFlagHelp)
	return fs
}

// loadBrokerConfig builds the configuration from the defaults, the file,
// the environment and the flags, in increasing precedence, and validates
// it.
func loadBrokerConfig(args, environ []string, stderr io.Writer) (config.Config, string, error) {
	var scratch config.Config
	var file string
	var noPersist bool
	fs := brokerFlags(stderr, &scratch, &file, &noPersist)
	if err := parseFlags(fs, args); err != nil {
		return scratch, "", err
	}
	if fs.NArg() > 0 {
		return scratch, "", fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if file == "" {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, config.EnvConfigFile+"="); ok {
				file = v
			}
		}
	}
	cfg := config.Default()
	if file != "" {
		var err error
		if cfg, err = config.LoadFile(file); err != nil {
			return cfg, file, err
		}
	}
	if err := config.ApplyEnv(&cfg, environ); err != nil {
		return cfg, file, err
	}
	fs = brokerFlags(io.Discard, &cfg, new(string), &noPersist)
	if err := parseFlags(fs, args); err != nil {
		return cfg, file, err
	}
	if noPersist {
		cfg.Storage.Persistence = false
	}
	if err := cfg.Validate(); err != nil {
		return cfg, file, err
	}
	return cfg, file, nil
}

func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "generate-config":
			return runGenerateConfig(args[1:], stdout, stderr)
		case "check-config":
			return runCheckConfig(args[1:], stdout, stderr)
		}
	}
	// Catch SIGHUP from the start: a reload request that arrives while the
	// broker starts is served once it runs (never the default action,
	// which would end the process).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	environ := os.Environ()
	cfgFile, file, err := loadBrokerConfig(args, environ, stderr)
	if err != nil {
		if errors.Is(err, config.ErrInvalid) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return err
	}
	level := new(slog.LevelVar)
	logger, err := newLogger(stderr, level, cfgFile.Log.Level, cfgFile.Log.Format)
	if err != nil {
		return err
	}
	if file != "" {
		logger.Info("configuration", "file", file)
	}
	urls := make([]*url.URL, 0, len(cfgFile.Listeners))
	needTLS := false
	for _, l := range cfgFile.Listeners {
		u, err := transport.ParseListenURL(l)
		if err != nil {
			return fmt.Errorf("%w: --listen %s: %v", errUsage, l, err)
		}
		switch u.Scheme {
		case "mqtts", "ssl", "tls", "wss", "quic":
			needTLS = true
		}
		urls = append(urls, u)
	}
	wsCfg := transport.WebSocketConfig{AllowedOrigins: cfgFile.WebSocket.AllowedOrigins}
	for _, p := range cfgFile.WebSocket.TrustedProxies {
		pfx, _ := config.ParsePrefix(p)
		wsCfg.TrustedProxies = append(wsCfg.TrustedProxies, pfx)
	}
	var certs *transport.CertReloader
	if needTLS {
		auth := transport.ClientCertNone
		if cfgFile.TLS.CA != "" {
			auth = transport.ClientCertOptional
		}
		if cfgFile.TLS.RequireClientCert {
			auth = transport.ClientCertRequired
		}
		certs, err = transport.NewCertReloader(transport.ServerTLS{CertFile: cfgFile.TLS.Cert, KeyFile: cfgFile.TLS.Key, ClientCAFile: cfgFile.TLS.CA, ClientAuth: auth}, logger)
		if err != nil {
			return err
		}
	}
	authn, err := buildAuth(cfgFile.Auth, logger, cfgFile.TLS.CA != "")
	if err != nil {
		return err
	}
	cfg := cfgFile.Broker()
	cfg.Logger = logger
	live := &liveConfig{args: args, environ: environ, file: file, log: logger, level: level,
		tlsCA: cfgFile.TLS.CA != "", cur: cfgFile, setup: authn}
	if authn.authenticator != nil || authn.authorizer != nil {
		// Authentication is on: let reloads swap it.
		live.authz = &swapAuthorizer{}
		live.authz.set(authn.authorizer)
		cfg.Authorizer = live.authz
		if authn.authenticator != nil {
			live.authn = &swapAuthenticator{}
			live.authn.set(authn.authenticator)
			cfg.Authenticator = live.authn
		}
	}
	ver, _ := buildInfo()
	cfg.Version = "mqtt5 " + ver
	var metrics *telemetry.Metrics
	if cfgFile.Telemetry.MetricsListen != "" || cfgFile.Telemetry.Metrics.Exporter == telemetry.ExporterOTLP {
		metrics = telemetry.NewMetrics()
		cfg.Hooks = append(cfg.Hooks, metrics)
		cfg.Authenticator = metrics.WrapAuthenticator(cfg.Authenticator)
		cfg.Authorizer = metrics.WrapAuthorizer(cfg.Authorizer)
		cfg.CommitObserver = metrics
	}
	tr := cfgFile.Telemetry.Tracing
	tp, stopTracing, err := telemetry.Setup(ctx, telemetry.TracingConfig{Enabled: tr.Enabled, Protocol: tr.Protocol,
		Endpoint: tr.Endpoint, SampleRatio: tr.SampleRatio, ServiceVersion: ver})
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopTracing(sctx)
	}()
	if telemetry.Enabled(tp) {
		bt := telemetry.NewBrokerTracer(tp)
		cfg.Hooks = append(cfg.Hooks, bt)
		cfg.Authenticator = bt.WrapAuthenticator(cfg.Authenticator)
		logger.Info("tracing on")
	}
	if cfgFile.Storage.Persistence {
		st, err := store.OpenDefault(cfgFile.Storage.DataDir, store.Options{Logger: logger})
		if err != nil {
			return fmt.Errorf("open data directory: %w", err)
		}
		cfg.Store = st
		logger.Info("persistence", "dir", cfgFile.Storage.DataDir, "durability", cfg.Durability.String())
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
			QUIC: mqttquic.ServerConfig{Delivery: mqttquic.Delivery(cfgFile.QUIC.Delivery), Datagrams: cfgFile.QUIC.Datagrams}}
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
	if certs != nil {
		go certs.Watch(ctx)
		live.fileReloaders = append(live.fileReloaders, reloader{"TLS certificates", certs.Reload})
	}
	live.stopAuth = authn.start(ctx, logger)
	defer func() {
		live.mu.Lock()
		defer live.mu.Unlock()
		live.stopAuth()
	}()
	stopPprof, err := servePprof(ctx, cfgFile.Telemetry.PprofListen, logger)
	if err != nil {
		b.Shutdown(context.Background())
		return err
	}
	defer stopPprof()
	live.bridges = newBridgeSet(func(context.Context) (net.Conn, error) { return b.TrustedConn(), nil }, logger)
	if err := live.bridges.apply(ctx, cfgFile.Bridges); err != nil {
		b.Shutdown(context.Background())
		return err
	}
	defer live.bridges.stop(context.Background())
	if metrics != nil {
		stopMetrics, err := startMetrics(ctx, cfgFile.Telemetry, ver, b, metrics, live.bridges.statuses, logger)
		if err != nil {
			b.Shutdown(context.Background())
			return err
		}
		defer stopMetrics()
	}
	live.start, live.broker = cfgFile, b
	go live.run(ctx, hup)
	go live.bridges.publishStatus(ctx, func(ctx context.Context, topic, value string) error {
		return b.Publish(ctx, &broker.Message{Topic: topic, Payload: []byte(value), Retain: true})
	}, cfg.SysInterval)
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
	sctx, cancel := context.WithTimeout(context.Background(), cfgFile.ShutdownTimeout.D())
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

// startMetrics builds the registry of b's metrics, m and the bridges, and
// serves it on tc.MetricsListen and exports it over OTLP, as tc says. stop
// ends both, after a last export.
func startMetrics(ctx context.Context, tc config.Telemetry, version string, b *broker.Broker, m *telemetry.Metrics,
	bridges telemetry.BridgeStatuses, logger *slog.Logger) (stop func(), err error) {
	reg, err := telemetry.NewRegistry(b, m)
	if err != nil {
		return nil, err
	}
	if err := reg.Register(telemetry.NewBridgeCollector(bridges)); err != nil {
		return nil, err
	}
	stopHTTP := func() {}
	if tc.MetricsListen != "" {
		if stopHTTP, err = serveMetrics(ctx, tc.MetricsListen, b, reg, logger); err != nil {
			return nil, err
		}
	}
	mc := tc.Metrics
	stopOTLP, err := telemetry.SetupMetrics(ctx, telemetry.MetricsConfig{Exporter: mc.Exporter, Protocol: mc.Protocol,
		Endpoint: mc.Endpoint, Interval: mc.Interval.D(), ServiceVersion: version}, reg)
	if err != nil {
		stopHTTP()
		return nil, fmt.Errorf("metrics export: %w", err)
	}
	if mc.Exporter == telemetry.ExporterOTLP {
		logger.Info("metrics export on", "exporter", mc.Exporter)
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopOTLP(sctx); err != nil {
			logger.Warn("metrics export: last export", "err", err)
		}
		stopHTTP()
	}, nil
}

// serveMetrics serves /metrics (reg), /healthz and /readyz on addr.
func serveMetrics(ctx context.Context, addr string, b *broker.Broker, reg *prometheus.Registry, logger *slog.Logger) (stop func(), err error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	srv := &http.Server{Handler: telemetry.NewHTTPHandler(b, reg, nil), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	logger.Info("metrics listening", "url", "http://"+l.Addr().String()+"/metrics")
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
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

func newLogger(w io.Writer, lv *slog.LevelVar, level, format string) (*slog.Logger, error) {
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

// runGenerateConfig prints the default configuration.
func runGenerateConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("broker generate-config", "broker generate-config [--format json|toml]", stderr)
	format := fs.String("format", "toml", "json or toml")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	b, err := config.Generate(*format)
	if err != nil {
		return fmt.Errorf("%w: --format: %v", errUsage, err)
	}
	_, err = stdout.Write(b)
	return err
}

// runCheckConfig loads and validates a configuration file (with the
// MQTT5_* environment applied) and reports every problem.
func runCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("broker check-config", "broker check-config FILE", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: check-config takes one file", errUsage)
	}
	cfg, err := config.LoadFile(fs.Arg(0))
	if err == nil {
		err = config.ApplyEnv(&cfg, os.Environ())
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	fmt.Fprintf(stdout, "%s: configuration is valid\n", fs.Arg(0))
	return nil
}
