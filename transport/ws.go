package transport

// MQTT over WebSocket (ws:// and wss://), chapter 6 of MQTT 5.0.
//
// A listener runs an HTTP/1.1 server on the URL's host that upgrades
// requests for the URL's path and hands every WebSocket connection to
// Accept as a net.Conn. The connection is a byte stream: each Write sends
// one binary frame and Read returns the payload of the binary frames as
// they arrive, so MQTT packets may be split over several frames or share
// one frame [MQTT-6.0.0-2]. A text frame (or any frame other than binary
// data and control frames) closes the connection [MQTT-6.0.0-1].
//
// Frames are read as a stream, never buffered whole, so the WebSocket
// layer sets no message size limit of its own: the size of MQTT packets is
// bounded by the broker's (or client's) Maximum Packet Size.

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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// WebSocketSubprotocol is the WebSocket subprotocol of MQTT: clients offer
// it [MQTT-6.0.0-3] and servers select it [MQTT-6.0.0-4].
const WebSocketSubprotocol = "mqtt"

// wsServerSubprotocols are the subprotocols a listener accepts, in order
// of preference: "mqtt", then "mqttv3.1" for MQTT 3.1 era clients that
// offer only that name.
var wsServerSubprotocols = []string{WebSocketSubprotocol, "mqttv3.1"}

// WebSocketBacklog bounds the WebSocket connections a listener has
// upgraded but Accept has not yet returned. While the backlog is full,
// further upgrade requests are refused with 503 Service Unavailable (and a
// Retry-After header) before the handshake, so a server that stops
// accepting holds a bounded number of connections.
const WebSocketBacklog = 128

// wsReadHeaderTimeout bounds the reading of an upgrade request's headers.
const wsReadHeaderTimeout = 10 * time.Second

// wsListener is the net.Listener of a ws or wss URL.
type wsListener struct {
	path    string
	addr    net.Addr
	log     *slog.Logger
	srv     *http.Server
	accept  websocket.AcceptOptions
	proxies []netip.Prefix

	slots chan struct{}  // one per upgrade in progress or connection waiting
	conns chan wsPending // upgraded connections waiting for Accept

	mu     sync.Mutex
	closed bool
	done   chan struct{} // closed by Close
	err    error         // why the listener stopped, when not Close

	served chan struct{} // closed when http.Server.Serve returns
}

func listenWebSocket(ctx context.Context, u *url.URL, cfg ListenConfig) (net.Listener, error) {
	var lc net.ListenConfig
	tcp, err := lc.Listen(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	l := &wsListener{
		path:    u.Path,
		addr:    tcp.Addr(),
		log:     cfg.Logger.With("listener", u.Scheme+"://"+tcp.Addr().String()+u.Path),
		proxies: slices.Clone(cfg.WebSocket.TrustedProxies),
		slots:   make(chan struct{}, WebSocketBacklog),
		conns:   make(chan wsPending, WebSocketBacklog),
		done:    make(chan struct{}),
		served:  make(chan struct{}),
		accept: websocket.AcceptOptions{
			Subprotocols: wsServerSubprotocols,
		},
	}
	if len(cfg.WebSocket.AllowedOrigins) == 0 {
		// Any origin may connect: only the origin check is skipped.
		l.accept.InsecureSkipVerify = true
	} else {
		l.accept.OriginPatterns = slices.Clone(cfg.WebSocket.AllowedOrigins)
	}
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: wsReadHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		// WebSocket upgrades need HTTP/1.1: never negotiate HTTP/2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	var inner net.Listener = tcp
	if u.Scheme == "wss" {
		inner = tls.NewListener(tcp, http11Only(cfg.TLS))
	}
	go func() {
		defer close(l.served)
		err := l.srv.Serve(inner)
		if !errors.Is(err, http.ErrServerClosed) {
			l.log.Error("websocket listener stopped", "err", err)
			l.stop(err)
		}
	}()
	l.log.Debug("websocket listener started")
	return l, nil
}

// http11Only returns a copy of c that negotiates HTTP/1.1 through ALPN,
// never h2, including in the configurations GetConfigForClient returns.
func http11Only(c *tls.Config) *tls.Config {
	strip := func(c *tls.Config) *tls.Config {
		c = c.Clone()
		c.NextProtos = slices.DeleteFunc(slices.Clone(c.NextProtos), func(p string) bool { return p == "h2" })
		if len(c.NextProtos) == 0 {
			c.NextProtos = []string{"http/1.1"}
		}
		return c
	}
	out := strip(c)
	if get := c.GetConfigForClient; get != nil {
		out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cc, err := get(hello)
			if cc == nil || err != nil {
				return cc, err
			}
			return strip(cc), nil
		}
	}
	return out
}

