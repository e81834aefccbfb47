package client

import (
	"errors"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/topic"
)

// fzLines splits s into non-empty lines.
func fzLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// fzNamespaceErr checks the error contract of the validators: nil, or a
// *NamespaceError for op and name matching ErrNamespace.
func fzNamespaceErr(t *testing.T, err error, op, name string) {
	t.Helper()
	if err == nil {
		return
	}
	var ne *NamespaceError
	if !errors.As(err, &ne) || !errors.Is(err, ErrNamespace) || ne.Op != op || ne.Topic != name || ne.Reason == "" {
		t.Fatalf("%s %q: error %#v", op, name, err)
	}
	if c := checkNamespace(nsFunc{err}, op, name); c != err {
		t.Fatalf("checkNamespace rewrapped %v as %v", err, c)
	}
}

// nsFunc is a validator returning a fixed error.
type nsFunc struct{ err error }

func (v nsFunc) ValidatePublish(string) error   { return v.err }
func (v nsFunc) ValidateSubscribe(string) error { return v.err }

// fzWitness builds a topic name that filter f matches and that starts
// with prefix p when one is easy to find: wildcards take the prefix's
// levels.
func fzWitness(f, p string) string {
	pl := strings.Split(p, "/")
	var t []string
	for i, l := range strings.Split(f, "/") {
		switch {
		case l == "#":
			if i < len(pl) {
				t = append(t, pl[i:]...)
			}
			return strings.Join(t, "/")
		case l == "+" && i < len(pl):
			t = append(t, pl[i])
		case l == "+":
			t = append(t, "x")
		default:
			t = append(t, l)
		}
	}
	return strings.Join(t, "/")
}

func FuzzNamespaceGeneric(f *testing.F) {
	f.Add(uint8(0), uint8(0), "admin/\n$SYS", "a/b", false)
	f.Add(uint8(10), uint8(3), "admin/", "a/b/c/d", false)
	f.Add(uint8(10), uint8(0), "", "$share/group/a/b", true)
	f.Add(uint8(0), uint8(2), "", "$share/g/a/b", true)
	f.Add(uint8(0), uint8(0), "admin/", "+/x", true)
	f.Add(uint8(0), uint8(0), "admin/", "admin", true)
	f.Add(uint8(0), uint8(0), "$", "#", true)
	f.Add(uint8(0), uint8(0), "a/b/c", "+/+", true)
	f.Add(uint8(0), uint8(0), "a/b", "a/bc/#", true)
	f.Add(uint8(0), uint8(0), "adm", "$share/g/+/#", true)
	f.Add(uint8(0), uint8(0), "é", "\u00e9t\u00e9", false)
	f.Fuzz(func(t *testing.T, maxLen, maxLevels uint8, prefixes, name string, sub bool) {
		g := GenericNamespace{MaxLength: int(maxLen), MaxLevels: int(maxLevels % 16), ForbiddenPrefixes: fzLines(prefixes)}
		if !sub {
			if topic.ValidateName(name) != nil {
				return // validators receive valid topic names only
			}
			err := g.ValidatePublish(name)
			fzNamespaceErr(t, err, "publish", name)
			want := (g.MaxLength == 0 || len(name) <= g.MaxLength) &&
				(g.MaxLevels == 0 || strings.Count(name, "/")+1 <= g.MaxLevels)
			for _, p := range g.ForbiddenPrefixes {
				if strings.HasPrefix(name, p) {
					want = false
				}
			}
			if (err == nil) != want {
				t.Fatalf("%+v.ValidatePublish(%q) = %v, want accepted %v", g, name, err, want)
			}
			return
		}
		if topic.ValidateFilter(name) != nil {
			return
		}
		err := g.ValidateSubscribe(name)
		fzNamespaceErr(t, err, "subscribe", name)
		inner := name
		if _, in, ok, _ := topic.ParseShared(name); ok && in != "" {
			inner = in
		}
		sizeOK := (g.MaxLength == 0 || len(name) <= g.MaxLength) &&
			(g.MaxLevels == 0 || strings.Count(inner, "/")+1 <= g.MaxLevels)
		if err == nil && !sizeOK {
			t.Fatalf("%+v.ValidateSubscribe(%q) accepted a filter over the limits", g, name)
		}
		reachable := false // a forbidden topic is within the filter
		for _, p := range g.ForbiddenPrefixes {
			w := fzWitness(inner, p)
			if topic.ValidateName(w) == nil && topic.Matches(inner, w) && strings.HasPrefix(w, p) {
				reachable = true
				if err == nil {
					t.Fatalf("%+v.ValidateSubscribe(%q) accepted a filter that matches %q, under the forbidden prefix %q", g, name, w, p)
				}
			}
		}
		// A refusal for a prefix has a witness, unless the prefix cannot
		// start a topic name built from filter levels.
		if err != nil && sizeOK && !reachable {
			for _, p := range g.ForbiddenPrefixes {
				if strings.ContainsAny(p, "+#\x00") || topic.ValidateName(p) != nil {
					return
				}
			}
			t.Fatalf("%+v.ValidateSubscribe(%q) = %v, but no topic it matches has a forbidden prefix", g, name, err)
		}
	})
}

