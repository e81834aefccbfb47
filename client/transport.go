package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
)

// Dialer opens the byte stream of one transport. A WebSocket Dialer must
// offer the "mqtt" subprotocol [MQTT-6.0.0-3] and carry MQTT packets in
// binary frames. The client reads and
// writes MQTT packets on the stream and closes it when the connection ends;
// Close must unblock pending Read and Write calls. A net.Conn qualifies, and
// so does a QUIC stream or a WebSocket adapter — plug them in through
// Options.Dialers without any other change.
type Dialer interface {
	// Dial connects to the server named by u (its scheme is one the Dialer
	// was registered for; u.Host always carries a port). tlsConfig is
	// Options.TLSConfig (may be nil).
	Dial(ctx context.Context, u *url.URL, tlsConfig *tls.Config) (io.ReadWriteCloser, error)
}

// DialerFunc adapts a function to the Dialer interface.
type DialerFunc func(ctx context.Context, u *url.URL, tlsConfig *tls.Config) (io.ReadWriteCloser, error)

// Dial calls f.
func (f DialerFunc) Dial(ctx context.Context, u *url.URL, cfg *tls.Config) (io.ReadWriteCloser, error) {
	return f(ctx, u, cfg)
}

// defaultPorts lists the schemes the client knows, with their default ports.
var defaultPorts = map[string]string{
	"mqtt":  "1883",
	"tcp":   "1883",
	"mqtts": "8883",
	"ssl":   "8883",
	"tls":   "8883",
	"ws":    "80",
	"wss":   "443",
	"quic":  "14567",
}

// parseServer parses a server address: a URL with a known scheme, or a bare
// host[:port] meaning TCP. The result always has a port.
func parseServer(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "tcp://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("mqtt client: server address %q: %w", s, err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	port, ok := defaultPorts[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("mqtt client: server address %q: unknown scheme %q", s, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("mqtt client: server address %q: no host", s)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u, nil
}

// resolveReference turns a Server Reference (the first of a space-separated
// list; a URL or host[:port]) into a URL, keeping the scheme of cur when the
// reference has none.
func resolveReference(cur *url.URL, ref string) (*url.URL, error) {
	ref = strings.TrimSpace(ref)
	if i := strings.IndexByte(ref, ' '); i >= 0 {
		ref = ref[:i]
	}
	if ref == "" {
		return nil, fmt.Errorf("mqtt client: empty server reference")
	}
	if !strings.Contains(ref, "://") {
		if _, _, err := net.SplitHostPort(ref); err != nil {
			// No port: a host name or a bracketed/bare IPv6 literal.
			h := strings.TrimSuffix(strings.TrimPrefix(ref, "["), "]")
			ref = net.JoinHostPort(h, defaultPorts[cur.Scheme])
		}
		ref = cur.Scheme + "://" + ref
	}
	return parseServer(ref)
}

// dial opens the transport for u.
func (c *Client) dial(ctx context.Context, u *url.URL) (io.ReadWriteCloser, error) {
	if d := c.opts.Dialers[u.Scheme]; d != nil {
		return d.Dial(ctx, u, c.opts.TLSConfig)
	}
	switch u.Scheme {
	case "mqtt", "tcp":
		var d net.Dialer
		return d.DialContext(ctx, "tcp", u.Host)
	case "mqtts", "ssl", "tls":
		cfg := c.opts.TLSConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		d := tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", u.Host)
	}
	return nil, fmt.Errorf("%w: %s:// (register a Dialer in Options.Dialers)", ErrTransportUnavailable, u.Scheme)
}
