package client

import (
	"context"
	"errors"
	"testing"
)

func TestJWTHandler(t *testing.T) {
	ctx := context.Background()
	n := 0
	h := JWT(func(context.Context) (string, error) {
		n++
		return []string{"", "tok-1", "tok-2"}[min(n, 2)], nil
	})
	if h.Method() != "JWT" {
		t.Fatalf("method %q", h.Method())
	}
	for _, want := range []string{"tok-1", "tok-2"} {
		got, err := h.Start(ctx)
		if err != nil || string(got) != want {
			t.Fatalf("Start: %q %v, want %q (a token fetched per call)", got, err, want)
		}
	}
	if _, err := h.Continue(ctx, []byte("challenge")); err == nil {
		t.Fatalf("Continue succeeded: JWT has no challenge")
	}
	if err := h.Finish(ctx, nil); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	boom := errors.New("boom")
	if _, err := JWT(func(context.Context) (string, error) { return "", boom }).Start(ctx); !errors.Is(err, boom) {
		t.Fatalf("token error: %v", err)
	}
	if _, err := JWT(func(context.Context) (string, error) { return "", nil }).Start(ctx); err == nil {
		t.Fatalf("empty token accepted")
	}
	if _, err := JWT(nil).Start(ctx); err == nil {
		t.Fatalf("nil token function accepted")
	}
}
