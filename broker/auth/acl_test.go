package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

const fxACL = `# sensors: read for everyone, write for devices
user * topic sensors/+ permission read
user * topic public/# permission readwrite
user * topic public/secret/# permission deny

# per-device topics
user * topic devices/%u/# permission readwrite
user * topic clients/%c/inbox permission read

user alice topic alice/# permission readwrite
user alice topic sensors/# permission write
user bob topic bob/only permission write

role ops topic ops/# permission readwrite
role ops topic ops/audit/# permission deny
role auditors topic ops/audit/# permission read
assign carol ops
assign dave auditors
assign dave ops
`

func fxLoadACL(t testing.TB, content string, opts ACLOptions) *ACL {
	t.Helper()
	a, err := LoadACL(fxWriteFile(t, t.TempDir(), "acl", content), opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseACL(t *testing.T) {
	p, err := ParseACL([]byte(fxACL))
	if err != nil {
		t.Fatal(err)
	}
	rules := p.Rules()
	if len(rules) != 11 {
		t.Fatalf("%d rules", len(rules))
	}
	if r := rules[0]; r.Line != 2 || r.Role || r.Subject != "*" || r.Filter != "sensors/+" || r.Permission != PermRead {
		t.Errorf("rule 0: %+v", r)
	}
	if r := rules[8]; r.Line != 14 || !r.Role || r.Subject != "ops" || r.Permission != PermReadWrite {
		t.Errorf("rule 8: %+v", r)
	}
	if got := rules[3].String(); got != "user * topic devices/%u/# permission readwrite" {
		t.Errorf("String() = %q", got)
	}
	if got := strings.Join(p.Roles("dave"), ","); got != "auditors,ops" {
		t.Errorf("dave's roles %q", got)
	}
	bad := []struct{ content, want string }{
		{"user alice topic a/b\n", "line 1: want \"user <name> topic"},
		{"\nuser alice filter a/b permission read\n", "line 2: want"},
		{"role ops topic a/b permission read extra\n", "line 1: want \"role <name> topic"},
		{"user alice topic a/b permission readonly\n", `line 1: permission "readonly"`},
		{"user alice topic a/#/b permission read\n", `line 1: filter "a/#/b"`},
		{"user alice topic a+/b permission read\n", `line 1: filter "a+/b"`},
		{"user alice topic $share/g/a permission read\n", "line 1: filter \"$share/g/a\": rules apply to the inner filter"},
		{"assign alice\n", `line 1: want "assign <user> <role>"`},
		{"assign * ops\n", "line 1: assign needs a user name"},
		{"assign alice a,b\n", "line 1: role name \"a,b\""},
		{"role a,b topic x permission read\n", "line 1: role name \"a,b\""},
		{"# ok\ngrant alice a read\n", `line 2: unknown keyword "grant"`},
	}
	for _, c := range bad {
		_, err := ParseACL([]byte(c.content))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseACL(%q) = %v, want an error containing %q", c.content, err, c.want)
		}
	}
}

// TestACLSemantics is the decision table of ACL.
func TestACLSemantics(t *testing.T) {
	a := fxLoadACL(t, fxACL, ACLOptions{})
	cases := []struct {
		user, clientID, roles string
		name                  string
		access                Access
		allowed               bool
		line                  int // deciding rule, 0 = default
	}{
		// Subscribe needs one read rule that covers the whole filter.
		{"", "x", "", "sensors/+", AccessSubscribe, true, 2},
		{"", "x", "", "sensors/kitchen", AccessSubscribe, true, 2},
		{"", "x", "", "sensors/#", AccessSubscribe, false, 0}, // "sensors/#" is not inside "sensors/+"
		{"", "x", "", "sensors/a/b", AccessSubscribe, false, 0},
		{"", "x", "", "#", AccessSubscribe, false, 0},
		{"alice", "x", "", "sensors/#", AccessSubscribe, false, 0}, // write does not grant read
		{"", "x", "", "sensors/kitchen", AccessRead, true, 2},
		{"", "x", "", "sensors/kitchen", AccessWrite, false, 0},
		{"alice", "x", "", "sensors/a/b", AccessWrite, true, 11},
		// Deny wins, for topics and for filters it covers or overlaps.
		{"", "x", "", "public/news", AccessWrite, true, 3},
		{"", "x", "", "public/secret/x", AccessWrite, false, 4},
		{"", "x", "", "public/secret/x", AccessRead, false, 4},
		{"", "x", "", "public/secret", AccessRead, false, 4}, // "a/#" matches "a"
		{"", "x", "", "public/secret/#", AccessSubscribe, false, 4},
		{"", "x", "", "public/+/x", AccessSubscribe, false, 4}, // overlaps the deny rule
		{"", "x", "", "public/#", AccessSubscribe, false, 4},
		{"", "x", "", "public/news/#", AccessSubscribe, true, 3},
		// %u and %c.
		{"dev1", "x", "", "devices/dev1/temp", AccessWrite, true, 7},
		{"dev1", "x", "", "devices/dev2/temp", AccessWrite, false, 0},
		{"dev1", "x", "", "devices/dev1/#", AccessSubscribe, true, 7},
		{"", "x", "", "devices//temp", AccessWrite, false, 0}, // anonymous: %u never matches
		{"+", "x", "", "devices/dev2/temp", AccessWrite, false, 0},
		{"#", "x", "", "devices/dev2/temp", AccessWrite, false, 0},
		{"a/b", "x", "", "devices/a/b/temp", AccessWrite, false, 0},
		{"+", "x", "", "devices/+/#", AccessSubscribe, false, 0},
		{"", "c9", "", "clients/c9/inbox", AccessSubscribe, true, 8},
		{"", "c9", "", "clients/c8/inbox", AccessRead, false, 0},
		{"", "c/9", "", "clients/c/9/inbox", AccessRead, false, 0},
		{"", "#", "", "clients/x/inbox", AccessRead, false, 0},
		// User rules.
		{"alice", "x", "", "alice/notes", AccessWrite, true, 10},
		{"alice", "x", "", "alice/#", AccessSubscribe, true, 10},
		{"bob", "x", "", "alice/notes", AccessWrite, false, 0},
		{"bob", "x", "", "bob/only", AccessWrite, true, 12},
		{"bob", "x", "", "bob/only", AccessRead, false, 0},
		// Roles by assignment and by attribute.
		{"carol", "x", "", "ops/deploy", AccessWrite, true, 14},
		{"carol", "x", "", "ops/audit/log", AccessRead, false, 15},
		{"carol", "x", "", "ops/#", AccessSubscribe, false, 15}, // overlaps the deny on ops/audit/#
		{"carol", "x", "", "ops/+", AccessSubscribe, false, 15}, // "ops/audit" is in both
		{"carol", "x", "", "ops/deploy/+", AccessSubscribe, true, 14},
		{"dave", "x", "", "ops/audit/log", AccessRead, false, 15}, // ops' deny wins over auditors' read
		{"erin", "x", "", "ops/deploy", AccessWrite, false, 0},
		{"erin", "x", "ops", "ops/deploy", AccessWrite, true, 14},
		{"erin", "x", " auditors , other", "ops/audit/x", AccessRead, true, 16},
		{"", "x", "ops", "ops/deploy", AccessWrite, true, 14}, // attribute roles apply to any identity
		// '$' topics need their own rules.
		{"alice", "x", "", "$SYS/broker/load", AccessRead, false, 0},
	}
	for _, c := range cases {
		ci := &broker.ClientInfo{Username: c.user, ClientID: c.clientID}
		if c.roles != "" {
			ci.Attributes = map[string]string{"roles": c.roles}
		}
		var got bool
		switch c.access {
		case AccessRead:
			got = a.CanReceive(context.Background(), ci, c.name)
		case AccessWrite:
			got = a.CanPublish(context.Background(), ci, c.name)
		case AccessSubscribe:
			got = a.CanSubscribe(context.Background(), ci, c.name)
		}
		var roles []string
		for r := range strings.SplitSeq(c.roles, ",") {
			if r = strings.TrimSpace(r); r != "" {
				roles = append(roles, r)
			}
		}
		d := a.Explain(c.user, c.clientID, roles, c.name, c.access)
		line := 0
		if d.Rule != nil {
			line = d.Rule.Line
		}
		if got != c.allowed || d.Allowed != c.allowed || line != c.line {
			t.Errorf("user %q client %q roles %q %s %q: check %v, explain %v by line %d (%s); want %v by line %d",
				c.user, c.clientID, c.roles, c.access, c.name, got, d.Allowed, line, d.Reason, c.allowed, c.line)
		}
	}
}

// Without any ACL line, everything is denied.
func TestACLDefaultDeny(t *testing.T) {
	a := fxLoadACL(t, "# nothing\n", ACLOptions{})
	ci := &broker.ClientInfo{Username: "alice", ClientID: "c"}
	if a.CanPublish(context.Background(), ci, "a") || a.CanSubscribe(context.Background(), ci, "#") || a.CanReceive(context.Background(), ci, "a") {
		t.Fatal("empty ACL allows")
	}
	d := a.Explain("alice", "c", nil, "a/b", AccessWrite)
	if d.Allowed || d.Rule != nil || !strings.Contains(d.Reason, "default deny") {
		t.Fatalf("explain: %+v", d)
	}
}

// With FilterOnDelivery, a subscription that only overlaps a deny rule is
// allowed, and CanReceive filters the denied topics.
func TestACLFilterOnDelivery(t *testing.T) {
	a := fxLoadACL(t, fxACL, ACLOptions{FilterOnDelivery: true})
	ci := &broker.ClientInfo{Username: "carol", ClientID: "c"}
	ctx := context.Background()
	if !a.CanSubscribe(ctx, ci, "ops/#") {
		t.Fatal("ops/# refused")
	}
	if a.CanSubscribe(ctx, ci, "ops/audit/#") {
		t.Fatal("ops/audit/# (covered by the deny rule) allowed")
	}
	if !a.CanReceive(ctx, ci, "ops/deploy") || a.CanReceive(ctx, ci, "ops/audit/x") {
		t.Fatal("delivery check")
	}
}

// Explain checks a shared subscription on its inner filter and reports
// invalid input.
func TestACLExplainShared(t *testing.T) {
	a := fxLoadACL(t, fxACL, ACLOptions{})
	if d := a.Explain("", "x", nil, "$share/g/sensors/+", AccessSubscribe); !d.Allowed || d.Rule.Line != 2 {
		t.Fatalf("shared: %+v", d)
	}
	if d := a.Explain("", "x", nil, "$share/g/sensors/#", AccessSubscribe); d.Allowed {
		t.Fatalf("shared sensors/#: %+v", d)
	}
	// The broker passes the inner filter to CanSubscribe.
	if !a.CanSubscribe(context.Background(), &broker.ClientInfo{ClientID: "x"}, "sensors/+") {
		t.Fatal("inner filter refused")
	}
	for _, c := range []struct {
		name   string
		access Access
	}{{"a/#/b", AccessSubscribe}, {"$share/g", AccessSubscribe}, {"a/+", AccessWrite}, {"", AccessRead}} {
		if d := a.Explain("alice", "x", nil, c.name, c.access); d.Allowed || !strings.Contains(d.Reason, "invalid") {
			t.Errorf("%s %q: %+v", c.access, c.name, d)
		}
	}
}

func TestACLReload(t *testing.T) {
	log, logs := fxLogger()
	path := fxWriteFile(t, t.TempDir(), "acl", "user alice topic a permission write\n")
	a, err := LoadACL(path, ACLOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ci := &broker.ClientInfo{Username: "alice"}
	ctx := context.Background()
	if !a.CanPublish(ctx, ci, "a") || a.CanPublish(ctx, ci, "b") {
		t.Fatal("initial rules")
	}
	fxReplaceFile(t, path, "user alice topic b permission write\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if a.CanPublish(ctx, ci, "a") || !a.CanPublish(ctx, ci, "b") || !strings.Contains(logs.String(), "ACL file reloaded") {
		t.Fatal("reloaded rules")
	}
	fxReplaceFile(t, path, "user alice topic b permission all\n")
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("broken file: %v", err)
	}
	if !a.CanPublish(ctx, ci, "b") {
		t.Fatal("rules lost after a failed reload")
	}
	// Watch.
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a.Watch(wctx) }()
	fxReplaceFile(t, path, "user alice topic c permission write\n")
	fxWaitFor(t, "the watcher to load the new rule", func() bool { return a.CanPublish(ctx, ci, "c") })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A policy without a file.
	p, _ := ParseACL([]byte("user * topic x permission read\n"))
	n := NewACL(p, ACLOptions{})
	if n.Reload() != nil || n.Path() != "" || !n.CanSubscribe(ctx, ci, "x") {
		t.Fatal("NewACL")
	}
}

