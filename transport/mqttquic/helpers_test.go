package mqttquic_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/internal/testcerts"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

// waitFor is the bound of every wait in these tests: they poll or block
// until something happens, and only fail when it never does.
const waitFor = 15 * time.Second

// tlsPair returns server and client TLS configurations for localhost.
func tlsPair(t testing.TB) (*tls.Config, *tls.Config) {
	t.Helper()
	ca := testcerts.NewCA(t, "mqttquic test CA")
	srv := ca.Issue(t, "localhost", testcerts.Options{})
	return &tls.Config{Certificates: []tls.Certificate{srv.TLSCertificate(t)}},
		&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
}

// env is a broker serving a QUIC listener.
type env struct {
	t         testing.TB
	b         *broker.Broker
	addr      string
	clientTLS *tls.Config

	mu    sync.Mutex
	conns []*mqttquic.Conn // server side of every accepted connection
}

// recordingListener remembers the connections it accepts.
type recordingListener struct {
	net.Listener
	e *env
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.e.mu.Lock()
		l.e.conns = append(l.e.conns, c.(*mqttquic.Conn))
		l.e.mu.Unlock()
	}
	return c, err
}

func newEnv(t testing.TB, scfg mqttquic.ServerConfig, bcfg broker.Config) *env {
	t.Helper()
	serverTLS, clientTLS := tlsPair(t)
	if bcfg.SysInterval == 0 {
		bcfg.SysInterval = -1
	}
	b := broker.New(bcfg)
	l, err := mqttquic.Listen(context.Background(), "127.0.0.1:0", serverTLS, scfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, b: b, addr: l.Addr().String(), clientTLS: clientTLS}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Serve(recordingListener{Listener: l, e: e})
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
	})
	return e
}

// serverConn returns the broker's side of the client connection c.
func (e *env) serverConn(c *mqttquic.Conn) *mqttquic.Conn {
	e.t.Helper()
	return e.serverConnAt(c.LocalAddr().(*net.UDPAddr).Port)
}

