package harness

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meerkat-net/meerkat/internal/wsframe"
)

// The WebSocket load side: blocking clients in the harness process, one
// goroutine each, speaking just enough RFC 6455 (and RFC 7692) to send
// one prebuilt masked frame and read the echo. A client's mask key is
// random per connection and reused for its every frame: the servers unmask
// each frame all the same, and the load spends nothing per message on
// building or masking it.

// wsGUID is RFC 6455's key suffix for Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsMaxEcho bounds an echoed message the load accepts.
const wsMaxEcho = 1 << 20

// wsClient is one load connection.
type wsClient struct {
	nc      net.Conn
	br      *bufio.Reader
	deflate bool    // permessage-deflate was agreed
	key     [4]byte // the mask key of every frame
	msg     []byte  // the message each round trip sends
	frame   []byte  // msg as one masked binary frame (compressed with deflate)
	buf     []byte  // the last message read
	echoLen int     // the payload length of the last echo
	seen    []byte  // with deflate: the last compressed echo found equal to msg
	// compressed counts echoes that came compressed (RSV1).
	compressed int64
}

// wsDial opens a WebSocket connection to addr, offering permessage-deflate
// with no context takeover in both directions when deflate is set; the
// server must then agree (and must not, without it).
func wsDial(addr string, deflate bool) (*wsClient, error) {
	nc, err := net.DialTimeout("tcp", addr, exchangeTimeout)
	if err != nil {
		return nil, err
	}
	c := &wsClient{nc: nc, br: bufio.NewReaderSize(nc, 8<<10)}
	if err := c.handshake(addr, deflate); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *wsClient) handshake(addr string, deflate bool) error {
	c.nc.SetDeadline(time.Now().Add(exchangeTimeout))
	defer c.nc.SetDeadline(time.Time{})
	var nonce [16]byte
	rand.Read(nonce[:])
	rand.Read(c.key[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n"
	if deflate {
		req += "Sec-WebSocket-Extensions: " + wsframe.ClientOffer(wsframe.Config{}) + "\r\n"
	}
	if _, err := io.WriteString(c.nc, req+"\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("handshake: %s", resp.Status)
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		return fmt.Errorf("handshake: Sec-WebSocket-Accept %q, want %q", got, want)
	}
	ext := strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
	p, ok, err := wsframe.ClientAccept(ext, wsframe.Config{})
	switch {
	case err != nil:
		return fmt.Errorf("handshake: %w", err)
	case ok && !deflate:
		return fmt.Errorf("handshake: extension %q not offered", ext)
	case !ok && deflate:
		return errors.New("handshake: permessage-deflate offered and not agreed")
	case ok && !p.ServerNoContextTakeover:
		return errors.New("handshake: server_no_context_takeover not granted")
	}
	c.deflate = deflate
	return nil
}

// setMessage makes msg the message of the following round trips.
func (c *wsClient) setMessage(msg []byte) {
	c.msg, c.seen = msg, nil
	payload, rsv := msg, byte(0)
	if c.deflate {
		payload, rsv = wsframe.NewCompressor(false, 0).Compress(nil, msg), wsframe.FlagRSV1
	}
	f := wsframe.AppendHeader(nil, true, rsv, wsframe.OpBinary, len(payload), &c.key)
	start := len(f)
	f = append(f, payload...)
	wsframe.Mask(c.key, 0, f[start:])
	c.frame = f
}

// roundTrip sends the message and reads and checks its echo.
func (c *wsClient) roundTrip() error {
	if _, err := c.nc.Write(c.frame); err != nil {
		return err
	}
	return c.readEcho()
}

// readEcho reads one message and checks that it is the message sent:
// compressed when deflate was agreed (its first compressed echo, or one
// that differs from it, is inflated and compared), as it is otherwise.
func (c *wsClient) readEcho() error {
	op, rsv1, err := c.readMessage()
	if err != nil {
		return err
	}
	c.echoLen = len(c.buf)
	return c.checkEcho(op, rsv1, c.buf)
}

// checkEcho checks that a received message (opcode, RSV1, payload as
// received) is the message sent.
func (c *wsClient) checkEcho(op byte, rsv1 bool, p []byte) error {
	if op != wsframe.OpBinary {
		return fmt.Errorf("echo has opcode %d, want binary", op)
	}
	switch {
	case rsv1 && !c.deflate:
		return errors.New("echo compressed without permessage-deflate")
	case rsv1:
		c.compressed++
		if bytes.Equal(p, c.seen) {
			return nil
		}
		out, err := wsframe.NewDecompressor(false).Decompress(nil, p, wsMaxEcho)
		if err != nil {
			return fmt.Errorf("inflating the echo: %w", err)
		}
		if !bytes.Equal(out, c.msg) {
			return errors.New("inflated echo differs from the message")
		}
		c.seen = append(c.seen[:0], p...)
	case !bytes.Equal(p, c.msg):
		return errors.New("echo differs from the message")
	}
	return nil
}

// wsFrameHeader parses the header of a server frame at the start of b: ok
// is false while b holds less than the header; hl is the header's length
// and n the payload's.
func wsFrameHeader(b []byte) (b0 byte, hl int, n uint64, ok bool, err error) {
	if len(b) < 2 {
		return 0, 0, 0, false, nil
	}
	b0, b1 := b[0], b[1]
	if b1&0x80 != 0 {
		return 0, 0, 0, false, errors.New("server frame is masked")
	}
	n, hl = uint64(b1&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, 0, 0, false, nil
		}
		n, hl = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, 0, 0, false, nil
		}
		n, hl = binary.BigEndian.Uint64(b[2:]), 10
	}
	if n > wsMaxEcho {
		return 0, 0, 0, false, fmt.Errorf("echo over %d bytes", wsMaxEcho)
	}
	return b0, hl, n, true, nil
}

