package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// echoServer runs a Meerkat WebSocket echo server on its own goroutine
// until the test ends.
func echoServer(t *testing.T) string {
	m := meerkat.NewManager()
	l, err := m.HTTPListen("http://127.0.0.1:0", func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvHTTPMsg:
			meerkat.WSUpgrade(c, data.(*meerkat.HTTPMessage), "")
		case meerkat.EvWSMsg:
			wm := data.(*meerkat.WSMessage)
			meerkat.WSSend(c, wm.Data, wm.Op())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				m.Close()
				return
			default:
				m.Poll(20 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return "ws://" + l.LocalAddr().String() + "/websocket"
}

// TestTalk: every message comes back, in order, and the close is clean.
func TestTalk(t *testing.T) {
	url := echoServer(t)
	var out strings.Builder
	if err := talk(url, []string{"hello", "wörld", ""}, 5*time.Second, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello\nwörld\n\n" {
		t.Fatalf("output %q", out.String())
	}
}

// TestTalkNoServer: a refused connection is an error, not a hang.
func TestTalkNoServer(t *testing.T) {
	err := talk("ws://127.0.0.1:1/websocket", []string{"x"}, 5*time.Second, &strings.Builder{})
	if err == nil || errors.Is(err, meerkat.ErrWSHandshake) {
		t.Fatalf("err %v, want a connect error", err)
	}
}
