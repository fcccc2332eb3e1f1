package interop

// Shared machinery of the WebSocket interoperability tests (ws_*_test.go):
// the payloads every peer sends (random binary, valid UTF-8 text with
// multi-byte characters), the session plan (sizes, counts, modes), a
// Meerkat echo server that records what each connection saw, and a Meerkat
// client session that sends a plan to an echo server and checks every echo
// byte for byte.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// wsiSizes are the message sizes of the interop sessions: empty, the
// largest 7-bit length, the smallest 16-bit one, the largest 16-bit one, the
// smallest 64-bit one, and 4 MiB.
var wsiSizes = []int{0, 125, 126, 65535, 65536, 4 << 20}

// wsiCount is how many messages of size a session echoes. A heavy run
// (see wsiForEach) echoes 1,000 small messages, 50 of 64 KiB and 20 of
// 4 MiB; the others 1,000 small ones (200 compressed), 10 of 64 KiB and 2
// of 4 MiB, so that the suite stays quick under -race, where
// compress/flate and every copy of a large buffer are slow.
func wsiCount(size int, mode wsiMode) int {
	switch {
	case size >= 1<<20 && mode.heavy:
		return 20
	case size >= 1<<20:
		return 2
	case size >= 1<<16-1 && mode.heavy:
		return 50
	case size >= 1<<16-1:
		return 10
	case mode.comp && !mode.heavy:
		return 200
	}
	return 1000
}

// wsiCompressedOver is how many of count messages of size a peer that
// compresses only messages over a threshold (coder: 128 bytes with context
// takeover, 512 without; node's ws without context takeover: 1,024; for a
// fragmented message, its first fragment) sends compressed: among
// wsiSizes, the 64 KiB and 4 MiB ones.
func wsiCompressedOver(mode wsiMode, size, count int) int {
	if mode.comp && size >= 4096 {
		return count
	}
	return 0
}

// wsiWindow is how many messages of size may await their echo: about 8 MiB
// in flight at most, so that neither side's send buffer (16 MiB) refuses.
func wsiWindow(size int) int {
	return max(1, min(32, (8<<20)/max(size, 1)))
}

// wsiSessionLimit bounds a session of the interop tests (the Meerkat
// side's wait); the peers' own deadlines are wsiPeerLimit, shorter, so that
// a stuck peer says so first. Generous: the machine may be shared with
// other -race test runs.
const (
	wsiSessionLimit = 4 * time.Minute
	wsiPeerLimit    = wsiSessionLimit - 30*time.Second
)

// wsiCloseCmd is the text message that asks the echo server to start the
// close handshake itself (code 1000) instead of echoing.
const wsiCloseCmd = "wsi:close-please"

// wsiMode is one combination of the interop matrix.
type wsiMode struct {
	name string
	frag bool // messages are sent (and echoed) in several frames
	comp bool // permessage-deflate offered by the client, accepted by the server
	// mkTakeover is Meerkat's WS.CompressionContextTakeover; peerTakeover
	// selects the peer's context-takeover mode where it has one (coder's
	// CompressionContextTakeover, node's default).
	mkTakeover, peerTakeover bool
	peerWindow               int  // the peer's max_window_bits where it has them (node), 0 for none
	full                     bool // heavy over plain TCP on one driver (wsiForEach)
	tls                      bool // also over TLS (every mode runs over plain TCP)
	noHuge                   bool // without the 4 MiB messages
	heavy                    bool // set by wsiForEach: wsiCount's large counts
}

// sizes are the message sizes of the mode's sessions.
func (mode wsiMode) sizes() []int {
	if mode.noHuge {
		return wsiSizes[:len(wsiSizes)-1]
	}
	return wsiSizes
}

// wsiDrivers are the Meerkat drivers to test: both, or the one named by
// MEERKAT_DRIVER.
func wsiDrivers() []string {
	if d := os.Getenv("MEERKAT_DRIVER"); d != "" {
		return []string{d}
	}
	return []string{"epoll", "portable"}
}

