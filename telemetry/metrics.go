package telemetry

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// statMetric is one series read from broker.Stats.
type statMetric struct {
	name    string // Prometheus name; the OTel name is derived from it
	field   string // the broker.Stats field it reads
	help    string
	unit    string // OTel unit
	counter bool
	value   func(*broker.Stats) int64
}

// statMetrics lists every scalar field of broker.Stats (Dropped is the
// labelled mqtt5_messages_dropped_total).
var statMetrics = []statMetric{
	{"mqtt5_connections_active", "Connections", "Network connections open now.", "{connection}", false, func(s *broker.Stats) int64 { return s.Connections }},
	{"mqtt5_connections_accepted_total", "ConnectionsTotal", "Network connections accepted since start.", "{connection}", true, func(s *broker.Stats) int64 { return s.ConnectionsTotal }},
	{"mqtt5_connections_peak", "MaxConnections", "Highest number of concurrent network connections since start.", "{connection}", false, func(s *broker.Stats) int64 { return s.MaxConnections }},
	{"mqtt5_sessions", "Sessions", "Sessions, connected or not.", "{session}", false, func(s *broker.Stats) int64 { return s.Sessions }},
	{"mqtt5_subscriptions", "Subscriptions", "Subscriptions in the router.", "{subscription}", false, func(s *broker.Stats) int64 { return s.Subscriptions }},
	{"mqtt5_retained_messages", "Retained", "Retained messages.", "{message}", false, func(s *broker.Stats) int64 { return s.Retained }},
	{"mqtt5_packets_received_total", "MessagesReceived", "MQTT packets received, of every type.", "{packet}", true, func(s *broker.Stats) int64 { return s.MessagesReceived }},
	{"mqtt5_packets_sent_total", "MessagesSent", "MQTT packets sent, of every type.", "{packet}", true, func(s *broker.Stats) int64 { return s.MessagesSent }},
	{"mqtt5_bytes_received_total", "BytesReceived", "Bytes received from clients.", "By", true, func(s *broker.Stats) int64 { return s.BytesReceived }},
	{"mqtt5_bytes_sent_total", "BytesSent", "Bytes sent to clients.", "By", true, func(s *broker.Stats) int64 { return s.BytesSent }},
	{"mqtt5_publish_received_total", "PublishReceived", "PUBLISH packets received.", "{packet}", true, func(s *broker.Stats) int64 { return s.PublishReceived }},
	{"mqtt5_redirects_total", "Redirects", "CONNECTs redirected to another server by the load balancer.", "{connection}", true, func(s *broker.Stats) int64 { return s.Redirects }},
	{"mqtt5_change_only_suppressed_total", "ChangeOnlySuppressed", "Deliveries skipped because the payload was unchanged (change-only delivery).", "{message}", true, func(s *broker.Stats) int64 { return s.ChangeOnlySuppressed }},
	{"mqtt5_echo_suppressed_total", "EchoSuppressed", "Deliveries skipped by echo suppression.", "{message}", true, func(s *broker.Stats) int64 { return s.EchoSuppressed }},
	{"mqtt5_hook_events_dropped_total", "HookEventsDropped", "Hook notification events dropped on a full queue.", "{event}", true, func(s *broker.Stats) int64 { return s.HookEventsDropped }},
	{"mqtt5_rate_limited_total", "RateLimited", "Inbound PUBLISH packets refused or dropped by rate limits.", "{packet}", true, func(s *broker.Stats) int64 { return s.RateLimited }},
	{"mqtt5_rate_limit_disconnects_total", "RateLimitDisconnects", "Clients disconnected by rate limits.", "{connection}", true, func(s *broker.Stats) int64 { return s.RateLimitDisconnects }},
	{"mqtt5_connections_refused_per_ip_total", "RefusedPerIP", "Connections closed unread because their IP address reached its connection limit.", "{connection}", true, func(s *broker.Stats) int64 { return s.RefusedPerIP }},
	{"mqtt5_store_errors_total", "StoreErrors", "Failed writes to the persistent store.", "{error}", true, func(s *broker.Stats) int64 { return s.StoreErrors }},
}

