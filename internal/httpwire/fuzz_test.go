package httpwire

import (
	"bytes"
	"testing"
)

// FuzzParseRequest: no input panics; a parsed head lies within the input,
// parses the same on its own, and its framing is one of the known ones.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a?b=c HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var m Message
		n, err := ParseRequest(in, &m, nil)
		if err != nil {
			if n != 0 || statusOf(err) < 400 {
				t.Fatalf("error %v with n %d", err, n)
			}
			return
		}
		if n == 0 {
			return
		}
		if n > len(in) || n != m.HeadLen {
			t.Fatalf("head length %d of %d bytes", n, len(in))
		}
		if m.Framing > Chunked || (m.Framing == Length) != (m.ContentLength > 0) {
			t.Fatalf("framing %d length %d", m.Framing, m.ContentLength)
		}
		var again Message
		if n2, err := ParseRequest(in[:n], &again, nil); n2 != n || err != nil {
			t.Fatalf("the head alone: %d, %v; want %d", n2, err, n)
		}
		if !bytes.Equal(again.Target, m.Target) || len(again.Headers) != len(m.Headers) {
			t.Fatal("the head alone parses differently")
		}
	})
}

// FuzzParseResponse: no input panics.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), false)
	f.Add([]byte("HTTP/1.0 304 Not Modified\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, in []byte, head bool) {
		method := []byte("GET")
		if head {
			method = []byte("HEAD")
		}
		var m Message
		n, err := ParseResponse(in, &m, nil, method)
		if n > len(in) || (err != nil && n != 0) {
			t.Fatalf("%d, %v", n, err)
		}
		if err == nil && n > 0 && head && m.Framing != NoBody {
			t.Fatal("a response to HEAD has a body")
		}
	})
}

// FuzzChunked: no input panics, the body is never longer than the input,
// and feeding the input one byte at a time gives the same result as all at
// once.
func FuzzChunked(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
		"ffffffffffffffff\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		whole, done1, used1, err1 := decodeAll(in, len(in)+1)
		bytewise, done2, used2, err2 := decodeAll(in, 1)
		if len(whole) > len(in) {
			t.Fatalf("body of %d bytes from %d", len(whole), len(in))
		}
		if !bytes.Equal(whole, bytewise) || done1 != done2 || used1 != used2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("whole: %q %v %d %v; bytewise: %q %v %d %v", whole, done1, used1, err1, bytewise, done2, used2, err2)
		}
	})
}
