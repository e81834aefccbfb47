package client

// Client-side conformance tests: each checks a client obligation of the MQTT
// 5.0 standard against the scripted pipe server of engine_test.go, under
// testing/synctest so that time is exact and "nothing was sent" can be
// asserted (synctest.Wait). Each test is cited in docs/conformance.md.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// confPackets reads what the client sends on sc, on a goroutine of its own,
// until the connection closes (then the channel is closed). Use it instead
// of expect when the test must also check that nothing was sent.
func confPackets(sc *serverConn) <-chan packet.Packet {
	ch := make(chan packet.Packet, 128)
	go func() {
		defer close(ch)
		for {
			p, err := sc.r.ReadPacket(sc.v)
			if err != nil {
				return
			}
			ch <- p
		}
	}()
	return ch
}

// confNext returns the next packet the client sent, which must be a T.
func confNext[T packet.Packet](t *testing.T, ch <-chan packet.Packet) T {
	t.Helper()
	var want T
	p, ok := <-ch
	if !ok {
		t.Fatalf("connection closed, want %T", want)
	}
	v, ok := p.(T)
	if !ok {
		t.Fatalf("server got %s (%+v), want %T", p.Type(), p, want)
	}
	return v
}

// confQuiet fails if the client has sent anything once every goroutine of
// the bubble is blocked.
func confQuiet(t *testing.T, ch <-chan packet.Packet, when string) {
	t.Helper()
	synctest.Wait()
	select {
	case p, ok := <-ch:
		if ok {
			t.Fatalf("%s: client sent %s (%+v)", when, p.Type(), p)
		}
	default:
	}
}

// confWrite writes p to the client from a goroutine other than the test's
// (no t.Fatal there); it reports whether the write succeeded.
func confWrite(sc *serverConn, p packet.Packet) bool {
	b, err := p.AppendTo(nil, sc.v)
	if err != nil {
		return false
	}
	_, err = sc.c.Write(b)
	return err == nil
}

// [MQTT-2.2.1-3] Each new SUBSCRIBE, UNSUBSCRIBE and QoS>0 PUBLISH carries a
// non-zero Packet Identifier that no unacknowledged packet holds: here the
// messages of a session resumed from the store hold 1, 2 and 4, so the
// first new packets must skip them.
func TestConformancePacketIdentifiers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore()
		stored := []uint16{1, 2, 4}
		for i, id := range stored {
			store.PutOutbound(id, uint64(i), &packet.Publish{QoS: 1, PacketID: id, Topic: "old"}, false)
		}
		s := newPipeServer(t)
		c, sc := startPipeClient(t, s, Options{Store: store, CleanStart: CleanStartNever, SessionExpiry: 60},
			&packet.Connack{SessionPresent: true})
		pkts := confPackets(sc)
		inUse := map[uint16]string{}
		for _, id := range stored {
			p := confNext[*packet.Publish](t, pkts)
			if p.PacketID != id || !p.Dup {
				t.Fatalf("re-sent %+v, want DUP PUBLISH %d", p, id)
			}
			inUse[id] = "a stored PUBLISH"
		}
		claim := func(kind string, id uint16) {
			t.Helper()
			if id == 0 {
				t.Errorf("%s with Packet Identifier 0", kind)
			}
			if holder, ok := inUse[id]; ok {
				t.Errorf("%s with Packet Identifier %d, still used by %s", kind, id, holder)
			}
			inUse[id] = kind
		}
		ctx := context.Background()
		ctlErr := make(chan error, 4)
		// Subscribe and Unsubscribe wait for their acknowledgement: run them aside.
		go func() {
			_, err := c.Subscribe(ctx, []Subscription{{Filter: "f/1", QoS: 1}}, nil)
			ctlErr <- err
		}()
		sub := confNext[*packet.Subscribe](t, pkts)
		claim("SUBSCRIBE", sub.PacketID)
		go func() {
			_, err := c.Unsubscribe(ctx, "f/0")
			ctlErr <- err
		}()
		unsub := confNext[*packet.Unsubscribe](t, pkts)
		claim("UNSUBSCRIBE", unsub.PacketID)
		var toks []*Token
		for i := range 6 {
			toks = append(toks, c.PublishAsync(ctx, &Message{Topic: "new", QoS: byte(1 + i%2)}))
		}
		var pubs []*packet.Publish
		for range 6 {
			p := confNext[*packet.Publish](t, pkts)
			claim(fmt.Sprintf("PUBLISH QoS %d", p.QoS), p.PacketID)
			pubs = append(pubs, p)
		}
		// A QoS 2 message past PUBREC keeps its identifier until PUBCOMP.
		sc.send(&packet.Pubrec{PacketID: pubs[1].PacketID})
		if r := confNext[*packet.Pubrel](t, pkts); r.PacketID != pubs[1].PacketID {
			t.Fatalf("PUBREL %d, want %d", r.PacketID, pubs[1].PacketID)
		}
		// Acknowledge the rest of the stored messages, then all new ones
		// but that QoS 2 message: their identifiers are free again.
		for _, id := range stored {
			sc.send(&packet.Puback{PacketID: id})
			delete(inUse, id)
		}
		sc.send(&packet.Suback{PacketID: sub.PacketID, ReasonCodes: []packet.ReasonCode{1}},
			&packet.Unsuback{PacketID: unsub.PacketID, ReasonCodes: []packet.ReasonCode{packet.Success}})
		delete(inUse, sub.PacketID)
		delete(inUse, unsub.PacketID)
		for i, p := range pubs {
			if i == 1 {
				continue
			}
			if p.QoS == 1 {
				sc.send(&packet.Puback{PacketID: p.PacketID})
			} else {
				sc.send(&packet.Pubrec{PacketID: p.PacketID})
				confNext[*packet.Pubrel](t, pkts)
				sc.send(&packet.Pubcomp{PacketID: p.PacketID})
			}
			delete(inUse, p.PacketID)
		}
		for range 2 {
			if err := <-ctlErr; err != nil {
				t.Fatal(err)
			}
		}
		for i, tk := range toks {
			if i != 1 {
				if err := tk.Wait(ctx); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
		}
		// New packets still avoid the identifier held by the QoS 2 message.
		more := c.PublishAsync(ctx, &Message{Topic: "more", QoS: 1})
		p := confNext[*packet.Publish](t, pkts)
		claim("PUBLISH QoS 1", p.PacketID)
		sc.send(&packet.Puback{PacketID: p.PacketID}, &packet.Pubcomp{PacketID: pubs[1].PacketID})
		if err := more.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if err := toks[1].Wait(ctx); err != nil {
			t.Fatal(err)
		}
		stopPipeClient(c, sc)
	})
}

