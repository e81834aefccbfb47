package packet_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/packet"
)

// frameOf returns the PublishFrame for p, with the shared part built from
// p's topic and properties.
func frameOf(t testing.TB, p *packet.Publish) (*packet.PublishFrame, error) {
	t.Helper()
	topic := p.Topic
	omit := false
	if topic == "" {
		omit = true
	}
	sh, err := packet.NewPublishShared(topic, &p.Props)
	if err != nil {
		return nil, err
	}
	return &packet.PublishFrame{
		Shared: &sh, OmitTopic: omit, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Dup: p.Dup,
		PacketID: p.PacketID, HasExpiry: p.Props.Has(packet.PropMessageExpiry), MessageExpiry: p.Props.MessageExpiry,
		SubscriptionIDs: p.Props.SubscriptionIDs, TopicAlias: p.Props.TopicAlias,
	}, nil
}

func randomPublish(r *rand.Rand) *packet.Publish {
	str := func() string {
		const alphabet = "ab/+#é日\x00"
		var sb strings.Builder
		for range r.IntN(6) {
			rs := []rune(alphabet)
			sb.WriteRune(rs[r.IntN(len(rs))])
		}
		return sb.String()
	}
	p := &packet.Publish{Topic: "t/" + str(), QoS: byte(r.IntN(3)), Retain: r.IntN(2) == 0}
	if r.IntN(8) == 0 {
		p.Topic = ""
	}
	if p.QoS > 0 {
		p.PacketID = uint16(1 + r.IntN(65535))
		p.Dup = r.IntN(2) == 0
	}
	p.Payload = bytes.Repeat([]byte{byte(r.IntN(256))}, r.IntN(300))
	pr := &p.Props
	if r.IntN(3) == 0 {
		pr.PayloadFormat = byte(r.IntN(2))
		pr.Set(packet.PropPayloadFormat)
	}
	if r.IntN(3) == 0 {
		pr.MessageExpiry = uint32(r.IntN(3)) * 1000
		pr.Set(packet.PropMessageExpiry)
	}
	if r.IntN(3) == 0 {
		pr.ContentType = str()
	}
	if r.IntN(3) == 0 {
		pr.ResponseTopic = "r/" + str()
	}
	if r.IntN(3) == 0 {
		pr.CorrelationData = bytes.Repeat([]byte{7}, r.IntN(20))
	}
	for range r.IntN(3) {
		pr.SubscriptionIDs = append(pr.SubscriptionIDs, uint32(r.IntN(packet.MaxVarint+1)))
	}
	if r.IntN(3) == 0 {
		pr.TopicAlias = uint16(1 + r.IntN(10))
	}
	for range r.IntN(4) {
		pr.User = append(pr.User, packet.UserProperty{Key: str(), Value: str()})
	}
	return p
}

// TestPublishFrameMatchesPublish encodes random publications both ways:
// the frame must write the same bytes as Publish.AppendTo, report the same
// size, and fail exactly where it fails, with the same reason code.
func TestPublishFrameMatchesPublish(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var encoded, refused int
	for i := range 20000 {
		p := randomPublish(r)
		for _, v := range []packet.Version{packet.V311, packet.V5} {
			want, wantErr := p.AppendTo([]byte("prefix"), v)
			f, err := frameOf(t, p)
			var got []byte
			if err == nil {
				got, err = f.AppendTo([]byte("prefix"), v)
			}
			if (err == nil) != (wantErr == nil) {
				if v == packet.V311 && wantErr == nil && err != nil {
					// The shared part is validated for v5 whatever the
					// version; v3.1.1 has no properties to refuse.
					continue
				}
				t.Fatalf("case %d v%d: frame err %v, Publish err %v (%+v)", i, v, err, wantErr, p)
			}
			if err != nil {
				// Both refuse; where a copy has several defects the two
				// may name different ones first. TestPublishFrameRejects
				// checks the reason code of each defect alone.
				if string(got) != "" && string(got) != "prefix" {
					t.Fatalf("case %d: dst changed on error", i)
				}
				refused++
				continue
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("case %d v%d:\nframe   %x\nPublish %x", i, v, got, want)
			}
			if f.Size(v) != len(got)-len("prefix") || p.Size(v) != f.Size(v) {
				t.Fatalf("case %d v%d: frame Size %d, Publish Size %d, encoded %d", i, v, f.Size(v), p.Size(v), len(got)-len("prefix"))
			}
			encoded++
		}
	}
	if encoded < 1000 || refused < 1000 {
		t.Fatalf("random cases not varied enough: %d encoded, %d refused", encoded, refused)
	}
}

