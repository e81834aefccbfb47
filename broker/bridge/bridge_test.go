package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/bridge"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

func originOf(user []packet.UserProperty) []string {
	var o []string
	for _, u := range user {
		if u.Key == bridge.OriginProperty {
			o = append(o, u.Value)
		}
	}
	return o
}

// TestBridgeDirections bridges two of our brokers with one mapping per
// direction and checks what crosses, that nothing comes back (No Local),
// and the origin property.
func TestBridgeDirections(t *testing.T) {
	a, b := newNode(t, "A", false), newNode(t, "B", false)
	recA, recB := a.sub("#", 1), b.sub("#", 1)
	br := runBridge(t, bridge.Config{
		Name:   "ab",
		Remote: bridge.RemoteConfig{URL: b.url()},
		Topics: []bridge.TopicMapping{
			{Pattern: "out/#", Direction: bridge.Out, QoS: 1},
			{Pattern: "in/#", Direction: bridge.In, QoS: 1},
			{Pattern: "both/#", Direction: bridge.Both, QoS: 1},
		},
	}, a.local)
	waitConnected(t, br)

	a.pub("out/1", "out-from-A", 1)
	a.pub("in/1", "in-from-A", 1)
	a.pub("both/1", "both-from-A", 1)
	b.pub("out/2", "out-from-B", 1)
	b.pub("in/2", "in-from-B", 1)
	b.pub("both/2", "both-from-B", 1)
	recB.wait(t, "out-from-A")
	recB.wait(t, "both-from-A")
	recA.wait(t, "in-from-B")
	recA.wait(t, "both-from-B")
	// Sentinels travel the same paths as any copy coming back would.
	a.pub("both/s", "sentinel-A", 1)
	b.pub("both/s", "sentinel-B", 1)
	for _, r := range []*rec{recA, recB} {
		r.wait(t, "sentinel-A")
		r.wait(t, "sentinel-B")
	}

	for _, c := range []struct {
		r    *rec
		side string
		want map[string]int
	}{
		{recA, "A", map[string]int{"out-from-A": 1, "in-from-A": 1, "both-from-A": 1, "out-from-B": 0, "in-from-B": 1, "both-from-B": 1, "sentinel-A": 1, "sentinel-B": 1}},
		{recB, "B", map[string]int{"out-from-A": 1, "in-from-A": 0, "both-from-A": 1, "out-from-B": 1, "in-from-B": 1, "both-from-B": 1, "sentinel-A": 1, "sentinel-B": 1}},
	} {
		for p, n := range c.want {
			if got := c.r.count(p); got != n {
				t.Errorf("broker %s received %q %d times, want %d", c.side, p, got, n)
			}
		}
	}
	g, _ := recB.find("out-from-A")
	if o := originOf(g.Props.User); !slices.Equal(o, []string{"ab"}) {
		t.Errorf("forwarded message carries origins %v, want [ab]", o)
	}
	if g, _ := recA.find("in-from-B"); !slices.Equal(originOf(g.Props.User), []string{"ab"}) {
		t.Errorf("message forwarded in carries origins %v, want [ab]", originOf(g.Props.User))
	}
	waitFor(t, "forwarded counters", func() bool {
		s := br.Status()
		return s.Forwarded == bridge.Counters{In: 3, Out: 3} && s.QueueDepth == 0
	}, func() string { return fmt.Sprintf("%+v", br.Status()) })
	if s := br.Status(); s.Remote != b.url() || s.LoopsDropped != 0 || s.Reconnects != 0 || s.LastErrorAt.IsZero() != (s.LastError == "") {
		t.Errorf("status %+v", s)
	}
}