// [MQTT-2.2.1-3] After the identifier space wraps around, the client never
// uses 0 and skips the identifiers that are still held: a stored message
// holds 3 and a SUBSCRIBE without SUBACK holds another, while 70,000 QoS 1
// messages go through.
func TestConformancePacketIdentifiersWrap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore()
		store.PutOutbound(3, 0, &packet.Publish{QoS: 1, PacketID: 3, Topic: "old"}, false)
		s := newPipeServer(t)
		c, sc := startPipeClient(t, s, Options{Store: store, CleanStart: CleanStartNever, SessionExpiry: 60},
			&packet.Connack{SessionPresent: true})
		pkts := confPackets(sc)
		if p := confNext[*packet.Publish](t, pkts); p.PacketID != 3 {
			t.Fatalf("re-sent %+v", p)
		}
		ctx := context.Background()
		subErr := make(chan error, 1)
		go func() {
			_, err := c.Subscribe(ctx, []Subscription{{Filter: "held", QoS: 1}}, nil)
			subErr <- err
		}()
		sub := confNext[*packet.Subscribe](t, pkts)
		held := map[uint16]bool{3: true, sub.PacketID: true}
		const total, batch = 70_000, 500
		seen := 0
		wrapped := false
		var last uint16
		for seen < total {
			toks := make([]*Token, batch)
			for i := range toks {
				toks[i] = c.PublishAsync(ctx, &Message{Topic: "w", QoS: 1})
			}
			for range batch {
				p := confNext[*packet.Publish](t, pkts)
				if p.PacketID == 0 || held[p.PacketID] {
					t.Fatalf("PUBLISH %d: Packet Identifier %d is 0 or in use", seen, p.PacketID)
				}
				if p.PacketID < last {
					wrapped = true
				}
				last = p.PacketID
				sc.send(&packet.Puback{PacketID: p.PacketID})
				seen++
			}
			for _, tk := range toks {
				if err := tk.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !wrapped {
			t.Fatal("the identifiers never wrapped around")
		}
		sc.send(&packet.Suback{PacketID: sub.PacketID, ReasonCodes: []packet.ReasonCode{1}}, &packet.Puback{PacketID: 3})
		if err := <-subErr; err != nil {
			t.Fatal(err)
		}
		stopPipeClient(c, sc)
	})
}

// [MQTT-3.1.2-20] "It is the responsibility of the Client to ensure that
// the interval between MQTT Control Packets being sent does not exceed the
// Keep Alive value": a client that only receives (here a QoS 0 message
// every second) must still send PINGREQ within the Keep Alive of its last
// packet, each time (the server answers every PINGREQ at once).
func TestConformanceKeepalivePingWhileReceiving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const keepAlive = 10 * time.Second
		s := newPipeServer(t)
		c, sc := startPipeClient(t, s, Options{Keepalive: KeepaliveConfig{Interval: keepAlive}}, &packet.Connack{})
		lastSent := time.Now() // CONNECT
		pkts := confPackets(sc)
		stop := make(chan struct{})
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if !confWrite(sc, &packet.Publish{Topic: "tick"}) {
						return
					}
				}
			}
		}()
		for i := range 4 {
			confNext[*packet.Pingreq](t, pkts)
			if gap := time.Since(lastSent); gap > keepAlive {
				t.Errorf("PINGREQ %d sent %v after the previous packet, above the Keep Alive %v (75%% would be 7.5s)", i+1, gap, keepAlive)
			}
			lastSent = time.Now()
			confWrite(sc, &packet.Pingresp{})
		}
		close(stop)
		<-stopped
		stopPipeClient(c, sc)
	})
}

