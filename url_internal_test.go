package meerkat

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// urlCase is one parseURL input and what it must give: the fields, or an
// error containing err.
type urlCase struct {
	in      string
	scheme  string
	host    string
	port    uint16
	addr    string // the IP literal, "" for names
	path    string // "" means "/"
	user    string
	pass    string
	hasPass bool
	err     string
}

var urlCases = []urlCase{
	// Schemes and their default ports.
	{in: "tcp://127.0.0.1:8000", scheme: "tcp", host: "127.0.0.1", port: 8000, addr: "127.0.0.1"},
	{in: "tcp://example.com", scheme: "tcp", host: "example.com", port: 0},
	{in: "udp://10.0.0.1:53", scheme: "udp", host: "10.0.0.1", port: 53, addr: "10.0.0.1"},
	{in: "http://example.com", scheme: "http", host: "example.com", port: 80},
	{in: "https://example.com", scheme: "https", host: "example.com", port: 443},
	{in: "ws://example.com", scheme: "ws", host: "example.com", port: 80},
	{in: "wss://example.com", scheme: "wss", host: "example.com", port: 443},
	{in: "mqtt://broker", scheme: "mqtt", host: "broker", port: 1883},
	{in: "mqtts://broker", scheme: "mqtts", host: "broker", port: 8883},
	{in: "HTTPS://Example.COM:8443", scheme: "https", host: "Example.COM", port: 8443},
	{in: "http://example.com:0", scheme: "http", host: "example.com", port: 0},
	{in: "tcp://h:65535", scheme: "tcp", host: "h", port: 65535},
	{in: "tcp://h:0080", scheme: "tcp", host: "h", port: 80},

	// Addresses.
	{in: "tcp://0.0.0.0:1", scheme: "tcp", host: "0.0.0.0", port: 1, addr: "0.0.0.0"},
	{in: "tcp://[::1]:8000", scheme: "tcp", host: "::1", port: 8000, addr: "::1"},
	{in: "http://[2001:db8::1]", scheme: "http", host: "2001:db8::1", port: 80, addr: "2001:db8::1"},
	{in: "tcp://[::]:1", scheme: "tcp", host: "::", port: 1, addr: "::"},
	{in: "tcp://[fe80::1%eth0]:1", scheme: "tcp", host: "fe80::1%eth0", port: 1, addr: "fe80::1%eth0"},
	{in: "tcp://:8000", scheme: "tcp", host: "", port: 8000},
	{in: "tcp://my_host-1.example.:1", scheme: "tcp", host: "my_host-1.example.", port: 1},
	{in: "tcp://localhost:1", scheme: "tcp", host: "localhost", port: 1},

	// Credentials, path and query.
	{in: "mqtt://user:secret@broker:1884", scheme: "mqtt", host: "broker", port: 1884, user: "user", pass: "secret", hasPass: true},
	{in: "mqtt://user@broker", scheme: "mqtt", host: "broker", port: 1883, user: "user"},
	{in: "mqtt://user:@broker", scheme: "mqtt", host: "broker", port: 1883, user: "user", hasPass: true},
	{in: "mqtt://us%40er:p%3Aa%2Fss@broker", scheme: "mqtt", host: "broker", port: 1883, user: "us@er", pass: "p:a/ss", hasPass: true},
	{in: "mqtt://a@b:c@broker", scheme: "mqtt", host: "broker", port: 1883, user: "a@b", pass: "c", hasPass: true},
	{in: "http://h/index.html", scheme: "http", host: "h", port: 80, path: "/index.html"},
	{in: "http://h:81/a/b?x=1&y=2", scheme: "http", host: "h", port: 81, path: "/a/b?x=1&y=2"},
	{in: "http://h?x=1", scheme: "http", host: "h", port: 80, path: "/?x=1"},
	{in: "http://h/p#frag", scheme: "http", host: "h", port: 80, path: "/p"},
	{in: "http://h#frag", scheme: "http", host: "h", port: 80, path: "/"},
	{in: "ws://[::1]:9000/chat?room=1", scheme: "ws", host: "::1", port: 9000, addr: "::1", path: "/chat?room=1"},
	{in: "http://h/a@b", scheme: "http", host: "h", port: 80, path: "/a@b"},

	// Errors.
	{in: "", err: "missing scheme"},
	{in: "127.0.0.1:80", err: "missing scheme"},
	{in: "tcp:/127.0.0.1:80", err: "missing scheme"},
	{in: "gopher://h:70", err: "unknown scheme"},
	{in: "://h:1", err: "unknown scheme"},
	{in: "tcp://h:+1", err: "bad port"},
	{in: "tcp://h:65536", err: "bad port"},
	{in: "tcp://h:x", err: "bad port"},
	{in: "tcp://h:-1", err: "bad port"},
	{in: "tcp://h:1x", err: "bad port"},
	{in: "tcp://h: 1", err: "bad port"},
	{in: "tcp://h:", err: "empty port"},
	{in: "tcp://[::1]:", err: "empty port"},
	{in: "tcp://[::1]:+1", err: "bad port"},
	{in: "tcp://[::1:80", err: "missing ]"},
	{in: "tcp://[::1]80", err: "unexpected text after ]"},
	{in: "tcp://[127.0.0.1]:80", err: "bad IPv6"},
	{in: "tcp://[nonsense]:80", err: "bad IPv6"},
	{in: "tcp://::1:80", err: "brackets"},
	{in: "tcp://2001:db8::1", err: "brackets"},
	{in: "tcp://bad host:1", err: "bad host name"},
	{in: "tcp://-bad.example:1", err: "bad host name"},
	{in: "tcp://a..b:1", err: "bad host name"},
	{in: "tcp://" + strings.Repeat("a", 64) + ":1", err: "bad host name"},
	{in: "http://h/a b", err: "path"},
	{in: "http://h/a\x00b", err: "path"},
	{in: "mqtt://%zz@broker", err: "user name"},
	{in: "mqtt://u:%zz@broker", err: "password"},
}

