// Command mqttbench runs issue 5's MQTT broker benchmarks: Meerkat's broker
// (epoll and portable drivers) and mochi-mqtt, each in a child process
// pinned to CPU 0 with GOMAXPROCS=1, and Mosquitto (/usr/sbin/mosquitto,
// its own configuration on a loopback port) pinned to CPU 0, under a raw
// MQTT 3.1.1 load in this process pinned to CPU 1 with GOMAXPROCS=1. The
// scenarios: fan-in (100 publishers → 1 subscriber, QoS 0), fan-out (1
// publisher → 1,000 subscribers, QoS 0), QoS 1 with a window of 10, QoS 1
// overload (100 publishers flooding one subscriber: acknowledged vs.
// delivered) and the memory of 1,000 idle clients. It reports messages/s
// delivered and published, the broker's CPU time and deliveries per broker
// CPU-second, losses, the ratios to Mosquitto and issue 5's targets.
//
//	go build -o /tmp/mqttbench ./cmd/mqttbench && /tmp/mqttbench -runs 3
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/meerkat-net/meerkat/bench/internal/harness"
)

func main() {
	harness.MaybeServe()
	brokers := flag.String("brokers", "all", "comma-separated brokers: "+join(harness.MQTTBrokers))
	scenarios := flag.String("scenarios", "all", "comma-separated scenarios: "+join(harness.MQTTScenarios))
	runs := flag.Int("runs", 3, "measurements of each broker in each scenario (median and range reported)")
	dur := flag.Duration("d", 5*time.Second, "counted time of the throughput scenarios")
	warm := flag.Duration("warmup", time.Second, "load before counting, on the same broker process")
	payload := flag.Int("payload", 64, "payload bytes per message (at least 12)")
	fanInPubs := flag.Int("fanin-pubs", 100, "fan-in publishers")
	fanOutSubs := flag.Int("fanout-subs", 1000, "fan-out subscribers")
	qos1Pubs := flag.Int("qos1-pubs", 10, "qos1-window publishers")
	window := flag.Int("window", 10, "QoS 1 messages in flight per qos1-window publisher")
	overPubs := flag.Int("overload-pubs", 100, "overload publishers")
	overMsgs := flag.Int("overload-msgs", 1000, "QoS 1 messages per overload publisher (at most 65535)")
	idle := flag.Int("idle", 1000, "idle-memory clients")
	drain := flag.Duration("drain", 10*time.Second, "longest wait for deliveries once the publishers stopped")
	pin := flag.Bool("pin", harness.Pinning(), "brokers on CPU 0 (GOMAXPROCS=1 for Go), the load on CPU 1 with GOMAXPROCS=1 (needs taskset)")
	cpuprof := flag.String("cpuprofile", "", "directory for a CPU profile of each Go broker process")
	heapprof := flag.String("heapprofile", "", "directory for a heap profile of each Go broker with the idle-memory clients connected (every allocation sampled: not for the figures)")
	mosquitto := flag.String("mosquitto", harness.MosquittoPath, "Mosquitto executable")
	flag.Parse()
	harness.MosquittoPath = *mosquitto
	brs, err := harness.ParseMQTTBrokers(*brokers)
	if err != nil {
		fail(err)
	}
	scs, err := harness.ParseMQTTScenarios(*scenarios)
	if err != nil {
		fail(err)
	}
	for _, b := range brs {
		if b == harness.MQTTMosquitto && !harness.MosquittoAvailable() {
			fail(fmt.Errorf("%s not found (Debian package mosquitto); leave it out with -brokers", harness.MosquittoPath))
		}
	}
	cfg := harness.MQTTConfig{
		Brokers: brs, Scenarios: scs, Runs: *runs, Duration: *dur, Warmup: *warm, Payload: *payload,
		FanInPubs: *fanInPubs, FanOutSubs: *fanOutSubs, QoS1Pubs: *qos1Pubs, Window: *window,
		OverloadPubs: *overPubs, OverloadMsgs: *overMsgs, IdleClients: *idle, Drain: *drain,
		Pin: *pin, CPUProfileDir: *cpuprof, HeapProfileDir: *heapprof, Log: os.Stderr,
	}
	fmt.Printf("mqttbench: %s, %d CPUs, %s\n", runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	if *pin {
		fmt.Println("brokers: taskset -c 0 (Go brokers GOMAXPROCS=1); load: this process, taskset -c 1, GOMAXPROCS=1")
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average before: %s", b)
	}
	fmt.Println()
	start := time.Now()
	results, err := harness.RunMQTT(cfg)
	if len(results) > 0 {
		harness.WriteMQTTReport(os.Stdout, cfg, results)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("\nload average after: %s", b)
	}
	fmt.Printf("measuring time: %v\n", time.Since(start).Round(time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "mqttbench:", err)
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mqttbench:", err)
	os.Exit(2)
}

func join[T ~string](v []T) string {
	var s []string
	for _, k := range v {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}
