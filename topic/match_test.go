package topic

import (
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// Examples of section 4.7 of the specification, and edge cases.
var matchCases = []struct {
	filter, topic string
	want          bool
}{
	// 4.7.1.2 multi-level wildcard
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/tennis/player1/#", "sport/tennis/player2", false},
	{"sport/tennis/player1/#", "sport/tennis", false},
	{"sport/#", "sport", true},
	{"sport/#", "sport/", true},
	{"sport/#", "sports", false},
	{"#", "sport", true},
	{"#", "/", true},
	{"#", "a/b/c/d/e/f", true},
	// 4.7.1.3 single-level wildcard
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player2", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/tennis/+", "sport/tennis", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	{"+", "sport", true},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},
	{"+/tennis/#", "sport/tennis/player1", true},
	{"+/tennis/#", "sport/tennis", true},
	{"+/tennis/#", "sport/golf", false},
	{"sport/+/player1", "sport/tennis/player1", true},
	{"sport/+/player1", "sport//player1", true},
	{"+/+/+", "//", true},
	{"+", "", false},
	// 4.7.2 topics beginning with $
	{"#", "$SYS/monitor/Clients", false},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"$SYS/#", "$SYS/monitor/Clients", true},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"$SYS/#", "$SYS", true},
	{"+", "$SYS", false},
	{"#", "$", false},
	{"a/#", "a/$b", true}, // '$' counts only at the start of the topic
	{"a/+", "a/$b", true},
	{"+/$b", "a/$b", true},
	{"#", "a$", true},
	// 4.7.3 topic semantics: case, spaces, leading '/' are significant
	{"ACCOUNTS", "Accounts", false},
	{"Accounts payable", "Accounts payable", true},
	{"/finance", "finance", false},
	{"finance", "/finance", false},
	{"a/b", "a/b/", false},
	{"a/b/", "a/b", false},
	{"\uFEFFa", "a", false}, // no BOM stripping [MQTT-1.5.4-3]
	{"é", "e\u0301", false}, // no normalization [MQTT-4.7.3-4]
	// invalid input never matches
	{"", "a", false},
	{"a", "", false},
	{"a/#/b", "a/x/b", false},
	{"a/#/b", "a/#/b", false},
	{"a+", "a+", false},
	{"a/+", "a/+", false},
	{"a/#", "a/#", false},
	{"#", "a/#", false},
	{"#", "+", false},
	{"a/b#", "a/b#", false},
}

func TestMatches(t *testing.T) {
	for _, c := range matchCases {
		if got := Matches(c.filter, c.topic); got != c.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestMatchesNoAlloc(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		Matches("sport/+/player1/#", "sport/tennis/player1/score")
		Covers("sport/#", "sport/+/player1/#")
	})
	if n != 0 {
		t.Errorf("Matches/Covers allocate %v times", n)
	}
}

var coverCases = []struct {
	outer, inner string
	want         bool
}{
	// "/#" cannot match the empty topic at its root: it matches what
	// "/+/#" matches (found by FuzzCovers).
	{"/+/#", "/#", true},
	{"+/+/#", "/#", true},
	{"/+", "/#", false},
	{"/+/#", "/+/#", true},
	{"a", "a", true},
	{"a", "b", false},
	{"a/b", "a", false},
	{"a", "a/b", false},
	{"+", "a", true},
	{"a", "+", false},
	{"+", "+", true},
	{"#", "a", true},
	{"#", "a/b/c", true},
	{"#", "+", true},
	{"#", "#", true},
	{"#", "a/#", true},
	{"#", "+/#", true},
	{"#", "/", true},
	{"+/#", "#", true}, // every topic has a first level
	{"+/#", "+", true},
	{"+/#", "a", true},
	{"+/#", "a/b/c", true},
	{"+", "#", false},
	{"+/+", "#", false},
	{"+/+/#", "#", false}, // "a" is not matched by +/+/#
	{"a/#", "#", false},
	{"sensors/#", "sensors/+", true},
	{"sensors/+", "sensors/#", false}, // "sensors" and "sensors/a/b"
	{"sensors/#", "sensors/+/temp", true},
	{"sensors/+/temp", "sensors/#", false},
	{"sensors/+/+", "sensors/+/temp", true},
	{"sensors/+/temp", "sensors/+/+", false},
	{"sensors/+/temp", "sensors/b1/temp", true},
	{"a/#", "a", true},
	{"a/#", "a/b", true},
	{"a/#", "a/#", true},
	{"a/#", "a/+/#", true},
	{"a/+/#", "a/#", false}, // "a" is matched by a/# only
	{"a/+/#", "a/+", true},
	{"a/+/#", "a/b", true},
	{"a/+/#", "a/b/c/d", true},
	{"a/+", "a", false},
	{"a/+", "a/", true},
	{"a/", "a/+", false},
	{"+/+", "/", true},
	{"+/+", "/+", true},
	{"/#", "/", true},
	{"/#", "/a/b", true},
	{"/#", "+/a", false},
	{"a/b/c/#", "a/b", false},
	{"a/b/#", "a/b/c/#", true},
	// the '$' rule [MQTT-4.7.2-1]
	{"#", "$SYS/x", false},
	{"#", "$SYS/#", false},
	{"#", "$SYS", false},
	{"+/#", "$SYS/x", false},
	{"+/x", "$SYS/x", false},
	{"+", "$SYS", false},
	{"$SYS/#", "$SYS/x", true},
	{"$SYS/#", "$SYS/+/y", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/+", "$SYS/x", true},
	{"$SYS/#", "#", false},
	{"$SYS/#", "+/x", false},
	{"$+/x", "$a/x", false}, // "$+" is not a valid filter
	{"a/#", "a/$x", true},   // '$' inside a topic is an ordinary character
	{"a/+", "a/$x", true},
	{"+/$x", "a/$x", true},
	{"#", "a/$x/#", true},
	// invalid filters cover nothing and are covered by nothing
	{"a/#/b", "a/x/b", false},
	{"a", "a+", false},
	{"", "a", false},
	{"a", "", false},
	{"#", "a\x00", false},
	// shared prefixes are not interpreted
	{"$share/g/#", "$share/g/a", true},
	{"#", "$share/g/a", false},
}

func TestCovers(t *testing.T) {
	for _, c := range coverCases {
		if got := Covers(c.outer, c.inner); got != c.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.outer, c.inner, got, c.want)
		}
	}
}

