package wsframe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestValidCloseCode: the codes RFC 6455 7.4 and the IANA registry allow on
// the wire, and the ones they do not.
func TestValidCloseCode(t *testing.T) {
	valid := []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}
	invalid := []uint16{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}
	for _, c := range valid {
		if !ValidCloseCode(c) {
			t.Errorf("%d: not valid", c)
		}
	}
	for _, c := range invalid {
		if ValidCloseCode(c) {
			t.Errorf("%d: valid", c)
		}
	}
}

// TestParseClose: a close payload is empty, or a valid code and a UTF-8
// reason; a 1-byte payload and codes that may not be sent are 1002, a
// reason that is not UTF-8 is 1007.
func TestParseClose(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		code   uint16
		reason string
		err    int
	}{
		{"empty", "", CloseNoStatus, "", 0},
		{"normal", "\x03\xe8", 1000, "", 0},
		{"with reason", "\x03\xe8bye", 1000, "bye", 0},
		{"utf-8 reason", "\x0f\xa0h\xc3\xa9h\xe2\x82\xac\xf0\x9f\x98\x80", 4000, "héh€😀", 0},
		{"3000", "\x0b\xb8", 3000, "", 0},
		{"4999", "\x13\x87", 4999, "", 0},
		{"1014", "\x03\xf6", 1014, "", 0},
		{"one byte", "\x03", 0, "", 1002},
		{"1005", "\x03\xed", 0, "", 1002},
		{"1006", "\x03\xee", 0, "", 1002},
		{"1015", "\x03\xf7", 0, "", 1002},
		{"1004", "\x03\xec", 0, "", 1002},
		{"999", "\x03\xe7", 0, "", 1002},
		{"0", "\x00\x00", 0, "", 1002},
		{"1016", "\x03\xf8", 0, "", 1002},
		{"2999", "\x0b\xb7", 0, "", 1002},
		{"5000", "\x13\x88", 0, "", 1002},
		{"65535", "\xff\xff", 0, "", 1002},
		{"invalid utf-8 reason", "\x03\xe8\xff", 0, "", 1007},
		{"truncated utf-8 reason", "\x03\xe8a\xe2\x82", 0, "", 1007},
		{"surrogate in reason", "\x03\xe8\xed\xa0\x80", 0, "", 1007},
		{"overlong in reason", "\x03\xe8\xc0\xaf", 0, "", 1007},
	} {
		code, reason, err := ParseClose([]byte(tc.in))
		if codeOf(err) != tc.err {
			t.Errorf("%s: err %v, want code %d", tc.name, err, tc.err)
			continue
		}
		if err == nil && (code != tc.code || string(reason) != tc.reason) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, reason, tc.code, tc.reason)
		}
	}
}

// TestAppendClose: the payload is the code and the reason, cut to 125 bytes
// at a UTF-8 boundary; no status gives an empty payload.
func TestAppendClose(t *testing.T) {
	if b := AppendClose(nil, 0, "x"); len(b) != 0 {
		t.Errorf("code 0: %q", b)
	}
	if b := AppendClose([]byte("ab"), CloseNoStatus, "x"); string(b) != "ab" {
		t.Errorf("1005: %q", b)
	}
	if b := AppendClose(nil, CloseGoingAway, "bye"); string(b) != "\x03\xe9bye" {
		t.Errorf("1001 bye: %q", b)
	}
	for _, unit := range []string{"a", "é", "€", "😀"} {
		for extra := 0; extra < 8; extra++ {
			reason := strings.Repeat("a", extra) + strings.Repeat(unit, 130)
			b := AppendClose(nil, CloseNormal, reason)
			if len(b) > 125 || len(b) < 125-3 {
				t.Fatalf("%q x130 after %d: %d bytes", unit, extra, len(b))
			}
			code, r, err := ParseClose(b)
			if err != nil || code != CloseNormal || !strings.HasPrefix(reason, string(r)) || !utf8.Valid(r) {
				t.Fatalf("%q x130 after %d: %d %q %v", unit, extra, code, r, err)
			}
		}
	}
	exact := strings.Repeat("z", 123)
	if b := AppendClose(nil, 3000, exact); len(b) != 125 || string(b[2:]) != exact {
		t.Errorf("123-byte reason cut: %d bytes", len(b))
	}
}
