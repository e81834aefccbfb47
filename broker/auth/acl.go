package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/topic"
)

// Permission is what an ACL rule grants, or deny.
type Permission uint8

const (
	// PermRead allows subscribing and receiving messages.
	PermRead Permission = 1 << iota
	// PermWrite allows publishing.
	PermWrite
	// PermDeny forbids both, whatever other rules allow.
	PermDeny
	// PermReadWrite allows both.
	PermReadWrite = PermRead | PermWrite
)

// String returns the permission as written in ACL files.
func (p Permission) String() string {
	switch p {
	case PermRead:
		return "read"
	case PermWrite:
		return "write"
	case PermReadWrite:
		return "readwrite"
	case PermDeny:
		return "deny"
	}
	return fmt.Sprintf("Permission(%d)", uint8(p))
}

func parsePermission(s string) (Permission, bool) {
	switch s {
	case "read":
		return PermRead, true
	case "write":
		return PermWrite, true
	case "readwrite":
		return PermReadWrite, true
	case "deny":
		return PermDeny, true
	}
	return 0, false
}

// Access is the operation an ACL check is about.
type Access uint8

const (
	// AccessRead is receiving a message published to a topic name.
	AccessRead Access = iota + 1
	// AccessWrite is publishing to a topic name.
	AccessWrite
	// AccessSubscribe is subscribing to a topic filter.
	AccessSubscribe
)

// String returns "read", "write" or "subscribe".
func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	case AccessSubscribe:
		return "subscribe"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// ParseAccess parses "read", "write" or "subscribe".
func ParseAccess(s string) (Access, error) {
	switch s {
	case "read":
		return AccessRead, nil
	case "write":
		return AccessWrite, nil
	case "subscribe":
		return AccessSubscribe, nil
	}
	return 0, fmt.Errorf("access %q: want read, write or subscribe", s)
}

// ACLRule is one topic rule of an ACL file.
type ACLRule struct {
	Line int // 1-based line number in the file
	// Role is true for a "role" rule, whose Subject is a role name; a
	// "user" rule's Subject is a user name or "*" (every client, anonymous
	// ones included).
	Role       bool
	Subject    string
	Filter     string // may hold %u (user name) and %c (client identifier)
	Permission Permission

	subst bool // Filter holds %u or %c
}

// String returns the rule as written in an ACL file.
func (r *ACLRule) String() string {
	kind := "user"
	if r.Role {
		kind = "role"
	}
	return fmt.Sprintf("%s %s topic %s permission %s", kind, r.Subject, r.Filter, r.Permission)
}

// filterFor returns the rule's filter for the client; ok is false when a
// substitution cannot be made: the identity is empty or holds '+', '#' or
// '/', which would widen the rule.
func (r *ACLRule) filterFor(user, clientID string) (string, bool) {
	if !r.subst {
		return r.Filter, true
	}
	f := r.Filter
	var pairs []string
	if strings.Contains(f, "%u") {
		if !safeIdentity(user) {
			return "", false
		}
		pairs = append(pairs, "%u", user)
	}
	if strings.Contains(f, "%c") {
		if !safeIdentity(clientID) {
			return "", false
		}
		pairs = append(pairs, "%c", clientID)
	}
	// One pass: a "%c" inside the user name is text, not a placeholder.
	return strings.NewReplacer(pairs...).Replace(f), true
}

func safeIdentity(s string) bool {
	return s != "" && !strings.ContainsAny(s, "+#/\x00")
}

// ACLPolicy is a parsed ACL file: topic rules and role assignments. It is
// immutable.
//
// A line is one of
//
//	user <name|*> topic <filter> permission <read|write|readwrite|deny>
//	role <role> topic <filter> permission <read|write|readwrite|deny>
//	assign <user> <role>
//
// Blank lines and lines starting with '#' are ignored; fields are
// separated by white space, so filters cannot contain spaces. In a filter,
// %u stands for the client's user name and %c for its client identifier;
// a rule with a substitution never applies to a client whose identity is
// empty or contains '+', '#' or '/'. Filters are plain topic filters: a
// shared subscription is checked on its inner filter.
//
// The rules that apply to a client are the user rules naming its user name
// or "*", and the role rules of its roles: those assigned to its user name
// by "assign" lines and those in its "roles" attribute (comma-separated,
// set by authenticators such as JWT). See ACL for how they decide.
type ACLPolicy struct {
	rules     []ACLRule
	userRules map[string][]int
	anyRules  []int
	roleRules map[string][]int
	assign    map[string][]string
}

