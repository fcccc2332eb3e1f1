package meerkat_test

// TLS through a Manager, on every driver: handshake leftovers and record
// splits, certificate and handshake failures, SNI, TLSInit, close_notify.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// tlstBatchConn holds writes so that several TLS messages leave in one
// Write: after hold(pass), the next pass writes go straight through and the
// rest are kept until release sends them all with a single Write.
type tlstBatchConn struct {
	net.Conn
	mu      sync.Mutex
	holding bool
	pass    int
	held    []byte
}

func (b *tlstBatchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.holding {
		return b.Conn.Write(p)
	}
	if b.pass > 0 {
		b.pass--
		return b.Conn.Write(p)
	}
	b.held = append(b.held, p...)
	return len(p), nil
}

func (b *tlstBatchConn) hold(pass int) {
	b.mu.Lock()
	b.holding, b.pass = true, pass
	b.mu.Unlock()
}

// release sends what was held in one Write and returns it.
func (b *tlstBatchConn) release() ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.held
	b.holding, b.held = false, nil
	_, err := b.Conn.Write(p)
	return p, err
}

// tlstRecordTypes lists the content types of the TLS records in raw.
func tlstRecordTypes(raw []byte) ([]byte, error) {
	var types []byte
	for len(raw) > 0 {
		if len(raw) < 5 {
			return types, fmt.Errorf("%d trailing bytes", len(raw))
		}
		n := 5 + (int(raw[3])<<8 | int(raw[4]))
		if n > len(raw) {
			return types, fmt.Errorf("record of %d bytes, %d left", n, len(raw))
		}
		types = append(types, raw[0])
		raw = raw[n:]
	}
	return types, nil
}

// tlstPeer is a standard-library peer running on its own goroutine. Its
// function gets a stop channel, closed when the test ends (or calls stop).
type tlstPeer struct {
	done     chan struct{}
	stopCh   chan struct{}
	stopOnce sync.Once
	err      error
}

func tlstGo(t *testing.T, fn func(stop <-chan struct{}) error) *tlstPeer {
	p := &tlstPeer{done: make(chan struct{}), stopCh: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = fn(p.stopCh)
	}()
	t.Cleanup(func() {
		p.stop()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Error("peer goroutine did not stop")
		}
	})
	return p
}

func (p *tlstPeer) stop() { p.stopOnce.Do(func() { close(p.stopCh) }) }

func (p *tlstPeer) finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait stops waiting for the peer after 10 s and returns its error.
func (p *tlstPeer) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(10 * time.Second):
		t.Fatal("peer did not finish in 10 s")
		return nil
	}
}

// tlstDial connects to addr with a 10 s deadline on everything.
func tlstDial(addr string) (net.Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc, nil
}

// tlstListen opens a standard-library listener on loopback, closed at the
// end of the test.
func tlstListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// tlstAccept accepts one connection with a 10 s deadline on everything.
func tlstAccept(ln net.Listener) (net.Conn, error) {
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	nc, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc, nil
}

