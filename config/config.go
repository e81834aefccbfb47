// Package config is the broker's one configuration loader: a JSON or TOML
// file, MQTT5_* environment variables and command-line flags, with the
// precedence flag > environment > file > default, and one validation path
// shared by start-up and reload.
//
// The empty file {} is a valid configuration: every field has a default
// (Default). Unknown fields, in the file or in the environment, are errors
// that name the field; validation errors name the field and say what is
// wrong.
//
// Field names are the same everywhere: the file key path
// (storage.data_dir), the environment variable (MQTT5_STORAGE_DATA_DIR) and,
// for the fields that have one, the flag of "mqtt5 broker" (--data-dir).
// Lists are comma-separated in the environment.
package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("10s",
// "1m30s") in files and the environment.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 10s, 500ms, 1m)", b)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON accepts a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("invalid duration %s (want a string such as \"10s\")", b)
	}
	return d.UnmarshalText([]byte(s))
}

// Config is the broker's configuration. See docs/configuration.md for every
// field with its default.
type Config struct {
	// Listeners are listen URLs: mqtt://, mqtts://, ws://, wss://, quic://.
	Listeners []string `json:"listeners" toml:"listeners" flag:"listen"`
	// AllowAnonymous allows anonymous clients on listeners beyond loopback.
	AllowAnonymous bool `json:"allow_anonymous" toml:"allow_anonymous" flag:"allow-anonymous"`
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout Duration `json:"shutdown_timeout" toml:"shutdown_timeout" flag:"shutdown-timeout"`

	Log       Log       `json:"log" toml:"log"`
	Sys       Sys       `json:"sys" toml:"sys"`
	TLS       TLS       `json:"tls" toml:"tls"`
	WebSocket WebSocket `json:"websocket" toml:"websocket"`
	QUIC      QUIC      `json:"quic" toml:"quic"`
	Storage   Storage   `json:"storage" toml:"storage"`
	Queue     Queue     `json:"queue" toml:"queue"`
	Limits    Limits    `json:"limits" toml:"limits"`
	Auth      Auth      `json:"auth" toml:"auth"`
	// Routing features.
	LoadBalancer    LoadBalancer    `json:"load_balancer" toml:"load_balancer"`
	ChangeOnly      ChangeOnly      `json:"change_only" toml:"change_only"`
	Stamp           Stamp           `json:"stamp" toml:"stamp"`
	EchoSuppression EchoSuppression `json:"echo_suppression" toml:"echo_suppression"`
	RateLimits      RateLimits      `json:"rate_limits" toml:"rate_limits"`
	Telemetry       Telemetry       `json:"telemetry" toml:"telemetry"`
	// Bridges connect this broker to remote brokers.
	Bridges []Bridge `json:"bridges" toml:"bridges"`
}

// Telemetry configures metrics, health endpoints and tracing.
type Telemetry struct {
	// MetricsListen is the host:port of the HTTP server of /metrics
	// (Prometheus), /healthz and /readyz; empty: off.
	MetricsListen string  `json:"metrics_listen" toml:"metrics_listen" flag:"metrics-listen"`
	Tracing       Tracing `json:"tracing" toml:"tracing"`
	// PprofListen is the host:port (loopback only) of the HTTP server of
	// the Go runtime profiles under /debug/pprof/; empty: off.
	PprofListen string `json:"pprof_listen" toml:"pprof_listen" flag:"pprof-listen"`
	// Metrics configures the export of the metrics over OTLP.
	Metrics Metrics `json:"metrics" toml:"metrics"`
}

// Metrics configures the export of the broker's metrics (the series of
// /metrics) over OpenTelemetry OTLP; OTEL_* variables apply too.
type Metrics struct {
	// Exporter is "otlp" to export, "none" or empty for no export.
	Exporter string   `json:"exporter" toml:"exporter" flag:"metrics-exporter"`
	Protocol string   `json:"protocol" toml:"protocol"`
	Endpoint string   `json:"endpoint" toml:"endpoint"`
	Interval Duration `json:"interval" toml:"interval"`
}

// Tracing configures OpenTelemetry tracing (OTEL_* variables apply too).
type Tracing struct {
	Enabled     bool    `json:"enabled" toml:"enabled" flag:"tracing"`
	Protocol    string  `json:"protocol" toml:"protocol"`
	Endpoint    string  `json:"endpoint" toml:"endpoint"`
	SampleRatio float64 `json:"sample_ratio" toml:"sample_ratio"`
}

