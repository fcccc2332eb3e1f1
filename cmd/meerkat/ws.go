package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/meerkat-net/meerkat"
)

const wsHelp = `Usage:
  meerkat ws URL [flags]

Open a WebSocket to URL (ws:// or wss://; ws:// is assumed without a
scheme). Each line of standard input is sent as a text message (binary with
-b), without its line ending; each message received is written to standard
output, followed by a newline. At the end of standard input the connection
is closed with code 1000 once everything was sent. The exit status is 0 when
the connection ended with a normal close (1000 or 1001, from either side),
1 on a network, TLS or protocol error or another close code, 2 on a bad
command line.

Flags:
`

// wsClient is one run of "meerkat ws".
type wsClient struct {
	std    stdio
	binary bool
	conn   *meerkat.Conn
	open   bool
	closed bool
	code   int // the close code seen (either side's), 0 if none
	err    error
	eof    bool     // standard input ended
	early  [][]byte // input that came before the handshake completed
}

func runWS(ctx context.Context, args []string, std stdio) int {
	fs := flag.NewFlagSet("meerkat ws", flag.ContinueOnError)
	fs.SetOutput(std.err)
	var headers headerList
	fs.Var(&headers, "H", "add a handshake request header `'Name: value'` (repeatable)")
	binary := fs.Bool("b", false, "send each line as a binary message")
	insecure := fs.Bool("insecure", false, "do not verify the server's certificate")
	var protos string
	fs.StringVar(&protos, "subprotocol", "", "offer these `P1,P2` subprotocols")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), wsHelp)
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err == flag.ErrHelp {
		fs.SetOutput(std.out)
		fs.Usage()
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(std.err, "meerkat ws: want exactly one URL")
		return exitUsage
	}
	raw := pos[0]
	if !strings.Contains(raw, "://") {
		raw = "ws://" + raw
	}
	if !strings.HasPrefix(raw, "ws://") && !strings.HasPrefix(raw, "wss://") {
		fmt.Fprintf(std.err, "meerkat ws: unsupported URL %q (want ws:// or wss://)\n", raw)
		return exitUsage
	}
	opts := &meerkat.WSOptions{}
	for _, h := range headers {
		opts.Headers += h + "\r\n"
	}
	if protos != "" {
		opts.Subprotocols = strings.Split(protos, ",")
	}

	mgr := meerkat.NewManager()
	defer mgr.Close()
	mgr.TLSConfig = &tls.Config{InsecureSkipVerify: *insecure}
	w := &wsClient{std: std, binary: *binary}
	c, err := mgr.WSConnectOpts(raw, opts, w.handle)
	if err != nil {
		fmt.Fprintf(std.err, "meerkat ws: %v\n", err)
		return exitUsage
	}
	w.conn = c

	// Standard input is read on its own goroutine; each line reaches the
	// Poll goroutine through Wakeup, in order. A nil message is the end.
	go func() {
		r := bufio.NewReaderSize(std.in, 64<<10)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 || err == nil {
				line = []byte(strings.TrimRight(string(line), "\r\n"))
				for !mgr.Wakeup(c.ID(), append([]byte{'L'}, line...)) {
					if c.IsClosing() {
						return
					}
					time.Sleep(10 * time.Millisecond) // the wakeup queue is full
				}
			}
			if err != nil {
				mgr.Wakeup(c.ID(), []byte{'E'})
				return
			}
		}
	}()

	for !w.closed {
		if ctx.Err() != nil {
			w.err = errors.New("interrupted")
			break
		}
		mgr.Poll(100 * time.Millisecond)
	}
	switch {
	case w.err != nil:
		fmt.Fprintf(std.err, "meerkat ws: %v\n", w.err)
		return exitFailure
	case w.code == meerkat.WSCloseNormal || w.code == meerkat.WSCloseGoingAway:
		return exitOK
	case w.code == 0:
		fmt.Fprintln(std.err, "meerkat ws: the connection ended without a close frame")
		return exitFailure
	}
	fmt.Fprintf(std.err, "meerkat ws: closed with code %d\n", w.code)
	return exitFailure
}

func (w *wsClient) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvWSOpen:
		w.open = true
		for _, msg := range w.early {
			w.input(c, msg)
		}
		w.early = nil
	case meerkat.EvWakeup:
		msg := data.([]byte)
		if !w.open {
			w.early = append(w.early, msg) // until the handshake completes
			return
		}
		w.input(c, msg)
	case meerkat.EvWSMsg:
		wm := data.(*meerkat.WSMessage)
		_, err := w.std.out.Write(wm.Data)
		if err == nil {
			_, err = w.std.out.Write([]byte{'\n'})
		}
		if err != nil && w.err == nil {
			w.err = err
			c.Close()
		}
	case meerkat.EvWSCtl:
		if wm := data.(*meerkat.WSMessage); wm.Op() == meerkat.WSOpClose && (w.code == 0 || !w.eof) {
			w.code = wm.CloseCode()
		}
	case meerkat.EvError:
		if w.err == nil {
			w.err = data.(error)
		}
	case meerkat.EvClose:
		w.closed = true
	}
}

// input sends a line read from standard input, or closes at its end.
func (w *wsClient) input(c *meerkat.Conn, msg []byte) {
	if msg[0] == 'E' {
		w.eof = true
		if w.code == 0 && meerkat.WSClose(c, meerkat.WSCloseNormal, "") {
			w.code = meerkat.WSCloseNormal
		}
		return
	}
	op := meerkat.WSOpText
	if w.binary {
		op = meerkat.WSOpBinary
	}
	if meerkat.WSSend(c, msg[1:], op) == 0 && w.code == 0 {
		w.err = errors.New("the message could not be sent")
		c.Close()
	}
}
