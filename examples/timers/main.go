// Command timers shows Meerkat's timers: a repeating timer that ticks, a
// one-shot timer that stops it, and TimerRunNow for a timer that also fires
// at once.
package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/meerkat-net/meerkat"
)

// run ticks every period and stops after ticks ticks, writing to w.
func run(w io.Writer, period time.Duration, ticks int) {
	mgr := meerkat.NewManager()
	defer mgr.Close()

	n := 0
	var ticker *meerkat.Timer
	ticker = mgr.AddTimer(period, meerkat.TimerRepeat|meerkat.TimerRunNow, func() {
		fmt.Fprintf(w, "tick %d\n", n)
		n++
	})
	done := false
	mgr.AddTimer(time.Duration(ticks)*period-period/2, 0, func() {
		ticker.Stop()
		fmt.Fprintln(w, "stopped")
		done = true
	})
	for !done {
		mgr.Poll(time.Second) // the timers bound the wait
	}
}

func main() {
	run(os.Stdout, 500*time.Millisecond, 5)
}