// ServeHTTP upgrades requests for the listener's path.
func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != l.path {
		http.NotFound(w, r)
		return
	}
	if !offersSubprotocol(r.Header) {
		// The server must select "mqtt" [MQTT-6.0.0-4]: a client that
		// offers neither it nor "mqttv3.1" cannot speak MQTT here.
		l.log.Debug("websocket upgrade refused: no mqtt subprotocol", "remote", r.RemoteAddr, "offered", r.Header.Values("Sec-WebSocket-Protocol"))
		http.Error(w, `MQTT over WebSocket needs the "mqtt" subprotocol (Sec-WebSocket-Protocol: mqtt)`, http.StatusBadRequest)
		return
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.log.Warn("websocket upgrade refused: accept backlog full", "remote", r.RemoteAddr, "backlog", WebSocketBacklog)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "server busy", http.StatusServiceUnavailable)
		return
	}
	if l.isClosed() {
		<-l.slots
		http.Error(w, "server closing", http.StatusServiceUnavailable)
		return
	}
	c, err := websocket.Accept(w, r, &l.accept)
	if err != nil {
		// Accept has written the HTTP error (403 for a refused origin).
		<-l.slots
		l.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	// The connection outlives the request, whose context ends when this
	// handler returns.
	nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	wc := &wsConn{Conn: nc, remote: l.remoteAddr(nc.RemoteAddr(), r)}
	var conn net.Conn = wc
	if r.TLS != nil {
		conn = &wsTLSConn{wsConn: wc, state: *r.TLS}
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.slots
		c.CloseNow()
		return
	}
	l.conns <- wsPending{conn, c} // never blocks: a slot is held
	l.mu.Unlock()
	l.log.Debug("websocket connection", "remote", wc.remote, "peer", r.RemoteAddr, "subprotocol", c.Subprotocol())
}

// offersSubprotocol reports whether the request's comma-separated
// Sec-WebSocket-Protocol list names one the listener accepts.
func offersSubprotocol(h http.Header) bool {
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			for _, s := range wsServerSubprotocols {
				if strings.EqualFold(p, s) {
					return true
				}
			}
		}
	}
	return false
}

// remoteAddr is the address a connection is reported with: the TCP peer
// or, when the peer is a trusted proxy, the client its X-Forwarded-For
// header names. The header is walked from its right end (the hop nearest
// to us) to the left, skipping trusted proxies; the first untrusted
// address is the client. A list of trusted hops only yields its left-most
// address; an unparsable entry stops the walk at the last address
// already trusted. A forwarded address has port 0 (the header carries
// none).
func (l *wsListener) remoteAddr(peer net.Addr, r *http.Request) net.Addr {
	if len(l.proxies) == 0 {
		return peer
	}
	ap, err := netip.ParseAddrPort(peer.String())
	if err != nil || !l.trusted(ap.Addr()) {
		return peer
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for h := range strings.SplitSeq(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	var client netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseForwarded(hops[i])
		if !ok {
			l.log.Debug("unparsable X-Forwarded-For entry", "entry", hops[i], "peer", peer)
			break
		}
		client = a
		if !l.trusted(a) {
			break
		}
	}
	if !client.IsValid() {
		return peer
	}
	return &net.TCPAddr{IP: client.AsSlice(), Zone: client.Zone()}
}

func (l *wsListener) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseForwarded parses one X-Forwarded-For entry: an IP address,
// possibly with a port ("192.0.2.1:1234", "[2001:db8::1]:1234").
func parseForwarded(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// Accept returns the next WebSocket connection.
func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case p := <-l.conns:
		<-l.slots
		return p.conn, nil
	case <-l.done:
		l.mu.Lock()
		err := l.err
		l.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: err}
	}
}

