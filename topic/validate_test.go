package topic

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	long := strings.Repeat("a", MaxLength)
	tests := []struct {
		name string
		err  error
	}{
		{"a", nil},
		{"/", nil},
		{"//", nil},
		{"a/b/c", nil},
		{"a/", nil},
		{"/finance", nil},
		{" ", nil},
		{"$SYS/broker/load", nil},
		{"$share/g/a", nil}, // only filters are shared
		{"sport/tennis/player1", nil},
		{"ünïcødé/日本語/🙂", nil},
		{"\uFEFFbom", nil}, // [MQTT-1.5.4-3]: a BOM is kept and allowed
		{"\uFFFF", nil},    // a noncharacter is allowed (SHOULD NOT only)
		{"\x01\x7f", nil},  // control characters are allowed
		{long, nil},
		{"", ErrEmpty},
		{long + "a", ErrTooLong},
		{"a/+/b", ErrWildcardInName},
		{"+", ErrWildcardInName},
		{"#", ErrWildcardInName},
		{"a/#", ErrWildcardInName},
		{"a+b", ErrWildcardInName},
		{"a#b", ErrWildcardInName},
		{"a\x00b", ErrNullChar},
		{"\x00", ErrNullChar},
		{"a/\xff", ErrInvalidUTF8},
		{"\xc0\x80", ErrInvalidUTF8},         // overlong NUL
		{"\xed\xa0\x80", ErrInvalidUTF8},     // U+D800 surrogate
		{"\xed\xbf\xbf", ErrInvalidUTF8},     // U+DFFF surrogate
		{"\xf4\x90\x80\x80", ErrInvalidUTF8}, // above U+10FFFF
		{"\xe2\x82", ErrInvalidUTF8},         // truncated
	}
	for _, tc := range tests {
		if err := ValidateName(tc.name); !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("ValidateName(%.40q) = %v, want %v", tc.name, err, tc.err)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	long := strings.Repeat("a", MaxLength)
	tests := []struct {
		filter string
		err    error
	}{
		{"a", nil},
		{"#", nil},
		{"+", nil},
		{"/", nil},
		{"+/+", nil},
		{"/+", nil},
		{"+/", nil},
		{"sport/#", nil},
		{"sport/tennis/#", nil},
		{"sport/+/player1", nil},
		{"+/tennis/#", nil},
		{"/#", nil},
		{"a//#", nil},
		{"$SYS/#", nil},
		{"$share/g/a/b", nil},
		{"$share/g/#", nil},
		{"$share/g/+", nil},
		{"$share/g/$SYS/#", nil},
		{"$share/g//", nil},
		{"$share/日本/a", nil},
		{"$share", nil},    // not a shared subscription: a plain filter
		{"$sharex/g", nil}, // idem
		{long, nil},
		{"", ErrEmpty},
		{long + "a", ErrTooLong},
		{"sport/tennis#", ErrInvalidWildcard}, // [MQTT-4.7.1-1]
		{"sport/tennis/#/ranking", ErrInvalidWildcard},
		{"#/", ErrInvalidWildcard},
		{"##", ErrInvalidWildcard},
		{"a/#b", ErrInvalidWildcard},
		{"sport+", ErrInvalidWildcard}, // [MQTT-4.7.1-2]
		{"+a", ErrInvalidWildcard},
		{"a/+b/c", ErrInvalidWildcard},
		{"++", ErrInvalidWildcard},
		{"+#", ErrInvalidWildcard},
		{"a\x00", ErrNullChar},
		{"a/\xed\xa0\x80", ErrInvalidUTF8},
		{"\xff/#", ErrInvalidUTF8},
		{"$share/", ErrInvalidShare},     // [MQTT-4.8.2-1]
		{"$share//a", ErrInvalidShare},   // [MQTT-4.8.2-1]
		{"$share/g", ErrInvalidShare},    // [MQTT-4.8.2-2] no '/' after the name
		{"$share/g/", ErrInvalidShare},   // [MQTT-4.8.2-2] no filter
		{"$share/g+/a", ErrInvalidShare}, // [MQTT-4.8.2-2]
		{"$share/+/a", ErrInvalidShare},
		{"$share/#/a", ErrInvalidShare},
		{"$share/a#b/a", ErrInvalidShare},
		{"$share/g/a/#/b", ErrInvalidWildcard},
		{"$share/g/a+", ErrInvalidWildcard},
		{"$share/g\x00/a", ErrNullChar},
		{"$share/g\xff/a", ErrInvalidUTF8},
		{"$share/g/a\x00", ErrNullChar},
	}
	for _, tc := range tests {
		if err := ValidateFilter(tc.filter); !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("ValidateFilter(%.40q) = %v, want %v", tc.filter, err, tc.err)
		}
	}
}

