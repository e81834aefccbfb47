package auth

import (
	"container/list"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// RateLimitConfig configures RateLimit. Zero fields take the defaults.
type RateLimitConfig struct {
	// MaxFailures is how many failed authentications within Window lock
	// out an address or a user name. Default 5.
	MaxFailures int
	// Window is the period over which failures are counted. Default 60 s.
	Window time.Duration
	// Lockout is how long a locked-out address or user name is refused.
	// Default 300 s.
	Lockout time.Duration
	// MaxEntries bounds the addresses and user names tracked; beyond it the
	// least recently updated ones are forgotten. Default 100,000.
	MaxEntries int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Logger receives lockout notices. Default slog.Default().
	Logger *slog.Logger
}

func (c RateLimitConfig) withDefaults() RateLimitConfig {
	if c.MaxFailures <= 0 {
		c.MaxFailures = 5
	}
	if c.Window <= 0 {
		c.Window = 60 * time.Second
	}
	if c.Lockout <= 0 {
		c.Lockout = 300 * time.Second
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = 100_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// RateLimit wraps inner with a lockout of repeated failures. Failed
// authentications (Bad User Name or Password and Not Authorized from inner)
// are counted per client address and per user name; when one of them
// reaches MaxFailures within Window, it is locked out for Lockout: every
// authentication from that address or for that user name is refused with
// Banned (0x8A; the broker sends 3.1.1 return code 5, not authorized)
// without consulting inner. IPv6 addresses are counted per /64 network,
// which is what one host usually has. A successful authentication clears
// the user name's failures (not the address's).
//
// Counting user names means that anyone can lock a user out by failing on
// purpose; the lockout is bounded in time so that this stays a nuisance
// and not a denial of service, and counting addresses alone would let one
// address guess the passwords of many users.
//
// The returned authenticator implements Provider when inner does, so it
// can be placed in a Chain.
func RateLimit(inner broker.Authenticator, cfg RateLimitConfig) broker.Authenticator {
	rl := &rateLimiter{inner: inner, cfg: cfg.withDefaults(), entries: map[string]*list.Element{}}
	if p, ok := inner.(Provider); ok {
		return &rateLimitedProvider{rl, p}
	}
	return rl
}

type rateLimiter struct {
	inner broker.Authenticator
	cfg   RateLimitConfig

	mu      sync.Mutex
	entries map[string]*list.Element // of *rlEntry
	order   list.List                // least recently updated first
}

type rateLimitedProvider struct {
	*rateLimiter
	p Provider
}

func (r *rateLimitedProvider) Handles(req *broker.AuthRequest) bool { return r.p.Handles(req) }

type rlEntry struct {
	key         string
	failures    int
	windowStart time.Time
	lockedUntil time.Time
}

// Authenticate implements broker.Authenticator.
func (r *rateLimiter) Authenticate(ctx context.Context, req *broker.AuthRequest) broker.AuthResult {
	keys := r.keys(req)
	if req.Step == 0 {
		if key, locked := r.locked(keys); locked {
			r.cfg.Logger.Debug("authentication refused during lockout", "key", key)
			return broker.AuthResult{Code: packet.Banned, Reason: "too many failed authentications; try again later"}
		}
	}
	res := r.inner.Authenticate(ctx, req)
	switch res.Code {
	case packet.BadUserNameOrPassword, packet.NotAuthorized:
		r.fail(keys)
	case packet.Success:
		if keys[1] != "" {
			r.clear(keys[1])
		}
	}
	return res
}

// keys returns the address key and the user name key ("" when absent).
func (r *rateLimiter) keys(req *broker.AuthRequest) [2]string {
	var k [2]string
	if c := req.Client; c != nil {
		if c.RemoteAddr != nil {
			k[0] = addrKey(c.RemoteAddr)
		}
		if c.Username != "" {
			k[1] = "user:" + c.Username
		}
	}
	return k
}

// addrKey returns "ip:" and the client's IP address, its /64 network for
// IPv6; other addresses (pipes, in-process) are not counted.
func addrKey(a net.Addr) string {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return ""
		}
	}
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		return ""
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return "ip:" + p.String()
	}
	return "ip:" + ip.String()
}

func (r *rateLimiter) locked(keys [2]string) (string, bool) {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if k == "" {
			continue
		}
		if el, ok := r.entries[k]; ok && now.Before(el.Value.(*rlEntry).lockedUntil) {
			return k, true
		}
	}
	return "", false
}

func (r *rateLimiter) fail(keys [2]string) {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if k == "" {
			continue
		}
		el, ok := r.entries[k]
		if ok {
			r.order.MoveToBack(el)
		} else {
			el = r.order.PushBack(&rlEntry{key: k})
			r.entries[k] = el
			for len(r.entries) > r.cfg.MaxEntries {
				oldest := r.order.Front()
				r.order.Remove(oldest)
				delete(r.entries, oldest.Value.(*rlEntry).key)
			}
		}
		e := el.Value.(*rlEntry)
		if now.Before(e.lockedUntil) {
			continue
		}
		if e.failures == 0 || now.Sub(e.windowStart) >= r.cfg.Window {
			e.failures, e.windowStart = 0, now
		}
		e.failures++
		if e.failures >= r.cfg.MaxFailures {
			e.failures = 0
			e.lockedUntil = now.Add(r.cfg.Lockout)
			r.cfg.Logger.Warn("authentication locked out after repeated failures", "key", k, "failures", r.cfg.MaxFailures, "window", r.cfg.Window, "until", e.lockedUntil)
		}
	}
}

func (r *rateLimiter) clear(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[key]; ok {
		r.order.Remove(el)
		delete(r.entries, key)
	}
}

// tracked returns the number of entries (for tests).
func (r *rateLimiter) tracked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}
