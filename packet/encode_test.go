package packet_test

// Encoders validate what they write: each case must fail with the reason
// code the decoder would give the bytes, and must leave dst as it was.

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/packet"
)

func TestEncodeRejects(t *testing.T) {
	long := strings.Repeat("a", 65536)
	bad := "a\xED\xA0\x80" // surrogate
	const (
		mal = packet.MalformedPacket
		pro = packet.ProtocolError
	)
	v3, v5 := packet.V311, packet.V5
	one := []packet.Subscription{{Filter: "a"}}
	withSet := func(f func(p *packet.Properties), ids ...packet.PropID) packet.Properties {
		var p packet.Properties
		f(&p)
		for _, id := range ids {
			p.Set(id)
		}
		return p
	}
	nothing := func(*packet.Properties) {}
	cases := []struct {
		name string
		p    packet.Packet
		v    packet.Version
		code packet.ReasonCode // 0: ErrUnsupportedVersion
	}{
		// PUBLISH
		{"publish/qos-3", &packet.Publish{QoS: 3, Topic: "t", PacketID: 1}, v5, mal},
		{"publish/qos1-packet-id-0", &packet.Publish{QoS: 1, Topic: "t"}, v5, pro},
		{"publish/qos2-packet-id-0-v311", &packet.Publish{QoS: 2, Topic: "t"}, v3, pro},
		{"publish/qos0-packet-id", &packet.Publish{Topic: "t", PacketID: 1}, v5, pro},
		{"publish/dup-qos0", &packet.Publish{Dup: true, Topic: "t"}, v3, mal},
		{"publish/topic-65536", &packet.Publish{Topic: long}, v5, mal},
		{"publish/topic-invalid-utf8", &packet.Publish{Topic: bad}, v3, mal},
		{"publish/topic-nul", &packet.Publish{Topic: "a\x00"}, v5, mal},
		{"publish/empty-topic-v311", &packet.Publish{}, v3, pro},
		{"publish/empty-topic-no-alias", &packet.Publish{}, v5, pro},
		{"publish/topic-alias-0", &packet.Publish{Topic: "t", Props: withSet(nothing, packet.PropTopicAlias)}, v5, packet.TopicAliasInvalid},
		{"publish/subscription-id-0", &packet.Publish{Topic: "t", Props: packet.Properties{SubscriptionIDs: []uint32{1, 0}}}, v5, pro},
		{"publish/subscription-id-too-big", &packet.Publish{Topic: "t", Props: packet.Properties{SubscriptionIDs: []uint32{1 << 28}}}, v5, pro},
		{"publish/payload-format-2", &packet.Publish{Topic: "t", Props: packet.Properties{PayloadFormat: 2}}, v5, pro},
		{"publish/correlation-data-65536", &packet.Publish{Topic: "t", Props: packet.Properties{CorrelationData: make([]byte, 65536)}}, v5, mal},
		{"publish/user-key-invalid", &packet.Publish{Topic: "t", Props: packet.Properties{User: []packet.UserProperty{{Key: bad}}}}, v5, mal},
		{"publish/user-value-nul", &packet.Publish{Topic: "t", Props: packet.Properties{User: []packet.UserProperty{{Key: "k", Value: "\x00"}}}}, v5, mal},
		{"publish/response-topic-65536", &packet.Publish{Topic: "t", Props: packet.Properties{ResponseTopic: long}}, v5, mal},
		{"publish/version-3", &packet.Publish{Topic: "t"}, 3, 0},
		// CONNECT
		{"connect/v311-password-without-username", &packet.Connect{Version: v3, Password: []byte("p")}, v3, mal},
		{"connect/will-qos-3", &packet.Connect{Version: v5, Will: &packet.Will{QoS: 3, Topic: "w"}}, v5, mal},
		{"connect/will-topic-invalid", &packet.Connect{Version: v5, Will: &packet.Will{Topic: bad}}, v5, mal},
		{"connect/will-payload-65536", &packet.Connect{Version: v5, Will: &packet.Will{Topic: "w", Payload: make([]byte, 65536)}}, v5, mal},
		{"connect/client-id-65536", &packet.Connect{Version: v5, ClientID: long}, v5, mal},
		{"connect/client-id-invalid", &packet.Connect{Version: v3, ClientID: bad}, v3, mal},
		{"connect/username-invalid", &packet.Connect{Version: v5, Username: bad}, v5, mal},
		{"connect/password-65536", &packet.Connect{Version: v5, Password: make([]byte, 65536)}, v5, mal},
		{"connect/protocol-name-invalid", &packet.Connect{Version: v5, ProtocolName: bad}, v5, mal},
		{"connect/receive-maximum-0", &packet.Connect{Version: v5, Props: withSet(nothing, packet.PropReceiveMaximum)}, v5, pro},
		{"connect/maximum-packet-size-0", &packet.Connect{Version: v5, Props: withSet(nothing, packet.PropMaximumPacketSize)}, v5, pro},
		{"connect/request-problem-info-2", &packet.Connect{Version: v5, Props: packet.Properties{RequestProblemInfo: 2}}, v5, pro},
		{"connect/will-payload-format-3", &packet.Connect{Version: v5, Will: &packet.Will{Topic: "w", Props: packet.Properties{PayloadFormat: 3}}}, v5, pro},
		{"connect/version-6", &packet.Connect{Version: 6}, v5, 0},
		{"connect/version-0-and-3", &packet.Connect{}, 3, 0},
		// CONNACK
		{"connack/v311-return-code-0x87", &packet.Connack{ReasonCode: packet.NotAuthorized}, v3, mal},
		{"connack/v5-reason-0x01", &packet.Connack{ReasonCode: 1}, v5, mal},
		{"connack/v5-reason-0x8e", &packet.Connack{ReasonCode: packet.SessionTakenOver}, v5, mal},
		{"connack/maximum-qos-2", &packet.Connack{Props: packet.Properties{MaximumQoS: 2}}, v5, pro},
		{"connack/retain-available-2", &packet.Connack{Props: packet.Properties{RetainAvailable: 2}}, v5, pro},
		{"connack/receive-maximum-0", &packet.Connack{Props: withSet(nothing, packet.PropReceiveMaximum)}, v5, pro},
		{"connack/assigned-client-id-invalid", &packet.Connack{Props: packet.Properties{AssignedClientID: bad}}, v5, mal},
		{"connack/version-3", &packet.Connack{}, 3, 0},
		// Acknowledgements
		{"puback/packet-id-0-v311", &packet.Puback{}, v3, pro},
		{"puback/packet-id-0-v5", &packet.Puback{}, v5, pro},
		{"pubrec/packet-id-0-v311", &packet.Pubrec{}, v3, pro},
		{"pubrel/packet-id-0-v311", &packet.Pubrel{}, v3, pro},
		{"pubcomp/packet-id-0-v5", &packet.Pubcomp{}, v5, pro},
		{"puback/reason-0x92", &packet.Puback{PacketID: 1, ReasonCode: packet.PacketIdentifierNotFound}, v5, mal},
		{"pubrel/reason-0x10", &packet.Pubrel{PacketID: 1, ReasonCode: packet.NoMatchingSubscribers}, v5, mal},
		{"pubcomp/reason-string-invalid", &packet.Pubcomp{PacketID: 1, Props: packet.Properties{ReasonString: bad}}, v5, mal},
		{"puback/version-3", &packet.Puback{PacketID: 1}, 3, 0},
		// SUBSCRIBE, SUBACK
		{"subscribe/packet-id-0", &packet.Subscribe{Subscriptions: one}, v5, pro},
		{"subscribe/no-filters", &packet.Subscribe{PacketID: 1}, v3, pro},
		{"subscribe/filter-invalid", &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: bad}}}, v5, mal},
		{"subscribe/filter-65536", &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: long}}}, v3, mal},
		{"subscribe/qos-3-v311", &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a", QoS: 3}}}, v3, mal},
		{"subscribe/qos-3-v5", &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a", QoS: 3}}}, v5, pro},
		{"subscribe/retain-handling-3", &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a", RetainHandling: 3}}}, v5, pro},
		{"subscribe/two-subscription-ids", &packet.Subscribe{PacketID: 1, Subscriptions: one, Props: packet.Properties{SubscriptionIDs: []uint32{1, 2}}}, v5, pro},
		{"subscribe/subscription-id-0", &packet.Subscribe{PacketID: 1, Subscriptions: one, Props: packet.Properties{SubscriptionIDs: []uint32{0}}}, v5, pro},
		{"subscribe/version-3", &packet.Subscribe{PacketID: 1, Subscriptions: one}, 3, 0},
		{"suback/packet-id-0", &packet.Suback{ReasonCodes: []packet.ReasonCode{0}}, v3, pro},
		{"suback/no-codes-v311", &packet.Suback{PacketID: 1}, v3, pro},
		{"suback/no-codes-v5", &packet.Suback{PacketID: 1}, v5, pro},
		{"suback/v311-code-0x87", &packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{packet.NotAuthorized}}, v3, mal},
		{"suback/v5-code-0x03", &packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{3}}, v5, mal},
		// UNSUBSCRIBE, UNSUBACK
		{"unsubscribe/packet-id-0", &packet.Unsubscribe{Filters: []string{"a"}}, v3, pro},
		{"unsubscribe/no-filters", &packet.Unsubscribe{PacketID: 1}, v5, pro},
		{"unsubscribe/filter-invalid", &packet.Unsubscribe{PacketID: 1, Filters: []string{"a", bad}}, v5, mal},
		{"unsuback/packet-id-0", &packet.Unsuback{}, v3, pro},
		{"unsuback/no-codes-v5", &packet.Unsuback{PacketID: 1}, v5, pro},
		{"unsuback/code-0x02", &packet.Unsuback{PacketID: 1, ReasonCodes: []packet.ReasonCode{2}}, v5, mal},
		// DISCONNECT, AUTH
		{"disconnect/reason-0x01", &packet.Disconnect{ReasonCode: 1}, v5, mal},
		{"disconnect/reason-0x84", &packet.Disconnect{ReasonCode: packet.UnsupportedProtocolVersion}, v5, mal},
		{"disconnect/server-reference-invalid", &packet.Disconnect{Props: packet.Properties{ServerReference: bad}}, v5, mal},
		{"disconnect/version-3", &packet.Disconnect{}, 3, 0},
		{"auth/in-v311", &packet.Auth{}, v3, mal},
		{"auth/reason-0x01", &packet.Auth{ReasonCode: 1}, v5, mal},
		{"auth/method-invalid", &packet.Auth{ReasonCode: packet.ContinueAuthentication, Props: packet.Properties{AuthMethod: bad}}, v5, mal},
		{"auth/version-3", &packet.Auth{}, 3, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefix := []byte("prefix")
			out, err := c.p.AppendTo(prefix, c.v)
			if err == nil {
				t.Fatalf("AppendTo succeeded: % x", out)
			}
			if !bytes.Equal(out, []byte("prefix")) {
				t.Errorf("dst changed on error: % x", out)
			}
			switch c.code {
			case 0:
				if !errors.Is(err, packet.ErrUnsupportedVersion) {
					t.Fatalf("%v, want ErrUnsupportedVersion", err)
				}
			default:
				var perr *packet.Error
				if !errors.As(err, &perr) || perr.Code != c.code || packet.CodeOf(err) != c.code {
					t.Fatalf("%v (code %#02x), want code %#02x", err, byte(packet.CodeOf(err)), byte(c.code))
				}
				if perr.Type != c.p.Type() {
					t.Errorf("Error.Type = %v, want %v", perr.Type, c.p.Type())
				}
			}
		})
	}
}

