package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/topic"
	"github.com/mqtt5go/mqtt5/transport"
)

// Validate checks every field; the error lists each problem as "field:
// what is wrong" and wraps ErrInvalid.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		name := field
		if base, _, _ := strings.Cut(field, "["); flagOf(base) != "" {
			name += " (--" + flagOf(base) + ")"
		}
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalid, name, fmt.Sprintf(format, args...)))
	}
	if len(c.Listeners) == 0 {
		bad("listeners", "at least one listener is needed")
	}
	needTLS := false
	for i, l := range c.Listeners {
		name := fmt.Sprintf("listeners[%d]", i)
		u, err := transport.ParseListenURL(l)
		if err != nil {
			bad(name, "%v", err)
			continue
		}
		switch u.Scheme {
		case "mqtts", "ssl", "tls", "wss", "quic":
			needTLS = true
		}
		if !isLoopback(u.Host) && !c.AllowAnonymous && !c.Auth.Authenticates() {
			bad(name, "refusing to listen on %s without authentication: anonymous access is allowed only on loopback; configure authentication (--password-file or --cert-auth, --scram-file, --jwt-key; auth.* in the file) or set allow_anonymous (--allow-anonymous)", l)
		}
	}
	if c.ShutdownTimeout < 0 {
		bad("shutdown_timeout", "must not be negative")
	}
	if !oneOf(c.Log.Level, "debug", "info", "warn", "error") {
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if !oneOf(c.Log.Format, "text", "json") {
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	if c.Sys.Interval < 0 {
		bad("sys.interval", "must not be negative (0 disables $SYS)")
	}
	if needTLS && (c.TLS.Cert == "" || c.TLS.Key == "") {
		bad("tls.cert", "mqtts, wss and quic listeners need tls.cert (--tls-cert) and tls.key (--tls-key)")
	}
	if c.TLS.RequireClientCert && c.TLS.CA == "" {
		bad("tls.require_client_cert", "needs tls.ca (--tls-ca) to verify client certificates")
	}
	for i, p := range c.WebSocket.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			bad(fmt.Sprintf("websocket.trusted_proxies[%d]", i), "%v", err)
		}
	}
	if !oneOf(c.QUIC.Delivery, "control_only", "per_topic", "per_publish") {
		bad("quic.delivery", "%q is not control_only, per_topic or per_publish", c.QUIC.Delivery)
	}
	if c.Storage.Persistence && c.Storage.DataDir == "" {
		bad("storage.data_dir", "empty while storage.persistence is on")
	}
	if _, err := broker.ParseDurability(c.Storage.Durability); err != nil {
		bad("storage.durability", "%q is not sync, batch or none", c.Storage.Durability)
	}
	if c.Storage.BatchInterval <= 0 {
		bad("storage.batch_interval", "must be positive")
	}
	if c.Queue.MaxMessages == 0 || c.Queue.MaxMessages < -1 {
		bad("queue.max_messages", "must be positive (or -1 for no bound)")
	}
	if c.Queue.MaxBytes == 0 || c.Queue.MaxBytes < -1 {
		bad("queue.max_bytes", "must be positive (or -1 for no bound)")
	}
	if _, ok := overflowPolicies[c.Queue.Policy]; !ok {
		bad("queue.policy", "%q is not drop_oldest_qos0_first, drop_new or disconnect", c.Queue.Policy)
	}
	l := &c.Limits
	if l.MaximumQoS < 0 || l.MaximumQoS > 2 {
		bad("limits.maximum_qos", "%d is not 0, 1 or 2", l.MaximumQoS)
	}
	inRange := func(name string, v, lo, hi int64) {
		if v < lo || v > hi {
			bad(name, "%d is outside %d..%d", v, lo, hi)
		}
	}
	inRange("limits.receive_maximum", int64(l.ReceiveMaximum), 1, 65535)
	inRange("limits.topic_alias_maximum", int64(l.TopicAliasMaximum), 0, 65535)
	inRange("limits.outbound_topic_aliases", int64(l.OutboundTopicAliases), 0, 65535)
	inRange("limits.maximum_packet_size", l.MaximumPacketSize, 16, 268435460)
	inRange("limits.server_keep_alive", int64(l.ServerKeepAlive), 0, 65535)
	inRange("limits.max_keep_alive", int64(l.MaxKeepAlive), 0, 65535)
	inRange("limits.max_session_expiry", l.MaxSessionExpiry, 0, 1<<32-1)
	for name, v := range map[string]int64{
		"limits.max_connections": int64(l.MaxConnections), "limits.max_subscriptions_per_client": int64(l.MaxSubscriptionsPerClient),
		"limits.max_retained_messages": int64(l.MaxRetainedMessages), "limits.max_retained_bytes": l.MaxRetainedBytes,
		"limits.max_topic_length": int64(l.MaxTopicLength), "limits.max_topic_levels": int64(l.MaxTopicLevels),
		"limits.max_inflight": int64(l.MaxInflight), "limits.max_client_id_length": int64(l.MaxClientIDLength),
		"limits.max_connections_per_ip": int64(l.MaxConnectionsPerIP),
	} {
		if v == 0 || v < -1 {
			bad(name, "must be positive (or -1 for no bound)")
		}
	}
	if l.ConnectTimeout <= 0 {
		bad("limits.connect_timeout", "must be positive")
	}
	if l.WriteTimeout <= 0 {
		bad("limits.write_timeout", "must be positive")
	}
	if _, ok := sharedStrategies[l.SharedStrategy]; !ok {
		bad("limits.shared_strategy", "%q is not round_robin, random, hash_client or hash_topic", l.SharedStrategy)
	}
	a := &c.Auth
	if a.Plain && a.PasswordFile == "" {
		bad("auth.plain", "needs auth.password_file (--password-file)")
	}
	if a.CertAuth != "" && c.TLS.CA == "" {
		bad("auth.cert_auth", "needs tls.ca (--tls-ca) to verify client certificates")
	}
	if a.JWT.JWKSURL != "" && a.JWT.Issuer == "" {
		bad("auth.jwt.jwks_url", "needs auth.jwt.issuer")
	}
	for i, k := range a.JWT.Keys {
		if _, _, _, err := ParseJWTKeySpec(k); err != nil {
			bad(fmt.Sprintf("auth.jwt.keys[%d]", i), "%v", err)
		}
	}
	if a.MaxFailures < 0 {
		bad("auth.max_failures", "must not be negative (0 disables the lockout)")
	}
	if a.Window <= 0 {
		bad("auth.window", "must be positive")
	}
	if a.Lockout <= 0 {
		bad("auth.lockout", "must be positive")
	}
	if !oneOf(c.LoadBalancer.V311, "refuse", "serve") {
		bad("load_balancer.v311", "%q is not refuse or serve", c.LoadBalancer.V311)
	}
	for i, u := range c.LoadBalancer.Backends {
		if _, err := transport.ParseServerURL(u); err != nil {
			bad(fmt.Sprintf("load_balancer.backends[%d]", i), "%v", err)
		}
	}
	for i, f := range c.ChangeOnly.Patterns {
		if err := topic.ValidateFilter(f); err != nil {
			bad(fmt.Sprintf("change_only.patterns[%d]", i), "%v", err)
		}
	}
	if c.ChangeOnly.MaxTopicsPerSession <= 0 {
		bad("change_only.max_topics_per_session", "must be positive")
	}
	r := c.RateLimits
	if r.InboundMessages < 0 || r.InboundBytes < 0 || r.OutboundMessages < 0 || r.InboundMessagesBurst < 0 ||
		r.InboundBytesBurst < 0 || r.OutboundMessagesBurst < 0 || r.DisconnectAfter < 0 {
		bad("rate_limits", "rates, bursts and disconnect_after must not be negative (0: unlimited / default)")
	}
	for _, x := range []float64{r.InboundMessages, r.InboundBytes, r.OutboundMessages} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			bad("rate_limits", "rates must be finite numbers (0: unlimited)")
			break
		}
	}
	if c.Telemetry.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.Telemetry.MetricsListen); err != nil {
			bad("telemetry.metrics_listen", "%q is not host:port", c.Telemetry.MetricsListen)
		}
	}
	if c.Telemetry.PprofListen != "" && !isLoopback(c.Telemetry.PprofListen) {
		bad("telemetry.pprof_listen", "%q is not a loopback host:port: profiles expose the broker's memory, so they are served on loopback only (reach them through an SSH tunnel or a port forward)", c.Telemetry.PprofListen)
	}
	if !oneOf(c.Telemetry.Tracing.Protocol, "", "http/protobuf", "grpc") {
		bad("telemetry.tracing.protocol", "%q is not http/protobuf or grpc", c.Telemetry.Tracing.Protocol)
	}
	if c.Telemetry.Tracing.SampleRatio > 1 {
		bad("telemetry.tracing.sample_ratio", "%v is above 1", c.Telemetry.Tracing.SampleRatio)
	}
	if m := c.Telemetry.Metrics; !oneOf(m.Exporter, "", "none", "otlp") {
		bad("telemetry.metrics.exporter", "%q is not otlp or none", m.Exporter)
	}
	if !oneOf(c.Telemetry.Metrics.Protocol, "", "http/protobuf", "grpc") {
		bad("telemetry.metrics.protocol", "%q is not http/protobuf or grpc", c.Telemetry.Metrics.Protocol)
	}
	if c.Telemetry.Metrics.Interval < 0 {
		bad("telemetry.metrics.interval", "negative")
	}
	names := map[string]bool{}
	for i, br := range c.Bridges {
		name := fmt.Sprintf("bridges[%d]", i)
		switch {
		case br.Name == "":
			bad(name+".name", "empty")
		case names[br.Name]:
			bad(name+".name", "%q is used by another bridge", br.Name)
		}
		names[br.Name] = true
		if br.URL == "" {
			bad(name+".url", "empty")
		} else if _, err := transport.ParseServerURL(br.URL); err != nil {
			bad(name+".url", "%v", err)
		}
		for j, u := range br.Backups {
			if _, err := transport.ParseServerURL(u); err != nil {
				bad(fmt.Sprintf("%s.backups[%d]", name, j), "%v", err)
			}
		}
		if !oneOf(br.Protocol, "", "5", "3.1.1") {
			bad(name+".protocol", "%q is not 5 or 3.1.1", br.Protocol)
		}
		if (br.CertFile == "") != (br.KeyFile == "") {
			bad(name+".cert_file", "cert_file and key_file go together")
		}
		if len(br.Topics) == 0 {
			bad(name+".topics", "at least one topic mapping is needed")
		}
		for j, tp := range br.Topics {
			tn := fmt.Sprintf("%s.topics[%d]", name, j)
			if !oneOf(tp.Direction, "", "in", "out", "both") {
				bad(tn+".direction", "%q is not in, out or both", tp.Direction)
			}
			if tp.QoS < 0 || tp.QoS > 2 {
				bad(tn+".qos", "%d is not 0, 1 or 2", tp.QoS)
			}
		}
		if br.MaxQueued < 0 || br.MaxQueuedBytes < 0 || br.MaxHops < 0 || br.LoopCacheSize < 0 || br.LoopTTL < 0 || br.FailbackInterval < 0 {
			bad(name, "max_queued, max_queued_bytes, max_hops, loop_cache_size, loop_ttl and failback_interval must not be negative")
		}
	}
	return errors.Join(errs...)
}

