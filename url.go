package meerkat

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// endpoint is a parsed connection URL such as "https://example.com:8443/x".
type endpoint struct {
	scheme  string
	host    string // a name, or an IP literal without brackets
	port    uint16
	addr    netip.Addr // valid when host is an IP literal
	path    string     // "/" when empty, with the query, for protocols that use it
	user    string
	pass    string
	hasPass bool
	udp     bool
	tls     bool
}

var defaultPorts = map[string]uint16{
	"tcp": 0, "udp": 0,
	"http": 80, "https": 443,
	"ws": 80, "wss": 443,
	"mqtt": 1883, "mqtts": 8883,
}

// ErrBadURL is wrapped by every error about a malformed URL.
var ErrBadURL = errors.New("bad URL")

// parseURL splits a Meerkat URL: a known scheme, a host (IPv4, [IPv6] or a
// name), an optional port (the scheme's default otherwise), and for the
// protocols that need them a path and credentials.
func parseURL(raw string) (*endpoint, error) {
	bad := func(why string) (*endpoint, error) {
		return nil, fmt.Errorf("%w %q: %s", ErrBadURL, raw, why)
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return bad("missing scheme (such as tcp://)")
	}
	scheme = strings.ToLower(scheme)
	defPort, known := defaultPorts[scheme]
	if !known {
		return bad("unknown scheme " + strconv.Quote(scheme))
	}
	ep := &endpoint{scheme: scheme, path: "/", udp: scheme == "udp"}
	ep.tls = scheme == "https" || scheme == "wss" || scheme == "mqtts"
	hostport := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		hostport = rest[:i]
		p := rest[i:]
		if strings.HasPrefix(p, "#") {
			p = ""
		}
		if j := strings.IndexByte(p, '#'); j >= 0 {
			p = p[:j]
		}
		if strings.HasPrefix(p, "?") {
			p = "/" + p
		}
		if p != "" {
			ep.path = p
		}
	}
	if strings.ContainsAny(ep.path, " \t\r\n\x00") {
		return bad("path contains spaces or control characters")
	}
	if at := strings.LastIndexByte(hostport, '@'); at >= 0 {
		info := hostport[:at]
		hostport = hostport[at+1:]
		u, p, hasPass := strings.Cut(info, ":")
		var err error
		if ep.user, err = url.PathUnescape(u); err != nil {
			return bad("bad escape in user name")
		}
		if ep.pass, err = url.PathUnescape(p); err != nil {
			return bad("bad escape in password")
		}
		ep.hasPass = hasPass
	}
	host, portStr := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return bad("missing ] after IPv6 address")
		}
		host = hostport[1:end]
		after := hostport[end+1:]
		switch {
		case after == "":
		case strings.HasPrefix(after, ":"):
			portStr = after[1:]
			if portStr == "" {
				return bad("empty port")
			}
		default:
			return bad("unexpected text after ]")
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return bad("bad IPv6 address in brackets")
		}
		ep.addr = a
	} else {
		if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
			host, portStr = hostport[:i], hostport[i+1:]
			if strings.Contains(host, ":") {
				return bad("IPv6 addresses must be in brackets, as [::1]:8000")
			}
			if portStr == "" {
				return bad("empty port")
			}
		}
		if a, err := netip.ParseAddr(host); err == nil {
			if !a.Is4() {
				return bad("bad address")
			}
			ep.addr = a
		} else if host != "" && !validHostName(host) {
			return bad("bad host name " + strconv.Quote(host))
		}
	}
	ep.host = host
	ep.port = defPort
	if portStr != "" {
		n, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || portStr[0] == '+' {
			return bad("bad port " + strconv.Quote(portStr))
		}
		ep.port = uint16(n)
	}
	return ep, nil
}

// validHostName accepts DNS names: letters, digits, '-', '_' and dots, in
// labels of at most 63 bytes, 253 in all.
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// network is "udp" or "tcp".
func (ep *endpoint) network() string {
	if ep.udp {
		return "udp"
	}
	return "tcp"
}

// hostPort formats host and port for messages and Host headers.
func (ep *endpoint) hostPort() string {
	return netipJoin(ep.host, ep.port)
}

func netipJoin(host string, port uint16) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(int(port))
	}
	return host + ":" + strconv.Itoa(int(port))
}
