// Command http-server is a small web server: two routes answered in code,
// whose variable parts HTTPMatch captures, and the files of a directory for
// every other path (HTTPServeDir: index.html or a listing, MIME types,
// ranges, conditional requests).
//
//	GET /api/hello/NAME  {"greeting":"Hello, NAME!"}
//	GET /api/sum/A/B     {"a":A,"b":B,"sum":A+B}
//	anything else        a file under -root
//
// Try it with:
//
//	go run ./examples/http-server -root . &
//	curl localhost:8000/api/hello/world; curl localhost:8000/api/sum/2/40; curl localhost:8000/
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"os"
	"os/signal"
	"strconv"

	"github.com/meerkat-net/meerkat"
)

// replyJSON answers with v encoded as JSON.
func replyJSON(c *meerkat.Conn, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		meerkat.HTTPReply(c, 500, "", "%v\n", err)
		return
	}
	meerkat.HTTPReply(c, status, "Content-Type: application/json\r\n", "%s\n", body)
}

func handler(root string) meerkat.Handler {
	opts := &meerkat.HTTPServeOptions{RootDir: root}
	caps := make([][]byte, 2) // reused: handlers run one at a time
	return func(c *meerkat.Conn, ev meerkat.Event, data any) {
		if ev != meerkat.EvHTTPMsg {
			return
		}
		hm := data.(*meerkat.HTTPMessage)
		switch {
		case meerkat.HTTPMatch("/api/hello/*", hm.URI, caps):
			name, err := meerkat.HTTPURLDecode(caps[0], false) // the path is sent %-encoded
			if err != nil {
				meerkat.HTTPReply(c, 400, "", "bad name: %v\n", err)
				return
			}
			replyJSON(c, 200, map[string]string{"greeting": "Hello, " + string(name) + "!"})
		case meerkat.HTTPMatch("/api/sum/*/*", hm.URI, caps):
			a, errA := strconv.Atoi(string(caps[0]))
			b, errB := strconv.Atoi(string(caps[1]))
			if errA != nil || errB != nil {
				replyJSON(c, 400, map[string]string{"error": "want /api/sum/INT/INT"})
				return
			}
			replyJSON(c, 200, map[string]int{"a": a, "b": b, "sum": a + b})
		default:
			meerkat.HTTPServeDir(c, hm, opts)
		}
	}
}

// run serves on url until ctx is done; ready receives the listening address.
func run(ctx context.Context, url, root string, ready func(string)) error {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	l, err := mgr.HTTPListen(url, handler(root))
	if err != nil {
		return err
	}
	ready(l.LocalAddr().String())
	return mgr.Run(ctx)
}

func main() {
	url := flag.String("listen", "http://0.0.0.0:8000", "URL to listen on")
	root := flag.String("root", ".", "directory to serve")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, *url, *root, func(addr string) { log.Printf("serving %s on http://%s", *root, addr) })
	if err != nil {
		log.Fatal(err)
	}
}