// [MQTT-3.1.2-21] [MQTT-3.2.2-21] A Server Keep Alive in CONNACK replaces
// the client's Keep Alive: for when to ping, for when to declare the
// server dead, and when it is 0 (no keep alive at all).
func TestConformanceServerKeepAlive(t *testing.T) {
	t.Run("shorter", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newPipeServer(t)
			ack := &packet.Connack{}
			ack.Props.ServerKeepAlive = 4
			disc := make(chan DisconnectInfo, 1)
			infos := make(chan *ConnectInfo, 1)
			start := time.Now()
			c, sc := startPipeClient(t, s, Options{Keepalive: KeepaliveConfig{Interval: 60 * time.Second}, DisableReconnect: true,
				OnConnect: func(i *ConnectInfo) { infos <- i }, OnDisconnect: func(d DisconnectInfo) { disc <- d }}, ack)
			if ka := (<-infos).KeepAlive; ka != 4*time.Second {
				t.Errorf("ConnectInfo.KeepAlive %v, want 4s", ka)
			}
			pkts := confPackets(sc)
			confNext[*packet.Pingreq](t, pkts)
			if d := time.Since(start); d != 3*time.Second {
				t.Errorf("PINGREQ after %v, want 3s (75%% of the Server Keep Alive 4s, not of 60s)", d)
			}
			// No PINGRESP: dead after 150% of 4s.
			d := <-disc
			if !errors.Is(d.Err, ErrKeepAliveTimeout) {
				t.Errorf("disconnect %v", d.Err)
			}
			if got := time.Since(start); got != 6*time.Second {
				t.Errorf("declared dead after %v, want 6s", got)
			}
			<-c.Done()
			sc.c.Close()
		})
	})
	t.Run("longer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newPipeServer(t)
			ack := &packet.Connack{}
			ack.Props.ServerKeepAlive = 100
			start := time.Now()
			c, sc := startPipeClient(t, s, Options{Keepalive: KeepaliveConfig{Interval: 5 * time.Second}}, ack)
			pkts := confPackets(sc)
			confNext[*packet.Pingreq](t, pkts)
			if d := time.Since(start); d != 75*time.Second {
				t.Errorf("PINGREQ after %v, want 75s (75%% of the Server Keep Alive 100s, not of 5s)", d)
			}
			if !c.IsConnected() {
				t.Error("not connected")
			}
			stopPipeClient(c, sc)
		})
	})
	t.Run("zero", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newPipeServer(t)
			ack := &packet.Connack{}
			ack.Props.Set(packet.PropServerKeepAlive) // present, value 0: no keep alive
			c, sc := startPipeClient(t, s, Options{Keepalive: KeepaliveConfig{Interval: 10 * time.Second}}, ack)
			pkts := confPackets(sc)
			time.Sleep(time.Hour)
			confQuiet(t, pkts, "an hour with Server Keep Alive 0")
			if !c.IsConnected() {
				t.Error("connection dropped with Server Keep Alive 0")
			}
			stopPipeClient(c, sc)
		})
	})
}

// [MQTT-3.2.2-5] A client with session state that gets Session Present 0
// discards it: no PUBREL or DUP PUBLISH for its old outbound messages, and
// the identifier of an inbound QoS 2 message past PUBREC names a new
// message again (delivered, not taken for a duplicate).
func TestConformanceSessionPresent0DiscardsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		col := newCollector()
		store := NewMemoryStore()
		c, sc := startPipeClient(t, s, Options{SessionExpiry: 60, Store: store, DefaultHandler: col.handle,
			Backoff: Backoff{Initial: time.Second, Jitter: -1}}, &packet.Connack{})
		pkts := confPackets(sc)
		ctx := context.Background()
		// Inbound QoS 2, acknowledged with PUBREC, no PUBREL yet.
		sc.send(&packet.Publish{QoS: 2, PacketID: 7, Topic: "in", Payload: []byte("old")})
		confNext[*packet.Pubrec](t, pkts)
		// Outbound QoS 2: one at the PUBREL stage, one unacknowledged.
		ta := c.PublishAsync(ctx, &Message{Topic: "a", QoS: 2})
		tb := c.PublishAsync(ctx, &Message{Topic: "b", QoS: 2})
		pa := confNext[*packet.Publish](t, pkts)
		confNext[*packet.Publish](t, pkts)
		sc.send(&packet.Pubrec{PacketID: pa.PacketID})
		confNext[*packet.Pubrel](t, pkts)
		synctest.Wait()
		if out, in, _ := store.Load(); len(out) != 2 || len(in) != 1 {
			t.Fatalf("session state before: %d outbound, %d inbound; want 2, 1", len(out), len(in))
		}
		sc.c.Close()

		sc2, conn := s.accept(packet.V5)
		if conn.CleanStart {
			t.Fatal("reconnection with Clean Start")
		}
		sc2.send(&packet.Connack{SessionPresent: false})
		pkts2 := confPackets(sc2)
		confQuiet(t, pkts2, "after Session Present 0")
		for i, tk := range []*Token{ta, tb} {
			if err := tk.Wait(ctx); !errors.Is(err, ErrSessionLost) {
				t.Errorf("outbound %d: %v, want ErrSessionLost", i, err)
			}
		}
		if out, in, _ := store.Load(); len(out) != 0 || len(in) != 0 {
			t.Errorf("session state kept: %d outbound, %d inbound", len(out), len(in))
		}
		// Identifier 7 is a new message on the new session.
		sc2.send(&packet.Publish{QoS: 2, PacketID: 7, Topic: "in", Payload: []byte("new")})
		if r := confNext[*packet.Pubrec](t, pkts2); r.PacketID != 7 || r.ReasonCode.IsError() {
			t.Fatalf("PUBREC %+v", r)
		}
		sc2.send(&packet.Pubrel{PacketID: 7})
		if r := confNext[*packet.Pubcomp](t, pkts2); r.PacketID != 7 || r.ReasonCode != packet.Success {
			t.Fatalf("PUBCOMP %+v", r)
		}
		synctest.Wait()
		if got := col.payloads(); len(got) != 2 || got[0] != "old" || got[1] != "new" {
			t.Errorf("delivered %q, want [old new]", got)
		}
		stopPipeClient(c, sc2)
	})
}

