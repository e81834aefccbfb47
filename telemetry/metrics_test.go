package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// serve serves b on a loopback listener until the test's broker shutdown.
func serve(tb testing.TB, b *broker.Broker) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Serve(l) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			tb.Errorf("Serve: %v", err)
		}
	})
	<-b.Ready()
}

// scrape fetches and parses url's /metrics.
func scrape(tb testing.TB, url string) map[string]*dto.MetricFamily {
	tb.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the value of the series of fams with the given labels
// (name=value pairs), and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, lp := range m.Label {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// traffic connects a subscriber and a publisher to b, publishes n QoS 1
// messages and one retained message, and waits until every delivery was
// acknowledged (the hook counters are then final).
func traffic(t *testing.T, b *broker.Broker, m *Metrics, n int) {
	t.Helper()
	var got atomic.Int64
	sub := connect(t, b, client.Options{ClientID: "sub"})
	if _, err := sub.Subscribe(testCtx(t), []client.Subscription{{Filter: "m/#", QoS: 1}}, func(*client.Message) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, b, client.Options{ClientID: "pub"})
	for i := range n {
		if err := pub.Publish(testCtx(t), &client.Message{Topic: fmt.Sprintf("m/%d", i), QoS: 1, Payload: []byte("payload")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Publish(testCtx(t), &client.Message{Topic: "r", Retain: true, Payload: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deliveries", func() bool { return got.Load() == int64(n) && m.delivered[1].Load() == int64(n) })
	waitFor(t, "retained", func() bool { return b.Stats().Retained == 1 && m.retainedSet.Load() == 1 })
}

// denyBad refuses the user name "bad".
var denyBad = broker.AuthenticatorFunc(func(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
	if req.Client.Username == "bad" {
		return broker.AuthResult{Code: packet.BadUserNameOrPassword}
	}
	return broker.AuthResult{Code: packet.Success}
})

func TestMetricsEndpoint(t *testing.T) {
	const n = 25
	m := NewMetrics()
	b := newBroker(t, broker.Config{Hooks: []any{m}, Authenticator: m.WrapAuthenticator(denyBad)})
	serve(t, b)
	reg, err := NewRegistry(b, m)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHTTPHandler(b, reg, nil))
	defer srv.Close()

	traffic(t, b, m, n)
	bad, err := client.New(inProcess(b, client.Options{ClientID: "intruder", Username: "bad", Password: []byte("x")}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Connect(testCtx(t)); !errors.Is(err, packet.BadUserNameOrPassword) {
		t.Fatalf("bad credentials: %v", err)
	}
	waitFor(t, "connect counts", func() bool { return m.connects[packet.V5].Load() == 2 })
	waitFor(t, "the refused connection to end", func() bool { return b.Stats().Connections == 2 })

	fams := scrape(t, srv.URL)
	st := b.Stats()
	for _, sm := range statMetrics {
		got, ok := value(fams, sm.name)
		if !ok {
			t.Errorf("%s missing", sm.name)
			continue
		}
		if want := float64(sm.value(&st)); got != want {
			t.Errorf("%s = %v, Stats().%s = %v", sm.name, got, sm.field, want)
		}
		if wantType := map[bool]dto.MetricType{true: dto.MetricType_COUNTER, false: dto.MetricType_GAUGE}[sm.counter]; fams[sm.name].GetType() != wantType {
			t.Errorf("%s type %v", sm.name, fams[sm.name].GetType())
		}
	}
	checkSnapMetrics(t, fams, b)
	// Plausible values after the traffic.
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
		max    float64
	}{
		{"mqtt5_connections_active", nil, 2, 2},
		{"mqtt5_connections_accepted_total", nil, 3, 3},
		{"mqtt5_sessions", nil, 2, 2},
		{"mqtt5_subscriptions", nil, 1, 1},
		{"mqtt5_retained_messages", nil, 1, 1},
		{"mqtt5_publish_received_total", nil, n + 1, n + 1},
		{"mqtt5_publish_sent_total", []string{"qos", "1"}, n, n},
		{"mqtt5_publish_sent_total", []string{"qos", "0"}, 0, 0},
		{"mqtt5_publish_sent_bytes_total", []string{"qos", "1"}, n * 7, n * 100},
		// CONNACK ×2, SUBACK, n PUBLISH, n PUBACK, the refused CONNACK.
		{"mqtt5_packets_sent_total", nil, 2*n + 4, 2*n + 4},
		{"mqtt5_queued_messages", []string{"session", "connected"}, 0, 0},
		{"mqtt5_inflight_messages", nil, 0, 0},
		{"mqtt5_bytes_received_total", nil, n * 7, 1e9},
		{"mqtt5_bytes_sent_total", nil, n * 7, 1e9},
		{"mqtt5_ready", nil, 1, 1},
		{publishedName, []string{"qos", "1"}, n, n},
		{publishedName, []string{"qos", "0"}, 1, 1},
		{retainedPubName, nil, 1, 1},
		{deliveredName, []string{"qos", "1"}, n, n},
		{connectsName, []string{"protocol", "5.0"}, 2, 2},
		{authName, []string{"result", "success", "reason", "success"}, 2, 2},
		{authName, []string{"result", "failure", "reason", "bad_user_name_or_password"}, 1, 1},
		{subscribeName, []string{"result", "granted", "reason", "granted_qos1"}, 1, 1},
		{retainedChgName, []string{"change", "set"}, 1, 1},
		{"go_goroutines", nil, 1, 1e6},
	} {
		got, ok := value(fams, c.name, c.labels...)
		if !ok || got < c.min || got > c.max {
			t.Errorf("%s%v = %v (present %v), want %v..%v", c.name, c.labels, got, ok, c.min, c.max)
		}
	}
	if _, ok := fams["process_start_time_seconds"]; !ok && processMetricsSupported() {
		t.Error("process collector missing")
	}
}

// checkSnapMetrics compares the series of snapMetrics in fams with b's
// Stats and QueueStats, read now (the broker must be quiet).
func checkSnapMetrics(t *testing.T, fams map[string]*dto.MetricFamily, b *broker.Broker) {
	t.Helper()
	snap := snapshot{st: b.Stats(), qs: b.QueueStats()}
	for _, sm := range snapMetrics {
		n := 0
		sm.each(&snap, func(label string, want int64) {
			n++
			var labels []string
			if sm.label != "" {
				labels = []string{sm.label, label}
			}
			if got, ok := value(fams, sm.name, labels...); !ok || got != float64(want) {
				t.Errorf("%s%v = %v (present %v), want %d", sm.name, labels, got, ok, want)
			}
		})
		if f := fams[sm.name]; f == nil || len(f.Metric) != n {
			t.Errorf("%s: %d series, want %d", sm.name, len(f.GetMetric()), n)
		}
		if wantType := map[bool]dto.MetricType{true: dto.MetricType_COUNTER, false: dto.MetricType_GAUGE}[sm.counter]; fams[sm.name].GetType() != wantType {
			t.Errorf("%s type %v", sm.name, fams[sm.name].GetType())
		}
	}
}

// TestStatsCovered fails when broker.Stats or broker.QueueStats grows a
// field that no metric reads.
func TestStatsCovered(t *testing.T) {
	covered := map[string]bool{}
	for _, sm := range snapMetrics {
		for _, f := range sm.fields {
			covered[f] = true
		}
	}
	for _, sm := range statMetrics {
		covered[sm.field] = true
		f, ok := reflect.TypeFor[broker.Stats]().FieldByName(sm.field)
		if !ok {
			t.Errorf("%s reads Stats.%s, which does not exist", sm.name, sm.field)
			continue
		}
		// The value function reads the field it names.
		var st broker.Stats
		reflect.ValueOf(&st).Elem().FieldByIndex(f.Index).SetInt(12345)
		if sm.value(&st) != 12345 {
			t.Errorf("%s does not read Stats.%s", sm.name, sm.field)
		}
	}
	for f := range reflect.TypeFor[broker.Stats]().Fields() {
		if !covered[f.Name] {
			t.Errorf("broker.Stats.%s is not exported as a metric", f.Name)
		}
	}
	for f := range reflect.TypeFor[broker.QueueStats]().Fields() {
		if !covered[f.Name] {
			t.Errorf("broker.QueueStats.%s is not exported as a metric", f.Name)
		}
	}
	// Every labelled series reads what it claims: set each field to a
	// distinct value and find it among the series.
	var snap snapshot
	v := int64(1)
	for _, root := range []reflect.Value{reflect.ValueOf(&snap.st).Elem(), reflect.ValueOf(&snap.qs).Elem()} {
		var fill func(reflect.Value)
		fill = func(f reflect.Value) {
			switch f.Kind() {
			case reflect.Int64:
				f.SetInt(v)
				v++
			case reflect.Array:
				for i := range f.Len() {
					fill(f.Index(i))
				}
			case reflect.Struct:
				for i := range f.NumField() {
					fill(f.Field(i))
				}
			}
		}
		fill(root)
	}
	snap.st.Dropped = map[string]int64{"queue_full": 1000}
	for _, sm := range snapMetrics {
		var got []int64
		sm.each(&snap, func(_ string, x int64) { got = append(got, x) })
		if len(got) == 0 {
			t.Errorf("%s has no series", sm.name)
		}
		seen := map[int64]bool{}
		for _, x := range got {
			if x == 0 || seen[x] {
				t.Errorf("%s reads an unset or repeated field: %v", sm.name, got)
			}
			seen[x] = true
		}
	}
}

func TestOTelMetrics(t *testing.T) {
	m := NewMetrics()
	b := newBroker(t, broker.Config{Hooks: []any{m}})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	reg, err := RegisterOTel(mp, b, m)
	if err != nil {
		t.Fatal(err)
	}
	traffic(t, b, m, 5)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			switch d := md.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					key := md.Name
					for _, kv := range p.Attributes.ToSlice() {
						key += fmt.Sprintf(",%s=%s", kv.Key, kv.Value.Emit())
					}
					got[key] = p.Value
				}
				if !d.IsMonotonic {
					t.Errorf("%s is not monotonic", md.Name)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					key := md.Name
					for _, kv := range p.Attributes.ToSlice() {
						key += fmt.Sprintf(",%s=%s", kv.Key, kv.Value.Emit())
					}
					got[key] = p.Value
				}
			}
		}
	}
	for _, sm := range statMetrics {
		if v, ok := got[otelName(sm.name)]; !ok || v != sm.value(&st) {
			t.Errorf("%s = %d (%v), Stats %d", otelName(sm.name), v, ok, sm.value(&st))
		}
	}
	snap := snapshot{st: st, qs: b.QueueStats()}
	for _, sm := range snapMetrics {
		sm.each(&snap, func(label string, want int64) {
			key := otelName(sm.name)
			if sm.label != "" {
				key += "," + sm.label + "=" + label
			}
			if v, ok := got[key]; !ok || v != want {
				t.Errorf("%s = %d (%v), want %d", key, v, ok, want)
			}
		})
	}
	for key, want := range map[string]int64{
		"mqtt5.messages_published,qos=1":                              5,
		"mqtt5.deliveries_acknowledged,qos=1":                         5,
		"mqtt5.connects,protocol=5.0":                                 2,
		"mqtt5.retained_changes,change=set":                           1,
		"mqtt5.messages_dropped,reason=queue_full":                    st.Dropped["queue_full"],
		"mqtt5.subscribe_requests,reason=granted_qos1,result=granted": 1,
		"mqtt5.publish_sent,qos=1":                                    5,
		"mqtt5.authorization_denied,action=publish":                   0,
	} {
		if got[key] != want {
			t.Errorf("%s = %d, want %d", key, got[key], want)
		}
	}
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
}

func TestReasonLabels(t *testing.T) {
	for c, want := range map[packet.ReasonCode]string{
		packet.NotAuthorized:   "not_authorized",
		packet.QoSNotSupported: "qos_not_supported",
		packet.ReAuthenticate:  "re_authenticate",
		0xEE:                   "reason_code_0xee",
	} {
		if got := reasonLabel(c); got != want {
			t.Errorf("reasonLabel(%#x) = %q, want %q", byte(c), got, want)
		}
	}
	if subReasonLabel(packet.GrantedQoS2) != "granted_qos2" || protocolLabel(4) != "3.1.1" {
		t.Error("labels")
	}
}

func processMetricsSupported() bool { return runtime.GOOS == "linux" }
