// Command tcp-echo is a TCP echo server: every byte a client sends comes
// back to it. Try it with: go run ./examples/tcp-echo & nc localhost 1234
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"

	"github.com/meerkat-net/meerkat"
)

// echo sends back what arrives and consumes it from the receive buffer.
func echo(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvAccept:
		log.Printf("%v: connected", c.RemoteAddr())
	case meerkat.EvRead:
		c.Send(c.Recv().Bytes())
		c.Recv().Consume(c.Recv().Len())
	case meerkat.EvError:
		log.Printf("%v: %v", c.RemoteAddr(), data)
	case meerkat.EvClose:
		if c.IsAccepted() {
			log.Printf("%v: closed", c.RemoteAddr())
		}
	}
}

// run serves on url until ctx is done; ready receives the listening address.
func run(ctx context.Context, url string, ready func(string)) error {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	l, err := mgr.Listen(url, echo)
	if err != nil {
		return err
	}
	ready(l.LocalAddr().String())
	return mgr.Run(ctx)
}

func main() {
	url := flag.String("listen", "tcp://0.0.0.0:1234", "URL to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, *url, func(addr string) { log.Printf("echo server listening on %s", addr) })
	if err != nil {
		log.Fatal(err)
	}
}
