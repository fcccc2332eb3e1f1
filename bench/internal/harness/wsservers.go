package harness

import (
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

	"github.com/gorilla/websocket"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/meerkat-net/meerkat"
)

// WSServer names one WebSocket echo server of the WebSocket benchmarks
// (issue 4). Every one upgrades any GET and sends every message back with
// its opcode; each counts its open WebSocket connections (from the
// handshake to the close), which the idle-memory measurement waits for.
type WSServer string

// The WebSocket servers.
const (
	WSMeerkatEpoll    WSServer = "meerkat-epoll"    // HTTPListen + WSUpgrade, echo on EvWSMsg, epoll driver
	WSMeerkatPortable WSServer = "meerkat-portable" // the same on the portable driver
	WSGorilla         WSServer = "gorilla"          // net/http + gorilla/websocket Upgrader, a goroutine per connection
	WSNbio            WSServer = "nbio"             // nbio's nbhttp engine + its websocket Upgrader, echo in OnMessage
)

// WSServers lists every WebSocket server, in the order reports show them.
var WSServers = []WSServer{WSMeerkatEpoll, WSMeerkatPortable, WSGorilla, WSNbio}

// ParseWSServers parses a comma-separated list of WebSocket servers ("all"
// for every one).
func ParseWSServers(s string) ([]WSServer, error) {
	if s == "" || s == "all" {
		return WSServers, nil
	}
	var out []WSServer
	for _, f := range strings.Split(s, ",") {
		v := WSServer(strings.TrimSpace(f))
		found := false
		for _, k := range WSServers {
			found = found || k == v
		}
		if !found {
			return nil, fmt.Errorf("unknown WebSocket server %q (known: %v)", v, WSServers)
		}
		out = append(out, v)
	}
	return out, nil
}

// wsKindPrefix marks a child process's Kind as a WebSocket benchmark
// server: "wsbench/SERVER", or "wsbench/SERVER+deflate" for the server
// with permessage-deflate enabled (each server's default parameters: no
// context takeover, compression level 1 = flate.BestSpeed).
const (
	wsKindPrefix = "wsbench/"
	wsDeflateSfx = "+deflate"
)

func wsKind(s WSServer, deflate bool) Kind {
	k := wsKindPrefix + string(s)
	if deflate {
		k += wsDeflateSfx
	}
	return Kind(k)
}

// startWSServer starts, in the child process, the WebSocket server that
// kind (after wsKindPrefix) names.
func startWSServer(kind string) (server, error) {
	name, deflate := strings.CutSuffix(kind, wsDeflateSfx)
	switch WSServer(name) {
	case WSMeerkatEpoll, WSMeerkatPortable:
		return startMeerkatWS(strings.TrimPrefix(name, "meerkat-"), deflate)
	case WSGorilla:
		return startGorillaWS(deflate)
	case WSNbio:
		return startNbioWS(deflate)
	}
	return nil, fmt.Errorf("unknown WebSocket server %q", name)
}

// wsOpened marks, in Conn.UserData, a Meerkat connection that completed
// its handshake (a pointer to a zero-size value: storing it allocates
// nothing).
var wsOpened = new(struct{})

// meerkatWSServer is a Meerkat WebSocket echo server: HTTPListen, WSUpgrade
// on every request, WSSend of every message with its opcode. The Manager
// keeps its defaults but for WS.Compression.
type meerkatWSServer struct {
	addr     string
	m        *meerkat.Manager // only for Wakeup, safe from any goroutine
	listener uint64
	conns    atomic.Int64
	stopping atomic.Bool
	done     chan struct{}
}

func startMeerkatWS(drv string, deflate bool) (*meerkatWSServer, error) {
	s := &meerkatWSServer{done: make(chan struct{})}
	ready := make(chan error, 1)
	go s.run(drv, deflate, ready)
	if err := <-ready; err != nil {
		<-s.done
		return nil, err
	}
	return s, nil
}

func (s *meerkatWSServer) run(drv string, deflate bool, ready chan<- error) {
	defer close(s.done)
	m, err := meerkat.NewManagerDriver(drv)
	if err != nil {
		ready <- err
		return
	}
	defer m.Close()
	m.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m.WS.Compression = deflate
	l, err := m.HTTPListen("http://127.0.0.1:0", s.handle)
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

func (s *meerkatWSServer) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvHTTPMsg:
		meerkat.WSUpgrade(c, data.(*meerkat.HTTPMessage), "")
	case meerkat.EvWSOpen:
		c.UserData = wsOpened
		s.conns.Add(1)
	case meerkat.EvWSMsg:
		wm := data.(*meerkat.WSMessage)
		meerkat.WSSend(c, wm.Data, wm.Op())
	case meerkat.EvClose:
		if c.UserData == wsOpened {
			s.conns.Add(-1)
		}
	}
}

