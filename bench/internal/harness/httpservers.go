package harness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	llibtls "github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/meerkat-net/meerkat"
	"github.com/valyala/fasthttp"
)

// HTTPServer names one HTTP server implementation of the HTTP benchmarks.
// Every one answers GET / with "Hello, World!" (text/plain) and any other
// path with a file of the root directory, through its own file server. None
// counts connections or requests (Conns is -1 but for Meerkat, which counts
// on EvAccept and EvClose): nothing is added to the per-request path.
type HTTPServer string

// The HTTP servers.
const (
	HTTPMeerkatEpoll    HTTPServer = "meerkat-epoll"    // HTTPListen on the epoll driver, HTTPServeDir
	HTTPMeerkatPortable HTTPServer = "meerkat-portable" // the same on the portable driver
	HTTPNetHTTP         HTTPServer = "nethttp"          // net/http, http.FileServer
	HTTPFastHTTP        HTTPServer = "fasthttp"         // fasthttp.Server, fasthttp.FS
	HTTPNbio            HTTPServer = "nbio"             // nbio's nbhttp with an http.Handler, http.FileServer
)

// HTTPServers lists every HTTP server, in the order reports show them.
var HTTPServers = []HTTPServer{HTTPMeerkatEpoll, HTTPMeerkatPortable, HTTPNetHTTP, HTTPFastHTTP, HTTPNbio}

// ParseHTTPServers parses a comma-separated list of HTTP servers ("all" for
// every one).
func ParseHTTPServers(s string) ([]HTTPServer, error) {
	if s == "" || s == "all" {
		return HTTPServers, nil
	}
	var out []HTTPServer
	for _, f := range strings.Split(s, ",") {
		v := HTTPServer(strings.TrimSpace(f))
		found := false
		for _, k := range HTTPServers {
			found = found || k == v
		}
		if !found {
			return nil, fmt.Errorf("unknown HTTP server %q (known: %v)", v, HTTPServers)
		}
		out = append(out, v)
	}
	return out, nil
}

// HelloBody is the hello-world answer, 13 bytes of text/plain.
const HelloBody = "Hello, World!"

var (
	helloBytes  = []byte(HelloBody)
	helloLength = strconv.Itoa(len(HelloBody))
)

// httpKindPrefix marks a child process's Kind as an HTTP benchmark server:
// "httpbench/SERVER", "httpbench/SERVER+tls" or, with session tickets
// disabled, "httpbench/SERVER+tls-notickets".
const (
	httpKindPrefix = "httpbench/"
	tlsNoTickets   = "-notickets"
)

// envRoot is the directory the HTTP servers serve files from.
const envRoot = "MEERKAT_BENCH_ROOT"

func httpKind(s HTTPServer, useTLS bool) Kind {
	k := httpKindPrefix + string(s)
	if useTLS {
		k += "+tls"
	}
	return Kind(k)
}

// startHTTPServer starts, in the child process, the HTTP server that kind
// (after httpKindPrefix) names.
func startHTTPServer(kind string) (server, error) {
	kind, noTickets := strings.CutSuffix(kind, tlsNoTickets)
	name, useTLS := strings.CutSuffix(kind, "+tls")
	root := os.Getenv(envRoot)
	if root == "" {
		return nil, errors.New(envRoot + " is not set")
	}
	var cfg *tls.Config
	if useTLS {
		// One configuration for the whole run, never rebuilt per
		// connection.
		var err error
		if cfg, err = ServerTLSConfig(); err != nil {
			return nil, err
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			countHandshake(cs.DidResume)
			return nil
		}
		cfg.SessionTicketsDisabled = noTickets
	}
	switch HTTPServer(name) {
	case HTTPMeerkatEpoll, HTTPMeerkatPortable:
		return startMeerkatHTTP(strings.TrimPrefix(name, "meerkat-"), root, cfg)
	case HTTPNetHTTP:
		return startStdHTTP(root, cfg)
	case HTTPFastHTTP:
		return startFastHTTP(root, cfg)
	case HTTPNbio:
		return startNbio(root, cfg)
	}
	return nil, fmt.Errorf("unknown HTTP server %q", name)
}

// The TLS handshakes a server process completed, full and resumed, counted
// by the servers' VerifyConnection callback (called for every handshake,
// resumptions included).
var tlsFull, tlsResumed atomic.Int64

func countHandshake(resumed bool) {
	if resumed {
		tlsResumed.Add(1)
	} else {
		tlsFull.Add(1)
	}
}

// meerkatHTTPServer is a Meerkat HTTP server: HTTPReply for GET /,
// HTTPServeDir for the rest.
type meerkatHTTPServer struct {
	addr     string
	m        *meerkat.Manager // only for Wakeup, safe from any goroutine
	listener uint64
	conns    atomic.Int64
	stopping atomic.Bool
	done     chan struct{}
}

func startMeerkatHTTP(drv, root string, cfg *tls.Config) (*meerkatHTTPServer, error) {
	s := &meerkatHTTPServer{done: make(chan struct{})}
	ready := make(chan error, 1)
	go s.run(drv, root, cfg, ready)
	if err := <-ready; err != nil {
		<-s.done
		return nil, err
	}
	return s, nil
}

