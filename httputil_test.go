package meerkat_test

// The HTTP helpers (httputil.go): query and form variables, URL coding,
// cookies, credentials, multipart iteration, uploads, redirects and the
// route matcher. Pure helpers are tested by tables; HTTPUpload,
// HTTPRedirect and HTTPBasicAuth also through a live server on every driver.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/meerkat-net/meerkat"
)

// ---------------------------------------------------------------------------
// Variables and URL coding

// TestHTTPVar: a variable is found by its decoded name (case-sensitive, the
// first of duplicates), its value is URL-decoded into a new slice, and a
// missing variable, an empty name or a malformed escape is ok == false.
func TestHTTPVar(t *testing.T) {
	long := strings.Repeat("x=1&", 100_000) + "needle=found"
	cases := []struct {
		buf, name string
		want      string
		ok        bool
	}{
		{"a=1&b=2", "a", "1", true},
		{"a=1&b=2", "b", "2", true},
		{"a=1&b=2", "c", "", false},
		{"", "a", "", false},
		{"a=1", "", "", false},
		{"=1", "", "", false},
		{"a=1&a=2", "a", "1", true},       // duplicates: the first
		{"ab=1&a=2", "a", "2", true},      // not a prefix match
		{"xa=1&a=2", "a", "2", true},      // nor a suffix match
		{"a=1&ab=2", "ab", "2", true},     //
		{"A=1", "a", "", false},           // case-sensitive
		{"a=", "a", "", true},             // empty value
		{"flag&b=1", "flag", "", true},    // no '=': empty value
		{"&&a=1&", "a", "1", true},        // empty pairs
		{"a=1=2", "a", "1=2", true},       // '=' in the value
		{"a=x+y%20z", "a", "x y z", true}, // '+' and %20 are spaces
		{"a=%2B%26%3D", "a", "+&=", true}, // escaped separators
		{"a=%zz&b=1", "a", "", false},     // malformed escape
		{"a=%4", "a", "", false},          // truncated escape
		{"a=%", "a", "", false},           //
		{"a=%zz&b=1", "b", "1", true},     // another variable is fine
		{"%zz=1&a=2", "a", "2", true},     // a malformed name never matches
		{"my%20key=v", "my key", "v", true},
		{"my+key=v", "my key", "v", true},
		{"my%2", "my%2", "", false},
		{"k%3Dx=v", "k=x", "v", true},
		{"u=%E2%9C%93", "u", "✓", true}, // UTF-8 escapes
		{"u=✓&✓=2", "✓", "2", true},     // raw UTF-8
		{"n=%00", "n", "\x00", true},    // NUL decodes (callers check)
		{"a=1;b=2", "b", "", false},     // ';' is no separator
		{"a=1;b=2", "a", "1;b=2", true}, //
		{long, "needle", "found", true}, // very long input
		{long, "x", "1", true},          //
		{long + "&y=%", "y", "", false}, //
		{"v=" + strings.Repeat("%41", 1<<16), "v", strings.Repeat("A", 1<<16), true},
	}
	for _, tc := range cases {
		buf := []byte(tc.buf)
		got, ok := meerkat.HTTPVar(buf, tc.name)
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("HTTPVar(%.40q, %q) = %q, %v; want %q, %v", tc.buf, tc.name, got, ok, tc.want, tc.ok)
			continue
		}
		if ok && got == nil {
			t.Errorf("HTTPVar(%.40q, %q): found but nil", tc.buf, tc.name)
		}
		if ok && len(got) > 0 {
			// A new slice: changing the input does not change it.
			clear(buf)
			if string(got) != tc.want {
				t.Errorf("HTTPVar(%.40q, %q) returned a view of its input", tc.buf, tc.name)
			}
		}
	}
}

// TestHTTPURLDecode: %-escapes (either case of hex) and, in form mode, '+'
// decode; every malformed escape is an error wrapping ErrURLEscape that
// names the bytes and their offset.
func TestHTTPURLDecode(t *testing.T) {
	cases := []struct {
		in   string
		form bool
		want string
		err  string // part of the error, "" for none
	}{
		{"", false, "", ""},
		{"abc", false, "abc", ""},
		{"a+b", true, "a b", ""},
		{"a+b", false, "a+b", ""},
		{"%41%62", false, "Ab", ""},
		{"%e2%9c%93%E2%9C%93", false, "✓✓", ""},
		{"%2F%2e%2E", false, "/..", ""},
		{"%00", false, "\x00", ""},
		{"%ff%FF", false, "\xff\xff", ""},
		{"%25", false, "%", ""},
		{"%2541", false, "%41", ""}, // decoded once only
		{"ünïcode", true, "ünïcode", ""},
		{"%", false, "", `"%" at offset 0`},
		{"100%", false, "", `"%" at offset 3`},
		{"%4", false, "", `"%4" at offset 0`},
		{"ab%4g", true, "", `"%4g" at offset 2`},
		{"%%41", false, "", `"%%4" at offset 0`},
		{"%g1", false, "", `"%g1"`},
		{"%+1", true, "", `"%+1"`},
		{"%\x001", false, "", `offset 0`},
		{strings.Repeat("%41", 1<<18), false, strings.Repeat("A", 1<<18), ""},
		{strings.Repeat("a", 1<<18) + "%z", false, "", fmt.Sprintf("offset %d", 1<<18)},
	}
	for _, tc := range cases {
		got, err := meerkat.HTTPURLDecode([]byte(tc.in), tc.form)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("HTTPURLDecode(%.40q, %v): %v", tc.in, tc.form, err)
		case tc.err == "" && (string(got) != tc.want || got == nil):
			t.Errorf("HTTPURLDecode(%.40q, %v) = %.40q, want %.40q", tc.in, tc.form, got, tc.want)
		case tc.err != "" && (err == nil || !errors.Is(err, meerkat.ErrURLEscape) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("HTTPURLDecode(%.40q, %v) = %q, %v; want an ErrURLEscape naming %s", tc.in, tc.form, got, err, tc.err)
		case tc.err != "" && got != nil:
			t.Errorf("HTTPURLDecode(%.40q, %v) returned %q with its error", tc.in, tc.form, got)
		}
	}
}