// ParseACL parses the content of an ACL file. Errors name the line.
func ParseACL(data []byte) (*ACLPolicy, error) {
	p := &ACLPolicy{userRules: map[string][]int{}, roleRules: map[string][]int{}, assign: map[string][]string{}}
	for n, line := range numberedLines(data) {
		s := strings.TrimSpace(line)
		if s == "" || s[0] == '#' {
			continue
		}
		f := strings.Fields(s)
		switch f[0] {
		case "user", "role":
			if len(f) != 6 || f[2] != "topic" || f[4] != "permission" {
				return nil, fmt.Errorf("line %d: want %q", n, f[0]+" <name> topic <filter> permission <read|write|readwrite|deny>")
			}
			r := ACLRule{Line: n, Role: f[0] == "role", Subject: f[1], Filter: f[3]}
			if r.Role && !validRole(r.Subject) {
				return nil, fmt.Errorf("line %d: role name %q may not contain ','", n, r.Subject)
			}
			perm, ok := parsePermission(f[5])
			if !ok {
				return nil, fmt.Errorf("line %d: permission %q: want read, write, readwrite or deny", n, f[5])
			}
			r.Permission = perm
			if err := checkRuleFilter(r.Filter); err != nil {
				return nil, fmt.Errorf("line %d: filter %q: %w", n, r.Filter, err)
			}
			r.subst = strings.Contains(r.Filter, "%u") || strings.Contains(r.Filter, "%c")
			i := len(p.rules)
			p.rules = append(p.rules, r)
			switch {
			case r.Role:
				p.roleRules[r.Subject] = append(p.roleRules[r.Subject], i)
			case r.Subject == "*":
				p.anyRules = append(p.anyRules, i)
			default:
				p.userRules[r.Subject] = append(p.userRules[r.Subject], i)
			}
		case "assign":
			if len(f) != 3 {
				return nil, fmt.Errorf("line %d: want \"assign <user> <role>\"", n)
			}
			if f[1] == "*" {
				return nil, fmt.Errorf("line %d: assign needs a user name; use \"user *\" rules for every client", n)
			}
			if !validRole(f[2]) {
				return nil, fmt.Errorf("line %d: role name %q may not contain ','", n, f[2])
			}
			p.assign[f[1]] = append(p.assign[f[1]], f[2])
		default:
			return nil, fmt.Errorf("line %d: unknown keyword %q: want user, role or assign", n, f[0])
		}
	}
	return p, nil
}

func validRole(r string) bool { return r != "" && !strings.Contains(r, ",") }

// checkRuleFilter validates a rule's filter, substitutions taken as a
// plain level text.
func checkRuleFilter(f string) error {
	if strings.HasPrefix(f, "$share/") {
		return fmt.Errorf("rules apply to the inner filter of shared subscriptions; drop the $share/<group>/ prefix")
	}
	g := strings.ReplaceAll(strings.ReplaceAll(f, "%u", "x"), "%c", "x")
	return topic.ValidateFilter(g)
}

// Rules returns a copy of the policy's topic rules in file order.
func (p *ACLPolicy) Rules() []ACLRule { return append([]ACLRule(nil), p.rules...) }

// Roles returns the roles assigned to user by "assign" lines.
func (p *ACLPolicy) Roles(user string) []string { return append([]string(nil), p.assign[user]...) }

// aclSubject is the client a check is about.
type aclSubject struct {
	user, clientID string
	rolesAttr      string   // comma-separated
	roles          []string // more roles
}

// eachRule calls fn with the index of every rule that applies to s; a rule
// may be visited more than once when a role is given twice.
func (p *ACLPolicy) eachRule(s *aclSubject, fn func(i int)) {
	for _, i := range p.anyRules {
		fn(i)
	}
	if s.user != "" {
		for _, i := range p.userRules[s.user] {
			fn(i)
		}
	}
	if len(p.roleRules) == 0 {
		return
	}
	role := func(r string) {
		for _, i := range p.roleRules[r] {
			fn(i)
		}
	}
	if s.user != "" {
		for _, r := range p.assign[s.user] {
			role(r)
		}
	}
	for r := range strings.SplitSeq(s.rolesAttr, ",") {
		if r = strings.TrimSpace(r); r != "" {
			role(r)
		}
	}
	for _, r := range s.roles {
		role(r)
	}
}

// Decision is the outcome of an ACL check and the rule that decided it.
type Decision struct {
	Allowed bool
	// Rule is the deciding rule: the deny rule that forbids, or the first
	// rule (in file order) that allows. Nil when no rule applies and the
	// default (deny) decided.
	Rule *ACLRule
	// Reason explains the decision in one sentence.
	Reason string
}

// verdict is the outcome of decide: allowed, the deciding rule's index
// (-1 for the default) and why.
type verdict struct {
	allowed bool
	rule    int
	why     verdictKind
}

type verdictKind uint8

const (
	byDefault verdictKind = iota
	byAllow
	byDeny
	byOverlap
)

