package telemetry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

func get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// rawConnect completes a v5 CONNECT on an in-process connection and then
// leaves it unread, so that the broker cannot finish writing to it.
func rawConnect(tb testing.TB, b *broker.Broker) net.Conn {
	tb.Helper()
	nc := b.InProcessConn()
	buf, err := (&packet.Connect{Version: packet.V5, ClientID: "stuck", CleanStart: true}).AppendTo(nil, packet.V5)
	if err != nil {
		tb.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(buf); err != nil {
		tb.Fatal(err)
	}
	p, err := packet.NewReader(nc, 0).ReadPacket(packet.V5)
	if err != nil {
		tb.Fatal(err)
	}
	if ca, ok := p.(*packet.Connack); !ok || ca.ReasonCode != packet.Success {
		tb.Fatalf("CONNACK: %#v", p)
	}
	nc.SetDeadline(time.Time{})
	return nc
}

func TestHealthAndReadiness(t *testing.T) {
	// A client that stops reading keeps Shutdown waiting for its
	// connection, for as long as WriteTimeout.
	b := broker.New(broker.Config{SysInterval: -1, WriteTimeout: 10 * time.Minute})
	var appErr atomic.Pointer[error]
	ready := func() error {
		if p := appErr.Load(); p != nil {
			return *p
		}
		return nil
	}
	srv := httptest.NewServer(NewHTTPHandler(b, nil, ready))
	defer srv.Close()

	expect := func(path string, code int, bodyHas string) {
		t.Helper()
		gotCode, body := get(t, srv.URL+path)
		if gotCode != code || !strings.Contains(body, bodyHas) {
			t.Fatalf("%s: %d %q, want %d containing %q", path, gotCode, body, code, bodyHas)
		}
	}
	// Before Serve.
	expect("/healthz", 200, "ok")
	expect("/readyz", 503, "not accepting")
	if code, _ := get(t, srv.URL+"/metrics"); code != 200 {
		t.Fatalf("/metrics before Serve: %d", code)
	}

	// Serving.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	<-b.Ready()
	expect("/readyz", 200, "ok")

	// The host program's own condition.
	e := errors.New("store not open")
	appErr.Store(&e)
	expect("/readyz", 503, "store not open")
	appErr.Store(nil)
	expect("/readyz", 200, "ok")

	// During Shutdown.
	stuck := rawConnect(t, b)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shut <- b.Shutdown(ctx)
	}()
	waitFor(t, "/readyz 503 during shutdown", func() bool {
		code, _ := get(t, srv.URL+"/readyz")
		return code == 503
	})
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned before the stuck client read: %v", err)
	default:
	}
	expect("/readyz", 503, "shutting down")
	expect("/healthz", 200, "ok")

	// Let Shutdown finish.
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, stuck); close(drained) }()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	stuck.Close()
	<-drained
	if err := <-served; !errors.Is(err, broker.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	expect("/readyz", 503, "shutting down")
	expect("/healthz", 200, "ok")

	// Other paths and methods.
	if code, _ := get(t, srv.URL+"/nope"); code != 404 {
		t.Errorf("/nope: %d", code)
	}
	resp, err := http.Post(srv.URL+"/readyz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz: %d", resp.StatusCode)
	}
}
