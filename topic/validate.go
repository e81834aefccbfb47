package topic

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Sentinel errors returned by the validation functions. They are compared
// with errors.Is; the broker maps them to reason codes itself (0x90 Topic Name
// invalid for names, 0x8F Topic Filter invalid for filters).
var (
	ErrEmpty           = errors.New("topic: empty topic name or filter")
	ErrWildcardInName  = errors.New("topic: wildcard character in topic name")
	ErrInvalidWildcard = errors.New("topic: wildcard does not occupy a whole level or '#' is not last")
	ErrNullChar        = errors.New("topic: contains U+0000")
	ErrInvalidUTF8     = errors.New("topic: not well-formed UTF-8")
	ErrTooLong         = errors.New("topic: too long")
	ErrTooManyLevels   = errors.New("topic: too many levels")
	ErrInvalidShare    = errors.New("topic: invalid shared subscription filter")
)

// MaxLength is the largest size in bytes of a topic name or filter that the
// protocol can carry (a UTF-8 Encoded String has a two-byte length prefix).
const MaxLength = 65535

// SharePrefix starts every shared subscription filter: $share/{ShareName}/{filter}.
const SharePrefix = "$share/"

// Limits are optional, stricter limits on names and filters. The zero value
// applies only the limits of the specification.
type Limits struct {
	// MaxLength is the maximum size in bytes of the whole name or filter
	// (including a "$share/{group}/" prefix). Zero, a negative value or a
	// value above 65535 means 65535, the protocol maximum.
	MaxLength int
	// MaxLevels is the maximum number of levels ("a/b/c" has three). For a
	// shared subscription it counts the levels of the inner filter. Zero or
	// negative means unlimited.
	MaxLevels int
}

func (l Limits) maxLength() int {
	if l.MaxLength <= 0 || l.MaxLength > MaxLength {
		return MaxLength
	}
	return l.MaxLength
}

// ValidateName reports whether name is a valid Topic Name (as in a PUBLISH
// packet, a Will Topic or a Response Topic) under the limits of the
// specification. It returns nil or one of the sentinel errors of this package.
func ValidateName(name string) error { return Limits{}.ValidateName(name) }

// ValidateFilter reports whether filter is a valid Topic Filter under the
// limits of the specification. A filter that starts with "$share/" is
// validated as a shared subscription (see ParseShared). It returns nil or one
// of the sentinel errors of this package.
func ValidateFilter(filter string) error { return Limits{}.ValidateFilter(filter) }

// ValidateName is like the package function ValidateName with the limits l.
func (l Limits) ValidateName(name string) error {
	if name == "" {
		return ErrEmpty // [MQTT-4.7.3-1]
	}
	if len(name) > l.maxLength() {
		return ErrTooLong // [MQTT-4.7.3-3]
	}
	levels := 1
	ascii := true
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case 0:
			return ErrNullChar // [MQTT-1.5.4-2] [MQTT-4.7.3-2]
		case '+', '#':
			return ErrWildcardInName // [MQTT-4.7.0-1] [MQTT-3.3.2-2]
		case '/':
			levels++
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
		}
	}
	if !ascii && !utf8.ValidString(name) {
		// utf8.ValidString rejects ill-formed sequences, overlong forms,
		// code points above U+10FFFF and the surrogates U+D800..U+DFFF.
		return ErrInvalidUTF8 // [MQTT-1.5.4-1] [MQTT-3.3.2-1]
	}
	if l.MaxLevels > 0 && levels > l.MaxLevels {
		return ErrTooManyLevels
	}
	return nil
}

// ValidateFilter is like the package function ValidateFilter with the limits l.
func (l Limits) ValidateFilter(filter string) error {
	_, _, _, err := l.parseFilter(filter)
	return err
}

// ParseShared splits a shared subscription filter "$share/{group}/{filter}".
// ok reports whether filter starts with "$share/" (and so is meant as a shared
// subscription); when ok is false, group and inner are empty and err is nil.
// When ok is true, err is nil only if the group is non-empty and free of '/',
// '+' and '#' and inner is a valid topic filter; otherwise err is
// ErrInvalidShare or the error that ValidateFilter gives for the whole string.
// The returned strings are substrings of filter.
func ParseShared(filter string) (group, inner string, ok bool, err error) {
	if !strings.HasPrefix(filter, SharePrefix) {
		return "", "", false, nil
	}
	group, inner, _, err = Limits{}.parseFilter(filter)
	if err != nil {
		return "", "", true, err
	}
	return group, inner, true, nil
}