// wsiForEach runs fn per driver and mode, over plain TCP, and over TLS for
// the modes marked so (the others' framing and compression paths are the
// same over TLS; the suite stays quicker). The modes marked full run
// heavy (wsiCount) over plain TCP on heavyDrv, or on the only driver
// MEERKAT_DRIVER names.
func wsiForEach(t *testing.T, heavyDrv string, modes []wsiMode, fn func(t *testing.T, drv string, useTLS bool, mode wsiMode)) {
	drivers := wsiDrivers()
	for _, drv := range drivers {
		for _, useTLS := range []bool{false, true} {
			sec := "plain"
			if useTLS {
				sec = "tls"
			}
			for _, mode := range modes {
				if useTLS && !mode.tls {
					continue
				}
				mode.heavy = mode.full && !useTLS && (drv == heavyDrv || len(drivers) == 1)
				name := drv + "/" + sec + "/" + mode.name
				if mode.heavy {
					name += "-heavy"
				}
				t.Run(name, func(t *testing.T) {
					start := time.Now()
					fn(t, drv, useTLS, mode)
					t.Logf("%s: %v", name, time.Since(start).Round(time.Millisecond))
				})
			}
		}
	}
}

// wsiManager returns a Manager on drv, closed at the end of the test, with
// the test certificates (server and client) and compression as mode says.
func wsiManager(t *testing.T, drv string, mode wsiMode, server bool) *meerkat.Manager {
	t.Helper()
	m, err := meerkat.NewManagerDriver(drv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if server {
		m.TLSConfig = testcert.ServerConfig()
	} else {
		m.TLSConfig = testcert.ClientConfig()
	}
	m.WS.Compression = mode.comp
	m.WS.CompressionContextTakeover = mode.mkTakeover
	return m
}

// The payload pools: messages are windows into them, so that making one
// costs nothing (binary) or at most one copy (text).
var (
	wsiPoolOnce     sync.Once
	wsiBin, wsiText []byte
	wsiPoolSize     = 5 << 20
)

func wsiPools() {
	wsiPoolOnce.Do(func() {
		rng := rand.New(rand.NewChaCha8([32]byte{'w', 's', 'i'}))
		wsiBin = make([]byte, wsiPoolSize)
		rand.NewChaCha8([32]byte{'b', 'i', 'n'}).Read(wsiBin)
		t := make([]byte, 0, wsiPoolSize+4)
		for len(t) < wsiPoolSize {
			var r rune
			switch x := rng.Uint32(); x % 8 {
			case 0, 1, 2, 3: // ASCII
				r = rune(0x20 + x>>8%95)
			case 4, 5: // two bytes
				r = rune(0x80 + x>>8%(0x800-0x80))
			case 6: // three bytes, not a surrogate
				r = rune(0x800 + x>>8%(0x10000-0x800))
				if r >= 0xd800 && r < 0xe000 {
					r -= 0x1000
				}
			default: // four bytes
				r = rune(0x10000 + x>>8%(0x110000-0x10000))
			}
			t = utf8.AppendRune(t, r)
		}
		wsiText = t
	})
}

// wsiPayload is message i of size bytes of a session: random bytes for
// binary; for text, valid UTF-8 with one-to-four-byte characters (padded
// with ASCII to the exact size). Messages differ from one i to the next.
// The result may be a view of a shared pool: never modify it.
func wsiPayload(text bool, size, i int) []byte {
	wsiPools()
	pool := wsiBin
	if text {
		pool = wsiText
	}
	span := len(pool) - size - 4
	off := int((uint64(i)*2654435761 + uint64(size)*40503) % uint64(span))
	if !text {
		return pool[off : off+size]
	}
	for !utf8.RuneStart(pool[off]) {
		off++
	}
	p := pool[off : off+size]
	// Cut an incomplete last character and pad with ASCII.
	k := len(p)
	for j := len(p) - 1; j >= 0 && j >= len(p)-4; j-- {
		if utf8.RuneStart(p[j]) {
			if !utf8.FullRune(p[j:]) {
				k = j
			}
			break
		}
	}
	if k == len(p) {
		return p
	}
	q := make([]byte, size)
	copy(q, p[:k])
	for j := k; j < size; j++ {
		q[j] = 'a' + byte(j%26)
	}
	return q
}

// wsiIsText is whether message i of a session is text (the others are
// binary).
func wsiIsText(i int) bool { return i%2 == 0 }

// wsiHash adds a message to a session digest: opcode, length, bytes.
func wsiHash(h hash.Hash, text bool, p []byte) {
	var b [9]byte
	b[0] = 2
	if text {
		b[0] = 1
	}
	binary.BigEndian.PutUint64(b[1:], uint64(len(p)))
	h.Write(b[:])
	h.Write(p)
}

// wsiPlanDigest is the digest of the messages of a session.
func wsiPlanDigest(size, count int) []byte {
	h := sha256.New()
	for i := range count {
		wsiHash(h, wsiIsText(i), wsiPayload(wsiIsText(i), size, i))
	}
	return h.Sum(nil)
}

// wsiCheckEcho compares message i of a session with its echo.
func wsiCheckEcho(size, i int, text bool, got []byte) error {
	want := wsiPayload(wsiIsText(i), size, i)
	if text != wsiIsText(i) {
		return fmt.Errorf("message %d (%d bytes): echoed as text=%v, sent as text=%v", i, size, text, wsiIsText(i))
	}
	if !bytes.Equal(got, want) {
		at := 0
		for at < min(len(got), len(want)) && got[at] == want[at] {
			at++
		}
		return fmt.Errorf("message %d (text=%v): echo of %d bytes differs from the %d sent, first at byte %d", i, text, len(got), len(want), at)
	}
	return nil
}

// wsiPieces splits p in three fragments (two empty ones for an empty p).
func wsiPieces(p []byte) [][]byte {
	n := len(p)
	if n == 0 {
		return [][]byte{p, p}
	}
	return [][]byte{p[:n/3], p[n/3 : 2*n/3], p[2*n/3:]}
}

// wsiSendFragments sends p as a message in fragments with WSSendFrame; a
// ping with payload ping (unless nil) goes between the first two. It
// reports whether every frame was queued.
func wsiSendFragments(c *meerkat.Conn, p []byte, op meerkat.WSOp, ping []byte) bool {
	pieces := wsiPieces(p)
	for j, piece := range pieces {
		fop := op
		if j > 0 {
			fop = meerkat.WSOpContinuation
		}
		if meerkat.WSSendFrame(c, piece, fop, j == len(pieces)-1) == 0 {
			return false
		}
		if j == 0 && ping != nil && meerkat.WSSend(c, ping, meerkat.WSOpPing) == 0 {
			return false
		}
	}
	return true
}

// wsiOp is the opcode of a text or binary message.
func wsiOp(text bool) meerkat.WSOp {
	if text {
		return meerkat.WSOpText
	}
	return meerkat.WSOpBinary
}

// wsiSessionQuery tells the echo server how to echo: fragmented or whole.
func wsiSessionQuery(size int, frag bool) string {
	f := "0"
	if frag {
		f = "1"
	}
	return "size=" + strconv.Itoa(size) + "&frag=" + f
}

// wsiServer is a Meerkat WebSocket echo server at /echo. Its fields are
// touched by handlers on the Poll goroutine, the test's.
type wsiServer struct {
	m     *meerkat.Manager
	url   string // ws://127.0.0.1:PORT/echo or wss://...
	port  string
	conns []*wsiSrvConn // per WebSocket connection, in order of upgrade
	other []error       // errors on connections that did not upgrade
}

// wsiSrvConn is what the echo server saw on one WebSocket connection.
type wsiSrvConn struct {
	query       url.Values
	ext         string // the Sec-WebSocket-Extensions the client offered
	frag        bool
	msgs        int // data messages, the close command excluded
	compressed  int // of which arrived compressed (RSV1)
	digest      hash.Hash
	pingsSent   int
	pings       []string // payloads of our pings not answered yet
	pongs       int      // pongs that answered our pings
	badCtl      []string // unexpected control frames, pongs that answer no ping
	peerPings   int
	closeFrames int
	closeCode   int
	closeReason string
	errs        []error
	refused     int // echoes the connection did not queue
	closed      bool
}

// ping sends a ping and expects its pong.
func (rec *wsiSrvConn) ping(c *meerkat.Conn, payload string) {
	if meerkat.WSSend(c, []byte(payload), meerkat.WSOpPing) == 0 {
		rec.refused++
	}
	rec.pingsSent++
	rec.pings = append(rec.pings, payload)
}

// wsiPong checks a pong against the oldest unanswered ping (pongs answer
// pings in order, with their payload): it returns 1 and forgets the ping
// if it matches, else notes the pong in bad.
func wsiPong(pings, bad *[]string, p []byte) int {
	if len(*pings) == 0 || (*pings)[0] != string(p) {
		*bad = append(*bad, fmt.Sprintf("pong %q (waiting for %q)", p, *pings))
		return 0
	}
	*pings = (*pings)[1:]
	return 1
}

// wsiSrvPing is the prefix of the echo server's ping payloads.
const wsiSrvPing = "wsi-srv-ping-"

// wsiStartServer starts a Meerkat echo server on drv, over TLS if asked,
// with compression as mode says. Each connection is pinged once it opens;
// a connection that asked for fragments (frag=1) gets each echo in three
// frames, with a ping between the first two every 100 messages; the text
// message wsiCloseCmd makes the server close with 1000.
func wsiStartServer(t *testing.T, drv string, useTLS bool, mode wsiMode) *wsiServer {
	t.Helper()
	m := wsiManager(t, drv, mode, true)
	s := &wsiServer{m: m}
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	l, err := m.HTTPListen(scheme+"://127.0.0.1:0", func(c *meerkat.Conn, ev meerkat.Event, data any) {
		rec, _ := c.UserData.(*wsiSrvConn)
		switch ev {
		case meerkat.EvHTTPMsg:
			hm := data.(*meerkat.HTTPMessage)
			if string(hm.URI) != "/echo" {
				meerkat.HTTPReply(c, 404, "", "no such path\n")
				return
			}
			meerkat.WSUpgrade(c, hm, "")
		case meerkat.EvWSOpen:
			hm := data.(*meerkat.HTTPMessage)
			q, _ := url.ParseQuery(string(hm.Query))
			rec = &wsiSrvConn{query: q, frag: q.Get("frag") == "1", digest: sha256.New(),
				ext: string(hm.Header("Sec-WebSocket-Extensions"))}
			c.UserData = rec
			s.conns = append(s.conns, rec)
			rec.ping(c, wsiSrvPing+"open")
		case meerkat.EvWSMsg:
			wm := data.(*meerkat.WSMessage)
			text := wm.Op() == meerkat.WSOpText
			if text && string(wm.Data) == wsiCloseCmd {
				if !meerkat.WSClose(c, 1000, "meerkat server bye") {
					rec.refused++
				}
				return
			}
			if wm.Flags&0x40 != 0 {
				rec.compressed++
			}
			wsiHash(rec.digest, text, wm.Data)
			var ping []byte
			if rec.msgs%100 == 0 {
				ping = []byte(wsiSrvPing + strconv.Itoa(rec.msgs))
			}
			rec.msgs++
			if !rec.frag {
				if meerkat.WSSend(c, wm.Data, wm.Op()) == 0 {
					rec.refused++
				}
				return
			}
			if !wsiSendFragments(c, wm.Data, wm.Op(), ping) {
				rec.refused++
			}
			if ping != nil {
				rec.pingsSent++
				rec.pings = append(rec.pings, string(ping))
			}
		case meerkat.EvWSCtl:
			wm := data.(*meerkat.WSMessage)
			switch wm.Op() {
			case meerkat.WSOpPong:
				rec.pongs += wsiPong(&rec.pings, &rec.badCtl, wm.Data)
			case meerkat.WSOpPing:
				rec.peerPings++
			case meerkat.WSOpClose:
				rec.closeFrames++
				rec.closeCode, rec.closeReason = wm.CloseCode(), string(wm.CloseReason())
			}
		case meerkat.EvError:
			if rec != nil {
				rec.errs = append(rec.errs, data.(error))
			} else {
				s.other = append(s.other, data.(error))
			}
		case meerkat.EvClose:
			if rec != nil {
				rec.closed = true
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s.port = strconv.Itoa(int(l.LocalAddr().Port()))
	s.url = "ws://127.0.0.1:" + s.port + "/echo"
	if useTLS {
		s.url = "wss://127.0.0.1:" + s.port + "/echo"
	}
	return s
}

// run polls the server's Manager until fn, run in a goroutine, returns,
// then until every WebSocket connection is closed on Meerkat's side too.
func (s *wsiServer) run(t *testing.T, what string, limit time.Duration, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	deadline := time.Now().Add(limit)
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			finished = true
		default:
			if time.Now().After(deadline) {
				// The peer's goroutine is stuck: closing the Manager
				// closes its connections, which unblocks it.
				s.m.Close()
				<-done
				t.Fatalf("%s: not done after %v", what, limit)
			}
			s.m.Poll(10 * time.Millisecond)
		}
	}
	for !s.allClosed() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the server's connections are still open after %v", what, limit)
		}
		s.m.Poll(10 * time.Millisecond)
	}
}

func (s *wsiServer) allClosed() bool {
	for _, rec := range s.conns {
		if !rec.closed {
			return false
		}
	}
	return true
}

// wsiSrvWant is what a session should have left on the server's record.
type wsiSrvWant struct {
	count       int
	digest      []byte // wsiPlanDigest, or the peer's own
	comp        bool   // compression negotiated
	compressed  int    // how many messages must have come compressed
	closeReason string // the reason of the close frame the server got, "*" for any
	peerPings   int    // pings the client sent, -1 for any
}

// check compares the record of a server connection with what the session
// sent.
func (rec *wsiSrvConn) check(want wsiSrvWant) error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if len(rec.errs) > 0 {
		add("errors %v", rec.errs)
	}
	if rec.msgs != want.count {
		add("%d messages, want %d", rec.msgs, want.count)
	}
	if sum := rec.digest.Sum(nil); !bytes.Equal(sum, want.digest) {
		add("the messages received differ from those sent (digest %x, want %x)", sum[:6], want.digest[:min(6, len(want.digest))])
	}
	if want.comp != strings.Contains(rec.ext, "permessage-deflate") {
		add("offered extensions %q, compression %v", rec.ext, want.comp)
	}
	if rec.compressed != want.compressed {
		add("%d of %d messages came compressed, want %d", rec.compressed, rec.msgs, want.compressed)
	}
	if rec.pongs != rec.pingsSent || len(rec.badCtl) > 0 {
		add("%d pongs for %d pings (unexpected control frames: %q)", rec.pongs, rec.pingsSent, rec.badCtl)
	}
	if want.peerPings >= 0 && rec.peerPings != want.peerPings {
		add("%d pings from the client, want %d", rec.peerPings, want.peerPings)
	}
	if rec.closeFrames != 1 || rec.closeCode != 1000 || (want.closeReason != "*" && rec.closeReason != want.closeReason) {
		add("%d close frames, last code %d reason %q; want one, 1000 %q", rec.closeFrames, rec.closeCode, rec.closeReason, want.closeReason)
	}
	if rec.refused > 0 {
		add("%d sends refused", rec.refused)
	}
	if !rec.closed {
		add("not closed")
	}
	if len(errs) > 0 {
		return fmt.Errorf("server connection (%s): %s", rec.query.Encode(), strings.Join(errs, "; "))
	}
	return nil
}

