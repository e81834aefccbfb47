// Package client is an MQTT 5.0 and 3.1.1 client: publish at QoS 0, 1 and
// 2 with pipelining, subscriptions routed to handlers, manual or automatic
// acknowledgement, enhanced authentication, automatic reconnection with
// session resumption, an offline queue, and keep alive.
//
// # Using it
//
//	c, err := client.New(client.Options{Server: "mqtt://localhost:1883", ClientID: "sensor-1"})
//	if err != nil { ... }
//	info, err := c.Connect(ctx)            // first connection; an error means nothing runs
//	_, err = c.Subscribe(ctx, []client.Subscription{{Filter: "cmd/#", QoS: 1}},
//		func(m *client.Message) { ... })
//	err = c.Publish(ctx, &client.Message{Topic: "temp", QoS: 1, Payload: b})
//	tok := c.PublishAsync(ctx, msg)        // pipelined: tok.Wait(ctx), tok.Done(), tok.Err()
//	err = c.Disconnect(ctx, packet.NormalDisconnection, client.KeepSessionExpiry)
//
// Dial(ctx, url, opts) does New and Connect in one call. Every blocking
// method takes a context first. Interface is the method set applications
// usually need; client/mock implements it for unit tests.
//
// Server addresses are URLs: mqtt:// and tcp:// (port 1883), mqtts://,
// ssl:// and tls:// (8883), ws:// (80), wss:// (443), quic:// (14567), or a
// bare host:port for TCP. Every transport is built in (package transport):
// TCP, TLS, WebSocket and QUIC (single-stream or multistream, see package
// mqttquic, with connection migration through Client.Migrate). A Dialer in
// Options.Dialers replaces the built-in one for its scheme (it returns an
// io.ReadWriteCloser).
//
// The protocol is 5.0 unless Options.Version says packet.V311. Every CONNECT
// field and property is in Options (will with its properties and delay,
// clean start, session expiry, receive maximum, maximum packet size, topic
// alias maximum, request response/problem information, user properties,
// user name and password, and an AuthHandler for the AUTH exchange;
// Client.Reauthenticate re-authenticates on a live connection).
//
// # Goroutine model
//
// One goroutine, the engine, owns all protocol state: packet identifiers,
// messages in flight, the send quota, the queue, topic aliases,
// subscriptions, received QoS 2 identifiers, keep alive and reconnection.
// Nothing else touches that state, so it has no locks. Calls reach the
// engine through channels and every such send is a select that also
// watches the caller's context and the end of the Client: no call can
// deadlock because the network is gone, Disconnect included.
//
// Per connection, a reader goroutine decodes packets and hands them to the
// engine, and a writer goroutine writes what the engine encodes: the engine
// appends packets to a buffer and the writer takes the whole buffer at each
// write, so pipelined packets share system calls and the engine never
// blocks on the network. Connection attempts (dial, CONNECT, AUTH, CONNACK)
// run on a goroutine of their own. Handlers run on one dispatch goroutine,
// in arrival order; callbacks (OnConnect, OnDisconnect, OnReconnecting,
// OnError) run on one events goroutine, in order. Neither ever runs on the
// engine, so handlers and callbacks may call any method of the Client.
//
// # Bounds and policies
//
//   - In flight: at most the server's Receive Maximum QoS 1/2 publishes
//     [MQTT-3.3.4-7]; each takes a permit, returned on PUBACK, PUBCOMP or a
//     PUBREC with an error code. Others wait in the queue. Packets other
//     than PUBLISH are never held back by the quota [MQTT-3.3.4-8].
//   - Queue (Options.Queue, default 1000 messages and 16 MiB): publishes
//     accepted and not yet sent. While disconnected a publish beyond the
//     bound fails with ErrQueueFull; while connected the publishing call
//     waits for room (back-pressure), bounded by its context. Queued
//     messages keep every v5 property; their Message Expiry Interval counts
//     down while they wait and they are dropped (ErrMessageExpired) when it
//     runs out.
//   - Write buffer (Options.WriteBuffer, default 1 MiB): encoded bytes
//     waiting for the network. Above it the engine accepts no more
//     publishes until the writer catches up.
//   - Dispatch queue (Options.DispatchQueue, default 256 messages): when
//     handlers fall behind and it is full, the engine stops taking packets
//     from the reader, which stops reading the socket: TCP pushes back on
//     the server. No message is ever dropped, at any QoS. Because
//     acknowledgements arrive on the same socket, a handler must not wait
//     for its own QoS 1/2 publish to complete while the dispatch queue may
//     be full (publish asynchronously instead).
//   - Events: an unbounded list, since there is at most a handful per
//     connection change.
//
// Limits the server announces in CONNACK are enforced locally, before
// anything is sent, with the reason code the standard names: Maximum QoS
// (QoSNotSupported), Retain Available (RetainNotSupported), Maximum Packet
// Size (PacketTooLarge), Topic Alias Maximum (TopicAliasInvalid),
// Subscription Identifier / Shared / Wildcard Subscription Available.
//
// # Errors
//
// Failures the server reports with a reason code, and local refusals, are
// *ReasonError values that unwrap to packet.ReasonCode, so
// errors.Is(err, packet.NotAuthorized) works and the Reason String is at
// hand. Sentinel errors (ErrClosed, ErrQueueFull, ErrSessionLost,
// ErrConnectionLost, ErrKeepAliveTimeout, ErrTransportUnavailable, ...)
// cover the rest.
//
// # Receiving
//
// Subscribe routes the messages of its filters to a handler. A message
// carrying Subscription Identifiers (v5) goes to the handlers of the
// subscriptions it names; the client gives every Subscribe call an
// identifier of its own when the server supports them, so that when a
// server sends one copy per overlapping subscription (mosquitto does) each
// handler gets exactly its copy. Other messages go to every handler whose
// filter matches (a trie, package topic); shared subscriptions
// ($share/group/filter) are matched by their filter. Messages that match no
// handler go to Options.DefaultHandler.
//
// QoS 1 and 2 messages are acknowledged when the handlers return, or, with
// Options.ManualAck, when the application calls Message.Ack or
// Message.Reject. Acknowledgements leave in the order the messages arrived
// [MQTT-4.6.0-2] [MQTT-4.6.0-3]. A QoS 2 message is delivered once: its
// packet identifier is held until PUBREL, and a re-sent PUBLISH with it is
// acknowledged again without being delivered [MQTT-4.3.3-10]. With a
// Store given in Options the identifier is recorded there before the first
// handler runs, so a new Client resuming the session from that store does
// not deliver the message again either. See Message.Ack for what happens to
// an unacknowledged message when the connection is lost, and Disconnect for
// handlers still running when the Client ends.
//
// # Sessions and reconnection
//
// After a connection is lost the client reconnects with exponential backoff
// and jitter (Backoff: 1 s initial, 60 s maximum, factor 2, half of each
// delay random, unlimited attempts by default), following Use Another Server
// and Server Moved (in CONNACK or DISCONNECT, up to three hops; Server Moved
// is permanent). Disconnect stops it; so does reaching Backoff.MaxAttempts,
// which ends the Client with the last error (Done, Err).
//
// Session state lives in a SessionStore (default MemoryStore; FileStore
// keeps it on disk, so that a restarted process resumes its QoS 1/2 flows). When
// the server has the session (Session Present), the client re-sends, in the
// original order, every unacknowledged PUBLISH with DUP set and every
// PUBREL [MQTT-4.4.0-1] [MQTT-4.6.0-1]. When it has not, the client
// discards its session too [MQTT-3.2.2-5], subscribes again to every
// granted filter, re-sends QoS 1 messages in flight as new ones (at least
// once is kept) and fails QoS 2 messages in flight with ErrSessionLost (they
// may have been delivered once; sending them again could deliver them
// twice). Publish therefore never reports success for a message the server
// did not acknowledge.
//
// A Client given a store that holds state, and CleanStartNever, resumes the
// session it describes. A Client with an empty store accepts Session
// Present 1 as well — an empty session is consistent with any server
// session, and refusing it ([MQTT-3.2.2-4] read literally) would make
// persistent sessions unusable across restarts with a volatile store.
//
// 3.1.1 has no session expiry: there SessionExpiry 0 means Clean Session 1
// on every connection, and a non-zero value a persistent session (Clean
// Session 0, unless CleanStartAlways).
//
// # Keep alive
//
// With a keep alive interval K (Options.Keepalive, default 60 s, or the
// server's Server Keep Alive [MQTT-3.1.2-21]), the client sends PINGREQ
// when it has sent or heard nothing for 75% of K [MQTT-3.1.2-20], and
// declares the connection lost (ErrKeepAliveTimeout) when nothing, PINGRESP
// included, has arrived for 150% of K. Both percentages are configurable.
//
// # Cloud brokers, codecs and request/response
//
// AWSIoT builds Options for AWS IoT Core (mqtts on 8883, or port 443 with
// ALPN x-amzn-mqtt-ca; certificates from PEM or DER bytes or files) with
// its namespace rules. Options.Namespace (AWSIoTNamespace,
// AzureIoTHubNamespace, GenericNamespace) checks topics and filters before
// anything is sent (errors.Is(err, ErrNamespace)). Options.Codec compresses
// payloads with gzip or deflate, marked by Content Type, and decompresses
// received ones under a hard size cap. Client.Request publishes a request
// with Response Topic and Correlation Data and waits for its response;
// Client.HandleRequests serves requests. SubscribeQoS returns the packet
// identifier and granted QoS as cloud SDKs do. See docs/cloud.md.
//
// # Logging
//
// Options.Logger (a *slog.Logger, default discard) receives connection
// events at Info level and diagnostics at Debug.
//
// Statements of the standard are cited beside the code as [MQTT-x.y.z-n].
package client
