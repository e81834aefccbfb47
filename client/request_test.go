package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqttbroker "github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// echo answers "echo:" + the request payload at QoS 1.
func echo(_ context.Context, req *Message) (*Message, error) {
	return &Message{Payload: append([]byte("echo:"), req.Payload...), QoS: 1, ContentType: "text/plain"}, nil
}

func serveEcho(t *testing.T, c *Client, filter string) *Responder {
	t.Helper()
	r, err := c.HandleRequests(testCtx(t), filter, echo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Stop(ctx)
	})
	return r
}

func TestRequestConcurrent(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{})
	srv, _ := connect(t, Options{Server: ob.url(), ClientID: "responder"})
	serveEcho(t, srv, "svc/echo")
	cl, _ := connect(t, Options{Server: ob.url(), ClientID: "requester"})
	ctx := testCtx(t)

	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("echo:%d", i)
			resp, err := cl.Request(ctx, &Message{Topic: "svc/echo", Payload: fmt.Appendf(nil, "%d", i), QoS: 1})
			switch {
			case err != nil:
				errs <- fmt.Errorf("request %d: %w", i, err)
			case string(resp.Payload) != want || resp.ContentType != "text/plain" || len(resp.CorrelationData) != 16:
				errs <- fmt.Errorf("request %d: response %q %q %x", i, resp.Payload, resp.ContentType, resp.CorrelationData)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := cl.rr.r.Pending(); p != 0 {
		t.Fatalf("%d requests still pending", p)
	}
	if got, want := cl.rr.r.ResponseTopic(), DefaultResponsePrefix+"/requester"; got != want {
		t.Fatalf("response topic %q, want %q", got, want)
	}
}

func TestRequestResponseInformation(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{Capabilities: mqttbroker.Capabilities{ResponseInformation: "rr/base/"}})
	srv, _ := connect(t, Options{Server: ob.url(), ClientID: "responder"})
	serveEcho(t, srv, "svc/+")
	cl, info := connect(t, Options{Server: ob.url(), ClientID: "asker", RequestResponseInfo: true})
	if info.ResponseInfo != "rr/base/" {
		t.Fatalf("response information %q", info.ResponseInfo)
	}
	req := &Message{Topic: "svc/a", Payload: []byte("x"), ResponseTopic: "ignored", CorrelationData: []byte("mine")}
	resp, err := cl.Request(testCtx(t), req)
	if err != nil || string(resp.Payload) != "echo:x" || string(resp.CorrelationData) != "mine" || resp.Topic != "rr/base/asker" {
		t.Fatalf("response %+v, %v", resp, err)
	}
	if req.ResponseTopic != "ignored" {
		t.Fatal("the request message was modified")
	}
}

