package transport_test

// Tests of the WebSocket transport (ws:// and wss://): the broker serving
// transport.Listen listeners, the client dialing through transport.Dial,
// and raw WebSocket peers (github.com/coder/websocket) that send
// hand-encoded MQTT packets in frames of their choosing.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/internal/testcerts"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

// wsTimeout bounds every wait. It is a deadline for conditions that
// normally hold within milliseconds, not a timing assertion.
const wsTimeout = 20 * time.Second

func wsCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	t.Cleanup(cancel)
	return ctx
}

// wsWaitFor polls cond until it holds or wsTimeout passes.
func wsWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wsTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wsTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wsQuietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// wsPKI is a test CA with a server certificate for 127.0.0.1/localhost
// and a client certificate.
type wsPKI struct {
	ca     *testcerts.CA
	server tls.Certificate
	client tls.Certificate
}

func newWSPKI(t testing.TB) *wsPKI {
	ca := testcerts.NewCA(t, "ws test CA")
	return &wsPKI{
		ca:     ca,
		server: ca.Issue(t, "ws-server", testcerts.Options{}).TLSCertificate(t),
		client: ca.Issue(t, "ws-client", testcerts.Options{Client: true}).TLSCertificate(t),
	}
}

// serverTLS is a server config; verifyClients asks for and verifies a
// client certificate when one is sent.
func (p *wsPKI) serverTLS(verifyClients bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if verifyClients {
		c.ClientAuth = tls.VerifyClientCertIfGiven
		c.ClientCAs = p.ca.Pool()
	}
	return c
}

func (p *wsPKI) clientTLS(withCert bool) *tls.Config {
	c := &tls.Config{RootCAs: p.ca.Pool()}
	if withCert {
		c.Certificates = []tls.Certificate{p.client}
	}
	return c
}

