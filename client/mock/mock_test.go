package mock

import (
	"context"
	"errors"
	"testing"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

func TestScriptsAndLog(t *testing.T) {
	m := New()
	ctx := context.Background()
	m.ScriptConnect(nil, packet.ServerBusy)
	if _, err := m.Connect(ctx); !errors.Is(err, packet.ServerBusy) || m.Connected() {
		t.Fatalf("scripted connect: %v", err)
	}
	if info, err := m.Connect(ctx); err != nil || info.Version != packet.V5 || !m.Connected() {
		t.Fatalf("default connect: %v %+v", err, info)
	}
	m.ScriptPublish(nil, packet.QuotaExceeded)
	if err := m.Publish(ctx, &client.Message{Topic: "a"}); err != nil {
		t.Error(err)
	}
	err := m.Publish(ctx, &client.Message{Topic: "b"})
	var re *client.ReasonError
	if !errors.Is(err, packet.QuotaExceeded) || !errors.As(err, &re) || re.Op != "publish" {
		t.Errorf("scripted publish: %v", err)
	}
	if tok := m.PublishAsync(ctx, &client.Message{Topic: "c"}); tok.Wait(ctx) != nil {
		t.Error(tok.Err())
	}
	if got := m.Published(); len(got) != 2 || got[0].Topic != "a" || got[1].Topic != "c" {
		t.Errorf("published %+v", got)
	}

	var got []string
	res, err := m.Subscribe(ctx, []client.Subscription{{Filter: "x/+", QoS: 2}, {Filter: "$share/g/y/#", QoS: 1}},
		func(msg *client.Message) { got = append(got, msg.Topic) }, client.WithSubscriptionID(4))
	if err != nil || len(res.Codes) != 2 || res.Codes[0] != 2 || res.Codes[1] != 1 {
		t.Fatalf("subscribe %+v %v", res, err)
	}
	if c := m.CallsTo("Subscribe"); c[0].SubscribeOptions.SubscriptionID != 4 {
		t.Errorf("options not logged: %+v", c)
	}
	var dflt []string
	m.DefaultHandler = func(msg *client.Message) { dflt = append(dflt, msg.Topic) }
	m.Deliver(client.Message{Topic: "x/1"})
	m.Deliver(client.Message{Topic: "y/z/w"})
	m.Deliver(client.Message{Topic: "other"})
	if len(got) != 2 || len(dflt) != 1 {
		t.Errorf("routed %v, default %v", got, dflt)
	}
	if _, err := m.Unsubscribe(ctx, "x/+"); err != nil {
		t.Fatal(err)
	}
	if n := m.Deliver(client.Message{Topic: "x/1"}); n != 1 || len(dflt) != 2 {
		t.Errorf("after unsubscribe: %d handlers, default %v", n, dflt)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Publish(cctx, &client.Message{Topic: "z"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if err := m.Disconnect(ctx, packet.DisconnectWithWillMessage, 0); err != nil {
		t.Error(err)
	}
	if d := m.CallsTo("Disconnect"); len(d) != 1 || d[0].Reason != packet.DisconnectWithWillMessage || m.Connected() {
		t.Errorf("disconnect %+v", d)
	}
	m.Reset()
	if len(m.Calls()) != 0 {
		t.Error("reset")
	}
}
