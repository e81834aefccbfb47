package broker

import (
	"log/slog"
	"time"

	"github.com/mqtt5go/mqtt5/broker/store"
)

// Config configures a Broker. The zero value is a working configuration:
// every zero field takes the default documented beside it.
type Config struct {
	// Logger receives the broker's logs. Default: slog.Default().
	Logger *slog.Logger

	// Capabilities are what the broker advertises in CONNACK.
	Capabilities Capabilities

	// Limits bound what clients may use. SetLimits and Reconfigure change
	// them on a running broker (see Settings).
	Limits Limits

	// Queue bounds each session's outbound queue.
	Queue QueueConfig

	// SharedStrategy picks the member of a shared subscription group that
	// receives a message. Default: round-robin.
	SharedStrategy SharedStrategy

	// Authenticator decides CONNECT and enhanced authentication. Default:
	// AllowAll (anyone may connect; the command-line broker refuses to listen
	// beyond loopback without authentication unless told to).
	Authenticator Authenticator

	// Authorizer decides publish and subscribe. Default: everything allowed.
	// One that also implements ReceiveAuthorizer is asked before each
	// delivery too. Stored subscriptions are checked again when a session
	// is resumed; those no longer allowed are removed.
	Authorizer Authorizer

	// AllowSessionIdentityChange lets a client resume or take over a
	// session that another identity (username as settled by the
	// Authenticator) owns. By default, whenever an Authenticator other
	// than AllowAll is configured, such a CONNECT is refused with Not
	// Authorized (0x87; 3.1.1: 5), so one user cannot take over another's
	// session by reusing its client identifier.
	AllowSessionIdentityChange bool

	// SysInterval is how often $SYS topics are published. Default 10 s;
	// negative disables $SYS.
	SysInterval time.Duration

	// ConnectTimeout is how long a new connection may take to send CONNECT
	// (and finish an enhanced authentication exchange). Default 10 s.
	ConnectTimeout time.Duration

	// WriteTimeout bounds one write to a client; a client that does not
	// read for this long is disconnected. Default 30 s.
	WriteTimeout time.Duration

	// Version is reported in $SYS/broker/version. Default "mqtt5".
	Version string

	// Store keeps sessions, queued and in-flight messages, retained
	// messages and wills across restarts. Default nil: state lives in
	// memory only. Use Open to restore from it; the broker closes it at
	// Shutdown.
	Store store.Store
	// Durability says when QoS 1/2 publications are acknowledged relative
	// to the store. Default DurabilitySync.
	Durability Durability
	// BatchInterval is the commit interval of DurabilityBatch. Default 10 ms.
	BatchInterval time.Duration
	// CommitObserver, when set, is told the duration of each store commit
	// (metrics). Default none.
	CommitObserver CommitObserver

	// LoadBalancer, when it lists backends, makes the broker redirect v5
	// clients to one of them instead of serving them.
	LoadBalancer LoadBalancerConfig

	// ChangeOnly suppresses, per subscriber session and topic, messages
	// whose payload equals the last one delivered. Default: off.
	ChangeOnly ChangeOnlyConfig

	// Hooks are event handlers, each implementing one or more of
	// ConnectHook, SubscribeHook, UnsubscribeHook, PublishHook,
	// DisconnectHook, RetainedHook and DeliveredHook (see AddHook). New
	// panics on a value that implements none of them.
	Hooks []any

	// Stamp adds the publisher's identity to routed messages as user
	// properties. Default: off.
	Stamp StampConfig

	// EchoSuppression keeps a message from the session named by one of its
	// user properties. Default: off.
	EchoSuppression EchoSuppressionConfig

	// RateLimits bound what one client may publish and receive per second.
	// Default: unlimited. SetRateLimits and Reconfigure change them on a
	// running broker, for connected clients too (see Settings).
	RateLimits RateLimits
}

