package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/xdg-go/scram"
	"github.com/xdg-go/stringprep"
)

// SCRAM credential parameters.
const (
	// DefaultSCRAMIterations is the PBKDF2 iteration count of new
	// credentials (the OWASP recommendation for PBKDF2-HMAC-SHA256).
	DefaultSCRAMIterations = 310000
	// MinSCRAMIterations is the lowest iteration count accepted in a
	// credential file or for a new credential.
	MinSCRAMIterations = 10000
	// scramSaltLen is the salt length of new credentials, in bytes.
	scramSaltLen = 16
)

// minSCRAMIterations is the enforced minimum; only tests lower it.
var minSCRAMIterations = MinSCRAMIterations

// SCRAMCredential is what the server stores for one SCRAM-SHA-256 user
// (RFC 5802 section 3): never the password, only the salt, the iteration
// count and the two keys derived from the salted password.
type SCRAMCredential struct {
	Username   string
	Salt       []byte
	Iterations int
	StoredKey  []byte // H(ClientKey), 32 bytes
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key"), 32 bytes
}

// NewSCRAMCredential derives the stored credential of username and
// password with a fresh random salt. Both are normalised with SASLprep
// (RFC 4013), as SCRAM clients do. iterations below MinSCRAMIterations
// are refused; 0 means DefaultSCRAMIterations.
func NewSCRAMCredential(username, password string, iterations int) (SCRAMCredential, error) {
	if iterations == 0 {
		iterations = DefaultSCRAMIterations
	}
	if iterations < minSCRAMIterations {
		return SCRAMCredential{}, fmt.Errorf("scram: %d iterations is below the minimum of %d", iterations, minSCRAMIterations)
	}
	user, err := stringprep.SASLprep.Prepare(username)
	if err != nil {
		return SCRAMCredential{}, fmt.Errorf("scram: user name: %v", err)
	}
	if err := validSCRAMUsername(user); err != nil {
		return SCRAMCredential{}, err
	}
	if password == "" {
		return SCRAMCredential{}, errors.New("scram: empty password")
	}
	c, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		return SCRAMCredential{}, fmt.Errorf("scram: %v", err)
	}
	salt := make([]byte, scramSaltLen)
	rand.Read(salt)
	sc, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return SCRAMCredential{}, fmt.Errorf("scram: %v", err)
	}
	return SCRAMCredential{Username: user, Salt: salt, Iterations: iterations, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}, nil
}

// validSCRAMUsername rejects names that cannot be stored on one line of a
// credential file.
func validSCRAMUsername(u string) error {
	switch {
	case u == "":
		return errors.New("scram: empty user name")
	case strings.HasPrefix(u, "#"):
		return errors.New("scram: user name must not start with '#'")
	case strings.TrimSpace(u) != u:
		return errors.New("scram: user name must not start or end with white space")
	case strings.ContainsFunc(u, unicode.IsControl):
		return errors.New("scram: user name contains a control character")
	}
	return nil
}

// String formats c as one credential file line (without newline):
// username:salt:iterations:stored_key:server_key, binary fields in
// standard base64.
func (c SCRAMCredential) String() string {
	enc := base64.StdEncoding
	return c.Username + ":" + enc.EncodeToString(c.Salt) + ":" + strconv.Itoa(c.Iterations) + ":" +
		enc.EncodeToString(c.StoredKey) + ":" + enc.EncodeToString(c.ServerKey)
}

// ParseSCRAMCredential parses one credential line (see
// SCRAMCredential.String). The user name may contain ':'; the last four
// fields are the salt, the iteration count and the keys.
func ParseSCRAMCredential(line string) (SCRAMCredential, error) {
	line = strings.TrimSpace(line)
	f := strings.Split(line, ":")
	if len(f) < 5 {
		return SCRAMCredential{}, errors.New("want username:salt:iterations:stored_key:server_key")
	}
	n := len(f)
	c := SCRAMCredential{Username: strings.Join(f[:n-4], ":")}
	if err := validSCRAMUsername(c.Username); err != nil {
		return SCRAMCredential{}, err
	}
	enc := base64.StdEncoding
	var err error
	if c.Salt, err = enc.DecodeString(f[n-4]); err != nil || len(c.Salt) == 0 {
		return SCRAMCredential{}, errors.New("salt is not non-empty base64")
	}
	if c.Iterations, err = strconv.Atoi(f[n-3]); err != nil {
		return SCRAMCredential{}, fmt.Errorf("iteration count %q is not a number", f[n-3])
	}
	if c.Iterations < minSCRAMIterations {
		return SCRAMCredential{}, fmt.Errorf("%d iterations is below the minimum of %d", c.Iterations, minSCRAMIterations)
	}
	if c.StoredKey, err = enc.DecodeString(f[n-2]); err != nil || len(c.StoredKey) != sha256.Size {
		return SCRAMCredential{}, errors.New("stored key is not 32 bytes of base64")
	}
	if c.ServerKey, err = enc.DecodeString(f[n-1]); err != nil || len(c.ServerKey) != sha256.Size {
		return SCRAMCredential{}, errors.New("server key is not 32 bytes of base64")
	}
	return c, nil
}

// IsSCRAMComment reports whether a credential file line carries no
// credential: blank, or a comment starting with '#'.
func IsSCRAMComment(line string) bool {
	line = strings.TrimSpace(line)
	return line == "" || line[0] == '#'
}

// ParseSCRAMCredentials reads a credential file: one credential per line,
// blank lines and '#' comments ignored. Errors name the line; a user
// listed twice is an error.
func ParseSCRAMCredentials(r io.Reader) ([]SCRAMCredential, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	var out []SCRAMCredential
	seen := map[string]int{}
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if IsSCRAMComment(line) {
			continue
		}
		c, err := ParseSCRAMCredential(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if first, dup := seen[c.Username]; dup {
			return nil, fmt.Errorf("line %d: user %q already defined on line %d", n, c.Username, first)
		}
		seen[c.Username] = n
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// LoadSCRAMFile reads and parses the credential file at path.
func LoadSCRAMFile(path string) ([]SCRAMCredential, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	creds, err := ParseSCRAMCredentials(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return creds, nil
}

// WriteSCRAMCredentials writes creds in credential file format.
func WriteSCRAMCredentials(w io.Writer, creds []SCRAMCredential) error {
	bw := bufio.NewWriter(w)
	for _, c := range creds {
		bw.WriteString(c.String())
		bw.WriteByte('\n')
	}
	return bw.Flush()
}