// TestParseURL: every scheme, its default port, IPv4, [IPv6]:port, names,
// credentials, path and query parse into the right fields, and every kind
// of malformed URL is an ErrBadURL that says what is wrong.
func TestParseURL(t *testing.T) {
	for _, tc := range urlCases {
		ep, err := parseURL(tc.in)
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseURL(%q) = %+v, %v; want an ErrBadURL about %q", tc.in, ep, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseURL(%q): %v", tc.in, err)
			continue
		}
		path := tc.path
		if path == "" {
			path = "/"
		}
		addr := ""
		if ep.addr.IsValid() {
			addr = ep.addr.String()
		}
		if ep.scheme != tc.scheme || ep.host != tc.host || ep.port != tc.port || addr != tc.addr ||
			ep.path != path || ep.user != tc.user || ep.pass != tc.pass || ep.hasPass != tc.hasPass {
			t.Errorf("parseURL(%q) = scheme %q host %q port %d addr %q path %q user %q pass %q hasPass %v\n"+
				"                 want scheme %q host %q port %d addr %q path %q user %q pass %q hasPass %v",
				tc.in, ep.scheme, ep.host, ep.port, addr, ep.path, ep.user, ep.pass, ep.hasPass,
				tc.scheme, tc.host, tc.port, tc.addr, path, tc.user, tc.pass, tc.hasPass)
		}
		wantTLS := tc.scheme == "https" || tc.scheme == "wss" || tc.scheme == "mqtts"
		if ep.tls != wantTLS || ep.udp != (tc.scheme == "udp") {
			t.Errorf("parseURL(%q): tls %v udp %v", tc.in, ep.tls, ep.udp)
		}
		if ep.udp && ep.network() != "udp" || !ep.udp && ep.network() != "tcp" {
			t.Errorf("parseURL(%q): network %q", tc.in, ep.network())
		}
	}
}

// TestEndpointHostPort: hostPort brackets IPv6 literals only.
func TestEndpointHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"http://example.com":    "example.com:80",
		"tcp://127.0.0.1:8000":  "127.0.0.1:8000",
		"wss://[::1]":           "[::1]:443",
		"tcp://[2001:db8::1]:1": "[2001:db8::1]:1",
	} {
		ep, err := parseURL(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := ep.hostPort(); got != want {
			t.Errorf("hostPort of %q = %q, want %q", in, got, want)
		}
	}
}

// urlEscape percent-encodes every byte but the unreserved ones.
func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)>>4, 16)+strconv.FormatUint(uint64(c)&15, 16)))
		}
	}
	return b.String()
}

// urlFormat writes ep back as a URL, with every part explicit.
func urlFormat(ep *endpoint) string {
	var b strings.Builder
	b.WriteString(ep.scheme + "://")
	if ep.user != "" || ep.hasPass {
		b.WriteString(urlEscape(ep.user))
		if ep.hasPass {
			b.WriteString(":" + urlEscape(ep.pass))
		}
		b.WriteByte('@')
	}
	if ep.addr.IsValid() && ep.addr.Is6() {
		b.WriteString("[" + ep.host + "]")
	} else {
		b.WriteString(ep.host)
	}
	b.WriteString(":" + strconv.Itoa(int(ep.port)))
	b.WriteString(ep.path)
	return b.String()
}

// FuzzParseURL: parseURL never panics; what it rejects is an ErrBadURL;
// what it accepts is consistent (a known scheme, TLS and UDP flags that
// follow it, an IP literal that matches the host, a path starting with
// "/"), and written back out it parses to the same endpoint.
func FuzzParseURL(f *testing.F) {
	for _, tc := range urlCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ep, err := parseURL(in)
		if err != nil {
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("parseURL(%q): error %v is not an ErrBadURL", in, err)
			}
			if ep != nil {
				t.Fatalf("parseURL(%q): endpoint with an error", in)
			}
			return
		}
		if _, ok := defaultPorts[ep.scheme]; !ok {
			t.Fatalf("parseURL(%q): unknown scheme %q accepted", in, ep.scheme)
		}
		if ep.tls != (ep.scheme == "https" || ep.scheme == "wss" || ep.scheme == "mqtts") || ep.udp != (ep.scheme == "udp") {
			t.Fatalf("parseURL(%q): scheme %q with tls %v udp %v", in, ep.scheme, ep.tls, ep.udp)
		}
		if ep.addr.IsValid() {
			if a, err := netip.ParseAddr(ep.host); err != nil || a != ep.addr {
				t.Fatalf("parseURL(%q): addr %v does not match host %q", in, ep.addr, ep.host)
			}
		} else if ep.host != "" && !validHostName(ep.host) {
			t.Fatalf("parseURL(%q): invalid host name %q accepted", in, ep.host)
		}
		if !strings.HasPrefix(ep.path, "/") || strings.ContainsAny(ep.path, "# \t\r\n\x00") {
			t.Fatalf("parseURL(%q): path %q", in, ep.path)
		}
		out := urlFormat(ep)
		ep2, err := parseURL(out)
		if err != nil {
			t.Fatalf("parseURL(%q) = %+v, written as %q, which does not parse: %v", in, ep, out, err)
		}
		if *ep2 != *ep {
			t.Fatalf("parseURL(%q) = %+v, written as %q, parses to %+v", in, ep, out, ep2)
		}
	})
}
