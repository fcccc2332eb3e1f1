package main

import (
	"context"
	"crypto/subtle"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/meerkat-net/meerkat"
)

const serveHelp = `Usage:
  meerkat serve [flags]

Serve the files of a directory over HTTP and HTTPS: index.html for
directories that have one, a sortable listing for those that do not, ranges,
conditional requests and precompressed .gz files. Without flags it serves the
current directory on http://localhost:8000.

Each --listen URL is http://HOST:PORT or https://HOST:PORT (repeatable). An
https:// listener uses --cert and --key (PEM files); without them it makes a
self-signed certificate in memory and prints its SHA-256 fingerprint, which a
client can check (curl: --cacert on a saved copy, or -k).

With --upload, files can be added to the root: PUT /path/NAME (any size,
streamed), a multipart/form-data POST (as an HTML form sends; up to 64 MiB),
or POST /?file=NAME&offset=N with a raw body (a file sent in parts).

With --ws PATH, PATH is a WebSocket broadcast hub: every message a client
sends there goes to every other client connected to it. A plain GET of PATH
shows a small page that uses it (open it in two browser tabs).

One access-log line per request goes to standard output. SIGINT or SIGTERM
lets responses in flight finish, then exits with status 0.

Flags:
`

// listenList collects repeated --listen flags.
type listenList []string

func (l *listenList) String() string { return strings.Join(*l, " ") }
func (l *listenList) Set(v string) error {
	if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		return fmt.Errorf("want http://HOST:PORT or https://HOST:PORT, got %q", v)
	}
	*l = append(*l, v)
	return nil
}

// server is one run of "meerkat serve".
type server struct {
	root   string
	upload bool
	user   string
	pass   string
	cors   bool
	opts   meerkat.HTTPServeOptions
	hub    *hub // with --ws
	std    stdio
	log    *slog.Logger
}

func runServe(ctx context.Context, args []string, std stdio) int {
	fs := flag.NewFlagSet("meerkat serve", flag.ContinueOnError)
	fs.SetOutput(std.err)
	var listen listenList
	fs.Var(&listen, "listen", "listen on `URL` (repeatable; default http://localhost:8000)")
	root := fs.String("root", ".", "serve the files below `DIR`")
	upload := fs.Bool("upload", false, "accept uploads into the root (PUT, multipart POST)")
	auth := fs.String("auth", "", "require HTTP Basic authentication as `USER:PASS`")
	cors := fs.Bool("cors", false, "allow cross-origin requests (Access-Control-Allow-Origin: *)")
	certFile := fs.String("cert", "", "TLS certificate `FILE` (PEM) for https:// listeners")
	keyFile := fs.String("key", "", "TLS private key `FILE` (PEM) for https:// listeners")
	wsPath := fs.String("ws", "", "a WebSocket broadcast hub at `PATH` (and its demo page)")
	level := fs.String("v", "info", "log `LEVEL`: error, warn, info or debug")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveHelp)
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err == flag.ErrHelp {
		fs.SetOutput(std.out)
		fs.Usage()
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(std.err, "meerkat serve: unexpected argument %q (the directory is --root DIR)\n", pos[0])
		return exitUsage
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(std.err, "meerkat serve: bad -v %q: want error, warn, info or debug\n", *level)
		return exitUsage
	}
	if (*certFile == "") != (*keyFile == "") {
		fmt.Fprintln(std.err, "meerkat serve: --cert and --key go together")
		return exitUsage
	}
	if len(listen) == 0 {
		listen = listenList{"http://localhost:8000"}
	}
	abs, err := filepath.Abs(*root)
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(abs); err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s is not a directory", abs)
		}
	}
	if err != nil {
		fmt.Fprintf(std.err, "meerkat serve: %v\n", err)
		return exitFailure
	}
	s := &server{root: abs, upload: *upload, cors: *cors, std: std}
	s.log = slog.New(slog.NewTextHandler(std.err, &slog.HandlerOptions{Level: lvl}))
	if *auth != "" {
		var ok bool
		if s.user, s.pass, ok = strings.Cut(*auth, ":"); !ok || s.user == "" {
			fmt.Fprintln(std.err, "meerkat serve: --auth wants USER:PASS")
			return exitUsage
		}
	}
	if *wsPath != "" {
		if !strings.HasPrefix(*wsPath, "/") || strings.ContainsAny(*wsPath, "?# ") {
			fmt.Fprintf(std.err, "meerkat serve: --ws wants a path such as /ws, got %q\n", *wsPath)
			return exitUsage
		}
		s.hub = &hub{path: *wsPath, conns: map[*meerkat.Conn]struct{}{}, s: s}
	}
	s.opts = meerkat.HTTPServeOptions{RootDir: abs}
	if s.cors {
		s.opts.ExtraHeaders = "Access-Control-Allow-Origin: *\r\n"
	}

	mgr := meerkat.NewManager()
	defer mgr.Close()
	mgr.Logger = s.log
	mgr.HTTP.AccessLog = s.accessLog
	if *upload {
		mgr.RecvLimit = 64 << 20 // whole multipart forms
	}
	needTLS := false
	for _, u := range listen {
		needTLS = needTLS || strings.HasPrefix(u, "https://")
	}
	if needTLS {
		cfg, fingerprint, err := serverTLS(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintf(std.err, "meerkat serve: %v\n", err)
			return exitFailure
		}
		mgr.TLSConfig = cfg
		if fingerprint != "" {
			fmt.Fprintf(std.out, "meerkat: self-signed certificate, SHA-256 fingerprint %s\n", fingerprint)
		}
	}
	for _, u := range listen {
		l, err := mgr.HTTPListen(u, s.handle)
		if err != nil {
			fmt.Fprintf(std.err, "meerkat serve: %v\n", err)
			return exitFailure
		}
		at := listenedURL(u, l)
		fmt.Fprintf(std.out, "meerkat: serving %s on %s\n", abs, at)
		if s.hub != nil {
			ws := "ws" + strings.TrimPrefix(strings.TrimSuffix(at, "/"), "http")
			fmt.Fprintf(std.out, "meerkat: WebSocket hub on %s%s (demo page: %s%s)\n", ws, s.hub.path, strings.TrimSuffix(at, "/"), s.hub.path)
		}
	}
	if err := mgr.Run(ctx); err != nil && err != context.DeadlineExceeded {
		fmt.Fprintf(std.err, "meerkat serve: %v\n", err)
	}
	return exitOK
}

