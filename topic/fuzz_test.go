package topic

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// validateNameRef and validateFilterRef restate the rules in the most direct
// way, as references for the fuzzers.
func validateNameRef(s string) bool {
	return s != "" && len(s) <= MaxLength && utf8.ValidString(s) && !strings.ContainsAny(s, "\x00+#")
}

func validateFilterRef(s string) bool {
	if s == "" || len(s) > MaxLength || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return false
	}
	if rest, ok := strings.CutPrefix(s, SharePrefix); ok {
		group, inner, ok := strings.Cut(rest, "/")
		if !ok || group == "" || strings.ContainsAny(group, "+#") || inner == "" {
			return false
		}
		s = inner
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		if l == "#" && i == len(levels)-1 || l == "+" {
			continue
		}
		if strings.ContainsAny(l, "+#") {
			return false
		}
	}
	return true
}

var validationErrors = []error{ErrEmpty, ErrWildcardInName, ErrInvalidWildcard, ErrNullChar, ErrInvalidUTF8,
	ErrTooLong, ErrTooManyLevels, ErrInvalidShare}

func isSentinel(err error) bool {
	for _, e := range validationErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func FuzzValidateName(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.topic)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName(name)
		if (err == nil) != validateNameRef(name) {
			t.Fatalf("ValidateName(%q) = %v, reference %v", name, err, validateNameRef(name))
		}
		if err != nil && !isSentinel(err) {
			t.Fatalf("non-sentinel error %v", err)
		}
		if err == nil {
			// A valid name is a valid filter that matches exactly itself
			// (unless it starts with "$share/").
			if !strings.HasPrefix(name, SharePrefix) && ValidateFilter(name) != nil {
				t.Fatalf("valid name %q is not a valid filter", name)
			}
			if !Matches(name, name) || !Covers(name, name) {
				t.Fatalf("%q does not match itself", name)
			}
		}
		if e := (Limits{MaxLevels: 3}).ValidateName(name); err == nil && e != nil && !errors.Is(e, ErrTooManyLevels) {
			t.Fatalf("Limits: %v", e)
		}
	})
}

func FuzzValidateFilter(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.filter)
	}
	for _, c := range coverCases {
		f.Add(c.outer)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		err := ValidateFilter(filter)
		if (err == nil) != validateFilterRef(filter) {
			t.Fatalf("ValidateFilter(%q) = %v, reference %v", filter, err, validateFilterRef(filter))
		}
		if err != nil && !isSentinel(err) {
			t.Fatalf("non-sentinel error %v", err)
		}
		group, inner, ok, perr := ParseShared(filter)
		if ok != strings.HasPrefix(filter, SharePrefix) || (ok && (perr == nil) != (err == nil)) || (!ok && perr != nil) {
			t.Fatalf("ParseShared(%q) = %v %v, ValidateFilter %v", filter, ok, perr, err)
		}
		if ok && perr == nil && SharePrefix+group+"/"+inner != filter {
			t.Fatalf("ParseShared(%q) = %q %q", filter, group, inner)
		}
		if err == nil {
			plain := filter
			if ok {
				plain = inner
			}
			if !Covers(plain, plain) || !wellFormedFilter(plain) {
				t.Fatalf("valid filter %q does not cover itself", plain)
			}
			var tr Tree[int, int]
			if _, err := tr.Subscribe(filter, 1, 1); err != nil || tr.Len() != 1 || !tr.Unsubscribe(filter, 1) ||
				tr.Len() != 0 || !tr.root.empty() {
				t.Fatalf("Tree round trip of %q failed", filter)
			}
		} else {
			var tr Tree[int, int]
			if _, err := tr.Subscribe(filter, 1, 1); err == nil {
				t.Fatalf("Tree accepted %q", filter)
			}
		}
	})
}

// FuzzMatches checks Matches against the reference and against Tree and
// Retained, which must agree with it on valid input.
func FuzzMatches(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.filter, c.topic)
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		got := Matches(filter, topic)
		if ValidateFilter(filter) != nil || ValidateName(topic) != nil || strings.HasPrefix(filter, SharePrefix) {
			if got && (!wellFormedFilter(filter) || strings.ContainsAny(topic, "+#")) {
				t.Fatalf("Matches(%q, %q) on malformed input", filter, topic)
			}
			return
		}
		if want := matchesRef(filter, topic); got != want {
			t.Fatalf("Matches(%q, %q) = %v, reference %v", filter, topic, got, want)
		}
		var tr Tree[int, int]
		tr.Subscribe(filter, 1, 1)
		tr.Subscribe("$share/g/"+filter, 2, 2)
		tr.Subscribe("#", 3, 3)
		var m MatchResult[int, int]
		tr.Match(topic, &m)
		inTree := false
		for _, s := range m.Subs {
			if s.Sub == 1 {
				inTree = true
			}
		}
		if inTree != got || (len(m.Shared) == 1) != got {
			t.Fatalf("Tree: %q matching %q = %v (%d groups), Matches %v", filter, topic, inTree, len(m.Shared), got)
		}
		var r Retained[int]
		r.Set(topic, 1)
		r.Set(topic+"/x", 2)
		inRetained := false
		r.Match(filter, func(tp string, v int) bool {
			if tp == topic {
				inRetained = true
			}
			return true
		})
		if inRetained != got {
			t.Fatalf("Retained: %q matching %q = %v, Matches %v", filter, topic, inRetained, got)
		}
	})
}

// FuzzCovers checks soundness (a topic matched by inner is matched by outer
// when Covers says so) and, for filters with few wildcards, exactness.
func FuzzCovers(f *testing.F) {
	for _, c := range coverCases {
		f.Add(c.outer, c.inner, "a/b")
	}
	f.Fuzz(func(t *testing.T, outer, inner, topic string) {
		c := Covers(outer, inner)
		if c && (ValidateFilter(outer) != nil && !strings.HasPrefix(outer, SharePrefix) ||
			ValidateFilter(inner) != nil && !strings.HasPrefix(inner, SharePrefix)) {
			t.Fatalf("Covers(%q, %q) with an invalid filter", outer, inner)
		}
		if c && Matches(inner, topic) && !Matches(outer, topic) {
			t.Fatalf("Covers(%q, %q) but %q matches only inner", outer, inner, topic)
		}
		if !c && Covers(outer, inner) {
			t.Fatal("not deterministic")
		}
		if strings.Count(inner, "+")+strings.Count(inner, "#") > 6 || !c && (ValidateFilter(outer) != nil || ValidateFilter(inner) != nil) {
			return
		}
		found := false
		for _, tp := range instances(inner) {
			if !Matches(outer, tp) {
				found = true
				if c {
					t.Fatalf("Covers(%q, %q) but %q matches only inner", outer, inner, tp)
				}
			}
		}
		if !c && !found && !strings.HasPrefix(outer, SharePrefix) && !strings.HasPrefix(inner, SharePrefix) {
			t.Fatalf("Covers(%q, %q) is false but no counterexample among %q", outer, inner, instances(inner))
		}
	})
}
