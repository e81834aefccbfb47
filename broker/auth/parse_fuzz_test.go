package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/mqtt5go/mqtt5/topic"
)

const fzPHC = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"

func FuzzPHC(f *testing.F) {
	for _, s := range []string{
		fzPHC,
		"$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$c29tZXNhbHRzb21lc2FsdA",
		"$argon2id$v=019$m=8,t=1,p=1$c29tZXNhbHQ$c29tZXNhbHRzb21lc2FsdA",
		"$argon2id$v=19$m=08,t=1,p=1$c29tZXNhbHQ$c29tZXNhbHRzb21lc2FsdA",
		"$argon2i$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$c29tZXNhbHRzb21lc2FsdA",
		"$argon2id$v=19$m=4294967295,t=1,p=255$c29tZXNhbHQ$c29tZXNhbHRzb21lc2FsdA",
		"$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ=$c29tZXNhbHRzb21lc2FsdA",
		"$argon2id$v=19$t=3,m=65536,p=4$c29tZXNhbHQ$c29tZXNhbHRzb21lc2FsdA",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseArgon2(s)
		if err != nil {
			return
		}
		if err := h.Params.validate(); err != nil {
			t.Fatalf("ParseArgon2(%q) accepted parameters out of bounds: %v", s, err)
		}
		if int(h.Params.SaltLen) != len(h.Salt) || int(h.Params.KeyLen) != len(h.Key) {
			t.Fatalf("ParseArgon2(%q): lengths %+v for a salt of %d and a key of %d bytes", s, h.Params, len(h.Salt), len(h.Key))
		}
		// Parse, format, parse: equal. The accepted form is the canonical
		// one, so formatting gives back the input.
		out := h.String()
		h2, err := ParseArgon2(out)
		if err != nil {
			t.Fatalf("ParseArgon2(%q) = %v; formatted from %q", out, err, s)
		}
		if !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip of %q: %+v, then %+v", s, h, h2)
		}
		if out != s {
			t.Fatalf("ParseArgon2 accepted the non-canonical %q (canonical %q)", s, out)
		}
	})
}

func FuzzPasswordFile(f *testing.F) {
	f.Add([]byte("# users\nalice:" + fzPHC + "\n\n  bob:" + fzPHC + "\r\n"))
	f.Add([]byte("alice:" + fzPHC + "\nalice:" + fzPHC + "\n"))
	f.Add([]byte(" a b :" + fzPHC))
	f.Add([]byte(":" + fzPHC))
	f.Add([]byte("alice\n"))
	f.Add([]byte("alice:x:" + fzPHC))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParsePasswordFile(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error does not name the line: %v", err)
			}
			return
		}
		var out bytes.Buffer
		seen := map[string]bool{}
		prev := 0
		for _, e := range entries {
			u := e.Username
			if u == "" || strings.TrimSpace(u) != u || strings.ContainsAny(u, ":\n") || u[0] == '#' {
				t.Fatalf("user name %q accepted", u)
			}
			if seen[u] {
				t.Fatalf("user %q accepted twice", u)
			}
			seen[u] = true
			if e.Line <= prev {
				t.Fatalf("line numbers out of order: %d after %d", e.Line, prev)
			}
			prev = e.Line
			out.WriteString(u + ":" + e.Hash.String() + "\n")
		}
		again, err := ParsePasswordFile(out.Bytes())
		if err != nil {
			t.Fatalf("re-parsing the formatted file: %v\n%s", err, out.Bytes())
		}
		if len(again) != len(entries) {
			t.Fatalf("round trip: %d entries, then %d", len(entries), len(again))
		}
		for i := range again {
			if again[i].Username != entries[i].Username || !reflect.DeepEqual(again[i].Hash, entries[i].Hash) {
				t.Fatalf("round trip of entry %d: %+v, then %+v", i, entries[i], again[i])
			}
		}
	})
}

