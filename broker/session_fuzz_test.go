package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/internal/testpackets"
	"github.com/mqtt5go/mqtt5/packet"
)

// FuzzBrokerSession feeds a scripted packet sequence to a broker
// connection next to a well-behaved client. The input is a script: each
// step's first byte selects a generated packet, a catalogue packet (as is
// or with one byte changed) or a raw chunk, the following bytes its
// fields. After the script the broker must still serve the well-behaved
// client, must have sent the scripted connection only well-formed packets
// a server may send, and must release every connection and goroutine.

// fzGoodID is the client identifier of the well-behaved client; the script
// never generates it.
const fzGoodID = "fz-well-behaved-5e1f"

var fzCatalogue = sync.OnceValues(func() (valid, malformed []testpackets.Entry) {
	for _, e := range testpackets.All() {
		if e.Valid() {
			valid = append(valid, e)
		} else {
			malformed = append(malformed, e)
		}
	}
	return valid, malformed
})

// fzTopics are the topic names and filters of generated packets, invalid
// ones included.
var fzTopics = []string{
	"good/t", "good/#", "a", "a/b", "a/+/c", "#", "+", "+/#", "$SYS/#", "$share/g/a/#", "$share/g/good/#",
	"$share/g", "", "/", "a//b", "x/y/z", "€/ü", "$SYS/broker/x", "a/#/b", "a+", strings.Repeat("l/", 100) + "end",
}

// fzScript reads the fuzz input step by step; past its end it reads zeros.
type fzScript struct{ b []byte }

func (s *fzScript) next() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *fzScript) take(n int) []byte {
	n = min(n, len(s.b))
	out := s.b[:n]
	s.b = s.b[n:]
	return out
}

func (s *fzScript) u16() uint16 { return uint16(s.next())<<8 | uint16(s.next()) }

func (s *fzScript) topic() string { return fzTopics[int(s.next())%len(fzTopics)] }