// Generators. The level alphabets are small so that random filters and
// topics often meet.
var (
	topicLevel  = rapid.SampledFrom([]string{"a", "b", "c", "", "$s", "ab", "é"})
	filterLevel = rapid.SampledFrom([]string{"a", "b", "c", "", "$s", "+", "+", "+"})
)

func genTopic() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		for {
			s := strings.Join(rapid.SliceOfN(topicLevel, 1, 5).Draw(t, "levels"), "/")
			if s != "" {
				return s
			}
		}
	})
}

func genFilter() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		levels := rapid.SliceOfN(filterLevel, 0, 4).Draw(t, "levels")
		if rapid.Bool().Draw(t, "hash") || len(levels) == 0 {
			levels = append(levels, "#")
		}
		s := strings.Join(levels, "/")
		if s == "" {
			s = "a"
		}
		return s
	})
}

// instances returns topic names that filter matches, built by replacing '+'
// by a fresh level and '#' by zero, one or two fresh levels. If Covers(o, f)
// is false, one of them is matched by f and not by o (see Covers).
func instances(filter string) []string {
	out := []string{""}
	for i, l := range strings.Split(filter, "/") {
		sep := "/"
		if i == 0 {
			sep = ""
		}
		var next []string
		for _, p := range out {
			switch l {
			case "+":
				next = append(next, p+sep+"zz", p+sep+"a")
			case "#":
				next = append(next, p, p+sep+"zz", p+sep+"zz/zz")
			default:
				next = append(next, p+sep+l)
			}
		}
		out = next
	}
	var valid []string
	for _, s := range out {
		if ValidateName(s) == nil && Matches(filter, s) {
			valid = append(valid, s)
		}
	}
	return valid
}

// Covers is sound (a covered filter matches only topics the outer one
// matches) and exact (when it says no, a counterexample topic exists).
func TestCoversProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		outer := genFilter().Draw(t, "outer")
		inner := genFilter().Draw(t, "inner")
		covers := Covers(outer, inner)
		if Covers(outer, outer) != true || Covers(inner, inner) != true {
			t.Fatalf("Covers is not reflexive")
		}
		cands := append(instances(inner), rapid.SliceOfN(genTopic(), 1, 20).Draw(t, "topics")...)
		found := false
		for _, topic := range cands {
			if Matches(inner, topic) && !Matches(outer, topic) {
				found = true
				if covers {
					t.Fatalf("Covers(%q, %q) but %q matches only the inner filter", outer, inner, topic)
				}
			}
		}
		if !covers && !found {
			t.Fatalf("Covers(%q, %q) is false but no counterexample among %q", outer, inner, instances(inner))
		}
	})
}

// Covers is transitive on generated filters.
func TestCoversTransitive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genFilter().Draw(t, "a"), genFilter().Draw(t, "b"), genFilter().Draw(t, "c")
		if Covers(a, b) && Covers(b, c) && !Covers(a, c) {
			t.Fatalf("Covers(%q,%q) and Covers(%q,%q) but not Covers(%q,%q)", a, b, b, c, a, c)
		}
	})
}

// matchesRef is a direct transcription of the rules, used as a model.
func matchesRef(filter, topic string) bool {
	if ValidateFilter(filter) != nil || ValidateName(topic) != nil || strings.HasPrefix(filter, SharePrefix) {
		return false
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, l := range f {
		if l == "#" {
			return true // matches len(tp) >= i: the parent and below
		}
		if i >= len(tp) || (l != "+" && l != tp[i]) {
			return false
		}
	}
	return len(f) == len(tp)
}

func TestMatchesProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := genFilter().Draw(t, "filter")
		topic := genTopic().Draw(t, "topic")
		if got, want := Matches(f, topic), matchesRef(f, topic); got != want {
			t.Fatalf("Matches(%q, %q) = %v, reference %v", f, topic, got, want)
		}
	})
}
