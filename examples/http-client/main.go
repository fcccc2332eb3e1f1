// Command http-client fetches one URL (http:// or https://) and prints the
// response's status line on stderr and its body on stdout. HTTPConnect opens
// the connection (for https, TLS starts by itself and the server's
// certificate is verified against the system's roots), HTTPSendRequest sends
// the request once it is connected, and the whole response arrives as
// EvHTTPMsg. A timer bounds the whole exchange.
//
// The body is collected whole, so it must fit in Manager.RecvLimit (2 MiB by
// default); examples/http-streaming-client downloads bodies of any size.
//
// Try it with: go run ./examples/http-client https://example.com/
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"time"

	"github.com/meerkat-net/meerkat"
)

// fetch GETs rawURL and writes the response body to out. tlsConfig is used
// for https (nil: verify against the system's roots).
func fetch(rawURL string, tlsConfig *tls.Config, timeout time.Duration, out io.Writer) (status int, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, err
	}
	target := u.RequestURI() // the path and query, "/" when empty

	mgr := meerkat.NewManager()
	defer mgr.Close()
	mgr.TLSConfig = tlsConfig
	mgr.ConnectTimeout = timeout

	done := false
	c, err := mgr.HTTPConnect(u.Scheme+"://"+u.Host, func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvConnect:
			// Queued now; for https it goes out after the TLS handshake.
			meerkat.HTTPSendRequest(c, "GET", target, "User-Agent: meerkat-example\r\nConnection: close\r\n", nil)
		case meerkat.EvHTTPMsg:
			hm := data.(*meerkat.HTTPMessage)
			status = hm.Status
			if _, werr := out.Write(hm.Body); werr != nil {
				err = werr
			}
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
	mgr.AddTimer(timeout, 0, func() {
		if err == nil && status == 0 {
			err = fmt.Errorf("no response within %v", timeout)
		}
		c.Close()
	})
	for !done {
		mgr.Poll(time.Second) // the timer bounds the wait
	}
	if err == nil && status == 0 {
		err = errors.New("the server closed the connection without a response")
	}
	return status, err
}

func main() {
	timeout := flag.Duration("timeout", 10*time.Second, "give up after this long")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: http-client [-timeout D] URL")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	status, err := fetch(flag.Arg(0), nil, *timeout, os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "%d %s\n", status, meerkat.HTTPStatusText(status))
}