func tlstPort(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// tlstCollector gathers what a Meerkat connection receives.
type tlstCollector struct {
	conn    *meerkat.Conn
	got     []byte
	hsAt    time.Time // EvTLSHandshake
	readAt  time.Time // first EvRead
	onEvent func(c *meerkat.Conn, ev meerkat.Event)
}

func (k *tlstCollector) handler(c *meerkat.Conn, ev meerkat.Event, _ any) {
	switch ev {
	case meerkat.EvAccept, meerkat.EvConnect:
		k.conn = c
	case meerkat.EvTLSHandshake:
		k.hsAt = time.Now()
	case meerkat.EvRead:
		if k.readAt.IsZero() {
			k.readAt = time.Now()
		}
		k.got = append(k.got, c.Recv().Bytes()...)
		c.Recv().Consume(c.Recv().Len())
	}
	if k.onEvent != nil {
		k.onEvent(c, ev)
	}
}

// tlstMeerkatEnd starts the Meerkat side of a TLS connection with a
// standard-library peer: peerIsClient puts a Meerkat https listener in front
// of a peer that dials; otherwise the peer listens and a Meerkat https
// client connects. peer runs on its own goroutine with the raw connection.
func tlstMeerkatEnd(t *testing.T, e *env, peerIsClient bool, k *tlstCollector, peer func(nc net.Conn, stop <-chan struct{}) error) *tlstPeer {
	t.Helper()
	if peerIsClient {
		l, err := e.m.Listen("https://127.0.0.1:0", e.chk.wrap(k.handler))
		if err != nil {
			t.Fatal(err)
		}
		addr := l.LocalAddr().String()
		return tlstGo(t, func(stop <-chan struct{}) error {
			nc, err := tlstDial(addr)
			if err != nil {
				return err
			}
			defer nc.Close()
			return peer(nc, stop)
		})
	}
	ln := tlstListen(t)
	p := tlstGo(t, func(stop <-chan struct{}) error {
		nc, err := tlstAccept(ln)
		if err != nil {
			return err
		}
		defer nc.Close()
		return peer(nc, stop)
	})
	if _, err := e.m.Connect("https://"+ln.Addr().String(), e.chk.wrap(k.handler)); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlstPeerTLS wraps a peer's raw connection in TLS for its role. Records
// are full-size from the start (no dynamic record sizing), so that one
// Write of up to 16 KiB is one record.
func tlstPeerTLS(nc net.Conn, peerIsClient bool, version uint16) *tls.Conn {
	if peerIsClient {
		cfg := testcert.ClientConfig()
		cfg.ServerName = "127.0.0.1"
		cfg.MinVersion, cfg.MaxVersion = version, version
		cfg.DynamicRecordSizingDisabled = true
		return tls.Client(nc, cfg)
	}
	cfg := testcert.ServerConfig()
	cfg.MinVersion, cfg.MaxVersion = version, version
	cfg.DynamicRecordSizingDisabled = true
	return tls.Server(nc, cfg)
}

var tlstRoles = []struct {
	name         string
	peerIsClient bool
}{{"meerkat-server", true}, {"meerkat-client", false}}

// TestTLSHandshakeLeftovers: application data that arrives in the same
// write as the peer's last handshake message is decrypted and delivered
// (EvRead) right after EvTLSHandshake, although the socket never becomes
// readable again: the peer then sends nothing and stays open. Meerkat
// server: TLS 1.3 client Finished + request; Meerkat client: TLS 1.2 server
// Finished + data.
func TestTLSHandshakeLeftovers(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, tc := range []struct {
			name         string
			peerIsClient bool
			version      uint16
		}{
			{"meerkat-server/TLS1.3-client-Finished+request", true, tls.VersionTLS13},
			{"meerkat-client/TLS1.2-server-Finished+data", false, tls.VersionTLS12},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, drv, true)
				var k tlstCollector
				data := []byte("application data in the handshake's last segment\n")
				held := make(chan []byte, 1)
				p := tlstMeerkatEnd(t, e, tc.peerIsClient, &k, func(nc net.Conn, stop <-chan struct{}) error {
					bc := &tlstBatchConn{Conn: nc}
					bc.hold(1) // the first flight goes; the last one waits
					tc := tlstPeerTLS(bc, tc.peerIsClient, tc.version)
					if err := tc.Handshake(); err != nil {
						return err
					}
					if _, err := tc.Write(data); err != nil {
						return err
					}
					raw, err := bc.release()
					held <- raw
					if err != nil {
						return err
					}
					<-stop // silent and open until the test ends
					return nil
				})

				// Poll with a long timeout: waiting for readiness that never
				// comes would show as a 2 s stall, or no EvRead at all.
				deadline := time.Now().Add(10 * time.Second)
				for k.readAt.IsZero() && !p.finished() && time.Now().Before(deadline) {
					e.m.Poll(2 * time.Second)
				}
				if p.finished() {
					t.Fatalf("peer: %v", p.err)
				}
				raw := <-held
				types, err := tlstRecordTypes(raw)
				t.Logf("one write of %d bytes held records of types %v", len(raw), types)
				if err != nil || len(types) < 2 || types[len(types)-1] != 23 {
					t.Fatalf("the single write does not hold the last handshake flight and the data: %v %v", types, err)
				}
				if k.hsAt.IsZero() {
					t.Fatalf("no EvTLSHandshake; events %v", summarize(e.chk.events(k.conn)))
				}
				if k.readAt.IsZero() {
					t.Fatalf("data that came with the handshake was not delivered in 10 s; events %v", summarize(e.chk.events(k.conn)))
				}
				if d := k.readAt.Sub(k.hsAt); d > time.Second {
					t.Errorf("EvRead came %v after EvTLSHandshake: it waited for socket readiness", d)
				}
				ev := e.chk.events(k.conn)
				if i := slices.Index(ev, meerkat.EvTLSHandshake); i < 0 || i+1 >= len(ev) || ev[i+1] != meerkat.EvRead {
					t.Errorf("events %v: want EvRead right after EvTLSHandshake", summarize(ev))
				}
				if !bytes.Equal(k.got, data) {
					t.Errorf("delivered %q, want %q", k.got, data)
				}
			})
		}
	})
}

// TestTLSManyRecordsInOneRead: 100 small records that arrive in one write
// are all decrypted and delivered without further socket readiness (the
// peer then sends nothing and stays open), Meerkat as server and as client,
// TLS 1.2 and 1.3.
func TestTLSManyRecordsInOneRead(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, role := range tlstRoles {
			for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				t.Run(fmt.Sprintf("%s/%s", role.name, tls.VersionName(version)), func(t *testing.T) {
					e := newEnv(t, drv, true)
					var k tlstCollector
					var want []byte
					for i := range 100 {
						want = fmt.Appendf(want, "record %03d|", i)
					}
					held := make(chan []byte, 1)
					p := tlstMeerkatEnd(t, e, role.peerIsClient, &k, func(nc net.Conn, stop <-chan struct{}) error {
						bc := &tlstBatchConn{Conn: nc}
						tc := tlstPeerTLS(bc, role.peerIsClient, version)
						if err := tc.Handshake(); err != nil {
							return err
						}
						bc.hold(0)
						for i := range 100 {
							if _, err := tc.Write(want[i*11 : i*11+11]); err != nil {
								return err
							}
						}
						raw, err := bc.release()
						held <- raw
						if err != nil {
							return err
						}
						<-stop
						return nil
					})
					e.pollUntil(10*time.Second, "all 100 records", func() bool {
						return len(k.got) >= len(want) || p.finished() || k.conn != nil && e.chk.closed(k.conn)
					})
					raw := <-held
					if types, err := tlstRecordTypes(raw); err != nil || len(types) != 100 {
						t.Fatalf("the single write held %d records (%v), want 100", len(types), err)
					}
					if !bytes.Equal(k.got, want) {
						t.Fatalf("delivered %d bytes, want the %d of the 100 records in order; events %v, peer %v",
							len(k.got), len(want), summarize(e.chk.events(k.conn)), p.err)
					}
					if errs := e.chk.errorsOf(k.conn); len(errs) != 0 {
						t.Fatalf("errors %v", errs)
					}
				})
			}
		}
	})
}

