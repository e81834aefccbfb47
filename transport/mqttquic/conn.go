package mqttquic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// maxPaths bounds the UDP sockets one client connection keeps: quic-go
// cannot detach a connection from the socket of an earlier path, so those
// stay open until the connection closes.
const maxPaths = 16

// Conn is one MQTT connection over QUIC, as returned by Dial and by the
// listener of Listen. It is a net.Conn carrying the MQTT byte stream;
// ConnectionState reports the TLS state for client-certificate
// authentication.
type Conn struct {
	qc       *quic.Conn
	server   bool
	alpn     string
	opts     options
	tlsState tls.ConnectionState

	local  atomic.Value // net.Addr: the client's current socket address
	remote net.Addr     // the server's address (client side)

	// single-stream mode
	st  *quic.Stream
	rmu sync.Mutex
	wl  wlock

	// multistream mode
	m *mux

	migMu   sync.Mutex
	trs     []*quic.Transport
	udps    []*net.UDPConn
	release func()

	closeOnce sync.Once
	closed    atomic.Bool
	wg        sync.WaitGroup
	stats     counters
}

type addrBox struct{ net.Addr }

// counters are the live statistics of a Conn.
type counters struct {
	streamsOpened, streamsAccepted, streamsReset atomic.Uint64
	controlIn, dataIn, datagramsIn               atomic.Uint64
	controlOut, dataOut, datagramsOut            atomic.Uint64
	datagramsDropped, migrations                 atomic.Uint64
}

// Stats are counters of one connection.
type Stats struct {
	ALPN             string // negotiated protocol: ALPNSingle or ALPNMulti
	StreamsOpened    uint64 // data flow streams this side opened
	StreamsAccepted  uint64 // streams the peer opened after the first one
	StreamsReset     uint64 // streams this side reset with an error code
	FlowsOpen        int    // data flows currently open, both directions
	FlowsDetached    int    // flow states kept after their stream ended
	ControlIn        uint64 // packets received on the control stream (single-stream mode: 0)
	DataIn           uint64 // packets received on data flows
	DatagramsIn      uint64 // packets received as datagrams
	DatagramsDropped uint64 // datagrams that were not one whole QoS 0 PUBLISH
	ControlOut       uint64 // packets sent on the control stream (single-stream mode: 0)
	DataOut          uint64 // packets sent on data flows
	DatagramsOut     uint64 // packets sent as datagrams
	Migrations       uint64 // successful Migrate calls
}

// Stats returns the connection's counters.
func (c *Conn) Stats() Stats {
	s := Stats{
		ALPN:             c.alpn,
		StreamsOpened:    c.stats.streamsOpened.Load(),
		StreamsAccepted:  c.stats.streamsAccepted.Load(),
		StreamsReset:     c.stats.streamsReset.Load(),
		ControlIn:        c.stats.controlIn.Load(),
		DataIn:           c.stats.dataIn.Load(),
		DatagramsIn:      c.stats.datagramsIn.Load(),
		DatagramsDropped: c.stats.datagramsDropped.Load(),
		ControlOut:       c.stats.controlOut.Load(),
		DataOut:          c.stats.dataOut.Load(),
		DatagramsOut:     c.stats.datagramsOut.Load(),
		Migrations:       c.stats.migrations.Load(),
	}
	if c.m != nil {
		c.m.mu.Lock()
		s.FlowsOpen = len(c.m.flows)
		s.FlowsDetached = len(c.m.detached)
		c.m.mu.Unlock()
	}
	return s
}

func newConn(qc *quic.Conn, o *options, server bool) *Conn {
	cs := qc.ConnectionState()
	c := &Conn{qc: qc, server: server, opts: *o, tlsState: cs.TLS, alpn: cs.TLS.NegotiatedProtocol, wl: newWlock()}
	return c
}

// datagrams reports whether QoS 0 PUBLISH packets may travel as datagrams.
func datagramsUsable(qc *quic.Conn) bool {
	cs := qc.ConnectionState()
	return cs.SupportsDatagrams.Local && cs.SupportsDatagrams.Remote
}

func checkALPN(qc *quic.Conn) (string, error) {
	p := qc.ConnectionState().TLS.NegotiatedProtocol
	if p != ALPNSingle && p != ALPNMulti {
		qc.CloseWithError(quic.ApplicationErrorCode(ConnTLSError), "no MQTT application protocol negotiated")
		return "", fmt.Errorf("mqttquic: negotiated application protocol %q is not %q or %q", p, ALPNMulti, ALPNSingle)
	}
	return p, nil
}

