package client

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/mqtt5go/mqtt5/packet"
)

// Message is an application message, published or received, with its v5
// properties (ignored for 3.1.1).
//
// A published Message is not copied: Payload, CorrelationData and User must
// not be modified until the publish completes.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool

	PayloadFormat   byte   // Payload Format Indicator: 1 means UTF-8
	MessageExpiry   uint32 // Message Expiry Interval in seconds; 0 none
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	User            []packet.UserProperty

	// TopicAlias, on a published message, sends this alias explicitly
	// (it must not exceed the server's Topic Alias Maximum). Usually left
	// 0 with Options.TopicAliases doing it automatically. On a received
	// message it is the alias the server used, already resolved into Topic.
	TopicAlias uint16

	// Received messages only.
	Dup             bool
	PacketID        uint16
	SubscriptionIDs []uint32

	ack *ackRef
}

// ackRef ties a received QoS 1/2 message to the session entry waiting for
// its acknowledgement.
type ackRef struct {
	c       *Client
	ent     *inEntry
	decided atomic.Bool
	fn      func(packet.ReasonCode) error // mocks (NewTestMessage)
}

// Ack acknowledges a received QoS 1 or 2 message: the client sends PUBACK
// (QoS 1) or PUBREC (QoS 2), in the order the messages were received
// [MQTT-4.6.0-2] [MQTT-4.6.0-3] — an unacknowledged message holds back the
// acknowledgements of the messages received after it. Each unacknowledged
// message holds one slot of the Receive Maximum the client announced, so
// the server stops sending QoS 1/2 messages once ReceiveMaximum of them
// wait.
//
// With automatic acknowledgement (the default) Ack is optional: the
// client acknowledges when the handlers return. Ack on a QoS 0 message does
// nothing. A second Ack or Reject returns ErrAlreadyAcknowledged.
//
// If the connection is lost before the acknowledgement is sent: a QoS 1
// message is forgotten (the server re-sends it with DUP set on the resumed
// session, and it is delivered again) and a later Ack does nothing; a QoS 2
// message is remembered while the session lasts, is not delivered again
// when the server re-sends it, and the decision taken by Ack or Reject is
// sent on the new connection. If the session is lost, both are forgotten.
//
// If the Client ends before the decision (Disconnect, or reconnection gave
// up), a QoS 2 message stays recorded in the Store: a Client resuming the
// session from that store answers the re-sent PUBLISH with PUBREC (Success)
// and does not deliver it again [MQTT-4.3.3-10]. The decision is lost, not
// the exactly-once delivery. A QoS 1 message is delivered again.
func (m *Message) Ack() error { return m.decide(packet.Success) }

// Reject acknowledges a received QoS 1 or 2 message with an error reason
// code (0x80 or above: UnspecifiedError, ImplementationSpecificError,
// NotAuthorized, TopicNameInvalid, QuotaExceeded, PayloadFormatInvalid):
// the server then discards the message [MQTT-4.8.2-6]. 3.1.1 has no
// negative acknowledgement: there Reject acknowledges normally.
func (m *Message) Reject(code packet.ReasonCode) error {
	if !code.IsError() || !code.ValidFor(packet.PUBACK) {
		return localError("ack", packet.ProtocolError, "Reject needs a PUBACK/PUBREC error reason code")
	}
	return m.decide(code)
}

func (m *Message) decide(code packet.ReasonCode) error {
	a := m.ack
	if a == nil {
		return nil
	}
	if !a.decided.CompareAndSwap(false, true) {
		return ErrAlreadyAcknowledged
	}
	if a.fn != nil {
		return a.fn(code)
	}
	return a.c.sendAck(a.ent, code)
}

// NewTestMessage returns a copy of m whose Ack and Reject call ack with
// the chosen reason code (packet.Success for Ack). It is meant for mocks
// and tests of message handlers.
func NewTestMessage(m Message, ack func(code packet.ReasonCode) error) *Message {
	m.ack = &ackRef{fn: ack}
	return &m
}