// TestTLSRecordTrickled: one full-size record (16 KiB of plaintext) written
// in 64-byte pieces a few milliseconds apart is delivered whole, once
// complete, and not a byte of it earlier; Meerkat as server and as client.
func TestTLSRecordTrickled(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, role := range tlstRoles {
			t.Run(role.name, func(t *testing.T) {
				e := newEnv(t, drv, true)
				want := bytes.Repeat([]byte("0123456789abcdef"), 16<<10/16)
				var lastPieceSent atomic.Bool
				var early bool
				k := tlstCollector{onEvent: func(c *meerkat.Conn, ev meerkat.Event) {
					if ev == meerkat.EvRead && !lastPieceSent.Load() {
						early = true
					}
				}}
				var pieces atomic.Int32
				p := tlstMeerkatEnd(t, e, role.peerIsClient, &k, func(nc net.Conn, stop <-chan struct{}) error {
					bc := &tlstBatchConn{Conn: nc}
					tc := tlstPeerTLS(bc, role.peerIsClient, tls.VersionTLS13)
					if err := tc.Handshake(); err != nil {
						return err
					}
					bc.hold(0)
					if _, err := tc.Write(want); err != nil {
						return err
					}
					bc.mu.Lock()
					raw := bc.held
					bc.holding, bc.held = false, nil
					bc.mu.Unlock()
					if types, err := tlstRecordTypes(raw); err != nil || len(types) != 1 {
						return fmt.Errorf("16 KiB became %d records (%v), want 1", len(types), err)
					}
					for off := 0; off < len(raw); off += 64 {
						end := min(off+64, len(raw))
						if end == len(raw) {
							lastPieceSent.Store(true)
						}
						if _, err := nc.Write(raw[off:end]); err != nil {
							return err
						}
						pieces.Add(1)
						time.Sleep(2 * time.Millisecond) // the pause is the point of the test
					}
					<-stop
					return nil
				})
				e.pollUntil(20*time.Second, "the trickled record", func() bool {
					return len(k.got) >= len(want) || p.finished() || k.conn != nil && e.chk.closed(k.conn)
				})
				if !bytes.Equal(k.got, want) {
					t.Fatalf("delivered %d bytes, want %d intact; events %v, peer %v",
						len(k.got), len(want), summarize(e.chk.events(k.conn)), p.err)
				}
				if early {
					t.Error("EvRead before the record's last piece was sent")
				}
				t.Logf("record sent in %d pieces", pieces.Load())
			})
		}
	})
}

var tlstVersions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

