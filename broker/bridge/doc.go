// Package bridge forwards messages between the local broker and a remote MQTT
// broker (ours, Mosquitto, any MQTT 5 or 3.1.1 server).
//
//	b, err := bridge.New(bridge.Config{
//		Name:   "site1",
//		Remote: bridge.RemoteConfig{URL: "mqtts://cloud.example.com"},
//		Topics: []bridge.TopicMapping{
//			{Pattern: "sensors/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"},
//			{Pattern: "commands/#", Direction: bridge.In, QoS: 1, RemotePrefix: "site1/"},
//		},
//	}, func(context.Context) (net.Conn, error) { return brk.InProcessConn(), nil })
//	go b.Run(ctx)
//
// # Shape
//
// A bridge is two MQTT clients (package client): one connected to the local
// broker through the function given to New (this package does not import
// package broker; the embedding program or the mqtt5 command passes
// broker.InProcessConn), one to the remote broker over any transport the
// client supports. Both use persistent sessions (fixed client identifiers,
// Clean Start 0 on every connection, Session Expiry Config.SessionExpiry)
// and manual acknowledgement:
//
//   - Out: the local client subscribes to the out patterns. Each message is
//     published to the remote broker, and the local message is acknowledged
//     only when the remote one acknowledged the copy (PUBACK, PUBCOMP).
//     While the remote side is unreachable the local broker keeps the
//     messages in the bridge's session (on disk when it has a store).
//   - In: the remote client subscribes to the in patterns; each message is
//     published locally and acknowledged to the remote broker only when the
//     local publish completed.
//
// Nothing acknowledged is therefore lost when either side or the bridge
// restarts; messages in flight at that moment may be delivered twice (at
// least once). At most Config.MaxQueued QoS 1/2 messages per direction are
// held by the bridge (announced as Receive Maximum); client handlers never
// block, so a slow side never stops the other direction.
//
// The remote side reconnects with Config.Backoff. With Remote.Backups, the
// bridge moves to the next server after Config.FailoverAttempts failed
// attempts (each round starts with the primary) and, while on a backup,
// tries the primary every Config.FailbackInterval. Each server has its own
// session state; messages in flight on a server that was left are
// published again on the next one.
//
// # Loop prevention
//
// Three mechanisms, cheapest first: No Local on every subscription (MQTT
// 5), so a bridge never receives what it published itself; an origin User
// Property (OriginProperty, value Config.Name) added to each forwarded
// message, so a message that already crossed Config.MaxHops bridges (1 by
// default), or this one, is not forwarded again; and, when the remote speaks
// 3.1.1 (or LoopCacheAlways), a per-bridge cache of SHA-256 fingerprints of
// (topic, payload, QoS, retain), bounded in age (LoopTTL) and size
// (LoopCacheSize, oldest evicted), so that a message forwarded one way is
// not forwarded back the other way.
//
// docs/bridging.md describes the configuration, topic rewriting with
// examples, the guarantees and Status.
package bridge