// [MQTT-3.3.2-10] The client accepts every Topic Alias from 1 to the Topic
// Alias Maximum it sent, both to set an alias and to use it (and refuses
// the next one, which shows that the test would notice a refusal).
func TestConformanceInboundTopicAliases(t *testing.T) {
	for _, max := range []uint16{10, 65535} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newPipeServer(t)
				col := newCollector()
				disc := make(chan DisconnectInfo, 1)
				c, err := New(s.options(Options{TopicAliasMaximum: max, DefaultHandler: col.handle, DisableReconnect: true,
					OnDisconnect: func(d DisconnectInfo) { disc <- d }}))
				if err != nil {
					t.Fatal(err)
				}
				srv := make(chan *serverConn)
				go func() {
					sc, conn := s.accept(packet.V5)
					if conn.Props.TopicAliasMaximum != max {
						t.Errorf("CONNECT Topic Alias Maximum %d, want %d", conn.Props.TopicAliasMaximum, max)
					}
					sc.send(&packet.Connack{})
					srv <- sc
				}()
				if _, err := c.Connect(context.Background()); err != nil {
					t.Fatal(err)
				}
				sc := <-srv
				pkts := confPackets(sc)
				aliases := []uint16{1, 2, max / 2, max - 1, max}
				if max <= 10 {
					aliases = aliases[:0]
					for a := uint16(1); a <= max; a++ {
						aliases = append(aliases, a)
					}
				}
				var want []string
				for _, a := range aliases { // set
					p := &packet.Publish{Topic: fmt.Sprintf("alias/%d", a), Payload: []byte("set")}
					p.Props.TopicAlias = a
					sc.send(p)
					want = append(want, p.Topic)
				}
				for i := len(aliases) - 1; i >= 0; i-- { // use, QoS 1
					a := aliases[i]
					p := &packet.Publish{QoS: 1, PacketID: uint16(i + 1), Payload: []byte("use")}
					p.Props.TopicAlias = a
					sc.send(p)
					if r := confNext[*packet.Puback](t, pkts); r.PacketID != uint16(i+1) || r.ReasonCode.IsError() {
						t.Fatalf("alias %d: PUBACK %+v", a, r)
					}
					want = append(want, fmt.Sprintf("alias/%d", a))
				}
				synctest.Wait()
				col.mu.Lock()
				if len(col.msgs) != len(want) {
					t.Errorf("delivered %d messages, want %d", len(col.msgs), len(want))
				}
				for i, m := range col.msgs {
					if i < len(want) && m.Topic != want[i] {
						t.Errorf("message %d: topic %q, want %q", i, m.Topic, want[i])
					}
				}
				col.mu.Unlock()
				if !c.IsConnected() {
					t.Fatal("connection dropped")
				}
				if max < 65535 {
					p := &packet.Publish{Topic: "alias/over"}
					p.Props.TopicAlias = max + 1
					sc.send(p)
					if d := confNext[*packet.Disconnect](t, pkts); d.ReasonCode != packet.TopicAliasInvalid {
						t.Errorf("alias %d: DISCONNECT %v, want Topic Alias invalid", max+1, d.ReasonCode)
					}
					<-disc
					<-c.Done()
					sc.c.Close()
					return
				}
				stopPipeClient(c, sc)
			})
		})
	}
}

