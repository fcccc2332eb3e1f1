package meerkat

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"iter"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"github.com/meerkat-net/meerkat/internal/driver"
)

// Defaults used when the Manager's settings are left at zero.
const (
	DefaultConnectTimeout      = 10 * time.Second
	DefaultTLSHandshakeTimeout = 10 * time.Second
	DefaultDrainTimeout        = time.Second
	DefaultShutdownTimeout     = 5 * time.Second
	DefaultRecvLimit           = 2 << 20
	DefaultSendLimit           = 16 << 20
)

// maxQueuedWakeups bounds the Wakeup queue; Wakeup returns false beyond it.
const maxQueuedWakeups = 1 << 20

// Manager is Meerkat's event manager: it owns the connections and timers and
// runs their handlers, one event at a time, on the goroutine that calls Poll.
// Its settings may be changed before or between calls to Poll; zero values
// select the defaults.
type Manager struct {
	// TLSConfig is used by https, wss and mqtts listeners and clients, and
	// by TLSInit(nil). Servers need Certificates (or GetCertificate);
	// clients verify the server against RootCAs (system roots when nil)
	// and send the URL's host as ServerName unless it is set here.
	TLSConfig *tls.Config

	// ConnectTimeout bounds name resolution plus the TCP connect
	// (DefaultConnectTimeout when 0, none when negative).
	ConnectTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake
	// (DefaultTLSHandshakeTimeout when 0, none when negative).
	TLSHandshakeTimeout time.Duration
	// IdleTimeout closes a connection (not a listener) that neither sent
	// nor received a byte for this long; 0 disables it.
	IdleTimeout time.Duration
	// DrainTimeout bounds how long a drained connection waits, after
	// sending everything and its FIN, for the peer to close too; waiting
	// keeps unread input from turning the close into a reset that could
	// destroy the last response in flight (DefaultDrainTimeout when 0).
	DrainTimeout time.Duration
	// ShutdownTimeout bounds the graceful part of Run's shutdown
	// (DefaultShutdownTimeout when 0).
	ShutdownTimeout time.Duration

	// RecvLimit bounds each connection's receive buffer: reading pauses
	// while it is full (DefaultRecvLimit when 0).
	RecvLimit int
	// SendLimit bounds each connection's send buffer: Send fails rather
	// than exceed it (DefaultSendLimit when 0).
	SendLimit int

	// Logger receives Meerkat's diagnostics (slog.Default() when nil).
	// Per-connection events are logged at Debug level.
	Logger *slog.Logger
	// HexdumpOutput receives dumps of connections whose Hexdump field is
	// set (os.Stderr when nil).
	HexdumpOutput io.Writer
	// HTTP holds the HTTP server's and client's limits and timeouts.
	HTTP HTTPSettings
	// WS holds the WebSocket servers' and clients' settings.
	WS WSSettings
	// MQTT holds the MQTT broker's settings (MQTTListen).
	MQTT MQTTBrokerSettings

	// Resolver resolves host names for Connect (and Listen); nil uses
	// net.DefaultResolver. Closing a connection cancels its lookup.
	Resolver *net.Resolver

	drv   driver.Driver
	ready func(any, driver.Readiness) // m.onReady, bound once: Poll allocates nothing

	head    *Conn // live connections, newest first
	byID    map[uint64]*Conn
	nextID  uint64
	timers  timerHeap
	epoch   time.Time
	now     int64 // nanoseconds since epoch, taken once per iteration
	scratch []byte
	fmtBuf  []byte // Printf's and reply helpers' formatting space
	headBuf []byte // reply helpers' response heads

	dueTimers []*Timer

	serveRoots map[string]*cachedRoot // directories HTTPServeDir keeps open

	broker *mqttBroker    // MQTTListen's sessions and retained messages
	wsRand *mrand.ChaCha8 // WebSocket clients' masking keys
	wsOut  []byte         // decompressed WebSocket messages
	wsComp []byte         // compressed WebSocket messages

	closed         bool
	shuttingDown   bool // Listen and Connect refuse, as after Close
	polling        bool
	closeRequested bool
	busy           bool  // work is pending: the next Wait must not block
	nextDeadline   int64 // no connection deadline passes before this, 0 if none
	idleScanned    time.Duration
	active         []*Conn // connections with readiness, work or state to check

	mu     sync.Mutex // guards the fields below, shared with other goroutines
	posts  []post
	spare  []post
	shut   bool
	queued int // wakeups in posts
}

// post is work handed to the Poll goroutine: a Wakeup for a connection, or
// the completion of a resolver or TLS handshake goroutine.
type post struct {
	id   uint64
	data []byte
	fn   func()
	mark *Conn // a TLS handshake goroutine queued output or took input
}

