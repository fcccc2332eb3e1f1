package main

import (
	"context"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// TestEcho: a Meerkat client's text and binary messages come back as sent;
// the page is served at /; Run's end closes the client with 1001.
func TestEcho(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "http://127.0.0.1:0", func(a string) { addrs <- a }) }()
	addr := <-addrs

	m := meerkat.NewManager()
	defer m.Close()
	var got []string
	var ops []meerkat.WSOp
	closeCode, closed := 0, false
	_, err := m.WSConnect("ws://"+addr+"/websocket", func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvWSOpen:
			meerkat.WSSend(c, []byte("hello"), meerkat.WSOpText)
			meerkat.WSSend(c, []byte{0, 1, 2, 255}, meerkat.WSOpBinary)
		case meerkat.EvWSMsg:
			wm := data.(*meerkat.WSMessage)
			got = append(got, string(wm.Data))
			ops = append(ops, wm.Op())
			if len(got) == 2 {
				cancel() // the server shuts down: its close frame comes next
			}
		case meerkat.EvWSCtl:
			if wm := data.(*meerkat.WSMessage); wm.Op() == meerkat.WSOpClose {
				closeCode = wm.CloseCode()
			}
		case meerkat.EvClose:
			closed = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); !closed && time.Since(start) < 10*time.Second; {
		m.Poll(50 * time.Millisecond)
	}
	if len(got) != 2 || got[0] != "hello" || got[1] != "\x00\x01\x02\xff" || ops[0] != meerkat.WSOpText || ops[1] != meerkat.WSOpBinary {
		t.Fatalf("echoes %q (ops %v)", got, ops)
	}
	if !closed || closeCode != meerkat.WSCloseGoingAway {
		t.Fatalf("closed %v with code %d, want 1001 from the server's shutdown", closed, closeCode)
	}
	if err := <-done; err != nil && err != context.Canceled {
		t.Fatalf("run: %v", err)
	}
}