// fzACLFile is a policy with every kind of line.
const fzACLFile = `# sensors
user * topic sensors/+ permission read
user * topic public/# permission readwrite
user * topic public/secret/# permission deny
user * topic devices/%u/# permission readwrite
user * topic clients/%c/inbox permission read
user alice topic alice/# permission readwrite
user alice topic sensors/# permission write
role ops topic ops/# permission readwrite
role ops topic ops/audit/# permission deny
role auditors topic ops/audit/# permission read
user * topic $SYS/# permission read
assign carol ops
assign dave auditors
`

// fzRefFilter is the rule's filter for the client, with %u and %c
// replaced at once, or false when an identity it needs is unsafe.
func fzRefFilter(r ACLRule, user, clientID string) (string, bool) {
	unsafe := func(s string) bool { return s == "" || strings.ContainsAny(s, "+#/\x00") }
	if strings.Contains(r.Filter, "%u") && unsafe(user) {
		return "", false
	}
	if strings.Contains(r.Filter, "%c") && unsafe(clientID) {
		return "", false
	}
	var b strings.Builder
	f := r.Filter
	for i := 0; i < len(f); i++ {
		if f[i] == '%' && i+1 < len(f) && (f[i+1] == 'u' || f[i+1] == 'c') {
			if f[i+1] == 'u' {
				b.WriteString(user)
			} else {
				b.WriteString(clientID)
			}
			i++
			continue
		}
		b.WriteByte(f[i])
	}
	return b.String(), true
}

// fzRefDecide decides as the ACL documentation says, rule by rule.
func fzRefDecide(p *ACLPolicy, user, clientID string, roles []string, name string, access Access, fod bool) bool {
	if access == AccessSubscribe {
		_, inner, ok, err := topic.ParseShared(name)
		if err != nil {
			return false
		}
		if ok {
			name = inner
		}
		if topic.ValidateFilter(name) != nil {
			return false
		}
	} else if topic.ValidateName(name) != nil {
		return false
	}
	var myRoles []string
	if user != "" {
		myRoles = p.Roles(user)
	}
	myRoles = append(myRoles, roles...)
	need := PermRead
	if access == AccessWrite {
		need = PermWrite
	}
	allowed, denied, overlap := false, false, false
	for _, r := range p.Rules() {
		if r.Role && !slices.Contains(myRoles, r.Subject) || !r.Role && r.Subject != "*" && (user == "" || r.Subject != user) {
			continue
		}
		f, ok := fzRefFilter(r, user, clientID)
		if !ok {
			continue
		}
		if access != AccessSubscribe {
			if !topic.Matches(f, name) {
				continue
			}
			if r.Permission == PermDeny {
				denied = true
			} else if r.Permission&need != 0 {
				allowed = true
			}
			continue
		}
		switch {
		case r.Permission == PermDeny && topic.Covers(f, name):
			denied = true
		case r.Permission == PermDeny && !fod && filtersOverlap(f, name):
			overlap = true
		case r.Permission&PermRead != 0 && topic.Covers(f, name):
			allowed = true
		}
	}
	return allowed && !denied && !overlap
}

