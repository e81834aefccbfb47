package client

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mqtt5go/mqtt5/packet"
)

var versions = []packet.Version{packet.V5, packet.V311}

func TestConnectDisconnect(t *testing.T) {
	b := startBroker(t)
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			disc := make(chan DisconnectInfo, 1)
			conn := make(chan *ConnectInfo, 1)
			c, err := New(Options{
				Server: b.url(), ClientID: "cd-" + v.String(), Version: v,
				OnConnect:    func(i *ConnectInfo) { conn <- i },
				OnDisconnect: func(i DisconnectInfo) { disc <- i },
			})
			if err != nil {
				t.Fatal(err)
			}
			info, err := c.Connect(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if info.Version != v || info.SessionPresent || info.ClientID != "cd-"+v.String() {
				t.Errorf("connect info %+v", info)
			}
			if !c.IsConnected() {
				t.Error("not connected")
			}
			if got := recv(t, conn, "OnConnect"); got != info {
				t.Error("OnConnect got another info")
			}
			if err := c.Disconnect(testCtx(t), packet.NormalDisconnection, KeepSessionExpiry); err != nil {
				t.Fatal(err)
			}
			if d := recv(t, disc, "OnDisconnect"); d.Err != nil || d.Reconnecting {
				t.Errorf("disconnect info %+v", d)
			}
			<-c.Done()
			if c.Err() != nil || c.IsConnected() {
				t.Errorf("after disconnect: err %v connected %v", c.Err(), c.IsConnected())
			}
			if err := c.Publish(testCtx(t), &Message{Topic: "x"}); err == nil {
				t.Error("publish after disconnect succeeded")
			}
		})
	}
}

func TestPubSubRoundTrip(t *testing.T) {
	b := startBroker(t)
	for _, v := range versions {
		for qos := byte(0); qos <= 2; qos++ {
			t.Run(fmt.Sprintf("%v/qos%d", v, qos), func(t *testing.T) {
				got := make(chan *Message, 10)
				sub, _ := connect(t, Options{Server: b.url(), ClientID: fmt.Sprintf("sub-%v-%d", v, qos), Version: v})
				pub, _ := connect(t, Options{Server: b.url(), ClientID: fmt.Sprintf("pub-%v-%d", v, qos), Version: v})
				tp := fmt.Sprintf("rt/%v/%d", v, qos)
				res, err := sub.Subscribe(testCtx(t), []Subscription{{Filter: tp, QoS: qos}}, func(m *Message) { got <- m })
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Codes) != 1 || res.Codes[0] != packet.ReasonCode(qos) || res.PacketID == 0 {
					t.Fatalf("suback %+v", res)
				}
				m := &Message{Topic: tp, QoS: qos, Payload: []byte("hello")}
				if v == packet.V5 {
					m.ContentType = "text/plain"
					m.PayloadFormat = 1
					m.ResponseTopic = "reply/here"
					m.CorrelationData = []byte{1, 2, 3}
					m.MessageExpiry = 3600
					m.User = []packet.UserProperty{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}}
				}
				if err := pub.Publish(testCtx(t), m); err != nil {
					t.Fatal(err)
				}
				r := recv(t, got, "message")
				if r.Topic != tp || !bytes.Equal(r.Payload, m.Payload) || r.QoS != qos {
					t.Fatalf("got %+v", r)
				}
				if qos > 0 && r.PacketID == 0 {
					t.Error("no packet id")
				}
				if v == packet.V5 {
					if r.ContentType != m.ContentType || r.PayloadFormat != 1 || r.ResponseTopic != m.ResponseTopic ||
						!bytes.Equal(r.CorrelationData, m.CorrelationData) || r.MessageExpiry == 0 || r.MessageExpiry > 3600 ||
						len(r.User) != 2 || r.User[1].Value != "v2" {
						t.Errorf("properties lost: %+v", r)
					}
				}
			})
		}
	}
}
