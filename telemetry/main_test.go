package telemetry

import (
	"context"
	"crypto/tls"
	"io"
	"net/url"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newBroker returns a broker without $SYS, shut down when the test ends.
func newBroker(tb testing.TB, cfg broker.Config) *broker.Broker {
	tb.Helper()
	cfg.SysInterval = -1
	b := broker.New(cfg)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
	})
	return b
}

// inProcess makes o connect to b over an in-memory connection.
func inProcess(b *broker.Broker, o client.Options) client.Options {
	o.Server = "mqtt://in-process"
	o.DisableReconnect = true
	o.Keepalive.Interval = -1
	o.Dialers = map[string]client.Dialer{"mqtt": client.DialerFunc(
		func(context.Context, *url.URL, *tls.Config) (io.ReadWriteCloser, error) {
			return b.InProcessConn(), nil
		})}
	return o
}

// connect connects a client to b, disconnecting it when the test ends.
func connect(tb testing.TB, b *broker.Broker, o client.Options) *client.Client {
	tb.Helper()
	c, err := client.New(inProcess(b, o))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx); err != nil {
		tb.Fatalf("connect %s: %v", o.ClientID, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Disconnect(ctx, 0, client.KeepSessionExpiry)
		select {
		case <-c.Done():
		case <-ctx.Done():
			tb.Errorf("client %s did not end", o.ClientID)
		}
	})
	return c
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(delay)
	}
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
