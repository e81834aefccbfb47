package store

import (
	"context"
	"errors"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// Message is a stored application message.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retain   bool
	Props    packet.Properties // message properties only (see broker.Message)
	ClientID string            // publisher, for No Local
	Created  time.Time         // wall clock; Message Expiry counts from it
}

// Subscription is one subscription of a session with every option.
type Subscription struct {
	Filter            string // full filter, "$share/g/..." included
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	SubID             uint32
}

// Will is a will waiting to be published: its deadline is the session's
// DisconnectedAt plus min(Delay, session expiry).
type Will struct {
	Message Message
	Delay   uint32 // seconds
}

// Session is the durable part of a session's state.
type Session struct {
	ClientID       string
	Username       string
	Version        byte   // protocol level of the last connection
	Expiry         uint32 // Session Expiry Interval, seconds; 0xFFFFFFFF never
	DisconnectedAt time.Time
	Subscriptions  []Subscription
	Will           *Will    // pending will, nil if none
	InboundQoS2    []uint16 // QoS 2 packet identifiers received, PUBREL not yet
	// LastPayloads is the change-only delivery state: per topic, a hash of
	// the last payload delivered, least recently used first.
	LastPayloads []PayloadHash
}

// PayloadHash is the 64-bit hash of the last payload delivered on Topic.
type PayloadHash struct {
	Topic string
	Hash  uint64
}

// Entry is one message on its way to a session: queued (PacketID 0) or in
// flight (sent, not completely acknowledged).
type Entry struct {
	ClientID string
	Seq      uint64 // order within the session, assigned by the broker
	Msg      Message
	QoS      byte
	Retain   bool
	SubIDs   []uint32
	Group    string // shared subscription "$share/g/filter" it came through, "" if none
	PacketID uint16 // non-zero once sent
	Released bool   // QoS 2: PUBREC received, PUBREL sent
}

// OpKind says what an Op does.
type OpKind uint8

// Operation kinds.
const (
	PutSession     OpKind = iota + 1 // Session: create or replace
	DeleteSession                    // ClientID: the session, its entries
	PutEntry                         // Entry: create or replace (ClientID, Seq)
	DeleteEntry                      // ClientID, Seq
	PutRetained                      // Retained: create or replace by topic
	DeleteRetained                   // Topic
)

// Op is one change to the stored state.
type Op struct {
	Kind     OpKind
	ClientID string
	Seq      uint64
	Topic    string
	Session  *Session
	Entry    *Entry
	Retained *Message
}

// Snapshot is everything a store holds, as read at start-up.
type Snapshot struct {
	Sessions []Session
	Entries  []Entry // ordered by ClientID, then Seq
	Retained []Message
	// Quarantined counts records that failed their checksum or could not be
	// decoded; they were set aside, logged and skipped.
	Quarantined int
}

// Store keeps the broker's durable state. Implementations are safe for
// concurrent use. Apply is atomic: all of ops or none; when it returns nil,
// the ops are durable (fsync'd for on-disk stores).
type Store interface {
	Apply(ctx context.Context, ops []Op) error
	Load(ctx context.Context) (*Snapshot, error)
	Close() error
}

// ErrClosed is returned by a closed store or committer.
var ErrClosed = errors.New("store: closed")