// step returns the bytes of the next step; v is the version of generated
// packets, changed by a generated CONNECT.
func (s *fzScript) step(v *packet.Version) []byte {
	valid, malformed := fzCatalogue()
	enc := func(p packet.Packet) []byte {
		b, err := p.AppendTo(nil, *v)
		if err != nil {
			return nil
		}
		return b
	}
	switch op := s.next(); op % 10 {
	case 0: // CONNECT
		fl, fl2 := s.next(), s.next()
		*v = packet.V5
		if fl&1 != 0 {
			*v = packet.V311
		}
		cp := &packet.Connect{Version: *v, ClientID: fmt.Sprintf("fz%d", fl>>6), CleanStart: fl&2 != 0, KeepAlive: uint16(s.next())}
		if fl&4 != 0 {
			cp.Will = &packet.Will{Topic: s.topic(), QoS: (fl >> 3) & 3 % 3, Retain: fl&32 != 0, Payload: []byte("will")}
			if *v == packet.V5 && fl2&16 != 0 {
				cp.Will.Props.WillDelay = uint32(s.next() % 3)
			}
		}
		if *v == packet.V5 {
			if fl2&1 != 0 {
				cp.Props.SessionExpiry = uint32(s.next())
			}
			if fl2&2 != 0 {
				cp.Props.ReceiveMaximum = uint16(s.next()%4 + 1)
				cp.Props.TopicAliasMaximum = uint16(s.next() % 4)
			}
			if fl2&4 != 0 {
				cp.Props.MaximumPacketSize = uint32(s.next()) + 16
			}
			if fl2&8 != 0 {
				cp.Props.RequestProblemInfo = 0
				cp.Props.Set(packet.PropRequestProblemInfo)
			}
			if fl2&32 != 0 {
				cp.Props.RequestResponseInfo = 1
			}
		}
		return enc(cp)
	case 1: // a valid catalogue entry
		return valid[int(s.u16())%len(valid)].Bytes
	case 2: // a malformed catalogue entry
		return malformed[int(s.u16())%len(malformed)].Bytes
	case 3: // a valid catalogue entry with one byte changed
		b := bytes.Clone(valid[int(s.u16())%len(valid)].Bytes)
		i, x := int(s.next()), s.next()
		b[i%len(b)] ^= x | 1
		return b
	case 4: // raw bytes
		return bytes.Clone(s.take(int(s.next() % 48)))
	case 5: // PUBLISH
		fl := s.next()
		p := &packet.Publish{Topic: s.topic(), QoS: fl & 3 % 3, Retain: fl&4 != 0, Dup: fl&8 != 0, Payload: s.take(int(s.next() % 16))}
		if p.QoS > 0 {
			p.PacketID = uint16(s.next()%8 + 1)
		}
		if *v == packet.V5 {
			if fl&16 != 0 {
				p.Props.TopicAlias = uint16(s.next() % 5)
				if fl&32 != 0 {
					p.Topic = ""
				}
			}
			if fl&64 != 0 {
				p.Props.MessageExpiry = uint32(s.next() % 3)
				p.Props.Set(packet.PropMessageExpiry)
				p.Props.ResponseTopic = "good/reply"
				p.Props.CorrelationData = []byte{1}
			}
		}
		return enc(p)
	case 6: // SUBSCRIBE
		fl := s.next()
		p := &packet.Subscribe{PacketID: uint16(s.next()%8 + 1)}
		for range fl%3 + 1 {
			o := s.next()
			p.Subscriptions = append(p.Subscriptions, packet.Subscription{Filter: s.topic(), QoS: o & 3 % 3,
				NoLocal: o&4 != 0, RetainAsPublished: o&8 != 0, RetainHandling: (o >> 4) % 3})
		}
		if *v == packet.V5 && fl&8 != 0 {
			p.Props.SubscriptionIDs = []uint32{uint32(s.next()%4 + 1)}
		}
		return enc(p)
	case 7: // UNSUBSCRIBE
		return enc(&packet.Unsubscribe{PacketID: uint16(s.next()%8 + 1), Filters: []string{s.topic()}})
	case 8: // acknowledgements
		k, id := s.next(), uint16(s.next()%8+1)
		rc := packet.ReasonCode(0)
		if k&4 != 0 {
			rc = packet.ReasonCode(s.next())
		}
		switch k % 4 {
		case 0:
			return enc(&packet.Puback{PacketID: id, ReasonCode: rc})
		case 1:
			return enc(&packet.Pubrec{PacketID: id, ReasonCode: rc})
		case 2:
			return enc(&packet.Pubrel{PacketID: id, ReasonCode: rc})
		}
		return enc(&packet.Pubcomp{PacketID: id, ReasonCode: rc})
	default: // PINGREQ, DISCONNECT, AUTH, or a pause
		k := s.next()
		switch k % 4 {
		case 0:
			return enc(&packet.Pingreq{})
		case 1:
			d := &packet.Disconnect{ReasonCode: packet.ReasonCode(s.next())}
			if k&4 != 0 {
				d.Props.SessionExpiry = uint32(s.next())
				d.Props.Set(packet.PropSessionExpiry)
			}
			return enc(d)
		case 2:
			a := &packet.Auth{ReasonCode: packet.ReasonCode(s.next())}
			a.Props.AuthMethod = "X"
			return enc(a)
		}
		runtime.Gosched()
		return nil
	}
}

// fzPeer collects what the broker sends on a connection.
type fzPeer struct {
	nc     net.Conn
	mu     sync.Mutex
	in     []byte
	eof    bool // the broker closed the connection
	closed bool // we closed it
	done   chan struct{}
}

func fzNewPeer(nc net.Conn) *fzPeer {
	p := &fzPeer{nc: nc, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := nc.Read(buf)
			p.mu.Lock()
			p.in = append(p.in, buf[:n]...)
			if err != nil {
				p.eof = errors.Is(err, io.EOF) && !p.closed
			}
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return p
}

func (p *fzPeer) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.nc.Close()
	<-p.done
}

// fzGood is the well-behaved client.
type fzGood struct {
	t      *testing.T
	nc     net.Conn
	ch     chan packet.Packet
	err    error // why the read loop ended, valid once ch is closed
	closed bool
}