// TestBridgePrefixes checks topic rewriting with prefixes in both
// directions, the parent level matched by "prefix/#", and a renaming
// mapping (empty Pattern).
func TestBridgePrefixes(t *testing.T) {
	a, b := newNode(t, "A", false), newNode(t, "B", false)
	recA, recB := a.sub("#", 1), b.sub("#", 1)
	br := runBridge(t, bridge.Config{
		Name:   "pfx",
		Remote: bridge.RemoteConfig{URL: b.url()},
		Topics: []bridge.TopicMapping{
			{Pattern: "#", Direction: bridge.Both, QoS: 1, LocalPrefix: "site/", RemotePrefix: "cloud/site1/"},
			{Direction: bridge.In, QoS: 1, LocalPrefix: "cmd/all", RemotePrefix: "broadcast/cmd"},
		},
	}, a.local)
	waitConnected(t, br)

	a.pub("site/t1", "p1", 1)
	a.pub("site", "p2", 1)
	a.pub("other/t", "p3", 1)
	b.pub("cloud/site1/x/y", "p4", 1)
	b.pub("broadcast/cmd", "p5", 1)
	b.pub("cloud/other", "p6", 1)
	for _, c := range []struct {
		r              *rec
		payload, topic string
	}{
		{recB, "p1", "cloud/site1/t1"},
		{recB, "p2", "cloud/site1"},
		{recA, "p4", "site/x/y"},
		{recA, "p5", "cmd/all"},
	} {
		if g := c.r.wait(t, c.payload); g.Topic != c.topic {
			t.Errorf("%s arrived on %q, want %q", c.payload, g.Topic, c.topic)
		}
	}
	a.pub("site/end", "sentinel-A", 1)
	b.pub("cloud/site1/end", "sentinel-B", 1)
	if g := recB.wait(t, "sentinel-A"); g.Topic != "cloud/site1/end" {
		t.Errorf("sentinel on %q", g.Topic)
	}
	recA.wait(t, "sentinel-B")
	recA.wait(t, "sentinel-A")
	recB.wait(t, "sentinel-B")
	if recB.count("p3") != 0 || recA.count("p6") != 0 {
		t.Error("a message outside the mappings crossed the bridge")
	}
	if recA.count("p1") != 1 || recB.count("p4") != 1 {
		t.Error("a forwarded message came back")
	}
}

// TestBridgeQoS forwards at QoS 0, 1 and 2 both ways, and checks that the
// mapping's QoS caps the subscription.
func TestBridgeQoS(t *testing.T) {
	a, b := newNode(t, "A", false), newNode(t, "B", false)
	br := runBridge(t, bridge.Config{
		Name:     "qos",
		Remote:   bridge.RemoteConfig{URL: b.url()},
		QueueDir: t.TempDir(), // QoS 2 state on disk
		Topics: []bridge.TopicMapping{
			{Pattern: "q/#", Direction: bridge.Both, QoS: 2},
			{Pattern: "q1/#", Direction: bridge.Out, QoS: 1},
		},
	}, a.local)
	waitConnected(t, br)
	all := client.Subscription{Filter: "#", QoS: 2}
	recA := netSub(t, a.url(), "sub-a", all)
	recB := netSub(t, b.url(), "sub-b", all)
	pa := dialClient(t, client.Options{Server: a.url(), ClientID: "pub-a"})
	pb := dialClient(t, client.Options{Server: b.url(), ClientID: "pub-b"})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, c := range []struct {
		pub      *client.Client
		dst      *rec
		topic    string
		qos, got byte
	}{
		{pa, recB, "q/a", 0, 0}, {pa, recB, "q/a", 1, 1}, {pa, recB, "q/a", 2, 2}, {pa, recB, "q1/a", 2, 1},
		{pb, recA, "q/b", 0, 0}, {pb, recA, "q/b", 1, 1}, {pb, recA, "q/b", 2, 2},
	} {
		payload := fmt.Sprintf("%s-qos%d", c.topic, c.qos)
		if err := c.pub.Publish(ctx, &client.Message{Topic: c.topic, Payload: []byte(payload), QoS: c.qos}); err != nil {
			t.Fatal(err)
		}
		if g := c.dst.wait(t, payload); g.QoS != c.got {
			t.Errorf("%s arrived at QoS %d, want %d", payload, g.QoS, c.got)
		}
	}
	waitFor(t, "queue drained", func() bool { return br.Status().QueueDepth == 0 })
	if n := recB.count("q/a-qos2") + recA.count("q/b-qos2"); n != 2 {
		t.Errorf("QoS 2 messages delivered %d times in all, want 2", n)
	}
}

