package meerkat

// The TLS filter's contract with crypto/tls, pinned: after the handshake,
// records are decrypted on one goroutine from raw bytes fed in any split,
// and a transport that has no bytes yet answers with a Temporary() net.Error
// that crypto/tls must treat as "try again", keeping its state. DESIGN.md
// relies on that; crypto/tls does not promise it, so these tests catch a Go
// release that breaks it.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat/internal/testcert"
)

// tlsfPayloadSize is how much each side sends in the transfer tests.
const tlsfPayloadSize = 1 << 20

// tlsfFeedMode is how raw bytes are fed to the receiving filter.
type tlsfFeedMode int

const (
	tlsfFeedAll      tlsfFeedMode = iota // everything in one feed, read, then EOF
	tlsfFeedBytewise                     // one byte per feed, reading after each
	tlsfFeedRandom                       // random-sized pieces, reading after each
	tlsfFeedEOFFirst                     // everything and EOF before the first read
)

// tlsfBytewiseEdge is how much of the raw stream, at its start and at its
// end, the byte-at-a-time mode feeds one byte at a time; the middle goes in
// random pieces. Each end spans several whole records (the end: the last
// data records, close_notify and EOF), and under -race a byte costs about
// 4 µs, so feeding all of 1 MiB this way took 70 s for the matrix.
const tlsfBytewiseEdge = 32 << 10

var tlsfFeedModes = []tlsfFeedMode{tlsfFeedAll, tlsfFeedBytewise, tlsfFeedRandom, tlsfFeedEOFFirst}

func (m tlsfFeedMode) String() string {
	return [...]string{"all-at-once", "byte-at-a-time", "random-pieces", "eof-before-read"}[m]
}

var tlsfVersions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// tlsfConfigs returns a server and a client configuration pinned to one
// protocol version, with the test certificate for "localhost".
func tlsfConfigs(version uint16) (server, client *tls.Config) {
	server = testcert.ServerConfig()
	server.MinVersion, server.MaxVersion = version, version
	client = testcert.ClientConfig()
	client.ServerName = "localhost"
	client.MinVersion, client.MaxVersion = version, version
	return server, client
}

// tlsfPayload is n pseudo-random bytes, so that a misplaced byte shows.
func tlsfPayload(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// tlsfEstablished marks a filter's handshake as finished, as
// Manager.handshakeDone does, once its goroutine has returned.
func tlsfEstablished(t *testing.T, f *tlsFilter) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("handshake goroutine did not return")
	}
	f.handshaking = false
	f.established = true
}

// tlsfTake removes and returns the records a filter has queued for its peer.
func tlsfTake(f *tlsFilter) []byte {
	var out []byte
	f.flush(func(p []byte) (int, error) {
		out = append(out, p...)
		return len(p), nil
	})
	return out
}

// tlsfWake returns a wake function for newTLSFilter and the channel it
// signals; it never blocks, as the transport may call it under its lock.
func tlsfWake() (func(), chan struct{}) {
	ch := make(chan struct{}, 1)
	return func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}, ch
}

var (
	tlsfAddrA = netip.MustParseAddrPort("127.0.0.1:1001")
	tlsfAddrB = netip.MustParseAddrPort("127.0.0.1:1002")
)

// tlsfNewPair returns a client and a server filter for version that have
// completed their handshake with each other in memory.
func tlsfNewPair(t *testing.T, version uint16) (client, server *tlsFilter) {
	t.Helper()
	scfg, ccfg := tlsfConfigs(version)
	wake, woken := tlsfWake()
	client = newTLSFilter(ccfg, true, tlsfAddrA, tlsfAddrB, wake)
	server = newTLSFilter(scfg, false, tlsfAddrB, tlsfAddrA, wake)
	t.Cleanup(client.close)
	t.Cleanup(server.close)
	results := make(chan error, 2)
	client.startHandshake(func(err error) { results <- err })
	server.startHandshake(func(err error) { results <- err })
	move := func() {
		if b := tlsfTake(client); len(b) > 0 {
			server.feed(b)
		}
		if b := tlsfTake(server); len(b) > 0 {
			client.feed(b)
		}
	}
	timeout := time.After(10 * time.Second)
	for done := 0; done < 2; {
		select {
		case <-woken:
		case err := <-results:
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			done++
		case <-timeout:
			t.Fatal("in-memory handshake did not finish in 10 s")
		}
		move()
	}
	tlsfEstablished(t, client)
	tlsfEstablished(t, server)
	if v := client.conn.ConnectionState().Version; v != version {
		t.Fatalf("negotiated version %x, want %x", v, version)
	}
	return client, server
}

