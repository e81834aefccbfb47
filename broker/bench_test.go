package broker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// End-to-end benchmarks over loopback TCP with raw packet clients that do
// not allocate, so allocs/op is the broker's allocations per message
// (per delivered message for the fan-out case: ns/op and allocs/op are per
// delivery there).

type benchClient struct {
	nc net.Conn
	r  *packet.Reader
	w  *bufio.Writer
}

func benchDial(b *testing.B, addr string, id string, v packet.Version) *benchClient {
	b.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchClient{nc: nc, r: packet.NewReader(nc, 0), w: bufio.NewWriterSize(nc, 64<<10)}
	buf, _ := (&packet.Connect{ClientID: id, CleanStart: true, Version: v}).AppendTo(nil, v)
	c.w.Write(buf)
	c.w.Flush()
	if h, _, err := c.r.ReadRaw(v); err != nil || h.Type != packet.CONNACK {
		b.Fatalf("connack: %v %v", h.Type, err)
	}
	return c
}

func (c *benchClient) subscribe(b *testing.B, filter string, qos byte, v packet.Version) {
	buf, _ := (&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}}).AppendTo(nil, v)
	c.w.Write(buf)
	c.w.Flush()
	if h, _, err := c.r.ReadRaw(v); err != nil || h.Type != packet.SUBACK {
		b.Fatalf("suback: %v %v", h.Type, err)
	}
}

// consume reads n PUBLISH packets, acknowledging QoS 1.
func (c *benchClient) consume(n int, v packet.Version, done chan<- error) {
	var p packet.Publish
	ack := make([]byte, 0, 4)
	for i := 0; i < n; {
		h, body, err := c.r.ReadRaw(v)
		if err != nil {
			done <- err
			return
		}
		if h.Type != packet.PUBLISH {
			continue
		}
		if err := p.Decode(h.Flags, body, v); err != nil {
			done <- err
			return
		}
		if p.QoS == 1 {
			ack, _ = (&packet.Puback{PacketID: p.PacketID}).AppendTo(ack[:0], v)
			c.w.Write(ack)
			if c.r.Buffered() == 0 {
				c.w.Flush()
			}
		}
		i++
	}
	c.w.Flush()
	done <- nil
}

// produce publishes n messages with at most window QoS 1 in flight.
func (c *benchClient) produce(n int, topic string, qos byte, window int, v packet.Version, payload []byte) error {
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		inflight int
		readErr  error
		acked    int
	)
	if qos > 0 {
		go func() {
			for acked < n {
				h, _, err := c.r.ReadRaw(v)
				mu.Lock()
				if err != nil {
					readErr = err
					cond.Broadcast()
					mu.Unlock()
					return
				}
				if h.Type == packet.PUBACK {
					inflight--
					acked++
					cond.Broadcast()
				}
				mu.Unlock()
			}
		}()
	}
	buf := make([]byte, 0, 256)
	var id uint16
	for i := 0; i < n; i++ {
		p := packet.Publish{Topic: topic, QoS: qos, Payload: payload}
		if qos > 0 {
			mu.Lock()
			for inflight >= window && readErr == nil {
				c.w.Flush()
				cond.Wait()
			}
			inflight++
			mu.Unlock()
			id++
			if id == 0 {
				id = 1
			}
			p.PacketID = id
		}
		buf, _ = p.AppendTo(buf[:0], v)
		c.w.Write(buf)
	}
	c.w.Flush()
	if qos > 0 {
		mu.Lock()
		for acked < n && readErr == nil {
			cond.Wait()
		}
		mu.Unlock()
		return readErr
	}
	return nil
}

func benchBroker(b *testing.B) (*Broker, string) {
	br := New(Config{SysInterval: -1, Queue: QueueConfig{MaxMessages: 1 << 20, MaxBytes: 1 << 30}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go br.Serve(l)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		br.Shutdown(ctx)
	})
	return br, l.Addr().String()
}

func BenchmarkFanIn(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			const pubs = 4
			v := packet.V5
			_, addr := benchBroker(b)
			sub := benchDial(b, addr, "sub", v)
			defer sub.nc.Close()
			sub.subscribe(b, "bench/#", qos, v)
			ps := make([]*benchClient, pubs)
			for i := range ps {
				ps[i] = benchDial(b, addr, fmt.Sprintf("pub%d", i), v)
				defer ps[i].nc.Close()
			}
			payload := make([]byte, 64)
			n := b.N - b.N%pubs + pubs
			done := make(chan error, 1)
			b.ReportAllocs()
			b.ResetTimer()
			go sub.consume(n, v, done)
			var wg sync.WaitGroup
			for i, p := range ps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := p.produce(n/pubs, fmt.Sprintf("bench/%d", i), qos, 20, v, payload); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func BenchmarkFanOut(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			const subs = 50
			v := packet.V5
			_, addr := benchBroker(b)
			ss := make([]*benchClient, subs)
			for i := range ss {
				ss[i] = benchDial(b, addr, fmt.Sprintf("sub%d", i), v)
				defer ss[i].nc.Close()
				ss[i].subscribe(b, "fan/out", qos, v)
			}
			pub := benchDial(b, addr, "pub", v)
			defer pub.nc.Close()
			n := b.N/subs + 1
			done := make(chan error, subs)
			b.ReportAllocs()
			b.ResetTimer()
			for _, s := range ss {
				go s.consume(n, v, done)
			}
			if err := pub.produce(n, "fan/out", qos, 20, v, make([]byte, 64)); err != nil {
				b.Fatal(err)
			}
			for range ss {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(n*subs)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