func FuzzACL(f *testing.F) {
	f.Add([]byte(fzACLFile), "alice", "c1", "alice/x", byte(2))
	f.Add([]byte(fzACLFile), "bob", "c1", "devices/bob/t", byte(2))
	f.Add([]byte(fzACLFile), "%c", "bob", "devices/bob/t", byte(2))
	f.Add([]byte(fzACLFile), "carol", "c1", "ops/#", byte(3))
	f.Add([]byte(fzACLFile), "carol", "c1", "ops/audit/x", byte(1))
	f.Add([]byte(fzACLFile), "x", "c1", "public/#", byte(3|4))
	f.Add([]byte(fzACLFile), "x", "c1", "$share/g/sensors/+", byte(3))
	f.Add([]byte(fzACLFile), "", "c1", "$SYS/broker", byte(1|8))
	f.Add([]byte("user a topic a/+/# permission read\nassign a r\nrole r topic # permission deny\n"), "a", "", "a/b", byte(1))
	f.Add([]byte("user a topic $share/g/x permission read\n"), "a", "", "x", byte(1))
	f.Add([]byte("bogus line\n"), "a", "", "x", byte(1))
	f.Fuzz(func(t *testing.T, data []byte, user, clientID, name string, sel byte) {
		p, err := ParseACL(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error does not name the line: %v", err)
			}
			return
		}
		// Each rule formats to a line that parses back to it.
		for _, r := range p.Rules() {
			q, err := ParseACL([]byte(r.String()))
			if err != nil {
				t.Fatalf("rule %q does not parse back: %v", r.String(), err)
			}
			got := q.Rules()
			if len(got) != 1 {
				t.Fatalf("rule %q parses to %d rules", r.String(), len(got))
			}
			got[0].Line = r.Line
			if !reflect.DeepEqual(got[0], r) {
				t.Fatalf("rule round trip: %+v, then %+v", r, got[0])
			}
		}
		access := Access(sel%3 + 1)
		fod := sel&4 != 0
		var roles []string
		if sel&8 != 0 {
			roles = []string{"ops"}
		}
		a := NewACL(p, ACLOptions{FilterOnDelivery: fod})
		d := a.Explain(user, clientID, roles, name, access)
		want := fzRefDecide(p, user, clientID, roles, name, access, fod)
		if d.Allowed != want {
			t.Fatalf("Explain(user %q, client %q, roles %q, %q, %v, filter on delivery %v) = %+v, the documented rules say %v",
				user, clientID, roles, name, access, fod, d, want)
		}
		if d.Allowed && (d.Rule == nil || d.Rule.Permission == PermDeny) {
			t.Fatalf("allowed by %+v", d.Rule)
		}
	})
}

func FuzzSCRAMCredentials(f *testing.F) {
	key := bytes.Repeat([]byte{0x5a}, 32)
	line := SCRAMCredential{Username: "alice", Salt: []byte("saltsaltsaltsalt"), Iterations: 10000, StoredKey: key, ServerKey: key}.String()
	f.Add([]byte("# credentials\n" + line + "\n\n" + strings.Replace(line, "alice", "a:b:c", 1) + "\r\n"))
	f.Add([]byte(line + "\n" + line + "\n"))
	f.Add([]byte(strings.Replace(line, "alice", " alice", 1)))
	f.Add([]byte(strings.Replace(line, "10000", "+0010000", 1)))
	f.Add([]byte(strings.Replace(line, "10000", "99", 1)))
	f.Add([]byte(strings.Replace(line, "alice", "#alice", 1)))
	f.Add([]byte("alice:c2FsdA==:10000:x:y"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// One line on its own.
		first, _, _ := bytes.Cut(data, []byte("\n"))
		if c, err := ParseSCRAMCredential(string(first)); err == nil {
			fzCheckSCRAM(t, c)
			back, err := ParseSCRAMCredential(c.String())
			if err != nil {
				t.Fatalf("ParseSCRAMCredential(%q) = %v; formatted from %q", c.String(), err, first)
			}
			if !reflect.DeepEqual(back, c) {
				t.Fatalf("round trip of %q: %+v, then %+v", first, c, back)
			}
		}
		// The whole file.
		creds, err := ParseSCRAMCredentials(bytes.NewReader(data))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, c := range creds {
			fzCheckSCRAM(t, c)
			if seen[c.Username] {
				t.Fatalf("user %q accepted twice", c.Username)
			}
			seen[c.Username] = true
		}
		var buf bytes.Buffer
		if err := WriteSCRAMCredentials(&buf, creds); err != nil {
			t.Fatal(err)
		}
		back, err := ParseSCRAMCredentials(&buf)
		if err != nil {
			t.Fatalf("re-parsing the written file: %v", err)
		}
		if len(back) != len(creds) || (len(creds) > 0 && !reflect.DeepEqual(back, creds)) {
			t.Fatalf("file round trip: %+v, then %+v", creds, back)
		}
	})
}

func fzCheckSCRAM(t *testing.T, c SCRAMCredential) {
	t.Helper()
	if err := validSCRAMUsername(c.Username); err != nil {
		t.Fatalf("user name %q accepted: %v", c.Username, err)
	}
	if len(c.Salt) == 0 || len(c.StoredKey) != sha256.Size || len(c.ServerKey) != sha256.Size || c.Iterations < minSCRAMIterations {
		t.Fatalf("credential accepted: %+v", c)
	}
}

