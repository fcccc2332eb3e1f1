package harness

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meerkat-net/meerkat"
)

// Kind names one server implementation the harness can run in a child
// process.
type Kind string

// The servers. Echo servers send back every byte they receive; the net/http
// servers answer any request with a short body, keeping the connection alive.
const (
	MeerkatEpoll       Kind = "meerkat-epoll"
	MeerkatPortable    Kind = "meerkat-portable"
	MeerkatEpollTLS    Kind = "meerkat-epoll-tls"
	MeerkatPortableTLS Kind = "meerkat-portable-tls"
	NetHTTP            Kind = "nethttp"
	NetHTTPTLS         Kind = "nethttp-tls"
	NetEcho            Kind = "netecho"     // goroutine per connection, 4 KiB buffer
	NetEchoTLS         Kind = "netecho-tls" // the same over crypto/tls
)

// Kinds lists every server, in the order reports show them.
var Kinds = []Kind{
	MeerkatEpoll, MeerkatPortable, NetHTTP, NetEcho,
	MeerkatEpollTLS, MeerkatPortableTLS, NetHTTPTLS, NetEchoTLS,
}

// TLS reports whether the server speaks TLS.
func (k Kind) TLS() bool { return strings.HasSuffix(string(k), "-tls") }

// HTTP reports whether the server speaks HTTP (else it echoes).
func (k Kind) HTTP() bool { return strings.HasPrefix(string(k), "nethttp") }

// Reference is the server a kind's memory is compared with: net/http over
// the same transport (plain or TLS).
func (k Kind) Reference() Kind {
	if k.TLS() {
		return NetHTTPTLS
	}
	return NetHTTP
}

func (k Kind) valid() bool {
	for _, v := range Kinds {
		if v == k {
			return true
		}
	}
	return false
}

// ParseKinds parses a comma-separated list of kinds ("all" for every one).
func ParseKinds(s string) ([]Kind, error) {
	if s == "" || s == "all" {
		return Kinds, nil
	}
	var out []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		if !k.valid() {
			return nil, fmt.Errorf("unknown server %q (known: %v)", k, Kinds)
		}
		out = append(out, k)
	}
	return out, nil
}

// httpBody is the net/http servers' answer: as small as the echo exchange.
const httpBody = "hello from the benchmark server\n"

// server is a running server inside the child process.
type server interface {
	Addr() string
	Conns() int64 // connections currently open
	Stop()        // close the listener and every connection, and return
}

func startServer(k Kind) (server, error) {
	if name, ok := strings.CutPrefix(string(k), httpKindPrefix); ok {
		return startHTTPServer(name)
	}
	if name, ok := strings.CutPrefix(string(k), wsKindPrefix); ok {
		return startWSServer(name)
	}
	if name, ok := strings.CutPrefix(string(k), mqttKindPrefix); ok {
		return startMQTTServer(name)
	}
	switch k {
	case MeerkatEpoll, MeerkatPortable, MeerkatEpollTLS, MeerkatPortableTLS:
		drv := strings.TrimSuffix(strings.TrimPrefix(string(k), "meerkat-"), "-tls")
		return startMeerkat(drv, k.TLS())
	case NetHTTP, NetHTTPTLS:
		return startNetHTTP(k.TLS())
	case NetEcho, NetEchoTLS:
		return startNetEcho(k.TLS())
	}
	return nil, fmt.Errorf("unknown server %q", k)
}

// meerkatServer is a Meerkat echo server. Its Manager is created, listens,
// polls and is closed on one goroutine, as Poll requires.
type meerkatServer struct {
	addr     string
	m        *meerkat.Manager // only for Wakeup, safe from any goroutine
	listener uint64
	conns    atomic.Int64
	stopping atomic.Bool
	done     chan struct{}
}

