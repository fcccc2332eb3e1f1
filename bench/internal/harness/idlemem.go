package harness

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"
)

// IdleMemConfig configures an idle-memory run.
type IdleMemConfig struct {
	Kinds       []Kind
	Conns       int    // connections held open per server
	Parallel    int    // connections being set up at a time
	ProfileDir  string // if set, each server writes a heap profile here
	ProfileRate int    // the servers' runtime.MemProfileRate with ProfileDir (default 1: every allocation)
	Log         io.Writer
}

// IdleMemResult is one server's memory before and after its connections.
type IdleMemResult struct {
	Kind    Kind
	Conns   int
	Before  Stats // listener open, no connection yet
	After   Stats // every connection open and idle after its exchange
	Profile string
}

// RSSPerConnKiB is the growth of the resident set per connection.
func (r IdleMemResult) RSSPerConnKiB() float64 {
	return float64(r.After.RSSKiB-r.Before.RSSKiB) / float64(r.Conns)
}

// HeapPerConnKiB is the growth of the Go heap in use per connection.
func (r IdleMemResult) HeapPerConnKiB() float64 {
	return (float64(r.After.HeapInuse) - float64(r.Before.HeapInuse)) / 1024 / float64(r.Conns)
}

// StackPerConnKiB is the growth of goroutine stacks in use per connection.
func (r IdleMemResult) StackPerConnKiB() float64 {
	return (float64(r.After.StackInuse) - float64(r.Before.StackInuse)) / 1024 / float64(r.Conns)
}

// GoroutinesPerConn is the growth of the goroutine count per connection.
func (r IdleMemResult) GoroutinesPerConn() float64 {
	return float64(r.After.Goroutines-r.Before.Goroutines) / float64(r.Conns)
}

// RunIdleMem measures, for each server in turn, the resident memory per idle
// connection: the server runs in a child process (so that its connections
// and the clients' do not share one descriptor limit), the clients here.
func RunIdleMem(cfg IdleMemConfig) ([]IdleMemResult, error) {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 32
	}
	if cfg.ProfileDir != "" && cfg.ProfileRate == 0 {
		cfg.ProfileRate = 1
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	var results []IdleMemResult
	for _, k := range cfg.Kinds {
		start := time.Now()
		r, err := idleMemOne(k, cfg)
		if err != nil {
			return results, err
		}
		fmt.Fprintf(logw, "%-22s %6d conns  RSS %7d -> %7d KiB  %6.2f KiB/conn  goroutines %d -> %d  (%v)\n",
			k, r.Conns, r.Before.RSSKiB, r.After.RSSKiB, r.RSSPerConnKiB(),
			r.Before.Goroutines, r.After.Goroutines, time.Since(start).Round(time.Millisecond))
		results = append(results, r)
	}
	return results, nil
}

func idleMemOne(k Kind, cfg IdleMemConfig) (r IdleMemResult, err error) {
	r = IdleMemResult{Kind: k, Conns: cfg.Conns}
	opt := childOptions{cpu: -1}
	if cfg.ProfileDir != "" {
		opt.profileRate = cfg.ProfileRate
	}
	c, err := startChild(k, opt)
	if err != nil {
		return r, err
	}
	var clients []net.Conn
	defer func() {
		// The server goes first: its sockets, not the clients' ephemeral
		// ports, keep the TIME_WAIT entries.
		if serr := c.stop(); err == nil && serr != nil {
			err = serr
		}
		closeAll(clients)
	}()
	if r.Before, err = c.stats(); err != nil {
		return r, err
	}
	if clients, err = openIdle(k, c.addr, cfg.Conns, cfg.Parallel); err != nil {
		return r, fmt.Errorf("%s: %w", k, err)
	}
	if err := c.waitConns(int64(cfg.Conns), 30*time.Second); err != nil {
		return r, err
	}
	// Handshake goroutines and the like end just after the last exchange:
	// measure until two readings agree on the goroutine count.
	for range 20 {
		if r.After, err = c.stats(); err != nil {
			return r, err
		}
		time.Sleep(100 * time.Millisecond)
		again, err := c.stats()
		if err != nil {
			return r, err
		}
		if again.Goroutines == r.After.Goroutines {
			r.After = again
			break
		}
	}
	if r.After.Conns != int64(cfg.Conns) {
		return r, fmt.Errorf("%s: %d connections open at the measurement, want %d", k, r.After.Conns, cfg.Conns)
	}
	if cfg.ProfileDir != "" {
		r.Profile = filepath.Join(cfg.ProfileDir, string(k)+".heap.pprof")
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return r, err
		}
		if err := c.profile(r.Profile); err != nil {
			return r, err
		}
	}
	return r, nil
}
