// Package bench is the engine of "mqtt5 bench": a load generator that
// measures an MQTT 5.0 or 3.1.1 broker end to end (throughput, latency,
// message loss, duplication, reordering and misrouting, idle-connection
// cost) and reports the broker's and its own CPU use.
//
// Run(ctx, Config) executes one scenario (fan-in, fan-out, p2p, shared,
// idle, latency) and returns a Result whose JSON form is what the command
// writes with --json. Result.WriteTable and Result.WritePlot render it.
// CompareReport, ScalingReport and TransportsReport turn a directory of
// results written by scripts/bench-compare.sh or scripts/bench-transports.sh
// into the tables of docs/benchmarks.md, through one engine (report.go:
// reading the JSON results, medians and min–max ranges, ratios, Markdown
// rows); SpliceDoc puts them between their markers.
//
// # Clients
//
// The clients are raw connections on package packet, not a client library,
// so the generator stays cheap: buffered writes, flushed when the buffer
// fills or a publisher blocks on its window or its pacing timer
// (subscribers flush their acknowledgements when the socket has nothing more
// buffered), packets read
// with Reader.ReadRaw into one reused buffer and decoded in place. Neither
// publishing nor receiving allocates per message in steady state.
//
// A publisher is one writing goroutine plus, for QoS 1 and 2, one goroutine
// reading acknowledgements that returns window credits through a buffered
// channel; packet identifiers map back to sequence numbers through a small
// slot table. A subscriber is one goroutine.
//
// # Accounting
//
// Each payload starts with a stamp: a magic number, the send time in
// monotonic nanoseconds since the run's start, the publisher id and a
// per-publisher sequence number (see Stamp). Subscribers belong to groups
// that must together receive each message of their publishers once (one
// group per subscriber, except that the members of a shared subscription
// form one group); a group records what it received in a bitmap per
// publisher, allocated in 64 Ki-bit chunks. At the end, the bitmaps are
// compared with what was sent (QoS 0) or acknowledged (QoS 1/2, also a
// bitmap) word by word.
//
// # Transports
//
// Broker URLs of every transport are dialled through package transport:
// mqtt://, tcp://, mqtts://, ws://, wss:// and quic:// (Config.TLS and
// Config.QUIC configure the secure ones).
package bench