// Handler processes a received message. Handlers run on the client's
// dispatch goroutine, one message at a time in arrival order; a long
// handler delays the next messages and, when the dispatch queue fills,
// reading from the network. A handler must not wait for the completion of
// a QoS 1/2 Publish made by itself when the dispatch queue may be full:
// the acknowledgement could be queued behind messages it is holding up
// (use PublishAsync and don't wait, or wait in another goroutine).
type Handler func(*Message)

// toPacket builds the PUBLISH packet of m (packet identifier unset).
func (m *Message) toPacket() packet.Publish {
	p := packet.Publish{
		QoS:     m.QoS,
		Retain:  m.Retain,
		Topic:   m.Topic,
		Payload: m.Payload,
	}
	pr := &p.Props
	pr.PayloadFormat = m.PayloadFormat
	pr.MessageExpiry = m.MessageExpiry
	pr.ContentType = m.ContentType
	pr.ResponseTopic = m.ResponseTopic
	pr.CorrelationData = m.CorrelationData
	pr.User = m.User
	pr.TopicAlias = m.TopicAlias
	return p
}

// messageFrom builds a received Message from p (whose memory it shares).
func messageFrom(p *packet.Publish, topic string) *Message {
	pr := &p.Props
	return &Message{
		Topic:           topic,
		Payload:         p.Payload,
		QoS:             p.QoS,
		Retain:          p.Retain,
		PayloadFormat:   pr.PayloadFormat,
		MessageExpiry:   pr.MessageExpiry,
		ContentType:     pr.ContentType,
		ResponseTopic:   pr.ResponseTopic,
		CorrelationData: pr.CorrelationData,
		User:            pr.User,
		TopicAlias:      pr.TopicAlias,
		Dup:             p.Dup,
		PacketID:        p.PacketID,
		SubscriptionIDs: pr.SubscriptionIDs,
	}
}

// Token tracks an asynchronous publish. It completes when the flow does:
// QoS 0 when the packet is handed to the network writer, QoS 1 on PUBACK,
// QoS 2 on PUBCOMP (or on an error PUBREC), or when the publish fails.
type Token struct {
	mu        sync.Mutex
	done      chan struct{} // made on first use: most tokens complete unobserved
	completed bool
	err       error
	code      packet.ReasonCode
	// cancelled is set by a synchronous Publish whose context ended; a
	// message still queued is then dropped instead of sent.
	cancelled atomic.Bool
}

// closedChan is the Done channel of tokens completed before anyone asked.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// CompletedToken returns a Token that is already complete with err (nil
// for success). It is meant for mocks.
func CompletedToken(err error) *Token {
	t := &Token{}
	t.complete(err, packet.CodeOf(err))
	return t
}

func (t *Token) complete(err error, code packet.ReasonCode) {
	t.mu.Lock()
	if !t.completed {
		t.completed = true
		t.err = err
		t.code = code
		if t.done != nil {
			close(t.done)
		}
	}
	t.mu.Unlock()
}

// Done returns a channel closed when the publish completes.
func (t *Token) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done == nil {
		if t.completed {
			t.done = closedChan
		} else {
			t.done = make(chan struct{})
		}
	}
	return t.done
}

// Err returns the outcome once Done is closed (nil before, and on success).
func (t *Token) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// ReasonCode returns the reason code of the final acknowledgement once
// Done is closed, for example packet.NoMatchingSubscribers (a success).
func (t *Token) ReasonCode() packet.ReasonCode {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.completed {
		return packet.Success
	}
	return t.code
}

// result returns the outcome if complete.
func (t *Token) result() (error, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err, t.completed
}

// Wait waits for completion and returns the outcome, or ctx.Err() if the
// context ends first (the publish itself goes on).
func (t *Token) Wait(ctx context.Context) error {
	if err, ok := t.result(); ok {
		return err
	}
	select {
	case <-t.Done():
		return t.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}
