package interop

// Real clients against Meerkat's HTTP server, on both drivers, plain and
// TLS: Go's net/http client (keep-alive, sequential and concurrent
// requests, chunked request bodies, HEAD, chunked and pumped responses) and
// curl (GET, -I, --http1.0, POST -d, -T upload, --cacert, several URLs on
// one connection).

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// hsServer is a Meerkat HTTP server for the interop clients. Its fields
// are touched by handlers on the Poll goroutine, which is the test's.
type hsServer struct {
	m       *meerkat.Manager
	url     string   // http://127.0.0.1:PORT or https://localhost:PORT
	port    string   // the listener's port
	accepts int      // connections accepted
	closes  int      // accepted connections closed
	reqs    []string // "PROTO METHOD target TE" per request head
	errs    []error  // EvError on any connection
}

// hsBigSize is the size of /big, a pumped response.
const hsBigSize = 4 << 20

// hsBig is /big's body.
var hsBig = func() []byte {
	b := make([]byte, hsBigSize)
	rand.NewChaCha8([32]byte{42}).Read(b)
	return b
}()

// hsSummary is the server's answer to most requests: method, target, body
// length and CRC-32.
func hsSummary(method, target string, n int, crc uint32) string {
	return fmt.Sprintf("%s %s %d:%08x", method, target, n, crc)
}

// hsStartServer starts a Meerkat HTTP server on drv, over TLS if asked.
// Routes: /echo returns the request body; /upload streams the body
// (HTTPStreamBody) and returns its summary; /chunked answers in chunks;
// /big sends hsBig through HTTPPump; anything else returns the request's
// summary.
func hsStartServer(t *testing.T, drv string, useTLS bool) *hsServer {
	t.Helper()
	m, err := meerkat.NewManagerDriver(drv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.TLSConfig = testcert.ServerConfig()
	s := &hsServer{m: m}
	type upload struct {
		n   int
		crc uint32
	}
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	l, err := m.HTTPListen(scheme+"://127.0.0.1:0", func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvAccept:
			s.accepts++
		case meerkat.EvClose:
			if c.IsAccepted() {
				s.closes++
			}
		case meerkat.EvError:
			s.errs = append(s.errs, data.(error))
		case meerkat.EvHTTPHeaders:
			hm := data.(*meerkat.HTTPMessage)
			s.reqs = append(s.reqs, fmt.Sprintf("%s %s %s %s", hm.Proto, hm.Method, hm.URI, hm.Header("Transfer-Encoding")))
			if string(hm.URI) == "/upload" {
				meerkat.HTTPStreamBody(c)
				c.UserData = &upload{}
			}
		case meerkat.EvHTTPChunk:
			u := c.UserData.(*upload)
			p := data.(*meerkat.HTTPMessage).Body
			u.n += len(p)
			u.crc = crc32.Update(u.crc, crc32.IEEETable, p)
		case meerkat.EvHTTPMsg:
			hm := data.(*meerkat.HTTPMessage)
			switch string(hm.URI) {
			case "/echo":
				meerkat.HTTPReply(c, 200, "Content-Type: application/octet-stream\r\n", "%s", hm.Body)
			case "/upload":
				u := c.UserData.(*upload)
				meerkat.HTTPReply(c, 200, "", "%s", hsSummary(string(hm.Method), "/upload", u.n, u.crc))
			case "/chunked":
				c.Printf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
				for i := range 5 {
					meerkat.HTTPPrintfChunk(c, "chunk %d of %s\n", i, hm.Method)
				}
				meerkat.HTTPWriteChunk(c, nil)
			case "/big":
				c.Printf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", hsBigSize)
				off := 0
				meerkat.HTTPPump(c, func(c *meerkat.Conn) bool {
					n := min(16<<10, hsBigSize-off)
					c.Send(hsBig[off : off+n])
					off += n
					return off == hsBigSize
				})
			default:
				target := string(hm.URI)
				if len(hm.Query) > 0 {
					target += "?" + string(hm.Query)
				}
				meerkat.HTTPReply(c, 200, "Content-Type: text/plain\r\n", "%s", hsSummary(string(hm.Method), target, len(hm.Body), crc32.ChecksumIEEE(hm.Body)))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s.port = strconv.Itoa(int(l.LocalAddr().Port()))
	s.url = scheme + "://127.0.0.1:" + s.port
	if useTLS {
		s.url = "https://localhost:" + s.port // the certificate's name, checked by the clients
	}
	return s
}

// run polls the server's Manager until fn, run in a goroutine, returns.
func (s *hsServer) run(t *testing.T, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after 60 s", what)
		}
		s.m.Poll(time.Millisecond)
	}
}

// pollUntil polls the server's Manager until cond holds.
func (s *hsServer) pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		s.m.Poll(10 * time.Millisecond)
	}
}

