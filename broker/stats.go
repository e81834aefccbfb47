package broker

import "sync/atomic"

// dropReason says why a message was not delivered.
type dropReason int

const (
	dropQueueFull dropReason = iota // a session queue bound was reached
	dropOffline                     // QoS 0 for a disconnected session
	dropExpired                     // Message Expiry Interval passed
	dropTooLarge                    // larger than the client's Maximum Packet Size
	numDropReasons
)

var dropNames = [numDropReasons]string{"queue_full", "offline_qos0", "expired", "too_large"}

// stats are the broker's counters, updated with atomics on the hot path.
type stats struct {
	connections      atomic.Int64 // current network connections
	connectionsTotal atomic.Int64
	maxConnections   atomic.Int64
	msgsReceived     atomic.Int64
	msgsSent         atomic.Int64
	bytesReceived    atomic.Int64
	bytesSent        atomic.Int64
	publishReceived  atomic.Int64
	publishSent      atomic.Int64
	storeErrors      atomic.Int64
	drops            [numDropReasons]atomic.Int64

	redirects       atomic.Int64 // CONNECTs answered with Use Another Server
	unchanged       atomic.Int64 // deliveries skipped by change-only delivery
	echoes          atomic.Int64 // deliveries skipped by echo suppression
	hookDrops       atomic.Int64 // hook events dropped on a full queue
	rateLimited     atomic.Int64 // inbound PUBLISH refused or dropped by RateLimits
	rateDisconnects atomic.Int64 // clients disconnected by RateLimits
	refusedPerIP    atomic.Int64 // connections closed unread: MaxConnectionsPerIP reached
}

func (s *stats) dropped(r dropReason) { s.drops[r].Add(1) }

func (s *stats) connected() {
	n := s.connections.Add(1)
	s.connectionsTotal.Add(1)
	for {
		m := s.maxConnections.Load()
		if n <= m || s.maxConnections.CompareAndSwap(m, n) {
			return
		}
	}
}

// Stats is a snapshot of the broker's counters.
type Stats struct {
	Connections      int64            // current network connections
	ConnectionsTotal int64            // connections accepted since start
	MaxConnections   int64            // highest concurrent connections
	Sessions         int64            // sessions, connected or not
	Subscriptions    int64            // subscriptions in the router
	Retained         int64            // retained messages
	MessagesReceived int64            // packets received
	MessagesSent     int64            // packets sent
	BytesReceived    int64            // bytes received
	BytesSent        int64            // bytes sent
	PublishReceived  int64            // PUBLISH packets received
	PublishSent      int64            // PUBLISH packets sent
	Dropped          map[string]int64 // undelivered messages by reason

	Redirects            int64 // CONNECTs redirected to a backend (LoadBalancer)
	ChangeOnlySuppressed int64 // deliveries skipped: payload unchanged (ChangeOnly)
	EchoSuppressed       int64 // deliveries skipped by EchoSuppression
	HookEventsDropped    int64 // notification hook events dropped on a full queue
	RateLimited          int64 // inbound PUBLISH refused (0x97) or dropped by RateLimits
	RateLimitDisconnects int64 // clients disconnected by RateLimits
	RefusedPerIP         int64 // connections closed before reading: Limits.MaxConnectionsPerIP reached
}
