package interop

// gorilla/websocket against Meerkat's WebSocket server and client, on both
// drivers, plain and TLS, with and without permessage-deflate, messages
// whole and fragmented.

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// wsiGorillaModes: gorilla speaks permessage-deflate without context
// takeover only; Meerkat's side keeps its default (no takeover either) in
// one mode and asks for takeover in the other, which a gorilla peer must
// decline.
var wsiGorillaModes = []wsiMode{
	{name: "whole", full: true, tls: true},
	{name: "fragmented", frag: true},
	{name: "deflate", comp: true},
	{name: "deflate-fragmented-takeover", comp: true, frag: true, mkTakeover: true, tls: true},
}

// wsiGorillaCompressed is how many of count messages gorilla compresses:
// all of them, whatever their size, when permessage-deflate is agreed.
func wsiGorillaCompressed(mode wsiMode, count int) int {
	if mode.comp {
		return count
	}
	return 0
}

// wsiGorillaBuffer is the write buffer that makes gorilla send a message of
// size in one frame (whole) or in about three (frag): its messageWriter
// sends a frame each time the buffer fills.
func wsiGorillaBuffer(size int, frag bool) int {
	if frag {
		return max(size/3, 16)
	}
	return size + size/16 + 4096 // room for deflate's worst case
}

// wsiGorillaClientSession runs one echo session of a gorilla client against
// url: count messages of size, a ping after the middle one (its pong must
// come back), then the close handshake, started by gorilla or, when
// closeByServer, by the server (gorilla must see a CloseError with 1000
// either way).
func wsiGorillaClientSession(url string, size, count int, mode wsiMode, closeByServer bool) error {
	d := websocket.Dialer{
		TLSClientConfig:   &tls.Config{RootCAs: testcert.Default.CA.Pool},
		EnableCompression: mode.comp,
		HandshakeTimeout:  10 * time.Second,
		WriteBufferSize:   wsiGorillaBuffer(size, mode.frag),
	}
	conn, resp, err := d.Dial(url+"?"+wsiSessionQuery(size, mode.frag), nil)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); strings.Contains(ext, "permessage-deflate") != mode.comp {
		return fmt.Errorf("the server agreed to extensions %q (compression asked: %v)", ext, mode.comp)
	}
	conn.SetReadDeadline(time.Now().Add(wsiPeerLimit))
	var pongs, srvPings atomic.Int32
	conn.SetPongHandler(func(s string) error {
		if s == "wsi-gorilla-ping" {
			pongs.Add(1)
		}
		return nil
	})
	conn.SetPingHandler(func(s string) error {
		if strings.HasPrefix(s, wsiSrvPing) {
			srvPings.Add(1)
		}
		return conn.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(10*time.Second))
	})
	err = wsiGoEcho(size, count,
		func(i int, text bool, p []byte) error {
			typ := websocket.BinaryMessage
			if text {
				typ = websocket.TextMessage
			}
			w, err := conn.NextWriter(typ)
			if err != nil {
				return err
			}
			if _, err := w.Write(p); err != nil {
				return err
			}
			return w.Close()
		},
		func() error {
			return conn.WriteControl(websocket.PingMessage, []byte("wsi-gorilla-ping"), time.Now().Add(10*time.Second))
		},
		func() (bool, []byte, error) {
			typ, p, err := conn.ReadMessage()
			return typ == websocket.TextMessage, p, err
		})
	if err != nil {
		return err
	}
	if pongs.Load() != 1 {
		return fmt.Errorf("%d pongs for the ping", pongs.Load())
	}
	wantPings := int32(1)
	if mode.frag {
		wantPings += int32(wsiFragPings(count))
	}
	if srvPings.Load() != wantPings {
		return fmt.Errorf("%d pings from the server, want %d", srvPings.Load(), wantPings)
	}
	reason := "meerkat server bye"
	if closeByServer {
		err = conn.WriteMessage(websocket.TextMessage, []byte(wsiCloseCmd))
	} else {
		reason = ""
		err = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "gorilla bye"), time.Now().Add(10*time.Second))
	}
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	_, p, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1000 || (closeByServer && ce.Text != reason) {
		return fmt.Errorf("after the close frame: message of %d bytes, error %v; want a CloseError 1000 %q", len(p), err, reason)
	}
	return nil
}