var errFzTakenOver = errors.New("session taken over")

func fzDialGood(t *testing.T, b *Broker) *fzGood {
	g := &fzGood{t: t, nc: b.InProcessConn(), ch: make(chan packet.Packet, 1024)}
	go func() {
		defer close(g.ch)
		r := packet.NewReader(g.nc, 0)
		for {
			p, err := r.ReadPacket(packet.V5)
			if err != nil {
				g.err = err
				return
			}
			g.ch <- p
		}
	}()
	g.send(&packet.Connect{Version: packet.V5, ClientID: fzGoodID, CleanStart: true})
	if ack, _ := g.expect(func(p packet.Packet) bool { _, ok := p.(*packet.Connack); return ok }).(*packet.Connack); ack == nil || ack.ReasonCode != packet.Success {
		t.Fatalf("well-behaved client: CONNACK %+v", ack)
	}
	g.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "good/#"}}})
	if sa, _ := g.expect(func(p packet.Packet) bool { _, ok := p.(*packet.Suback); return ok }).(*packet.Suback); sa == nil || sa.PacketID != 1 || sa.ReasonCodes[0] != packet.GrantedQoS0 {
		t.Fatalf("well-behaved client: SUBACK %+v", sa)
	}
	return g
}

func (g *fzGood) send(p packet.Packet) {
	g.t.Helper()
	buf, err := p.AppendTo(nil, packet.V5)
	if err != nil {
		g.t.Fatal(err)
	}
	g.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := g.nc.Write(buf); err != nil {
		g.t.Fatalf("well-behaved client: writing %s: %v", p.Type(), err)
	}
}

// expect returns the first packet satisfying want, skipping others; it
// panics with errFzTakenOver when the session was taken over.
func (g *fzGood) expect(want func(packet.Packet) bool) packet.Packet {
	g.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case p, ok := <-g.ch:
			if !ok {
				g.t.Fatalf("well-behaved client: connection ended: %v", g.err)
			}
			if d, isD := p.(*packet.Disconnect); isD {
				if d.ReasonCode == packet.SessionTakenOver {
					panic(errFzTakenOver)
				}
				g.t.Fatalf("well-behaved client: DISCONNECT %v", d.ReasonCode)
			}
			if want(p) {
				return p
			}
		case <-timeout:
			g.t.Fatal("well-behaved client: no answer within 5 s")
		}
	}
}

// check makes the well-behaved client ping, publish and receive.
func (g *fzGood) check(n int) {
	g.t.Helper()
	g.send(&packet.Pingreq{})
	g.expect(func(p packet.Packet) bool { _, ok := p.(*packet.Pingresp); return ok })
	marker := fmt.Sprintf("marker-%d", n)
	g.send(&packet.Publish{Topic: "good/t", QoS: 1, PacketID: uint16(n + 10), Payload: []byte(marker)})
	gotAck, gotMsg := false, false
	for !gotAck || !gotMsg {
		switch p := g.expect(func(packet.Packet) bool { return true }).(type) {
		case *packet.Puback:
			if p.PacketID != uint16(n+10) || p.ReasonCode.IsError() {
				g.t.Fatalf("well-behaved client: PUBACK %+v", p)
			}
			gotAck = true
		case *packet.Publish:
			gotMsg = gotMsg || (p.Topic == "good/t" && string(p.Payload) == marker)
		}
	}
}

func (g *fzGood) close() {
	g.nc.Close()
	for range g.ch {
	}
}

// fzPoll waits until cond holds, up to d.
func fzPoll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Microsecond)
	}
	return true
}

func fzGoroutines(t *testing.T, limit int, when string) {
	t.Helper()
	if !fzPoll(5*time.Second, func() bool { return runtime.NumGoroutine() <= limit }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("%s: %d goroutines, want at most %d\n%s", when, runtime.NumGoroutine(), limit, buf[:runtime.Stack(buf, true)])
	}
}

