package meerkat_test

// File serving (issue 3, HTTPServeDir / HTTPServeFile): index pages and
// listings, MIME types, validators and conditional requests, byte ranges,
// precompressed siblings, custom 404 pages, extra headers, io/fs file
// systems, large files with bounded memory, and path traversal in every
// spelling. The server runs on every driver, plain and TLS where the
// transport matters; net/http's client (and raw requests where a client
// would clean the path) is the peer, and net/http's own file server the
// reference where the two overlap.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// ---------------------------------------------------------------------------
// Machinery

// fsTree is a served directory and what lies outside it.
type fsTree struct {
	root    string // the served directory
	secret  string // a marker found only in files outside the root
	outside string // a directory beside the root, with secret.txt
	files   map[string]fsFile
	noLinks string // why the tree has no symbolic links ("" when it has them)
}

// fsFile is a regular file of the tree (names relative to the root).
type fsFile struct {
	data  []byte
	mtime time.Time
}

// fsBase is the first modification time given to the tree's files.
var fsBase = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

// fsDirTimes are the modification times of docs' subdirectories: zsub
// older than every file, asub newer.
var fsDirTimes = map[string]time.Time{
	"docs/asub": fsBase.Add(100 * time.Hour),
	"docs/zsub": fsBase.Add(-time.Hour),
}

// fsEscName and fsOddName are names in docs that a listing must take care
// with: fsEscName needs HTML escaping and URL encoding; fsOddName, put
// as it is in a relative link, would read as a scheme ("c:") or end the
// path at a fragment ("#"). Windows forbids '<', '>' and ':' in names
// (and '"', '|', '?', '*' and backslash), so there they are names with
// the same needs that are legal there, and sort at the same places.
var fsEscName, fsOddName = func() (string, string) {
	if runtime.GOOS == "windows" {
		return "a&b #1 'q'.txt", "c#d.txt"
	}
	return "<a&b>.txt", "c:d.txt"
}()

// fsAppJS is app.js's content; app.js.gz holds it compressed.
var fsAppJS = []byte(strings.Repeat("console.log('meerkat');\n", 60))

// fsMakeTree builds the test tree under a fresh temporary directory:
//
//	root/hello.txt, data.bin (1000 bytes), empty.txt, mid.bin (300 KiB),
//	root/app.js + app.js.gz, only.css.gz (no only.css), PIC.PNG, notes.md,
//	root/noext, file.weird, 404.html, site/index.html,
//	root/docs/{a.txt, bb.txt, fsEscName, space name.txt, fsOddName,
//	          %41.txt, a+b.txt, asub/, zsub/deep.txt}
//	root/linkin -> docs, linkout -> ../outside, secretlink.txt ->
//	../outside/secret.txt, abslink.txt -> /abs/path/outside/secret.txt
//	outside/secret.txt, and secret.txt beside the root.
//
// Where the OS does not let the test create symbolic links, the tree has
// none and noLinks says why (see fsHasLinks).
func fsMakeTree(t testing.TB) *fsTree {
	t.Helper()
	top := fsTempDir(t)
	tr := &fsTree{root: filepath.Join(top, "root"), outside: filepath.Join(top, "outside"), files: map[string]fsFile{}}
	tr.secret = "TOP-SECRET-" + rand.Text()
	mid := make([]byte, 300<<10)
	for i := range mid {
		mid[i] = byte(i * 31 % 253)
	}
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7 % 251)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(fsAppJS)
	zw.Close()
	var cssgz bytes.Buffer
	zw = gzip.NewWriter(&cssgz)
	zw.Write([]byte("body{color:red}\n"))
	zw.Close()
	files := []struct {
		name string
		data []byte
	}{
		{"hello.txt", []byte("hello, world\n")},
		{"data.bin", data},
		{"empty.txt", nil},
		{"mid.bin", mid},
		{"app.js", fsAppJS},
		{"app.js.gz", gz.Bytes()},
		{"only.css.gz", cssgz.Bytes()},
		{"PIC.PNG", []byte("\x89PNG\r\n\x1a\n....")},
		{"notes.md", []byte("# notes\n")},
		{"noext", []byte("x")},
		{"file.weird", []byte("w")},
		{"404.html", []byte("<h1>custom not found</h1>\n")},
		{"site/index.html", []byte("<h1>site</h1>\n")},
		{"docs/a.txt", []byte("aaa")},
		{"docs/bb.txt", []byte("bbbbbbbbbb")},
		{"docs/" + fsEscName, []byte("escape me")},
		{"docs/space name.txt", []byte("spaces!")},
		{"docs/" + fsOddName, []byte("colon")},
		{"docs/%41.txt", []byte("percent")},
		{"docs/a+b.txt", []byte("plus sign")},
		{"docs/zsub/deep.txt", []byte("deep")},
	}
	for i, f := range files {
		p := filepath.Join(tr.root, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		mt := fsBase.Add(time.Duration(i) * time.Hour)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		tr.files[f.name] = fsFile{data: f.data, mtime: mt}
	}
	if err := os.MkdirAll(filepath.Join(tr.root, "docs", "asub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mt := range fsDirTimes {
		if err := os.Chtimes(filepath.Join(tr.root, filepath.FromSlash(name)), mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(tr.outside, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(tr.outside, "secret.txt"), filepath.Join(top, "secret.txt")} {
		if err := os.WriteFile(p, []byte(tr.secret+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := [][2]string{
		{"docs", "linkin"},
		{filepath.Join("..", "outside"), "linkout"},
		{filepath.Join("..", "outside", "secret.txt"), "secretlink.txt"},
		{filepath.Join(tr.outside, "secret.txt"), "abslink.txt"},
	}
	var made []string
	for _, l := range links {
		p := filepath.Join(tr.root, l[1])
		err := os.Symlink(l[0], p)
		if err != nil {
			tr.noLinks = fmt.Sprintf("symbolic links unavailable: %v", err)
			break
		}
		made = append(made, p)
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			tr.noLinks = fmt.Sprintf("os.Symlink reported success but made no link %s (%v)", l[1], err)
			if onWine() {
				tr.noLinks = wineNoSymlinks
			}
			break
		}
	}
	if tr.noLinks != "" {
		for _, p := range made {
			os.Remove(p)
		}
	}
	return tr
}

// fsHasLinks reports whether the tree has its symbolic links; when it has
// not, it logs that the cases named by what are skipped, and why.
func (tr *fsTree) fsHasLinks(t testing.TB, what string) bool {
	t.Helper()
	if tr.noLinks != "" {
		t.Logf("skipping %s: %s", what, tr.noLinks)
	}
	return tr.noLinks == ""
}

// fsTempDir is t.TempDir for files the library serves or writes, checked
// at cleanup for anything still open there: the process's descriptors on
// Linux; on Windows a file still open cannot be removed. Under Wine, where
// t.TempDir's own removal fails (wineNoPosixDelete), the tree is removed
// entry by entry with os.Remove first; an entry that will not go (a
// sharing violation, or a directory not empty because a file in it is
// still open and only marked for deletion) fails the test.
func fsTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	// Registered after t.TempDir's cleanup, so run before it.
	t.Cleanup(func() {
		if open := fsOpenUnder(dir, true); len(open) > 0 {
			t.Errorf("still open under %s at cleanup: %v", dir, open)
		}
		if !onWine() {
			return
		}
		var paths []string
		filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				paths = append(paths, p)
			}
			return nil
		})
		for i := len(paths) - 1; i >= 0; i-- { // entries before their directory
			if err := os.Remove(paths[i]); err != nil {
				t.Errorf("removing the test's files at cleanup (is a handle still open?): %v", err)
				return
			}
		}
	})
	return dir
}

// fsMapFS copies the tree's regular files into an fstest.MapFS (same
// contents, modes and times; no symbolic links).
func (tr *fsTree) fsMapFS() fstest.MapFS {
	m := fstest.MapFS{}
	for name, f := range tr.files {
		m[name] = &fstest.MapFile{Data: f.data, Mode: 0o644, ModTime: f.mtime}
	}
	for name, mt := range fsDirTimes {
		m[name] = &fstest.MapFile{Mode: fs.ModeDir | 0o755, ModTime: mt}
	}
	return m
}

// fsServer is a Meerkat HTTP server polled by a background goroutine, with
// a net/http client for it.
type fsServer struct {
	t      *testing.T
	e      *env
	addr   string
	base   string // "http://127.0.0.1:port" or https
	hc     *http.Client
	closes atomic.Int64 // accepted connections closed
}

// fsStart listens with serve as the EvHTTPMsg handler (plain or TLS per
// e). Once every server of e is set up, fsRun polls e's Manager in the
// background; handlers then run on that goroutine and must not call
// t.Fatal.
func fsStart(t *testing.T, e *env, serve func(c *meerkat.Conn, hm *meerkat.HTTPMessage)) *fsServer {
	t.Helper()
	s := &fsServer{t: t, e: e}
	scheme := "http"
	if e.useTLS {
		scheme = "https"
	}
	l, err := e.m.HTTPListen(scheme+"://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvHTTPMsg:
			serve(c, data.(*meerkat.HTTPMessage))
		case meerkat.EvClose:
			if c.IsAccepted() {
				s.closes.Add(1)
			}
		}
	}))
	if err != nil {
		t.Fatalf("HTTPListen: %v", err)
	}
	s.addr = l.LocalAddr().String()
	s.base = scheme + "://" + s.addr
	tr := &http.Transport{TLSClientConfig: testcert.ClientConfig(), DisableCompression: true}
	s.hc = &http.Client{
		Transport:     tr,
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(tr.CloseIdleConnections)
	return s
}