func TestRequestTimeoutAndStrays(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{})
	cl, _ := connect(t, Options{Server: ob.url(), ClientID: "asker"})
	var strays atomic.Int32
	r, err := NewRequester(cl, RequesterOptions{ResponseTopic: "reply/asker", QoS: 1, MaxInFlight: 1,
		OnStray: func(*Message) { strays.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}

	// Nobody answers: the context ends the wait, and the request is
	// forgotten.
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	_, err = r.Request(ctx, &Message{Topic: "svc/none", Payload: []byte("x")})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || r.Pending() != 0 {
		t.Fatalf("no responder: %v, %d pending", err, r.Pending())
	}

	// A responder that first sends strays: another request's response, a
	// message without correlation data, then the answer twice.
	unsub, err := ob.b.Subscribe("svc/noisy", 1, func(m *mqttbroker.Message) {
		ctx := context.Background()
		rt := m.Props.ResponseTopic
		other := &mqttbroker.Message{Topic: rt, Payload: []byte("other"), QoS: 1}
		other.Props.CorrelationData = []byte("someone else")
		ob.b.Publish(ctx, other)
		ob.b.Publish(ctx, &mqttbroker.Message{Topic: rt, Payload: []byte("bare"), QoS: 1})
		for range 2 {
			answer := &mqttbroker.Message{Topic: rt, Payload: []byte("answer"), QoS: 1}
			answer.Props.CorrelationData = append([]byte(nil), m.Props.CorrelationData...)
			ob.b.Publish(ctx, answer)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	resp, err := r.Request(testCtx(t), &Message{Topic: "svc/noisy", QoS: 1})
	if err != nil || string(resp.Payload) != "answer" {
		t.Fatalf("noisy responder: %v %v", resp, err)
	}
	// The two strays and the duplicate answer.
	waitFor(t, 10*time.Second, "strays", func() bool { return strays.Load() == 3 },
		func() string { return fmt.Sprint(strays.Load()) })

	// MaxInFlight: with one request waiting, the next waits for a slot.
	first := make(chan error, 1)
	fctx, fcancel := context.WithCancel(testCtx(t))
	go func() {
		_, err := r.Request(fctx, &Message{Topic: "svc/none"})
		first <- err
	}()
	waitFor(t, 10*time.Second, "the first request", func() bool { return r.Pending() == 1 })
	ctx, cancel = context.WithTimeout(testCtx(t), 50*time.Millisecond)
	_, err = r.Request(ctx, &Message{Topic: "svc/none"})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || r.Pending() != 1 {
		t.Fatalf("second request: %v, %d pending", err, r.Pending())
	}
	fcancel()
	if err := recv(t, first, "first request"); !errors.Is(err, context.Canceled) {
		t.Fatalf("first request: %v", err)
	}

	if err := r.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestRequestCorrelationInUseAndClose(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{})
	cl, _ := connect(t, Options{Server: ob.url(), ClientID: "asker"})
	r, err := NewRequester(cl, RequesterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := r.Request(testCtx(t), &Message{Topic: "svc/none", CorrelationData: []byte("dup")})
		first <- err
	}()
	waitFor(t, 10*time.Second, "the pending request", func() bool { return r.Pending() == 1 })
	if _, err := r.Request(testCtx(t), &Message{Topic: "svc/none", CorrelationData: []byte("dup")}); !errors.Is(err, ErrCorrelationInUse) {
		t.Fatalf("duplicate correlation data: %v", err)
	}
	// Close ends waiting requests, and later ones fail at once.
	if err := r.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, first, "request at close"); !errors.Is(err, ErrRequesterClosed) {
		t.Fatalf("request at close: %v", err)
	}
	if _, err := r.Request(testCtx(t), &Message{Topic: "svc/none"}); !errors.Is(err, ErrRequesterClosed) {
		t.Fatalf("request after close: %v", err)
	}
	if r.Pending() != 0 {
		t.Fatalf("%d pending after close", r.Pending())
	}
}

func TestResponderErrors(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{})
	errCh := make(chan error, 4)
	srv, _ := connect(t, Options{Server: ob.url(), ClientID: "responder", OnError: func(err error) { errCh <- err }})
	var served atomic.Int32
	r, err := srv.HandleRequests(testCtx(t), "svc/#", func(_ context.Context, req *Message) (*Message, error) {
		served.Add(1)
		switch string(req.Payload) {
		case "fail":
			return nil, errors.New("boom")
		case "panic":
			panic("kaboom")
		case "silent":
			return nil, nil
		}
		return &Message{Payload: []byte("ok"), QoS: 1}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := connect(t, Options{Server: ob.url(), ClientID: "asker"})
	// A message without a Response Topic is no request.
	if err := cl.Publish(testCtx(t), &Message{Topic: "svc/x", Payload: []byte("fail"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"fail", "panic", "silent"} {
		ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
		_, err := cl.Request(ctx, &Message{Topic: "svc/x", Payload: []byte(p), QoS: 1})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: %v", p, err)
		}
	}
	reported := recv(t, errCh, "handler error").Error() + "\n" + recv(t, errCh, "handler error").Error()
	if !strings.Contains(reported, "boom") || !strings.Contains(reported, "panic") || !strings.Contains(reported, "kaboom") {
		t.Fatalf("reported errors: %s", reported)
	}
	if resp, err := cl.Request(testCtx(t), &Message{Topic: "svc/x", Payload: []byte("hi"), QoS: 1}); err != nil || string(resp.Payload) != "ok" {
		t.Fatalf("after errors: %v %v", resp, err)
	}
	waitFor(t, 10*time.Second, "4 requests served", func() bool { return served.Load() == 4 },
		func() string { return fmt.Sprint(served.Load()) })
	// Stop removes the subscription.
	if err := r.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	if _, err := cl.Request(ctx, &Message{Topic: "svc/x", Payload: []byte("hi")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after Stop: %v", err)
	}
}

func TestRequestNeedsV5(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{})
	cl, _ := connect(t, Options{Server: ob.url(), ClientID: "old", Version: packet.V311})
	ctx := testCtx(t)
	if _, err := cl.Request(ctx, &Message{Topic: "svc/x"}); !errors.Is(err, ErrRequestNeedsV5) {
		t.Fatalf("Request: %v", err)
	}
	if _, err := NewRequester(cl, RequesterOptions{}); !errors.Is(err, ErrRequestNeedsV5) {
		t.Fatalf("NewRequester: %v", err)
	}
	if _, err := cl.HandleRequests(ctx, "svc/#", echo); !errors.Is(err, ErrRequestNeedsV5) {
		t.Fatalf("HandleRequests: %v", err)
	}
}

func TestSubscribeQoS(t *testing.T) {
	ob := startOurBroker(t, mqttbroker.Config{Capabilities: mqttbroker.Capabilities{MaximumQoS: 1}})
	cl, _ := connect(t, Options{Server: ob.url(), ClientID: "sub"})
	ctx := testCtx(t)
	id, granted, err := cl.SubscribeQoS(ctx, "a/#", 2, nil)
	if err != nil || id == 0 || granted != 1 {
		t.Fatalf("SubscribeQoS: id %d granted %d %v", id, granted, err)
	}
	id2, granted, err := cl.SubscribeQoS(ctx, "b", 0, nil)
	if err != nil || id2 == 0 || granted != 0 {
		t.Fatalf("SubscribeQoS: id %d granted %d %v", id2, granted, err)
	}
}
