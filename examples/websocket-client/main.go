// Command websocket-client connects to a WebSocket server, sends each
// command-line argument as a text message, prints what comes back, and
// closes once every message was answered (or after a timeout). WSConnect
// does the handshake (for wss://, TLS with certificate verification
// first); EvWSOpen says it succeeded.
//
// Try it with the echo server of examples/websocket-server:
//
//	go run ./examples/websocket-server &
//	go run ./examples/websocket-client -url ws://localhost:8000/websocket hello world
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/meerkat-net/meerkat"
)

// talk sends msgs to url and writes each message received to out, one per
// line, until as many came back as were sent.
func talk(url string, msgs []string, timeout time.Duration, out io.Writer) error {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	var err error
	received, done := 0, false
	c, cerr := mgr.WSConnect(url, func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvWSOpen:
			for _, m := range msgs {
				meerkat.WSSend(c, []byte(m), meerkat.WSOpText)
			}
			if len(msgs) == 0 {
				meerkat.WSClose(c, meerkat.WSCloseNormal, "nothing to say")
			}
		case meerkat.EvWSMsg:
			fmt.Fprintf(out, "%s\n", data.(*meerkat.WSMessage).Data)
			if received++; received == len(msgs) {
				meerkat.WSClose(c, meerkat.WSCloseNormal, "done") // the server answers, then we close
			}
		case meerkat.EvError:
			if err == nil {
				err = data.(error)
			}
		case meerkat.EvClose:
			done = true
		}
	})
	if cerr != nil {
		return cerr
	}
	mgr.AddTimer(timeout, 0, func() {
		if err == nil {
			err = fmt.Errorf("no answer within %v", timeout)
		}
		c.Close()
	})
	for !done {
		mgr.Poll(time.Second)
	}
	if err == nil && received < len(msgs) {
		err = errors.New("the connection closed before every answer came")
	}
	return err
}

func main() {
	url := flag.String("url", "ws://localhost:8000/websocket", "WebSocket URL (ws:// or wss://)")
	timeout := flag.Duration("timeout", 10*time.Second, "give up after this long")
	flag.Parse()
	if err := talk(*url, flag.Args(), *timeout, os.Stdout); err != nil {
		log.Fatal(err)
	}
}