// TestBridgeRetainedAndProperties checks that the retain flag and every v5
// property survive the bridge, for live and for late subscribers.
func TestBridgeRetainedAndProperties(t *testing.T) {
	a, b := newNode(t, "A", false), newNode(t, "B", false)
	br := runBridge(t, bridge.Config{
		Name:   "props",
		Remote: bridge.RemoteConfig{URL: b.url()},
		Topics: []bridge.TopicMapping{{Pattern: "r/#", Direction: bridge.Both, QoS: 1}},
	}, a.local)
	waitConnected(t, br)
	rap := client.Subscription{Filter: "r/#", QoS: 1, RetainAsPublished: true}
	live := netSub(t, b.url(), "live-b", rap)
	pa := dialClient(t, client.Options{Server: a.url(), ClientID: "pub-a"})
	pb := dialClient(t, client.Options{Server: b.url(), ClientID: "pub-b"})
	user := []packet.UserProperty{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}}
	msg := func(topic, payload string) *client.Message {
		return &client.Message{
			Topic: topic, Payload: []byte(payload), QoS: 1, Retain: true,
			PayloadFormat: 1, MessageExpiry: 3600, ContentType: "text/plain",
			ResponseTopic: "r/reply", CorrelationData: []byte{1, 2, 3}, User: user,
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := pa.Publish(ctx, msg("r/out", "retained-out")); err != nil {
		t.Fatal(err)
	}
	check := func(where string, g got, retained bool) {
		t.Helper()
		m := g.Msg
		if g.Retain != retained || g.QoS != 1 || m.PayloadFormat != 1 || m.ContentType != "text/plain" ||
			m.ResponseTopic != "r/reply" || !bytes.Equal(m.CorrelationData, []byte{1, 2, 3}) ||
			m.MessageExpiry == 0 || m.MessageExpiry > 3600 {
			t.Errorf("%s: got retain=%v qos=%d format=%d type=%q response=%q correlation=%v expiry=%d",
				where, g.Retain, g.QoS, m.PayloadFormat, m.ContentType, m.ResponseTopic, m.CorrelationData, m.MessageExpiry)
		}
		want := append(append([]packet.UserProperty(nil), user...), packet.UserProperty{Key: bridge.OriginProperty, Value: "props"})
		if !slices.Equal(m.User, want) {
			t.Errorf("%s: user properties %v, want %v", where, m.User, want)
		}
	}
	check("live subscriber", live.wait(t, "retained-out"), true)
	late := netSub(t, b.url(), "late-b", client.Subscription{Filter: "r/#", QoS: 1})
	check("late subscriber", late.wait(t, "retained-out"), true)

	if err := pb.Publish(ctx, msg("r/in", "retained-in")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "forwarded in", func() bool { return br.Status().Forwarded.In == 1 })
	lateA := netSub(t, a.url(), "late-a", client.Subscription{Filter: "r/#", QoS: 1})
	check("late subscriber on the local side", lateA.wait(t, "retained-in"), true)
}

// TestBridgeV311EchoSuppressed bridges to a remote spoken to in MQTT 3.1.1:
// without No Local the remote sends every forwarded message back, and the
// fingerprint cache stops it.
func TestBridgeV311EchoSuppressed(t *testing.T) {
	a, b := newNode(t, "A", false), newNode(t, "B", false)
	recA, recB := a.sub("e/#", 1), b.sub("e/#", 1)
	br := runBridge(t, bridge.Config{
		Name:   "v3",
		Remote: bridge.RemoteConfig{URL: b.url(), Version: packet.V311},
		Topics: []bridge.TopicMapping{{Pattern: "e/#", Direction: bridge.Both, QoS: 1}},
	}, a.local)
	waitConnected(t, br)
	a.pub("e/1", "echo-1", 1)
	recB.wait(t, "echo-1")
	waitFor(t, "the echo to be dropped", func() bool { return br.Status().LoopsDropped == 1 },
		func() string { return fmt.Sprintf("%+v", br.Status()) })
	b.pub("e/2", "from-B", 1)
	recA.wait(t, "from-B")
	a.pub("e/s", "sentinel-A", 1)
	recB.wait(t, "sentinel-A")
	recA.wait(t, "sentinel-A")
	waitFor(t, "the sentinel echo to be dropped", func() bool { return br.Status().LoopsDropped == 2 })
	if bad := recA.exactlyOnce([]string{"echo-1", "from-B", "sentinel-A"}); len(bad) > 0 {
		t.Errorf("local side: %v", bad)
	}
	if g, _ := recB.find("echo-1"); len(g.Props.User) != 0 {
		t.Errorf("3.1.1 remote got properties %v", g.Props.User)
	}
}

// TestBridgeLocalRestart restarts the local broker, with persistence,
// while messages wait for the bridge (the remote is down): they are
// delivered once both are back.
func TestBridgeLocalRestart(t *testing.T) {
	a, b := newNode(t, "A", true), newNode(t, "B", false)
	recB := b.sub("p/#", 1)
	br := runBridge(t, bridge.Config{
		Name:      "persist",
		Remote:    bridge.RemoteConfig{URL: b.url()},
		Topics:    []bridge.TopicMapping{{Pattern: "p/#", Direction: bridge.Out, QoS: 1}},
		MaxQueued: 10, // the broker keeps the rest in the bridge's session
	}, a.local)
	waitConnected(t, br)
	a.pub("p/w", "warm-up", 1)
	recB.wait(t, "warm-up")

	b.stop()
	waitFor(t, "remote down", func() bool { return !br.Status().Connected })
	const n = 200
	for i := range n {
		a.pub(fmt.Sprintf("p/%d", i%7), fmt.Sprintf("m-%03d", i), 1)
	}
	waitFor(t, "the bridge to hold its window", func() bool { return br.Status().QueueDepth == 10 },
		func() string { return fmt.Sprintf("%+v", br.Status()) })
	a.stop()
	a.start()
	waitFor(t, "local reconnected", func() bool { return br.Status().LocalConnected })
	b.start()
	waitFor(t, "all messages at B", func() bool { d, _ := recB.distinct("m-"); return d == n },
		func() string {
			d, dup := recB.distinct("m-")
			return fmt.Sprintf("%d distinct, %d dups, %+v", d, dup, br.Status())
		})
	_, dups := recB.distinct("m-")
	t.Logf("local restart: %d messages delivered, %d duplicates", n, dups)
	waitFor(t, "queue drained", func() bool { return br.Status().QueueDepth == 0 })
}

// TestBridgeFailover moves the bridge to the backup when the primary stops
// and back to the primary when it returns.
func TestBridgeFailover(t *testing.T) {
	a := newNode(t, "A", false)
	p, k := newNode(t, "primary", false), newNode(t, "backup", false)
	recP, recK, recA := p.sub("f/#", 1), k.sub("f/#", 1), a.sub("g/#", 1)
	br := runBridge(t, bridge.Config{
		Name:             "fo",
		Remote:           bridge.RemoteConfig{URL: p.url(), Backups: []string{k.url()}},
		Topics:           []bridge.TopicMapping{{Pattern: "f/#", Direction: bridge.Out, QoS: 1}, {Pattern: "g/#", Direction: bridge.In, QoS: 1}},
		FailoverAttempts: 1,
		FailbackInterval: 100 * time.Millisecond,
	}, a.local)
	on := func(url string) func() bool {
		return func() bool { s := br.Status(); return s.Connected && s.Remote == url }
	}
	state := func() string { return fmt.Sprintf("%+v", br.Status()) }
	waitFor(t, "connected to the primary", on(p.url()), state)
	a.pub("f/1", "to-primary", 1)
	recP.wait(t, "to-primary")

	if s := br.Status(); s.Reconnects != 0 {
		t.Errorf("first connection counted as a reconnection: %+v", s)
	}
	lost := time.Now()
	p.stop()
	waitFor(t, "failover to the backup", on(k.url()), state)
	if s := br.Status(); s.Reconnects < 1 || s.LastError == "" || s.LastErrorAt.Before(lost) {
		t.Errorf("after failover: %+v", s)
	}
	a.pub("f/2", "to-backup", 1)
	recK.wait(t, "to-backup")
	k.pub("g/1", "from-backup", 1)
	recA.wait(t, "from-backup")

	p.start()
	waitFor(t, "failback to the primary", on(p.url()), state)
	if s := br.Status(); s.Reconnects < 2 {
		t.Errorf("after failback: %+v", s)
	}
	a.pub("f/3", "after-failback", 1)
	recP.wait(t, "after-failback")
	if recK.count("after-failback") != 0 {
		t.Error("message sent to the backup after failback")
	}
}

// TestBridgeRunClose checks Run's life cycle: a second concurrent Run is
// refused, Close stops Run, and a new Run resumes the sessions (messages
// published in between are delivered).
func TestBridgeRunClose(t *testing.T) {
	a, b := newNode(t, "A", false), newNode(t, "B", false)
	recB := b.sub("c/#", 1)
	br, err := bridge.New(bridge.Config{
		Name:    "life",
		Remote:  bridge.RemoteConfig{URL: b.url()},
		Topics:  []bridge.TopicMapping{{Pattern: "c/#", QoS: 1}},
		Backoff: fastBackoff,
		Logger:  testLogger(),
	}, a.local)
	if err != nil {
		t.Fatal(err)
	}
	run := func() chan error {
		done := make(chan error, 1)
		go func() { done <- br.Run(context.Background()) }()
		waitConnected(t, br)
		return done
	}
	closeRun := func(done chan error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := br.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	done := run()
	if err := br.Run(context.Background()); err != bridge.ErrRunning {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	a.pub("c/1", "first", 1)
	recB.wait(t, "first")
	closeRun(done)
	if s := br.Status(); s.Connected || s.LocalConnected {
		t.Errorf("status after Close: %+v", s)
	}
	a.pub("c/2", "while-stopped", 1) // queued in the bridge's local session
	done = run()
	recB.wait(t, "while-stopped")
	closeRun(done)
}

// TestBridgeRing bridges three brokers in a ring, each bridge "both":
// every message published anywhere reaches every broker exactly once.
func TestBridgeRing(t *testing.T) {
	nodes := []*node{newNode(t, "A", false), newNode(t, "B", false), newNode(t, "C", false)}
	recs := make([]*rec, len(nodes))
	for i, n := range nodes {
		recs[i] = n.sub("ring/#", 1)
	}
	var brs []*bridge.Bridge
	for i, n := range nodes {
		next := nodes[(i+1)%len(nodes)]
		brs = append(brs, runBridge(t, bridge.Config{
			Name:   n.name + next.name,
			Remote: bridge.RemoteConfig{URL: next.url()},
			Topics: []bridge.TopicMapping{{Pattern: "ring/#", Direction: bridge.Both, QoS: 1}},
		}, n.local))
	}
	for _, br := range brs {
		waitConnected(t, br)
	}
	const per = 20
	var payloads []string
	for i := range per {
		for _, n := range nodes {
			p := fmt.Sprintf("%s-%02d", n.name, i)
			payloads = append(payloads, p)
			n.pub("ring/"+n.name, p, 1)
		}
	}
	for i, r := range recs {
		waitFor(t, "all ring messages at "+nodes[i].name, func() bool { return len(r.missing(payloads)) == 0 },
			func() string { return fmt.Sprint("missing ", r.missing(payloads)) })
	}
	for _, n := range nodes {
		n.pub("ring/sentinel", "sentinel-"+n.name, 1)
		payloads = append(payloads, "sentinel-"+n.name)
	}
	for i, r := range recs {
		for _, n := range nodes {
			r.wait(t, "sentinel-"+n.name)
		}
		if bad := r.exactlyOnce(payloads); len(bad) > 0 || r.total() != len(payloads) {
			t.Errorf("broker %s: %d messages, want %d; not exactly once: %v", nodes[i].name, r.total(), len(payloads), bad)
		}
	}
	var loops []uint64
	for _, br := range brs {
		loops = append(loops, br.Status().LoopsDropped)
	}
	t.Logf("ring: %d messages published, each broker received %d, %d, %d; loops dropped per bridge %v",
		len(payloads), recs[0].total(), recs[1].total(), recs[2].total(), loops)
}

// BenchmarkBridgeQoS1 measures messages per second through a bridge at QoS
// 1 between two of our brokers (publisher and subscriber in-process, at
// most 1000 messages in transit).
func BenchmarkBridgeQoS1(b *testing.B) {
	la, lb := newNode(b, "A", false), newNode(b, "B", false)
	window := make(chan struct{}, 1000)
	done := make(chan struct{})
	var received atomic.Int64
	target := int64(b.N)
	if _, err := lb.broker().Subscribe("bench/#", 1, func(*broker.Message) {
		<-window
		if received.Add(1) == target {
			close(done)
		}
	}); err != nil {
		b.Fatal(err)
	}
	br := runBridge(b, bridge.Config{
		Name:   "bench",
		Remote: bridge.RemoteConfig{URL: lb.url()},
		Topics: []bridge.TopicMapping{{Pattern: "bench/#", Direction: bridge.Out, QoS: 1}},
	}, la.local)
	waitConnected(b, br)
	payload := bytes.Repeat([]byte{'x'}, 64)
	ctx := context.Background()
	pub := la.broker()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		window <- struct{}{}
		if err := pub.Publish(ctx, &broker.Message{Topic: "bench/t", Payload: payload, QoS: 1}); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(waitTimeout):
		b.Fatalf("%d of %d messages delivered; %+v", received.Load(), b.N, br.Status())
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
