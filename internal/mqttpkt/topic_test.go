package mqttpkt

import (
	"strings"
	"testing"
)

// TestMatch: the examples of MQTT 5 section 4.7 (and 3.1.1 section 4.7),
// and the edges around them.
func TestMatch(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		// 4.7.1.2 Multi-level wildcard.
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true},
		{"sport/tennis/#", "sport/tennis", true},
		{"sport/tennis/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/#", "sport/tennisplayer1", false},
		{"#", "sport/tennis", true},
		{"#", "/", true},
		// 4.7.1.3 Single-level wildcard.
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player2", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+", "sport", true},
		{"+/tennis/#", "sport/tennis", true},
		{"+/tennis/#", "sport/tennis/x/y", true},
		{"sport/+/player1", "sport/tennis/player1", true},
		{"sport/+/player1", "sport/tennis/player2", false},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+/+", "a", false},
		{"+/+", "a/b/c", false},
		// 4.7.2 Topics beginning with $.
		{"#", "$SYS/broker/clients", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/#", "$SYS", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"+", "$SYS", false},
		{"a/#", "a/$SYS", true},
		// Literal levels: exact, case-sensitive, empty levels count.
		{"ACCOUNTS", "Accounts", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"a/b", "a", false},
		{"a", "a/b", false},
		{"/", "/", true},
		{"+/+", "/", true},
		{"a/#", "a/", true},
		{"é/+", "é/ü", true},
	}
	for _, c := range cases {
		if got := Match([]byte(c.filter), []byte(c.topic)); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
		if got := refMatch(c.filter, c.topic); got != c.want {
			t.Errorf("refMatch(%q, %q) = %v: the reference disagrees with the table", c.filter, c.topic, got)
		}
	}
}

// refMatch is Match written the obvious way, by splitting into levels:
// the reference FuzzTopic compares Match with.
func refMatch(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// TestValidTopicFilter: '+' alone in its level, '#' alone in the last,
// non-empty, UTF-8 without U+0000, at most 65535 bytes.
func TestValidTopicFilter(t *testing.T) {
	valid := []string{"#", "+", "sport/#", "sport/tennis/#", "sport/tennis/+", "+/tennis/#", "sport/+/player1",
		"/", "//", "/+", "+/", "+/+", "$SYS/#", "$share/g/a/#", "a b", "é", "sport/+/+/#",
		strings.Repeat("a", MaxStringLength)}
	invalid := []string{"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "sport/+x", "x+/a", "##", "#/",
		"a/#/", "++", "a/\x00", "\xff", "\xed\xa0\x80", strings.Repeat("a", MaxStringLength+1)}
	for _, f := range valid {
		if err := ValidTopicFilter([]byte(f)); err != nil {
			t.Errorf("ValidTopicFilter(%.20q) = %v", f, err)
		}
	}
	for _, f := range invalid {
		err := ValidTopicFilter([]byte(f))
		if codeOf(err) != int(TopicFilterInvalid) {
			t.Errorf("ValidTopicFilter(%.20q) = %v, want TopicFilterInvalid", f, err)
		}
	}
}

// TestValidTopicName: no wildcards, non-empty, UTF-8 without U+0000, at
// most 65535 bytes; '$' topics and empty levels are names.
func TestValidTopicName(t *testing.T) {
	valid := []string{"a", "/", "sport/tennis/player1", "$SYS/x", "a//b", "é/日本", " ", strings.Repeat("a", MaxStringLength)}
	invalid := []string{"", "a/+", "#", "a/#", "sport+", "a\x00", "\xc3\x28", "\xed\xb0\x80", strings.Repeat("a", MaxStringLength+1)}
	for _, s := range valid {
		if err := ValidTopicName([]byte(s)); err != nil {
			t.Errorf("ValidTopicName(%.20q) = %v", s, err)
		}
	}
	for _, s := range invalid {
		if err := ValidTopicName([]byte(s)); codeOf(err) != int(TopicNameInvalid) {
			t.Errorf("ValidTopicName(%.20q) = %v, want TopicNameInvalid", s, err)
		}
	}
}

// TestSharedSubscription: "$share/{group}/{filter}" splits into group and
// filter; a non-shared filter is not an error; a shared one without a
// filter, with an empty or wildcard group, or a bad filter is.
func TestSharedSubscription(t *testing.T) {
	cases := []struct {
		in            string
		group, filter string
		ok, err       bool
	}{
		{"$share/g/a/#", "g", "a/#", true, false},
		{"$share/consumer1/sport/tennis/+", "consumer1", "sport/tennis/+", true, false},
		{"$share/g/#", "g", "#", true, false},
		{"$share/g//", "g", "/", true, false},
		{"$share/g/$SYS/x", "g", "$SYS/x", true, false},
		{"a/b", "", "", false, false},
		{"$SYS/#", "", "", false, false},
		{"$share", "", "", false, false},
		{"$sharex/g/a", "", "", false, false},
		{"$share/", "", "", false, true},
		{"$share/g", "", "", false, true},
		{"$share/g/", "", "", false, true},
		{"$share//a", "", "", false, true},
		{"$share/g+/a", "", "", false, true},
		{"$share/#/a", "", "", false, true},
		{"$share/g/a#", "", "", false, true},
		{"$share/\xff/a", "", "", false, true},
		{"$share/g/" + strings.Repeat("a", MaxStringLength-8), "", "", false, true},
	}
	for _, c := range cases {
		g, f, ok, err := SharedSubscription([]byte(c.in))
		if string(g) != c.group || string(f) != c.filter || ok != c.ok || (err != nil) != c.err {
			t.Errorf("SharedSubscription(%.20q) = %q %.20q %v %v", c.in, g, f, ok, err)
		}
		if err != nil && codeOf(err) != int(TopicFilterInvalid) {
			t.Errorf("SharedSubscription(%q): %v, want TopicFilterInvalid", c.in, err)
		}
	}
}