// ParseShared is like the package function ParseShared with the limits l.
func (l Limits) ParseShared(filter string) (group, inner string, ok bool, err error) {
	if !strings.HasPrefix(filter, SharePrefix) {
		return "", "", false, nil
	}
	group, inner, _, err = l.parseFilter(filter)
	if err != nil {
		return "", "", true, err
	}
	return group, inner, true, nil
}

// parseFilter validates filter and, for a shared subscription, splits it.
// For a plain filter inner == filter and group == "".
func (l Limits) parseFilter(filter string) (group, inner string, shared bool, err error) {
	if filter == "" {
		return "", "", false, ErrEmpty // [MQTT-4.7.3-1]
	}
	if len(filter) > l.maxLength() {
		return "", "", false, ErrTooLong // [MQTT-4.7.3-3]
	}
	inner = filter
	if strings.HasPrefix(filter, SharePrefix) {
		shared = true
		rest := filter[len(SharePrefix):]
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			// The ShareName MUST be followed by a "/" [MQTT-4.8.2-2].
			return "", "", true, ErrInvalidShare
		}
		group, inner = rest[:i], rest[i+1:]
		if group == "" {
			return "", "", true, ErrInvalidShare // [MQTT-4.8.2-1]
		}
		if strings.ContainsAny(group, "+#") {
			return "", "", true, ErrInvalidShare // [MQTT-4.8.2-2]
		}
		if inner == "" {
			// The "/" MUST be followed by a Topic Filter [MQTT-4.8.2-2].
			return "", "", true, ErrInvalidShare
		}
		if err := checkChars(group); err != nil {
			return "", "", true, err
		}
	}
	levels, err := checkFilter(inner)
	if err != nil {
		return "", "", shared, err
	}
	if l.MaxLevels > 0 && levels > l.MaxLevels {
		return "", "", shared, ErrTooManyLevels
	}
	return group, inner, shared, nil
}

// checkChars checks the UTF-8 rules common to names and filters.
func checkChars(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return ErrNullChar // [MQTT-1.5.4-2] [MQTT-4.7.3-2]
	}
	if !utf8.ValidString(s) {
		return ErrInvalidUTF8 // [MQTT-1.5.4-1] [MQTT-3.8.3-1]
	}
	return nil
}

// checkFilter validates a plain (non-shared) filter and returns its number of
// levels. The caller has checked that f is non-empty and not too long.
func checkFilter(f string) (levels int, err error) {
	levels = 1
	ascii := true
	for i := 0; i < len(f); i++ {
		switch c := f[i]; c {
		case 0:
			return 0, ErrNullChar // [MQTT-1.5.4-2] [MQTT-4.7.3-2]
		case '/':
			levels++
		case '+':
			// The single-level wildcard MUST occupy an entire level [MQTT-4.7.1-2].
			if (i > 0 && f[i-1] != '/') || (i+1 < len(f) && f[i+1] != '/') {
				return 0, ErrInvalidWildcard
			}
		case '#':
			// The multi-level wildcard MUST be on its own or follow a '/',
			// and MUST be the last character of the filter [MQTT-4.7.1-1].
			if (i > 0 && f[i-1] != '/') || i != len(f)-1 {
				return 0, ErrInvalidWildcard
			}
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
		}
	}
	if !ascii && !utf8.ValidString(f) {
		return 0, ErrInvalidUTF8 // [MQTT-1.5.4-1] [MQTT-3.8.3-1]
	}
	return levels, nil
}

// wellFormedFilter reports whether the wildcards of f are placed correctly.
// It skips the character checks: it is used on paths where the caller is
// expected to pass a filter that was validated before.
func wellFormedFilter(f string) bool {
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '+':
			if (i > 0 && f[i-1] != '/') || (i+1 < len(f) && f[i+1] != '/') {
				return false
			}
		case '#':
			if (i > 0 && f[i-1] != '/') || i != len(f)-1 {
				return false
			}
		}
	}
	return true
}