// readMessage reads one data message into c.buf, its fragments joined.
// Control frames are skipped; a close frame is an error.
func (c *wsClient) readMessage() (op byte, rsv1 bool, err error) {
	c.buf = c.buf[:0]
	first := true
	for {
		var b0 byte
		var hl int
		var n uint64
		for want := 2; ; want += 2 {
			h, err := c.br.Peek(want)
			if err != nil {
				return 0, false, err
			}
			var ok bool
			if b0, hl, n, ok, err = wsFrameHeader(h); err != nil {
				return 0, false, err
			}
			if ok {
				break
			}
		}
		if uint64(len(c.buf))+n > wsMaxEcho {
			return 0, false, fmt.Errorf("echo over %d bytes", wsMaxEcho)
		}
		c.br.Discard(hl)
		fop := b0 & 0x0f
		if fop >= 8 { // control frame
			p := make([]byte, n)
			if _, err := io.ReadFull(c.br, p); err != nil {
				return 0, false, err
			}
			if fop == wsframe.OpClose {
				code, reason, _ := wsframe.ParseClose(p)
				return 0, false, fmt.Errorf("server sent close %d %q", code, reason)
			}
			continue
		}
		if first {
			op, rsv1, first = fop, b0&0x40 != 0, false
		} else if fop != wsframe.OpContinuation {
			return 0, false, fmt.Errorf("frame with opcode %d inside a fragmented message", fop)
		}
		start := len(c.buf)
		c.buf = slices.Grow(c.buf, int(n))[:start+int(n)]
		if _, err := io.ReadFull(c.br, c.buf[start:]); err != nil {
			return 0, false, err
		}
		if b0&0x80 != 0 {
			return op, rsv1, nil
		}
	}
}

func (c *wsClient) close() { c.nc.Close() }

func closeWSClients(cs []*wsClient) {
	for _, c := range cs {
		if c != nil {
			c.close()
		}
	}
}

// openWSClients opens n connections to addr, par being set up at a time;
// each does one round trip of msg. On error it closes what it opened.
func openWSClients(addr string, n, par int, deflate bool, msg []byte) ([]*wsClient, error) {
	cs := make([]*wsClient, n)
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
				c, err := wsDial(addr, deflate)
				if err == nil {
					c.setMessage(msg)
					c.nc.SetDeadline(time.Now().Add(exchangeTimeout))
					if err = c.roundTrip(); err == nil {
						c.nc.SetDeadline(time.Time{})
					} else {
						c.close()
					}
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i, err) })
					next.Store(int64(n)) // stop the others
					return
				}
				cs[i] = c
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		closeWSClients(cs)
		return nil, firstErr
	}
	return cs, nil
}

// wsMessage returns the message of a round trip: size bytes of a repeated
// pattern, or with json a JSON array of small records, as a chat or
// telemetry application sends (compressible about 5 to 1 with flate).
func wsMessage(size int, json bool) []byte {
	if !json {
		return bytes.Repeat([]byte("meerkat!"), size/8+1)[:size]
	}
	var b []byte
	b = append(b, '[')
	for i := 0; len(b) < size; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"id":%d,"user":"user-%04d","room":"lobby-%d","temp":%d.%d,"ok":%t,"tags":["meerkat","ws"]}`,
			i, (i*7919)%10000, i%7, 15+i%13, i%10, i%3 != 0)
	}
	// Cut to size and close the array: still valid JSON for a reader that
	// stops at the last whole record, and exactly size bytes.
	b = b[:size-1]
	if k := bytes.LastIndexByte(b, '}'); k >= 0 {
		b = append(b[:k+1], bytes.Repeat([]byte(" "), size-k-2)...)
	}
	return append(b, ']')
}
