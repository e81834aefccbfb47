package broker

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Settings are the parts of Config that a running broker can change with
// Reconfigure. Zero fields take the defaults documented in Config, as in
// New.
//
// What a change does:
//
//   - New connections always get the new values.
//   - Values advertised in CONNACK, that is every field of Capabilities
//     (Maximum QoS, Retain Available, the subscription features, Receive
//     Maximum, Topic Alias Maximum, Maximum Packet Size, Server Keep
//     Alive, the Session Expiry cap, Response Information), apply to new
//     connections only: a connected client was told the old values and
//     stays bound by them and entitled to them, so the broker keeps
//     enforcing exactly those for it ([MQTT-3.2.2-11], [MQTT-3.2.2-14],
//     [MQTT-3.2.2-15], [MQTT-3.3.2-9], [MQTT-3.3.2-12], [MQTT-3.3.4-7],
//     [MQTT-3.2.2-21], [MQTT-3.2.2-22]). Limits.MaxInflight, which bounds
//     the flows to a client together with its Receive Maximum, is also
//     fixed per connection at CONNECT, and so are ConnectTimeout and
//     LoadBalancer (they only act before CONNACK).
//   - RateLimits apply to connected clients too, at their next PUBLISH
//     (inbound) or next message sent (outbound): the token buckets take
//     the new rate and burst from the moment of the call and keep the
//     tokens they held then (capped at the new burst); a bucket that
//     appears starts full, and one whose rate becomes 0 disappears.
//   - Queue bounds and policy apply at the next message queued for a
//     session. Messages already queued are never dropped because a bound
//     shrank, except through the overflow policy when the next message
//     arrives (DropOldestQoS0First then drops queued messages, oldest QoS 0
//     first, until the new one fits the new bounds).
//   - Limits.MaxConnections and Limits.MaxConnectionsPerIP apply to the
//     next connection: lowering them refuses new connections while too
//     many exist, and never closes existing ones. Connections accepted
//     while MaxConnectionsPerIP was disabled (negative) are not counted
//     against a limit set later.
//   - Limits.MaxSubscriptionsPerClient applies to the next SUBSCRIBE (a
//     session above a lowered bound keeps its filters but may add no new
//     one), MaxRetainedMessages and MaxRetainedBytes to the next retained
//     message, MaxClientIDLength to the next CONNECT, SharedStrategy to
//     the next shared delivery, WriteTimeout to the next write and
//     AllowSessionIdentityChange to the next CONNECT.
//   - Stamp and EchoSuppression apply to the next message routed (and
//     Stamp to the will of the next CONNECT); messages already queued keep
//     the properties they were routed with.
//
// Limits.MaxTopicLength and Limits.MaxTopicLevels cannot change at run
// time (stored subscriptions and retained messages were validated against
// them): Reconfigure refuses a Settings that changes them.
type Settings struct {
	Capabilities               Capabilities
	Limits                     Limits
	Queue                      QueueConfig
	RateLimits                 RateLimits
	ConnectTimeout             time.Duration
	WriteTimeout               time.Duration
	SharedStrategy             SharedStrategy
	AllowSessionIdentityChange bool
	LoadBalancer               LoadBalancerConfig
	Stamp                      StampConfig
	EchoSuppression            EchoSuppressionConfig
}

// ErrNotReconfigurable is wrapped by the error of Reconfigure when a
// setting that needs a restart would change.
var ErrNotReconfigurable = errors.New("broker: setting cannot change at run time")

// conf returns the settings in force: Config as given to New with the
// changes of Reconfigure. Callers must not modify it.
func (b *Broker) conf() *Config { return b.live.Load() }

// Settings returns the settings in force, defaults applied.
func (b *Broker) Settings() Settings { return b.conf().Settings() }

// Settings returns the part of c that Reconfigure takes.
func (c *Config) Settings() Settings {
	return Settings{
		Capabilities:               c.Capabilities,
		Limits:                     c.Limits,
		Queue:                      c.Queue,
		RateLimits:                 c.RateLimits,
		ConnectTimeout:             c.ConnectTimeout,
		WriteTimeout:               c.WriteTimeout,
		SharedStrategy:             c.SharedStrategy,
		AllowSessionIdentityChange: c.AllowSessionIdentityChange,
		LoadBalancer:               c.LoadBalancer,
		Stamp:                      c.Stamp,
		EchoSuppression:            c.EchoSuppression,
	}
}

// Reconfigure validates s and makes it the broker's settings at once (see
// Settings for what a change does to connected clients). An invalid s
// changes nothing. It is safe to call concurrently with everything else;
// the publish path reads the settings with one atomic load and no lock.
func (b *Broker) Reconfigure(s Settings) error {
	return b.update(func(cur *Settings) { *cur = s })
}

