package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/mqtt5go/mqtt5/transport"
)

// ErrRemoteTarget is returned when the broker URL is not a loopback address
// and Config.AllowRemote is false.
var ErrRemoteTarget = errors.New("refusing a non-loopback target")

// Dialer opens one connection to the broker: everything above it works on a
// net.Conn carrying the MQTT byte stream, whatever the transport.
type Dialer interface {
	Dial(ctx context.Context) (net.Conn, error)
}

// Target is a parsed broker URL with its dialer.
type Target struct {
	URL    string // as given
	Scheme string
	Addr   string // host:port
	Dialer Dialer
}

// ParseTarget parses a broker URL of any transport (mqtt://, tcp://,
// mqtts://, ws://, wss://, quic://; a bare host:port means mqtt://) and
// returns its dialer, which uses cfg for TLS and QUIC.
func ParseTarget(raw string, cfg transport.DialConfig) (Target, error) {
	u, err := transport.ParseServerURL(raw)
	if err != nil {
		return Target{}, fmt.Errorf("broker URL %q: %w", raw, err)
	}
	return Target{URL: raw, Scheme: u.Scheme, Addr: u.Host, Dialer: &urlDialer{u: u, cfg: cfg}}, nil
}

type urlDialer struct {
	u   *url.URL
	cfg transport.DialConfig
}

func (d *urlDialer) Dial(ctx context.Context) (net.Conn, error) {
	c, err := transport.Dial(ctx, d.u, d.cfg)
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
