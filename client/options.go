package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport/mqttquic"
)

// Options configures a Client. The zero value, plus Server, is usable: every
// field has a documented default.
type Options struct {
	// Server is the broker address: a URL with scheme mqtt:// or tcp://
	// (default port 1883), mqtts://, ssl:// or tls:// (8883), ws:// (80),
	// wss:// (443; both with path /mqtt unless the URL has one), quic://
	// (14567), or a bare host:port (TCP).
	Server string

	// ClientID is the client identifier. Empty asks a v5 server to assign
	// one (ConnectInfo.AssignedClientID); the assigned identifier is reused
	// on reconnection so that the session can be resumed.
	ClientID string

	// Version is the protocol level: packet.V5 (the default when zero) or
	// packet.V311.
	Version packet.Version

	// Username and Password authenticate the client. Password is sent when
	// non-nil.
	Username string
	Password []byte

	// CleanStart selects the Clean Start flag of each CONNECT (Clean Session
	// in 3.1.1). The default, CleanStartFirst, starts a new session on the
	// first connection of the Client and resumes it on reconnections.
	CleanStart CleanStartMode

	// SessionExpiry is the Session Expiry Interval in seconds (v5): how long
	// the server keeps the session after the connection closes. 0 (the
	// default) ends the session with the connection; math.MaxUint32 never
	// expires. 3.1.1 has no expiry: there a non-zero value asks for a
	// persistent session (Clean Session 0 when CleanStart allows it) and 0
	// sends Clean Session 1 on every connection.
	SessionExpiry uint32

	// ReceiveMaximum is the number of unacknowledged QoS 1 and 2 messages
	// the server may send us at once (v5). 0 omits the property (65535).
	// With ManualAck, each unacknowledged message holds one of these slots.
	ReceiveMaximum uint16

	// MaximumPacketSize is the largest packet the client accepts (v5, and
	// enforced locally for both versions). 0 omits the property (no limit
	// beyond the protocol's).
	MaximumPacketSize uint32

	// TopicAliasMaximum is the highest inbound Topic Alias the client
	// accepts (v5). 0 (the default) accepts none.
	TopicAliasMaximum uint16

	// RequestResponseInfo asks the server for Response Information (v5).
	RequestResponseInfo bool
	// NoProblemInfo sends Request Problem Information 0 (v5): the server
	// then omits reason strings and user properties on most packets.
	NoProblemInfo bool

	// User holds the User Properties of the CONNECT packet (v5).
	User []packet.UserProperty

	// Will is the Will Message, published by the server when the connection
	// ends without a normal DISCONNECT. Nil means no will.
	Will *Will

	// Auth, when set, performs v5 enhanced authentication (AUTH exchange)
	// at every connection and on Client.Reauthenticate.
	Auth AuthHandler

	// Keepalive configures the keep alive interval and ping timing.
	Keepalive KeepaliveConfig

	// Backoff configures automatic reconnection.
	Backoff Backoff

	// DisableReconnect turns automatic reconnection off: when the
	// connection is lost the Client ends (Done is closed, Err says why).
	DisableReconnect bool

	// ConnectTimeout bounds each connection attempt: dial, CONNECT, the
	// AUTH exchange and CONNACK. Default 30 s.
	ConnectTimeout time.Duration

	// TLSConfig is used for mqtts/ssl/tls, wss and quic (and handed to
	// Dialers). Nil uses the system roots; ServerName defaults to the host
	// of the URL (an IP literal is verified against the certificate's IP
	// addresses). transport.ClientTLS builds one from files or PEM/DER
	// bytes. quic:// verifies certificates like the others; only
	// InsecureSkipVerify turns that off.
	TLSConfig *tls.Config

	// WebSocketHeader is sent with the WebSocket upgrade request of ws://
	// and wss:// connections (for example Authorization for a proxy).
	WebSocketHeader http.Header

	// QUIC configures quic:// connections: ALPN mode, stream strategy,
	// datagrams (see package mqttquic).
	QUIC mqttquic.DialConfig

	// Dialers maps a URL scheme to the Dialer that opens its transport; an
	// entry overrides the built-in one (package transport).
	Dialers map[string]Dialer

	// TopicAliases enables automatic outbound Topic Aliases (v5), bounded
	// by the server's Topic Alias Maximum: the first publishes to a topic
	// carry topic and alias, later ones only the alias. When all aliases are
	// in use the least recently used one is reassigned.
	TopicAliases bool

	// Queue bounds the publishes that are accepted but not yet sent:
	// while disconnected (the offline queue) and while the server's Receive
	// Maximum is exhausted.
	Queue QueueLimits

	// DispatchQueue is the number of received messages that may wait for
	// handlers (default 256). When it is full the client stops reading
	// from the network until handlers catch up (TCP back-pressure); no
	// message is dropped at any QoS.
	DispatchQueue int

	// NoAutoSubscriptionIDs stops the client from giving a Subscription
	// Identifier of its own to each Subscribe call without one (v5, when
	// the server supports them). Those identifiers let the client route
	// each copy of a message to the subscription it was sent for; without
	// them, every message goes to every handler whose filter matches.
	NoAutoSubscriptionIDs bool

	// ManualAck, when true, acknowledges a received QoS 1/2 message only
	// when the application calls Message.Ack or Message.Reject. Otherwise
	// the client acknowledges it when the handlers return.
	ManualAck bool

	// DefaultHandler receives messages that match no subscription handler
	// (for example from a resumed session before resubscribing). Messages
	// with no handler at all are acknowledged and dropped.
	DefaultHandler Handler

	// OnConnect is called after each successful connection (CONNACK).
	OnConnect func(*ConnectInfo)
	// OnDisconnect is called when a connection ends.
	OnDisconnect func(DisconnectInfo)
	// OnReconnecting is called before each reconnection attempt with the
	// attempt number (from 1) and the delay before it.
	OnReconnecting func(attempt int, delay time.Duration)
	// OnError receives errors that no call returns: failed resubscriptions,
	// handler panics, protocol violations by the server.
	OnError func(error)

	// Logger receives debug and error logs. Default: discard.
	Logger *slog.Logger

	// Store holds the session state (in-flight QoS 1/2 messages and
	// received QoS 2 packet identifiers). Default: a new MemoryStore. Share
	// one store between Client values with the same ClientID to resume a
	// session in-process; a FileStore resumes it across process restarts.
	Store SessionStore

	// WriteBuffer is the number of encoded bytes that may wait for the
	// network before publishing blocks (default 1 MiB).
	WriteBuffer int

	// Namespace, when set, checks every topic published to (and the will
	// topic) and every filter subscribed to before anything is sent; a
	// refusal is a *NamespaceError (errors.Is(err, ErrNamespace)). Presets:
	// AWSIoTNamespace, AzureIoTHubNamespace, GenericNamespace.
	Namespace NamespaceValidator

	// Codec, when set, compresses published payloads and decompresses
	// received ones by Content Type (see Codec). MQTT 5 only: New refuses
	// it with 3.1.1 (ErrCodecNeedsV5).
	Codec *Codec
}

