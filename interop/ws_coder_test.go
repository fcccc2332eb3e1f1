package interop

// coder/websocket (formerly nhooyr.io/websocket) against Meerkat's
// WebSocket server and client, on both drivers, plain and TLS, with and
// without permessage-deflate (with and without context takeover, and with
// the two sides asking for different modes), messages whole and
// fragmented.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// wsiCoderModes: peerTakeover selects coder's CompressionContextTakeover
// (else CompressionNoContextTakeover), mkTakeover Meerkat's
// WS.CompressionContextTakeover. With takeover on both sides, coder's
// Writer sends a message as several frames of one deflate stream that
// goes on from the previous message. In "deflate-mixed" coder asks for
// context takeover and Meerkat declines it (as a server) or does not
// offer it (as a client): both sides must then compress without it.
var wsiCoderModes = []wsiMode{
	{name: "whole", full: true, tls: true},
	{name: "fragmented", frag: true},
	{name: "deflate-takeover-fragmented", comp: true, frag: true, mkTakeover: true, peerTakeover: true},
	{name: "deflate-no-takeover", comp: true, tls: true},
	{name: "deflate-mixed", comp: true, peerTakeover: true, noHuge: true},
}

// wsiCoderMode is coder's CompressionMode for mode.
func wsiCoderMode(mode wsiMode) websocket.CompressionMode {
	switch {
	case !mode.comp:
		return websocket.CompressionDisabled
	case mode.peerTakeover:
		return websocket.CompressionContextTakeover
	}
	return websocket.CompressionNoContextTakeover
}

// wsiCoderTakeover checks the Sec-WebSocket-Extensions agreed against
// mode: context takeover is used both ways only when both sides asked.
func wsiCoderTakeover(mode wsiMode, ext string) error {
	if !mode.comp {
		if ext != "" {
			return fmt.Errorf("extensions %q agreed without compression", ext)
		}
		return nil
	}
	noTakeover := strings.Contains(ext, "server_no_context_takeover") && strings.Contains(ext, "client_no_context_takeover")
	takeover := !strings.Contains(ext, "no_context_takeover")
	if !strings.Contains(ext, "permessage-deflate") || (mode.mkTakeover && mode.peerTakeover) != takeover || (!takeover && !noTakeover) {
		return fmt.Errorf("extensions %q agreed (Meerkat takeover %v, coder takeover %v)", ext, mode.mkTakeover, mode.peerTakeover)
	}
	return nil
}

// wsiCoderClientSession runs one echo session of a coder client against
// url: count messages of size (whole with Write, or in three frames with
// Writer), a Ping after the middle one, then the close handshake, started
// by coder (Close must see 1000 answered) or, when closeByServer, by the
// server (Read must fail with a CloseError 1000 and its reason).
func wsiCoderClientSession(url string, size, count int, mode wsiMode, closeByServer bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), wsiPeerLimit)
	defer cancel()
	var srvPings atomic.Int32
	c, resp, err := websocket.Dial(ctx, url+"?"+wsiSessionQuery(size, mode.frag), &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: testcert.Default.CA.Pool}}},
		CompressionMode: wsiCoderMode(mode),
		OnPingReceived: func(_ context.Context, p []byte) bool {
			if strings.HasPrefix(string(p), wsiSrvPing) {
				srvPings.Add(1)
			}
			return true
		},
	})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.CloseNow()
	if err := wsiCoderTakeover(mode, resp.Header.Get("Sec-WebSocket-Extensions")); err != nil {
		return err
	}
	c.SetReadLimit(64 << 20)
	err = wsiGoEcho(size, count,
		func(i int, text bool, p []byte) error {
			typ := websocket.MessageBinary
			if text {
				typ = websocket.MessageText
			}
			if !mode.frag {
				return c.Write(ctx, typ, p)
			}
			w, err := c.Writer(ctx, typ)
			if err != nil {
				return err
			}
			for _, piece := range wsiPieces(p) {
				if _, err := w.Write(piece); err != nil {
					return err
				}
			}
			return w.Close()
		},
		func() error { return c.Ping(ctx) }, // returns once the pong came
		func() (bool, []byte, error) {
			typ, p, err := c.Read(ctx)
			return typ == websocket.MessageText, p, err
		})
	if err != nil {
		return err
	}
	wantPings := int32(1)
	if mode.frag {
		wantPings += int32(wsiFragPings(count))
	}
	if srvPings.Load() != wantPings {
		return fmt.Errorf("%d pings from the server, want %d", srvPings.Load(), wantPings)
	}
	if !closeByServer {
		if err := c.Close(websocket.StatusNormalClosure, "coder bye"); err != nil {
			return fmt.Errorf("close handshake: %w", err)
		}
		return nil
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(wsiCloseCmd)); err != nil {
		return err
	}
	_, p, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "meerkat server bye" {
		return fmt.Errorf("after the close command: message of %d bytes, error %v; want a CloseError 1000 \"meerkat server bye\"", len(p), err)
	}
	return nil
}

