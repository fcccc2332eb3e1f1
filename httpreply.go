package meerkat

import (
	"fmt"
	"strconv"
	"strings"
)

// HTTPReply sends a whole response: the status line, headers (each line
// ending in "\r\n", such as "Content-Type: text/plain\r\n"), Content-Length,
// and the body formatted like fmt.Sprintf(format, args...). A response to
// HEAD, a 1xx, 204 or 304 carries no body. When the request asked to close
// (or was HTTP/1.0 without keep-alive) the reply says "Connection: close" and
// the connection closes after it.
func HTTPReply(c *Conn, status int, headers string, format string, args ...any) {
	m := c.m
	var body []byte
	if len(args) == 0 && !strings.Contains(format, "%") {
		body = append(m.fmtBuf[:0], format...)
	} else {
		body = fmt.Appendf(m.fmtBuf[:0], format, args...)
	}
	m.fmtBuf = body
	h := httpOf(c)
	noBody := status < 200 || status == 204 || status == 304
	b := httpStatusLine(m.headBuf[:0], status)
	b = append(b, headers...)
	if !noBody {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, httpConnectionHeader(c)...)
	b = append(b, "\r\n"...)
	m.headBuf = b
	if h != nil && h.access != nil && h.access.Status == 0 {
		h.access.Status = status
	}
	if !noBody && !(h != nil && h.isHead) {
		// One Send keeps the response whole: it is queued entirely or
		// refused entirely.
		b = append(b, body...)
		m.headBuf = b
	}
	c.Send(b)
	if cap(m.headBuf) > 64<<10 {
		m.headBuf = nil
	}
	httpResponseDone(c)
}

// httpStatusLine appends "HTTP/1.1 200 OK\r\n".
func httpStatusLine(b []byte, status int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, HTTPStatusText(status)...)
	return append(b, "\r\n"...)
}

// HTTPWriteChunk sends p as one chunk of a chunked response (whose head said
// "Transfer-Encoding: chunked"); an empty p sends the last chunk and ends
// the response. Nothing of the body is sent in reply to HEAD.
func HTTPWriteChunk(c *Conn, p []byte) {
	h := httpOf(c)
	if h != nil && h.isHead {
		h.chunking = len(p) > 0
		if len(p) == 0 {
			httpResponseDone(c)
		}
		return
	}
	m := c.m
	if len(p) == 0 {
		c.Send([]byte("0\r\n\r\n"))
		if h != nil {
			h.chunking = false
		}
		httpResponseDone(c)
		return
	}
	if h != nil && !h.client {
		h.chunking = true // the exchange stays open until the last chunk
	}
	b := strconv.AppendInt(m.headBuf[:0], int64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	b = append(b, "\r\n"...)
	m.headBuf = b
	c.Send(b)
	if cap(m.headBuf) > 64<<10 {
		m.headBuf = nil
	}
}

// HTTPPrintfChunk formats like fmt.Sprintf and sends the result as one
// chunk (see HTTPWriteChunk); an empty result ends the response.
func HTTPPrintfChunk(c *Conn, format string, args ...any) {
	m := c.m
	m.fmtBuf = fmt.Appendf(m.fmtBuf[:0], format, args...)
	HTTPWriteChunk(c, m.fmtBuf)
}

// HTTPStatusText returns the reason phrase of a status code ("Not Found"),
// or "Status N" for an unknown one.
func HTTPStatusText(status int) string {
	if s, ok := statusText[status]; ok {
		return s
	}
	return "Status " + strconv.Itoa(status)
}

var statusText = map[int]string{
	100: "Continue",
	101: "Switching Protocols",
	102: "Processing",
	103: "Early Hints",
	200: "OK",
	201: "Created",
	202: "Accepted",
	203: "Non-Authoritative Information",
	204: "No Content",
	205: "Reset Content",
	206: "Partial Content",
	207: "Multi-Status",
	208: "Already Reported",
	226: "IM Used",
	300: "Multiple Choices",
	301: "Moved Permanently",
	302: "Found",
	303: "See Other",
	304: "Not Modified",
	305: "Use Proxy",
	307: "Temporary Redirect",
	308: "Permanent Redirect",
	400: "Bad Request",
	401: "Unauthorized",
	402: "Payment Required",
	403: "Forbidden",
	404: "Not Found",
	405: "Method Not Allowed",
	406: "Not Acceptable",
	407: "Proxy Authentication Required",
	408: "Request Timeout",
	409: "Conflict",
	410: "Gone",
	411: "Length Required",
	412: "Precondition Failed",
	413: "Content Too Large",
	414: "URI Too Long",
	415: "Unsupported Media Type",
	416: "Range Not Satisfiable",
	417: "Expectation Failed",
	418: "I'm a teapot",
	421: "Misdirected Request",
	422: "Unprocessable Content",
	423: "Locked",
	424: "Failed Dependency",
	425: "Too Early",
	426: "Upgrade Required",
	428: "Precondition Required",
	429: "Too Many Requests",
	431: "Request Header Fields Too Large",
	451: "Unavailable For Legal Reasons",
	500: "Internal Server Error",
	501: "Not Implemented",
	502: "Bad Gateway",
	503: "Service Unavailable",
	504: "Gateway Timeout",
	505: "HTTP Version Not Supported",
	506: "Variant Also Negotiates",
	507: "Insufficient Storage",
	508: "Loop Detected",
	510: "Not Extended",
	511: "Network Authentication Required",
}