// tlstPair runs a Meerkat client against a Meerkat server in one Manager,
// each with its own TLS configuration (set with TLSInit), the client
// connecting to https://host:port; it returns the two connections once both
// are closed. After a successful handshake the server sends a greeting and
// the client closes on reading it.
func tlstPair(t *testing.T, e *env, serverCfg, clientCfg *tls.Config, host string) (srv, cli *meerkat.Conn) {
	t.Helper()
	l, err := e.m.Listen("https://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
		switch ev {
		case meerkat.EvAccept:
			srv = c
			if err := c.TLSInit(serverCfg); err != nil {
				t.Errorf("server TLSInit: %v", err)
			}
		case meerkat.EvTLSHandshake:
			c.Printf("hello from the server")
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	cli, err = e.m.Connect("https://"+host+":"+tlstPort(l.LocalAddr().String()), e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
		switch ev {
		case meerkat.EvConnect:
			if err := c.TLSInit(clientCfg); err != nil {
				t.Errorf("client TLSInit: %v", err)
			}
		case meerkat.EvRead:
			if bytes.Contains(c.Recv().Bytes(), []byte("hello from the server")) {
				c.Close() // the exchange worked: end it cleanly
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	e.pollUntil(10*time.Second, "both ends to close", func() bool {
		return srv != nil && e.chk.closed(srv) && e.chk.closed(cli)
	})
	return srv, cli
}

// tlstExpectError checks that c ended with exactly one EvError, just before
// EvClose, whose message contains every one of want.
func tlstExpectError(t *testing.T, e *env, who string, c *meerkat.Conn, want ...string) error {
	t.Helper()
	ev := e.chk.events(c)
	errs := e.chk.errorsOf(c)
	if len(ev) < 2 || ev[len(ev)-2] != meerkat.EvError || ev[len(ev)-1] != meerkat.EvClose || len(errs) != 1 {
		t.Errorf("%s: events %v, errors %v; want one EvError then EvClose", who, summarize(ev), errs)
		return nil
	}
	for _, w := range want {
		if !strings.Contains(errs[0].Error(), w) {
			t.Errorf("%s: error %q does not contain %q", who, errs[0], w)
		}
	}
	return errs[0]
}

// TestTLSCertificateFailures: a Meerkat client and a Meerkat server whose
// certificates do not pass verification each end with EvError saying why,
// then EvClose, within the test's bound — the verifying side names the
// fault, the other side reports the peer's alert. Server certificate for
// another name, from an unknown CA, expired; client certificate missing
// where one is required, from an unknown CA, expired; TLS 1.2 and 1.3. A
// valid client certificate is the control: no error on either side.
func TestTLSCertificateFailures(t *testing.T) {
	untrusted := testcert.NewCA("Untrusted Test CA")
	withServerCert := func(cert tls.Certificate) func() *tls.Config {
		return func() *tls.Config { return &tls.Config{Certificates: []tls.Certificate{cert}} }
	}
	requiringClientCert := func() *tls.Config {
		cfg := testcert.ServerConfig()
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = testcert.Default.CA.Pool
		return cfg
	}
	withClientCert := func(cert *tls.Certificate) func() *tls.Config {
		return func() *tls.Config {
			cfg := testcert.ClientConfig()
			if cert != nil {
				// Sent even when the server's list of acceptable CAs
				// does not name its issuer.
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					return cert, nil
				}
			}
			return cfg
		}
	}
	goodClient := testcert.Default.CA.Leaf("client.test")
	untrustedClient := untrusted.Leaf("client.test")
	expiredClient := testcert.Default.CA.Expired("client.test")
	cases := []struct {
		name               string
		server, client     func() *tls.Config
		host               string
		clientWant         []string // nil: no error expected
		clientWant12       []string // instead of clientWant with TLS 1.2
		serverWant         []string
		clientHandshakes13 bool // with TLS 1.3 the client's handshake ends before the server's verdict
	}{
		{
			name:       "server-cert-for-other-name",
			server:     withServerCert(testcert.Default.CA.Leaf("other.example")),
			client:     withClientCert(nil),
			host:       "localhost",
			clientWant: []string{"certificate", "other.example", "localhost"},
			serverWant: []string{"bad certificate"},
		},
		{
			name:       "server-cert-untrusted-CA",
			server:     withServerCert(untrusted.Leaf("localhost", "127.0.0.1")),
			client:     withClientCert(nil),
			host:       "localhost",
			clientWant: []string{"certificate", "unknown authority"},
			serverWant: []string{"bad certificate"},
		},
		{
			name:       "server-cert-expired",
			server:     withServerCert(testcert.Default.CA.Expired("localhost", "127.0.0.1")),
			client:     withClientCert(nil),
			host:       "127.0.0.1",
			clientWant: []string{"certificate", "expired"},
			serverWant: []string{"bad certificate"},
		},
		{
			name:               "client-cert-missing",
			server:             requiringClientCert,
			client:             withClientCert(nil),
			host:               "localhost",
			clientWant:         []string{"certificate required"},
			clientWant12:       []string{"handshake failure"},
			serverWant:         []string{"didn't provide a certificate"},
			clientHandshakes13: true,
		},
		{
			name:               "client-cert-untrusted-CA",
			server:             requiringClientCert,
			client:             withClientCert(&untrustedClient),
			host:               "localhost",
			clientWant:         []string{"unknown certificate authority"},
			serverWant:         []string{"certificate", "unknown authority"},
			clientHandshakes13: true,
		},
		{
			name:               "client-cert-expired",
			server:             requiringClientCert,
			client:             withClientCert(&expiredClient),
			host:               "localhost",
			clientWant:         []string{"expired certificate"},
			serverWant:         []string{"certificate", "expired"},
			clientHandshakes13: true,
		},
		{
			name:   "control-valid-client-cert",
			server: requiringClientCert,
			client: withClientCert(&goodClient),
			host:   "localhost",
		},
	}
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, version := range tlstVersions {
			for _, tc := range cases {
				t.Run(tls.VersionName(version)+"/"+tc.name, func(t *testing.T) {
					e := newEnv(t, drv, true)
					scfg, ccfg := tc.server(), tc.client()
					scfg.MaxVersion, ccfg.MaxVersion = version, version
					srv, cli := tlstPair(t, e, scfg, ccfg, tc.host)
					if tc.serverWant == nil {
						for _, c := range []*meerkat.Conn{srv, cli} {
							if errs := e.chk.errorsOf(c); len(errs) != 0 || !slices.Contains(e.chk.events(c), meerkat.EvTLSHandshake) {
								t.Errorf("conn %d: events %v, errors %v; want a handshake and no error", c.ID(), summarize(e.chk.events(c)), errs)
							}
						}
						return
					}
					want := tc.clientWant
					if version == tls.VersionTLS12 && tc.clientWant12 != nil {
						want = tc.clientWant12
					}
					cerr := tlstExpectError(t, e, "meerkat client", cli, want...)
					serr := tlstExpectError(t, e, "meerkat server", srv, tc.serverWant...)
					t.Logf("client: %v", cerr)
					t.Logf("server: %v", serr)
					if slices.Contains(e.chk.events(srv), meerkat.EvTLSHandshake) {
						t.Error("meerkat server reported EvTLSHandshake for a failed handshake")
					}
					clientHS := slices.Contains(e.chk.events(cli), meerkat.EvTLSHandshake)
					if clientHS && !(tc.clientHandshakes13 && version == tls.VersionTLS13) {
						t.Error("meerkat client reported EvTLSHandshake for a failed handshake")
					}
					if slices.Contains(e.chk.events(cli), meerkat.EvRead) {
						t.Error("meerkat client received application data over a rejected connection")
					}
				})
			}
		}
	})
}

// TestTLSClientToPlainListener: a Meerkat TLS client that reaches a server
// speaking no TLS — a Meerkat tcp:// echo listener (which returns the
// ClientHello), or a listener that writes an HTTP error — ends with EvError
// naming the problem, then EvClose.
func TestTLSClientToPlainListener(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		t.Run("meerkat-echo", func(t *testing.T) {
			e := newEnv(t, drv, true)
			l, err := e.m.Listen("tcp://127.0.0.1:0", e.chk.wrap(echo))
			if err != nil {
				t.Fatal(err)
			}
			cli, err := e.m.Connect("https://"+l.LocalAddr().String(), e.chk.wrap(nil))
			if err != nil {
				t.Fatal(err)
			}
			e.pollUntil(10*time.Second, "the client's close", func() bool { return e.chk.closed(cli) })
			err = tlstExpectError(t, e, "meerkat client", cli, "tls", "unexpected")
			t.Logf("client: %v", err)
		})
		t.Run("garbage-writer", func(t *testing.T) {
			e := newEnv(t, drv, true)
			ln := tlstListen(t)
			tlstGo(t, func(stop <-chan struct{}) error {
				nc, err := tlstAccept(ln)
				if err != nil {
					return err
				}
				defer nc.Close()
				nc.Write([]byte("HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
				<-stop // keep the connection open: the error must not be an EOF
				return nil
			})
			cli, err := e.m.Connect("https://"+ln.Addr().String(), e.chk.wrap(nil))
			if err != nil {
				t.Fatal(err)
			}
			e.pollUntil(10*time.Second, "the client's close", func() bool { return e.chk.closed(cli) })
			err = tlstExpectError(t, e, "meerkat client", cli, "does not look like a TLS handshake")
			t.Logf("client: %v", err)
		})
	})
}

// TestTLSServerFedPlaintext: a Meerkat TLS server that receives a plaintext
// HTTP request ends the connection with EvError naming the problem, then
// EvClose, and the listener keeps serving.
func TestTLSServerFedPlaintext(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, true)
		var accepted []*meerkat.Conn
		l, err := e.m.Listen("https://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvAccept {
				accepted = append(accepted, c)
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		addr := l.LocalAddr().String()
		p := tlstGo(t, func(stop <-chan struct{}) error {
			nc, err := tlstDial(addr)
			if err != nil {
				return err
			}
			defer nc.Close()
			if _, err := nc.Write([]byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")); err != nil {
				return err
			}
			io.Copy(io.Discard, nc) // until the server closes
			return nil
		})
		e.pollUntil(10*time.Second, "the server conn's close", func() bool {
			return len(accepted) == 1 && e.chk.closed(accepted[0])
		})
		err = tlstExpectError(t, e, "meerkat server", accepted[0], "does not look like a TLS handshake")
		t.Logf("server: %v", err)
		if err := p.wait(t); err != nil {
			t.Errorf("peer: %v", err)
		}
		if e.chk.closed(l) || l.IsClosing() {
			t.Fatal("the listener closed")
		}
		peer := e.dialPeer(addr)
		defer peer.Close()
		hs := tlstGo(t, func(<-chan struct{}) error { return peer.(*tls.Conn).Handshake() })
		e.pollUntil(10*time.Second, "a good client's handshake", func() bool { return hs.finished() })
		if hs.err != nil {
			t.Fatalf("handshake after the failed one: %v", hs.err)
		}
	})
}

