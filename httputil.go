package meerkat

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/meerkat-net/meerkat/internal/httpwire"
)

// HTTP helpers for handlers: query and form variables, URL coding, cookies,
// credentials, multipart bodies, uploads, redirects and route matching. The
// ones that return []byte return views of their input (valid as long as it
// is, which for an HTTPMessage means during the handler call) unless their
// doc comment says the result is new.

// ErrURLEscape is returned (wrapped, with the offending bytes and their
// offset) by HTTPURLDecode for a '%' not followed by two hexadecimal digits.
var ErrURLEscape = errors.New("meerkat: malformed %-escape")

// HTTPVar returns the variable called name from buf, a query string
// (hm.Query) or an application/x-www-form-urlencoded body (hm.Body):
// "a=1&b=x+y" holds a = "1" and b = "x y". Names and values are
// URL-decoded ('+' is a space) before they are compared and returned; the
// name matches case-sensitively, the first of duplicates wins, and a
// variable without '=' ("flag") has an empty value. The value is a new
// slice, safe to keep. ok is false when the variable is missing, when name
// is empty, or when its value has a malformed %-escape (HTTPURLDecode on the
// raw value says which).
func HTTPVar(buf []byte, name string) (value []byte, ok bool) {
	raw, found := httpVarRaw(buf, name)
	if !found {
		return nil, false
	}
	v, err := HTTPURLDecode(raw, true)
	if err != nil {
		return nil, false
	}
	return v, true
}

// httpVarRaw finds the variable called name in buf and returns its value
// still encoded (a view of buf).
func httpVarRaw(buf []byte, name string) (raw []byte, found bool) {
	if name == "" {
		return nil, false
	}
	for len(buf) > 0 {
		pair := buf
		if i := bytes.IndexByte(buf, '&'); i >= 0 {
			pair, buf = buf[:i], buf[i+1:]
		} else {
			buf = nil
		}
		key, val := pair, pair[len(pair):]
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			key, val = pair[:i], pair[i+1:]
		}
		if urlKeyEqual(key, name) {
			return val, true
		}
	}
	return nil, false
}

// urlKeyEqual reports whether the form-encoded key decodes to name, without
// allocating. A malformed escape never matches.
func urlKeyEqual(key []byte, name string) bool {
	n := 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			if i+2 >= len(key) || !isHex(key[i+1]) || !isHex(key[i+2]) {
				return false
			}
			c = unhex(key[i+1])<<4 | unhex(key[i+2])
			i += 2
		}
		if n >= len(name) || name[n] != c {
			return false
		}
		n++
	}
	return n == len(name)
}

// HTTPURLDecode decodes %-escapes (and, when form is true, '+' as a space,
// as in query strings and form bodies) into a new slice. A '%' not followed
// by two hexadecimal digits is an error wrapping ErrURLEscape. Decoded bytes
// are not checked further: "%00" is a NUL and "%2F" a '/', so a decoded path
// must still be checked before it is used.
func HTTPURLDecode(s []byte, form bool) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return nil, fmt.Errorf("%w: %q at offset %d", ErrURLEscape, s[i:min(i+3, len(s))], i)
			}
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		case c == '+' && form:
			c = ' '
		}
		out = append(out, c)
	}
	return out, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// HTTPURLEncode %-encodes every byte of s but RFC 3986's unreserved
// characters (letters, digits, '-', '.', '_', '~'), so the result can be
// used as a path segment or a query name or value. A string that needs no
// encoding is returned as is.
func HTTPURLEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isUnreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; isUnreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return string(b)
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// HTTPCookie returns the value of the cookie called name (case-sensitive)
// from the request's Cookie header fields ("a=1; b=2"; several fields are
// searched in order), without its double quotes if it has them. It returns
// nil when there is no such cookie, and an empty, non-nil view for an empty
// value. The value is a view of hm, not decoded.
func HTTPCookie(hm *HTTPMessage, name string) []byte {
	if hm == nil || name == "" {
		return nil
	}
	for i := range hm.Headers {
		h := &hm.Headers[i]
		if !httpwire.EqualFold(h.Name, "Cookie") {
			continue
		}
		v := h.Value
		for len(v) > 0 {
			pair := v
			if j := bytes.IndexByte(v, ';'); j >= 0 {
				pair, v = v[:j], v[j+1:]
			} else {
				v = v[len(v):]
			}
			pair = trimSpaceTab(pair)
			eq := bytes.IndexByte(pair, '=')
			if eq < 0 || string(trimSpaceTab(pair[:eq])) != name {
				continue
			}
			val := trimSpaceTab(pair[eq+1:])
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val
		}
	}
	return nil
}

