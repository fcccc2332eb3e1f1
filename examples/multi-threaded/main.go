// Command multi-threaded hands slow work to worker goroutines and sends the
// results from the event loop: a worker never touches a connection, it calls
// Manager.Wakeup with the connection's ID, and the handler answers on
// EvWakeup. Each line a client sends comes back upper-cased after a delay.
// Try it with: go run ./examples/multi-threaded & nc localhost 1235
package main

import (
	"bytes"
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/meerkat-net/meerkat"
)

// job is one line to process for one connection.
type job struct {
	connID uint64
	line   []byte
}

// worker does the slow part and hands the answer back to the event loop.
func worker(mgr *meerkat.Manager, jobs <-chan job, delay time.Duration) {
	for j := range jobs {
		time.Sleep(delay) // stands for a database query or a computation
		mgr.Wakeup(j.connID, bytes.ToUpper(j.line))
	}
}

func handler(jobs chan<- job) meerkat.Handler {
	return func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvRead:
			for {
				buf := c.Recv().Bytes()
				i := bytes.IndexByte(buf, '\n')
				if i < 0 {
					return
				}
				// Copy: the receive buffer is only valid during this call.
				jobs <- job{c.ID(), bytes.Clone(buf[:i+1])}
				c.Recv().Consume(i + 1)
			}
		case meerkat.EvWakeup:
			c.Send(data.([]byte)) // back on the event loop: safe to send
		}
	}
}

// run serves on url with workers goroutines until ctx is done.
func run(ctx context.Context, url string, workers int, delay time.Duration, ready func(string)) error {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	jobs := make(chan job, 1024)
	defer close(jobs)
	for range workers {
		go worker(mgr, jobs, delay)
	}
	l, err := mgr.Listen(url, handler(jobs))
	if err != nil {
		return err
	}
	ready(l.LocalAddr().String())
	return mgr.Run(ctx)
}

func main() {
	url := flag.String("listen", "tcp://0.0.0.0:1235", "URL to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, *url, 4, time.Second, func(addr string) { log.Printf("listening on %s", addr) })
	if err != nil {
		log.Fatal(err)
	}
}
