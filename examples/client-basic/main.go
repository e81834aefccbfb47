// Command client-basic connects to an MQTT broker, subscribes to a topic,
// publishes a message to it, prints what it receives, and disconnects.
//
//	go run ./examples/client-basic -url mqtt://localhost:1883 -topic demo/hello
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

func main() {
	url := flag.String("url", "mqtt://localhost:1883", "broker URL (mqtt://, mqtts://, tcp://, ssl://, ws://, wss://, quic:// or host:port)")
	topic := flag.String("topic", "demo/hello", "topic to subscribe and publish to")
	qos := flag.Int("qos", 1, "QoS 0, 1 or 2")
	v311 := flag.Bool("v311", false, "use MQTT 3.1.1 instead of 5.0")
	verbose := flag.Bool("v", false, "log connection events")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	opts := client.Options{
		Server:    *url,
		ClientID:  fmt.Sprintf("client-basic-%d", os.Getpid()),
		Keepalive: client.KeepaliveConfig{Interval: 30 * time.Second},
		OnConnect: func(i *client.ConnectInfo) {
			log.Printf("connected to %s (MQTT %v, session present %v, receive maximum %d)",
				i.Server, i.Version, i.SessionPresent, i.ReceiveMaximum)
		},
		OnDisconnect: func(d client.DisconnectInfo) {
			if d.Err != nil {
				log.Printf("connection lost: %v (reconnecting: %v)", d.Err, d.Reconnecting)
			}
		},
		OnReconnecting: func(n int, delay time.Duration) {
			log.Printf("reconnection attempt %d in %v", n, delay)
		},
	}
	if *v311 {
		opts.Version = packet.V311
	}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	c, err := client.New(opts)
	if err != nil {
		log.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = c.Connect(cctx)
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Disconnect(dctx, packet.NormalDisconnection, client.KeepSessionExpiry); err != nil {
			log.Printf("disconnect: %v", err)
		}
	}()

	got := make(chan *client.Message, 1)
	res, err := c.Subscribe(ctx, []client.Subscription{{Filter: *topic, QoS: byte(*qos)}}, func(m *client.Message) {
		select {
		case got <- m:
		default:
		}
	})
	if err != nil {
		log.Fatalf("subscribe: %v", err)
	}
	log.Printf("subscribed to %s, granted QoS %d", *topic, res.Codes[0])

	msg := &client.Message{Topic: *topic, QoS: byte(*qos), Payload: []byte("hello from client-basic"), ContentType: "text/plain"}
	if err := c.Publish(ctx, msg); err != nil {
		var re *client.ReasonError
		if errors.As(err, &re) {
			log.Fatalf("publish refused: %v (reason code 0x%02x)", re, byte(re.Code))
		}
		log.Fatalf("publish: %v", err)
	}
	log.Printf("published to %s", *topic)

	select {
	case m := <-got:
		fmt.Printf("%s: %s\n", m.Topic, m.Payload)
	case <-time.After(10 * time.Second):
		log.Print("no message received within 10s")
	case <-ctx.Done():
	}
}
