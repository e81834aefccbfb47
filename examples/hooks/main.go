// Command hooks runs a broker with event hooks: it logs connections and
// disconnections, answers requests published to rpc/time itself (MQTT 5
// request/response: the answer goes to the request's Response Topic with
// its Correlation Data), and removes the "password" field of JSON messages
// published under users/.
//
//	go run ./examples/hooks -listen 127.0.0.1:1883
//	mqtt5 rr -t rpc/time -e reply/me -m now    # the broker answers
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
)

// audit logs connections and disconnections. It is a notification hook:
// it runs on the broker's hook goroutine, never on a client's.
type audit struct{}

func (audit) OnConnect(ev broker.ConnectEvent) {
	log.Printf("connect %s user=%q session present=%v", ev.Client.ClientID, ev.Client.Username, ev.SessionPresent)
}

func (audit) OnDisconnect(ev broker.DisconnectEvent) {
	log.Printf("disconnect %s expected=%v reason=%v", ev.Client.ClientID, ev.Expected, ev.ReasonCode)
}

// service answers rpc/time and redacts users/... messages. It runs on the
// publisher's connection goroutine, before routing.
type service struct{ b *broker.Broker }

func (s *service) OnPublish(ctx context.Context, ev broker.PublishEvent) broker.PublishDecision {
	m := ev.Message
	switch {
	case m.Topic == "rpc/time":
		if rt := m.Props.ResponseTopic; rt != "" {
			reply := &broker.Message{Topic: rt, Payload: []byte(time.Now().UTC().Format(time.RFC3339))}
			reply.Props.CorrelationData = m.Props.CorrelationData
			if err := s.b.Publish(ctx, reply); err != nil {
				log.Printf("reply to %s: %v", ev.Client.ClientID, err)
			}
		}
		return broker.PublishDecision{Action: broker.PublishHandle} // acknowledged, not routed
	case strings.HasPrefix(m.Topic, "users/"):
		var doc map[string]any
		if json.Unmarshal(m.Payload, &doc) != nil {
			return broker.PublishDecision{}
		}
		if _, ok := doc["password"]; !ok {
			return broker.PublishDecision{}
		}
		delete(doc, "password")
		payload, _ := json.Marshal(doc)
		out := &broker.Message{Topic: m.Topic, Payload: payload, Props: m.Props}
		return broker.PublishDecision{Action: broker.PublishTransform, Message: out}
	}
	return broker.PublishDecision{Action: broker.PublishContinue}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:1883", "TCP address to listen on")
	flag.Parse()

	b := broker.New(broker.Config{
		Hooks: []any{audit{}},
		// Subscribers see who published each message.
		Stamp: broker.StampConfig{ClientIDProperty: "sender"},
	})
	if err := b.AddHook(&service{b: b}); err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := b.ListenAndServe(*listen); err != nil && err != broker.ErrServerClosed {
			log.Fatal(err)
		}
	}()
	log.Printf("listening on %s", *listen)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(shutdown); err != nil {
		log.Print(err)
	}
	log.Printf("hook events dropped: %d", b.Stats().HookEventsDropped)
}
