package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/meerkat-net/meerkat"
)

const fetchHelp = `Usage:
  meerkat get URL [flags]
  meerkat post URL -d DATA|@FILE [flags]

Fetch URL (http:// or https://; http:// is assumed without a scheme) and write
the response body to standard output, or to FILE with -o. "post" sends DATA,
or the contents of FILE with -d @FILE (standard input with -d @-), as an
application/x-www-form-urlencoded body unless -H sets a Content-Type.

Certificates are verified against the system's roots unless --insecure.
The exit status is 0 on success, 1 on a network, TLS or local error, 2 on a
bad command line, and 4 when the server answered with a status of 400 or
more (the body is still written).

Flags:
`

// headerList collects repeated -H flags.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error {
	name, _, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(v, "\r\n") {
		return fmt.Errorf("want 'Name: value', got %q", v)
	}
	*h = append(*h, v)
	return nil
}

// parseFlags parses flags that may come before or after the positional
// arguments, which it returns.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runFetch(ctx context.Context, method string, args []string, std stdio) int {
	fs := flag.NewFlagSet("meerkat "+strings.ToLower(method), flag.ContinueOnError)
	fs.SetOutput(std.err)
	var headers headerList
	fs.Var(&headers, "H", "add a request header `'Name: value'` (repeatable)")
	output := fs.String("o", "", "write the body to `FILE` instead of standard output")
	include := fs.Bool("i", false, "write the response head before the body")
	insecure := fs.Bool("insecure", false, "do not verify the server's certificate")
	var data *string
	if method == "POST" {
		data = fs.String("d", "", "send `DATA`, or @FILE's contents (@- for standard input)")
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), fetchHelp)
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err == flag.ErrHelp {
		fs.SetOutput(std.out)
		fs.Usage()
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintf(std.err, "meerkat %s: want exactly one URL\n", strings.ToLower(method))
		return exitUsage
	}
	var body []byte
	if data != nil {
		if body, err = readData(*data, std.in); err != nil {
			fmt.Fprintf(std.err, "meerkat post: %v\n", err)
			return exitFailure
		}
	}
	f := &fetch{method: method, include: *include, std: std, body: body}
	if err := f.prepare(pos[0], headers); err != nil {
		fmt.Fprintf(std.err, "meerkat %s: %v\n", strings.ToLower(method), err)
		return exitUsage
	}
	if *output != "" {
		file, err := os.Create(*output)
		if err != nil {
			fmt.Fprintf(std.err, "meerkat: %v\n", err)
			return exitFailure
		}
		f.dest, f.file, f.progress = file, file, std.errIsTTY
	} else {
		f.dest = std.out
	}
	return f.run(ctx, *insecure)
}

// readData returns -d's body: literal, @FILE, or @- for standard input.
func readData(d string, stdin io.Reader) ([]byte, error) {
	switch {
	case d == "@-":
		return io.ReadAll(stdin)
	case strings.HasPrefix(d, "@"):
		return os.ReadFile(d[1:])
	}
	return []byte(d), nil
}

// fetch is one get or post.
type fetch struct {
	method   string
	url      string
	target   string
	headers  string
	body     []byte
	include  bool
	std      stdio
	dest     io.Writer
	file     *os.File // with -o
	progress bool

	status    int
	length    int64 // declared body length, -1 if unknown
	got       int64
	err       error
	closed    bool
	lastShown time.Time
}

// prepare checks the URL and builds the request's target and headers.
func (f *fetch) prepare(raw string, headers headerList) error {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("unsupported scheme %q (want http or https)", u.Scheme)
	}
	f.url = u.Scheme + "://" + u.Host
	f.target = u.EscapedPath()
	if f.target == "" {
		f.target = "/"
	}
	if u.RawQuery != "" {
		f.target += "?" + u.RawQuery
	}
	var b strings.Builder
	has := func(name string) bool {
		for _, h := range headers {
			if n, _, _ := strings.Cut(h, ":"); strings.EqualFold(strings.TrimSpace(n), name) {
				return true
			}
		}
		return false
	}
	if !has("User-Agent") {
		b.WriteString("User-Agent: meerkat\r\n")
	}
	if !has("Accept") {
		b.WriteString("Accept: */*\r\n")
	}
	if f.method == "POST" && !has("Content-Type") {
		b.WriteString("Content-Type: application/x-www-form-urlencoded\r\n")
	}
	if !has("Connection") {
		b.WriteString("Connection: close\r\n")
	}
	for _, h := range headers {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	f.headers = b.String()
	return nil
}

func (f *fetch) run(ctx context.Context, insecure bool) int {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	mgr.TLSConfig = &tls.Config{InsecureSkipVerify: insecure}
	if _, err := mgr.HTTPConnect(f.url, f.handle); err != nil {
		fmt.Fprintf(f.std.err, "meerkat: %v\n", err)
		return exitFailure
	}
	for !f.closed {
		if ctx.Err() != nil {
			f.err = errors.New("interrupted")
			break
		}
		mgr.Poll(100 * time.Millisecond)
	}
	if f.file != nil {
		if err := f.file.Close(); err != nil && f.err == nil {
			f.err = err
		}
	}
	if f.progress && f.got > 0 {
		fmt.Fprintln(f.std.err)
	}
	switch {
	case f.err != nil:
		fmt.Fprintf(f.std.err, "meerkat: %v\n", f.err)
		return exitFailure
	case f.status >= 400:
		fmt.Fprintf(f.std.err, "meerkat: %s answered %d %s\n", f.url, f.status, meerkat.HTTPStatusText(f.status))
		return exitHTTPError
	case f.status == 0:
		fmt.Fprintf(f.std.err, "meerkat: no response from %s\n", f.url)
		return exitFailure
	}
	return exitOK
}

func (f *fetch) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvConnect:
		// Queued now, sent after the TLS handshake for https.
		meerkat.HTTPSendRequest(c, f.method, f.target, f.headers, f.body)
	case meerkat.EvHTTPHeaders:
		hm := data.(*meerkat.HTTPMessage)
		f.status, f.length = hm.Status, hm.ContentLength
		if f.include {
			f.write(c, hm.Head)
		}
		meerkat.HTTPStreamBody(c) // bodies of any size, in bounded memory
	case meerkat.EvHTTPChunk:
		hm := data.(*meerkat.HTTPMessage)
		f.got += int64(len(hm.Body))
		f.write(c, hm.Body)
		f.showProgress(false)
	case meerkat.EvHTTPMsg:
		f.showProgress(true)
		c.Close() // one request per run
	case meerkat.EvError:
		if f.err == nil {
			f.err = data.(error)
		}
	case meerkat.EvClose:
		f.closed = true
	}
}

func (f *fetch) write(c *meerkat.Conn, p []byte) {
	if f.err != nil {
		return
	}
	if _, err := f.dest.Write(p); err != nil {
		f.err = err
		c.Close()
	}
}

// showProgress draws "NAME  42% 1.2 MiB of 2.9 MiB" on a terminal's stderr,
// at most ten times a second.
func (f *fetch) showProgress(final bool) {
	if !f.progress || (!final && time.Since(f.lastShown) < 100*time.Millisecond) {
		return
	}
	f.lastShown = time.Now()
	if f.length > 0 {
		fmt.Fprintf(f.std.err, "\r%s  %3d%%  %s of %s ", f.file.Name(), f.got*100/f.length, size(f.got), size(f.length))
	} else {
		fmt.Fprintf(f.std.err, "\r%s  %s ", f.file.Name(), size(f.got))
	}
}

// size formats a byte count for people.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
