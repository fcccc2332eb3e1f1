// Command embedded-filesystem serves a web UI built into the program: the
// files under web/ (index.html, style.css, app.js) are embedded with
// //go:embed and served by HTTPServeDir from HTTPServeOptions.FS, with their
// MIME types, ETags and conditional requests, and nothing read from disk.
// The page's script polls GET /api/status, answered in code.
//
// Try it with: go run ./examples/embedded-filesystem & open http://localhost:8000/
package main

import (
	"context"
	"embed"
	"encoding/json"
	"flag"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/meerkat-net/meerkat"
)

//go:embed web
var web embed.FS

func handler() meerkat.Handler {
	root, err := fs.Sub(web, "web") // serve web/index.html as /index.html
	if err != nil {
		panic(err) // cannot happen: "web" is a valid path
	}
	opts := &meerkat.HTTPServeOptions{
		FS:           root,
		ExtraHeaders: "Cache-Control: no-cache\r\n", // revalidate: ETags make that cheap
	}
	start, requests := time.Now(), 0
	return func(c *meerkat.Conn, ev meerkat.Event, data any) {
		if ev != meerkat.EvHTTPMsg {
			return
		}
		hm := data.(*meerkat.HTTPMessage)
		requests++
		if meerkat.HTTPMatch("/api/status", hm.URI, nil) {
			status, _ := json.Marshal(map[string]any{
				"uptime":   time.Since(start).Round(time.Second).String(),
				"requests": requests,
			})
			meerkat.HTTPReply(c, 200, "Content-Type: application/json\r\n", "%s\n", status)
			return
		}
		meerkat.HTTPServeDir(c, hm, opts)
	}
}

// run serves on url until ctx is done; ready receives the listening address.
func run(ctx context.Context, url string, ready func(string)) error {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	l, err := mgr.HTTPListen(url, handler())
	if err != nil {
		return err
	}
	ready(l.LocalAddr().String())
	return mgr.Run(ctx)
}

func main() {
	url := flag.String("listen", "http://0.0.0.0:8000", "URL to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, *url, func(addr string) { log.Printf("web UI on http://%s/", addr) })
	if err != nil {
		log.Fatal(err)
	}
}
