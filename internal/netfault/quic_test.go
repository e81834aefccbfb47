package netfault_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/internal/netfault"
	"github.com/mqtt5go/mqtt5/internal/testcerts"
	"github.com/mqtt5go/mqtt5/transport"
)

// A QUIC client moves from one network to another: its namespace has two
// links to the broker's, the first carries the connection, then that link
// is cut and its address removed while the route to the broker moves to
// the second link with a new address, and Client.Migrate moves the
// connection there. The connection (and so the session) lives on: no
// reconnection, QoS 1 messages flow before, across and after the move,
// and the broker answers on the new address.
func TestQUICMigration(t *testing.T) {
	netfault.Require(t)
	cns, bns := netfault.NewNetns(t, "cli"), netfault.NewNetns(t, "brk")
	link1 := netfault.NewTUNLink(t, netfault.End{NS: cns, Dev: "mq0", Addr: clientAddr}, netfault.End{NS: bns, Dev: "mq0", Addr: brokerAddr},
		netfault.LinkConfig{Impairment: netfault.Impairment{Delay: 10 * time.Millisecond}})
	link2 := netfault.NewTUNLink(t, netfault.End{NS: cns, Dev: "mq1", Addr: clientAddr2}, netfault.End{NS: bns, Dev: "mq1", Addr: brokerAddr2},
		netfault.LinkConfig{Impairment: netfault.Impairment{Delay: 30 * time.Millisecond}})
	// The client reaches the broker's address through the first link,
	// from the first link's address.
	if err := cns.IP("route", "replace", brokerAddr.String()+"/32", "dev", "mq0", "src", clientAddr.String()); err != nil {
		t.Fatal(err)
	}

	ca := testcerts.NewCA(t, "netfault CA")
	cert := ca.Issue(t, "broker", testcerts.Options{Hosts: []string{brokerAddr.String()}})
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert.TLSCertificate(t)}}
	brk := broker.New(broker.Config{SysInterval: -1, Logger: quietLogger()})
	errc := make(chan error, 1)
	if err := bns.Do(func() error {
		ql, err := transport.Listen(context.Background(), transport.ListenConfig{URL: "quic://" + netip.AddrPortFrom(brokerAddr, 14567).String(), TLS: srvTLS})
		if err != nil {
			return err
		}
		go func() { errc <- brk.Serve(ql) }()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		brk.Shutdown(ctx)
		<-errc
	})

	quicDialer := client.DialerFunc(func(ctx context.Context, u *url.URL, tc *tls.Config) (io.ReadWriteCloser, error) {
		var c io.ReadWriteCloser
		err := cns.Do(func() (err error) {
			c, err = transport.Dial(ctx, u, transport.DialConfig{TLS: tc})
			return err
		})
		return c, err
	})
	var ev events
	o := client.Options{
		Server: "quic://" + netip.AddrPortFrom(brokerAddr, 14567).String(), ClientID: "mig", SessionExpiry: 600,
		TLSConfig: &tls.Config{RootCAs: ca.Pool()},
		Dialers:   map[string]client.Dialer{"quic": quicDialer},
		Keepalive: client.KeepaliveConfig{Interval: 30 * time.Second},
	}
	ev.hook(&o)
	c := newClient(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 2*pollTimeout)
	defer cancel()
	got := newTally()
	if _, err := c.Subscribe(ctx, []client.Subscription{{Filter: "mig/#", QoS: 1}}, got.handler()); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var ack acked
	publish := func(from, n int) {
		for i := from; i < from+n; i++ {
			p := fmt.Sprintf("m-%04d", i)
			tok := c.PublishAsync(ctx, &client.Message{Topic: "mig/x", QoS: 1, Payload: []byte(p)})
			wg.Go(func() { ack.add(p, tok.Wait(ctx)) })
		}
	}
	const n = 200
	publish(0, n)
	wg.Wait()
	waitFor(t, "the messages sent before the move", func() bool { return got.count(fmt.Sprintf("m-%04d", n-1)) > 0 })
	oldPath := link1.DeliveredTo(clientAddr)
	var oldPort uint16
	for ap := range link1.Delivered() {
		if ap.Addr() == clientAddr {
			oldPort = ap.Port()
		}
	}
	if oldPath == 0 || oldPort == 0 {
		t.Fatal("nothing reached the client's UDP socket over the first link")
	}

	// The first network goes away: its link is cut, its address removed,
	// and the route to the broker moves to the second link, with the
	// second link's address as source. Messages are in flight meanwhile.
	link1.Cut()
	publish(n, n)
	if err := cns.IP("route", "replace", brokerAddr.String()+"/32", "dev", "mq1", "src", clientAddr2.String()); err != nil {
		t.Fatal(err)
	}
	if err := cns.IP("addr", "del", clientAddr.String()+"/32", "dev", "mq0"); err != nil {
		t.Fatal(err)
	}
	// The new UDP socket Migrate opens must belong to the client's
	// namespace: call it from there.
	start := time.Now()
	if err := cns.Do(func() error { return c.Migrate(ctx) }); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	migrated := time.Since(start)
	publish(2*n, n)
	wg.Wait()
	list, errs := ack.snapshot()
	for _, err := range errs {
		t.Errorf("publish: %v", err)
	}
	waitFor(t, "every acknowledged message", func() bool { return got.missing(list) == 0 })
	if cn, dn := ev.counts(); cn != 1 || dn != 0 {
		t.Errorf("the client connected %d times and lost %d connections, want one connection throughout", cn, dn)
	}
	// The old socket (bound to the wildcard address) follows the route
	// too, and the server may follow it to the new address; only the new
	// socket Migrate opened has another port. The broker must have
	// answered there.
	var newPath uint64
	var newPort uint16
	for ap, n := range link2.Delivered() {
		if ap.Addr() == clientAddr2 && ap.Port() != oldPort {
			newPath, newPort = newPath+n, ap.Port()
		}
	}
	if newPath == 0 {
		t.Errorf("the broker never sent to a new socket at %v (deliveries on link 2: %v)", clientAddr2, link2.Delivered())
	}
	if after := link1.DeliveredTo(clientAddr); after != oldPath {
		t.Errorf("%d packets delivered over the cut link", after-oldPath)
	}
	extra, payloads := got.extra()
	t.Logf("QUIC connection moved from %v (link 1, %d packets to the client) to %v (link 2, %d packets to the new socket) in %v; %d QoS 1 messages acknowledged (%d sent while the old path was gone), all received; %d extra deliveries (%d messages); link 1: %v; link 2: %v",
		netip.AddrPortFrom(clientAddr, oldPort), oldPath, netip.AddrPortFrom(clientAddr2, newPort), newPath, migrated.Round(time.Millisecond), len(list), n, extra, payloads, link1.Stats(), link2.Stats())
	for _, l := range []*netfault.TUNLink{link1, link2} {
		if err := l.Err(); err != nil {
			t.Error(err)
		}
	}
}
