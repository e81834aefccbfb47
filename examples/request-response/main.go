// Command request-response runs a responder that upper-cases requests and
// a requester that sends several requests at once and prints the answers
// (MQTT 5 Response Topic and Correlation Data).
//
//	go run ./examples/request-response -url mqtt://localhost:1883 -n 10
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

func connect(ctx context.Context, url, id string) *client.Client {
	c, err := client.New(client.Options{Server: url, ClientID: fmt.Sprintf("%s-%d", id, os.Getpid()),
		OnError: func(err error) { log.Print(err) }})
	if err != nil {
		log.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Connect(cctx); err != nil {
		log.Fatal(err)
	}
	return c
}

func disconnect(c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
}

func main() {
	url := flag.String("url", "mqtt://localhost:1883", "broker URL")
	service := flag.String("topic", "demo/svc/upper", "request topic")
	n := flag.Int("n", 10, "number of concurrent requests")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	srv := connect(ctx, *url, "responder")
	defer disconnect(srv)
	r, err := srv.HandleRequests(ctx, *service, func(_ context.Context, req *client.Message) (*client.Message, error) {
		return &client.Message{Payload: bytes.ToUpper(req.Payload), QoS: 1, ContentType: "text/plain"}, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Stop(context.Background())

	cl := connect(ctx, *url, "requester")
	defer disconnect(cl)
	var wg sync.WaitGroup
	for i := range *n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			resp, err := cl.Request(rctx, &client.Message{Topic: *service, QoS: 1, Payload: fmt.Appendf(nil, "request %d", i)})
			if err != nil {
				log.Printf("request %d: %v", i, err)
				return
			}
			fmt.Printf("request %d -> %s (on %s)\n", i, resp.Payload, resp.Topic)
		}()
	}
	wg.Wait()
}