// snapshot is what the stats collector reads once per scrape.
type snapshot struct {
	st broker.Stats
	qs broker.QueueStats
}

func (c *statsCollector) snapshot() snapshot {
	return snapshot{st: c.b.Stats(), qs: c.b.QueueStats()}
}

// snapMetric is a series read from broker.Stats or broker.QueueStats that
// scalar statMetrics do not cover: labelled ones, and the queue depths.
type snapMetric struct {
	name    string
	help    string
	unit    string
	label   string // "" for none
	counter bool
	fields  []string // the Stats or QueueStats fields it reads
	each    func(s *snapshot, fn func(label string, v int64))
}

// qosLabels are the values of the qos label.
var qosLabels = [3]string{"0", "1", "2"}

var snapMetrics = []snapMetric{
	{droppedName, droppedHelp, "{message}", "reason", true, []string{"Dropped"}, func(s *snapshot, fn func(string, int64)) {
		for reason, n := range s.st.Dropped {
			fn(reason, n)
		}
	}},
	{"mqtt5_publish_sent_total", "PUBLISH packets sent, by the QoS of the packet (retransmissions included).", "{packet}", "qos", true,
		[]string{"PublishSent", "PublishSentByQoS"}, func(s *snapshot, fn func(string, int64)) {
			for q, n := range s.st.PublishSentByQoS {
				fn(qosLabels[q], n)
			}
		}},
	{"mqtt5_publish_sent_bytes_total", "Bytes of the PUBLISH packets sent, by QoS.", "By", "qos", true,
		[]string{"PublishBytesSentByQoS"}, func(s *snapshot, fn func(string, int64)) {
			for q, n := range s.st.PublishBytesSentByQoS {
				fn(qosLabels[q], n)
			}
		}},
	{"mqtt5_queued_messages", "Messages waiting in session queues for delivery, by session state (connected or offline).", "{message}", "session", false,
		[]string{"Connected", "Offline"}, func(s *snapshot, fn func(string, int64)) {
			fn("connected", s.qs.Connected.Messages)
			fn("offline", s.qs.Offline.Messages)
		}},
	{"mqtt5_queued_bytes", "Bytes of the messages waiting in session queues, by session state (connected or offline).", "By", "session", false,
		nil, func(s *snapshot, fn func(string, int64)) {
			fn("connected", s.qs.Connected.Bytes)
			fn("offline", s.qs.Offline.Bytes)
		}},
	{"mqtt5_inflight_messages", "QoS 1 and 2 messages sent to clients and not yet acknowledged.", "{message}", "", false,
		[]string{"Inflight"}, func(s *snapshot, fn func(string, int64)) { fn("", s.qs.Inflight) }},
	{"mqtt5_session_queue_max_messages", "Messages in the deepest session queue.", "{message}", "", false,
		[]string{"MaxMessages"}, func(s *snapshot, fn func(string, int64)) { fn("", s.qs.MaxMessages) }},
	{"mqtt5_session_queue_max_bytes", "Bytes in the largest session queue.", "By", "", false,
		[]string{"MaxBytes"}, func(s *snapshot, fn func(string, int64)) { fn("", s.qs.MaxBytes) }},
}

func (m *snapMetric) labels() []string {
	if m.label == "" {
		return nil
	}
	return []string{m.label}
}

const (
	droppedName = "mqtt5_messages_dropped_total"
	droppedHelp = "Messages not delivered, by reason."
	readyName   = "mqtt5_ready"
	readyHelp   = "1 once the broker accepts connections on a listener."
)

// statsCollector is a prometheus.Collector reading Broker.Stats and
// Broker.QueueStats on scrape.
type statsCollector struct {
	b     *broker.Broker
	descs []*prometheus.Desc // of statMetrics
	snaps []*prometheus.Desc // of snapMetrics
	ready *prometheus.Desc
}

