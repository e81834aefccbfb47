package broker

import (
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

// Message is an application message as the broker routes it. Once handed
// to the router it is immutable and shared by every subscriber it goes to:
// per-subscriber differences (QoS, packet identifier, RETAIN flag,
// Subscription Identifiers, topic alias, protocol version) are applied when
// it is encoded for that subscriber.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Props holds the v5 message properties that travel with the message:
	// Payload Format Indicator, Message Expiry Interval, Content Type,
	// Response Topic, Correlation Data and User Properties. Topic Alias and
	// Subscription Identifiers are per hop and never stored here.
	Props packet.Properties

	// ClientID is the publisher's client identifier ("" for messages the
	// broker or the host program publishes). It drives No Local.
	ClientID string
	// Created is when the broker received the message; Message Expiry is
	// counted from it.
	Created time.Time

	// wire is the *wireForm of a message with shared properties, built
	// when it enters routing (see prepareWire). A copy of a Message carries
	// its original's pointer, which the owner check then ignores.
	wire unsafe.Pointer
}

// wireForm caches what every encoded copy of a message shares: the
// topic name and the travelling properties, validated and encoded once
// (packet.PublishShared), so that a delivery to each subscriber only adds
// its own fields.
type wireForm struct {
	owner  *Message
	shared packet.PublishShared
	err    error
}

// prepareWire builds the shared wire form of a message with shared
// properties. It is called where a message enters routing (Broker.publish)
// or comes back from the store, before another goroutine can see it; m.wire
// does not change afterwards, so copies of a routed Message never race with
// it. A copy of an earlier message (its wire form owned by the original)
// gets its own.
func (m *Message) prepareWire() {
	w := (*wireForm)(atomic.LoadPointer(&m.wire))
	if w != nil && w.owner == m {
		return
	}
	var nw *wireForm
	if m.hasSharedProps() {
		nw = &wireForm{owner: m}
		nw.shared, nw.err = packet.NewPublishShared(m.Topic, &m.Props)
	}
	atomic.CompareAndSwapPointer(&m.wire, unsafe.Pointer(w), unsafe.Pointer(nw))
}

// shared returns the part every encoded copy of m shares: the one
// prepareWire built, or else one built in *local (without allocating when m
// has no shared properties, the common case).
func (m *Message) shared(local *packet.PublishShared) (*packet.PublishShared, error) {
	if w := (*wireForm)(atomic.LoadPointer(&m.wire)); w != nil && w.owner == m {
		return &w.shared, w.err
	}
	var err error
	*local, err = packet.NewPublishShared(m.Topic, &m.Props)
	return local, err
}

// hasSharedProps reports whether m has a property every copy carries
// unchanged (all but the Message Expiry Interval).
func (m *Message) hasSharedProps() bool {
	p := &m.Props
	return p.Has(packet.PropPayloadFormat) || p.Has(packet.PropContentType) || p.Has(packet.PropResponseTopic) ||
		p.Has(packet.PropCorrelationData) || p.Has(packet.PropUser)
}

// messageProps are the properties a Message keeps (section 3.3.2.3).
var messageProps = [...]packet.PropID{
	packet.PropPayloadFormat, packet.PropMessageExpiry, packet.PropContentType,
	packet.PropResponseTopic, packet.PropCorrelationData, packet.PropUser,
}

// keepMessageProps returns only the properties that are forwarded with the
// message, dropping Topic Alias and Subscription Identifiers.
func keepMessageProps(p *packet.Properties) packet.Properties {
	var out packet.Properties
	for _, id := range messageProps {
		if p.Has(id) {
			out.Set(id)
		}
	}
	out.PayloadFormat = p.PayloadFormat
	out.MessageExpiry = p.MessageExpiry
	out.ContentType = p.ContentType
	out.ResponseTopic = p.ResponseTopic
	out.CorrelationData = p.CorrelationData
	out.User = p.User
	return out
}

// size is the number of bytes the message accounts for in queues.
func (m *Message) size() int64 {
	n := int64(len(m.Topic) + len(m.Payload) + len(m.Props.ContentType) +
		len(m.Props.ResponseTopic) + len(m.Props.CorrelationData))
	for _, u := range m.Props.User {
		n += int64(len(u.Key) + len(u.Value))
	}
	return n
}

// hasExpiry reports whether the message carries a Message Expiry Interval.
func (m *Message) hasExpiry() bool { return m.Props.Has(packet.PropMessageExpiry) }

// remaining returns the whole seconds left before the message expires at
// now, and false once it has expired [MQTT-3.3.2-5]. Messages without an
// expiry never expire.
func (m *Message) remaining(now time.Time) (uint32, bool) {
	if !m.hasExpiry() {
		return 0, true
	}
	elapsed := now.Sub(m.Created)
	total := time.Duration(m.Props.MessageExpiry) * time.Second
	if elapsed >= total {
		return 0, false
	}
	// [MQTT-3.3.2-6] the forwarded value is the received value minus the
	// time the message has waited in the server, rounded up so a message
	// that has not expired is never sent with 0.
	left := total - elapsed
	secs := uint32((left + time.Second - 1) / time.Second)
	return secs, true
}

// delivery is one message on its way to one session.
type delivery struct {
	seq    uint64 // order within the session; the store key of the entry
	msg    *Message
	qos    byte   // min(message QoS, granted QoS)
	retain bool   // RETAIN flag to send
	subIDs subIDs // Subscription Identifiers of the matching subscriptions
	group  *topic.SharedGroup[*session, subOpts]
	// gate, when set, holds the delivery until the publication's store
	// commit is done (true while pending).
	gate *atomic.Bool
}

// subIDs holds the Subscription Identifiers of a delivery; the common case
// (none or one) needs no allocation.
type subIDs struct {
	first uint32
	more  []uint32
}

func (s *subIDs) add(id uint32) {
	if id == 0 {
		return
	}
	if s.first == 0 {
		s.first = id
		return
	}
	if s.first == id {
		return
	}
	for _, v := range s.more {
		if v == id {
			return
		}
	}
	s.more = append(s.more, id)
}

// appendTo appends the identifiers to dst.
func (s *subIDs) appendTo(dst []uint32) []uint32 {
	if s.first != 0 {
		dst = append(dst, s.first)
	}
	return append(dst, s.more...)
}