// Capabilities are the features the broker advertises to v5 clients in
// CONNACK and enforces for all clients.
type Capabilities struct {
	// MaximumQoS is the highest QoS accepted from publishers (0, 1 or 2).
	// Default 2. Set MaximumQoSSet to advertise 0.
	MaximumQoS    byte
	MaximumQoSSet bool
	// DisableRetain turns off retained messages (Retain Available = 0).
	DisableRetain bool
	// DisableWildcardSubscriptions refuses filters with + or #.
	DisableWildcardSubscriptions bool
	// DisableSubscriptionIdentifiers refuses Subscription Identifiers.
	DisableSubscriptionIdentifiers bool
	// DisableSharedSubscriptions refuses $share filters.
	DisableSharedSubscriptions bool
	// ReceiveMaximum is how many QoS 1 and 2 publications the broker
	// accepts from one client at once. Default 1024.
	ReceiveMaximum uint16
	// TopicAliasMaximum is how many inbound topic aliases a client may use.
	// Default 64; set TopicAliasDisabled for 0.
	TopicAliasMaximum  uint16
	TopicAliasDisabled bool
	// OutboundTopicAliases lets the broker assign topic aliases on messages
	// it sends to clients that allow them (up to the client's maximum and
	// this many). Default 0: off.
	OutboundTopicAliases uint16
	// MaximumPacketSize is the largest packet the broker accepts, header
	// included. Default 1 MiB.
	MaximumPacketSize uint32
	// ServerKeepAlive, when non-zero, overrides the keep alive clients ask
	// for (v5 clients are told in CONNACK).
	ServerKeepAlive uint16
	// MaxKeepAlive, when non-zero, caps the keep alive clients may ask for:
	// larger (or 0) values are replaced by it and sent as Server Keep Alive.
	MaxKeepAlive uint16
	// MaxSessionExpiry caps the Session Expiry Interval clients ask for, in
	// seconds. Default: no cap (0xFFFFFFFF = never).
	MaxSessionExpiry uint32
	// ResponseInformation is returned to clients that request it.
	// Default "" (no Response Information).
	ResponseInformation string
}

// Limits bound what one client, and all clients together, may use. A zero
// field takes its default; a negative int disables the limit.
type Limits struct {
	// MaxConnections bounds concurrent network connections. Default 100,000.
	MaxConnections int
	// MaxConnectionsPerIP bounds the concurrent connections from one remote
	// IP address (IPv6: one /64 network). A connection beyond it is closed
	// as soon as it is accepted, before anything is read (no CONNACK can be
	// sent before CONNECT), and counted in Stats().RefusedPerIP. The address
	// is the connection's RemoteAddr: for WebSocket listeners with trusted
	// proxies, the X-Forwarded-For client. In-process connections (net.Pipe,
	// TrustedConn) are not counted. Behind a TCP load balancer or NAT every
	// client shares one address: raise the limit or disable it there.
	// Default 1,000.
	MaxConnectionsPerIP int
	// MaxSubscriptionsPerClient bounds the filters of one session.
	// Default 1,000.
	MaxSubscriptionsPerClient int
	// MaxRetainedMessages bounds the number of retained messages.
	// Default 1,000,000.
	MaxRetainedMessages int
	// MaxRetainedBytes bounds the payload bytes of retained messages.
	// Default 1 GiB; negative: no bound.
	MaxRetainedBytes int64
	// MaxTopicLength bounds topic names and filters in bytes. Default 65535.
	MaxTopicLength int
	// MaxTopicLevels bounds the levels of topic names and filters.
	// Default 128.
	MaxTopicLevels int
	// MaxInflight bounds QoS 1/2 messages sent to one client and not yet
	// acknowledged (further bounded by the client's Receive Maximum).
	// Default 1024.
	MaxInflight int
	// MaxClientIDLength bounds client identifiers. Default 256.
	MaxClientIDLength int
}

// OverflowPolicy says what happens when a session's queue is full.
type OverflowPolicy int

const (
	// DropOldestQoS0First drops the oldest QoS 0 message in the queue to
	// make room; when the queue holds no QoS 0 message, the new message is
	// dropped if it is QoS 0, otherwise the oldest message is dropped.
	// Every drop is counted. This is the default.
	DropOldestQoS0First OverflowPolicy = iota
	// DropNew drops the message that does not fit.
	DropNew
	// DisconnectClient drops the message that does not fit and disconnects
	// the session's client with Quota Exceeded (0x97).
	DisconnectClient
)

