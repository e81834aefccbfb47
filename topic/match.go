package topic

import "strings"

// cut splits s at its first '/': level is the text before it, rest the text
// after it, and more reports whether there was a '/'.
func cut(s string) (level, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// isWildcardStart reports whether the first level of the (well-formed) filter
// f is a wildcard.
func isWildcardStart(f string) bool {
	return f != "" && (f[0] == '+' || f[0] == '#')
}

// Matches reports whether the topic name matches the topic filter, following
// section 4.7 of the specification: '+' matches exactly one level, '#' matches
// the parent level and any number of child levels, and a filter that starts
// with a wildcard does not match a topic that starts with '$'.
//
// filter is taken as a plain filter: a "$share/{group}/" prefix is not
// interpreted (strip it with ParseShared first). Matches does not check the
// character rules (UTF-8, U+0000), but it returns false if the topic contains
// a wildcard character, if a wildcard in the filter is misplaced, or if either
// string is empty. It does not allocate.
func Matches(filter, topic string) bool {
	if filter == "" || topic == "" {
		return false // [MQTT-4.7.3-1]
	}
	if topic[0] == '$' && isWildcardStart(filter) {
		return false // [MQTT-4.7.2-1]
	}
	for {
		fl, frest, fmore := cut(filter)
		if fl == "#" {
			// '#' matches what is left of the topic, zero or more levels,
			// and must be the last level [MQTT-4.7.1-1].
			return !fmore && !strings.ContainsAny(topic, "+#")
		}
		tl, trest, tmore := cut(topic)
		if strings.ContainsAny(tl, "+#") {
			return false // [MQTT-4.7.0-1]
		}
		// [MQTT-4.7.3-4]: levels are compared byte for byte, no normalization.
		// A literal level equal to tl holds no wildcard either, so a
		// misplaced wildcard in the filter never matches [MQTT-4.7.1-2].
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !tmore && !fmore:
			return true
		case !tmore:
			// "sport/#" matches "sport": the topic ends where only "#" is left.
			return frest == "#"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}

// Covers reports whether every topic name matched by the filter inner is also
// matched by the filter outer (filter subsumption, e.g. for ACLs): "a/#"
// covers "a/+/b" and "a", "a/+" does not cover "a/#", "#" covers "+/#" but not
// "$SYS/#" (a filter that starts with a wildcard never matches a topic that
// starts with '$' [MQTT-4.7.2-1]).
//
// Both arguments are taken as plain filters ("$share/" is not interpreted).
// Covers returns false if either of them is not a valid filter. The answer is
// exact: when Covers returns false there is a valid topic name that inner
// matches and outer does not.
func Covers(outer, inner string) bool {
	if outer == "" || inner == "" || len(outer) > MaxLength || len(inner) > MaxLength {
		return false
	}
	if _, err := checkFilter(outer); err != nil {
		return false
	}
	if _, err := checkFilter(inner); err != nil {
		return false
	}
	if isWildcardStart(outer) && inner[0] == '$' {
		// outer matches no '$' topic; inner (a literal '$' first level)
		// matches at least one.
		return false // [MQTT-4.7.2-1]
	}
	if inner == "#" {
		// A topic name has at least one level, so "#" matches exactly the
		// topics "+/#" matches (both exclude '$' topics). Rewriting it
		// avoids treating "zero levels" as a topic at the root.
		inner = "+/#"
	}
	// emptyRoot is true while the only level consumed is the empty first
	// level of a filter starting with '/'.
	emptyRoot := false
	for depth := 0; ; depth++ {
		ol, orest, omore := cut(outer)
		if ol == "#" {
			return true
		}
		il, irest, imore := cut(inner)
		if il == "#" {
			if emptyRoot {
				// "/#" would match the topic "" at the previous level, and
				// "" is not a topic name: here '#' matches exactly what
				// "+/#" matches.
				inner, emptyRoot = "+/#", false
				depth--
				continue
			}
			// inner matches here the topic that ends at the previous level
			// ("a/#" matches "a"), which outer (not '#') does not match.
			return false
		}
		emptyRoot = depth == 0 && il == ""

		if ol != "+" && (il == "+" || il != ol) {
			return false
		}
		switch {
		case !omore && !imore:
			return true
		case !omore:
			return false
		case !imore:
			// Topics matched by inner end here: outer must be "...prefix/#".
			return orest == "#"
		}
		outer, inner = orest, irest
	}
}
