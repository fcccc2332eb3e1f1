package meerkat_test

// The HTTP client (issue 3, "Client"): response framing by Content-Length,
// chunked (extensions, trailers, split at every byte boundary) and
// read-until-close; responses cut short by the server's close; HEAD, 1xx,
// 204 and 304 without a body; the receive limit and streamed bodies;
// keep-alive and pipelining; and the scenario behind this project: 2,000
// sequential HTTPS POSTs to a server that closes after each response. The
// peers are net/http servers and raw TCP (or crypto/tls) servers scripted
// byte by byte. Everything runs on every driver, plain and TLS.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// ---------------------------------------------------------------------------
// Client side: a recorded HTTP client connection.

// hcResponse is a copy of one EvHTTPMsg as the client saw it.
type hcResponse struct {
	status        int
	reason        string
	proto         string
	head          string
	body          []byte
	bodyNil       bool
	contentLength int64
	headers       []meerkat.HTTPHeader // copies
}

// header returns the first header field called name, as the client parsed it.
func (r *hcResponse) header(name string) string {
	for _, h := range r.headers {
		if strings.EqualFold(string(h.Name), name) {
			return string(h.Value)
		}
	}
	return ""
}

// hcClient records what an HTTPConnect connection receives.
type hcClient struct {
	e         *env
	c         *meerkat.Conn
	connected bool // EvConnect
	ready     bool // EvConnect (plain) or EvTLSHandshake (TLS)
	rx        int  // bytes delivered with EvRead
	heads     int  // EvHTTPHeaders
	resps     []hcResponse
	errs      []error
	closed    bool
	closeMsgs int // EvHTTPMsg delivered after the client's read saw the close

	// Streaming: with stream set, HTTPStreamBody is called on every
	// EvHTTPHeaders; the pieces are counted and checksummed.
	stream    bool
	chunks    int
	chunkLen  int64
	chunkCRC  uint32
	maxChunk  int
	maxRecv   int    // largest Recv().Len() seen during EvHTTPChunk
	onChunk   func() // called after each EvHTTPChunk
	onConnect func(c *meerkat.Conn)
	onMsg     func(c *meerkat.Conn, r *hcResponse)
}

// hcConnect opens a checked HTTP client connection to url with hc's hooks.
func hcConnect(e *env, url string, hc *hcClient) *hcClient {
	e.t.Helper()
	hc.e = e
	c, err := e.m.HTTPConnect(url, e.chk.wrap(hc.handle))
	if err != nil {
		e.t.Fatalf("HTTPConnect %s: %v", url, err)
	}
	hc.c = c
	return hc
}

func (hc *hcClient) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvConnect:
		hc.connected = true
		if !hc.e.useTLS {
			hc.ready = true
		}
		if hc.onConnect != nil {
			hc.onConnect(c)
		}
	case meerkat.EvTLSHandshake:
		hc.ready = true
	case meerkat.EvRead:
		hc.rx += data.(int)
	case meerkat.EvHTTPHeaders:
		hc.heads++
		if hc.stream {
			meerkat.HTTPStreamBody(c)
		}
	case meerkat.EvHTTPChunk:
		hm := data.(*meerkat.HTTPMessage)
		hc.chunks++
		hc.chunkLen += int64(len(hm.Body))
		hc.chunkCRC = crc32.Update(hc.chunkCRC, crc32.IEEETable, hm.Body)
		hc.maxChunk = max(hc.maxChunk, len(hm.Body))
		hc.maxRecv = max(hc.maxRecv, c.Recv().Len())
		if hc.onChunk != nil {
			hc.onChunk()
		}
	case meerkat.EvHTTPMsg:
		hm := data.(*meerkat.HTTPMessage)
		r := hcResponse{
			status:        hm.Status,
			reason:        string(hm.Reason),
			proto:         string(hm.Proto),
			head:          string(hm.Head),
			body:          bytes.Clone(hm.Body),
			bodyNil:       hm.Body == nil,
			contentLength: hm.ContentLength,
		}
		for _, h := range hm.Headers {
			r.headers = append(r.headers, meerkat.HTTPHeader{Name: bytes.Clone(h.Name), Value: bytes.Clone(h.Value)})
		}
		hc.resps = append(hc.resps, r)
		if hc.onMsg != nil {
			hc.onMsg(c, &hc.resps[len(hc.resps)-1])
		}
	case meerkat.EvError:
		hc.errs = append(hc.errs, data.(error))
	case meerkat.EvClose:
		hc.closed = true
	}
}

// send writes a request, failing the test if it is refused.
func (hc *hcClient) send(method, target, headers string, body []byte) {
	hc.e.t.Helper()
	if !meerkat.HTTPSendRequest(hc.c, method, target, headers, body) {
		hc.e.t.Fatalf("HTTPSendRequest %s %s refused", method, target)
	}
}

// waitReady polls until the connection is established (and its TLS
// handshake done).
func (hc *hcClient) waitReady() {
	hc.e.t.Helper()
	hc.e.pollUntil(10*time.Second, "the client's connection", func() bool { return hc.ready || hc.closed })
	if !hc.ready {
		hc.e.t.Fatalf("client closed before it was ready: errors %v", hc.errs)
	}
}

// waitResponses polls until n responses arrived (or the connection closed).
func (hc *hcClient) waitResponses(n int, timeout time.Duration) {
	hc.e.t.Helper()
	hc.e.pollUntil(timeout, fmt.Sprintf("%d response(s)", n), func() bool { return len(hc.resps) >= n || hc.closed })
	if len(hc.resps) < n {
		hc.e.t.Fatalf("got %d response(s), want %d; errors %v; events %v",
			len(hc.resps), n, hc.errs, summarize(hc.e.chk.events(hc.c)))
	}
}

// waitClosed polls until EvClose.
func (hc *hcClient) waitClosed(timeout time.Duration) {
	hc.e.t.Helper()
	hc.e.pollUntil(timeout, "the client's EvClose", func() bool { return hc.closed })
}

// lastEvents returns the connection's last n events (fewer if it had fewer).
func (hc *hcClient) lastEvents(n int) []meerkat.Event {
	ev := hc.e.chk.events(hc.c)
	return ev[max(0, len(ev)-n):]
}

// noErrors fails the test if the connection reported an error.
func (hc *hcClient) noErrors() {
	hc.e.t.Helper()
	if len(hc.errs) != 0 {
		hc.e.t.Fatalf("client errors %v; events %v", hc.errs, summarize(hc.e.chk.events(hc.c)))
	}
}

// hcScheme is the URL scheme of the env's client connections.
func hcScheme(useTLS bool) string {
	if useTLS {
		return "https"
	}
	return "http"
}

// ---------------------------------------------------------------------------
// Peers: net/http servers and raw scripted servers.