// [MQTT-3.3.4-7] [MQTT-3.3.4-8] With the server's Receive Maximum reached,
// the client holds back further QoS>0 PUBLISH packets, and nothing else:
// SUBSCRIBE, UNSUBSCRIBE, PUBACK, PUBREC, PUBCOMP, PUBREL, PINGREQ and
// DISCONNECT all leave at once.
func TestConformanceReceiveMaximumHoldsOnlyPublish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		ack := &packet.Connack{}
		ack.Props.ReceiveMaximum = 2
		start := time.Now()
		c, sc := startPipeClient(t, s, Options{Keepalive: KeepaliveConfig{Interval: 10 * time.Second},
			DefaultHandler: func(*Message) {}}, ack)
		pkts := confPackets(sc)
		ctx := context.Background()
		for _, m := range []*Message{{Topic: "a", QoS: 2}, {Topic: "b", QoS: 1}, {Topic: "c", QoS: 1}, {Topic: "d", QoS: 2}} {
			c.PublishAsync(ctx, m)
		}
		pa := confNext[*packet.Publish](t, pkts)
		pb := confNext[*packet.Publish](t, pkts)
		if pa.Topic != "a" || pb.Topic != "b" {
			t.Fatalf("sent %q, %q", pa.Topic, pb.Topic)
		}
		confQuiet(t, pkts, "two PUBLISHes unacknowledged, Receive Maximum 2")

		ctlErr := make(chan error, 1)
		go func() {
			_, err := c.Subscribe(ctx, []Subscription{{Filter: "s", QoS: 1}}, nil)
			ctlErr <- err
		}()
		sub := confNext[*packet.Subscribe](t, pkts)
		sc.send(&packet.Suback{PacketID: sub.PacketID, ReasonCodes: []packet.ReasonCode{1}})
		if err := <-ctlErr; err != nil {
			t.Fatal(err)
		}
		go func() {
			_, err := c.Unsubscribe(ctx, "s")
			ctlErr <- err
		}()
		unsub := confNext[*packet.Unsubscribe](t, pkts)
		sc.send(&packet.Unsuback{PacketID: unsub.PacketID, ReasonCodes: []packet.ReasonCode{packet.Success}})
		if err := <-ctlErr; err != nil {
			t.Fatal(err)
		}
		sc.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "in"})
		if r := confNext[*packet.Puback](t, pkts); r.PacketID != 1 {
			t.Fatalf("PUBACK %+v", r)
		}
		sc.send(&packet.Publish{QoS: 2, PacketID: 2, Topic: "in"})
		if r := confNext[*packet.Pubrec](t, pkts); r.PacketID != 2 {
			t.Fatalf("PUBREC %+v", r)
		}
		sc.send(&packet.Pubrel{PacketID: 2})
		if r := confNext[*packet.Pubcomp](t, pkts); r.PacketID != 2 {
			t.Fatalf("PUBCOMP %+v", r)
		}
		sc.send(&packet.Pubrec{PacketID: pa.PacketID})
		if r := confNext[*packet.Pubrel](t, pkts); r.PacketID != pa.PacketID {
			t.Fatalf("PUBREL %+v", r)
		}
		confQuiet(t, pkts, "a at PUBREL, b unacknowledged")
		confNext[*packet.Pingreq](t, pkts)
		if d := time.Since(start); d != 7500*time.Millisecond {
			t.Errorf("PINGREQ after %v, want 7.5s", d)
		}
		sc.send(&packet.Pingresp{})
		// A permit returns: c leaves, d still waits.
		sc.send(&packet.Pubcomp{PacketID: pa.PacketID})
		if p := confNext[*packet.Publish](t, pkts); p.Topic != "c" {
			t.Fatalf("sent %q, want c", p.Topic)
		}
		confQuiet(t, pkts, "b and c unacknowledged")
		discErr := make(chan error, 1)
		go func() { discErr <- c.Disconnect(ctx, packet.NormalDisconnection, KeepSessionExpiry) }()
		confNext[*packet.Disconnect](t, pkts)
		if err := <-discErr; err != nil {
			t.Errorf("disconnect: %v", err)
		}
		<-c.Done()
		sc.c.Close()
	})
}

// [MQTT-4.5.0-2] Every QoS 1 and 2 PUBLISH is acknowledged, whether or
// not the application processes it: no handler matches, the handler
// panics, or (manual acknowledgement) no handler is there to acknowledge.
func TestConformanceAcknowledgeUnprocessed(t *testing.T) {
	cases := []struct {
		name string
		o    Options
	}{
		{"no handler", Options{}},
		{"handler panics", Options{DefaultHandler: func(*Message) { panic("not processed") }}},
		{"manual ack without a handler", Options{ManualAck: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newPipeServer(t)
				c, sc := startPipeClient(t, s, tc.o, &packet.Connack{})
				pkts := confPackets(sc)
				sc.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "nobody/1"}, &packet.Publish{QoS: 2, PacketID: 2, Topic: "nobody/2"})
				if r := confNext[*packet.Puback](t, pkts); r.PacketID != 1 || r.ReasonCode != packet.Success {
					t.Errorf("PUBACK %+v", r)
				}
				if r := confNext[*packet.Pubrec](t, pkts); r.PacketID != 2 || r.ReasonCode != packet.Success {
					t.Errorf("PUBREC %+v", r)
				}
				sc.send(&packet.Pubrel{PacketID: 2})
				if r := confNext[*packet.Pubcomp](t, pkts); r.PacketID != 2 || r.ReasonCode != packet.Success {
					t.Errorf("PUBCOMP %+v", r)
				}
				stopPipeClient(c, sc)
			})
		})
	}
}

