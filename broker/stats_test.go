package broker

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// encodedSize is the size of p on the wire.
func encodedSize(t *testing.T, p packet.Packet, v packet.Version) int64 {
	t.Helper()
	b, err := p.AppendTo(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(b))
}

// MessagesSent counts every packet the broker sends, not only PUBLISH, and
// PUBLISH is also counted by QoS with its encoded size.
func TestStatsPacketsSent(t *testing.T) {
	b := newTestBroker(t, Config{})
	before := b.Stats()
	if before.MessagesSent != 0 || before.PublishSent != 0 {
		t.Fatalf("fresh broker: %+v", before)
	}
	sub := dial(t, b, packet.V5, "sub")                                                   // CONNACK
	sub.subscribe(1, packet.Subscription{Filter: "t/#", QoS: 2})                          // SUBACK
	pub := dial(t, b, packet.V5, "pub")                                                   // CONNACK
	pub.publish(&packet.Publish{Topic: "t/0", Payload: []byte("zero")})                   // nothing back
	pub.publish(&packet.Publish{Topic: "t/1", QoS: 1, PacketID: 1, Payload: []byte("a")}) // PUBACK
	pub.publish(&packet.Publish{Topic: "t/2", QoS: 2, PacketID: 2, Payload: []byte("b")}) // PUBREC, PUBCOMP
	pub.sync()                                                                            // PINGRESP
	var pubBytes [3]int64
	for range 3 {
		p := recvAs[*packet.Publish](sub)
		cp := *p
		pubBytes[p.QoS] += encodedSize(t, &cp, packet.V5)
		switch p.QoS {
		case 1:
			sub.send(&packet.Puback{PacketID: p.PacketID})
		case 2:
			sub.send(&packet.Pubrec{PacketID: p.PacketID})
			recvAs[*packet.Pubrel](sub) // PUBREL
			sub.send(&packet.Pubcomp{PacketID: p.PacketID})
		}
	}
	sub.sync() // PINGRESP

	// A refused CONNECT is answered before a session exists.
	bad := newTClient(t, b, packet.V5)
	if ack := bad.connectRaw(&packet.Connect{ClientID: "bad", Props: packet.Properties{AuthMethod: "nope"}}); ack.ReasonCode != packet.BadAuthenticationMethod {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}

	st := b.Stats()
	// CONNACK ×3, SUBACK, PUBACK, PUBREC, PUBCOMP, PINGRESP ×2, PUBREL,
	// and the three PUBLISH.
	if want := int64(3 + 1 + 1 + 2 + 2 + 1 + 3); st.MessagesSent != want {
		t.Errorf("MessagesSent = %d, want %d", st.MessagesSent, want)
	}
	if st.PublishSent != 3 || st.PublishSentByQoS != [3]int64{1, 1, 1} {
		t.Errorf("PublishSent = %d, by QoS %v, want 3 and [1 1 1]", st.PublishSent, st.PublishSentByQoS)
	}
	if st.PublishBytesSentByQoS != pubBytes {
		t.Errorf("PublishBytesSentByQoS = %v, want %v", st.PublishBytesSentByQoS, pubBytes)
	}
	if st.BytesSent < pubBytes[0]+pubBytes[1]+pubBytes[2] {
		t.Errorf("BytesSent = %d, less than the PUBLISH bytes %v", st.BytesSent, pubBytes)
	}
}

// QueueStats adds up the queues of connected and offline sessions, the
// in-flight windows and the deepest queue.
func TestQueueStats(t *testing.T) {
	b := newTestBroker(t, Config{Capabilities: Capabilities{ReceiveMaximum: 100}})
	if qs := b.QueueStats(); qs != (QueueStats{}) {
		t.Fatalf("empty broker: %+v", qs)
	}
	// An offline persistent session with queued messages.
	off := newTClient(t, b, packet.V5)
	off.connect(persistentConnect("off", true))
	off.subscribe(1, packet.Subscription{Filter: "q/#", QoS: 1})
	off.disconnect()
	// A connected session with a Receive Maximum of 2: two messages in
	// flight, the others queued.
	on := newTClient(t, b, packet.V5)
	cp := persistentConnect("on", true)
	cp.Props.ReceiveMaximum = 2
	on.connect(cp)
	on.subscribe(1, packet.Subscription{Filter: "q/on", QoS: 1})

	pub := dial(t, b, packet.V5, "pub")
	const n = 5
	msg := &Message{Topic: "q/on", Payload: []byte("payload")}
	for i := range n {
		pub.publish(&packet.Publish{Topic: "q/on", QoS: 1, PacketID: uint16(i + 1), Payload: []byte("payload")})
	}
	pub.publish(&packet.Publish{Topic: "q/off", QoS: 1, PacketID: 100, Payload: []byte("payload")})
	for range 2 {
		recvAs[*packet.Publish](on) // not acknowledged: in flight
	}
	size, offSize := msg.size(), (&Message{Topic: "q/off", Payload: []byte("payload")}).size()
	want := QueueStats{
		Connected:   QueueDepth{Messages: n - 2, Bytes: (n - 2) * size},
		Offline:     QueueDepth{Messages: n + 1, Bytes: n*size + offSize},
		Inflight:    2,
		MaxMessages: n + 1,
		MaxBytes:    n*size + offSize,
	}
	if qs := b.QueueStats(); qs != want {
		t.Fatalf("QueueStats = %+v, want %+v", qs, want)
	}
}

// recordingObserver records ObserveCommit calls.
type recordingObserver struct {
	mu    sync.Mutex
	calls int
	ops   int
	fails int
	neg   bool
}

func (r *recordingObserver) ObserveCommit(d time.Duration, ops int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.ops += ops
	if err != nil {
		r.fails++
	}
	if d < 0 {
		r.neg = true
	}
}

func (r *recordingObserver) get() (calls, ops, fails int, neg bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, r.ops, r.fails, r.neg
}

// Config.CommitObserver sees each group commit, failed ones included.
func TestCommitObserver(t *testing.T) {
	g := newGateStore()
	obs := &recordingObserver{}
	b := newTestBroker(t, Config{Store: g, CommitObserver: obs, Logger: discardLogger()})
	sub := newTClient(t, b, packet.V5)
	sub.connect(persistentConnect("sub", true))
	sub.subscribe(1, packet.Subscription{Filter: "t", QoS: 1})
	pub := dial(t, b, packet.V5, "pub")
	pub.publish(&packet.Publish{Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("x")})
	calls, ops, fails, neg := obs.get()
	if calls == 0 || ops == 0 || fails != 0 || neg {
		t.Fatalf("after a durable publication: %d commits, %d ops, %d failed, negative duration %v", calls, ops, fails, neg)
	}
	g.set(false, errors.New("disk full"))
	pub.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: 2, Payload: []byte("y")})
	if a := recvAs[*packet.Puback](pub); a.ReasonCode != packet.UnspecifiedError {
		t.Fatalf("PUBACK %v, want 0x80 when the store fails", a.ReasonCode)
	}
	if _, _, fails, _ := obs.get(); fails == 0 {
		t.Fatal("failed commit not observed")
	}
	g.set(false, nil)
}
