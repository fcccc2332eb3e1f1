package mqttpkt

import (
	"bytes"
	"testing"
)

// FuzzDecode: no input panics or loops. An error is an *Error with n = 0;
// "need more" is said only of input that ends inside the packet its fixed
// header announces. A decoded packet lies within the input, every shorter
// prefix of it asks for more, it re-encodes (Append accepts it, Size
// agrees) and the re-encoding decodes to the same packet, whose encoding
// is the same bytes again.
func FuzzDecode(f *testing.F) {
	for _, fx := range fixtures {
		f.Add(mustHex(fx.hex), fx.version, uint16(0))
	}
	for _, c := range badPackets {
		f.Add(mustHex(c.hex), c.version, uint16(0))
	}
	f.Add(mustHex("30 ff 7f"), byte(4), uint16(100))
	f.Fuzz(func(t *testing.T, b []byte, version byte, maxSize uint16) {
		version = []byte{0, 4, 5}[version%3]
		var p Packet
		n, err := Decode(b, version, int(maxSize), &p)
		switch {
		case err != nil:
			if n != 0 || codeOf(err) < 0 {
				t.Fatalf("% x: n=%d err=%v", b, n, err)
			}
			return
		case n == 0:
			// Need more: the announced packet must be longer than b.
			if len(b) >= 2 {
				rl, hl, e := varint(b[1:])
				if e == nil && hl > 0 && 1+hl+rl <= len(b) {
					t.Fatalf("% x: needs more, but holds the %d bytes announced", b, 1+hl+rl)
				}
			}
			return
		}
		if n < 2 || n > len(b) || (maxSize > 0 && n > int(maxSize)) {
			t.Fatalf("% x: n=%d", b, n)
		}
		var q Packet
		for i := 0; i < n; i++ {
			if m, err := Decode(b[:i], version, int(maxSize), &q); m != 0 || err != nil {
				t.Fatalf("% x: prefix %d: n=%d err=%v", b[:n], i, m, err)
			}
		}
		v := version
		if p.Type == CONNECT {
			v = p.Version
		}
		enc, err := Append(nil, &p, v)
		if err != nil {
			t.Fatalf("% x decodes to %s, which Append refuses: %v", b[:n], describe(&p), err)
		}
		if Size(&p, v) != len(enc) {
			t.Fatalf("% x: Size %d, encoded %d", b[:n], Size(&p, v), len(enc))
		}
		m, err := Decode(enc, v, 0, &q)
		if err != nil || m != len(enc) {
			t.Fatalf("% x re-encoded as % x: n=%d err=%v", b[:n], enc, m, err)
		}
		if g, w := describe(&q), describe(&p); g != w {
			t.Fatalf("% x re-encoded as % x:\n got %s\nwant %s", b[:n], enc, g, w)
		}
		again, err := Append(nil, &q, v)
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("% x: encodings differ: % x / % x (%v)", b[:n], enc, again, err)
		}
	})
}

// FuzzTopic: Match, ValidTopicName, ValidTopicFilter and
// SharedSubscription never panic, and agree with each other: a valid name
// is a valid filter that matches itself; on a valid filter and name, Match
// is refMatch; "#" matches exactly the names not starting with '$'; a
// shared subscription puts itself back together from its parts.
func FuzzTopic(f *testing.F) {
	seeds := [][2]string{
		{"sport/tennis/#", "sport/tennis"}, {"sport/+", "sport"}, {"+/+", "/finance"}, {"#", "$SYS/x"},
		{"$SYS/#", "$SYS"}, {"$share/g/a/+", "a/b"}, {"a/#/b", "a/x/b"}, {"", ""}, {"+", "\xff"},
	}
	for _, s := range seeds {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, filter, topic []byte) {
		m := Match(filter, topic)
		filterOK := ValidTopicFilter(filter) == nil
		nameOK := ValidTopicName(topic) == nil
		if filterOK && nameOK && m != refMatch(string(filter), string(topic)) {
			t.Fatalf("Match(%q, %q) = %v, reference says otherwise", filter, topic, m)
		}
		if nameOK {
			if ValidTopicFilter(topic) != nil {
				t.Fatalf("%q: a valid name but not a valid filter", topic)
			}
			if !Match(topic, topic) {
				t.Fatalf("%q does not match itself", topic)
			}
			if Match([]byte("#"), topic) != (topic[0] != '$') {
				t.Fatalf("'#' against %q", topic)
			}
		}
		if ValidTopicName(filter) == nil && !filterOK {
			t.Fatalf("%q: a valid name but not a valid filter", filter)
		}
		g, sf, ok, err := SharedSubscription(filter)
		if ok && err != nil {
			t.Fatalf("%q: ok and error", filter)
		}
		if ok {
			if !filterOK || len(g) == 0 || ValidTopicFilter(sf) != nil {
				t.Fatalf("%q: shared %q %q, but not valid", filter, g, sf)
			}
			if string(filter) != "$share/"+string(g)+"/"+string(sf) {
				t.Fatalf("%q split into %q and %q", filter, g, sf)
			}
		}
		if !ok && err == nil && bytes.HasPrefix(filter, []byte("$share/")) {
			t.Fatalf("%q: neither shared nor an error", filter)
		}
	})
}