func TestLimits(t *testing.T) {
	l := Limits{MaxLength: 5, MaxLevels: 2}
	cases := []struct {
		s             string
		nameErr, fErr error
	}{
		{"a/b", nil, nil},
		{"abcde", nil, nil},
		{"abcdef", ErrTooLong, ErrTooLong},
		{"a/b/c", ErrTooManyLevels, ErrTooManyLevels},
		{"a/+", ErrWildcardInName, nil},
		{"+/+/+", ErrWildcardInName, ErrTooManyLevels},
		{"", ErrEmpty, ErrEmpty},
	}
	for _, c := range cases {
		if err := l.ValidateName(c.s); !errors.Is(err, c.nameErr) || (err == nil) != (c.nameErr == nil) {
			t.Errorf("ValidateName(%q) = %v, want %v", c.s, err, c.nameErr)
		}
		if err := l.ValidateFilter(c.s); !errors.Is(err, c.fErr) || (err == nil) != (c.fErr == nil) {
			t.Errorf("ValidateFilter(%q) = %v, want %v", c.s, err, c.fErr)
		}
	}
	// MaxLevels counts the inner filter of a shared subscription.
	l = Limits{MaxLevels: 2}
	if err := l.ValidateFilter("$share/g/a/b"); err != nil {
		t.Errorf("shared with 2 inner levels: %v", err)
	}
	if err := l.ValidateFilter("$share/g/a/b/c"); !errors.Is(err, ErrTooManyLevels) {
		t.Errorf("shared with 3 inner levels: %v", err)
	}
	// MaxLength counts the whole string; values above the protocol maximum
	// are clamped to it.
	l = Limits{MaxLength: 1 << 20}
	if err := l.ValidateName(strings.Repeat("a", MaxLength+1)); !errors.Is(err, ErrTooLong) {
		t.Errorf("MaxLength above 65535: %v", err)
	}
	if g, in, ok, err := (Limits{MaxLength: 12}).ParseShared("$share/g/abc"); !ok || err != nil || g != "g" || in != "abc" {
		t.Errorf("Limits.ParseShared = %q %q %v %v", g, in, ok, err)
	}
	if _, _, ok, err := (Limits{MaxLength: 12}).ParseShared("$share/g/abcd"); !ok || !errors.Is(err, ErrTooLong) {
		t.Errorf("Limits.ParseShared too long = %v %v", ok, err)
	}
	if _, _, ok, err := (Limits{}).ParseShared("a/b"); ok || err != nil {
		t.Errorf("Limits.ParseShared plain = %v %v", ok, err)
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		filter       string
		group, inner string
		ok           bool
		err          error
	}{
		{"a/b", "", "", false, nil},
		{"$share", "", "", false, nil},
		{"$SHARE/g/a", "", "", false, nil}, // case-sensitive
		{"$share/g/a/b", "g", "a/b", true, nil},
		{"$share/consumer1/sport/tennis/+", "consumer1", "sport/tennis/+", true, nil},
		{"$share/g/#", "g", "#", true, nil},
		{"$share/g//", "g", "/", true, nil},
		{"$share/g/$share/h/x", "g", "$share/h/x", true, nil},
		{"$share/", "", "", true, ErrInvalidShare},
		{"$share//a", "", "", true, ErrInvalidShare},
		{"$share/g", "", "", true, ErrInvalidShare},
		{"$share/g/", "", "", true, ErrInvalidShare},
		{"$share/a+/x", "", "", true, ErrInvalidShare},
		{"$share/g/a#", "", "", true, ErrInvalidWildcard},
	}
	for _, tc := range tests {
		g, in, ok, err := ParseShared(tc.filter)
		if g != tc.group || in != tc.inner || ok != tc.ok || !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("ParseShared(%q) = %q, %q, %v, %v; want %q, %q, %v, %v",
				tc.filter, g, in, ok, err, tc.group, tc.inner, tc.ok, tc.err)
		}
	}
}

func TestValidateNoAlloc(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		_ = ValidateName("sensors/building-1/room-42/temperature")
		_ = ValidateFilter("$share/g/sensors/+/room-42/#")
		_ = ValidateName("a/+")
		_, _, _, _ = ParseShared("$share/g/a/b")
	})
	if n != 0 {
		t.Errorf("validation allocates %v times", n)
	}
}