// fsServeDir is a server answering every request with HTTPServeDir.
// It polls in the background at once (fsRun): no other server may be added
// to e.
func fsServeDir(t *testing.T, e *env, opts *meerkat.HTTPServeOptions) *fsServer {
	s := fsStart(t, e, func(c *meerkat.Conn, hm *meerkat.HTTPMessage) { meerkat.HTTPServeDir(c, hm, opts) })
	fsRun(t, e)
	return s
}

// fsRun polls e's Manager on a goroutine until stop is called or the test's
// cleanup, which stops it before the Manager is closed (cleanups run
// last-in first-out). Nothing else may use the Manager meanwhile.
func fsRun(t *testing.T, e *env) (stop func()) {
	m := e.m
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			m.Poll(5 * time.Millisecond)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	return stop
}

// do sends a request through net/http; hdr holds name, value pairs.
func (s *fsServer) do(method, target string, hdr ...string) (*http.Response, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+target, nil)
	if err != nil {
		s.t.Fatalf("request %s: %v", target, err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the body: %v", method, target, err)
	}
	return resp, body
}

// get is do with GET.
func (s *fsServer) get(target string, hdr ...string) (*http.Response, []byte) {
	s.t.Helper()
	return s.do("GET", target, hdr...)
}

// raw sends request bytes as they are on a new connection and reads one
// response (to a HEAD when method is "HEAD"), then closes.
func (s *fsServer) raw(request string) (*http.Response, []byte) {
	s.t.Helper()
	nc := s.e.dialPeer(s.addr)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(nc, request); err != nil {
		s.t.Fatalf("writing %q: %v", request, err)
	}
	br := bufio.NewReader(nc)
	method, _, _ := strings.Cut(request, " ")
	resp, body, err := fsReadResponse(br, method)
	if err != nil {
		s.t.Fatalf("response to %.80q: %v", request, err)
	}
	return resp, body
}

// fsReadResponse reads one response and its whole body.
func fsReadResponse(br *bufio.Reader, method string) (*http.Response, []byte, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, err
}

// expect checks a response's status and, when want is not nil, its body.
func fsExpect(t *testing.T, what string, resp *http.Response, body []byte, status int, want []byte) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d (body %.200q)", what, resp.StatusCode, status, body)
	}
	if want != nil && !bytes.Equal(body, want) {
		i := 0
		for i < len(body) && i < len(want) && body[i] == want[i] {
			i++
		}
		t.Fatalf("%s: body of %d bytes differs from the %d expected at offset %d: %.60q, want %.60q",
			what, len(body), len(want), i, body[i:], want[i:])
	}
}

// fsHeader checks one header's value.
func fsHeader(t *testing.T, what string, resp *http.Response, name, want string) {
	t.Helper()
	if got := resp.Header.Get(name); got != want {
		t.Errorf("%s: %s = %q, want %q", what, name, got, want)
	}
}

// fsOpenUnder lists the process's descriptors open on files under dir, and
// on dir itself when withRoot is set: the Manager keeps a served root
// directory open until it closes (Linux; nil elsewhere).
func fsOpenUnder(dir string, withRoot bool) []string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var open []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && ((withRoot && target == dir) || strings.HasPrefix(target, dir+string(filepath.Separator))) {
			open = append(open, target)
		}
	}
	return open
}

// fsExpectNoOpenFiles fails if a descriptor is still open under dir.
func fsExpectNoOpenFiles(t *testing.T, dir string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	if open := fsOpenUnder(dir, false); len(open) > 0 {
		t.Fatalf("descriptors still open under the root after the responses: %v", open)
	}
}

// ---------------------------------------------------------------------------
// Files, MIME types, HEAD, methods, extra headers

// TestHTTPServeDirFile: a file comes back whole with its Content-Type (from
// the built-in table, case-insensitive, user additions overriding it, and
// application/octet-stream otherwise), Content-Length, Last-Modified, a
// quoted ETag, Accept-Ranges and the extra headers; HEAD gets the same
// headers and no body; other methods get 405 with Allow; every file the
// server opened is closed once the responses are out.
func TestHTTPServeDirFile(t *testing.T) {
	tr := fsMakeTree(t)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		opts := &meerkat.HTTPServeOptions{
			RootDir:      tr.root,
			ExtraHeaders: "X-Served-By: meerkat\r\nCache-Control: max-age=60\r\n",
			MIMETypes:    map[string]string{"md": "text/x-markdown-custom", "weird": "application/x-weird", "txt": "text/plain; charset=utf-8"},
		}
		s := fsServeDir(t, e, opts)

		resp, body := s.get("/hello.txt")
		fsExpect(t, "GET /hello.txt", resp, body, 200, tr.files["hello.txt"].data)
		fsHeader(t, "GET", resp, "Content-Type", "text/plain; charset=utf-8")
		fsHeader(t, "GET", resp, "Content-Length", "13")
		fsHeader(t, "GET", resp, "Last-Modified", tr.files["hello.txt"].mtime.Format(http.TimeFormat))
		fsHeader(t, "GET", resp, "Accept-Ranges", "bytes")
		fsHeader(t, "GET", resp, "X-Served-By", "meerkat")
		fsHeader(t, "GET", resp, "Cache-Control", "max-age=60")
		etag := resp.Header.Get("ETag")
		if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
			t.Errorf("ETag %q is not a strong quoted entity-tag", etag)
		}
		if _, b2 := s.get("/data.bin"); !bytes.Equal(b2, tr.files["data.bin"].data) {
			t.Errorf("data.bin came back different")
		}
		r2, _ := s.get("/data.bin")
		if r2.Header.Get("ETag") == etag {
			t.Errorf("two different files share the ETag %s", etag)
		}

		head, hbody := s.do("HEAD", "/hello.txt")
		fsExpect(t, "HEAD /hello.txt", head, hbody, 200, []byte{})
		for _, h := range []string{"Content-Type", "Content-Length", "Last-Modified", "ETag", "Accept-Ranges", "X-Served-By"} {
			fsHeader(t, "HEAD", head, h, resp.Header.Get(h))
		}

		for _, c := range []struct{ name, ctype string }{
			{"/app.js", "text/javascript; charset=utf-8"},
			{"/PIC.PNG", "image/png"},
			{"/notes.md", "text/x-markdown-custom"},
			{"/file.weird", "application/x-weird"},
			{"/noext", "application/octet-stream"},
			{"/site/index.html", "text/html; charset=utf-8"},
			{"/app.js.gz", "application/gzip"},
		} {
			resp, body := s.get(c.name)
			fsExpect(t, c.name, resp, body, 200, nil)
			fsHeader(t, c.name, resp, "Content-Type", c.ctype)
			if resp.Header.Get("Content-Encoding") != "" {
				t.Errorf("%s: Content-Encoding %q without Accept-Encoding", c.name, resp.Header.Get("Content-Encoding"))
			}
		}

		resp, body = s.get("/empty.txt")
		fsExpect(t, "GET /empty.txt", resp, body, 200, []byte{})
		fsHeader(t, "GET /empty.txt", resp, "Content-Length", "0")

		for _, method := range []string{"POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
			resp, body := s.do(method, "/hello.txt")
			fsExpect(t, method, resp, body, 405, nil)
			fsHeader(t, method, resp, "Allow", "GET, HEAD")
			fsHeader(t, method, resp, "X-Served-By", "meerkat")
		}
		resp, body = s.get("/missing.txt")
		fsExpect(t, "GET /missing.txt", resp, body, 404, nil)
		fsHeader(t, "404", resp, "X-Served-By", "meerkat")

		s.hc.Transport.(*http.Transport).CloseIdleConnections()
		fsExpectNoOpenFiles(t, tr.root)
	})
}

