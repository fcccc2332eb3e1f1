package meerkat_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

func TestWSSmoke(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, comp := range []bool{false, true} {
			e := newEnv(t, drv, useTLS)
			e.m.WS.Compression = comp
			hs := "http://"
			if useTLS {
				hs = "https://"
			}
			l, err := e.m.HTTPListen(hs+"127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
				switch ev {
				case meerkat.EvHTTPMsg:
					meerkat.WSUpgrade(c, data.(*meerkat.HTTPMessage), "")
				case meerkat.EvWSMsg:
					wm := data.(*meerkat.WSMessage)
					meerkat.WSSend(c, wm.Data, wm.Op())
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			addr := l.LocalAddr().String()
			scheme := "ws://"
			if useTLS {
				scheme = "wss://"
			}
			var got [][]byte
			opened, closed := false, false
			sizes := []int{0, 1, 125, 126, 65535, 65536, 300000, 4 << 20}
			c, err := e.m.WSConnect(scheme+addr+"/ws", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
				switch ev {
				case meerkat.EvWSOpen:
					opened = true
					for _, n := range sizes {
						meerkat.WSSend(c, bytes.Repeat([]byte("x"), n), meerkat.WSOpText)
					}
				case meerkat.EvWSMsg:
					got = append(got, bytes.Clone(data.(*meerkat.WSMessage).Data))
					if len(got) == len(sizes) {
						meerkat.WSClose(c, 1000, "bye")
					}
				case meerkat.EvError:
					t.Logf("client error: %v", data)
				case meerkat.EvClose:
					closed = true
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			_ = c
			e.pollUntil(20*time.Second, "close", func() bool { return closed })
			if !opened || len(got) != len(sizes) {
				t.Fatalf("opened %v, got %d messages", opened, len(got))
			}
			for i, n := range sizes {
				if len(got[i]) != n {
					t.Fatalf("message %d: %d bytes, want %d", i, len(got[i]), n)
				}
			}
		}
	})
}