func (s *meerkatHTTPServer) run(drv, root string, cfg *tls.Config, ready chan<- error) {
	defer close(s.done)
	m, err := meerkat.NewManagerDriver(drv)
	if err != nil {
		ready <- err
		return
	}
	defer m.Close()
	m.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	scheme := "http"
	if cfg != nil {
		m.TLSConfig, scheme = cfg, "https"
	}
	opts := &meerkat.HTTPServeOptions{RootDir: root}
	l, err := m.HTTPListen(scheme+"://127.0.0.1:0", func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvAccept:
			s.conns.Add(1)
		case meerkat.EvHTTPMsg:
			hm := data.(*meerkat.HTTPMessage)
			if len(hm.URI) == 1 && hm.URI[0] == '/' {
				meerkat.HTTPReply(c, 200, "Content-Type: text/plain\r\n", HelloBody)
			} else {
				meerkat.HTTPServeDir(c, hm, opts)
			}
		case meerkat.EvClose:
			if c.IsAccepted() {
				s.conns.Add(-1)
			}
		}
	})
	if err != nil {
		ready <- err
		return
	}
	s.addr, s.m, s.listener = l.LocalAddr().String(), m, l.ID()
	ready <- nil
	for !s.stopping.Load() {
		m.Poll(time.Second)
	}
}

func (s *meerkatHTTPServer) Addr() string { return s.addr }
func (s *meerkatHTTPServer) Conns() int64 { return s.conns.Load() }

// Stop ends the Poll loop; its goroutine closes the Manager.
func (s *meerkatHTTPServer) Stop() {
	s.stopping.Store(true)
	s.m.Wakeup(s.listener, nil)
	<-s.done
}

// stdHandler is the net/http (and nbio) handler: hello world for GET /,
// http.FileServer for the rest.
func stdHandler(root string) http.Handler {
	files := http.FileServer(http.Dir(root))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			// Content-Length given, as net/http would compute it: nbio
			// would otherwise send the body chunked.
			h := w.Header()
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Length", helloLength)
			w.Write(helloBytes)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// stdHTTPServer is net/http with its defaults (keep-alive, no timeouts).
type stdHTTPServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

func startStdHTTP(root string, cfg *tls.Config) (*stdHTTPServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &stdHTTPServer{ln: ln, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:   stdHandler(root),
		TLSConfig: cfg,
		// The defaults otherwise. wrk ends its runs with handshakes cut
		// short, which net/http would log one by one.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.done)
		var err error
		if cfg != nil {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "nethttp:", err)
		}
	}()
	return s, nil
}

func (s *stdHTTPServer) Addr() string { return s.ln.Addr().String() }
func (s *stdHTTPServer) Conns() int64 { return -1 }
func (s *stdHTTPServer) Stop()        { s.srv.Close(); <-s.done }

// fastHTTPServer is fasthttp.Server with its defaults; fasthttp.FS (its
// defaults too) serves the files. TLS goes through crypto/tls's listener.
type fastHTTPServer struct {
	ln   net.Listener
	srv  *fasthttp.Server
	done chan struct{}
}

func startFastHTTP(root string, cfg *tls.Config) (*fastHTTPServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &fastHTTPServer{ln: ln, done: make(chan struct{})}
	fsys := &fasthttp.FS{Root: root}
	files := fsys.NewRequestHandler()
	s.srv = &fasthttp.Server{
		// Its other settings are the defaults; the log would only
		// repeat the tests' deliberate 404s.
		Logger: log.New(io.Discard, "", 0),
		Handler: func(ctx *fasthttp.RequestCtx) {
			if p := ctx.Path(); len(p) == 1 && p[0] == '/' {
				ctx.SetContentType("text/plain")
				ctx.Write(helloBytes)
				return
			}
			files(ctx)
		},
	}
	serveLn := ln
	if cfg != nil {
		serveLn = tls.NewListener(ln, cfg)
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(serveLn); err != nil {
			fmt.Fprintln(os.Stderr, "fasthttp:", err)
		}
	}()
	return s, nil
}

func (s *fastHTTPServer) Addr() string { return s.ln.Addr().String() }
func (s *fastHTTPServer) Conns() int64 { return -1 }

func (s *fastHTTPServer) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.ShutdownWithContext(ctx)
	<-s.done
}

// nbioServer is nbio's nbhttp engine with its default settings (non-
// blocking mode, pollers sized from the CPU count) running the same
// http.Handler as net/http. Its TLS is nbio's own (a fork of crypto/tls in
// github.com/lesismal/llib), given the same certificate.
type nbioServer struct {
	addr string
	e    *nbhttp.Engine
}

func startNbio(root string, cfg *tls.Config) (*nbioServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	logging.SetLevel(logging.LevelError)
	s := &nbioServer{addr: ln.Addr().String()}
	conf := nbhttp.Config{
		Network: "tcp",
		Handler: stdHandler(root),
		// The listener made above, so that its free port is known.
		Listen: func(string, string) (net.Listener, error) { return ln, nil },
	}
	if cfg != nil {
		conf.AddrsTLS = []string{s.addr}
		conf.TLSConfig = &llibtls.Config{
			VerifyConnection: func(cs llibtls.ConnectionState) error {
				countHandshake(cs.DidResume)
				return nil
			},
			SessionTicketsDisabled: cfg.SessionTicketsDisabled,
		}
		for _, c := range cfg.Certificates {
			conf.TLSConfig.Certificates = append(conf.TLSConfig.Certificates,
				llibtls.Certificate{Certificate: c.Certificate, PrivateKey: c.PrivateKey})
		}
	} else {
		conf.Addrs = []string{s.addr}
	}
	s.e = nbhttp.NewEngine(conf)
	if err := s.e.Start(); err != nil {
		ln.Close()
		return nil, err
	}
	return s, nil
}

func (s *nbioServer) Addr() string { return s.addr }
func (s *nbioServer) Conns() int64 { return -1 }
func (s *nbioServer) Stop()        { s.e.Stop() }