// SetLimits changes Limits only (see Reconfigure).
func (b *Broker) SetLimits(l Limits) error {
	return b.update(func(s *Settings) { s.Limits = l })
}

// SetRateLimits changes RateLimits only (see Reconfigure).
func (b *Broker) SetRateLimits(r RateLimits) error {
	return b.update(func(s *Settings) { s.RateLimits = r })
}

// update applies mod to the settings in force, atomically with respect to
// other updates.
func (b *Broker) update(mod func(*Settings)) error {
	b.reconfMu.Lock()
	defer b.reconfMu.Unlock()
	cur := b.conf()
	s := cur.Settings()
	mod(&s)
	if err := s.validate(); err != nil {
		return err
	}
	// The defaults of New, applied to the new values only.
	d := Config{Capabilities: s.Capabilities, Limits: s.Limits, Queue: s.Queue, RateLimits: s.RateLimits,
		ConnectTimeout: s.ConnectTimeout, WriteTimeout: s.WriteTimeout, SharedStrategy: s.SharedStrategy,
		AllowSessionIdentityChange: s.AllowSessionIdentityChange, LoadBalancer: s.LoadBalancer}.withDefaults()
	if d.Limits.MaxTopicLength != cur.Limits.MaxTopicLength {
		return fmt.Errorf("%w: Limits.MaxTopicLength", ErrNotReconfigurable)
	}
	if d.Limits.MaxTopicLevels != cur.Limits.MaxTopicLevels {
		return fmt.Errorf("%w: Limits.MaxTopicLevels", ErrNotReconfigurable)
	}
	next := *cur
	next.Capabilities = d.Capabilities
	next.Limits = d.Limits
	next.Queue = d.Queue
	next.RateLimits = d.RateLimits
	next.ConnectTimeout = d.ConnectTimeout
	next.WriteTimeout = d.WriteTimeout
	next.SharedStrategy = d.SharedStrategy
	next.AllowSessionIdentityChange = d.AllowSessionIdentityChange
	next.LoadBalancer = d.LoadBalancer
	next.Stamp = s.Stamp
	next.EchoSuppression = s.EchoSuppression
	b.live.Store(&next)
	if next.RateLimits != cur.RateLimits {
		var gen uint64 = 1
		if e := b.rates.Load(); e != nil {
			gen = e.gen + 1
		}
		b.rates.Store(&rateEpoch{gen: gen, at: b.now(), limits: next.RateLimits})
	}
	b.ipLimit.setLimit(next.Limits.MaxConnectionsPerIP)
	return nil
}

// validate rejects what New would silently repair or misread.
func (s *Settings) validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("broker: %s = %v: %s", field, v, want)
	}
	rate := func(field string, v float64) error {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return bad(field, v, "want a finite rate >= 0")
		}
		return nil
	}
	r := &s.RateLimits
	for _, e := range []error{
		rate("RateLimits.InboundMessages", r.InboundMessages),
		rate("RateLimits.InboundBytes", r.InboundBytes),
		rate("RateLimits.OutboundMessages", r.OutboundMessages),
	} {
		if e != nil {
			return e
		}
	}
	switch {
	case r.InboundMessagesBurst < 0:
		return bad("RateLimits.InboundMessagesBurst", r.InboundMessagesBurst, "want >= 0")
	case r.InboundBytesBurst < 0:
		return bad("RateLimits.InboundBytesBurst", r.InboundBytesBurst, "want >= 0")
	case r.OutboundMessagesBurst < 0:
		return bad("RateLimits.OutboundMessagesBurst", r.OutboundMessagesBurst, "want >= 0")
	case s.Capabilities.MaximumQoS > 2:
		return bad("Capabilities.MaximumQoS", s.Capabilities.MaximumQoS, "want 0, 1 or 2")
	case s.Queue.Policy < DropOldestQoS0First || s.Queue.Policy > DisconnectClient:
		return bad("Queue.Policy", s.Queue.Policy, "unknown policy")
	case s.SharedStrategy < SharedRoundRobin || s.SharedStrategy > SharedHashTopic:
		return bad("SharedStrategy", s.SharedStrategy, "unknown strategy")
	case s.ConnectTimeout < 0:
		return bad("ConnectTimeout", s.ConnectTimeout, "want >= 0")
	case s.WriteTimeout < 0:
		return bad("WriteTimeout", s.WriteTimeout, "want >= 0")
	case s.LoadBalancer.V311 < V311Refuse || s.LoadBalancer.V311 > V311ServeLocally:
		return bad("LoadBalancer.V311", s.LoadBalancer.V311, "unknown value")
	}
	return nil
}