// TestWSGorillaClient: a gorilla/websocket client against Meerkat's echo
// server, per driver, plain and TLS: per size (0, 125, 126, 65535, 65536,
// 4 MiB) a connection echoes up to 1,000 messages, text (multi-byte UTF-8)
// and binary, each compared byte for byte, whole or fragmented by gorilla
// and echoed whole or in three frames (with pings between them) by Meerkat,
// with and without permessage-deflate (every message gorilla sends arrives
// compressed); pings both ways are answered; the close handshake, started
// by either side, ends with code 1000 on both and closes the connection
// without error.
func TestWSGorillaClient(t *testing.T) {
	wsiForEach(t, "epoll", wsiGorillaModes, func(t *testing.T, drv string, useTLS bool, mode wsiMode) {
		s := wsiStartServer(t, drv, useTLS, mode)
		for k, size := range mode.sizes() {
			count, closeByServer := wsiCount(size, mode), k%2 == 1
			s.run(t, fmt.Sprintf("gorilla session of %d-byte messages", size), wsiSessionLimit, func() error {
				return wsiGorillaClientSession(s.url, size, count, mode, closeByServer)
			})
			if len(s.conns) != k+1 {
				t.Fatalf("%d WebSocket connections after %d sessions (other errors: %v)", len(s.conns), k+1, s.other)
			}
			reason := "gorilla bye"
			if closeByServer {
				reason = "" // gorilla answers a close with the code only
			}
			want := wsiSrvWant{count: count, digest: wsiPlanDigest(size, count), comp: mode.comp,
				compressed: wsiGorillaCompressed(mode, count), closeReason: reason, peerPings: 1}
			if err := s.conns[k].check(want); err != nil {
				t.Fatal(err)
			}
		}
		if len(s.other) > 0 {
			t.Fatalf("errors on other connections: %v", s.other)
		}
	})
}

// wsiPeerResult is what a peer's echo server saw on one connection.
type wsiPeerResult struct {
	query       string
	ext         string // extensions agreed, "?" if the peer does not tell
	msgs        int
	digest      []byte
	pongs       int // answers to the server's ping
	pings       int // pings from the client
	closeCode   int
	closeReason string
	err         error
}

// check compares a peer server's result with a Meerkat client session's
// plan.
func (r wsiPeerResult) check(s *wsiMkClient, comp bool, closeReason string) error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if r.err != nil {
		add("%v", r.err)
	}
	if r.msgs != s.count {
		add("%d messages, want %d", r.msgs, s.count)
	}
	if want := wsiPlanDigest(s.size, s.count); string(r.digest) != string(want) {
		add("the messages received differ from those sent")
	}
	if r.ext != "?" && strings.Contains(r.ext, "permessage-deflate") != comp {
		add("agreed extensions %q, compression %v", r.ext, comp)
	}
	if r.pongs != 1 {
		add("%d pongs for its ping", r.pongs)
	}
	if r.pings != s.pingsSent {
		add("%d pings from the client, which sent %d", r.pings, s.pingsSent)
	}
	if r.closeCode != 1000 || (closeReason != "*" && r.closeReason != closeReason) {
		add("close code %d reason %q, want 1000 %q", r.closeCode, r.closeReason, closeReason)
	}
	if len(errs) > 0 {
		return fmt.Errorf("peer server, connection %s: %s", r.query, strings.Join(errs, "; "))
	}
	return nil
}

// wsiGorillaServer is a gorilla echo server on net/http (httptest).
type wsiGorillaServer struct {
	srv     *httptest.Server
	url     string // ws://127.0.0.1:PORT/echo or wss://
	results chan wsiPeerResult
	delay   time.Duration // how long a connection reads nothing after it opens

	mu    sync.Mutex
	conns map[*websocket.Conn]bool
	wg    sync.WaitGroup
}

