package netfault_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/internal/netfault"
)

// lossImpairment is the impairment of TestLossAndLatency: each direction
// drops 10% of the packets at random (19% of round trips lose a packet)
// and delays the rest by 50 ms.
var lossImpairment = netfault.Impairment{Delay: 50 * time.Millisecond, Loss: 0.10}

// Over a lossy, slow link between the clients' namespace and the broker's,
// 1,000 QoS 1 and 500 QoS 2 messages reach two persistent-session
// subscribers (ours and paho.golang): every acknowledged message arrives,
// QoS 2 ones exactly once. The subtest "tun" uses the userspace TUN
// forwarder and always runs; "netem" runs the same over a veth pair with
// the kernel's netem where the kernel has it.
func TestLossAndLatency(t *testing.T) {
	netfault.Require(t)
	t.Run("tun", func(t *testing.T) {
		c, b := netfault.NewNetns(t, "cli"), netfault.NewNetns(t, "brk")
		link := netfault.NewTUNLink(t, netfault.End{NS: c, Dev: "mq0", Addr: clientAddr}, netfault.End{NS: b, Dev: "mq0", Addr: brokerAddr},
			netfault.LinkConfig{Impairment: lossImpairment, Seed: seed(t)})
		lossRun(t, c, b, link)
		st := link.Stats()
		t.Logf("link: %v", st)
		if st.Lost == 0 {
			t.Errorf("the link lost no packet: %v", st)
		}
		if err := link.Err(); err != nil {
			t.Error(err)
		}
	})
	t.Run("netem", func(t *testing.T) {
		if err := netfault.NetemAvailable(); err != nil {
			t.Skipf("tc netem unavailable here, loss and latency were covered by the TUN forwarder only: %v", err)
		}
		c, b := netfault.NewNetns(t, "cli"), netfault.NewNetns(t, "brk")
		link := netfault.NewVethLink(t, netfault.End{NS: c, Dev: "veth0", Addr: clientAddr}, netfault.End{NS: b, Dev: "veth1", Addr: brokerAddr})
		if err := link.Set(lossImpairment); err != nil {
			t.Fatal(err)
		}
		lossRun(t, c, b, link)
	})
}

func lossRun(t *testing.T, cns, bns *netfault.Netns, link netfault.Impairer) {
	t.Logf("mechanism: %s, %v", link.Mechanism(), lossImpairment)
	const n1, n2 = 1000, 500
	brk := startBroker(t, bns, brokerAddr)
	server := "mqtt://" + brokerAddr.String() + ":1883"
	opts := func(id string, ev *events) client.Options {
		o := client.Options{
			Server: server, ClientID: id, SessionExpiry: 600,
			Dialers:        map[string]client.Dialer{"mqtt": nsDialer(cns)},
			Keepalive:      client.KeepaliveConfig{Interval: 30 * time.Second},
			Backoff:        client.Backoff{Initial: 100 * time.Millisecond, Max: time.Second},
			ConnectTimeout: 20 * time.Second,
		}
		ev.hook(&o)
		return o
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*pollTimeout)
	defer cancel()

	// Our subscriber.
	var subEv events
	got := map[byte]*tally{1: newTally(), 2: newTally()}
	sub := newClient(t, opts("loss-sub", &subEv))
	for _, q := range []byte{1, 2} {
		if _, err := sub.Subscribe(ctx, []client.Subscription{{Filter: fmt.Sprintf("loss/q%d/#", q), QoS: q}}, got[q].handler()); err != nil {
			t.Fatal(err)
		}
	}

	// paho.golang's subscriber, on its own connection through the link.
	pahoGot := newTally()
	conn, err := cns.DialContext(ctx, "tcp", brokerAddr.String()+":1883")
	if err != nil {
		t.Fatal(err)
	}
	pc := paho.NewClient(paho.ClientConfig{
		Conn: conn, ClientID: "loss-paho",
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			pahoGot.add(string(pr.Packet.Payload), pr.Packet.Duplicate())
			return true, nil
		}},
	})
	expiry := uint32(600)
	if _, err := pc.Connect(ctx, &paho.Connect{ClientID: "loss-paho", KeepAlive: 30, CleanStart: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}); err != nil {
		t.Fatalf("paho connect: %v", err)
	}
	defer func() {
		pc.Disconnect(&paho.Disconnect{})
		<-pc.Done()
	}()
	if _, err := pc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "loss/#", QoS: 2}}}); err != nil {
		t.Fatalf("paho subscribe: %v", err)
	}

	// One publisher, both QoS at once, every message in flight as the
	// broker's Receive Maximum allows.
	var pubEv events
	pub := newClient(t, opts("loss-pub", &pubEv))
	ack := map[byte]*acked{1: {}, 2: {}}
	start := time.Now()
	var wg sync.WaitGroup
	for q, n := range map[byte]int{1: n1, 2: n2} {
		wg.Go(func() {
			var tw sync.WaitGroup
			for i := range n {
				p := fmt.Sprintf("q%d-%04d", q, i)
				tok := pub.PublishAsync(ctx, &client.Message{Topic: fmt.Sprintf("loss/q%d/%d", q, i%8), QoS: q, Payload: []byte(p)})
				tw.Go(func() { ack[q].add(p, tok.Wait(ctx)) })
			}
			tw.Wait()
		})
	}
	wg.Wait()
	published := time.Since(start)
	var want = map[byte][]string{}
	for _, q := range []byte{1, 2} {
		list, errs := ack[q].snapshot()
		for _, err := range errs {
			t.Errorf("QoS %d publish: %v", q, err)
		}
		want[q] = list
	}
	if t.Failed() {
		t.FailNow()
	}
	waitFor(t, "every acknowledged message at our subscriber", func() bool {
		return got[1].missing(want[1]) == 0 && got[2].missing(want[2]) == 0
	})
	waitFor(t, "every acknowledged message at the paho.golang subscriber", func() bool {
		return pahoGot.missing(want[1]) == 0 && pahoGot.missing(want[2]) == 0
	})
	delivered := time.Since(start)
	for _, q := range []byte{1, 2} {
		extra, payloads := got[q].extra()
		t.Logf("QoS %d: %d acknowledged, all delivered to both subscribers; our subscriber: %d extra deliveries (%d messages), %d with DUP",
			q, len(want[q]), extra, payloads, got[q].dups)
		if q == 2 && extra > 0 {
			t.Errorf("QoS 2: %d messages delivered more than once to our subscriber", payloads)
		}
	}
	pahoGot.mu.Lock()
	for _, p := range want[2] {
		if n := pahoGot.got[p]; n != 1 {
			t.Errorf("QoS 2 message %s delivered %d times to paho.golang", p, n)
		}
	}
	pahoGot.mu.Unlock()
	pe, _ := pahoGot.extra()
	sc, _ := subEv.counts()
	pcn, _ := pubEv.counts()
	st := brk.Stats()
	t.Logf("published in %v, delivered in %v; paho.golang: %d extra QoS 1 deliveries; reconnections: subscriber %d, publisher %d; broker: %d PUBLISH received, %d sent;%s",
		published.Round(time.Millisecond), delivered.Round(time.Millisecond), pe, sc-1, pcn-1, st.PublishReceived, st.PublishSent, logTCP(t, cns, bns))
}