// NewManager returns a Manager on the platform's default driver (epoll on
// Linux, portable elsewhere), or on the one named by the MEERKAT_DRIVER
// environment variable ("epoll" or "portable").
func NewManager() *Manager {
	m, err := NewManagerDriver(os.Getenv("MEERKAT_DRIVER"))
	if err != nil {
		slog.Default().Warn("meerkat: using the default driver", "reason", err)
		m, err = NewManagerDriver("")
		if err != nil {
			// The default driver failed too (no descriptors left): the
			// portable driver cannot fail to start.
			m, _ = NewManagerDriver("portable")
		}
	}
	return m
}

// NewManagerDriver returns a Manager on the named driver: "epoll" (Linux),
// "portable" (any platform) or "" for the platform's default.
func NewManagerDriver(name string) (*Manager, error) {
	drv, err := driver.New(name)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		drv:     drv,
		byID:    make(map[uint64]*Conn),
		epoch:   time.Now(),
		scratch: make([]byte, 64<<10),
	}
	m.ready = m.onReady
	return m, nil
}

// DriverName is the name of the Manager's driver: "epoll" or "portable".
func (m *Manager) DriverName() string { return m.drv.Name() }

// Conns iterates over the live connections, newest first. Closing a
// connection inside the loop is allowed.
func (m *Manager) Conns() iter.Seq[*Conn] {
	return func(yield func(*Conn) bool) {
		for c := m.head; c != nil; c = c.next {
			if c.flags&fClosed == 0 && !yield(c) {
				return
			}
		}
	}
}

// Poll runs one iteration of the event loop, in this order:
//
//  1. wait for I/O readiness, at most timeout, less if a timer or a
//     connection deadline is due sooner, not at all if work is pending;
//     Wakeup ends the wait early;
//  2. deliver Wakeup data and finished resolutions and TLS handshakes;
//  3. for each connection the driver reported ready or that has work
//     (queued output, a pending error, a paused read that can resume):
//     accept, finish connects, read (EvRead), write (EvWrite);
//  4. run the timers that are due;
//  5. send EvPoll to every connection;
//  6. enforce timeouts, finish drains, and close every connection marked
//     closing, with EvClose as its last event.
//
// Poll must not be called from a handler; such a call returns at once.
func (m *Manager) Poll(timeout time.Duration) {
	if m.closed || m.polling {
		return
	}
	m.polling = true
	defer func() { m.polling = false }()

	m.now = m.clock()
	wait := max(timeout, 0)
	if m.busy || m.hasPosts() || m.activeHasWork() {
		wait = 0
	}
	if t := m.nextTimer(); !t.IsZero() {
		wait = min(wait, max(time.Until(t), 0))
	}
	if m.nextDeadline != 0 {
		wait = min(wait, max(time.Duration(m.nextDeadline-m.now), 0))
	}
	if err := m.drv.Wait(wait, m.ready); err != nil {
		m.log().Error("meerkat: wait failed", "err", err)
	}
	m.now = m.clock()

	m.runPosts()
	// Only connections with something to do are serviced: those the driver
	// reported, those a handler touched, and those still busy from before.
	for i := 0; i < len(m.active); i++ {
		m.service(m.active[i])
	}
	m.runTimers(time.Now())
	for c := m.head; c != nil; c = c.next {
		if c.flags&(fClosing|fClosed) == 0 {
			m.dispatch(c, EvPoll, nil)
		}
	}
	m.finishIteration()

	if m.closeRequested {
		m.polling = false
		m.Close()
	}
}

// activeHasWork catches work made possible between Polls without a call
// that marks it, such as a handler consuming a full receive buffer.
func (m *Manager) activeHasWork() bool {
	for _, c := range m.active {
		if c.flags&fClosed == 0 && m.hasWork(c) {
			return true
		}
	}
	return false
}

func (m *Manager) clock() int64 { return int64(time.Since(m.epoch)) }

func (m *Manager) onReady(tok any, r driver.Readiness) {
	c := tok.(*Conn)
	m.markActive(c)
	if r&driver.Readable != 0 {
		c.flags |= fReadable
	}
	if r&driver.Writable != 0 {
		c.flags |= fWritable
	}
	if r&driver.Failed != 0 {
		c.flags |= fSockFailed
	}
	if r&driver.Hangup != 0 {
		c.flags |= fHangup
	}
}

// Close closes every connection (each gets EvClose), stops the timers and
// releases the driver. Later calls do nothing. Called from a handler, it
// takes effect at the end of the current Poll.
func (m *Manager) Close() {
	if m.closed {
		return
	}
	if m.polling {
		m.closeRequested = true
		return
	}
	m.mu.Lock()
	m.shut = true
	m.mu.Unlock()
	// From here Listen and Connect fail, so an EvClose handler that
	// reconnects cannot add a connection behind this loop.
	m.closed = true
	for c := m.head; c != nil; {
		next := c.next
		m.finishClose(c)
		c = next
	}
	for _, t := range m.timers {
		t.index = -1
		t.fn = nil
	}
	m.timers = nil
	m.active = nil
	for _, cr := range m.serveRoots {
		cr.root.Close()
	}
	m.serveRoots = nil
	m.mu.Lock()
	m.posts = nil
	m.mu.Unlock()
	m.drv.Close()
}

