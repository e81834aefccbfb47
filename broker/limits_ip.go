package broker

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ipLimiter bounds the concurrent connections of one remote address
// (Limits.MaxConnectionsPerIP). IPv4 addresses are counted one by one,
// IPv6 addresses by /64 network, the block one host or one subscriber line
// usually gets. Connections whose remote address is not an IP address
// (net.Pipe, Unix sockets) are not counted, nor are TrustedConn
// connections.
//
// The map holds an entry per address with a live connection only, so it
// is bounded by Limits.MaxConnections.
//
// The limit may change at run time (Reconfigure): lowering it refuses new
// connections from an address above it and closes none. Connections
// accepted while it was disabled (negative) were not counted and are not
// counted later.
type ipLimiter struct {
	limit atomic.Int64 // negative: no limit

	mu    sync.Mutex
	count map[netip.Addr]int

	nextWarn atomic.Int64 // unix nanoseconds before which refusals are not logged

	closing chan struct{} // semaphore of closeRefused goroutines
}

func newIPLimiter(limit int) *ipLimiter {
	l := &ipLimiter{count: make(map[netip.Addr]int), closing: make(chan struct{}, maxRefusedClosing)}
	l.setLimit(limit)
	return l
}

// setLimit changes the limit for the connections that come next.
func (l *ipLimiter) setLimit(limit int) { l.limit.Store(int64(limit)) }

// ipKey returns the address a connection from a is counted under: its IP
// address (IPv4-mapped IPv6 addresses as IPv4), or its /64 network for
// IPv6. ok is false for addresses that are not IP addresses.
func ipKey(a net.Addr) (key netip.Addr, ok bool) {
	var ip netip.Addr
	switch a := a.(type) {
	case nil:
		return netip.Addr{}, false
	case *net.TCPAddr:
		ip, ok = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, ok = netip.AddrFromSlice(a.IP)
	case *net.IPAddr:
		ip, ok = netip.AddrFromSlice(a.IP)
	default:
		// Other transports' addresses: "host:port" or a bare address.
		s := a.String()
		if ap, err := netip.ParseAddrPort(s); err == nil {
			ip, ok = ap.Addr(), true
		} else if ip2, err := netip.ParseAddr(s); err == nil {
			ip, ok = ip2, true
		}
	}
	if !ok || !ip.IsValid() {
		return netip.Addr{}, false
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, err := ip.Prefix(64)
		if err != nil {
			return netip.Addr{}, false
		}
		ip = p.Addr()
	}
	return ip, true
}

// acquire counts one more connection under key; it returns false, counting
// nothing, when key already has limit connections.
func (l *ipLimiter) acquire(key netip.Addr) bool {
	limit := l.limit.Load()
	if limit < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.count[key]
	if int64(n) >= limit {
		return false
	}
	l.count[key] = n + 1
	return true
}

// release uncounts a connection acquired under key (whatever the limit
// is now).
func (l *ipLimiter) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch n := l.count[key]; {
	case n > 1:
		l.count[key] = n - 1
	case n == 1:
		delete(l.count, key)
	}
}

// connections returns the connections counted under key (for tests).
func (l *ipLimiter) connections(key netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[key]
}

// warnEvery is the least interval between two logged refusals: a flood of
// connections must not become a flood of log lines.
const warnEvery = 10 * time.Second

// shouldWarn reports whether a refusal at now is to be logged.
func (l *ipLimiter) shouldWarn(now time.Time) bool {
	next := l.nextWarn.Load()
	return now.UnixNano() >= next && l.nextWarn.CompareAndSwap(next, now.Add(warnEvery).UnixNano())
}

// admitIP counts nc under its remote address, or refuses it when the
// address has Limits.MaxConnectionsPerIP connections already. counted
// reports whether the connection must be released with releaseIP.
func (b *Broker) admitIP(nc net.Conn, trusted bool) (key netip.Addr, counted, ok bool) {
	if trusted || b.ipLimit.limit.Load() < 0 {
		return netip.Addr{}, false, true
	}
	key, isIP := ipKey(nc.RemoteAddr())
	if !isIP {
		return netip.Addr{}, false, true
	}
	if !b.ipLimit.acquire(key) {
		total := b.stats.refusedPerIP.Add(1)
		if b.ipLimit.shouldWarn(time.Now()) {
			b.log.Warn("connection refused: too many connections from one address",
				"remote", nc.RemoteAddr(), "limit", b.ipLimit.limit.Load(), "refused_total", total)
		} else {
			b.log.Debug("connection refused: too many connections from one address", "remote", nc.RemoteAddr())
		}
		return key, false, false
	}
	return key, true, true
}

// maxRefusedClosing bounds the refused connections being closed on their
// own goroutines; beyond it the accept loop closes them itself.
const maxRefusedClosing = 1024

// closeRefused closes a connection that Serve accepted and the broker
// refused. Closing a TCP connection is immediate, but closing a TLS or
// WebSocket connection may wait for the peer (close_notify, the WebSocket
// closing handshake: up to 5 s), which a hostile client would use to stall
// the accept loop; those are closed on a goroutine of their own, at most
// maxRefusedClosing at once (the accept loop waits beyond it).
func (b *Broker) closeRefused(nc net.Conn) {
	if _, plain := nc.(*net.TCPConn); plain {
		nc.Close()
		return
	}
	select {
	case b.ipLimit.closing <- struct{}{}:
	default:
		nc.Close()
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.ipLimit.closing
		nc.Close()
		return
	}
	b.connWG.Add(1) // Shutdown waits for it
	b.mu.Unlock()
	go func() {
		defer b.connWG.Done()
		defer func() { <-b.ipLimit.closing }()
		nc.Close()
	}()
}
