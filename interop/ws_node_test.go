package interop

// Node's ws package (npm ws@8.23.0) against Meerkat's WebSocket server and
// client, on both drivers, plain and TLS, with and without
// permessage-deflate (with context takeover and 10-bit windows, and
// without), messages whole and fragmented. node runs small scripts (node
// -e); ws is taken from $TOOLS_DIR (where .ci/run installs it), from a
// cache directory, or installed there with npm.

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// wsiNodeWS is the version of npm's ws the tests use.
const wsiNodeWS = "8.23.0"

// wsiNodeInstall serialises installs into the cache directory within this
// process.
var wsiNodeInstall sync.Mutex

// wsiNodeModules returns a node_modules directory holding ws@8.23.0 (for
// NODE_PATH): $TOOLS_DIR's, else the user cache's, else one npm installs
// (into the user cache, or a temporary directory if there is none). It
// skips the test when node, or npm where an install is needed, is absent.
func wsiNodeModules(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		wsiMissing(t, "node is not installed (.ci/run installs the nodejs and npm packages and ws@"+wsiNodeWS+"): "+err.Error())
	}
	has := func(dir string) bool {
		b, err := os.ReadFile(filepath.Join(dir, "ws", "package.json"))
		var pkg struct{ Version string }
		return err == nil && json.Unmarshal(b, &pkg) == nil && pkg.Version == wsiNodeWS
	}
	if d := os.Getenv("TOOLS_DIR"); d != "" && has(filepath.Join(d, "node_modules")) {
		return filepath.Join(d, "node_modules")
	}
	wsiNodeInstall.Lock()
	defer wsiNodeInstall.Unlock()
	parent := t.TempDir()
	if cache, err := os.UserCacheDir(); err == nil {
		if err := os.MkdirAll(filepath.Join(cache, "meerkat-interop"), 0o755); err == nil {
			parent = filepath.Join(cache, "meerkat-interop")
		}
	}
	final := filepath.Join(parent, "npm-ws-"+wsiNodeWS)
	if has(filepath.Join(final, "node_modules")) {
		return filepath.Join(final, "node_modules")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		wsiMissing(t, "npm is not installed and ws@"+wsiNodeWS+" is not in $TOOLS_DIR (.ci/run installs both): "+err.Error())
	}
	// Install beside the final place and rename, so that concurrent test
	// processes never see a half-installed package.
	tmp, err := os.MkdirTemp(parent, "npm-ws-install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--prefix", tmp, "ws@"+wsiNodeWS)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install ws@%s: %v\n%s", wsiNodeWS, err, out)
	}
	if !has(filepath.Join(tmp, "node_modules")) {
		t.Fatalf("npm install ws@%s left no node_modules/ws in %s", wsiNodeWS, tmp)
	}
	if err := os.Rename(tmp, final); err != nil && !has(filepath.Join(final, "node_modules")) {
		t.Fatalf("moving the npm install into place: %v", err)
	}
	return filepath.Join(final, "node_modules")
}

