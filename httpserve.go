package meerkat

import (
	"bytes"
	"cmp"
	"errors"
	"hash/fnv"
	"html"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HTTPServeOptions say where HTTPServeDir and HTTPServeFile find files and
// how they answer. The zero value serves the current directory.
type HTTPServeOptions struct {
	// RootDir is the OS directory served ("." when empty and FS is nil).
	// Nothing outside it is ever read: see AllowSymlinks.
	RootDir string
	// FS, when set, is served instead of RootDir: any io/fs file system,
	// such as an embed.FS holding a web UI, fstest.MapFS or os.DirFS.
	// Symbolic links are the FS's business (os.DirFS follows them; the FS
	// method of an os.Root keeps them inside it).
	FS fs.FS
	// ExtraHeaders are added to every response, each line ending in "\r\n"
	// ("Cache-Control: max-age=60\r\n").
	ExtraHeaders string
	// MIMETypes maps a file extension without its dot ("md", "wasm") to a
	// Content-Type, adding to or overriding the built-in table.
	MIMETypes map[string]string
	// Page404 is the path, inside the root, of a page sent with status 404
	// when the requested file does not exist.
	Page404 string
	// NoListing answers a directory without an index.html with 403 instead
	// of an HTML listing.
	NoListing bool
	// AllowSymlinks lets symbolic links under RootDir point outside it. By
	// default such links are refused (404); links that stay inside the root
	// are always followed.
	AllowSymlinks bool
}

// servePiece is how much of a file is read at a time: a response body goes
// out in pieces of this size as the send buffer drains, so memory stays
// bounded whatever the file's size.
const servePiece = 64 << 10

// HTTPServeDir answers a GET or HEAD request (hm, on c, a connection of an
// HTTPListen server) with the file its path names under opts.RootDir or in
// opts.FS:
//
//   - a directory's index.html, else an HTML listing (directories first;
//     ?sort=name|size|date&order=asc|desc), or 403 with NoListing; a
//     directory named without its trailing slash is redirected (301) to it;
//   - a file with its Content-Type (by extension), Last-Modified and ETag;
//     304 when If-None-Match or If-Modified-Since say the client's copy is
//     current, 412 when If-Match or If-Unmodified-Since fail; a single
//     byte Range as 206 (416 when unsatisfiable), honouring If-Range;
//   - NAME.gz instead of NAME, with "Content-Encoding: gzip", when the
//     client accepts gzip and that sibling exists;
//   - 404 (opts.Page404 when set) for what does not exist, 400 for a path
//     that tries to leave the root ("..", encoded slashes or backslashes,
//     NUL), 405 for other methods.
//
// The path is percent-decoded once and cleaned; nothing outside the root is
// ever read. Bodies of any size are streamed with bounded memory (see
// HTTPPump), and the file is closed when the response ends or the
// connection closes.
func HTTPServeDir(c *Conn, hm *HTTPMessage, opts *HTTPServeOptions) {
	r, ok := newServeReq(c, hm, opts)
	if !ok {
		return
	}
	name, trailingSlash, status := serveCleanPath(hm.URI)
	if status != 0 {
		r.replyError(status)
		return
	}
	src, err := r.opts.source(c.m)
	if err != nil {
		c.m.log().Warn("meerkat: cannot open the served directory", "conn", c.id, "root", r.opts.RootDir, "err", err)
		r.replyError(500)
		return
	}
	defer src.close()
	r.src = src

	f, fi, err := r.open(name)
	if err == nil && fi.IsDir() {
		f.Close()
		if !trailingSlash {
			r.redirectToDir(name)
			return
		}
		index := path.Join(name, "index.html")
		f, fi, err := r.open(index)
		if err == nil && fi.IsDir() {
			f.Close()
			f, fi, err = nil, nil, fs.ErrNotExist
		}
		if r.serveFile(index, f, fi, err, 200) {
			return
		}
		if r.opts.NoListing {
			r.replyError(403)
			return
		}
		r.serveListing(name)
		return
	}
	if err == nil && trailingSlash {
		// "file.txt/" names nothing, as it does for the OS.
		f.Close()
		f, fi, err = nil, nil, fs.ErrNotExist
	}
	if !r.serveFile(name, f, fi, err, 200) {
		r.notFound()
	}
}

// HTTPServeFile answers a GET or HEAD request with one file, as HTTPServeDir
// does (MIME type, conditional requests, Range, HEAD, a .gz sibling). path is
// a name in opts.FS when that is set, otherwise an OS path, used as given.
// opts may be nil. A missing file, or a directory, gets 404 (opts.Page404,
// found under opts.RootDir or in opts.FS, when set).
func HTTPServeFile(c *Conn, hm *HTTPMessage, path string, opts *HTTPServeOptions) {
	r, ok := newServeReq(c, hm, opts)
	if !ok {
		return
	}
	if r.opts.FS != nil {
		path = strings.TrimPrefix(path, "/")
		if path == "" {
			path = "."
		}
		r.src = serveFSSrc{r.opts.FS}
	} else {
		r.src = serveOSSrc{}
	}
	f, fi, err := r.open(path)
	if err == nil && fi.IsDir() {
		f.Close()
		f, fi, err = nil, nil, fs.ErrNotExist
	}
	if r.serveFile(path, f, fi, err, 200) {
		return
	}
	if r.opts.Page404 != "" && r.opts.FS == nil {
		// The custom page lives under the root, not beside path.
		if src, serr := r.opts.source(c.m); serr == nil {
			defer src.close()
			r.src = src
		}
	}
	r.notFound()
}

// serveReq is one request being answered.
type serveReq struct {
	c      *Conn
	hm     *HTTPMessage
	opts   *HTTPServeOptions
	src    serveSource
	isHead bool
}

var zeroServeOptions HTTPServeOptions

// newServeReq checks the method; it answers 405 itself and reports false
// for one it does not serve.
func newServeReq(c *Conn, hm *HTTPMessage, opts *HTTPServeOptions) (*serveReq, bool) {
	if opts == nil {
		opts = &zeroServeOptions
	}
	r := &serveReq{c: c, hm: hm, opts: opts, isHead: string(hm.Method) == "HEAD"}
	if h := httpOf(c); h != nil && h.isHead {
		r.isHead = true
	}
	if !r.isHead && string(hm.Method) != "GET" {
		r.reply(405, "Allow: GET, HEAD\r\n", "text/plain; charset=utf-8", []byte("Method Not Allowed\n"))
		return nil, false
	}
	return r, true
}

// serveCleanPath turns a request path into a name relative to the root
// (slash-separated, cleaned, "." for the root itself), or a status to
// refuse it with. The path is decoded exactly once; what could step out of the root
// or mean different things to different layers is refused (400): a ".."
// segment in any spelling, an encoded '/' or '\\', a backslash, NUL.
func serveCleanPath(uri []byte) (name string, trailingSlash bool, status int) {
	p := string(uri)
	if !strings.HasPrefix(p, "/") {
		// absolute-form ("http://host/path"): keep the path.
		i := strings.Index(p, "://")
		if i <= 0 {
			return "", false, 400
		}
		p = p[i+3:]
		if j := strings.IndexByte(p, '/'); j >= 0 {
			p = p[j:]
		} else {
			p = "/"
		}
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		ch := p[i]
		if ch == '%' {
			if i+2 >= len(p) || !serveIsHex(p[i+1]) || !serveIsHex(p[i+2]) {
				return "", false, 400
			}
			ch = serveUnhex(p[i+1])<<4 | serveUnhex(p[i+2])
			if ch == '/' {
				// A name never contains '/': an encoded one can only be
				// meant to hide a separator ("..%2f").
				return "", false, 400
			}
			i += 2
		}
		if ch == 0 || ch == '\\' {
			return "", false, 400
		}
		b.WriteByte(ch)
	}
	decoded := b.String()
	for seg := range strings.SplitSeq(decoded, "/") {
		if seg == ".." {
			return "", false, 400
		}
	}
	trailingSlash = strings.HasSuffix(decoded, "/")
	// Cleaning a rooted path leaves no empty, "." or ".." element: name is
	// valid for fs.FS but for its encoding (an FS refuses names that are not
	// UTF-8; an OS directory may hold such names).
	name = strings.TrimPrefix(path.Clean(decoded), "/")
	if name == "" {
		name = "."
	}
	return name, trailingSlash, 0
}

func serveIsHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func serveUnhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// serveSource is where names are opened: an os.Root, a directory whose
// symbolic links may leave it, an fs.FS, or the OS itself (HTTPServeFile).
type serveSource interface {
	open(name string) (fs.File, error)
	stat(name string) (fs.FileInfo, error)
	close()
}

func (o *HTTPServeOptions) source(m *Manager) (serveSource, error) {
	if o.FS != nil {
		return serveFSSrc{o.FS}, nil
	}
	dir := cmp.Or(o.RootDir, ".")
	if o.AllowSymlinks {
		return serveDirSrc(dir), nil
	}
	root, err := m.serveRoot(dir)
	if err != nil {
		return nil, err
	}
	return serveRootSrc{root}, nil
}

// serveRootCheck is how often a cached root is checked against its path.
const serveRootCheck = time.Second

// cachedRoot is a served directory kept open between requests.
type cachedRoot struct {
	root    *os.Root
	checked int64 // Manager clock of the last check
}

// serveRoot returns dir opened as an os.Root, kept open by the Manager:
// opening it per request cost about a quarter of serving a small file. At
// most once a second it is checked to still be what dir names, so a root
// directory replaced while serving is noticed.
func (m *Manager) serveRoot(dir string) (*os.Root, error) {
	cr := m.serveRoots[dir]
	if cr != nil && m.now-cr.checked < int64(serveRootCheck) {
		return cr.root, nil
	}
	if cr != nil {
		now, err1 := os.Stat(dir)
		was, err2 := cr.root.Stat(".")
		if err1 == nil && err2 == nil && os.SameFile(now, was) {
			cr.checked = m.now
			return cr.root, nil
		}
		cr.root.Close()
		delete(m.serveRoots, dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if m.serveRoots == nil {
		m.serveRoots = make(map[string]*cachedRoot)
	}
	m.serveRoots[dir] = &cachedRoot{root: root, checked: m.now}
	return root, nil
}

// serveOpenFlags open files without blocking on a FIFO planted in the root
// (it is then refused as not a regular file). Windows has no such files.
var serveOpenFlags = func() int {
	if runtime.GOOS == "windows" {
		return os.O_RDONLY
	}
	return os.O_RDONLY | syscall.O_NONBLOCK
}()

// serveRootSrc confines every name, symbolic links included, to the root.
type serveRootSrc struct{ root *os.Root }

func (s serveRootSrc) open(name string) (fs.File, error) {
	return s.root.OpenFile(name, serveOpenFlags, 0)
}
func (s serveRootSrc) stat(name string) (fs.FileInfo, error) { return s.root.Stat(name) }
func (s serveRootSrc) close()                                {} // the Manager keeps it

// serveDirSrc is a root directory whose symbolic links are followed wherever
// they go (AllowSymlinks); names are still cleaned and free of "..".
type serveDirSrc string

func (s serveDirSrc) open(name string) (fs.File, error) {
	return os.OpenFile(filepath.Join(string(s), filepath.FromSlash(name)), serveOpenFlags, 0)
}
func (s serveDirSrc) stat(name string) (fs.FileInfo, error) {
	return os.Stat(filepath.Join(string(s), filepath.FromSlash(name)))
}
func (s serveDirSrc) close() {}

type serveFSSrc struct{ fsys fs.FS }

// open stats name first when the FS can: an os.DirFS or os.Root FS
// opens without O_NONBLOCK, and opening a FIFO would block the loop.
func (s serveFSSrc) open(name string) (fs.File, error) {
	if sfs, ok := s.fsys.(fs.StatFS); ok {
		fi, err := sfs.Stat(name)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil, fs.ErrPermission
		}
	}
	return s.fsys.Open(name)
}

func (s serveFSSrc) stat(name string) (fs.FileInfo, error) { return fs.Stat(s.fsys, name) }
func (s serveFSSrc) close()                                {}

// serveOSSrc opens OS paths as given (HTTPServeFile's path is the caller's).
type serveOSSrc struct{}

func (serveOSSrc) open(name string) (fs.File, error)     { return os.OpenFile(name, serveOpenFlags, 0) }
func (serveOSSrc) stat(name string) (fs.FileInfo, error) { return os.Stat(name) }
func (serveOSSrc) close()                                {}

// open opens name and stats it; only regular files and directories are
// served (a device or a FIFO is reported as fs.ErrPermission).
func (r *serveReq) open(name string) (fs.File, fs.FileInfo, error) {
	f, err := r.src.open(name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		f.Close()
		return nil, nil, fs.ErrPermission
	}
	return f, fi, nil
}

// serveFile answers with the file f (opened as name, or failed with err) or
// its .gz sibling. It reports false, having sent nothing, when neither
// exists.
func (r *serveReq) serveFile(name string, f fs.File, fi fs.FileInfo, err error, status int) bool {
	if r.acceptsGzip() {
		if gf, gfi, gerr := r.open(name + ".gz"); gerr == nil {
			if gfi.Mode().IsRegular() {
				if f != nil {
					f.Close()
				}
				r.serveContent(name, gf, gfi, true, status)
				return true
			}
			gf.Close()
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			r.replyError(403)
			return true
		}
		return false
	}
	r.serveContent(name, f, fi, false, status)
	return true
}

// notFound answers 404, with opts.Page404 when it exists.
func (r *serveReq) notFound() {
	if p := r.opts.Page404; p != "" && r.src != nil {
		name := strings.TrimPrefix(path.Clean("/"+p), "/")
		if f, fi, perr := r.open(name); perr == nil {
			if fi.Mode().IsRegular() {
				r.serveContent(name, f, fi, false, 404)
				return
			}
			f.Close()
		}
	}
	r.replyError(404)
}

// acceptsGzip reports whether Accept-Encoding admits gzip (q-values
// honoured: "gzip;q=0" refuses it, "*" admits it unless gzip is refused).
func (r *serveReq) acceptsGzip() bool {
	ae := r.hm.Header("Accept-Encoding")
	if len(ae) == 0 {
		return false
	}
	gzipQ, starQ := -1.0, -1.0
	for item := range strings.SplitSeq(string(ae), ",") {
		coding, params, _ := strings.Cut(item, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		q := 1.0
		for param := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				} else {
					q = 0
				}
			}
		}
		switch coding {
		case "gzip", "x-gzip":
			gzipQ = max(gzipQ, q)
		case "*":
			starQ = max(starQ, q)
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}

// serveETag is a strong validator of the file: its modification time and
// size, the variant (gzip or not) included. A file without a modification
// time (embed.FS has none) is identified by a hash of its content instead,
// so that a rebuilt binary never matches a stale copy of the same size.
func serveETag(f fs.File, fi fs.FileInfo, gz bool) string {
	b := make([]byte, 0, 48)
	b = append(b, '"')
	if mtime := fi.ModTime(); serveKnownTime(mtime) {
		b = strconv.AppendInt(b, mtime.UnixNano(), 16)
	} else if s, ok := f.(io.Seeker); ok && fi.Size() <= serveMaxHashed {
		h := fnv.New64a()
		_, err := io.Copy(h, f)
		if _, serr := s.Seek(0, io.SeekStart); err == nil && serr == nil {
			b = append(b, 'h')
			b = strconv.AppendUint(b, h.Sum64(), 16)
		}
	}
	b = append(b, '-')
	b = strconv.AppendInt(b, fi.Size(), 16)
	if gz {
		b = append(b, "-gz"...)
	}
	return string(append(b, '"'))
}

// serveMaxHashed bounds the files whose content is hashed for an ETag.
const serveMaxHashed = 16 << 20

// serveKnownTime reports whether a modification time means something (not zero,
// not the Unix epoch some file systems report for "unknown").
func serveKnownTime(t time.Time) bool { return t.Unix() > 0 }

// serveTimeFormat is the IMF-fixdate of RFC 9110 (http.TimeFormat).
const serveTimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// serveParseTime accepts the three date formats of RFC 9110 section 5.6.7.
func serveParseTime(v []byte) (time.Time, bool) {
	s := strings.TrimSpace(string(v))
	for _, layout := range [...]string{serveTimeFormat, "Monday, 02-Jan-06 15:04:05 GMT", "Mon Jan _2 15:04:05 2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// serveScanETag splits the first entity-tag off s: the tag (W/ included), the
// rest, and whether one was there.
func serveScanETag(s string) (etag, rest string, ok bool) {
	s = strings.TrimLeft(s, " \t")
	start := 0
	if strings.HasPrefix(s, "W/") {
		start = 2
	}
	if len(s)-start < 2 || s[start] != '"' {
		return "", "", false
	}
	for i := start + 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return s[:i+1], s[i+1:], true
		case c == 0x21 || c >= 0x23 && c <= 0x7e || c >= 0x80:
		default:
			return "", "", false
		}
	}
	return "", "", false
}

// serveETagMatch reports whether the list header (If-Match, If-None-Match)
// names etag, or is "*"; weak compares W/ tags by their opaque part.
func serveETagMatch(list []byte, etag string, weak bool) bool {
	s := strings.TrimSpace(string(list))
	if s == "*" {
		return true
	}
	for s != "" {
		if s[0] == ',' || s[0] == ' ' || s[0] == '\t' {
			s = s[1:]
			continue
		}
		t, rest, ok := serveScanETag(s)
		if !ok {
			return false
		}
		if weak {
			if strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
				return true
			}
		} else if !strings.HasPrefix(t, "W/") && t == etag {
			return true
		}
		s = rest
	}
	return false
}

// preconditions evaluates RFC 9110 section 13.2.2's conditional headers in
// order: 0 to go on, 304 or 412 to stop with.
func (r *serveReq) preconditions(etag string, mtime time.Time) int {
	hm := r.hm
	if im := hm.Header("If-Match"); im != nil {
		if !serveETagMatch(im, etag, false) {
			return 412
		}
	} else if ius := hm.Header("If-Unmodified-Since"); ius != nil {
		if t, ok := serveParseTime(ius); ok && serveKnownTime(mtime) && mtime.Truncate(time.Second).After(t) {
			return 412
		}
	}
	if inm := hm.Header("If-None-Match"); inm != nil {
		if serveETagMatch(inm, etag, true) {
			return 304
		}
	} else if ims := hm.Header("If-Modified-Since"); ims != nil {
		if t, ok := serveParseTime(ims); ok && serveKnownTime(mtime) && !mtime.Truncate(time.Second).After(t) {
			return 304
		}
	}
	return 0
}

// ifRangeHolds reports whether If-Range (absent, or a strong ETag or the
// exact Last-Modified date) lets the Range header apply.
func (r *serveReq) ifRangeHolds(etag string, mtime time.Time) bool {
	ir := r.hm.Header("If-Range")
	if ir == nil {
		return true
	}
	s := strings.TrimSpace(string(ir))
	if t, rest, ok := serveScanETag(s); ok {
		return rest == "" && !strings.HasPrefix(t, "W/") && t == etag
	}
	t, ok := serveParseTime(ir)
	return ok && serveKnownTime(mtime) && t.Unix() == mtime.Unix()
}

// errServeRange is a Range that selects nothing of the file (416).
var errServeRange = errors.New("range not satisfiable")

// serveParseRange reads a Range header for a file of size bytes: the one byte
// range it asks for (ok), or nothing to apply (ok false, err nil: no
// header, another unit, or several ranges), or errServeRange.
//
// Several ranges are answered with the whole file (200), as RFC 9110
// section 14.2 allows: a multipart/byteranges body costs more to build than
// it saves, and clients (browsers resuming, video players) ask for one.
func serveParseRange(h []byte, size int64) (start, length int64, ok bool, err error) {
	s := strings.TrimSpace(string(h))
	if s == "" || size == 0 {
		// An empty file has no byte to select: send it whole.
		return 0, 0, false, nil
	}
	unit, set, found := strings.Cut(s, "=")
	if !found || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return 0, 0, false, nil // a unit we do not know is ignored
	}
	var spec string
	n := 0
	for item := range strings.SplitSeq(set, ",") {
		if item = strings.TrimSpace(item); item != "" {
			spec = item
			n++
		}
	}
	if n == 0 {
		return 0, 0, false, errServeRange
	}
	if n > 1 {
		return 0, 0, false, nil // several ranges: the whole file (see above)
	}
	first, last, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false, errServeRange
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		// A suffix: the last N bytes (all of a shorter file).
		n, perr := serveDigits(last)
		if perr != nil || n == 0 {
			return 0, 0, false, errServeRange
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	a, perr := serveDigits(first)
	if perr != nil || a >= size {
		return 0, 0, false, errServeRange
	}
	b := size - 1
	if last != "" {
		if b, perr = serveDigits(last); perr != nil || b < a {
			return 0, 0, false, errServeRange
		}
		b = min(b, size-1) // an end past the file is clamped
	}
	return a, b - a + 1, true, nil
}

// serveDigits reads a non-negative decimal number (digits only, no sign).
func serveDigits(s string) (int64, error) {
	if s == "" {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// serveContent answers with the open file f (name gives the MIME type; gz
// says f is name's .gz sibling). status is 200, or 404 for the custom page,
// which gets neither conditional nor range handling. f is closed when the
// response ends or the connection closes.
func (r *serveReq) serveContent(name string, f fs.File, fi fs.FileInfo, gz bool, status int) {
	m := r.c.m
	size := fi.Size()
	mtime := fi.ModTime()
	etag := serveETag(f, fi, gz)
	start, length := int64(0), size
	var rangeErr error
	ranged := false
	if status == 200 {
		if st := r.preconditions(etag, mtime); st != 0 {
			f.Close()
			if st == 304 {
				b := httpStatusLine(m.headBuf[:0], 304)
				b = r.validators(b, etag, mtime, gz)
				r.send(r.endHead(b), nil)
				return
			}
			r.replyError(st)
			return
		}
		if rh := r.hm.Header("Range"); rh != nil && !r.isHead && r.ifRangeHolds(etag, mtime) {
			var a, n int64
			if a, n, ranged, rangeErr = serveParseRange(rh, size); ranged {
				start, length = a, n
			}
		}
	}
	if rangeErr != nil {
		f.Close()
		b := httpStatusLine(m.headBuf[:0], 416)
		b = append(b, "Content-Range: bytes */"...)
		b = strconv.AppendInt(b, size, 10)
		b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\n"...)
		msg := "Range Not Satisfiable\n"
		b = serveAppendLength(b, len(msg))
		r.send(r.endHead(b), []byte(msg))
		return
	}
	if ranged {
		if start > 0 {
			if err := serveSkip(f, start); err != nil {
				f.Close()
				m.log().Warn("meerkat: cannot seek in a served file", "conn", r.c.id, "file", name, "err", err)
				r.replyError(500)
				return
			}
		}
		if status == 200 {
			status = 206
		}
	}
	b := httpStatusLine(m.headBuf[:0], status)
	b = append(b, "Content-Type: "...)
	b = append(b, serveMIMEType(name, r.opts.MIMETypes)...)
	b = append(b, "\r\n"...)
	b = serveAppendLength(b, int(length))
	if ranged {
		b = append(b, "Content-Range: bytes "...)
		b = strconv.AppendInt(b, start, 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, start+length-1, 10)
		b = append(b, '/')
		b = strconv.AppendInt(b, size, 10)
		b = append(b, "\r\n"...)
	}
	if gz {
		b = append(b, "Content-Encoding: gzip\r\n"...)
	}
	if status != 404 {
		b = r.validators(b, etag, mtime, gz)
		b = append(b, "Accept-Ranges: bytes\r\n"...)
	}
	b = r.endHead(b)
	if r.isHead || length == 0 {
		f.Close()
		r.send(b, nil)
		return
	}
	if !r.c.Send(b) {
		f.Close()
		r.sendFailed()
		return
	}
	s := &serveStream{r: f, closer: f, remain: length}
	if osf, ok := f.(*os.File); ok {
		// On a plain connection of the epoll driver the kernel sends the
		// file (sendfile); the offset is where the range starts.
		if off, err := osf.Seek(0, io.SeekCurrent); err == nil {
			s.osf, s.off = osf, off
		}
	}
	r.stream(s)
}

// validators appends ETag, Last-Modified and, for a .gz variant, Vary.
func (r *serveReq) validators(b []byte, etag string, mtime time.Time, gz bool) []byte {
	b = append(b, "ETag: "...)
	b = append(b, etag...)
	b = append(b, "\r\n"...)
	if serveKnownTime(mtime) {
		b = append(b, "Last-Modified: "...)
		b = mtime.UTC().AppendFormat(b, serveTimeFormat)
		b = append(b, "\r\n"...)
	}
	if gz {
		b = append(b, "Vary: Accept-Encoding\r\n"...)
	}
	return b
}

// serveSkip moves f to offset: a Seek when f can, reading otherwise.
func serveSkip(f fs.File, offset int64) error {
	if s, ok := f.(io.Seeker); ok {
		_, err := s.Seek(offset, io.SeekStart)
		return err
	}
	_, err := io.CopyN(io.Discard, f, offset)
	return err
}

func serveAppendLength(b []byte, n int) []byte {
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, "\r\n"...)
}

// endHead appends the extra headers, "Connection: close" when the
// connection ends after this response, and the empty line.
func (r *serveReq) endHead(b []byte) []byte {
	if x := r.opts.ExtraHeaders; x != "" {
		b = append(b, x...)
		if !strings.HasSuffix(x, "\r\n") {
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, httpConnectionHeader(r.c)...)
	b = append(b, "\r\n"...)
	r.c.m.headBuf = b
	return b
}

// send queues a whole response (head, and body unless the request was
// HEAD) in one piece and ends it.
func (r *serveReq) send(head, body []byte) {
	m := r.c.m
	b := head
	if len(body) > 0 && !r.isHead {
		b = append(b, body...)
		m.headBuf = b
	}
	ok := r.c.Send(b)
	if cap(m.headBuf) > servePiece {
		m.headBuf = nil
	}
	if !ok {
		r.sendFailed()
		return
	}
	httpResponseDone(r.c)
}

// sendFailed ends a connection whose response could not be queued (over
// SendLimit, or closing): what follows would not match what was promised.
func (r *serveReq) sendFailed() {
	r.c.m.log().Warn("meerkat: response refused by the send buffer; closing", "conn", r.c.id)
	r.c.Close()
}

// reply sends a small response with a body.
func (r *serveReq) reply(status int, headers, contentType string, body []byte) {
	b := httpStatusLine(r.c.m.headBuf[:0], status)
	b = append(b, headers...)
	b = append(b, "Content-Type: "...)
	b = append(b, contentType...)
	b = append(b, "\r\n"...)
	b = serveAppendLength(b, len(body))
	r.send(r.endHead(b), body)
}

// replyError sends a plain-text error response.
func (r *serveReq) replyError(status int) {
	r.reply(status, "", "text/plain; charset=utf-8", []byte(HTTPStatusText(status)+"\n"))
}

// redirectToDir answers 301 with the directory's path and its slash (the
// query kept). The location is built from the cleaned name, so it is
// always a local path ("//host" cannot come back as one).
func (r *serveReq) redirectToDir(name string) {
	loc := "/" + (&url.URL{Path: name}).EscapedPath() + "/"
	if name == "." {
		loc = "/"
	}
	if len(r.hm.Query) > 0 {
		loc += "?" + string(r.hm.Query)
	}
	body := "Moved Permanently: " + loc + "\n"
	r.reply(301, "Location: "+loc+"\r\n", "text/plain; charset=utf-8", []byte(body))
}

// serveStream is a response body going out piece by piece through HTTPPump.
type serveStream struct {
	r      io.Reader
	closer io.Closer // released when the body ends or the connection closes
	remain int64
	osf    *os.File // the file, when the kernel may send it (sendfile)
	off    int64    // osf's offset where the body starts
	queued bool     // osf's bytes are queued on the connection
}

// stream sends s's body, now or over the following iterations.
func (r *serveReq) stream(s *serveStream) {
	c := r.c
	h := httpOf(c)
	if h == nil || h.client {
		// Not an HTTP server connection: there is no pump; send what fits.
		for !s.pump(c) {
			if c.send.Len() >= c.m.sendLimit() {
				s.release()
				r.sendFailed()
				return
			}
		}
		return
	}
	if s.pump(c) {
		httpResponseDone(c)
		return
	}
	// The rest goes out as the send buffer drains; if the connection
	// closes first, HTTPPump calls the pump once more to release the file.
	HTTPPump(c, s.pump)
}

// servePieces are the buffers pieces of a body pass through on their way
// into the send buffer.
var servePieces = sync.Pool{New: func() any { b := make([]byte, servePiece); return &b }}

// pump moves the next piece of the body into the send buffer, never past
// Manager.SendLimit. It reports true when the body is complete.
func (s *serveStream) pump(c *Conn) bool {
	if s.r == nil {
		return true
	}
	if c.IsClosing() {
		s.release()
		return true
	}
	if s.osf != nil {
		switch {
		case s.queued && c.fileQueued():
			return false // the kernel is still sending it
		case s.queued:
			s.release()
			return true
		case c.queueFile(s.osf, s.off, s.remain):
			s.queued = true
			return false
		}
		s.osf = nil // this connection cannot: read and send the pieces
	}
	room := min(int64(servePiece), s.remain, int64(c.m.sendLimit()-c.SendLen()))
	if room <= 0 {
		return false // the send buffer is full: wait for it to drain
	}
	bp := servePieces.Get().(*[]byte)
	n, err := io.ReadFull(s.r, (*bp)[:room])
	sent := n == 0 || c.Send((*bp)[:n])
	servePieces.Put(bp)
	if !sent {
		c.m.log().Warn("meerkat: response body refused by the send buffer; closing", "conn", c.id)
		c.Close()
		s.release()
		return true
	}
	s.remain -= int64(n)
	if err != nil && s.remain > 0 {
		// The file shrank or failed under us: the promised length cannot be
		// met. Send what there is and end the connection, so the client
		// sees a short body rather than a misframed one.
		c.m.log().Warn("meerkat: served file ended early", "conn", c.id, "missing", s.remain, "err", err)
		if h := httpOf(c); h != nil {
			h.keepAlive = false
		}
		c.Drain()
		s.remain = 0
	}
	if s.remain > 0 {
		return false
	}
	s.release()
	return true
}

// release closes the file; it is idempotent.
func (s *serveStream) release() {
	if s.closer != nil {
		s.closer.Close()
	}
	s.closer, s.r = nil, nil
}

// serveDirEntry is one line of a directory listing.
type serveDirEntry struct {
	name  string
	isDir bool
	size  int64
	mtime time.Time
}

// serveListing answers with an HTML listing of the directory name.
func (r *serveReq) serveListing(name string) {
	f, err := r.src.open(name)
	if err != nil {
		r.notFound()
		return
	}
	rd, ok := f.(fs.ReadDirFile)
	if !ok {
		f.Close()
		r.replyError(403)
		return
	}
	ents, err := rd.ReadDir(-1)
	f.Close()
	if err != nil {
		r.c.m.log().Warn("meerkat: cannot list a directory", "conn", r.c.id, "dir", name, "err", err)
		r.replyError(500)
		return
	}
	list := make([]serveDirEntry, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			// List what the link leads to, and only if it may be served.
			if fi, err = r.src.stat(path.Join(name, e.Name())); err != nil {
				continue
			}
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			continue
		}
		list = append(list, serveDirEntry{name: e.Name(), isDir: fi.IsDir(), size: fi.Size(), mtime: fi.ModTime()})
	}
	q, _ := url.ParseQuery(string(r.hm.Query))
	key, desc := q.Get("sort"), q.Get("order") == "desc"
	serveSortEntries(list, key, desc)

	title := "/"
	if name != "." {
		title += name + "/"
	}
	var b bytes.Buffer
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ")
	b.WriteString(html.EscapeString(title))
	b.WriteString("</title>\n<style>th,td{text-align:left;padding:0 1em}td.size{text-align:right}</style></head>\n<body><h1>Index of ")
	b.WriteString(html.EscapeString(title))
	b.WriteString("</h1>\n<table>\n<tr>")
	for _, col := range [...][2]string{{"name", "Name"}, {"size", "Size"}, {"date", "Modified"}} {
		order := "asc"
		if cmp.Or(key, "name") == col[0] && !desc {
			order = "desc"
		}
		b.WriteString("<th><a href=\"?sort=" + col[0] + "&amp;order=" + order + "\">" + col[1] + "</a></th>")
	}
	b.WriteString("</tr>\n")
	if name != "." {
		b.WriteString("<tr><td><a href=\"../\">../</a></td><td class=\"size\">-</td><td></td></tr>\n")
	}
	for _, e := range list {
		href := "./" + url.PathEscape(e.name)
		label := e.name
		size := "-"
		if e.isDir {
			href += "/"
			label += "/"
		} else {
			size = strconv.FormatInt(e.size, 10)
		}
		b.WriteString("<tr><td><a href=\"" + html.EscapeString(href) + "\">" + html.EscapeString(label) + "</a></td>")
		b.WriteString("<td class=\"size\">" + size + "</td><td>" + e.mtime.UTC().Format("2006-01-02 15:04:05") + "</td></tr>\n")
	}
	b.WriteString("</table></body></html>\n")

	body := b.Bytes()
	hb := httpStatusLine(r.c.m.headBuf[:0], 200)
	hb = append(hb, "Content-Type: text/html; charset=utf-8\r\n"...)
	hb = serveAppendLength(hb, len(body))
	hb = r.endHead(hb)
	if r.isHead || len(body) <= servePiece {
		r.send(hb, body)
		return
	}
	if !r.c.Send(hb) {
		r.sendFailed()
		return
	}
	r.stream(&serveStream{r: bytes.NewReader(body), remain: int64(len(body))})
}

// serveSortEntries orders a listing: directories first, then by key ("name",
// "size" or "date"; name otherwise), ascending unless desc, ties by name.
func serveSortEntries(list []serveDirEntry, key string, desc bool) {
	slices.SortFunc(list, func(a, b serveDirEntry) int {
		if a.isDir != b.isDir {
			if a.isDir {
				return -1
			}
			return 1
		}
		c := 0
		switch key {
		case "size":
			c = cmp.Compare(a.size, b.size)
		case "date":
			c = a.mtime.Compare(b.mtime)
		}
		if c == 0 {
			c = strings.Compare(a.name, b.name)
		}
		if desc {
			c = -c
		}
		return c
	})
}

// serveMIMEType returns the Content-Type for a file name: the user's table
// first, then the built-in one, by extension (case-insensitive);
// "application/octet-stream" when neither knows it.
func serveMIMEType(name string, user map[string]string) string {
	ext := path.Ext(name)
	if ext == "" {
		return "application/octet-stream"
	}
	ext = ext[1:]
	if user != nil {
		if t, ok := user[ext]; ok {
			return t
		}
		if t, ok := user[strings.ToLower(ext)]; ok {
			return t
		}
		if t, ok := user["."+ext]; ok {
			return t
		}
	}
	if t, ok := serveMIMETable[ext]; ok {
		return t
	}
	if t, ok := serveMIMETable[strings.ToLower(ext)]; ok {
		return t
	}
	return "application/octet-stream"
}

// serveMIMETable is the built-in table of the web's common types.
var serveMIMETable = map[string]string{
	"html":        "text/html; charset=utf-8",
	"htm":         "text/html; charset=utf-8",
	"shtml":       "text/html; charset=utf-8",
	"css":         "text/css; charset=utf-8",
	"js":          "text/javascript; charset=utf-8",
	"mjs":         "text/javascript; charset=utf-8",
	"json":        "application/json",
	"map":         "application/json",
	"webmanifest": "application/manifest+json",
	"txt":         "text/plain; charset=utf-8",
	"text":        "text/plain; charset=utf-8",
	"log":         "text/plain; charset=utf-8",
	"md":          "text/markdown; charset=utf-8",
	"csv":         "text/csv; charset=utf-8",
	"xml":         "text/xml; charset=utf-8",
	"yaml":        "application/yaml",
	"yml":         "application/yaml",
	"toml":        "application/toml",
	"ics":         "text/calendar; charset=utf-8",
	"svg":         "image/svg+xml",
	"png":         "image/png",
	"jpg":         "image/jpeg",
	"jpeg":        "image/jpeg",
	"gif":         "image/gif",
	"webp":        "image/webp",
	"avif":        "image/avif",
	"ico":         "image/x-icon",
	"bmp":         "image/bmp",
	"tif":         "image/tiff",
	"tiff":        "image/tiff",
	"woff":        "font/woff",
	"woff2":       "font/woff2",
	"ttf":         "font/ttf",
	"otf":         "font/otf",
	"eot":         "application/vnd.ms-fontobject",
	"wasm":        "application/wasm",
	"pdf":         "application/pdf",
	"rtf":         "application/rtf",
	"zip":         "application/zip",
	"gz":          "application/gzip",
	"tgz":         "application/gzip",
	"tar":         "application/x-tar",
	"bz2":         "application/x-bzip2",
	"xz":          "application/x-xz",
	"zst":         "application/zstd",
	"7z":          "application/x-7z-compressed",
	"mp3":         "audio/mpeg",
	"m4a":         "audio/mp4",
	"aac":         "audio/aac",
	"oga":         "audio/ogg",
	"ogg":         "audio/ogg",
	"opus":        "audio/opus",
	"wav":         "audio/wav",
	"flac":        "audio/flac",
	"mp4":         "video/mp4",
	"m4v":         "video/mp4",
	"webm":        "video/webm",
	"ogv":         "video/ogg",
	"mov":         "video/quicktime",
	"mkv":         "video/x-matroska",
	"avi":         "video/x-msvideo",
	"m3u8":        "application/vnd.apple.mpegurl",
	"ts":          "video/mp2t",
	"bin":         "application/octet-stream",
	"exe":         "application/octet-stream",
}