// hcNetHTTP starts a net/http server (with the test certificate for TLS)
// and counts the connections it accepts. Create it before newEnv: cleanups
// run in reverse, so the Manager closes its connections first and the
// server's Close does not wait for them.
func hcNetHTTP(t *testing.T, useTLS bool, h http.Handler) (srv *httptest.Server, url string, conns *atomic.Int32) {
	t.Helper()
	conns = new(atomic.Int32)
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(&testLogWriter{t: t}, "net/http server: ", 0)
	if useTLS {
		srv.TLS = testcert.ServerConfig()
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, srv.URL, conns
}

// hcRaw is a scripted server: serve runs on its own goroutine for each
// accepted connection (over crypto/tls with the test certificate for TLS).
type hcRaw struct {
	t     *testing.T
	ln    net.Listener
	url   string
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// hcRawListen starts a scripted server. Create it before newEnv (see
// hcNetHTTP). The connection is closed when serve returns; every
// connection has a 60 s deadline, so a stuck script cannot hang the test.
func hcRawListen(t *testing.T, useTLS bool, serve func(nc net.Conn, br *bufio.Reader)) *hcRaw {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if useTLS {
		ln = tls.NewListener(ln, testcert.ServerConfig())
	}
	s := &hcRaw{t: t, ln: ln, url: hcScheme(useTLS) + "://" + ln.Addr().String(), conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[nc] = true
			s.mu.Unlock()
			nc.SetDeadline(time.Now().Add(60 * time.Second))
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, nc)
					s.mu.Unlock()
					nc.Close()
				}()
				serve(nc, bufio.NewReader(nc))
			}()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

// stop closes the listener and every connection, and waits for the
// scripts to return.
func (s *hcRaw) stop() {
	s.ln.Close()
	s.mu.Lock()
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.t.Errorf("raw server scripts did not return")
	}
}

// hcReadRequest reads one whole request (head and body) with net/http's
// parser, which also checks that Meerkat's request is well formed. It
// returns nil at EOF or on an error (reported unless it is the close).
func hcReadRequest(t *testing.T, br *bufio.Reader) (*http.Request, []byte) {
	req, err := http.ReadRequest(br)
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("raw server: reading a request: %v", err)
		}
		return nil, nil
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Errorf("raw server: reading a request body: %v", err)
		return nil, nil
	}
	return req, body
}

// hcWrite writes p, reporting a failure.
func hcWrite(t *testing.T, nc net.Conn, p []byte) bool {
	if _, err := nc.Write(p); err != nil {
		t.Errorf("raw server: write: %v", err)
		return false
	}
	return true
}

// hcRecvAck waits for the test to say go on (bounded): a value sent on ack,
// or ack closed.
func hcRecvAck(t *testing.T, ack <-chan struct{}) bool {
	select {
	case <-ack: // a value, or closed: go on
		return true
	case <-time.After(30 * time.Second):
		t.Errorf("raw server: no go-ahead from the test")
		return false
	}
}

// hcPattern returns n bytes that depend on seed and on their position, so
// that a lost, repeated or misplaced piece shows.
func hcPattern(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 0x9e3779b9
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// hcDescribe says how got differs from want, briefly.
func hcDescribe(got, want []byte) string {
	if bytes.Equal(got, want) {
		return "equal"
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("%d bytes, want %d, first difference at %d", len(got), len(want), i)
}

// ---------------------------------------------------------------------------
// 1. Framing: Content-Length, chunked, until the close.

// TestHTTPClientContentLength: responses framed by Content-Length (empty,
// one byte, several TLS records and reads, 1 MiB) from net/http arrive whole
// as one EvHTTPMsg each, with their status, headers and declared length, on
// one keep-alive connection.
func TestHTTPClientContentLength(t *testing.T) {
	sizes := []int{0, 1, 1000, 70000, 1 << 20}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		if useTLS {
		}
		_, url, conns := hcNetHTTP(t, useTLS, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.Header().Set("X-Size", strconv.Itoa(n))
			w.WriteHeader(201)
			w.Write(hcPattern(n, n))
		}))
		e := newEnv(t, drv, useTLS)
		hc := hcConnect(e, url, &hcClient{})
		hc.waitReady()
		for i, n := range sizes {
			hc.send("GET", "/len?n="+strconv.Itoa(n), "", nil)
			hc.waitResponses(i+1, 20*time.Second)
			r := &hc.resps[i]
			if r.status != 201 || r.reason != "Created" || r.proto != "HTTP/1.1" {
				t.Fatalf("size %d: status line %d %q %q", n, r.status, r.reason, r.proto)
			}
			if r.contentLength != int64(n) || r.header("X-Size") != strconv.Itoa(n) {
				t.Fatalf("size %d: ContentLength %d, X-Size %q", n, r.contentLength, r.header("X-Size"))
			}
			if want := hcPattern(n, n); !bytes.Equal(r.body, want) {
				t.Fatalf("size %d: body %s", n, hcDescribe(r.body, want))
			}
			if !strings.HasPrefix(r.head, "HTTP/1.1 201 Created\r\n") || !strings.HasSuffix(r.head, "\r\n\r\n") {
				t.Fatalf("size %d: head %q", n, r.head)
			}
		}
		hc.noErrors()
		if hc.closed || conns.Load() != 1 || hc.heads != len(sizes) {
			t.Fatalf("closed %v, server connections %d, EvHTTPHeaders %d", hc.closed, conns.Load(), hc.heads)
		}
	})
}

// TestHTTPClientChunkedNetHTTP: chunked responses from net/http (flushed
// pieces of many sizes, declared trailers) arrive decoded and whole, with
// ContentLength -1, and the connection stays open for the next one.
func TestHTTPClientChunkedNetHTTP(t *testing.T) {
	pieces := []int{1, 15, 16, 17, 255, 4096, 16384, 70000, 3, 200000}
	total := 0
	for _, n := range pieces {
		total += n
	}
	want := hcPattern(7, total)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		if useTLS {
		}
		_, url, conns := hcNetHTTP(t, useTLS, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Checksum")
			off := 0
			for _, n := range pieces {
				w.Write(want[off : off+n])
				off += n
				w.(http.Flusher).Flush()
			}
			w.Header().Set("X-Checksum", strconv.FormatUint(uint64(crc32.ChecksumIEEE(want)), 10))
		}))
		e := newEnv(t, drv, useTLS)
		hc := hcConnect(e, url, &hcClient{})
		hc.waitReady()
		for i := range 3 {
			hc.send("GET", "/chunked", "", nil)
			hc.waitResponses(i+1, 20*time.Second)
			r := &hc.resps[i]
			if r.status != 200 || r.contentLength != -1 || !strings.EqualFold(r.header("Transfer-Encoding"), "chunked") {
				t.Fatalf("response %d: status %d, ContentLength %d, Transfer-Encoding %q", i, r.status, r.contentLength, r.header("Transfer-Encoding"))
			}
			if !bytes.Equal(r.body, want) {
				t.Fatalf("response %d: body %s", i, hcDescribe(r.body, want))
			}
		}
		hc.noErrors()
		if hc.closed || conns.Load() != 1 {
			t.Fatalf("closed %v, server connections %d", hc.closed, conns.Load())
		}
	})
}

