package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// EchoConfig configures an echo throughput run.
type EchoConfig struct {
	Kinds    []Kind
	Conns    int           // client connections, each doing round trips
	Idle     int           // further connections, open and idle during the run
	Size     int           // message size in bytes
	Warmup   time.Duration // run before counting
	Duration time.Duration // counted time per server
	// Pin runs the server on CPU 0 and this process (the load) on CPU 1,
	// with taskset; see Pinning.
	Pin bool
	// CPUProfileDir, if set, receives a CPU profile of each server's run.
	CPUProfileDir string
	Log           io.Writer
}

// EchoResult is one server's throughput.
type EchoResult struct {
	Kind       Kind
	RoundTrips int64
	Elapsed    time.Duration
	ServerCPU  time.Duration // the server process's CPU time while counting; -1 if unknown
	LoadCPU    time.Duration // this process's CPU time while counting; -1 if unknown
}

// RoundTripsPerSec is the echo rate.
func (r EchoResult) RoundTripsPerSec() float64 {
	return float64(r.RoundTrips) / r.Elapsed.Seconds()
}

// CPUPerRoundTrip is the server's CPU time per round trip.
func (r EchoResult) CPUPerRoundTrip() time.Duration { return perRoundTrip(r.ServerCPU, r.RoundTrips) }

// LoadCPUPerRoundTrip is the load's (the clients') CPU time per round trip.
func (r EchoResult) LoadCPUPerRoundTrip() time.Duration { return perRoundTrip(r.LoadCPU, r.RoundTrips) }

func perRoundTrip(cpu time.Duration, n int64) time.Duration {
	if cpu < 0 || n == 0 {
		return -1
	}
	return cpu / time.Duration(n)
}

// clockTick is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// Pinning reports whether pinning can be done here: taskset exists and
// there are at least two CPUs.
func Pinning() bool {
	_, err := exec.LookPath("taskset")
	return err == nil && runtime.NumCPU() >= 2
}

// pinSelf moves every thread of this process to cpu (threads made later
// inherit it) and sizes the scheduler to one CPU.
func pinSelf(cpu int) error {
	out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(cpu), strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset: %v: %s", err, out)
	}
	runtime.GOMAXPROCS(1)
	return nil
}

// RunEcho measures round trips per second for each server in turn.
func RunEcho(cfg EchoConfig) ([]EchoResult, error) {
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	if cfg.Pin {
		if !Pinning() {
			return nil, errors.New("pinning needs taskset and two CPUs")
		}
		if err := pinSelf(1); err != nil {
			return nil, err
		}
	}
	var results []EchoResult
	for _, k := range cfg.Kinds {
		r, err := echoOne(k, cfg)
		if err != nil {
			return results, err
		}
		fmt.Fprintf(logw, "%-22s %9.0f rt/s  CPU per round trip: server %v, load %v\n",
			k, r.RoundTripsPerSec(), r.CPUPerRoundTrip(), r.LoadCPUPerRoundTrip())
		results = append(results, r)
	}
	return results, nil
}

func echoOne(k Kind, cfg EchoConfig) (r EchoResult, err error) {
	if k.HTTP() {
		return r, fmt.Errorf("%s is not an echo server", k)
	}
	r.Kind = k
	opt := childOptions{cpu: -1}
	if cfg.Pin {
		opt.cpu = 0
	}
	if cfg.CPUProfileDir != "" {
		if err := os.MkdirAll(cfg.CPUProfileDir, 0o755); err != nil {
			return r, err
		}
		opt.cpuProfile = filepath.Join(cfg.CPUProfileDir, string(k)+".cpu.pprof")
	}
	c, err := startChild(k, opt)
	if err != nil {
		return r, err
	}
	var conns, idle []net.Conn
	defer func() {
		closeAll(conns)
		if serr := c.stop(); err == nil && serr != nil {
			err = serr
		}
		closeAll(idle)
	}()
	if cfg.Idle > 0 {
		if idle, err = openIdle(k, c.addr, cfg.Idle, 32); err != nil {
			return r, fmt.Errorf("%s: idle connections: %w", k, err)
		}
	}
	for range cfg.Conns {
		nc, err := dial(k, c.addr)
		if err != nil {
			return r, err
		}
		conns = append(conns, nc)
	}

	msg := bytes.Repeat([]byte("meerkat!"), cfg.Size/8+1)[:cfg.Size]
	var counting atomic.Bool
	var stop atomic.Bool
	counts := make([]atomic.Int64, len(conns))
	var wg sync.WaitGroup
	var once sync.Once
	var loadErr error
	deadline := time.Now().Add(cfg.Warmup + cfg.Duration + exchangeTimeout)
	for i, nc := range conns {
		nc.SetDeadline(deadline)
		wg.Go(func() {
			buf := make([]byte, len(msg))
			for !stop.Load() {
				if _, err := nc.Write(msg); err != nil {
					once.Do(func() { loadErr = err })
					return
				}
				if _, err := io.ReadFull(nc, buf); err != nil {
					once.Do(func() { loadErr = err })
					return
				}
				if !bytes.Equal(buf, msg) {
					once.Do(func() { loadErr = errors.New("echo differs from the message") })
					return
				}
				if counting.Load() {
					counts[i].Add(1)
				}
			}
		})
	}
	time.Sleep(cfg.Warmup)
	cpu0, load0 := cpuTicks(c.pid()), cpuTicks(os.Getpid())
	start := time.Now()
	counting.Store(true)
	time.Sleep(cfg.Duration)
	counting.Store(false)
	r.Elapsed = time.Since(start)
	cpu1, load1 := cpuTicks(c.pid()), cpuTicks(os.Getpid())
	stop.Store(true)
	wg.Wait()
	if loadErr != nil {
		return r, fmt.Errorf("%s: %w", k, loadErr)
	}
	for i := range counts {
		r.RoundTrips += counts[i].Load()
	}
	r.ServerCPU, r.LoadCPU = ticksBetween(cpu0, cpu1), ticksBetween(load0, load1)
	return r, nil
}

func ticksBetween(t0, t1 int64) time.Duration {
	if t0 < 0 || t1 < 0 {
		return -1
	}
	return time.Duration(t1-t0) * clockTick
}