func startMeerkat(drv string, useTLS bool) (*meerkatServer, error) {
	s := &meerkatServer{done: make(chan struct{})}
	ready := make(chan error, 1)
	go s.run(drv, useTLS, ready)
	if err := <-ready; err != nil {
		<-s.done
		return nil, err
	}
	return s, nil
}

func (s *meerkatServer) run(drv string, useTLS bool, ready chan<- error) {
	defer close(s.done)
	m, err := meerkat.NewManagerDriver(drv)
	if err != nil {
		ready <- err
		return
	}
	defer m.Close()
	m.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	scheme := "tcp"
	if useTLS {
		if m.TLSConfig, err = ServerTLSConfig(); err != nil {
			ready <- err
			return
		}
		scheme = "https"
	}
	l, err := m.Listen(scheme+"://127.0.0.1:0", s.handle)
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

func (s *meerkatServer) handle(c *meerkat.Conn, ev meerkat.Event, _ any) {
	switch ev {
	case meerkat.EvAccept:
		s.conns.Add(1)
	case meerkat.EvRead:
		c.Send(c.Recv().Bytes())
		c.Recv().Consume(c.Recv().Len())
	case meerkat.EvClose:
		if c.IsAccepted() {
			s.conns.Add(-1)
		}
	}
}

func (s *meerkatServer) Addr() string { return s.addr }
func (s *meerkatServer) Conns() int64 { return s.conns.Load() }

// Stop ends the Poll loop; its goroutine closes the Manager.
func (s *meerkatServer) Stop() {
	s.stopping.Store(true)
	s.m.Wakeup(s.listener, nil)
	<-s.done
}

// netHTTPServer is net/http with keep-alive (its default) and no timeouts.
type netHTTPServer struct {
	ln    net.Listener
	srv   *http.Server
	conns atomic.Int64
	done  chan struct{}
}

func startNetHTTP(useTLS bool) (*netHTTPServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &netHTTPServer{ln: ln, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, httpBody)
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				s.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				s.conns.Add(-1)
			}
		},
	}
	if useTLS {
		if s.srv.TLSConfig, err = ServerTLSConfig(); err != nil {
			ln.Close()
			return nil, err
		}
	}
	go func() {
		defer close(s.done)
		var err error
		if useTLS {
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

func (s *netHTTPServer) Addr() string { return s.ln.Addr().String() }
func (s *netHTTPServer) Conns() int64 { return s.conns.Load() }
func (s *netHTTPServer) Stop()        { s.srv.Close(); <-s.done }

// netEchoServer is the textbook Go server: a goroutine per connection
// reading into its own 4 KiB buffer and writing back what it read.
type netEchoServer struct {
	ln    net.Listener
	conns atomic.Int64
	mu    sync.Mutex
	open  map[net.Conn]struct{}
	wg    sync.WaitGroup
	done  chan struct{}
}

func startNetEcho(useTLS bool) (*netEchoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &netEchoServer{ln: ln, open: make(map[net.Conn]struct{}), done: make(chan struct{})}
	if useTLS {
		cfg, err := ServerTLSConfig()
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.ln = tls.NewListener(ln, cfg)
	}
	go s.accept()
	return s, nil
}

func (s *netEchoServer) accept() {
	defer close(s.done)
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.open[nc] = struct{}{}
		s.mu.Unlock()
		s.conns.Add(1)
		s.wg.Go(func() {
			defer func() {
				nc.Close()
				s.mu.Lock()
				delete(s.open, nc)
				s.mu.Unlock()
				s.conns.Add(-1)
			}()
			buf := make([]byte, 4<<10)
			for {
				n, err := nc.Read(buf)
				if n > 0 {
					if _, werr := nc.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
	}
}

func (s *netEchoServer) Addr() string { return s.ln.Addr().String() }
func (s *netEchoServer) Conns() int64 { return s.conns.Load() }

func (s *netEchoServer) Stop() {
	s.ln.Close()
	<-s.done
	s.mu.Lock()
	for nc := range s.open {
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
