package harness

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/meerkat-net/meerkat"
)

// MQTTBroker names one MQTT broker of the MQTT benchmarks (issue 5).
type MQTTBroker string

// The brokers.
const (
	MQTTMeerkatEpoll    MQTTBroker = "meerkat-epoll"    // MQTTListen on the epoll driver, default settings
	MQTTMeerkatPortable MQTTBroker = "meerkat-portable" // the same on the portable driver
	MQTTMochi           MQTTBroker = "mochi"            // mochi-mqtt/server/v2 v2.7.9, TCP listener, auth.AllowHook
	MQTTMosquitto       MQTTBroker = "mosquitto"        // the Debian package's /usr/sbin/mosquitto, its own config
)

// MQTTBrokers lists every broker, in the order reports show them.
var MQTTBrokers = []MQTTBroker{MQTTMeerkatEpoll, MQTTMeerkatPortable, MQTTMochi, MQTTMosquitto}

// ParseMQTTBrokers parses a comma-separated list of brokers ("all" for
// every one).
func ParseMQTTBrokers(s string) ([]MQTTBroker, error) {
	if s == "" || s == "all" {
		return MQTTBrokers, nil
	}
	var out []MQTTBroker
	for _, f := range strings.Split(s, ",") {
		v := MQTTBroker(strings.TrimSpace(f))
		found := false
		for _, k := range MQTTBrokers {
			found = found || k == v
		}
		if !found {
			return nil, fmt.Errorf("unknown MQTT broker %q (known: %v)", v, MQTTBrokers)
		}
		out = append(out, v)
	}
	return out, nil
}

// goBroker reports whether the broker is a Go broker run in a child process
// of the harness (else an external program).
func (b MQTTBroker) goBroker() bool { return b != MQTTMosquitto }

// mqttKindPrefix marks a child process's Kind as an MQTT benchmark broker:
// "mqttbench/BROKER".
const mqttKindPrefix = "mqttbench/"

// MosquittoPath is the Mosquitto executable the benchmark runs.
var MosquittoPath = "/usr/sbin/mosquitto"

// startMQTTServer starts, in the child process, the Go broker that name
// (the kind after mqttKindPrefix) names.
func startMQTTServer(name string) (server, error) {
	switch MQTTBroker(name) {
	case MQTTMeerkatEpoll, MQTTMeerkatPortable:
		return startMQTTMeerkat(strings.TrimPrefix(name, "meerkat-"))
	case MQTTMochi:
		return startMQTTMochi()
	}
	return nil, fmt.Errorf("unknown Go MQTT broker %q", name)
}

// mqttMeerkatServer is Meerkat's broker with its default settings. Its
// Manager is created, listens, polls and is closed on one goroutine.
type mqttMeerkatServer struct {
	addr     string
	m        *meerkat.Manager // only for Wakeup, safe from any goroutine
	listener uint64
	conns    atomic.Int64
	stopping atomic.Bool
	wantInfo atomic.Bool
	info     chan string
	done     chan struct{}
}

func startMQTTMeerkat(drv string) (*mqttMeerkatServer, error) {
	s := &mqttMeerkatServer{info: make(chan string, 1), done: make(chan struct{})}
	ready := make(chan error, 1)
	go s.run(drv, ready)
	if err := <-ready; err != nil {
		<-s.done
		return nil, err
	}
	return s, nil
}

func (s *mqttMeerkatServer) run(drv string, ready chan<- error) {
	defer close(s.done)
	m, err := meerkat.NewManagerDriver(drv)
	if err != nil {
		ready <- err
		return
	}
	defer m.Close()
	m.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := m.MQTTListen("mqtt://127.0.0.1:0", s.handle)
	if err != nil {
		ready <- err
		return
	}
	s.addr, s.m, s.listener = l.LocalAddr().String(), m, l.ID()
	ready <- nil
	for !s.stopping.Load() {
		m.Poll(time.Second)
		if s.wantInfo.Swap(false) {
			st := m.MQTTStats()
			s.info <- fmt.Sprintf("received=%d delivered=%d dropped_qos0=%d dropped_queueful=%d paused=%d slow_disconnected=%d",
				st.Received, st.Delivered, st.DroppedQoS0, st.DroppedQueueful, st.Paused, st.SlowDropped)
		}
	}
}

