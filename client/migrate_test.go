package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	mqttbroker "github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/internal/testcerts"
	"github.com/mqtt5go/mqtt5/transport"
)

// quicBroker is our broker serving a QUIC listener.
func quicBroker(t *testing.T) (url string, clientTLS *tls.Config) {
	t.Helper()
	ca := testcerts.NewCA(t, "quic CA")
	cert := ca.Issue(t, "server", testcerts.Options{})
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert.TLSCertificate(t)}}
	l, err := transport.Listen(context.Background(), transport.ListenConfig{URL: "quic://127.0.0.1:0", TLS: srvTLS})
	if err != nil {
		t.Fatal(err)
	}
	b := mqttbroker.New(mqttbroker.Config{SysInterval: -1})
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
		<-errc
	})
	return "quic://" + l.Addr().String(), &tls.Config{RootCAs: ca.Pool()}
}

// Client.Migrate moves a QUIC connection to a new UDP socket while QoS 1
// messages flow in both clients: every message arrives, none is lost.
func TestMigrateQUIC(t *testing.T) {
	url, tc := quicBroker(t)
	const n = 400
	var mu sync.Mutex
	got := map[string]int{}
	all := make(chan struct{})
	sub, _ := connect(t, Options{Server: url, TLSConfig: tc, ClientID: "sub"})
	if _, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: "m/#", QoS: 1}}, func(m *Message) {
		mu.Lock()
		got[string(m.Payload)]++
		if len(got) == n {
			close(all)
		}
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	pub, _ := connect(t, Options{Server: url, TLSConfig: tc, ClientID: "pub"})
	ctx := testCtx(t)
	tokens := make([]*Token, 0, n)
	for i := range n {
		if i == n/3 {
			if err := pub.Migrate(ctx); err != nil {
				t.Fatalf("publisher migrate: %v", err)
			}
		}
		if i == 2*n/3 {
			if err := sub.Migrate(ctx); err != nil {
				t.Fatalf("subscriber migrate: %v", err)
			}
		}
		tokens = append(tokens, pub.PublishAsync(ctx, &Message{Topic: "m/x", QoS: 1, Payload: []byte(fmt.Sprint(i))}))
	}
	for i, tok := range tokens {
		if err := tok.Wait(ctx); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	select {
	case <-all:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("received %d of %d distinct messages", len(got), n)
	}
	if !pub.IsConnected() || !sub.IsConnected() {
		t.Fatal("a client lost its connection while migrating")
	}
}

// Only QUIC connections migrate.
func TestMigrateErrors(t *testing.T) {
	b := startOurBroker(t, mqttbroker.Config{SysInterval: -1})
	c, _ := connect(t, Options{Server: b.url()})
	if err := c.Migrate(testCtx(t)); !errors.Is(err, ErrNotMigratable) {
		t.Fatalf("TCP: %v", err)
	}
	off, err := New(Options{Server: b.url()})
	if err != nil {
		t.Fatal(err)
	}
	if err := off.Migrate(testCtx(t)); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("offline: %v", err)
	}
}