// wsListen opens the listener lc describes and closes it at cleanup.
func wsListen(t testing.TB, lc transport.ListenConfig) net.Listener {
	t.Helper()
	if lc.Logger == nil {
		lc.Logger = wsQuietLogger()
	}
	l, err := transport.Listen(wsCtx(t), lc)
	if err != nil {
		t.Fatalf("Listen %s: %v", lc.URL, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// wsServerURL is the URL a client dials to reach l.
func wsServerURL(l net.Listener, scheme, path string) string {
	return scheme + "://" + l.Addr().String() + path
}

// wsAuthLog records the ClientInfo of every CONNECT the broker sees.
type wsAuthLog struct {
	mu    sync.Mutex
	infos []broker.ClientInfo
}

func (a *wsAuthLog) authenticator() broker.Authenticator {
	return broker.AuthenticatorFunc(func(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
		a.mu.Lock()
		a.infos = append(a.infos, *req.Client)
		a.mu.Unlock()
		return broker.AuthResult{Code: packet.Success}
	})
}

// byID returns the recorded ClientInfo of client id.
func (a *wsAuthLog) byID(t testing.TB, id string) broker.ClientInfo {
	t.Helper()
	var info broker.ClientInfo
	wsWaitFor(t, "CONNECT of "+id, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, i := range a.infos {
			if i.ClientID == id {
				info = i
				return true
			}
		}
		return false
	})
	return info
}

// wsServe runs a broker on l until the test ends.
func wsServe(t testing.TB, l net.Listener, cfg broker.Config) *broker.Broker {
	t.Helper()
	cfg.Logger = wsQuietLogger()
	if cfg.SysInterval == 0 {
		cfg.SysInterval = -1
	}
	b := broker.New(cfg)
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	select {
	case <-b.Ready():
	case err := <-errc:
		t.Fatalf("Serve: %v", err)
	}
	return b
}

// wsClient connects our client to server.
func wsClient(t testing.TB, server, id string, o client.Options) *client.Client {
	t.Helper()
	o.Server = server
	o.ClientID = id
	o.DisableReconnect = true
	o.Logger = wsQuietLogger()
	c, err := client.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(wsCtx(t)); err != nil {
		t.Fatalf("connect %s to %s: %v", id, server, err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background(), packet.NormalDisconnection, client.KeepSessionExpiry) })
	return c
}

// TestWebSocketRoundTrip runs our client against our broker over ws:// and
// wss:// in MQTT 5 and 3.1.1: QoS 0, 1 and 2 publish → subscribe, and a
// packet larger than any single read (the WebSocket layer must not limit
// message sizes below the broker's Maximum Packet Size). The broker sees
// the TCP peer as RemoteAddr, and TLS state only for wss.
// [MQTT-6.0.0-1] [MQTT-6.0.0-3] [MQTT-6.0.0-4]
func TestWebSocketRoundTrip(t *testing.T) {
	pki := newWSPKI(t)
	for _, scheme := range []string{"ws", "wss"} {
		for _, v := range []packet.Version{packet.V5, packet.V311} {
			t.Run(fmt.Sprintf("%s/v%d", scheme, v), func(t *testing.T) {
				t.Parallel()
				lc := transport.ListenConfig{URL: scheme + "://127.0.0.1:0"}
				var co client.Options
				co.Version = v
				if scheme == "wss" {
					lc.TLS = pki.serverTLS(false)
					co.TLSConfig = pki.clientTLS(false)
				}
				l := wsListen(t, lc)
				auth := &wsAuthLog{}
				wsServe(t, l, broker.Config{Authenticator: auth.authenticator()})
				server := wsServerURL(l, scheme, "") // default path /mqtt

				got := make(chan *client.Message, 16)
				sub := wsClient(t, server, "sub", co)
				if _, err := sub.Subscribe(wsCtx(t), []client.Subscription{{Filter: "ws/#", QoS: 2}}, func(m *client.Message) { got <- m }); err != nil {
					t.Fatalf("subscribe: %v", err)
				}
				pub := wsClient(t, server, "pub", co)
				large := bytes.Repeat([]byte("0123456789abcdef"), 512<<10/16)
				for qos := byte(0); qos <= 2; qos++ {
					payload := []byte(fmt.Sprintf("qos%d", qos))
					if qos == 1 {
						payload = large
					}
					if err := pub.Publish(wsCtx(t), &client.Message{Topic: fmt.Sprintf("ws/q%d", qos), QoS: qos, Payload: payload}); err != nil {
						t.Fatalf("publish QoS %d: %v", qos, err)
					}
					select {
					case m := <-got:
						if m.Topic != fmt.Sprintf("ws/q%d", qos) || m.QoS != qos || !bytes.Equal(m.Payload, payload) {
							t.Fatalf("received %s QoS %d (%d bytes), want ws/q%d QoS %d (%d bytes)", m.Topic, m.QoS, len(m.Payload), qos, qos, len(payload))
						}
					case <-time.After(wsTimeout):
						t.Fatalf("QoS %d message not received", qos)
					}
				}

				info := auth.byID(t, "pub")
				ra, ok := info.RemoteAddr.(*net.TCPAddr)
				if !ok || !ra.IP.IsLoopback() || ra.Port == 0 {
					t.Errorf("RemoteAddr %v (%T), want the loopback TCP peer", info.RemoteAddr, info.RemoteAddr)
				}
				if (info.TLS != nil) != (scheme == "wss") {
					t.Errorf("TLS state present = %v for %s", info.TLS != nil, scheme)
				}
				if info.TLS != nil && len(info.TLS.PeerCertificates) != 0 {
					t.Errorf("peer certificates without a client certificate: %d", len(info.TLS.PeerCertificates))
				}
			})
		}
	}
}

// TestWebSocketDialerOption routes ws:// through a client.Dialer that
// wraps transport.Dial (the way a program plugs in its own dialer).
func TestWebSocketDialerOption(t *testing.T) {
	t.Parallel()
	l := wsListen(t, transport.ListenConfig{URL: "ws://127.0.0.1:0/custom"})
	wsServe(t, l, broker.Config{})
	var dials int
	var mu sync.Mutex
	d := client.DialerFunc(func(ctx context.Context, u *url.URL, tc *tls.Config) (io.ReadWriteCloser, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		return transport.Dial(ctx, u, transport.DialConfig{TLS: tc})
	})
	c := wsClient(t, wsServerURL(l, "ws", "/custom"), "dialer", client.Options{Dialers: map[string]client.Dialer{"ws": d}})
	got := make(chan *client.Message, 1)
	if _, err := c.Subscribe(wsCtx(t), []client.Subscription{{Filter: "d", QoS: 1}}, func(m *client.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(wsCtx(t), &client.Message{Topic: "d", QoS: 1, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(wsTimeout):
		t.Fatal("message not received")
	}
	mu.Lock()
	defer mu.Unlock()
	if dials != 1 {
		t.Errorf("custom dialer used %d times, want 1", dials)
	}
}

// wsUpgrade sends a WebSocket upgrade request to rawURL with the given
// headers and returns the response (the connection is closed).
func wsUpgrade(t testing.TB, rawURL string, h http.Header) *http.Response {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Scheme = "http"
	req, err := http.NewRequestWithContext(wsCtx(t), http.MethodGet, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatalf("upgrade request: %v", err)
	}
	resp.Body.Close()
	return resp
}

// TestWebSocketPath: only the listener's path upgrades; any other path is
// 404 Not Found.
func TestWebSocketPath(t *testing.T) {
	t.Parallel()
	l := wsListen(t, transport.ListenConfig{URL: "ws://127.0.0.1:0/mqtt"})
	h := http.Header{"Sec-Websocket-Protocol": {"mqtt"}}
	for _, path := range []string{"/", "/other", "/mqtt/", "/MQTT"} {
		if resp := wsUpgrade(t, wsServerURL(l, "ws", path), h); resp.StatusCode != http.StatusNotFound {
			t.Errorf("path %s: status %s, want 404", path, resp.Status)
		}
	}
	_, err := transport.Dial(wsCtx(t), mustParseServer(t, wsServerURL(l, "ws", "/elsewhere")), transport.DialConfig{})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("dial to a wrong path: %v, want an error naming 404", err)
	}
	if resp := wsUpgrade(t, wsServerURL(l, "ws", "/mqtt"), h); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("path /mqtt: status %s, want 101", resp.Status)
	}
}

func mustParseServer(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := transport.ParseServerURL(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestWebSocketOrigin: an AllowedOrigins list admits the listed origins
// (and the listener's own host) and refuses others with 403; an empty list
// admits any origin.
func TestWebSocketOrigin(t *testing.T) {
	t.Parallel()
	restricted := wsListen(t, transport.ListenConfig{
		URL:       "ws://127.0.0.1:0",
		WebSocket: transport.WebSocketConfig{AllowedOrigins: []string{"app.example.com", "*.trusted.example"}},
	})
	open := wsListen(t, transport.ListenConfig{URL: "ws://127.0.0.1:0"})
	for _, tc := range []struct {
		l      net.Listener
		origin string
		want   int
	}{
		{restricted, "https://app.example.com", http.StatusSwitchingProtocols},
		{restricted, "http://a.trusted.example", http.StatusSwitchingProtocols},
		{restricted, "http://" + restricted.Addr().String(), http.StatusSwitchingProtocols},
		{restricted, "https://evil.example", http.StatusForbidden},
		{restricted, "https://app.example.com.evil.example", http.StatusForbidden},
		{open, "https://anything.example", http.StatusSwitchingProtocols},
	} {
		h := http.Header{"Sec-Websocket-Protocol": {"mqtt"}, "Origin": {tc.origin}}
		if resp := wsUpgrade(t, wsServerURL(tc.l, "ws", "/mqtt"), h); resp.StatusCode != tc.want {
			t.Errorf("origin %s: status %s, want %d", tc.origin, resp.Status, tc.want)
		}
	}
}

// TestWebSocketSubprotocol: the listener selects "mqtt" from the client's
// list (one comma-separated header or several headers), falls back to
// "mqttv3.1" only when "mqtt" is not offered, and refuses a client that
// offers neither with 400 Bad Request. [MQTT-6.0.0-4]
func TestWebSocketSubprotocol(t *testing.T) {
	t.Parallel()
	l := wsListen(t, transport.ListenConfig{URL: "ws://127.0.0.1:0"})
	u := wsServerURL(l, "ws", "/mqtt")
	for _, tc := range []struct {
		offered []string
		status  int
		want    string
	}{
		{[]string{"mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{[]string{"chat, mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{[]string{"mqttv3.1, mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{[]string{"mqttv3.1", "mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{[]string{"mqttv3.1"}, http.StatusSwitchingProtocols, "mqttv3.1"},
		{[]string{"chat"}, http.StatusBadRequest, ""},
		{nil, http.StatusBadRequest, ""},
	} {
		h := http.Header{}
		for _, o := range tc.offered {
			h.Add("Sec-WebSocket-Protocol", o)
		}
		resp := wsUpgrade(t, u, h)
		if resp.StatusCode != tc.status || resp.Header.Get("Sec-WebSocket-Protocol") != tc.want {
			t.Errorf("offered %q: %s, subprotocol %q; want %d, %q", tc.offered, resp.Status, resp.Header.Get("Sec-WebSocket-Protocol"), tc.status, tc.want)
		}
	}
	// A WebSocket library client offering nothing is refused too.
	_, resp, err := websocket.Dial(wsCtx(t), u, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("dial without subprotocol: %v, want 400", err)
	}
}

// TestWebSocketDialSubprotocol: transport.Dial offers "mqtt"
// [MQTT-6.0.0-3] and refuses a server that does not select it
// [MQTT-6.0.0-4].
func TestWebSocketDialSubprotocol(t *testing.T) {
	t.Parallel()
	offered := make(chan []string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offered <- r.Header.Values("Sec-WebSocket-Protocol")
		var protos []string
		if r.URL.Path == "/select" {
			protos = []string{"mqtt"}
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: protos})
		if err != nil {
			return
		}
		c.CloseNow()
	}))
	defer srv.Close()
	base := strings.Replace(srv.URL, "http://", "ws://", 1)

	c, err := transport.Dial(wsCtx(t), mustParseServer(t, base+"/select"), transport.DialConfig{})
	if err != nil {
		t.Fatalf("dial a server that selects mqtt: %v", err)
	}
	c.Close()
	if got := <-offered; len(got) != 1 || got[0] != "mqtt" {
		t.Errorf("offered subprotocols %q, want [mqtt]", got)
	}

	_, err = transport.Dial(wsCtx(t), mustParseServer(t, base+"/none"), transport.DialConfig{})
	if err == nil || !strings.Contains(err.Error(), `"mqtt"`) {
		t.Errorf("dial a server that selects no subprotocol: %v, want an error naming \"mqtt\"", err)
	}
	<-offered
}

// wsRaw is a raw WebSocket client: it writes frames of its choosing and
// reads MQTT packets from the binary frames it receives.
type wsRaw struct {
	c *websocket.Conn
	r *packet.Reader
}

func wsDialRaw(t testing.TB, rawURL string, h http.Header) *wsRaw {
	t.Helper()
	c, _, err := websocket.Dial(wsCtx(t), rawURL, &websocket.DialOptions{Subprotocols: []string{"mqtt"}, HTTPHeader: h})
	if err != nil {
		t.Fatalf("dial %s: %v", rawURL, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if c.Subprotocol() != "mqtt" {
		t.Fatalf("server selected subprotocol %q, want mqtt", c.Subprotocol())
	}
	// NetConn reads the frames as a byte stream; writes go straight to c.
	return &wsRaw{c: c, r: packet.NewReader(websocket.NetConn(context.Background(), c, websocket.MessageBinary), 0)}
}

func (w *wsRaw) frame(t testing.TB, typ websocket.MessageType, b []byte) {
	t.Helper()
	if err := w.c.Write(wsCtx(t), typ, b); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

func (w *wsRaw) read(t testing.TB) packet.Packet {
	t.Helper()
	p, err := w.r.ReadPacket(packet.V5)
	if err != nil {
		t.Fatalf("read packet: %v", err)
	}
	return p
}

func encode(t testing.TB, ps ...packet.Packet) []byte {
	t.Helper()
	var b []byte
	for _, p := range ps {
		var err error
		if b, err = p.AppendTo(b, packet.V5); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestWebSocketFraming sends MQTT packets split over several binary frames
// (inside the fixed header, inside the body) and several packets in one
// frame; the broker must not assume packets and frames align
// [MQTT-6.0.0-2].
func TestWebSocketFraming(t *testing.T) {
	t.Parallel()
	l := wsListen(t, transport.ListenConfig{URL: "ws://127.0.0.1:0"})
	wsServe(t, l, broker.Config{})
	w := wsDialRaw(t, wsServerURL(l, "ws", "/mqtt"), nil)

	connect := encode(t, &packet.Connect{Version: packet.V5, CleanStart: true, ClientID: "raw-frames", KeepAlive: 60})
	// One byte, then the rest of the fixed header and part of the body,
	// then the remainder.
	for _, part := range [][]byte{connect[:1], connect[1:5], connect[5:]} {
		w.frame(t, websocket.MessageBinary, part)
	}
	if ca, ok := w.read(t).(*packet.Connack); !ok || ca.ReasonCode != packet.Success {
		t.Fatalf("want CONNACK Success, got %#v", ca)
	}

	// SUBSCRIBE, PUBLISH QoS 1 and the start of a PUBLISH QoS 0 in one
	// frame; the end of the QoS 0 PUBLISH in a second frame.
	sub := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "f/#", QoS: 1}}}
	pub1 := &packet.Publish{QoS: 1, PacketID: 2, Topic: "f/one", Payload: []byte("first")}
	pub0 := &packet.Publish{Topic: "f/zero", Payload: bytes.Repeat([]byte("z"), 300)}
	all := encode(t, sub, pub1, pub0)
	cut := len(all) - 100
	w.frame(t, websocket.MessageBinary, all[:cut])
	w.frame(t, websocket.MessageBinary, all[cut:])

	var got []string
	for len(got) < 4 {
		switch p := w.read(t).(type) {
		case *packet.Suback:
			got = append(got, fmt.Sprintf("suback %d %d", p.PacketID, p.ReasonCodes))
		case *packet.Puback:
			got = append(got, fmt.Sprintf("puback %d", p.PacketID))
		case *packet.Publish:
			got = append(got, fmt.Sprintf("publish %s %d %d", p.Topic, p.QoS, len(p.Payload)))
			if p.QoS == 1 {
				w.frame(t, websocket.MessageBinary, encode(t, &packet.Puback{PacketID: p.PacketID}))
			}
		default:
			t.Fatalf("unexpected %T", p)
		}
	}
	// The SUBACK comes first; the PUBACK and the two deliveries follow in
	// an order the broker chooses.
	if want := fmt.Sprintf("suback 1 [%d]", packet.GrantedQoS1); got[0] != want {
		t.Errorf("first answer %q, want %q", got[0], want)
	}
	rest := map[string]bool{"puback 2": true, "publish f/one 1 5": true, "publish f/zero 0 300": true}
	for _, g := range got[1:] {
		if !rest[g] {
			t.Errorf("unexpected %q (all: %q)", g, got)
		}
		delete(rest, g)
	}
}

// TestWebSocketDialFraming: the dialed connection reads packets the server
// splits over frames or packs into one frame, and sends each Write as one
// binary frame [MQTT-6.0.0-1] [MQTT-6.0.0-2].
func TestWebSocketDialFraming(t *testing.T) {
	t.Parallel()
	connack := encode(t, &packet.Connack{ReasonCode: packet.Success})
	puback := encode(t, &packet.Puback{PacketID: 7})
	pub := encode(t, &packet.Publish{Topic: "s/t", Payload: []byte("split")})
	type frame struct {
		typ websocket.MessageType
		n   int
	}
	frames := make(chan frame, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mqtt"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		typ, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		frames <- frame{typ, len(b)}
		writes := [][]byte{
			connack[:1], connack[1:], // CONNACK over two frames
			append(append([]byte(nil), puback...), pub...), // PUBACK and PUBLISH in one
		}
		for _, b := range writes {
			if c.Write(ctx, websocket.MessageBinary, b) != nil {
				return
			}
		}
		c.Read(ctx) // until the client closes
	}))
	defer srv.Close()

	nc, err := transport.Dial(wsCtx(t), mustParseServer(t, strings.Replace(srv.URL, "http", "ws", 1)), transport.DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	connect := encode(t, &packet.Connect{Version: packet.V5, ClientID: "c"})
	if _, err := nc.Write(connect); err != nil {
		t.Fatal(err)
	}
	if f := <-frames; f.typ != websocket.MessageBinary || f.n != len(connect) {
		t.Errorf("CONNECT sent as %v frame of %d bytes, want one binary frame of %d", f.typ, f.n, len(connect))
	}
	r := packet.NewReader(nc, 0)
	for _, want := range []packet.Type{packet.CONNACK, packet.PUBACK, packet.PUBLISH} {
		p, err := r.ReadPacket(packet.V5)
		if err != nil {
			t.Fatalf("read %v: %v", want, err)
		}
		if p.Type() != want {
			t.Fatalf("read %v, want %v", p.Type(), want)
		}
	}
}

// TestWebSocketTextFrameCloses: a text frame closes the connection
// (status 1003, unsupported data) on the broker side and on the dialing
// side [MQTT-6.0.0-1].
func TestWebSocketTextFrameCloses(t *testing.T) {
	t.Parallel()
	t.Run("broker", func(t *testing.T) {
		t.Parallel()
		l := wsListen(t, transport.ListenConfig{URL: "ws://127.0.0.1:0"})
		b := wsServe(t, l, broker.Config{})
		w := wsDialRaw(t, wsServerURL(l, "ws", "/mqtt"), nil)
		w.frame(t, websocket.MessageBinary, encode(t, &packet.Connect{Version: packet.V5, CleanStart: true, ClientID: "text"}))
		if _, ok := w.read(t).(*packet.Connack); !ok {
			t.Fatal("no CONNACK")
		}
		wsWaitFor(t, "one broker connection", func() bool { return b.Stats().Connections == 1 })
		w.frame(t, websocket.MessageText, encode(t, &packet.Publish{Topic: "t", Payload: []byte("as text")}))
		_, err := w.r.ReadPacket(packet.V5)
		if err == nil {
			t.Fatal("connection still open after a text frame")
		}
		if s := websocket.CloseStatus(err); s != websocket.StatusUnsupportedData {
			t.Errorf("close status %v (err %v), want %v", s, err, websocket.StatusUnsupportedData)
		}
		wsWaitFor(t, "the broker to drop the connection", func() bool { return b.Stats().Connections == 0 })
	})
	t.Run("dialer", func(t *testing.T) {
		t.Parallel()
		status := make(chan websocket.StatusCode, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mqtt"}})
			if err != nil {
				return
			}
			defer c.CloseNow()
			c.Write(r.Context(), websocket.MessageText, encode(t, &packet.Connack{}))
			_, _, err = c.Read(r.Context())
			status <- websocket.CloseStatus(err)
		}))
		defer srv.Close()
		nc, err := transport.Dial(wsCtx(t), mustParseServer(t, strings.Replace(srv.URL, "http", "ws", 1)), transport.DialConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Read(make([]byte, 16)); err == nil {
			t.Fatal("read a text frame without error")
		}
		if s := <-status; s != websocket.StatusUnsupportedData {
			t.Errorf("server saw close status %v, want %v", s, websocket.StatusUnsupportedData)
		}
	})
}

// TestWebSocketForwardedFor: behind a trusted proxy the broker sees the
// client the X-Forwarded-For header names (the right-most untrusted
// entry); from an untrusted peer, or without trusted proxies, the header
// is ignored.
func TestWebSocketForwardedFor(t *testing.T) {
	t.Parallel()
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	internal := netip.MustParsePrefix("10.0.0.0/8")
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		xff     []string
		want    string // IP; "" = the TCP peer
	}{
		{"no trusted proxies", nil, []string{"203.0.113.7"}, ""},
		{"peer not trusted", []netip.Prefix{internal}, []string{"203.0.113.7"}, ""},
		{"one hop", []netip.Prefix{loopback}, []string{"203.0.113.7"}, "203.0.113.7"},
		{"spoofed left entries ignored", []netip.Prefix{loopback}, []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7"},
		{"trusted inner hops skipped", []netip.Prefix{loopback, internal}, []string{"198.51.100.1, 203.0.113.7, 10.1.2.3"}, "203.0.113.7"},
		{"several headers", []netip.Prefix{loopback, internal}, []string{"203.0.113.8", "10.0.0.1"}, "203.0.113.8"},
		{"all trusted", []netip.Prefix{loopback, internal}, []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"IPv6 with port", []netip.Prefix{loopback}, []string{"[2001:db8::5]:4711"}, "2001:db8::5"},
		{"garbage", []netip.Prefix{loopback}, []string{"203.0.113.9, not-an-ip"}, ""},
		{"no header", []netip.Prefix{loopback}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := wsListen(t, transport.ListenConfig{URL: "ws://127.0.0.1:0", WebSocket: transport.WebSocketConfig{TrustedProxies: tc.trusted}})
			auth := &wsAuthLog{}
			wsServe(t, l, broker.Config{Authenticator: auth.authenticator()})
			h := http.Header{}
			for _, v := range tc.xff {
				h.Add("X-Forwarded-For", v)
			}
			wsClient(t, wsServerURL(l, "ws", "/mqtt"), "xff", client.Options{WebSocketHeader: h})
			ra := auth.byID(t, "xff").RemoteAddr
			host, _, err := net.SplitHostPort(ra.String())
			if err != nil {
				t.Fatalf("RemoteAddr %v: %v", ra, err)
			}
			want := tc.want
			if want == "" {
				want = "127.0.0.1"
				if ra.(*net.TCPAddr).Port == 0 {
					t.Errorf("RemoteAddr %v: the TCP peer has a port", ra)
				}
			}
			if host != want {
				t.Errorf("RemoteAddr %v, want %s", ra, want)
			}
		})
	}
}

// TestWebSocketClientCertificate: over wss:// the verified client
// certificate reaches the authenticator, as with mqtts://.
func TestWebSocketClientCertificate(t *testing.T) {
	t.Parallel()
	pki := newWSPKI(t)
	l := wsListen(t, transport.ListenConfig{URL: "wss://127.0.0.1:0/mqtt", TLS: pki.serverTLS(true)})
	auth := &wsAuthLog{}
	wsServe(t, l, broker.Config{Authenticator: auth.authenticator()})
	wsClient(t, wsServerURL(l, "wss", "/mqtt"), "with-cert", client.Options{TLSConfig: pki.clientTLS(true)})
	st := auth.byID(t, "with-cert").TLS
	if st == nil {
		t.Fatal("no TLS state")
	}
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "ws-client" {
		t.Fatalf("peer certificates %d, verified chains %d; want the verified ws-client certificate", len(st.PeerCertificates), len(st.VerifiedChains))
	}
	// A client that does not trust the server's CA fails the handshake.
	_, err := transport.Dial(wsCtx(t), mustParseServer(t, wsServerURL(l, "wss", "/mqtt")), transport.DialConfig{TLS: &tls.Config{}})
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Errorf("dial without the CA: %v, want a certificate verification error", err)
	}
}

// TestWebSocketDialConn: a dialed connection reports the TCP addresses
// (the listener sees the dialer's local address as remote), carries TLS
// state over wss, and outlives the context it was dialed with.
func TestWebSocketDialConn(t *testing.T) {
	t.Parallel()
	pki := newWSPKI(t)
	for _, scheme := range []string{"ws", "wss"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			lc := transport.ListenConfig{URL: scheme + "://127.0.0.1:0/x"}
			var dc transport.DialConfig
			if scheme == "wss" {
				lc.TLS = pki.serverTLS(false)
				dc.TLS = pki.clientTLS(false)
			}
			l := wsListen(t, lc)
			if _, port, _ := net.SplitHostPort(l.Addr().String()); port == "0" {
				t.Fatalf("Addr %v: port not resolved", l.Addr())
			}
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := l.Accept()
				if err == nil {
					accepted <- c
				}
			}()
			ctx, cancel := context.WithCancel(context.Background())
			c, err := transport.Dial(ctx, mustParseServer(t, wsServerURL(l, scheme, "/x")), transport.DialConfig{TLS: dc.TLS})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var s net.Conn
			select {
			case s = <-accepted:
			case <-time.After(wsTimeout):
				t.Fatal("Accept returned nothing")
			}
			defer s.Close()
			if c.RemoteAddr().String() != l.Addr().String() {
				t.Errorf("dialed RemoteAddr %v, want %v", c.RemoteAddr(), l.Addr())
			}
			if s.RemoteAddr().String() != c.LocalAddr().String() {
				t.Errorf("accepted RemoteAddr %v, dialed LocalAddr %v", s.RemoteAddr(), c.LocalAddr())
			}
			if s.LocalAddr().String() != l.Addr().String() {
				t.Errorf("accepted LocalAddr %v, want %v", s.LocalAddr(), l.Addr())
			}
			_, cTLS := c.(transport.TLSConn)
			_, sTLS := s.(transport.TLSConn)
			if cTLS != (scheme == "wss") || sTLS != (scheme == "wss") {
				t.Errorf("TLSConn: dialed %v, accepted %v", cTLS, sTLS)
			}
			if cTLS && !c.(transport.TLSConn).ConnectionState().HandshakeComplete {
				t.Error("dialed TLS state: handshake not complete")
			}
			// Bytes flow both ways after the dial context ended.
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("server read %q, %v", buf, err)
			}
			if _, err := s.Write([]byte("pong")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
				t.Fatalf("client read %q, %v", buf, err)
			}
			// Close performs the closing handshake: the reading peer sees
			// EOF.
			drained := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, s)
				drained <- err
			}()
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := <-drained; err != nil {
				t.Errorf("peer read after Close: %v, want EOF", err)
			}
		})
	}
}