// flagOf returns the flag of a field path, "" if it has none.
func flagOf(path string) string {
	for f, p := range Flags() {
		if p == path {
			return f
		}
	}
	return ""
}

// Authenticates reports whether an authentication method is configured.
func (a Auth) Authenticates() bool {
	return a.PasswordFile != "" || a.CertAuth != "" || a.SCRAMFile != "" || len(a.JWT.Keys) > 0 || a.JWT.JWKSURL != ""
}

// ParseJWTKeySpec splits "[KID=]ALG:FILE".
func ParseJWTKeySpec(s string) (kid, alg, file string, err error) {
	rest := s
	if k, r, ok := strings.Cut(s, "="); ok && !strings.Contains(k, ":") {
		kid, rest = k, r
	}
	alg, file, ok := strings.Cut(rest, ":")
	if !ok || file == "" {
		return "", "", "", fmt.Errorf("%q: want [KID=]ALG:FILE", s)
	}
	switch strings.ToUpper(alg) {
	case "HS256", "RS256", "ES256", "EDDSA":
	default:
		return "", "", "", fmt.Errorf("%q: algorithm %q is not HS256, RS256, ES256 or EdDSA", s, alg)
	}
	return kid, alg, file, nil
}

// ParsePrefix parses a CIDR network or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var overflowPolicies = map[string]broker.OverflowPolicy{
	"drop_oldest_qos0_first": broker.DropOldestQoS0First,
	"drop_new":               broker.DropNew,
	"disconnect":             broker.DisconnectClient,
}

