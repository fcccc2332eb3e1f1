// Command websocket-server is a WebSocket echo server with a page that uses
// it: GET / serves the page, /websocket is upgraded with WSUpgrade, and
// every message received there (text or binary) is sent back as it came.
// Pings are answered by Meerkat itself; a client that goes quiet for a
// minute is pinged, and dropped if it does not answer.
//
// Try it with:
//
//	go run ./examples/websocket-server &
//	go run ./cmd/meerkat ws ws://localhost:8000/websocket   # type lines
//
// or open http://localhost:8000/ in a browser.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/meerkat-net/meerkat"
)

func handler(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvHTTPMsg:
		hm := data.(*meerkat.HTTPMessage)
		switch string(hm.URI) {
		case "/websocket":
			meerkat.WSUpgrade(c, hm, "") // 101, then EvWSOpen; 400 if it is no handshake
		case "/":
			meerkat.HTTPReply(c, 200, "Content-Type: text/html; charset=utf-8\r\n", "%s", page)
		default:
			meerkat.HTTPReply(c, 404, "", "not found\n")
		}
	case meerkat.EvWSMsg:
		wm := data.(*meerkat.WSMessage)
		meerkat.WSSend(c, wm.Data, wm.Op()) // wm.Data is valid during this call only
	}
}

// run serves on url until ctx is done; ready receives the listening address.
func run(ctx context.Context, url string, ready func(string)) error {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	mgr.WS.PingInterval = time.Minute
	mgr.WS.Compression = true // permessage-deflate, when the client offers it
	l, err := mgr.HTTPListen(url, handler)
	if err != nil {
		return err
	}
	ready(l.LocalAddr().String())
	return mgr.Run(ctx) // on ctx's end, clients get a close frame (1001)
}

func main() {
	url := flag.String("listen", "http://0.0.0.0:8000", "URL to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, *url, func(addr string) { log.Printf("echo on ws://%s/websocket, page on http://%s/", addr, addr) })
	if err != nil {
		log.Fatal(err)
	}
}

const page = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>WebSocket echo</title></head>
<body>
<form id="f"><input id="t" value="hello"><button>Send</button></form>
<pre id="log"></pre>
<script>
const log = (s) => document.getElementById("log").textContent += s + "\n";
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/websocket");
ws.onopen = () => log("connected");
ws.onmessage = (ev) => log("echo: " + ev.data);
ws.onclose = (ev) => log("closed: " + ev.code);
document.getElementById("f").onsubmit = (ev) => { ev.preventDefault(); ws.send(document.getElementById("t").value); };
</script>
</body></html>
`
