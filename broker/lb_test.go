package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// Adding a fifth backend to four moves about a fifth of the clients, all
// of them to the new backend; the four share the clients evenly.
func TestLoadBalancerRendezvousMovesOneFifth(t *testing.T) {
	four := LoadBalancerConfig{Backends: []string{"b0:1883", "b1:1883", "b2:1883", "b3:1883"}}
	five := LoadBalancerConfig{Backends: append(slices.Clone(four.Backends), "b4:1883")}
	const n = 10_000
	moved := 0
	perBackend := map[string]int{}
	for i := range n {
		id := fmt.Sprintf("client-%d", i)
		before, after := four.BackendFor(id), five.BackendFor(id)
		perBackend[before]++
		if before == after {
			continue
		}
		moved++
		if after != "b4:1883" {
			t.Fatalf("%s moved from %s to %s, not to the new backend", id, before, after)
		}
	}
	if f := float64(moved) / n; f < 0.15 || f > 0.25 {
		t.Fatalf("moved fraction %.3f, want about 1/5", f)
	}
	for be, c := range perBackend {
		if f := float64(c) / n; f < 0.2 || f > 0.3 {
			t.Errorf("backend %s has %.3f of the clients, want about 1/4", be, f)
		}
	}
	// The placement is a function of the identifier and the set.
	if four.BackendFor("x") != four.BackendFor("x") || (&LoadBalancerConfig{}).BackendFor("x") != "" {
		t.Fatal("placement not stable")
	}
}

func TestLoadBalancerRedirectsV5(t *testing.T) {
	lb := LoadBalancerConfig{Backends: []string{"10.0.0.1:1883", "10.0.0.2:1883", "10.0.0.3:1883"}}
	b := newTestBroker(t, Config{LoadBalancer: lb})
	for _, id := range []string{"alpha", "beta", "gamma", ""} {
		c := newTClient(t, b, packet.V5)
		ack := c.connectRaw(&packet.Connect{ClientID: id, CleanStart: true})
		if ack.ReasonCode != packet.UseAnotherServer {
			t.Fatalf("%q: CONNACK %v, want Use Another Server", id, ack.ReasonCode)
		}
		want := lb.BackendFor(id)
		if id == "" {
			// No identity to place: any backend.
			if !slices.Contains(lb.Backends, ack.Props.ServerReference) {
				t.Fatalf("empty id sent to %q", ack.Props.ServerReference)
			}
		} else if ack.Props.ServerReference != want {
			t.Fatalf("%q: Server Reference %q, want %q", id, ack.Props.ServerReference, want)
		}
		c.expectClosed()
	}
	if st := b.Stats(); st.Redirects != 4 || st.Sessions != 0 {
		t.Fatalf("redirects %d, sessions %d", st.Redirects, st.Sessions)
	}
}

func TestLoadBalancerAfterAuth(t *testing.T) {
	lb := LoadBalancerConfig{Backends: []string{"backend:1883"}, AfterAuth: true}
	b := newTestBroker(t, Config{LoadBalancer: lb, Authenticator: passwordIsUsername})
	bad := newTClient(t, b, packet.V5)
	ack := bad.connectRaw(&packet.Connect{ClientID: "c", CleanStart: true, Username: "u", Password: []byte("wrong")})
	if ack.ReasonCode != packet.BadUserNameOrPassword || ack.Props.ServerReference != "" {
		t.Fatalf("unauthenticated client: %v, Server Reference %q", ack.ReasonCode, ack.Props.ServerReference)
	}
	good := newTClient(t, b, packet.V5)
	ack = good.connectRaw(&packet.Connect{ClientID: "c", CleanStart: true, Username: "u", Password: []byte("u")})
	if ack.ReasonCode != packet.UseAnotherServer || ack.Props.ServerReference != "backend:1883" {
		t.Fatalf("authenticated client: %v, Server Reference %q", ack.ReasonCode, ack.Props.ServerReference)
	}
	if st := b.Stats(); st.Redirects != 1 {
		t.Fatalf("redirects %d", st.Redirects)
	}
}

func TestLoadBalancerV311(t *testing.T) {
	lb := LoadBalancerConfig{Backends: []string{"backend:1883"}}
	refuse := newTestBroker(t, Config{LoadBalancer: lb})
	c := newTClient(t, refuse, packet.V311)
	if ack := c.connectRaw(&packet.Connect{ClientID: "c", CleanStart: true}); ack.ReasonCode != packet.V3ServerUnavailable {
		t.Fatalf("3.1.1 client: return code %v, want 3", ack.ReasonCode)
	}
	lb.V311 = V311ServeLocally
	local := newTestBroker(t, Config{LoadBalancer: lb})
	c = dial(t, local, packet.V311, "c")
	c.subscribe(1, packet.Subscription{Filter: "t"})
	c.publish(&packet.Publish{Topic: "t", Payload: []byte("x")})
	if p := recvAs[*packet.Publish](c); string(p.Payload) != "x" {
		t.Fatalf("served locally: %+v", p)
	}
}

// loopbackBroker serves cfg on 127.0.0.1 and returns its address.
func loopbackBroker(t *testing.T, cfg Config) (*Broker, string) {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	b := newTestBroker(t, cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(l)
	<-b.Ready()
	return b, l.Addr().String()
}

// Our client, pointed at a load balancer, ends up connected to the backend
// chosen for its identifier; it follows at most three redirections.
func TestLoadBalancerEndToEnd(t *testing.T) {
	var backends []string
	brokers := map[string]*Broker{}
	for range 3 {
		b, addr := loopbackBroker(t, Config{})
		backends = append(backends, addr)
		brokers[addr] = b
	}
	lb := LoadBalancerConfig{Backends: backends}
	_, lbAddr := loopbackBroker(t, Config{LoadBalancer: lb})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, id := range []string{"dev-1", "dev-2", "dev-3", "dev-4"} {
		c, info, err := client.Dial(ctx, "mqtt://"+lbAddr, client.Options{ClientID: id, DisableReconnect: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		want := lb.BackendFor(id)
		if info.Server != "mqtt://"+want {
			t.Fatalf("%s connected to %s, want %s", id, info.Server, want)
		}
		pollUntil(t, func() bool { return brokers[want].Stats().Sessions == 1 })
		if err := c.Disconnect(ctx, packet.Success, 0); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, func() bool { return brokers[want].Stats().Sessions == 0 })
	}

	// A chain of load balancers: three redirections are followed, a
	// fourth is not.
	next := backends[0]
	for hop := 1; hop <= 4; hop++ {
		_, next = loopbackBroker(t, Config{LoadBalancer: LoadBalancerConfig{Backends: []string{next}}})
		c, info, err := client.Dial(ctx, "mqtt://"+next, client.Options{ClientID: "chain", DisableReconnect: true, Logger: slog.New(slog.DiscardHandler)})
		if hop <= 3 {
			if err != nil {
				t.Fatalf("%d redirections: %v", hop, err)
			}
			if info.Server != "mqtt://"+backends[0] {
				t.Fatalf("%d redirections: connected to %s", hop, info.Server)
			}
			c.Disconnect(ctx, packet.Success, 0)
			continue
		}
		var re *client.RedirectError
		if !errors.As(err, &re) {
			t.Fatalf("%d redirections: err %v, want a RedirectError", hop, err)
		}
	}
}