func FuzzPlain(f *testing.F) {
	f.Add([]byte("\x00alice\x00secret"))
	f.Add([]byte("alice\x00alice\x00secret"))
	f.Add([]byte("\x00\x00secret"))
	f.Add([]byte("\x00alice\x00"))
	f.Add([]byte("\x00alice\x00se\x00cret"))
	f.Add([]byte("\x00al\xffice\x00secret"))
	f.Add(append([]byte("\x00alice\x00"), bytes.Repeat([]byte("p"), 1025)...))
	f.Fuzz(func(t *testing.T, msg []byte) {
		authzid, authcid, passwd, err := ParsePlain(msg)
		// Reference: RFC 4616 message = [authzid] NUL authcid NUL passwd,
		// with the documented bounds.
		parts := bytes.Split(msg, []byte{0})
		want := len(parts) == 3 && len(parts[1]) > 0 && len(parts[2]) > 0
		for _, p := range parts {
			if len(p) > maxPlainField || !utf8.Valid(p) {
				want = false
			}
		}
		if (err == nil) != want {
			t.Fatalf("ParsePlain(%q) = %v, want accepted %v", msg, err, want)
		}
		if err != nil {
			return
		}
		joined := authzid + "\x00" + authcid + "\x00" + string(passwd)
		if joined != string(msg) {
			t.Fatalf("ParsePlain(%q) = %q %q %q", msg, authzid, authcid, passwd)
		}
	})
}

func FuzzFingerprints(f *testing.F) {
	sum := sha256.Sum256([]byte("x"))
	lower := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(lower); i += 2 {
		colons = append(colons, strings.ToUpper(lower[i:i+2]))
	}
	f.Add([]byte("# map\n" + lower + " alice\n\n" + strings.Join(colons, ":") + "\tbob\r\n"))
	f.Add([]byte(lower + " alice\n" + strings.ToUpper(lower) + " bob\n"))
	f.Add([]byte(lower + " alice extra\n"))
	f.Add([]byte(lower[:62] + " alice\n"))
	f.Add([]byte("zz" + lower[2:] + " alice\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseFingerprints(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error does not name the line: %v", err)
			}
			return
		}
		var out bytes.Buffer
		for fp, user := range m {
			if b, err := hex.DecodeString(fp); err != nil || len(b) != sha256.Size || strings.ToLower(fp) != fp {
				t.Fatalf("fingerprint %q accepted", fp)
			}
			if user == "" || strings.ContainsFunc(user, unicode.IsSpace) {
				t.Fatalf("user name %q accepted", user)
			}
			out.WriteString(fp + " " + user + "\n")
		}
		back, err := ParseFingerprints(out.Bytes())
		if err != nil || !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip: %v, %v then %v", err, m, back)
		}
	})
}

func FuzzCertAuthSpec(f *testing.F) {
	for _, s := range []string{"cn", "san", "san:dns", "san:email", "san:uri", "fingerprint:/etc/fp", "cn:x", "san:", "san:ip", "fingerprint", "fingerprint:", "", "fingerprint:a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		cfg, err := ParseCertAuthSpec(spec)
		if err != nil {
			return
		}
		var canon string
		switch cfg.Source {
		case CertCN:
			canon = "cn"
		case CertSAN:
			canon = "san"
			if cfg.SANType != "" {
				canon += ":" + cfg.SANType
			}
			if _, err := NewCertAuth(cfg); err != nil {
				t.Fatalf("ParseCertAuthSpec(%q) = %+v, which NewCertAuth refuses: %v", spec, cfg, err)
			}
		case CertFingerprint:
			if cfg.FingerprintFile == "" {
				t.Fatalf("ParseCertAuthSpec(%q): fingerprint without file", spec)
			}
			canon = "fingerprint:" + cfg.FingerprintFile
		default:
			t.Fatalf("ParseCertAuthSpec(%q): source %d", spec, cfg.Source)
		}
		if canon != spec {
			t.Fatalf("ParseCertAuthSpec accepted %q, which is not one of the documented forms (%q)", spec, canon)
		}
	})
}