// decide applies the policy; name is a topic name for AccessRead and
// AccessWrite and an inner topic filter for AccessSubscribe. It does not
// allocate unless a rule has a substitution.
func (p *ACLPolicy) decide(s *aclSubject, name string, access Access, filterOnDelivery bool) verdict {
	need := PermRead
	if access == AccessWrite {
		need = PermWrite
	}
	allow, deny, overlap := -1, -1, -1
	p.eachRule(s, func(i int) {
		r := &p.rules[i]
		if r.Permission == PermDeny {
			if deny >= 0 && deny < i {
				return
			}
		} else if r.Permission&need == 0 || (allow >= 0 && allow < i) {
			return
		}
		f, ok := r.filterFor(s.user, s.clientID)
		if !ok {
			return
		}
		switch {
		case access != AccessSubscribe:
			if !topic.Matches(f, name) {
				return
			}
			if r.Permission == PermDeny {
				deny = i
			} else {
				allow = i
			}
		case r.Permission == PermDeny:
			if topic.Covers(f, name) {
				deny = i
			} else if !filterOnDelivery && (overlap < 0 || i < overlap) && filtersOverlap(f, name) {
				overlap = i
			}
		case topic.Covers(f, name):
			allow = i
		}
	})
	switch {
	case deny >= 0:
		return verdict{rule: deny, why: byDeny}
	case allow >= 0 && overlap >= 0:
		return verdict{rule: overlap, why: byOverlap}
	case allow >= 0:
		return verdict{allowed: true, rule: allow, why: byAllow}
	}
	return verdict{rule: -1}
}

// decision describes v.
func (p *ACLPolicy) decision(v verdict, access Access) Decision {
	d := Decision{Allowed: v.allowed}
	if v.rule >= 0 {
		r := p.rules[v.rule]
		d.Rule = &r
	}
	switch v.why {
	case byDeny:
		d.Reason = fmt.Sprintf("denied by line %d", d.Rule.Line)
	case byOverlap:
		d.Reason = fmt.Sprintf("the filter includes topics denied by line %d", d.Rule.Line)
	case byAllow:
		d.Reason = fmt.Sprintf("allowed by line %d", d.Rule.Line)
	default:
		if access == AccessSubscribe {
			d.Reason = "no read rule covers the whole filter (default deny)"
		} else {
			d.Reason = "no rule allows it (default deny)"
		}
	}
	return d
}

// filtersOverlap reports whether some topic name matches both filters
// (which are valid, non-shared filters).
func filtersOverlap(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	// A filter that starts with a wildcard matches no '$' topic
	// [MQTT-4.7.2-1]; a filter whose first level is literal matches only
	// topics that start with that level.
	if (isWildcardLevel(a) && b[0] == '$') || (isWildcardLevel(b) && a[0] == '$') {
		return false
	}
	for depth := 0; ; depth++ {
		al, arest, amore := strings.Cut(a, "/")
		bl, brest, bmore := strings.Cut(b, "/")
		if al == "#" || bl == "#" {
			return true
		}
		if al != "+" && bl != "+" && al != bl {
			return false
		}
		// A topic ending at this level is valid unless it is the single
		// empty level "" (not a topic name).
		endOK := depth > 0 || (al != "" && bl != "")
		switch {
		case !amore && !bmore:
			return endOK
		case !amore:
			return brest == "#" && endOK // "x/#" matches "x"
		case !bmore:
			return arest == "#" && endOK
		}
		a, b = arest, brest
	}
}

func isWildcardLevel(f string) bool { return f[0] == '+' || f[0] == '#' }

// ACLOptions configure an ACL.
type ACLOptions struct {
	// Logger receives reload messages. Default slog.Default().
	Logger *slog.Logger
	// FilterOnDelivery says that the broker calls CanReceive for every
	// message it delivers. A subscription whose filter is covered by a read
	// rule but overlaps a deny rule is then allowed, and the denied topics
	// are filtered out at delivery. When false (the default), such a
	// subscription is refused, since nothing would keep the denied topics
	// from the subscriber.
	FilterOnDelivery bool
}

