package bridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

// Defaults of the Config fields.
const (
	DefaultMaxQueued        = 10_000
	DefaultMaxQueuedBytes   = 64 << 20
	DefaultLoopTTL          = 60 * time.Second
	DefaultLoopCacheSize    = 10_000
	DefaultFailbackInterval = 60 * time.Second
	DefaultFailoverAttempts = 3
	DefaultSessionExpiry    = 7 * 24 * time.Hour
	DefaultMaxHops          = 1
)

// LocalClientIDPrefix starts the client identifier of a bridge's session
// at the local broker (followed by the bridge's Name). The broker's
// change-only delivery exempts sessions whose identifier starts with
// "mqtt5-bridge-", so bridges receive every message.
const LocalClientIDPrefix = "mqtt5-bridge-local-"

// Config configures a Bridge. Name, Remote.URL and at least one entry of
// Topics are required; every other field has a default.
type Config struct {
	// Name identifies the bridge: it is part of the client identifiers of
	// both connections and the value of the origin property the bridge adds
	// to the messages it forwards. Letters, digits, '-', '_' and '.', at
	// most 64 bytes. Give every bridge of a deployment its own name.
	Name string

	// Remote is the broker the bridge connects to.
	Remote RemoteConfig

	// Topics say what is forwarded, in which direction and under which
	// topic. A message goes through the first mapping that matches it.
	Topics []TopicMapping

	// QueueDir, when set, keeps the in-flight state of both connections
	// (QoS 1/2 messages sent and not yet acknowledged, QoS 2 packet
	// identifiers received) on disk, so that a restarted bridge resumes its
	// QoS 2 flows with the same packet identifiers. One subdirectory per
	// server. Default: in memory.
	QueueDir string

	// MaxQueued bounds the QoS 1/2 messages the bridge holds per direction
	// (received from one side and not yet acknowledged by the other): it is
	// announced to both brokers as Receive Maximum (at most 65,535), so
	// they stop sending when it is reached and keep the rest queued in the
	// bridge's sessions. It also bounds the QoS 0 messages waiting for an
	// unreachable side (beyond it they are dropped and counted). Default
	// 10,000.
	MaxQueued int
	// MaxQueuedBytes bounds the bytes of QoS 0 messages waiting per
	// direction, and the clients' send queues. Default 64 MiB.
	MaxQueuedBytes int64

	// Backoff paces reconnection to the remote side and to the local
	// broker: 1 s initial, 60 s maximum, factor 2, half of each delay
	// random by default (see client.Backoff).
	Backoff client.Backoff

	// FailoverAttempts is the number of failed reconnection attempts to
	// the server in use after which the bridge tries the next servers
	// (primary first, then Remote.Backups in order). Only used when
	// Remote.Backups is not empty. Default 3.
	FailoverAttempts int
	// FailbackInterval is how often the primary is tried while the bridge
	// is connected to a backup; when it answers the bridge moves back to
	// it. Default 60 s.
	FailbackInterval time.Duration

	// SessionExpiry is the Session Expiry Interval of both sessions: how
	// long the brokers keep the bridge's subscriptions and queued messages
	// while it is away. Rounded down to seconds; at most 0xFFFFFFFF s
	// (never). Default 7 days.
	SessionExpiry time.Duration

	// MaxHops is the number of bridges a message may have crossed (as
	// counted by its origin properties) and still be forwarded by this
	// bridge. The default, 1, forwards only messages published by clients
	// of the broker they come from: any full mesh of bridges (a triangle of
	// "both" bridges, a star) then delivers each message exactly once and
	// never loops. Raise it for chains (edge to site to cloud needs 2 at
	// the site's bridge).
	MaxHops int

	// LoopTTL is how long the fingerprint of a forwarded message is kept
	// (default 60 s), LoopCacheSize how many fingerprints at most (default
	// 10,000; the oldest is evicted). LoopCache says when the cache is
	// used (default LoopCacheAuto: when the remote speaks MQTT 3.1.1).
	LoopTTL       time.Duration
	LoopCacheSize int
	LoopCache     LoopCacheMode

	// Logger receives connection events and errors. Default: discard.
	Logger *slog.Logger
}

// RemoteConfig is the remote side of a bridge.
type RemoteConfig struct {
	// URL is the primary server: mqtt://, mqtts://, ws://, wss://, quic://
	// or a bare host:port (see client.Options.Server).
	URL string
	// Backups are tried in order when the primary cannot be reached.
	Backups []string

	// TLS configures mqtts, wss and quic connections (nil: system roots).
	TLS *tls.Config
	// Username and Password authenticate the bridge to the remote broker.
	Username string
	Password []byte
	// Auth performs MQTT 5 enhanced authentication when set.
	Auth client.AuthHandler

	// ClientID is the client identifier on the remote broker. Default
	// "mqtt5-bridge-" + Name.
	ClientID string

	// Version is the protocol spoken to the remote: packet.V5 (default) or
	// packet.V311. With 3.1.1 there is no No Local and no origin property:
	// loop prevention then relies on the fingerprint cache.
	Version packet.Version

	// Keepalive is the keep alive interval (default 60 s).
	Keepalive time.Duration
	// ConnectTimeout bounds each connection attempt (default 30 s).
	ConnectTimeout time.Duration

	// WebSocketHeader, QUIC and Dialers are passed to client.Options.
	WebSocketHeader http.Header
	QUIC            mqttquic.DialConfig
	Dialers         map[string]client.Dialer
}