// LoadBalancer redirects clients to backends (broker.LoadBalancerConfig).
type LoadBalancer struct {
	Backends  []string `json:"backends" toml:"backends"`
	AfterAuth bool     `json:"after_auth" toml:"after_auth"`
	V311      string   `json:"v311" toml:"v311"`
}

// ChangeOnly delivers a topic's message only when its payload changed
// (broker.ChangeOnlyConfig).
type ChangeOnly struct {
	Patterns            []string `json:"patterns" toml:"patterns"`
	MaxTopicsPerSession int      `json:"max_topics_per_session" toml:"max_topics_per_session"`
	ExemptClientPrefix  string   `json:"exempt_client_prefix" toml:"exempt_client_prefix"`
}

// Stamp adds the publisher's identity as user properties (broker.StampConfig).
type Stamp struct {
	UsernameProperty string `json:"username_property" toml:"username_property"`
	ClientIDProperty string `json:"client_id_property" toml:"client_id_property"`
}

// EchoSuppression (broker.EchoSuppressionConfig).
type EchoSuppression struct {
	Property string `json:"property" toml:"property"`
}

// RateLimits are per-client message and byte rates (broker.RateLimits).
type RateLimits struct {
	InboundMessages       float64 `json:"inbound_messages" toml:"inbound_messages"`
	InboundMessagesBurst  int     `json:"inbound_messages_burst" toml:"inbound_messages_burst"`
	InboundBytes          float64 `json:"inbound_bytes" toml:"inbound_bytes"`
	InboundBytesBurst     int     `json:"inbound_bytes_burst" toml:"inbound_bytes_burst"`
	OutboundMessages      float64 `json:"outbound_messages" toml:"outbound_messages"`
	OutboundMessagesBurst int     `json:"outbound_messages_burst" toml:"outbound_messages_burst"`
	DisconnectAfter       int     `json:"disconnect_after" toml:"disconnect_after"`
}

// Bridge is one bridge to a remote broker (see docs/bridging.md). Its
// fields are documented under "bridges[]" in docs/configuration.md.
type Bridge struct {
	Name             string        `json:"name" toml:"name"`
	URL              string        `json:"url" toml:"url"`
	Backups          []string      `json:"backups" toml:"backups"`
	ClientID         string        `json:"client_id" toml:"client_id"`
	Username         string        `json:"username" toml:"username"`
	Password         string        `json:"password" toml:"password"`
	Protocol         string        `json:"protocol" toml:"protocol"`
	CAFile           string        `json:"ca_file" toml:"ca_file"`
	CertFile         string        `json:"cert_file" toml:"cert_file"`
	KeyFile          string        `json:"key_file" toml:"key_file"`
	ALPN             []string      `json:"alpn" toml:"alpn"`
	Insecure         bool          `json:"insecure" toml:"insecure"`
	Topics           []BridgeTopic `json:"topics" toml:"topics"`
	QueueDir         string        `json:"queue_dir" toml:"queue_dir"`
	MaxQueued        int           `json:"max_queued" toml:"max_queued"`
	MaxQueuedBytes   int64         `json:"max_queued_bytes" toml:"max_queued_bytes"`
	FailbackInterval Duration      `json:"failback_interval" toml:"failback_interval"`
	MaxHops          int           `json:"max_hops" toml:"max_hops"`
	LoopTTL          Duration      `json:"loop_ttl" toml:"loop_ttl"`
	LoopCacheSize    int           `json:"loop_cache_size" toml:"loop_cache_size"`
}

// BridgeTopic is one topic mapping of a bridge.
type BridgeTopic struct {
	Pattern      string `json:"pattern" toml:"pattern"`
	Direction    string `json:"direction" toml:"direction"`
	QoS          int    `json:"qos" toml:"qos"`
	LocalPrefix  string `json:"local_prefix" toml:"local_prefix"`
	RemotePrefix string `json:"remote_prefix" toml:"remote_prefix"`
}

// Log configures logging.
type Log struct {
	Level  string `json:"level" toml:"level" flag:"log-level"`
	Format string `json:"format" toml:"format" flag:"log-format"`
}

// Sys configures the $SYS topics.
type Sys struct {
	// Interval between $SYS updates; 0 disables them.
	Interval Duration `json:"interval" toml:"interval" flag:"sys-interval"`
}