// hcChunkedWithExtras is a chunked response with chunk extensions (quoted
// too), upper- and lower-case hex sizes, leading zeros, and trailers.
const hcChunkedWithExtras = "HTTP/1.1 200 OK\r\n" +
	"Transfer-Encoding: chunked\r\n" +
	"Trailer: X-Sum, X-Other\r\n" +
	"\r\n" +
	"5;name=value;flag\r\n" +
	"hello\r\n" +
	"1A ; q=\"a;b\"\r\n" +
	"abcdefghijklmnopqrstuvwxyz\r\n" +
	"00a\r\n" +
	"0123456789\r\n" +
	"0;last=1\r\n" +
	"X-Sum: 12345\r\n" +
	"X-Other: yes\r\n" +
	"\r\n"

const hcChunkedWithExtrasBody = "hello" + "abcdefghijklmnopqrstuvwxyz" + "0123456789"

// hcSplitResponses are raw responses for the split test, each with the
// body the client must see.
var hcSplitResponses = []struct {
	name, wire, body string
	status           int
}{
	{"chunked with extensions and trailers", hcChunkedWithExtras, hcChunkedWithExtrasBody, 200},
	{"content-length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz", 200},
	{"100 continue then chunked", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "abc", 201},
	{"empty chunked", "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "", 202},
}

// TestHTTPClientSplitAtEveryByte: a response (chunked with extensions and
// trailers, Content-Length, 100 Continue then chunked) written by a raw
// server in two pieces, for every split point, is parsed the same: no
// EvHTTPMsg before its last byte arrives, then the whole body. The test
// waits until the client has received the first piece before the server
// writes the second, so every split really is seen by the parser. Then the
// chunked response is written one byte at a time, each byte awaited.
func TestHTTPClientSplitAtEveryByte(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, tc := range hcSplitResponses {
			t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				hcSplitCase(t, drv, useTLS, tc.wire, tc.body, tc.status)
			})
		}
		t.Run("byte_by_byte", func(t *testing.T) {
			hcByteByByte(t, drv, useTLS, hcChunkedWithExtras, hcChunkedWithExtrasBody)
		})
	})
}

func hcSplitCase(t *testing.T, drv string, useTLS bool, wire, body string, status int) {
	ack := make(chan struct{})
	srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
		for k := 1; k < len(wire); k++ {
			if req, _ := hcReadRequest(t, br); req == nil {
				return
			}
			if !hcWrite(t, nc, []byte(wire[:k])) || !hcRecvAck(t, ack) || !hcWrite(t, nc, []byte(wire[k:])) {
				return
			}
		}
	})
	e := newEnv(t, drv, useTLS)
	hc := hcConnect(e, srv.url, &hcClient{})
	hc.waitReady()
	base := 0
	for k := 1; k < len(wire); k++ {
		hc.send("GET", "/split/"+strconv.Itoa(k), "", nil)
		e.pollUntil(10*time.Second, fmt.Sprintf("the first %d bytes", k), func() bool { return hc.rx >= base+k || hc.closed })
		if hc.rx != base+k || len(hc.resps) != k-1 || hc.closed {
			t.Fatalf("split at %d: received %d bytes (want %d), %d responses (want %d), closed %v, errors %v",
				k, hc.rx-base, k, len(hc.resps), k-1, hc.closed, hc.errs)
		}
		ack <- struct{}{}
		hc.waitResponses(k, 10*time.Second)
		r := &hc.resps[k-1]
		if r.status != status || string(r.body) != body {
			t.Fatalf("split at %d: status %d body %q, want %d %q", k, r.status, r.body, status, body)
		}
		base += len(wire)
	}
	hc.noErrors()
	if hc.heads != len(wire)-1 {
		t.Fatalf("%d EvHTTPHeaders for %d responses: an interim response was delivered", hc.heads, len(wire)-1)
	}
}

func hcByteByByte(t *testing.T, drv string, useTLS bool, wire, body string) {
	ack := make(chan struct{})
	srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
		if req, _ := hcReadRequest(t, br); req == nil {
			return
		}
		for i := range len(wire) {
			if !hcWrite(t, nc, []byte{wire[i]}) || !hcRecvAck(t, ack) {
				return
			}
		}
		hcReadRequest(t, br) // until the client closes
	})
	e := newEnv(t, drv, useTLS)
	hc := hcConnect(e, srv.url, &hcClient{})
	hc.waitReady()
	hc.send("GET", "/bytes", "", nil)
	for i := range len(wire) {
		e.pollUntil(10*time.Second, fmt.Sprintf("byte %d", i), func() bool { return hc.rx > i || hc.closed })
		wantMsgs := 0
		if i == len(wire)-1 {
			wantMsgs = 1
		}
		if hc.rx != i+1 || len(hc.resps) != wantMsgs {
			t.Fatalf("after byte %d: received %d, %d responses, errors %v", i, hc.rx, len(hc.resps), hc.errs)
		}
		ack <- struct{}{}
	}
	if r := hc.resps[0]; r.status != 200 || string(r.body) != body {
		t.Fatalf("status %d body %q", r.status, r.body)
	}
	hc.noErrors()
}

// TestHTTPClientUntilClose: a response with neither Content-Length nor
// Transfer-Encoding ends at the close. The raw server writes the head and
// the body (of several reads' worth), waits until the client has all of
// it, and closes: no EvHTTPMsg before the close, then one EvHTTPMsg with
// the whole body (ContentLength -1), then EvClose, and no EvError. An empty
// body, an HTTP/1.0 response, and a streamed body (HTTPStreamBody: pieces,
// then EvHTTPMsg at the close) behave the same.
func TestHTTPClientUntilClose(t *testing.T) {
	cases := []struct {
		name   string
		head   string
		size   int
		stream bool
	}{
		{"http11", "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n", 300000, false},
		{"http11_connection_close", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 5000, false},
		{"http10", "HTTP/1.0 200 OK\r\n\r\n", 70000, false},
		{"empty", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 0, false},
		{"streamed", "HTTP/1.1 200 OK\r\n\r\n", 300000, true},
	}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				body := hcPattern(tc.size, tc.size)
				ack := make(chan struct{})
				srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
					if req, _ := hcReadRequest(t, br); req == nil {
						return
					}
					if hcWrite(t, nc, []byte(tc.head)) && hcWrite(t, nc, body) {
						hcRecvAck(t, ack)
					}
				})
				e := newEnv(t, drv, useTLS)
				hc := hcConnect(e, srv.url, &hcClient{stream: tc.stream})
				hc.waitReady()
				hc.send("GET", "/", "", nil)
				all := len(tc.head) + tc.size
				e.pollUntil(10*time.Second, "the whole response", func() bool { return hc.rx >= all || hc.closed })
				if hc.rx != all || len(hc.resps) != 0 || hc.closed {
					t.Fatalf("before the close: received %d of %d bytes, %d responses, closed %v, errors %v",
						hc.rx, all, len(hc.resps), hc.closed, hc.errs)
				}
				close(ack)
				hc.waitClosed(10 * time.Second)
				hc.noErrors()
				if ev := hc.lastEvents(2); len(ev) != 2 || ev[0] != meerkat.EvHTTPMsg || ev[1] != meerkat.EvClose {
					t.Fatalf("events %v, want ... EvHTTPMsg EvClose", summarize(e.chk.events(hc.c)))
				}
				if len(hc.resps) != 1 {
					t.Fatalf("%d responses", len(hc.resps))
				}
				r := &hc.resps[0]
				if r.status != 200 || r.contentLength != -1 {
					t.Fatalf("status %d ContentLength %d", r.status, r.contentLength)
				}
				if tc.stream {
					if !r.bodyNil || hc.chunkLen != int64(tc.size) || hc.chunkCRC != crc32.ChecksumIEEE(body) {
						t.Fatalf("streamed: EvHTTPMsg body nil %v, %d bytes in %d pieces (want %d), CRC match %v",
							r.bodyNil, hc.chunkLen, hc.chunks, tc.size, hc.chunkCRC == crc32.ChecksumIEEE(body))
					}
				} else if !bytes.Equal(r.body, body) {
					t.Fatalf("body %s", hcDescribe(r.body, body))
				}
			})
		}
	})
}

