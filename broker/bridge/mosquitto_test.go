package bridge_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/mqtt5go/mqtt5/broker/bridge"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// tap watches the bridge's connections to Mosquitto (through
// RemoteConfig.Dialers) and records, by payload, the bridge's PUBLISHes
// that Mosquitto acknowledged and Mosquitto's PUBLISHes that the bridge
// acknowledged. A SIGKILL may make Mosquitto lose messages it had already
// acknowledged (it saves its state after acknowledging); the tap tells those
// apart from messages the bridge would have lost.
type tap struct {
	mu    sync.Mutex
	acked map[string]bool // bridge -> Mosquitto, PUBACK received
	took  map[string]bool // Mosquitto -> bridge, PUBACK sent
}

func (tp *tap) has(m map[string]bool, p string) bool {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return m[p]
}

func (tp *tap) dialer() client.Dialer {
	return client.DialerFunc(func(ctx context.Context, u *url.URL, _ *tls.Config) (io.ReadWriteCloser, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		return &tapConn{Conn: c, tap: tp, sent: map[uint16]string{}, recv: map[uint16]string{}}, nil
	})
}

type tapConn struct {
	net.Conn
	tap     *tap
	mu      sync.Mutex
	in, out []byte
	sent    map[uint16]string // bridge's PUBLISH: packet identifier -> payload, awaiting PUBACK
	recv    map[uint16]string // Mosquitto's PUBLISH, awaiting the bridge's PUBACK
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.feed(&c.in, p[:n], true)
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.feed(&c.out, p, false)
	return c.Conn.Write(p)
}

// feed appends data to one direction's buffer and records the complete
// packets in it.
func (c *tapConn) feed(buf *[]byte, data []byte, inbound bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*buf = append(*buf, data...)
	b := *buf
	for len(b) >= 2 {
		rem, n, err := packet.DecodeVarint(b[1:])
		if err != nil {
			break
		}
		total := 1 + n + int(rem)
		if len(b) < total {
			break
		}
		h := packet.FixedHeader{Type: packet.Type(b[0] >> 4), Flags: b[0] & 0x0f, Remaining: int(rem)}
		pkt, err := packet.Decode(h, b[1+n:total], packet.V5)
		b = b[total:]
		if err != nil {
			continue
		}
		c.tap.mu.Lock()
		switch p := pkt.(type) {
		case *packet.Publish:
			if p.QoS == 0 {
				break
			}
			if inbound {
				c.recv[p.PacketID] = string(p.Payload)
			} else {
				c.sent[p.PacketID] = string(p.Payload)
			}
		case *packet.Puback:
			pending, done := c.recv, c.tap.took
			if inbound {
				pending, done = c.sent, c.tap.acked
			}
			if pl, ok := pending[p.PacketID]; ok && p.ReasonCode < 0x80 {
				done[pl] = true
				delete(pending, p.PacketID)
			}
		}
		c.tap.mu.Unlock()
	}
	*buf = append((*buf)[:0], b...)
}

// mosquittoClient connects a client with a persistent session to m.
func mosquittoClient(t *testing.T, m *mosquitto, id string, r *rec) *client.Client {
	t.Helper()
	// Clean Start 0 from the first connection: Mosquitto does not persist
	// sessions that began with Clean Start 1.
	o := client.Options{Server: m.url(), ClientID: id, SessionExpiry: 3600, CleanStart: client.CleanStartNever,
		Queue: client.QueueLimits{MaxMessages: 10_000}}
	if r != nil {
		o.DefaultHandler = func(msg *client.Message) { r.add(got{Topic: msg.Topic, Payload: string(msg.Payload), QoS: msg.QoS}) }
	}
	return dialClient(t, o)
}