// fzServerTypes are the packets a server may send (DISCONNECT and AUTH in
// 5.0 only).
var fzServerTypes = map[packet.Type]bool{
	packet.CONNACK: true, packet.PUBLISH: true, packet.PUBACK: true, packet.PUBREC: true, packet.PUBREL: true,
	packet.PUBCOMP: true, packet.SUBACK: true, packet.UNSUBACK: true, packet.PINGRESP: true, packet.DISCONNECT: true, packet.AUTH: true,
}

// fzCheckOutput checks the bytes the broker sent on the scripted
// connection, given what the script sent.
func fzCheckOutput(t *testing.T, sent, out []byte, brokerClosed bool) {
	t.Helper()
	h, body, err := packet.NewReader(bytes.NewReader(sent), 0).ReadRaw(packet.V5)
	if err == nil && h.Type != packet.CONNECT {
		if len(out) > 0 {
			t.Fatalf("the broker answered a first packet %s with % x", h.Type, out)
		}
		return
	}
	versions := []packet.Version{packet.V5, packet.V311}
	var maxSize uint32
	if err == nil {
		var cp packet.Connect
		derr := cp.Decode(h.Flags, body, 0)
		versions = []packet.Version{packet.V311}
		if cp.Version == packet.V5 {
			versions = []packet.Version{packet.V5}
			if derr == nil {
				maxSize = cp.Props.MaximumPacketSize
			}
		}
	}
	var errs []string
	for _, v := range versions {
		err := fzDecodeOutput(out, v, maxSize, brokerClosed)
		if err == nil {
			return
		}
		errs = append(errs, fmt.Sprintf("%v: %v", v, err))
	}
	t.Fatalf("the broker sent a stream that is not well-formed (%s):\n% x\nafter the script sent\n% x", strings.Join(errs, "; "), out, sent)
}

func fzDecodeOutput(out []byte, v packet.Version, maxSize uint32, brokerClosed bool) error {
	r := packet.NewReader(bytes.NewReader(out), 0)
	var last packet.Packet
	for i := 0; ; i++ {
		h, body, err := r.ReadRaw(v)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) && !brokerClosed {
			return nil // cut when the script's side closed
		}
		if err != nil {
			return fmt.Errorf("packet %d: %w", i, err)
		}
		if maxSize > 0 && uint32(h.Size()) > maxSize {
			return fmt.Errorf("packet %d: %s of %d bytes, over the client's Maximum Packet Size %d", i, h.Type, h.Size(), maxSize)
		}
		p, err := packet.Decode(h, body, v)
		if err != nil {
			return fmt.Errorf("packet %d: %s: %w", i, h.Type, err)
		}
		if !fzServerTypes[p.Type()] || (v != packet.V5 && (p.Type() == packet.DISCONNECT || p.Type() == packet.AUTH)) {
			return fmt.Errorf("packet %d: a server does not send %s", i, p.Type())
		}
		if (i == 0) != (p.Type() == packet.CONNACK) {
			return fmt.Errorf("packet %d: %s", i, p.Type())
		}
		if last != nil {
			if d, ok := last.(*packet.Disconnect); ok {
				return fmt.Errorf("packet %d: %s after DISCONNECT %v", i, p.Type(), d.ReasonCode)
			}
			if a, ok := last.(*packet.Connack); ok && a.ReasonCode != packet.Success {
				return fmt.Errorf("packet %d: %s after CONNACK %v", i, p.Type(), a.ReasonCode)
			}
		}
		last = p
	}
}

