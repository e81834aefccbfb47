package telemetry

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mqtt5go/mqtt5/broker"
)

// NewHTTPHandler returns the broker's operational endpoints:
//
//   - /metrics: the Prometheus exposition of reg (NewRegistry; nil uses
//     NewRegistry(b, nil)), in the text or OpenMetrics format as the
//     scraper asks.
//   - /healthz: 200 while the process serves HTTP (liveness).
//   - /readyz: 200 when the broker accepts connections — its Ready channel
//     is closed and a listener is being served — and ready (when not nil)
//     returns nil; 503 with the reason otherwise. Shutdown closes the
//     listeners first, so /readyz answers 503 while the broker shuts down.
//     ready is where the host program adds its own conditions (a store or
//     bridge that must be up, a drain started before Shutdown).
func NewHTTPHandler(b *broker.Broker, reg *prometheus.Registry, ready func() error) http.Handler {
	if reg == nil {
		var err error
		if reg, err = NewRegistry(b, nil); err != nil {
			panic(err) // only for a nil broker
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := readiness(b, ready); err != nil {
			writeText(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		writeText(w, http.StatusOK, "ok")
	})
	return mux
}

var (
	errNotStarted = errors.New("broker not accepting connections yet")
	errNoListener = errors.New("broker not listening (shutting down)")
)

// readiness returns why the broker is not ready, or nil.
func readiness(b *broker.Broker, ready func() error) error {
	if !isReady(b) {
		return errNotStarted
	}
	if len(b.Addrs()) == 0 {
		return errNoListener
	}
	if ready != nil {
		if err := ready(); err != nil {
			return err
		}
	}
	return nil
}

func writeText(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write([]byte(msg + "\n"))
}
