package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// wsPeer is a Meerkat WebSocket client run by the test between runs of
// its Manager.
type wsPeer struct {
	m      *meerkat.Manager
	c      *meerkat.Conn
	open   bool
	closed bool
	got    []string
}

func dialWS(t *testing.T, url string) *wsPeer {
	t.Helper()
	p := &wsPeer{m: meerkat.NewManager()}
	t.Cleanup(p.m.Close)
	c, err := p.m.WSConnect(url, func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvWSOpen:
			p.open = true
		case meerkat.EvWSMsg:
			p.got = append(p.got, string(data.(*meerkat.WSMessage).Data))
		case meerkat.EvClose:
			p.closed = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	p.c = c
	p.until(t, "the handshake", func() bool { return p.open })
	return p
}

func (p *wsPeer) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); {
		if p.closed && !cond() || time.Since(start) > 10*time.Second {
			t.Fatalf("waiting for %s: closed %v, got %q", what, p.closed, p.got)
		}
		p.m.Poll(20 * time.Millisecond)
	}
}

// TestServeWSHub: with --ws /ws, what one client sends reaches every other
// one, not itself; a plain GET of /ws is the demo page; the files are
// still served.
func TestServeWSHub(t *testing.T) {
	p := startServe(t, tempRoot(t), 1, "--listen", "http://127.0.0.1:0", "--ws", "/ws")
	base := strings.TrimSuffix(p.urls[0], "/")
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	a, b, c := dialWS(t, wsURL), dialWS(t, wsURL), dialWS(t, wsURL)
	meerkat.WSSend(a.c, []byte("from a"), meerkat.WSOpText)
	a.m.Poll(0)
	b.until(t, "b's message", func() bool { return len(b.got) == 1 })
	c.until(t, "c's message", func() bool { return len(c.got) == 1 })
	meerkat.WSSend(c.c, []byte("from c"), meerkat.WSOpText)
	c.m.Poll(0)
	a.until(t, "a's message", func() bool { return len(a.got) == 1 })
	b.until(t, "b's second message", func() bool { return len(b.got) == 2 })
	if a.got[0] != "from c" || b.got[0] != "from a" || b.got[1] != "from c" || c.got[0] != "from a" || len(c.got) != 1 {
		t.Fatalf("a %q, b %q, c %q", a.got, b.got, c.got)
	}
	status, page := get(t, http.DefaultClient, base+"/ws")
	if status != 200 || !strings.Contains(page, "new WebSocket(url)") {
		t.Fatalf("GET /ws: %d %.200q", status, page)
	}
	if status, body := get(t, http.DefaultClient, base+"/hello.txt"); status != 200 || body != "hello, meerkat\n" {
		t.Fatalf("GET /hello.txt: %d %q", status, body)
	}
	// SIGINT: each client gets a close frame (1001) and answers it, then
	// the server exits.
	p.cmd.Process.Signal(syscall.SIGINT)
	for start := time.Now(); !(a.closed && b.closed && c.closed); {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("closed: a %v, b %v, c %v", a.closed, b.closed, c.closed)
		}
		for _, peer := range []*wsPeer{a, b, c} {
			peer.m.Poll(5 * time.Millisecond)
		}
	}
	p.stop(t)
}

// TestWSCommand: "meerkat ws" sends each input line as a message, prints
// each message received, closes with 1000 at the end of input and exits 0;
// -H headers reach the server; a refused handshake exits 1.
func TestWSCommand(t *testing.T) {
	m := meerkat.NewManager()
	var header string
	l, err := m.HTTPListen("http://127.0.0.1:0", func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvHTTPMsg:
			hm := data.(*meerkat.HTTPMessage)
			if string(hm.URI) != "/echo" {
				meerkat.HTTPReply(c, 404, "", "no\n")
				return
			}
			header = string(hm.Header("X-Test"))
			meerkat.WSUpgrade(c, hm, "")
		case meerkat.EvWSMsg:
			wm := data.(*meerkat.WSMessage)
			meerkat.WSPrintf(c, wm.Op(), "echo:%s", wm.Data)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				m.Close()
				return
			default:
				m.Poll(10 * time.Millisecond)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	url := "ws://" + l.LocalAddr().String()

	runWith := func(stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		code := run(ctx, append([]string{"ws"}, args...), stdio{in: strings.NewReader(stdin), out: &out, err: &errb})
		return code, out.String(), errb.String()
	}
	code, out, errs := runWith("hello\nwörld\r\n\nlast", url+"/echo", "-H", "X-Test: yes")
	if code != 0 || out != "echo:hello\necho:wörld\necho:\necho:last\n" || header != "yes" {
		t.Fatalf("exit %d, out %q, stderr %q, header %q", code, out, errs, header)
	}
	code, out, errs = runWith("bin\n", "-b", url+"/echo")
	if code != 0 || out != "echo:bin\n" {
		t.Fatalf("-b: exit %d, out %q, stderr %q", code, out, errs)
	}
	code, _, errs = runWith("x\n", url+"/nothere")
	if code != 1 || !strings.Contains(errs, "404") {
		t.Fatalf("refused handshake: exit %d, stderr %q", code, errs)
	}
	if code, _, _ := runWith("", "http://x/"); code != 2 {
		t.Fatalf("http URL: exit %d, want 2", code)
	}
}

// TestServeWSHubChromium: headless Chromium loads the hub's page from
// "meerkat serve --ws /ws" with ?selftest; its script opens two WebSockets
// to the hub, sends a token on one and reports on the page whether the
// other received it. (.ci/run installs chromium; without it the test is
// skipped, except under CI.)
func TestServeWSHubChromium(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		if os.Getenv("MEERKAT_CI") != "" {
			t.Fatal("chromium is not installed (CI installs it)")
		}
		t.Skip("chromium is not installed")
	}
	p := startServe(t, tempRoot(t), 1, "--listen", "http://127.0.0.1:0", "--ws", "/ws")
	page := strings.TrimSuffix(p.urls[0], "/") + "/ws?selftest"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", page)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "SELFTEST OK") {
		t.Fatalf("the page did not report success:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	p.stop(t)
}
