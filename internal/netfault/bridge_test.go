package netfault_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/bridge"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/internal/netfault"
)

// bridgeImpairment is the link between the two brokers of TestBridgeCut
// when it is not cut.
var bridgeImpairment = netfault.Impairment{Delay: 20 * time.Millisecond, Loss: 0.05}

// Two of our brokers, A and B, each in its own namespace, joined by a
// bridge from A to B (QoS 1, on-disk queue) over an impaired link that is
// then cut: the messages published on A while the link is cut reach B's
// subscriber after the restore, none lost; duplicates (allowed at QoS 1)
// are counted.
func TestBridgeCut(t *testing.T) {
	netfault.Require(t)
	ans, bns := netfault.NewNetns(t, "bra"), netfault.NewNetns(t, "brb")
	link := netfault.NewTUNLink(t, netfault.End{NS: ans, Dev: "mq0", Addr: clientAddr}, netfault.End{NS: bns, Dev: "mq0", Addr: brokerAddr},
		netfault.LinkConfig{Impairment: bridgeImpairment, Seed: seed(t)})
	brokerB := startBroker(t, bns, brokerAddr)
	// Broker A needs no listener: its clients and the bridge's local side
	// connect in-process; the bridge's remote side dials B from A's
	// namespace.
	brokerA := broker.New(broker.Config{SysInterval: -1, Logger: quietLogger()})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		brokerA.Shutdown(ctx)
	})

	br, err := bridge.New(bridge.Config{
		Name: "faults",
		Remote: bridge.RemoteConfig{
			URL:            "mqtt://" + brokerAddr.String() + ":1883",
			Dialers:        map[string]client.Dialer{"mqtt": nsDialer(ans)},
			Keepalive:      2 * time.Second,
			ConnectTimeout: time.Second,
		},
		Topics:   []bridge.TopicMapping{{Pattern: "br/#", Direction: bridge.Out, QoS: 1}},
		QueueDir: t.TempDir(),
		Backoff:  client.Backoff{Initial: 50 * time.Millisecond, Max: 250 * time.Millisecond},
		Logger:   quietLogger(),
	}, func(context.Context) (net.Conn, error) { return brokerA.InProcessConn(), nil })
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopBridge := context.WithCancel(context.Background())
	bridgeDone := make(chan error, 1)
	go func() { bridgeDone <- br.Run(runCtx) }()
	t.Cleanup(func() {
		stopBridge()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		br.Close(ctx)
		<-bridgeDone
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*pollTimeout)
	defer cancel()
	got := newTally()
	sub := newClient(t, client.Options{Server: "mqtt://broker-b", ClientID: "bridge-sub", SessionExpiry: 600,
		Dialers: map[string]client.Dialer{"mqtt": inProcess(brokerB)}})
	if _, err := sub.Subscribe(ctx, []client.Subscription{{Filter: "br/#", QoS: 1}}, got.handler()); err != nil {
		t.Fatal(err)
	}
	pub := newClient(t, client.Options{Server: "mqtt://broker-a", ClientID: "bridge-pub", SessionExpiry: 600,
		Dialers: map[string]client.Dialer{"mqtt": inProcess(brokerA)}})
	waitFor(t, "the bridge to connect to B", func() bool { return br.Status().Connected })

	publish := func(from, n int) []string {
		var wg sync.WaitGroup
		var ack acked
		for i := from; i < from+n; i++ {
			p := fmt.Sprintf("b-%04d", i)
			tok := pub.PublishAsync(ctx, &client.Message{Topic: fmt.Sprintf("br/%d", i%4), QoS: 1, Payload: []byte(p)})
			wg.Go(func() { ack.add(p, tok.Wait(ctx)) })
		}
		wg.Wait()
		list, errs := ack.snapshot()
		for _, err := range errs {
			t.Errorf("publish on A: %v", err)
		}
		return list
	}

	// Over the impaired link.
	const n1, n2 = 200, 300
	phase1 := publish(0, n1)
	waitFor(t, "the messages published before the cut at B", func() bool { return got.missing(phase1) == 0 })
	waitFor(t, "B's acknowledgements at the bridge", func() bool { return br.Status().QueueDepth == 0 })
	extra1, _ := got.extra()

	// Cut: the bridge notices (keep alive), A acknowledges what its
	// publisher sends, nothing crosses.
	link.Cut()
	cutAt := time.Now()
	waitFor(t, "the bridge to notice the cut", func() bool { return !br.Status().Connected })
	noticed := time.Since(cutAt)
	phase2 := publish(n1, n2)
	if m := got.missing(phase2); m != len(phase2) {
		t.Fatalf("%d messages crossed a cut link", len(phase2)-m)
	}
	depth := br.Status().QueueDepth
	link.Restore()
	restoredAt := time.Now()
	waitFor(t, "the bridge to reconnect", func() bool { return br.Status().Connected })
	reconnected := time.Since(restoredAt)
	waitFor(t, "the messages published during the cut at B", func() bool { return got.missing(phase2) == 0 })
	waitFor(t, "B's acknowledgements at the bridge", func() bool { return br.Status().QueueDepth == 0 })
	drained := time.Since(restoredAt)

	extra, payloads := got.extra()

	// A cut while the bridge forwards (as soon as B delivered the first
	// message): the messages it has sent and B has not acknowledged (held
	// in its queue when it notices the cut) are sent again after the
	// restore; no other may arrive twice.
	const n3 = 300
	phase3 := publish(n1+n2, n3)
	waitFor(t, "the first forwarded message at B", func() bool { return got.missing(phase3) < n3 })
	link.Cut()
	waitFor(t, "the bridge to notice the second cut", func() bool { return !br.Status().Connected })
	held := br.Status().QueueDepth
	crossed := n3 - got.missing(phase3)
	link.Restore()
	waitFor(t, "the messages forwarded across the second cut at B", func() bool { return got.missing(phase3) == 0 })
	waitFor(t, "B's acknowledgements at the bridge", func() bool { return br.Status().QueueDepth == 0 })
	extra3, payloads3 := got.extra()
	extra3, payloads3 = extra3-extra, payloads3-payloads
	t.Logf("second cut, %d messages being forwarded: %d at B before the cut, %d held by the bridge, all %d delivered after the restore; %d extra deliveries (%d messages)",
		n3, crossed, held, n3, extra3, payloads3)
	if payloads3 > held {
		t.Errorf("%d messages delivered twice, but only %d were unacknowledged when the link was cut", payloads3, held)
	}
	st := br.Status()
	t.Logf("%d messages over the impaired link (%v), then %d published on A during a %v cut (bridge noticed after %v, held %d in its queue): all %d delivered at B once the link was back; bridge reconnected %v after the restore, queue empty after %v; %d extra deliveries (%d messages, allowed at QoS 1; %d of them before the cut); bridge forwarded %d, dropped %d; link: %v;%s",
		n1, bridgeImpairment, n2, restoredAt.Sub(cutAt).Round(time.Millisecond), noticed.Round(time.Millisecond), depth, n1+n2,
		reconnected.Round(time.Millisecond), drained.Round(time.Millisecond), extra, payloads, extra1, st.Forwarded.Out, st.Dropped.Out,
		link.Stats(), logTCP(t, ans))
	if st.Forwarded.Out < n1+n2+n3 {
		t.Errorf("the bridge reports %d messages forwarded, want at least %d", st.Forwarded.Out, n1+n2+n3)
	}
	if st.Dropped.Out != 0 {
		t.Errorf("the bridge dropped %d messages", st.Dropped.Out)
	}
	if err := link.Err(); err != nil {
		t.Error(err)
	}
}