// wsiNodeCommon is the part of the node scripts that makes payloads: a
// pool of valid UTF-8 with one-to-four-byte characters (messages are
// copies of windows into it, an incomplete last character replaced by
// ASCII), random bytes for binary, the session digest of wsiHash, and the
// three fragments of wsiPieces.
const wsiNodeCommon = `
'use strict';
const WebSocket = require('ws');
const crypto = require('crypto');
const fs = require('fs');
const cfg = JSON.parse(process.env.WSI_CONFIG);
let seed = 0x9e3779b9;
function rnd() {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed;
}
const POOL = 5 << 20;
const pool = Buffer.alloc(POOL + 8);
(function () {
  let o = 0;
  while (o < POOL) {
    const x = rnd(), k = x % 8, y = x >>> 8;
    let cp;
    if (k < 4) cp = 0x20 + y % 95;
    else if (k < 6) cp = 0x80 + y % (0x800 - 0x80);
    else if (k === 6) { cp = 0x800 + y % (0x10000 - 0x800); if (cp >= 0xd800 && cp < 0xe000) cp -= 0x1000; }
    else cp = 0x10000 + y % (0x110000 - 0x10000);
    if (cp < 0x80) pool[o++] = cp;
    else if (cp < 0x800) { pool[o++] = 0xc0 | cp >> 6; pool[o++] = 0x80 | cp & 63; }
    else if (cp < 0x10000) { pool[o++] = 0xe0 | cp >> 12; pool[o++] = 0x80 | cp >> 6 & 63; pool[o++] = 0x80 | cp & 63; }
    else { pool[o++] = 0xf0 | cp >> 18; pool[o++] = 0x80 | cp >> 12 & 63; pool[o++] = 0x80 | cp >> 6 & 63; pool[o++] = 0x80 | cp & 63; }
  }
})();
function text(size) {
  let off = rnd() % (POOL - size);
  while ((pool[off] & 0xc0) === 0x80) off++;
  const p = Buffer.from(pool.subarray(off, off + size));
  for (let j = size - 1; j >= 0 && j >= size - 4; j--) {
    const b = p[j];
    if ((b & 0xc0) !== 0x80) {
      const need = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
      if (j + need > size) p.fill(0x61, j);
      break;
    }
  }
  return p;
}
function payload(i, size) { return i % 2 === 0 ? text(size) : crypto.randomBytes(size); }
function hashMsg(h, isText, p) {
  const b = Buffer.alloc(9);
  b[0] = isText ? 1 : 2;
  b.writeBigUInt64BE(BigInt(p.length), 1);
  h.update(b);
  h.update(p);
}
function pieces(p) {
  const n = p.length;
  if (n === 0) return [p, p];
  const a = Math.floor(n / 3), b = Math.floor(2 * n / 3);
  return [p.subarray(0, a), p.subarray(a, b), p.subarray(b)];
}
function sendMsg(ws, p, binary, frag) {
  if (!frag) { ws.send(p, { binary }); return; }
  const parts = pieces(p);
  parts.forEach((part, j) => ws.send(part, { binary, fin: j === parts.length - 1 }));
}
function firstDiff(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
`

// wsiNodeClientScript runs the sessions of cfg.sessions one after another
// against cfg.url: per session a connection echoes count messages (text
// and binary alternating, checked byte for byte, at most window awaiting
// their echo), pings after the middle one, and closes with 1000 "node
// bye" or asks the server to close; it prints one JSON line per session.
const wsiNodeClientScript = wsiNodeCommon + `
function session(s) {
  return new Promise((resolve) => {
    const res = { size: s.size, count: s.count, got: 0, ext: '', digest: '', pongs: 0, srvPings: 0,
      closeCode: 0, closeReason: '', error: '' };
    const opts = { maxPayload: 64 << 20, perMessageDeflate: cfg.deflate };
    if (cfg.ca) opts.ca = fs.readFileSync(cfg.ca);
    const ws = new WebSocket(cfg.url + '?size=' + s.size + '&frag=' + (s.frag ? 1 : 0), opts);
    const fail = (msg) => { if (!res.error) res.error = msg; ws.terminate(); };
    const h = crypto.createHash('sha256');
    const sent = [];
    let next = 0;
    function pump() {
      while (next < s.count && next - res.got < s.window) {
        const isText = next % 2 === 0;
        const p = payload(next, s.size);
        sent.push([isText, p]);
        hashMsg(h, isText, p);
        sendMsg(ws, p, !isText, s.frag);
        if (next === Math.floor((s.count - 1) / 2)) ws.ping('wsi-node-ping');
        next++;
      }
    }
    ws.on('upgrade', (r) => { res.ext = r.headers['sec-websocket-extensions'] || ''; });
    ws.on('open', pump);
    ws.on('message', (data, isBinary) => {
      if (res.got >= s.count) return fail('a message after the last echo');
      const [isText, p] = sent[res.got];
      sent[res.got] = null;
      if (isBinary === isText) return fail('message ' + res.got + ': echoed as binary=' + isBinary);
      if (!p.equals(data)) {
        return fail('message ' + res.got + ' (text=' + isText + '): echo of ' + data.length +
          ' bytes differs from the ' + p.length + ' sent, first at byte ' + firstDiff(p, data));
      }
      res.got++;
      if (res.got < s.count) return pump();
      if (res.pongs !== 1) return fail(res.pongs + ' pongs for the ping before the last echo');
      if (s.closeByServer) ws.send(cfg.closeCmd);
      else ws.close(1000, 'node bye');
    });
    ws.on('ping', (d) => { if (d.toString().startsWith(cfg.srvPing)) res.srvPings++; });
    ws.on('pong', (d) => { if (d.toString() === 'wsi-node-ping') res.pongs++; });
    ws.on('error', (e) => { if (!res.error) res.error = 'error event: ' + e.message; });
    ws.on('close', (code, reason) => {
      res.closeCode = code;
      res.closeReason = reason.toString();
      res.digest = h.digest('hex');
      resolve(res);
    });
  });
}
(async () => {
  for (const s of cfg.sessions) console.log(JSON.stringify(await session(s)));
})().catch((e) => { console.error(e); process.exit(1); });
`