// serverConnAt returns the broker's side of the connection from port.
func (e *env) serverConnAt(want int) *mqttquic.Conn {
	e.t.Helper()
	var found *mqttquic.Conn
	poll(e.t, fmt.Sprintf("server side of port %d", want), func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, s := range e.conns {
			if s.RemoteAddr().(*net.UDPAddr).Port == want {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// poll waits until cond holds, failing the test after waitFor.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// mclient is a raw MQTT client over a Dial'ed connection.
type mclient struct {
	t  testing.TB
	c  *mqttquic.Conn
	r  *packet.Reader
	v  packet.Version
	id uint16
}

func (e *env) dial(dcfg mqttquic.DialConfig) *mqttquic.Conn {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	nc, err := mqttquic.Dial(ctx, e.addr, e.clientTLS, dcfg)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	c := nc.(*mqttquic.Conn)
	e.t.Cleanup(func() { c.Close() })
	return c
}

// connect dials and completes CONNECT/CONNACK.
func (e *env) connect(id string, dcfg mqttquic.DialConfig, cp *packet.Connect) *mclient {
	e.t.Helper()
	c := e.dial(dcfg)
	m := &mclient{t: e.t, c: c, r: packet.NewReader(c, 0), v: packet.V5}
	if cp == nil {
		cp = &packet.Connect{}
	}
	cp.ClientID = id
	cp.CleanStart = true
	if cp.Version != 0 {
		m.v = cp.Version
	}
	m.send(cp)
	ack, ok := m.recv().(*packet.Connack)
	if !ok || ack.ReasonCode != packet.Success {
		e.t.Fatalf("connect %s: %+v", id, ack)
	}
	return m
}

func (m *mclient) send(p packet.Packet) {
	m.t.Helper()
	b, err := p.AppendTo(nil, m.v)
	if err != nil {
		m.t.Fatalf("encode %s: %v", p.Type(), err)
	}
	m.c.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := m.c.Write(b); err != nil {
		m.t.Fatalf("write %s: %v", p.Type(), err)
	}
}

func (m *mclient) recv() packet.Packet {
	m.t.Helper()
	m.c.SetReadDeadline(time.Now().Add(waitFor))
	p, err := m.r.ReadPacket(m.v)
	if err != nil {
		m.t.Fatalf("read: %v", err)
	}
	return p
}

func (m *mclient) nextID() uint16 {
	m.id++
	if m.id == 0 {
		m.id = 1
	}
	return m.id
}

// subscribe subscribes to filter at qos and waits for the SUBACK.
func (m *mclient) subscribe(filter string, qos byte) {
	m.t.Helper()
	id := m.nextID()
	m.send(&packet.Subscribe{PacketID: id, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}})
	ack, ok := m.recv().(*packet.Suback)
	if !ok || ack.PacketID != id || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] >= 0x80 {
		m.t.Fatalf("subscribe %s: %+v", filter, ack)
	}
}

// publish publishes and completes the QoS exchange.
func (m *mclient) publish(topic string, qos byte, payload []byte) {
	m.t.Helper()
	p := &packet.Publish{Topic: topic, QoS: qos, Payload: payload}
	if qos > 0 {
		p.PacketID = m.nextID()
	}
	m.send(p)
	switch qos {
	case 1:
		if a, ok := m.recv().(*packet.Puback); !ok || a.PacketID != p.PacketID {
			m.t.Fatalf("expected PUBACK %d, got %+v", p.PacketID, a)
		}
	case 2:
		if a, ok := m.recv().(*packet.Pubrec); !ok || a.PacketID != p.PacketID {
			m.t.Fatalf("expected PUBREC %d, got %+v", p.PacketID, a)
		}
		m.send(&packet.Pubrel{PacketID: p.PacketID})
		if a, ok := m.recv().(*packet.Pubcomp); !ok || a.PacketID != p.PacketID {
			m.t.Fatalf("expected PUBCOMP %d, got %+v", p.PacketID, a)
		}
	}
}

// receive reads one delivery and completes its QoS exchange.
func (m *mclient) receive() *packet.Publish {
	m.t.Helper()
	p, ok := m.recv().(*packet.Publish)
	if !ok {
		m.t.Fatalf("expected PUBLISH, got %T", p)
	}
	switch p.QoS {
	case 1:
		m.send(&packet.Puback{PacketID: p.PacketID})
	case 2:
		m.send(&packet.Pubrec{PacketID: p.PacketID})
		if r, ok := m.recv().(*packet.Pubrel); !ok || r.PacketID != p.PacketID {
			m.t.Fatalf("expected PUBREL %d, got %+v", p.PacketID, r)
		}
		m.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
	return p
}

// ping sends PINGREQ and waits for PINGRESP: the control flow works.
func (m *mclient) ping() {
	m.t.Helper()
	m.send(&packet.Pingreq{})
	if _, ok := m.recv().(*packet.Pingresp); !ok {
		m.t.Fatal("expected PINGRESP")
	}
}

// disconnect sends DISCONNECT and closes.
func (m *mclient) disconnect() {
	m.t.Helper()
	m.send(&packet.Disconnect{})
	m.c.Close()
}

// rawClient speaks multistream MQTT directly with quic-go, to see which
// stream each packet travels on.
type rawClient struct {
	t    testing.TB
	e    *env
	qc   *quic.Conn
	ctrl *quic.Stream
	r    *packet.Reader
	tr   *quic.Transport
}

func (e *env) rawDial(controlHeader []byte) *rawClient {
	e.t.Helper()
	tc := e.clientTLS.Clone()
	tc.NextProtos = []string{mqttquic.ALPNMulti}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		e.t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	raddr, _ := net.ResolveUDPAddr("udp", e.addr)
	qc, err := tr.Dial(ctx, raddr, tc, &quic.Config{MaxIncomingStreams: 1000, EnableDatagrams: true})
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	rc := &rawClient{t: e.t, e: e, qc: qc, ctrl: st, r: packet.NewReader(st, 0), tr: tr}
	e.t.Cleanup(func() {
		qc.CloseWithError(0, "")
		tr.Close()
		udp.Close()
	})
	if controlHeader != nil {
		writeStream(e.t, st, controlHeader)
	}
	return rc
}

// connect sends CONNECT on the control stream and reads CONNACK.
func (rc *rawClient) connect(id string) {
	rc.t.Helper()
	writePacket(rc.t, rc.ctrl, &packet.Connect{ClientID: id, CleanStart: true})
	if ack, ok := readPacket(rc.t, rc.ctrl, rc.r).(*packet.Connack); !ok || ack.ReasonCode != packet.Success {
		rc.t.Fatalf("connack: %+v", ack)
	}
}

// openFlow opens a bidirectional stream and writes header on it.
func (rc *rawClient) openFlow(header []byte) *quic.Stream {
	rc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	st, err := rc.qc.OpenStreamSync(ctx)
	if err != nil {
		rc.t.Fatal(err)
	}
	writeStream(rc.t, st, header)
	return st
}

// server returns the broker's side of the connection.
func (rc *rawClient) server() *mqttquic.Conn {
	rc.t.Helper()
	return rc.e.serverConnAt(rc.qc.LocalAddr().(*net.UDPAddr).Port)
}

func (rc *rawClient) ping() {
	rc.t.Helper()
	writePacket(rc.t, rc.ctrl, &packet.Pingreq{})
	if _, ok := readPacket(rc.t, rc.ctrl, rc.r).(*packet.Pingresp); !ok {
		rc.t.Fatal("expected PINGRESP")
	}
}

func writeStream(t testing.TB, st *quic.Stream, b []byte) {
	t.Helper()
	st.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := st.Write(b); err != nil {
		t.Fatalf("stream write: %v", err)
	}
}

func writePacket(t testing.TB, st *quic.Stream, p packet.Packet) {
	t.Helper()
	b, err := p.AppendTo(nil, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	writeStream(t, st, b)
}

func readPacket(t testing.TB, st *quic.Stream, r *packet.Reader) packet.Packet {
	t.Helper()
	st.SetReadDeadline(time.Now().Add(waitFor))
	p, err := r.ReadPacket(packet.V5)
	if err != nil {
		t.Fatalf("stream read: %v", err)
	}
	return p
}

// resetCode waits for the peer to reset st and returns the code.
func resetCode(t testing.TB, st *quic.Stream) mqttquic.StreamErrorCode {
	t.Helper()
	st.SetReadDeadline(time.Now().Add(waitFor))
	var buf [64]byte
	for {
		_, err := st.Read(buf[:])
		if err == nil {
			continue
		}
		code, ok := mqttquic.StreamErrorCodeOf(err)
		if !ok {
			t.Fatalf("stream ended with %v, not a reset", err)
		}
		return code
	}
}

// closedWith waits for the connection to close and returns its code.
func (rc *rawClient) closedWith() mqttquic.ConnErrorCode {
	rc.t.Helper()
	select {
	case <-rc.qc.Context().Done():
	case <-time.After(waitFor):
		rc.t.Fatal("connection not closed")
	}
	code, ok := mqttquic.ConnErrorCodeOf(context.Cause(rc.qc.Context()))
	if !ok {
		rc.t.Fatalf("connection closed with %v", context.Cause(rc.qc.Context()))
	}
	return code
}

func hdr(t testing.TB, h mqttquic.FlowHeader) []byte {
	t.Helper()
	b, err := h.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func payload(i int) []byte { return []byte(fmt.Sprintf("m%05d", i)) }
