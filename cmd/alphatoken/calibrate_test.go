package main

import (
	"strings"
	"testing"

	"github.com/alphatoken/alphatoken/ablations"
)

// TestPresetBadInput: an unknown preset, a bad patch or bad seeds are clear errors before any
// training.
func TestPresetBadInput(t *testing.T) {
	cache := t.TempDir()
	cases := []struct {
		run  func([]string) error
		args []string
		want string
	}{
		{runCalibrate, []string{"--preset", "mini-adpt", "--cache", cache}, `unknown preset "mini-adpt" (mini, mini-adapt, small)`},
		{runCalibrate, []string{"--patch", `{"pretrain":{"stepz":1}}`, "--cache", cache}, `unknown field "stepz"`},
		{runCalibrate, []string{"--ref-seeds", "one", "--cache", cache}, "--ref-seeds"},
		{runAblate, []string{"--preset", "maxi", "--suite", "main", "--cache", cache}, `unknown preset "maxi"`},
		{runDemo, []string{"--preset", "maxi", "--cache", cache}, `unknown preset "maxi"`},
		{runAblateDPO, []string{"--preset", "small", "--suite", "main", "--cache", cache}, `preset "small" has no DPO stage`},
		{runAblateDPO, []string{"--suite", "main", "--seeds", "1", "--cache", cache}, "at least 2"},
		{runAblateDPO, []string{"--suite", "mian", "--cache", cache}, `unknown DPO suite "mian"`},
		{runAblateDPO, []string{"--preset", "mini", "--suite", "main", "--cache", cache}, "is not calibrated"},
	}
	// Every committed DPO design is calibrated: the last case runs on an uncalibrated copy of mini's
	// (refused before any model is trained or loaded).
	saved := ablations.DPOPresets["mini"]
	defer func() { ablations.DPOPresets["mini"] = saved }()
	uncal := saved
	uncal.Design = "dpo/0" + ablations.UncalibratedSuffix
	ablations.DPOPresets["mini"] = uncal
	for _, c := range cases {
		if err := c.run(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want error containing %q, got %v", c.args, c.want, err)
		}
	}
	if got := shellJoin([]string{"--patch", `{"a":'b'}`, "--seeds", "1,2"}); got != `--patch '{"a":'\''b'\''}' --seeds 1,2` {
		t.Errorf("shellJoin: %s", got)
	}
}
