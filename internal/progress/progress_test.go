package progress

import (
	"strings"
	"testing"
	"time"
)

// TestReporter: lines appear at most once per interval and always at the end; rate and ETA follow
// from the clock (ETA = elapsed·(total−done)/done).
func TestReporter(t *testing.T) {
	var sb strings.Builder
	clock := time.Unix(0, 0)
	r := New(&sb, "fisher", "prompts")
	r.now = func() time.Time { return clock }
	r.Start()
	for i := 1; i <= 10; i++ {
		clock = clock.Add(time.Second)
		r.Update(i, 10)
	}
	lines := strings.Split(strings.TrimSpace(sb.String()), "\n")
	want := []string{
		"fisher: 2/10 prompts (20%) | 1 prompts/s | 2s elapsed | ETA 8s",
		"fisher: 4/10 prompts (40%) | 1 prompts/s | 4s elapsed | ETA 6s",
		"fisher: 6/10 prompts (60%) | 1 prompts/s | 6s elapsed | ETA 4s",
		"fisher: 8/10 prompts (80%) | 1 prompts/s | 8s elapsed | ETA 2s",
		"fisher: 10/10 prompts (100%) | 1 prompts/s | 10s elapsed | done",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	var nilR *Reporter
	nilR.Update(1, 2) // silent, no panic
	New(nil, "x", "y").Update(1, 1)
}