// TestHTTPServeDirIndexAndRedirect: a directory serves its index.html; a
// directory named without its slash is redirected (301) to the same path
// with it, the query kept, the location always a local path even when the
// request began with "//"; a file named with a trailing slash is not found.
func TestHTTPServeDirIndexAndRedirect(t *testing.T) {
	tr := fsMakeTree(t)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := fsServeDir(t, e, &meerkat.HTTPServeOptions{RootDir: tr.root, ExtraHeaders: "X-Extra: 1\r\n"})

		resp, body := s.get("/site/")
		fsExpect(t, "GET /site/", resp, body, 200, tr.files["site/index.html"].data)
		fsHeader(t, "GET /site/", resp, "Content-Type", "text/html; charset=utf-8")

		redirects := []struct{ target, location string }{
			{"/site", "/site/"},
			{"/site?x=1&y=%20", "/site/?x=1&y=%20"},
			{"/docs/zsub", "/docs/zsub/"},
		}
		if tr.fsHasLinks(t, "the redirect through a link") {
			redirects = append(redirects, struct{ target, location string }{"/linkin", "/linkin/"})
		}
		for _, c := range redirects {
			resp, body := s.get(c.target)
			fsExpect(t, "GET "+c.target, resp, body, 301, nil)
			fsHeader(t, "GET "+c.target, resp, "Location", c.location)
			fsHeader(t, "GET "+c.target, resp, "X-Extra", "1")
		}
		// net/http would clean "//site"; a raw request keeps it. The
		// redirect must not become "//site/", which a browser reads as
		// another host.
		resp, _ = s.raw("GET //site HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 301 || resp.Header.Get("Location") != "/site/" {
			t.Errorf("GET //site: %d Location %q, want 301 /site/", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, body = s.get("/hello.txt/")
		fsExpect(t, "GET /hello.txt/", resp, body, 404, nil)
		resp, body = s.get("/site/index.html")
		fsExpect(t, "GET /site/index.html", resp, body, 200, tr.files["site/index.html"].data)
	})
}

// fsHrefRe matches one entry of a listing: its link and its label.
var fsHrefRe = regexp.MustCompile(`<td><a href="([^"]*)">([^<]*)</a></td>`)

// fsHrefs extracts the entries' links and labels of a listing, in order,
// HTML-unescaped.
func fsHrefs(body []byte) (hrefs, labels []string) {
	for _, m := range fsHrefRe.FindAllSubmatch(body, -1) {
		hrefs = append(hrefs, html.UnescapeString(string(m[1])))
		labels = append(labels, html.UnescapeString(string(m[2])))
	}
	return hrefs, labels
}

// TestHTTPServeDirListing: a directory without index.html is listed in
// HTML: directories first with their trailing '/', names HTML-escaped and
// links percent-encoded so that every link leads back to its entry; sizes
// and modification dates shown; sorted by name, size or date, either way,
// by ?sort=&order=; symbolic links leaving the root are not listed; HEAD
// has no body; NoListing answers 403.
func TestHTTPServeDirListing(t *testing.T) {
	tr := fsMakeTree(t)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := fsServeDir(t, e, &meerkat.HTTPServeOptions{RootDir: tr.root})

		resp, body := s.get("/docs/")
		fsExpect(t, "GET /docs/", resp, body, 200, nil)
		fsHeader(t, "GET /docs/", resp, "Content-Type", "text/html; charset=utf-8")
		if strings.Contains(string(body), fsEscName) || !strings.Contains(string(body), html.EscapeString(fsEscName)) {
			t.Errorf("listing does not escape %s:\n%s", fsEscName, body)
		}
		hrefs, labels := fsHrefs(body)
		wantLabels := []string{"../", "asub/", "zsub/", "%41.txt", fsEscName, "a+b.txt", "a.txt", "bb.txt", fsOddName, "space name.txt"}
		if !slices.Equal(labels, wantLabels) {
			t.Fatalf("listing entries %q, want %q", labels, wantLabels)
		}
		if !strings.Contains(string(body), `href="./space%20name.txt"`) || !strings.Contains(string(body), `href="./%2541.txt"`) {
			t.Errorf("links are not percent-encoded:\n%s", body)
		}
		dirURL, _ := url.Parse(s.base + "/docs/")
		for i, h := range hrefs[1:] {
			u, err := url.Parse(h)
			if err != nil {
				t.Fatalf("link %q: %v", h, err)
			}
			target := dirURL.ResolveReference(u)
			label := labels[i+1]
			resp, body := s.get(target.RequestURI())
			if strings.HasSuffix(label, "/") {
				fsExpect(t, "link "+h, resp, body, 200, nil)
				continue
			}
			fsExpect(t, "link "+h, resp, body, 200, tr.files["docs/"+label].data)
		}
		if !strings.Contains(string(body), ">"+strconv.Itoa(len(tr.files["docs/bb.txt"].data))+"<") {
			t.Errorf("listing lacks bb.txt's size:\n%s", body)
		}
		if d := tr.files["docs/a.txt"].mtime.Format("2006-01-02 15:04:05"); !strings.Contains(string(body), d) {
			t.Errorf("listing lacks a.txt's date %s:\n%s", d, body)
		}

		// Sorting: directories always first.
		files := []string{"%41.txt", fsEscName, "a+b.txt", "a.txt", "bb.txt", fsOddName, "space name.txt"}
		bySize := slices.Clone(files)
		slices.SortStableFunc(bySize, func(a, b string) int {
			if d := len(tr.files["docs/"+a].data) - len(tr.files["docs/"+b].data); d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
		byDate := slices.Clone(files)
		slices.SortFunc(byDate, func(a, b string) int { return tr.files["docs/"+a].mtime.Compare(tr.files["docs/"+b].mtime) })
		rev := func(s []string) []string { s = slices.Clone(s); slices.Reverse(s); return s }
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"?sort=name&order=desc", append([]string{"../", "zsub/", "asub/"}, rev(files)...)},
			{"?sort=size", append(append([]string{"../"}, fsDirsBySize(t, tr, false)...), bySize...)},
			{"?sort=size&order=desc", append(append([]string{"../"}, fsDirsBySize(t, tr, true)...), rev(bySize)...)},
			{"?sort=date", append([]string{"../", "zsub/", "asub/"}, byDate...)},
			{"?sort=date&order=desc", append([]string{"../", "asub/", "zsub/"}, rev(byDate)...)},
		} {
			resp, body := s.get("/docs/" + c.query)
			fsExpect(t, c.query, resp, body, 200, nil)
			if _, labels := fsHrefs(body); !slices.Equal(labels, c.want) {
				t.Errorf("%s: entries %q, want %q", c.query, labels, c.want)
			}
		}
		if !strings.Contains(string(body), `href="?sort=size&amp;order=asc"`) {
			t.Errorf("column headers do not link to sorted listings:\n%s", body)
		}

		// The root: the links that leave it are not listed, the one that
		// stays inside is.
		resp, body = s.get("/")
		fsExpect(t, "GET /", resp, body, 200, nil)
		_, labels = fsHrefs(body)
		for _, l := range labels {
			if l == "linkout/" || l == "secretlink.txt" || l == "abslink.txt" || l == "../" {
				t.Errorf("root listing shows %q: %q", l, labels)
			}
		}
		if tr.fsHasLinks(t, "the listing of a link inside the root") && !slices.Contains(labels, "linkin/") {
			t.Errorf("root listing lacks linkin/: %q", labels)
		}

		head, hbody := s.do("HEAD", "/docs/")
		fsExpect(t, "HEAD /docs/", head, hbody, 200, []byte{})
		fsHeader(t, "HEAD /docs/", head, "Content-Length", fsGetLength(s, "/docs/"))

		e2 := newEnv(t, drv, useTLS)
		s2 := fsServeDir(t, e2, &meerkat.HTTPServeOptions{RootDir: tr.root, NoListing: true})
		resp, body = s2.get("/docs/")
		fsExpect(t, "NoListing GET /docs/", resp, body, 403, nil)
		resp, body = s2.get("/site/")
		fsExpect(t, "NoListing GET /site/", resp, body, 200, tr.files["site/index.html"].data)
	})
}

// fsGetLength is the Content-Length of a GET, checked against its body.
func fsGetLength(s *fsServer, target string) string {
	resp, body := s.get(target)
	if resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
		s.t.Errorf("GET %s: Content-Length %s for %d bytes", target, resp.Header.Get("Content-Length"), len(body))
	}
	return resp.Header.Get("Content-Length")
}

