package monitor

import (
	"context"
	"errors"
	"testing"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/client/mock"
	"github.com/mqtt5go/mqtt5/packet"
)

func TestAlarm(t *testing.T) {
	m := mock.New()
	mon := New(m, 30)
	if err := mon.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The monitor subscribed to the readings.
	subs := m.CallsTo("Subscribe")
	if len(subs) != 1 || subs[0].Subscriptions[0].Filter != "sensors/+/temp" {
		t.Fatalf("subscribe calls %+v", subs)
	}

	// Simulated inbound messages are routed to the handler by filter.
	m.Deliver(client.Message{Topic: "sensors/kitchen/temp", QoS: 1, Payload: []byte("21.5")})
	m.Deliver(client.Message{Topic: "sensors/oven/temp", QoS: 1, Payload: []byte("230")})
	m.Deliver(client.Message{Topic: "sensors/oven/temp", QoS: 1, Payload: []byte("hot")})

	pub := m.Published()
	if len(pub) != 1 || pub[0].Topic != "alarms/oven" || string(pub[0].Payload) != "230.0 above 30.0" {
		t.Fatalf("published %+v", pub)
	}
	// Every reading was acknowledged; the malformed one was rejected.
	if acks, rejects := len(m.CallsTo("Ack")), m.CallsTo("Reject"); acks != 2 || len(rejects) != 1 || rejects[0].Reason != packet.PayloadFormatInvalid {
		t.Errorf("acks %d, rejects %+v", acks, rejects)
	}
}

func TestSubscribeRefused(t *testing.T) {
	m := mock.New()
	m.ScriptSubscribe(nil, packet.NotAuthorized) // the broker refuses
	err := New(m, 30).Start(context.Background())
	if !errors.Is(err, packet.NotAuthorized) {
		t.Fatalf("got %v", err)
	}
	var re *client.ReasonError
	if !errors.As(err, &re) || re.Op != "subscribe" {
		t.Errorf("not a ReasonError: %v", err)
	}
}

func TestAlarmPublishFails(t *testing.T) {
	m := mock.New()
	m.ScriptPublish(packet.QuotaExceeded)
	mon := New(m, 30)
	if err := mon.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Deliver(client.Message{Topic: "sensors/oven/temp", Payload: []byte("99")})
	calls := m.CallsTo("PublishAsync")
	if len(calls) != 1 || !errors.Is(calls[0].Err, packet.QuotaExceeded) {
		t.Fatalf("publish calls %+v", calls)
	}
	if len(m.Published()) != 0 {
		t.Error("a failed publish is not published")
	}
}