func fzBrokerSession(t *testing.T, script []byte) {
	base := runtime.NumGoroutine()
	b := New(Config{SysInterval: -1, Logger: slog.New(slog.DiscardHandler), WriteTimeout: 5 * time.Second})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		fzGoroutines(t, base, "after shutdown")
	}()
	withBroker := runtime.NumGoroutine()
	good := fzDialGood(t, b)
	defer good.close()
	fz := fzNewPeer(b.InProcessConn())
	defer fz.close()
	defer func() {
		if r := recover(); r != nil && r != errFzTakenOver {
			panic(r)
		}
	}()

	s := &fzScript{b: script}
	v := packet.V5
	var sent []byte
	for len(s.b) > 0 {
		buf := s.step(&v)
		if len(buf) == 0 {
			continue
		}
		fz.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		n, err := fz.nc.Write(buf)
		sent = append(sent, buf[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the broker stopped reading the scripted connection after % x", sent)
		}
		if err != nil {
			break // the broker closed it
		}
	}
	good.check(0)
	fz.close()
	fzCheckOutput(t, sent, fz.in, fz.eof)
	if !fzPoll(5*time.Second, func() bool { return b.Stats().Connections == 1 }) {
		t.Fatalf("%d connections once the scripted one closed, want 1", b.Stats().Connections)
	}
	good.check(1)
	good.close()
	if !fzPoll(5*time.Second, func() bool { return b.Stats().Connections == 0 }) {
		t.Fatalf("%d connections once both closed", b.Stats().Connections)
	}
	fzGoroutines(t, withBroker, "after both connections closed")
}

// fzSeedScripts are hand-written scripts: a session with every packet
// kind, a 3.1.1 one, and sessions that break the protocol.
func fzSeedScripts() [][]byte {
	// CONNECT: flags (1: 3.1.1, 2: clean, 4: will, 8: will QoS 1), v5
	// flags (1: session expiry, 2: receive maximum and topic aliases, 4:
	// maximum packet size, 16: will delay), keep alive, will topic, then
	// the values the flags ask for.
	connV5 := []byte{0, 2 | 4 | 8, 1 | 2 | 4 | 16, 30, 0, 1, 10, 2, 3, 200}
	connV311 := []byte{0, 1 | 2 | 4, 0, 30, 2}
	pubs := []byte{
		5, 0, 0, 3, 'a', 'b', 'c', // QoS 0 to good/t
		5, 1 | 4, 2, 2, 'x', 'y', 1, // QoS 1 retained to good/#
		5, 2, 0, 1, 'z', 2, // QoS 2 to good/t
		8, 2, 2, // PUBREL 2
		5, 16, 3, 0, 1, // alias 1 on a
		5, 16 | 32, 3, 0, 1, // alias 1, no topic
		5, 64, 0, 0, 1, // expiry, response topic
	}
	subs := []byte{
		6, 2 | 8, 1, 1, 0, 0x12, 9, 3, // two filters with an identifier
		7, 2, 0, // unsubscribe good/t
		9, 0, // PINGREQ
	}
	var scripts [][]byte
	scripts = append(scripts, fzJoin(connV5, pubs, subs, []byte{9, 1, 0}))
	scripts = append(scripts, fzJoin(connV311, pubs, subs))
	scripts = append(scripts, fzJoin(connV5, []byte{6, 0, 1, 0, 0}, []byte{5, 1, 0, 1, 'q', 1}, []byte{9, 5, 0x8e, 3}))
	scripts = append(scripts, fzJoin(connV5, []byte{2, 0, 7}))                      // a malformed packet
	scripts = append(scripts, fzJoin(connV5, []byte{3, 0, 40, 1, 0x10}))            // a changed catalogue packet
	scripts = append(scripts, fzJoin(connV5, connV5))                               // a second CONNECT
	scripts = append(scripts, []byte{5, 0, 0, 1, 'a'})                              // PUBLISH before CONNECT
	scripts = append(scripts, fzJoin(connV5, []byte{4, 5, 0x30, 0xff, 0xff, 0xff})) // a cut header
	scripts = append(scripts, fzJoin(connV5, []byte{9, 2, 0x18}))                   // AUTH
	scripts = append(scripts, fzJoin(connV5, []byte{8, 4 | 1, 3, 0x80}))            // PUBREC with an error, unknown id
	scripts = append(scripts, fzJoin([]byte{0, 1 | 4 | 16, 0, 5, 1}, pubs))         // a 3.1.1 will of QoS 2 on a filter
	scripts = append(scripts, []byte{1, 0, 0})                                      // a catalogue packet first
	return scripts
}

func fzJoin(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func FuzzBrokerSession(f *testing.F) {
	for _, s := range fzSeedScripts() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) > 4096 {
			return
		}
		fzBrokerSession(t, script)
	})
}