// fsDirsBySize orders docs' two subdirectories by their size as the OS
// reports it (ties by name).
func fsDirsBySize(t *testing.T, tr *fsTree, desc bool) []string {
	t.Helper()
	ta, err1 := os.Stat(filepath.Join(tr.root, "docs", "asub"))
	tz, err2 := os.Stat(filepath.Join(tr.root, "docs", "zsub"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	d := []string{"asub/", "zsub/"}
	if tz.Size() < ta.Size() {
		d = []string{"zsub/", "asub/"}
	}
	if desc {
		slices.Reverse(d)
	}
	return d
}

// ---------------------------------------------------------------------------
// Conditional requests and ranges

// TestHTTPServeConditional: If-None-Match (the ETag, its weak form, in a
// list, "*") gives 304 with the validators and the extra headers and no
// body, a different tag 200; If-Modified-Since at or after the
// modification time gives 304, before it 200, and is ignored when
// If-None-Match is present; If-Match and If-Unmodified-Since that fail give
// 412.
func TestHTTPServeConditional(t *testing.T) {
	tr := fsMakeTree(t)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := fsServeDir(t, e, &meerkat.HTTPServeOptions{RootDir: tr.root, ExtraHeaders: "X-Extra: yes\r\n"})
		resp, _ := s.get("/hello.txt")
		etag := resp.Header.Get("ETag")
		lm := tr.files["hello.txt"].mtime
		date := func(d time.Duration) string { return lm.Add(d).Format(http.TimeFormat) }
		for _, c := range []struct {
			hdr    []string
			status int
		}{
			{[]string{"If-None-Match", etag}, 304},
			{[]string{"If-None-Match", "W/" + etag}, 304},
			{[]string{"If-None-Match", `"nope", ` + etag}, 304},
			{[]string{"If-None-Match", `"a,b", W/` + etag + `, "c"`}, 304},
			{[]string{"If-None-Match", "*"}, 304},
			{[]string{"If-None-Match", `"nope"`}, 200},
			{[]string{"If-None-Match", strings.Trim(etag, `"`)}, 200}, // not a quoted tag
			{[]string{"If-Modified-Since", date(0)}, 304},
			{[]string{"If-Modified-Since", date(time.Hour)}, 304},
			{[]string{"If-Modified-Since", date(-time.Second)}, 200},
			{[]string{"If-Modified-Since", "not a date"}, 200},
			{[]string{"If-Modified-Since", lm.UTC().Format("Monday, 02-Jan-06 15:04:05 GMT")}, 304},
			{[]string{"If-Modified-Since", lm.Format(time.ANSIC)}, 304},
			{[]string{"If-None-Match", `"nope"`, "If-Modified-Since", date(0)}, 200},
			{[]string{"If-Match", etag}, 200},
			{[]string{"If-Match", "*"}, 200},
			{[]string{"If-Match", `"nope"`}, 412},
			{[]string{"If-Match", "W/" + etag}, 412}, // If-Match compares strongly
			{[]string{"If-Unmodified-Since", date(0)}, 200},
			{[]string{"If-Unmodified-Since", date(-time.Hour)}, 412},
		} {
			for _, method := range []string{"GET", "HEAD"} {
				what := fmt.Sprintf("%s %q", method, c.hdr)
				resp, body := s.do(method, "/hello.txt", c.hdr...)
				want := tr.files["hello.txt"].data
				if c.status != 200 || method == "HEAD" {
					want = nil
				}
				fsExpect(t, what, resp, body, c.status, want)
				fsHeader(t, what, resp, "X-Extra", "yes")
				if c.status == 304 {
					if len(body) != 0 || resp.Header.Get("Content-Length") != "" {
						t.Errorf("%s: 304 with a body or Content-Length", what)
					}
					fsHeader(t, what, resp, "ETag", etag)
					fsHeader(t, what, resp, "Last-Modified", date(0))
				}
			}
		}
	})
}

// TestHTTPServeRange: single byte ranges "a-b", "a-", "-suffix" and an end
// past the file (clamped) give 206 with Content-Range; unsatisfiable ones
// 416 with "Content-Range: bytes */size"; several ranges, an unknown unit,
// HEAD and an empty file give the whole file (200); If-Range with the
// strong ETag or the exact date lets the range apply, anything else gives
// the whole file.
func TestHTTPServeRange(t *testing.T) {
	tr := fsMakeTree(t)
	data := tr.files["data.bin"].data
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := fsServeDir(t, e, &meerkat.HTTPServeOptions{RootDir: tr.root})
		resp, _ := s.get("/data.bin")
		etag := resp.Header.Get("ETag")
		lm := tr.files["data.bin"].mtime.Format(http.TimeFormat)
		for _, c := range []struct {
			hdr        []string
			status     int
			start, end int // the bytes expected, end exclusive
		}{
			{[]string{"Range", "bytes=0-9"}, 206, 0, 10},
			{[]string{"Range", "bytes=10-"}, 206, 10, 1000},
			{[]string{"Range", "bytes=-5"}, 206, 995, 1000},
			{[]string{"Range", "bytes=-5000"}, 206, 0, 1000},
			{[]string{"Range", "bytes=990-5000"}, 206, 990, 1000},
			{[]string{"Range", "bytes=999-999"}, 206, 999, 1000},
			{[]string{"Range", "bytes= 3 - 4 "}, 206, 3, 5},
			{[]string{"Range", "bytes=1-2,"}, 206, 1, 3},
			{[]string{"Range", "bytes=1000-"}, 416, 0, 0},
			{[]string{"Range", "bytes=5000-6000"}, 416, 0, 0},
			{[]string{"Range", "bytes=-0"}, 416, 0, 0},
			{[]string{"Range", "bytes=5-3"}, 416, 0, 0},
			{[]string{"Range", "bytes=abc"}, 416, 0, 0},
			{[]string{"Range", "bytes=-1-2"}, 416, 0, 0},
			{[]string{"Range", "bytes=+1-2"}, 416, 0, 0},
			{[]string{"Range", "bytes=0-1,5-6"}, 200, 0, 1000},
			{[]string{"Range", "items=0-1"}, 200, 0, 1000},
			{[]string{"Range", "bytes=0-9", "If-Range", etag}, 206, 0, 10},
			{[]string{"Range", "bytes=0-9", "If-Range", lm}, 206, 0, 10},
			{[]string{"Range", "bytes=0-9", "If-Range", `"other"`}, 200, 0, 1000},
			{[]string{"Range", "bytes=0-9", "If-Range", "W/" + etag}, 200, 0, 1000},
			{[]string{"Range", "bytes=0-9", "If-Range", tr.files["data.bin"].mtime.Add(-time.Hour).Format(http.TimeFormat)}, 200, 0, 1000},
			{[]string{"Range", "bytes=1000-", "If-Range", `"other"`}, 200, 0, 1000},
		} {
			what := fmt.Sprintf("%q", c.hdr)
			resp, body := s.get("/data.bin", c.hdr...)
			switch c.status {
			case 206:
				fsExpect(t, what, resp, body, 206, data[c.start:c.end])
				fsHeader(t, what, resp, "Content-Range", fmt.Sprintf("bytes %d-%d/1000", c.start, c.end-1))
				fsHeader(t, what, resp, "Content-Length", strconv.Itoa(c.end-c.start))
			case 416:
				fsExpect(t, what, resp, body, 416, nil)
				fsHeader(t, what, resp, "Content-Range", "bytes */1000")
			default:
				fsExpect(t, what, resp, body, 200, data)
				fsHeader(t, what, resp, "Content-Range", "")
			}
		}
		resp, body := s.do("HEAD", "/data.bin", "Range", "bytes=0-9")
		fsExpect(t, "HEAD with Range", resp, body, 200, []byte{})
		fsHeader(t, "HEAD with Range", resp, "Content-Length", "1000")
		resp, body = s.get("/empty.txt", "Range", "bytes=0-")
		fsExpect(t, "empty file with Range", resp, body, 200, []byte{})
		// A range of a file larger than one piece of output.
		mid := tr.files["mid.bin"].data
		resp, body = s.get("/mid.bin", "Range", "bytes=70000-250000")
		fsExpect(t, "mid.bin range", resp, body, 206, mid[70000:250001])
	})
}