// NewStatsCollector returns a prometheus.Collector that reads b.Stats()
// and b.QueueStats() once per scrape: connections, sessions,
// subscriptions, retained messages, packets, bytes and PUBLISH in and out
// (out by QoS), undelivered messages by reason, queue depths and in-flight
// messages, store errors, and the counters of the optional features
// (redirects, change-only, echo suppression, rate limits, per-IP
// connection limits, hook queue drops).
func NewStatsCollector(b *broker.Broker) prometheus.Collector {
	c := &statsCollector{
		b:     b,
		ready: prometheus.NewDesc(readyName, readyHelp, nil, nil),
	}
	for _, m := range statMetrics {
		c.descs = append(c.descs, prometheus.NewDesc(m.name, m.help, nil, nil))
	}
	for _, m := range snapMetrics {
		c.snaps = append(c.snaps, prometheus.NewDesc(m.name, m.help, m.labels(), nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	for _, d := range c.snaps {
		ch <- d
	}
	ch <- c.ready
}

func valueType(counter bool) prometheus.ValueType {
	if counter {
		return prometheus.CounterValue
	}
	return prometheus.GaugeValue
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.snapshot()
	for i, m := range statMetrics {
		ch <- prometheus.MustNewConstMetric(c.descs[i], valueType(m.counter), float64(m.value(&snap.st)))
	}
	for i := range snapMetrics {
		m := &snapMetrics[i]
		m.each(&snap, func(label string, v int64) {
			if m.label == "" {
				ch <- prometheus.MustNewConstMetric(c.snaps[i], valueType(m.counter), float64(v))
			} else {
				ch <- prometheus.MustNewConstMetric(c.snaps[i], valueType(m.counter), float64(v), label)
			}
		})
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, boolFloat(isReady(c.b)))
}

func isReady(b *broker.Broker) bool {
	select {
	case <-b.Ready():
		return true
	default:
		return false
	}
}

func boolFloat(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

// Metrics counts, through broker hooks, what broker.Stats does not:
// messages published by QoS, acknowledged deliveries by QoS, connections
// by protocol version, disconnections by reason code, SUBSCRIBE outcomes,
// changes of retained messages; with WrapAuthenticator, authentication
// results by reason code; with WrapAuthorizer, authorization refusals by
// action; as the broker's Config.CommitObserver, the duration of store
// commits. Register it as a hook (broker.Config.Hooks or Broker.AddHook)
// and as a Prometheus collector (NewRegistry does), or read it with
// RegisterOTel.
//
// Its PublishHook runs on each publisher's goroutine and costs one atomic
// increment per message; the other hooks are notifications.
type Metrics struct {
	published   [3]atomic.Int64 // by QoS
	retainedPub atomic.Int64
	delivered   [3]atomic.Int64 // by QoS (1 and 2)
	connects    [8]atomic.Int64 // by protocol level
	disconnects [2][256]atomic.Int64
	auth        [256]atomic.Int64
	subscribe   [256]atomic.Int64
	retainedSet atomic.Int64
	retainedClr atomic.Int64
	authzDenied [numActions]atomic.Int64
	commitFails atomic.Int64
	commit      prometheus.Histogram

	descPublished, descRetainedPub, descDelivered, descConnects, descDisconnects,
	descAuth, descSubscribe, descRetainedChg, descAuthzDenied, descCommitFails *prometheus.Desc
}

var (
	_ broker.PublishHook    = (*Metrics)(nil)
	_ broker.ConnectHook    = (*Metrics)(nil)
	_ broker.DisconnectHook = (*Metrics)(nil)
	_ broker.SubscribeHook  = (*Metrics)(nil)
	_ broker.DeliveredHook  = (*Metrics)(nil)
	_ broker.RetainedHook   = (*Metrics)(nil)
	_ broker.CommitObserver = (*Metrics)(nil)
	_ prometheus.Collector  = (*Metrics)(nil)
)

// Actions of an authorization decision, the values of the action label.
const (
	actionPublish = iota
	actionSubscribe
	actionReceive
	numActions
)

var actionLabels = [numActions]string{"publish", "subscribe", "receive"}

// CommitBuckets are the upper bounds, in seconds, of the store commit
// duration histogram: 50 µs to 5 s.
var CommitBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5}

// Prometheus names of the hook-based metrics.
const (
	publishedName   = "mqtt5_messages_published_total"
	retainedPubName = "mqtt5_messages_published_retained_total"
	deliveredName   = "mqtt5_deliveries_acknowledged_total"
	connectsName    = "mqtt5_connects_total"
	disconnectsName = "mqtt5_disconnects_total"
	authName        = "mqtt5_auth_total"
	subscribeName   = "mqtt5_subscribe_requests_total"
	retainedChgName = "mqtt5_retained_changes_total"
	authzDeniedName = "mqtt5_authorization_denied_total"
	commitName      = "mqtt5_store_commit_duration_seconds"
	commitFailsName = "mqtt5_store_commit_failures_total"
)

// Help texts of the hook-based metrics, shared by both exporters.
var hookHelp = map[string]string{
	publishedName:   "Messages published by network clients and accepted for routing, by QoS.",
	retainedPubName: "Messages published by network clients with the RETAIN flag.",
	deliveredName:   "QoS 1 and 2 deliveries acknowledged by subscribers (PUBACK, PUBCOMP), by QoS.",
	connectsName:    "Accepted connections, by MQTT protocol version.",
	disconnectsName: "Ended connections, by reason code and whether the client sent DISCONNECT.",
	authName:        "Authentication results, by result and reason code.",
	subscribeName:   "Subscriptions requested in SUBSCRIBE packets, by outcome.",
	retainedChgName: "Changes of retained messages.",
	authzDeniedName: "Requests refused by the authorizer, by action (publish, subscribe, receive).",
	commitName:      "Duration of store commits: one batch write of many operations with its sync.",
	commitFailsName: "Store commits that failed.",
}

// NewMetrics returns zeroed counters.
func NewMetrics() *Metrics {
	desc := func(name string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, hookHelp[name], labels, nil)
	}
	return &Metrics{
		descPublished:   desc(publishedName, "qos"),
		descRetainedPub: desc(retainedPubName),
		descDelivered:   desc(deliveredName, "qos"),
		descConnects:    desc(connectsName, "protocol"),
		descDisconnects: desc(disconnectsName, "reason", "expected"),
		descAuth:        desc(authName, "result", "reason"),
		descSubscribe:   desc(subscribeName, "result", "reason"),
		descRetainedChg: desc(retainedChgName, "change"),
		descAuthzDenied: desc(authzDeniedName, "action"),
		descCommitFails: desc(commitFailsName),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: commitName, Help: hookHelp[commitName], Buckets: CommitBuckets,
		}),
	}
}

