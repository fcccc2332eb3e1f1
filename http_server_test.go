package meerkat_test

// The HTTP server (issue 3, "Server"): keep-alive and Connection: close,
// pipelining split at every byte, half-close, deferred replies through
// Wakeup, Expect: 100-continue, the header timeout, malformed requests,
// streamed uploads, the reply helpers and Shutdown. Every test runs on every
// driver, plain and TLS, against blocking standard-library peers that
// control every byte they send and check every byte they get.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// ---------------------------------------------------------------------------
// Machinery

// hsListen opens a checked HTTP listener on a free loopback port: http://,
// or https:// (with Manager.TLSConfig) for TLS tests.
func hsListen(e *env, fn meerkat.Handler) (*meerkat.Conn, string) {
	e.t.Helper()
	scheme := "http"
	if e.useTLS {
		scheme = "https"
	}
	l, err := e.m.HTTPListen(scheme+"://127.0.0.1:0", e.chk.wrap(fn))
	if err != nil {
		e.t.Fatalf("HTTPListen: %v", err)
	}
	return l, l.LocalAddr().String()
}

// hsTrack records what the server's handler saw. It is only touched on the
// Poll goroutine (the test's own).
type hsTrack struct {
	conns   []*meerkat.Conn            // accepted connections, in order
	reads   map[*meerkat.Conn]int      // plaintext bytes delivered by EvRead
	msgs    map[*meerkat.Conn][]string // "METHOD target" per EvHTTPMsg, and notes (hsTrack.note)
	targets []string                   // the target of every EvHTTPHeaders, EvHTTPChunk and EvHTTPMsg
}

func newHSTrack() *hsTrack {
	return &hsTrack{reads: map[*meerkat.Conn]int{}, msgs: map[*meerkat.Conn][]string{}}
}

// wrap returns fn with the events recorded first.
func (tr *hsTrack) wrap(fn meerkat.Handler) meerkat.Handler {
	return func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvAccept:
			tr.conns = append(tr.conns, c)
		case meerkat.EvRead:
			tr.reads[c] += data.(int)
		case meerkat.EvHTTPHeaders, meerkat.EvHTTPChunk:
			tr.targets = append(tr.targets, hsTarget(data.(*meerkat.HTTPMessage)))
		case meerkat.EvHTTPMsg:
			hm := data.(*meerkat.HTTPMessage)
			tr.targets = append(tr.targets, hsTarget(hm))
			tr.msgs[c] = append(tr.msgs[c], string(hm.Method)+" "+hsTarget(hm))
		}
		if fn != nil {
			fn(c, ev, data)
		}
	}
}

// note adds a marker to c's message list (to order replies among requests).
func (tr *hsTrack) note(c *meerkat.Conn, what string) { tr.msgs[c] = append(tr.msgs[c], what) }

// last is the most recently accepted connection.
func (tr *hsTrack) last() *meerkat.Conn {
	if len(tr.conns) == 0 {
		return nil
	}
	return tr.conns[len(tr.conns)-1]
}

// sawTarget reports whether any HTTP event carried target.
func (tr *hsTrack) sawTarget(target string) bool { return slices.Contains(tr.targets, target) }

// hsTarget is a request's path with its query.
func hsTarget(hm *meerkat.HTTPMessage) string {
	if len(hm.Query) > 0 {
		return string(hm.URI) + "?" + string(hm.Query)
	}
	return string(hm.URI)
}

// hsEchoBody is hsEcho's answer to a request: its method, target, and the
// length and CRC-32 of its body.
func hsEchoBody(method, target string, body []byte) string {
	return fmt.Sprintf("%s %s %d:%08x", method, target, len(body), crc32.ChecksumIEEE(body))
}

// hsEcho answers every request at once with hsEchoBody.
func hsEcho(c *meerkat.Conn, ev meerkat.Event, data any) {
	if ev == meerkat.EvHTTPMsg {
		hm := data.(*meerkat.HTTPMessage)
		meerkat.HTTPReply(c, 200, "Content-Type: text/plain\r\n", "%s", hsEchoBody(string(hm.Method), hsTarget(hm), hm.Body))
	}
}

// hsGo runs fn in a goroutine; the channel receives its result.
func hsGo(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

// hsWait polls the Manager until ch delivers; an error fails the test.
// Short Polls: the peer goroutine's return does not wake the Manager.
func hsWait(e *env, ch <-chan error, timeout time.Duration, what string) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-ch:
			if err != nil {
				e.t.Fatalf("%s: %v", what, err)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		e.m.Poll(time.Millisecond)
	}
}

// hsAwait runs fn (a blocking peer operation) in a goroutine and polls the
// Manager until it returns.
func hsAwait(e *env, timeout time.Duration, what string, fn func() error) {
	e.t.Helper()
	hsWait(e, hsGo(fn), timeout, what)
}

// hsPollFor polls the Manager for d, to let something that must not happen
// have every chance to.
func hsPollFor(e *env, d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		e.m.Poll(5 * time.Millisecond)
	}
}

// hsDial connects a blocking peer (TLS for TLS tests, its handshake done
// while the Manager is polled) with a deadline on all its I/O.
func hsDial(e *env, addr string) net.Conn {
	e.t.Helper()
	nc := e.dialPeer(addr)
	e.t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	if tc, ok := nc.(*tls.Conn); ok {
		hsAwait(e, 10*time.Second, "the TLS handshake", tc.Handshake)
	}
	return nc
}

// hsWrite writes p from the test goroutine (small writes that the socket
// buffers take at once).
func hsWrite(t testing.TB, nc net.Conn, p []byte) {
	t.Helper()
	if _, err := nc.Write(p); err != nil {
		t.Fatalf("peer write: %v", err)
	}
}

// hsCloseWrite shuts down the peer's sending side: close_notify and then
// FIN for TLS, FIN for TCP.
func hsCloseWrite(t testing.TB, nc net.Conn) {
	t.Helper()
	if tc, ok := nc.(*tls.Conn); ok {
		if err := tc.CloseWrite(); err != nil {
			t.Fatalf("TLS CloseWrite: %v", err)
		}
		nc = tc.NetConn()
	}
	if err := nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
}

// hsReadAll reads from nc until EOF while the Manager is polled.
func hsReadAll(e *env, nc net.Conn, what string) []byte {
	e.t.Helper()
	var b []byte
	hsAwait(e, 30*time.Second, what, func() (err error) {
		b, err = io.ReadAll(nc)
		return err
	})
	return b
}

// hsCollector reads a peer connection until EOF in a goroutine, keeping
// what arrived so far visible to the test, and then closes it.
type hsCollector struct {
	mu    sync.Mutex
	buf   []byte
	ended bool       // the reading ended (EOF or an error)
	at    time.Time  // when it ended
	done  chan error // receives nil at EOF, or the read error
}

func hsCollect(nc net.Conn) *hsCollector {
	col := &hsCollector{done: make(chan error, 1)}
	go func() {
		b := make([]byte, 64<<10)
		for {
			n, err := nc.Read(b)
			col.mu.Lock()
			col.buf = append(col.buf, b[:n]...)
			col.ended = err != nil
			if col.ended {
				col.at = time.Now()
			}
			col.mu.Unlock()
			if err != nil {
				nc.Close()
				if err == io.EOF {
					err = nil
				}
				col.done <- err
				return
			}
		}
	}()
	return col
}

// len is how many bytes arrived so far.
func (col *hsCollector) len() int {
	col.mu.Lock()
	defer col.mu.Unlock()
	return len(col.buf)
}

// finished reports whether the reading ended (EOF or an error).
func (col *hsCollector) finished() bool {
	col.mu.Lock()
	defer col.mu.Unlock()
	return col.ended
}

// wait polls the Manager until EOF and returns everything received.
func (col *hsCollector) wait(e *env, what string) []byte {
	e.t.Helper()
	hsWait(e, col.done, 30*time.Second, what)
	col.mu.Lock()
	defer col.mu.Unlock()
	return col.buf
}

// hsResponse is one response as the peer parsed it.
type hsResponse struct {
	proto   string
	status  int
	header  http.Header
	head    string // status line and fields, as received
	body    []byte
	chunked bool
}

// close reports whether the response said "Connection: close".
func (r *hsResponse) close() bool {
	for _, v := range r.header.Values("Connection") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "close") {
				return true
			}
		}
	}
	return false
}

