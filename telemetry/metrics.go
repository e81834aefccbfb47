package telemetry

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"

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
	{"mqtt5_packets_received_total", "MessagesReceived", "MQTT packets received.", "{packet}", true, func(s *broker.Stats) int64 { return s.MessagesReceived }},
	{"mqtt5_packets_sent_total", "MessagesSent", "MQTT packets sent.", "{packet}", true, func(s *broker.Stats) int64 { return s.MessagesSent }},
	{"mqtt5_bytes_received_total", "BytesReceived", "Bytes received from clients.", "By", true, func(s *broker.Stats) int64 { return s.BytesReceived }},
	{"mqtt5_bytes_sent_total", "BytesSent", "Bytes sent to clients.", "By", true, func(s *broker.Stats) int64 { return s.BytesSent }},
	{"mqtt5_publish_received_total", "PublishReceived", "PUBLISH packets received.", "{packet}", true, func(s *broker.Stats) int64 { return s.PublishReceived }},
	{"mqtt5_publish_sent_total", "PublishSent", "PUBLISH packets sent.", "{packet}", true, func(s *broker.Stats) int64 { return s.PublishSent }},
	{"mqtt5_redirects_total", "Redirects", "CONNECTs redirected to another server by the load balancer.", "{connection}", true, func(s *broker.Stats) int64 { return s.Redirects }},
	{"mqtt5_change_only_suppressed_total", "ChangeOnlySuppressed", "Deliveries skipped because the payload was unchanged (change-only delivery).", "{message}", true, func(s *broker.Stats) int64 { return s.ChangeOnlySuppressed }},
	{"mqtt5_echo_suppressed_total", "EchoSuppressed", "Deliveries skipped by echo suppression.", "{message}", true, func(s *broker.Stats) int64 { return s.EchoSuppressed }},
	{"mqtt5_hook_events_dropped_total", "HookEventsDropped", "Hook notification events dropped on a full queue.", "{event}", true, func(s *broker.Stats) int64 { return s.HookEventsDropped }},
	{"mqtt5_rate_limited_total", "RateLimited", "Inbound PUBLISH packets refused or dropped by rate limits.", "{packet}", true, func(s *broker.Stats) int64 { return s.RateLimited }},
	{"mqtt5_rate_limit_disconnects_total", "RateLimitDisconnects", "Clients disconnected by rate limits.", "{connection}", true, func(s *broker.Stats) int64 { return s.RateLimitDisconnects }},
	{"mqtt5_connections_refused_per_ip_total", "RefusedPerIP", "Connections closed unread because their IP address reached its connection limit.", "{connection}", true, func(s *broker.Stats) int64 { return s.RefusedPerIP }},
}

const (
	droppedName = "mqtt5_messages_dropped_total"
	droppedHelp = "Messages not delivered, by reason."
	readyName   = "mqtt5_ready"
	readyHelp   = "1 once the broker accepts connections on a listener."
)

// statsCollector is a prometheus.Collector reading Broker.Stats on scrape.
type statsCollector struct {
	b       *broker.Broker
	descs   []*prometheus.Desc
	dropped *prometheus.Desc
	ready   *prometheus.Desc
}

// NewStatsCollector returns a prometheus.Collector that reads b.Stats()
// once per scrape: connections, sessions, subscriptions, retained
// messages, packets, bytes and PUBLISH in and out, undelivered messages by
// reason, and the counters of the optional features (redirects,
// change-only, echo suppression, rate limits, per-IP connection limits,
// hook queue drops).
func NewStatsCollector(b *broker.Broker) prometheus.Collector {
	c := &statsCollector{
		b:       b,
		dropped: prometheus.NewDesc(droppedName, droppedHelp, []string{"reason"}, nil),
		ready:   prometheus.NewDesc(readyName, readyHelp, nil, nil),
	}
	for _, m := range statMetrics {
		c.descs = append(c.descs, prometheus.NewDesc(m.name, m.help, nil, nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.dropped
	ch <- c.ready
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.b.Stats()
	for i, m := range statMetrics {
		vt := prometheus.GaugeValue
		if m.counter {
			vt = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[i], vt, float64(m.value(&st)))
	}
	for reason, n := range st.Dropped {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n), reason)
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
// changes of retained messages and, with WrapAuthenticator,
// authentication results by reason code. Register it as a hook
// (broker.Config.Hooks or Broker.AddHook) and as a Prometheus collector
// (NewRegistry does), or read it with RegisterOTel.
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

	descPublished, descRetainedPub, descDelivered, descConnects, descDisconnects,
	descAuth, descSubscribe, descRetainedChg *prometheus.Desc
}

var (
	_ broker.PublishHook    = (*Metrics)(nil)
	_ broker.ConnectHook    = (*Metrics)(nil)
	_ broker.DisconnectHook = (*Metrics)(nil)
	_ broker.SubscribeHook  = (*Metrics)(nil)
	_ broker.DeliveredHook  = (*Metrics)(nil)
	_ broker.RetainedHook   = (*Metrics)(nil)
	_ prometheus.Collector  = (*Metrics)(nil)
)

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
)

// NewMetrics returns zeroed counters.
func NewMetrics() *Metrics {
	return &Metrics{
		descPublished:   prometheus.NewDesc(publishedName, "Messages published by network clients and accepted for routing, by QoS.", []string{"qos"}, nil),
		descRetainedPub: prometheus.NewDesc(retainedPubName, "Messages published by network clients with the RETAIN flag.", nil, nil),
		descDelivered:   prometheus.NewDesc(deliveredName, "QoS 1 and 2 deliveries acknowledged by subscribers (PUBACK, PUBCOMP), by QoS.", []string{"qos"}, nil),
		descConnects:    prometheus.NewDesc(connectsName, "Accepted connections, by MQTT protocol version.", []string{"protocol"}, nil),
		descDisconnects: prometheus.NewDesc(disconnectsName, "Ended connections, by reason code and whether the client sent DISCONNECT.", []string{"reason", "expected"}, nil),
		descAuth:        prometheus.NewDesc(authName, "Authentication results, by result and reason code.", []string{"result", "reason"}, nil),
		descSubscribe:   prometheus.NewDesc(subscribeName, "Subscriptions requested in SUBSCRIBE packets, by outcome.", []string{"result", "reason"}, nil),
		descRetainedChg: prometheus.NewDesc(retainedChgName, "Changes of retained messages.", []string{"change"}, nil),
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
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.descPublished, m.descRetainedPub, m.descDelivered, m.descConnects,
		m.descDisconnects, m.descAuth, m.descSubscribe, m.descRetainedChg} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.each(func(s series) {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, float64(s.value), s.labels...)
	})
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
	dropped, err := newInst(droppedName, droppedHelp, "{message}", true)
	if err != nil {
		return nil, err
	}
	ready, err := newInst(readyName, readyHelp, "", false)
	if err != nil {
		return nil, err
	}
	hooks := map[string]inst{}
	if m != nil {
		helps := map[string]string{}
		for _, d := range [][2]string{
			{publishedName, "Messages published by network clients and accepted for routing, by QoS."},
			{retainedPubName, "Messages published by network clients with the RETAIN flag."},
			{deliveredName, "QoS 1 and 2 deliveries acknowledged by subscribers, by QoS."},
			{connectsName, "Accepted connections, by MQTT protocol version."},
			{disconnectsName, "Ended connections, by reason code and whether the client sent DISCONNECT."},
			{authName, "Authentication results, by result and reason code."},
			{subscribeName, "Subscriptions requested in SUBSCRIBE packets, by outcome."},
			{retainedChgName, "Changes of retained messages."},
		} {
			helps[d[0]] = d[1]
		}
		for name, help := range helps {
			in, err := newInst(name, help, "", true)
			if err != nil {
				return nil, err
			}
			hooks[name] = in
		}
	}
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := b.Stats()
		for i, sm := range statMetrics {
			observe(o, stats[i], sm.value(&st))
		}
		for reason, n := range st.Dropped {
			observe(o, dropped, n, attribute.String("reason", reason))
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
