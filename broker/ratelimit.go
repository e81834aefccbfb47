package broker

import (
	"math"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
	"golang.org/x/time/rate"
)

// RateLimits bound, per connection, the PUBLISH packets a client sends and
// the messages the broker sends it (token buckets: a rate per second and a
// burst). A zero rate is unlimited; a zero burst takes its default.
//
// Inbound, a PUBLISH over a limit is not routed: a v5 client gets PUBACK or
// PUBREC with Quota Exceeded (0x97) for QoS 1 and 2, and a QoS 0 message is
// dropped; both are counted (Stats().RateLimited). A v5 client whose last
// DisconnectAfter publications were all over the limit is disconnected with
// Quota Exceeded (0x97). A 3.1.1 client has no negative acknowledgement: it
// is disconnected at its first publication over the limit. Retransmissions
// of a QoS 2 message awaiting PUBREL are not counted.
//
// Outbound, the rate shapes the connection's writer: messages wait in the
// session's queue until the rate allows them, and are never dropped because
// of it (the queue's own bounds, QueueConfig, still apply). Control packets
// and retransmissions after a reconnection are not limited.
//
// SetRateLimits (or Reconfigure) changes them on a running broker: each
// connection's buckets take the new rate and burst from the moment of the
// call, keeping the tokens they held (capped at the new burst), when the
// connection next publishes or is next sent a message; a bucket that
// appears starts full.
type RateLimits struct {
	// InboundMessages is the PUBLISH packets a client may send per second.
	InboundMessages float64
	// InboundMessagesBurst is how many it may send at once.
	// Default: InboundMessages rounded up, at least 1.
	InboundMessagesBurst int
	// InboundBytes is the PUBLISH bytes (whole packets, as on the wire) a
	// client may send per second.
	InboundBytes float64
	// InboundBytesBurst is how many bytes it may send at once. Default:
	// the larger of InboundBytes rounded up and
	// Capabilities.MaximumPacketSize. A packet larger than the burst is
	// always over the limit.
	InboundBytesBurst int
	// OutboundMessages is the PUBLISH packets the broker sends a client
	// per second.
	OutboundMessages float64
	// OutboundMessagesBurst is how many it sends at once. Default:
	// OutboundMessages rounded up, at least 1.
	OutboundMessagesBurst int
	// DisconnectAfter is how many publications in a row over the limit
	// make the broker disconnect a v5 client. Default 100; negative: never.
	DisconnectAfter int
}

func (r RateLimits) withDefaults(maxPacket uint32) RateLimits {
	burst := func(b int, rate float64) int {
		if b > 0 {
			return b
		}
		return max(1, int(math.Min(math.Ceil(rate), math.MaxInt32)))
	}
	if r.InboundMessages > 0 {
		r.InboundMessagesBurst = burst(r.InboundMessagesBurst, r.InboundMessages)
	}
	if r.InboundBytes > 0 && r.InboundBytesBurst <= 0 {
		r.InboundBytesBurst = max(burst(0, r.InboundBytes), int(min(maxPacket, math.MaxInt32)))
	}
	if r.OutboundMessages > 0 {
		r.OutboundMessagesBurst = burst(r.OutboundMessagesBurst, r.OutboundMessages)
	}
	if r.DisconnectAfter == 0 {
		r.DisconnectAfter = 100
	}
	return r
}

// rateEpoch is a change of RateLimits by Reconfigure: connections bring
// their buckets in line with it lazily, at their next message, as if they
// had changed at the moment of the call.
type rateEpoch struct {
	gen    uint64 // 1, 2, ...; 0 is the configuration of New
	at     time.Time
	limits RateLimits
}

// limiters returns a new connection's limiters for the rate limits in
// force, nil for what is unlimited.
func (b *Broker) limiters() (*inboundLimiter, *outboundRate) {
	if e := b.rates.Load(); e != nil {
		return e.limits.limiters(e.gen)
	}
	return b.cfg.RateLimits.limiters(0)
}

// limiters returns limiters for r, marked with generation gen.
func (r *RateLimits) limiters(gen uint64) (*inboundLimiter, *outboundRate) {
	var in *inboundLimiter
	if r.InboundMessages > 0 || r.InboundBytes > 0 {
		in = &inboundLimiter{gen: gen}
		if r.InboundMessages > 0 {
			in.msgs = rate.NewLimiter(rate.Limit(r.InboundMessages), r.InboundMessagesBurst)
		}
		if r.InboundBytes > 0 {
			in.bytes = rate.NewLimiter(rate.Limit(r.InboundBytes), r.InboundBytesBurst)
		}
	}
	var out *outboundRate
	if r.OutboundMessages > 0 {
		out = &outboundRate{Limiter: rate.NewLimiter(rate.Limit(r.OutboundMessages), r.OutboundMessagesBurst), gen: gen}
	}
	return in, out
}