// trimSpaceTab trims spaces and tabs from both ends of b, keeping a
// non-nil b non-nil.
func trimSpaceTab(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// hasPrefixFold reports whether b starts with prefix, ASCII
// case-insensitively.
func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && httpwire.EqualFold(b[:len(prefix)], prefix)
}

// HTTPCreds returns the credentials a request carries, as Mongoose does:
// with "Authorization: Basic BASE64", the user and password it encodes
// (both empty if it does not decode to "user:pass"); with "Authorization:
// Bearer TOKEN", an empty user and TOKEN as pass; otherwise an empty user
// and, as pass, the access_token cookie or else the access_token query
// variable (empty if neither is there). Scheme names are case-insensitive.
func HTTPCreds(hm *HTTPMessage) (user, pass string) {
	if hm == nil {
		return "", ""
	}
	auth := trimSpaceTab(hm.Header("Authorization"))
	switch {
	case hasPrefixFold(auth, "Basic ") || hasPrefixFold(auth, "Basic\t"):
		enc := trimSpaceTab(auth[len("Basic "):])
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
		n, err := base64.StdEncoding.Decode(dec, enc)
		if err != nil {
			return "", ""
		}
		u, p, ok := bytes.Cut(dec[:n], []byte{':'})
		if !ok {
			return "", ""
		}
		return string(u), string(p)
	case hasPrefixFold(auth, "Bearer ") || hasPrefixFold(auth, "Bearer\t"):
		return "", string(trimSpaceTab(auth[len("Bearer "):]))
	}
	if t := HTTPCookie(hm, "access_token"); len(t) > 0 {
		return "", string(t)
	}
	if t, ok := HTTPVar(hm.Query, "access_token"); ok {
		return "", string(t)
	}
	return "", ""
}

// HTTPBasicAuth returns the header line "Authorization: Basic ...\r\n" that
// carries user and pass, for HTTPSendRequest's headers. RFC 7617 gives a
// user name no way to contain ':' (the server splits at the first one).
func HTTPBasicAuth(user, pass string) string {
	const prefix = "Authorization: Basic "
	raw := make([]byte, 0, len(user)+1+len(pass))
	raw = append(append(append(raw, user...), ':'), pass...)
	b := make([]byte, 0, len(prefix)+base64.StdEncoding.EncodedLen(len(raw))+2)
	b = append(b, prefix...)
	b = base64.StdEncoding.AppendEncode(b, raw)
	b = append(b, "\r\n"...)
	return string(b)
}

// HTTPPart is one part of a multipart/form-data body, as views of the body.
type HTTPPart struct {
	// Name is the form field's name (Content-Disposition's name parameter).
	Name []byte
	// Filename is the uploaded file's name: nil without a filename
	// parameter, empty when a form sent no file. It comes from the client:
	// never use it as a path without checking it.
	Filename []byte
	// ContentType is the part's Content-Type, nil without one.
	ContentType []byte
	// Body is the part's content, exactly as sent.
	Body []byte
}

// maxBoundary is RFC 2046's limit on a boundary's length.
const maxBoundary = 70

// HTTPNextMultipart parses the multipart body part at offset in body (a
// whole multipart/form-data body; offset 0 for the first part) into part
// and returns the offset of the next one, or 0 when there are no more parts
// or the body is malformed. part's fields are views of body; part may be
// nil to skip a part. As in Mongoose, the boundary is taken from the
// body's first line ("--BOUNDARY"), so the body must begin with it (no
// preamble); compare it with HTTPMultipartBoundary to be strict. Lines end
// in CRLF; a part is returned only when the delimiter that ends it is
// complete. Parameter values are returned as sent, between their quotes.
//
//	for ofs := HTTPNextMultipart(body, 0, &p); ofs > 0; ofs = HTTPNextMultipart(body, ofs, &p) {
//		// use p
//	}
func HTTPNextMultipart(body []byte, offset int, part *HTTPPart) (next int) {
	if part != nil {
		*part = HTTPPart{}
	}
	delim := multipartDelimiter(body)
	if delim == nil || offset < 0 || offset >= len(body) || !bytes.HasPrefix(body[offset:], delim) {
		return 0
	}
	pos := offset + len(delim)
	if bytes.HasPrefix(body[pos:], []byte("--")) {
		return 0 // the close delimiter
	}
	pos = skipDelimiterPadding(body, pos)
	if pos < 0 {
		return 0
	}

	// The part's header fields, up to an empty line.
	var p HTTPPart
	for {
		eol := bytes.Index(body[pos:], []byte("\r\n"))
		if eol < 0 {
			return 0
		}
		line := body[pos : pos+eol]
		pos += eol + 2
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			return 0 // no name, or an obsolete folded line
		}
		name, value := line[:colon], trimSpaceTab(line[colon+1:])
		switch {
		case httpwire.EqualFold(name, "Content-Disposition"):
			p.Name = headerParam(value, "name")
			p.Filename = headerParam(value, "filename")
		case httpwire.EqualFold(name, "Content-Type"):
			p.ContentType = value
		}
	}

	// The body ends at the first CRLF followed by the delimiter.
	start := pos
	for from := start; ; {
		i := bytes.Index(body[from:], delim)
		if i < 0 {
			return 0
		}
		at := from + i
		if at-2 >= start && body[at-2] == '\r' && body[at-1] == '\n' {
			end := at + len(delim)
			if !bytes.HasPrefix(body[end:], []byte("--")) && skipDelimiterPadding(body, end) < 0 {
				return 0
			}
			p.Body = body[start : at-2]
			if part != nil {
				*part = p
			}
			return at
		}
		from = at + 1
	}
}

// multipartDelimiter returns the body's first line ("--BOUNDARY") without
// the transport padding that may follow it, or nil if it is not one.
func multipartDelimiter(body []byte) []byte {
	limit := min(len(body), 2+maxBoundary+64) // 64 bytes of padding, at most
	eol := bytes.Index(body[:limit], []byte("\r\n"))
	if eol < 0 {
		return nil
	}
	d := body[:eol]
	for len(d) > 0 && (d[len(d)-1] == ' ' || d[len(d)-1] == '\t') {
		d = d[:len(d)-1]
	}
	if len(d) < 3 || len(d) > 2+maxBoundary || d[0] != '-' || d[1] != '-' {
		return nil
	}
	return d
}

// skipDelimiterPadding skips the spaces and tabs after a delimiter and its
// CRLF, returning the offset after them, or -1 if the line holds more.
func skipDelimiterPadding(body []byte, pos int) int {
	for pos < len(body) && (body[pos] == ' ' || body[pos] == '\t') {
		pos++
	}
	if !bytes.HasPrefix(body[pos:], []byte("\r\n")) {
		return -1
	}
	return pos + 2
}

// headerParam returns the value of the parameter called name in a header
// value like `form-data; name="a"; filename="b.txt"` (the quotes removed,
// backslash escapes left as they are), or nil.
func headerParam(v []byte, name string) []byte {
	// Skip the value before the first parameter.
	i := bytes.IndexByte(v, ';')
	if i < 0 {
		return nil
	}
	v = v[i+1:]
	for len(v) > 0 {
		v = trimSpaceTab(v)
		eq := bytes.IndexByte(v, '=')
		semi := bytes.IndexByte(v, ';')
		if eq < 0 || (semi >= 0 && semi < eq) {
			if semi < 0 {
				return nil
			}
			v = v[semi+1:] // a parameter without a value
			continue
		}
		key := trimSpaceTab(v[:eq])
		rest := trimSpaceTab(v[eq+1:])
		var val []byte
		if len(rest) > 0 && rest[0] == '"' {
			j := 1
			for j < len(rest) && rest[j] != '"' {
				if rest[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(rest) {
				return nil // unterminated quoted string
			}
			val, rest = rest[1:j], rest[j+1:]
			if k := bytes.IndexByte(rest, ';'); k >= 0 {
				rest = rest[k+1:]
			} else {
				rest = rest[len(rest):]
			}
		} else if k := bytes.IndexByte(rest, ';'); k >= 0 {
			val, rest = trimSpaceTab(rest[:k]), rest[k+1:]
		} else {
			val, rest = rest, rest[len(rest):]
		}
		if httpwire.EqualFold(key, name) {
			return val
		}
		v = rest
	}
	return nil
}

// HTTPMultipartBoundary returns the boundary parameter of a
// multipart/form-data (or any multipart/*) request's Content-Type, without
// quotes, or nil if the request is not multipart or has no valid boundary
// (1 to 70 bytes).
func HTTPMultipartBoundary(hm *HTTPMessage) []byte {
	if hm == nil {
		return nil
	}
	ct := trimSpaceTab(hm.Header("Content-Type"))
	if !hasPrefixFold(ct, "multipart/") {
		return nil
	}
	b := headerParam(ct, "boundary")
	if len(b) == 0 || len(b) > maxBoundary || bytes.IndexByte(b, '\\') >= 0 {
		return nil
	}
	return b
}

// HTTPUpload stores a piece of a file sent by Mongoose's upload protocol and
// replies itself: each request (a POST, handled on EvHTTPMsg with its whole
// body, so not streamed with HTTPStreamBody; RecvLimit bounds a piece)
// carries the query variables file=NAME and offset=N (missing means 0) and
// one piece of the file as its body. Offset 0 creates or truncates
// dir/NAME; any other offset must equal the file's current size, and the
// piece is appended there. The reply is 200 with the number of bytes
// written, or:
//   - 400 when NAME is not a plain file name (empty, '/', '\', "..", NUL,
//     an absolute or volume path, or a name the OS reserves), when N is not a
//     decimal number, when N is not the file's size, or when NAME exists
//     and is not a regular file (a symbolic link, say);
//   - 413 when the file would grow past maxSize bytes (negative: no limit);
//   - 500 when the file cannot be opened or written.
//
// The file is opened through os.Root, so nothing outside dir is ever
// written. HTTPUpload returns the bytes written and, when it refused or
// failed, an error saying why.
func HTTPUpload(c *Conn, hm *HTTPMessage, dir string, maxSize int64) (written int64, err error) {
	status, reason, err := httpUpload(hm, dir, maxSize)
	if err != nil {
		HTTPReply(c, status, "Content-Type: text/plain\r\n", "%s\n", reason)
		return 0, err
	}
	HTTPReply(c, 200, "Content-Type: text/plain\r\n", "%d\n", len(hm.Body))
	return int64(len(hm.Body)), nil
}

// httpUpload writes the piece; on failure it returns the status and the
// reason to reply with, and the error to return.
func httpUpload(hm *HTTPMessage, dir string, maxSize int64) (status int, reason string, err error) {
	fail := func(status int, reason string, cause error) (int, string, error) {
		if cause != nil {
			return status, reason, fmt.Errorf("meerkat: upload: %s: %w", reason, cause)
		}
		return status, reason, errors.New("meerkat: upload: " + reason)
	}
	if hm == nil {
		return fail(400, "no request", nil)
	}
	rawName, found := httpVarRaw(hm.Query, "file")
	if !found {
		return fail(400, "missing file variable", nil)
	}
	decoded, err := HTTPURLDecode(rawName, true)
	if err != nil {
		return fail(400, "malformed file variable", err)
	}
	name := string(decoded)
	if !uploadNameOK(name) {
		return fail(400, fmt.Sprintf("bad file name %q", name), nil)
	}
	var offset int64
	if raw, found := httpVarRaw(hm.Query, "offset"); found {
		if offset, err = parseOffset(raw); err != nil {
			return fail(400, fmt.Sprintf("bad offset %q", raw), nil)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fail(500, "cannot open the upload directory", err)
	}
	defer root.Close()
	var have int64 // the file's size now, 0 if it does not exist
	if fi, err := root.Lstat(name); err == nil {
		if !fi.Mode().IsRegular() {
			return fail(400, fmt.Sprintf("%q is not a regular file", name), nil)
		}
		have = fi.Size()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail(500, "cannot inspect the file", err)
	}
	if offset != 0 && offset != have {
		return fail(400, fmt.Sprintf("offset %d is not the file's size %d", offset, have), nil)
	}
	size := int64(len(hm.Body))
	if maxSize >= 0 && (offset > maxSize || size > maxSize-offset) {
		return fail(413, fmt.Sprintf("file larger than %d bytes", maxSize), nil)
	}
	flags := os.O_WRONLY
	if offset == 0 {
		flags |= os.O_CREATE | os.O_TRUNC
	}
	f, err := root.OpenFile(name, flags, 0o644)
	if err != nil {
		return fail(500, "cannot open the file", err)
	}
	if offset != 0 {
		// Checked again on the open file, in case it changed meanwhile.
		if fi, err := f.Stat(); err != nil || fi.Size() != offset || !fi.Mode().IsRegular() {
			f.Close()
			return fail(400, fmt.Sprintf("offset %d is not the file's size", offset), err)
		}
	}
	_, werr := f.WriteAt(hm.Body, offset)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fail(500, "cannot write the file", werr)
	}
	return 200, "", nil
}

// uploadNameOK reports whether name is a plain file name for this OS: not
// empty, no separator, no "..", no NUL, not absolute, not reserved.
func uploadNameOK(name string) bool {
	return name != "" && name != "." &&
		!strings.ContainsAny(name, "/\\\x00") &&
		!strings.Contains(name, "..") &&
		filepath.IsLocal(name) && filepath.Base(name) == name
}

// parseOffset parses a non-negative decimal offset (digits only).
func parseOffset(v []byte) (int64, error) {
	if len(v) == 0 {
		return 0, errors.New("empty")
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, errors.New("not a decimal number")
		}
	}
	return strconv.ParseInt(string(v), 10, 64)
}

// HTTPRedirect replies with a redirect to location: status 301, 302, 303,
// 307 or 308, a Location header, and a short text body. It sends nothing
// and returns an error for another status, an empty location, or one with
// control characters (which would let it inject header lines).
func HTTPRedirect(c *Conn, status int, location string) error {
	switch status {
	case 301, 302, 303, 307, 308:
	default:
		return fmt.Errorf("meerkat: HTTPRedirect: status %d is not a redirect (301, 302, 303, 307, 308)", status)
	}
	if location == "" {
		return errors.New("meerkat: HTTPRedirect: empty location")
	}
	for i := 0; i < len(location); i++ {
		if c := location[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("meerkat: HTTPRedirect: control character %#x in location", c)
		}
	}
	HTTPReply(c, status, "Location: "+location+"\r\nContent-Type: text/plain\r\n", "Redirecting to %s\n", location)
	return nil
}

// HTTPMatch reports whether s matches pattern, Mongoose's glob for routes:
// '?' matches any one byte, '*' any bytes but '/' (none included), '#' any
// bytes (none included); other bytes match themselves. The match of each
// wildcard, in pattern order, is stored in caps[i] as far as caps is long
// (views of s; the remaining caps are set to nil, and all of them when s
// does not match). Where several matches exist, earlier wildcards take the
// fewest bytes. Examples: HTTPMatch("/api/#", uri, nil) and
// HTTPMatch("/users/*/posts/*", uri, caps).
//
// It takes time proportional to len(pattern)·len(s) at worst, never
// exponential, and allocates nothing unless the pattern has more than 16
// '*' and '#'.
func HTTPMatch(pattern string, s []byte, caps [][]byte) bool {
	ok, _ := httpMatch(pattern, s, caps)
	return ok
}

// matchStar is the search state of one '*' or '#' of a pattern.
type matchStar struct {
	pat   int // its index in the pattern
	start int // where its match begins in s
	end   int // where its match ends now (it covers s[start:end])
	limit int // the furthest end its current start allows
	// explored is the furthest end tried from an earlier start: any end up
	// to it is known to fail.
	explored int
}

// httpMatch is HTTPMatch; it also returns the number of steps taken (a
// step compares one pattern segment, or extends one wildcard), which tests
// use to check the bound.
//
// The search is a backtracking one in which earlier wildcards take the
// fewest bytes, made linear per wildcard by this observation: whether the
// rest of the pattern after wildcard k matches depends only on where k's
// match ends. Trying a start for k tries every end from it to its limit
// (the next '/' for '*', the end of s for '#'); a later start that falls
// within ends already tried reaches no new end, so it is skipped. Each
// wildcard's ends are then tried in increasing order, each once.
func httpMatch(pattern string, s []byte, caps [][]byte) (ok bool, steps int) {
	for i := range caps {
		caps[i] = nil
	}
	var buf [16]matchStar
	stars := buf[:0]
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '*' || pattern[i] == '#' {
			stars = append(stars, matchStar{pat: i, explored: -1})
		}
	}
	// segment returns the literal part of the pattern after star k (k = -1:
	// before the first).
	segment := func(k int) string {
		from := 0
		if k >= 0 {
			from = stars[k].pat + 1
		}
		to := len(pattern)
		if k+1 < len(stars) {
			to = stars[k+1].pat
		}
		return pattern[from:to]
	}
	seg := segment(-1)
	steps++
	if !segmentAt(seg, s, 0) {
		return false, steps
	}
	if len(stars) == 0 {
		if len(seg) != len(s) {
			return false, steps
		}
		fillCaps(pattern, s, stars, caps)
		return true, steps
	}

	// enter begins star k's match at start; false if that is known to fail.
	enter := func(k, start int) bool {
		st := &stars[k]
		if start <= st.explored {
			return false
		}
		st.start, st.end = start, start
		st.limit = len(s)
		if pattern[st.pat] == '*' {
			if i := bytes.IndexByte(s[start:], '/'); i >= 0 {
				st.limit = start + i
			}
		}
		st.explored = st.limit
		return true
	}
	k := 0
	if !enter(0, len(seg)) {
		return false, steps
	}
	for {
		st := &stars[k]
		seg := segment(k)
		steps++
		if k+1 == len(stars) {
			// The last star's match can only end where the last segment
			// begins as a suffix of s.
			want := len(s) - len(seg)
			if want >= st.end && want <= st.limit && segmentAt(seg, s, want) {
				st.end = want
				fillCaps(pattern, s, stars, caps)
				return true, steps
			}
			st.end = st.limit
		} else if segmentAt(seg, s, st.end) && enter(k+1, st.end+len(seg)) {
			k++
			continue
		}
		// Extend star k by one byte, or go back to an earlier star.
		for st.end >= st.limit {
			if k == 0 {
				return false, steps
			}
			k--
			st = &stars[k]
		}
		st.end++
	}
}

// segmentAt reports whether the pattern segment seg (literals and '?')
// matches s at offset at.
func segmentAt(seg string, s []byte, at int) bool {
	if at+len(seg) > len(s) {
		return false
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] != '?' && seg[i] != s[at+i] {
			return false
		}
	}
	return true
}

// fillCaps stores the matches of the wildcards in caps.
func fillCaps(pattern string, s []byte, stars []matchStar, caps [][]byte) {
	j, k, n := 0, 0, 0
	for i := 0; i < len(pattern) && n < len(caps); i++ {
		switch pattern[i] {
		case '?':
			caps[n] = s[j : j+1 : j+1]
			n++
			j++
		case '*', '#':
			caps[n] = s[stars[k].start:stars[k].end:stars[k].end]
			j = stars[k].end
			n++
			k++
		default:
			j++
		}
	}
}
