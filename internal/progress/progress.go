// Package progress reports the advance of long work on a writer (the CLI's stderr, never stdout,
// which carries results): items done of a total, the rate and the estimated time left,
//
//	fisher: 120/2000 prompts (6%) | 3.2 prompts/s | 37s elapsed | ETA 9m47s
//
// at most once per Interval and always when the work completes. ETA = elapsed·(total−done)/done.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultInterval is the least time between two lines of a Reporter.
const DefaultInterval = 2 * time.Second

// Reporter prints progress lines for one piece of work. A nil *Reporter, or one with a nil
// writer, reports nothing. It is safe for concurrent use.
type Reporter struct {
	w           io.Writer
	label, unit string
	Interval    time.Duration
	now         func() time.Time

	mu          sync.Mutex
	start, last time.Time
}

// New returns a Reporter writing to w (nil: silent) lines labelled label, counting unit.
func New(w io.Writer, label, unit string) *Reporter {
	return &Reporter{w: w, label: label, unit: unit, Interval: DefaultInterval, now: time.Now}
}

// Start (re)starts the clock; New's Reporter starts at its first Update otherwise.
func (r *Reporter) Start() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.start, r.last = r.now(), r.now()
}

// Update records done of total items; it prints a line when Interval has passed since the last
// one, and when done reaches total.
func (r *Reporter) Update(done, total int) {
	if r == nil || r.w == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.start.IsZero() {
		r.start, r.last = now, now
	}
	if done < total && now.Sub(r.last) < r.Interval {
		return
	}
	r.last = now
	fmt.Fprintln(r.w, r.line(done, total, now.Sub(r.start)))
}

// Func is Update as a callback, the form of the Progress options of this module's packages.
func (r *Reporter) Func() func(done, total int) { return r.Update }

func (r *Reporter) line(done, total int, elapsed time.Duration) string {
	s := fmt.Sprintf("%s: %d/%d %s", r.label, done, total, r.unit)
	if total > 0 {
		s += fmt.Sprintf(" (%.0f%%)", 100*float64(done)/float64(total))
	}
	if secs := elapsed.Seconds(); secs > 0 && done > 0 {
		s += fmt.Sprintf(" | %.3g %s/s", float64(done)/secs, r.unit)
	}
	s += " | " + round(elapsed).String() + " elapsed"
	switch {
	case done >= total:
		s += " | done"
	case done > 0:
		s += " | ETA " + round(time.Duration(float64(elapsed)*float64(total-done)/float64(done))).String()
	}
	return s
}

// round keeps durations readable: whole seconds from 10 s, tenths below.
func round(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
