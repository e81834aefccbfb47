// Package transport turns listen URLs into net.Listeners and server URLs
// into connections, for every MQTT transport: TCP (mqtt://), TLS
// (mqtts://), WebSocket (ws://, wss://) and QUIC (quic://, see package
// mqttquic).
//
// Everything above this package sees a net.Conn. Connections that carry
// TLS implement TLSConn, so the broker can hand the verified client
// certificate to its authenticators whatever the transport.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

// TLSConn is implemented by connections secured with TLS (a *tls.Conn, a
// WebSocket connection over HTTPS, a QUIC connection).
type TLSConn interface {
	ConnectionState() tls.ConnectionState
}

// ErrUnknownScheme is returned for a URL whose scheme no transport serves.
var ErrUnknownScheme = errors.New("transport: unknown scheme")

// DefaultWebSocketPath is the path of ws:// and wss:// URLs without one.
const DefaultWebSocketPath = "/mqtt"

// ListenConfig describes one listener.
type ListenConfig struct {
	// URL is mqtt://host:port (or tcp://), mqtts://host:port (or ssl://,
	// tls://), ws://host:port/path, wss://host:port/path or
	// quic://host:port. An empty host listens on every address; port 0
	// picks a free one. A WebSocket URL without a path serves /mqtt.
	URL string
	// TLS is the server TLS configuration of mqtts, wss and quic listeners
	// (required there). NewCertReloader(...).TLSConfig() builds one that
	// reloads its files. mqtts listeners return connections whose TLS
	// handshake is complete.
	TLS *tls.Config
	// WebSocket configures ws and wss listeners.
	WebSocket WebSocketConfig
	// QUIC configures quic listeners.
	QUIC mqttquic.ServerConfig
	// Logger receives transport-level events; nil uses slog.Default().
	Logger *slog.Logger
}

// WebSocketConfig configures a WebSocket listener.
type WebSocketConfig struct {
	// AllowedOrigins lists the Origin header values (host patterns as
	// path.Match, e.g. "example.com", "*.example.com") a browser may
	// connect from. Empty allows any origin.
	AllowedOrigins []string
	// TrustedProxies lists the networks whose X-Forwarded-For header is
	// believed: a connection from one of them is reported with the
	// address the proxy forwarded for. Empty trusts no header.
	TrustedProxies []netip.Prefix
}

// DialConfig configures Dial.
type DialConfig struct {
	// TLS is the client TLS configuration of mqtts, wss and quic. Nil uses
	// the system roots. ServerName defaults to the URL's host (IP literals
	// are verified against the certificate's IP addresses).
	TLS *tls.Config
	// Header is sent with the WebSocket upgrade request.
	Header http.Header
	// QUIC configures quic connections.
	QUIC mqttquic.DialConfig
}

// Listen opens the listener cfg.URL names.
func Listen(ctx context.Context, cfg ListenConfig) (net.Listener, error) {
	u, err := ParseListenURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch u.Scheme {
	case "mqtt", "tcp":
		var lc net.ListenConfig
		return lc.Listen(ctx, "tcp", u.Host)
	case "mqtts", "ssl", "tls":
		if cfg.TLS == nil || !hasServerCertificate(cfg.TLS) {
			return nil, fmt.Errorf("transport: %s: a TLS listener needs a certificate", cfg.URL)
		}
		var lc net.ListenConfig
		l, err := lc.Listen(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		return newTLSListener(l, cfg.TLS, cfg.Logger), nil
	case "ws", "wss":
		if u.Scheme == "wss" && cfg.TLS == nil {
			return nil, fmt.Errorf("transport: %s: a TLS listener needs a certificate", cfg.URL)
		}
		return listenWebSocket(ctx, u, cfg)
	case "quic":
		if cfg.TLS == nil {
			return nil, fmt.Errorf("transport: %s: a QUIC listener needs a certificate", cfg.URL)
		}
		tc := cfg.TLS
		if len(tc.NextProtos) == 0 {
			// Set ALPN so that it survives GetConfigForClient (a
			// CertReloader's config): QUIC cannot do without it.
			tc = ServerConfigWithALPN(tc, mqttquic.ALPNMulti, mqttquic.ALPNSingle)
		}
		return mqttquic.Listen(ctx, u.Host, tc, cfg.QUIC)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownScheme, u.Scheme)
}

// listenPorts are the default ports of listen URLs.
var listenPorts = map[string]string{
	"mqtt": "1883", "tcp": "1883",
	"mqtts": "8883", "ssl": "8883", "tls": "8883",
	"ws": "8080", "wss": "8443",
	"quic": "14567",
}

// dialPorts are the default ports of server URLs.
var dialPorts = map[string]string{
	"mqtt": "1883", "tcp": "1883",
	"mqtts": "8883", "ssl": "8883", "tls": "8883",
	"ws": "80", "wss": "443",
	"quic": "14567",
}

// ParseListenURL parses a listen URL; a bare host:port means mqtt://. The
// result has an explicit port, and a path for WebSocket schemes.
func ParseListenURL(s string) (*url.URL, error) {
	return parseURL(s, listenPorts, true)
}

// ParseServerURL parses a server URL; a bare host:port means mqtt://. The
// result has an explicit port, and a path for WebSocket schemes.
func ParseServerURL(s string) (*url.URL, error) {
	return parseURL(s, dialPorts, false)
}

func parseURL(s string, ports map[string]string, listen bool) (*url.URL, error) {
	raw := s
	if !strings.Contains(s, "://") {
		s = "mqtt://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("transport: address %q: %w", raw, err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	port, ok := ports[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("%w: %q in %q", ErrUnknownScheme, u.Scheme, raw)
	}
	if !listen && u.Hostname() == "" {
		return nil, fmt.Errorf("transport: address %q: no host", raw)
	}
	if u.Port() == "" {
		if strings.HasSuffix(u.Host, ":") {
			return nil, fmt.Errorf("transport: address %q: empty port", raw)
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	switch u.Scheme {
	case "ws", "wss":
		if u.Path == "" {
			u.Path = DefaultWebSocketPath
		}
	default:
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("transport: address %q: a %s URL has no path", raw, u.Scheme)
		}
		u.Path = ""
	}
	return u, nil
}

// Dial connects to the server u names (see ParseServerURL).
func Dial(ctx context.Context, u *url.URL, cfg DialConfig) (net.Conn, error) {
	switch u.Scheme {
	case "mqtt", "tcp":
		var d net.Dialer
		return d.DialContext(ctx, "tcp", u.Host)
	case "mqtts", "ssl", "tls":
		d := tls.Dialer{Config: clientTLS(cfg.TLS, u, nil)}
		return d.DialContext(ctx, "tcp", u.Host)
	case "ws", "wss":
		return dialWebSocket(ctx, u, cfg)
	case "quic":
		return mqttquic.Dial(ctx, u.Host, clientTLS(cfg.TLS, u, nil), cfg.QUIC)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownScheme, u.Scheme)
}

// clientTLS returns a copy of cfg (or a new config) with ServerName set to
// u's host when empty, and NextProtos set to alpn when empty.
func clientTLS(cfg *tls.Config, u *url.URL, alpn []string) *tls.Config {
	c := cfg.Clone()
	if c == nil {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = u.Hostname()
	}
	if len(c.NextProtos) == 0 && len(alpn) > 0 {
		c.NextProtos = alpn
	}
	return c
}
