package meerkat

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/meerkat-net/meerkat/internal/driver"
)

// Listen opens a listener: "tcp://host:port" accepts connections, each of
// which gets fn and its own events (EvOpen, EvAccept, ...); "udp://host:port"
// receives datagrams, each delivered as EvRead on the listener with
// RemoteAddr set to its sender. https://, wss:// and mqtts:// listeners start
// TLS on each accepted connection unless the handler calls TLSInit in
// EvAccept. An empty host listens on every interface (IPv6 and IPv4), port 0
// on a free port (see LocalAddr). A malformed URL, an address in use or a
// closed Manager is an error, and no connection is created.
func (m *Manager) Listen(url string, fn Handler) (*Conn, error) {
	return m.listen(url, fn, nil)
}

func (m *Manager) listen(url string, fn, proto Handler) (*Conn, error) {
	if m.closed || m.shuttingDown {
		return nil, ErrClosed
	}
	ep, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	addrs, err := m.listenAddrs(ep)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", url, err)
	}
	var sock driver.Socket
	var lerr error
	for _, a := range addrs {
		s, err := m.drv.Listen(ep.network(), a)
		if err == nil {
			sock = s
			break
		}
		if lerr == nil {
			lerr = err
		}
	}
	if sock == nil {
		return nil, fmt.Errorf("listen %s: %w", url, lerr)
	}
	flags := fListening
	if ep.udp {
		flags |= fUDP
	}
	if ep.tls {
		flags |= fAutoTLS
	}
	c := m.newConn(sock, flags, fn, proto)
	if err := sock.Start(c); err != nil {
		sock.Close()
		m.unlink(c)
		return nil, fmt.Errorf("listen %s: %w", url, err)
	}
	c.local = sock.LocalAddr()
	m.dispatch(c, EvOpen, nil)
	return c, nil
}

// listenAddrs are the addresses to try, in order, for a listener's host.
func (m *Manager) listenAddrs(ep *endpoint) ([]netip.AddrPort, error) {
	switch {
	case ep.addr.IsValid():
		return []netip.AddrPort{netip.AddrPortFrom(ep.addr, ep.port)}, nil
	case ep.host == "":
		// Dual-stack where IPv6 exists, IPv4 otherwise.
		return []netip.AddrPort{
			netip.AddrPortFrom(netip.IPv6Unspecified(), ep.port),
			netip.AddrPortFrom(netip.IPv4Unspecified(), ep.port),
		}, nil
	}
	// A listener's name is local (such as "localhost"): resolving it here,
	// briefly, lets Listen report an address in use at once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := m.resolver().LookupNetIP(ctx, "ip", ep.host)
	if err != nil {
		return nil, err
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range preferIPv4(ips) {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), ep.port))
	}
	return out, nil
}

// preferIPv4 orders addresses IPv4 first, keeping the resolver's order
// otherwise: loopback services most often listen on 127.0.0.1.
func preferIPv4(ips []netip.Addr) []netip.Addr {
	ips = slices.Clone(ips)
	slices.SortStableFunc(ips, func(a, b netip.Addr) int {
		a4, b4 := a.Unmap().Is4(), b.Unmap().Is4()
		switch {
		case a4 && !b4:
			return -1
		case b4 && !a4:
			return 1
		}
		return 0
	})
	return ips
}

func (m *Manager) resolver() *net.Resolver {
	if m.Resolver != nil {
		return m.Resolver
	}
	return net.DefaultResolver
}
