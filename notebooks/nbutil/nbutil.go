// Package nbutil is the set-up the notebooks share: where the checkout and its run cache are, the
// MiniBench runner, passing a model from one GoNB cell to the next, and showing a figure inline.
// Every %% cell of a GoNB notebook runs as a fresh program, so these helpers live here rather than
// being repeated in each notebook.
package nbutil

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/janpfeifer/gonb/gonbui"
	"github.com/janpfeifer/must"

	"github.com/alphatoken/alphatoken/ablations"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/plots"
)

// Root is the alphatoken checkout containing the notebook: the nearest directory at or above the
// notebook's ($GONB_DIR, where the kernel started; else the working directory) whose go.mod
// declares the module.
func Root() string {
	dir := must.M1(filepath.Abs(cmp.Or(os.Getenv("GONB_DIR"), ".")))
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/alphatoken/alphatoken\n") {
			return d
		}
		if filepath.Dir(d) == d {
			panic("no alphatoken checkout at or above " + dir + ": start Jupyter inside the repository")
		}
	}
}

// CacheDir holds the pre-trained reference models, the Fisher estimates and cached ablation runs:
// $ALPHATOKEN_CACHE, else the repository's .cache/alphatoken, as for `alphatoken ablate`.
func CacheDir() string {
	if c := os.Getenv("ALPHATOKEN_CACHE"); c != "" {
		return c
	}
	return filepath.Join(Root(), ".cache", "alphatoken")
}

// OpenRunner builds MiniBench and loads the preset's reference model from CacheDir (pre-training it
// first if it is not there: ~3–4 minutes on 2 cores for "mini", once per cache). Progress goes to
// stderr.
func OpenRunner(preset string) *ablations.Runner {
	backend := must.M1(model.NewBackend(""))
	return must.M1(ablations.NewRunner(backend, preset, CacheDir(), os.Stderr))
}

// Scratch is a path in GoNB's temporary directory, removed when the kernel stops: every %% cell
// runs as a fresh program, so one cell leaves models and results there for the next.
func Scratch(name string) string {
	return filepath.Join(cmp.Or(os.Getenv("GONB_TMP_DIR"), os.TempDir()), name)
}

// SaveModel passes a fine-tuned model to a later cell (LoadModel) under name.
func SaveModel(lm *model.LM, name string) {
	must.M(os.RemoveAll(Scratch(name)))
	must.M(lm.Save(Scratch(name), model.SaveOptions{}))
}

// LoadModel loads the model an earlier cell saved under name.
func LoadModel(r *ablations.Runner, name string) *model.LM {
	if _, err := os.Stat(filepath.Join(Scratch(name), "config.json")); err != nil {
		panic(fmt.Sprintf("no model %q in %s: run the cell that fine-tunes it first", name, Scratch("")))
	}
	return must.M1(model.Load(r.Backend, Scratch(name), dtypes.Float32))
}

// Show draws a figure inline at w × h inches, as a PNG (plots.PNGDPI): an image output, which
// GitHub shows in a committed notebook (an inline SVG is HTML, which it does not).
func Show(f plots.Figure, w, h float64) {
	gonbui.DisplayPNG(must.M1(plots.PNG(f, w, h)))
}

// Since formats the time elapsed since start, in seconds.
func Since(start time.Time) string { return fmt.Sprintf("%.1f s", time.Since(start).Seconds()) }