// QueueConfig bounds each session's outbound queue: messages waiting to be
// sent, including those kept for a disconnected persistent session.
type QueueConfig struct {
	// MaxMessages bounds the count. Default 10,000.
	MaxMessages int
	// MaxBytes bounds payload plus topic bytes. Default 64 MiB.
	MaxBytes int64
	// Policy applies when a bound is reached. Default DropOldestQoS0First.
	Policy OverflowPolicy
	// QueueQoS0Offline keeps QoS 0 messages for disconnected persistent
	// sessions too. Default false: only QoS 1 and 2 are kept.
	QueueQoS0Offline bool
}

// SharedStrategy selects how a shared subscription group's member is chosen.
type SharedStrategy int

const (
	// SharedRoundRobin cycles through the members (default). Connected
	// members are preferred over disconnected ones.
	SharedRoundRobin SharedStrategy = iota
	// SharedRandom picks a connected member at random.
	SharedRandom
	// SharedHashClient picks by a hash of the publisher's client id, so one
	// publisher's messages go to one member.
	SharedHashClient
	// SharedHashTopic picks by a hash of the topic, so one topic's messages
	// go to one member.
	SharedHashTopic
)

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Authenticator == nil {
		c.Authenticator = AllowAll{}
	}
	if c.SysInterval == 0 {
		c.SysInterval = 10 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.Version == "" {
		c.Version = "mqtt5"
	}
	if c.BatchInterval <= 0 {
		c.BatchInterval = 10 * time.Millisecond
	}
	cp := &c.Capabilities
	if !cp.MaximumQoSSet && cp.MaximumQoS == 0 {
		cp.MaximumQoS = 2
	}
	if cp.MaximumQoS > 2 {
		cp.MaximumQoS = 2
	}
	if cp.ReceiveMaximum == 0 {
		cp.ReceiveMaximum = 1024
	}
	if cp.TopicAliasDisabled {
		cp.TopicAliasMaximum = 0
	} else if cp.TopicAliasMaximum == 0 {
		cp.TopicAliasMaximum = 64
	}
	if cp.MaximumPacketSize == 0 {
		cp.MaximumPacketSize = 1 << 20
	}
	if cp.MaxSessionExpiry == 0 {
		cp.MaxSessionExpiry = 0xFFFFFFFF
	}
	c.LoadBalancer = c.LoadBalancer.withDefaults()
	c.ChangeOnly = c.ChangeOnly.withDefaults()
	c.RateLimits = c.RateLimits.withDefaults(cp.MaximumPacketSize)
	l := &c.Limits
	l.MaxConnections = defInt(l.MaxConnections, 100_000)
	l.MaxConnectionsPerIP = defInt(l.MaxConnectionsPerIP, 1000)
	l.MaxSubscriptionsPerClient = defInt(l.MaxSubscriptionsPerClient, 1000)
	l.MaxRetainedMessages = defInt(l.MaxRetainedMessages, 1_000_000)
	if l.MaxRetainedBytes == 0 {
		l.MaxRetainedBytes = 1 << 30
	}
	l.MaxTopicLength = defInt(l.MaxTopicLength, 65535)
	l.MaxTopicLevels = defInt(l.MaxTopicLevels, 128)
	l.MaxInflight = defInt(l.MaxInflight, 1024)
	if l.MaxInflight > 65535 {
		l.MaxInflight = 65535
	}
	l.MaxClientIDLength = defInt(l.MaxClientIDLength, 256)
	q := &c.Queue
	q.MaxMessages = defInt(q.MaxMessages, 10_000)
	if q.MaxBytes == 0 {
		q.MaxBytes = 64 << 20
	}
	return c
}

func defInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// unlimited reports whether an int limit is disabled (negative).
func within(n, limit int) bool { return limit < 0 || n < limit }