// wsiNodeServerScript is an echo server on 127.0.0.1 (https when
// cfg.cert is set) that prints "LISTENING port", then one JSON line per
// connection when it closes. Per connection: a ping once open; each
// message echoed with its type, whole or (frag=1) in three frames;
// cfg.closeCmd makes it close with 1000 "node server bye". It exits when
// its standard input ends.
const wsiNodeServerScript = wsiNodeCommon + `
const http = require('http'), https = require('https');
const server = cfg.cert ? https.createServer({ cert: fs.readFileSync(cfg.cert), key: fs.readFileSync(cfg.key) })
  : http.createServer();
const wss = new WebSocket.WebSocketServer({ server, perMessageDeflate: cfg.deflate, maxPayload: 64 << 20 });
const agreed = new WeakMap();
wss.on('headers', (headers, req) => {
  const ext = headers.find((l) => l.toLowerCase().startsWith('sec-websocket-extensions:'));
  agreed.set(req, ext ? ext.slice(ext.indexOf(':') + 1).trim() : '');
});
wss.on('connection', (ws, req) => {
  const q = new URL(req.url, 'http://x').searchParams;
  const frag = q.get('frag') === '1';
  const res = { query: req.url, ext: agreed.get(req) || '', msgs: 0, digest: '', pongs: 0, pings: 0,
    closeCode: 0, closeReason: '', error: '' };
  const h = crypto.createHash('sha256');
  ws.ping('wsi-node-srv-ping');
  ws.on('pong', (d) => { if (d.toString() === 'wsi-node-srv-ping') res.pongs++; });
  ws.on('ping', () => { res.pings++; });
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === cfg.closeCmd) { ws.close(1000, 'node server bye'); return; }
    res.msgs++;
    hashMsg(h, !isBinary, data);
    sendMsg(ws, data, isBinary, frag);
  });
  ws.on('error', (e) => { if (!res.error) res.error = e.message; });
  ws.on('close', (code, reason) => {
    res.closeCode = code;
    res.closeReason = reason.toString();
    res.digest = h.digest('hex');
    console.log(JSON.stringify(res));
  });
});
server.listen(0, '127.0.0.1', () => console.log('LISTENING ' + server.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`

// wsiNodeModes: with peerTakeover node keeps its context (its default),
// with perMessageDeflate true (a client then offers
// "client_max_window_bits" without a value, as browsers do) or, with
// peerWindow, windows of that many bits (the client asks
// client_max_window_bits=10, the server states server_max_window_bits=10
// unasked); without, node asks for (client) or states (server) no context
// takeover both ways.
var wsiNodeModes = []wsiMode{
	{name: "whole", full: true, tls: true},
	{name: "fragmented", frag: true},
	{name: "deflate-takeover", comp: true, mkTakeover: true, peerTakeover: true},
	{name: "deflate-no-takeover-fragmented", comp: true, frag: true, tls: true},
	{name: "deflate-takeover-window10-fragmented", comp: true, frag: true, mkTakeover: true, peerTakeover: true, peerWindow: 10, noHuge: true},
}

