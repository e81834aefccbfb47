package bench

import (
	"encoding/binary"
	"errors"
)

// Payload layout (big endian), padded with zeros to the requested size:
//
//	0  uint32  magic "mq5b"
//	4  uint64  send time: monotonic nanoseconds since the run's start
//	12 uint32  publisher id
//	16 uint64  sequence number (per publisher, from 0)
const (
	stampMagic = 0x6d713562 // "mq5b"
	// StampSize is the smallest payload that carries a stamp.
	StampSize = 24
)

var errShortPayload = errors.New("payload too short for a bench stamp")
var errBadMagic = errors.New("payload is not a bench stamp")

// Stamp writes the stamp into the first StampSize bytes of p, leaving the
// padding untouched. p must be at least StampSize long.
func Stamp(p []byte, sendNanos int64, pub uint32, seq uint64) {
	_ = p[StampSize-1]
	binary.BigEndian.PutUint32(p[0:], stampMagic)
	binary.BigEndian.PutUint64(p[4:], uint64(sendNanos))
	binary.BigEndian.PutUint32(p[12:], pub)
	binary.BigEndian.PutUint64(p[16:], seq)
}

// ParseStamp reads the stamp written by Stamp.
func ParseStamp(p []byte) (sendNanos int64, pub uint32, seq uint64, err error) {
	if len(p) < StampSize {
		return 0, 0, 0, errShortPayload
	}
	if binary.BigEndian.Uint32(p) != stampMagic {
		return 0, 0, 0, errBadMagic
	}
	return int64(binary.BigEndian.Uint64(p[4:])), binary.BigEndian.Uint32(p[12:]), binary.BigEndian.Uint64(p[16:]), nil
}
