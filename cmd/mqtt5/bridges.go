package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/mqtt5go/mqtt5/broker/bridge"
	"github.com/mqtt5go/mqtt5/config"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

// bridgeSet runs the configured bridges and applies changes to them: new
// ones start, removed ones stop, changed ones restart; the others are not
// touched.
type bridgeSet struct {
	local func(context.Context) (net.Conn, error)
	log   *slog.Logger

	mu      sync.Mutex
	running map[string]*runningBridge
}

type runningBridge struct {
	cfg    config.Bridge
	br     *bridge.Bridge
	cancel context.CancelFunc
	done   chan struct{}
}

func newBridgeSet(local func(context.Context) (net.Conn, error), log *slog.Logger) *bridgeSet {
	return &bridgeSet{local: local, log: log, running: map[string]*runningBridge{}}
}

// bridgeConfig turns the file's settings into a bridge.Config.
func bridgeConfig(c config.Bridge, log *slog.Logger) (bridge.Config, error) {
	bc := bridge.Config{
		Name:             c.Name,
		QueueDir:         c.QueueDir,
		MaxQueued:        c.MaxQueued,
		MaxQueuedBytes:   c.MaxQueuedBytes,
		FailbackInterval: c.FailbackInterval.D(),
		MaxHops:          c.MaxHops,
		LoopTTL:          c.LoopTTL.D(),
		LoopCacheSize:    c.LoopCacheSize,
		Logger:           log.With("bridge", c.Name),
		Remote: bridge.RemoteConfig{
			URL: c.URL, Backups: c.Backups, ClientID: c.ClientID, Username: c.Username,
		},
	}
	if c.Password != "" {
		bc.Remote.Password = []byte(c.Password)
	}
	if c.Protocol == "3.1.1" {
		bc.Remote.Version = packet.V311
	}
	if c.CAFile != "" || c.CertFile != "" || c.Insecure || len(c.ALPN) > 0 {
		tc, err := transport.ClientTLS{CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile,
			InsecureSkipVerify: c.Insecure, ALPN: c.ALPN}.Config()
		if err != nil {
			return bc, fmt.Errorf("bridge %s: %w", c.Name, err)
		}
		bc.Remote.TLS = tc
	}
	for _, t := range c.Topics {
		dir := bridge.Out
		if t.Direction != "" {
			d, err := bridge.ParseDirection(t.Direction)
			if err != nil {
				return bc, fmt.Errorf("bridge %s: %w", c.Name, err)
			}
			dir = d
		}
		bc.Topics = append(bc.Topics, bridge.TopicMapping{Pattern: t.Pattern, Direction: dir, QoS: byte(t.QoS),
			LocalPrefix: t.LocalPrefix, RemotePrefix: t.RemotePrefix})
	}
	return bc, nil
}

// apply makes the running bridges those of cfgs. Every bridge is checked
// before anything changes, so an invalid set leaves the running one alone.
func (s *bridgeSet) apply(ctx context.Context, cfgs []config.Bridge) error {
	built := map[string]*bridge.Bridge{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cfgs {
		if r, ok := s.running[c.Name]; ok && reflect.DeepEqual(r.cfg, c) {
			continue
		}
		bc, err := bridgeConfig(c, s.log)
		if err != nil {
			return err
		}
		br, err := bridge.New(bc, s.local)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", c.Name, err)
		}
		built[c.Name] = br
	}
	want := map[string]bool{}
	for _, c := range cfgs {
		want[c.Name] = true
	}
	for name, r := range s.running {
		if !want[name] || built[name] != nil {
			s.stopLocked(ctx, name, r)
			if !want[name] {
				s.log.Info("bridge removed", "bridge", name)
			}
		}
	}
	for _, c := range cfgs {
		br := built[c.Name]
		if br == nil {
			continue
		}
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r := &runningBridge{cfg: c, br: br, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(r.done)
			if err := br.Run(rctx); err != nil {
				s.log.Error("bridge stopped", "bridge", c.Name, "err", err)
			}
		}()
		s.running[c.Name] = r
		s.log.Info("bridge started", "bridge", c.Name, "remote", c.URL)
	}
	return nil
}

func (s *bridgeSet) stopLocked(ctx context.Context, name string, r *runningBridge) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	r.br.Close(cctx)
	r.cancel()
	<-r.done
	delete(s.running, name)
}

// statuses returns the status of every running bridge by name.
func (s *bridgeSet) statuses() map[string]bridge.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bridge.Status, len(s.running))
	for name, r := range s.running {
		out[name] = r.br.Status()
	}
	return out
}

// publishStatus publishes each bridge's status as retained messages under
// $SYS/broker/bridge/<name>/ every interval until ctx ends.
func (s *bridgeSet) publishStatus(ctx context.Context, publish func(ctx context.Context, topic, value string) error, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for name, st := range s.statuses() {
			base := "$SYS/broker/bridge/" + name + "/"
			connected := "0"
			if st.Connected {
				connected = "1"
			}
			for _, kv := range [][2]string{
				{"connected", connected},
				{"remote", st.Remote},
				{"queue_depth", fmt.Sprint(st.QueueDepth)},
				{"last_error", st.LastError},
				{"forwarded/in", fmt.Sprint(st.Forwarded.In)},
				{"forwarded/out", fmt.Sprint(st.Forwarded.Out)},
				{"dropped/in", fmt.Sprint(st.Dropped.In)},
				{"dropped/out", fmt.Sprint(st.Dropped.Out)},
				{"loops_dropped", fmt.Sprint(st.LoopsDropped)},
			} {
				if err := publish(ctx, base+kv[0], kv[1]); err != nil {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stop stops every bridge.
func (s *bridgeSet) stop(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, r := range s.running {
		s.stopLocked(ctx, name, r)
	}
}
