package netfault_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/internal/netfault"
)

// cutKeepalive is the keep alive of the clients of TestCutLink: the client
// gives up after 150% of it without a packet, the broker after 150% too
// [MQTT-3.1.2-22].
const cutKeepalive = 2 * time.Second

// The link between the clients and the broker is cut while QoS 1 and QoS 2
// messages flow, for as long as it takes both sides to declare the
// connections dead by keep alive, then restored: the clients reconnect,
// resume their sessions (Session Present), the publishes in flight
// complete, and every acknowledged message reaches the persistent
// subscriber (QoS 2 exactly once).
func TestCutLink(t *testing.T) {
	netfault.Require(t)
	cns, bns := netfault.NewNetns(t, "cli"), netfault.NewNetns(t, "brk")
	link := netfault.NewTUNLink(t, netfault.End{NS: cns, Dev: "mq0", Addr: clientAddr}, netfault.End{NS: bns, Dev: "mq0", Addr: brokerAddr},
		netfault.LinkConfig{Impairment: netfault.Impairment{Delay: 5 * time.Millisecond}, Seed: seed(t)})
	brk := startBroker(t, bns, brokerAddr)
	opts := func(id string, ev *events) client.Options {
		o := client.Options{
			Server: "mqtt://" + brokerAddr.String() + ":1883", ClientID: id, SessionExpiry: 600,
			Dialers:        map[string]client.Dialer{"mqtt": nsDialer(cns)},
			Keepalive:      client.KeepaliveConfig{Interval: cutKeepalive},
			Backoff:        client.Backoff{Initial: 50 * time.Millisecond, Max: 250 * time.Millisecond},
			ConnectTimeout: time.Second,
		}
		ev.hook(&o)
		return o
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*pollTimeout)
	defer cancel()

	var subEv, pubEv events
	got := map[byte]*tally{1: newTally(), 2: newTally()}
	sub := newClient(t, opts("cut-sub", &subEv))
	for _, q := range []byte{1, 2} {
		if _, err := sub.Subscribe(ctx, []client.Subscription{{Filter: fmt.Sprintf("cut/q%d/#", q), QoS: q}}, got[q].handler()); err != nil {
			t.Fatal(err)
		}
	}
	// A second persistent subscriber that is not ours: mosquitto_sub
	// (QoS 1, MQTT 5, its own reconnection). Its keep alive cannot be
	// under 5 s, so it may sleep through the cut: it then learns that its
	// connection is gone from the broker's reset after the restore.
	mosq := mosquittoSub(t, cns, "-h", brokerAddr.String(), "-p", "1883", "-V", "mqttv5", "-i", "cut-mosq",
		"-c", "-x", "600", "-k", "5", "-q", "1", "-t", "cut/q1/#")
	if mosq != nil {
		waitFor(t, "mosquitto_sub's subscription", func() bool {
			mosq.running(t)
			return brk.Stats().Subscriptions >= 3
		})
	}
	pub := newClient(t, opts("cut-pub", &pubEv))

	// Each QoS has a publisher keeping up to 16 messages in flight until
	// stopped.
	const window = 16
	ack := map[byte]*acked{1: {}, 2: {}}
	var pending atomic.Int64 // publishes not yet completed
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, q := range []byte{1, 2} {
		wg.Go(func() {
			sem := make(chan struct{}, window)
			var tw sync.WaitGroup
			defer tw.Wait()
			for i := 0; ; i++ {
				select {
				case sem <- struct{}{}:
				case <-stop:
					return
				}
				p := fmt.Sprintf("q%d-%05d", q, i)
				pending.Add(1)
				tok := pub.PublishAsync(ctx, &client.Message{Topic: fmt.Sprintf("cut/q%d/%d", q, i%8), QoS: q, Payload: []byte(p)})
				tw.Go(func() {
					ack[q].add(p, tok.Wait(ctx))
					pending.Add(-1)
					<-sem
				})
			}
		})
	}
	stopped := false
	stopPublishers := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopPublishers()

	waitFor(t, "messages acknowledged before the cut", func() bool { return ack[1].len() >= 100 && ack[2].len() >= 100 })
	before := [2]int{ack[1].len(), ack[2].len()}
	subC0, subD0 := subEv.counts()
	pubC0, pubD0 := pubEv.counts()
	link.Cut()
	cutAt := time.Now()
	var clientNoticed, brokerNoticed time.Duration
	waitFor(t, "both clients and the broker to notice the cut", func() bool {
		_, sd := subEv.counts()
		_, pd := pubEv.counts()
		if clientNoticed == 0 && sd > subD0 && pd > pubD0 {
			clientNoticed = time.Since(cutAt)
		}
		if brokerNoticed == 0 && brk.Stats().Connections == 0 {
			brokerNoticed = time.Since(cutAt)
		}
		return clientNoticed > 0 && brokerNoticed > 0
	})
	for name, ev := range map[string]*events{"subscriber": &subEv, "publisher": &pubEv} {
		if di := ev.lastDisconnect(); !errors.Is(di.Err, client.ErrConnectionLost) || !di.Reconnecting {
			t.Errorf("%s: connection ended with %v (reconnecting %v), want a lost connection and a reconnection", name, di.Err, di.Reconnecting)
		}
	}
	inFlight := pending.Load()
	link.Restore()
	restoredAt := time.Now()
	cutFor := restoredAt.Sub(cutAt)
	waitFor(t, "both clients to reconnect", func() bool {
		sc, _ := subEv.counts()
		pc, _ := pubEv.counts()
		return sc > subC0 && pc > pubC0
	})
	var resumed time.Duration
	for name, ev := range map[string]*events{"subscriber": &subEv, "publisher": &pubEv} {
		ci, at := ev.last()
		if !ci.SessionPresent {
			t.Errorf("%s: reconnected without its session (Session Present 0)", name)
		}
		resumed = max(resumed, at.Sub(restoredAt))
	}
	// Publish on for a while after the resumption, then stop: every
	// publish, those in flight during the cut included, completes.
	waitFor(t, "messages acknowledged after the restore", func() bool {
		return ack[1].len() >= before[0]+window+100 && ack[2].len() >= before[1]+window+100
	})
	stopPublishers()
	want := map[byte][]string{}
	for _, q := range []byte{1, 2} {
		list, errs := ack[q].snapshot()
		for _, err := range errs {
			t.Errorf("QoS %d publish failed: %v", q, err)
		}
		want[q] = list
	}
	if inFlight == 0 {
		t.Errorf("no publish was in flight across the cut")
	}
	waitFor(t, "every acknowledged message at the subscriber", func() bool {
		return got[1].missing(want[1]) == 0 && got[2].missing(want[2]) == 0
	})
	if mosq != nil {
		waitFor(t, "every acknowledged QoS 1 message at mosquitto_sub", func() bool {
			mosq.running(t)
			return mosq.missing(want[1]) == 0
		})
		extra, payloads := mosq.extra()
		t.Logf("mosquitto_sub: all %d acknowledged QoS 1 messages delivered; %d extra deliveries (%d messages)", len(want[1]), extra, payloads)
	}
	for _, q := range []byte{1, 2} {
		extra, payloads := got[q].extra()
		t.Logf("QoS %d: %d acknowledged (%d before the cut), all delivered; %d extra deliveries (%d messages), %d with DUP", q, len(want[q]), before[q-1], extra, payloads, got[q].dups)
		if q == 2 && extra > 0 {
			t.Errorf("QoS 2: %d messages delivered more than once", payloads)
		}
	}
	t.Logf("keep alive %v: clients noticed the cut after %v, broker after %v; link cut for %v; %d publishes in flight across the cut, all completed; sessions resumed %v after the restore; link: %v;%s",
		cutKeepalive, clientNoticed.Round(time.Millisecond), brokerNoticed.Round(time.Millisecond), cutFor.Round(time.Millisecond), inFlight,
		resumed.Round(time.Millisecond), link.Stats(), logTCP(t, cns, bns))
	if err := link.Err(); err != nil {
		t.Error(err)
	}
}