// wsiStartGorillaServer starts a gorilla echo server, stopped (with its
// connections) at the end of the test. Per connection: after delay (a slow
// reader), a ping;
// each message echoed with its type, whole or (frag=1) fragmented by a
// small write buffer; wsiCloseCmd makes it close with 1000 "gorilla server
// bye" and wait for the answer.
func wsiStartGorillaServer(t *testing.T, useTLS bool, mode wsiMode, delay time.Duration) *wsiGorillaServer {
	g := &wsiGorillaServer{results: make(chan wsiPeerResult, 64), conns: map[*websocket.Conn]bool{}, delay: delay}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.wg.Add(1)
		defer g.wg.Done()
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		frag := r.URL.Query().Get("frag") == "1"
		up := websocket.Upgrader{EnableCompression: mode.comp, WriteBufferSize: wsiGorillaBuffer(size, frag)}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			g.results <- wsiPeerResult{query: r.URL.RawQuery, err: err}
			return
		}
		g.mu.Lock()
		g.conns[conn] = true
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			delete(g.conns, conn)
			g.mu.Unlock()
			conn.Close()
		}()
		time.Sleep(g.delay) // a slow reader, when asked (not a synchronisation)
		g.results <- wsiGorillaEcho(conn, r, frag)
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
			c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

// wsiGorillaEcho serves one echo connection until its close handshake.
func wsiGorillaEcho(conn *websocket.Conn, r *http.Request, frag bool) wsiPeerResult {
	// gorilla does not tell what it agreed to (the Meerkat client checks
	// the 101 instead).
	res := wsiPeerResult{query: r.URL.RawQuery, ext: "?"}
	conn.SetReadDeadline(time.Now().Add(wsiPeerLimit))
	var pongs, pings int
	conn.SetPongHandler(func(s string) error {
		if s == "wsi-gorilla-srv-ping" {
			pongs++
		}
		return nil
	})
	conn.SetPingHandler(func(s string) error {
		pings++
		return conn.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(10*time.Second))
	})
	if err := conn.WriteControl(websocket.PingMessage, []byte("wsi-gorilla-srv-ping"), time.Now().Add(10*time.Second)); err != nil {
		res.err = err
		return res
	}
	h := sha256.New()
	finish := func(err error) wsiPeerResult {
		res.pongs, res.pings, res.digest = pongs, pings, h.Sum(nil)
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			res.closeCode, res.closeReason = ce.Code, ce.Text
		} else {
			res.err = err
		}
		return res
	}
	for {
		typ, rd, err := conn.NextReader()
		if err != nil {
			return finish(err)
		}
		p, err := io.ReadAll(rd)
		if err != nil {
			return finish(err)
		}
		if typ == websocket.TextMessage && string(p) == wsiCloseCmd {
			if err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "gorilla server bye"), time.Now().Add(10*time.Second)); err != nil {
				return finish(err)
			}
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					return finish(err)
				}
				res.err = errors.New("a message after the close command")
			}
		}
		res.msgs++
		wsiHash(h, typ == websocket.TextMessage, p)
		w, err := conn.NextWriter(typ)
		if err != nil {
			return finish(err)
		}
		pieces := [][]byte{p}
		if frag {
			pieces = wsiPieces(p)
		}
		for _, piece := range pieces {
			if _, err := w.Write(piece); err != nil {
				return finish(err)
			}
		}
		if err := w.Close(); err != nil {
			return finish(err)
		}
	}
}

// wsiPeerResultOf waits for a peer server's result of a session.
func wsiPeerResultOf(t *testing.T, results <-chan wsiPeerResult) wsiPeerResult {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(time.Minute):
		t.Fatal("the peer server reported nothing about the connection")
		return wsiPeerResult{}
	}
}

