package meerkat

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/meerkat-net/meerkat/internal/driver"
)

// Connect starts an outgoing connection to "tcp://host:port" or
// "udp://host:port" (or any Meerkat URL scheme; https, wss and mqtts start TLS
// by themselves after EvConnect unless the handler calls TLSInit). It returns
// at once: fn then sees EvOpen, EvResolve when host is a name, and EvConnect —
// or EvError and EvClose if the name does not resolve, the peer refuses, or
// Manager.ConnectTimeout passes. A malformed URL or a closed Manager is an
// error, and no connection is created.
func (m *Manager) Connect(url string, fn Handler) (*Conn, error) {
	return m.connect(url, fn, nil)
}

func (m *Manager) connect(url string, fn, proto Handler) (*Conn, error) {
	if m.closed || m.shuttingDown {
		return nil, ErrClosed
	}
	ep, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	if ep.host == "" {
		return nil, fmt.Errorf("%w %q: missing host", ErrBadURL, url)
	}
	if ep.port == 0 {
		return nil, fmt.Errorf("%w %q: missing port", ErrBadURL, url)
	}
	flags := fClient
	if ep.udp {
		flags |= fUDP
	}
	if ep.tls {
		flags |= fAutoTLS
	}
	c := m.newConn(nil, flags, fn, proto)
	c.serverName = ep.host
	if t := timeoutNanos(m.ConnectTimeout, DefaultConnectTimeout); t > 0 {
		c.setDeadline(dlConnect, m.clock()+t)
	}
	m.dispatch(c, EvOpen, nil)
	if c.flags&fClosing != 0 {
		return c, nil
	}
	if ep.addr.IsValid() {
		c.addrs = []netip.AddrPort{netip.AddrPortFrom(ep.addr, ep.port)}
		m.dialNext(c, ep.network())
	} else {
		m.resolve(c, ep)
	}
	return c, nil
}

// dialNext starts connecting to the next address in c.addrs, trying further
// ones when a dial fails at once.
func (m *Manager) dialNext(c *Conn, network string) {
	var lastErr error
	for len(c.addrs) > 0 {
		a := c.addrs[0]
		c.addrs = c.addrs[1:]
		sock, err := m.drv.Dial(network, a)
		if err != nil {
			lastErr = fmt.Errorf("connect %v: %w", a, err)
			continue
		}
		if err := sock.Start(c); err != nil {
			sock.Close()
			lastErr = err
			continue
		}
		c.sock = sock
		c.remote = a
		c.local = netip.AddrPort{}
		c.flags |= fConnecting
		c.flags &^= fReadable | fWritable | fSockFailed
		if network == "udp" {
			c.flags |= fWritable // nothing to wait for
			m.markActive(c)
			m.busy = true
		}
		return
	}
	if lastErr == nil {
		lastErr = errors.New("no address to connect to")
	}
	m.failLater(c, lastErr)
}

// finishConnect runs when a connecting socket reports writable.
func (m *Manager) finishConnect(c *Conn) {
	err := c.sock.ConnectDone()
	if err == driver.ErrWouldBlock {
		c.flags &^= fWritable
		return
	}
	if err != nil {
		err = fmt.Errorf("connect %v: %w", c.remote, err)
		if len(c.addrs) > 0 {
			m.log().Debug("meerkat: trying next address", "conn", c.id, "err", err)
			c.sock.Close()
			c.sock = nil
			c.flags &^= fConnecting
			m.dialNext(c, c.network())
			return
		}
		m.fail(c, err)
		return
	}
	c.flags &^= fConnecting
	c.addrs = nil
	c.clearDeadline(dlConnect)
	c.local = c.sock.LocalAddr()
	c.lastIO = m.now
	m.dispatch(c, EvConnect, nil)
	if c.flags&(fAutoTLS|fTLS|fClosing) == fAutoTLS {
		if err := c.TLSInit(nil); err != nil {
			m.fail(c, err)
		}
	}
}

func (c *Conn) network() string {
	if c.flags&fUDP != 0 {
		return "udp"
	}
	return "tcp"
}

// resolveJob is a name lookup running on its own goroutine.
type resolveJob struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// resolve looks ep.host up on a goroutine; the result comes back through
// the post queue. Closing the connection cancels the lookup and waits for
// the goroutine, so nothing outlives the connection.
func (m *Manager) resolve(c *Conn, ep *endpoint) {
	ctx, cancel := context.WithCancel(context.Background())
	job := &resolveJob{done: make(chan struct{})}
	job.cancel = func() {
		cancel()
		<-job.done
	}
	c.resolving = job
	c.flags |= fResolving
	r := m.resolver()
	host, port, network := ep.host, ep.port, ep.network()
	go func() {
		defer close(job.done)
		ips, err := r.LookupNetIP(ctx, "ip", host)
		m.postFn(func() { m.resolved(c, job, ips, err, port, network) })
	}()
}

func (m *Manager) resolved(c *Conn, job *resolveJob, ips []netip.Addr, err error, port uint16, network string) {
	if c.resolving != job || c.flags&(fClosing|fClosed) != 0 {
		return
	}
	<-job.done
	c.resolving = nil
	c.flags &^= fResolving
	if err == nil && len(ips) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		m.fail(c, fmt.Errorf("resolve %s: %w", c.serverName, err))
		return
	}
	for _, ip := range preferIPv4(ips) {
		c.addrs = append(c.addrs, netip.AddrPortFrom(ip.Unmap(), port))
	}
	m.dispatch(c, EvResolve, c.addrs[0])
	if c.flags&fClosing != 0 {
		return
	}
	m.dialNext(c, network)
	if c.pendingErr != nil {
		err, c.pendingErr = c.pendingErr, nil
		m.fail(c, err)
	}
}

func (c *Conn) setDeadline(kind deadlineKind, at int64) {
	c.deadline, c.deadlineKind = at, kind
	c.m.deadlineAt(at)
}

// deadlineAt makes sure Poll looks at the deadlines by at.
func (m *Manager) deadlineAt(at int64) {
	if m.nextDeadline == 0 || at < m.nextDeadline {
		m.nextDeadline = at
	}
}

func (c *Conn) clearDeadline(kind deadlineKind) {
	if c.deadlineKind == kind {
		c.deadline, c.deadlineKind = 0, dlNone
	}
}