// TestHTTPServeMatchesNetHTTP: for the requests where both implement the
// same RFC rules (single ranges, unsatisfiable ranges, If-None-Match,
// If-Modified-Since, If-Match, If-Unmodified-Since, If-Range), Meerkat's
// answer has the status, Content-Range, Content-Length, Content-Type,
// Last-Modified and body of net/http's http.ServeFile given the same ETag.
func TestHTTPServeMatchesNetHTTP(t *testing.T) {
	tr := fsMakeTree(t)
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		s := fsServeDir(t, e, &meerkat.HTTPServeOptions{RootDir: tr.root})
		etags := map[string]string{}
		for _, name := range []string{"hello.txt", "data.bin", "mid.bin"} {
			resp, _ := s.do("HEAD", "/"+name)
			etags["/"+name] = resp.Header.Get("ETag")
		}
		peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", etags[r.URL.Path])
			http.ServeFile(w, r, filepath.Join(tr.root, filepath.FromSlash(path.Clean(r.URL.Path))))
		}))
		defer peer.Close()
		ref := &fsServer{t: t, base: peer.URL, hc: s.hc}

		for _, name := range []string{"/hello.txt", "/data.bin", "/mid.bin"} {
			etag := etags[name]
			lm := tr.files[name[1:]].mtime
			date := func(d time.Duration) string { return lm.Add(d).Format(http.TimeFormat) }
			for _, hdr := range [][]string{
				nil,
				{"Range", "bytes=0-9"},
				{"Range", "bytes=10-"},
				{"Range", "bytes=-5"},
				{"Range", "bytes=-100000000"},
				{"Range", "bytes=5-100000000"},
				{"Range", "bytes=0-0"},
				{"Range", "bytes=1-2,"},
				{"Range", "bytes=100000000-"},
				{"Range", "bytes=9-3"},
				{"Range", "bytes=x-y"},
				{"If-None-Match", etag},
				{"If-None-Match", "W/" + etag},
				{"If-None-Match", `"x", ` + etag},
				{"If-None-Match", "*"},
				{"If-None-Match", `"x"`},
				{"If-Modified-Since", date(0)},
				{"If-Modified-Since", date(-time.Hour)},
				{"If-Modified-Since", date(time.Hour)},
				{"If-None-Match", `"x"`, "If-Modified-Since", date(0)},
				{"If-Match", `"x"`},
				{"If-Match", etag},
				{"If-Match", "*"},
				{"If-Unmodified-Since", date(-time.Hour)},
				{"If-Unmodified-Since", date(0)},
				{"Range", "bytes=0-9", "If-Range", etag},
				{"Range", "bytes=0-9", "If-Range", `"x"`},
				{"Range", "bytes=0-9", "If-Range", "W/" + etag},
				{"Range", "bytes=0-9", "If-Range", date(0)},
				{"Range", "bytes=0-9", "If-Range", date(-time.Hour)},
			} {
				what := fmt.Sprintf("GET %s %q", name, hdr)
				got, gbody := s.get(name, hdr...)
				want, wbody := ref.get(name, hdr...)
				if got.StatusCode != want.StatusCode {
					t.Errorf("%s: status %d, net/http %d", what, got.StatusCode, want.StatusCode)
					continue
				}
				var fields []string
				switch got.StatusCode {
				case 416:
					// RFC 9110 section 15.5.17: a 416 SHOULD carry the
					// current length; net/http sends it only when the range
					// is well-formed but past the end.
					if cr := "bytes */" + strconv.Itoa(len(tr.files[name[1:]].data)); got.Header.Get("Content-Range") != cr {
						t.Errorf("%s: Content-Range = %q, want %q", what, got.Header.Get("Content-Range"), cr)
					}
					if w := want.Header.Get("Content-Range"); w != "" && w != got.Header.Get("Content-Range") {
						t.Errorf("%s: Content-Range = %q, net/http %q", what, got.Header.Get("Content-Range"), w)
					}
				case 200, 206:
					fields = append(fields, "Content-Range", "Content-Length", "Content-Type", "Last-Modified", "ETag", "Accept-Ranges")
					if !bytes.Equal(gbody, wbody) {
						t.Errorf("%s: body of %d bytes, net/http %d bytes", what, len(gbody), len(wbody))
					}
				case 304:
					fields = append(fields, "ETag")
				}
				for _, f := range fields {
					if g, w := got.Header.Get(f), want.Header.Get(f); g != w {
						t.Errorf("%s: %s = %q, net/http %q", what, f, g, w)
					}
				}
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Precompressed siblings, 404 page

// TestHTTPServeGzipSibling: when the client accepts gzip (q-values and "*"
// honoured) and NAME.gz exists, the .gz bytes go out with Content-Encoding:
// gzip, NAME's Content-Type, Vary: Accept-Encoding and an ETag of their
// own, and decompress to NAME; a client that does not accept gzip gets NAME
// itself; a .gz without its original is served only to clients that accept
// gzip; ranges apply to the compressed bytes.
func TestHTTPServeGzipSibling(t *testing.T) {
	tr := fsMakeTree(t)
	gz := tr.files["app.js.gz"].data
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := fsServeDir(t, e, &meerkat.HTTPServeOptions{RootDir: tr.root})
		plain, _ := s.get("/app.js")
		for _, c := range []struct {
			ae     string
			gzipOK bool
		}{
			{"gzip", true},
			{"gzip, deflate, br", true},
			{"GZIP;Q=0.5", true},
			{"x-gzip", true},
			{"br;q=1, *;q=0.1", true},
			{"deflate, gzip;q=0", false},
			{"gzip;q=0, *", false},
			{"*;q=0", false},
			{"br, deflate", false},
			{"identity", false},
			{"gzip;q=0.000", false},
		} {
			resp, body := s.get("/app.js", "Accept-Encoding", c.ae)
			what := "Accept-Encoding: " + c.ae
			fsHeader(t, what, resp, "Content-Type", "text/javascript; charset=utf-8")
			if !c.gzipOK {
				fsExpect(t, what, resp, body, 200, fsAppJS)
				fsHeader(t, what, resp, "Content-Encoding", "")
				continue
			}
			fsExpect(t, what, resp, body, 200, gz)
			fsHeader(t, what, resp, "Content-Encoding", "gzip")
			fsHeader(t, what, resp, "Vary", "Accept-Encoding")
			fsHeader(t, what, resp, "Content-Length", strconv.Itoa(len(gz)))
			if resp.Header.Get("ETag") == plain.Header.Get("ETag") {
				t.Errorf("%s: the gzip variant has the plain file's ETag", what)
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if un, err := io.ReadAll(zr); err != nil || !bytes.Equal(un, fsAppJS) {
				t.Errorf("%s: body does not decompress to app.js (%v)", what, err)
			}
			// The validators of the gzip variant work for it.
			r304, b304 := s.get("/app.js", "Accept-Encoding", c.ae, "If-None-Match", resp.Header.Get("ETag"))
			fsExpect(t, what+" If-None-Match", r304, b304, 304, nil)
			fsHeader(t, what+" If-None-Match", r304, "Vary", "Accept-Encoding")
		}
		resp, body := s.get("/app.js", "Accept-Encoding", "gzip", "Range", "bytes=0-9")
		fsExpect(t, "gzip range", resp, body, 206, gz[:10])
		fsHeader(t, "gzip range", resp, "Content-Range", fmt.Sprintf("bytes 0-9/%d", len(gz)))

		resp, body = s.get("/only.css", "Accept-Encoding", "gzip")
		fsExpect(t, "only.css with gzip", resp, body, 200, tr.files["only.css.gz"].data)
		fsHeader(t, "only.css with gzip", resp, "Content-Type", "text/css; charset=utf-8")
		fsHeader(t, "only.css with gzip", resp, "Content-Encoding", "gzip")
		resp, body = s.get("/only.css")
		fsExpect(t, "only.css without gzip", resp, body, 404, nil)
	})
}

// TestHTTPServePage404: with Page404 set, a missing file gets that page
// with status 404, its own Content-Type and the extra headers (no body for
// HEAD, and no range or validator handling); without it, a plain 404; a
// Page404 that does not exist falls back to the plain 404.
func TestHTTPServePage404(t *testing.T) {
	tr := fsMakeTree(t)
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		s := fsServeDir(t, e, &meerkat.HTTPServeOptions{RootDir: tr.root, Page404: "/404.html", ExtraHeaders: "X-Extra: 404\r\n"})
		page := tr.files["404.html"].data
		resp, body := s.get("/nope/missing.html")
		fsExpect(t, "missing with Page404", resp, body, 404, page)
		fsHeader(t, "Page404", resp, "Content-Type", "text/html; charset=utf-8")
		fsHeader(t, "Page404", resp, "X-Extra", "404")
		fsHeader(t, "Page404", resp, "ETag", "")
		resp, body = s.get("/missing.html", "Range", "bytes=0-3")
		fsExpect(t, "Page404 with Range", resp, body, 404, page)
		resp, body = s.do("HEAD", "/missing.html")
		fsExpect(t, "HEAD Page404", resp, body, 404, []byte{})
		fsHeader(t, "HEAD Page404", resp, "Content-Length", strconv.Itoa(len(page)))
		resp, body = s.get("/404.html")
		fsExpect(t, "the page itself", resp, body, 200, page)

		e2 := newEnv(t, drv, false)
		s2 := fsServeDir(t, e2, &meerkat.HTTPServeOptions{RootDir: tr.root, Page404: "no-such-page.html"})
		resp, body = s2.get("/missing.html")
		fsExpect(t, "missing Page404", resp, body, 404, []byte("Not Found\n"))
		fsHeader(t, "missing Page404", resp, "Content-Type", "text/plain; charset=utf-8")
	})
}

