package harness

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// child is a server process started by the harness.
type child struct {
	kind  Kind
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	lines chan string // the child's replies
	addr  string
}

// childOptions say how to start a server process.
type childOptions struct {
	cpu         int      // pin to this CPU with taskset; -1 for no pinning
	profileRate int      // runtime.MemProfileRate in the child; 0 keeps the default
	cpuProfile  string   // file for a CPU profile of the child's whole run
	env         []string // more environment variables, "NAME=value"
	gomaxprocs  int      // GOMAXPROCS of the child; 0 leaves it to the runtime
}

// replyTimeout bounds the wait for one answer of a child (a collection with
// 10,000 connections open takes well under a second).
const replyTimeout = time.Minute

func startChild(k Kind, opt childOptions) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if opt.cpu >= 0 {
		cmd = exec.Command("taskset", "-c", strconv.Itoa(opt.cpu), exe)
	} else {
		cmd = exec.Command(exe)
	}
	cmd.Env = append(os.Environ(), envServe+"="+string(k))
	if opt.profileRate != 0 {
		cmd.Env = append(cmd.Env, envProfileRate+"="+strconv.Itoa(opt.profileRate))
	}
	if opt.cpuProfile != "" {
		cmd.Env = append(cmd.Env, envCPUProfile+"="+opt.cpuProfile)
	}
	cmd.Env = append(cmd.Env, opt.env...)
	if opt.gomaxprocs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(opt.gomaxprocs))
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s server: %w", k, err)
	}
	c := &child{kind: k, cmd: cmd, in: in, out: bufio.NewReader(out), lines: make(chan string, 1)}
	go func() {
		defer close(c.lines)
		for {
			line, err := c.out.ReadString('\n')
			if line = strings.TrimSpace(line); line != "" {
				c.lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	line, err := c.next()
	if err == nil {
		var ok bool
		if c.addr, ok = strings.CutPrefix(line, "addr "); !ok {
			err = fmt.Errorf("unexpected first line %q", line)
		}
	}
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%s server: %w", k, err)
	}
	return c, nil
}

// pid is the server process's id (taskset execs the server in its place).
func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) next() (string, error) {
	select {
	case line, ok := <-c.lines:
		if !ok {
			return "", errors.New("server process ended")
		}
		return line, nil
	case <-time.After(replyTimeout):
		return "", errors.New("no answer from the server process")
	}
}

// ask sends one command and returns the answer without its first word, which
// must be want.
func (c *child) ask(cmd, want string) (string, error) {
	if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
		return "", fmt.Errorf("%s server: %w", c.kind, err)
	}
	line, err := c.next()
	if err != nil {
		return "", fmt.Errorf("%s server: %s: %w", c.kind, cmd, err)
	}
	word, rest, _ := strings.Cut(line, " ")
	if word != want {
		return "", fmt.Errorf("%s server: %s: %s", c.kind, cmd, line)
	}
	return rest, nil
}

func (c *child) conns() (int64, error) {
	s, err := c.ask("conns", "conns")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

func (c *child) stats() (Stats, error) {
	var st Stats
	s, err := c.ask("stats", "stats")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal([]byte(s), &st)
}

// mallocs is the number of heap objects the server has allocated so far.
func (c *child) mallocs() (uint64, error) {
	s, err := c.ask("mallocs", "mallocs")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(s, 10, 64)
}

// handshakes returns the TLS handshakes the server completed so far, full
// and resumed.
func (c *child) handshakes() (full, resumed int64, err error) {
	s, err := c.ask("handshakes", "handshakes")
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscan(s, &full, &resumed); err != nil {
		return 0, 0, fmt.Errorf("%s server: handshakes: %q: %v", c.kind, s, err)
	}
	return full, resumed, nil
}

func (c *child) profile(path string) error {
	_, err := c.ask("profile "+path, "ok")
	return err
}

// waitConns waits until the server has exactly n connections open.
func (c *child) waitConns(n int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := c.conns()
		if err != nil {
			return err
		}
		if got == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s server has %d connections open, want %d", c.kind, got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop asks the server to quit and waits for the process, killing it if it
// does not end within a few seconds.
func (c *child) stop() error {
	io.WriteString(c.in, "quit\n")
	c.in.Close()
	done := make(chan error, 1)
	go func() {
		for range c.lines { // let the reader goroutine finish
		}
		done <- c.cmd.Wait()
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s server did not quit; killed", c.kind)
	}
}

// cpuTicks is the process's user+system CPU time in clock ticks, from
// /proc/PID/stat (fields 14 and 15), -1 where it cannot be read.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + st
}

// machineTicks returns the machine's busy and total CPU time in clock
// ticks, all CPUs together, from the first line of /proc/stat (busy: user,
// nice, system, irq, softirq, steal; total adds idle and iowait); -1, -1
// where it cannot be read.
func machineTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1, -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1, -1
	}
	var v [8]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return -1, -1
		}
	}
	busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	return busy, busy + v[3] + v[4]
}
