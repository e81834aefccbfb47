// Package packet is the MQTT wire codec for protocol levels 4 (3.1.1) and 5
// (5.0): all fifteen control packets, every v5 property, reason codes,
// variable byte integers, UTF-8 strings, binary data and string pairs.
//
// # Encoding
//
// Every packet type implements Packet; AppendTo(dst, version) appends the
// whole packet, fixed header included, to a caller buffer and validates what
// it writes. The version is an argument, not a field, so one message can be
// encoded for 3.1.1 and 5.0 receivers: v5-only fields (properties, reason
// codes) are dropped for 3.1.1. Encoding does not allocate beyond growing dst.
//
// # Decoding
//
// Reader reads packets from a stream into a reusable buffer and checks the
// caller's maximum packet size from the fixed header alone, before the body
// is read or allocated. Each type's Decode(flags, body, version) fills a
// caller-owned value without allocating (slices inside it are reused), and
// Decode returns a new packet of the right type.
//
// Decoded packets alias the bytes they were decoded from: strings and byte
// slices point into the body. The body must not be modified while the packet
// is in use. Reader.ReadPacket gives each packet its own body; Reader.ReadRaw
// returns a body in the Reader's buffer, valid until the next read — callers
// that keep data from such a packet copy what they keep.
//
// # Errors
//
// Every violation is an *Error carrying the reason code the standard names
// for it: MalformedPacket (0x81) for what cannot be parsed or breaks a
// format rule, ProtocolError (0x82) for what parses but is not allowed (a
// property repeated, packet identifier 0, ...), TopicAliasInvalid (0x94) for
// a Topic Alias of 0, PacketTooLarge (0x95) and UnsupportedProtocolVersion
// (0x84). Encoders apply the same rules to what they write and return the
// same codes. ReasonCode implements error, so
// errors.Is(err, packet.MalformedPacket) works, and CodeOf(err) extracts it.
//
// Topic-name and filter rules (wildcards, $share) are checked by package
// topic; the codec checks only that they are well-formed UTF-8.
//
// Statements of the standard are cited beside the code that implements them
// as [MQTT-x.y.z-n].
package packet