// ---------------------------------------------------------------------------
// io/fs and HTTPServeFile

// TestHTTPServeFS: an fstest.MapFS and os.DirFS holding the same tree
// answer every request as RootDir does (files, indexes, listings,
// redirects, ranges, conditionals, gzip siblings, 404); an os.Root's FS
// refuses the links leaving it; a file without a modification time (as in
// embed.FS) has no Last-Modified and an ETag from its content, so two
// files of the same size differ, and If-None-Match still gives 304.
func TestHTTPServeFS(t *testing.T) {
	tr := fsMakeTree(t)
	root, err := os.OpenRoot(tr.root)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		ref := fsStart(t, e, func(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
			meerkat.HTTPServeDir(c, hm, &meerkat.HTTPServeOptions{RootDir: tr.root})
		})
		type fsCase struct {
			name string
			fsys fs.FS
			s    *fsServer
		}
		cases := []*fsCase{{name: "MapFS", fsys: tr.fsMapFS()}, {name: "DirFS", fsys: os.DirFS(tr.root)}, {name: "Root.FS", fsys: root.FS()}}
		for _, fc := range cases {
			fc.s = fsStart(t, e, func(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
				meerkat.HTTPServeDir(c, hm, &meerkat.HTTPServeOptions{FS: fc.fsys, Page404: "404.html"})
			})
		}
		// os.Root's FS keeps links inside the root.
		rootFS := fsStart(t, e, func(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
			meerkat.HTTPServeDir(c, hm, &meerkat.HTTPServeOptions{FS: root.FS()})
		})
		// No modification time, as in embed.FS.
		nomt := fstest.MapFS{"a.txt": {Data: []byte("same size A")}, "b.txt": {Data: []byte("same size B")}}
		noMtime := fsStart(t, e, func(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
			meerkat.HTTPServeDir(c, hm, &meerkat.HTTPServeOptions{FS: nomt})
		})
		fsRun(t, e)

		for _, fc := range cases {
			s := fc.s
			for _, req := range [][]string{
				{"/hello.txt"},
				{"/docs/space%20name.txt"},
				{"/docs/" + url.PathEscape(fsEscName)},
				{"/site/"},
				{"/site"},
				{"/docs/"},
				{"/docs/?sort=size&order=desc"},
				{"/data.bin", "Range", "bytes=100-199"},
				{"/data.bin", "Range", "bytes=2000-"},
				{"/mid.bin"},
				{"/app.js", "Accept-Encoding", "gzip"},
				{"/only.css", "Accept-Encoding", "gzip"},
				{"/nothing-here"},
			} {
				what := fc.name + " " + strings.Join(req, " ")
				want, wbody := ref.get(req[0], req[1:]...)
				got, gbody := s.get(req[0], req[1:]...)
				if got.StatusCode == 404 && want.StatusCode == 404 {
					continue // the FS servers have a 404 page
				}
				if got.StatusCode != want.StatusCode || !bytes.Equal(gbody, wbody) {
					t.Errorf("%s: %d %.80q, RootDir gave %d %.80q", what, got.StatusCode, gbody, want.StatusCode, wbody)
				}
				for _, f := range []string{"Content-Type", "Content-Range", "Content-Encoding", "Location", "Last-Modified", "ETag"} {
					if g, w := got.Header.Get(f), want.Header.Get(f); g != w {
						t.Errorf("%s: %s = %q, RootDir %q", what, f, g, w)
					}
				}
				if req[0] == "/hello.txt" {
					etag := got.Header.Get("ETag")
					r304, _ := s.get(req[0], "If-None-Match", etag)
					fsExpect(t, what+" If-None-Match", r304, nil, 304, nil)
				}
			}
			resp, body := s.get("/nothing-here")
			fsExpect(t, fc.name+" Page404", resp, body, 404, tr.files["404.html"].data)
		}

		s := rootFS
		if tr.fsHasLinks(t, "Root.FS and symbolic links") {
			for _, target := range []string{"/linkout/secret.txt", "/secretlink.txt", "/abslink.txt"} {
				resp, body := s.get(target)
				if resp.StatusCode != 404 || bytes.Contains(body, []byte(tr.secret)) {
					t.Errorf("Root.FS %s: %d %q, want 404", target, resp.StatusCode, body)
				}
			}
			resp, body := s.get("/linkin/a.txt")
			fsExpect(t, "Root.FS /linkin/a.txt", resp, body, 200, []byte("aaa"))
		}

		s = noMtime
		ra, ba := s.get("/a.txt")
		rb, _ := s.get("/b.txt")
		fsExpect(t, "no mtime a.txt", ra, ba, 200, []byte("same size A"))
		if ra.Header.Get("Last-Modified") != "" {
			t.Errorf("a file without a modification time has Last-Modified %q", ra.Header.Get("Last-Modified"))
		}
		if ea, eb := ra.Header.Get("ETag"), rb.Header.Get("ETag"); ea == "" || ea == eb {
			t.Errorf("files of the same size without modification times: ETags %q and %q", ea, eb)
		}
		r304, b304 := s.get("/a.txt", "If-None-Match", ra.Header.Get("ETag"))
		fsExpect(t, "no mtime If-None-Match", r304, b304, 304, nil)
		r200, b200 := s.get("/a.txt", "If-Modified-Since", time.Now().Format(http.TimeFormat))
		fsExpect(t, "no mtime If-Modified-Since", r200, b200, 200, []byte("same size A"))
	})
}

// TestHTTPServeFile: HTTPServeFile answers any request path with the file
// it names (an OS path, or a name in opts.FS), with the same MIME type,
// validators, ranges and gzip handling as HTTPServeDir; a directory or a
// missing file gets 404, the Page404 of the root when set.
func TestHTTPServeFile(t *testing.T) {
	tr := fsMakeTree(t)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		mapfs := tr.fsMapFS()
		s := fsStart(t, e, func(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
			switch string(hm.URI) {
			case "/hello":
				meerkat.HTTPServeFile(c, hm, filepath.Join(tr.root, "hello.txt"), nil)
			case "/js":
				meerkat.HTTPServeFile(c, hm, filepath.Join(tr.root, "app.js"), &meerkat.HTTPServeOptions{ExtraHeaders: "X-File: 1\r\n"})
			case "/dir":
				meerkat.HTTPServeFile(c, hm, filepath.Join(tr.root, "docs"), nil)
			case "/missing":
				meerkat.HTTPServeFile(c, hm, filepath.Join(tr.root, "missing"), &meerkat.HTTPServeOptions{RootDir: tr.root, Page404: "404.html"})
			case "/fs":
				meerkat.HTTPServeFile(c, hm, "/docs/bb.txt", &meerkat.HTTPServeOptions{FS: mapfs})
			case "/fsmissing":
				meerkat.HTTPServeFile(c, hm, "docs/none.txt", &meerkat.HTTPServeOptions{FS: mapfs, Page404: "404.html"})
			default:
				meerkat.HTTPReply(c, 500, "", "unexpected %s\n", hm.URI)
			}
		})
		fsRun(t, e)
		resp, body := s.get("/hello")
		fsExpect(t, "/hello", resp, body, 200, tr.files["hello.txt"].data)
		fsHeader(t, "/hello", resp, "Content-Type", "text/plain; charset=utf-8")
		r304, _ := s.get("/hello", "If-None-Match", resp.Header.Get("ETag"))
		fsExpect(t, "/hello If-None-Match", r304, nil, 304, nil)
		resp, body = s.get("/hello", "Range", "bytes=-6")
		fsExpect(t, "/hello Range", resp, body, 206, []byte("world\n"))
		resp, body = s.get("/js", "Accept-Encoding", "gzip")
		fsExpect(t, "/js gzip", resp, body, 200, tr.files["app.js.gz"].data)
		fsHeader(t, "/js gzip", resp, "Content-Encoding", "gzip")
		fsHeader(t, "/js gzip", resp, "X-File", "1")
		resp, body = s.get("/dir")
		fsExpect(t, "/dir", resp, body, 404, nil)
		resp, body = s.get("/missing")
		fsExpect(t, "/missing", resp, body, 404, tr.files["404.html"].data)
		resp, body = s.get("/fs")
		fsExpect(t, "/fs", resp, body, 200, tr.files["docs/bb.txt"].data)
		resp, body = s.get("/fsmissing")
		fsExpect(t, "/fsmissing", resp, body, 404, tr.files["404.html"].data)
		resp, body = s.do("POST", "/hello")
		fsExpect(t, "POST /hello", resp, body, 405, nil)
		s.hc.Transport.(*http.Transport).CloseIdleConnections()
		fsExpectNoOpenFiles(t, tr.root)
	})
}

// ---------------------------------------------------------------------------
// Path traversal and symbolic links