// ObserveCommit implements broker.CommitObserver: set the Metrics as
// broker.Config.CommitObserver to measure store commits.
func (m *Metrics) ObserveCommit(d time.Duration, _ int, err error) {
	m.commit.Observe(d.Seconds())
	if err != nil {
		m.commitFails.Add(1)
	}
}

// OnPublish implements broker.PublishHook; it never changes the message.
func (m *Metrics) OnPublish(_ context.Context, ev broker.PublishEvent) broker.PublishDecision {
	if q := ev.Message.QoS; q < 3 {
		m.published[q].Add(1)
	}
	if ev.Message.Retain {
		m.retainedPub.Add(1)
	}
	return broker.PublishDecision{}
}

// OnDelivered implements broker.DeliveredHook.
func (m *Metrics) OnDelivered(ev broker.DeliveredEvent) {
	if ev.QoS < 3 {
		m.delivered[ev.QoS].Add(1)
	}
}

// OnConnect implements broker.ConnectHook.
func (m *Metrics) OnConnect(ev broker.ConnectEvent) {
	m.connects[int(ev.Client.Version)&7].Add(1)
}

// OnDisconnect implements broker.DisconnectHook.
func (m *Metrics) OnDisconnect(ev broker.DisconnectEvent) {
	e := 0
	if ev.Expected {
		e = 1
	}
	m.disconnects[e][ev.ReasonCode].Add(1)
}