// TLS is the server certificate of mqtts, wss and quic listeners.
type TLS struct {
	Cert              string `json:"cert" toml:"cert" flag:"tls-cert"`
	Key               string `json:"key" toml:"key" flag:"tls-key"`
	CA                string `json:"ca" toml:"ca" flag:"tls-ca"`
	RequireClientCert bool   `json:"require_client_cert" toml:"require_client_cert" flag:"tls-require-client-cert"`
}

// WebSocket configures ws and wss listeners.
type WebSocket struct {
	AllowedOrigins []string `json:"allowed_origins" toml:"allowed_origins" flag:"ws-allowed-origin"`
	TrustedProxies []string `json:"trusted_proxies" toml:"trusted_proxies" flag:"ws-trusted-proxy"`
}

// QUIC configures quic listeners.
type QUIC struct {
	Delivery  string `json:"delivery" toml:"delivery" flag:"quic-delivery"`
	Datagrams bool   `json:"datagrams" toml:"datagrams" flag:"quic-datagrams"`
}

// Storage configures persistence.
type Storage struct {
	// Persistence keeps state on disk under DataDir.
	Persistence   bool     `json:"persistence" toml:"persistence"`
	DataDir       string   `json:"data_dir" toml:"data_dir" flag:"data-dir"`
	Durability    string   `json:"durability" toml:"durability" flag:"durability"`
	BatchInterval Duration `json:"batch_interval" toml:"batch_interval" flag:"batch-interval"`
}

// Queue bounds each session's outbound queue.
type Queue struct {
	MaxMessages int    `json:"max_messages" toml:"max_messages" flag:"max-queued-messages"`
	MaxBytes    int64  `json:"max_bytes" toml:"max_bytes" flag:"max-queued-bytes"`
	Policy      string `json:"policy" toml:"policy"`
	QoS0Offline bool   `json:"qos0_offline" toml:"qos0_offline"`
}

// Limits are the broker's capabilities and resource bounds (0 = default).
type Limits struct {
	MaximumQoS                 int      `json:"maximum_qos" toml:"maximum_qos"`
	RetainAvailable            bool     `json:"retain_available" toml:"retain_available"`
	WildcardSubscriptions      bool     `json:"wildcard_subscriptions" toml:"wildcard_subscriptions"`
	SubscriptionIdentifiers    bool     `json:"subscription_identifiers" toml:"subscription_identifiers"`
	SharedSubscriptions        bool     `json:"shared_subscriptions" toml:"shared_subscriptions"`
	ReceiveMaximum             int      `json:"receive_maximum" toml:"receive_maximum"`
	TopicAliasMaximum          int      `json:"topic_alias_maximum" toml:"topic_alias_maximum"`
	OutboundTopicAliases       int      `json:"outbound_topic_aliases" toml:"outbound_topic_aliases"`
	MaximumPacketSize          int64    `json:"maximum_packet_size" toml:"maximum_packet_size"`
	ServerKeepAlive            int      `json:"server_keep_alive" toml:"server_keep_alive"`
	MaxKeepAlive               int      `json:"max_keep_alive" toml:"max_keep_alive"`
	MaxSessionExpiry           int64    `json:"max_session_expiry" toml:"max_session_expiry"`
	ResponseInformation        string   `json:"response_information" toml:"response_information"`
	MaxConnections             int      `json:"max_connections" toml:"max_connections"`
	MaxConnectionsPerIP        int      `json:"max_connections_per_ip" toml:"max_connections_per_ip"`
	MaxSubscriptionsPerClient  int      `json:"max_subscriptions_per_client" toml:"max_subscriptions_per_client"`
	MaxRetainedMessages        int      `json:"max_retained_messages" toml:"max_retained_messages"`
	MaxRetainedBytes           int64    `json:"max_retained_bytes" toml:"max_retained_bytes"`
	MaxTopicLength             int      `json:"max_topic_length" toml:"max_topic_length"`
	MaxTopicLevels             int      `json:"max_topic_levels" toml:"max_topic_levels"`
	MaxInflight                int      `json:"max_inflight" toml:"max_inflight"`
	MaxClientIDLength          int      `json:"max_client_id_length" toml:"max_client_id_length"`
	ConnectTimeout             Duration `json:"connect_timeout" toml:"connect_timeout"`
	WriteTimeout               Duration `json:"write_timeout" toml:"write_timeout"`
	SharedStrategy             string   `json:"shared_strategy" toml:"shared_strategy"`
	AllowSessionIdentityChange bool     `json:"allow_session_identity_change" toml:"allow_session_identity_change"`
}