// hsLine reads one CRLF-terminated line, without its CRLF.
func hsLine(br *bufio.Reader) (string, error) {
	s, err := br.ReadString('\n')
	if err != nil {
		return s, err
	}
	if !strings.HasSuffix(s, "\r\n") {
		return s, fmt.Errorf("line %q ends in a bare LF", s)
	}
	return s[:len(s)-2], nil
}

// hsReadResponse parses one response to a request with the given method,
// strictly: CRLF lines, framing by Content-Length or chunked, no body for
// HEAD, 1xx, 204 and 304.
func hsReadResponse(br *bufio.Reader, method string) (*hsResponse, error) {
	line, err := hsLine(br)
	if err != nil {
		return nil, fmt.Errorf("status line: %w", err)
	}
	r := &hsResponse{header: http.Header{}, head: line + "\r\n"}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	r.proto = proto
	if r.status, err = strconv.Atoi(code); err != nil || !strings.HasPrefix(proto, "HTTP/1.") {
		return nil, fmt.Errorf("bad status line %q", line)
	}
	for {
		l, err := hsLine(br)
		if err != nil {
			return nil, fmt.Errorf("header: %w (head so far %q)", err, r.head)
		}
		r.head += l + "\r\n"
		if l == "" {
			break
		}
		name, val, ok := strings.Cut(l, ":")
		if !ok {
			return nil, fmt.Errorf("header line %q has no colon", l)
		}
		r.header.Add(textproto.TrimString(name), strings.TrimSpace(val))
	}
	te := strings.ToLower(r.header.Get("Transfer-Encoding"))
	cl := r.header.Get("Content-Length")
	switch {
	case method == "HEAD" || r.status/100 == 1 || r.status == 204 || r.status == 304:
	case te != "":
		if te != "chunked" {
			return nil, fmt.Errorf("Transfer-Encoding %q", te)
		}
		r.chunked = true
		for {
			l, err := hsLine(br)
			if err != nil {
				return nil, fmt.Errorf("chunk size: %w", err)
			}
			sz, _, _ := strings.Cut(l, ";")
			n, err := strconv.ParseUint(sz, 16, 32)
			if err != nil {
				return nil, fmt.Errorf("chunk size line %q", l)
			}
			if n == 0 {
				break
			}
			chunk := make([]byte, n+2)
			if _, err := io.ReadFull(br, chunk); err != nil {
				return nil, fmt.Errorf("chunk data: %w", err)
			}
			if string(chunk[n:]) != "\r\n" {
				return nil, fmt.Errorf("chunk of %d bytes not followed by CRLF", n)
			}
			r.body = append(r.body, chunk[:n]...)
		}
		for { // trailers
			l, err := hsLine(br)
			if err != nil {
				return nil, fmt.Errorf("trailer: %w", err)
			}
			if l == "" {
				break
			}
		}
	case cl != "":
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("Content-Length %q", cl)
		}
		r.body = make([]byte, n)
		if _, err := io.ReadFull(br, r.body); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
	default:
		return nil, fmt.Errorf("response without Content-Length or chunked framing: %q", r.head)
	}
	return r, nil
}

// hsParse parses raw as responses to requests with the given methods, and
// returns them with the bytes that follow the last one.
func hsParse(raw []byte, methods ...string) ([]*hsResponse, []byte, error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	var out []*hsResponse
	for i, m := range methods {
		r, err := hsReadResponse(br, m)
		if err != nil {
			return out, nil, fmt.Errorf("response %d (to %s): %w", i+1, m, err)
		}
		out = append(out, r)
	}
	rest, _ := io.ReadAll(br)
	return out, rest, nil
}

// hsMustParse is hsParse that fails the test on an error or on bytes after
// the last response.
func hsMustParse(t testing.TB, raw []byte, methods ...string) []*hsResponse {
	t.Helper()
	resps, rest, err := hsParse(raw, methods...)
	if err != nil {
		t.Fatalf("%v\nreceived: %q", err, hsShort(raw))
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes after the %d expected responses: %q", len(rest), len(methods), hsShort(rest))
	}
	return resps
}

// hsShort shortens b for error messages.
func hsShort(b []byte) []byte {
	if len(b) > 600 {
		return append(slices.Clip(b[:600]), "..."...)
	}
	return b
}

// hsRoundTrip writes req and reads one response while the Manager is
// polled.
func hsRoundTrip(e *env, nc net.Conn, br *bufio.Reader, req, method string) *hsResponse {
	e.t.Helper()
	hsWrite(e.t, nc, []byte(req))
	var r *hsResponse
	hsAwait(e, 30*time.Second, "the response to "+strings.SplitN(req, "\r\n", 2)[0], func() (err error) {
		r, err = hsReadResponse(br, method)
		return err
	})
	return r
}

// hsEchoError checks that r is hsEcho's answer to method target body.
func hsEchoError(r *hsResponse, method, target string, body []byte) error {
	want := hsEchoBody(method, target, body)
	if r.status != 200 {
		return fmt.Errorf("%s %s: status %d, want 200\n%s", method, target, r.status, r.head)
	}
	if method == "HEAD" {
		if len(r.body) != 0 || r.header.Get("Content-Length") != strconv.Itoa(len(want)) {
			return fmt.Errorf("HEAD %s: body %q, Content-Length %q; want none and %d", target, r.body, r.header.Get("Content-Length"), len(want))
		}
		return nil
	}
	if string(r.body) != want {
		return fmt.Errorf("%s %s: body %q, want %q", method, target, r.body, want)
	}
	return nil
}

// hsExpectEcho is hsEchoError failing the test.
func hsExpectEcho(t testing.TB, r *hsResponse, method, target string, body []byte) {
	t.Helper()
	if err := hsEchoError(r, method, target, body); err != nil {
		t.Fatal(err)
	}
}

// hsPayload is n deterministic pseudo-random bytes (seed picks the stream).
func hsPayload(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// hsWaitClosed polls until c had its EvClose.
func hsWaitClosed(e *env, c *meerkat.Conn) {
	e.t.Helper()
	e.pollUntil(10*time.Second, "the server connection's EvClose", func() bool { return e.chk.closed(c) })
}

// ---------------------------------------------------------------------------
// 1. Keep-alive and Connection: close

// TestHTTPServerKeepAlive: an HTTP/1.1 connection stays open across
// requests (GETs and POSTs, one at a time), and so does an HTTP/1.0 one that
// asks for keep-alive; every request is answered on the one connection.
func TestHTTPServerKeepAlive(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
			t.Run(proto, func(t *testing.T) {
				e := newEnv(t, drv, useTLS)
				tr := newHSTrack()
				_, addr := hsListen(e, tr.wrap(hsEcho))
				nc := hsDial(e, addr)
				br := bufio.NewReader(nc)
				extra := ""
				if proto == "HTTP/1.0" {
					extra = "Connection: keep-alive\r\n"
				}
				var want []string
				for i := range 6 {
					target := fmt.Sprintf("/r%d?i=%d", i, i)
					var r *hsResponse
					if i%2 == 0 {
						r = hsRoundTrip(e, nc, br, "GET "+target+" "+proto+"\r\nHost: x\r\n"+extra+"\r\n", "GET")
						hsExpectEcho(t, r, "GET", target, nil)
						want = append(want, "GET "+target)
					} else {
						body := strings.Repeat("b", i*100)
						r = hsRoundTrip(e, nc, br, fmt.Sprintf("POST %s %s\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s", target, proto, extra, len(body), body), "POST")
						hsExpectEcho(t, r, "POST", target, []byte(body))
						want = append(want, "POST "+target)
					}
					if r.close() {
						t.Fatalf("response %d says Connection: close", i+1)
					}
				}
				hsPollFor(e, 50*time.Millisecond)
				if len(tr.conns) != 1 || e.chk.closed(tr.conns[0]) {
					t.Fatalf("%d connections accepted (closed: %v), want 1 still open", len(tr.conns), len(tr.conns) > 0 && e.chk.closed(tr.conns[0]))
				}
				if got := tr.msgs[tr.conns[0]]; !slices.Equal(got, want) {
					t.Fatalf("handler saw %q, want %q", got, want)
				}
				nc.Close()
				hsWaitClosed(e, tr.conns[0])
			})
		}
	})
}