// TestEncodeAccepts covers the edges just inside what encoders refuse.
func TestEncodeAccepts(t *testing.T) {
	max := strings.Repeat("a", 65535)
	cases := []struct {
		name string
		p    packet.Packet
		v    packet.Version
	}{
		{"publish/topic-65535", &packet.Publish{Topic: max}, packet.V5},
		{"publish/empty-topic-with-alias", &packet.Publish{Props: packet.Properties{TopicAlias: 1}}, packet.V5},
		{"publish/subscription-id-max", &packet.Publish{Topic: "t", Props: packet.Properties{SubscriptionIDs: []uint32{packet.MaxVarint, 1}}}, packet.V5},
		{"publish/v311-drops-properties", &packet.Publish{Topic: "t", Props: packet.Properties{PayloadFormat: 1}}, packet.V311},
		{"subscribe/one-subscription-id", &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a"}}, Props: packet.Properties{SubscriptionIDs: []uint32{9}}}, packet.V5},
		{"subscribe/v311-ignores-v5-options", &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a", NoLocal: true, RetainHandling: 3}}}, packet.V311},
		{"connect/v5-password-without-username", &packet.Connect{Version: packet.V5, Password: []byte{}}, packet.V5},
		{"connack/v311-code-5", &packet.Connack{ReasonCode: packet.V3NotAuthorized}, packet.V311},
		{"suback/v311-failure", &packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{packet.V3SubackFailure}}, packet.V311},
		{"unsuback/v311-no-codes", &packet.Unsuback{PacketID: 1}, packet.V311},
		{"disconnect/v311-drops-reason", &packet.Disconnect{ReasonCode: packet.ServerShuttingDown}, packet.V311},
		{"pingreq", &packet.Pingreq{}, packet.V5},
	}
	for _, c := range cases {
		out, err := c.p.AppendTo(nil, c.v)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		h, body, err := catSplit(out)
		if err != nil {
			t.Errorf("%s: % x: %v", c.name, out, err)
			continue
		}
		if _, err := packet.Decode(h, body, c.v); err != nil {
			t.Errorf("%s: encoded % x does not decode: %v", c.name, out, err)
		}
	}
	// 3.1.1 DISCONNECT is always two bytes.
	if out, _ := (&packet.Disconnect{ReasonCode: packet.ServerShuttingDown}).AppendTo(nil, packet.V311); !bytes.Equal(out, []byte{0xE0, 0}) {
		t.Errorf("v311 DISCONNECT = % x", out)
	}
}
