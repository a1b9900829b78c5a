package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMain lets bench-gpu re-run this test binary as the CLI for its parts (childEnv set).
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	if fixture != nil {
		os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

// TestBenchGPUTiny runs the GPU check end to end on the go backend with the tiny preset: every
// part prints a figure or an explained "skipped" (the bfloat16 AlphaToken step may print its error
// until bf16 valuation lands), and the summary has the step ratio.
func TestBenchGPUTiny(t *testing.T) {
	out, err := captureStdout(t, func() error {
		return runBenchGPU([]string{"--backend", "go", "--preset", "tiny", "--budget", "5m", "--dir", t.TempDir()})
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Log("\n" + out)
	figure := regexp.MustCompile(`[0-9][0-9,]* tokens/s|sampled [0-9]+ prompts`)
	for _, label := range []string{"checkpoint", "fisher", "full bfloat16", "alphatoken bfloat16", "full float32", "alphatoken float32", "torch"} {
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, label+" ") {
				line = l
			}
		}
		rest := strings.TrimSpace(strings.TrimPrefix(line, label))
		switch {
		case line == "":
			t.Errorf("no line for %q", label)
		case label == "checkpoint" && strings.HasPrefix(rest, "random init"):
		case strings.HasPrefix(rest, "skipped: ") && len(rest) > len("skipped: ")+10:
		case label == "alphatoken bfloat16" && strings.HasPrefix(rest, "error: "):
		case figure.MatchString(rest) && !strings.Contains(rest, "error"):
		default:
			t.Errorf("%s: neither a figure nor an explained skip: %q", label, rest)
		}
	}
	if !strings.Contains(out, "alphatoken / full step time, float32: ") {
		t.Errorf("no float32 step ratio in the summary")
	}
	if !strings.Contains(out, "peak GPU memory") {
		t.Errorf("no peak memory reported")
	}
}

// TestBenchPartLimit: a part that outlives its limit is stopped (with its children) and reported,
// keeping what it printed so far.
func TestBenchPartLimit(t *testing.T) {
	start := time.Now()
	res := runLimited(exec.Command("sh", "-c", `echo '{"part":"fisher","prompts":3,"sample_seconds":1.5}'; echo working >&2; sleep 30 & wait`),
		"fisher", 300*time.Millisecond, func(stdout []byte) *partResult {
			var r partResult
			if json.Unmarshal(bytes.Split(stdout, []byte("\n"))[0], &r) != nil {
				return nil
			}
			return &r
		})
	if time.Since(start) > 10*time.Second {
		t.Fatalf("the part was not stopped at its limit (%s)", time.Since(start))
	}
	if res.Prompts != 3 || !strings.Contains(res.Note, "time limit") || !strings.Contains(res.Note, "working") {
		t.Errorf("partial result %+v", res)
	}
	res = runLimited(exec.Command("sleep", "30"), "train", 300*time.Millisecond, func([]byte) *partResult { return nil })
	if !strings.HasPrefix(res.Error, "stopped at its time limit") {
		t.Errorf("error %q", res.Error)
	}
}