// TestWSCoderClient: a coder/websocket client against Meerkat's echo
// server, per driver, over plain TCP and TLS: per size (0, 125, 126, 65535,
// 65536, 4 MiB) a connection echoes up to 1,000 messages, text (multi-byte
// UTF-8) and binary, each compared byte for byte, whole or fragmented by
// coder's Writer and echoed whole or in three frames (pings between them)
// by Meerkat; with permessage-deflate with and without context takeover,
// and with coder asking for takeover and Meerkat declining it (the 101
// says which was agreed; the messages over coder's threshold arrive
// compressed, the others not); pings both ways are answered; the close
// handshake, started by either side, ends with 1000 on both and the
// connection closes without error.
func TestWSCoderClient(t *testing.T) {
	wsiForEach(t, "portable", wsiCoderModes, func(t *testing.T, drv string, useTLS bool, mode wsiMode) {
		s := wsiStartServer(t, drv, useTLS, mode)
		for k, size := range mode.sizes() {
			count, closeByServer := wsiCount(size, mode), k%2 == 1
			s.run(t, fmt.Sprintf("coder session of %d-byte messages", size), wsiSessionLimit, func() error {
				return wsiCoderClientSession(s.url, size, count, mode, closeByServer)
			})
			if len(s.conns) != k+1 {
				t.Fatalf("%d WebSocket connections after %d sessions (other errors: %v)", len(s.conns), k+1, s.other)
			}
			reason := "coder bye"
			if closeByServer {
				reason = "*" // coder echoes the code and the reason
			}
			want := wsiSrvWant{count: count, digest: wsiPlanDigest(size, count), comp: mode.comp,
				compressed: wsiCompressedOver(mode, size, count), closeReason: reason, peerPings: 1}
			if err := s.conns[k].check(want); err != nil {
				t.Fatal(err)
			}
		}
		if len(s.other) > 0 {
			t.Fatalf("errors on other connections: %v", s.other)
		}
	})
}

// wsiCoderServer is a coder echo server on net/http (httptest).
type wsiCoderServer struct {
	srv     *httptest.Server
	url     string
	results chan wsiPeerResult

	mu    sync.Mutex
	conns map[*websocket.Conn]bool
	wg    sync.WaitGroup
}