// OnSubscribe implements broker.SubscribeHook.
func (m *Metrics) OnSubscribe(ev broker.SubscribeEvent) {
	for _, c := range ev.Codes {
		m.subscribe[c].Add(1)
	}
}

// OnRetained implements broker.RetainedHook.
func (m *Metrics) OnRetained(ev broker.RetainedEvent) {
	if ev.Cleared {
		m.retainedClr.Add(1)
	} else {
		m.retainedSet.Add(1)
	}
}

// WrapAuthenticator returns a counting the results of a's decisions
// (success, or failure by reason code; intermediate steps of an enhanced
// authentication exchange are not counted). A nil a and broker.AllowAll
// are returned unchanged, because the broker treats AllowAll specially
// (see broker.Config.AllowSessionIdentityChange).
func (m *Metrics) WrapAuthenticator(a broker.Authenticator) broker.Authenticator {
	if a == nil {
		return nil
	}
	if _, ok := a.(broker.AllowAll); ok {
		return a
	}
	return broker.AuthenticatorFunc(func(ctx context.Context, req *broker.AuthRequest) broker.AuthResult {
		res := a.Authenticate(ctx, req)
		if res.Code != packet.ContinueAuthentication {
			m.auth[res.Code].Add(1)
		}
		return res
	})
}

// WrapAuthorizer returns a counting the requests that a refuses
// (CanPublish, CanSubscribe and, when a implements
// broker.ReceiveAuthorizer, CanReceive returning false). The result
// implements broker.ReceiveAuthorizer exactly when a does. A nil a is
// returned unchanged.
//
// Subscriptions of a resumed session that are no longer allowed count as
// refused subscribe requests; PUBLISH to $-topics, which the broker
// refuses without asking the authorizer, is not counted.
func (m *Metrics) WrapAuthorizer(a broker.Authorizer) broker.Authorizer {
	if a == nil {
		return nil
	}
	ca := countingAuthorizer{a: a, m: m}
	if r, ok := a.(broker.ReceiveAuthorizer); ok {
		return countingReceiveAuthorizer{countingAuthorizer: ca, r: r}
	}
	return ca
}

type countingAuthorizer struct {
	a broker.Authorizer
	m *Metrics
}

func (c countingAuthorizer) CanPublish(ctx context.Context, ci *broker.ClientInfo, topic string) bool {
	ok := c.a.CanPublish(ctx, ci, topic)
	if !ok {
		c.m.authzDenied[actionPublish].Add(1)
	}
	return ok
}

func (c countingAuthorizer) CanSubscribe(ctx context.Context, ci *broker.ClientInfo, filter string) bool {
	ok := c.a.CanSubscribe(ctx, ci, filter)
	if !ok {
		c.m.authzDenied[actionSubscribe].Add(1)
	}
	return ok
}

type countingReceiveAuthorizer struct {
	countingAuthorizer
	r broker.ReceiveAuthorizer
}

func (c countingReceiveAuthorizer) CanReceive(ctx context.Context, ci *broker.ClientInfo, topic string) bool {
	ok := c.r.CanReceive(ctx, ci, topic)
	if !ok {
		c.m.authzDenied[actionReceive].Add(1)
	}
	return ok
}

// reasonLabel is a reason code's name as a label value: "not_authorized".
func reasonLabel(c packet.ReasonCode) string {
	return labelReplacer.Replace(strings.ToLower(c.String()))
}

var labelReplacer = strings.NewReplacer(" ", "_", "-", "_")

func resultLabel(c packet.ReasonCode) string {
	if c.IsError() {
		return "failure"
	}
	return "success"
}