// tlstClientHello returns the bytes of a ClientHello.
func tlstClientHello(t *testing.T) []byte {
	r := &tlstRecorder{}
	tls.Client(r, &tls.Config{ServerName: "localhost"}).Handshake() // fails at the EOF
	if len(r.buf) < 100 || r.buf[0] != 22 {
		t.Fatalf("recorded %d bytes, not a ClientHello", len(r.buf))
	}
	return r.buf
}

// tlstRecorder is a net.Conn that keeps what is written and reads EOF.
type tlstRecorder struct {
	net.Conn // nil: only the methods below are used
	buf      []byte
}

func (r *tlstRecorder) Write(p []byte) (int, error)      { r.buf = append(r.buf, p...); return len(p), nil }
func (r *tlstRecorder) Read([]byte) (int, error)         { return 0, io.EOF }
func (r *tlstRecorder) Close() error                     { return nil }
func (r *tlstRecorder) SetDeadline(time.Time) error      { return nil }
func (r *tlstRecorder) SetReadDeadline(time.Time) error  { return nil }
func (r *tlstRecorder) SetWriteDeadline(time.Time) error { return nil }

// tlstTrickle writes p one byte every 20 ms until p ends, the connection
// fails or stop closes; it counts the bytes written.
func tlstTrickle(nc net.Conn, p []byte, stop <-chan struct{}, written *atomic.Int32) {
	for _, b := range p {
		if _, err := nc.Write([]byte{b}); err != nil {
			return
		}
		written.Add(1)
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	<-stop
}

// TestTLSHandshakeTimeout: a TLS handshake that does not finish within
// Manager.TLSHandshakeTimeout — a peer that never speaks, or one that
// trickles a byte every 20 ms (activity must not extend the deadline) —
// ends in EvError wrapping ErrTLSHandshakeTimeout, then EvClose, on the
// Meerkat server and the Meerkat client; the handshake goroutine is gone
// afterwards.
func TestTLSHandshakeTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	hello := tlstClientHello(t)
	// A server's first record header (handshake, 122 bytes), then never
	// enough bytes to complete it.
	serverStart := append([]byte{22, 3, 3, 0, 122, 2}, make([]byte, 100)...)
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, tc := range []struct {
			name         string
			peerIsClient bool
			trickle      []byte
		}{
			{"meerkat-server/silent-peer", true, nil},
			{"meerkat-server/trickling-peer", true, hello},
			{"meerkat-client/silent-peer", false, nil},
			{"meerkat-client/trickling-peer", false, serverStart},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, drv, true)
				e.m.TLSHandshakeTimeout = timeout
				var conn *meerkat.Conn
				var started, failed time.Time
				handler := e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
					switch ev {
					case meerkat.EvAccept, meerkat.EvConnect:
						conn, started = c, time.Now()
					case meerkat.EvError:
						failed = time.Now()
					}
				})
				var written atomic.Int32
				peerFn := func(nc net.Conn, stop <-chan struct{}) {
					if tc.trickle != nil {
						tlstTrickle(nc, tc.trickle, stop, &written)
						return
					}
					<-stop
				}
				var l *meerkat.Conn
				var ln net.Listener
				if tc.peerIsClient {
					var err error
					if l, err = e.m.Listen("https://127.0.0.1:0", handler); err != nil {
						t.Fatal(err)
					}
				} else {
					ln = tlstListen(t)
				}
				base := snapshot()
				var p *tlstPeer
				if tc.peerIsClient {
					addr := l.LocalAddr().String()
					p = tlstGo(t, func(stop <-chan struct{}) error {
						nc, err := tlstDial(addr)
						if err != nil {
							return err
						}
						defer nc.Close()
						peerFn(nc, stop)
						return nil
					})
				} else {
					p = tlstGo(t, func(stop <-chan struct{}) error {
						nc, err := tlstAccept(ln)
						if err != nil {
							return err
						}
						defer nc.Close()
						peerFn(nc, stop)
						return nil
					})
					if _, err := e.m.Connect("https://"+ln.Addr().String(), handler); err != nil {
						t.Fatal(err)
					}
				}
				e.pollUntil(10*time.Second, "the handshake timeout", func() bool {
					return conn != nil && e.chk.closed(conn)
				})
				err := tlstExpectError(t, e, "meerkat "+map[bool]string{true: "server", false: "client"}[tc.peerIsClient], conn, "timeout")
				if !errors.Is(err, meerkat.ErrTLSHandshakeTimeout) {
					t.Errorf("error %v is not ErrTLSHandshakeTimeout", err)
				}
				took := failed.Sub(started)
				t.Logf("%v after %v (peer wrote %d bytes)", err, took, written.Load())
				if took < timeout-10*time.Millisecond || took > timeout+3*time.Second {
					t.Errorf("timed out after %v, want about %v", took, timeout)
				}
				if tc.trickle != nil && written.Load() < 3 {
					t.Errorf("the peer wrote only %d bytes before the timeout: not a trickle", written.Load())
				}
				p.stop()
				if err := p.wait(t); err != nil {
					t.Errorf("peer: %v", err)
				}
				if l != nil {
					l.Close()
				}
				e.m.Poll(0)
				expectBaseline(t, base, 5*time.Second)
			})
		}
	})
}

