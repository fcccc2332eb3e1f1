package meerkat_test

import (
	"crypto/tls"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// recordMangler passes a TLS peer's writes through until told otherwise:
// then its next write (an application data record) is either altered in its
// last byte (the authentication tag) or cut in half and followed by a FIN.
type recordMangler struct {
	net.Conn
	mode atomic.Int32 // 0 pass, 1 tamper, 2 truncate
}

const (
	mangleTamper   = 1
	mangleTruncate = 2
)

func (m *recordMangler) Write(p []byte) (int, error) {
	switch m.mode.Swap(0) {
	case mangleTamper:
		q := append([]byte(nil), p...)
		q[len(q)-1] ^= 0x01
		return m.Conn.Write(q)
	case mangleTruncate:
		if _, err := m.Conn.Write(p[:len(p)/2]); err != nil {
			return 0, err
		}
		m.Conn.(*net.TCPConn).CloseWrite()
		return len(p), nil
	}
	return m.Conn.Write(p)
}

// TestTLSDamagedRecordsEndTheConnection: through a live connection, a record
// that fails authentication, and a record cut short by the peer's FIN, each
// end in EvError naming the problem, then EvClose, and no byte of the
// damaged record is delivered — while a good record before it is.
func TestTLSDamagedRecordsEndTheConnection(t *testing.T) {
	cases := []struct {
		name string
		mode int32
		want string
	}{
		{"tampered", mangleTamper, "bad record MAC"},
		{"truncated", mangleTruncate, "unexpected EOF"},
	}
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			for _, tc := range cases {
				t.Run(tls.VersionName(version)+"/"+tc.name, func(t *testing.T) {
					e := newEnv(t, drv, true)
					var server *meerkat.Conn
					var got strings.Builder
					_, addr := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
						switch ev {
						case meerkat.EvAccept:
							server = c
						case meerkat.EvRead:
							got.Write(c.Recv().Bytes())
							c.Recv().Consume(c.Recv().Len())
						}
					})
					raw, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					defer raw.Close()
					m := &recordMangler{Conn: raw}
					cfg := testcert.ClientConfig()
					cfg.ServerName = "127.0.0.1"
					cfg.MinVersion, cfg.MaxVersion = version, version
					peer := tls.Client(m, cfg)
					done := make(chan error, 1)
					go func() {
						if err := peer.Handshake(); err != nil {
							done <- err
							return
						}
						if _, err := peer.Write([]byte("good record|")); err != nil {
							done <- err
							return
						}
						m.mode.Store(tc.mode)
						_, err := peer.Write([]byte("damaged record that must never be delivered"))
						done <- err
					}()
					if err := lcAwait(e, 5*time.Second, "the peer's writes", done); err != nil {
						t.Fatalf("peer: %v", err)
					}
					e.pollUntil(5*time.Second, "EvClose", func() bool { return server != nil && e.chk.closed(server) })
					errs := e.chk.errorsOf(server)
					if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
						t.Fatalf("errors %v, want one naming %q; events %v", errs, tc.want, summarize(e.chk.events(server)))
					}
					if got.String() != "good record|" {
						t.Fatalf("delivered %q, want only the good record", got.String())
					}
					t.Logf("reported as: %v", errs[0])
				})
			}
		}
	})
}
