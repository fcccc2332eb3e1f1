// Command file-upload receives files into a directory in the two ways a
// browser can send them. GET / is a page (index.html) offering both:
//
//   - a form: POST /upload with a multipart/form-data body, whose parts
//     HTTPNextMultipart walks. The body is received whole, so
//     Manager.RecvLimit (2 MiB by default) bounds it: 413 beyond;
//   - a small JavaScript that sends a file in 64 KiB pieces, one
//     POST /upload?file=NAME&offset=N each: Mongoose's upload protocol,
//     which HTTPUpload implements (offset 0 creates the file, each next
//     piece must start at its current size). Files of any size go through
//     with bounded memory.
//
// Try it with: go run ./examples/file-upload -dir /tmp & open http://localhost:8000/
// or: curl -F file=@README.md localhost:8000/upload
// or: curl --data-binary @README.md 'localhost:8000/upload?file=README.md&offset=0'
package main

import (
	"context"
	_ "embed"
	"flag"
	"log"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"

	"github.com/meerkat-net/meerkat"
)

//go:embed index.html
var page string

type uploader struct {
	dir     string
	root    *os.Root // dir, for the form's files: nothing outside it is written
	maxSize int64
}

func (u *uploader) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	if ev != meerkat.EvHTTPMsg {
		return
	}
	hm := data.(*meerkat.HTTPMessage)
	switch {
	case string(hm.URI) == "/" && string(hm.Method) == "GET":
		meerkat.HTTPReply(c, 200, "Content-Type: text/html; charset=utf-8\r\n", "%s", page)
	case string(hm.URI) == "/upload" && string(hm.Method) == "POST":
		if _, ok := meerkat.HTTPVar(hm.Query, "file"); ok {
			// A piece: HTTPUpload checks the name and offset, writes, replies.
			if _, err := meerkat.HTTPUpload(c, hm, u.dir, u.maxSize); err != nil {
				log.Print(err)
			}
			return
		}
		u.form(c, hm)
	default:
		meerkat.HTTPReply(c, 404, "", "not found\n")
	}
}

// form stores the files of a multipart/form-data body.
func (u *uploader) form(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
	if meerkat.HTTPMultipartBoundary(hm) == nil {
		meerkat.HTTPReply(c, 400, "", "want a multipart/form-data body or ?file=NAME&offset=N\n")
		return
	}
	var report strings.Builder
	var part meerkat.HTTPPart
	for ofs := meerkat.HTTPNextMultipart(hm.Body, 0, &part); ofs > 0; ofs = meerkat.HTTPNextMultipart(hm.Body, ofs, &part) {
		if len(part.Filename) == 0 {
			continue // a field that is not a file, or no file chosen
		}
		// The name comes from the client: keep its last element only.
		name := path.Base(strings.ReplaceAll(string(part.Filename), `\`, "/"))
		if !filepath.IsLocal(name) || name == "." {
			meerkat.HTTPReply(c, 400, "", "bad file name %q\n", part.Filename)
			return
		}
		if int64(len(part.Body)) > u.maxSize {
			meerkat.HTTPReply(c, 413, "", "%s is larger than %d bytes\n", name, u.maxSize)
			return
		}
		if err := u.root.WriteFile(name, part.Body, 0o644); err != nil {
			meerkat.HTTPReply(c, 500, "", "cannot store %s: %v\n", name, err)
			return
		}
		log.Printf("stored %s (%d bytes)", name, len(part.Body))
		report.WriteString("stored " + name + "\n")
	}
	if report.Len() == 0 {
		meerkat.HTTPReply(c, 400, "", "no file in the form\n")
		return
	}
	meerkat.HTTPReply(c, 200, "Content-Type: text/plain; charset=utf-8\r\n", "%s", report.String())
}

// run stores uploads into dir, serving on url until ctx is done; ready
// receives the listening address.
func run(ctx context.Context, url, dir string, maxSize int64, ready func(string)) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	mgr := meerkat.NewManager()
	defer mgr.Close()
	u := &uploader{dir: dir, root: root, maxSize: maxSize}
	l, err := mgr.HTTPListen(url, u.handle)
	if err != nil {
		return err
	}
	ready(l.LocalAddr().String())
	return mgr.Run(ctx)
}

func main() {
	url := flag.String("listen", "http://0.0.0.0:8000", "URL to listen on")
	dir := flag.String("dir", ".", "directory the files are stored in")
	maxSize := flag.Int64("max", 1<<30, "largest file accepted, in bytes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, *url, *dir, *maxSize, func(addr string) { log.Printf("upload page on http://%s/", addr) })
	if err != nil {
		log.Fatal(err)
	}
}