// TestHTTPServerHTTP10KeepAliveSaysSo: an HTTP/1.0 request with
// "Connection: keep-alive" that the server keeps open gets a response saying
// "Connection: keep-alive"; HTTP/1.0 clients (ab -k, old proxies) otherwise
// take the connection to close after the response and wait for that close.
func TestHTTPServerHTTP10KeepAliveSaysSo(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		tr := newHSTrack()
		_, addr := hsListen(e, tr.wrap(hsEcho))
		nc := hsDial(e, addr)
		br := bufio.NewReader(nc)
		r := hsRoundTrip(e, nc, br, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET")
		hsExpectEcho(t, r, "GET", "/ka", nil)
		hsPollFor(e, 50*time.Millisecond)
		if e.chk.closed(tr.last()) {
			t.Fatal("the connection closed")
		}
		if !strings.EqualFold(r.header.Get("Connection"), "keep-alive") {
			t.Fatalf("response to an HTTP/1.0 keep-alive request kept open without \"Connection: keep-alive\":\n%s", r.head)
		}
	})
}

// TestHTTPServerConnectionClose: "Connection: close" and HTTP/1.0 without
// keep-alive get exactly one response, which says "Connection: close", and
// then the connection closes: request bytes that follow, in the same
// segment or after the response, are never answered nor seen by the handler.
func TestHTTPServerConnectionClose(t *testing.T) {
	cases := []struct {
		name, first, method, target, body string
	}{
		{"connection close", "GET /first HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET", "/first", ""},
		{"close among tokens", "GET /first HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n", "GET", "/first", ""},
		{"http/1.0", "GET /first HTTP/1.0\r\n\r\n", "GET", "/first", ""},
		{"http/1.0 post", "POST /first HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", "POST", "/first", "hello"},
		{"post with close", "POST /first HTTP/1.1\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", "POST", "/first", "hello"},
	}
	const second = "GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		tr := newHSTrack()
		_, addr := hsListen(e, tr.wrap(hsEcho))
		for _, tc := range cases {
			for _, later := range []bool{false, true} {
				// later: the second request is sent after the first
				// response arrived, rather than in the same segment.
				nc := hsDial(e, addr)
				var raw []byte
				if !later {
					hsWrite(t, nc, []byte(tc.first+second))
					raw = hsReadAll(e, nc, "the response and EOF")
				} else {
					br := bufio.NewReader(nc)
					r := hsRoundTrip(e, nc, br, tc.first, tc.method)
					hsWrite(t, nc, []byte(second))
					var rest []byte
					hsAwait(e, 30*time.Second, "EOF", func() (err error) {
						rest, err = io.ReadAll(br)
						return err
					})
					if len(rest) != 0 {
						t.Fatalf("%s (later): %d bytes after the response: %q", tc.name, len(rest), hsShort(rest))
					}
					raw = []byte(r.head + string(r.body))
				}
				nc.Close()
				r := hsMustParse(t, raw, tc.method)[0]
				hsExpectEcho(t, r, tc.method, tc.target, []byte(tc.body))
				if !r.close() {
					t.Fatalf("%s: response does not say Connection: close:\n%s", tc.name, r.head)
				}
				c := tr.last()
				hsWaitClosed(e, c)
				if got := tr.msgs[c]; !slices.Equal(got, []string{tc.method + " " + tc.target}) {
					t.Fatalf("%s (later %v): handler saw %q", tc.name, later, got)
				}
			}
		}
		if tr.sawTarget("/second") {
			t.Fatal("a request after a close was seen by the handler")
		}
	})
}

// TestHTTPServerResetAfterCloseIsQuiet: once a "Connection: close"
// response has gone out whole and the server sent its FIN (the peer read
// EOF), a peer that then resets ends the drain like an EOF would: EvClose
// without EvError, the same on every driver (Drain discards input "until
// the peer's EOF"; a reset then loses nothing).
func TestHTTPServerResetAfterCloseIsQuiet(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		tr := newHSTrack()
		_, addr := hsListen(e, tr.wrap(hsEcho))
		for i := range 20 {
			nc := hsDial(e, addr)
			hsWrite(t, nc, []byte("GET /bye HTTP/1.0\r\n\r\n"))
			raw := hsReadAll(e, nc, "the response and EOF")
			hsExpectEcho(t, hsMustParse(t, raw, "GET")[0], "GET", "/bye", nil)
			resetPeer(t, nc)
			c := tr.last()
			hsWaitClosed(e, c)
			if errs := e.chk.errorsOf(c); len(errs) != 0 {
				t.Fatalf("connection %d: a reset after the complete response and the FIN gave EvError %v", i, errs)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// 2. Pipelining

// hsPipeline is five pipelined requests: GET with a query, HEAD, POST with
// Content-Length, POST chunked (extension and trailer), and a GET that
// closes.
const hsPipeline = "GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n" +
	"HEAD /b HTTP/1.1\r\nHost: h\r\n\r\n" +
	"POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world" +
	"POST /d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n" +
	"GET /e HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"

// hsCheckPipeline checks the responses to hsPipeline and what the handler
// saw on c.
func hsCheckPipeline(t testing.TB, tr *hsTrack, c *meerkat.Conn, raw []byte, split string) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("(%s of %q)", split, hsPipeline)
		}
	}()
	resps, rest, err := hsParse(raw, "GET", "HEAD", "POST", "POST", "GET")
	if err != nil || len(rest) != 0 {
		t.Fatalf("%s: %v; %d bytes after the responses\nreceived: %q", split, err, len(rest), hsShort(raw))
	}
	hsExpectEcho(t, resps[0], "GET", "/a?x=1", nil)
	hsExpectEcho(t, resps[1], "HEAD", "/b", nil)
	hsExpectEcho(t, resps[2], "POST", "/c", []byte("hello world"))
	hsExpectEcho(t, resps[3], "POST", "/d", []byte("hello world"))
	hsExpectEcho(t, resps[4], "GET", "/e", nil)
	for i, r := range resps {
		if r.close() != (i == 4) {
			t.Fatalf("%s: response %d Connection: close is %v", split, i+1, r.close())
		}
	}
	want := []string{"GET /a?x=1", "HEAD /b", "POST /c", "POST /d", "GET /e"}
	if got := tr.msgs[c]; !slices.Equal(got, want) {
		t.Fatalf("%s: handler saw %q, want %q", split, got, want)
	}
}

// TestHTTPServerPipelineSplitAnywhere: pipelined requests (a HEAD and POSTs
// with Content-Length and chunked bodies among them) are answered in order,
// whole, with no body for HEAD, wherever the byte stream is split: the
// pipeline is sent in two pieces at every split point (the server has read
// the first piece before the second is sent), and one byte at a time.
func TestHTTPServerPipelineSplitAnywhere(t *testing.T) {
	p := []byte(hsPipeline)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		tr := newHSTrack()
		_, addr := hsListen(e, tr.wrap(hsEcho))
		for i := 0; i < len(p); i++ {
			k := len(tr.conns)
			nc := hsDial(e, addr)
			if i > 0 {
				hsWrite(t, nc, p[:i])
				e.pollUntil(10*time.Second, "the first piece read", func() bool {
					return len(tr.conns) > k && tr.reads[tr.conns[k]] >= i
				})
			}
			hsWrite(t, nc, p[i:])
			raw := hsReadAll(e, nc, "the responses and EOF")
			nc.Close()
			hsCheckPipeline(t, tr, tr.conns[k], raw, fmt.Sprintf("split at %d", i))
			hsWaitClosed(e, tr.conns[k])
		}

		k := len(tr.conns)
		nc := hsDial(e, addr)
		for i := range p {
			hsWrite(t, nc, p[i:i+1])
			e.pollUntil(10*time.Second, "the byte read", func() bool {
				return len(tr.conns) > k && tr.reads[tr.conns[k]] >= i+1
			})
		}
		raw := hsReadAll(e, nc, "the responses and EOF")
		nc.Close()
		hsCheckPipeline(t, tr, tr.conns[k], raw, "one byte at a time")
		hsWaitClosed(e, tr.conns[k])
	})
}

