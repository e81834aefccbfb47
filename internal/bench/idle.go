package bench

import (
	"context"
	"net"
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

	dialer, sources := idleDialer(r.target, cfg.Connections)
	idle.SourceAddresses = sources
	next := make(chan int)
	var wg sync.WaitGroup
	workers := min(cfg.ConnectConcurrency, cfg.Connections)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				c, err := dialMQTT(ctx, dialer.at(i), cfg.Protocol, r.clientID("c", i), 128, cfg.SessionExpiry)
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

// perSourceAddr is how many idle connections one source address opens to
// one broker address. Each takes an ephemeral port of the source: Linux has
// about 28,000 by default (net.ipv4.ip_local_port_range), connections of
// earlier runs keep theirs in TIME_WAIT for a minute, and connect slows
// down to a few hundred per second as the free ones run out.
const perSourceAddr = 10_000

// sourceDialers dials connection i from source address i mod len(src).
type sourceDialers struct {
	def Dialer
	src []Dialer
}

func (d *sourceDialers) at(i int) Dialer {
	if len(d.src) == 0 {
		return d.def
	}
	return d.src[i%len(d.src)]
}

// idleDialer spreads n connections over several loopback source addresses
// (127.0.0.1, 127.0.0.2, ...: all of 127/8 is loopback on Linux) when n is
// more than one source address has ports for and the broker is a plain TCP
// (mqtt://, tcp://) IPv4 loopback address. It returns the dialers and how
// many source addresses they use (0: the system's choice).
func idleDialer(t Target, n int) (*sourceDialers, int) {
	d := &sourceDialers{def: t.Dialer}
	if n <= perSourceAddr || (t.Scheme != "mqtt" && t.Scheme != "tcp") {
		return d, 0
	}
	host, _, err := net.SplitHostPort(t.Addr)
	if err != nil {
		return d, 0
	}
	ip := net.ParseIP(host).To4()
	if ip == nil || !ip.IsLoopback() {
		return d, 0
	}
	k := min((n+perSourceAddr-1)/perSourceAddr, 254)
	for i := range k {
		src := net.IPv4(127, 0, 0, byte(1+i))
		d.src = append(d.src, &tcpSourceDialer{addr: t.Addr, d: net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}})
	}
	return d, k
}

// tcpSourceDialer dials plain TCP from one local address.
type tcpSourceDialer struct {
	addr string
	d    net.Dialer
}

func (s *tcpSourceDialer) Dial(ctx context.Context) (net.Conn, error) {
	c, err := s.d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	c.(*net.TCPConn).SetNoDelay(true)
	return c, nil
}
