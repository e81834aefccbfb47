package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"
)

// The profiling endpoint (telemetry.pprof_listen, --pprof-listen): the Go
// runtime profiles of net/http/pprof on a private ServeMux, never
// http.DefaultServeMux. The configuration refuses an address that is not
// loopback; the endpoint stops with the broker.

func init() {
	brokerFlagHelp["pprof-listen"] = "loopback host:port of the HTTP server of the Go runtime profiles under /debug/pprof/ (default off)"
}

// pprofMux serves the runtime profiles under /debug/pprof/.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // heap, goroutine, allocs, block, mutex, threadcreate
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// mutexProfileFraction is the sampling rate of lock contention events
// while the profiling endpoint is on (runtime.SetMutexProfileFraction).
const mutexProfileFraction = 100

// servePprof serves the runtime profiles on addr until stop is called;
// an empty addr serves nothing.
func servePprof(ctx context.Context, addr string, logger *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listener: %w", err)
	}
	// No WriteTimeout: /debug/pprof/profile and /trace stream for as long
	// as their ?seconds= asks.
	srv := &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	// Lock contention is sampled (one event in mutexProfileFraction) only
	// while the endpoint is on: the mutex profile is empty otherwise.
	prevFraction := runtime.SetMutexProfileFraction(mutexProfileFraction)
	logger.Info("pprof listening", "url", "http://"+l.Addr().String()+"/debug/pprof/")
	return func() {
		defer runtime.SetMutexProfileFraction(prevFraction)
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close() // a profile still streaming
		}
		<-done
	}, nil
}
