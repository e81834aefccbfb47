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
	ctrlSent         atomic.Int64 // packets sent other than PUBLISH
	bytesReceived    atomic.Int64
	bytesSent        atomic.Int64
	publishReceived  atomic.Int64
	publishSent      [3]atomic.Int64 // PUBLISH packets sent, by QoS
	publishBytesSent [3]atomic.Int64 // their encoded size, by QoS
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

// sentTally counts the packets of one write batch; the writer adds it to
// the broker's counters once per batch (addSent), not once per packet.
type sentTally struct {
	ctrl     int64    // packets other than PUBLISH
	publish  [3]int64 // PUBLISH packets by QoS
	pubBytes [3]int64 // their encoded size by QoS
}

func (t *sentTally) addPublish(qos byte, size int) {
	t.publish[qos]++
	t.pubBytes[qos] += int64(size)
}

// addSent adds t to the counters and clears it.
func (s *stats) addSent(t *sentTally) {
	if t.ctrl != 0 {
		s.ctrlSent.Add(t.ctrl)
	}
	for q := range t.publish {
		if t.publish[q] != 0 {
			s.publishSent[q].Add(t.publish[q])
			s.publishBytesSent[q].Add(t.pubBytes[q])
		}
	}
	*t = sentTally{}
}

// fillSent sets the packet counters of st that addSent keeps:
// MessagesSent, PublishSent and the per-QoS figures.
func (s *stats) fillSent(st *Stats) {
	for q := range s.publishSent {
		st.PublishSentByQoS[q] = s.publishSent[q].Load()
		st.PublishBytesSentByQoS[q] = s.publishBytesSent[q].Load()
		st.PublishSent += st.PublishSentByQoS[q]
	}
	st.MessagesSent = s.ctrlSent.Load() + st.PublishSent
	st.StoreErrors = s.storeErrors.Load()
}

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
	MessagesReceived int64            // packets received, of every type
	MessagesSent     int64            // packets sent, of every type
	BytesReceived    int64            // bytes received
	BytesSent        int64            // bytes sent
	PublishReceived  int64            // PUBLISH packets received
	PublishSent      int64            // PUBLISH packets sent (retransmissions included)
	Dropped          map[string]int64 // undelivered messages by reason

	PublishSentByQoS      [3]int64 // PublishSent by the QoS of the packet sent
	PublishBytesSentByQoS [3]int64 // encoded size of those PUBLISH packets, by QoS
	StoreErrors           int64    // failed store writes (persistence)

	Redirects            int64 // CONNECTs redirected to a backend (LoadBalancer)
	ChangeOnlySuppressed int64 // deliveries skipped: payload unchanged (ChangeOnly)
	EchoSuppressed       int64 // deliveries skipped by EchoSuppression
	HookEventsDropped    int64 // notification hook events dropped on a full queue
	RateLimited          int64 // inbound PUBLISH refused (0x97) or dropped by RateLimits
	RateLimitDisconnects int64 // clients disconnected by RateLimits
	RefusedPerIP         int64 // connections closed before reading: Limits.MaxConnectionsPerIP reached
}

// QueueDepth is what a set of session queues holds.
type QueueDepth struct {
	Messages int64 // messages waiting to be sent
	Bytes    int64 // their size (topic, payload and properties)
}

// QueueStats describe the sessions' outbound queues at one moment.
type QueueStats struct {
	// Connected is queued for sessions with a connection (or an
	// in-process subscriber); Offline for sessions kept while their
	// client is away.
	Connected, Offline QueueDepth
	// Inflight counts QoS 1 and 2 messages sent and not yet acknowledged
	// (PUBACK, PUBREC/PUBCOMP), all sessions.
	Inflight int64
	// MaxMessages and MaxBytes are the deepest single session queue, in
	// messages and in bytes (not necessarily the same session).
	MaxMessages, MaxBytes int64
}

// QueueStats walks every session, under its own lock, and adds up its
// outbound queue and in-flight window. It costs nothing on the message
// path and O(sessions) per call: call it when metrics are read, not per
// message.
func (b *Broker) QueueStats() QueueStats {
	b.sessMu.Lock()
	ss := make([]*session, 0, len(b.sessions))
	for _, s := range b.sessions {
		ss = append(ss, s)
	}
	b.sessMu.Unlock()
	var qs QueueStats
	for _, s := range ss {
		s.mu.Lock()
		n, by := int64(s.queue.len()), s.queue.bytes
		inflight := int64(len(s.inflight))
		online := s.conn != nil || s.handler != nil
		s.mu.Unlock()
		d := &qs.Offline
		if online {
			d = &qs.Connected
		}
		d.Messages += n
		d.Bytes += by
		qs.Inflight += inflight
		qs.MaxMessages = max(qs.MaxMessages, n)
		qs.MaxBytes = max(qs.MaxBytes, by)
	}
	return qs
}
