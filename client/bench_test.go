package client

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

// The publish benchmarks send b.N messages of 64 bytes to mosquitto
// (Receive Maximum 1000, no subscriber) and report messages per second.
//
//   - mqtt5/async: one goroutine, PublishAsync with up to 4096 tokens
//     outstanding (pipelining through the client's own flow control).
//   - mqtt5/sync64 and paho/sync64: 64 goroutines calling the blocking
//     Publish, the way paho.golang (paho.NewClient over a net.Conn) pipelines.
func BenchmarkPublishQoS0(b *testing.B) { benchPublish(b, 0) }
func BenchmarkPublishQoS1(b *testing.B) { benchPublish(b, 1) }
func BenchmarkPublishQoS2(b *testing.B) { benchPublish(b, 2) }

const benchWorkers = 64

var benchPayload = make([]byte, 64)

func benchPublish(b *testing.B, qos byte) {
	br := startBroker(b, "max_inflight_messages 1000", "max_queued_messages 1000000")
	topic := fmt.Sprintf("bench/qos%d", qos)
	b.Run("mqtt5/async", func(b *testing.B) {
		c, _ := connect(b, Options{Server: br.url(), Queue: QueueLimits{MaxMessages: 10000}})
		ctx := context.Background()
		m := &Message{Topic: topic, QoS: qos, Payload: benchPayload}
		var ring [4096]*Token
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			slot := &ring[i%len(ring)]
			if *slot != nil {
				if err := (*slot).Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			*slot = c.PublishAsync(ctx, m)
		}
		for _, t := range ring {
			if t != nil {
				if err := t.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("mqtt5/sync64", func(b *testing.B) {
		c, _ := connect(b, Options{Server: br.url()})
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		runWorkers(b, func() error {
			return c.Publish(ctx, &Message{Topic: topic, QoS: qos, Payload: benchPayload})
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("paho/sync64", func(b *testing.B) {
		conn, err := net.Dial("tcp", br.addr())
		if err != nil {
			b.Fatal(err)
		}
		pc := paho.NewClient(paho.ClientConfig{Conn: conn})
		ctx := context.Background()
		if _, err := pc.Connect(ctx, &paho.Connect{KeepAlive: 60, ClientID: "paho-bench", CleanStart: true}); err != nil {
			b.Fatal(err)
		}
		defer pc.Disconnect(&paho.Disconnect{})
		b.ReportAllocs()
		b.ResetTimer()
		runWorkers(b, func() error {
			_, err := pc.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: benchPayload})
			return err
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// runWorkers calls publish b.N times from benchWorkers goroutines.
func runWorkers(b *testing.B, publish func() error) {
	var n atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var ferr error
	for range benchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n.Add(1) <= int64(b.N) {
				if err := publish(); err != nil {
					once.Do(func() { ferr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if ferr != nil {
		b.Fatal(ferr)
	}
}