// wsiGoEcho runs the client side of an echo session with a Go library:
// send is called in order from a goroutine of its own, recv in order from
// the caller's; at most wsiWindow messages await their echo; midway is
// called by the sender once, after the message in the middle (so that a
// pong it asks for comes before the last echo). Each echo is compared with
// what was sent.
func wsiGoEcho(size, count int, send func(i int, text bool, p []byte) error, midway func() error,
	recv func() (text bool, p []byte, err error)) error {
	window := make(chan struct{}, wsiWindow(size))
	stop := make(chan struct{})
	sendErr := make(chan error, 1)
	go func() {
		sendErr <- func() error {
			for i := range count {
				select {
				case window <- struct{}{}:
				case <-stop:
					return nil
				}
				if err := send(i, wsiIsText(i), wsiPayload(wsiIsText(i), size, i)); err != nil {
					return fmt.Errorf("send %d: %w", i, err)
				}
				if i == (count-1)/2 {
					if err := midway(); err != nil {
						return err
					}
				}
			}
			return nil
		}()
	}()
	err := func() error {
		for i := range count {
			text, p, err := recv()
			if err != nil {
				return fmt.Errorf("echo %d of %d: %w", i, count, err)
			}
			if err := wsiCheckEcho(size, i, text, p); err != nil {
				return err
			}
			<-window
		}
		return nil
	}()
	close(stop)
	if err != nil {
		return err // the caller closes the connection, which ends send
	}
	return <-sendErr
}

