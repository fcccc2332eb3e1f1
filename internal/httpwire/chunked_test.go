package httpwire

import (
	"bytes"
	"strings"
	"testing"
)

// decodeAll feeds in to a decoder in pieces of size step and returns the
// body, whether it ended, the bytes consumed and the error.
func decodeAll(in []byte, step int) (body []byte, done bool, used int, err error) {
	var d ChunkedDecoder
	for used < len(in) && !d.Done() {
		end := min(used+step, len(in))
		n, err := d.Decode(in[used:end], func(p []byte) { body = append(body, p...) })
		used += n
		if err != nil {
			return body, false, used, err
		}
	}
	return body, d.Done(), used, nil
}

func TestChunkedDecode(t *testing.T) {
	for _, tc := range []struct {
		name, in, body string
	}{
		{"simple", "5\r\nhello\r\n0\r\n\r\n", "hello"},
		{"two chunks", "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n", "abcdefg"},
		{"hex upper and lower", "A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n", "01234567890123456789"},
		{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello"},
		{"extensions", "5;name=value;x\r\nhello\r\n0;last\r\n\r\n", "hello"},
		{"space before extension", "5 ;a=b\r\nhello\r\n0\r\n\r\n", "hello"},
		{"trailers", "5\r\nhello\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n", "hello"},
		{"empty body", "0\r\n\r\n", ""},
	} {
		for _, step := range []int{1, 2, 3, 7, 1 << 20} {
			body, done, used, err := decodeAll([]byte(tc.in+"NEXT"), step)
			if err != nil || !done || string(body) != tc.body || used != len(tc.in) {
				t.Errorf("%s, step %d: body %q done %v used %d err %v; want %q, all %d bytes",
					tc.name, step, body, done, used, err, tc.body, len(tc.in))
			}
		}
	}
}

// TestChunkedRejects: malformed chunked bodies are errors, not bodies.
func TestChunkedRejects(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		status   int
	}{
		{"too many hex digits", strings.Repeat("f", 16) + "\r\n", 400},
		{"many leading zeros", strings.Repeat("0", 16) + "5\r\nhello\r\n0\r\n\r\n", 400},
		{"negative size", "-5\r\nhello\r\n0\r\n\r\n", 400},
		{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", 400},
		{"no size", "\r\nhello\r\n0\r\n\r\n", 400},
		{"data longer than size", "3\r\nhello\r\n0\r\n\r\n", 400},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n", 400},
		{"bare CR after data", "5\r\nhello\rX0\r\n\r\n", 400},
		{"missing CRLF after data", "5\r\nhello0\r\n\r\n", 400},
		{"extension too long", "5;" + strings.Repeat("x", maxChunkLine) + "\r\nhello\r\n0\r\n\r\n", 400},
		{"control in extension", "5;a\x01\r\nhello\r\n0\r\n\r\n", 400},
		{"trailer too large", "0\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", 20) + "\r\n", 431},
		{"trailer line too long", "0\r\nX: " + strings.Repeat("a", maxChunkLine) + "\r\n\r\n", 431},
	} {
		for _, step := range []int{1, 1 << 20} {
			body, done, _, err := decodeAll([]byte(tc.in), step)
			if statusOf(err) != tc.status || done {
				t.Errorf("%s, step %d: body %q done %v err %v; want status %d", tc.name, step, body, done, err, tc.status)
			}
		}
	}
}

// TestChunkedLargeChunkZeroCopy: data comes out as views of the input, in as
// few calls as the input's pieces allow.
func TestChunkedLargeChunkZeroCopy(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 100000)
	in := append([]byte("186a0\r\n"), data...)
	in = append(in, "\r\n0\r\n\r\n"...)
	var d ChunkedDecoder
	calls := 0
	n, err := d.Decode(in, func(p []byte) {
		calls++
		if &p[0] != &in[7] {
			t.Error("data is not a view of the input")
		}
	})
	if err != nil || n != len(in) || !d.Done() || calls != 1 {
		t.Fatalf("n %d err %v done %v calls %d", n, err, d.Done(), calls)
	}
}
