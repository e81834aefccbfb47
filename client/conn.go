package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// maxRedirects bounds the Use Another Server / Server Moved hops followed
// in one connection attempt.
const maxRedirects = 3

// handshake is an established connection: the stream, its packet reader
// (which may hold bytes received after CONNACK) and the CONNACK.
type handshake struct {
	rwc     io.ReadWriteCloser
	rd      *packet.Reader
	connack *packet.Connack
	server  *url.URL
	moved   bool // a Server Moved redirection was followed: make it permanent
	connect *packet.Connect
}

// handshake connects to server and performs CONNECT .. CONNACK, following
// redirections. It runs on the caller's goroutine (Connect) or on a
// reconnection goroutine, never on the engine's.
func (c *Client) handshake(ctx context.Context, connect *packet.Connect, server *url.URL) (*handshake, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	moved := false
	for hop := 0; ; hop++ {
		hs, err := c.handshakeOnce(ctx, connect, server)
		var re *RedirectError
		if errors.As(err, &re) && hop < maxRedirects {
			u, perr := resolveReference(server, re.ServerReference)
			if perr == nil {
				c.log.Info("redirected", "from", server.String(), "to", u.String(), "reason", re.Code.String())
				server = u
				moved = moved || re.Code == packet.ServerMoved
				continue
			}
		}
		if hs != nil {
			hs.moved = moved
		}
		return hs, err
	}
}

func (c *Client) handshakeOnce(ctx context.Context, connect *packet.Connect, server *url.URL) (hs *handshake, err error) {
	v := c.opts.Version
	rwc, err := c.dial(ctx, server)
	if errors.Is(err, ErrTransportUnavailable) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("mqtt client: dial %s: %w", server.Redacted(), err)
	}
	// Closing the stream is how a blocked read or write is interrupted.
	stop := context.AfterFunc(ctx, func() { rwc.Close() })
	defer func() {
		if !stop() && err == nil {
			err = ctx.Err()
		}
		if err != nil {
			hs = nil
			rwc.Close()
			if ctx.Err() != nil {
				err = fmt.Errorf("mqtt client: connect %s: %w (%w)", server.Redacted(), ctx.Err(), err)
			}
		}
	}()

	auth := c.opts.Auth
	if auth != nil {
		connect.Props.AuthMethod = auth.Method()
		data, err := auth.Start(ctx)
		if err != nil {
			return nil, err
		}
		connect.Props.AuthData = data
	}
	// [MQTT-3.1.0-1] CONNECT is the first packet on the connection.
	buf, err := connect.AppendTo(nil, v)
	if err != nil {
		return nil, err
	}
	if _, err := rwc.Write(buf); err != nil {
		return nil, err
	}
	rd := packet.NewReader(rwc, int(c.opts.MaximumPacketSize))
	for {
		// [MQTT-3.1.2-30] with an Authentication Method nothing but AUTH is
		// sent until CONNACK.
		p, err := rd.ReadPacket(v)
		if err != nil {
			return nil, err
		}
		switch p := p.(type) {
		case *packet.Connack:
			return c.onConnack(ctx, p, rwc, rd, server, connect)
		case *packet.Auth:
			if auth == nil || p.ReasonCode != packet.ContinueAuthentication {
				// [MQTT-4.12.0-6] no AUTH without an Authentication Method.
				return nil, &ReasonError{Op: "connect", Code: packet.ProtocolError, ReasonString: "unexpected AUTH"}
			}
			data, err := auth.Continue(ctx, p.Props.AuthData)
			if err != nil {
				return nil, err
			}
			// [MQTT-4.12.0-3] answer with Continue Authentication, same method [MQTT-4.12.1-1].
			a := packet.Auth{ReasonCode: packet.ContinueAuthentication}
			a.Props.AuthMethod = auth.Method()
			a.Props.AuthData = data
			if buf, err = a.AppendTo(buf[:0], v); err != nil {
				return nil, err
			}
			if _, err := rwc.Write(buf); err != nil {
				return nil, err
			}
		default:
			return nil, &ReasonError{Op: "connect", Code: packet.ProtocolError, ReasonString: "expected CONNACK, got " + p.Type().String()}
		}
	}
}

func (c *Client) onConnack(ctx context.Context, p *packet.Connack, rwc io.ReadWriteCloser, rd *packet.Reader, server *url.URL, connect *packet.Connect) (*handshake, error) {
	if c.opts.Version == packet.V311 {
		if p.ReasonCode != packet.V3Accepted {
			return nil, &ReasonError{Op: "connect", Code: v3ConnackCode(p.ReasonCode)}
		}
	} else if p.ReasonCode.IsError() {
		re := ReasonError{Op: "connect", Code: p.ReasonCode, ReasonString: p.Props.ReasonString, User: p.Props.User}
		if (p.ReasonCode == packet.UseAnotherServer || p.ReasonCode == packet.ServerMoved) && p.Props.ServerReference != "" {
			return nil, &RedirectError{ReasonError: re, ServerReference: p.Props.ServerReference}
		}
		return nil, &re
	}
	if a := c.opts.Auth; a != nil {
		if err := a.Finish(ctx, p.Props.AuthData); err != nil {
			return nil, err
		}
	}
	return &handshake{rwc: rwc, rd: rd, connack: p, server: server, connect: connect}, nil
}