// CleanStartMode selects the Clean Start flag of CONNECT.
type CleanStartMode int

const (
	// CleanStartFirst sets Clean Start on the first connection of a
	// Client and clears it on reconnections, so the session survives
	// connection loss (as long as SessionExpiry allows). The default.
	CleanStartFirst CleanStartMode = iota
	// CleanStartAlways sets Clean Start on every connection.
	CleanStartAlways
	// CleanStartNever never sets Clean Start: the first connection resumes
	// the session the server holds for the ClientID.
	CleanStartNever
)

// Will is a Will Message with its v5 properties.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Delay is the Will Delay Interval in seconds (v5): the server waits
	// this long (or until the session ends) before publishing.
	Delay           uint32
	PayloadFormat   byte   // 1: the payload is UTF-8
	MessageExpiry   uint32 // seconds, 0 none
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	User            []packet.UserProperty
}

// KeepaliveConfig configures keep alive. The client sends PINGREQ when it
// has sent nothing, or received nothing, for PingIntervalPercent of the keep
// alive interval, and considers the connection lost when nothing (no
// PINGRESP, no other packet) has been received for TimeoutPercent of it.
// When the server sends Server Keep Alive, that value replaces Interval
// [MQTT-3.1.2-21].
type KeepaliveConfig struct {
	// Interval is the Keep Alive sent in CONNECT, rounded to seconds
	// (at most 65535 s). Default 60 s; negative disables keep alive.
	Interval time.Duration
	// PingIntervalPercent (default 75) and TimeoutPercent (default 150) are
	// percentages of the effective interval.
	PingIntervalPercent int
	TimeoutPercent      int
}

