package httpwire

import (
	"errors"
	"strings"
	"testing"
)

// statusOf returns the status of a parse error (0 for none).
func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestParseRequestValid(t *testing.T) {
	for _, tc := range []struct {
		name, in  string
		method    string
		path, q   string
		framing   Framing
		length    int64
		keepAlive bool
		headers   int
	}{
		{"get", "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/index.html", "", NoBody, 0, true, 1},
		{"query", "GET /a/b?x=1&y=2 HTTP/1.1\r\n\r\n", "GET", "/a/b", "x=1&y=2", NoBody, 0, true, 0},
		{"post length", "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "POST", "/", "", Length, 5, true, 1},
		{"zero length", "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "POST", "/", "", NoBody, 0, true, 1},
		{"identical lengths", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "POST", "/", "", Length, 5, true, 2},
		{"length list", "POST / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n", "POST", "/", "", Length, 7, true, 1},
		{"chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "POST", "/", "", Chunked, 0, true, 1},
		{"chunked any case", "POST / HTTP/1.1\r\ntransfer-encoding:  Chunked \r\n\r\n", "POST", "/", "", Chunked, 0, true, 1},
		{"http/1.0", "GET / HTTP/1.0\r\n\r\n", "GET", "/", "", NoBody, 0, false, 0},
		{"http/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET", "/", "", NoBody, 0, true, 1},
		{"close", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "GET", "/", "", NoBody, 0, false, 1},
		{"close in a list", "GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n", "GET", "/", "", NoBody, 0, false, 1},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\n\r\n", "GET", "/", "", NoBody, 0, true, 0},
		{"options star", "OPTIONS * HTTP/1.1\r\n\r\n", "OPTIONS", "*", "", NoBody, 0, true, 0},
		{"empty value", "GET / HTTP/1.1\r\nX-Empty:\r\n\r\n", "GET", "/", "", NoBody, 0, true, 1},
		{"obs-text value", "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", "GET", "/", "", NoBody, 0, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			n, err := ParseRequest([]byte(tc.in), &m, nil)
			if err != nil {
				t.Fatalf("error %v", err)
			}
			body := strings.Index(tc.in, "\r\n\r\n") + 4
			if n != body {
				t.Fatalf("head length %d, want %d", n, body)
			}
			if string(m.Method) != tc.method || string(m.Path) != tc.path || string(m.Query) != tc.q {
				t.Fatalf("method %q path %q query %q", m.Method, m.Path, m.Query)
			}
			if m.Framing != tc.framing || m.ContentLength != tc.length || m.KeepAlive != tc.keepAlive {
				t.Fatalf("framing %d length %d keep-alive %v", m.Framing, m.ContentLength, m.KeepAlive)
			}
			if len(m.Headers) != tc.headers {
				t.Fatalf("%d headers, want %d", len(m.Headers), tc.headers)
			}
		})
	}
}

// TestParseRequestRejects holds the cases other implementations got wrong:
// each must be an error with the right status, never a parsed request.
func TestParseRequestRejects(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		status   int
	}{
		{"negative length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
		{"overflowing length", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"plus sign", "POST / HTTP/1.1\r\nContent-Length: +10\r\n\r\n", 400},
		{"hex length", "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400},
		{"underscore", "POST / HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n", 400},
		{"empty length", "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", 400},
		{"space inside length", "POST / HTTP/1.1\r\nContent-Length: 1 0\r\n\r\n", 400},
		{"lengths disagree", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
		{"length list disagrees", "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", 400},
		{"length list with empty element", "POST / HTTP/1.1\r\nContent-Length: 5,\r\n\r\n", 400},
		{"te leading comma", "POST / HTTP/1.1\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400},
		{"te chunked, identity", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400},
		{"te unknown coding", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"te gzip, chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400},
		{"two te fields", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"te on http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"te and length", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
		{"line without colon", "GET / HTTP/1.1\r\nHost x\r\n\r\n", 400},
		{"empty name", "GET / HTTP/1.1\r\n: x\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
		{"bare CR in a header", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400},
		{"bare LF line", "GET / HTTP/1.1\nHost: x\r\n\r\n", 400},
		{"bare LF header", "GET / HTTP/1.1\r\nHost: x\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400},
		{"bad method", "G(T / HTTP/1.1\r\n\r\n", 400},
		{"no target", "GET HTTP/1.1\r\n\r\n", 400},
		{"two spaces", "GET  / HTTP/1.1\r\n\r\n", 400},
		{"control in target", "GET /a\x01b HTTP/1.1\r\n\r\n", 400},
		{"bad version", "GET / HTTP/1.x\r\n\r\n", 400},
		{"lower-case version", "GET / http/1.1\r\n\r\n", 400},
		{"http/2.0", "GET / HTTP/2.0\r\n\r\n", 505},
		{"http/1.2", "GET / HTTP/1.2\r\n\r\n", 505},
		{"request line too long", "GET /" + strings.Repeat("a", DefaultMaxRequestLine) + " HTTP/1.1\r\n\r\n", 414},
		{"request line too long, incomplete", "GET /" + strings.Repeat("a", DefaultMaxRequestLine+10), 414},
		{"header too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", DefaultMaxHeaderBytes) + "\r\n\r\n", 431},
		{"header section incomplete and too large", "GET / HTTP/1.1\r\n" + strings.Repeat("X: aaaaaaaaaa\r\n", DefaultMaxHeaderBytes/15+1), 431},
		{"too many headers", "GET / HTTP/1.1\r\n" + strings.Repeat("X: a\r\n", DefaultMaxHeaders+1) + "\r\n", 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			n, err := ParseRequest([]byte(tc.in), &m, nil)
			if got := statusOf(err); got != tc.status || n != 0 {
				t.Fatalf("ParseRequest = %d, %v (status %d); want status %d", n, err, got, tc.status)
			}
		})
	}
}

// TestParseRequestIncomplete: every proper prefix of a valid request asks
// for more bytes, and never errs.
func TestParseRequestIncomplete(t *testing.T) {
	in := "\r\nPOST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nX-A: b\r\n\r\n"
	for i := 0; i < len(in); i++ {
		var m Message
		n, err := ParseRequest([]byte(in[:i]), &m, nil)
		if n != 0 || err != nil {
			t.Fatalf("prefix %q: %d, %v; want 0, nil", in[:i], n, err)
		}
	}
	var m Message
	if n, err := ParseRequest([]byte(in), &m, nil); n != len(in) || err != nil {
		t.Fatalf("whole: %d, %v", n, err)
	}
}

// TestParseRequestLimits: configured limits apply.
func TestParseRequestLimits(t *testing.T) {
	lim := &Limits{MaxRequestLine: 20, MaxHeaderBytes: 60, MaxHeaders: 2}
	for _, tc := range []struct {
		in     string
		status int
	}{
		{"GET /0123456789012345 HTTP/1.1\r\n\r\n", 414},
		{"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431},
		{"GET / HTTP/1.1\r\nA: " + strings.Repeat("x", 50) + "\r\n\r\n", 431},
		{"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", 0},
	} {
		var m Message
		_, err := ParseRequest([]byte(tc.in), &m, lim)
		if got := statusOf(err); got != tc.status {
			t.Errorf("%q: %v, want status %d", tc.in, err, tc.status)
		}
	}
}

func TestMessageHeader(t *testing.T) {
	var m Message
	if _, err := ParseRequest([]byte("GET / HTTP/1.1\r\nContent-Type: text/plain\r\nX-Twice: 1\r\nx-twice: 2\r\n\r\n"), &m, nil); err != nil {
		t.Fatal(err)
	}
	if v := string(m.Header("content-TYPE")); v != "text/plain" {
		t.Errorf("Content-Type %q", v)
	}
	if v := string(m.Header("X-Twice")); v != "1" {
		t.Errorf("first X-Twice %q", v)
	}
	if m.Header("Missing") != nil {
		t.Error("missing header not nil")
	}
}

func TestParseResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in, method string
		status           int
		framing          Framing
		length           int64
		keepAlive        bool
		errStatus        int
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", 200, Length, 5, true, 0},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 200, Chunked, 0, true, 0},
		{"until close", "HTTP/1.1 200 OK\r\n\r\n", "GET", 200, UntilClose, 0, false, 0},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET", 200, Length, 1, false, 0},
		{"no reason", "HTTP/1.1 204\r\n\r\n", "GET", 204, NoBody, 0, true, 0},
		{"head", "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", "HEAD", 200, NoBody, 500, true, 0},
		{"204 with length", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "GET", 204, NoBody, 5, true, 0},
		{"304 with chunked", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 304, NoBody, 0, true, 0},
		{"100 continue", "HTTP/1.1 100 Continue\r\n\r\n", "POST", 100, NoBody, 0, true, 0},
		{"gzip te", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", 200, UntilClose, 0, false, 0},
		{"te and length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", "GET", 0, 0, 0, false, 400},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", "GET", 0, 0, 0, false, 400},
		{"status 099", "HTTP/1.1 099 X\r\n\r\n", "GET", 0, 0, 0, false, 400},
		{"no space", "HTTP/1.1 200OK\r\n\r\n", "GET", 0, 0, 0, false, 400},
		{"lengths disagree", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "GET", 0, 0, 0, false, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			n, err := ParseResponse([]byte(tc.in), &m, nil, []byte(tc.method))
			if got := statusOf(err); got != tc.errStatus {
				t.Fatalf("error %v, want status %d", err, tc.errStatus)
			}
			if tc.errStatus != 0 {
				return
			}
			if n != len(tc.in) || m.Status != tc.status || m.Framing != tc.framing || m.ContentLength != tc.length || m.KeepAlive != tc.keepAlive {
				t.Fatalf("n %d status %d framing %d length %d keep-alive %v", n, m.Status, m.Framing, m.ContentLength, m.KeepAlive)
			}
		})
	}
}