// wsiMkClient is one session of a Meerkat client against an echo server:
// it sends the plan (whole or in fragments with WSSendFrame, a ping between
// the first two fragments every 100 messages), checks each echo, sends a
// last ping, and once everything is answered (and the server's own ping
// came: some servers send it from another goroutine) closes with 1000 or
// asks the server to close. Its fields are touched on the Poll goroutine
// only.
type wsiMkClient struct {
	size, count, window int
	frag, closeByServer bool
	waitPings           int // pings from the server to wait for before closing

	sent, got   int
	opened      bool
	ext         string // the 101's Sec-WebSocket-Extensions
	compressed  int
	pingsSent   int
	pings       []string // payloads of our pings not answered yet
	pongs       int
	badCtl      []string
	peerPings   int
	closing     bool
	closeFrames int
	closeCode   int
	closeReason string
	mismatch    error
	errs        []error
	refused     int
	closed      bool
}

// wsiCliPing is the prefix of the Meerkat client's ping payloads.
const wsiCliPing = "wsi-cli-ping-"

func (s *wsiMkClient) pump(c *meerkat.Conn) {
	for s.sent < s.count && s.sent-s.got < s.window {
		i := s.sent
		p := wsiPayload(wsiIsText(i), s.size, i)
		ok := true
		if s.frag {
			var ping []byte
			if i%100 == 0 {
				ping = []byte(wsiCliPing + strconv.Itoa(i))
				s.pingsSent++
				s.pings = append(s.pings, string(ping))
			}
			ok = wsiSendFragments(c, p, wsiOp(wsiIsText(i)), ping)
		} else {
			ok = meerkat.WSSend(c, p, wsiOp(wsiIsText(i))) > 0
		}
		if !ok {
			s.refused++
		}
		s.sent++
	}
}