// tlsfSeal encrypts payload with f in writes of random sizes, adds
// close_notify if asked, and returns the records.
func tlsfSeal(t *testing.T, f *tlsFilter, rng *rand.Rand, payload []byte, closeNotify bool) []byte {
	t.Helper()
	for off := 0; off < len(payload); {
		n := min(len(payload)-off, 1+rng.IntN(40<<10))
		if k, err := f.write(payload[off : off+n]); err != nil || k != n {
			t.Fatalf("write: %d, %v", k, err)
		}
		off += n
	}
	if closeNotify {
		f.closeNotify()
		if !f.closeNotifySent {
			t.Fatal("closeNotify did not queue the alert")
		}
	}
	return tlsfTake(f)
}

// tlsfOpen feeds raw to f as mode says, reading whatever decrypts after each
// feed, then EOF. It returns the plaintext and the error that ended it.
// Reading must stop with "would block" while input is incomplete and never
// after the EOF was fed.
func tlsfOpen(t *testing.T, f *tlsFilter, rng *rand.Rand, raw []byte, mode tlsfFeedMode) ([]byte, error) {
	t.Helper()
	var got []byte
	buf := make([]byte, 64<<10)
	eofFed := false
	drain := func() error {
		for i := 0; ; i++ {
			if i > 1<<20 {
				t.Fatal("read loop did not end")
			}
			n, err := f.read(buf)
			got = append(got, buf[:n]...)
			switch {
			case err == errWouldBlock && eofFed:
				t.Fatal("read would block after EOF was fed")
			case err == errWouldBlock:
				return nil
			case err != nil:
				return err
			case n < len(buf):
				t.Fatalf("read returned %d bytes and no error: buffer not full", n)
			}
		}
	}
	feedEOF := func() {
		f.feedEOF()
		eofFed = true
	}
	var err error
	early := "" // set when reading ended before every raw byte was fed
	switch mode {
	case tlsfFeedAll:
		f.feed(raw)
		if err = drain(); err == nil {
			feedEOF()
			err = drain()
		}
	case tlsfFeedBytewise, tlsfFeedRandom:
		for off := 0; off < len(raw) && err == nil; {
			n := 1
			inEdge := off < tlsfBytewiseEdge || off >= len(raw)-tlsfBytewiseEdge
			if mode == tlsfFeedRandom || !inEdge {
				n = min(len(raw)-off, 1+rng.IntN(40<<10))
			}
			if mode == tlsfFeedBytewise && !inEdge {
				n = min(n, len(raw)-tlsfBytewiseEdge-off)
			}
			f.feed(raw[off : off+n])
			off += n
			err = drain()
			if err != nil && off < len(raw) {
				early = fmt.Sprintf("after %d of %d raw bytes", off, len(raw))
			}
		}
		if err == nil {
			feedEOF()
			err = drain()
		}
	case tlsfFeedEOFFirst:
		f.feed(raw)
		feedEOF()
		err = drain()
	}
	// The end is sticky: reading again gives the same outcome, no bytes.
	if n, again := f.read(buf); n != 0 || again == nil || again != err && again.Error() != err.Error() {
		t.Errorf("read after %v: %d bytes, %v; want 0 bytes and the same error", err, n, again)
	}
	if early != "" {
		err = fmt.Errorf("%s: %w", early, err)
	}
	return got, err
}

