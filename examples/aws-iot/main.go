// Command aws-iot connects a thing to AWS IoT Core with its X.509
// certificate, subscribes to its shadow's delta topic, reports a state to
// its shadow and prints what AWS IoT answers.
//
//	go run ./examples/aws-iot -endpoint a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com \
//		-thing thermostat-42 -cert device.pem.crt -key private.pem.key [-ca AmazonRootCA1.pem] [-443]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

func main() {
	endpoint := flag.String("endpoint", "", "AWS IoT device data endpoint (aws iot describe-endpoint --endpoint-type iot:Data-ATS)")
	thing := flag.String("thing", "", "thing name (also the client id)")
	certFile := flag.String("cert", "", "device certificate, PEM or DER")
	keyFile := flag.String("key", "", "private key of the certificate, PEM or DER")
	caFile := flag.String("ca", "", "trusted root certificates (default: the system roots)")
	port443 := flag.Bool("443", false, "connect on port 443 with ALPN x-amzn-mqtt-ca instead of 8883")
	flag.Parse()
	if *endpoint == "" || *thing == "" || *certFile == "" || *keyFile == "" {
		flag.Usage()
		os.Exit(2)
	}
	if !client.IsAWSIoTEndpoint(*endpoint) {
		log.Printf("%s does not look like an AWS IoT endpoint; going on (custom domain?)", *endpoint)
	}
	cert, err := os.ReadFile(*certFile)
	if err != nil {
		log.Fatal(err)
	}
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		log.Fatal(err)
	}
	awsOpts := []client.AWSOption{client.AWSThingName(*thing), client.AWSKeepAlive(5 * time.Minute)}
	if *caFile != "" {
		awsOpts = append(awsOpts, client.AWSRootCAFile(*caFile))
	}
	if *port443 {
		awsOpts = append(awsOpts, client.AWSPort443())
	}
	opts, err := client.AWSIoT(*endpoint, cert, key, awsOpts...)
	if err != nil {
		log.Fatal(err)
	}
	opts.OnConnect = func(i *client.ConnectInfo) {
		log.Printf("connected to %s (maximum QoS %d, receive maximum %d)", i.Server, i.MaximumQoS, i.ReceiveMaximum)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := client.New(opts)
	if err != nil {
		log.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	_, err = c.Connect(cctx)
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Disconnect(dctx, packet.NormalDisconnection, client.KeepSessionExpiry)
	}()

	shadow := "$aws/things/" + *thing + "/shadow/"
	answers := make(chan *client.Message, 4)
	for _, f := range []string{shadow + "update/accepted", shadow + "update/rejected", shadow + "update/delta"} {
		id, granted, err := c.SubscribeQoS(ctx, f, 1, func(m *client.Message) { answers <- m })
		if err != nil {
			log.Fatalf("subscribe %s: %v", f, err)
		}
		log.Printf("subscribed to %s (packet id %d, granted QoS %d)", f, id, granted)
	}

	// The namespace refuses another thing's shadow before anything is sent.
	err = c.Publish(ctx, &client.Message{Topic: "$aws/things/someone-else/shadow/update", QoS: 1})
	if errors.Is(err, client.ErrNamespace) {
		log.Printf("refused locally: %v", err)
	}

	report := fmt.Sprintf(`{"state":{"reported":{"temperature":%.1f}}}`, 21.5)
	if err := c.Publish(ctx, &client.Message{Topic: shadow + "update", QoS: 1, Payload: []byte(report)}); err != nil {
		log.Fatalf("shadow update: %v", err)
	}
	select {
	case m := <-answers:
		fmt.Printf("%s: %s\n", m.Topic, m.Payload)
	case <-time.After(10 * time.Second):
		log.Print("no answer from the shadow service within 10s")
	case <-ctx.Done():
	}
}