// tlstNameRecorder returns a server configuration that records the SNI of
// every ClientHello (on the handshake goroutine, hence the channel).
func tlstNameRecorder(base *tls.Config, names chan<- string) *tls.Config {
	cfg := base.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		names <- hello.ServerName
		return nil, nil
	}
	return cfg
}

// TestTLSSNI: a Meerkat client sends the URL's host name as SNI and none
// for an IP literal (verifying the certificate against either), and a
// Meerkat server holding several certificates presents the one the SNI
// names (the first without SNI).
func TestTLSSNI(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		t.Run("client-sends-names-not-IPs", func(t *testing.T) {
			e := newEnv(t, drv, true)
			names := make(chan string, 4)
			scfg := tlstNameRecorder(testcert.ServerConfig(), names)
			l, err := e.m.Listen("https://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
				if ev == meerkat.EvAccept {
					if err := c.TLSInit(scfg); err != nil {
						t.Errorf("TLSInit: %v", err)
					}
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			port := tlstPort(l.LocalAddr().String())
			for _, tc := range []struct{ host, wantSNI string }{{"localhost", "localhost"}, {"127.0.0.1", ""}} {
				shook := false
				cli, err := e.m.Connect("https://"+tc.host+":"+port, e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
					if ev == meerkat.EvTLSHandshake {
						shook = true
						c.Close()
					}
				}))
				if err != nil {
					t.Fatal(err)
				}
				e.pollUntil(10*time.Second, "the client's close", func() bool { return e.chk.closed(cli) })
				if !shook {
					t.Fatalf("https://%s: no handshake; errors %v", tc.host, e.chk.errorsOf(cli))
				}
				select {
				case got := <-names:
					if got != tc.wantSNI {
						t.Errorf("https://%s: server saw SNI %q, want %q", tc.host, got, tc.wantSNI)
					}
				default:
					t.Fatalf("https://%s: the server saw no ClientHello", tc.host)
				}
			}
		})
		t.Run("server-picks-certificate-by-SNI", func(t *testing.T) {
			e := newEnv(t, drv, true)
			e.m.TLSConfig = &tls.Config{Certificates: []tls.Certificate{
				testcert.Default.CA.Leaf("a.test"),
				testcert.Default.CA.Leaf("b.test"),
			}}
			l, err := e.m.Listen("https://127.0.0.1:0", e.chk.wrap(nil))
			if err != nil {
				t.Fatal(err)
			}
			addr := l.LocalAddr().String()
			for _, tc := range []struct{ sni, want string }{{"a.test", "a.test"}, {"b.test", "b.test"}, {"", "a.test"}} {
				var leaf *x509.Certificate
				p := tlstGo(t, func(<-chan struct{}) error {
					nc, err := tlstDial(addr)
					if err != nil {
						return err
					}
					cfg := &tls.Config{RootCAs: testcert.Default.CA.Pool, ServerName: tc.sni}
					if tc.sni == "" {
						cfg.InsecureSkipVerify = true // no name to verify; the leaf is checked below
					}
					c := tls.Client(nc, cfg)
					defer c.Close()
					if err := c.Handshake(); err != nil {
						return err
					}
					leaf = c.ConnectionState().PeerCertificates[0]
					return nil
				})
				e.pollUntil(10*time.Second, "the client's handshake", p.finished)
				if p.err != nil {
					t.Fatalf("SNI %q: %v", tc.sni, p.err)
				}
				if !slices.Equal(leaf.DNSNames, []string{tc.want}) {
					t.Errorf("SNI %q: server presented a certificate for %v, want [%s]", tc.sni, leaf.DNSNames, tc.want)
				}
			}
			// A Meerkat client naming b.test in its configuration gets, and
			// verifies, b.test's certificate.
			var seen []string
			ccfg := &tls.Config{RootCAs: testcert.Default.CA.Pool, ServerName: "b.test"}
			verified := make(chan []string, 1)
			ccfg.VerifyConnection = func(cs tls.ConnectionState) error {
				verified <- cs.PeerCertificates[0].DNSNames
				return nil
			}
			cli, err := e.m.Connect("https://"+addr, e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
				switch ev {
				case meerkat.EvConnect:
					if err := c.TLSInit(ccfg); err != nil {
						t.Errorf("TLSInit: %v", err)
					}
				case meerkat.EvTLSHandshake:
					seen = <-verified
					c.Close()
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			e.pollUntil(10*time.Second, "the client's close", func() bool { return e.chk.closed(cli) })
			if !slices.Equal(seen, []string{"b.test"}) {
				t.Errorf("meerkat client with ServerName b.test verified %v; errors %v", seen, e.chk.errorsOf(cli))
			}
		})
	})
}