// Run calls Poll until ctx is done (or the Manager is closed), then shuts
// down gracefully within ShutdownTimeout.
func (m *Manager) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, m.wake)
	defer stop()
	for ctx.Err() == nil && !m.closed {
		m.Poll(time.Second)
	}
	if m.closed {
		return ErrClosed
	}
	sctx, cancel := context.WithTimeout(context.Background(), orDefault(m.ShutdownTimeout, DefaultShutdownTimeout))
	defer cancel()
	return m.Shutdown(sctx)
}

// Shutdown stops accepting, lets every connection finish what it is doing —
// queued output is sent, protocols say goodbye (HTTP responses complete,
// WebSocket close frames and MQTT DISCONNECTs are exchanged) — and then
// closes the Manager. If ctx ends first, the remaining connections are closed
// at once and ctx's error is returned. Call it from the Poll goroutine, not
// from a handler.
func (m *Manager) Shutdown(ctx context.Context) error {
	if m.closed {
		return ErrClosed
	}
	if m.polling {
		return errors.New("meerkat: Shutdown called from a handler")
	}
	m.shuttingDown = true // what opens now would never be drained
	for c := m.head; c != nil; c = c.next {
		switch {
		case c.flags&fListening != 0:
			c.Close()
		case c.onShutdown != nil:
			c.onShutdown(c)
		default:
			c.Drain()
		}
	}
	stop := context.AfterFunc(ctx, m.wake)
	defer stop()
	var err error
	for m.head != nil {
		if err = ctx.Err(); err != nil {
			break
		}
		m.Poll(100 * time.Millisecond)
	}
	m.Close()
	return err
}

// Wakeup delivers EvWakeup with a copy of data to connection connID, on the
// Poll goroutine. It is safe from any goroutine, and messages from one
// goroutine arrive in the order sent. It returns false if the Manager is
// closed or too many wakeups are queued; a wakeup for a connection that is
// gone by the time Poll sees it is dropped.
func (m *Manager) Wakeup(connID uint64, data []byte) bool {
	d := append([]byte(nil), data...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shut || m.queued >= maxQueuedWakeups {
		return false
	}
	m.queued++
	m.posts = append(m.posts, post{id: connID, data: d})
	m.drv.Wake()
	return true
}

// postFn queues fn to run on the Poll goroutine; it reports false when the
// Manager is closed.
func (m *Manager) postFn(fn func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shut {
		return false
	}
	m.posts = append(m.posts, post{fn: fn})
	m.drv.Wake()
	return true
}

// postMark asks the Poll goroutine to service c; TLS handshake goroutines
// use it when they queue output or take input.
func (m *Manager) postMark(c *Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.shut {
		m.posts = append(m.posts, post{mark: c})
		m.drv.Wake()
	}
}

// markActive puts c on the list of connections Poll looks at.
func (m *Manager) markActive(c *Conn) {
	if c.flags&(fActive|fClosed) == 0 {
		c.flags |= fActive
		m.active = append(m.active, c)
	}
	m.busy = true // between Polls: the next Wait must not sleep; Poll recomputes it
}

// wake ends a Wait early.
func (m *Manager) wake() {
	m.mu.Lock()
	if !m.shut {
		m.drv.Wake()
	}
	m.mu.Unlock()
}

func (m *Manager) hasPosts() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.posts) > 0
}

func (m *Manager) runPosts() {
	m.mu.Lock()
	batch := m.posts
	m.posts = m.spare[:0]
	m.queued = 0
	m.mu.Unlock()
	for i := range batch {
		p := &batch[i]
		if p.mark != nil {
			m.markActive(p.mark)
		} else if p.fn != nil {
			p.fn()
		} else if c := m.byID[p.id]; c != nil && c.flags&(fClosing|fClosed) == 0 {
			m.dispatch(c, EvWakeup, p.data)
		}
		*p = post{}
	}
	m.mu.Lock()
	m.spare = batch[:0]
	m.mu.Unlock()
}

func (m *Manager) log() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.Default()
}

func (m *Manager) recvLimit() int { return orDefault(m.RecvLimit, DefaultRecvLimit) }
func (m *Manager) sendLimit() int { return orDefault(m.SendLimit, DefaultSendLimit) }

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// timeoutNanos turns a timeout setting into nanoseconds; 0 means none.
func timeoutNanos(v, def time.Duration) int64 {
	v = orDefault(v, def)
	if v < 0 {
		return 0
	}
	return int64(v)
}