// ---------------------------------------------------------------------------
// 2. Truncation.

// hcTruncations are responses a server closes the connection in the middle
// of (after a request; the TLS server sends close_notify, so the close is
// clean and only the HTTP framing tells the response is short).
var hcTruncations = []struct {
	name, wire string
	stream     bool
}{
	{"head_cut", "HTTP/1.1 200 OK\r\nContent-Le", false},
	{"length_no_body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", false},
	{"length_half", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 50), false},
	{"length_one_short", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 99), false},
	{"length_large_half", "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + strings.Repeat("y", 500000), false},
	{"length_streamed", "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("z", 99999), true},
	{"chunked_in_size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1", false},
	{"chunked_in_data", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", false},
	{"chunked_no_last_chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", false},
	{"chunked_in_last_chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", false},
	{"chunked_in_trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n", false},
	{"chunked_streamed", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n", true},
}

// TestHTTPClientTruncated: a response cut short of its head, its
// Content-Length, or its last chunk (or trailers) by the server's close is
// EvError wrapping meerkat.ErrHTTPTruncated, then EvClose, and never an
// EvHTTPMsg, whole or streamed. So is the second response of a keep-alive
// connection cut short after a first complete one, which is delivered.
func TestHTTPClientTruncated(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, tc := range hcTruncations {
			t.Run(tc.name, func(t *testing.T) {
				hcTruncatedCase(t, drv, useTLS, "", tc.wire, tc.stream)
			})
		}
		t.Run("second_response", func(t *testing.T) {
			hcTruncatedCase(t, drv, useTLS, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
				"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", false)
		})
	})
}

// hcTruncatedCase sends one request (two if first is set, pipelined); the
// raw server answers with first (complete) and cut, then closes once the
// client has received everything.
func hcTruncatedCase(t *testing.T, drv string, useTLS bool, first, cut string, stream bool) {
	ack := make(chan struct{})
	nreq := 1
	if first != "" {
		nreq = 2
	}
	srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
		for range nreq {
			if req, _ := hcReadRequest(t, br); req == nil {
				return
			}
		}
		if hcWrite(t, nc, []byte(first+cut)) {
			hcRecvAck(t, ack)
		}
	})
	e := newEnv(t, drv, useTLS)
	hc := hcConnect(e, srv.url, &hcClient{stream: stream})
	hc.waitReady()
	for range nreq {
		hc.send("GET", "/", "", nil)
	}
	all := len(first) + len(cut)
	e.pollUntil(10*time.Second, "the partial response", func() bool { return hc.rx >= all || hc.closed })
	if hc.rx != all || hc.closed || len(hc.errs) != 0 {
		t.Fatalf("before the close: received %d of %d bytes, closed %v, errors %v", hc.rx, all, hc.closed, hc.errs)
	}
	close(ack)
	hc.waitClosed(10 * time.Second)
	wantMsgs := nreq - 1
	if len(hc.resps) != wantMsgs {
		t.Fatalf("%d EvHTTPMsg, want %d: a truncated response was delivered as complete (body %q)",
			len(hc.resps), wantMsgs, hc.resps[len(hc.resps)-1].body)
	}
	if len(hc.errs) != 1 || !errors.Is(hc.errs[0], meerkat.ErrHTTPTruncated) {
		t.Fatalf("errors %v, want one wrapping ErrHTTPTruncated", hc.errs)
	}
	hc.expectFailedClose()
}

// ---------------------------------------------------------------------------
// 3. Responses without a body; 6. interim responses.

// TestHTTPClientNoBodyResponses: responses to HEAD (with Content-Length:
// 100, or Transfer-Encoding: chunked), 204 and 304 (with Content-Length:
// 100) have no body: the raw server writes them all at once, followed by a
// normal response, to pipelined requests, and every one is parsed right,
// the last one's body included; the connection stays open.
func TestHTTPClientNoBodyResponses(t *testing.T) {
	reqs := []struct {
		method, wire string
		status       int
	}{
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 200},
		{"GET", "HTTP/1.1 204 No Content\r\nContent-Length: 100\r\n\r\n", 204},
		{"GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n", 304},
		{"HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200},
		{"POST", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", 204},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200},
	}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, pipelined := range []bool{true, false} {
			name := "one_after_another"
			if pipelined {
				name = "pipelined"
			}
			t.Run(name, func(t *testing.T) {
				srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
					if pipelined {
						var all []byte
						for _, rq := range reqs {
							req, _ := hcReadRequest(t, br)
							if req == nil {
								return
							}
							if req.Method != rq.method {
								t.Errorf("raw server: got %s, want %s", req.Method, rq.method)
							}
							all = append(all, rq.wire...)
						}
						hcWrite(t, nc, all)
					} else {
						for _, rq := range reqs {
							if req, _ := hcReadRequest(t, br); req == nil || !hcWrite(t, nc, []byte(rq.wire)) {
								return
							}
						}
					}
					hcReadRequest(t, br) // until the client closes
				})
				e := newEnv(t, drv, useTLS)
				hc := hcConnect(e, srv.url, &hcClient{})
				hc.waitReady()
				for i, rq := range reqs {
					var body []byte
					if rq.method == "POST" {
						body = []byte("data")
					}
					hc.send(rq.method, "/"+strconv.Itoa(i), "", body)
					if !pipelined {
						hc.waitResponses(i+1, 10*time.Second)
					}
				}
				hc.waitResponses(len(reqs), 10*time.Second)
				for i, rq := range reqs {
					r := &hc.resps[i]
					wantBody := ""
					if i == len(reqs)-1 {
						wantBody = "hello"
					}
					if r.status != rq.status || string(r.body) != wantBody {
						t.Fatalf("response %d (%s): status %d body %q, want %d %q", i, rq.method, r.status, r.body, rq.status, wantBody)
					}
				}
				// Nothing more arrives, and nothing is left half-parsed.
				for range 5 {
					e.m.Poll(10 * time.Millisecond)
				}
				hc.noErrors()
				if hc.closed || len(hc.resps) != len(reqs) {
					t.Fatalf("closed %v, %d responses", hc.closed, len(hc.resps))
				}
			})
		}
	})
}

