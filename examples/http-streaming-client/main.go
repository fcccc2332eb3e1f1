// Command http-streaming-client downloads a response of any size with
// bounded memory: on EvHTTPHeaders it calls HTTPStreamBody, and the body
// then arrives as EvHTTPChunk pieces (each written out at once, then
// dropped) followed by an EvHTTPMsg with no body. Without HTTPStreamBody a
// body must fit in Manager.RecvLimit (see examples/http-client). Progress
// goes to stderr; a download that stalls for -idle fails (Manager.IdleTimeout).
//
// Try it with:
//
//	go run ./examples/huge-response &
//	go run ./examples/http-streaming-client -o /tmp/huge.txt http://localhost:8000/
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"time"

	"github.com/meerkat-net/meerkat"
)

// download GETs rawURL, writes the body to out and reports progress to
// progress; it returns the number of body bytes written.
func download(rawURL string, out, progress io.Writer, idle time.Duration) (n int64, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, err
	}
	mgr := meerkat.NewManager()
	defer mgr.Close()
	mgr.IdleTimeout = idle

	total := int64(-1) // the declared length, -1 if the server gives none
	var shown time.Time
	show := func(final bool) {
		if !final && time.Since(shown) < 100*time.Millisecond {
			return
		}
		shown = time.Now()
		if total >= 0 {
			fmt.Fprintf(progress, "\r%d of %d bytes (%d%%)", n, total, n*100/max(total, 1))
		} else {
			fmt.Fprintf(progress, "\r%d bytes", n)
		}
		if final {
			fmt.Fprintln(progress)
		}
	}

	done, complete := false, false
	_, err = mgr.HTTPConnect(u.Scheme+"://"+u.Host, func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvConnect:
			meerkat.HTTPSendRequest(c, "GET", u.RequestURI(), "Connection: close\r\n", nil)
		case meerkat.EvHTTPHeaders:
			hm := data.(*meerkat.HTTPMessage)
			if hm.Status != 200 {
				err = fmt.Errorf("%s answered %d %s", rawURL, hm.Status, meerkat.HTTPStatusText(hm.Status))
				c.Close()
				return
			}
			total = hm.ContentLength
			meerkat.HTTPStreamBody(c) // the body comes as EvHTTPChunk
		case meerkat.EvHTTPChunk:
			hm := data.(*meerkat.HTTPMessage)
			if _, werr := out.Write(hm.Body); werr != nil {
				err = werr
				c.Close()
				return
			}
			n += int64(len(hm.Body))
			show(false)
		case meerkat.EvHTTPMsg:
			complete = true
			show(true)
			c.Close()
		case meerkat.EvError:
			if err == nil {
				err = data.(error)
			}
		case meerkat.EvClose:
			done = true
		}
	})
	if err != nil {
		return 0, err
	}
	for !done {
		mgr.Poll(time.Second)
	}
	if err == nil && !complete {
		err = fmt.Errorf("%s: no response", rawURL)
	}
	return n, err
}

func main() {
	output := flag.String("o", "", "write the body to `FILE` (default: stdout)")
	idle := flag.Duration("idle", 30*time.Second, "give up when nothing arrives for this long")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: http-streaming-client [-o FILE] [-idle D] URL")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	out := os.Stdout
	if *output != "" {
		f, err := os.Create(*output)
		if err != nil {
			log.Fatal(err)
		}
		out = f
	}
	_, err := download(flag.Arg(0), out, os.Stderr, *idle)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Fatal(err) // a partial file stays behind
	}
}