// fsDotsStatus is the status of "/...": no such name, except on Windows,
// whose name rules drop a final component's trailing dots (Go's os.Root
// cleans names with GetFullPathName), so that "..." names the root itself,
// which is redirected to "/.../" — still nothing from outside the root.
var fsDotsStatus = func() []int {
	if runtime.GOOS == "windows" {
		return []int{301, 404}
	}
	return []int{404}
}()

// TestHTTPServeTraversal: every spelling of a way out of the root ("..",
// percent-encoded dots in any case, encoded slashes and backslashes, raw
// backslashes, NUL raw or encoded, absolute paths and absolute-form
// targets, doubled slashes, very long paths, symbolic links leading out)
// gets 400 or 404 (414 from the parser for a path over the request-line
// limit), and not one byte from outside the root; the same files are
// reachable when AllowSymlinks says so, which proves the links lead where
// the refused requests wanted to go.
func TestHTTPServeTraversal(t *testing.T) {
	tr := fsMakeTree(t)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := fsServeDir(t, e, &meerkat.HTTPServeOptions{RootDir: tr.root})
		outside := filepath.ToSlash(tr.outside)
		type travCase struct {
			target string
			status []int
		}
		cases := []travCase{
			{"/../secret.txt", []int{400}},
			{"/../outside/secret.txt", []int{400}},
			{"/docs/../../secret.txt", []int{400}},
			{"/%2e%2e/secret.txt", []int{400}},
			{"/%2E%2e/secret.txt", []int{400}},
			{"/%2E%2E%2Fsecret.txt", []int{400}},
			{"/.%2e/secret.txt", []int{400}},
			{"/docs/%2e%2e/%2e%2e/secret.txt", []int{400}},
			{"/..%2fsecret.txt", []int{400}},
			{"/..%2Fsecret.txt", []int{400}},
			{"/docs%2f..%2f..%2fsecret.txt", []int{400}},
			{"/docs%2fa.txt", []int{400}},
			{"/..%5csecret.txt", []int{400}},
			{"/..%5C..%5Csecret.txt", []int{400}},
			{"/..\\secret.txt", []int{400}},
			{"/docs\\..\\..\\secret.txt", []int{400}},
			{"/hello.txt%00.html", []int{400}},
			{"/%00", []int{400}},
			{"/%", []int{400}},
			{"/%2", []int{400}},
			{"/%zz", []int{400}},
			{"/..", []int{400}},
			{"/docs/..", []int{400}},
			{"..", []int{400}},
			{"../secret.txt", []int{400}},
			{"*", []int{400}},
			{"/%252e%252e/secret.txt", []int{404}}, // decoded once: a name "%2e%2e"
			{"/%c0%ae%c0%ae/secret.txt", []int{404}},
			{"/..;/secret.txt", []int{404}},
			{"/...", fsDotsStatus},
			{"/etc/passwd", []int{404}},
			{"//etc/passwd", []int{404}},
			{"///etc//passwd", []int{404}},
			{"/" + outside + "/secret.txt", []int{404}},
			{"/" + url.PathEscape(outside) + "/secret.txt", []int{400}},
			{"http://127.0.0.1/../secret.txt", []int{400}},
			{"http://127.0.0.1/%2e%2e/secret.txt", []int{400}},
			{"http://127.0.0.1" + outside + "/secret.txt", []int{404}},
			{"/C:/Windows/win.ini", []int{404}},
			{"/linkin/../../secret.txt", []int{400}},
			{"/" + strings.Repeat("a", 4000), []int{404}},
			{"/" + strings.Repeat("a/", 2000) + "x", []int{404}},
			{"/" + strings.Repeat("../", 1500) + "secret.txt", []int{400}},
			{"/" + strings.Repeat("%2e%2e/", 1000) + "secret.txt", []int{400}},
			{"/" + strings.Repeat("a", 9000), []int{414}},
		}
		if tr.fsHasLinks(t, "the requests through links leading out") {
			cases = append(cases,
				travCase{"/linkout/secret.txt", []int{404}},
				travCase{"/linkout/", []int{404}},
				travCase{"/linkout", []int{404}},
				travCase{"/secretlink.txt", []int{404}},
				travCase{"/abslink.txt", []int{404}})
		}
		for _, c := range cases {
			for _, method := range []string{"GET", "HEAD"} {
				req := method + " " + c.target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
				nc := e.dialPeer(s.addr)
				nc.SetDeadline(time.Now().Add(20 * time.Second))
				io.WriteString(nc, req)
				all, err := io.ReadAll(nc)
				nc.Close()
				if err != nil {
					t.Fatalf("%s %.60s: %v", method, c.target, err)
				}
				if bytes.Contains(all, []byte(tr.secret)) {
					t.Fatalf("%s %.60s: the secret leaked:\n%s", method, c.target, all)
				}
				resp, _, err := fsReadResponse(bufio.NewReader(bytes.NewReader(all)), method)
				if err != nil {
					t.Fatalf("%s %.60s: %v (%.200q)", method, c.target, err, all)
				}
				if !slices.Contains(c.status, resp.StatusCode) {
					t.Errorf("%s %.60s: status %d, want %v", method, c.target, resp.StatusCode, c.status)
				}
			}
		}
		// The links do lead out: with AllowSymlinks they are followed, and
		// ".." is still refused.
		e2 := newEnv(t, drv, useTLS)
		s2 := fsServeDir(t, e2, &meerkat.HTTPServeOptions{RootDir: tr.root, AllowSymlinks: true})
		resp, body := s2.raw("GET /../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n")
		fsExpect(t, "AllowSymlinks /../secret.txt", resp, body, 400, nil)
		if !tr.fsHasLinks(t, "AllowSymlinks through the links") {
			return
		}
		for _, target := range []string{"/linkout/secret.txt", "/secretlink.txt", "/abslink.txt"} {
			resp, body := s2.get(target)
			fsExpect(t, "AllowSymlinks "+target, resp, body, 200, []byte(tr.secret+"\n"))
		}
		resp, body = s2.get("/")
		if _, labels := fsHrefs(body); !slices.Contains(labels, "linkout/") || !slices.Contains(labels, "secretlink.txt") {
			t.Errorf("AllowSymlinks: root listing lacks the links: %q", labels)
		}
	})
}

// TestHTTPServeSymlinkInside: a symbolic link to a directory inside the
// root is followed (files, listing, index redirects), while one leaving it
// is refused.
func TestHTTPServeSymlinkInside(t *testing.T) {
	tr := fsMakeTree(t)
	if tr.noLinks != "" {
		t.Skip(tr.noLinks)
	}
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		s := fsServeDir(t, e, &meerkat.HTTPServeOptions{RootDir: tr.root})
		resp, body := s.get("/linkin/a.txt")
		fsExpect(t, "/linkin/a.txt", resp, body, 200, []byte("aaa"))
		resp, body = s.get("/linkin/zsub/deep.txt")
		fsExpect(t, "/linkin/zsub/deep.txt", resp, body, 200, []byte("deep"))
		resp, body = s.get("/linkin/")
		fsExpect(t, "/linkin/", resp, body, 200, nil)
		if _, labels := fsHrefs(body); !slices.Contains(labels, "bb.txt") {
			t.Errorf("/linkin/ listing: %q", labels)
		}
		resp, body = s.get("/linkout/secret.txt")
		fsExpect(t, "/linkout/secret.txt", resp, body, 404, nil)
	})
}

// TestHTTPServeSpecialFile: a FIFO planted in the root is refused at once
// (403) instead of blocking the event loop on its open, under RootDir and
// through os.DirFS and an os.Root's FS, and it is not listed.
func TestHTTPServeSpecialFile(t *testing.T) {
	if _, err := exec.LookPath("mkfifo"); err != nil {
		t.Skip("mkfifo not available")
	}
	tr := fsMakeTree(t)
	if out, err := exec.Command("mkfifo", filepath.Join(tr.root, "pipe")).CombinedOutput(); err != nil {
		t.Skipf("mkfifo: %v %s", err, out)
	}
	root, err := os.OpenRoot(tr.root)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, c := range []struct {
			name string
			opts *meerkat.HTTPServeOptions
		}{
			{"RootDir", &meerkat.HTTPServeOptions{RootDir: tr.root}},
			{"AllowSymlinks", &meerkat.HTTPServeOptions{RootDir: tr.root, AllowSymlinks: true}},
			{"DirFS", &meerkat.HTTPServeOptions{FS: os.DirFS(tr.root)}},
			{"Root.FS", &meerkat.HTTPServeOptions{FS: root.FS()}},
		} {
			t.Run(c.name, func(t *testing.T) {
				e := newEnv(t, drv, false)
				s := fsServeDir(t, e, c.opts)
				start := time.Now()
				resp, body := s.get("/pipe")
				fsExpect(t, "/pipe", resp, body, 403, nil)
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("the FIFO took %v", d)
				}
				resp, body = s.get("/")
				if _, labels := fsHrefs(body); slices.Contains(labels, "pipe") {
					t.Errorf("the FIFO is listed: %q", labels)
				}
				resp, body = s.get("/hello.txt")
				fsExpect(t, "/hello.txt after /pipe", resp, body, 200, tr.files["hello.txt"].data)
			})
		}
	})
}

