package main

import (
	"context"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/config"
	"github.com/mqtt5go/mqtt5/internal/filewatch"
)

// swapAuthenticator lets a reload replace the authenticator of a running
// broker.
type swapAuthenticator struct {
	p atomic.Pointer[broker.Authenticator]
}

func (s *swapAuthenticator) set(a broker.Authenticator) {
	if a == nil {
		a = broker.AllowAll{}
	}
	s.p.Store(&a)
}

func (s *swapAuthenticator) Authenticate(ctx context.Context, req *broker.AuthRequest) broker.AuthResult {
	return (*s.p.Load()).Authenticate(ctx, req)
}

// swapAuthorizer lets a reload replace the authorizer of a running broker;
// nil allows everything.
type swapAuthorizer struct {
	p atomic.Pointer[broker.Authorizer]
}

func (s *swapAuthorizer) set(a broker.Authorizer) { s.p.Store(&a) }

func (s *swapAuthorizer) get() broker.Authorizer { return *s.p.Load() }

func (s *swapAuthorizer) CanPublish(ctx context.Context, c *broker.ClientInfo, topic string) bool {
	a := s.get()
	return a == nil || a.CanPublish(ctx, c, topic)
}

func (s *swapAuthorizer) CanSubscribe(ctx context.Context, c *broker.ClientInfo, filter string) bool {
	a := s.get()
	return a == nil || a.CanSubscribe(ctx, c, filter)
}

func (s *swapAuthorizer) CanReceive(ctx context.Context, c *broker.ClientInfo, topic string) bool {
	r, ok := s.get().(broker.ReceiveAuthorizer)
	return !ok || r.CanReceive(ctx, c, topic)
}

// liveConfig applies configuration changes to the running broker: on
// SIGHUP and when the configuration file changes, the configuration is
// loaded again (file, environment, flags) and validated; an invalid one is
// rejected and the running one kept. Authentication and authorization,
// bridges, the log level, limits, queue bounds, rate limits, the load
// balancer, stamping and echo suppression change at once (and the auth, ACL and TLS files are reloaded);
// every reload logs the keys it applied and, by name, those that differ
// from the running configuration but take effect only after a restart.
type liveConfig struct {
	args, environ []string
	file          string
	log           *slog.Logger
	level         *slog.LevelVar
	tlsCA         bool
	fileReloaders []reloader // TLS certificates

	mu       sync.Mutex
	start    config.Config      // the configuration the process started with
	cur      config.Config      // the configuration applied last
	broker   *broker.Broker     // nil: no limits are applied (tests)
	authn    *swapAuthenticator // nil: authentication was off at start
	authz    *swapAuthorizer
	setup    *authSetup
	stopAuth func()
	bridges  *bridgeSet
}

// liveSettings are the key paths (prefixes) that change without a restart.
// Of limits.*, restartSettings are the exceptions.
var liveSettings = []string{"auth.", "bridges", "log.level", "limits.", "queue.", "rate_limits.", "load_balancer.",
	"stamp.", "echo_suppression."}

// restartSettings are key paths under liveSettings that still need a
// restart: stored subscriptions and retained messages were validated
// against the topic bounds.
var restartSettings = []string{"limits.max_topic_length", "limits.max_topic_levels"}

// brokerSettings are the key paths (prefixes) that broker.Reconfigure
// applies.
var brokerSettings = []string{"limits.", "queue.", "rate_limits.", "load_balancer.", "stamp.", "echo_suppression."}

// isLive reports whether the key path p changes without a restart.
func isLive(p string) bool {
	return hasAnyPrefix(p, liveSettings) && !slices.Contains(restartSettings, p)
}

func hasAnyPrefix(p string, prefixes []string) bool {
	for _, s := range prefixes {
		if strings.HasPrefix(p, s) {
			return true
		}
	}
	return false
}

// classify splits the key paths of next that differ: applied are the live
// ones that differ from cur (the configuration applied last), restart the
// others that differ from start (the configuration the process runs with),
// so a pending restart is reported at every reload until it happens.
func classify(start, cur, next *config.Config) (applied, restart []string) {
	for _, p := range changedPaths(cur, next) {
		if isLive(p) {
			applied = append(applied, p)
		}
	}
	for _, p := range changedPaths(start, next) {
		if !isLive(p) {
			restart = append(restart, p)
		}
	}
	return applied, restart
}