// Close stops the HTTP server and closes the connections Accept has not
// returned, at once and without a WebSocket closing handshake (their
// peers see an abnormal closure). Connections already returned stay open.
//
// The Close method of a returned connection performs the closing
// handshake: it sends a Close frame and waits (at most 5 seconds) for the
// peer's.
func (l *wsListener) Close() error {
	l.stop(nil)
	err := l.srv.Close()
	<-l.served
	return err
}

// stop marks the listener closed (err is why, nil for Close) and closes
// the connections waiting for Accept.
func (l *wsListener) stop(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	l.err = err
	close(l.done)
	for {
		select {
		case p := <-l.conns:
			<-l.slots
			p.ws.CloseNow()
		default:
			return
		}
	}
}

func (l *wsListener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// wsPending is an upgraded connection waiting for Accept.
type wsPending struct {
	conn net.Conn
	ws   *websocket.Conn
}

// Addr returns the bound address (port 0 resolved).
func (l *wsListener) Addr() net.Addr { return l.addr }

// wsConn is a WebSocket connection as a net.Conn whose RemoteAddr may be
// the forwarded client address.
type wsConn struct {
	net.Conn
	remote net.Addr
}

func (c *wsConn) RemoteAddr() net.Addr { return c.remote }

// wsTLSConn is a wsConn that came over TLS (wss); it implements TLSConn.
type wsTLSConn struct {
	*wsConn
	state tls.ConnectionState
}

// ConnectionState returns the TLS state of the HTTPS connection that was
// upgraded.
func (c *wsTLSConn) ConnectionState() tls.ConnectionState { return c.state }

// dialWebSocket connects to a ws or wss URL, offering the "mqtt"
// subprotocol [MQTT-6.0.0-3] and requiring the server to select it
// [MQTT-6.0.0-4]. Environment proxy settings (HTTP_PROXY, HTTPS_PROXY,
// NO_PROXY) apply as for any HTTP request.
func dialWebSocket(ctx context.Context, u *url.URL, cfg DialConfig) (net.Conn, error) {
	var (
		mu  sync.Mutex
		raw net.Conn // the last TCP connection the transport opened
	)
	var d net.Dialer
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				mu.Lock()
				raw = c
				mu.Unlock()
			}
			return c, err
		},
		DisableKeepAlives: true,
	}
	var tlsState *tls.ConnectionState
	if u.Scheme == "wss" {
		tc := clientTLS(cfg.TLS, u, nil)
		tc.NextProtos = []string{"http/1.1"}
		tr.TLSClientConfig = tc
	}
	defer tr.CloseIdleConnections()
	c, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		HTTPHeader:   cfg.Header,
		Subprotocols: []string{WebSocketSubprotocol},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("transport: websocket %s: server answered %s: %w", u.Redacted(), resp.Status, err)
		}
		return nil, fmt.Errorf("transport: websocket %s: %w", u.Redacted(), err)
	}
	if c.Subprotocol() != WebSocketSubprotocol {
		c.Close(websocket.StatusProtocolError, `the server must select the "mqtt" subprotocol`)
		return nil, fmt.Errorf(`transport: websocket %s: the server selected subprotocol %q, not "mqtt" [MQTT-6.0.0-4]`, u.Redacted(), c.Subprotocol())
	}
	if resp.TLS != nil {
		st := *resp.TLS
		tlsState = &st
	}
	nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	dc := &wsDialConn{Conn: nc}
	mu.Lock()
	if raw != nil {
		dc.local, dc.remote = raw.LocalAddr(), raw.RemoteAddr()
	}
	mu.Unlock()
	if tlsState != nil {
		return &wsDialTLSConn{wsDialConn: dc, state: *tlsState}, nil
	}
	return dc, nil
}

// wsDialConn is a dialed WebSocket connection with the addresses of its
// TCP connection (of the proxy's, through a proxy).
type wsDialConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *wsDialConn) LocalAddr() net.Addr {
	if c.local != nil {
		return c.local
	}
	return c.Conn.LocalAddr()
}

func (c *wsDialConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// wsDialTLSConn is a dialed wss connection; it implements TLSConn.
type wsDialTLSConn struct {
	*wsDialConn
	state tls.ConnectionState
}

// ConnectionState returns the TLS state of the HTTPS connection that was
// upgraded.
func (c *wsDialTLSConn) ConnectionState() tls.ConnectionState { return c.state }
