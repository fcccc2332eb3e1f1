package harness

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LoadSpec is one load run against an HTTP server.
type LoadSpec struct {
	URL      string // http://HOST:PORT/PATH or https://...
	Conns    int    // connections, each with one request outstanding
	Duration time.Duration
	Close    bool // send "Connection: close": a new connection per request
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Requests     int64         // complete responses
	Duration     time.Duration // the run's length as the load reports it
	Rate         float64       // requests per second as the load reports it
	P50, P99     time.Duration // latency percentiles
	BytesRead    int64         // response bytes, heads included (wrk's "read"); approximate
	Non2xx       int64         // responses with a status other than 2xx or 3xx
	SocketErrors [4]int64      // connect, read, write, timeout
	CPU          time.Duration // the load's own CPU time (user+system); -1 if unknown
	Output       string        // the load's own report (wrk's output)
}

// Errors describes the run's errors, "" if there was none.
func (r LoadResult) Errors() string {
	var parts []string
	for i, name := range []string{"connect", "read", "write", "timeout"} {
		if n := r.SocketErrors[i]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, n))
		}
	}
	if r.Non2xx > 0 {
		parts = append(parts, fmt.Sprintf("non-2xx/3xx %d", r.Non2xx))
	}
	if len(parts) == 0 {
		return ""
	}
	return "socket errors: " + strings.Join(parts, ", ")
}

// Load generates HTTP load.
type Load interface {
	Run(spec LoadSpec) (LoadResult, error)
}

// Wrk runs wrk (https://github.com/wg/wrk, the Debian package) as the load:
// `wrk -t1 -cN -dDs --latency [-H "Connection: close"] URL`, pinned with
// taskset to CPU when CPU >= 0.
type Wrk struct {
	Path    string // the wrk executable ("wrk" when empty)
	Threads int    // -t (1 when 0)
	CPU     int    // taskset -c CPU; -1 for no pinning
}

// Args are the command's arguments for spec, the executable first.
func (w Wrk) Args(spec LoadSpec) []string {
	path := w.Path
	if path == "" {
		path = "wrk"
	}
	threads := max(w.Threads, 1)
	secs := max(int((spec.Duration+time.Second-1)/time.Second), 1)
	args := []string{path, "-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(max(spec.Conns, threads)),
		"-d" + strconv.Itoa(secs) + "s", "--latency"}
	if spec.Close {
		args = append(args, "-H", "Connection: close")
	}
	args = append(args, spec.URL)
	if w.CPU >= 0 {
		args = append([]string{"taskset", "-c", strconv.Itoa(w.CPU)}, args...)
	}
	return args
}