// TestHTTPClientInterimResponses: 1xx interim responses (100 Continue, 103
// Early Hints with headers) before the real response are skipped: one
// EvHTTPHeaders and one EvHTTPMsg for the final response, whether the
// interim response arrives with it or alone (the client having read it
// before the rest is written), on consecutive requests of one connection.
func TestHTTPClientInterimResponses(t *testing.T) {
	const (
		interim = "HTTP/1.1 100 Continue\r\n\r\n"
		hints   = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
		final   = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nuploaded"
	)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		ack := make(chan struct{})
		srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
			steps := [][]string{
				{interim + final},
				{interim, final},
				{interim + hints, final},
				{interim, hints, hints + final},
			}
			for _, pieces := range steps {
				req, body := hcReadRequest(t, br)
				if req == nil {
					return
				}
				if string(body) != "payload" || req.Header.Get("Expect") != "100-continue" {
					t.Errorf("raw server: body %q, Expect %q", body, req.Header.Get("Expect"))
				}
				for j, p := range pieces {
					if !hcWrite(t, nc, []byte(p)) {
						return
					}
					if j < len(pieces)-1 && !hcRecvAck(t, ack) {
						return
					}
				}
			}
			hcReadRequest(t, br)
		})
		e := newEnv(t, drv, useTLS)
		hc := hcConnect(e, srv.url, &hcClient{})
		hc.waitReady()
		stepSizes := [][]int{
			{len(interim + final)},
			{len(interim), len(final)},
			{len(interim + hints), len(final)},
			{len(interim), len(hints), len(hints + final)},
		}
		for i, sizes := range stepSizes {
			hc.send("POST", "/upload", "Expect: 100-continue\r\n", []byte("payload"))
			for j, n := range sizes {
				if j == len(sizes)-1 {
					break
				}
				want := hc.rx + n
				e.pollUntil(10*time.Second, "an interim response", func() bool { return hc.rx >= want || hc.closed })
				if len(hc.resps) != i || hc.heads != i {
					t.Fatalf("step %d: an interim response was delivered: %d EvHTTPHeaders, %d EvHTTPMsg", i, hc.heads, len(hc.resps))
				}
				ack <- struct{}{}
			}
			hc.waitResponses(i+1, 10*time.Second)
			if r := hc.resps[i]; r.status != 200 || string(r.body) != "uploaded" || hc.heads != i+1 {
				t.Fatalf("step %d: status %d body %q, %d EvHTTPHeaders", i, r.status, r.body, hc.heads)
			}
		}
		hc.noErrors()
	})
}

// ---------------------------------------------------------------------------
// 4. The receive limit and streamed bodies.

// TestHTTPClientBodyOverLimit: with RecvLimit at 1 MiB, a 3 MiB response
// body (Content-Length or chunked from net/http) is an EvError naming the
// limit, then EvClose, and never an EvHTTPMsg.
func TestHTTPClientBodyOverLimit(t *testing.T) {
	const limit, size = 1 << 20, 3 << 20
	body := hcPattern(1, size)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		_, url, _ := hcNetHTTP(t, useTLS, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/length" {
				w.Header().Set("Content-Length", strconv.Itoa(size))
			}
			// Bounded: once seen (once, under Wine) blocked for good after
			// the client had closed, holding up the server's Close.
			http.NewResponseController(w).SetWriteDeadline(time.Now().Add(20 * time.Second))
			w.Write(body) // errors when the client gives up: expected
		}))
		for _, path := range []string{"/length", "/chunked"} {
			t.Run(path[1:], func(t *testing.T) {
				e := newEnv(t, drv, useTLS)
				e.m.RecvLimit = limit
				hc := hcConnect(e, url, &hcClient{})
				hc.waitReady()
				hc.send("GET", path, "", nil)
				hc.waitClosed(20 * time.Second)
				hcExpectLimitError(t, hc, limit)
			})
		}
	})
}

// hcExpectLimitError checks that the client failed with one error naming
// the receive limit, and delivered no message.
func hcExpectLimitError(t *testing.T, hc *hcClient, limit int) {
	t.Helper()
	if len(hc.resps) != 0 {
		t.Fatalf("%d EvHTTPMsg for a body over the limit", len(hc.resps))
	}
	if len(hc.errs) != 1 {
		t.Fatalf("errors %v, want one", hc.errs)
	}
	msg := hc.errs[0].Error()
	if !strings.Contains(msg, "RecvLimit") || !strings.Contains(msg, strconv.Itoa(limit)) {
		t.Fatalf("error %q does not name the limit (RecvLimit, %d)", msg, limit)
	}
	hc.expectFailedClose()
}

// expectFailedClose checks that the connection ended with one EvError and
// then EvClose, with no HTTP event after the EvError. (Whether EvRead may
// come between them is TestHTTPClientNothingAfterErrorButClose's business.)
func (hc *hcClient) expectFailedClose() {
	hc.e.t.Helper()
	ev := hc.e.chk.events(hc.c)
	errAt := -1
	for i, e := range ev {
		if e == meerkat.EvError {
			if errAt >= 0 {
				hc.e.t.Fatalf("two EvError: %v", summarize(ev))
			}
			errAt = i
		}
	}
	if errAt < 0 || ev[len(ev)-1] != meerkat.EvClose {
		hc.e.t.Fatalf("events %v, want ... EvError ... EvClose", summarize(ev))
	}
	for _, e := range ev[errAt+1 : len(ev)-1] {
		if e != meerkat.EvRead {
			hc.e.t.Fatalf("%v after EvError: %v", e, summarize(ev))
		}
	}
}

// TestHTTPClientUntilCloseOverLimit: a body that ends at the close and
// outgrows RecvLimit (1 MiB; the raw server sends 3 MiB and closes) is an
// EvError naming the limit, not a connection stuck with a full receive
// buffer.
func TestHTTPClientUntilCloseOverLimit(t *testing.T) {
	const limit, size = 1 << 20, 3 << 20
	body := hcPattern(2, size)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
			if req, _ := hcReadRequest(t, br); req == nil {
				return
			}
			nc.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
			nc.Write(body) // fails when the client gives up: expected
		})
		e := newEnv(t, drv, useTLS)
		e.m.RecvLimit = limit
		hc := hcConnect(e, srv.url, &hcClient{})
		hc.waitReady()
		hc.send("GET", "/", "", nil)
		deadline := time.Now().Add(5 * time.Second)
		for !hc.closed && time.Now().Before(deadline) {
			e.m.Poll(10 * time.Millisecond)
		}
		if !hc.closed {
			t.Fatalf("no EvClose 5 s after a %d-byte until-close body met RecvLimit %d: received %d bytes, Recv holds %d, errors %v",
				size, limit, hc.rx, hc.c.Recv().Len(), hc.errs)
		}
		hcExpectLimitError(t, hc, limit)
	})
}

