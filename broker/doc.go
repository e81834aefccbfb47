// Package broker is an MQTT 5.0 and 3.1.1 broker that can be embedded in a
// Go program or run by the mqtt5 command.
//
//	b := broker.New(broker.Config{})     // the zero Config is a working broker
//	go b.ListenAndServe("127.0.0.1:1883")
//	...
//	b.Shutdown(ctx)                       // DISCONNECT 0x8B to v5 clients
//
// Serve accepts on any net.Listener, ServeConn serves one connection, and
// InProcessConn returns an in-memory connection for tests. The host program
// publishes and subscribes without a socket with Publish and Subscribe.
//
// # Shape
//
// Each connection has one read goroutine that owns its inbound protocol
// state: it reads packets into a reusable buffer (package packet), validates
// and authorises each once, and routes PUBLISH through the subscription
// trie (package topic) whose readers take no lock. A routed Message is
// immutable and shared by every subscriber; what differs per subscriber
// (QoS, packet identifier, RETAIN, Subscription Identifiers, topic alias,
// protocol version) is applied when it is encoded for that subscriber.
//
// Each session has a bounded outbound queue (MaxMessages and MaxBytes) and
// an inflight window bounded by the client's Receive Maximum and
// Limits.MaxInflight. A writer goroutine is started when a queue has work
// and exits when it is drained, so an idle connection holds no write
// buffer; the writer gathers up to 64 KiB and writes it with one call. On
// Linux a plain TCP connection whose read side has been idle for 250 ms is
// parked: its read goroutine and read buffer are given up, its socket waits
// in an epoll set of the broker's, and a goroutine is started again when it
// is readable, its keep alive expires or it is closed. A slow subscriber never blocks a publisher: its queue's overflow
// policy (QueueConfig.Policy) drops or disconnects, and every drop is
// counted (Stats().Dropped). Publishers are never acknowledged before their
// message has been queued for every matching subscriber; a client that
// sends faster than its control packets can be written stops being read
// (TCP pushes back).
//
// # Locking
//
// There is no lock shared by all publishers. A publisher takes only the
// mutex of each session it delivers to. The session registry's mutex is
// taken on connect, disconnect and expiry, never on the publish path;
// lock order is registry, then session.
//
// # Time
//
// Keep alive is enforced with read deadlines (1.5 times the keep alive;
// for a parked connection, a runtime timer);
// session expiry and will delay use one runtime timer per pending event
// (time.AfterFunc, kept in the runtime's timer heap) — nothing sweeps over
// all clients. Message expiry is checked when a message is about to be
// sent. All of it runs on fake time under testing/synctest.
//
// # Choices the standard leaves open
//
//   - A client with several subscriptions matching one message receives one
//     copy, at the highest granted QoS, carrying every matching
//     Subscription Identifier (section 3.3.4 allows this; it saves bandwidth).
//   - QoS 2 messages are routed when PUBLISH arrives (method A of section
//     4.3.3); retransmissions before PUBREL are acknowledged, not routed.
//   - A publish to a $-topic by a client is refused with Not Authorized
//     (0x87); 3.1.1 clients get a plain acknowledgement and the message is
//     dropped.
//   - PUBACK/PUBREC carry No Matching Subscribers (0x10) to v5 clients when
//     nobody subscribed.
//   - A shared-subscription member that leaves hands its queued and
//     unacknowledged messages to another connected member.
//
// # Routing features
//
// Each of these is off by default and then costs the publish path one
// predictable branch: load balancing by redirection (LoadBalancerConfig),
// change-only delivery (ChangeOnlyConfig), identity stamping (StampConfig),
// echo suppression (EchoSuppressionConfig), per-connection rate limits
// (RateLimits) and event hooks (AddHook; docs/hooks.md has the threading
// contract). Each is counted in Stats.
//
// Statements of the standard are cited beside the code that implements them
// as [MQTT-x.y.z-n]; docs/conformance.md maps each to its tests.
package broker