// [MQTT-4.6.0-1] PUBLISH packets are re-sent in the order they were first
// sent, also when the new connection's Receive Maximum makes the client
// re-send them in several rounds, and when the session comes from the
// store with identifiers out of order.
func TestConformanceResendOrder(t *testing.T) {
	t.Run("reconnection", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newPipeServer(t)
			c, sc := startPipeClient(t, s, Options{SessionExpiry: 60, Backoff: Backoff{Initial: time.Second, Jitter: -1}}, &packet.Connack{})
			pkts := confPackets(sc)
			ctx := context.Background()
			const n = 12
			toks := make([]*Token, n)
			for i := range n {
				toks[i] = c.PublishAsync(ctx, &Message{Topic: "order", QoS: byte(1 + i%2), Payload: []byte{byte(i)}})
			}
			first := make([]*packet.Publish, n)
			for i := range n {
				first[i] = confNext[*packet.Publish](t, pkts)
				if first[i].Payload[0] != byte(i) {
					t.Fatalf("first transmission out of order: %d at %d", first[i].Payload[0], i)
				}
			}
			// Message 3 (QoS 2) reaches the PUBREL stage; message 4 completes.
			sc.send(&packet.Pubrec{PacketID: first[3].PacketID})
			confNext[*packet.Pubrel](t, pkts)
			sc.send(&packet.Puback{PacketID: first[4].PacketID})
			if err := toks[4].Wait(ctx); err != nil {
				t.Fatal(err)
			}
			sc.c.Close()
			for range pkts {
			}

			sc2, _ := s.accept(packet.V5)
			ack := &packet.Connack{SessionPresent: true}
			ack.Props.ReceiveMaximum = 3
			sc2.send(ack)
			pkts2 := confPackets(sc2)
			var order []byte
			for left := n - 1; left > 0; {
				switch p := (<-pkts2).(type) {
				case *packet.Publish:
					i := p.Payload[0]
					if !p.Dup || p.PacketID != first[i].PacketID {
						t.Errorf("re-sent message %d: DUP %v, identifier %d (was %d)", i, p.Dup, p.PacketID, first[i].PacketID)
					}
					order = append(order, i)
					if p.QoS == 1 {
						sc2.send(&packet.Puback{PacketID: p.PacketID})
						left--
					} else {
						sc2.send(&packet.Pubrec{PacketID: p.PacketID})
					}
				case *packet.Pubrel:
					sc2.send(&packet.Pubcomp{PacketID: p.PacketID})
					left--
				case nil:
					t.Fatal("connection closed")
				default:
					t.Fatalf("unexpected %s", p.Type())
				}
			}
			want := []byte{0, 1, 2, 5, 6, 7, 8, 9, 10, 11}
			if string(order) != string(want) {
				t.Errorf("re-sent in order %v, want %v", order, want)
			}
			for i, tk := range toks {
				if err := tk.Wait(ctx); err != nil {
					t.Errorf("message %d: %v", i, err)
				}
			}
			stopPipeClient(c, sc2)
		})
	})
	t.Run("store", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := NewMemoryStore()
			type st struct {
				id     uint16
				qos    byte
				pubrel bool
			}
			stored := []st{{9, 1, false}, {3, 2, false}, {7, 2, true}, {1, 1, false}, {5, 2, false}}
			for seq, m := range stored {
				store.PutOutbound(m.id, uint64(seq), &packet.Publish{QoS: m.qos, PacketID: m.id, Topic: "s", Payload: []byte{byte(seq)}}, m.pubrel)
			}
			s := newPipeServer(t)
			c, sc := startPipeClient(t, s, Options{Store: store, CleanStart: CleanStartNever, SessionExpiry: 60},
				&packet.Connack{SessionPresent: true})
			pkts := confPackets(sc)
			for _, m := range stored {
				if m.pubrel {
					if r := confNext[*packet.Pubrel](t, pkts); r.PacketID != m.id {
						t.Errorf("PUBREL %d, want %d", r.PacketID, m.id)
					}
					continue
				}
				if p := confNext[*packet.Publish](t, pkts); p.PacketID != m.id || !p.Dup {
					t.Errorf("re-sent PUBLISH %d (DUP %v), want %d", p.PacketID, p.Dup, m.id)
				}
			}
			stopPipeClient(c, sc)
		})
	})
}

// [MQTT-4.6.0-2] [MQTT-4.6.0-3] PUBACK and PUBREC leave in the order the
// PUBLISHes arrived, QoS 1 and 2 interleaved, whatever the order in which
// the application acknowledges them.
func TestConformanceAckOrderMixed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		col := newCollector()
		c, sc := startPipeClient(t, s, Options{DefaultHandler: col.handle, ManualAck: true}, &packet.Connack{})
		pkts := confPackets(sc)
		qos := []byte{2, 1, 2, 2, 1}
		for i, q := range qos {
			sc.send(&packet.Publish{QoS: q, PacketID: uint16(i + 1), Topic: "o"})
		}
		synctest.Wait()
		col.mu.Lock()
		msgs := append([]*Message(nil), col.msgs...)
		col.mu.Unlock()
		if len(msgs) != len(qos) {
			t.Fatalf("delivered %d", len(msgs))
		}
		for i := len(msgs) - 1; i >= 1; i-- {
			if i == 2 {
				msgs[i].Reject(packet.ImplementationSpecificError)
			} else {
				msgs[i].Ack()
			}
			confQuiet(t, pkts, fmt.Sprintf("message %d acknowledged before message 1", i+1))
		}
		msgs[0].Ack()
		for i, q := range qos {
			id := uint16(i + 1)
			var gotID uint16
			var code packet.ReasonCode
			if q == 1 {
				a := confNext[*packet.Puback](t, pkts)
				gotID, code = a.PacketID, a.ReasonCode
			} else {
				r := confNext[*packet.Pubrec](t, pkts)
				gotID, code = r.PacketID, r.ReasonCode
			}
			if gotID != id {
				t.Fatalf("acknowledgement %d for PUBLISH %d", i+1, gotID)
			}
			if (i == 2) != (code == packet.ImplementationSpecificError) {
				t.Errorf("acknowledgement of %d: code %v", id, code)
			}
		}
		sc.send(&packet.Pubrel{PacketID: 1}, &packet.Pubrel{PacketID: 4})
		confNext[*packet.Pubcomp](t, pkts)
		confNext[*packet.Pubcomp](t, pkts)
		stopPipeClient(c, sc)
	})
}