// listenedURL is the URL a listener answers on, with the port it got.
func listenedURL(raw string, l *meerkat.Conn) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	host := u.Hostname()
	if host == "" {
		host = "localhost"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s://%s:%d/", u.Scheme, host, l.LocalAddr().Port())
}

func (s *server) accessLog(a *meerkat.HTTPAccess) {
	status := "-"
	if a.Status != 0 {
		status = fmt.Sprint(a.Status)
	}
	fmt.Fprintf(s.std.out, "%s - - [%s] %q %s %d %.1fms\n",
		a.Conn.RemoteAddr().Addr(), time.Now().Format("02/Jan/2006:15:04:05 -0700"),
		a.Method+" "+a.URI+" "+a.Proto, status, a.Bytes, float64(a.Duration.Microseconds())/1000)
}

func (s *server) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvHTTPHeaders:
		hm := data.(*meerkat.HTTPMessage)
		if !s.authorized(c, hm) {
			return // answered 401 from the head
		}
		if s.upload && string(hm.Method) == "PUT" {
			s.startPut(c, hm)
		}
	case meerkat.EvHTTPChunk:
		s.putChunk(c, data.(*meerkat.HTTPMessage))
	case meerkat.EvHTTPMsg:
		s.request(c, data.(*meerkat.HTTPMessage))
	case meerkat.EvWSOpen, meerkat.EvWSMsg:
		s.hub.event(c, ev, data)
	case meerkat.EvClose:
		if u, ok := c.UserData.(*putUpload); ok { // a PUT cut short
			u.abort()
		}
		if s.hub != nil {
			s.hub.event(c, ev, data)
		}
	}
}

// authorized checks --auth, answering 401 when the credentials are wrong.
func (s *server) authorized(c *meerkat.Conn, hm *meerkat.HTTPMessage) bool {
	if s.user == "" || (s.cors && string(hm.Method) == "OPTIONS") {
		return true
	}
	user, pass := meerkat.HTTPCreds(hm)
	if subtle.ConstantTimeCompare([]byte(user), []byte(s.user)) == 1 &&
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.pass)) == 1 {
		return true
	}
	meerkat.HTTPReply(c, 401, "WWW-Authenticate: Basic realm=\"meerkat\"\r\n"+s.opts.ExtraHeaders, "authentication required\n")
	return false
}