// reload loads the configuration again and applies it.
func (l *liveConfig) reload(ctx context.Context, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	reloadFiles := func(rs []reloader) {
		for _, r := range rs {
			if err := r.reload(); err != nil {
				l.log.Error("reload failed; keeping the current content", "trigger", why, "what", r.name, "err", err)
			} else {
				l.log.Info("reloaded on "+why, "what", r.name)
			}
		}
	}
	reloadFiles(l.fileReloaders)
	next, _, err := loadBrokerConfig(l.args, l.environ, nilWriter{})
	if err != nil {
		l.log.Error("configuration rejected; the running one is kept", "trigger", why, "err", err)
		return
	}
	applied, restart := classify(&l.start, &l.cur, &next)
	authChanged := !reflect.DeepEqual(l.cur.Auth, next.Auth)
	if authChanged && (l.authz == nil || l.authn == nil && next.Auth.Authenticates()) {
		restart = append(restart, "auth (authentication or authorization was off at start)")
		applied = slices.DeleteFunc(applied, func(p string) bool { return strings.HasPrefix(p, "auth.") })
		authChanged = false
	}
	// Everything that can fail is checked before anything is applied.
	var setup *authSetup
	if authChanged {
		if setup, err = buildAuth(next.Auth, l.log, l.tlsCA); err != nil {
			l.log.Error("configuration rejected; the running one is kept", "trigger", why, "err", err)
			return
		}
	}
	if l.broker != nil && slices.ContainsFunc(applied, func(p string) bool { return hasAnyPrefix(p, brokerSettings) }) {
		bc := next.Broker()
		s := bc.Settings()
		cur := l.broker.Settings()
		// Restart-only: keep the running values (reported above).
		s.Limits.MaxTopicLength, s.Limits.MaxTopicLevels = cur.Limits.MaxTopicLength, cur.Limits.MaxTopicLevels
		if err := l.broker.Reconfigure(s); err != nil {
			l.log.Error("configuration rejected; the running one is kept", "trigger", why, "err", err)
			return
		}
	}
	if authChanged {
		if l.stopAuth != nil {
			l.stopAuth()
		}
		if l.authn != nil {
			l.authn.set(setup.authenticator)
		}
		l.authz.set(setup.authorizer)
		l.setup = setup
		l.stopAuth = setup.start(ctx, l.log)
		l.log.Info("authentication and authorization settings applied")
	} else if l.setup != nil {
		reloadFiles(l.setup.reloaders)
	}
	if !reflect.DeepEqual(l.cur.Bridges, next.Bridges) {
		if err := l.bridges.apply(ctx, next.Bridges); err != nil {
			l.log.Error("bridges not changed", "err", err)
			next.Bridges = l.cur.Bridges
			applied = slices.DeleteFunc(applied, func(p string) bool { return p == "bridges" })
		}
	}
	if next.Log.Level != l.cur.Log.Level {
		var lv slog.Level
		lv.UnmarshalText([]byte(next.Log.Level))
		l.level.Set(lv)
	}
	if len(restart) > 0 {
		l.log.Warn("settings changed that take effect only after a restart", "settings", strings.Join(restart, ", "))
	}
	l.cur = next
	l.log.Info("configuration reloaded", "trigger", why, "applied", strings.Join(applied, ", "))
}

// changedPaths lists the key paths whose values differ.
func changedPaths(a, b *config.Config) []string {
	var out []string
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	var walk func(x, y reflect.Value, prefix string)
	walk = func(x, y reflect.Value, prefix string) {
		t := x.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			p := prefix + name
			if sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeFor[config.Duration]() {
				walk(x.Field(i), y.Field(i), p+".")
				continue
			}
			if !reflect.DeepEqual(x.Field(i).Interface(), y.Field(i).Interface()) {
				out = append(out, p)
			}
		}
	}
	walk(va, vb, "")
	return out
}

// run reloads on SIGHUP and on changes of the configuration file until ctx
// ends.
func (l *liveConfig) run(ctx context.Context, hup <-chan os.Signal) {
	var changes <-chan struct{}
	if l.file != "" {
		changes = watchFile(ctx, l.file, l.log)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			l.reload(ctx, "SIGHUP")
		case <-changes:
			l.reload(ctx, "configuration file changed")
		}
	}
}

// watchFile signals when path changes (package internal/filewatch:
// directory events, debounced, and a check every second).
func watchFile(ctx context.Context, path string, log *slog.Logger) <-chan struct{} {
	out := make(chan struct{}, 1)
	go filewatch.Watch(ctx, []string{path}, false, func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}, func(err error) {
		log.Warn("watching the configuration file; it is also checked every second", "err", err)
	})
	return out
}

// nilWriter discards flag usage output during reloads.
type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }
