package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqtt5go/mqtt5/broker/bridge"
)

// BridgeStatuses returns the status of every bridge running now, by name.
// It is called once per scrape, so bridges added or removed at run time
// (a configuration reload) appear and disappear from the metrics.
type BridgeStatuses func() map[string]bridge.Status

// Prometheus names of the bridge metrics.
const (
	bridgeConnectedName  = "mqtt5_bridge_connected"
	bridgeQueueName      = "mqtt5_bridge_queue_depth"
	bridgeForwardedName  = "mqtt5_bridge_forwarded_total"
	bridgeDroppedName    = "mqtt5_bridge_dropped_total"
	bridgeLoopsName      = "mqtt5_bridge_loops_dropped_total"
	bridgeReconnectsName = "mqtt5_bridge_reconnects_total"
	bridgeLastErrorName  = "mqtt5_bridge_last_error_timestamp_seconds"
)

// bridgeCollector is a prometheus.Collector over BridgeStatuses.
type bridgeCollector struct {
	statuses BridgeStatuses

	connected, queue, forwarded, dropped, loops, reconnects, lastError *prometheus.Desc
}

// NewBridgeCollector returns a prometheus.Collector reporting, for each
// bridge that statuses returns (label bridge): whether its remote
// connection is up, the messages it holds, the messages forwarded and
// dropped per direction (label direction: out is local to remote, in is
// remote to local), the messages stopped by loop prevention, the remote
// reconnections and the time of the last error.
func NewBridgeCollector(statuses BridgeStatuses) prometheus.Collector {
	b := []string{"bridge"}
	bd := []string{"bridge", "direction"}
	return &bridgeCollector{
		statuses:   statuses,
		connected:  prometheus.NewDesc(bridgeConnectedName, "1 while the bridge's remote connection is up, else 0.", b, nil),
		queue:      prometheus.NewDesc(bridgeQueueName, "Messages the bridge holds: received from one side and not yet acknowledged by the other, both directions.", b, nil),
		forwarded:  prometheus.NewDesc(bridgeForwardedName, "Messages delivered to the other side, by direction (out: local to remote, in: remote to local).", bd, nil),
		dropped:    prometheus.NewDesc(bridgeDroppedName, "Messages not forwarded (refused, expired, over the queue bound, no mapping), by direction.", bd, nil),
		loops:      prometheus.NewDesc(bridgeLoopsName, "Messages not forwarded by loop prevention.", b, nil),
		reconnects: prometheus.NewDesc(bridgeReconnectsName, "Remote connections made after the bridge's first one.", b, nil),
		lastError:  prometheus.NewDesc(bridgeLastErrorName, "Unix time of the bridge's last connection or forwarding error; 0 if none.", b, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *bridgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.queue, c.forwarded, c.dropped, c.loops, c.reconnects, c.lastError} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *bridgeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.statuses == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for name, st := range c.statuses() {
		gauge(c.connected, boolFloat(st.Connected), name)
		gauge(c.queue, float64(st.QueueDepth), name)
		counter(c.forwarded, st.Forwarded.Out, name, "out")
		counter(c.forwarded, st.Forwarded.In, name, "in")
		counter(c.dropped, st.Dropped.Out, name, "out")
		counter(c.dropped, st.Dropped.In, name, "in")
		counter(c.loops, st.LoopsDropped, name)
		counter(c.reconnects, st.Reconnects, name)
		var at float64
		if !st.LastErrorAt.IsZero() {
			at = float64(st.LastErrorAt.UnixNano()) / 1e9
		}
		gauge(c.lastError, at, name)
	}
}
