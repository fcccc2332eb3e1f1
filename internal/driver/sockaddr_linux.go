//go:build linux

package driver

import (
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// toSockaddr converts an address for bind, connect and sendto. IPv4 addresses
// go to an AF_INET socket, all others (including IPv4-mapped ones) to AF_INET6.
func toSockaddr(ap netip.AddrPort) (unix.Sockaddr, int) {
	a := ap.Addr()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, unix.AF_INET
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if n, err := strconv.Atoi(z); err == nil {
			sa.ZoneId = uint32(n)
		} else if ifi, err := interfaceIndex(z); err == nil {
			sa.ZoneId = uint32(ifi)
		}
	}
	return sa, unix.AF_INET6
}

// fromSockaddr converts an address from accept, getsockname and recvfrom.
// IPv4-mapped IPv6 addresses (from dual-stack sockets) are reported as IPv4.
func fromSockaddr(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr).Unmap()
		if sa.ZoneId != 0 && a.Is6() {
			a = a.WithZone(strconv.Itoa(int(sa.ZoneId)))
		}
		return netip.AddrPortFrom(a, uint16(sa.Port))
	}
	return netip.AddrPort{}
}
