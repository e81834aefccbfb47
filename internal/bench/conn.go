package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// conn is a raw MQTT connection: buffered writes, packets read with
// Reader.ReadRaw into one reused buffer. The load generator speaks the
// protocol directly so that it costs little and allocates nothing per
// message.
type conn struct {
	nc net.Conn
	r  *packet.Reader
	w  *bufio.Writer
	v  packet.Version
	// receiveMax is the broker's Receive Maximum (v5; 65535 when absent).
	receiveMax uint16
	scratch    []byte
}

const writeBufferSize = 32 << 10

// handshakeTimeout bounds CONNECT and SUBSCRIBE exchanges.
const handshakeTimeout = 10 * time.Second

// dialMQTT opens a connection and completes CONNECT/CONNACK.
func dialMQTT(ctx context.Context, d Dialer, v packet.Version, clientID string, bufSize int, expiry uint32) (*conn, error) {
	nc, err := d.Dial(ctx)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, r: packet.NewReader(nc, 0), w: bufio.NewWriterSize(nc, bufSize), v: v, receiveMax: 65535}
	c.r.InitialSize = 256
	if err := c.connect(clientID, expiry); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// connect sends CONNECT: a fresh session, kept by the broker after the
// connection when expiry > 0 (in 3.1.1: Clean Session 0).
func (c *conn) connect(clientID string, expiry uint32) error {
	c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.nc.SetDeadline(time.Time{})
	cp := packet.Connect{ClientID: clientID, CleanStart: expiry == 0 || c.v == packet.V5, Version: c.v}
	cp.Props.SessionExpiry = expiry
	if err := c.sendNow(&cp); err != nil {
		return err
	}
	for {
		h, body, err := c.r.ReadRaw(c.v)
		if err != nil {
			return fmt.Errorf("waiting for CONNACK: %w", err)
		}
		if h.Type != packet.CONNACK {
			if h.Type == packet.AUTH {
				return fmt.Errorf("broker asks for enhanced authentication")
			}
			continue
		}
		var ca packet.Connack
		if err := ca.Decode(h.Flags, body, c.v); err != nil {
			return err
		}
		if ca.ReasonCode != 0 {
			return fmt.Errorf("connection refused: %v", ca.ReasonCode)
		}
		if c.v == packet.V5 {
			c.receiveMax = ca.Props.EffectiveReceiveMaximum()
		}
		return nil
	}
}

// subscribe subscribes to filter and waits for a successful SUBACK.
func (c *conn) subscribe(filter string, qos byte) error {
	c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.nc.SetDeadline(time.Time{})
	s := packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}}
	if err := c.sendNow(&s); err != nil {
		return err
	}
	for {
		h, body, err := c.r.ReadRaw(c.v)
		if err != nil {
			return fmt.Errorf("waiting for SUBACK: %w", err)
		}
		if h.Type != packet.SUBACK {
			continue
		}
		var sa packet.Suback
		if err := sa.Decode(h.Flags, body, c.v); err != nil {
			return err
		}
		if len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] >= 0x80 {
			return fmt.Errorf("subscription to %q refused: %v", filter, sa.ReasonCodes)
		}
		return nil
	}
}

// disconnect sends DISCONNECT (best effort) and closes the connection.
func (c *conn) disconnect() {
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	buf, err := (&packet.Disconnect{}).AppendTo(c.scratch[:0], c.v)
	if err == nil {
		c.w.Write(buf)
		c.w.Flush()
	}
	c.nc.Close()
}

// sendNow encodes p and writes it out at once (set-up packets only).
func (c *conn) sendNow(p packet.Packet) error {
	buf, err := p.AppendTo(c.scratch[:0], c.v)
	if err != nil {
		return err
	}
	c.scratch = buf
	if _, err := c.w.Write(buf); err != nil {
		return err
	}
	return c.w.Flush()
}