func subReasonLabel(c packet.ReasonCode) string {
	if c <= packet.GrantedQoS2 {
		return "granted_qos" + strconv.Itoa(int(c))
	}
	return reasonLabel(c)
}

func protocolLabel(level int) string {
	switch level {
	case int(packet.V311):
		return "3.1.1"
	case int(packet.V5):
		return "5.0"
	case 3:
		return "3.1"
	}
	return "level_" + strconv.Itoa(level)
}

// series is one value of a hook-based metric, for both exporters.
type series struct {
	desc   *prometheus.Desc
	name   string
	labels []string // label values, in the order of names
	names  []string
	value  int64
}

// each calls fn with every hook-based series: the QoS series always, the
// others once non-zero.
func (m *Metrics) each(fn func(series)) {
	for q := range m.published {
		fn(series{desc: m.descPublished, name: publishedName, names: []string{"qos"}, labels: []string{strconv.Itoa(q)}, value: m.published[q].Load()})
	}
	fn(series{desc: m.descRetainedPub, name: retainedPubName, value: m.retainedPub.Load()})
	for q := 1; q < 3; q++ {
		fn(series{desc: m.descDelivered, name: deliveredName, names: []string{"qos"}, labels: []string{strconv.Itoa(q)}, value: m.delivered[q].Load()})
	}
	for lvl := range m.connects {
		if n := m.connects[lvl].Load(); n != 0 {
			fn(series{desc: m.descConnects, name: connectsName, names: []string{"protocol"}, labels: []string{protocolLabel(lvl)}, value: n})
		}
	}
	for e := range m.disconnects {
		for c := range m.disconnects[e] {
			if n := m.disconnects[e][c].Load(); n != 0 {
				fn(series{desc: m.descDisconnects, name: disconnectsName, names: []string{"reason", "expected"},
					labels: []string{reasonLabel(packet.ReasonCode(c)), strconv.FormatBool(e == 1)}, value: n})
			}
		}
	}
	for c := range m.auth {
		if n := m.auth[c].Load(); n != 0 {
			rc := packet.ReasonCode(c)
			fn(series{desc: m.descAuth, name: authName, names: []string{"result", "reason"}, labels: []string{resultLabel(rc), reasonLabel(rc)}, value: n})
		}
	}
	for c := range m.subscribe {
		if n := m.subscribe[c].Load(); n != 0 {
			rc := packet.ReasonCode(c)
			res := "granted"
			if rc.IsError() {
				res = "refused"
			}
			fn(series{desc: m.descSubscribe, name: subscribeName, names: []string{"result", "reason"}, labels: []string{res, subReasonLabel(rc)}, value: n})
		}
	}
	fn(series{desc: m.descRetainedChg, name: retainedChgName, names: []string{"change"}, labels: []string{"set"}, value: m.retainedSet.Load()})
	fn(series{desc: m.descRetainedChg, name: retainedChgName, names: []string{"change"}, labels: []string{"cleared"}, value: m.retainedClr.Load()})
	for a := range m.authzDenied {
		fn(series{desc: m.descAuthzDenied, name: authzDeniedName, names: []string{"action"}, labels: []string{actionLabels[a]}, value: m.authzDenied[a].Load()})
	}
	fn(series{desc: m.descCommitFails, name: commitFailsName, value: m.commitFails.Load()})
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.descPublished, m.descRetainedPub, m.descDelivered, m.descConnects,
		m.descDisconnects, m.descAuth, m.descSubscribe, m.descRetainedChg, m.descAuthzDenied, m.descCommitFails} {
		ch <- d
	}
	m.commit.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.each(func(s series) {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, float64(s.value), s.labels...)
	})
	m.commit.Collect(ch)
}

