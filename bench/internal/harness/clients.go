package harness

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The load side: blocking standard-library clients in the harness process.

// exchangeTimeout bounds one client's connect, handshake and first exchange.
const exchangeTimeout = 30 * time.Second

// echoRequest is the idle-memory clients' one message, 32 bytes.
var echoRequest = []byte("meerkat idle connection probe.\r\n")

// dial connects to a server of kind k, with TLS where k speaks it.
func dial(k Kind, addr string) (net.Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, exchangeTimeout)
	if err != nil {
		return nil, err
	}
	if k.TLS() {
		tc := tls.Client(nc, ClientTLSConfig())
		tc.SetDeadline(time.Now().Add(exchangeTimeout))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tc
	}
	return nc, nil
}

// exchange does one small request and response: 32 bytes echoed, or a GET
// answered with keep-alive. The connection is left open and idle.
func exchange(k Kind, nc net.Conn) error {
	nc.SetDeadline(time.Now().Add(exchangeTimeout))
	defer nc.SetDeadline(time.Time{})
	if k.HTTP() {
		if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReaderSize(nc, 512), nil)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || string(body) != httpBody || resp.Close {
			return fmt.Errorf("unexpected response: %s %q (close %v)", resp.Status, body, resp.Close)
		}
		return nil
	}
	if _, err := nc.Write(echoRequest); err != nil {
		return err
	}
	buf := make([]byte, len(echoRequest))
	if _, err := io.ReadFull(nc, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, echoRequest) {
		return fmt.Errorf("echo differs: %q", buf)
	}
	return nil
}

// openIdle opens n connections to addr, each after its one exchange, with
// par of them being set up at a time. On error it closes what it opened.
func openIdle(k Kind, addr string, n, par int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range min(par, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				nc, err := dial(k, addr)
				if err == nil {
					if err = exchange(k, nc); err != nil {
						nc.Close()
					}
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i, err) })
					next.Store(int64(n)) // stop the others
					return
				}
				conns[i] = nc
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		closeAll(conns)
		return nil, firstErr
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, nc := range conns {
		if nc != nil {
			nc.Close()
		}
	}
}
