// Package soak is the broker's soak test: a mixed workload driven against a
// running broker for a long time, with exact delivery accounting and a
// comparison of the broker's goroutines, live heap and open file
// descriptors before and after the load.
//
// The workload (Run) uses every transport at once (mqtt, mqtts, ws, wss,
// quic) and both protocol versions: QoS 0, 1 and 2 publishers, persistent
// subscribers, a shared subscription group, reconnect churn (abrupt cuts
// and graceful disconnects with session resumption), clients with wills
// that are cut or leave cleanly, and retained messages that are set,
// replaced and cleared. Every QoS 1 and 2 message acknowledged to its
// publisher must reach every persistent subscriber and the shared group
// (QoS 2: exactly once), every cut client's will must arrive and no clean
// client's will, and the retained messages left must be exactly the last
// ones set.
//
// The leak check (Snapshot, Compare) reads the broker's /debug/pprof/
// endpoint (telemetry.pprof_listen) and /proc/PID/fd after a warm-up and
// after the load, once the broker has settled, and fails on growth beyond
// Tolerance. Soak runs the whole sequence; StartBroker starts the mqtt5
// binary with every listener, persistence and the profiling endpoint on
// loopback. scripts/soak.sh and cmd/mqtt5-soak run it for 30 minutes; the
// package test runs it for a minute. See docs/soak.md.
package soak
