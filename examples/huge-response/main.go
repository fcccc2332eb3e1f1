// Command huge-response sends a response body far larger than memory allows
// (1 GiB by default) in bounded memory. HTTPPump calls a function whenever
// less than 64 KiB of output is queued; the function generates the next
// piece into one reused buffer, so a response holds that buffer and about
// as much queued output however big the body is and however slow the
// client. Flow control comes from the socket: a slow client slows the pump.
//
// The body is text lines, each the hex offset of its own start, so a client
// can check any part of it. It goes with a Content-Length, or chunked with
// ?chunked (for a body whose size is not known in advance). Ctrl-C stops
// accepting and lets the responses in progress finish (for up to
// Manager.ShutdownTimeout).
//
// Try it with:
//
//	go run ./examples/huge-response &
//	curl -s localhost:8000/ | tail -2; curl -s 'localhost:8000/?chunked' | wc -c
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"

	"github.com/meerkat-net/meerkat"
)

const (
	lineLen = 16       // "000000000000010\n": the line's offset, 15 hex digits
	piece   = 64 << 10 // bytes generated at a time, a multiple of lineLen
)

// fill writes the lines starting at off (a multiple of lineLen) into p,
// whose length is a multiple of lineLen.
func fill(p []byte, off int64) {
	const hex = "0123456789abcdef"
	for i := 0; i < len(p); i += lineLen {
		v := uint64(off) + uint64(i)
		for j := lineLen - 2; j >= 0; j-- {
			p[i+j] = hex[v&15]
			v >>= 4
		}
		p[i+lineLen-1] = '\n'
	}
}

// body is one response in progress.
type body struct {
	sent, size int64
	chunked    bool
	buf        []byte
}

// pump queues the next piece; it reports true when the body is complete.
func (b *body) pump(c *meerkat.Conn) bool {
	if c.IsClosing() {
		return true // the client went away: nothing to release but memory
	}
	if b.sent == b.size {
		if b.chunked {
			meerkat.HTTPWriteChunk(c, nil) // the last, empty chunk
		}
		return true
	}
	fill(b.buf, b.sent)
	p := b.buf[:min(int64(len(b.buf)), b.size-b.sent)]
	if b.chunked {
		meerkat.HTTPWriteChunk(c, p)
	} else {
		c.Send(p)
	}
	b.sent += int64(len(p))
	return false
}

func handler(size int64) meerkat.Handler {
	return func(c *meerkat.Conn, ev meerkat.Event, data any) {
		if ev != meerkat.EvHTTPMsg {
			return
		}
		hm := data.(*meerkat.HTTPMessage)
		if string(hm.Method) != "GET" {
			meerkat.HTTPReply(c, 405, "Allow: GET\r\n", "GET only\n")
			return
		}
		b := &body{size: size, buf: make([]byte, piece)}
		if _, b.chunked = meerkat.HTTPVar(hm.Query, "chunked"); b.chunked {
			c.Printf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
		} else {
			c.Printf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", size)
		}
		meerkat.HTTPPump(c, b.pump) // the response ends when pump returns true
	}
}

// run serves bodies of size bytes on url until ctx is done; ready receives
// the listening address.
func run(ctx context.Context, url string, size int64, ready func(string)) error {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	l, err := mgr.HTTPListen(url, handler(size))
	if err != nil {
		return err
	}
	ready(l.LocalAddr().String())
	return mgr.Run(ctx)
}

func main() {
	url := flag.String("listen", "http://0.0.0.0:8000", "URL to listen on")
	size := flag.Int64("size", 1<<30, "body size in bytes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, *url, *size, func(addr string) { log.Printf("serving %d-byte bodies on http://%s/", *size, addr) })
	if err != nil {
		log.Fatal(err)
	}
}