// Auth configures authentication and authorization.
type Auth struct {
	PasswordFile string   `json:"password_file" toml:"password_file" flag:"password-file"`
	ACLFile      string   `json:"acl_file" toml:"acl_file" flag:"acl-file"`
	CertAuth     string   `json:"cert_auth" toml:"cert_auth" flag:"cert-auth"`
	Plain        bool     `json:"plain" toml:"plain" flag:"plain-auth"`
	SCRAMFile    string   `json:"scram_file" toml:"scram_file" flag:"scram-file"`
	JWT          JWT      `json:"jwt" toml:"jwt"`
	MaxFailures  int      `json:"max_failures" toml:"max_failures" flag:"auth-max-failures"`
	Window       Duration `json:"window" toml:"window" flag:"auth-window"`
	Lockout      Duration `json:"lockout" toml:"lockout" flag:"auth-lockout"`
}

// JWT configures JSON Web Token authentication.
type JWT struct {
	Keys          []string `json:"keys" toml:"keys" flag:"jwt-key"`
	Issuer        string   `json:"issuer" toml:"issuer" flag:"jwt-issuer"`
	Audience      string   `json:"audience" toml:"audience" flag:"jwt-audience"`
	JWKSURL       string   `json:"jwks_url" toml:"jwks_url" flag:"jwt-jwks-url"`
	RoleClaims    []string `json:"role_claims" toml:"role_claims" flag:"jwt-role-claim"`
	IdentityClaim string   `json:"identity_claim" toml:"identity_claim" flag:"jwt-identity-claim"`
	// KeepConnectedAfterExpiry leaves connections open when their token
	// expires (default: DISCONNECT 0x87 at exp unless re-authenticated).
	KeepConnectedAfterExpiry bool `json:"keep_connected_after_expiry" toml:"keep_connected_after_expiry" flag:"jwt-keep-connected-after-expiry"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Listeners:       []string{"mqtt://127.0.0.1:1883"},
		ShutdownTimeout: Duration(10 * time.Second),
		Log:             Log{Level: "info", Format: "text"},
		Sys:             Sys{Interval: Duration(10 * time.Second)},
		WebSocket:       WebSocket{AllowedOrigins: []string{}, TrustedProxies: []string{}},
		QUIC:            QUIC{Delivery: "per_topic"},
		Storage: Storage{Persistence: true, DataDir: "data", Durability: "sync",
			BatchInterval: Duration(10 * time.Millisecond)},
		Queue: Queue{MaxMessages: 10000, MaxBytes: 64 << 20, Policy: "drop_oldest_qos0_first"},
		Limits: Limits{
			MaximumQoS: 2, RetainAvailable: true, WildcardSubscriptions: true,
			SubscriptionIdentifiers: true, SharedSubscriptions: true,
			ReceiveMaximum: 1024, TopicAliasMaximum: 64, MaximumPacketSize: 1 << 20,
			MaxSessionExpiry: 1<<32 - 1, MaxConnections: 100000, MaxConnectionsPerIP: 1000, MaxSubscriptionsPerClient: 1000,
			MaxRetainedMessages: 1000000, MaxRetainedBytes: 1 << 30, MaxTopicLength: 65535,
			MaxTopicLevels: 128, MaxInflight: 1024, MaxClientIDLength: 256,
			ConnectTimeout: Duration(10 * time.Second), WriteTimeout: Duration(30 * time.Second),
			SharedStrategy: "round_robin",
		},
		Bridges:      []Bridge{},
		LoadBalancer: LoadBalancer{Backends: []string{}, V311: "refuse"},
		ChangeOnly:   ChangeOnly{Patterns: []string{}, MaxTopicsPerSession: 1000, ExemptClientPrefix: "mqtt5-bridge-"},
		RateLimits:   RateLimits{DisconnectAfter: 100},
		Auth: Auth{JWT: JWT{Keys: []string{}, RoleClaims: []string{}, IdentityClaim: "sub"}, MaxFailures: 5,
			Window: Duration(60 * time.Second), Lockout: Duration(300 * time.Second)},
	}
}