// Direction says which way a mapping forwards.
type Direction int

const (
	// Out forwards local messages to the remote broker (the default).
	Out Direction = iota
	// In forwards remote messages to the local broker.
	In
	// Both forwards both ways.
	Both
)

// String returns "out", "in" or "both".
func (d Direction) String() string {
	switch d {
	case Out:
		return "out"
	case In:
		return "in"
	case Both:
		return "both"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// ParseDirection parses "out", "in" or "both".
func ParseDirection(s string) (Direction, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "out", "":
		return Out, nil
	case "in":
		return In, nil
	case "both":
		return Both, nil
	}
	return 0, fmt.Errorf("bridge: unknown direction %q (want in, out or both)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Direction) UnmarshalText(b []byte) error {
	v, err := ParseDirection(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func (d Direction) out() bool { return d == Out || d == Both }
func (d Direction) in() bool  { return d == In || d == Both }

// TopicMapping is one forwarding rule. The bridge subscribes to
// LocalPrefix+Pattern on the local broker (directions out and both) and to
// RemotePrefix+Pattern on the remote broker (in and both). A forwarded
// message's topic loses the prefix of the side it comes from and gains the
// prefix of the side it goes to:
//
//	Pattern "sensors/#", LocalPrefix "", RemotePrefix "site1/":
//	  local "sensors/t1"       -> remote "site1/sensors/t1"   (out)
//	  remote "site1/sensors/t" -> local  "sensors/t"          (in)
//
// With an empty Pattern the prefixes are whole topic names and the mapping
// renames one topic: LocalPrefix "alarm", RemotePrefix "plant/7/alarm".
type TopicMapping struct {
	// Pattern is a topic filter (wildcards allowed; not a shared
	// subscription), or empty (see above).
	Pattern   string
	Direction Direction
	// QoS is the maximum QoS of the bridge's subscriptions (0, 1, 2);
	// messages keep the QoS they arrive with, at most this.
	QoS byte
	// LocalPrefix and RemotePrefix are prepended to Pattern on their side.
	// No wildcards; usually they end with '/'.
	LocalPrefix, RemotePrefix string
}

// LoopCacheMode says when the fingerprint cache is consulted.
type LoopCacheMode int

const (
	// LoopCacheAuto uses the cache when the remote speaks MQTT 3.1.1, which
	// has neither No Local nor user properties. With MQTT 5 on both sides,
	// No Local and the origin property prevent loops without looking at
	// payloads, so identical messages published independently on both
	// sides are all forwarded.
	LoopCacheAuto LoopCacheMode = iota
	// LoopCacheAlways uses the cache for every message.
	LoopCacheAlways
	// LoopCacheOff never uses it.
	LoopCacheOff
)

// normalize validates c and fills in the defaults. Errors name the field.
func (c Config) normalize() (Config, error) {
	if c.Name == "" {
		return c, errors.New("bridge: Config.Name is empty")
	}
	if len(c.Name) > 64 {
		return c, fmt.Errorf("bridge: Config.Name %q is longer than 64 bytes", c.Name)
	}
	for _, r := range c.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return c, fmt.Errorf("bridge: Config.Name %q: only letters, digits, '-', '_' and '.' are allowed", c.Name)
		}
	}
	r := &c.Remote
	if r.URL == "" {
		return c, errors.New("bridge: Config.Remote.URL is empty")
	}
	if r.Version == 0 {
		r.Version = packet.V5
	}
	if r.Version != packet.V5 && r.Version != packet.V311 {
		return c, fmt.Errorf("bridge: Config.Remote.Version %v: want 5 or 3.1.1", r.Version)
	}
	if r.ClientID == "" {
		r.ClientID = "mqtt5-bridge-" + c.Name
	}
	servers := append([]string{r.URL}, r.Backups...)
	for i, s := range servers {
		field := "Config.Remote.URL"
		if i > 0 {
			field = fmt.Sprintf("Config.Remote.Backups[%d]", i-1)
		}
		o := client.Options{Server: s, Version: r.Version, Username: r.Username, Password: r.Password, Dialers: r.Dialers}
		if r.Version == packet.V5 {
			o.Auth = r.Auth
		}
		if _, err := client.New(o); err != nil {
			return c, fmt.Errorf("bridge: %s: %w", field, err)
		}
	}
	if r.Auth != nil && r.Version != packet.V5 {
		return c, errors.New("bridge: Config.Remote.Auth needs Config.Remote.Version 5")
	}
	if len(c.Topics) == 0 {
		return c, errors.New("bridge: Config.Topics is empty")
	}
	c.Topics = append([]TopicMapping(nil), c.Topics...)
	for i, m := range c.Topics {
		if err := m.validate(); err != nil {
			return c, fmt.Errorf("bridge: Config.Topics[%d]: %w", i, err)
		}
	}
	if c.MaxQueued < 0 {
		return c, errors.New("bridge: Config.MaxQueued is negative")
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = DefaultMaxQueued
	}
	if c.MaxQueuedBytes < 0 {
		return c, errors.New("bridge: Config.MaxQueuedBytes is negative")
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.FailoverAttempts < 0 {
		return c, errors.New("bridge: Config.FailoverAttempts is negative")
	}
	if c.FailoverAttempts == 0 {
		c.FailoverAttempts = DefaultFailoverAttempts
	}
	if c.FailbackInterval < 0 {
		return c, errors.New("bridge: Config.FailbackInterval is negative")
	}
	if c.FailbackInterval == 0 {
		c.FailbackInterval = DefaultFailbackInterval
	}
	if c.SessionExpiry < 0 {
		return c, errors.New("bridge: Config.SessionExpiry is negative")
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = DefaultSessionExpiry
	}
	if c.MaxHops < 0 {
		return c, errors.New("bridge: Config.MaxHops is negative")
	}
	if c.MaxHops == 0 {
		c.MaxHops = DefaultMaxHops
	}
	if c.LoopTTL < 0 {
		return c, errors.New("bridge: Config.LoopTTL is negative")
	}
	if c.LoopTTL == 0 {
		c.LoopTTL = DefaultLoopTTL
	}
	if c.LoopCacheSize < 0 {
		return c, errors.New("bridge: Config.LoopCacheSize is negative")
	}
	if c.LoopCacheSize == 0 {
		c.LoopCacheSize = DefaultLoopCacheSize
	}
	if c.LoopCache < LoopCacheAuto || c.LoopCache > LoopCacheOff {
		return c, fmt.Errorf("bridge: Config.LoopCache %d is not a LoopCacheMode", int(c.LoopCache))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func (m TopicMapping) validate() error {
	if m.Direction < Out || m.Direction > Both {
		return fmt.Errorf("Direction %d is not In, Out or Both", int(m.Direction))
	}
	if m.QoS > 2 {
		return fmt.Errorf("QoS %d is above 2", m.QoS)
	}
	for _, p := range []struct{ name, v string }{{"LocalPrefix", m.LocalPrefix}, {"RemotePrefix", m.RemotePrefix}} {
		if strings.ContainsAny(p.v, "+#\x00") {
			return fmt.Errorf("%s %q contains a wildcard or NUL", p.name, p.v)
		}
		if strings.HasPrefix(p.v, "$share/") {
			return fmt.Errorf("%s %q is a shared subscription", p.name, p.v)
		}
	}
	if m.Pattern == "" {
		if err := topic.ValidateName(m.LocalPrefix); err != nil {
			return fmt.Errorf("empty Pattern needs LocalPrefix to be a topic name: %w", err)
		}
		if err := topic.ValidateName(m.RemotePrefix); err != nil {
			return fmt.Errorf("empty Pattern needs RemotePrefix to be a topic name: %w", err)
		}
		return nil
	}
	if strings.HasPrefix(m.Pattern, "$share/") {
		return fmt.Errorf("Pattern %q: shared subscriptions cannot be bridged", m.Pattern)
	}
	if err := topic.ValidateFilter(m.Pattern); err != nil {
		return fmt.Errorf("Pattern %q: %w", m.Pattern, err)
	}
	if err := topic.ValidateFilter(m.LocalPrefix + m.Pattern); err != nil {
		return fmt.Errorf("LocalPrefix+Pattern %q: %w", m.LocalPrefix+m.Pattern, err)
	}
	if err := topic.ValidateFilter(m.RemotePrefix + m.Pattern); err != nil {
		return fmt.Errorf("RemotePrefix+Pattern %q: %w", m.RemotePrefix+m.Pattern, err)
	}
	return nil
}

// localFilter and remoteFilter are the filters subscribed on each side.
func (m TopicMapping) localFilter() string  { return m.LocalPrefix + m.Pattern }
func (m TopicMapping) remoteFilter() string { return m.RemotePrefix + m.Pattern }

// rewrite maps name, which matches the filter from+Pattern, to the other
// side: from is removed and to prepended. A topic equal to from without its
// trailing '/' (matched by "prefix/#") maps to to without its trailing '/'.
// ok is false when the result is not a valid topic name.
func rewrite(name, from, to string) (string, bool) {
	var out string
	switch {
	case strings.HasPrefix(name, from):
		out = to + name[len(from):]
	case strings.HasSuffix(from, "/") && name == from[:len(from)-1]:
		out = strings.TrimSuffix(to, "/")
	default:
		return "", false
	}
	if topic.ValidateName(out) != nil {
		return "", false
	}
	return out, true
}