func (s *wsiMkClient) handler(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvWSOpen:
		s.opened = true
		s.ext = string(data.(*meerkat.HTTPMessage).Header("Sec-WebSocket-Extensions"))
		s.pump(c)
	case meerkat.EvWSMsg:
		wm := data.(*meerkat.WSMessage)
		if s.got >= s.count {
			s.mismatch = fmt.Errorf("an extra message of %d bytes", len(wm.Data))
			c.Close()
			return
		}
		if err := wsiCheckEcho(s.size, s.got, wm.Op() == meerkat.WSOpText, wm.Data); err != nil {
			if s.mismatch == nil {
				s.mismatch = err
			}
			c.Close()
			return
		}
		if wm.Flags&0x40 != 0 {
			s.compressed++
		}
		s.got++
		if s.got == s.count {
			if meerkat.WSSend(c, []byte(wsiCliPing+"last"), meerkat.WSOpPing) == 0 {
				s.refused++
			}
			s.pingsSent++
			s.pings = append(s.pings, wsiCliPing+"last")
			return
		}
		s.pump(c)
	case meerkat.EvWSCtl:
		wm := data.(*meerkat.WSMessage)
		switch wm.Op() {
		case meerkat.WSOpPong:
			s.pongs += wsiPong(&s.pings, &s.badCtl, wm.Data)
			s.maybeClose(c)
		case meerkat.WSOpPing:
			s.peerPings++
			s.maybeClose(c)
		case meerkat.WSOpClose:
			s.closeFrames++
			s.closeCode, s.closeReason = wm.CloseCode(), string(wm.CloseReason())
		}
	case meerkat.EvError:
		s.errs = append(s.errs, data.(error))
	case meerkat.EvClose:
		s.closed = true
	}
}

