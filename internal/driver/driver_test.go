package driver

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// waitFor waits on d until ready has been called for tok with all of want,
// failing after a few seconds.
func waitFor(t *testing.T, d Driver, tok any, want Readiness) Readiness {
	t.Helper()
	var got Readiness
	deadline := time.Now().Add(5 * time.Second)
	for got&want != want {
		if time.Now().After(deadline) {
			t.Fatalf("no readiness %b for %v (got %b)", want, tok, got)
		}
		d.Wait(100*time.Millisecond, func(k any, r Readiness) {
			if k == tok {
				got |= r
			}
		})
	}
	return got
}

// readUntilErr reads from s until an error other than ErrWouldBlock,
// waiting for readiness in between.
func readUntilErr(t *testing.T, d Driver, s Socket, tok any) ([]byte, error) {
	t.Helper()
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := s.Read(buf)
		out = append(out, buf[:n]...)
		if err == nil {
			continue
		}
		if err == ErrWouldBlock {
			waitFor(t, d, tok, Readable)
			continue
		}
		return out, err
	}
}

// TestDriverContract: each driver listens, dials, accepts, moves bytes both
// ways, reports the peer's orderly close as io.EOF after every byte, and a
// reset as an error that is never ErrWouldBlock nor io.EOF.
func TestDriverContract(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			d, err := New(name)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			l, err := d.Listen("tcp", netip.MustParseAddrPort("127.0.0.1:0"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if l.LocalAddr().Port() == 0 {
				t.Fatal("listener on port 0 reports no port")
			}
			if err := l.Start("listener"); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Listen("tcp", l.LocalAddr()); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("second Listen on %v: %v, want EADDRINUSE", l.LocalAddr(), err)
			}

			c, err := d.Dial("tcp", l.LocalAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Start("client")
			for c.ConnectDone() == ErrWouldBlock {
				waitFor(t, d, "client", Writable)
			}
			var s Socket
			for s == nil {
				s, _, err = l.Accept()
				if err == ErrWouldBlock {
					waitFor(t, d, "listener", Readable)
				} else if err != nil {
					t.Fatal(err)
				}
			}
			defer s.Close()
			s.Start("server")

			msg := bytes.Repeat([]byte("meerkat "), 1000)
			for off := 0; off < len(msg); {
				n, err := c.Write(msg[off:])
				off += n
				if err == ErrWouldBlock {
					waitFor(t, d, "client", Writable)
				} else if err != nil {
					t.Fatal(err)
				}
			}
			for c.Buffered() > 0 {
				waitFor(t, d, "client", Writable)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := readUntilErr(t, d, s, "server")
			if err != io.EOF || !bytes.Equal(got, msg) {
				t.Fatalf("server read %d bytes then %v; want %d bytes then EOF", len(got), err, len(msg))
			}

			// A reset: the peer is a net.Conn closing with SO_LINGER 0.
			nc, err := net.Dial("tcp", l.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			var r Socket
			for r == nil {
				r, _, err = l.Accept()
				if err == ErrWouldBlock {
					waitFor(t, d, "listener", Readable)
				}
			}
			defer r.Close()
			r.Start("reset")
			nc.(*net.TCPConn).SetLinger(0)
			nc.Close()
			_, err = readUntilErr(t, d, r, "reset")
			if err == nil || err == io.EOF || err == ErrWouldBlock || !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read after a reset: %v, want ECONNRESET", err)
			}
		})
	}
}

// TestPortableReportsWritersResetBeforeEOF: a reset is reported to one
// system call only; when the writer goroutine took it and the reader then
// saw EOF, Read must return the reset, not an orderly EOF.
func TestPortableReportsWritersResetBeforeEOF(t *testing.T) {
	d := NewPortable().(*portable)
	s := d.newSock()
	s.nc = &net.TCPConn{}
	s.rerr = io.EOF
	s.werr = syscall.ECONNRESET
	if _, err := s.Read(make([]byte, 10)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read = %v, want the writer's reset", err)
	}
	s.werr = nil
	if _, err := s.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("Read = %v, want EOF", err)
	}
}
