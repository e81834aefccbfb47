package packet_test

// Codec benchmarks. Run with
//
//	go test -run='^$' -bench=. -benchmem ./packet/
//
// PUBLISH decode (into a reused *Publish, from a body slice) and encode
// (appending into a reused buffer) must report 0 allocs/op.

import (
	"bytes"
	"testing"

	"github.com/mqtt5go/mqtt5/packet"
)

// bmLoop is an io.Reader that serves b over and over without end.
type bmLoop struct {
	b   []byte
	off int
}

func (l *bmLoop) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.b[l.off:])
		n += c
		l.off = (l.off + c) % len(l.b)
	}
	return n, nil
}

func bmPublish(size int, props bool) *packet.Publish {
	p := &packet.Publish{QoS: 1, PacketID: 42, Topic: "sensors/building-1/floor-2/temperature",
		Payload: bytes.Repeat([]byte{'x'}, size)}
	if props {
		p.Props = packet.Properties{
			PayloadFormat:   1,
			MessageExpiry:   3600,
			ContentType:     "application/json",
			ResponseTopic:   "replies/client-7",
			CorrelationData: []byte("0123456789abcdef"),
			SubscriptionIDs: []uint32{7, 300},
			User: []packet.UserProperty{
				{Key: "traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
				{Key: "origin", Value: "bridge-a"},
			},
		}
	}
	return p
}

// bmSplit encodes p and returns its fixed header and body.
func bmSplit(b *testing.B, p packet.Packet, v packet.Version) (packet.FixedHeader, []byte) {
	enc, err := p.AppendTo(nil, v)
	if err != nil {
		b.Fatal(err)
	}
	h, body, err := catSplit(enc)
	if err != nil {
		b.Fatal(err)
	}
	return h, body
}

var bmSizes = []struct {
	name string
	size int
}{{"64B", 64}, {"4KiB", 4096}}

var bmProps = []struct {
	name  string
	props bool
}{{"noprops", false}, {"props", true}}

func BenchmarkPublishDecode(b *testing.B) {
	for _, s := range bmSizes {
		for _, pr := range bmProps {
			b.Run(s.name+"/"+pr.name, func(b *testing.B) {
				h, body := bmSplit(b, bmPublish(s.size, pr.props), packet.V5)
				var p packet.Publish
				b.SetBytes(int64(h.Size()))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if err := p.Decode(h.Flags, body, packet.V5); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkPublishEncode(b *testing.B) {
	for _, s := range bmSizes {
		for _, pr := range bmProps {
			b.Run(s.name+"/"+pr.name, func(b *testing.B) {
				p := bmPublish(s.size, pr.props)
				buf := make([]byte, 0, 8192)
				b.SetBytes(int64(p.Size(packet.V5)))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					var err error
					if buf, err = p.AppendTo(buf[:0], packet.V5); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPublishFrameEncode is BenchmarkPublishEncode the way a broker
// encodes each subscriber's copy: the shared part built once, then only the
// per-copy fields (here a packet identifier and a Subscription Identifier).
func BenchmarkPublishFrameEncode(b *testing.B) {
	for _, s := range bmSizes {
		for _, pr := range bmProps {
			b.Run(s.name+"/"+pr.name, func(b *testing.B) {
				p := bmPublish(s.size, pr.props)
				sh, err := packet.NewPublishShared(p.Topic, &p.Props)
				if err != nil {
					b.Fatal(err)
				}
				ids := []uint32{7}
				f := packet.PublishFrame{Shared: &sh, Payload: p.Payload, QoS: p.QoS, PacketID: p.PacketID,
					HasExpiry: p.Props.Has(packet.PropMessageExpiry), MessageExpiry: p.Props.MessageExpiry, SubscriptionIDs: ids}
				buf := make([]byte, 0, 8192)
				b.SetBytes(int64(f.Size(packet.V5)))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if buf, err = f.AppendTo(buf[:0], packet.V5); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func bmConnect() *packet.Connect {
	return &packet.Connect{Version: packet.V5, CleanStart: true, KeepAlive: 60, ClientID: "client-0123456789",
		Username: "alice", Password: []byte("secret"),
		Props: packet.Properties{SessionExpiry: 3600, ReceiveMaximum: 100, MaximumPacketSize: 1 << 20,
			TopicAliasMaximum: 10, User: []packet.UserProperty{{Key: "region", Value: "eu"}}},
		Will: &packet.Will{QoS: 1, Topic: "clients/client-0123456789/status", Payload: []byte("offline"),
			Props: packet.Properties{WillDelay: 5, PayloadFormat: 1}}}
}

func bmSubscribe() *packet.Subscribe {
	return &packet.Subscribe{PacketID: 9, Props: packet.Properties{SubscriptionIDs: []uint32{12}},
		Subscriptions: []packet.Subscription{
			{Filter: "sensors/+/temperature", QoS: 1},
			{Filter: "alerts/#", QoS: 2, NoLocal: true, RetainHandling: 1},
			{Filter: "$share/group/jobs/#", QoS: 1},
		}}
}

func BenchmarkConnectDecode(b *testing.B) {
	h, body := bmSplit(b, bmConnect(), packet.V5)
	var c packet.Connect
	b.SetBytes(int64(h.Size()))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := c.Decode(h.Flags, body, packet.V5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConnectEncode(b *testing.B) {
	c := bmConnect()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for range b.N {
		var err error
		if buf, err = c.AppendTo(buf[:0], packet.V5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSubscribeDecode(b *testing.B) {
	h, body := bmSplit(b, bmSubscribe(), packet.V5)
	var s packet.Subscribe
	b.SetBytes(int64(h.Size()))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.Decode(h.Flags, body, packet.V5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSubscribeEncode(b *testing.B) {
	s := bmSubscribe()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for range b.N {
		var err error
		if buf, err = s.AppendTo(buf[:0], packet.V5); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderReadRaw reads one PUBLISH per op from an endless stream
// of them, as a connection's read loop does.
func BenchmarkReaderReadRaw(b *testing.B) {
	for _, s := range bmSizes {
		b.Run(s.name, func(b *testing.B) {
			one, err := bmPublish(s.size, false).AppendTo(nil, packet.V5)
			if err != nil {
				b.Fatal(err)
			}
			r := packet.NewReader(&bmLoop{b: bytes.Repeat(one, 64)}, 0)
			r.InitialSize = 16 << 10
			b.SetBytes(int64(len(one)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, _, err := r.ReadRaw(packet.V5); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReaderReadPublish is ReadRaw plus decoding into a reused
// *Publish: the whole per-message cost of an inbound QoS 0/1 publish.
func BenchmarkReaderReadPublish(b *testing.B) {
	one, _ := bmPublish(64, true).AppendTo(nil, packet.V5)
	r := packet.NewReader(&bmLoop{b: bytes.Repeat(one, 64)}, 0)
	var p packet.Publish
	b.SetBytes(int64(len(one)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h, body, err := r.ReadRaw(packet.V5)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Decode(h.Flags, body, packet.V5); err != nil {
			b.Fatal(err)
		}
	}
}