// wsiNodeCompressed is how many of count messages of size node's ws
// compresses: all of them with context takeover; without, those whose
// first frame reaches its threshold (1,024 bytes).
func wsiNodeCompressed(mode wsiMode, size, count int) int {
	if mode.comp && mode.peerTakeover {
		return count
	}
	return wsiCompressedOver(mode, size, count)
}

// wsiNodeDeflate is the perMessageDeflate option of ws for mode, as a
// client or a server.
func wsiNodeDeflate(mode wsiMode, server bool) any {
	switch {
	case !mode.comp:
		return false
	case mode.peerTakeover && mode.peerWindow != 0 && server:
		return map[string]any{"serverMaxWindowBits": mode.peerWindow}
	case mode.peerTakeover && mode.peerWindow != 0:
		return map[string]any{"clientMaxWindowBits": mode.peerWindow}
	case mode.peerTakeover:
		return true
	}
	return map[string]any{"serverNoContextTakeover": true, "clientNoContextTakeover": true}
}

// wsiNodeExt checks the Sec-WebSocket-Extensions agreed with node against
// mode: takeover (with the window asked for) or none. Meerkat echoes a
// client_max_window_bits value and leaves out one without a value.
func wsiNodeExt(mode wsiMode, ext string, server bool) error {
	ok := ext == ""
	if mode.comp {
		ok = strings.HasPrefix(ext, "permessage-deflate")
		if mode.peerTakeover {
			ok = ok && !strings.Contains(ext, "no_context_takeover")
			if mode.peerWindow != 0 {
				window := "client_max_window_bits=" + strconv.Itoa(mode.peerWindow)
				if server {
					window = "server_max_window_bits=" + strconv.Itoa(mode.peerWindow)
				}
				ok = ok && strings.Contains(ext, window)
			} else {
				ok = ok && !strings.Contains(ext, "window_bits")
			}
		} else {
			ok = ok && strings.Contains(ext, "server_no_context_takeover") && strings.Contains(ext, "client_no_context_takeover")
		}
	}
	if !ok {
		return fmt.Errorf("extensions %q agreed with node (mode %s)", ext, mode.name)
	}
	return nil
}