// TestHTTPClientStreamedLargeBody: with HTTPStreamBody on EvHTTPHeaders, a
// 100 MiB body written by a net/http handler in a loop (chunked, and with
// Content-Length) arrives as EvHTTPChunk pieces no larger
// than RecvLimit (1 MiB), with the heap bounded well below the body's size,
// then one EvHTTPMsg with a nil Body; the CRC of the pieces matches, and the
// connection serves a normal request afterwards.
func TestHTTPClientStreamedLargeBody(t *testing.T) {
	const limit, blocks = 1 << 20, 1600 // 1600 x 64 KiB = 100 MiB
	block := hcPattern(3, 64<<10)
	var crc uint32
	for range blocks {
		crc = crc32.Update(crc, crc32.IEEETable, block)
	}
	const size = blocks * 64 << 10
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		_, url, conns := hcNetHTTP(t, useTLS, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/small" {
				w.Write([]byte("small"))
				return
			}
			if r.URL.Path == "/length" {
				w.Header().Set("Content-Length", strconv.Itoa(size))
			}
			for range blocks {
				if _, err := w.Write(block); err != nil {
					return
				}
			}
		}))
		paths := []string{"/chunked", "/length"}
		e := newEnv(t, drv, useTLS)
		e.m.RecvLimit = limit
		hc := hcConnect(e, url, &hcClient{stream: true})
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heapBase, heapPeak := ms.HeapInuse, ms.HeapInuse
		var nextSample int64
		hc.onChunk = func() {
			if hc.chunkLen >= nextSample {
				nextSample += 8 << 20
				runtime.ReadMemStats(&ms)
				heapPeak = max(heapPeak, ms.HeapInuse)
			}
		}
		hc.waitReady()
		for i, path := range paths {
			start := time.Now()
			hc.chunks, hc.chunkLen, hc.chunkCRC, hc.maxChunk, hc.maxRecv, nextSample = 0, 0, 0, 0, 0, 0
			hc.send("GET", path, "", nil)
			hc.waitResponses(i+1, 120*time.Second)
			r := &hc.resps[i]
			t.Logf("%s: %d MiB in %d pieces (largest %d) in %v; heap in use %d MiB at start, peak %d MiB",
				path, hc.chunkLen>>20, hc.chunks, hc.maxChunk, time.Since(start).Round(time.Millisecond), heapBase>>20, heapPeak>>20)
			if r.status != 200 || !r.bodyNil || hc.chunkLen != size || hc.chunkCRC != crc {
				t.Fatalf("%s: status %d, body nil %v, %d bytes (want %d), CRC %08x (want %08x)",
					path, r.status, r.bodyNil, hc.chunkLen, size, hc.chunkCRC, crc)
			}
			if hc.chunks < 2 || hc.maxChunk > limit || hc.maxRecv > limit {
				t.Fatalf("%s: %d pieces, largest %d, Recv up to %d: not bounded by RecvLimit %d", path, hc.chunks, hc.maxChunk, hc.maxRecv, limit)
			}
		}
		if heapPeak > heapBase+48<<20 {
			t.Fatalf("heap in use grew from %d to %d MiB while streaming 100 MiB bodies", heapBase>>20, heapPeak>>20)
		}
		hc.stream = false
		hc.send("GET", "/small", "", nil)
		hc.waitResponses(len(paths)+1, 10*time.Second)
		if r := hc.resps[len(paths)]; r.status != 200 || string(r.body) != "small" {
			t.Fatalf("after streaming: status %d body %q", r.status, r.body)
		}
		hc.noErrors()
		if conns.Load() != 1 {
			t.Fatalf("server saw %d connections, want 1", conns.Load())
		}
	})
}

// TestHTTPClientLargeWholeBodyGrowsGeometrically: a 12 MiB body received
// whole (RecvLimit 16 MiB) costs the receive buffer a bounded amount of
// copying: the Go heap allocates a small multiple of the body, not a new
// buffer of the whole size for each 64 KiB read past the largest pooled
// buffer class (4 MiB), which would total about 1 GiB.
func TestHTTPClientLargeWholeBodyGrowsGeometrically(t *testing.T) {
	const size = 12 << 20
	block := hcPattern(4, 64<<10)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		_, url, _ := hcNetHTTP(t, useTLS, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(size))
			for range size / len(block) {
				if _, err := w.Write(block); err != nil {
					return
				}
			}
		}))
		e := newEnv(t, drv, useTLS)
		e.m.RecvLimit = 16 << 20
		hc := hcConnect(e, url, &hcClient{})
		hc.waitReady()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		hc.send("GET", "/", "", nil)
		hc.waitResponses(1, 60*time.Second)
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("12 MiB body in %v; %d MiB allocated meanwhile", time.Since(start).Round(time.Millisecond), alloc>>20)
		if r := hc.resps[0]; len(r.body) != size || !bytes.Equal(r.body[:len(block)], block) {
			t.Fatalf("body of %d bytes", len(r.body))
		}
		if alloc > 128<<20 {
			t.Fatalf("%d MiB allocated to receive a 12 MiB body", alloc>>20)
		}
	})
}

// ---------------------------------------------------------------------------
// 5. Keep-alive.

// TestHTTPClientKeepAlive: several requests on one connection to a net/http
// server — pipelined (HTTPSendRequest back to back, GETs and POSTs with
// bodies) and one after another — are answered in order, each request
// carrying the URL's host and port as Host, and the server sees one
// connection (counted with http.Server.ConnState).
func TestHTTPClientKeepAlive(t *testing.T) {
	const n = 10
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		_, url, conns := hcNetHTTP(t, useTLS, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s %d %08x", r.Host, r.Method, r.URL.RequestURI(), len(b), crc32.ChecksumIEEE(b))
		}))
		e := newEnv(t, drv, useTLS)
		hc := hcConnect(e, url, &hcClient{})
		hc.waitReady()
		host := strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
		var want []string
		request := func(i int) {
			method, target, body := "GET", fmt.Sprintf("/r/%d?x=%d", i, i*i), []byte(nil)
			if i%3 == 1 {
				method, body = "POST", hcPattern(i, 1000*i)
			}
			want = append(want, fmt.Sprintf("%s %s %s %d %08x", host, method, target, len(body), crc32.ChecksumIEEE(body)))
			hc.send(method, target, "Content-Type: application/octet-stream\r\n", body)
		}
		for i := range n { // pipelined
			request(i)
		}
		hc.waitResponses(n, 20*time.Second)
		for i := n; i < 2*n; i++ { // one after another
			request(i)
			hc.waitResponses(i+1, 20*time.Second)
		}
		for i, w := range want {
			if r := hc.resps[i]; r.status != 200 || string(r.body) != w {
				t.Fatalf("response %d: status %d body %q, want %q", i, r.status, r.body, w)
			}
		}
		hc.noErrors()
		if hc.closed || conns.Load() != 1 {
			t.Fatalf("closed %v; the server saw %d connections, want 1", hc.closed, conns.Load())
		}
	})
}