// TestHTTPServerMessageViewsWhenBodyComesLater: when a request's head
// arrives whole and its body (Content-Length or chunked) only in a later
// read, EvHTTPMsg still carries the request's own Method, URI, Query,
// Proto, Head and header fields — not bytes of whatever reused the buffer
// the head was first parsed in (here, another connection's request).
func TestHTTPServerMessageViewsWhenBodyComesLater(t *testing.T) {
	const head = "POST /late/body?q=1 HTTP/1.1\r\nHost: x\r\nX-Check: 0123456789\r\n"
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, chunked := range []bool{false, true} {
			e := newEnv(t, drv, useTLS)
			tr := newHSTrack()
			var atHeaders, atMsg []string
			views := func(hm *meerkat.HTTPMessage) []string {
				return []string{string(hm.Method), string(hm.URI), string(hm.Query), string(hm.Proto), string(hm.Head), string(hm.Header("X-Check"))}
			}
			_, addr := hsListen(e, tr.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
				switch ev {
				case meerkat.EvHTTPHeaders:
					if hm := data.(*meerkat.HTTPMessage); string(hm.Method) != "GET" {
						atHeaders = views(hm)
					}
				case meerkat.EvHTTPMsg:
					if hm := data.(*meerkat.HTTPMessage); string(hm.Method) != "GET" {
						atMsg = views(hm)
					}
					hsEcho(c, ev, data)
				}
			}))
			reqHead, body := head+"Content-Length: 5\r\n\r\n", "hello"
			if chunked {
				reqHead, body = head+"Transfer-Encoding: chunked\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n"
			}
			a := hsDial(e, addr)
			hsWrite(t, a, []byte(reqHead))
			e.pollUntil(10*time.Second, "the head", func() bool { return atHeaders != nil })
			// Another connection's request passes through the Manager.
			b := hsDial(e, addr)
			hsWrite(t, b, []byte("GET /other-connection-data HTTP/1.1\r\nHost: y\r\nConnection: close\r\n\r\n"))
			hsExpectEcho(t, hsMustParse(t, hsReadAll(e, b, "the other response"), "GET")[0], "GET", "/other-connection-data", nil)
			hsWrite(t, a, []byte(body))
			r := hsRoundTrip(e, a, bufio.NewReader(a), "", "POST")
			want := []string{"POST", "/late/body", "q=1", "HTTP/1.1", reqHead, "0123456789"}
			if !slices.Equal(atHeaders, want) {
				t.Fatalf("chunked %v: EvHTTPHeaders views %q, want %q", chunked, atHeaders, want)
			}
			if !slices.Equal(atMsg, want) {
				t.Fatalf("chunked %v: EvHTTPMsg views %q, want %q", chunked, atMsg, want)
			}
			hsExpectEcho(t, r, "POST", "/late/body?q=1", []byte("hello"))
		}
	})
}

// ---------------------------------------------------------------------------
// 3. Half-close

// TestHTTPServerHalfCloseGetsWholeReply: a client that sends its request and
// at once shuts down its sending side (close_notify and FIN for TLS) still
// gets the whole 1 MiB reply, then EOF — whether the reply is given at
// once, later through Wakeup, or by a body pump.
func TestHTTPServerHalfCloseGetsWholeReply(t *testing.T) {
	payload := hsPayload(3, 1<<20)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, how := range []string{"reply", "wakeup", "pump"} {
			t.Run(how, func(t *testing.T) {
				if how == "wakeup" {
				}
				e := newEnv(t, drv, useTLS)
				tr := newHSTrack()
				_, addr := hsListen(e, tr.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
					switch ev {
					case meerkat.EvHTTPMsg:
						switch how {
						case "reply":
							meerkat.HTTPReply(c, 200, "", "%s", payload)
						case "wakeup":
							id, m := c.ID(), c.Manager()
							go m.Wakeup(id, payload)
						case "pump":
							c.Printf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(payload))
							off := 0
							meerkat.HTTPPump(c, func(c *meerkat.Conn) bool {
								n := min(16<<10, len(payload)-off)
								c.Send(payload[off : off+n])
								off += n
								return off == len(payload)
							})
						}
					case meerkat.EvWakeup:
						meerkat.HTTPReply(c, 200, "", "%s", data)
					}
				}))
				nc := hsDial(e, addr)
				hsWrite(t, nc, []byte("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"))
				hsCloseWrite(t, nc)
				raw := hsReadAll(e, nc, "the reply and EOF")
				r := hsMustParse(t, raw, "GET")[0]
				if r.status != 200 || !bytes.Equal(r.body, payload) {
					t.Fatalf("status %d, body of %d bytes (intact: %v), want 200 and %d bytes", r.status, len(r.body), bytes.Equal(r.body, payload), len(payload))
				}
				hsWaitClosed(e, tr.last())
			})
		}
	})
}

// ---------------------------------------------------------------------------
// 4. Deferred replies through Wakeup

// hsDeferred is a handler that answers /slow... later: on EvHTTPMsg it writes
// nothing and starts a goroutine that waits for release and then calls
// Wakeup with the reply body; on EvWakeup it replies with HTTPReply. Other
// requests get hsEcho at once.
func hsDeferred(tr *hsTrack, release <-chan struct{}, body []byte) meerkat.Handler {
	return func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvHTTPMsg:
			hm := data.(*meerkat.HTTPMessage)
			if !strings.HasPrefix(string(hm.URI), "/slow") {
				hsEcho(c, ev, data)
				return
			}
			id, m := c.ID(), c.Manager()
			go func() {
				<-release
				m.Wakeup(id, body)
			}()
		case meerkat.EvWakeup:
			tr.note(c, "wakeup")
			meerkat.HTTPReply(c, 200, "", "%s", data)
		}
	}
}

// TestHTTPServerWakeupReply: a reply given later, from another goroutine
// through Wakeup, goes out whole (1 MiB); pipelined requests behind it are
// answered after it, in order (the handler does not even see them before);
// with "Connection: close" the connection closes only after that deferred
// reply, and the bytes after the request are not answered.
func TestHTTPServerWakeupReply(t *testing.T) {
	payload := hsPayload(4, 1<<20)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		t.Run("alone", func(t *testing.T) {
			e := newEnv(t, drv, useTLS)
			tr := newHSTrack()
			release := make(chan struct{})
			close(release)
			_, addr := hsListen(e, tr.wrap(hsDeferred(tr, release, payload)))
			nc := hsDial(e, addr)
			br := bufio.NewReader(nc)
			r := hsRoundTrip(e, nc, br, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
			if r.status != 200 || !bytes.Equal(r.body, payload) || r.close() {
				t.Fatalf("status %d, %d bytes (intact %v), close %v", r.status, len(r.body), bytes.Equal(r.body, payload), r.close())
			}
			// The connection is still usable.
			r = hsRoundTrip(e, nc, br, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
			hsExpectEcho(t, r, "GET", "/next", nil)
			if got, want := tr.msgs[tr.last()], []string{"GET /slow", "wakeup", "GET /next"}; !slices.Equal(got, want) {
				t.Fatalf("handler saw %q, want %q", got, want)
			}
		})

		t.Run("pipelined", func(t *testing.T) {
			e := newEnv(t, drv, useTLS)
			tr := newHSTrack()
			release := make(chan struct{})
			_, addr := hsListen(e, tr.wrap(hsDeferred(tr, release, payload)))
			nc := hsDial(e, addr)
			reqs := "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" +
				"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
				"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz" +
				"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
			hsWrite(t, nc, []byte(reqs))
			col := hsCollect(nc)
			e.pollUntil(10*time.Second, "all requests read", func() bool {
				c := tr.last()
				return c != nil && tr.reads[c] >= len(reqs)
			})
			hsPollFor(e, 100*time.Millisecond)
			c := tr.last()
			if !slices.Equal(tr.msgs[c], []string{"GET /slow"}) {
				t.Fatalf("before the deferred reply the handler saw %q, want only GET /slow", tr.msgs[c])
			}
			if n := col.len(); n != 0 {
				t.Fatalf("the peer received %d bytes before the deferred reply was released", n)
			}
			close(release)
			raw := col.wait(e, "the responses and EOF")
			resps := hsMustParse(t, raw, "GET", "GET", "POST", "GET")
			if resps[0].status != 200 || !bytes.Equal(resps[0].body, payload) {
				t.Fatalf("deferred reply: status %d, %d bytes (intact %v)", resps[0].status, len(resps[0].body), bytes.Equal(resps[0].body, payload))
			}
			hsExpectEcho(t, resps[1], "GET", "/a", nil)
			hsExpectEcho(t, resps[2], "POST", "/b", []byte("xyz"))
			hsExpectEcho(t, resps[3], "GET", "/c", nil)
			if !resps[3].close() {
				t.Fatal("last response does not say Connection: close")
			}
			if got, want := tr.msgs[c], []string{"GET /slow", "wakeup", "GET /a", "POST /b", "GET /c"}; !slices.Equal(got, want) {
				t.Fatalf("handler saw %q, want %q", got, want)
			}
			hsWaitClosed(e, c)
		})

		t.Run("close", func(t *testing.T) {
			e := newEnv(t, drv, useTLS)
			tr := newHSTrack()
			release := make(chan struct{})
			_, addr := hsListen(e, tr.wrap(hsDeferred(tr, release, payload)))
			nc := hsDial(e, addr)
			reqs := "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n"
			hsWrite(t, nc, []byte(reqs))
			col := hsCollect(nc)
			e.pollUntil(10*time.Second, "all requests read", func() bool {
				c := tr.last()
				return c != nil && tr.reads[c] >= len(reqs)
			})
			hsPollFor(e, 100*time.Millisecond)
			c := tr.last()
			if e.chk.closed(c) {
				t.Fatal("the connection closed before the deferred reply")
			}
			if n, done := col.len(), col.finished(); n != 0 || done {
				t.Fatalf("before the deferred reply the peer received %d bytes (EOF: %v)", n, done)
			}
			close(release)
			raw := col.wait(e, "the deferred reply and EOF")
			r := hsMustParse(t, raw, "GET")[0]
			if r.status != 200 || !bytes.Equal(r.body, payload) || !r.close() {
				t.Fatalf("status %d, %d bytes (intact %v), close %v", r.status, len(r.body), bytes.Equal(r.body, payload), r.close())
			}
			hsWaitClosed(e, c)
			if got, want := tr.msgs[c], []string{"GET /slow", "wakeup"}; !slices.Equal(got, want) || tr.sawTarget("/after") {
				t.Fatalf("handler saw %q (targets %q), want %q", got, tr.targets, want)
			}
		})
	})
}

