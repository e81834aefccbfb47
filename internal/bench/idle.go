package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// runIdle opens cfg.Connections connections that stay idle for
// cfg.Duration, measuring the connect rate and CONNECT→CONNACK latency
// and, given the broker's PID, its resident memory per connection.
func (r *runner) runIdle(ctx context.Context) (*Result, error) {
	cfg := r.cfg
	res := &Result{Format: ResultFormat, Scenario: cfg.Scenario, Config: cfg, Started: time.Now().UTC()}
	idle := &IdleStats{Requested: cfg.Connections}
	var before procSample
	var beforeOK bool
	if cfg.BrokerPID != 0 {
		var err error
		before, err = readProc(cfg.BrokerPID)
		beforeOK = err == nil
	}
	conns := make([]*conn, cfg.Connections)
	hist := newHistogram()
	var histMu sync.Mutex
	var connected, failed atomic.Int64
	var firstErr atomic.Value

	// The sampler counts connections as "delivered".
	r.start = time.Now()
	first := r.snapshot()
	idleCounter := &idleCount{n: &connected}
	r.subs = nil
	samplerDone := make(chan struct{})
	stopSampler := r.startIdleSampler(samplerDone, idleCounter)

	next := make(chan int)
	var wg sync.WaitGroup
	workers := min(cfg.ConnectConcurrency, cfg.Connections)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				c, err := dialMQTT(ctx, r.target.Dialer, cfg.Protocol, r.clientID("c", i), 128, cfg.SessionExpiry)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat := time.Since(t0)
				// Drop the buffers: an idle connection costs the generator
				// as little as it can.
				c.r.Reset(c.nc)
				conns[i] = c
				connected.Add(1)
				histMu.Lock()
				hist.RecordValue(max(int64(lat), 1))
				histMu.Unlock()
			}
		}()
	}
	interrupted := false
	var pace *time.Timer
	if cfg.ConnectRate > 0 {
		pace = time.NewTimer(time.Hour)
		pace.Stop()
	}
feed:
	for i := range cfg.Connections {
		if pace != nil {
			due := r.start.Add(time.Duration(float64(i) / cfg.ConnectRate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				pace.Reset(d)
				select {
				case <-pace.C:
				case <-ctx.Done():
					interrupted = true
					break feed
				}
			}
		}
		select {
		case next <- i:
		case <-ctx.Done():
			interrupted = true
			break feed
		}
	}
	close(next)
	wg.Wait()
	connectTime := time.Since(r.start)
	idle.Connected = int(connected.Load())
	idle.Failed = int(failed.Load())
	idle.ConnectSeconds = connectTime.Seconds()
	if connectTime > 0 {
		idle.ConnectRate = float64(idle.Connected) / connectTime.Seconds()
	}
	if e, ok := firstErr.Load().(string); ok {
		res.Errors = append(res.Errors, e)
	}

	// Hold the connections, then measure the broker.
	warm := r.snapshot()
	if !interrupted {
		t := time.NewTimer(cfg.Duration)
		select {
		case <-t.C:
		case <-ctx.Done():
			interrupted = true
		}
		t.Stop()
	}
	end := r.snapshot()
	if beforeOK && end.brokerOK {
		idle.RSSBefore = before.rss
		idle.RSSAfter = end.broker.rss
		if idle.Connected > 0 {
			idle.BytesPerConnection = float64(end.broker.rss-before.rss) / float64(idle.Connected)
		}
	}
	idle.AliveAtEnd = aliveCount(conns, cfg.ConnectConcurrency)
	close(samplerDone)
	stopSampler()

	// Close in parallel: 10,000 sequential DISCONNECTs take a while.
	var cwg sync.WaitGroup
	ch := make(chan *conn)
	for range workers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for c := range ch {
				c.disconnect()
			}
		}()
	}
	for _, c := range conns {
		if c != nil {
			ch <- c
		}
	}
	close(ch)
	cwg.Wait()

	res.Elapsed = time.Since(r.start).Seconds()
	res.Measured = connectTime.Seconds()
	res.Complete = !interrupted
	if interrupted {
		res.Errors = append(res.Errors, "run interrupted: "+context.Cause(ctx).Error())
	}
	if idle.Failed > 0 {
		res.Errors = append(res.Errors, "some connections failed")
	}
	res.Idle = idle
	res.hist = hist
	res.Latency = latencyStats(hist)
	res.Throughput = &Throughput{DeliveredPerSec: idle.ConnectRate, DeliveredMedian: idle.ConnectRate}
	if cfg.BrokerPID != 0 && warm.brokerOK && end.brokerOK {
		b := &ProcStats{PID: cfg.BrokerPID, CPUPercent: cpuPercent(warm.broker, end.broker), RSSStart: before.rss, RSSEnd: end.broker.rss}
		b.RSSMax = max(before.rss, end.broker.rss)
		for _, s := range r.samples {
			b.RSSMax = max(b.RSSMax, s.BrokerRSS)
			b.CPUMaxPercent = max(b.CPUMaxPercent, s.BrokerCPU)
		}
		res.Broker = b
	}
	res.Generator = generatorStats(first, warm)
	res.Samples = r.samples
	return res, nil
}

type idleCount struct{ n *atomic.Int64 }

// startIdleSampler samples connections per second.
func (r *runner) startIdleSampler(done <-chan struct{}, ic *idleCount) func() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		snap := func() counters {
			c := r.snapshot()
			c.received = ic.n.Load()
			return c
		}
		prev := snap()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			cur := snap()
			r.addSample(prev, cur, 0, cur.received-prev.received)
			prev = cur
		}
	}()
	return wg.Wait
}

// aliveCount checks, with a short read deadline on each, how many
// connections are still open (a closed one reads EOF at once).
func aliveCount(conns []*conn, par int) int {
	var alive atomic.Int64
	var wg sync.WaitGroup
	ch := make(chan *conn)
	for range max(par, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [1]byte
			for c := range ch {
				c.nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				_, err := c.nc.Read(b[:])
				if err != nil && isTimeout(err) {
					alive.Add(1)
				}
				c.nc.SetReadDeadline(time.Time{})
			}
		}()
	}
	for _, c := range conns {
		if c != nil {
			ch <- c
		}
	}
	close(ch)
	wg.Wait()
	return int(alive.Load())
}