func TestFiltersOverlap(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/#", true},
		{"+/x", "y/+", true},
		{"+/x", "y/z", false},
		{"a/#", "a", true},
		{"a", "a/#", true},
		{"a/b/c", "a/+", false},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"#", "+", true},
		{"/#", "+", false}, // only the topic "" would match both
		{"/#", "+/x", true},
		{"/", "+/+", true},
		{"a/+/c", "a/b/+", true},
		{"a/+/c", "a/b/d", false},
	}
	for _, c := range cases {
		if got := filtersOverlap(c.a, c.b); got != c.want {
			t.Errorf("filtersOverlap(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := filtersOverlap(c.b, c.a); got != c.want {
			t.Errorf("filtersOverlap(%q, %q) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}

func TestParseAccessAndPermission(t *testing.T) {
	for _, s := range []string{"read", "write", "subscribe"} {
		a, err := ParseAccess(s)
		if err != nil || a.String() != s {
			t.Errorf("ParseAccess(%q) = %v %v", s, a, err)
		}
	}
	if _, err := ParseAccess("publish"); err == nil {
		t.Error("ParseAccess(publish) succeeded")
	}
	for _, s := range []string{"read", "write", "readwrite", "deny"} {
		p, ok := parsePermission(s)
		if !ok || p.String() != s {
			t.Errorf("parsePermission(%q) = %v %v", s, p, ok)
		}
	}
}

// The publish check does not allocate for rules without substitutions.
func TestACLCheckAllocations(t *testing.T) {
	ci := &broker.ClientInfo{Username: "carol", ClientID: "c", Attributes: map[string]string{"roles": "auditors, x"}}
	ctx := context.Background()
	p, _ := ParseACL([]byte("user carol topic ops/# permission write\nrole auditors topic a/# permission read\n"))
	b := NewACL(p, ACLOptions{})
	if n := testing.AllocsPerRun(100, func() { b.CanPublish(ctx, ci, "ops/deploy") }); n != 0 {
		t.Errorf("CanPublish allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { b.CanSubscribe(ctx, ci, "a/+") }); n != 0 {
		t.Errorf("CanSubscribe allocates %v times", n)
	}
}

// End to end with our client, v5 and 3.1.1: subscriptions are checked by
// subsumption (also the inner filter of shared subscriptions), publishes
// by topic, and roles come from the file and from the authenticator's
// "roles" attribute.
func TestACLEndToEnd(t *testing.T) {
	pf := fxPasswordFile(t, PasswordFileOptions{}, "alice", "pw", "carol", "pw")
	// erin authenticates through a provider that sets the roles attribute.
	erin := broker.AuthenticatorFunc(func(_ context.Context, req *broker.AuthRequest) broker.AuthResult {
		if req.Client.Username == "erin" && string(req.Password) == "token" {
			return broker.AuthResult{Code: packet.Success, Attributes: map[string]string{"roles": "ops"}}
		}
		return broker.AuthResult{Code: packet.BadUserNameOrPassword}
	})
	authn := Chain(fxByUser{"erin", erin}, pf)
	b := fxStart(t, broker.Config{Authenticator: authn, Authorizer: fxLoadACL(t, fxACL, ACLOptions{})})
	inproc := make(chan string, 100)
	unsub, err := b.Subscribe("#", 1, func(m *broker.Message) { inproc <- m.Topic })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	// waitInproc returns the topics routed up to and including marker.
	waitInproc := func(marker string) []string {
		var got []string
		for {
			select {
			case tp := <-inproc:
				got = append(got, tp)
				if tp == marker {
					return got
				}
			case <-time.After(fxTimeout):
				t.Fatalf("marker %s not routed; got %v", marker, got)
			}
		}
	}
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		alice := fxDial(t, b.url(), client.Options{Version: v, ClientID: "alice", Username: "alice", Password: []byte("pw")})
		for _, f := range []struct {
			filter string
			ok     bool
		}{
			{"sensors/+", true},
			{"sensors/#", false},
			{"$share/g/sensors/+", true},
			{"$share/g/sensors/#", false},
			{"alice/#", true},
			{"public/#", false},
			{"devices/alice/#", true},
			{"devices/+/#", false},
		} {
			_, err := fxSubscribe(alice, f.filter)
			if (err == nil) != f.ok {
				t.Errorf("v%d alice subscribe %s: %v, want allowed %v", v, f.filter, err, f.ok)
			}
			if err != nil && v == packet.V5 && !errors.Is(err, packet.NotAuthorized) {
				t.Errorf("v%d alice subscribe %s: %v, want Not Authorized", v, f.filter, err)
			}
		}
		// Publishes: denied ones are not routed (v5 tells the client).
		for _, tp := range []string{"public/secret/x", "bob/only", "alice/ok"} {
			err := fxPublish(alice, tp)
			if v == packet.V5 && (err == nil) != (tp == "alice/ok") {
				t.Errorf("v%d alice publish %s: %v", v, tp, err)
			}
		}
		if got := waitInproc("alice/ok"); len(got) != 1 {
			t.Errorf("v%d: routed %v, want only alice/ok", v, got)
		}
		fxClose(alice)

		carol := fxDial(t, b.url(), client.Options{Version: v, ClientID: "carol", Username: "carol", Password: []byte("pw")})
		if err := fxPublish(carol, "ops/deploy"); err != nil {
			t.Errorf("v%d carol (role ops by assign): %v", v, err)
		}
		waitInproc("ops/deploy")
		fxClose(carol)

		e := fxDial(t, b.url(), client.Options{Version: v, ClientID: "erin", Username: "erin", Password: []byte("token")})
		if _, err := fxSubscribe(e, "ops/deploy/#"); err != nil {
			t.Errorf("v%d erin (role ops by attribute) subscribe: %v", v, err)
		}
		if _, err := fxSubscribe(e, "ops/audit/#"); err == nil {
			t.Errorf("v%d erin subscribed to the denied ops/audit/#", v)
		}
		fxClose(e)
	}
}

// fxByUser is a Provider for one user name, without method.
type fxByUser struct {
	user string
	broker.Authenticator
}

func (f fxByUser) Handles(req *broker.AuthRequest) bool {
	return req.Method == "" && req.Client.Username == f.user
}