// TestHTTPClientVerifiesServer: an https client verifies the server's
// certificate against the configured roots and for the URL's host: a
// certificate from another CA, or one for another name, is an EvError
// (then EvClose) with no request answered; the right one, reached as
// "localhost" or "127.0.0.1", serves the request.
func TestHTTPClientVerifiesServer(t *testing.T) {
	other := testcert.NewCA("Other CA")
	cases := []struct {
		name, host string
		cert       tls.Certificate
		ok         bool
	}{
		{"trusted_ip", "127.0.0.1", testcert.Default.Cert, true},
		{"trusted_name", "localhost", testcert.Default.Cert, true},
		{"unknown_ca", "127.0.0.1", other.Leaf("localhost", "127.0.0.1"), false},
		{"wrong_name", "localhost", testcert.Default.CA.Leaf("example.com"), false},
		{"expired", "127.0.0.1", testcert.Default.CA.Expired("127.0.0.1"), false},
	}
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var served atomic.Int32
				srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					served.Add(1)
					w.Write([]byte("secret"))
				}))
				srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
				srv.TLS = &tls.Config{Certificates: []tls.Certificate{tc.cert}}
				srv.StartTLS()
				t.Cleanup(srv.Close)
				_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
				e := newEnv(t, drv, true)
				hc := hcConnect(e, "https://"+net.JoinHostPort(tc.host, port), &hcClient{onConnect: func(c *meerkat.Conn) {
					meerkat.HTTPSendRequest(c, "GET", "/", "", nil)
				}})
				if tc.ok {
					hc.waitResponses(1, 10*time.Second)
					hc.noErrors()
					if string(hc.resps[0].body) != "secret" {
						t.Fatalf("body %q", hc.resps[0].body)
					}
					return
				}
				hc.waitClosed(10 * time.Second)
				if len(hc.resps) != 0 || served.Load() != 0 {
					t.Fatalf("%d responses, %d requests served: the certificate was accepted", len(hc.resps), served.Load())
				}
				hc.expectFailedClose()
				t.Logf("error: %v", hc.errs[0])
			})
		}
	})
}

// ---------------------------------------------------------------------------
// 7. The scenario behind this project.

// hcScenarioSize is the response body size for request i: from 1 byte to
// about 40 KB (several TLS records), never 0, so an empty body shows.
func hcScenarioSize(i int) int { return 1 + (i*7919)%40000 }

// TestHTTPClientScenario2000: 2,000 sequential HTTPS POSTs, each on a new
// client connection with "Connection: close", to servers that close right
// after each response: net/http with crypto/tls for responses with
// Content-Length and for chunked ones, and a raw crypto/tls server for
// responses with no length at all (ended by the close). Every body arrives
// complete and correct (size and content): 0 empty, 0 short, no error.
func TestHTTPClientScenario2000(t *testing.T) {
	const total = 2000
	forEachDriver(t, func(t *testing.T, drv string) {
		_, netURL, netConns := hcNetHTTP(t, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			i, err2 := strconv.Atoi(string(b))
			if err != nil || err2 != nil || r.Header.Get("Connection") != "close" {
				http.Error(w, "bad request", 400)
				return
			}
			body := hcPattern(i, hcScenarioSize(i))
			if i%3 == 0 {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			} else {
				w.(http.Flusher).Flush() // head out now: the body goes chunked
			}
			w.Write(body)
		}))
		var rawConns atomic.Int32
		raw := hcRawListen(t, true, func(nc net.Conn, br *bufio.Reader) {
			rawConns.Add(1)
			req, b := hcReadRequest(t, br)
			if req == nil {
				return
			}
			i, err := strconv.Atoi(string(b))
			if err != nil || req.Header.Get("Connection") != "close" {
				t.Errorf("raw server: body %q, Connection %q", b, req.Header.Get("Connection"))
				return
			}
			resp := append([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"), hcPattern(i, hcScenarioSize(i))...)
			hcWrite(t, nc, resp) // then the close (close_notify and FIN)
		})
		e := newEnv(t, drv, true)
		var empty, short, wrong, failed, noMsg, lateErrors int
		start := time.Now()
		for i := range total {
			url := netURL
			if i%3 == 2 {
				url = raw.url
			}
			hc := hcConnect(e, url, &hcClient{onConnect: func(c *meerkat.Conn) {
				if !meerkat.HTTPSendRequest(c, "POST", "/post", "Connection: close\r\nContent-Type: text/plain\r\n", []byte(strconv.Itoa(i))) {
					t.Errorf("request %d refused", i)
				}
			}})
			hc.waitClosed(20 * time.Second)
			want := hcPattern(i, hcScenarioSize(i))
			// Errors reported after the whole response was delivered are
			// counted apart: see TestHTTPClientNoErrorAfterFinalResponse.
			msgAt, errAt := -1, -1
			for k, ev := range e.chk.events(hc.c) {
				if ev == meerkat.EvHTTPMsg && msgAt < 0 {
					msgAt = k
				}
				if ev == meerkat.EvError && errAt < 0 {
					errAt = k
				}
			}
			switch {
			case len(hc.resps) != 1:
				noMsg++
				t.Errorf("request %d: %d responses; errors %v; events %v", i, len(hc.resps), hc.errs, summarize(e.chk.events(hc.c)))
			case errAt >= 0 && errAt < msgAt:
				failed++
				t.Errorf("request %d: errors %v; events %v", i, hc.errs, summarize(e.chk.events(hc.c)))
			case len(hc.resps[0].body) == 0:
				empty++
			case len(hc.resps[0].body) < len(want):
				short++
			case hc.resps[0].status != 200 || !bytes.Equal(hc.resps[0].body, want):
				wrong++
				t.Errorf("request %d: status %d body %s", i, hc.resps[0].status, hcDescribe(hc.resps[0].body, want))
			case (hc.resps[0].contentLength >= 0) != (i%3 == 0):
				wrong++
				t.Errorf("request %d: ContentLength %d: not framed as the server intended", i, hc.resps[0].contentLength)
			}
			if errAt > msgAt && msgAt >= 0 {
				lateErrors++
				if lateErrors <= 3 {
					t.Logf("request %d: error after the complete response: %v; events %v", i, hc.errs, summarize(e.chk.events(hc.c)))
				}
			}
			if failed+noMsg+wrong > 10 {
				t.Fatalf("stopping after %d failures", failed+noMsg+wrong)
			}
		}
		elapsed := time.Since(start)
		t.Logf("%d HTTPS POSTs in %v (%v each); %d empty, %d short, %d wrong, %d failed, %d without a response; %d errors after a complete response",
			total, elapsed.Round(time.Millisecond), (elapsed / total).Round(time.Microsecond), empty, short, wrong, failed, noMsg, lateErrors)
		if empty+short+wrong+failed+noMsg != 0 {
			t.Fatalf("%d empty, %d short, %d wrong, %d failed, %d without a response", empty, short, wrong, failed, noMsg)
		}
		if n := int(netConns.Load()) + int(rawConns.Load()); n != total {
			t.Fatalf("servers saw %d connections, want %d", n, total)
		}
		if lateErrors > 0 {
			t.Fatalf("%d of %d exchanges reported EvError (reset) after their complete response", lateErrors, total)
		}
	})
}

// ---------------------------------------------------------------------------
// Bugs found by this file, each proven on its own.