// retune gives l rate r and burst burst from time at on, keeping the tokens
// it held then (capped at the burst). A nil l is created full; a zero rate
// returns nil.
func retune(l *rate.Limiter, at time.Time, r float64, burst int) *rate.Limiter {
	switch {
	case r <= 0:
		return nil
	case l == nil:
		return rate.NewLimiter(rate.Limit(r), burst)
	}
	l.SetLimitAt(at, rate.Limit(r))
	l.SetBurstAt(at, burst)
	return l
}

// inboundLimiter is a connection's inbound buckets; only its read
// goroutine uses it.
type inboundLimiter struct {
	msgs, bytes *rate.Limiter // nil: unlimited
	strikes     int           // publications over the limit in a row
	gen         uint64        // rateEpoch.gen the buckets were set for
}

// allow takes a message and size bytes from the buckets if both have them.
func (l *inboundLimiter) allow(now time.Time, size int) bool {
	if (l.msgs != nil && l.msgs.TokensAt(now) < 1) || (l.bytes != nil && l.bytes.TokensAt(now) < float64(size)) {
		return false
	}
	if l.msgs != nil {
		l.msgs.AllowN(now, 1)
	}
	if l.bytes != nil {
		l.bytes.AllowN(now, size)
	}
	l.strikes = 0
	return true
}

// outboundRate is a connection's outbound bucket, guarded by sess.mu.
type outboundRate struct {
	*rate.Limiter
	gen uint64 // rateEpoch.gen the bucket was set for
}

// inboundAllowed takes a message of size bytes from the connection's
// inbound buckets, first bringing them in line with a Reconfigure. It
// reports false when the message is over the limit. Read goroutine only.
func (c *conn) inboundAllowed(size int) bool {
	if e := c.b.rates.Load(); e != nil && (c.inLimit == nil || c.inLimit.gen != e.gen) {
		c.retuneInbound(e)
	}
	return c.inLimit == nil || c.inLimit.allow(c.b.now(), size)
}

// retuneInbound applies the rate limits of e to the connection's inbound
// buckets.
func (c *conn) retuneInbound(e *rateEpoch) {
	r := &e.limits
	if r.InboundMessages <= 0 && r.InboundBytes <= 0 {
		c.inLimit = nil
		return
	}
	l := c.inLimit
	if l == nil {
		l = &inboundLimiter{}
		c.inLimit = l
	}
	l.msgs = retune(l.msgs, e.at, r.InboundMessages, r.InboundMessagesBurst)
	l.bytes = retune(l.bytes, e.at, r.InboundBytes, r.InboundBytesBurst)
	l.gen = e.gen
}

// retuneOutboundLocked applies the rate limits of e to the connection's
// outbound bucket. The caller holds sess.mu.
func (c *conn) retuneOutboundLocked(e *rateEpoch) {
	r := &e.limits
	if r.OutboundMessages <= 0 {
		c.outLimit = nil
		return
	}
	if c.outLimit == nil {
		c.outLimit = &outboundRate{}
	}
	c.outLimit.Limiter = retune(c.outLimit.Limiter, e.at, r.OutboundMessages, r.OutboundMessagesBurst)
	c.outLimit.gen = e.gen
}

// overRate counts a publication over the inbound limit and returns the
// error that disconnects the client when it must go.
func (c *conn) overRate() error {
	c.b.stats.rateLimited.Add(1)
	c.inLimit.strikes++
	limit := c.b.conf().RateLimits.DisconnectAfter
	if c.version == packet.V5 && (limit < 0 || c.inLimit.strikes < limit) {
		return nil
	}
	c.b.stats.rateDisconnects.Add(1)
	return &packet.Error{Code: packet.QuotaExceeded, Type: packet.PUBLISH, Reason: "publish rate limit exceeded"}
}

// outTokenLocked takes a token for one outbound message, first bringing
// the bucket in line with a Reconfigure; it returns true at once when the
// outbound rate is unlimited. Without a token, it arms a timer that kicks
// the writer when the next token is due, and returns false. The caller
// holds sess.mu.
func (c *conn) outTokenLocked(now time.Time) bool {
	if e := c.b.rates.Load(); e != nil && (c.outLimit == nil || c.outLimit.gen != e.gen) {
		c.retuneOutboundLocked(e)
	}
	if c.outLimit == nil || c.outLimit.AllowN(now, 1) {
		return true
	}
	if !c.outWait {
		missing := 1 - c.outLimit.TokensAt(now)
		wait := time.Duration(math.Ceil(missing / float64(c.outLimit.Limit()) * float64(time.Second)))
		c.outWait = true
		c.outTimer = time.AfterFunc(max(wait, time.Microsecond), c.outReady)
	}
	return false
}

// outReady restarts the writer once the outbound rate allows a message.
func (c *conn) outReady() {
	s := c.sess
	s.mu.Lock()
	c.outWait = false
	c.outTimer = nil
	c.kickLocked()
	s.mu.Unlock()
}
