package telemetry

import (
	"context"
	"errors"
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/bridge"
	"github.com/mqtt5go/mqtt5/broker/store"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// prefixAuthorizer refuses topics and filters under its prefixes.
type prefixAuthorizer struct{ pub, sub, recv string }

func (a prefixAuthorizer) CanPublish(_ context.Context, _ *broker.ClientInfo, topic string) bool {
	return !strings.HasPrefix(topic, a.pub)
}

func (a prefixAuthorizer) CanSubscribe(_ context.Context, _ *broker.ClientInfo, filter string) bool {
	return !strings.HasPrefix(filter, a.sub)
}

type receivePrefixAuthorizer struct{ prefixAuthorizer }

func (a receivePrefixAuthorizer) CanReceive(_ context.Context, _ *broker.ClientInfo, topic string) bool {
	return !strings.HasPrefix(topic, a.recv)
}

// Refusals of the authorizer are counted by action; a grant is not.
func TestAuthorizationDenied(t *testing.T) {
	m := NewMetrics()
	az := m.WrapAuthorizer(receivePrefixAuthorizer{prefixAuthorizer{pub: "deny/", sub: "secret/", recv: "hidden/"}})
	if _, ok := az.(broker.ReceiveAuthorizer); !ok {
		t.Fatal("the wrapper of a ReceiveAuthorizer does not check deliveries")
	}
	if _, ok := m.WrapAuthorizer(prefixAuthorizer{}).(broker.ReceiveAuthorizer); ok {
		t.Fatal("the wrapper of a plain Authorizer claims to check deliveries")
	}
	if m.WrapAuthorizer(nil) != nil {
		t.Fatal("WrapAuthorizer(nil) is not nil")
	}
	b := newBroker(t, broker.Config{Hooks: []any{m}, Authorizer: az})
	reg, err := NewRegistry(b, m)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHTTPHandler(b, reg, nil))
	defer srv.Close()

	var got atomic.Int64
	sub := connect(t, b, client.Options{ClientID: "sub"})
	if _, err := sub.Subscribe(testCtx(t), []client.Subscription{{Filter: "#", QoS: 1}}, func(*client.Message) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(testCtx(t), []client.Subscription{{Filter: "secret/#", QoS: 1}}, nil); !errors.Is(err, packet.NotAuthorized) {
		t.Fatalf("subscribe secret/#: %v", err)
	}
	pub := connect(t, b, client.Options{ClientID: "pub"})
	if err := pub.Publish(testCtx(t), &client.Message{Topic: "deny/x", QoS: 1, Payload: []byte("x")}); !errors.Is(err, packet.NotAuthorized) {
		t.Fatalf("publish deny/x: %v", err)
	}
	for _, topic := range []string{"hidden/a", "open/a"} {
		if err := pub.Publish(testCtx(t), &client.Message{Topic: topic, QoS: 1, Payload: []byte("x")}); err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
	}
	waitFor(t, "the allowed delivery", func() bool { return got.Load() == 1 })

	fams := scrape(t, srv.URL)
	for action, want := range map[string]float64{"publish": 1, "subscribe": 1, "receive": 1} {
		if v, ok := value(fams, authzDeniedName, "action", action); !ok || v != want {
			t.Errorf("%s{action=%s} = %v (present %v), want %v", authzDeniedName, action, v, ok, want)
		}
	}
	if got.Load() != 1 {
		t.Errorf("%d deliveries, want 1 (open/a)", got.Load())
	}
}

// ObserveCommit fills the commit histogram (buckets from 50 µs to 5 s) and
// counts failures; a broker with a store reports its commits through it.
func TestCommitHistogram(t *testing.T) {
	m := NewMetrics()
	m.ObserveCommit(3*time.Millisecond, 10, nil)
	m.ObserveCommit(2*time.Second, 1, errors.New("disk full"))
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	fams := gather(t, reg)
	h := fams[commitName]
	if h.GetType() != dto.MetricType_HISTOGRAM || len(h.Metric) != 1 {
		t.Fatalf("%s: %v", commitName, h)
	}
	hist := h.Metric[0].GetHistogram()
	if hist.GetSampleCount() != 2 || math.Abs(hist.GetSampleSum()-2.003) > 1e-9 {
		t.Errorf("count %d sum %v, want 2 and 2.003", hist.GetSampleCount(), hist.GetSampleSum())
	}
	bk := hist.GetBucket()
	if len(bk) != len(CommitBuckets) || bk[0].GetUpperBound() != 50e-6 || bk[len(bk)-1].GetUpperBound() != 5 {
		t.Fatalf("buckets %v", bk)
	}
	for _, b := range bk {
		want := uint64(0)
		switch {
		case b.GetUpperBound() >= 2:
			want = 2
		case b.GetUpperBound() >= 0.003:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if v, _ := value(fams, commitFailsName); v != 1 {
		t.Errorf("%s = %v, want 1", commitFailsName, v)
	}

	// Wired as the broker's CommitObserver: a durable publication is a
	// commit.
	m = NewMetrics()
	b := newBroker(t, broker.Config{Hooks: []any{m}, Store: store.NewMemory(), CommitObserver: m})
	sub := connect(t, b, client.Options{ClientID: "sub", SessionExpiry: 3600})
	if _, err := sub.Subscribe(testCtx(t), []client.Subscription{{Filter: "t", QoS: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, b, client.Options{ClientID: "pub"})
	if err := pub.Publish(testCtx(t), &client.Message{Topic: "t", QoS: 1, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	reg = prometheus.NewRegistry()
	reg.MustRegister(m)
	if n := gather(t, reg)[commitName].GetMetric()[0].GetHistogram().GetSampleCount(); n == 0 {
		t.Error("no commit observed after a durable publication")
	}
}

func gather(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	fs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fs {
		out[f.GetName()] = f
	}
	return out
}

// The bridge collector reports the bridges that exist at each scrape.
func TestBridgeCollector(t *testing.T) {
	var mu sync.Mutex
	errAt := time.Unix(1_700_000_000, 500_000_000)
	current := map[string]bridge.Status{
		"cloud": {Connected: true, QueueDepth: 7, Forwarded: bridge.Counters{In: 3, Out: 40}, Dropped: bridge.Counters{Out: 2},
			LoopsDropped: 5, Reconnects: 4, LastError: "remote: EOF", LastErrorAt: errAt},
		"edge": {},
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewBridgeCollector(func() map[string]bridge.Status {
		mu.Lock()
		defer mu.Unlock()
		return current
	}))
	fams := gather(t, reg)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{bridgeConnectedName, []string{"bridge", "cloud"}, 1},
		{bridgeConnectedName, []string{"bridge", "edge"}, 0},
		{bridgeQueueName, []string{"bridge", "cloud"}, 7},
		{bridgeForwardedName, []string{"bridge", "cloud", "direction", "out"}, 40},
		{bridgeForwardedName, []string{"bridge", "cloud", "direction", "in"}, 3},
		{bridgeDroppedName, []string{"bridge", "cloud", "direction", "out"}, 2},
		{bridgeDroppedName, []string{"bridge", "cloud", "direction", "in"}, 0},
		{bridgeLoopsName, []string{"bridge", "cloud"}, 5},
		{bridgeReconnectsName, []string{"bridge", "cloud"}, 4},
		{bridgeLastErrorName, []string{"bridge", "cloud"}, 1_700_000_000.5},
		{bridgeLastErrorName, []string{"bridge", "edge"}, 0},
	} {
		if v, ok := value(fams, c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	// A reload removed "cloud": its series go.
	mu.Lock()
	current = map[string]bridge.Status{"edge": {}}
	mu.Unlock()
	fams = gather(t, reg)
	if _, ok := value(fams, bridgeConnectedName, "bridge", "cloud"); ok {
		t.Error("removed bridge still reported")
	}
	if n := len(fams[bridgeConnectedName].GetMetric()); n != 1 {
		t.Errorf("%d bridges reported, want 1", n)
	}
}