// NewRegistry returns a Prometheus registry of its own (not the global
// one) holding the Stats collector of b, the hook counters m (when not
// nil), and the Go runtime and process collectors.
func NewRegistry(b *broker.Broker, m *Metrics) (*prometheus.Registry, error) {
	if b == nil {
		return nil, errNoBroker
	}
	reg := prometheus.NewRegistry()
	cs := []prometheus.Collector{
		NewStatsCollector(b),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	if m != nil {
		cs = append(cs, m)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// otelName turns a Prometheus name into an OpenTelemetry instrument name:
// mqtt5_bytes_received_total becomes mqtt5.bytes_received.
func otelName(prom string) string {
	s := strings.TrimSuffix(prom, "_total")
	if rest, ok := strings.CutPrefix(s, "mqtt5_"); ok {
		return "mqtt5." + rest
	}
	return s
}

// RegisterOTel reports the values of NewStatsCollector, and of m when it
// is not nil, through mp's observable instruments (named like the
// Prometheus series, with dots: mqtt5.connections_active,
// mqtt5.bytes_received ...), read once per collection. Unregister the
// returned registration to stop.
func RegisterOTel(mp metric.MeterProvider, b *broker.Broker, m *Metrics) (metric.Registration, error) {
	if b == nil {
		return nil, errNoBroker
	}
	meter := mp.Meter(ScopeName)
	var obs []metric.Observable
	type inst struct {
		counter metric.Int64ObservableCounter
		gauge   metric.Int64ObservableGauge
	}
	newInst := func(name, help, unit string, counter bool) (inst, error) {
		desc, u := metric.WithDescription(help), metric.WithUnit(unit)
		if counter {
			c, err := meter.Int64ObservableCounter(otelName(name), desc, u)
			if err == nil {
				obs = append(obs, c)
			}
			return inst{counter: c}, err
		}
		g, err := meter.Int64ObservableGauge(otelName(name), desc, u)
		if err == nil {
			obs = append(obs, g)
		}
		return inst{gauge: g}, err
	}
	observe := func(o metric.Observer, in inst, v int64, attrs ...attribute.KeyValue) {
		var opts []metric.ObserveOption
		if len(attrs) > 0 {
			opts = append(opts, metric.WithAttributes(attrs...))
		}
		if in.counter != nil {
			o.ObserveInt64(in.counter, v, opts...)
		} else {
			o.ObserveInt64(in.gauge, v, opts...)
		}
	}
	stats := make([]inst, len(statMetrics))
	for i, sm := range statMetrics {
		var err error
		if stats[i], err = newInst(sm.name, sm.help, sm.unit, sm.counter); err != nil {
			return nil, err
		}
	}
	snaps := make([]inst, len(snapMetrics))
	for i, sm := range snapMetrics {
		var err error
		if snaps[i], err = newInst(sm.name, sm.help, sm.unit, sm.counter); err != nil {
			return nil, err
		}
	}
	ready, err := newInst(readyName, readyHelp, "", false)
	if err != nil {
		return nil, err
	}
	hooks := map[string]inst{}
	if m != nil {
		for name, help := range hookHelp {
			if name == commitName {
				continue // a histogram: the Prometheus bridge (SetupMetrics) exports it
			}
			in, err := newInst(name, help, "", true)
			if err != nil {
				return nil, err
			}
			hooks[name] = in
		}
	}
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		snap := snapshot{st: b.Stats(), qs: b.QueueStats()}
		for i, sm := range statMetrics {
			observe(o, stats[i], sm.value(&snap.st))
		}
		for i := range snapMetrics {
			sm := &snapMetrics[i]
			sm.each(&snap, func(label string, v int64) {
				if sm.label == "" {
					observe(o, snaps[i], v)
				} else {
					observe(o, snaps[i], v, attribute.String(sm.label, label))
				}
			})
		}
		var r int64
		if isReady(b) {
			r = 1
		}
		observe(o, ready, r)
		if m != nil {
			m.each(func(s series) {
				attrs := make([]attribute.KeyValue, len(s.names))
				for i, n := range s.names {
					attrs[i] = attribute.String(n, s.labels[i])
				}
				observe(o, hooks[s.name], s.value, attrs...)
			})
		}
		return nil
	}, obs...)
}
