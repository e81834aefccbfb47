// Command compression publishes a large JSON document through a client
// whose Codec gzips payloads, and receives it twice: decoded by a client
// with a Codec, and as it travelled by a client without one.
//
//	go run ./examples/compression -url mqtt://localhost:1883 -topic demo/compressed
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

func connect(ctx context.Context, opts client.Options) *client.Client {
	c, err := client.New(opts)
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
	topic := flag.String("topic", "demo/compressed", "topic")
	alg := flag.String("alg", "gzip", "gzip or deflate")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	id := fmt.Sprintf("-%d", os.Getpid())
	codec := &client.Codec{Compression: client.Compression(*alg), MinSize: 256, Level: 9}

	decoded := make(chan *client.Message, 1)
	wire := make(chan *client.Message, 1)
	dec := connect(ctx, client.Options{Server: *url, ClientID: "compression-dec" + id,
		Codec:   &client.Codec{MaxDecompressed: 1 << 20},
		OnError: func(err error) { log.Printf("skipped: %v", err) }})
	defer disconnect(dec)
	raw := connect(ctx, client.Options{Server: *url, ClientID: "compression-raw" + id})
	defer disconnect(raw)
	pub := connect(ctx, client.Options{Server: *url, ClientID: "compression-pub" + id, Codec: codec})
	defer disconnect(pub)

	for c, ch := range map[*client.Client]chan *client.Message{dec: decoded, raw: wire} {
		if _, err := c.Subscribe(ctx, []client.Subscription{{Filter: *topic, QoS: 1}}, func(m *client.Message) { ch <- m }); err != nil {
			log.Fatal(err)
		}
	}

	var doc strings.Builder
	doc.WriteString(`{"readings":[`)
	for i := range 200 {
		if i > 0 {
			doc.WriteByte(',')
		}
		fmt.Fprintf(&doc, `{"sensor":"kitchen-%d","temperature":%.1f,"unit":"celsius"}`, i%4, 20+float64(i%10)/10)
	}
	doc.WriteString(`]}`)
	payload := []byte(doc.String())
	if err := pub.Publish(ctx, &client.Message{Topic: *topic, QoS: 1, Payload: payload}); err != nil {
		log.Fatal(err)
	}
	for _, ch := range []chan *client.Message{wire, decoded} {
		select {
		case m := <-ch:
			ct := m.ContentType
			if ct == "" {
				ct = "none"
			}
			fmt.Printf("%d bytes, content type %s\n", len(m.Payload), ct)
		case <-time.After(10 * time.Second):
			log.Fatal("nothing received within 10s")
		case <-ctx.Done():
			return
		}
	}
	fmt.Printf("published %d bytes\n", len(payload))
}