// ---------------------------------------------------------------------------
// 5. Expect: 100-continue

// hsContinue is the interim response the server sends for Expect.
const hsContinue = "HTTP/1.1 100 Continue\r\n\r\n"

// hsGatekeeper answers /auth with 401 and /big with 413 from the head, and
// everything else with hsEcho.
func hsGatekeeper(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvHTTPHeaders:
		switch string(data.(*meerkat.HTTPMessage).URI) {
		case "/auth":
			meerkat.HTTPReply(c, 401, "WWW-Authenticate: Basic realm=\"x\"\r\n", "who are you?\n")
		case "/big":
			meerkat.HTTPReply(c, 413, "", "too big\n")
		}
	case meerkat.EvHTTPMsg:
		hsEcho(c, ev, data)
	}
}

// TestHTTPServerExpectContinue: a client that sends "Expect: 100-continue"
// and waits gets "HTTP/1.1 100 Continue" before sending its body (with
// Content-Length or chunked), then the final response, and the connection
// stays usable. A handler that answers from the head (401, 413) makes the
// server send no 100 and deliver no body: a small body that the client sends
// anyway is read and dropped and the next request is answered; a large or
// chunked one closes the connection after the reply.
func TestHTTPServerExpectContinue(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		tr := newHSTrack()
		_, addr := hsListen(e, tr.wrap(hsGatekeeper))

		for _, chunked := range []bool{false, true} {
			nc := hsDial(e, addr)
			br := bufio.NewReader(nc)
			head, body := "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n", "hello world"
			if chunked {
				head, body = "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n", "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
			}
			hsWrite(t, nc, []byte(head))
			interim := make([]byte, len(hsContinue))
			hsAwait(e, 10*time.Second, "100 Continue", func() error {
				_, err := io.ReadFull(br, interim)
				return err
			})
			if string(interim) != hsContinue {
				t.Fatalf("chunked %v: got %q, want %q", chunked, interim, hsContinue)
			}
			if c := tr.last(); len(tr.msgs[c]) != 0 {
				t.Fatalf("handler saw %q before the body was sent", tr.msgs[c])
			}
			hsWrite(t, nc, []byte(body))
			var r *hsResponse
			hsAwait(e, 10*time.Second, "the final response", func() (err error) {
				r, err = hsReadResponse(br, "POST")
				return err
			})
			hsExpectEcho(t, r, "POST", "/up", []byte("hello world"))
			r = hsRoundTrip(e, nc, br, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
			hsExpectEcho(t, r, "GET", "/next", nil)
			nc.Close()
		}

		// 401 from the head, small body: no 100, the body sent anyway is
		// dropped, the next request is answered.
		nc := hsDial(e, addr)
		br := bufio.NewReader(nc)
		r := hsRoundTrip(e, nc, br, "POST /auth HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n", "POST")
		if r.status != 401 || string(r.body) != "who are you?\n" {
			t.Fatalf("got %d %q, want the 401 (and no 100 before it)\n%s", r.status, r.body, r.head)
		}
		hsWrite(t, nc, []byte("hello world"))
		r = hsRoundTrip(e, nc, br, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
		hsExpectEcho(t, r, "GET", "/next", nil)
		c := tr.last()
		if got := tr.msgs[c]; !slices.Equal(got, []string{"GET /next"}) {
			t.Fatalf("handler saw %q, want only GET /next (the refused body is not delivered)", got)
		}
		nc.Close()

		// 413 from the head, large or chunked body: no 100, one response,
		// then the connection closes.
		for _, head := range []string{
			"POST /big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10485760\r\n\r\n",
			"POST /big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
		} {
			nc := hsDial(e, addr)
			hsWrite(t, nc, []byte(head))
			raw := hsReadAll(e, nc, "the 413 and EOF")
			nc.Close()
			r := hsMustParse(t, raw, "POST")[0]
			if r.status != 413 {
				t.Fatalf("got %d, want 413 (and no 100 before it)\n%q", r.status, raw)
			}
			c := tr.last()
			hsWaitClosed(e, c)
			if len(tr.msgs[c]) != 0 {
				t.Fatalf("handler saw %q", tr.msgs[c])
			}
		}
		for _, target := range tr.targets {
			if target != "/up" && target != "/next" && target != "/auth" && target != "/big" {
				t.Fatalf("unexpected target %q", target)
			}
		}
	})
}

