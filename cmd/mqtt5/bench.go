package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mqtt5go/mqtt5/internal/bench"
	"github.com/mqtt5go/mqtt5/transport"
	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

const benchSynopsis = "bench [scenario] [flags]"

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", benchSynopsis, stderr)
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		w := fs.Output()
		fmt.Fprintln(w, "\nScenarios (the first argument, or --scenario):")
		for _, s := range bench.Scenarios {
			fmt.Fprintf(w, "  %-9s %s\n", s.Name, s.Description)
		}
		fmt.Fprintln(w, `
Each payload carries a send timestamp, the publisher id and a sequence
number; subscribers check every message and count lost (QoS 0: sent and not
received; QoS 1/2: acknowledged and not received by the end of the grace
period), duplicated, reordered and misrouted ones. Latency is publisher write
to subscriber read. Only loopback brokers are accepted without --allow-remote.

Examples:
  mqtt5 bench fan-in --qos 1 --duration 30s --pid $(pidof mqtt5) --json out.json
  mqtt5 bench latency --rate 10000 --qos 1 --plot latency.svg
  mqtt5 bench idle --connections 10000 --pid $(pidof mosquitto)`)
	}
	scenario := fs.String("scenario", "fan-in", "load shape: fan-in, fan-out, p2p, shared, idle, latency")
	url := fs.String("url", "mqtt://127.0.0.1:1883", "broker URL: mqtt://, tcp://, mqtts://, ws://, wss:// (path /mqtt by default) or quic://host:port")
	cafile := fs.String("cafile", "", "mqtts, wss, quic: PEM file of the CA that signed the broker's certificate (default: system roots)")
	insecure := fs.Bool("insecure", false, "mqtts, wss, quic: do not verify the broker's certificate (testing only)")
	quicSingle := fs.Bool("quic-single", false, "quic: offer only ALPN mqtt (single stream) instead of MQTT-next (multistream)")
	quicStrategy := fs.String("quic-strategy", "control_only", "quic multistream: stream strategy of the publishers: control_only, data_per_publish, data_per_topic")
	quicDatagrams := fs.Bool("quic-datagrams", false, "quic multistream: accept QoS 0 PUBLISH as QUIC datagrams")
	protocol := fs.String("protocol", "5", "MQTT protocol version: 5 or 3.1.1")
	qos := fs.Int("qos", 0, "QoS of publications and subscriptions: 0, 1 or 2")
	payload := fs.Int("payload", 64, fmt.Sprintf("payload size in bytes (at least %d: timestamp, publisher id, sequence number)", bench.StampSize))
	pubs := fs.Int("publishers", 0, "publishers for fan-in, shared, latency (default 4)")
	subs := fs.Int("subscribers", 0, "subscribers for fan-out (default 50) and shared-subscription members for shared (default 4)")
	pairs := fs.Int("pairs", 0, "publisher/subscriber pairs for p2p (default 50)")
	conns := fs.Int("connections", 0, "connections for idle (default 1000)")
	connRate := fs.Float64("connect-rate", 0, "idle: new connections per second (0: as fast as --connect-concurrency allows)")
	connPar := fs.Int("connect-concurrency", 64, "idle: parallel dialers")
	expiry := fs.Uint("session-expiry", 0, "Session Expiry Interval of every client, seconds (0: clean sessions; >0: persistent sessions, which a broker with persistence stores)")
	window := fs.Int("window", 20, "QoS 1/2: messages in flight per publisher (lowered to the broker's Receive Maximum)")
	rate := fs.Float64("rate", 0, "total publish rate in msg/s across publishers (0: unlimited; latency: default 1000)")
	duration := fs.Duration("duration", 0, "measurement time after the warm-up (default 10s, at most 10m); idle: how long to hold the connections")
	warmup := fs.Duration("warmup", 0, "warm-up before measuring (default 1s; 0s: none); its messages are checked but not measured")
	grace := fs.Duration("grace", 0, "wait after the publishers stop for outstanding acknowledgements and deliveries (default 2s)")
	maxMsgs := fs.Int64("max-messages", 0, fmt.Sprintf("stop after this many publications in all (default %d)", bench.DefaultMaxMsgs))
	pid := fs.Int("pid", 0, "broker process id: sample its CPU and RSS each second (Linux /proc)")
	jsonOut := fs.String("json", "", "write the result as JSON to this file (- for stdout)")
	plotOut := fs.String("plot", "", "write an SVG of throughput over time and the latency distribution to this file")
	allowRemote := fs.Bool("allow-remote", false, "allow a broker that is not on a loopback address")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")

	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		*scenario = args[0]
		args = args[1:]
	}
	warmupSet := false
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "warmup" {
			warmupSet = true
		}
	})
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	sc, err := bench.ParseScenario(*scenario)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ver, err := bench.ParseProtocol(*protocol)
	if err != nil {
		return fmt.Errorf("%w: --protocol: %v", errUsage, err)
	}
	if *qos < 0 || *qos > 2 {
		return fmt.Errorf("%w: --qos must be 0, 1 or 2", errUsage)
	}
	cfg := bench.Config{
		Scenario: sc, URL: *url, Protocol: ver, QoS: byte(*qos), PayloadSize: *payload,
		Publishers: *pubs, Subscribers: *subs, Pairs: *pairs,
		Connections: *conns, ConnectRate: *connRate, ConnectConcurrency: *connPar,
		Window: *window, SessionExpiry: uint32(*expiry), Rate: *rate, Duration: *duration, Warmup: *warmup, Grace: *grace,
		NoWarmup: warmupSet && *warmup == 0, MaxMessages: *maxMsgs, BrokerPID: *pid, AllowRemote: *allowRemote,
	}
	cfg.QUIC = mqttquic.DialConfig{Single: *quicSingle, Strategy: mqttquic.Strategy(*quicStrategy), Datagrams: *quicDatagrams}
	if *cafile != "" || *insecure {
		tc, err := transport.ClientTLS{CAFile: *cafile, InsecureSkipVerify: *insecure}.Config()
		if err != nil {
			return fmt.Errorf("%w: --cafile: %v", errUsage, err)
		}
		cfg.TLS = tc
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, bench.ErrInvalidConfig) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return err
	}
	if *jsonOut != "-" {
		if err := res.WriteTable(stdout); err != nil {
			return err
		}
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if *jsonOut == "-" {
			_, err = stdout.Write(b)
		} else {
			err = os.WriteFile(*jsonOut, b, 0o644)
		}
		if err != nil {
			return err
		}
	}
	if *plotOut != "" {
		if err := res.WritePlot(*plotOut); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	return nil
}