// wsiNodeCmd is a node command running script with cfg, bounded by ctx
// (which kills the process).
func wsiNodeCmd(ctx context.Context, modules, script string, cfg any) *exec.Cmd {
	js, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	cmd := exec.CommandContext(ctx, "node", "-e", script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "WSI_CONFIG="+string(js))
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// wsiNodeSession is one session of the node client.
type wsiNodeSession struct {
	Size          int  `json:"size"`
	Count         int  `json:"count"`
	Window        int  `json:"window"`
	Frag          bool `json:"frag"`
	CloseByServer bool `json:"closeByServer"`
}

// wsiNodeClientResult is what the node client reports about a session.
type wsiNodeClientResult struct {
	Size        int    `json:"size"`
	Count       int    `json:"count"`
	Got         int    `json:"got"`
	Ext         string `json:"ext"`
	Digest      string `json:"digest"`
	Pongs       int    `json:"pongs"`
	SrvPings    int    `json:"srvPings"`
	CloseCode   int    `json:"closeCode"`
	CloseReason string `json:"closeReason"`
	Error       string `json:"error"`
}

// TestWSNodeClient: node's ws as a client against Meerkat's echo server,
// per driver, over plain TCP and TLS (the test CA given to node): per size
// (0, 125, 126, 65535, 65536, 4 MiB) a connection echoes up to 1,000
// messages, text (multi-byte UTF-8) and binary, which node compares byte
// for byte and Meerkat's digest of what it received matches; whole or
// fragmented by node (send with fin false) and echoed whole or in three
// frames by Meerkat; permessage-deflate off, with context takeover and
// node's 10-bit window (Meerkat echoes client_max_window_bits=10), and
// without takeover (messages over node's threshold arrive compressed);
// pings both ways are answered; the close handshake, started by either
// side, gives node the code 1000 and closes Meerkat's side without error.
func TestWSNodeClient(t *testing.T) {
	modules := wsiNodeModules(t)
	caFile, _, _ := writePEM(t)
	wsiForEach(t, "epoll", wsiNodeModes, func(t *testing.T, drv string, useTLS bool, mode wsiMode) {
		s := wsiStartServer(t, drv, useTLS, mode)
		var sessions []wsiNodeSession
		for k, size := range mode.sizes() {
			sessions = append(sessions, wsiNodeSession{Size: size, Count: wsiCount(size, mode),
				Window: wsiWindow(size), Frag: mode.frag, CloseByServer: k%2 == 1})
		}
		cfg := map[string]any{"url": s.url, "deflate": wsiNodeDeflate(mode, false), "sessions": sessions,
			"closeCmd": wsiCloseCmd, "srvPing": wsiSrvPing}
		if useTLS {
			cfg["ca"] = caFile
		}
		var stdout, stderr strings.Builder
		s.run(t, "node client", 6*time.Minute, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := wsiNodeCmd(ctx, modules, wsiNodeClientScript, cfg)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%v\nstderr: %s\nstdout: %s", err, stderr.String(), stdout.String())
			}
			return nil
		})
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		if len(lines) != len(sessions) || len(s.conns) != len(sessions) {
			t.Fatalf("%d session reports and %d server connections for %d sessions\nstdout: %s\nstderr: %s\nother errors: %v",
				len(lines), len(s.conns), len(sessions), stdout.String(), stderr.String(), s.other)
		}
		for k, line := range lines {
			var r wsiNodeClientResult
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("session %d: %v: %q", k, err, line)
			}
			ses := sessions[k]
			wantReason, wantPings := "meerkat server bye", 1
			if !ses.CloseByServer {
				wantReason = "" // Meerkat answers with the code only
			}
			if ses.Frag {
				wantPings += wsiFragPings(ses.Count)
			}
			if r.Error != "" || r.Got != ses.Count || r.Pongs != 1 || r.SrvPings != wantPings || r.CloseCode != 1000 || r.CloseReason != wantReason {
				t.Fatalf("node client, session of %d-byte messages: %+v; want %d echoes, 1 pong, %d server pings, close 1000 %q",
					ses.Size, r, ses.Count, wantPings, wantReason)
			}
			if err := wsiNodeExt(mode, r.Ext, false); err != nil {
				t.Fatal(err)
			}
			digest, err := hex.DecodeString(r.Digest)
			if err != nil || len(digest) != 32 {
				t.Fatalf("node client digest %q", r.Digest)
			}
			reason := "node bye"
			if ses.CloseByServer {
				reason = "*" // ws echoes the code and the reason
			}
			want := wsiSrvWant{count: ses.Count, digest: digest, comp: mode.comp,
				compressed: wsiNodeCompressed(mode, ses.Size, ses.Count), closeReason: reason, peerPings: 1}
			if err := s.conns[k].check(want); err != nil {
				t.Fatal(err)
			}
		}
		if len(s.other) > 0 {
			t.Fatalf("errors on other connections: %v", s.other)
		}
	})
}

// wsiNodeServerResult is what the node server reports about a connection.
type wsiNodeServerResult struct {
	Query       string `json:"query"`
	Ext         string `json:"ext"`
	Msgs        int    `json:"msgs"`
	Digest      string `json:"digest"`
	Pongs       int    `json:"pongs"`
	Pings       int    `json:"pings"`
	CloseCode   int    `json:"closeCode"`
	CloseReason string `json:"closeReason"`
	Error       string `json:"error"`
}