// TestHTTPClientHeadViewsSurviveBodyReads: the head of a response whose
// body arrives in later reads (status line, reason, headers, Head) is
// intact in EvHTTPMsg, even when another connection of the Manager reads in
// between (which reuses the Manager's read space) or TLS decrypts more. The
// raw server sends the head and part of the body of A, the test waits until
// A has them, lets B get a whole response with other header bytes, then
// lets A's body finish.
func TestHTTPClientHeadViewsSurviveBodyReads(t *testing.T) {
	cases := []struct{ name, head, part, rest, body string }{
		{"content-length",
			"HTTP/1.1 200 Everything Fine\r\nX-Marker: alpha\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n",
			"01234", "56789", "0123456789"},
		{"chunked",
			"HTTP/1.1 200 Everything Fine\r\nX-Marker: alpha\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
			"5\r\n01234\r\n", "5\r\n56789\r\n0\r\n\r\n", "0123456789"},
	}
	other := "HTTP/1.1 404 Not Found Here At All\r\nX-Marker: " + strings.Repeat("bravo-", 40) + "\r\nContent-Length: 3\r\n\r\nabc"
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ack := make(chan struct{})
				srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
					req, _ := hcReadRequest(t, br)
					if req == nil {
						return
					}
					if req.URL.Path == "/b" {
						hcWrite(t, nc, []byte(other))
					} else if hcWrite(t, nc, []byte(tc.head+tc.part)) && hcRecvAck(t, ack) {
						hcWrite(t, nc, []byte(tc.rest))
					}
					hcReadRequest(t, br)
				})
				e := newEnv(t, drv, useTLS)
				a := hcConnect(e, srv.url, &hcClient{})
				a.waitReady()
				a.send("GET", "/a", "", nil)
				want := len(tc.head) + len(tc.part)
				e.pollUntil(10*time.Second, "A's head", func() bool { return a.rx >= want || a.closed })
				b := hcConnect(e, srv.url, &hcClient{})
				b.waitReady()
				b.send("GET", "/b", "", nil)
				b.waitResponses(1, 10*time.Second)
				close(ack)
				a.waitResponses(1, 10*time.Second)
				a.noErrors()
				r := &a.resps[0]
				if r.status != 200 || r.reason != "Everything Fine" || r.proto != "HTTP/1.1" || string(r.body) != tc.body {
					t.Fatalf("A: status line %d %q %q, body %q", r.status, r.reason, r.proto, r.body)
				}
				if r.header("X-Marker") != "alpha" || r.header("Content-Type") != "text/plain" || r.head != tc.head {
					t.Fatalf("A: X-Marker %q, Content-Type %q, Head %q", r.header("X-Marker"), r.header("Content-Type"), r.head)
				}
			})
		}
	})
}

// TestHTTPClientNothingAfterErrorButClose: when the client fails (a body
// over RecvLimit, a malformed chunk size), its handler sees EvError and
// then EvClose, and no other event in between — not even the EvRead of the
// bytes that caused the error.
func TestHTTPClientNothingAfterErrorButClose(t *testing.T) {
	cases := []struct{ name, wire string }{
		{"over_limit", "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n"},
		{"bad_chunk_size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
	}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
					if req, _ := hcReadRequest(t, br); req != nil {
						hcWrite(t, nc, []byte(tc.wire))
						hcReadRequest(t, br)
					}
				})
				e := newEnv(t, drv, useTLS)
				e.m.RecvLimit = 1 << 20
				hc := hcConnect(e, srv.url, &hcClient{})
				hc.waitReady()
				hc.send("GET", "/", "", nil)
				hc.waitClosed(10 * time.Second)
				if len(hc.errs) != 1 || len(hc.resps) != 0 {
					t.Fatalf("errors %v, %d responses", hc.errs, len(hc.resps))
				}
				if ev := hc.lastEvents(2); len(ev) != 2 || ev[0] != meerkat.EvError || ev[1] != meerkat.EvClose {
					t.Fatalf("events %v, want ... EvError EvClose", summarize(e.chk.events(hc.c)))
				}
			})
		}
	})
}

// TestHTTPClientNoErrorAfterFinalResponse: a server that closes its
// connection right after a "Connection: close" response — before reading
// the client's close_notify, as net/http does once it has read the whole
// request — ends the exchange with EvHTTPMsg and EvClose, not with an
// EvError for the reset the late close_notify provokes: the response was
// complete and nothing the client sent was lost. The raw TLS server closes
// once the client has its response (and has had a few Polls to say
// goodbye), 20 times.
func TestHTTPClientNoErrorAfterFinalResponse(t *testing.T) {
	const rounds = 20
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		acks := make(chan struct{})
		srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
			if req, _ := hcReadRequest(t, br); req == nil {
				return
			}
			if hcWrite(t, nc, []byte("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\ndone")) {
				hcRecvAck(t, acks)
			}
		})
		e := newEnv(t, drv, useTLS)
		for i := range rounds {
			hc := hcConnect(e, srv.url, &hcClient{})
			hc.waitReady()
			hc.send("POST", "/", "Connection: close\r\n", []byte("x"))
			hc.waitResponses(1, 10*time.Second)
			for range 3 { // the client's goodbye reaches the server's socket
				e.m.Poll(10 * time.Millisecond)
			}
			acks <- struct{}{}
			hc.waitClosed(10 * time.Second)
			if r := hc.resps[0]; r.status != 200 || string(r.body) != "done" || len(hc.resps) != 1 {
				t.Fatalf("round %d: status %d body %q", i, r.status, r.body)
			}
			if len(hc.errs) != 0 {
				t.Fatalf("round %d: errors %v after the complete response; events %v", i, hc.errs, summarize(e.chk.events(hc.c)))
			}
		}
	})
}

// TestHTTPClientCloseWithoutResponse: a server that reads the request and
// closes without a byte of response leaves the client with an EvError (the
// response is missing, as much as a truncated one), not a silent EvClose;
// an idle keep-alive connection the server closes after a complete
// response ends with EvClose and no error.
func TestHTTPClientCloseWithoutResponse(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		t.Run("request_outstanding", func(t *testing.T) {
			srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
				hcReadRequest(t, br)
			})
			e := newEnv(t, drv, useTLS)
			hc := hcConnect(e, srv.url, &hcClient{})
			hc.waitReady()
			hc.send("GET", "/", "", nil)
			hc.waitClosed(10 * time.Second)
			if len(hc.resps) != 0 || len(hc.errs) != 1 {
				t.Fatalf("%d responses, errors %v, want one error; events %v", len(hc.resps), hc.errs, summarize(e.chk.events(hc.c)))
			}
			t.Logf("error: %v", hc.errs[0])
		})
		t.Run("idle", func(t *testing.T) {
			srv := hcRawListen(t, useTLS, func(nc net.Conn, br *bufio.Reader) {
				if req, _ := hcReadRequest(t, br); req != nil {
					hcWrite(t, nc, []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
				}
				hcReadRequest(t, br) // the client's close_notify or FIN... or the close below
			})
			e := newEnv(t, drv, useTLS)
			hc := hcConnect(e, srv.url, &hcClient{})
			hc.waitReady()
			hc.send("GET", "/", "", nil)
			hc.waitResponses(1, 10*time.Second)
			srv.stop()
			hc.waitClosed(10 * time.Second)
			hc.noErrors()
			if len(hc.resps) != 1 || string(hc.resps[0].body) != "ok" {
				t.Fatalf("responses %d", len(hc.resps))
			}
		})
	})
}