// hsForEach runs fn per driver, plain and TLS.
func hsForEach(t *testing.T, fn func(t *testing.T, drv string, useTLS bool)) {
	for _, drv := range drivers {
		for _, useTLS := range []bool{false, true} {
			name := drv + "/plain"
			if useTLS {
				name = drv + "/tls"
			}
			t.Run(name, func(t *testing.T) { fn(t, drv, useTLS) })
		}
	}
}

// hsDo does one request with client and returns the response and its
// whole body.
func hsDo(client *http.Client, method, url string, body io.Reader) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, b, fmt.Errorf("%s %s: body: %w", method, url, err)
	}
	if resp.StatusCode != 200 {
		return resp, b, fmt.Errorf("%s %s: status %d", method, url, resp.StatusCode)
	}
	return resp, b, nil
}

// TestHTTPServerInteropNetHTTPClient: Go's net/http client against a
// Meerkat server, plain and HTTPS (verifying the test CA), both drivers:
// 200 sequential requests (GET with queries, POST with bodies) all travel
// one keep-alive connection; 8 goroutines × 40 concurrent requests all get
// their own answers over kept-alive connections; request bodies of
// unknown length go chunked through an io.Pipe (3 MiB streamed by the
// server with HTTPStreamBody, 512 KiB whole); a HEAD gets the GET's
// Content-Length and no body; a chunked reply and a 4 MiB pumped reply
// arrive whole.
func TestHTTPServerInteropNetHTTPClient(t *testing.T) {
	hsForEach(t, func(t *testing.T, drv string, useTLS bool) {
		s := hsStartServer(t, drv, useTLS)
		tr := &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: testcert.Default.CA.Pool},
			MaxIdleConnsPerHost: 8,
		}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

		s.run(t, "sequential requests", func() error {
			for i := range 200 {
				target := fmt.Sprintf("/seq/%d?i=%d", i, i)
				method, body := "GET", ""
				if i%3 == 1 {
					method, body = "POST", strings.Repeat("p", i*37)
				}
				_, got, err := hsDo(client, method, s.url+target, strings.NewReader(body))
				if err != nil {
					return err
				}
				if want := hsSummary(method, target, len(body), crc32.ChecksumIEEE([]byte(body))); string(got) != want {
					return fmt.Errorf("%s %s: %q, want %q", method, target, got, want)
				}
			}
			return nil
		})
		if s.accepts != 1 {
			t.Fatalf("200 sequential requests used %d connections, want 1 (keep-alive)", s.accepts)
		}

		s.run(t, "concurrent requests", func() error {
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 40 {
						target := fmt.Sprintf("/conc/%d/%d", g, i)
						body := strings.Repeat(strconv.Itoa(g), i*11)
						_, got, err := hsDo(client, "PUT", s.url+target, strings.NewReader(body))
						if err == nil {
							if want := hsSummary("PUT", target, len(body), crc32.ChecksumIEEE([]byte(body))); string(got) != want {
								err = fmt.Errorf("PUT %s: %q, want %q", target, got, want)
							}
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			return <-errs
		})
		// net/http may dial a spare connection for a request that waits
		// while others handshake, but keep-alive must carry most of them.
		// net/http dials a connection for a request that waits while others
		// handshake, and closes the spare ones beyond its idle limit, but
		// keep-alive must carry most requests.
		if s.accepts > 40 {
			t.Fatalf("%d connections for 320 requests from 8 concurrent clients", s.accepts)
		}
		t.Logf("320 concurrent requests used %d connections", s.accepts-1)

		for _, tc := range []struct {
			path string
			size int
		}{{"/upload", 3 << 20}, {"/whole", 512 << 10}} {
			payload := make([]byte, tc.size)
			rand.NewChaCha8([32]byte{7}).Read(payload)
			s.run(t, "chunked upload to "+tc.path, func() error {
				pr, pw := io.Pipe()
				go func() {
					for off := 0; off < len(payload); off += 10000 {
						if _, err := pw.Write(payload[off:min(off+10000, len(payload))]); err != nil {
							return
						}
					}
					pw.Close()
				}()
				req, err := http.NewRequest("POST", s.url+tc.path, pr)
				if err != nil {
					return err
				}
				req.ContentLength = -1
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				got, err := io.ReadAll(resp.Body)
				if err != nil {
					return err
				}
				if want := hsSummary("POST", tc.path, len(payload), crc32.ChecksumIEEE(payload)); resp.StatusCode != 200 || string(got) != want {
					return fmt.Errorf("%d %q, want 200 %q", resp.StatusCode, got, want)
				}
				return nil
			})
			if last := s.reqs[len(s.reqs)-1]; last != "HTTP/1.1 POST "+tc.path+" chunked" {
				t.Fatalf("the server saw %q, want a chunked POST", last)
			}
		}

		s.run(t, "HEAD, chunked and pumped replies", func() error {
			resp, head, err := hsDo(client, "HEAD", s.url+"/same", nil)
			if err != nil {
				return err
			}
			if want := int64(len(hsSummary("HEAD", "/same", 0, 0))); len(head) != 0 || resp.ContentLength != want {
				return fmt.Errorf("HEAD: %d body bytes, Content-Length %d; want 0 and %d", len(head), resp.ContentLength, want)
			}
			resp, body, err := hsDo(client, "GET", s.url+"/chunked", nil)
			if err != nil {
				return err
			}
			want := ""
			for i := range 5 {
				want += fmt.Sprintf("chunk %d of GET\n", i)
			}
			if string(body) != want || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				return fmt.Errorf("chunked reply: %q (transfer encoding %q)", body, resp.TransferEncoding)
			}
			resp, body, err = hsDo(client, "GET", s.url+"/big", nil)
			if err != nil {
				return err
			}
			if resp.ContentLength != hsBigSize || !bytes.Equal(body, hsBig) {
				return fmt.Errorf("pumped reply: %d bytes (intact %v), Content-Length %d", len(body), bytes.Equal(body, hsBig), resp.ContentLength)
			}
			return nil
		})
		tr.CloseIdleConnections()
		s.pollUntil(t, "every connection closed", func() bool { return s.closes == s.accepts })
		if len(s.errs) != 0 {
			t.Fatalf("server connection errors: %v", s.errs)
		}
	})
}

