package main

import (
	"github.com/meerkat-net/meerkat"
)

// hub is "meerkat serve --ws PATH": a WebSocket broadcast hub at PATH
// (every message from one client goes to all the others), and at the same
// path, for a plain GET, a small page that uses it.
type hub struct {
	path  string
	conns map[*meerkat.Conn]struct{}
	s     *server
}

// request handles a request for the hub's path; it reports whether it did.
func (h *hub) request(c *meerkat.Conn, hm *meerkat.HTTPMessage) bool {
	if h == nil || string(hm.URI) != h.path {
		return false
	}
	switch method := string(hm.Method); {
	case hm.Header("Upgrade") != nil:
		meerkat.WSUpgrade(c, hm, "")
	case method == "GET" || method == "HEAD":
		meerkat.HTTPReply(c, 200, "Content-Type: text/html; charset=utf-8\r\nCache-Control: no-cache\r\n"+h.s.opts.ExtraHeaders, "%s", hubPage)
	default:
		meerkat.HTTPReply(c, 405, "Allow: GET, HEAD\r\n"+h.s.opts.ExtraHeaders, "method not allowed\n")
	}
	return true
}

// event handles the WebSocket events of hub connections.
func (h *hub) event(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvWSOpen:
		h.conns[c] = struct{}{}
		h.s.log.Debug("hub: joined", "conn", c.ID(), "remote", c.RemoteAddr(), "members", len(h.conns))
	case meerkat.EvWSMsg:
		wm := data.(*meerkat.WSMessage)
		for other := range h.conns {
			if other == c || other.IsClosing() {
				continue
			}
			if meerkat.WSSend(other, wm.Data, wm.Op()) == 0 {
				// It cannot keep up (its send buffer is full): it goes,
				// rather than hold everyone else's messages in memory.
				h.s.log.Warn("hub: member dropped, too slow", "conn", other.ID(), "remote", other.RemoteAddr())
				other.Close()
			}
		}
	case meerkat.EvClose:
		if _, ok := h.conns[c]; ok {
			delete(h.conns, c)
			h.s.log.Debug("hub: left", "conn", c.ID(), "members", len(h.conns))
		}
	}
}

// hubPage is the demo page. With "?selftest" in its URL it opens two
// sockets, sends a token on one, and reports in #status whether the other
// received it (for headless browser tests).
const hubPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>meerkat WebSocket hub</title>
<style>
body { font-family: sans-serif; max-width: 40em; margin: 2em auto; }
#log { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em; white-space: pre-wrap; }
form { display: flex; gap: .5em; margin-top: .5em; }
input { flex: 1; }
</style>
</head>
<body>
<h1>WebSocket hub</h1>
<p>Every message sent here goes to every other page open on this hub.
Status: <span id="status">connecting</span></p>
<div id="log"></div>
<form id="send"><input id="text" autocomplete="off" placeholder="message"><button>Send</button></form>
<script>
"use strict";
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + location.pathname;
const status = document.getElementById("status");
const log = document.getElementById("log");
function show(line) {
  log.textContent += line + "\n";
  log.scrollTop = log.scrollHeight;
}
if (location.search.includes("selftest")) {
  const token = "token-" + Math.random().toString(36).slice(2);
  const a = new WebSocket(url), b = new WebSocket(url);
  let open = 0;
  const ready = () => { if (++open === 2) a.send(token); };
  a.onopen = ready;
  b.onopen = ready;
  b.onmessage = (ev) => {
    status.textContent = ev.data === token ? "SELFTEST OK" : "SELFTEST FAIL: got " + ev.data;
    a.close(1000);
    b.close(1000);
  };
  a.onerror = b.onerror = () => { status.textContent = "SELFTEST FAIL: socket error"; };
} else {
  const ws = new WebSocket(url);
  ws.onopen = () => { status.textContent = "connected"; };
  ws.onclose = (ev) => { status.textContent = "closed (" + ev.code + ")"; };
  ws.onmessage = (ev) => show(typeof ev.data === "string" ? ev.data : "[binary message]");
  document.getElementById("send").onsubmit = (ev) => {
    ev.preventDefault();
    const input = document.getElementById("text");
    if (input.value !== "" && ws.readyState === WebSocket.OPEN) {
      ws.send(input.value);
      show("me: " + input.value);
      input.value = "";
    }
  };
}
</script>
</body>
</html>
`
