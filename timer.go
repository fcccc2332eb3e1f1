package meerkat

import (
	"container/heap"
	"time"
)

// TimerFlags choose how a timer fires.
type TimerFlags uint8

const (
	// TimerRepeat fires the timer every period until it is stopped; without
	// it the timer fires once.
	TimerRepeat TimerFlags = 1 << iota
	// TimerRunNow fires the timer first at the next Poll instead of after
	// one period; a one-shot timer then fires only that once, a repeating
	// one every period from then (as Mongoose's MG_TIMER_RUN_NOW).
	TimerRunNow
)

// Timer is a function that Poll calls when its time comes. Create one with
// Manager.AddTimer.
type Timer struct {
	m      *Manager
	period time.Duration
	flags  TimerFlags
	fn     func()
	due    time.Time
	index  int // in the heap; -1 when not scheduled
}

// AddTimer schedules fn to run on the Poll goroutine after period (and then
// every period with TimerRepeat). A repeating timer that falls behind — a
// handler stalled the loop — fires once and resumes its rhythm from then,
// never in a burst. Call it from the Poll goroutine.
func (m *Manager) AddTimer(period time.Duration, flags TimerFlags, fn func()) *Timer {
	if period <= 0 && flags&TimerRepeat != 0 {
		period = time.Millisecond // a zero period must not spin
	}
	t := &Timer{m: m, period: period, flags: flags, fn: fn, index: -1}
	if m.closed {
		return t
	}
	now := time.Now()
	t.due = now.Add(period)
	if flags&TimerRunNow != 0 {
		t.due = now
	}
	heap.Push(&m.timers, t)
	return t
}

// Stop cancels the timer; it is safe to call more than once and from inside
// the timer's own function.
func (t *Timer) Stop() {
	if t.index >= 0 {
		heap.Remove(&t.m.timers, t.index)
	}
	t.fn = nil
}

// runTimers fires every timer due by now. Timers added or made due by the
// functions it calls wait for the next Poll.
func (m *Manager) runTimers(now time.Time) {
	due := m.dueTimers[:0]
	for len(m.timers) > 0 && !m.timers[0].due.After(now) {
		due = append(due, heap.Pop(&m.timers).(*Timer))
	}
	for i, t := range due {
		due[i] = nil
		fn := t.fn
		if fn == nil {
			continue // stopped by an earlier timer of this batch
		}
		if t.flags&TimerRepeat != 0 {
			t.due = t.due.Add(t.period)
			if !t.due.After(now) {
				t.due = now.Add(t.period)
			}
			heap.Push(&m.timers, t)
		} else {
			t.fn = nil
		}
		fn()
	}
	m.dueTimers = due[:0]
}

// nextTimer is when the earliest timer is due, or the zero time.
func (m *Manager) nextTimer() time.Time {
	if len(m.timers) == 0 {
		return time.Time{}
	}
	return m.timers[0].due
}

// timerHeap orders timers by due time.
type timerHeap []*Timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*Timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