// tlstCustomCert is a certificate for a name only TLSInit's configuration
// knows, so a handshake that verifies it proves that configuration was used.
var tlstCustomCert = sync.OnceValue(func() tls.Certificate { return testcert.Default.CA.Leaf("custom.test") })

// TestTLSInitServer: TLSInit on EvAccept with a custom configuration is the
// one the handshake uses, on a tcp:// listener and on an https:// one
// (where it replaces Manager.TLSConfig); a second TLSInit returns
// ErrTLSAlreadyStarted, as does TLSInit after automatic TLS; data then flows.
func TestTLSInitServer(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, scheme := range []string{"tcp", "https"} {
			t.Run(scheme, func(t *testing.T) {
				e := newEnv(t, drv, true)
				custom := &tls.Config{Certificates: []tls.Certificate{tlstCustomCert()}}
				var first, second, afterHS error
				l, err := e.m.Listen(scheme+"://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
					switch ev {
					case meerkat.EvAccept:
						first = c.TLSInit(custom)
						second = c.TLSInit(custom)
					case meerkat.EvTLSHandshake:
						afterHS = c.TLSInit(nil)
					}
					echo(c, ev, nil)
				}))
				if err != nil {
					t.Fatal(err)
				}
				addr := l.LocalAddr().String()
				var reply []byte
				p := tlstGo(t, func(<-chan struct{}) error {
					nc, err := tlstDial(addr)
					if err != nil {
						return err
					}
					c := tls.Client(nc, &tls.Config{RootCAs: testcert.Default.CA.Pool, ServerName: "custom.test"})
					defer c.Close()
					if _, err := c.Write([]byte("ping")); err != nil {
						return err
					}
					reply = make([]byte, 4)
					_, err = io.ReadFull(c, reply)
					return err
				})
				e.pollUntil(10*time.Second, "the echo", p.finished)
				if p.err != nil || string(reply) != "ping" {
					t.Fatalf("peer: %v, reply %q", p.err, reply)
				}
				if first != nil {
					t.Errorf("first TLSInit: %v", first)
				}
				if !errors.Is(second, meerkat.ErrTLSAlreadyStarted) {
					t.Errorf("second TLSInit: %v, want ErrTLSAlreadyStarted", second)
				}
				if !errors.Is(afterHS, meerkat.ErrTLSAlreadyStarted) {
					t.Errorf("TLSInit after the handshake: %v, want ErrTLSAlreadyStarted", afterHS)
				}
			})
		}
	})
}

// TestTLSInitClient: TLSInit on EvConnect with a custom configuration
// (ServerName custom.test, which the URL's 127.0.0.1 would not verify) is
// the one the handshake uses, for a tcp:// and an https:// URL; a second
// TLSInit returns ErrTLSAlreadyStarted; data then flows both ways.
func TestTLSInitClient(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, scheme := range []string{"tcp", "https"} {
			t.Run(scheme, func(t *testing.T) {
				e := newEnv(t, drv, true)
				ln := tlstListen(t)
				p := tlstGo(t, func(stop <-chan struct{}) error {
					nc, err := tlstAccept(ln)
					if err != nil {
						return err
					}
					c := tls.Server(nc, &tls.Config{Certificates: []tls.Certificate{tlstCustomCert()}})
					defer c.Close()
					buf := make([]byte, 4)
					if _, err := io.ReadFull(c, buf); err != nil {
						return err
					}
					_, err = c.Write(buf)
					<-stop
					return err
				})
				custom := &tls.Config{RootCAs: testcert.Default.CA.Pool, ServerName: "custom.test"}
				var first, second error
				var k tlstCollector
				k.onEvent = func(c *meerkat.Conn, ev meerkat.Event) {
					switch ev {
					case meerkat.EvConnect:
						first = c.TLSInit(custom)
						second = c.TLSInit(custom)
					case meerkat.EvTLSHandshake:
						c.Send([]byte("pong"))
					}
				}
				cli, err := e.m.Connect(scheme+"://"+ln.Addr().String(), e.chk.wrap(k.handler))
				if err != nil {
					t.Fatal(err)
				}
				e.pollUntil(10*time.Second, "the echo", func() bool {
					return len(k.got) >= 4 || e.chk.closed(cli) || p.finished()
				})
				if string(k.got) != "pong" {
					t.Fatalf("got %q, want the echo; events %v, errors %v, peer %v",
						k.got, summarize(e.chk.events(cli)), e.chk.errorsOf(cli), p.err)
				}
				if first != nil {
					t.Errorf("first TLSInit: %v", first)
				}
				if !errors.Is(second, meerkat.ErrTLSAlreadyStarted) {
					t.Errorf("second TLSInit: %v, want ErrTLSAlreadyStarted", second)
				}
			})
		}
	})
}