// TestHTTPServerEarlyReplyThatClosesSaysSo: when a reply given from the head
// makes the server close the connection (the refused body is large or
// chunked, so it is not read), the reply says "Connection: close", as RFC
// 9110 §15.5 asks ("SHOULD indicate whether it intends to close"): a client
// that pipelined another request must know it will not be answered.
func TestHTTPServerEarlyReplyThatClosesSaysSo(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		tr := newHSTrack()
		_, addr := hsListen(e, tr.wrap(hsGatekeeper))
		for _, head := range []string{
			"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n",
			"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		} {
			nc := hsDial(e, addr)
			hsWrite(t, nc, []byte(head))
			raw := hsReadAll(e, nc, "the 413 and EOF")
			nc.Close()
			r := hsMustParse(t, raw, "POST")[0]
			if r.status != 413 || !r.close() {
				t.Fatalf("%q: got %d, close %v; want 413 saying Connection: close\n%s", head, r.status, r.close(), r.head)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// 6. Header timeout

// TestHTTPServerHeaderTimeout (HeaderTimeout 300 ms): a client that sends
// half a head and stalls gets 408 and a close; a new connection that sends
// nothing and an idle keep-alive connection are closed after the timeout;
// meanwhile a client that keeps its requests coming (one every 100 ms for
// 1 s), a body that trickles in after a prompt head, and a deferred reply
// that takes longer than the timeout are never cut.
func TestHTTPServerHeaderTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.HTTP.HeaderTimeout = timeout
		tr := newHSTrack()
		_, addr := hsListen(e, tr.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			switch ev {
			case meerkat.EvHTTPMsg:
				if string(data.(*meerkat.HTTPMessage).URI) == "/late" {
					id, m := c.ID(), c.Manager()
					time.AfterFunc(2*timeout, func() { m.Wakeup(id, []byte("late")) })
					return
				}
				hsEcho(c, ev, data)
			case meerkat.EvWakeup:
				meerkat.HTTPReply(c, 200, "", "%s", data)
			}
		}))

		// The connections to be cut, all waiting at once. Each timeout
		// starts after its start time: at the accept, at the first byte,
		// or at the end of the response.
		type cut struct {
			name    string
			start   time.Time
			col     *hsCollector
			need408 bool
		}
		var cuts []cut
		start := time.Now()
		nc := hsDial(e, addr)
		hsWrite(t, nc, []byte("GET /stalled HTTP/1.1\r\nHost: x\r\n"))
		cuts = append(cuts, cut{"half a head", start, hsCollect(nc), true})
		start = time.Now()
		cuts = append(cuts, cut{"silent new connection", start, hsCollect(hsDial(e, addr)), false})
		nc = hsDial(e, addr)
		br := bufio.NewReader(nc)
		start = time.Now()
		hsExpectEcho(t, hsRoundTrip(e, nc, br, "GET /once HTTP/1.1\r\nHost: x\r\n\r\n", "GET"), "GET", "/once", nil)
		if br.Buffered() != 0 {
			t.Fatalf("%d bytes after the response", br.Buffered())
		}
		cuts = append(cuts, cut{"idle keep-alive connection", start, hsCollect(nc), false})

		// Meanwhile, three clients that are never cut: requests keep
		// coming; a prompt head, then the body one byte per 100 ms; a reply
		// that takes twice the timeout.
		c0 := len(tr.conns)
		peer := func(fn func(nc net.Conn, br *bufio.Reader) error) <-chan error {
			nc := hsDial(e, addr)
			return hsGo(func() error {
				defer nc.Close()
				return fn(nc, bufio.NewReader(nc))
			})
		}
		roundTrip := func(nc net.Conn, br *bufio.Reader, req, method string) (*hsResponse, error) {
			if _, err := nc.Write([]byte(req)); err != nil {
				return nil, err
			}
			return hsReadResponse(br, method)
		}
		flowing := peer(func(nc net.Conn, br *bufio.Reader) error {
			for i := range 10 {
				sent := time.Now()
				target := fmt.Sprintf("/flow%d", i)
				r, err := roundTrip(nc, br, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
				if err != nil {
					return err
				}
				if err := hsEchoError(r, "GET", target, nil); err != nil {
					return err
				}
				time.Sleep(100*time.Millisecond - time.Since(sent)) // the pace of this client
			}
			return nil
		})
		trickling := peer(func(nc net.Conn, br *bufio.Reader) error {
			if _, err := nc.Write([]byte("POST /trickle HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")); err != nil {
				return err
			}
			for _, b := range []byte("very slow!") {
				time.Sleep(100 * time.Millisecond) // the pace of this client
				if _, err := nc.Write([]byte{b}); err != nil {
					return err
				}
			}
			r, err := hsReadResponse(br, "POST")
			if err != nil {
				return err
			}
			return hsEchoError(r, "POST", "/trickle", []byte("very slow!"))
		})
		late := peer(func(nc net.Conn, br *bufio.Reader) error {
			r, err := roundTrip(nc, br, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
			if err != nil {
				return err
			}
			if r.status != 200 || string(r.body) != "late" {
				return fmt.Errorf("deferred reply: %d %q, want 200 \"late\"", r.status, r.body)
			}
			r, err = roundTrip(nc, br, "GET /then HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
			if err != nil {
				return err
			}
			return hsEchoError(r, "GET", "/then", nil)
		})
		hsWait(e, flowing, 20*time.Second, "the flowing client")
		hsWait(e, trickling, 20*time.Second, "the trickling client")
		hsWait(e, late, 20*time.Second, "the client waiting for a late reply")
		for _, c := range tr.conns[c0:] {
			if errs := e.chk.errorsOf(c); len(errs) != 0 || len(tr.msgs[c]) == 0 {
				t.Fatalf("conn %d: errors %v, requests %q", c.ID(), errs, tr.msgs[c])
			}
		}

		for _, k := range cuts {
			raw := k.col.wait(e, k.name+": EOF")
			if el := k.col.at.Sub(k.start); el < timeout || el > 10*timeout {
				t.Fatalf("%s: closed after %v, want about %v", k.name, el, timeout)
			}
			if len(raw) == 0 && !k.need408 {
				continue
			}
			r := hsMustParse(t, raw, "GET")[0]
			if r.status != 408 || !r.close() {
				t.Fatalf("%s: got %d (close %v), want 408 with Connection: close", k.name, r.status, r.close())
			}
		}
		if tr.sawTarget("/stalled") {
			t.Fatal("the handler saw the stalled request")
		}
	})
}

// ---------------------------------------------------------------------------
// 7. Malformed requests

// hsRejects are internal/httpwire's TestParseRequestRejects cases (each
// must be answered with its status), with malformed chunked bodies after a
// valid head.
var hsRejects = []struct {
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
	{"request line too long", "GET /" + strings.Repeat("a", 8<<10) + " HTTP/1.1\r\n\r\n", 414},
	{"request line too long, incomplete", "GET /" + strings.Repeat("a", 8<<10+10), 414},
	{"header too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", 431},
	{"header section incomplete and too large", "GET / HTTP/1.1\r\n" + strings.Repeat("X: aaaaaaaaaa\r\n", 64<<10/15+1), 431},
	{"too many headers", "GET / HTTP/1.1\r\n" + strings.Repeat("X: a\r\n", 101) + "\r\n", 431},
	// Chunked bodies (internal/httpwire's TestChunkedRejects).
	{"chunk size too many hex digits", hsChunkedHead + strings.Repeat("f", 16) + "\r\n", 400},
	{"chunk size negative", hsChunkedHead + "-5\r\nhello\r\n0\r\n\r\n", 400},
	{"chunk size 0x", hsChunkedHead + "0x5\r\nhello\r\n0\r\n\r\n", 400},
	{"chunk data longer than size", hsChunkedHead + "3\r\nhello\r\n0\r\n\r\n", 400},
	{"chunk bare LF", hsChunkedHead + "5\nhello\r\n0\r\n\r\n", 400},
	{"chunk trailer too large", hsChunkedHead + "0\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", 20) + "\r\n", 431},
}

const hsChunkedHead = "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

// hsSmuggled is the valid request sent after each malformed one: it must
// never be answered nor seen.
const hsSmuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

// hsExpectRejected sends in followed by hsSmuggled on a new connection and
// checks that exactly one response comes back, with status and "Connection:
// close", then EOF; that the handler got no EvHTTPMsg on the connection;
// and that nothing after the malformed request was read as a request.
func hsExpectRejected(e *env, tr *hsTrack, addr, name, in string, status int) {
	t := e.t
	t.Helper()
	nc := hsDial(e, addr)
	wrote := hsGo(func() error {
		_, err := nc.Write([]byte(in + hsSmuggled))
		return err
	})
	raw := hsReadAll(e, nc, name+": the rejection and EOF")
	hsWait(e, wrote, 10*time.Second, name+": the peer's write")
	nc.Close()
	resps, rest, err := hsParse(raw, "GET")
	if err != nil || len(rest) != 0 {
		t.Fatalf("%s: %v; %d bytes after the first response\nreceived: %q", name, err, len(rest), hsShort(raw))
	}
	if r := resps[0]; r.status != status || !r.close() {
		t.Fatalf("%s: status %d, close %v; want %d with Connection: close\n%s", name, r.status, r.close(), status, r.head)
	}
	c := tr.last()
	hsWaitClosed(e, c)
	if len(tr.msgs[c]) != 0 || tr.sawTarget("/smuggled") {
		t.Fatalf("%s: handler saw %q (targets %q)", name, tr.msgs[c], tr.targets)
	}
}

// TestHTTPServerRejectsMalformedRequests: every request the parser rejects
// (internal/httpwire's table, and malformed chunked bodies) sent to a live
// server followed by a valid request gets exactly one response with the
// case's status and "Connection: close", then the close; the valid request
// after it is never seen by the handler.
func TestHTTPServerRejectsMalformedRequests(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		tr := newHSTrack()
		_, addr := hsListen(e, tr.wrap(hsEcho))
		for _, tc := range hsRejects {
			hsExpectRejected(e, tr, addr, tc.name, tc.in, tc.status)
		}
		// The server still serves well-formed requests.
		nc := hsDial(e, addr)
		hsWrite(t, nc, []byte("GET /fine HTTP/1.1\r\nConnection: close\r\n\r\n"))
		hsExpectEcho(t, hsMustParse(t, hsReadAll(e, nc, "the response"), "GET")[0], "GET", "/fine", nil)
	})
}

