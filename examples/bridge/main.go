// Command bridge runs an embedded broker and bridges it to a remote broker:
// local sensors/# goes out under site/<name>/sensors/#, and
// site/<name>/commands/# comes in as commands/#.
//
//	go run ./examples/bridge -listen 127.0.0.1:1883 -remote mqtt://cloud.example.com:1883 -name site1
//
// Publish locally (mqtt5 pub -t sensors/t1 -m 21.5 -q 1) and watch the
// remote (mqtt5 sub -h cloud.example.com -t 'site/site1/#' -v). The bridge
// status is printed every 10 seconds.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/bridge"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:1883", "address of the local broker")
	remote := flag.String("remote", "mqtt://localhost:1884", "remote broker URL")
	backups := flag.String("backups", "", "comma-separated backup broker URLs")
	name := flag.String("name", "site1", "bridge name (also the remote topic prefix)")
	user := flag.String("user", "", "user name on the remote broker")
	password := flag.String("password", "", "password on the remote broker")
	queueDir := flag.String("queue-dir", "", "directory for the bridge's in-flight state (optional)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	b := broker.New(broker.Config{Logger: logger})
	go func() {
		if err := b.ListenAndServe(*listen); err != nil && !errors.Is(err, broker.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	cfg := bridge.Config{
		Name: *name,
		Remote: bridge.RemoteConfig{
			URL:      *remote,
			Username: *user,
		},
		Topics: []bridge.TopicMapping{
			{Pattern: "sensors/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site/" + *name + "/"},
			{Pattern: "commands/#", Direction: bridge.In, QoS: 1, RemotePrefix: "site/" + *name + "/"},
		},
		QueueDir: *queueDir,
		Logger:   logger,
	}
	if *backups != "" {
		cfg.Remote.Backups = strings.Split(*backups, ",")
	}
	if *password != "" {
		cfg.Remote.Password = []byte(*password)
	}
	br, err := bridge.New(cfg, func(context.Context) (net.Conn, error) { return b.InProcessConn(), nil })
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()

	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
loop:
	for {
		select {
		case <-tick.C:
			s := br.Status()
			log.Printf("bridge %s: connected=%v remote=%s queued=%d forwarded in=%d out=%d loops dropped=%d last error=%q",
				*name, s.Connected, s.Remote, s.QueueDepth, s.Forwarded.In, s.Forwarded.Out, s.LoopsDropped, s.LastError)
		case <-ctx.Done():
			break loop
		}
	}
	if err := <-done; err != nil {
		log.Print(err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.Shutdown(sctx)
}