// [MQTT-4.6.0-4] PUBREL packets leave in the order the PUBRECs arrived,
// not in the order of the PUBLISHes.
func TestConformancePubrelOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		c, sc := startPipeClient(t, s, Options{}, &packet.Connack{})
		pkts := confPackets(sc)
		ctx := context.Background()
		toks := make([]*Token, 4)
		for i := range toks {
			toks[i] = c.PublishAsync(ctx, &Message{Topic: "r", QoS: 2})
		}
		pubs := make([]*packet.Publish, len(toks))
		for i := range pubs {
			pubs[i] = confNext[*packet.Publish](t, pkts)
		}
		for _, i := range []int{2, 0, 3, 1} {
			sc.send(&packet.Pubrec{PacketID: pubs[i].PacketID})
			synctest.Wait()
		}
		for _, i := range []int{2, 0, 3, 1} {
			if r := confNext[*packet.Pubrel](t, pkts); r.PacketID != pubs[i].PacketID {
				t.Errorf("PUBREL %d, want %d", r.PacketID, pubs[i].PacketID)
			}
		}
		for _, p := range pubs {
			sc.send(&packet.Pubcomp{PacketID: p.PacketID})
		}
		for i, tk := range toks {
			if err := tk.Wait(ctx); err != nil {
				t.Errorf("publish %d: %v", i, err)
			}
		}
		stopPipeClient(c, sc)
	})
}

// [MQTT-3.2.2-11] [MQTT-3.2.2-14] [MQTT-3.2.2-15] [MQTT-3.2.2-17]
// [MQTT-3.3.2-9] [MQTT-3.3.4-6] The limits the server announces in CONNACK
// are kept: a publish or subscribe that would break one is refused locally
// and nothing reaches the server; automatic Topic Aliases stay within the
// maximum.
func TestConformanceServerLimitsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		ack := &packet.Connack{}
		ack.Props.MaximumQoS = 1
		ack.Props.Set(packet.PropMaximumQoS)
		ack.Props.RetainAvailable = 0
		ack.Props.Set(packet.PropRetainAvailable)
		ack.Props.MaximumPacketSize = 64
		ack.Props.TopicAliasMaximum = 2
		c, sc := startPipeClient(t, s, Options{TopicAliases: true}, ack)
		pkts := confPackets(sc)
		ctx := context.Background()
		for _, r := range []struct {
			what string
			m    *Message
			code packet.ReasonCode
		}{
			{"QoS 2 with Maximum QoS 1", &Message{Topic: "q", QoS: 2}, packet.QoSNotSupported},
			{"RETAIN with Retain Available 0", &Message{Topic: "r", Retain: true}, packet.RetainNotSupported},
			{"100-byte payload with Maximum Packet Size 64", &Message{Topic: "big", Payload: make([]byte, 100)}, packet.PacketTooLarge},
			{"Topic Alias 3 with Topic Alias Maximum 2", &Message{Topic: "al", TopicAlias: 3}, packet.TopicAliasInvalid},
			{"a Subscription Identifier", &Message{Topic: "s", SubscriptionIDs: []uint32{1}}, packet.ProtocolError},
		} {
			if err := c.Publish(ctx, r.m); !errors.Is(err, r.code) {
				t.Errorf("%s: %v, want %v", r.what, err, r.code)
			}
			confQuiet(t, pkts, r.what)
		}
		if _, err := c.Subscribe(ctx, []Subscription{{Filter: strings.Repeat("f", 100)}}, nil); !errors.Is(err, packet.PacketTooLarge) {
			t.Errorf("SUBSCRIBE above Maximum Packet Size: %v", err)
		}
		confQuiet(t, pkts, "SUBSCRIBE above Maximum Packet Size")
		// Automatic aliases over five topics, twice: only 1 and 2 are used.
		for round := range 2 {
			for i := range 5 {
				if err := c.Publish(ctx, &Message{Topic: fmt.Sprintf("t/%d", i), Payload: []byte{byte(round)}}); err != nil {
					t.Fatal(err)
				}
				p := confNext[*packet.Publish](t, pkts)
				if a := p.Props.TopicAlias; a < 1 || a > 2 {
					t.Errorf("round %d topic %d: Topic Alias %d, want 1 or 2", round, i, a)
				}
				if b, _ := p.AppendTo(nil, packet.V5); len(b) > 64 {
					t.Errorf("PUBLISH of %d bytes", len(b))
				}
			}
		}
		// What is allowed is sent.
		tk := c.PublishAsync(ctx, &Message{Topic: "ok", QoS: 1, Payload: make([]byte, 20)})
		p := confNext[*packet.Publish](t, pkts)
		if p.QoS != 1 || p.Retain {
			t.Errorf("sent %+v", p)
		}
		sc.send(&packet.Puback{PacketID: p.PacketID})
		if err := tk.Wait(ctx); err != nil {
			t.Error(err)
		}
		if !c.IsConnected() {
			t.Error("refusals must not cost the connection")
		}
		stopPipeClient(c, sc)
	})
}