// fzRefThingName is ValidThingName's documented rule.
func fzRefThingName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-", c) {
			return false
		}
	}
	return true
}

// fzAWSLimits is the documented size rule: at most 256 bytes, 7 slashes.
func fzAWSLimits(s string) bool {
	return len(s) <= AWSMaxTopicBytes && strings.Count(s, "/") <= AWSMaxTopicSlashes
}

func FuzzNamespaceAWS(f *testing.F) {
	long := strings.Repeat("x", 250)
	f.Add("dev-1", "", "a/b", false)
	f.Add("dev-1", "", "$aws/things/dev-1/shadow/update", false)
	f.Add("dev-1", "", "$AWS/things/dev-1/shadow/update", false)
	f.Add("dev-1", "", "$aws/things/dev-2/shadow/update", false)
	f.Add("dev-1", "", "$aws/things/dev-1/shadow/#", true)
	f.Add("dev-1", "", "$aws/things/+/shadow/#", true)
	f.Add("dev-1", "", "$aws/things/dev-1/#", true)
	f.Add("", "$aws/certificates/create/#", "$aws/certificates/create/json", false)
	f.Add("", "", "$aws/rules/my_rule/a/b/c/d/e/f/g/h", false)
	f.Add("", "", "$aws/rules/my_rule/"+long, false)
	f.Add("", "", "$aws/rules/bad-rule/x", false)
	f.Add("", "", "$aws/rules/r/x", true)
	f.Add("", "", "a/b/c/d/e/f/g/h/i", false)
	f.Add("", "", long+"/123456789", true)
	f.Add("", "", "$share/g/$aws/things/x/shadow/#", true)
	f.Add("", "", "$share/g/a/b/c/d/e/f/g/h", true)
	f.Add("", "", "$SYS/x", false)
	f.Fuzz(func(t *testing.T, thing, allow, name string, sub bool) {
		if (ValidThingName(thing) == nil) != fzRefThingName(thing) {
			t.Fatalf("ValidThingName(%q) = %v", thing, ValidThingName(thing))
		}
		var allowed []string
		for _, l := range fzLines(allow) {
			if topic.ValidateFilter(l) == nil {
				allowed = append(allowed, l)
			}
		}
		a := AWSIoTNamespace{ThingName: thing, AllowReserved: allowed}
		reserved := allowed
		if fzRefThingName(thing) {
			reserved = append([]string{"$aws/things/" + thing + "/shadow/#", "$aws/things/" + thing + "/jobs/#"}, allowed...)
		}
		// "$aws/" is recognised in any case.
		norm := func(s string) (string, bool) {
			if len(s) >= 5 && strings.ToLower(s[:5]) == "$aws/" {
				return "$aws/" + s[5:], true
			}
			return s, false
		}
		if !sub {
			if topic.ValidateName(name) == nil {
				err := a.ValidatePublish(name)
				fzNamespaceErr(t, err, "publish", name)
				want := fzAWSLimits(name)
				n, isAWS := norm(name)
				switch {
				case isAWS && strings.HasPrefix(n, "$aws/rules/"):
					// Basic Ingest: the limits apply to the topic after
					// the rule name.
					rule, rest, ok := strings.Cut(n[len("$aws/rules/"):], "/")
					want = ok && rest != "" && fzAWSLimits(rest) && rule != "" && len(rule) <= 128 &&
						strings.Trim(rule, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == ""
				case name[0] == '$':
					in := false
					for _, r := range reserved {
						in = in || isAWS && topic.Matches(r, n)
					}
					want = want && in
				}
				if (err == nil) != want {
					t.Fatalf("%+v.ValidatePublish(%q) = %v, want accepted %v", a, name, err, want)
				}
			}
			return
		}
		if topic.ValidateFilter(name) != nil {
			return
		}
		err := a.ValidateSubscribe(name)
		fzNamespaceErr(t, err, "subscribe", name)
		inner := name
		_, in, shared, _ := topic.ParseShared(name)
		if shared && in != "" {
			inner = in
		}
		want := fzAWSLimits(inner) && !(shared && in != "" && inner[0] == '$')
		if inner[0] == '$' {
			n, isAWS := norm(inner)
			covered := false
			for _, r := range reserved {
				covered = covered || topic.Covers(r, n)
			}
			want = want && isAWS && !strings.HasPrefix(n, "$aws/rules/") && covered
		}
		if (err == nil) != want {
			t.Fatalf("%+v.ValidateSubscribe(%q) = %v, want accepted %v", a, name, err, want)
		}
	})
}

func FuzzNamespaceAzure(f *testing.F) {
	f.Add("dev-1", "devices/dev-1/messages/events/a=b", false)
	f.Add("dev-1", "devices/dev-2/messages/events/", false)
	f.Add("dev-1", "$iothub/twin/GET/?$rid=1", false)
	f.Add("dev-1", "$iothub/methods/res/200/?$rid=1", false)
	f.Add("dev-1", "devices/dev-1/messages/devicebound/#", true)
	f.Add("dev-1", "devices/+/messages/devicebound/#", true)
	f.Add("dev-1", "$iothub/twin/res/#", true)
	f.Add("d+", "devices/d+/messages/events/", false)
	f.Add("", "$iothub/twin/res/#", true)
	f.Add("a'b(c)!", "devices/a'b(c)!/messages/events/", false)
	f.Fuzz(func(t *testing.T, device, name string, sub bool) {
		validID := device != "" && len(device) <= 128 &&
			strings.Trim(device, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.%_*?!(),:=@$'") == ""
		if (ValidAzureDeviceID(device) == nil) != validID {
			t.Fatalf("ValidAzureDeviceID(%q) = %v", device, ValidAzureDeviceID(device))
		}
		z := AzureIoTHubNamespace{DeviceID: device}
		if !sub {
			if topic.ValidateName(name) != nil {
				return
			}
			err := z.ValidatePublish(name)
			fzNamespaceErr(t, err, "publish", name)
			want := false
			for _, p := range []string{"devices/" + device + "/messages/events/", "$iothub/twin/GET/", "$iothub/twin/PATCH/properties/reported/", "$iothub/methods/res/"} {
				want = want || strings.HasPrefix(name, p)
			}
			if (err == nil) != (want && validID) {
				t.Fatalf("%+v.ValidatePublish(%q) = %v", z, name, err)
			}
			return
		}
		if topic.ValidateFilter(name) != nil {
			return
		}
		err := z.ValidateSubscribe(name)
		fzNamespaceErr(t, err, "subscribe", name)
		want := name == "devices/"+device+"/messages/devicebound/#" || name == "$iothub/twin/res/#" ||
			name == "$iothub/twin/PATCH/properties/desired/#" || name == "$iothub/methods/POST/#"
		if (err == nil) != (want && validID) {
			t.Fatalf("%+v.ValidateSubscribe(%q) = %v", z, name, err)
		}
		// An accepted filter receives only the device's own topics.
		if err == nil && strings.HasPrefix(name, "devices/") && !strings.HasPrefix(name, "devices/"+device+"/") {
			t.Fatalf("%q accepted for device %q", name, device)
		}
	})
}
