package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrTransportNotSupported is returned for broker URLs whose scheme names a
// transport the load generator does not speak yet (tls, ws, quic ...).
var ErrTransportNotSupported = errors.New("transport not supported yet")

// ErrRemoteTarget is returned when the broker URL is not a loopback address
// and Config.AllowRemote is false.
var ErrRemoteTarget = errors.New("refusing a non-loopback target")

// Dialer opens one connection to the broker. It is the seam where other
// transports (TLS, WebSocket, QUIC) slot in: everything above it works on a
// net.Conn carrying the MQTT byte stream.
type Dialer interface {
	Dial(ctx context.Context) (net.Conn, error)
}

// transport builds a Dialer for a parsed broker URL.
type transport func(u *url.URL) (Dialer, string, error)

// transports maps URL schemes to transports. tls/ws/quic register here when
// they exist; the known-but-missing ones report ErrTransportNotSupported.
var transports = map[string]transport{
	"mqtt": tcpTransport,
	"tcp":  tcpTransport,
}

// planned lists schemes we know of but do not support yet.
var planned = map[string]bool{
	"mqtts": true, "ssl": true, "tls": true, "ws": true, "wss": true, "quic": true,
}

// Target is a parsed broker URL with its dialer.
type Target struct {
	URL    string // as given
	Scheme string
	Addr   string // host:port
	Dialer Dialer
}

// ParseTarget parses a broker URL (mqtt://host:port or tcp://host:port; a
// bare host:port means mqtt://) and returns its dialer.
func ParseTarget(raw string) (Target, error) {
	s := raw
	if !strings.Contains(s, "://") {
		s = "mqtt://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return Target{}, fmt.Errorf("broker URL %q: %v", raw, err)
	}
	scheme := strings.ToLower(u.Scheme)
	tr, ok := transports[scheme]
	if !ok {
		if planned[scheme] {
			return Target{}, fmt.Errorf("broker URL %q: %s:// %w (supported: mqtt://, tcp://)", raw, scheme, ErrTransportNotSupported)
		}
		return Target{}, fmt.Errorf("broker URL %q: unknown scheme %q (supported: mqtt://, tcp://)", raw, scheme)
	}
	if u.Host == "" {
		return Target{}, fmt.Errorf("broker URL %q: missing host", raw)
	}
	d, addr, err := tr(u)
	if err != nil {
		return Target{}, fmt.Errorf("broker URL %q: %v", raw, err)
	}
	return Target{URL: raw, Scheme: scheme, Addr: addr, Dialer: d}, nil
}

func tcpTransport(u *url.URL) (Dialer, string, error) {
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "1883"
	}
	addr := net.JoinHostPort(host, port)
	return &tcpDialer{addr: addr}, addr, nil
}

type tcpDialer struct {
	addr string
	d    net.Dialer
}

func (t *tcpDialer) Dial(ctx context.Context) (net.Conn, error) {
	c, err := t.d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return c, nil
}

// checkLoopback returns ErrRemoteTarget unless every address host resolves
// to is a loopback address.
func checkLoopback(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%w %s: benchmarks may only target loopback unless allowed explicitly (--allow-remote)", ErrRemoteTarget, host)
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolve %s: %v", host, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("%w %s (%s): benchmarks may only target loopback unless allowed explicitly (--allow-remote)", ErrRemoteTarget, host, ip.IP)
		}
	}
	return nil
}