func (s *server) request(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
	method := string(hm.Method)
	switch {
	case s.cors && method == "OPTIONS":
		meerkat.HTTPReply(c, 204, "Access-Control-Allow-Origin: *\r\n"+
			"Access-Control-Allow-Methods: GET, HEAD, POST, PUT, OPTIONS\r\n"+
			"Access-Control-Allow-Headers: *\r\nAccess-Control-Max-Age: 86400\r\n", "")
	case s.hub.request(c, hm):
	case s.upload && method == "PUT":
		s.finishPut(c)
	case s.upload && method == "POST":
		s.post(c, hm)
	default:
		meerkat.HTTPServeDir(c, hm, &s.opts)
	}
}

// localPath maps a request path to a file below the root, or "" if the
// path is malformed or would leave the root.
func (s *server) localPath(uri []byte) string {
	p, err := url.PathUnescape(string(uri))
	if err != nil || strings.ContainsAny(p, "\x00\\") || !strings.HasPrefix(p, "/") {
		return ""
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return ""
		}
	}
	clean := path.Clean(p)
	if clean == "/" {
		return ""
	}
	return filepath.Join(s.root, filepath.FromSlash(clean))
}

// putUpload is a PUT in progress: the temporary file its body goes to and
// the name it gets when complete.
type putUpload struct {
	f      *os.File
	target string
}

// startPut opens the file a PUT writes, and streams the body into it.
func (s *server) startPut(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
	name := s.localPath(hm.URI)
	if name == "" || strings.HasSuffix(string(hm.URI), "/") {
		meerkat.HTTPReply(c, 400, s.opts.ExtraHeaders, "bad upload path\n")
		return
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".upload-*")
	if err != nil {
		meerkat.HTTPReply(c, 500, s.opts.ExtraHeaders, "cannot create %s: %v\n", path.Base(name), err)
		return
	}
	c.UserData = &putUpload{f, name}
	meerkat.HTTPStreamBody(c)
}

func (s *server) putChunk(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
	u, ok := c.UserData.(*putUpload)
	if !ok {
		return
	}
	if _, err := u.f.Write(hm.Body); err != nil {
		s.log.Error("upload failed", "file", u.target, "err", err)
		u.abort()
		c.UserData = nil
		meerkat.HTTPReply(c, 500, "Connection: close\r\n", "write failed: %v\n", err)
		c.Drain()
	}
}

// abort drops an unfinished upload.
func (u *putUpload) abort() {
	u.f.Close()
	os.Remove(u.f.Name())
}

// finishPut moves a complete upload into place.
func (s *server) finishPut(c *meerkat.Conn) {
	u, ok := c.UserData.(*putUpload)
	if !ok {
		return // answered already
	}
	c.UserData = nil
	err := u.f.Close()
	if err == nil {
		err = os.Rename(u.f.Name(), u.target)
	}
	if err != nil {
		os.Remove(u.f.Name())
		meerkat.HTTPReply(c, 500, s.opts.ExtraHeaders, "upload failed: %v\n", err)
		return
	}
	meerkat.HTTPReply(c, 201, s.opts.ExtraHeaders, "created\n")
}

// post stores the files of a multipart form, or one part of a file sent
// with ?file=NAME&offset=N.
func (s *server) post(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
	if _, ok := meerkat.HTTPVar(hm.Query, "file"); ok {
		meerkat.HTTPUpload(c, hm, s.uploadDir(hm.URI), 1<<40)
		return
	}
	stored := 0
	var part meerkat.HTTPPart
	for off := meerkat.HTTPNextMultipart(hm.Body, 0, &part); off > 0; off = meerkat.HTTPNextMultipart(hm.Body, off, &part) {
		if len(part.Filename) == 0 {
			continue // a plain form field
		}
		base := path.Base(strings.ReplaceAll(string(part.Filename), "\\", "/"))
		if base == "." || base == "/" || base == ".." || strings.ContainsRune(base, 0) {
			meerkat.HTTPReply(c, 400, s.opts.ExtraHeaders, "bad file name %q\n", part.Filename)
			return
		}
		if err := os.WriteFile(filepath.Join(s.uploadDir(hm.URI), base), part.Body, 0o644); err != nil {
			meerkat.HTTPReply(c, 500, s.opts.ExtraHeaders, "cannot store %s: %v\n", base, err)
			return
		}
		stored++
	}
	if stored == 0 {
		meerkat.HTTPReply(c, 400, s.opts.ExtraHeaders, "no file in the form\n")
		return
	}
	meerkat.HTTPReply(c, 303, "Location: "+string(hm.URI)+"\r\n"+s.opts.ExtraHeaders, "%d file(s) stored\n", stored)
}

// uploadDir is the directory a POST to uri stores into: uri's directory
// below the root, or the root.
func (s *server) uploadDir(uri []byte) string {
	if dir := s.localPath(uri); dir != "" {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
	}
	return s.root
}
