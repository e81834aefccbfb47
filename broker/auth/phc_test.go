package auth

import (
	"strings"
	"testing"
)

// fxParams are cheap Argon2id parameters for tests.
var fxParams = Argon2Params{Memory: 64, Time: 1, Threads: 1}

// fxHash hashes password with fxParams.
func fxHash(t testing.TB, password string) string {
	t.Helper()
	h, err := HashPassword([]byte(password), fxParams)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestArgon2RoundTrip(t *testing.T) {
	s := fxHash(t, "s3cret")
	if !strings.HasPrefix(s, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("unexpected PHC string %q", s)
	}
	h, err := ParseArgon2(s)
	if err != nil {
		t.Fatal(err)
	}
	if h.String() != s {
		t.Errorf("String() = %q, want %q", h.String(), s)
	}
	if len(h.Salt) != 16 || len(h.Key) != 32 || h.Params.SaltLen != 16 || h.Params.KeyLen != 32 {
		t.Errorf("salt %d, key %d bytes; params %+v", len(h.Salt), len(h.Key), h.Params)
	}
	if !h.Verify([]byte("s3cret")) {
		t.Error("the right password does not verify")
	}
	if h.Verify([]byte("s3cret ")) || h.Verify(nil) {
		t.Error("a wrong password verifies")
	}
	// Two hashes of one password differ (random salt).
	if s2 := fxHash(t, "s3cret"); s2 == s {
		t.Error("two hashes are identical")
	}
}

// The Argon2id test vector of the reference implementation's test suite
// (phc-winner-argon2, src/test.c): "password", salt "somesalt", t=2,
// m=65536, p=1. It is the only test with production-sized memory.
func TestArgon2ReferenceVector(t *testing.T) {
	const ref = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	h, err := ParseArgon2(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Verify([]byte("password")) {
		t.Fatal("reference hash does not verify")
	}
	if h.Verify([]byte("passwore")) {
		t.Fatal("reference hash verifies a wrong password")
	}
	if h.String() != ref {
		t.Fatalf("String() = %q", h.String())
	}
}

func TestArgon2Bounds(t *testing.T) {
	const salt, key = "c29tZXNhbHQ", "Qd4l3i1nHp4iTVMJLg8Ff3nOq2h0M5kqzN4Vw7xA1hI"
	good := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key
	if _, err := ParseArgon2(good); err != nil {
		t.Fatalf("good hash: %v", err)
	}
	bad := []struct{ s, want string }{
		{"", "not a PHC string"},
		{"argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key, "not a PHC string"},
		{"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key, "only argon2id"},
		{"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key, "version"},
		{"$argon2id$m=64,t=1,p=1$" + salt + "$" + key, "not a PHC string"},
		{"$argon2id$v=19$m=4194305,t=1,p=1$" + salt + "$" + key, "memory cost"},
		{"$argon2id$v=19$m=7,t=1,p=1$" + salt + "$" + key, "memory cost"},
		{"$argon2id$v=19$m=64,t=1,p=16$" + salt + "$" + key, "memory cost"},
		{"$argon2id$v=19$m=64,t=101,p=1$" + salt + "$" + key, "time cost"},
		{"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key, "time cost"},
		{"$argon2id$v=19$m=65536,t=1,p=256$" + salt + "$" + key, "parallelism"},
		{"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key, "parallelism"},
		{"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key, "in this order"},
		{"$argon2id$v=19$m=64,t=1$" + salt + "$" + key, "want m=..,t=..,p=.."},
		{"$argon2id$v=19$m=x,t=1,p=1$" + salt + "$" + key, "not a decimal number"},
		{"$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key, "not a decimal number"},
		{"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key, "salt of 4 bytes"},
		{"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$c2hvcnRrZXk", "hash of 8 bytes"},
		{"$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key, "salt is not unpadded base64"},
		{"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "!", "hash is not unpadded base64"},
	}
	for _, c := range bad {
		_, err := ParseArgon2(c.s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseArgon2(%q) = %v, want an error containing %q", c.s, err, c.want)
		}
	}
	if _, err := HashPassword([]byte("x"), Argon2Params{Memory: 64, Time: 0, Threads: 1}); err == nil {
		t.Error("HashPassword accepted t=0")
	}
	if DefaultArgon2Params != (Argon2Params{Memory: 65536, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 32}) {
		t.Errorf("DefaultArgon2Params = %+v", DefaultArgon2Params)
	}
}
