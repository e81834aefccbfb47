package store

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Key layout (see the package documentation).
const (
	prefixSession    = "s/"
	prefixEntry      = "e/"
	prefixRetained   = "r/"
	prefixQuarantine = "q/"
	prefixMeta       = "meta/"
	keyVersion       = prefixMeta + "version"
)

// maxKeyLen bounds every key so that its quarantine copy still fits the
// smallest engine limit (bbolt: 32768 bytes).
const maxKeyLen = 32768 - 64

func sessionKey(clientID string) []byte {
	return append([]byte(prefixSession), clientID...)
}

func entryKey(clientID string, seq uint64) []byte {
	k := make([]byte, 0, len(prefixEntry)+len(clientID)+1+8)
	k = append(k, prefixEntry...)
	k = append(k, clientID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// entryPrefix is the prefix of every entry key of clientID. Client
// identifiers never contain U+0000, so no other client's keys share it.
func entryPrefix(clientID string) []byte {
	k := make([]byte, 0, len(prefixEntry)+len(clientID)+1)
	k = append(k, prefixEntry...)
	k = append(k, clientID...)
	return append(k, 0)
}

func retainedKey(topic string) []byte {
	return append([]byte(prefixRetained), topic...)
}

// prefixEnd returns the smallest key greater than every key with prefix p
// (p never ends in 0xFF here: it ends in '/' or 0x00).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// parseEntryKey splits an entry key (without its prefix) into client
// identifier and sequence number.
func parseEntryKey(rest []byte) (string, uint64, bool) {
	if len(rest) < 9 || rest[len(rest)-9] != 0 {
		return "", 0, false
	}
	id := rest[:len(rest)-9]
	for _, c := range id {
		if c == 0 {
			return "", 0, false
		}
	}
	if len(id) == 0 {
		return "", 0, false
	}
	return string(id), binary.BigEndian.Uint64(rest[len(rest)-8:]), true
}

func checkClientID(i int, id string) error {
	switch {
	case id == "":
		return invalid(i, "empty client identifier")
	case strings.IndexByte(id, 0) >= 0:
		return invalid(i, "client identifier contains U+0000")
	case len(id)+len(prefixEntry)+9 > maxKeyLen:
		return invalid(i, "client identifier too long")
	}
	return nil
}

func checkTopic(i int, topic string) error {
	switch {
	case topic == "":
		return invalid(i, "empty topic")
	case len(topic)+len(prefixRetained) > maxKeyLen:
		return invalid(i, "topic too long")
	}
	return nil
}

func invalid(i int, why string) error {
	return fmt.Errorf("%w: op %d: %s", ErrInvalidOp, i, why)
}

// kvKind is what a kvOp does to the key space.
type kvKind uint8

const (
	kvSet kvKind = iota + 1
	kvDelete
	kvDeletePrefix // every key starting with key
)

// kvOp is an Op translated to the key space, with the fields the memory
// store works with.
type kvOp struct {
	kind     kvKind
	op       OpKind
	key, val []byte
	clientID string
	seq      uint64
	topic    string
}

// encodeOps validates ops and translates them into key-space writes. It
// writes nothing: an error means the whole list is refused. For
// DeleteSession it emits two writes, the session key and its entry prefix.
func encodeOps(ops []Op) ([]kvOp, error) {
	out := make([]kvOp, 0, len(ops)+1)
	for i := range ops {
		op := &ops[i]
		var err error
		switch op.Kind {
		case PutSession:
			s := op.Session
			if s == nil {
				return nil, invalid(i, "PutSession without Session")
			}
			if op.ClientID != "" && op.ClientID != s.ClientID {
				return nil, invalid(i, "PutSession: ClientID differs from Session.ClientID")
			}
			if err = checkClientID(i, s.ClientID); err != nil {
				return nil, err
			}
			kv := kvOp{kind: kvSet, op: op.Kind, key: sessionKey(s.ClientID), clientID: s.ClientID}
			if kv.val, err = encodeSession(nil, s); err != nil {
				return nil, fmt.Errorf("op %d: %w", i, err)
			}
			out = append(out, kv)
		case DeleteSession:
			if err = checkClientID(i, op.ClientID); err != nil {
				return nil, err
			}
			out = append(out,
				kvOp{kind: kvDelete, op: op.Kind, key: sessionKey(op.ClientID), clientID: op.ClientID},
				kvOp{kind: kvDeletePrefix, op: op.Kind, key: entryPrefix(op.ClientID), clientID: op.ClientID})
		case PutEntry:
			e := op.Entry
			if e == nil {
				return nil, invalid(i, "PutEntry without Entry")
			}
			if (op.ClientID != "" && op.ClientID != e.ClientID) || (op.Seq != 0 && op.Seq != e.Seq) {
				return nil, invalid(i, "PutEntry: ClientID or Seq differs from the Entry's")
			}
			if err = checkClientID(i, e.ClientID); err != nil {
				return nil, err
			}
			kv := kvOp{kind: kvSet, op: op.Kind, key: entryKey(e.ClientID, e.Seq), clientID: e.ClientID, seq: e.Seq}
			if kv.val, err = encodeEntry(nil, e); err != nil {
				return nil, fmt.Errorf("op %d: %w", i, err)
			}
			out = append(out, kv)
		case DeleteEntry:
			if err = checkClientID(i, op.ClientID); err != nil {
				return nil, err
			}
			out = append(out, kvOp{kind: kvDelete, op: op.Kind, key: entryKey(op.ClientID, op.Seq), clientID: op.ClientID, seq: op.Seq})
		case PutRetained:
			m := op.Retained
			if m == nil {
				return nil, invalid(i, "PutRetained without Retained")
			}
			if op.Topic != "" && op.Topic != m.Topic {
				return nil, invalid(i, "PutRetained: Topic differs from Retained.Topic")
			}
			if err = checkTopic(i, m.Topic); err != nil {
				return nil, err
			}
			kv := kvOp{kind: kvSet, op: op.Kind, key: retainedKey(m.Topic), topic: m.Topic}
			if kv.val, err = encodeRetained(nil, m); err != nil {
				return nil, fmt.Errorf("op %d: %w", i, err)
			}
			out = append(out, kv)
		case DeleteRetained:
			if err = checkTopic(i, op.Topic); err != nil {
				return nil, err
			}
			out = append(out, kvOp{kind: kvDelete, op: op.Kind, key: retainedKey(op.Topic), topic: op.Topic})
		default:
			return nil, invalid(i, "unknown kind "+op.Kind.String())
		}
	}
	return out, nil
}

// String returns the kind's name.
func (k OpKind) String() string {
	switch k {
	case PutSession:
		return "PutSession"
	case DeleteSession:
		return "DeleteSession"
	case PutEntry:
		return "PutEntry"
	case DeleteEntry:
		return "DeleteEntry"
	case PutRetained:
		return "PutRetained"
	case DeleteRetained:
		return "DeleteRetained"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}