// TestTLSListenerWithoutCertificate: an https listener with no certificate
// to present ends each accepted connection with EvError (ErrNoCertificate)
// then EvClose, and keeps serving: once a certificate is configured, the
// next client's handshake succeeds.
func TestTLSListenerWithoutCertificate(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, true)
		e.m.TLSConfig = &tls.Config{}
		var accepted []*meerkat.Conn
		shook := 0
		l, err := e.m.Listen("https://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			switch ev {
			case meerkat.EvAccept:
				accepted = append(accepted, c)
			case meerkat.EvTLSHandshake:
				shook++
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		addr := l.LocalAddr().String()
		handshake := func() *tlstPeer {
			return tlstGo(t, func(<-chan struct{}) error {
				nc, err := tlstDial(addr)
				if err != nil {
					return err
				}
				defer nc.Close()
				cfg := testcert.ClientConfig()
				cfg.ServerName = "127.0.0.1"
				return tls.Client(nc, cfg).Handshake()
			})
		}
		p := handshake()
		e.pollUntil(10*time.Second, "the first connection's close", func() bool {
			return len(accepted) == 1 && e.chk.closed(accepted[0]) && p.finished()
		})
		err = tlstExpectError(t, e, "accepted conn", accepted[0], "certificate")
		if !errors.Is(err, meerkat.ErrNoCertificate) {
			t.Errorf("error %v is not ErrNoCertificate", err)
		}
		if p.err == nil {
			t.Error("the peer's handshake succeeded with no certificate")
		}
		if e.chk.closed(l) || l.IsClosing() {
			t.Fatal("the listener closed")
		}

		e.m.TLSConfig = testcert.ServerConfig()
		p = handshake()
		e.pollUntil(10*time.Second, "the second handshake", func() bool { return p.finished() && shook == 1 })
		if p.err != nil {
			t.Fatalf("second client: %v", p.err)
		}
	})
}

// tlstEOFWatch notes whether the connection under a tls.Conn reported EOF:
// a tls.Conn returns io.EOF both for close_notify and for a bare EOF at a
// record boundary, and only the second reads the underlying EOF first.
type tlstEOFWatch struct {
	net.Conn
	sawEOF atomic.Bool
}

func (w *tlstEOFWatch) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if err == io.EOF {
		w.sawEOF.Store(true)
	}
	return n, err
}

// tlstReadToEnd reads c until an error and reports whether it ended with
// the peer's close_notify.
func tlstReadToEnd(c *tls.Conn, w *tlstEOFWatch) (data []byte, closeNotify bool, err error) {
	data, err = io.ReadAll(c)
	return data, err == nil && !w.sawEOF.Load(), err
}

// TestTLSCloseNotify: Close and Drain on a TLS connection, Meerkat server
// or client, send close_notify before the socket closes: the crypto/tls
// peer reads a clean io.EOF from the alert, not a bare EOF, an unexpected
// EOF or an error. The control subtest shows a bare TCP close is told apart.
func TestTLSCloseNotify(t *testing.T) {
	t.Run("control-bare-close", func(t *testing.T) {
		ln := tlstListen(t)
		p := tlstGo(t, func(<-chan struct{}) error {
			nc, err := tlstAccept(ln)
			if err != nil {
				return err
			}
			c := tls.Server(nc, testcert.ServerConfig())
			if err := c.Handshake(); err != nil {
				return err
			}
			c.Write([]byte("bye"))
			return nc.Close() // no close_notify
		})
		nc, err := tlstDial(ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		w := &tlstEOFWatch{Conn: nc}
		cfg := testcert.ClientConfig()
		cfg.ServerName = "localhost"
		data, notify, err := tlstReadToEnd(tls.Client(w, cfg), w)
		nc.Close()
		if string(data) != "bye" || err != nil || notify {
			t.Fatalf("bare close: data %q, close_notify %v, err %v; want the data, io.EOF, no close_notify", data, notify, err)
		}
		if err := p.wait(t); err != nil {
			t.Fatal(err)
		}
	})
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, role := range tlstRoles {
			for _, how := range []string{"Close", "Drain"} {
				t.Run(role.name+"/"+how, func(t *testing.T) {
					e := newEnv(t, drv, true)
					var k tlstCollector
					k.onEvent = func(c *meerkat.Conn, ev meerkat.Event) {
						if ev == meerkat.EvRead && string(k.got) == "please close" {
							if how == "Close" {
								c.Close()
							} else {
								c.Send([]byte("closing"))
								c.Drain()
							}
						}
					}
					type result struct {
						data   []byte
						notify bool
						err    error
					}
					res := make(chan result, 1)
					p := tlstMeerkatEnd(t, e, role.peerIsClient, &k, func(nc net.Conn, stop <-chan struct{}) error {
						w := &tlstEOFWatch{Conn: nc}
						tc := tlstPeerTLS(w, role.peerIsClient, tls.VersionTLS13)
						if _, err := tc.Write([]byte("please close")); err != nil {
							return err
						}
						var r result
						r.data, r.notify, r.err = tlstReadToEnd(tc, w)
						res <- r
						return nil // closing the socket ends a Drain
					})
					e.pollUntil(10*time.Second, "the close", func() bool {
						return k.conn != nil && e.chk.closed(k.conn) && p.finished()
					})
					if p.err != nil {
						t.Fatalf("peer: %v", p.err)
					}
					r := <-res
					if r.err != nil || !r.notify {
						t.Errorf("peer read %q, then err %v, close_notify %v; want io.EOF from close_notify", r.data, r.err, r.notify)
					}
					want := "closing"
					if how == "Close" {
						want = ""
					}
					if string(r.data) != want {
						t.Errorf("peer read %q, want %q", r.data, want)
					}
					if errs := e.chk.errorsOf(k.conn); len(errs) != 0 {
						t.Errorf("meerkat %s: errors %v", role.name, errs)
					}
				})
			}
		}
	})
}
