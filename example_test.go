package meerkat_test

import (
	"fmt"
	"log"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// A Manager runs everything — connections and timers — on the goroutine
// that calls Poll. Here a repeating timer ticks three times.
func ExampleManager() {
	mgr := meerkat.NewManager()
	defer mgr.Close()

	ticks := 0
	mgr.AddTimer(10*time.Millisecond, meerkat.TimerRepeat, func() {
		ticks++
		fmt.Println("tick", ticks)
	})
	for ticks < 3 {
		mgr.Poll(time.Second)
	}
	// Output:
	// tick 1
	// tick 2
	// tick 3
}

// An echo server, and a client that talks to it, in one Manager.
func ExampleManager_Listen() {
	mgr := meerkat.NewManager()
	defer mgr.Close()

	// The server sends back whatever it receives.
	l, err := mgr.Listen("tcp://127.0.0.1:0", func(c *meerkat.Conn, ev meerkat.Event, data any) {
		if ev == meerkat.EvRead {
			c.Send(c.Recv().Bytes())
			c.Recv().Consume(c.Recv().Len())
		}
	})
	if err != nil {
		log.Fatal(err)
	}

	// The client says hello once connected, and prints the echo.
	done := false
	_, err = mgr.Connect("tcp://"+l.LocalAddr().String(), func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvConnect:
			c.Printf("hello, %s", "meerkat")
		case meerkat.EvRead:
			if c.Recv().Len() < len("hello, meerkat") {
				return // wait for the rest
			}
			fmt.Printf("client got %q\n", c.Recv().Bytes())
			c.Recv().Consume(c.Recv().Len())
			c.Close()
		case meerkat.EvClose:
			done = true
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	for !done {
		mgr.Poll(time.Second)
	}
	// Output: client got "hello, meerkat"
}

// A TLS echo server: https:// listeners start TLS on every accepted
// connection with Manager.TLSConfig, and https:// clients verify the server
// against its RootCAs. (The certificates here are made for tests; a real
// server loads its own with tls.LoadX509KeyPair.)
func ExampleManager_Listen_tls() {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	mgr.TLSConfig = testcert.ServerConfig()          // the server's certificate
	mgr.TLSConfig.RootCAs = testcert.Default.CA.Pool // what the client trusts

	l, err := mgr.Listen("https://127.0.0.1:0", func(c *meerkat.Conn, ev meerkat.Event, data any) {
		if ev == meerkat.EvRead { // decrypted bytes
			c.Send(c.Recv().Bytes())
			c.Recv().Consume(c.Recv().Len())
		}
	})
	if err != nil {
		log.Fatal(err)
	}

	done := false
	_, err = mgr.Connect("https://"+l.LocalAddr().String(), func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvTLSHandshake:
			c.Printf("hello over TLS")
		case meerkat.EvRead:
			if c.Recv().Len() < len("hello over TLS") {
				return
			}
			fmt.Printf("client got %q\n", c.Recv().Bytes())
			c.Recv().Consume(c.Recv().Len())
			c.Close()
		case meerkat.EvError:
			fmt.Println("error:", data)
		case meerkat.EvClose:
			done = true
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	for !done {
		mgr.Poll(time.Second)
	}
	// Output: client got "hello over TLS"
}