// [MQTT-3.2.2-18] Without a Topic Alias Maximum in CONNACK the client
// sends no Topic Alias: an explicit one is refused locally, automatic ones
// are not used.
func TestConformanceNoServerTopicAliases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		c, sc := startPipeClient(t, s, Options{TopicAliases: true}, &packet.Connack{})
		pkts := confPackets(sc)
		ctx := context.Background()
		if err := c.Publish(ctx, &Message{Topic: "a", TopicAlias: 1}); !errors.Is(err, packet.TopicAliasInvalid) {
			t.Errorf("explicit alias: %v", err)
		}
		confQuiet(t, pkts, "explicit alias without a server maximum")
		for range 3 {
			if err := c.Publish(ctx, &Message{Topic: "a"}); err != nil {
				t.Fatal(err)
			}
			if p := confNext[*packet.Publish](t, pkts); p.Props.Has(packet.PropTopicAlias) || p.Topic != "a" {
				t.Errorf("sent topic %q alias %d", p.Topic, p.Props.TopicAlias)
			}
		}
		stopPipeClient(c, sc)
	})
}

// [MQTT-3.1.2-30] [MQTT-4.12.0-3] [MQTT-4.12.1-1] With an Authentication
// Method, the client sends nothing but AUTH until CONNACK (not even
// PINGREQ when the exchange outlasts its Keep Alive); its AUTH answers
// carry reason 0x18 and, on re-authentication too, the method of CONNECT.
func TestConformanceAuthExchange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		c, err := New(s.options(Options{Auth: &testAuth{}, Keepalive: KeepaliveConfig{Interval: 2 * time.Second}}))
		if err != nil {
			t.Fatal(err)
		}
		srv := make(chan *serverConn)
		go func() {
			sc, conn := s.accept(packet.V5)
			if conn.Props.AuthMethod != "TEST" {
				t.Errorf("CONNECT method %q", conn.Props.AuthMethod)
			}
			ch := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
			ch.Props.AuthMethod, ch.Props.AuthData = "TEST", []byte("server-first")
			sc.send(ch)
			srv <- sc
		}()
		connected := make(chan error, 1)
		go func() {
			_, err := c.Connect(context.Background())
			connected <- err
		}()
		sc := <-srv
		pkts := confPackets(sc)
		a := confNext[*packet.Auth](t, pkts)
		if a.ReasonCode != packet.ContinueAuthentication || a.Props.AuthMethod != "TEST" {
			t.Errorf("AUTH %v method %q", a.ReasonCode, a.Props.AuthMethod)
		}
		// The server takes 10 s (five Keep Alives) to answer.
		time.Sleep(10 * time.Second)
		confQuiet(t, pkts, "before CONNACK")
		ack := &packet.Connack{}
		ack.Props.AuthMethod, ack.Props.AuthData = "TEST", []byte("server-final")
		sc.send(ack)
		if err := <-connected; err != nil {
			t.Fatal(err)
		}
		reauth := make(chan error, 1)
		go func() { reauth <- c.Reauthenticate(context.Background()) }()
		a = confNext[*packet.Auth](t, pkts)
		if a.ReasonCode != packet.ReAuthenticate || a.Props.AuthMethod != "TEST" {
			t.Errorf("re-authentication AUTH %v method %q", a.ReasonCode, a.Props.AuthMethod)
		}
		ch := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
		ch.Props.AuthMethod, ch.Props.AuthData = "TEST", []byte("server-first")
		sc.send(ch)
		a = confNext[*packet.Auth](t, pkts)
		if a.ReasonCode != packet.ContinueAuthentication || a.Props.AuthMethod != "TEST" {
			t.Errorf("re-authentication answer %v method %q", a.ReasonCode, a.Props.AuthMethod)
		}
		ok := &packet.Auth{ReasonCode: packet.Success}
		ok.Props.AuthMethod, ok.Props.AuthData = "TEST", []byte("server-final")
		sc.send(ok)
		if err := <-reauth; err != nil {
			t.Error(err)
		}
		stopPipeClient(c, sc)
	})
}

// [MQTT-4.12.0-7] Without an Authentication Method in CONNECT the client
// sends no AUTH: Reauthenticate is refused locally.
func TestConformanceNoAuthMethod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		c, sc := startPipeClient(t, s, Options{}, &packet.Connack{})
		pkts := confPackets(sc)
		if err := c.Reauthenticate(context.Background()); !errors.Is(err, ErrNoAuth) {
			t.Errorf("Reauthenticate: %v", err)
		}
		confQuiet(t, pkts, "Reauthenticate without Auth")
		stopPipeClient(c, sc)
	})
}