// ACL is an Authorizer backed by an ACL file (see ACLPolicy for the format).
// It is safe for concurrent use, including Reload during checks.
//
// Decisions, for the rules that apply to the client:
//
//   - A deny rule wins over every rule that allows.
//   - Without a rule that allows, the answer is no (default deny).
//   - Publishing to a topic (CanPublish) needs a write or readwrite rule
//     whose filter matches the topic, and no deny rule matching it.
//   - Receiving a message (CanReceive) needs a read or readwrite rule whose
//     filter matches the topic, and no deny rule matching it.
//   - Subscribing to a filter (CanSubscribe; the inner filter of a shared
//     subscription) needs one read or readwrite rule whose filter covers the
//     requested filter: every topic the requested filter matches must match
//     the rule's filter, so a rule on "sensors/+" does not allow
//     "sensors/#", and several rules together never cover a filter that no
//     one of them covers. A deny rule that covers the requested filter
//     refuses it. A deny rule that only overlaps it (some topics match both)
//     refuses it too, unless ACLOptions.FilterOnDelivery is set, in which
//     case the subscription is allowed and CanReceive filters the denied
//     topics.
//   - Filters starting with a wildcard do not match topics starting with
//     '$', so "$SYS/#" needs a rule of its own.
type ACL struct {
	path string
	opts ACLOptions

	state    atomic.Pointer[aclState]
	reloadMu sync.Mutex
}

type aclState struct {
	policy *ACLPolicy
	sum    [sha256.Size]byte
}

// NewACL returns an ACL enforcing policy; it has no file to reload.
func NewACL(policy *ACLPolicy, opts ACLOptions) *ACL {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &ACL{opts: opts}
	a.state.Store(&aclState{policy: policy})
	return a
}

// LoadACL loads the ACL file at path.
func LoadACL(path string, opts ACLOptions) (*ACL, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &ACL{path: path, opts: opts}
	if _, err := a.load(); err != nil {
		return nil, err
	}
	return a, nil
}

// Path returns the file's path ("" for NewACL).
func (a *ACL) Path() string { return a.path }

// Policy returns the policy in force.
func (a *ACL) Policy() *ACLPolicy { return a.state.Load().policy }

// Reload reads the file again and, if it parses, puts it in force in one
// atomic step; otherwise the current policy stays and the error is
// returned. Existing subscriptions are not re-checked.
func (a *ACL) Reload() error {
	if a.path == "" {
		return nil
	}
	changed, err := a.load()
	if err == nil && changed {
		a.opts.Logger.Info("ACL file reloaded", "file", a.path, "rules", len(a.Policy().rules))
	}
	return err
}

func (a *ACL) load() (bool, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	data, err := readAuthFile(a.path, "ACL file", a.opts.Logger, false)
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(data)
	if old := a.state.Load(); old != nil && old.sum == sum {
		return false, nil
	}
	p, err := ParseACL(data)
	if err != nil {
		return false, fmt.Errorf("ACL file %s: %w", a.path, err)
	}
	a.state.Store(&aclState{policy: p, sum: sum})
	return true, nil
}

// Watch reloads the file when it changes until ctx ends (see WatchFiles).
func (a *ACL) Watch(ctx context.Context) error {
	if a.path == "" {
		<-ctx.Done()
		return nil
	}
	return WatchFiles(ctx, []string{a.path}, a.Reload, a.opts.Logger)
}

// Explain decides access for a client with the given user name, client
// identifier and roles (in addition to those the file assigns to user),
// and returns the deciding rule. name is a topic name for AccessRead and
// AccessWrite and a topic filter for AccessSubscribe (a shared
// subscription is checked on its inner filter).
func (a *ACL) Explain(user, clientID string, roles []string, name string, access Access) Decision {
	if access == AccessSubscribe {
		if _, inner, ok, err := topic.ParseShared(name); err != nil {
			return Decision{Reason: "invalid shared subscription filter: " + err.Error()}
		} else if ok {
			name = inner
		}
		if err := topic.ValidateFilter(name); err != nil {
			return Decision{Reason: "invalid topic filter: " + err.Error()}
		}
	} else if err := topic.ValidateName(name); err != nil {
		return Decision{Reason: "invalid topic name: " + err.Error()}
	}
	s := &aclSubject{user: user, clientID: clientID, roles: roles}
	p := a.Policy()
	return p.decision(p.decide(s, name, access, a.opts.FilterOnDelivery), access)
}

func (a *ACL) check(c *broker.ClientInfo, name string, access Access) bool {
	s := aclSubject{user: c.Username, clientID: c.ClientID, rolesAttr: c.Attributes["roles"]}
	return a.Policy().decide(&s, name, access, a.opts.FilterOnDelivery).allowed
}

// CanPublish implements broker.Authorizer.
func (a *ACL) CanPublish(_ context.Context, c *broker.ClientInfo, topicName string) bool {
	return a.check(c, topicName, AccessWrite)
}

// CanSubscribe implements broker.Authorizer; filter is the inner filter of
// a shared subscription.
func (a *ACL) CanSubscribe(_ context.Context, c *broker.ClientInfo, filter string) bool {
	return a.check(c, filter, AccessSubscribe)
}

// CanReceive reports whether the client may receive a message published
// to topicName.
func (a *ACL) CanReceive(_ context.Context, c *broker.ClientInfo, topicName string) bool {
	return a.check(c, topicName, AccessRead)
}