// ---------------------------------------------------------------------------
// Keep-alive, pipelining, large files

// TestHTTPServePipelined: pipelined requests on one connection — a range,
// a HEAD, a file larger than one piece of output, a 304, a listing, a
// redirect, a 404 — are answered whole and in order, and "Connection:
// close" on the last ends the connection after its response; an HTTP/1.0
// request gets one response with "Connection: close".
func TestHTTPServePipelined(t *testing.T) {
	tr := fsMakeTree(t)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := fsServeDir(t, e, &meerkat.HTTPServeOptions{RootDir: tr.root})
		etag := func() string { r, _ := s.do("HEAD", "/hello.txt"); return r.Header.Get("ETag") }()
		reqs := []struct {
			method, target, hdr string
			status              int
			body                []byte
		}{
			{"GET", "/data.bin", "Range: bytes=0-9\r\n", 206, tr.files["data.bin"].data[:10]},
			{"HEAD", "/mid.bin", "", 200, []byte{}},
			{"GET", "/mid.bin", "", 200, tr.files["mid.bin"].data},
			{"GET", "/hello.txt", "If-None-Match: " + etag + "\r\n", 304, []byte{}},
			{"GET", "/mid.bin", "Range: bytes=1-200000\r\n", 206, tr.files["mid.bin"].data[1:200001]},
			{"GET", "/docs/", "", 200, nil},
			{"GET", "/docs", "", 301, nil},
			{"GET", "/missing", "", 404, nil},
			{"GET", "/hello.txt", "Connection: close\r\n", 200, tr.files["hello.txt"].data},
		}
		var all strings.Builder
		for _, r := range reqs {
			fmt.Fprintf(&all, "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n", r.method, r.target, r.hdr)
		}
		nc := e.dialPeer(s.addr)
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		go io.WriteString(nc, all.String())
		br := bufio.NewReader(nc)
		for i, r := range reqs {
			resp, body, err := fsReadResponse(br, r.method)
			if err != nil {
				t.Fatalf("response %d (%s %s): %v", i, r.method, r.target, err)
			}
			fsExpect(t, fmt.Sprintf("response %d (%s %s)", i, r.method, r.target), resp, body, r.status, r.body)
		}
		if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("after Connection: close: %d bytes, %v; want EOF", n, err)
		}

		resp, body := s.raw("GET /hello.txt HTTP/1.0\r\n\r\n")
		fsExpect(t, "HTTP/1.0", resp, body, 200, tr.files["hello.txt"].data)
		if !resp.Close {
			t.Errorf("HTTP/1.0: the response does not close the connection")
		}
	})
}

// TestHTTPServeFromHeaders: HTTPServeDir called on EvHTTPHeaders (no body
// awaited) answers pipelined requests whole and in order even when a file
// takes several iterations to go out.
func TestHTTPServeFromHeaders(t *testing.T) {
	tr := fsMakeTree(t)
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		opts := &meerkat.HTTPServeOptions{RootDir: tr.root}
		l, err := e.m.HTTPListen("http://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev == meerkat.EvHTTPHeaders {
				meerkat.HTTPServeDir(c, data.(*meerkat.HTTPMessage), opts)
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		fsRun(t, e)
		nc := e.dialPeer(l.LocalAddr().String())
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		go io.WriteString(nc, "GET /mid.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(nc)
		for _, want := range []string{"mid.bin", "hello.txt"} {
			resp, body, err := fsReadResponse(br, "GET")
			if err != nil {
				t.Fatalf("%s: %v", want, err)
			}
			fsExpect(t, want, resp, body, 200, tr.files[want].data)
		}
	})
}

// fsBigFile writes a file of size bytes (a multiple of 1 MiB) and returns
// its path and SHA-256: a random MiB repeated, every 4 KiB stamped with its
// offset, so that a piece out of place changes the sum.
func fsBigFile(t *testing.T, dir string, size int) (string, string) {
	t.Helper()
	p := filepath.Join(dir, "big.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	block := make([]byte, 1<<20)
	rand.Read(block)
	for off := 0; off < size; off += len(block) {
		for j := 0; j < len(block); j += 4 << 10 {
			binary.BigEndian.PutUint64(block[j:], uint64(off+j))
		}
		if _, err := w.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

// TestHTTPServeLargeFileBoundedMemory: a 64 MiB file goes out whole and
// intact through a 32 KiB send limit (and a 4 KiB receive limit), read in
// pieces as the send buffer drains: the heap in use never grows by more
// than 24 MiB (garbage not yet collected included; reading the file whole
// would take 64), and the file is closed at the end.
func TestHTTPServeLargeFileBoundedMemory(t *testing.T) {
	const size = 64 << 20
	dir := fsTempDir(t)
	_, sum := fsBigFile(t, dir, size)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.SendLimit = 32 << 10
		e.m.RecvLimit = 4 << 10
		s := fsServeDir(t, e, &meerkat.HTTPServeOptions{RootDir: dir})
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse

		type result struct {
			n   int64
			sum string
			err error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			resp, err := s.hc.Get(s.base + "/big.bin")
			if err != nil {
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			done <- result{n, hex.EncodeToString(h.Sum(nil)), err}
		}()
		var peak uint64
		var r result
	wait:
		for {
			select {
			case r = <-done:
				break wait
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
				if time.Since(start) > 2*time.Minute {
					t.Fatal("the 64 MiB download did not finish in 2 minutes")
				}
			}
		}
		elapsed := time.Since(start)
		if r.err != nil || r.n != size || r.sum != sum {
			t.Fatalf("download: %d bytes, sha256 %s, err %v; want %d bytes, %s", r.n, r.sum, r.err, size, sum)
		}
		growth := int64(peak) - int64(base)
		t.Logf("64 MiB in %v (%.0f MB/s), heap in use grew by at most %d KiB", elapsed, float64(size)/elapsed.Seconds()/1e6, growth>>10)
		if growth > 24<<20 {
			t.Errorf("heap in use grew by %d MiB while streaming 64 MiB", growth>>20)
		}
		fsExpectNoOpenFiles(t, dir)
	})
}

// TestHTTPServeCloseMidFileReleasesFile: a client that goes away in the
// middle of a large file (closing, or resetting, its connection), or a
// Manager closed in the middle of one, leaves no descriptor open: the
// file, open while it was being sent, is closed with the connection, and
// the process's descriptor count returns to what it was.
func TestHTTPServeCloseMidFileReleasesFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("descriptors are counted through /proc/self/fd")
	}
	dir := t.TempDir()
	bigPath, _ := fsBigFile(t, dir, 16<<20)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, how := range []string{"close", "reset", "manager"} {
			t.Run(how, func(t *testing.T) {
				e := newEnv(t, drv, useTLS)
				e.m.SendLimit = 64 << 10
				s := fsStart(t, e, func(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
					meerkat.HTTPServeDir(c, hm, &meerkat.HTTPServeOptions{RootDir: dir})
				})
				stop := fsRun(t, e)
				base := snapshot()
				if how != "manager" && base.fds >= 0 {
					base.fds++ // the Manager keeps the served root directory open
				}
				nc := e.dialPeer(s.addr)
				nc.SetDeadline(time.Now().Add(20 * time.Second))
				if _, err := io.WriteString(nc, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(nc)
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("response: %v %v", resp, err)
				}
				if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
					t.Fatalf("reading the first MiB: %v", err)
				}
				if open := fsOpenUnder(dir, false); !slices.Contains(open, bigPath) {
					t.Fatalf("big.bin is not open while it is being sent (open under the root: %v)", open)
				}
				switch how {
				case "close":
					nc.Close()
				case "reset":
					resetPeer(t, nc)
				case "manager":
					// Close the Manager under the response (on this
					// goroutine, once the background Poll has stopped).
					stop()
					e.m.Close()
					nc.Close()
				}
				deadline := time.Now().Add(10 * time.Second)
				for s.closes.Load() == 0 {
					if time.Now().After(deadline) {
						t.Fatal("the server connection did not close after the client went away")
					}
					time.Sleep(5 * time.Millisecond)
				}
				if open := fsOpenUnder(dir, how == "manager"); len(open) > 0 {
					t.Fatalf("after the connection closed, still open: %v", open)
				}
				if how != "manager" {
					nc.Close()
				}
				expectBaseline(t, base, 10*time.Second)
			})
		}
	})
}