func (s *mqttMeerkatServer) handle(c *meerkat.Conn, ev meerkat.Event, _ any) {
	switch ev {
	case meerkat.EvAccept:
		s.conns.Add(1)
	case meerkat.EvClose:
		if c.IsAccepted() {
			s.conns.Add(-1)
		}
	}
}

func (s *mqttMeerkatServer) Addr() string { return s.addr }
func (s *mqttMeerkatServer) Conns() int64 { return s.conns.Load() }

// Info returns the broker's counters (MQTTStats), read on the Poll
// goroutine.
func (s *mqttMeerkatServer) Info() string {
	s.wantInfo.Store(true)
	s.m.Wakeup(s.listener, nil)
	select {
	case v := <-s.info:
		return v
	case <-time.After(10 * time.Second):
		return "unavailable"
	}
}

// Stop ends the Poll loop; its goroutine closes the Manager.
func (s *mqttMeerkatServer) Stop() {
	s.stopping.Store(true)
	s.m.Wakeup(s.listener, nil)
	<-s.done
}

// mqttMochiServer is mochi-mqtt with its default options, a TCP listener
// and the allow-all authentication hook.
type mqttMochiServer struct {
	srv *mochi.Server
	tcp *listeners.TCP
}

func startMQTTMochi() (*mqttMochiServer, error) {
	srv := mochi.New(&mochi.Options{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "bench", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		return nil, err
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, err
	}
	return &mqttMochiServer{srv: srv, tcp: tcp}, nil
}

func (s *mqttMochiServer) Addr() string { return s.tcp.Address() }
func (s *mqttMochiServer) Conns() int64 { return atomic.LoadInt64(&s.srv.Info.ClientsConnected) }
func (s *mqttMochiServer) Stop()        { s.srv.Close() }

// Info returns mochi's own counters.
func (s *mqttMochiServer) Info() string {
	in := s.srv.Info.Clone()
	return fmt.Sprintf("received=%d sent=%d dropped=%d inflight=%d", in.MessagesReceived, in.MessagesSent, in.MessagesDropped, in.Inflight)
}

// mqttRunning is a broker process started by the harness: a Go broker in a
// child process, or Mosquitto.
type mqttRunning struct {
	broker MQTTBroker
	addr   string
	child  *child     // Go brokers
	cmd    *exec.Cmd  // Mosquitto
	dir    string     // Mosquitto's configuration and log
	exited chan error // Mosquitto's exit
}

// mqttStartOptions say how to start a broker.
type mqttStartOptions struct {
	pin         bool   // CPU 0 (taskset), GOMAXPROCS=1 for the Go brokers
	cpuProfile  string // file for a CPU profile of a Go broker's whole run
	profileRate int    // runtime.MemProfileRate of a Go broker; 0 keeps the default
}

func startMQTTBroker(b MQTTBroker, opt mqttStartOptions) (*mqttRunning, error) {
	if b.goBroker() {
		copt := childOptions{cpu: -1, cpuProfile: opt.cpuProfile, profileRate: opt.profileRate}
		if opt.pin {
			copt.cpu, copt.gomaxprocs = 0, 1
		}
		c, err := startChild(Kind(mqttKindPrefix+string(b)), copt)
		if err != nil {
			return nil, err
		}
		return &mqttRunning{broker: b, addr: c.addr, child: c}, nil
	}
	return startMosquitto(opt.pin)
}

// mosquittoConfig is the configuration the benchmark gives Mosquitto: a
// plain listener on the loopback port, anonymous clients, errors and
// warnings logged to a file; everything else is Mosquitto's default
// (max_inflight_messages 20, max_queued_messages 1000, max_queued_bytes
// 0, queue_qos0_messages false, persistence false, set_tcp_nodelay false).
func mosquittoConfig(port int, logFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listener %d 127.0.0.1\nallow_anonymous true\n", port)
	if os.Geteuid() == 0 {
		b.WriteString("user root\n") // else it drops to the user mosquitto
	}
	fmt.Fprintf(&b, "log_dest file %s\nlog_type error\nlog_type warning\n", logFile)
	return b.String()
}

// MosquittoAvailable reports whether the Mosquitto executable exists.
func MosquittoAvailable() bool {
	_, err := os.Stat(MosquittoPath)
	return err == nil
}

func startMosquitto(pin bool) (*mqttRunning, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "meerkat-mqttbench-mosquitto-")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(mosquittoConfig(port, filepath.Join(dir, "mosquitto.log"))), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var cmd *exec.Cmd
	if pin {
		cmd = exec.Command("taskset", "-c", "0", MosquittoPath, "-c", conf)
	} else {
		cmd = exec.Command(MosquittoPath, "-c", conf)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	r := &mqttRunning{broker: MQTTMosquitto, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		cmd: cmd, dir: dir, exited: make(chan error, 1)}
	go func() { r.exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", r.addr, time.Second)
		if err == nil {
			nc.Close()
			return r, nil
		}
		select {
		case werr := <-r.exited:
			r.exited <- werr
			r.stop()
			return nil, fmt.Errorf("mosquitto ended at start (%v): %s%s", werr, stderr.String(), r.log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("mosquitto does not listen on %s: %v", r.addr, err)
		}
	}
}

// freeLoopbackPort returns a TCP port free on 127.0.0.1 just now.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// pid is the broker process's id (taskset execs the broker in its place).
func (r *mqttRunning) pid() int {
	if r.child != nil {
		return r.child.pid()
	}
	return r.cmd.Process.Pid
}

// log returns Mosquitto's log file, if it wrote anything.
func (r *mqttRunning) log() string {
	if r.dir == "" {
		return ""
	}
	b, _ := os.ReadFile(filepath.Join(r.dir, "mosquitto.log"))
	if len(b) > 4096 {
		b = append([]byte("...\n"), b[len(b)-4096:]...)
	}
	return string(b)
}

// mqttMemory is a broker's memory at one moment.
type mqttMemory struct {
	RSSKiB    int64  // VmRSS (for a Go broker after runtime.GC and debug.FreeOSMemory)
	HeapInuse uint64 // Go brokers only
	Conns     int64  // connections the broker has open (Go brokers; -1 for Mosquitto)
}

// memory reads the broker's resident memory: a Go broker collects garbage
// and returns free memory to the OS first.
func (r *mqttRunning) memory() (mqttMemory, error) {
	if r.child != nil {
		st, err := r.child.stats()
		return mqttMemory{RSSKiB: st.RSSKiB, HeapInuse: st.HeapInuse, Conns: st.Conns}, err
	}
	rss := procRSS(r.pid())
	if rss < 0 {
		return mqttMemory{}, fmt.Errorf("mosquitto: no VmRSS for pid %d", r.pid())
	}
	return mqttMemory{RSSKiB: rss, Conns: -1}, nil
}

// procRSS is a process's VmRSS in KiB from /proc/PID/status, -1 if unknown.
func procRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			if f := strings.Fields(string(v)); len(f) > 0 {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// info returns the broker's own counters ("" for Mosquitto).
func (r *mqttRunning) info() string {
	if r.child == nil {
		return ""
	}
	s, err := r.child.ask("info", "info")
	if err != nil {
		return "unavailable: " + err.Error()
	}
	return s
}

// alive reports an error if the broker process has ended.
func (r *mqttRunning) alive() error {
	if r.child != nil {
		if err := syscall.Kill(r.pid(), 0); err != nil {
			return fmt.Errorf("%s broker process is gone: %v", r.broker, err)
		}
		return nil
	}
	select {
	case err := <-r.exited:
		r.exited <- err
		return fmt.Errorf("mosquitto ended (%v): %s", err, r.log())
	default:
		return nil
	}
}

// stop ends the broker: a Go broker quits on request, Mosquitto on
// SIGTERM (SIGKILL after 10 s).
func (r *mqttRunning) stop() error {
	if r.child != nil {
		return r.child.stop()
	}
	defer os.RemoveAll(r.dir)
	select {
	case err := <-r.exited:
		r.exited <- err
		return nil
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		return nil
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
		return errors.New("mosquitto did not end on SIGTERM; killed")
	}
}