// Backoff configures reconnection delays: attempt n waits
// min(Max, Initial*Factor^(n-1)), of which the fraction Jitter is random
// (the delay is drawn uniformly from [d*(1-Jitter), d]).
type Backoff struct {
	Initial time.Duration // default 1 s
	Max     time.Duration // default 60 s
	Factor  float64       // default 2
	// Jitter is the random fraction of each delay, in [0, 1]. Default 0.5;
	// negative means none.
	Jitter float64
	// MaxAttempts ends the Client after this many failed attempts in a row
	// (0: unlimited).
	MaxAttempts int
}

// QueueLimits bounds the queue of publishes waiting to be sent. While
// disconnected a publish that would exceed either bound fails at once with
// ErrQueueFull; while connected (waiting for Receive Maximum permits) the
// publishing call waits for room instead, bounded by its context.
type QueueLimits struct {
	MaxMessages int // default 1000
	MaxBytes    int // payload, topic and properties; default 16 MiB
}

// Delay returns the delay before reconnection attempt n (from 1).
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	if n < 1 {
		n = 1
	}
	d := float64(b.Initial) * math.Pow(b.Factor, float64(n-1))
	if d > float64(b.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(b.Max)
	}
	if b.Jitter > 0 {
		d -= d * b.Jitter * rand.Float64()
	}
	return time.Duration(d)
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = time.Second
	}
	if b.Max <= 0 {
		b.Max = 60 * time.Second
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Factor < 1 {
		b.Factor = 2
	}
	switch {
	case b.Jitter == 0:
		b.Jitter = 0.5
	case b.Jitter < 0:
		b.Jitter = 0
	case b.Jitter > 1:
		b.Jitter = 1
	}
	return b
}

// KeepSessionExpiry, passed to Disconnect, leaves the Session Expiry
// Interval of CONNECT unchanged (the property is not sent).
const KeepSessionExpiry int64 = -1

// normalize validates o and fills in the defaults.
func (o Options) normalize() (Options, error) {
	if o.Version == 0 {
		o.Version = packet.V5
	}
	if !o.Version.Valid() {
		return o, fmt.Errorf("mqtt client: unsupported protocol version %v", o.Version)
	}
	if o.Server == "" {
		return o, errors.New("mqtt client: Options.Server is empty")
	}
	if _, err := parseServer(o.Server); err != nil {
		return o, err
	}
	if o.Version == packet.V311 {
		if o.Auth != nil {
			return o, errors.New("mqtt client: enhanced authentication needs MQTT 5")
		}
		if o.Password != nil && o.Username == "" {
			return o, errors.New("mqtt client: MQTT 3.1.1 needs a user name with a password")
		}
	}
	if w := o.Will; w != nil {
		if w.QoS > 2 {
			return o, errors.New("mqtt client: will QoS above 2")
		}
		if err := validateName(w.Topic); err != nil {
			return o, fmt.Errorf("mqtt client: will topic: %w", err)
		}
		if err := checkNamespace(o.Namespace, "will", w.Topic); err != nil {
			return o, err
		}
	}
	if o.Codec != nil {
		if o.Version == packet.V311 {
			return o, ErrCodecNeedsV5
		}
		if err := o.Codec.validate(); err != nil {
			return o, err
		}
		cp := *o.Codec // later changes by the caller do not reach the Client
		o.Codec = &cp
	}
	k := &o.Keepalive
	if k.Interval == 0 {
		k.Interval = 60 * time.Second
	}
	if k.Interval > 65535*time.Second {
		k.Interval = 65535 * time.Second
	}
	if k.PingIntervalPercent <= 0 {
		k.PingIntervalPercent = 75
	}
	if k.TimeoutPercent <= 0 {
		k.TimeoutPercent = 150
	}
	if k.TimeoutPercent <= k.PingIntervalPercent {
		k.TimeoutPercent = 2 * k.PingIntervalPercent
	}
	// Backoff defaults are applied by Backoff.Delay (not stored: a
	// negative Jitter must stay negative).
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	if o.Queue.MaxMessages <= 0 {
		o.Queue.MaxMessages = 1000
	}
	if o.Queue.MaxBytes <= 0 {
		o.Queue.MaxBytes = 16 << 20
	}
	if o.DispatchQueue <= 0 {
		o.DispatchQueue = 256
	}
	if o.WriteBuffer <= 0 {
		o.WriteBuffer = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Store == nil {
		o.Store = NewMemoryStore()
	}
	return o, nil
}

// keepAliveSeconds is the Keep Alive field of CONNECT.
func (o *Options) keepAliveSeconds() uint16 {
	if o.Keepalive.Interval < 0 {
		return 0
	}
	s := (o.Keepalive.Interval + time.Second/2) / time.Second
	if s < 1 {
		s = 1
	}
	return uint16(s)
}