// TestWebSocketListenerClose: Close makes Accept return net.ErrClosed,
// closes connections upgraded but not yet accepted, and stops serving.
func TestWebSocketListenerClose(t *testing.T) {
	t.Parallel()
	l, err := transport.Listen(wsCtx(t), transport.ListenConfig{URL: "ws://127.0.0.1:0", Logger: wsQuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	u := wsServerURL(l, "ws", "/mqtt")
	w := wsDialRaw(t, u, nil) // upgraded; nobody calls Accept
	acceptErr := make(chan error, 1)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	go func() {
		_, err := l.Accept()
		acceptErr <- err
	}()
	if err := <-acceptErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := w.r.ReadPacket(packet.V5); err == nil {
		t.Error("pending connection still open after Close")
	}
	if _, _, err := websocket.Dial(wsCtx(t), u, &websocket.DialOptions{Subprotocols: []string{"mqtt"}}); err == nil {
		t.Error("dial succeeded after Close")
	}
}

// TestWebSocketListenerBacklog: with WebSocketBacklog connections upgraded
// and none accepted, the next upgrade is refused with 503; after one
// Accept the next upgrade succeeds.
func TestWebSocketListenerBacklog(t *testing.T) {
	t.Parallel()
	l := wsListen(t, transport.ListenConfig{URL: "ws://127.0.0.1:0"})
	u := wsServerURL(l, "ws", "/mqtt")
	var raws []*wsRaw
	for range transport.WebSocketBacklog {
		raws = append(raws, wsDialRaw(t, u, nil))
	}
	h := http.Header{"Sec-Websocket-Protocol": {"mqtt"}}
	if resp := wsUpgrade(t, u, h); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade with a full backlog: %s, want 503", resp.Status)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	wsDialRaw(t, u, nil)
	// The accepted connection is one of raws: closing them all ends it.
	for _, r := range raws {
		r.c.CloseNow()
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("accepted connection still readable after its peer closed")
	}
	c.Close()
}