// TestPublishSharedIsIndependent checks that the shared part copies what it
// encodes: changing the properties afterwards does not change the frame.
func TestPublishFrameRejects(t *testing.T) {
	const (
		mal = packet.MalformedPacket
		pro = packet.ProtocolError
	)
	good := func() *packet.Publish {
		return &packet.Publish{Topic: "a/b", QoS: 1, PacketID: 1, Payload: []byte("x")}
	}
	cases := []struct {
		name string
		edit func(p *packet.Publish)
		code packet.ReasonCode
	}{
		{"QoS 3", func(p *packet.Publish) { p.QoS = 3 }, mal},
		{"DUP on QoS 0", func(p *packet.Publish) { p.QoS, p.PacketID, p.Dup = 0, 0, true }, mal},
		{"packet id on QoS 0", func(p *packet.Publish) { p.QoS = 0 }, pro},
		{"packet id 0", func(p *packet.Publish) { p.PacketID = 0 }, pro},
		{"empty topic without alias", func(p *packet.Publish) { p.Topic = "" }, pro},
		{"subscription id 0", func(p *packet.Publish) { p.Props.SubscriptionIDs = []uint32{0} }, pro},
		{"subscription id too large", func(p *packet.Publish) { p.Props.SubscriptionIDs = []uint32{packet.MaxVarint + 1} }, pro},
		{"topic not UTF-8", func(p *packet.Publish) { p.Topic = "a\xff" }, mal},
		{"topic with U+0000", func(p *packet.Publish) { p.Topic = "a\x00" }, mal},
		{"payload format 2", func(p *packet.Publish) { p.Props.PayloadFormat = 2 }, pro},
		{"content type not UTF-8", func(p *packet.Publish) { p.Props.ContentType = "\xff" }, mal},
		{"user property too long", func(p *packet.Publish) {
			p.Props.User = []packet.UserProperty{{Key: strings.Repeat("k", 65536)}}
		}, mal},
	}
	for _, tc := range cases {
		p := good()
		tc.edit(p)
		_, want := p.AppendTo(nil, packet.V5)
		f, err := frameOf(t, p)
		if err == nil {
			_, err = f.AppendTo(nil, packet.V5)
		}
		var a, b *packet.Error
		if !errors.As(err, &a) || !errors.As(want, &b) || a.Code != tc.code || b.Code != tc.code {
			t.Errorf("%s: frame %v, Publish %v, want code %v from both", tc.name, err, want, tc.code)
		}
	}
}

func TestPublishSharedIsIndependent(t *testing.T) {
	props := packet.Properties{ContentType: "text/plain", User: []packet.UserProperty{{Key: "k", Value: "v"}}}
	sh, err := packet.NewPublishShared("a/b", &props)
	if err != nil {
		t.Fatal(err)
	}
	f := packet.PublishFrame{Shared: &sh, Payload: []byte("x")}
	before, _ := f.AppendTo(nil, packet.V5)
	props.ContentType = "changed"
	props.User[0].Key = "z"
	after, _ := f.AppendTo(nil, packet.V5)
	if !bytes.Equal(before, after) {
		t.Fatalf("frame changed with the properties: %x then %x", before, after)
	}
	if sh.Topic() != "a/b" {
		t.Fatalf("Topic() = %q", sh.Topic())
	}
	if _, err := (&packet.PublishFrame{}).AppendTo(nil, packet.V5); err == nil {
		t.Fatal("a frame without a shared part encoded")
	}
}

func TestPublishSharedAllocations(t *testing.T) {
	var props packet.Properties
	props.MessageExpiry = 10
	props.SubscriptionIDs = []uint32{3}
	props.TopicAlias = 2
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := packet.NewPublishShared("a/b", &props); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("NewPublishShared without shared properties: %v allocations, want 0", allocs)
	}
}