// Run runs wrk once and parses its report.
func (w Wrk) Run(spec LoadSpec) (LoadResult, error) {
	args := w.Args(spec)
	cmd := exec.Command(args[0], args[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return LoadResult{Output: string(out)}, fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r, err := ParseWrk(string(out))
	// taskset execs wrk in its own process: the rusage is wrk's.
	r.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if err != nil {
		return r, fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return r, nil
}

var (
	wrkTotal   = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m|h), ([0-9.]+)([KMGT]?B) read`)
	wrkRate    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	wrkSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// ParseWrk reads wrk's report (run with --latency).
func ParseWrk(out string) (LoadResult, error) {
	r := LoadResult{Output: out}
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("no request count in wrk's output")
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.Duration = wrkDuration(m[2], m[3])
	f, _ := strconv.ParseFloat(m[4], 64)
	r.BytesRead = int64(f * float64(wrkUnit(m[5])))
	if m := wrkRate.FindStringSubmatch(out); m != nil {
		r.Rate, _ = strconv.ParseFloat(m[1], 64)
	} else {
		return r, errors.New("no Requests/sec in wrk's output")
	}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		d := wrkDuration(m[2], m[3])
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if r.Requests > 0 && (r.P50 == 0 || r.P99 == 0) {
		return r, errors.New("no latency distribution in wrk's output (--latency)")
	}
	if m := wrkSockErr.FindStringSubmatch(out); m != nil {
		for i := range r.SocketErrors {
			r.SocketErrors[i], _ = strconv.ParseInt(m[i+1], 10, 64)
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

func wrkDuration(num, unit string) time.Duration {
	f, _ := strconv.ParseFloat(num, 64)
	u := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second,
		"m": time.Minute, "h": time.Hour}[unit]
	return time.Duration(f * float64(u))
}

// wrkUnit is wrk's byte unit (powers of 1024).
func wrkUnit(u string) int64 {
	switch u {
	case "KB":
		return 1 << 10
	case "MB":
		return 1 << 20
	case "GB":
		return 1 << 30
	case "TB":
		return 1 << 40
	}
	return 1
}

// GoLoad is a small load written with the standard library, for the tests
// (and machines without wrk): each connection sends a GET and reads the
// whole response before the next, as wrk does.
type GoLoad struct{}

// Run runs the load for spec.Duration.
func (GoLoad) Run(spec LoadSpec) (LoadResult, error) {
	u, err := url.Parse(spec.URL)
	if err != nil {
		return LoadResult{}, err
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n"
	if spec.Close {
		req += "Connection: close\r\n"
	}
	req += "\r\n"
	useTLS := u.Scheme == "https"
	var (
		requests, non2xx, read atomic.Int64
		mu                     sync.Mutex
		lat                    []time.Duration
		firstErr               error
		wg                     sync.WaitGroup
	)
	cpu0 := cpuTicks(os.Getpid())
	start := time.Now()
	deadline := start.Add(spec.Duration)
	for range max(spec.Conns, 1) {
		wg.Go(func() {
			var mine []time.Duration
			var nc net.Conn
			var br *bufio.Reader
			defer func() {
				if nc != nil {
					nc.Close()
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
			fail := func(err error) {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if nc == nil {
					c, err := dialHTTP(u.Host, useTLS)
					if err != nil {
						fail(err)
						return
					}
					nc = c
					nc.SetDeadline(deadline.Add(exchangeTimeout))
					br = bufio.NewReaderSize(nc, 16<<10)
				}
				if _, err := io.WriteString(nc, req); err != nil {
					fail(err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail(err)
					return
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					fail(err)
					return
				}
				mine = append(mine, time.Since(t0))
				requests.Add(1)
				read.Add(n)
				if resp.StatusCode >= 400 {
					non2xx.Add(1)
				}
				if spec.Close || resp.Close {
					nc.Close()
					nc = nil
				}
			}
		})
	}
	wg.Wait()
	r := LoadResult{Requests: requests.Load(), Duration: time.Since(start), Non2xx: non2xx.Load(), BytesRead: read.Load(),
		CPU: ticksBetween(cpu0, cpuTicks(os.Getpid()))}
	r.Rate = float64(r.Requests) / r.Duration.Seconds()
	slices.Sort(lat)
	if len(lat) > 0 {
		r.P50, r.P99 = lat[len(lat)*50/100], lat[len(lat)*99/100]
	}
	return r, firstErr
}

// dialHTTP connects to addr, over TLS (no verification, no ALPN) when
// useTLS.
func dialHTTP(addr string, useTLS bool) (net.Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, exchangeTimeout)
	if err != nil || !useTLS {
		return nc, err
	}
	tc := tls.Client(nc, ClientTLSConfig())
	tc.SetDeadline(time.Now().Add(exchangeTimeout))
	if err := tc.Handshake(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// probeHTTP does one GET of rawURL on a new connection and checks the
// answer: status 200, a body of wantLen bytes (and equal to want when that
// is not nil), Content-Type starting with wantType when that is set. It
// returns the response's headers.
func probeHTTP(rawURL string, close bool, want []byte, wantLen int64, wantType string) (http.Header, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	nc, err := dialHTTP(u.Host, u.Scheme == "https")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(exchangeTimeout))
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n"
	if close {
		req += "Connection: close\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		return nil, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.Header, fmt.Errorf("GET %s: %s", u.Path, resp.Status)
	}
	var body []byte
	var n int64
	if want != nil {
		body, err = io.ReadAll(resp.Body)
		n = int64(len(body))
	} else {
		n, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return resp.Header, fmt.Errorf("GET %s: body: %w", u.Path, err)
	}
	if n != wantLen {
		return resp.Header, fmt.Errorf("GET %s: %d bytes, want %d", u.Path, n, wantLen)
	}
	if want != nil && !bytes.Equal(body, want) {
		return resp.Header, fmt.Errorf("GET %s: body differs", u.Path)
	}
	if ct := resp.Header.Get("Content-Type"); wantType != "" && !strings.HasPrefix(ct, wantType) {
		return resp.Header, fmt.Errorf("GET %s: Content-Type %q, want %s", u.Path, ct, wantType)
	}
	if close {
		// The server must close: nothing more, then EOF.
		if b, err := br.ReadByte(); err != io.EOF {
			return resp.Header, fmt.Errorf("GET %s with Connection: close: read %q, %v after the response, want EOF", u.Path, b, err)
		}
	}
	return resp.Header, nil
}