// TestHTTPServerLimits: Manager.HTTP's limits apply (414 for a long request
// line, 431 for too many or too large header fields) and so does RecvLimit
// (413 for a Content-Length body, or a chunked body, larger than it), each
// with "Connection: close" and nothing after it answered; requests within
// the limits are served.
func TestHTTPServerLimits(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.HTTP = meerkat.HTTPSettings{MaxRequestLine: 64, MaxHeaderBytes: 512, MaxHeaders: 4}
		e.m.RecvLimit = 64 << 10
		tr := newHSTrack()
		_, addr := hsListen(e, tr.wrap(hsEcho))

		big := strings.Repeat("z", 100000)
		for _, tc := range []struct {
			name, in string
			status   int
		}{
			{"long request line", "GET /" + strings.Repeat("a", 100) + " HTTP/1.1\r\n\r\n", 414},
			{"too many headers", "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", 431},
			{"large header", "GET / HTTP/1.1\r\nA: " + strings.Repeat("x", 600) + "\r\n\r\n", 431},
			{"length over RecvLimit", "POST /up HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + big, 413},
			{"chunked over RecvLimit", hsChunkedHead + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big), 413},
		} {
			hsExpectRejected(e, tr, addr, tc.name, tc.in, tc.status)
		}

		nc := hsDial(e, addr)
		br := bufio.NewReader(nc)
		target := "/" + strings.Repeat("a", 30)
		hsExpectEcho(t, hsRoundTrip(e, nc, br, "GET "+target+" HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", "GET"), "GET", target, nil)
		body := strings.Repeat("y", 60000)
		hsExpectEcho(t, hsRoundTrip(e, nc, br, fmt.Sprintf("POST /up HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s", len(body), body), "POST"), "POST", "/up", []byte(body))
		hsExpectEcho(t, hsRoundTrip(e, nc, br, hsChunkedHead+fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body), "POST"), "POST", "/chunked", []byte(body))
		nc.Close()
	})
}

// ---------------------------------------------------------------------------
// 8. Streamed uploads

// TestHTTPServerStreamingUpload: a handler that calls HTTPStreamBody on
// EvHTTPHeaders receives a 64 MiB body (Content-Length, and chunked in
// pieces of varied sizes) as EvHTTPChunk pieces no larger than RecvLimit
// (64 KiB), then EvHTTPMsg with a nil Body; the bytes match (length and
// CRC-32); the heap stays far below the body's size; the connection then
// serves the next request.
func TestHTTPServerStreamingUpload(t *testing.T) {
	const size = 64 << 20
	const recvLimit = 64 << 10
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, chunked := range []bool{false, true} {
			name := "content-length"
			if chunked {
				name = "chunked"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, drv, useTLS)
				e.m.RecvLimit = recvLimit
				tr := newHSTrack()
				var (
					n, pieces, tooBig int
					crc               uint32
					nextCheck         = 4 << 20
					peakHeap          uint64
					badMsg            string
				)
				var ms runtime.MemStats
				_, addr := hsListen(e, tr.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
					switch ev {
					case meerkat.EvHTTPHeaders:
						if string(data.(*meerkat.HTTPMessage).URI) == "/upload" {
							meerkat.HTTPStreamBody(c)
						}
					case meerkat.EvHTTPChunk:
						p := data.(*meerkat.HTTPMessage).Body
						crc = crc32.Update(crc, crc32.IEEETable, p)
						n += len(p)
						pieces++
						if len(p) > recvLimit {
							tooBig++
						}
						if n >= nextCheck {
							nextCheck += 4 << 20
							runtime.ReadMemStats(&ms)
							peakHeap = max(peakHeap, ms.HeapInuse)
						}
					case meerkat.EvHTTPMsg:
						hm := data.(*meerkat.HTTPMessage)
						if string(hm.URI) != "/upload" {
							hsEcho(c, ev, data)
							return
						}
						if hm.Body != nil {
							badMsg = fmt.Sprintf("EvHTTPMsg of a streamed body has a %d-byte Body", len(hm.Body))
						}
						meerkat.HTTPReply(c, 200, "", "%d:%08x", n, crc)
					}
				}))
				runtime.GC()
				runtime.ReadMemStats(&ms)
				baseHeap := ms.HeapInuse

				nc := hsDial(e, addr)
				br := bufio.NewReader(nc)
				var r *hsResponse
				var sentCRC uint32
				hsAwait(e, 120*time.Second, "the upload and its response", func() error {
					head := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
					if chunked {
						head = "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
					}
					if _, err := nc.Write([]byte(head)); err != nil {
						return err
					}
					src := rand.NewChaCha8([32]byte{8})
					buf := make([]byte, 0, 128<<10)
					for sent, i := 0, 0; sent < size; i++ {
						piece := min(64<<10, size-sent)
						if chunked {
							piece = min(1+i*7919%100000, size-sent) // 1 B to ~100 KB
						}
						buf = buf[:0]
						if chunked {
							buf = fmt.Appendf(buf, "%x\r\n", piece)
						}
						data := buf[len(buf) : len(buf)+piece]
						src.Read(data)
						sentCRC = crc32.Update(sentCRC, crc32.IEEETable, data)
						buf = buf[:len(buf)+piece]
						if chunked {
							buf = append(buf, "\r\n"...)
						}
						if _, err := nc.Write(buf); err != nil {
							return err
						}
						sent += piece
					}
					if chunked {
						if _, err := nc.Write([]byte("0\r\n\r\n")); err != nil {
							return err
						}
					}
					var err error
					r, err = hsReadResponse(br, "POST")
					return err
				})
				if want := fmt.Sprintf("%d:%08x", size, sentCRC); r.status != 200 || string(r.body) != want {
					t.Fatalf("got %d %q, want 200 %q", r.status, r.body, want)
				}
				if badMsg != "" {
					t.Fatal(badMsg)
				}
				if pieces < size/recvLimit || tooBig != 0 {
					t.Fatalf("%d pieces, %d larger than RecvLimit; want at least %d, none larger", pieces, tooBig, size/recvLimit)
				}
				grew := int64(peakHeap) - int64(baseHeap)
				t.Logf("%d pieces; heap in use grew by at most %.1f MiB", pieces, float64(grew)/(1<<20))
				if grew > 16<<20 {
					t.Fatalf("heap in use grew by %d MiB while 64 MiB streamed through", grew>>20)
				}
				hsExpectEcho(t, hsRoundTrip(e, nc, br, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n", "GET"), "GET", "/after", nil)
				nc.Close()
			})
		}
	})
}

// ---------------------------------------------------------------------------
// 9. Reply helpers