// newServerConn waits for the client's first stream.
func newServerConn(ctx context.Context, qc *quic.Conn, o *options, release func()) (*Conn, error) {
	alpn, err := checkALPN(qc)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, o.openTimeout)
	st, err := qc.AcceptStream(actx)
	cancel()
	if err != nil {
		qc.CloseWithError(quic.ApplicationErrorCode(ConnNoError), "")
		return nil, err
	}
	c := newConn(qc, o, true)
	c.release = release
	if alpn == ALPNSingle {
		c.st = st
		c.goRejectStreams()
		return c, nil
	}
	c.m = newMux(c, st, datagramsUsable(qc))
	c.m.start()
	return c, nil
}

// newClientConn opens the first stream.
func newClientConn(ctx context.Context, qc *quic.Conn, o *options, tr *quic.Transport, udp *net.UDPConn, raddr net.Addr) (*Conn, error) {
	fail := func(err error) (*Conn, error) {
		qc.CloseWithError(quic.ApplicationErrorCode(ConnNoError), "")
		tr.Close()
		udp.Close()
		return nil, err
	}
	alpn, err := checkALPN(qc)
	if err != nil {
		return fail(err)
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return fail(err)
	}
	c := newConn(qc, o, false)
	c.trs = []*quic.Transport{tr}
	c.udps = []*net.UDPConn{udp}
	c.remote = raddr
	c.local.Store(addrBox{udp.LocalAddr()})
	if alpn == ALPNSingle {
		c.st = st
		c.goRejectStreams()
		return c, nil
	}
	if o.controlHeader != nil {
		h := FlowHeader{Type: FlowControl, Flags: *o.controlHeader}
		b, err := h.AppendTo(nil)
		if err != nil {
			return fail(err)
		}
		if _, err := st.Write(b); err != nil {
			return fail(err)
		}
	}
	c.m = newMux(c, st, datagramsUsable(qc))
	c.m.start()
	return c, nil
}

// goRejectStreams resets every stream the peer opens beyond the first in
// single-stream mode.
func (c *Conn) goRejectStreams() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			st, err := c.qc.AcceptStream(c.qc.Context())
			if err != nil {
				return
			}
			c.stats.streamsAccepted.Add(1)
			c.stats.streamsReset.Add(1)
			st.CancelRead(quic.StreamErrorCode(StreamStreamType))
			st.CancelWrite(quic.StreamErrorCode(StreamStreamType))
		}
	}()
}

// Read reads MQTT bytes. In multistream mode they are whole packets from
// every flow and datagram, in arrival order.
func (c *Conn) Read(b []byte) (int, error) {
	if c.m != nil {
		return c.m.Read(b)
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.st.Read(b)
	if err != nil {
		err = c.mapErr(err)
	}
	return n, err
}

// Write writes MQTT bytes. In multistream mode b holds whole packets (a
// trailing partial packet is kept until the next Write completes it);
// each is sent on the stream its routing selects.
func (c *Conn) Write(b []byte) (int, error) {
	if c.m != nil {
		return c.m.Write(b)
	}
	if !c.wl.lock(nil) {
		return 0, net.ErrClosed
	}
	defer c.wl.unlock()
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.st.Write(b)
	if err != nil {
		err = c.mapErr(err)
	}
	return n, err
}

// mapErr turns a peer's normal close into io.EOF and any error after
// Close into net.ErrClosed.
func (c *Conn) mapErr(err error) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote && ae.ErrorCode == quic.ApplicationErrorCode(ConnNoError) {
		return io.EOF
	}
	return err
}

// Close closes the connection. Blocked reads and writes return at once;
// then, in the background, the streams are finished, the peer is given up
// to the linger time to finish the control stream (so that what was
// written is delivered), and the QUIC connection is closed with NoError
// (0). A negative linger closes the QUIC connection before Close returns.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.m != nil {
			c.m.markClosed()
		} else {
			c.st.SetReadDeadline(time.Now()) // returns a blocked Read
		}
		if c.opts.linger < 0 {
			c.finish(0)
			return
		}
		go c.finish(c.opts.linger)
	})
	return nil
}

