package mqttpkt

import "bytes"

var (
	errTopicEmpty     = &Error{TopicNameInvalid, "empty topic name"}
	errTopicLong      = &Error{TopicNameInvalid, "topic name longer than 65535 bytes"}
	errTopicUTF8      = &Error{TopicNameInvalid, "topic name not valid UTF-8 or contains U+0000"}
	errTopicWildcard  = &Error{TopicNameInvalid, "wildcard in a topic name"}
	errFilterEmpty    = &Error{TopicFilterInvalid, "empty topic filter"}
	errFilterLong     = &Error{TopicFilterInvalid, "topic filter longer than 65535 bytes"}
	errFilterUTF8     = &Error{TopicFilterInvalid, "topic filter not valid UTF-8 or contains U+0000"}
	errFilterPlus     = &Error{TopicFilterInvalid, "'+' not alone in its level"}
	errFilterHash     = &Error{TopicFilterInvalid, "'#' not alone in the last level"}
	errShareNoFilter  = &Error{TopicFilterInvalid, "shared subscription without a topic filter"}
	errShareGroup     = &Error{TopicFilterInvalid, "shared subscription group empty or with a wildcard"}
	errShareGroupUTF8 = &Error{TopicFilterInvalid, "shared subscription group not valid UTF-8 or contains U+0000"}
)

const sharePrefix = "$share/"

// ValidTopicName returns nil if t may be the topic name of a PUBLISH or a
// will (MQTT 5 section 4.7): not empty, at most 65535 bytes, valid UTF-8
// without U+0000, no wildcard ('+' or '#'). A zero-length topic with an
// MQTT 5 Topic Alias is the caller's business (Decode accepts it). The
// error is an *Error of code TopicNameInvalid.
func ValidTopicName(t []byte) error {
	switch {
	case len(t) == 0:
		return errTopicEmpty
	case len(t) > MaxStringLength:
		return errTopicLong
	}
	switch scanTopic(t) {
	case topicWildcard:
		return errTopicWildcard
	case topicBadUTF8:
		return errTopicUTF8
	}
	return nil
}

// ValidTopicFilter returns nil if f may be the topic filter of a
// subscription (MQTT 5 section 4.7): not empty, at most 65535 bytes, valid
// UTF-8 without U+0000, '+' only as a whole level, '#' only as the whole
// last level ("sport/#" and "#" but not "sport#" nor "sport/#/x"). A shared
// subscription ("$share/group/filter") is a valid filter as a whole; see
// SharedSubscription for its own rules. The error is an *Error of code
// TopicFilterInvalid.
func ValidTopicFilter(f []byte) error {
	switch {
	case len(f) == 0:
		return errFilterEmpty
	case len(f) > MaxStringLength:
		return errFilterLong
	case !validUTF8(f):
		return errFilterUTF8
	}
	for i, c := range f {
		switch c {
		case '+':
			if (i > 0 && f[i-1] != '/') || (i+1 < len(f) && f[i+1] != '/') {
				return errFilterPlus
			}
		case '#':
			if (i > 0 && f[i-1] != '/') || i+1 != len(f) {
				return errFilterHash
			}
		}
	}
	return nil
}

// SharedSubscription splits a shared subscription's filter,
// "$share/{group}/{filter}" (MQTT 5 section 4.8.2), into the share name
// and the filter proper. ok is false and err nil for a filter that does
// not start with "$share/"; err (TopicFilterInvalid) is set for one that
// does but is longer than 65535 bytes, has no filter part, has an empty
// group or one with '+', '#' or bad UTF-8, or has a filter part
// ValidTopicFilter refuses. group and filter are views of f.
func SharedSubscription(f []byte) (group, filter []byte, ok bool, err error) {
	if !isShared(f) {
		return nil, nil, false, nil
	}
	if len(f) > MaxStringLength {
		return nil, nil, false, errFilterLong
	}
	rest := f[len(sharePrefix):]
	i := bytes.IndexByte(rest, '/')
	if i < 0 {
		return nil, nil, false, errShareNoFilter
	}
	group, filter = rest[:i], rest[i+1:]
	if len(group) == 0 || hasWildcard(group) {
		return nil, nil, false, errShareGroup
	}
	if !validUTF8(group) {
		return nil, nil, false, errShareGroupUTF8
	}
	if err := ValidTopicFilter(filter); err != nil {
		return nil, nil, false, err
	}
	return group, filter, true, nil
}

func isShared(f []byte) bool {
	return len(f) >= len(sharePrefix) && string(f[:len(sharePrefix)]) == sharePrefix
}

func hasWildcard(b []byte) bool {
	for _, c := range b {
		if c == '+' || c == '#' {
			return true
		}
	}
	return false
}

// Match reports whether topic name topic matches topic filter filter
// (MQTT 5 section 4.7): '+' matches exactly one level (possibly empty),
// '#' as the last level matches its parent and any number of levels below
// it ("sport/#" matches "sport" and "sport/tennis/player1"), and a filter
// that starts with a wildcard does not match a topic that starts with '$'
// ("#" does not match "$SYS/uptime"; "$SYS/#" does). Strip the prefix of a
// shared subscription first (SharedSubscription). Both are expected to be
// valid (ValidTopicFilter, ValidTopicName); on other input Match returns
// some answer, and does not panic. It does not allocate.
func Match(filter, topic []byte) bool {
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	i, j := 0, 0 // the starts of the current level in filter and topic
	for {
		rest := filter[i:]
		if len(rest) > 0 && rest[0] == '#' && (len(rest) == 1 || rest[1] == '/') {
			return true
		}
		n := levelEnd(rest)
		if n == 1 && rest[0] == '+' {
			j += levelEnd(topic[j:])
		} else {
			if len(topic)-j < n || string(topic[j:j+n]) != string(rest[:n]) {
				return false
			}
			j += n
			if j < len(topic) && topic[j] != '/' {
				return false
			}
		}
		i += n
		switch {
		case i == len(filter):
			return j == len(topic)
		case j == len(topic):
			// The topic has no more levels: only a last "/#" matches
			// (its parent level).
			return len(filter)-i == 2 && filter[i+1] == '#'
		}
		i, j = i+1, j+1 // past the '/' of both
	}
}

// levelEnd is the length of the first level of b (up to the first '/').
func levelEnd(b []byte) int {
	if i := bytes.IndexByte(b, '/'); i >= 0 {
		return i
	}
	return len(b)
}
