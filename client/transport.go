package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/mqtt5go/mqtt5/transport"
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

// parseServer parses a server address: a URL with a known scheme, or a bare
// host[:port] meaning TCP. The result always has a port (and a path for
// ws/wss).
func parseServer(s string) (*url.URL, error) {
	u, err := transport.ParseServerURL(s)
	if err != nil {
		return nil, fmt.Errorf("mqtt client: %w", err)
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
			ref = net.JoinHostPort(h, defaultPort(cur.Scheme))
		}
		ref = cur.Scheme + "://" + ref
	}
	return parseServer(ref)
}

// defaultPort is the port a server URL of the scheme has when it names
// none.
func defaultPort(scheme string) string {
	u, err := transport.ParseServerURL(scheme + "://h")
	if err != nil {
		return ""
	}
	return u.Port()
}

// dial opens the transport for u: a Dialer registered for its scheme, or
// the built-in one (TCP, TLS, WebSocket, QUIC).
func (c *Client) dial(ctx context.Context, u *url.URL) (io.ReadWriteCloser, error) {
	if d := c.opts.Dialers[u.Scheme]; d != nil {
		return d.Dial(ctx, u, c.opts.TLSConfig)
	}
	nc, err := transport.Dial(ctx, u, transport.DialConfig{
		TLS:    c.opts.TLSConfig,
		Header: c.opts.WebSocketHeader,
		QUIC:   c.opts.QUIC,
	})
	if errors.Is(err, transport.ErrUnknownScheme) {
		return nil, fmt.Errorf("%w: %s:// (register a Dialer in Options.Dialers)", ErrTransportUnavailable, u.Scheme)
	}
	return nc, err
}