// finish drains and closes the connection and releases its resources.
func (c *Conn) finish(linger time.Duration) {
	if c.m != nil {
		c.m.drain(linger)
	} else {
		c.closeSingle(linger)
	}
	c.qc.CloseWithError(quic.ApplicationErrorCode(ConnNoError), "")
	c.wg.Wait()
	c.migMu.Lock()
	for _, tr := range c.trs {
		tr.Close()
	}
	for _, u := range c.udps {
		u.Close()
	}
	c.trs, c.udps = nil, nil
	c.migMu.Unlock()
	if c.release != nil {
		c.release()
	}
}

func (c *Conn) closeSingle(linger time.Duration) {
	if !c.wl.tryLockFor(linger) {
		return
	}
	c.st.Close()
	c.wl.unlock()
	if linger == 0 {
		return
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.st.SetReadDeadline(time.Now().Add(linger))
	var buf [512]byte
	for {
		if _, err := c.st.Read(buf[:]); err != nil {
			return
		}
	}
}

// LocalAddr returns the local UDP address (the current one after Migrate).
func (c *Conn) LocalAddr() net.Addr {
	if c.server {
		return c.qc.LocalAddr()
	}
	return c.local.Load().(addrBox).Addr
}

// RemoteAddr returns the peer's UDP address. On the server it follows
// the client's migrations.
func (c *Conn) RemoteAddr() net.Addr {
	if c.server {
		return c.qc.RemoteAddr()
	}
	return c.remote
}

// ConnectionState returns the TLS state of the QUIC handshake.
func (c *Conn) ConnectionState() tls.ConnectionState { return c.tlsState }

// ALPN returns the negotiated protocol, ALPNSingle or ALPNMulti.
func (c *Conn) ALPN() string { return c.alpn }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline of Read.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.m != nil {
		c.m.rdl.set(t)
		return nil
	}
	return c.st.SetReadDeadline(t)
}

// SetWriteDeadline sets the deadline of Write (and of the stream writes
// one Write makes).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.m != nil {
		c.m.setWriteDeadline(t)
		return nil
	}
	return c.st.SetWriteDeadline(t)
}

// Migrate moves a client connection to a new local UDP socket: it probes
// the new path and switches to it. Nothing written is lost; the server
// sees the new address. The sockets of earlier paths stay open until the
// connection closes (at most 16 paths per connection).
func (c *Conn) Migrate(ctx context.Context) error {
	if c.server {
		return errors.New("mqttquic: only the client can migrate a connection")
	}
	if c.closed.Load() {
		return net.ErrClosed
	}
	c.migMu.Lock()
	defer c.migMu.Unlock()
	if c.trs == nil {
		return net.ErrClosed
	}
	if len(c.trs) >= maxPaths {
		return fmt.Errorf("mqttquic: connection already used %d paths", maxPaths)
	}
	udp, err := listenUDPFor(c.remote.(*net.UDPAddr))
	if err != nil {
		return err
	}
	tr := &quic.Transport{Conn: udp}
	path, err := c.qc.AddPath(tr)
	if err != nil {
		tr.Close()
		udp.Close()
		return err
	}
	// From the first probe on the connection is registered with the new
	// transport, which therefore lives as long as the connection.
	c.trs = append(c.trs, tr)
	c.udps = append(c.udps, udp)
	if err := path.Probe(ctx); err != nil {
		path.Close()
		return err
	}
	if err := path.Switch(); err != nil {
		path.Close()
		return err
	}
	c.local.Store(addrBox{udp.LocalAddr()})
	c.stats.migrations.Add(1)
	return nil
}

// wlock is a mutex whose acquisition can give up: on a channel, or after
// a time.
type wlock chan struct{}

func newWlock() wlock { return make(wlock, 1) }

// lock acquires the lock; it returns false if done is closed first.
func (l wlock) lock(done <-chan struct{}) bool {
	select {
	case l <- struct{}{}:
		return true
	case <-done:
		return false
	}
}

func (l wlock) tryLockFor(d time.Duration) bool {
	select {
	case l <- struct{}{}:
		return true
	default:
	}
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case l <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func (l wlock) unlock() { <-l }

// deadline is a read deadline that a blocked reader can wait on.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes
}

func newDeadline() deadline { return deadline{cancel: make(chan struct{})} }

// set sets the deadline; the zero time clears it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for the close
	}
	d.timer = nil
	closed := isClosedChan(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		ch := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// wait returns a channel closed when the deadline passes.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosedChan(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
