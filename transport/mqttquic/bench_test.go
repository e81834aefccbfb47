package mqttquic_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

// benchPubSub measures messages from a publisher through the broker to a
// subscriber, with at most window messages in flight. One op is one
// message delivered (and acknowledged at QoS 1). Allocations count the
// broker and both clients.
func benchPubSub(b *testing.B, scfg mqttquic.ServerConfig, subCfg, pubCfg mqttquic.DialConfig, qos byte) {
	const window = 256
	e := newEnv(b, scfg, broker.Config{})
	sub := e.connect("sub", subCfg, nil)
	pub := e.connect("pub", pubCfg, nil)
	sub.subscribe("bench/#", qos)
	topics := []string{"bench/a", "bench/b", "bench/c", "bench/d"}
	msgs := make([][]byte, len(topics))
	for i, topic := range topics {
		p := &packet.Publish{Topic: topic, QoS: qos, Payload: make([]byte, 64)}
		if qos > 0 {
			p.PacketID = 1
		}
		msgs[i], _ = p.AppendTo(nil, packet.V5)
	}
	tokens := make(chan struct{}, window)
	for range window {
		tokens <- struct{}{}
	}
	subErr, ackErr, pubErr := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		subErr <- func() error {
			var ack [4]byte
			for i := 0; i < b.N; i++ {
				sub.c.SetReadDeadline(time.Now().Add(waitFor))
				h, body, err := sub.r.ReadRaw(packet.V5)
				if err != nil {
					return err
				}
				if h.Type != packet.PUBLISH {
					return errors.New("not a PUBLISH")
				}
				if qos == 1 {
					tl := int(body[0])<<8 | int(body[1])
					ack = [4]byte{0x40, 2, body[2+tl], body[3+tl]}
					if _, err := sub.c.Write(ack[:]); err != nil {
						return err
					}
				}
				tokens <- struct{}{}
			}
			return nil
		}()
	}()
	go func() {
		ackErr <- func() error {
			if qos == 0 {
				return nil
			}
			for i := 0; i < b.N; i++ {
				pub.c.SetReadDeadline(time.Now().Add(waitFor))
				if h, _, err := pub.r.ReadRaw(packet.V5); err != nil || h.Type != packet.PUBACK {
					return errors.New("no PUBACK")
				}
			}
			return nil
		}()
	}()
	go func() {
		pubErr <- func() error {
			for i := 0; i < b.N; i++ {
				<-tokens
				m := msgs[i%len(msgs)]
				if qos == 1 {
					id := uint16(i%60000 + 1)
					tl := int(m[2])<<8 | int(m[3])
					m[4+tl], m[5+tl] = byte(id>>8), byte(id)
				}
				if _, err := pub.c.Write(m); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	for _, ch := range []chan error{pubErr, ackErr, subErr} {
		if err := <-ch; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	pub.disconnect()
	sub.disconnect()
}

func BenchmarkSingleStreamQoS0(b *testing.B) {
	single := mqttquic.DialConfig{Single: true}
	benchPubSub(b, mqttquic.ServerConfig{}, single, single, 0)
}

func BenchmarkSingleStreamQoS1(b *testing.B) {
	single := mqttquic.DialConfig{Single: true}
	benchPubSub(b, mqttquic.ServerConfig{}, single, single, 1)
}

func BenchmarkMultistream(b *testing.B) {
	for _, d := range []mqttquic.Delivery{mqttquic.DeliveryControlOnly, mqttquic.DeliveryPerTopic, mqttquic.DeliveryPerPublish} {
		for _, qos := range []byte{0, 1} {
			b.Run(string(d)+"/QoS"+string(rune('0'+qos)), func(b *testing.B) {
				benchPubSub(b, mqttquic.ServerConfig{Delivery: d}, mqttquic.DialConfig{}, mqttquic.DialConfig{}, qos)
			})
		}
	}
	for _, s := range []mqttquic.Strategy{mqttquic.StrategyDataPerTopic, mqttquic.StrategyDataPerPublish} {
		b.Run("client_"+string(s)+"/QoS1", func(b *testing.B) {
			benchPubSub(b, mqttquic.ServerConfig{Delivery: mqttquic.DeliveryControlOnly}, mqttquic.DialConfig{}, mqttquic.DialConfig{Strategy: s}, 1)
		})
	}
}