// TestHTTPURLEncode: RFC 3986 unreserved bytes are kept, every other byte
// becomes an upper-case %XX, and HTTPURLDecode (form mode or not) undoes it
// for any bytes.
func TestHTTPURLEncode(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"AZaz09-._~", "AZaz09-._~"},
		{" ", "%20"},
		{"a+b", "a%2Bb"},
		{"a/b?c=d&e#f", "a%2Fb%3Fc%3Dd%26e%23f"},
		{"%", "%25"},
		{"✓", "%E2%9C%93"},
		{"\x00\x7f\x80\xff", "%00%7F%80%FF"},
		{"!*'();:@$,[]", "%21%2A%27%28%29%3B%3A%40%24%2C%5B%5D"},
	}
	for _, tc := range cases {
		if got := meerkat.HTTPURLEncode(tc.in); got != tc.want {
			t.Errorf("HTTPURLEncode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	random := make([]byte, 1<<16)
	rand.Read(random)
	for _, in := range [][]byte{all, random} {
		enc := meerkat.HTTPURLEncode(string(in))
		for _, form := range []bool{false, true} {
			dec, err := meerkat.HTTPURLDecode([]byte(enc), form)
			if err != nil || !bytes.Equal(dec, in) {
				t.Errorf("decode(encode(%d bytes), form %v) differs: %v", len(in), form, err)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { meerkat.HTTPURLEncode("already-fine_~.txt") }); n != 0 {
		t.Errorf("HTTPURLEncode of an unreserved string allocates %v times", n)
	}
}

// ---------------------------------------------------------------------------
// Cookies and credentials

// huMessage builds a request message with the given header lines ("Name:
// value") and query.
func huMessage(query string, headers ...string) *meerkat.HTTPMessage {
	hm := &meerkat.HTTPMessage{Method: []byte("GET"), URI: []byte("/"), Query: []byte(query)}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		hm.Headers = append(hm.Headers, meerkat.HTTPHeader{Name: []byte(name), Value: []byte(strings.TrimSpace(value))})
	}
	return hm
}

// TestHTTPCookie: a cookie is found by its exact name across every Cookie
// field, first one winning; quotes are removed; an empty value is an empty
// non-nil view and a missing cookie is nil; the value is a view of the
// header, found without allocating.
func TestHTTPCookie(t *testing.T) {
	longHeader := "Cookie: " + strings.Repeat("pad=xxxxxxxxxx; ", 10_000) + "id=last"
	cases := []struct {
		headers []string
		name    string
		want    string
		found   bool
	}{
		{[]string{"Cookie: a=1; b=2"}, "a", "1", true},
		{[]string{"Cookie: a=1; b=2"}, "b", "2", true},
		{[]string{"Cookie: a=1; b=2"}, "c", "", false},
		{[]string{"Cookie: a=1;b=2 ;  c = 3 "}, "c", "3", true},
		{[]string{"Cookie: a=1;b=2 ;  c = 3 "}, "b", "2", true},
		{[]string{`Cookie: s="hello world"`}, "s", "hello world", true},
		{[]string{`Cookie: s=""`}, "s", "", true},
		{[]string{`Cookie: s="`}, "s", `"`, true}, // a lone quote is kept
		{[]string{"Cookie: e=; f=1"}, "e", "", true},
		{[]string{"Cookie: a=1; a=2"}, "a", "1", true},
		{[]string{"Cookie: x=1", "Cookie: a=2"}, "a", "2", true},
		{[]string{"Cookie: a=first", "Cookie: a=second"}, "a", "first", true},
		{[]string{"cOOKIE: a=1"}, "a", "1", true},
		{[]string{"Cookie: xa=1; ax=2; a=3"}, "a", "3", true},
		{[]string{"Cookie: flag; a=1"}, "a", "1", true},
		{[]string{"Cookie: flag; a=1"}, "flag", "", false},
		{[]string{"Cookie: A=1"}, "a", "", false},
		{[]string{"Cookie: t=a=b"}, "t", "a=b", true},
		{[]string{"Cookie: u=✓"}, "u", "✓", true},
		{[]string{"Cookie: u=%E2%9C%93"}, "u", "%E2%9C%93", true}, // not decoded
		{[]string{"Set-Cookie: a=1", "Cookies: a=2"}, "a", "", false},
		{[]string{"Cookie: a=1"}, "", "", false},
		{[]string{"Cookie: =1"}, "", "", false},
		{[]string{"Cookie: ;;; ; a=1;;"}, "a", "1", true},
		{[]string{"Cookie:"}, "a", "", false},
		{nil, "a", "", false},
		{[]string{longHeader}, "id", "last", true},
	}
	for _, tc := range cases {
		hm := huMessage("", tc.headers...)
		got := meerkat.HTTPCookie(hm, tc.name)
		if string(got) != tc.want || (got != nil) != tc.found {
			t.Errorf("HTTPCookie(%.60q, %q) = %q (nil %v), want %q (found %v)", tc.headers, tc.name, got, got == nil, tc.want, tc.found)
		}
		if len(got) > 0 && !huWithin(got, hm.Headers[len(hm.Headers)-1].Value) && !huWithin(got, hm.Headers[0].Value) {
			t.Errorf("HTTPCookie(%.60q, %q) is not a view of the header", tc.headers, tc.name)
		}
	}
	if meerkat.HTTPCookie(nil, "a") != nil {
		t.Error("HTTPCookie(nil) is not nil")
	}
	hm := huMessage("", "Cookie: a=1; session=abc", "Cookie: z=2")
	if n := testing.AllocsPerRun(100, func() { meerkat.HTTPCookie(hm, "z") }); n != 0 {
		t.Errorf("HTTPCookie allocates %v times", n)
	}
}

// TestHTTPCreds: Basic credentials decode to user and password (split at
// the first colon), Bearer gives the token as password, and otherwise the
// access_token cookie, then the access_token query variable, is the
// password; anything malformed gives empty credentials.
func TestHTTPCreds(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	cases := []struct {
		name       string
		query      string
		headers    []string
		user, pass string
	}{
		{"basic", "", []string{"Authorization: Basic " + b64([]byte("alice:secret"))}, "alice", "secret"},
		{"basic, colon in password", "", []string{"Authorization: Basic " + b64([]byte("bob:pa:ss"))}, "bob", "pa:ss"},
		{"basic, empty user", "", []string{"Authorization: Basic " + b64([]byte(":pw"))}, "", "pw"},
		{"basic, empty password", "", []string{"Authorization: Basic " + b64([]byte("u:"))}, "u", ""},
		{"basic, unicode", "", []string{"Authorization: Basic " + b64([]byte("jöhn:✓"))}, "jöhn", "✓"},
		{"basic, scheme case", "", []string{"Authorization: bAsIc " + b64([]byte("a:b"))}, "a", "b"},
		{"basic, extra spaces", "", []string{"Authorization: Basic    " + b64([]byte("a:b")) + "  "}, "a", "b"},
		{"basic, RFC 7617 example", "", []string{"Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="}, "Aladdin", "open sesame"},
		{"basic, no colon", "", []string{"Authorization: Basic " + b64([]byte("nocolon"))}, "", ""},
		{"basic, bad base64", "", []string{"Authorization: Basic !!!notbase64"}, "", ""},
		{"basic, truncated base64", "", []string{"Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ="}, "", ""},
		{"basic, empty", "", []string{"Authorization: Basic "}, "", ""},
		{"basic beats cookie", "access_token=q", []string{"Authorization: Basic " + b64([]byte("a:b")), "Cookie: access_token=c"}, "a", "b"},
		{"bearer", "", []string{"Authorization: Bearer tok.en-123"}, "", "tok.en-123"},
		{"bearer, scheme case", "", []string{"Authorization: BEARER xyz"}, "", "xyz"},
		{"bearer beats cookie", "", []string{"Authorization: Bearer t1", "Cookie: access_token=t2"}, "", "t1"},
		{"cookie", "", []string{"Cookie: x=1; access_token=ck"}, "", "ck"},
		{"cookie beats query", "access_token=q", []string{"Cookie: access_token=ck"}, "", "ck"},
		{"other scheme, cookie", "", []string{"Authorization: Digest x", "Cookie: access_token=ck"}, "", "ck"},
		{"query", "a=1&access_token=q%20t", nil, "", "q t"},
		{"query, empty cookie", "access_token=q", []string{"Cookie: access_token="}, "", "q"},
		{"query, other cookies", "access_token=q", []string{"Cookie: other=1"}, "", "q"},
		{"query, malformed", "access_token=%zz", nil, "", ""},
		{"nothing", "", nil, "", ""},
		{"basic without a space", "", []string{"Authorization: Basic"}, "", ""},
	}
	for _, tc := range cases {
		user, pass := meerkat.HTTPCreds(huMessage(tc.query, tc.headers...))
		if user != tc.user || pass != tc.pass {
			t.Errorf("%s: HTTPCreds = %q, %q; want %q, %q", tc.name, user, pass, tc.user, tc.pass)
		}
	}
	if u, p := meerkat.HTTPCreds(nil); u != "" || p != "" {
		t.Errorf("HTTPCreds(nil) = %q, %q", u, p)
	}
}

// TestHTTPBasicAuth: the header line is exactly RFC 7617's form, ends in
// CRLF, keeps CR and LF of its input inside the base64 (no header
// injection), and HTTPCreds reads back what it wrote.
func TestHTTPBasicAuth(t *testing.T) {
	if got, want := meerkat.HTTPBasicAuth("Aladdin", "open sesame"), "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"; got != want {
		t.Errorf("HTTPBasicAuth = %q, want %q", got, want)
	}
	for _, c := range []struct{ user, pass string }{
		{"", ""}, {"u", ""}, {"", "p"}, {"jöhn", "pä:ss"}, {"evil\r\nX-Injected 1", "p\r\n\r\nX: y"},
		{strings.Repeat("u", 10_000), strings.Repeat("p", 10_000)},
	} {
		line := meerkat.HTTPBasicAuth(c.user, c.pass)
		if !strings.HasPrefix(line, "Authorization: Basic ") || !strings.HasSuffix(line, "\r\n") || strings.Count(line, "\n") != 1 {
			t.Errorf("HTTPBasicAuth(%.20q, %.20q) = %.60q: not one header line", c.user, c.pass, line)
			continue
		}
		user, pass := meerkat.HTTPCreds(huMessage("", strings.TrimSuffix(line, "\r\n")))
		if user != c.user || pass != c.pass {
			t.Errorf("HTTPCreds(HTTPBasicAuth(%.20q, %.20q)) = %.20q, %.20q", c.user, c.pass, user, pass)
		}
	}
	// A user name cannot hold ':': the reader splits at the first one.
	if user, pass := meerkat.HTTPCreds(huMessage("", strings.TrimSuffix(meerkat.HTTPBasicAuth("a:b", "c"), "\r\n"))); user != "a" || pass != "b:c" {
		t.Errorf("HTTPCreds(HTTPBasicAuth(\"a:b\", \"c\")) = %q, %q; want \"a\", \"b:c\"", user, pass)
	}
}

// TestHTTPBasicAuthClientToServer: a Meerkat client sends HTTPBasicAuth's
// header with HTTPSendRequest and a Meerkat server reads it back with
// HTTPCreds, on every driver.
func TestHTTPBasicAuthClientToServer(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		l, err := e.m.HTTPListen("http://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev == meerkat.EvHTTPMsg {
				user, pass := meerkat.HTTPCreds(data.(*meerkat.HTTPMessage))
				meerkat.HTTPReply(c, 200, "", "%s|%s", user, pass)
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		var got string
		done := false
		_, err = e.m.HTTPConnect("http://"+l.LocalAddr().String(), e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			switch ev {
			case meerkat.EvConnect:
				if !meerkat.HTTPSendRequest(c, "GET", "/", meerkat.HTTPBasicAuth("jöhn", "p:ss w"), nil) {
					t.Error("HTTPSendRequest refused")
				}
			case meerkat.EvHTTPMsg:
				got = string(data.(*meerkat.HTTPMessage).Body)
				done = true
				c.Drain()
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		e.pollUntil(10*time.Second, "the response", func() bool { return done })
		if got != "jöhn|p:ss w" {
			t.Fatalf("server read %q, want %q", got, "jöhn|p:ss w")
		}
	})
}

// ---------------------------------------------------------------------------
// Multipart

// huPart is an expected multipart part; nil fields must be nil.
type huPart struct {
	name, filename, contentType *string
	body                        string
}

func huS(s string) *string { return &s }

// huParts iterates body and returns its parts, checking that offsets
// increase and every field is a view of body.
func huParts(t *testing.T, body []byte) []meerkat.HTTPPart {
	t.Helper()
	var parts []meerkat.HTTPPart
	var p meerkat.HTTPPart
	prev := -1
	for ofs, n := meerkat.HTTPNextMultipart(body, 0, &p), 0; ofs > 0; ofs = meerkat.HTTPNextMultipart(body, ofs, &p) {
		if ofs <= prev || ofs >= len(body) {
			t.Fatalf("offset %d after %d (body of %d bytes)", ofs, prev, len(body))
		}
		if n++; n > len(body) {
			t.Fatal("more parts than bytes")
		}
		for _, f := range [][]byte{p.Name, p.Filename, p.ContentType, p.Body} {
			if f != nil && !huWithin(f, body) {
				t.Fatalf("part field %q is not a view of the body", f)
			}
		}
		prev = ofs
		parts = append(parts, p)
	}
	if p.Name != nil || p.Filename != nil || p.ContentType != nil || p.Body != nil {
		t.Errorf("part not cleared at the end: %+v", p)
	}
	return parts
}

func huCheckParts(t *testing.T, what string, got []meerkat.HTTPPart, want []huPart) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d parts, want %d", what, len(got), len(want))
	}
	eq := func(b []byte, s *string) bool {
		if s == nil {
			return b == nil
		}
		return b != nil && string(b) == *s
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if !eq(g.Name, w.name) || !eq(g.Filename, w.filename) || !eq(g.ContentType, w.contentType) || string(g.Body) != w.body || g.Body == nil {
			t.Errorf("%s: part %d = {Name %q Filename %q ContentType %q Body %.60q}, want %+v body %.60q",
				what, i, g.Name, g.Filename, g.ContentType, g.Body, w, w.body)
		}
	}
}

var huBinary = func() string {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}()

// huGoodMultipart is a body with fields and files, CRLF and boundary-like
// bytes inside bodies, an empty part, a part without headers, and
// transport padding after delimiters; huGoodParts are its parts.
var huGoodMultipart = "--XyZ  \r\n" +
	"Content-Disposition: form-data; name=\"field1\"\r\n" +
	"\r\n" +
	"value1\r\n" +
	"--XyZ\r\n" +
	"Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n" +
	"Content-Type: text/plain\r\n" +
	"\r\n" +
	"line1\r\nline2\r\n\r\n--notTheBoundary\r\n-XyZ\r\na--XyZ\r\n\r\n--XyZ\r\n" +
	"Content-Disposition: form-data; name=\"empty\"; filename=\"\"\r\n" +
	"Content-Type: application/octet-stream\r\n" +
	"\r\n" +
	"\r\n" +
	"--XyZ\t\r\n" +
	"\r\n" +
	"noheaders\r\n" +
	"--XyZ\r\n" +
	"Content-Disposition: form-data; name=\"q\\\"x;y\"; filename=\"dir\\\\f.bin\"\r\n" +
	"X-Other: ignored\r\n" +
	"\r\n" +
	huBinary + "\r\n" +
	"--XyZ\r\n" +
	"content-disposition: FORM-DATA; NAME=up; filename*=UTF-8''%E2%9C%93.txt; filename=plain.txt\r\n" +
	"CONTENT-TYPE:text/html\r\n" +
	"\r\n" +
	"ends in CRLF\r\n\r\n" +
	"--XyZ\r\n" +
	"Content-Disposition: form-data; name=\"ünï\"; filename=\"résumé.pdf\"\r\n" +
	"\r\n" +
	"ü\r\n" +
	"--XyZ--\r\n" +
	"epilogue, ignored\r\n--XyZ\r\n\r\nnot a part\r\n--XyZ--"

var huGoodParts = []huPart{
	{name: huS("field1"), body: "value1"},
	{name: huS("file"), filename: huS("a.txt"), contentType: huS("text/plain"), body: "line1\r\nline2\r\n\r\n--notTheBoundary\r\n-XyZ\r\na--XyZ\r\n"},
	{name: huS("empty"), filename: huS(""), contentType: huS("application/octet-stream"), body: ""},
	{body: "noheaders"},
	{name: huS(`q\"x;y`), filename: huS(`dir\\f.bin`), body: huBinary},
	{name: huS("up"), filename: huS("plain.txt"), contentType: huS("text/html"), body: "ends in CRLF\r\n"},
	{name: huS("ünï"), filename: huS("résumé.pdf"), body: "ü"},
}

// TestHTTPNextMultipart: every part of a body with fields, files, CRLF and
// near-boundaries in bodies, empty and header-less parts comes out exactly,
// as views, in order, and iteration stops at the close delimiter without
// reading the epilogue; iterating allocates nothing.
func TestHTTPNextMultipart(t *testing.T) {
	body := []byte(huGoodMultipart)
	huCheckParts(t, "good body", huParts(t, body), huGoodParts)

	// A nil part skips parts and still gives the offsets.
	n := 0
	for ofs := meerkat.HTTPNextMultipart(body, 0, nil); ofs > 0; ofs = meerkat.HTTPNextMultipart(body, ofs, nil) {
		n++
	}
	if n != len(huGoodParts) {
		t.Errorf("with a nil part: %d parts, want %d", n, len(huGoodParts))
	}

	// The longest boundary RFC 2046 allows.
	b70 := strings.Repeat("b", 70)
	body70 := "--" + b70 + "\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--" + b70 + "--"
	huCheckParts(t, "70-byte boundary", huParts(t, []byte(body70)), []huPart{{name: huS("a"), body: "x"}})

	// A large file part.
	big := bytes.Repeat([]byte("0123456789\r\n-"), 1<<16)
	bigBody := "--b\r\nContent-Disposition: form-data; name=f; filename=big\r\n\r\n" + string(big) + "\r\n--b--\r\n"
	huCheckParts(t, "large part", huParts(t, []byte(bigBody)), []huPart{{name: huS("f"), filename: huS("big"), body: string(big)}})

	var p meerkat.HTTPPart
	if a := testing.AllocsPerRun(20, func() {
		for ofs := meerkat.HTTPNextMultipart(body, 0, &p); ofs > 0; ofs = meerkat.HTTPNextMultipart(body, ofs, &p) {
		}
	}); a != 0 {
		t.Errorf("iterating allocates %v times", a)
	}
}

// TestHTTPNextMultipartFromMimeWriter: bodies written by mime/multipart
// (random binary files and text fields) iterate to the same parts that
// mime/multipart reads back.
func TestHTTPNextMultipartFromMimeWriter(t *testing.T) {
	for round := range 20 {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		var want []huPart
		for i := range round%5 + 1 {
			data := make([]byte, (round*977+i*131)%5000)
			rand.Read(data)
			if i%2 == 0 {
				name, file := fmt.Sprintf("file%d", i), fmt.Sprintf("f%d.bin", i)
				fw, _ := w.CreateFormFile(name, file)
				fw.Write(data)
				want = append(want, huPart{name: huS(name), filename: huS(file), contentType: huS("application/octet-stream"), body: string(data)})
			} else {
				name, value := fmt.Sprintf("field%d", i), fmt.Sprintf("value\r\n%d", i)
				w.WriteField(name, value)
				want = append(want, huPart{name: huS(name), body: value})
			}
		}
		w.Close()
		body := buf.Bytes()
		huCheckParts(t, fmt.Sprintf("round %d", round), huParts(t, body), want)

		// The boundary of the body's first line is the writer's.
		hm := huMessage("", "Content-Type: "+w.FormDataContentType())
		if got := meerkat.HTTPMultipartBoundary(hm); string(got) != w.Boundary() {
			t.Errorf("HTTPMultipartBoundary = %q, want %q", got, w.Boundary())
		}
		// mime/multipart agrees on the bodies.
		r := multipart.NewReader(bytes.NewReader(body), w.Boundary())
		for i := 0; ; i++ {
			p, err := r.NextRawPart()
			if err == io.EOF {
				if i != len(want) {
					t.Errorf("round %d: mime/multipart read %d parts, want %d", round, i, len(want))
				}
				break
			}
			if err != nil {
				t.Fatalf("round %d: mime/multipart: %v", round, err)
			}
			b, _ := io.ReadAll(p)
			if i < len(want) && string(b) != want[i].body {
				t.Errorf("round %d part %d: mime/multipart disagrees", round, i)
			}
		}
	}
}

// huMalformedMultipart are bodies that end iteration early: parts is how
// many come out first.
var huMalformedMultipart = []struct {
	name  string
	body  string
	parts int
}{
	{"empty", "", 0},
	{"only CRLF", "\r\n", 0},
	{"no line end", "--XyZ", 0},
	{"no dashes", "XyZ\r\n\r\nx\r\nXyZ--", 0},
	{"one dash", "-XyZ\r\n\r\nx\r\n-XyZ--", 0},
	{"empty boundary", "--\r\n\r\nx\r\n----", 0},
	{"boundary of 71 bytes", "--" + strings.Repeat("b", 71) + "\r\n\r\nx\r\n--" + strings.Repeat("b", 71) + "--", 0},
	{"first line too long", "--b" + strings.Repeat(" ", 200) + "\r\n\r\nx\r\n--b--", 0},
	{"close delimiter first", "--b--\r\n", 0},
	{"close delimiter only", "--b--", 0},
	{"LF line ends", "--b\n\nx\n--b--\n", 0},
	{"no closing delimiter", "--b\r\n\r\nbody", 0},
	{"delimiter without CRLF before it", "--b\r\n\r\nbody--b--", 0},
	{"truncated after one part", "--b\r\n\r\none\r\n--b\r\n\r\ntwo", 1},
	{"truncated in the delimiter", "--b\r\n\r\none\r\n--", 0},
	{"truncated after the delimiter", "--b\r\n\r\none\r\n--b", 0},
	{"truncated in headers", "--b\r\nContent-Disposition: form-data", 0},
	{"headers never end", "--b\r\nA: b\r\n", 0},
	{"header without colon", "--b\r\nbogus\r\n\r\nx\r\n--b--", 0},
	{"header with empty name", "--b\r\n: v\r\n\r\nx\r\n--b--", 0},
	{"folded header", "--b\r\nA: b\r\n c\r\n\r\nx\r\n--b--", 0},
	{"garbage after delimiter", "--b\r\n\r\nx\r\n--bX\r\n\r\ny\r\n--b--", 0},
	{"garbage after second delimiter", "--b\r\n\r\nx\r\n--b\r\n\r\ny\r\n--b junk\r\n", 1},
	{"boundary with a space", "--b junk\r\n\r\nx\r\n--b junk--", 1},
	{"boundary with a space, delimiter without", "--b junk\r\n\r\nx\r\n--b--", 0},
	{"bare CR in delimiter line", "--b\r\r\n\r\nx\r\n--b--", 0},
	{"unterminated quote", "--b\r\nContent-Disposition: form-data; name=\"x\r\n\r\nv\r\n--b--", 1},
}

// TestHTTPNextMultipartMalformed: a malformed body ends iteration with 0
// (after the well-formed parts before the fault), never with a part that
// lacks its closing delimiter, and bad offsets give 0.
func TestHTTPNextMultipartMalformed(t *testing.T) {
	for _, tc := range huMalformedMultipart {
		if got := huParts(t, []byte(tc.body)); len(got) != tc.parts {
			t.Errorf("%s: %d parts, want %d", tc.name, len(got), tc.parts)
		}
	}
	// An unterminated quoted parameter is no parameter.
	parts := huParts(t, []byte(huMalformedMultipart[len(huMalformedMultipart)-1].body))
	if len(parts) == 1 && (parts[0].Name != nil || string(parts[0].Body) != "v") {
		t.Errorf("unterminated quote: part %+v", parts[0])
	}

	body := []byte(huGoodMultipart)
	second := meerkat.HTTPNextMultipart(body, 0, nil)
	p := meerkat.HTTPPart{Name: []byte("stale")}
	for _, ofs := range []int{-1, -1 << 62, 1, 2, second - 1, second + 1, len(body), len(body) + 1, 1 << 62} {
		if got := meerkat.HTTPNextMultipart(body, ofs, &p); got != 0 || p.Name != nil || p.Body != nil {
			t.Errorf("offset %d: next %d, part %+v; want 0 and a cleared part", ofs, got, p)
		}
	}
	if got := meerkat.HTTPNextMultipart(nil, 0, &p); got != 0 {
		t.Errorf("nil body: next %d", got)
	}
}

// TestHTTPMultipartBoundary: the boundary parameter of any multipart
// Content-Type, quoted or not, with case-insensitive names; nil for other
// types, a missing, empty or over-long boundary.
func TestHTTPMultipartBoundary(t *testing.T) {
	cases := []struct {
		ct   string // "" for no header
		want string
		ok   bool
	}{
		{"multipart/form-data; boundary=abc", "abc", true},
		{`multipart/form-data; boundary="a b:c"`, "a b:c", true},
		{`Multipart/Form-Data; charset=utf-8; BOUNDARY="q"`, "q", true},
		{"multipart/mixed;boundary=x;charset=y", "x", true},
		{"multipart/form-data; boundary=" + strings.Repeat("z", 70), strings.Repeat("z", 70), true},
		{"multipart/form-data; boundary=" + strings.Repeat("z", 71), "", false},
		{"multipart/form-data; boundary=", "", false},
		{`multipart/form-data; boundary=""`, "", false},
		{`multipart/form-data; boundary="abc`, "", false},
		{`multipart/form-data; boundary="a\"b"`, "", false},
		{"multipart/form-data", "", false},
		{"multipart/form-data; xboundary=abc", "", false},
		{"text/plain; boundary=abc", "", false},
		{"application/x-www-form-urlencoded", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		var hm *meerkat.HTTPMessage
		if tc.ct != "" {
			hm = huMessage("", "Content-Type: "+tc.ct)
		} else {
			hm = huMessage("")
		}
		got := meerkat.HTTPMultipartBoundary(hm)
		if string(got) != tc.want || (got != nil) != tc.ok {
			t.Errorf("HTTPMultipartBoundary(%q) = %q, want %q (found %v)", tc.ct, got, tc.want, tc.ok)
		}
	}
	if meerkat.HTTPMultipartBoundary(nil) != nil {
		t.Error("HTTPMultipartBoundary(nil) is not nil")
	}
	hm := huMessage("", "Content-Type: multipart/form-data; boundary=abc")
	if n := testing.AllocsPerRun(100, func() { meerkat.HTTPMultipartBoundary(hm) }); n != 0 {
		t.Errorf("HTTPMultipartBoundary allocates %v times", n)
	}
}

// FuzzNextMultipart: on any body and starting offset, HTTPNextMultipart
// never panics, its offsets strictly increase and stay inside the body, and
// every field of every part is a view of the body.
func FuzzNextMultipart(f *testing.F) {
	f.Add([]byte(huGoodMultipart), 0)
	for _, tc := range huMalformedMultipart {
		f.Add([]byte(tc.body), 0)
	}
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"a\"; filename=\"b\"\r\n\r\nx\r\n--b--"), 0)
	f.Add([]byte("--b\r\n\r\nx\r\n--b\r\n\r\ny\r\n--b--"), 12)
	f.Fuzz(func(t *testing.T, body []byte, start int) {
		var p meerkat.HTTPPart
		prev := start
		ofs := meerkat.HTTPNextMultipart(body, start, &p)
		for n := 0; ofs > 0; n++ {
			if ofs <= prev || ofs >= len(body) {
				t.Fatalf("offset %d after %d, body of %d bytes", ofs, prev, len(body))
			}
			if n > len(body) {
				t.Fatal("more parts than bytes")
			}
			for _, field := range [][]byte{p.Name, p.Filename, p.ContentType, p.Body} {
				if field != nil && !huWithin(field, body) {
					t.Fatalf("part field %q is not a view of the body", field)
				}
			}
			if p.Body == nil {
				t.Fatal("a part without a body")
			}
			prev = ofs
			ofs = meerkat.HTTPNextMultipart(body, ofs, &p)
		}
		if ofs != 0 {
			t.Fatalf("negative offset %d", ofs)
		}
	})
}

// huWithin reports whether v lies inside b's memory.
func huWithin(v, b []byte) bool {
	if len(v) == 0 {
		return cap(b) == 0 || (uintptr(unsafe.Pointer(unsafe.SliceData(v))) >= uintptr(unsafe.Pointer(unsafe.SliceData(b))) &&
			uintptr(unsafe.Pointer(unsafe.SliceData(v))) <= uintptr(unsafe.Pointer(unsafe.SliceData(b)))+uintptr(cap(b)))
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	return p >= lo && p+uintptr(len(v)) <= lo+uintptr(len(b))
}

// ---------------------------------------------------------------------------
// Route matching

// huMatchCases: pattern, subject, whether it matches, and the captures.
var huMatchCases = []struct {
	pattern, s string
	ok         bool
	caps       []string
}{
	{"", "", true, nil},
	{"", "a", false, nil},
	{"a", "a", true, nil},
	{"a", "b", false, nil},
	{"a", "", false, nil},
	{"abc", "ab", false, nil},
	{"ab", "abc", false, nil},
	{"[a].(b)+", "[a].(b)+", true, nil}, // no other metacharacters
	{"?", "a", true, []string{"a"}},
	{"?", "", false, nil},
	{"?", "/", true, []string{"/"}},
	{"??", "ab", true, []string{"a", "b"}},
	{"?", "ab", false, nil},
	{"*", "", true, []string{""}},
	{"*", "abc", true, []string{"abc"}},
	{"*", "a/b", false, nil},
	{"*", "/", false, nil},
	{"#", "", true, []string{""}},
	{"#", "a/b/c", true, []string{"a/b/c"}},
	{"/api/#", "/api/", true, []string{""}},
	{"/api/#", "/api/v1/users", true, []string{"v1/users"}},
	{"/api/#", "/api", false, nil},
	{"/api/#", "/apix/", false, nil},
	{"/api/*", "/api/v1", true, []string{"v1"}},
	{"/api/*", "/api/v1/", false, nil},
	{"/users/*/posts/*", "/users/42/posts/7", true, []string{"42", "7"}},
	{"/users/*/posts/*", "/users//posts/", true, []string{"", ""}},
	{"/users/*/posts/*", "/users/4/2/posts/7", false, nil},
	{"/users/*/posts/*", "/users/42/posts/7/x", false, nil},
	{"*.html", "index.html", true, []string{"index"}},
	{"*.html", "a/index.html", false, nil},
	{"#.html", "a/index.html", true, []string{"a/index"}},
	{"#.html", "a.html/b.html", true, []string{"a.html/b"}},
	{"*a*", "baab", true, []string{"b", "ab"}}, // earlier wildcards take the fewest bytes
	{"#/#", "a/b/c", true, []string{"a", "b/c"}},
	{"**", "abc", true, []string{"", "abc"}},
	{"*#", "a/b", true, []string{"", "a/b"}},
	{"#*", "a/b", true, []string{"a/", "b"}},
	{"a*", "a", true, []string{""}},
	{"*?", "abc", true, []string{"ab", "c"}},
	{"?*?", "ab", true, []string{"a", "", "b"}},
	{"?*?", "a", false, nil},
	// A single-backtrack matcher (Mongoose's) gets these wrong: '*' blocked
	// by a '/' must let an earlier '#' or '?' take it.
	{"#a*b", "xa/ab", true, []string{"xa/", ""}},
	{"*?*", "a/b", true, []string{"a", "/", "b"}},
	{"#/*/?", "a/b/c/d", true, []string{"a/b", "c", "d"}},
	{"*/#x", "a/b/x/x", true, []string{"a", "b/x/"}},
	// Bytes, not characters.
	{"/ü/*", "/ü/ß", true, []string{"ß"}},
	{"/?", "/ü", false, nil},
	{"/??", "/ü", true, []string{"\xc3", "\xbc"}},
	{"/*", "/✓✓", true, []string{"✓✓"}},
}

// TestHTTPMatch: the glob table, with captures for each wildcard in
// pattern order; extra caps are nil, caps shorter than the wildcards take
// the first ones, a failed match clears caps, and matching allocates
// nothing.
func TestHTTPMatch(t *testing.T) {
	for _, tc := range huMatchCases {
		caps := make([][]byte, len(tc.caps)+2)
		for i := range caps {
			caps[i] = []byte("stale")
		}
		s := []byte(tc.s)
		ok := meerkat.HTTPMatch(tc.pattern, s, caps)
		if ok != tc.ok {
			t.Errorf("HTTPMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, ok, tc.ok)
			continue
		}
		for i, c := range caps {
			if i < len(tc.caps) && ok {
				if string(c) != tc.caps[i] || !huWithin(c, s) {
					t.Errorf("HTTPMatch(%q, %q): caps[%d] = %q, want %q (a view of s)", tc.pattern, tc.s, i, c, tc.caps[i])
				}
			} else if c != nil {
				t.Errorf("HTTPMatch(%q, %q): caps[%d] = %q, want nil", tc.pattern, tc.s, i, c)
			}
		}
		if got := meerkat.HTTPMatch(tc.pattern, s, nil); got != tc.ok {
			t.Errorf("HTTPMatch(%q, %q, nil) = %v", tc.pattern, tc.s, got)
		}
		if len(tc.caps) > 1 {
			short := make([][]byte, 1)
			meerkat.HTTPMatch(tc.pattern, s, short)
			if string(short[0]) != tc.caps[0] {
				t.Errorf("HTTPMatch(%q, %q) with one cap: %q", tc.pattern, tc.s, short[0])
			}
		}
	}

	caps := make([][]byte, 2)
	uri := []byte("/users/42/posts/7")
	if n := testing.AllocsPerRun(100, func() { meerkat.HTTPMatch("/users/*/posts/*", uri, caps) }); n != 0 {
		t.Errorf("HTTPMatch allocates %v times", n)
	}
	// Many wildcards still work (the state then lives on the heap).
	many := strings.Repeat("*", 40) + "/" + strings.Repeat("#", 40)
	if !meerkat.HTTPMatch(many, []byte("ab/cd/ef"), nil) || meerkat.HTTPMatch(many, []byte("abcd"), nil) {
		t.Error("40 '*' and 40 '#' mismatch")
	}
}

// TestHTTPMatchLongAndPathological: long subjects and patterns that make
// naive backtracking exponential complete (the count bound on steps is in
// TestHTTPMatchStepsAreBounded).
func TestHTTPMatchLongAndPathological(t *testing.T) {
	long := []byte("/" + strings.Repeat("a", 1<<20))
	slashy := bytes.Repeat([]byte("a/"), 1<<19)
	cases := []struct {
		pattern string
		s       []byte
		ok      bool
	}{
		{"/#", long, true},
		{"*", long[1:], true},
		{"*", append(slices.Clone(long[1:]), '/'), false},
		{"*a*a*a*a*a*b", long[1 : 1<<17], false},
		{"#a#a#a#a#a#b", long[1 : 1<<17], false},
		{"*a*a*a*a*a*a", long[1 : 1<<17], true},
		{"#?#?#?#?#?#b", slashy[:1<<17], false},
		{"*?*?*?*?*?*b", slashy[:1<<17], false},
		{"#a/#a/#a/#a/#b", slashy[:1<<17], false},
		{strings.Repeat("?", 1000) + "#", long, true},
	}
	for _, tc := range cases {
		if got := meerkat.HTTPMatch(tc.pattern, tc.s, nil); got != tc.ok {
			t.Errorf("HTTPMatch(%q, %d bytes) = %v, want %v", tc.pattern, len(tc.s), got, tc.ok)
		}
	}
}

// huRefMatch is a plain backtracking matcher (memoizing failed states) with
// the same preference, earlier wildcards taking the fewest bytes: the
// reference for FuzzHTTPMatch.
func huRefMatch(p string, s []byte) (bool, []string) {
	failed := map[[2]int]bool{}
	var caps []string
	var rec func(i, j int) bool
	rec = func(i, j int) bool {
		if failed[[2]int{i, j}] {
			return false
		}
		ok := false
		switch {
		case i == len(p):
			ok = j == len(s)
		case p[i] == '?':
			if j < len(s) {
				caps = append(caps, string(s[j:j+1]))
				if ok = rec(i+1, j+1); !ok {
					caps = caps[:len(caps)-1]
				}
			}
		case p[i] == '*' || p[i] == '#':
			for e := j; e <= len(s) && !ok; e++ {
				if e > j && p[i] == '*' && s[e-1] == '/' {
					break
				}
				caps = append(caps, string(s[j:e]))
				if ok = rec(i+1, e); !ok {
					caps = caps[:len(caps)-1]
				}
			}
		default:
			ok = j < len(s) && s[j] == p[i] && rec(i+1, j+1)
		}
		if !ok {
			failed[[2]int{i, j}] = true
		}
		return ok
	}
	ok := rec(0, 0)
	return ok, caps
}

// FuzzHTTPMatch: HTTPMatch agrees with the reference matcher on the result
// and on every capture.
func FuzzHTTPMatch(f *testing.F) {
	for _, tc := range huMatchCases {
		f.Add(tc.pattern, []byte(tc.s))
	}
	f.Fuzz(func(t *testing.T, pattern string, s []byte) {
		if len(pattern) > 24 || len(s) > 64 {
			return
		}
		caps := make([][]byte, len(pattern))
		ok := meerkat.HTTPMatch(pattern, s, caps)
		wantOK, wantCaps := huRefMatch(pattern, s)
		if ok != wantOK {
			t.Fatalf("HTTPMatch(%q, %q) = %v, reference %v", pattern, s, ok, wantOK)
		}
		for i, c := range caps {
			if i < len(wantCaps) {
				if string(c) != wantCaps[i] {
					t.Fatalf("HTTPMatch(%q, %q): caps[%d] = %q, reference %q", pattern, s, i, c, wantCaps[i])
				}
			} else if c != nil {
				t.Fatalf("HTTPMatch(%q, %q): caps[%d] = %q, want nil", pattern, s, i, c)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Live: uploads and redirects

// huResult is what a standard-library client got.
type huResult struct {
	status int
	header http.Header
	body   string
	err    error
}

// huDo sends one request with client from a goroutine while the Manager
// polls, and returns the response.
func huDo(e *env, client *http.Client, method, url, body string) huResult {
	e.t.Helper()
	ch := make(chan huResult, 1)
	go func() {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			ch <- huResult{err: err}
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			ch <- huResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- huResult{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
	}()
	var r huResult
	e.pollUntil(10*time.Second, method+" "+url, func() bool {
		select {
		case r = <-ch:
			return true
		default:
			return false
		}
	})
	return r
}

// huClient is a keep-alive client that follows no redirects; its idle
// connections are closed at cleanup.
func huClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// huUploadStep is one request to the upload server and what it must do.
type huUploadStep struct {
	query  string // after "/upload?"
	body   string
	status int
	file   string // the file to check afterwards ("" for none)
	want   string // its content
}

// TestHTTPUpload: a file is written in offset-addressed pieces (offset 0
// creates or truncates, later offsets must equal the size), out-of-order and
// overlapping offsets are 400 and change nothing, the size limit is 413,
// and every spelling of a name outside the directory (traversal, separators,
// NUL, absolute paths, a symlink, a directory) is 400 with nothing written
// outside; on both drivers, over one keep-alive connection.
func TestHTTPUpload(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		// The directory before the env, so that its cleanup (and the check
		// that nothing is left open there) comes after the Manager's.
		top := fsTempDir(t)
		e := newEnv(t, drv, false)
		dir := filepath.Join(top, "up")
		outside := filepath.Join(top, "outside.txt")
		huMust(t, os.Mkdir(dir, 0o755))
		huMust(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
		huMust(t, os.WriteFile(outside, []byte("precious"), 0o644))
		symlinked := runtime.GOOS != "windows"
		if symlinked {
			huMust(t, os.Symlink(outside, filepath.Join(dir, "link")))
		}

		type outcome struct {
			written int64
			err     error
		}
		var results []outcome
		l, err := e.m.HTTPListen("http://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev != meerkat.EvHTTPMsg {
				return
			}
			hm := data.(*meerkat.HTTPMessage)
			d, limit := dir, int64(16)
			switch string(hm.URI) {
			case "/nodir":
				d = filepath.Join(top, "missing")
			case "/nolimit":
				limit = -1
			case "/big":
				limit = 1 << 20
			}
			n, err := meerkat.HTTPUpload(c, hm, d, limit)
			results = append(results, outcome{n, err})
		}))
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + l.LocalAddr().String()
		client := huClient(t)

		steps := []huUploadStep{
			{"file=a.txt&offset=0", "hello ", 200, "a.txt", "hello "},
			{"file=a.txt&offset=6", "world", 200, "a.txt", "hello world"},
			{"offset=11&file=a.txt", "!", 200, "a.txt", "hello world!"},
			// Out of order, overlapping, past the end: refused, unchanged.
			{"file=a.txt&offset=3", "XXX", 400, "a.txt", "hello world!"},
			{"file=a.txt&offset=6", "XXX", 400, "a.txt", "hello world!"},
			{"file=a.txt&offset=13", "X", 400, "a.txt", "hello world!"},
			{"file=a.txt&offset=100", "X", 400, "a.txt", "hello world!"},
			{"file=never.txt&offset=5", "X", 400, "never.txt", ""},
			// The limit: 12 + 4 = 16 fits, 16 + 1 does not.
			{"file=a.txt&offset=12", "1234", 200, "a.txt", "hello world!1234"},
			{"file=a.txt&offset=16", "5", 413, "a.txt", "hello world!1234"},
			{"file=big.txt&offset=0", strings.Repeat("x", 17), 413, "big.txt", ""},
			{"file=big.txt&offset=9223372036854775807", "x", 400, "big.txt", ""},
			// Offset 0 truncates; no offset means 0; an empty piece is fine.
			{"file=a.txt&offset=0", "new", 200, "a.txt", "new"},
			{"file=a.txt", "newer", 200, "a.txt", "newer"},
			{"file=a.txt&offset=5", "", 200, "a.txt", "newer"},
			{"file=empty.txt&offset=0", "", 200, "empty.txt", ""},
			// Malformed offsets.
			{"file=a.txt&offset=-1", "x", 400, "a.txt", "newer"},
			{"file=a.txt&offset=%2B5", "x", 400, "a.txt", "newer"},
			{"file=a.txt&offset=0x5", "x", 400, "a.txt", "newer"},
			{"file=a.txt&offset=5.0", "x", 400, "a.txt", "newer"},
			{"file=a.txt&offset=", "x", 400, "a.txt", "newer"},
			{"file=a.txt&offset=99999999999999999999", "x", 400, "a.txt", "newer"},
			// Names.
			{"file=r%C3%A9sum%C3%A9+1.txt&offset=0", "ok", 200, "résumé 1.txt", "ok"},
			{"file=a..b&offset=0", "x", 400, "a..b", ""},
			{"offset=0", "x", 400, "", ""},
			{"file=&offset=0", "x", 400, "", ""},
			{"file=.&offset=0", "x", 400, "", ""},
			{"file=..&offset=0", "x", 400, "", ""},
			{"file=../outside.txt&offset=0", "x", 400, "", ""},
			{"file=..%2Foutside.txt&offset=0", "x", 400, "", ""},
			{"file=%2e%2e%2foutside.txt&offset=0", "x", 400, "", ""},
			{"file=..%5Coutside.txt&offset=0", "x", 400, "", ""},
			{"file=sub%2Fx.txt&offset=0", "x", 400, "sub/x.txt", ""},
			{"file=sub%5Cx.txt&offset=0", "x", 400, "", ""},
			{"file=%2Fetc%2Fpasswd&offset=0", "x", 400, "", ""},
			{"file=" + huQ(outside) + "&offset=0", "x", 400, "", ""},
			{"file=a%00b&offset=0", "x", 400, "", ""},
			{"file=%zz&offset=0", "x", 400, "", ""},
			{"file=C%3A%5Cx&offset=0", "x", 400, "", ""},
			{"file=sub&offset=0", "x", 400, "", ""},
			{"file=sub&offset=1", "x", 400, "", ""},
		}
		if symlinked {
			steps = append(steps,
				huUploadStep{"file=link&offset=0", "x", 400, "", ""},
				huUploadStep{"file=link&offset=8", "x", 400, "", ""})
		}
		for i, st := range steps {
			r := huDo(e, client, "POST", base+"/upload?"+st.query, st.body)
			if r.err != nil {
				t.Fatalf("step %d (%s): %v", i, st.query, r.err)
			}
			if r.status != st.status {
				t.Errorf("step %d (%s): status %d (%q), want %d", i, st.query, r.status, r.body, st.status)
			}
			if len(results) != i+1 {
				t.Fatalf("step %d: %d HTTPUpload results", i, len(results))
			}
			got := results[i]
			if st.status == 200 {
				if got.err != nil || got.written != int64(len(st.body)) || strings.TrimSpace(r.body) != fmt.Sprint(len(st.body)) {
					t.Errorf("step %d (%s): written %d, err %v, reply %q; want %d bytes", i, st.query, got.written, got.err, r.body, len(st.body))
				}
			} else if got.err == nil || got.written != 0 || r.body == "" {
				t.Errorf("step %d (%s): refused with written %d, err %v, reply %q", i, st.query, got.written, got.err, r.body)
			}
			if st.file != "" {
				b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(st.file)))
				if st.want == "" && st.status != 200 {
					if err == nil {
						t.Errorf("step %d (%s): %s exists", i, st.query, st.file)
					}
				} else if string(b) != st.want {
					t.Errorf("step %d (%s): %s holds %q, want %q", i, st.query, st.file, b, st.want)
				}
			}
		}
		if b, err := os.ReadFile(outside); err != nil || string(b) != "precious" {
			t.Errorf("the file outside the directory changed: %q, %v", b, err)
		}
		ents, _ := os.ReadDir(top)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{"outside.txt", "up"}) {
			t.Errorf("the parent directory holds %v", names)
		}
		ents, _ = os.ReadDir(dir)
		names = names[:0]
		for _, e := range ents {
			names = append(names, e.Name())
		}
		want := []string{"a.txt", "empty.txt", "résumé 1.txt", "sub"}
		if symlinked {
			want = []string{"a.txt", "empty.txt", "link", "résumé 1.txt", "sub"}
		}
		if !slices.Equal(names, want) {
			t.Errorf("the upload directory holds %v, want %v", names, want)
		}
		if ents, _ := os.ReadDir(filepath.Join(dir, "sub")); len(ents) != 0 {
			t.Errorf("sub holds %d entries", len(ents))
		}

		// A file of 1 MiB in 16 pieces, exactly at the limit, then one
		// byte more; without a limit, more is fine.
		data := make([]byte, 1<<20)
		rand.Read(data)
		for i, piece := 0, len(data)/16; i < 16; i++ {
			r := huDo(e, client, "POST", fmt.Sprintf("%s/big?file=big.bin&offset=%d", base, i*piece), string(data[i*piece:(i+1)*piece]))
			if r.err != nil || r.status != 200 {
				t.Fatalf("piece %d: %d %q %v", i, r.status, r.body, r.err)
			}
		}
		if b, err := os.ReadFile(filepath.Join(dir, "big.bin")); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("big.bin: %d bytes, %v; want the 1 MiB sent, intact", len(b), err)
		}
		if r := huDo(e, client, "POST", fmt.Sprintf("%s/big?file=big.bin&offset=%d", base, len(data)), "x"); r.status != 413 {
			t.Errorf("past 1 MiB: %d %q %v, want 413", r.status, r.body, r.err)
		}
		if r := huDo(e, client, "POST", fmt.Sprintf("%s/nolimit?file=big.bin&offset=%d", base, len(data)), "x"); r.status != 200 {
			t.Errorf("no limit: %d %q %v, want 200", r.status, r.body, r.err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "big.bin")); err != nil || fi.Size() != 1<<20+1 {
			t.Errorf("big.bin after the unlimited piece: %v, %v", fi, err)
		}
		huMust(t, os.Remove(filepath.Join(dir, "big.bin")))

		// A missing directory is the server's fault.
		r := huDo(e, client, "POST", base+"/nodir?file=x&offset=0", "x")
		if r.err != nil || r.status != 500 {
			t.Errorf("missing directory: %d %q %v, want 500", r.status, r.body, r.err)
		}
		if last := results[len(results)-1]; last.err == nil || !errors.Is(last.err, os.ErrNotExist) {
			t.Errorf("missing directory: error %v does not wrap ErrNotExist", last.err)
		}
		// All of it over one connection (each reply let the next in).
		if n := e.chk.count(meerkat.EvAccept); n != 1 {
			t.Errorf("%d connections accepted, want 1 keep-alive connection", n)
		}
	})
}

func huMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// huQ encodes a path for a query value.
func huQ(p string) string { return meerkat.HTTPURLEncode(p) }

// TestHTTPRedirect: each redirect status goes out with its Location and a
// short body (none for HEAD); another status, an empty location or one with
// control characters is an error and sends nothing, so the handler can
// answer otherwise; on both drivers.
func TestHTTPRedirect(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		var errs []error
		l, err := e.m.HTTPListen("http://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev != meerkat.EvHTTPMsg {
				return
			}
			hm := data.(*meerkat.HTTPMessage)
			var status int
			fmt.Sscan(strings.TrimPrefix(string(hm.URI), "/"), &status)
			loc, _ := meerkat.HTTPVar(hm.Query, "to")
			err := meerkat.HTTPRedirect(c, status, string(loc))
			errs = append(errs, err)
			if err != nil {
				meerkat.HTTPReply(c, 500, "", "%v", err)
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + l.LocalAddr().String()
		client := huClient(t)
		for _, status := range []int{301, 302, 303, 307, 308} {
			for _, loc := range []string{"/new/place?x=1", "https://example.com/a%20b", "/ü"} {
				for _, method := range []string{"GET", "HEAD"} {
					r := huDo(e, client, method, fmt.Sprintf("%s/%d?to=%s", base, status, huQ(loc)), "")
					if r.err != nil || r.status != status || r.header.Get("Location") != loc {
						t.Errorf("%s %d %q: got %d, Location %q, %v", method, status, loc, r.status, r.header.Get("Location"), r.err)
						continue
					}
					wantBody := "Redirecting to " + loc + "\n"
					if method == "HEAD" {
						wantBody = ""
					}
					if r.body != wantBody {
						t.Errorf("%s %d %q: body %q, want %q", method, status, loc, r.body, wantBody)
					}
				}
			}
		}
		bad := []struct {
			status int
			loc    string
			err    string
		}{
			{200, "/x", "not a redirect"},
			{304, "/x", "not a redirect"},
			{300, "/x", "not a redirect"},
			{0, "/x", "not a redirect"},
			{302, "", "empty location"},
			{302, "/x\r\nSet-Cookie: evil=1", "control character"},
			{302, "/x\nX: y", "control character"},
			{302, "/x\x00", "control character"},
			{302, "/x\x7f", "control character"},
		}
		for _, b := range bad {
			n := len(errs)
			r := huDo(e, client, "GET", fmt.Sprintf("%s/%d?to=%s", base, b.status, huQ(b.loc)), "")
			if r.err != nil || r.status != 500 || !strings.Contains(r.body, b.err) || r.header.Get("Location") != "" || r.header.Get("Set-Cookie") != "" {
				t.Errorf("redirect %d %q: %d %q (Location %q), %v; want 500 naming %q", b.status, b.loc, r.status, r.body, r.header.Get("Location"), r.err, b.err)
			}
			if len(errs) != n+1 || errs[n] == nil {
				t.Errorf("redirect %d %q: HTTPRedirect returned no error", b.status, b.loc)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Examples

// HTTPMatch routes a request and captures the parts of its path.
func ExampleHTTPMatch() {
	caps := make([][]byte, 2)
	for _, uri := range []string{"/users/42/posts/7", "/users/42", "/api/v1/status"} {
		switch {
		case meerkat.HTTPMatch("/users/*/posts/*", []byte(uri), caps):
			fmt.Printf("%s: user %s, post %s\n", uri, caps[0], caps[1])
		case meerkat.HTTPMatch("/api/#", []byte(uri), caps):
			fmt.Printf("%s: API call %s\n", uri, caps[0])
		default:
			fmt.Printf("%s: not found\n", uri)
		}
	}
	// Output:
	// /users/42/posts/7: user 42, post 7
	// /users/42: not found
	// /api/v1/status: API call v1/status
}

// HTTPVar reads a variable from a query string or a form body.
func ExampleHTTPVar() {
	q := []byte("name=J%C3%B6rg+M&lang=go")
	name, _ := meerkat.HTTPVar(q, "name")
	_, ok := meerkat.HTTPVar(q, "age")
	fmt.Printf("%s %v\n", name, ok)
	// Output: Jörg M false
}

// HTTPNextMultipart walks the parts of a multipart/form-data body.
func ExampleHTTPNextMultipart() {
	body := []byte("--XyZ\r\n" +
		"Content-Disposition: form-data; name=\"title\"\r\n\r\n" +
		"Holiday\r\n" +
		"--XyZ\r\n" +
		"Content-Disposition: form-data; name=\"photo\"; filename=\"beach.jpg\"\r\n" +
		"Content-Type: image/jpeg\r\n\r\n" +
		"JPEG...\r\n" +
		"--XyZ--\r\n")
	var p meerkat.HTTPPart
	for ofs := meerkat.HTTPNextMultipart(body, 0, &p); ofs > 0; ofs = meerkat.HTTPNextMultipart(body, ofs, &p) {
		fmt.Printf("%s %q %q %q\n", p.Name, p.Filename, p.ContentType, p.Body)
	}
	// Output:
	// title "" "" "Holiday"
	// photo "beach.jpg" "image/jpeg" "JPEG..."
}