var sharedStrategies = map[string]broker.SharedStrategy{
	"round_robin": broker.SharedRoundRobin,
	"random":      broker.SharedRandom,
	"hash_client": broker.SharedHashClient,
	"hash_topic":  broker.SharedHashTopic,
}

// Broker returns the broker.Config the settings describe (without logger,
// store, authenticator and authorizer, which the caller builds). c must be
// valid.
func (c *Config) Broker() broker.Config {
	l := c.Limits
	r := c.RateLimits
	bc := broker.Config{
		Capabilities: broker.Capabilities{
			MaximumQoS: byte(l.MaximumQoS), MaximumQoSSet: true,
			DisableRetain:                  !l.RetainAvailable,
			DisableWildcardSubscriptions:   !l.WildcardSubscriptions,
			DisableSubscriptionIdentifiers: !l.SubscriptionIdentifiers,
			DisableSharedSubscriptions:     !l.SharedSubscriptions,
			ReceiveMaximum:                 uint16(l.ReceiveMaximum),
			TopicAliasMaximum:              uint16(l.TopicAliasMaximum),
			TopicAliasDisabled:             l.TopicAliasMaximum == 0,
			OutboundTopicAliases:           uint16(l.OutboundTopicAliases),
			MaximumPacketSize:              uint32(l.MaximumPacketSize),
			ServerKeepAlive:                uint16(l.ServerKeepAlive),
			MaxKeepAlive:                   uint16(l.MaxKeepAlive),
			MaxSessionExpiry:               uint32(l.MaxSessionExpiry),
			ResponseInformation:            l.ResponseInformation,
		},
		Limits: broker.Limits{
			MaxConnections: l.MaxConnections, MaxSubscriptionsPerClient: l.MaxSubscriptionsPerClient,
			MaxRetainedMessages: l.MaxRetainedMessages, MaxRetainedBytes: l.MaxRetainedBytes,
			MaxTopicLength: l.MaxTopicLength, MaxTopicLevels: l.MaxTopicLevels,
			MaxInflight: l.MaxInflight, MaxClientIDLength: l.MaxClientIDLength,
			MaxConnectionsPerIP: l.MaxConnectionsPerIP,
		},
		Queue: broker.QueueConfig{MaxMessages: c.Queue.MaxMessages, MaxBytes: c.Queue.MaxBytes,
			Policy: overflowPolicies[c.Queue.Policy], QueueQoS0Offline: c.Queue.QoS0Offline},
		SharedStrategy:             sharedStrategies[l.SharedStrategy],
		ConnectTimeout:             l.ConnectTimeout.D(),
		WriteTimeout:               l.WriteTimeout.D(),
		SysInterval:                c.Sys.Interval.D(),
		AllowSessionIdentityChange: l.AllowSessionIdentityChange,
		BatchInterval:              c.Storage.BatchInterval.D(),
		LoadBalancer:               broker.LoadBalancerConfig{Backends: c.LoadBalancer.Backends, AfterAuth: c.LoadBalancer.AfterAuth},
		ChangeOnly: broker.ChangeOnlyConfig{Patterns: c.ChangeOnly.Patterns, MaxTopicsPerSession: c.ChangeOnly.MaxTopicsPerSession,
			ExemptClientPrefix: c.ChangeOnly.ExemptClientPrefix},
		Stamp:           broker.StampConfig{UsernameProperty: c.Stamp.UsernameProperty, ClientIDProperty: c.Stamp.ClientIDProperty},
		EchoSuppression: broker.EchoSuppressionConfig{Property: c.EchoSuppression.Property},
		RateLimits: broker.RateLimits{InboundMessages: r.InboundMessages, InboundMessagesBurst: r.InboundMessagesBurst,
			InboundBytes: r.InboundBytes, InboundBytesBurst: r.InboundBytesBurst, OutboundMessages: r.OutboundMessages,
			OutboundMessagesBurst: r.OutboundMessagesBurst, DisconnectAfter: r.DisconnectAfter},
	}
	if c.LoadBalancer.V311 == "serve" {
		bc.LoadBalancer.V311 = broker.V311ServeLocally
	}
	if c.Sys.Interval == 0 {
		bc.SysInterval = -1
	}
	bc.Durability, _ = broker.ParseDurability(c.Storage.Durability)
	return bc
}