// wsiStartNodeServer starts the node echo server and returns its ws:// or
// wss:// URL and its per-connection reports. The test stops it at the end
// (its standard input closed, then killed by PID if it has not exited).
func wsiStartNodeServer(t *testing.T, modules string, useTLS bool, mode wsiMode) (string, <-chan wsiPeerResult) {
	t.Helper()
	cfg := map[string]any{"deflate": wsiNodeDeflate(mode, true), "closeCmd": wsiCloseCmd}
	if useTLS {
		_, certFile, keyFile := writePEM(t)
		cfg["cert"], cfg["key"] = certFile, keyFile
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	cmd := wsiNodeCmd(ctx, modules, wsiNodeServerScript, cfg)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		cancel()
	})
	var port string
	select {
	case l, ok := <-lines:
		if !ok || !strings.HasPrefix(l, "LISTENING ") {
			t.Fatalf("node server: %q\nstderr: %s", l, stderr.String())
		}
		port = strings.TrimPrefix(l, "LISTENING ")
	case <-time.After(30 * time.Second):
		t.Fatalf("node server did not start\nstderr: %s", stderr.String())
	}
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatalf("node server port %q", port)
	}
	results := make(chan wsiPeerResult, 64)
	go func() {
		defer close(results)
		for l := range lines {
			var r wsiNodeServerResult
			res := wsiPeerResult{query: l}
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				res.err = fmt.Errorf("node server printed %q: %v", l, err)
			} else {
				res = wsiPeerResult{query: r.Query, ext: r.Ext, msgs: r.Msgs, pongs: r.Pongs, pings: r.Pings,
					closeCode: r.CloseCode, closeReason: r.CloseReason}
				res.digest, _ = hex.DecodeString(r.Digest)
				if r.Error != "" {
					res.err = errors.New(r.Error)
				}
			}
			results <- res
		}
	}()
	scheme := "ws"
	if useTLS {
		scheme = "wss"
	}
	return scheme + "://127.0.0.1:" + port + "/echo", results
}

// TestWSNodeServer: Meerkat's WebSocket client against a node ws echo
// server (https with the test certificate for wss), per driver, over
// plain TCP and TLS: per size a connection sends up to 1,000 messages,
// text (multi-byte UTF-8) and binary, whole or in three frames with
// WSSendFrame (a ping between the first two every 100 messages), and
// compares every echo byte for byte (node echoes whole or in three frames
// of its own); node receives exactly what was sent; permessage-deflate
// off, with context takeover and node stating server_max_window_bits=10
// unasked, and without takeover; pings both ways are answered; the close
// handshake, started by either side, gives 1000 to both and the Meerkat
// connection closes without error.
func TestWSNodeServer(t *testing.T) {
	modules := wsiNodeModules(t)
	wsiForEach(t, "portable", wsiNodeModes, func(t *testing.T, drv string, useTLS bool, mode wsiMode) {
		url, results := wsiStartNodeServer(t, modules, useTLS, mode)
		m := wsiManager(t, drv, mode, false)
		for k, size := range mode.sizes() {
			s := &wsiMkClient{size: size, count: wsiCount(size, mode), frag: mode.frag, closeByServer: k%2 == 1}
			reason := "*" // ws echoes the code and the reason
			if s.closeByServer {
				reason = "node server bye"
			}
			wsiRunMkClient(t, m, url, s, wsiMkWant{comp: mode.comp, compressed: wsiNodeCompressed(mode, size, s.count),
				closeReason: reason, peerPings: 1})
			if err := wsiNodeExt(mode, s.ext, true); err != nil {
				t.Fatal(err)
			}
			r := wsiPeerResultOf(t, results)
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

// wsiMissing skips a test whose peer is not installed, except under CI
// (MEERKAT_CI set by .ci/run, which installs every peer), where it fails.
func wsiMissing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("MEERKAT_CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
}