// tlsfCheckPlain fails unless got is want followed by io.EOF.
func tlsfCheckPlain(t *testing.T, got []byte, err error, want []byte) {
	t.Helper()
	if err != io.EOF {
		t.Errorf("ended with %v, want io.EOF", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got %d bytes, want %d identical (first difference at %d)", len(got), len(want), tlsfFirstDiff(got, want))
	}
}

func tlsfFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestTLSFilterPairTransfer pins the contract between two filters in
// memory: after the handshake, 1 MiB each way, fed all at once, one byte at
// a time, in random pieces, or entirely with EOF before the first read,
// comes out whole and then io.EOF — TLS 1.2 and 1.3, with and without
// close_notify.
func TestTLSFilterPairTransfer(t *testing.T) {
	for _, ver := range tlsfVersions {
		for _, notify := range []bool{true, false} {
			for _, mode := range tlsfFeedModes {
				name := fmt.Sprintf("%s/close_notify=%v/%v", ver.name, notify, mode)
				t.Run(name, func(t *testing.T) {
					seed := uint64(time.Now().UnixNano())
					rng := rand.New(rand.NewPCG(seed, 1))
					client, server := tlsfNewPair(t, ver.v)
					up := tlsfPayload(rng, tlsfPayloadSize)
					down := tlsfPayload(rng, tlsfPayloadSize)
					upRaw := tlsfSeal(t, client, rng, up, notify)
					downRaw := tlsfSeal(t, server, rng, down, notify)

					got, err := tlsfOpen(t, server, rng, upRaw, mode)
					tlsfCheckPlain(t, got, err, up)
					got, err = tlsfOpen(t, client, rng, downRaw, mode)
					tlsfCheckPlain(t, got, err, down)
					if t.Failed() {
						t.Logf("seed %d", seed)
					}
				})
			}
		}
	}
}

// tlsfRealPeer is a crypto/tls connection over loopback TCP facing a
// filter; the test goroutine moves the filter's bytes.
type tlsfRealPeer struct {
	f      *tlsFilter
	woken  chan struct{}
	fc     *net.TCPConn  // the filter's end of the TCP pair
	chunks chan []byte   // raw bytes read from fc, in order; closed at EOF
	start  chan struct{} // closed when the peer may start sending
	sent   chan error    // the peer's handshake and send outcome
	recv   chan []byte   // what the peer read until EOF
	recvEr chan error
}

// tlsfStartRealPeer sets up a filter (client or server) and a crypto/tls
// peer for version over loopback TCP, runs the handshake, and has the peer
// send payload (then close_notify if notify, then FIN) once the handshake is
// over on both sides. Raw bytes that arrive after the handshake are not fed
// to the filter: they are returned for the test to feed.
func tlsfStartRealPeer(t *testing.T, version uint16, filterIsClient bool, payload []byte, notify bool) (*tlsfRealPeer, []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	accepted, err := ln.Accept()
	if err != nil {
		dialed.Close()
		t.Fatal(err)
	}
	fc, pc := dialed.(*net.TCPConn), accepted.(*net.TCPConn)

	scfg, ccfg := tlsfConfigs(version)
	wake, woken := tlsfWake()
	p := &tlsfRealPeer{
		woken:  woken,
		fc:     fc,
		chunks: make(chan []byte, 64),
		start:  make(chan struct{}),
		sent:   make(chan error, 2),
		recv:   make(chan []byte, 1),
		recvEr: make(chan error, 1),
	}
	var peer *tls.Conn
	if filterIsClient {
		p.f = newTLSFilter(ccfg, true, tlsfAddrA, tlsfAddrB, wake)
		peer = tls.Server(pc, scfg)
	} else {
		p.f = newTLSFilter(scfg, false, tlsfAddrA, tlsfAddrB, wake)
		peer = tls.Client(pc, ccfg)
	}
	readerDone := make(chan struct{})
	peerDone := make(chan struct{})
	t.Cleanup(func() {
		fc.Close()
		pc.Close()
		<-readerDone
		<-peerDone
		p.f.close()
	})

	go func() { // fc -> chunks
		defer close(readerDone)
		defer close(p.chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := fc.Read(buf)
			if n > 0 {
				p.chunks <- buf[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // the crypto/tls peer
		defer close(peerDone)
		if err := peer.Handshake(); err != nil {
			p.sent <- fmt.Errorf("peer handshake: %w", err)
			return
		}
		p.sent <- nil
		<-p.start
		rng := rand.New(rand.NewPCG(uint64(len(payload)), 2))
		for off := 0; off < len(payload); {
			n := min(len(payload)-off, 1+rng.IntN(40<<10))
			if _, err := peer.Write(payload[off : off+n]); err != nil {
				p.sent <- fmt.Errorf("peer write: %w", err)
				return
			}
			off += n
		}
		if notify {
			if err := peer.CloseWrite(); err != nil {
				p.sent <- fmt.Errorf("peer close_notify: %w", err)
				return
			}
		}
		pc.CloseWrite()
		p.sent <- nil
		b, err := io.ReadAll(peer)
		p.recv <- b
		p.recvEr <- err
	}()

	hsDone := make(chan error, 1)
	p.f.startHandshake(func(err error) { hsDone <- err })
	timeout := time.After(10 * time.Second)
	for filterOK, peerOK := false, false; !filterOK || !peerOK; {
		select {
		case b, ok := <-p.chunks:
			if !ok {
				t.Fatal("peer closed during the handshake")
			}
			p.f.feed(b)
		case <-p.woken:
		case err := <-hsDone:
			if err != nil {
				t.Fatalf("filter handshake: %v", err)
			}
			filterOK = true
		case err := <-p.sent:
			if err != nil {
				t.Fatal(err)
			}
			peerOK = true
		case <-timeout:
			t.Fatal("handshake with crypto/tls peer did not finish in 10 s")
		}
		if _, err := p.f.flush(fc.Write); err != nil {
			t.Fatalf("writing handshake records: %v", err)
		}
	}
	tlsfEstablished(t, p.f)

	// Everything from here on is collected, not fed.
	close(p.start)
	var raw []byte
	for {
		select {
		case b, ok := <-p.chunks:
			if !ok {
				if err := <-p.sent; err != nil {
					t.Fatal(err)
				}
				return p, raw
			}
			raw = append(raw, b...)
		case <-timeout:
			t.Fatal("peer did not send its payload and FIN in 10 s")
		}
	}
}

// TestTLSFilterRealPeerTransfer pins the same contract against a real
// crypto/tls.Conn over loopback TCP, the filter as client and as server:
// 1 MiB from the peer, fed to the filter in every way, comes out whole then
// io.EOF; 1 MiB from the filter, written to the socket in random pieces,
// reaches the peer whole then EOF — TLS 1.2 and 1.3, with and without
// close_notify.
func TestTLSFilterRealPeerTransfer(t *testing.T) {
	for _, role := range []string{"filter-client", "filter-server"} {
		for _, ver := range tlsfVersions {
			for _, notify := range []bool{true, false} {
				for _, mode := range tlsfFeedModes {
					name := fmt.Sprintf("%s/%s/close_notify=%v/%v", role, ver.name, notify, mode)
					t.Run(name, func(t *testing.T) {
						seed := uint64(time.Now().UnixNano())
						rng := rand.New(rand.NewPCG(seed, 3))
						in := tlsfPayload(rng, tlsfPayloadSize)
						out := tlsfPayload(rng, tlsfPayloadSize)
						p, raw := tlsfStartRealPeer(t, ver.v, role == "filter-client", in, notify)
						got, err := tlsfOpen(t, p.f, rng, raw, mode)
						tlsfCheckPlain(t, got, err, in)

						// The other way: the filter's records, split at random.
						if k, err := p.f.write(out); err != nil || k != len(out) {
							t.Fatalf("filter write: %d, %v", k, err)
						}
						if notify {
							p.f.closeNotify()
						}
						_, err = p.f.flush(func(b []byte) (int, error) {
							return p.fc.Write(b[:min(len(b), 1+rng.IntN(20<<10))])
						})
						if err != nil {
							t.Fatalf("writing records: %v", err)
						}
						p.fc.CloseWrite()
						select {
						case b := <-p.recv:
							if err := <-p.recvEr; err != nil {
								t.Errorf("peer read ended with %v, want EOF", err)
							}
							if !bytes.Equal(b, out) {
								t.Errorf("peer got %d bytes, want %d identical", len(b), len(out))
							}
						case <-time.After(10 * time.Second):
							t.Fatal("peer did not read to EOF in 10 s")
						}
						if t.Failed() {
							t.Logf("seed %d", seed)
						}
					})
				}
			}
		}
	}
}

// tlsfRecords splits raw into TLS records (5-byte header, then payload).
func tlsfRecords(t *testing.T, raw []byte) [][]byte {
	t.Helper()
	var recs [][]byte
	for len(raw) > 0 {
		if len(raw) < 5 {
			t.Fatalf("%d trailing bytes are not a record", len(raw))
		}
		n := 5 + (int(raw[3])<<8 | int(raw[4]))
		if n > len(raw) {
			t.Fatalf("record of %d bytes, only %d left", n, len(raw))
		}
		recs = append(recs, raw[:n:n])
		raw = raw[n:]
	}
	return recs
}

// tlsfSealEach encrypts each message in its own record(s) and returns the
// raw bytes of each.
func tlsfSealEach(t *testing.T, f *tlsFilter, msgs ...[]byte) [][]byte {
	t.Helper()
	var raws [][]byte
	for _, m := range msgs {
		if _, err := f.write(m); err != nil {
			t.Fatalf("write: %v", err)
		}
		raws = append(raws, tlsfTake(f))
	}
	return raws
}

// TestTLSFilterTamperedRecord: a record whose ciphertext was altered is an
// error ("bad record MAC"), not io.EOF nor "would block", and not one byte
// of its plaintext — nor of any record after it — is delivered; the records
// before it are. Whole or fed a byte at a time, TLS 1.2 and 1.3.
func TestTLSFilterTamperedRecord(t *testing.T) {
	for _, ver := range tlsfVersions {
		for _, mode := range []tlsfFeedMode{tlsfFeedAll, tlsfFeedBytewise, tlsfFeedEOFFirst} {
			t.Run(ver.name+"/"+mode.String(), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(7, 7))
				client, server := tlsfNewPair(t, ver.v)
				before := bytes.Repeat([]byte("intact "), 100)
				secret := bytes.Repeat([]byte("SECRET "), 100)
				after := bytes.Repeat([]byte("after "), 100)
				raws := tlsfSealEach(t, client, before, secret, after)
				recs := tlsfRecords(t, raws[1])
				if len(recs) != 1 || recs[0][0] != 23 {
					t.Fatalf("secret: %d records, first of type %d; want one application-data record", len(recs), recs[0][0])
				}
				rec := recs[0]
				rec[5+(len(rec)-5)/2] ^= 0x01 // a bit of the ciphertext

				raw := bytes.Join(raws, nil)
				got, err := tlsfOpen(t, server, rng, raw, mode)
				if err == nil || err == io.EOF || err == errWouldBlock {
					t.Fatalf("tampered record: ended with %v, want an authentication error", err)
				}
				if !strings.Contains(err.Error(), "bad record MAC") {
					t.Errorf("error %q does not say bad record MAC", err)
				}
				if !bytes.Equal(got, before) {
					t.Errorf("delivered %q..., want exactly the %d bytes before the tampered record", got[:min(len(got), 40)], len(before))
				}
				if bytes.Contains(got, []byte("SECRET")) || bytes.Contains(got, []byte("after")) {
					t.Error("plaintext of the tampered record (or later) was delivered")
				}
			})
		}
	}
}

// TestTLSFilterTruncatedRecord: EOF in the middle of a record (its header
// or its payload) is an error wrapping io.ErrUnexpectedEOF, never the clean
// io.EOF of an orderly close; the complete records before it are delivered.
func TestTLSFilterTruncatedRecord(t *testing.T) {
	for _, ver := range tlsfVersions {
		for _, cut := range []string{"header", "payload"} {
			for _, mode := range []tlsfFeedMode{tlsfFeedAll, tlsfFeedBytewise, tlsfFeedEOFFirst} {
				t.Run(ver.name+"/"+cut+"/"+mode.String(), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(8, 8))
					client, server := tlsfNewPair(t, ver.v)
					first := bytes.Repeat([]byte("whole "), 100)
					last := bytes.Repeat([]byte("cut "), 100)
					raws := tlsfSealEach(t, client, first, last)
					keep := 3
					if cut == "payload" {
						keep = len(raws[1]) / 2
					}
					raw := append(raws[0], raws[1][:keep]...)
					got, err := tlsfOpen(t, server, rng, raw, mode)
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("truncated record then EOF: ended with %v, want unexpected EOF", err)
					}
					if !bytes.Equal(got, first) {
						t.Errorf("delivered %d bytes, want exactly the %d of the whole record", len(got), len(first))
					}
				})
			}
		}
	}
}
