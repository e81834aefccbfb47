// Command auth-scram runs a broker that authenticates clients with
// SCRAM-SHA-256 (MQTT 5 enhanced authentication) and connects a client to
// it: the CONNECT/AUTH/CONNACK exchange, a re-authentication on the live
// connection, and a refused wrong password.
//
//	go run ./examples/auth-scram
//	mqtt5 scram -c creds.txt alice && go run ./examples/auth-scram -file creds.txt -user alice -password ...
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"log/slog"
	"net"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/broker/auth"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

func main() {
	file := flag.String("file", "", "SCRAM credential file (see \"mqtt5 scram\"); default: one user created in memory")
	user := flag.String("user", "alice", "user name")
	password := flag.String("password", "wonderland", "password")
	flag.Parse()

	cfg := auth.SCRAMConfig{File: *file}
	if *file == "" {
		cred, err := auth.NewSCRAMCredential(*user, *password, auth.DefaultSCRAMIterations)
		if err != nil {
			log.Fatal(err)
		}
		cfg.Credentials = []auth.SCRAMCredential{cred}
	}
	scram, err := auth.NewSCRAM(cfg)
	if err != nil {
		log.Fatal(err)
	}

	b := broker.New(broker.Config{Authenticator: scram, Logger: slog.New(slog.DiscardHandler)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go b.Serve(l)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	}()
	url := "mqtt://" + l.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The handler sends client-first in CONNECT, answers the server's
	// challenge, and checks the server signature in CONNACK.
	c, _, err := client.Dial(ctx, url, client.Options{ClientID: "scram-demo", Auth: client.SCRAM(*user, *password)})
	if err != nil {
		log.Fatalf("connect: %v", err)
	}
	log.Printf("connected as %s with %s", *user, client.SCRAMMethod)
	if err := c.Publish(ctx, &client.Message{Topic: "demo/scram", Payload: []byte("hello"), QoS: 1}); err != nil {
		log.Fatalf("publish: %v", err)
	}
	if err := c.Reauthenticate(ctx); err != nil {
		log.Fatalf("re-authenticate: %v", err)
	}
	log.Print("re-authenticated on the live connection")
	c.Disconnect(ctx, packet.NormalDisconnection, 0)

	_, _, err = client.Dial(ctx, url, client.Options{ClientID: "scram-wrong", Auth: client.SCRAM(*user, "not-the-password"), DisableReconnect: true})
	var re *client.ReasonError
	if errors.As(err, &re) {
		log.Printf("wrong password refused: %v (reason code 0x%02x)", re, byte(re.Code))
	} else {
		log.Fatalf("wrong password: %v", err)
	}
}