// TestWSGorillaServer: Meerkat's WebSocket client against a gorilla echo
// server on net/http, per driver, plain and TLS: per size a connection
// sends up to 1,000 messages, text (multi-byte UTF-8) and binary, whole or
// in three frames with WSSendFrame (a ping between the first two every 100
// messages), and compares every echo byte for byte (gorilla echoes whole or
// in frames cut by its write buffer); with and without permessage-deflate
// (Meerkat offering context takeover or not; every echo arrives
// compressed); gorilla receives exactly what was sent; pings both ways are
// answered; the close handshake, started by either side, gives 1000 to
// both and the Meerkat connection closes without error.
func TestWSGorillaServer(t *testing.T) {
	wsiForEach(t, "portable", wsiGorillaModes, func(t *testing.T, drv string, useTLS bool, mode wsiMode) {
		g := wsiStartGorillaServer(t, useTLS, mode, 0)
		m := wsiManager(t, drv, mode, false)
		for k, size := range mode.sizes() {
			s := &wsiMkClient{size: size, count: wsiCount(size, mode), frag: mode.frag, closeByServer: k%2 == 1}
			reason := "*"
			if s.closeByServer {
				reason = "gorilla server bye"
			}
			wsiRunMkClient(t, m, g.url, s, wsiMkWant{comp: mode.comp, compressed: wsiGorillaCompressed(mode, s.count), closeReason: reason, peerPings: 1})
			r := wsiPeerResultOf(t, g.results)
			peerReason := "meerkat bye"
			if s.closeByServer {
				peerReason = "" // Meerkat answers with the code only
			}
			if err := r.check(s, mode.comp, peerReason); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// wsiInFlight is message j of the close-in-flight sessions: eight of
// 1 MiB (more than the kernel's socket buffers hold for a peer that does
// not read: 4 MiB to send at most here), then a hundred of 125 bytes, text
// and binary alternating.
func wsiInFlight(j int) (text bool, p []byte) {
	size := 125
	if j < 8 {
		size = 1 << 20
	}
	return wsiIsText(j), wsiPayload(wsiIsText(j), size, j)
}

// wsiInFlightCount is the number of close-in-flight messages.
const wsiInFlightCount = 108

// wsiInFlightDigest is the digest of the close-in-flight messages.
func wsiInFlightDigest() []byte {
	h := sha256.New()
	for j := range wsiInFlightCount {
		text, p := wsiInFlight(j)
		wsiHash(h, text, p)
	}
	return h.Sum(nil)
}

// TestWSGorillaCloseInFlight: the close handshake does not cut messages in
// flight, per driver, plain and TLS. A gorilla client sends 108 messages
// (8 MiB in all) and its close frame at once, then reads nothing for
// 1.5 s (longer than Manager.DrainTimeout): Meerkat's server echoes every
// message before answering the close, keeps them queued while the client
// does not read, and gorilla reads all of them, byte for byte, then a
// CloseError 1000; the server saw every message and closes without error.
func TestWSGorillaCloseInFlight(t *testing.T) {
	modes := []wsiMode{{name: "close-in-flight", tls: true}}
	wsiForEach(t, "", modes, func(t *testing.T, drv string, useTLS bool, mode wsiMode) {
		s := wsiStartServer(t, drv, useTLS, mode)
		s.run(t, "gorilla client closing with its messages in flight", wsiSessionLimit, func() error {
			d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: testcert.Default.CA.Pool}, WriteBufferSize: 1<<20 + 4096}
			conn, _, err := d.Dial(s.url, nil)
			if err != nil {
				return err
			}
			defer conn.Close()
			for j := range wsiInFlightCount {
				text, p := wsiInFlight(j)
				typ := websocket.BinaryMessage
				if text {
					typ = websocket.TextMessage
				}
				if err := conn.WriteMessage(typ, p); err != nil {
					return err
				}
			}
			if err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "gorilla bye"), time.Now().Add(10*time.Second)); err != nil {
				return err
			}
			// A slow reader (not a synchronisation): the echoes and the
			// close wait in the server's send buffer and the sockets.
			time.Sleep(1500 * time.Millisecond)
			conn.SetReadDeadline(time.Now().Add(wsiPeerLimit))
			for j := range wsiInFlightCount {
				typ, p, err := conn.ReadMessage()
				if err != nil {
					return fmt.Errorf("echo %d: %w", j, err)
				}
				if text, want := wsiInFlight(j); (typ == websocket.TextMessage) != text || string(p) != string(want) {
					return fmt.Errorf("echo %d: %d bytes (text %v), not the %d sent", j, len(p), typ == websocket.TextMessage, len(want))
				}
			}
			_, _, err = conn.ReadMessage()
			if ce := (*websocket.CloseError)(nil); !errors.As(err, &ce) || ce.Code != 1000 {
				return fmt.Errorf("after the echoes: %v, want a CloseError 1000", err)
			}
			return nil
		})
		if len(s.conns) != 1 {
			t.Fatalf("%d WebSocket connections (other errors: %v)", len(s.conns), s.other)
		}
		rec := s.conns[0]
		// The client read nothing before its close, so the server's ping
		// went unanswered (gorilla answers no ping after its close).
		rec.pingsSent, rec.pongs, rec.pings = 0, 0, nil
		if err := rec.check(wsiSrvWant{count: wsiInFlightCount, digest: wsiInFlightDigest(), closeReason: "gorilla bye", peerPings: 0}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWSGorillaServerCloseBehindData: a Meerkat client's close handshake
// waits for its own close frame to leave before it counts
// WS.CloseTimeout, per driver (plain TCP). The client queues 108 messages
// (8 MiB) and WSClose at once, with WS.CloseTimeout 2 s; the gorilla
// server reads nothing for 3 s (so the close frame is still in Meerkat's
// send buffer, behind data the kernel cannot take), then echoes every
// message and answers the close. Meerkat must deliver every echo, byte for
// byte, the close frame 1000, and close without error; gorilla must
// receive every message and the close 1000 "meerkat bye".
func TestWSGorillaServerCloseBehindData(t *testing.T) {
	modes := []wsiMode{{name: "close-behind-data"}}
	wsiForEach(t, "", modes, func(t *testing.T, drv string, useTLS bool, mode wsiMode) {
		g := wsiStartGorillaServer(t, useTLS, mode, 3*time.Second)
		m := wsiManager(t, drv, mode, false)
		m.WS.CloseTimeout = 2 * time.Second
		got, closeFrames, closed := 0, 0, false
		var errs []error
		_, err := m.WSConnect(g.url+"?"+wsiSessionQuery(125, false), func(c *meerkat.Conn, ev meerkat.Event, data any) {
			switch ev {
			case meerkat.EvWSOpen:
				for j := range wsiInFlightCount {
					text, p := wsiInFlight(j)
					if meerkat.WSSend(c, p, wsiOp(text)) == 0 {
						errs = append(errs, fmt.Errorf("message %d refused", j))
					}
				}
				if !meerkat.WSClose(c, 1000, "meerkat bye") {
					errs = append(errs, errors.New("WSClose refused"))
				}
			case meerkat.EvWSMsg:
				wm := data.(*meerkat.WSMessage)
				if got >= wsiInFlightCount {
					errs = append(errs, fmt.Errorf("an extra message of %d bytes", len(wm.Data)))
				} else if text, want := wsiInFlight(got); (wm.Op() == meerkat.WSOpText) != text || string(wm.Data) != string(want) {
					errs = append(errs, fmt.Errorf("echo %d: %d bytes, not the %d sent", got, len(wm.Data), len(want)))
				}
				got++
			case meerkat.EvWSCtl:
				wm := data.(*meerkat.WSMessage)
				if wm.Op() == meerkat.WSOpClose {
					closeFrames++
					if wm.CloseCode() != 1000 || got != wsiInFlightCount {
						errs = append(errs, fmt.Errorf("close %d after %d echoes", wm.CloseCode(), got))
					}
				}
			case meerkat.EvError:
				errs = append(errs, data.(error))
			case meerkat.EvClose:
				closed = true
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(wsiSessionLimit); !closed; {
			if time.Now().After(deadline) {
				t.Fatalf("Meerkat client not closed: %d echoes, errors %v", got, errs)
			}
			m.Poll(10 * time.Millisecond)
		}
		if len(errs) > 0 || got != wsiInFlightCount || closeFrames != 1 {
			t.Fatalf("Meerkat client: %d echoes of %d, %d close frames, errors %v", got, wsiInFlightCount, closeFrames, errs)
		}
		r := wsiPeerResultOf(t, g.results)
		digest := wsiInFlightDigest()
		if r.err != nil || r.msgs != wsiInFlightCount || string(r.digest) != string(digest) || r.closeCode != 1000 || r.closeReason != "meerkat bye" {
			t.Fatalf("gorilla server: %d messages (intact %v), close %d %q, error %v", r.msgs, string(r.digest) == string(digest), r.closeCode, r.closeReason, r.err)
		}
	})
}