func (s *meerkatWSServer) Addr() string { return s.addr }
func (s *meerkatWSServer) Conns() int64 { return s.conns.Load() }

// Stop ends the Poll loop; its goroutine closes the Manager.
func (s *meerkatWSServer) Stop() {
	s.stopping.Store(true)
	s.m.Wakeup(s.listener, nil)
	<-s.done
}

// gorillaWSServer is net/http (its defaults) with a handler that upgrades
// with a gorilla/websocket Upgrader (its defaults: the 4 KiB read and write
// buffers net/http already has are reused) and then echoes on the
// handler's goroutine: NextReader, read the message into a buffer the
// connection keeps, WriteMessage (gorilla's single-frame path without
// copy). ReadMessage would allocate a new buffer per message.
type gorillaWSServer struct {
	ln    net.Listener
	srv   *http.Server
	conns atomic.Int64
	mu    sync.Mutex
	open  map[*websocket.Conn]struct{} // hijacked: http.Server.Close does not close them
	wg    sync.WaitGroup
	done  chan struct{}
}

func startGorillaWS(deflate bool) (*gorillaWSServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &gorillaWSServer{ln: ln, open: make(map[*websocket.Conn]struct{}), done: make(chan struct{})}
	up := &websocket.Upgrader{EnableCompression: deflate}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade answered the error
		}
		s.wg.Add(1)
		defer s.wg.Done()
		s.mu.Lock()
		s.open[ws] = struct{}{}
		s.mu.Unlock()
		s.conns.Add(1)
		defer func() {
			ws.Close()
			s.mu.Lock()
			delete(s.open, ws)
			s.mu.Unlock()
			s.conns.Add(-1)
		}()
		var buf []byte
		for {
			op, rd, err := ws.NextReader()
			if err != nil {
				return
			}
			if buf, err = readAllInto(buf[:0], rd); err != nil {
				return
			}
			if err := ws.WriteMessage(op, buf); err != nil {
				return
			}
		}
	})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "gorilla:", err)
		}
	}()
	return s, nil
}

// readAllInto appends everything r yields to buf, growing it as needed.
func readAllInto(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (s *gorillaWSServer) Addr() string { return s.ln.Addr().String() }
func (s *gorillaWSServer) Conns() int64 { return s.conns.Load() }

func (s *gorillaWSServer) Stop() {
	s.srv.Close()
	<-s.done
	s.mu.Lock()
	for ws := range s.open {
		ws.NetConn().Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// nbioWSServer is nbio's nbhttp engine (non-blocking mode, its default
// pollers and executor) with an nbio websocket Upgrader: the echo runs in
// OnMessage (WriteMessage with the message's type), with the engine's
// ReleaseWebsocketPayload on, so that each received payload goes back to
// nbio's buffer pool after the call (nbio's recommended setting for
// handlers that keep nothing).
type nbioWSServer struct {
	addr  string
	e     *nbhttp.Engine
	conns atomic.Int64
}

func startNbioWS(deflate bool) (*nbioWSServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	logging.SetLevel(logging.LevelError)
	s := &nbioWSServer{addr: ln.Addr().String()}
	up := nbws.NewUpgrader()
	up.EnableCompression(deflate)
	up.OnOpen(func(*nbws.Conn) { s.conns.Add(1) })
	up.OnClose(func(*nbws.Conn, error) { s.conns.Add(-1) })
	up.OnMessage(func(c *nbws.Conn, mt nbws.MessageType, data []byte) {
		c.WriteMessage(mt, data)
	})
	s.e = nbhttp.NewEngine(nbhttp.Config{
		Network: "tcp",
		Addrs:   []string{s.addr},
		// The listener made above, so that its free port is known.
		Listen:                  func(string, string) (net.Listener, error) { return ln, nil },
		ReleaseWebsocketPayload: true,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			up.Upgrade(w, r, nil) // answers a bad handshake itself
		}),
	})
	if err := s.e.Start(); err != nil {
		ln.Close()
		return nil, err
	}
	return s, nil
}

func (s *nbioWSServer) Addr() string { return s.addr }
func (s *nbioWSServer) Conns() int64 { return s.conns.Load() }
func (s *nbioWSServer) Stop()        { s.e.Stop() }