// conn is an established connection with its reader and writer goroutines.
// The engine appends encoded packets to wbuf; the writer takes the whole
// buffer and writes it with one call, so pipelined packets share syscalls.
type conn struct {
	rwc     io.ReadWriteCloser
	in      chan packet.Packet // reader -> engine
	errc    chan error         // reader/writer failures (first ones)
	done    chan struct{}      // closed by the engine on teardown
	drained chan struct{}      // writer -> engine: some bytes were written
	wsig    chan struct{}      // engine -> writer: bytes to write

	mu       sync.Mutex
	wbuf     []byte
	pending  int  // bytes appended and not yet written
	stopping bool // teardown started
	graceful bool // on teardown, write what is pending, then close

	closeOnce sync.Once
}

func (c *Client) startConn(hs *handshake) *conn {
	k := &conn{
		rwc:     hs.rwc,
		in:      make(chan packet.Packet, 32),
		errc:    make(chan error, 2),
		done:    make(chan struct{}),
		drained: make(chan struct{}, 1),
		wsig:    make(chan struct{}, 1),
	}
	c.wg.Add(2)
	go k.readLoop(&c.wg, hs.rd, c.opts.Version)
	go k.writeLoop(&c.wg)
	return k
}

func (k *conn) close() { k.closeOnce.Do(func() { k.rwc.Close() }) }

func (k *conn) fail(err error) {
	select {
	case k.errc <- err:
	default:
	}
}

func (k *conn) readLoop(wg *sync.WaitGroup, rd *packet.Reader, v packet.Version) {
	defer wg.Done()
	for {
		p, err := rd.ReadPacket(v)
		if err != nil {
			k.fail(err)
			return
		}
		select {
		case k.in <- p:
		case <-k.done:
			return
		}
	}
}

func (k *conn) writeLoop(wg *sync.WaitGroup) {
	defer wg.Done()
	var buf []byte
	for {
		k.mu.Lock()
		for len(k.wbuf) == 0 {
			if k.stopping {
				graceful := k.graceful
				k.mu.Unlock()
				if graceful {
					k.close()
				}
				return
			}
			k.mu.Unlock()
			select {
			case <-k.wsig:
			case <-k.done:
			}
			k.mu.Lock()
		}
		if k.stopping && !k.graceful {
			k.mu.Unlock()
			return
		}
		buf, k.wbuf = k.wbuf, buf[:0]
		k.mu.Unlock()
		_, err := k.rwc.Write(buf)
		k.mu.Lock()
		k.pending -= len(buf)
		k.mu.Unlock()
		if cap(buf) > 64<<10 {
			buf = nil // don't keep a burst's memory on an idle connection
		}
		select {
		case k.drained <- struct{}{}:
		default:
		}
		if err != nil {
			k.fail(&writeError{err})
			return
		}
	}
}

// writeError marks a failure of the writer (as opposed to the reader).
type writeError struct{ error }

func (w *writeError) Unwrap() error { return w.error }

// append encodes p into the write buffer. It returns the encoded size and
// the number of bytes now waiting for the network.
func (k *conn) append(p packet.Packet, v packet.Version, max int) (size, pending int, err error) {
	k.mu.Lock()
	n0 := len(k.wbuf)
	b, err := p.AppendTo(k.wbuf, v)
	size = len(b) - n0
	if err == nil && max > 0 && size > max {
		// [MQTT-3.2.2-15] never send a packet above the server's maximum.
		err = localError(opName(p), packet.PacketTooLarge, fmt.Sprintf("%d bytes, server maximum %d", size, max))
	}
	if err != nil {
		k.wbuf = b[:n0]
		k.mu.Unlock()
		return 0, 0, err
	}
	k.wbuf = b
	k.pending += size
	pending = k.pending
	k.mu.Unlock()
	select {
	case k.wsig <- struct{}{}:
	default:
	}
	return size, pending, nil
}

func (k *conn) pendingBytes() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pending
}

// teardown stops the connection. A graceful teardown lets the writer flush
// what is pending first, for at most a second.
func (k *conn) teardown(graceful bool) {
	k.mu.Lock()
	if k.stopping {
		k.mu.Unlock()
		return
	}
	k.stopping = true
	k.graceful = graceful
	k.mu.Unlock()
	close(k.done)
	if graceful {
		time.AfterFunc(time.Second, k.close)
	} else {
		k.close()
	}
}

func opName(p packet.Packet) string {
	switch p.Type() {
	case packet.PUBLISH:
		return "publish"
	case packet.SUBSCRIBE:
		return "subscribe"
	case packet.UNSUBSCRIBE:
		return "unsubscribe"
	case packet.DISCONNECT:
		return "disconnect"
	case packet.AUTH:
		return "auth"
	}
	return p.Type().String()
}