// TestHTTPServerReplyHelpers: over one pipelined connection, HTTPReply sends
// status, headers, Content-Length and body; HTTPPrintfChunk/HTTPWriteChunk
// make a chunked body that ends with the empty chunk, and a HEAD gets its
// head but none of the chunks; 204 and 304 carry no body (nor, for 204,
// Content-Length); HTTPPump produces 10 MiB in 16 KiB pieces, called only
// while less than 64 KiB is queued, arriving whole, and the request behind
// it waits until the pump is done.
func TestHTTPServerReplyHelpers(t *testing.T) {
	const pumpSize = 10 << 20
	pumpBody := hsPayload(9, pumpSize)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		tr := newHSTrack()
		overfed := 0
		_, addr := hsListen(e, tr.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev != meerkat.EvHTTPMsg {
				return
			}
			hm := data.(*meerkat.HTTPMessage)
			switch string(hm.URI) {
			case "/reply":
				meerkat.HTTPReply(c, 201, "Content-Type: text/plain\r\nX-A: b\r\n", "n=%d", 42)
			case "/chunked":
				c.Printf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
				meerkat.HTTPPrintfChunk(c, "x=%d;", 1)
				meerkat.HTTPWriteChunk(c, []byte("second"))
				meerkat.HTTPWriteChunk(c, nil)
			case "/204":
				meerkat.HTTPReply(c, 204, "", "not sent")
			case "/304":
				meerkat.HTTPReply(c, 304, "ETag: \"v1\"\r\n", "not sent")
			case "/pump":
				c.Printf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", pumpSize)
				off := 0
				meerkat.HTTPPump(c, func(c *meerkat.Conn) bool {
					if c.SendLen() >= 64<<10 {
						overfed++
					}
					n := min(16<<10, pumpSize-off)
					c.Send(pumpBody[off : off+n])
					off += n
					if off == pumpSize {
						tr.note(c, "pump done")
						return true
					}
					return false
				})
			default:
				hsEcho(c, ev, data)
			}
		}))
		nc := hsDial(e, addr)
		hsWrite(t, nc, []byte("GET /reply HTTP/1.1\r\n\r\n"+
			"GET /chunked HTTP/1.1\r\n\r\n"+
			"HEAD /chunked HTTP/1.1\r\n\r\n"+
			"GET /204 HTTP/1.1\r\n\r\n"+
			"GET /304 HTTP/1.1\r\n\r\n"+
			"GET /pump HTTP/1.1\r\n\r\n"+
			"GET /after HTTP/1.1\r\nConnection: close\r\n\r\n"))
		raw := hsReadAll(e, nc, "the responses and EOF")
		resps := hsMustParse(t, raw, "GET", "GET", "HEAD", "GET", "GET", "GET", "GET")

		r := resps[0]
		if r.status != 201 || string(r.body) != "n=42" || r.header.Get("X-A") != "b" || r.header.Get("Content-Type") != "text/plain" || r.header.Get("Content-Length") != "4" {
			t.Fatalf("HTTPReply: %d %q\n%s", r.status, r.body, r.head)
		}
		if r = resps[1]; r.status != 200 || !r.chunked || string(r.body) != "x=1;second" {
			t.Fatalf("chunked: %d chunked %v body %q", r.status, r.chunked, r.body)
		}
		if r = resps[2]; r.status != 200 || len(r.body) != 0 || r.header.Get("Transfer-Encoding") != "chunked" {
			t.Fatalf("HEAD of the chunked reply: %d %q\n%s", r.status, r.body, r.head)
		}
		if r = resps[3]; r.status != 204 || r.header.Get("Content-Length") != "" || r.header.Get("Transfer-Encoding") != "" {
			t.Fatalf("204: %d\n%s", r.status, r.head)
		}
		if r = resps[4]; r.status != 304 || r.header.Get("ETag") != `"v1"` || r.header.Get("Transfer-Encoding") != "" {
			t.Fatalf("304: %d\n%s", r.status, r.head)
		}
		if r = resps[5]; r.status != 200 || !bytes.Equal(r.body, pumpBody) {
			t.Fatalf("pump: %d, %d bytes (intact %v), want %d", r.status, len(r.body), bytes.Equal(r.body, pumpBody), pumpSize)
		}
		hsExpectEcho(t, resps[6], "GET", "/after", nil)
		if !resps[6].close() {
			t.Fatal("the last response does not say Connection: close")
		}
		if overfed != 0 {
			t.Fatalf("the pump was called %d times with 64 KiB or more queued", overfed)
		}
		want := []string{"GET /reply", "GET /chunked", "HEAD /chunked", "GET /204", "GET /304", "GET /pump", "pump done", "GET /after"}
		if got := tr.msgs[tr.last()]; !slices.Equal(got, want) {
			t.Fatalf("handler saw %q, want %q", got, want)
		}
	})
}

// TestHTTPServerChunkedReplyOverTime: a chunked reply whose head and first
// chunk go out on EvHTTPMsg and whose other chunks come later (through
// Wakeup) ends only with its empty chunk: a pipelined request behind it is
// answered after that, not in the middle of the chunks, and "Connection:
// close" closes the connection only after the last chunk — the streaming
// pattern of Mongoose's examples.
func TestHTTPServerChunkedReplyOverTime(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, closeIt := range []bool{false, true} {
			t.Run(fmt.Sprintf("close=%v", closeIt), func(t *testing.T) {
				e := newEnv(t, drv, useTLS)
				tr := newHSTrack()
				_, addr := hsListen(e, tr.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
					switch ev {
					case meerkat.EvHTTPMsg:
						if string(data.(*meerkat.HTTPMessage).URI) != "/stream" {
							hsEcho(c, ev, data)
							return
						}
						c.Printf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
						meerkat.HTTPPrintfChunk(c, "part 0;")
						id, m := c.ID(), c.Manager()
						go func() {
							for i := 1; i <= 3; i++ {
								m.Wakeup(id, []byte(strconv.Itoa(i)))
							}
						}()
					case meerkat.EvWakeup:
						tr.note(c, "part "+string(data.([]byte)))
						meerkat.HTTPPrintfChunk(c, "part %s;", data)
						if string(data.([]byte)) == "3" {
							meerkat.HTTPWriteChunk(c, nil)
						}
					}
				}))
				nc := hsDial(e, addr)
				reqs := "GET /stream HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\nConnection: close\r\n\r\n"
				methods := []string{"GET", "GET"}
				if closeIt {
					reqs = "GET /stream HTTP/1.1\r\nConnection: close\r\n\r\nGET /after HTTP/1.1\r\n\r\n"
					methods = methods[:1]
				}
				hsWrite(t, nc, []byte(reqs))
				raw := hsReadAll(e, nc, "the responses and EOF")
				resps := hsMustParse(t, raw, methods...)
				if r := resps[0]; r.status != 200 || string(r.body) != "part 0;part 1;part 2;part 3;" {
					t.Fatalf("streamed reply: %d %q", r.status, r.body)
				}
				want := []string{"GET /stream", "part 1", "part 2", "part 3", "GET /after"}
				if closeIt {
					want = want[:4]
				} else {
					hsExpectEcho(t, resps[1], "GET", "/after", nil)
				}
				if got := tr.msgs[tr.last()]; !slices.Equal(got, want) {
					t.Fatalf("handler saw %q, want %q", got, want)
				}
			})
		}
	})
}

// ---------------------------------------------------------------------------
// 10. Shutdown

// TestHTTPServerShutdown: Manager.Shutdown closes idle keep-alive
// connections at once (the peer sees EOF while another request is still in
// flight), lets a request in flight (a deferred reply through Wakeup)
// finish — its whole response, saying "Connection: close" — then closes
// that connection, stops listening, and returns nil.
func TestHTTPServerShutdown(t *testing.T) {
	payload := hsPayload(10, 256<<10)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		tr := newHSTrack()
		release := make(chan struct{})
		_, addr := hsListen(e, tr.wrap(hsDeferred(tr, release, payload)))

		idle := hsDial(e, addr)
		hsExpectEcho(t, hsRoundTrip(e, idle, bufio.NewReader(idle), "GET /idle HTTP/1.1\r\n\r\n", "GET"), "GET", "/idle", nil)
		busy := hsDial(e, addr)
		hsWrite(t, busy, []byte("GET /slow HTTP/1.1\r\n\r\n"))
		e.pollUntil(10*time.Second, "the slow request", func() bool { return tr.sawTarget("/slow") })

		idleCol, busyCol := hsCollect(idle), hsCollect(busy)
		// The deferred reply is released only once the idle connection has
		// been closed: Shutdown must not wait for the busy one to close it.
		idleErr := make(chan error, 1)
		go func() {
			select {
			case err := <-idleCol.done:
				idleErr <- err
			case <-time.After(20 * time.Second):
				idleErr <- errors.New("no EOF within 20 s")
			}
			close(release)
		}()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.m.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		took := time.Since(start)
		if err := <-idleErr; err != nil {
			t.Fatalf("idle peer: %v", err)
		}
		if d := idleCol.at.Sub(start); d > 2*time.Second {
			t.Fatalf("the idle connection was closed %v after Shutdown began", d)
		}
		if n := idleCol.len(); n != 0 {
			t.Fatalf("the idle connection received %d bytes", n)
		}
		select {
		case err := <-busyCol.done:
			if err != nil {
				t.Fatalf("busy peer: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the busy connection did not see EOF")
		}
		busyCol.mu.Lock()
		raw := busyCol.buf
		busyCol.mu.Unlock()
		r := hsMustParse(t, raw, "GET")[0]
		if r.status != 200 || !bytes.Equal(r.body, payload) || !r.close() {
			t.Fatalf("in-flight reply: %d, %d bytes (intact %v), close %v", r.status, len(r.body), bytes.Equal(r.body, payload), r.close())
		}
		t.Logf("Shutdown took %v; the idle connection closed after %v", took, idleCol.at.Sub(start))
		if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			nc.Close()
			t.Fatal("the listener still accepts after Shutdown")
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Logf("dial after Shutdown: %v", err)
		}
	})
}