// TestHTTPServerInteropCurl: curl against a Meerkat server, plain and HTTPS
// (--cacert with the test CA's PEM), both drivers: a GET; -I (HEAD: the
// head, with the Content-Length of the body not sent); --http1.0 (answered, then the
// connection closes); POST -d (the body arrives as sent); -T of a 4 MiB
// file (a PUT, with Expect: 100-continue, streamed by the server with
// HTTPStreamBody); three URLs in one invocation over one keep-alive
// connection.
func TestHTTPServerInteropCurl(t *testing.T) {
	need(t, "curl")
	caFile, _, _ := writePEM(t)
	upload := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{5}).Read(upload)
	uploadFile := filepath.Join(t.TempDir(), "upload.bin")
	if err := os.WriteFile(uploadFile, upload, 0o600); err != nil {
		t.Fatal(err)
	}
	hsForEach(t, func(t *testing.T, drv string, useTLS bool) {
		s := hsStartServer(t, drv, useTLS)
		curl := func(args ...string) string {
			t.Helper()
			base := []string{"-sS", "--fail", "--max-time", "30", "--cacert", caFile}
			if useTLS {
				base = append(base, "--resolve", "localhost:"+s.port+":127.0.0.1")
			}
			return runPeer(t, s.m, exec.Command("curl", append(base, args...)...))
		}
		// expectConns checks that the invocation used n connections, all
		// closed now, and that no server connection had an error.
		expectConns := func(what string, n int) {
			t.Helper()
			s.pollUntil(t, what+": its connections closed", func() bool { return s.closes == s.accepts })
			if s.accepts != n {
				t.Fatalf("%s: %d connections, want %d", what, s.accepts, n)
			}
			if len(s.errs) != 0 {
				t.Fatalf("%s: server connection errors: %v", what, s.errs)
			}
			s.accepts, s.closes, s.errs = 0, 0, nil
		}

		if out, want := curl(s.url+"/hello?x=1"), hsSummary("GET", "/hello?x=1", 0, 0); out != want {
			t.Fatalf("GET: %q, want %q", out, want)
		}
		expectConns("GET", 1)

		out := curl("-I", s.url+"/hello")
		if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.Contains(out, fmt.Sprintf("Content-Length: %d\r\n", len(hsSummary("HEAD", "/hello", 0, 0)))) {
			t.Fatalf("-I: %q", out)
		}
		expectConns("-I", 1)

		if out, want := curl("--http1.0", s.url+"/old"), hsSummary("GET", "/old", 0, 0); out != want {
			t.Fatalf("--http1.0: %q, want %q", out, want)
		}
		if last := s.reqs[len(s.reqs)-1]; last != "HTTP/1.0 GET /old " {
			t.Fatalf("--http1.0: the server saw %q", last)
		}
		expectConns("--http1.0", 1)

		if out := curl("-d", "a=1&b=two", s.url+"/echo"); out != "a=1&b=two" {
			t.Fatalf("POST -d: %q", out)
		}
		expectConns("POST -d", 1)

		if out, want := curl("-T", uploadFile, s.url+"/upload"), hsSummary("PUT", "/upload", len(upload), crc32.ChecksumIEEE(upload)); out != want {
			t.Fatalf("-T: %q, want %q", out, want)
		}
		expectConns("-T", 1)

		out = curl(s.url+"/one", s.url+"/two", s.url+"/three")
		if want := hsSummary("GET", "/one", 0, 0) + hsSummary("GET", "/two", 0, 0) + hsSummary("GET", "/three", 0, 0); out != want {
			t.Fatalf("three URLs: %q, want %q", out, want)
		}
		expectConns("three URLs", 1)
	})
}