// maybeClose starts the end of the session once every echo and pong came.
func (s *wsiMkClient) maybeClose(c *meerkat.Conn) {
	if s.closing || s.got < s.count || s.pongs < s.pingsSent || s.peerPings < s.waitPings {
		return
	}
	s.closing = true
	if s.closeByServer {
		if meerkat.WSSend(c, []byte(wsiCloseCmd), meerkat.WSOpText) == 0 {
			s.refused++
		}
	} else if !meerkat.WSClose(c, 1000, "meerkat bye") {
		s.refused++
	}
}

// wsiMkWant is what a Meerkat client session should have seen.
type wsiMkWant struct {
	comp        bool   // compression negotiated
	compressed  int    // how many echoes must have come compressed
	closeReason string // of the server's close frame, "*" for any
	peerPings   int    // pings from the server, -1 for any
}

// wsiRunMkClient runs one Meerkat client session against the echo server
// at base (ws:// or wss://, with path) and checks it.
func wsiRunMkClient(t *testing.T, m *meerkat.Manager, base string, s *wsiMkClient, want wsiMkWant) {
	t.Helper()
	if s.window == 0 {
		s.window = wsiWindow(s.size)
	}
	s.waitPings = want.peerPings
	if _, err := m.WSConnect(base+"?"+wsiSessionQuery(s.size, s.frag), s.handler); err != nil {
		t.Fatal(err)
	}
	limit := wsiSessionLimit
	deadline := time.Now().Add(limit)
	for !s.closed {
		if time.Now().After(deadline) {
			t.Fatalf("session size %d: not closed after %v: sent %d, got %d of %d, pongs %d/%d, server pings %d/%d, close frames %d, errors %v",
				s.size, limit, s.sent, s.got, s.count, s.pongs, s.pingsSent, s.peerPings, s.waitPings, s.closeFrames, s.errs)
		}
		m.Poll(10 * time.Millisecond)
	}
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if s.mismatch != nil {
		add("%v", s.mismatch)
	}
	if len(s.errs) > 0 {
		add("errors %v", s.errs)
	}
	if !s.opened || s.got != s.count {
		add("opened %v, %d echoes of %d", s.opened, s.got, s.count)
	}
	if want.comp != strings.Contains(s.ext, "permessage-deflate") {
		add("agreed extensions %q, compression %v", s.ext, want.comp)
	}
	if s.compressed != want.compressed {
		add("%d of %d echoes came compressed, want %d", s.compressed, s.got, want.compressed)
	}
	if s.pongs != s.pingsSent || len(s.badCtl) > 0 {
		add("%d pongs for %d pings (unexpected control frames: %q)", s.pongs, s.pingsSent, s.badCtl)
	}
	if want.peerPings >= 0 && s.peerPings != want.peerPings {
		add("%d pings from the server, want %d", s.peerPings, want.peerPings)
	}
	if s.closeFrames != 1 || s.closeCode != 1000 || (want.closeReason != "*" && s.closeReason != want.closeReason) {
		add("%d close frames, last code %d reason %q; want one, 1000 %q", s.closeFrames, s.closeCode, s.closeReason, want.closeReason)
	}
	if s.refused > 0 {
		add("%d sends refused", s.refused)
	}
	if len(errs) > 0 {
		t.Fatalf("Meerkat client, %d-byte session (frag %v, close by server %v): %s", s.size, s.frag, s.closeByServer, strings.Join(errs, "; "))
	}
}

// wsiFragPings is how many pings an echo that fragments sends between
// fragments for count messages (one every 100, from the first).
func wsiFragPings(count int) int { return (count + 99) / 100 }
