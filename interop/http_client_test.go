package interop

// Meerkat's HTTP client against net/http servers, plain and TLS: every
// response compared with what net/http's own client gets for the same
// request (status, body, the headers the handler set), over keep-alive
// connections used concurrently, pipelined and one request after another,
// with chunked, HEAD, 204, 304, 100 Continue and large bodies (whole, and
// streamed with bounded memory).

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// hciHandler serves the routes the interop tests request.
func hciHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Custom", "hello-header")
		io.WriteString(w, "hello, world\n")
	})
	// /chunked?n=N&piece=P: N bytes (a 64 KiB + 1 pattern repeated), flushed
	// every P bytes (chunked).
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		piece, _ := strconv.Atoi(r.URL.Query().Get("piece"))
		block, buf := hciPattern(n, 64<<10+1), make([]byte, piece)
		w.Header().Set("Content-Type", "application/octet-stream")
		for off := 0; off < n; off += piece {
			p := buf[:min(piece, n-off)]
			hciFill(p, block, off)
			if _, err := w.Write(p); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	// /big?n=N: N bytes with Content-Length, written in 64 KiB pieces.
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"big-`+strconv.Itoa(n)+`"`)
		block := hciPattern(n, 64<<10)
		for off := 0; off < n && r.Method != "HEAD"; off += len(block) {
			if _, err := w.Write(block[:min(len(block), n-off)]); err != nil {
				return
			}
		}
	})
	// /echo: the request body back, with its length and CRC in headers.
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Length", strconv.Itoa(len(b)))
		w.Header().Set("X-CRC", strconv.FormatUint(uint64(crc32.ChecksumIEEE(b)), 16))
		w.Write(b)
	})
	// /status?code=C: an empty response with that status.
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(code)
	})
	mux.HandleFunc("/cookies", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "a", Value: "1", Path: "/"})
		http.SetCookie(w, &http.Cookie{Name: "b", Value: "2", HttpOnly: true})
		http.SetCookie(w, &http.Cookie{Name: "c", Value: "3", Secure: true})
		io.WriteString(w, "three cookies")
	})
	mux.HandleFunc("/missing", http.NotFound)
	return mux
}

// hciPattern returns n bytes that depend on seed and on their position.
func hciPattern(seed, n int) []byte {
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

// hciFill fills dst with block repeated, starting at offset off of the
// repetition (a long pattern cheap to make under the race detector).
func hciFill(dst, block []byte, off int) {
	for len(dst) > 0 {
		k := copy(dst, block[off%len(block):])
		dst, off = dst[k:], off+k
	}
}

// hciRequest is one request of the script.
type hciRequest struct {
	method, target, headers string
	body                    []byte
	stream                  bool // HTTPStreamBody: compare the CRC, not the body
}

// hciResult is what a client got for one request.
type hciResult struct {
	status  int
	body    []byte
	length  int64 // streamed: bytes received
	crc     uint32
	headers http.Header // the headers hciCompared lists
}

// hciCompared are the headers compared with net/http's client: the ones
// the handlers set (not Date, nor framing, which net/http's client
// rewrites), in canonical form.
var hciCompared = []string{"Content-Type", "X-Custom", "Etag", "X-Length", "X-Crc", "Set-Cookie"}

// hciScript is the request sequence every client runs; each request is
// also made by net/http's client for reference.
func hciScript() []hciRequest {
	return []hciRequest{
		{method: "GET", target: "/hello"},
		{method: "GET", target: "/chunked?n=100000&piece=777"},
		{method: "HEAD", target: "/big?n=1000"},
		{method: "GET", target: "/status?code=204"},
		{method: "GET", target: "/big?n=" + strconv.Itoa(3<<20)},
		{method: "GET", target: "/status?code=304"},
		{method: "POST", target: "/echo", headers: "Content-Type: application/octet-stream\r\n", body: hciPattern(5, 300000)},
		{method: "POST", target: "/echo", headers: "Expect: 100-continue\r\n", body: []byte("with 100 Continue")},
		{method: "GET", target: "/cookies"},
		{method: "GET", target: "/missing"},
		{method: "GET", target: "/chunked?n=" + strconv.Itoa(32<<20) + "&piece=100000", stream: true},
		{method: "PUT", target: "/echo", body: []byte{}},
		{method: "GET", target: "/hello"},
	}
}

// hciReference makes every request of the script with net/http's client
// (compression off, like Meerkat's client) and returns the results.
func hciReference(t *testing.T, url string, script []hciRequest) []hciResult {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: testcert.ClientConfig(), DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var out []hciResult
	for _, rq := range script {
		req, err := http.NewRequest(rq.method, url+rq.target, bytes.NewReader(rq.body))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(rq.headers, "Expect: 100-continue") {
			req.Header.Set("Expect", "100-continue")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("net/http client %s %s: %v", rq.method, rq.target, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("net/http client %s %s: body: %v", rq.method, rq.target, err)
		}
		r := hciResult{status: resp.StatusCode, headers: http.Header{}}
		for _, name := range hciCompared {
			if v := resp.Header.Values(name); v != nil {
				r.headers[name] = v
			}
		}
		if rq.stream {
			r.length, r.crc = int64(len(body)), crc32.ChecksumIEEE(body)
		} else {
			r.body = body
		}
		out = append(out, r)
	}
	return out
}

// hciClient runs the script on one Meerkat connection: the first half
// pipelined (sent back to back), the rest one after another.
type hciClient struct {
	script  []hciRequest
	sent    int
	results []hciResult
	cur     hciResult // the streamed response in progress
	errs    []error
	closed  bool // EvClose (the Manager's Close included)
	early   bool // closed before the script was done
}

func (k *hciClient) sendNext(c *meerkat.Conn) {
	rq := k.script[k.sent]
	if !meerkat.HTTPSendRequest(c, rq.method, rq.target, rq.headers, rq.body) {
		k.errs = append(k.errs, fmt.Errorf("request %d refused", k.sent))
	}
	k.sent++
}

func (k *hciClient) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvConnect:
		for k.sent < len(k.script)/2 {
			k.sendNext(c)
		}
	case meerkat.EvHTTPHeaders:
		if k.script[len(k.results)].stream {
			meerkat.HTTPStreamBody(c)
		}
		k.cur = hciResult{}
	case meerkat.EvHTTPChunk:
		hm := data.(*meerkat.HTTPMessage)
		k.cur.length += int64(len(hm.Body))
		k.cur.crc = crc32.Update(k.cur.crc, crc32.IEEETable, hm.Body)
	case meerkat.EvHTTPMsg:
		hm := data.(*meerkat.HTTPMessage)
		r := k.cur
		r.status = hm.Status
		if !k.script[len(k.results)].stream {
			r.body = bytes.Clone(hm.Body)
		}
		r.headers = http.Header{}
		for _, h := range hm.Headers {
			name := http.CanonicalHeaderKey(string(h.Name))
			if slices.Contains(hciCompared, name) {
				r.headers[name] = append(r.headers[name], string(h.Value))
			}
		}
		k.results = append(k.results, r)
		if len(k.results) >= len(k.script)/2 && k.sent < len(k.script) {
			k.sendNext(c)
		}
	case meerkat.EvError:
		k.errs = append(k.errs, data.(error))
	case meerkat.EvClose:
		k.closed = true
	}
}

// hciStart starts the net/http server, counting its connections.
func hciStart(t *testing.T, useTLS bool) (url string, conns *atomic.Int32) {
	t.Helper()
	conns = new(atomic.Int32)
	srv := httptest.NewUnstartedServer(hciHandler())
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	if useTLS {
		srv.TLS = testcert.ServerConfig()
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv.URL, conns
}

// hciRun runs nclients Meerkat clients, concurrently on one Manager, each
// through the whole script, and returns them once all are done.
func hciRun(t *testing.T, drv, url string, nclients int, script []hciRequest) []*hciClient {
	t.Helper()
	m, err := meerkat.NewManagerDriver(drv)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.TLSConfig = testcert.ClientConfig()
	m.RecvLimit = 4 << 20 // the 3 MiB body arrives whole; the 32 MiB one must stream
	clients := make([]*hciClient, nclients)
	for i := range clients {
		clients[i] = &hciClient{script: script}
		if _, err := m.HTTPConnect(url, clients[i].handle); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		done := true
		for _, k := range clients {
			if len(k.results) < len(script) && !k.closed {
				done = false
			}
		}
		if done {
			for _, k := range clients {
				k.early = k.closed
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("clients not done after 60 s")
		}
		m.Poll(10 * time.Millisecond)
	}
	return clients
}

// TestHTTPClientInteropNetHTTP: four Meerkat clients on one Manager, each
// on one keep-alive connection to a net/http server (plain and TLS, both
// drivers), run a script of 13 requests — half pipelined, half one after
// another: small and 3 MiB Content-Length bodies, chunked bodies (one of
// 32 MiB streamed with HTTPStreamBody), HEAD, 204, 304, 404, POST and PUT
// echoes (one with Expect: 100-continue, to which net/http sends a real
// 100 Continue). Each gets, for every request, the status and body that
// net/http's own client gets; the server sees exactly one connection per
// client.
func TestHTTPClientInteropNetHTTP(t *testing.T) {
	const nclients = 4
	script := hciScript()
	for _, drv := range drivers {
		for _, useTLS := range []bool{false, true} {
			name := drv + "/plain"
			if useTLS {
				name = drv + "/tls"
			}
			t.Run(name, func(t *testing.T) {
				url, conns := hciStart(t, useTLS)
				want := hciReference(t, url, script)
				before := conns.Load()
				start := time.Now()
				clients := hciRun(t, drv, url, nclients, script)
				t.Logf("%d clients x %d requests in %v", nclients, len(script), time.Since(start).Round(time.Millisecond))
				for ci, k := range clients {
					if len(k.errs) != 0 || k.early {
						t.Fatalf("client %d: errors %v, closed %v after %d responses", ci, k.errs, k.early, len(k.results))
					}
					for i, w := range want {
						g := k.results[i]
						rq := script[i]
						if g.status != w.status || !bytes.Equal(g.body, w.body) || g.length != w.length || g.crc != w.crc {
							t.Fatalf("client %d, %s %s: status %d, %d bytes (streamed %d, crc %08x); net/http's client: status %d, %d bytes (streamed %d, crc %08x)",
								ci, rq.method, rq.target, g.status, len(g.body), g.length, g.crc, w.status, len(w.body), w.length, w.crc)
						}
					}
				}
				if n := conns.Load() - before; n != nclients {
					t.Fatalf("the server saw %d connections from %d clients", n, nclients)
				}
			})
		}
	}
}

// TestHTTPClientInteropHeaders: for every response of the script, the
// header fields the handler set (Content-Type, ETag, Set-Cookie three
// times, ...) are what net/http's client sees, values and order, including
// on responses whose body took more than one read.
func TestHTTPClientInteropHeaders(t *testing.T) {
	script := hciScript()
	for _, drv := range drivers {
		for _, useTLS := range []bool{false, true} {
			name := drv + "/plain"
			if useTLS {
				name = drv + "/tls"
			}
			t.Run(name, func(t *testing.T) {
				url, _ := hciStart(t, useTLS)
				want := hciReference(t, url, script)
				clients := hciRun(t, drv, url, 2, script)
				for ci, k := range clients {
					if len(k.errs) != 0 || len(k.results) != len(script) {
						t.Fatalf("client %d: errors %v, %d responses", ci, k.errs, len(k.results))
					}
					for i, w := range want {
						for _, h := range hciCompared {
							if g := k.results[i].headers[h]; !slices.Equal(g, w.headers[h]) {
								t.Errorf("client %d, %s %s: %s %q; net/http's client: %q", ci, script[i].method, script[i].target, h, g, w.headers[h])
							}
						}
					}
				}
			})
		}
	}
}
