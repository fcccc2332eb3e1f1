package meerkat_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// BenchmarkWSEcho measures WebSocket echo round trips through a Meerkat
// server (polled on its own goroutine) from one blocking client that
// writes prebuilt masked frames and reads the unmasked echoes; allocs/op
// is the server's (the client allocates nothing per round trip).
func BenchmarkWSEcho(b *testing.B) {
	for _, drv := range testDrivers() {
		for _, size := range []int{32, 4 << 10} {
			b.Run(fmt.Sprintf("%s/%s", drv, benchSizeName(size)), func(b *testing.B) {
				m, err := meerkat.NewManagerDriver(drv)
				if err != nil {
					b.Fatal(err)
				}
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
					b.Fatal(err)
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
							m.Poll(10 * time.Millisecond)
						}
					}
				}()
				defer func() { close(stop); <-done }()
				nc, err := net.Dial("tcp", l.LocalAddr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(2 * time.Minute))
				io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
					"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
				br := bufio.NewReader(nc)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						b.Fatal(err)
					}
					if strings.TrimSpace(line) == "" {
						break
					}
				}
				frame := []byte{0x82}
				if size < 126 {
					frame = append(frame, 0x80|byte(size))
				} else {
					frame = append(frame, 0x80|126, byte(size>>8), byte(size))
				}
				frame = append(frame, 1, 2, 3, 4)
				frame = append(frame, make([]byte, size)...)
				want := 2 + size
				if size >= 126 {
					want += 2
				}
				buf := make([]byte, want)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if _, err := nc.Write(frame); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(br, buf); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				_ = binary.BigEndian
			})
		}
	}
}
