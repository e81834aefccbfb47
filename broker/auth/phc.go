package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the cost parameters of an Argon2id hash.
type Argon2Params struct {
	// Memory is the memory cost in KiB (m).
	Memory uint32
	// Time is the number of passes over the memory (t).
	Time uint32
	// Threads is the degree of parallelism (p).
	Threads uint8
	// SaltLen and KeyLen are the lengths in bytes of the random salt and
	// of the derived hash.
	SaltLen uint32
	KeyLen  uint32
}

// DefaultArgon2Params are the parameters of new hashes: 64 MiB of memory,
// 3 passes, 4 lanes, a 16-byte salt and a 32-byte hash. They follow the
// OWASP password storage recommendations for Argon2id (at least 19 MiB and
// 2 passes) with a margin; one verification takes about 0.2 s on a 2-core
// virtual machine. Verification uses the parameters stored in each hash.
var DefaultArgon2Params = Argon2Params{Memory: 64 * 1024, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 32}

// Bounds on the parameters a stored hash may ask for. They reject hashes
// that would make one verification exhaust the machine; legitimate
// hashes are far below them.
const (
	maxArgon2Memory  = 1 << 22 // KiB: 4 GiB
	maxArgon2Time    = 100
	maxArgon2Threads = 255
	minSaltLen       = 8
	maxSaltLen       = 1024
	minKeyLen        = 16
	maxKeyLen        = 1024
	argon2Version    = argon2.Version // 19 (0x13)
)

// Argon2Hash is a parsed Argon2id hash in the PHC string format:
//
//	$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>
//
// where salt and hash are unpadded standard base64.
type Argon2Hash struct {
	Params Argon2Params // SaltLen and KeyLen are those of Salt and Key
	Salt   []byte
	Key    []byte
}

// HashPassword derives a new Argon2id hash of password with a random salt
// and returns it in PHC string format.
func HashPassword(password []byte, p Argon2Params) (string, error) {
	if p.SaltLen == 0 {
		p.SaltLen = DefaultArgon2Params.SaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = DefaultArgon2Params.KeyLen
	}
	if err := p.validate(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("argon2id: reading random salt: %w", err)
	}
	h := &Argon2Hash{Params: p, Salt: salt}
	h.Key = h.derive(password)
	return h.String(), nil
}

// validate checks p against the bounds.
func (p Argon2Params) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxArgon2Time:
		return fmt.Errorf("argon2id: time cost t=%d out of range 1..%d", p.Time, maxArgon2Time)
	case p.Threads < 1:
		return fmt.Errorf("argon2id: parallelism p=%d out of range 1..%d", p.Threads, maxArgon2Threads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgon2Memory:
		return fmt.Errorf("argon2id: memory cost m=%d KiB out of range %d..%d (at least 8 KiB per lane)", p.Memory, 8*uint32(p.Threads), maxArgon2Memory)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("argon2id: salt of %d bytes out of range %d..%d", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("argon2id: hash of %d bytes out of range %d..%d", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// ParseArgon2 parses an Argon2id hash in PHC string format and checks its
// parameters against the bounds (memory at most 4 GiB, at most 100
// passes, 1..255 lanes, a salt of at least 8 bytes, a hash of at least 16
// bytes, version 19).
func ParseArgon2(s string) (*Argon2Hash, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	// Line breaks are refused: base64 decoding would skip them.
	if len(parts) != 6 || parts[0] != "" || strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("argon2id: not a PHC string $argon2id$v=19$m=..,t=..,p=..$salt$hash")
	}
	if parts[1] != "argon2id" {
		return nil, fmt.Errorf("argon2id: unsupported algorithm %q (only argon2id)", parts[1])
	}
	v, ok := strings.CutPrefix(parts[2], "v=")
	if !ok {
		return nil, fmt.Errorf("argon2id: missing version field, got %q", parts[2])
	}
	if v != strconv.Itoa(argon2Version) { // decimal without leading zeros, as m, t and p
		return nil, fmt.Errorf("argon2id: unsupported version %q (only %d)", v, argon2Version)
	}
	var h Argon2Hash
	params := strings.Split(parts[3], ",")
	names := [3]string{"m", "t", "p"}
	if len(params) != 3 {
		return nil, fmt.Errorf("argon2id: parameters %q: want m=..,t=..,p=..", parts[3])
	}
	var vals [3]uint64
	for i, kv := range params {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k != names[i] {
			return nil, fmt.Errorf("argon2id: parameters %q: want m=..,t=..,p=.. in this order", parts[3])
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil || (len(val) > 1 && val[0] == '0') {
			return nil, fmt.Errorf("argon2id: parameter %s=%q is not a decimal number", k, val)
		}
		vals[i] = n
	}
	if vals[2] > maxArgon2Threads {
		return nil, fmt.Errorf("argon2id: parallelism p=%d out of range 1..%d", vals[2], maxArgon2Threads)
	}
	h.Params.Memory, h.Params.Time, h.Params.Threads = uint32(vals[0]), uint32(vals[1]), uint8(vals[2])
	var err error
	if h.Salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil {
		return nil, fmt.Errorf("argon2id: salt is not unpadded base64: %v", err)
	}
	if h.Key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil {
		return nil, fmt.Errorf("argon2id: hash is not unpadded base64: %v", err)
	}
	h.Params.SaltLen, h.Params.KeyLen = uint32(len(h.Salt)), uint32(len(h.Key))
	if err := h.Params.validate(); err != nil {
		return nil, err
	}
	return &h, nil
}

// String returns h in PHC string format.
func (h *Argon2Hash) String() string {
	p := h.Params
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(h.Salt), base64.RawStdEncoding.EncodeToString(h.Key))
}

// Verify reports whether password matches h. It runs one Argon2id
// computation and compares in constant time.
func (h *Argon2Hash) Verify(password []byte) bool {
	return subtle.ConstantTimeCompare(h.derive(password), h.Key) == 1
}

func (h *Argon2Hash) derive(password []byte) []byte {
	p := h.Params
	return argon2.IDKey(password, h.Salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// dummyHash returns a hash with parameters p, a random salt and a random
// key: verifying any password against it costs what verifying against a
// real hash with p costs, and never succeeds in practice.
func dummyHash(p Argon2Params) *Argon2Hash {
	if p.SaltLen == 0 {
		p.SaltLen = DefaultArgon2Params.SaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = DefaultArgon2Params.KeyLen
	}
	h := &Argon2Hash{Params: p, Salt: make([]byte, p.SaltLen), Key: make([]byte, p.KeyLen)}
	rand.Read(h.Salt)
	rand.Read(h.Key)
	return h
}