// wsiStartCoderServer starts a coder echo server, stopped (with its
// connections) at the end of the test. Per connection: a Ping once open;
// each message echoed with its type, whole (Write) or (frag=1) in three
// frames (Writer); wsiCloseCmd makes it Close with 1000 "coder server
// bye", which waits for the answer.
func wsiStartCoderServer(t *testing.T, useTLS bool, mode wsiMode) *wsiCoderServer {
	g := &wsiCoderServer{results: make(chan wsiPeerResult, 64), conns: map[*websocket.Conn]bool{}}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.wg.Add(1)
		defer g.wg.Done()
		var pings atomic.Int32
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			CompressionMode: wsiCoderMode(mode),
			OnPingReceived: func(context.Context, []byte) bool {
				pings.Add(1)
				return true
			},
		})
		if err != nil {
			g.results <- wsiPeerResult{query: r.URL.RawQuery, err: err}
			return
		}
		g.mu.Lock()
		g.conns[c] = true
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			delete(g.conns, c)
			g.mu.Unlock()
			c.CloseNow()
		}()
		res := wsiCoderEcho(c, r.URL.Query().Get("frag") == "1")
		res.query, res.ext, res.pings = r.URL.RawQuery, w.Header().Get("Sec-WebSocket-Extensions"), int(pings.Load())
		g.results <- res
	}))
	if useTLS {
		g.srv.TLS = testcert.ServerConfig()
		g.srv.StartTLS()
	} else {
		g.srv.Start()
	}
	g.url = "ws" + strings.TrimPrefix(g.srv.URL, "http") + "/echo"
	t.Cleanup(func() {
		g.srv.Close()
		g.mu.Lock()
		for c := range g.conns {
			c.CloseNow()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

// wsiCoderEcho serves one echo connection until its close handshake.
func wsiCoderEcho(c *websocket.Conn, frag bool) wsiPeerResult {
	var res wsiPeerResult
	ctx, cancel := context.WithTimeout(context.Background(), wsiPeerLimit)
	defer cancel()
	c.SetReadLimit(64 << 20)
	pinged := make(chan error, 1)
	go func() { pinged <- c.Ping(ctx) }() // answered while the loop reads
	h := sha256.New()
	finish := func(err error) wsiPeerResult {
		res.digest = h.Sum(nil)
		var ce websocket.CloseError
		switch {
		case err == nil: // our Close got 1000 back (coder does not say the reason)
			res.closeCode, res.closeReason = 1000, "?"
		case errors.As(err, &ce):
			res.closeCode, res.closeReason = int(ce.Code), ce.Reason
		default:
			res.err = err
		}
		if err := <-pinged; err == nil {
			res.pongs = 1
		} else if res.err == nil {
			res.err = fmt.Errorf("ping: %w", err)
		}
		return res
	}
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			return finish(err)
		}
		if typ == websocket.MessageText && string(p) == wsiCloseCmd {
			return finish(c.Close(websocket.StatusNormalClosure, "coder server bye"))
		}
		res.msgs++
		wsiHash(h, typ == websocket.MessageText, p)
		if !frag {
			err = c.Write(ctx, typ, p)
		} else {
			err = func() error {
				w, err := c.Writer(ctx, typ)
				if err != nil {
					return err
				}
				for _, piece := range wsiPieces(p) {
					if _, err := w.Write(piece); err != nil {
						return err
					}
				}
				return w.Close()
			}()
		}
		if err != nil {
			return finish(err)
		}
	}
}

// TestWSCoderServer: Meerkat's WebSocket client against a coder echo
// server on net/http, per driver, over plain TCP and TLS: per size a
// connection sends up to 1,000 messages, text (multi-byte UTF-8) and
// binary, whole or in three frames with WSSendFrame (a ping between the
// first two every 100 messages), and compares every echo byte for byte
// (coder echoes whole or in frames from its Writer); permessage-deflate
// with and without context takeover, and mixed (coder's server offers
// takeover, Meerkat's client asks for none); coder receives exactly what
// was sent; pings both ways are answered; the close handshake, started by
// either side, gives 1000 to both and the Meerkat connection closes
// without error.
func TestWSCoderServer(t *testing.T) {
	wsiForEach(t, "epoll", wsiCoderModes, func(t *testing.T, drv string, useTLS bool, mode wsiMode) {
		g := wsiStartCoderServer(t, useTLS, mode)
		m := wsiManager(t, drv, mode, false)
		for k, size := range mode.sizes() {
			s := &wsiMkClient{size: size, count: wsiCount(size, mode), frag: mode.frag, closeByServer: k%2 == 1}
			reason := "*"
			if s.closeByServer {
				reason = "coder server bye"
			}
			wsiRunMkClient(t, m, g.url, s, wsiMkWant{comp: mode.comp, compressed: wsiCompressedOver(mode, size, s.count),
				closeReason: reason, peerPings: 1})
			if err := wsiCoderTakeover(mode, s.ext); err != nil {
				t.Fatal(err)
			}
			r := wsiPeerResultOf(t, g.results)
			peerReason := "meerkat bye"
			if s.closeByServer {
				peerReason = "*"
			}
			if err := r.check(s, mode.comp, peerReason); err != nil {
				t.Fatal(err)
			}
		}
	})
}