// TestBridgeMosquitto bridges our broker to Mosquitto at QoS 1 in both
// directions and kills Mosquitto (SIGKILL) mid-stream, then starts it again
// on the same port and persistence directory: every message published
// locally is acknowledged by Mosquitto and every message Mosquitto sent to
// the bridge arrives locally (at least once); and every message arrives at
// the other side, except those Mosquitto itself lost in the crash after
// acknowledging them (reported; none in our runs).
func TestBridgeMosquitto(t *testing.T) {
	m := newMosquitto(t)
	m.start()
	a := newNode(t, "A", false)
	recA := a.sub("down/#", 1)
	recM := &rec{}
	sm := mosquittoClient(t, m, "m-sub", recM)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := sm.Subscribe(ctx, []client.Subscription{{Filter: "up/#", QoS: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	pm := mosquittoClient(t, m, "m-pub", nil)
	tp := &tap{acked: map[string]bool{}, took: map[string]bool{}}
	br := runBridge(t, bridge.Config{
		Name:   "mosq",
		Remote: bridge.RemoteConfig{URL: m.url(), Dialers: map[string]client.Dialer{"mqtt": tp.dialer()}},
		Topics: []bridge.TopicMapping{
			{Pattern: "up/#", Direction: bridge.Out, QoS: 1},
			{Pattern: "down/#", Direction: bridge.In, QoS: 1},
		},
	}, a.local)
	waitConnected(t, br)

	// Two publishers, each at most `window` messages ahead of what the
	// other side received, so that the stream is in full flow when
	// Mosquitto is killed and goes on while it is down.
	const n, window = 1000, 100
	progress := func(r *rec, prefix string) int { d, _ := r.distinct(prefix); return d }
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	wg.Go(func() {
		for i := range n {
			if !poll(func() bool { return i-progress(recM, "up-") < window }) {
				errs <- fmt.Errorf("up stream stuck at %d", i)
				return
			}
			a.pub(fmt.Sprintf("up/%d", i%10), fmt.Sprintf("up-%04d", i), 1)
		}
	})
	wg.Go(func() {
		var toks []*client.Token
		for i := range n {
			if !poll(func() bool { return i-progress(recA, "down-") < window }) {
				errs <- fmt.Errorf("down stream stuck at %d", i)
				return
			}
			toks = append(toks, pm.PublishAsync(ctx, &client.Message{Topic: fmt.Sprintf("down/%d", i%10), Payload: fmt.Appendf(nil, "down-%04d", i), QoS: 1}))
		}
		for _, tok := range toks {
			if err := tok.Wait(ctx); err != nil {
				errs <- err
			}
		}
	})
	waitFor(t, "a quarter of both streams", func() bool { return progress(recM, "up-") >= n/4 && progress(recA, "down-") >= n/4 })
	upAt, downAt := progress(recM, "up-"), progress(recA, "down-")
	m.kill()
	waitFor(t, "the bridge to notice", func() bool { return !br.Status().Connected })
	m.start()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("publish to mosquitto: %v", err)
	}
	ups, downs := make([]string, n), make([]string, n)
	for i := range n {
		ups[i], downs[i] = fmt.Sprintf("up-%04d", i), fmt.Sprintf("down-%04d", i)
	}
	// unsettled lists what the bridge still owes: local messages Mosquitto
	// has not acknowledged, and messages the bridge acknowledged to
	// Mosquitto that did not arrive locally.
	unsettled := func() (up, down []string) {
		for _, p := range ups {
			if !tp.has(tp.acked, p) {
				up = append(up, p)
			}
		}
		for _, p := range downs {
			if tp.has(tp.took, p) && recA.count(p) == 0 {
				down = append(down, p)
			}
		}
		return up, down
	}
	state := func() string {
		u, ud := recM.distinct("up-")
		d, dd := recA.distinct("down-")
		uu, du := unsettled()
		return fmt.Sprintf("up %d distinct (%d dups), down %d distinct (%d dups); unsettled %v %v; %+v; mosquitto log:\n%s",
			u, ud, d, dd, uu, du, br.Status(), m.log())
	}
	waitFor(t, "the bridge to settle every message", func() bool {
		u, d := unsettled()
		return len(u) == 0 && len(d) == 0 && br.Status().QueueDepth == 0
	}, state)
	// Sentinels behind the stream: when they arrive, Mosquitto has sent
	// everything it still had.
	a.pub("up/s", "sentinel-up", 1)
	if err := pm.Publish(ctx, &client.Message{Topic: "down/s", Payload: []byte("sentinel-down"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	recM.wait(t, "sentinel-up")
	recA.wait(t, "sentinel-down")
	var lostUp, lostDown []string
	for i := range n {
		if recM.count(ups[i]) == 0 {
			lostUp = append(lostUp, ups[i])
		}
		if recA.count(downs[i]) == 0 {
			if tp.has(tp.took, downs[i]) {
				t.Errorf("the bridge acknowledged %s, which never arrived", downs[i])
			}
			lostDown = append(lostDown, downs[i])
		}
	}
	_, upDups := recM.distinct("up-")
	_, downDups := recA.distinct("down-")
	t.Logf("mosquitto killed after %d up / %d down messages; %d+%d delivered, duplicates: %d up, %d down; "+
		"lost by Mosquitto after acknowledging them: %d up %v, %d down %v",
		upAt, downAt, n-len(lostUp), n-len(lostDown), upDups, downDups, len(lostUp), lostUp, len(lostDown), lostDown)
}

// TestBridgeMosquittoLate starts the bridge while Mosquitto is down: it
// connects when Mosquitto appears and delivers what was published
// meanwhile.
func TestBridgeMosquittoLate(t *testing.T) {
	m := newMosquitto(t)
	m.start()
	recM := &rec{}
	sm := mosquittoClient(t, m, "m-sub", recM)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := sm.Subscribe(ctx, []client.Subscription{{Filter: "up/#", QoS: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	m.terminate() // saves the subscriber's session

	a := newNode(t, "A", false)
	recA := a.sub("down/#", 1)
	br := runBridge(t, bridge.Config{
		Name:   "late",
		Remote: bridge.RemoteConfig{URL: m.url()},
		Topics: []bridge.TopicMapping{
			{Pattern: "up/#", Direction: bridge.Out, QoS: 1},
			{Pattern: "down/#", Direction: bridge.In, QoS: 1},
		},
	}, a.local)
	waitFor(t, "a failed attempt", func() bool { s := br.Status(); return s.LocalConnected && s.LastError != "" })
	const n = 50
	for i := range n {
		a.pub("up/x", fmt.Sprintf("up-%02d", i), 1)
	}
	m.start()
	waitConnected(t, br)
	waitFor(t, "messages published before Mosquitto started", func() bool { d, _ := recM.distinct("up-"); return d == n })
	pm := mosquittoClient(t, m, "m-pub", nil)
	if err := pm.Publish(ctx, &client.Message{Topic: "down/x", Payload: []byte("down-1"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	recA.wait(t, "down-1")
}
