// Package store is the broker's persistence seam: the Store interface, the
// records it keeps, a group-commit writer shared by all connections, an
// embedded on-disk engine (the default) and a memory store.
//
// The package speaks in its own types and those of package packet; it
// never imports the broker.
//
// # Stores
//
// OpenDefault opens the default engine, Pebble
// (github.com/cockroachdb/pebble/v2): a log-structured merge tree, every
// Apply one batch committed with Sync, that is one append to the write-ahead
// log and one fsync. OpenBolt opens the alternative, bbolt
// (go.etcd.io/bbolt): one copy-on-write B+tree file, dir/mqtt5.db, every
// Apply one read-write transaction. Pebble writes about 160 bytes per
// queued QoS 1 message where bbolt rewrites a 4 KiB page per session
// touched, which makes Pebble several times faster once the store holds
// real data; bbolt is the small, dependency-light choice that recovers
// from a full disk without a restart. docs/persistence.md has the
// benchmarks behind the choice. NewMemory keeps everything in maps, for
// tests and for running without persistence; it validates and encodes
// exactly as the disk stores do.
//
// Apply is all-or-nothing. Before anything is written, the whole op list
// is validated and encoded; an invalid op (see ErrInvalidOp) refuses the
// list. Within a list, ops take effect in order (a PutEntry after a
// DeleteSession of the same client survives it).
//
// # Key layout
//
// Both engines use one flat, byte-ordered key space:
//
//	s/<clientID>                       Session (ClientID is the key)
//	e/<clientID> 0x00 <seq, 8 bytes BE> Entry (ClientID, Seq are the key)
//	r/<topic>                          retained Message
//	q/<original key>                   a record set aside by Load
//	meta/version                       layout version, 4 bytes BE (Version)
//
// Client identifiers may not contain U+0000 (MQTT strings cannot), so
// e/<clientID>0x00 is a prefix of that client's entries only: DeleteSession
// removes the session key and that prefix range (a range tombstone in
// Pebble, a cursor sweep in bbolt). The big-endian sequence number makes
// the key order the delivery order, so Load returns entries ordered by
// client, then Seq, with no sorting.
//
// # Records
//
// Every value is framed as [format byte][CRC-32C of the payload][payload].
// Integers in the payload are unsigned varints, strings and byte slices are
// length-prefixed, times are a tag byte (0: zero time) and Unix nanoseconds.
// A message is the v5 PUBLISH packet the packet codec encodes (packet
// identifier 1 for QoS > 0, ignored on decode), so topic, QoS, retain,
// payload and every property round-trip, followed by the publisher's
// client identifier and the creation time. A session holds username,
// protocol version, expiry, disconnection time, subscriptions (filter,
// options byte laid out as in SUBSCRIBE, subscription identifier), the
// pending will (delay and message) and the inbound QoS 2 packet
// identifiers; a session with change-only state (LastPayloads) is written
// in format 2, which appends that list (topic, 8-byte big-endian hash),
// and every other record in format 1, so that records without the state
// stay readable by a broker that predates it. An entry holds the message, a flags byte (QoS, Retain,
// Released), subscription identifiers, the shared-subscription group and
// the packet identifier. A 64-byte QoS 1 message to client "client-0001"
// takes a 22-byte key and a 106-byte value.
//
// # Load and damage
//
// Load reads the whole key space once. A record whose format byte is
// unknown, whose checksum fails, whose payload does not decode exactly, or
// whose key is outside the layout, is logged, moved to q/<key> in one
// write at the end of Load, counted in Snapshot.Quarantined and skipped:
// it never stops start-up. Damage to the engine's own structures is
// different: a truncated or overwritten bbolt file, or a damaged Pebble
// MANIFEST, makes Open (or Load) return an error wrapping ErrCorrupt, with
// no panic.
//
// # Versions
//
// A new store gets meta/version = Version. Opening a store with a newer
// version fails with ErrVersion naming both versions. An older one is
// brought forward by the migrations table (migrations[v] takes v to v+1,
// in one write with the new marker); the table is empty while Version is 1.
// The record format byte is separate: it lets a later version read records
// of mixed formats during a lazy migration.
//
// # Group commit
//
// A Committer sits between the connections and the Store. Submit queues an
// op list and a done callback; one writer goroutine commits everything
// queued in one Apply — in CommitSync mode as soon as the previous commit
// returns (concurrent publishers share each fsync), in CommitBatch mode at
// most every Interval. Callbacks run on one goroutine in submission order,
// after the commit, or with its error (a *CommitError wrapping the store's
// error). What is pending is bounded in ops and bytes; Submit waits for
// room, SubmitCtx also gives up with its context. Flush waits for what was
// submitted before it; Close flushes and stops.
package store
