package notebooks_test

// The notebooks are part of the test suite: every notebooks/*.ipynb is committed executed, with the
// outputs of one clean run of its current cells (TestNotebooksCommittedExecuted), and must execute
// headless without a cell error (TestNotebooksExecute), with Jupyter's nbconvert and the GoNB
// kernel that .ci/setup installs. `go test ./notebooks -run TestNotebooksExecute -update` (what
// .ci/notebooks runs) executes them one after the other and writes each executed notebook back.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphatoken/alphatoken/internal/nbclean"
)

// update writes each executed notebook back over the committed one (cleaned by nbclean.Clean).
var update = flag.Bool("update", false, "TestNotebooksExecute: write the executed notebooks back in place (see .ci/notebooks)")

const (
	// cellTimeout bounds one cell's execution (nbconvert's ExecutePreprocessor.timeout).
	cellTimeout = 20 * time.Minute
	// skipEnv set to 1 skips executing the notebooks (TestNotebooksCommittedExecuted still runs).
	skipEnv = "ALPHATOKEN_SKIP_NOTEBOOKS"
	// kernelName is the Jupyter kernel every notebook must use.
	kernelName = "gonb"
	setupHint  = "run .ci/setup from the repository root (it installs jupyter-nbconvert, the GoNB kernel and goimports), " +
		"or set " + skipEnv + "=1 to skip executing the notebooks"
)

// notebooks lists the committed notebooks: *.ipynb in this directory, without the
// *.nbconvert.ipynb files `jupyter nbconvert --execute` leaves next to its input.
func notebooks(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob("*.ipynb")
	if err != nil {
		t.Fatal(err)
	}
	var nbs []string
	for _, p := range all {
		if !strings.HasSuffix(p, ".nbconvert.ipynb") {
			nbs = append(nbs, p)
		}
	}
	if len(nbs) == 0 {
		t.Fatal("no notebooks in notebooks/")
	}
	return nbs
}

// TestNotebooksCommittedExecuted checks that every committed notebook holds one clean, error-free
// run of its current cells (nbclean.Problems) and declares the GoNB kernel.
func TestNotebooksCommittedExecuted(t *testing.T) {
	for _, nb := range notebooks(t) {
		data, err := os.ReadFile(nb)
		if err != nil {
			t.Fatal(err)
		}
		probs, err := nbclean.Problems(data)
		if err != nil {
			t.Errorf("%s: %v", nb, err)
			continue
		}
		if len(probs) > 0 {
			t.Errorf("%s is not committed as one clean run of its cells (run .ci/notebooks from the repository "+
				"root to execute every notebook and write it back):\n\t%s", nb, strings.Join(probs, "\n\t"))
		}
		var meta struct {
			Metadata struct {
				Kernelspec struct {
					Name string `json:"name"`
				} `json:"kernelspec"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(data, &meta); err == nil && meta.Metadata.Kernelspec.Name != kernelName {
			t.Errorf("%s: kernelspec name is %q, want %q (GoNB)", nb, meta.Metadata.Kernelspec.Name, kernelName)
		}
	}
}

// TestNotebooksExecute runs every notebook headless, one after the other, with
// `jupyter nbconvert --to notebook --execute` and GOEXPERIMENT=simd, and fails with the failing
// cells' source and error output if any cell fails.
func TestNotebooksExecute(t *testing.T) {
	if os.Getenv(skipEnv) == "1" {
		t.Skipf("%s=1: not executing the notebooks", skipEnv)
	}
	if testing.Short() {
		t.Skip("-short: not executing the notebooks")
	}
	nbs := notebooks(t)
	jupyter := checkJupyter(t)
	env := kernelEnv()
	kernelPath, kernelPATH := checkKernel(t, jupyter, env)
	if _, err := lookPathIn("goimports", kernelPATH); err != nil {
		t.Fatalf("the GoNB kernel needs goimports, which is not on its PATH (%s): %s", kernelPATH, setupHint)
	}
	recordInputs(t, kernelPath)

	for _, nb := range nbs {
		t.Run(strings.TrimSuffix(nb, ".ipynb"), func(t *testing.T) { executeNotebook(t, jupyter, nb, env) })
	}
}

// checkJupyter returns the path of jupyter, failing the test if it or nbconvert is missing.
func checkJupyter(t *testing.T) string {
	t.Helper()
	jupyter, err := exec.LookPath("jupyter")
	if err != nil {
		t.Fatalf("jupyter is not installed (%v): %s", err, setupHint)
	}
	if out, err := exec.Command(jupyter, "nbconvert", "--version").CombinedOutput(); err != nil {
		t.Fatalf("`jupyter nbconvert --version` failed (%v):\n%s\n%s", err, out, setupHint)
	}
	return jupyter
}

// checkKernel finds the gonb kernelspec and checks its binary exists. It returns that binary
// and the PATH the kernel will run with (the kernelspec may set one; jupyter_client expands
// ${PATH} in it from the environment).
func checkKernel(t *testing.T, jupyter string, env []string) (kernel, path string) {
	t.Helper()
	cmd := exec.Command(jupyter, "kernelspec", "list", "--json")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("`jupyter kernelspec list --json` failed (%v): %s", err, setupHint)
	}
	var specs struct {
		Kernelspecs map[string]struct {
			ResourceDir string `json:"resource_dir"`
			Spec        struct {
				Argv []string          `json:"argv"`
				Env  map[string]string `json:"env"`
			} `json:"spec"`
		} `json:"kernelspecs"`
	}
	if err := json.Unmarshal(out, &specs); err != nil {
		t.Fatalf("parsing `jupyter kernelspec list --json`: %v\n%s", err, out)
	}
	spec, ok := specs.Kernelspecs[kernelName]
	if !ok || len(spec.Spec.Argv) == 0 {
		t.Fatalf("the GoNB Jupyter kernel (%q) is not installed: %s", kernelName, setupHint)
	}
	kernel = spec.Spec.Argv[0]
	if st, err := os.Stat(kernel); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("the GoNB kernelspec in %s runs %s, which is missing or not executable: %s", spec.ResourceDir, kernel, setupHint)
	}
	path = envValue(env, "PATH")
	if p, ok := spec.Spec.Env["PATH"]; ok {
		path = strings.NewReplacer("${PATH}", path, "$PATH", path).Replace(p)
	}
	return kernel, path
}

// kernelEnv is the environment for nbconvert and so for the kernel and the cell programs it
// builds: GOEXPERIMENT gains simd (GoMLX's CPU backend is ~7x slower without it), and Go's
// binary directories ($GOBIN or $GOPATH/bin, where .ci/setup installs gonb and goimports, and
// $GOROOT/bin) go first on PATH.
func kernelEnv() []string {
	env := os.Environ()
	exp := envValue(env, "GOEXPERIMENT")
	if !slices.Contains(strings.Split(exp, ","), "simd") {
		exp = strings.TrimPrefix(exp+",simd", ",")
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH", "GOROOT").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 3 {
			if lines[0] != "" {
				dirs = append(dirs, lines[0])
			} else if lines[1] != "" {
				dirs = append(dirs, filepath.Join(filepath.SplitList(lines[1])[0], "bin"))
			}
			dirs = append(dirs, filepath.Join(lines[2], "bin"))
		}
	}
	path := strings.Join(append(dirs, envValue(env, "PATH")), string(os.PathListSeparator))
	env = setEnv(env, "GOTOOLCHAIN", "go1.27.3") // go.mod needs Go 1.27; the cells' go builds fetch it
	return setEnv(setEnv(env, "GOEXPERIMENT", exp), "PATH", path)
}

// executeNotebook runs one notebook with nbconvert and reports every failed cell.
func executeNotebook(t *testing.T, jupyter, nb string, env []string) {
	outDir := t.TempDir()
	name := strings.TrimSuffix(filepath.Base(nb), ".ipynb")
	ctx := t.Context()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
		defer cancel()
	}
	// --allow-errors: nbconvert runs every cell and writes the executed notebook even if a cell
	// fails, so the failures are read from the cells' outputs (GoNB puts a compiler error's text
	// in an HTML output, not in the error message).
	cmd := exec.CommandContext(ctx, jupyter, "nbconvert", "--to", "notebook", "--execute", "--allow-errors",
		fmt.Sprintf("--ExecutePreprocessor.timeout=%d", int(cellTimeout.Seconds())),
		"--output-dir", outDir, "--output", name, nb)
	// TMPDIR: GoNB's temporary module, nbconvert's connection file and Go's build files land in
	// the test's directory, removed even when the run is killed.
	tmp := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("ALPHATOKEN_NOTEBOOK_RUN=%d-%d", os.Getpid(), time.Now().UnixNano())
	cmd.Env = append(setEnv(env, "TMPDIR", tmp), marker)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	killOnCancel(cmd, marker) // on timeout, the kernel and the cell program go too
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start).Round(100 * time.Millisecond)
	if err != nil {
		why := err.Error()
		if ctx.Err() != nil {
			why = "stopped 30 s before the test's deadline; raise go test -timeout"
		}
		t.Fatalf("%s: `%s` failed after %s (%s):\n%s", nb, strings.Join(cmd.Args, " "), elapsed, why, tail(log.String(), 6000))
	}
	executed, err := os.ReadFile(filepath.Join(outDir, name+".ipynb"))
	if err != nil {
		t.Fatalf("%s: nbconvert wrote no executed notebook: %v\n%s", nb, err, tail(log.String(), 3000))
	}
	failures, err := failedCells(executed)
	if err != nil {
		t.Fatalf("%s: reading the executed notebook: %v", nb, err)
	}
	if len(failures) > 0 {
		kept := filepath.Join(os.TempDir(), "alphatoken-notebooks", name+".ipynb")
		if os.MkdirAll(filepath.Dir(kept), 0o755) == nil && os.WriteFile(kept, executed, 0o644) == nil {
			t.Logf("the executed notebook is in %s", kept)
		}
		t.Fatalf("%s: %d cell(s) failed (after %s):\n\n%s", nb, len(failures), elapsed, strings.Join(failures, "\n\n"))
	}
	t.Logf("%s: executed in %s (GOEXPERIMENT=%s, %s)", nb, elapsed, envValue(env, "GOEXPERIMENT"), runtime.Version())
	if *update {
		cleaned, err := nbclean.Clean(executed)
		if err != nil {
			t.Fatalf("%s: %v", nb, err)
		}
		if probs, err := nbclean.Problems(cleaned); err != nil || len(probs) > 0 {
			t.Fatalf("%s: the executed notebook is not a clean run (%v):\n\t%s", nb, err, strings.Join(probs, "\n\t"))
		}
		if err := os.WriteFile(nb, cleaned, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: written back (-update)", nb)
	}
}

// failedCells describes each code cell with an error output: its number, source and what it
// printed (stderr, HTML error text, the error).
func failedCells(executed []byte) ([]string, error) {
	var nb struct {
		Cells []struct {
			CellType string          `json:"cell_type"`
			ID       string          `json:"id"`
			Source   json.RawMessage `json:"source"`
			Outputs  []struct {
				OutputType string                     `json:"output_type"`
				Name       string                     `json:"name"`
				Text       json.RawMessage            `json:"text"`
				Data       map[string]json.RawMessage `json:"data"`
				Ename      string                     `json:"ename"`
				Evalue     string                     `json:"evalue"`
			} `json:"outputs"`
		} `json:"cells"`
	}
	if err := json.Unmarshal(executed, &nb); err != nil {
		return nil, err
	}
	var failures []string
	for i, c := range nb.Cells {
		if c.CellType != "code" {
			continue
		}
		var errs, printed []string
		for _, o := range c.Outputs {
			switch o.OutputType {
			case "error":
				errs = append(errs, o.Ename+": "+o.Evalue)
			case "stream":
				if o.Name == "stderr" {
					printed = append(printed, multiline(o.Text))
				}
			case "display_data", "execute_result":
				if h, ok := o.Data["text/html"]; ok {
					printed = append(printed, htmlText(multiline(h)))
				} else if p, ok := o.Data["text/plain"]; ok {
					printed = append(printed, multiline(p))
				}
			}
		}
		if len(errs) == 0 {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "--- cell %d (id %q):\n%s\n--- output:\n", i+1, c.ID, indent(multiline(c.Source)))
		for _, p := range printed {
			if p = strings.TrimSpace(p); p != "" {
				b.WriteString(indent(tail(p, 4000)) + "\n")
			}
		}
		fmt.Fprintf(&b, "--- error: %s", strings.Join(errs, "; "))
		failures = append(failures, b.String())
	}
	return failures, nil
}

// multiline decodes a notebook text field: a string or a list of lines.
func multiline(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var lines []string
	_ = json.Unmarshal(raw, &lines)
	return strings.Join(lines, "")
}

var (
	styleRE = regexp.MustCompile(`(?s)<style.*?</style>`)
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
	ansiRE  = regexp.MustCompile("\x1b\\[[0-9;]*m")
	blankRE = regexp.MustCompile(`\n\s*\n+`)
)

// htmlText is the visible text of an HTML fragment (GoNB renders errors as HTML), without the
// source context GoNB shows when the pointer hovers over an error.
func htmlText(s string) string {
	s = dropDivs(s, `<div class="gonb-err-context">`)
	s = tagRE.ReplaceAllString(styleRE.ReplaceAllString(s, ""), "")
	return blankRE.ReplaceAllString(html.UnescapeString(s), "\n")
}

// dropDivs removes every div that starts with open, nested divs included.
func dropDivs(s, open string) string {
	for {
		start := strings.Index(s, open)
		if start < 0 {
			return s
		}
		end := len(s) // unbalanced: drop the rest
		for i, depth := start, 0; i < len(s); i++ {
			if strings.HasPrefix(s[i:], "<div") {
				depth++
			} else if strings.HasPrefix(s[i:], "</div>") {
				if depth--; depth == 0 {
					end = i + len("</div>")
					break
				}
			}
		}
		s = s[:start] + "\n" + s[end:]
	}
}

func indent(s string) string {
	s = ansiRE.ReplaceAllString(strings.TrimRight(s, "\n"), "")
	return "\t" + strings.ReplaceAll(s, "\n", "\n\t")
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// recordInputs reads the module's Go sources, go.mod and go.sum, and stats the kernel binary,
// so that `go test`'s result cache, which knows only the files a test opens, re-runs this test
// when the code the notebooks import changes.
func recordInputs(t *testing.T, kernel string) {
	t.Helper()
	_, _ = os.Stat(kernel)
	_ = os.Getenv("GOMLX_BACKEND") // read by model.NewBackend inside the notebooks
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "runs" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum" {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading the module's sources: %v", err)
	}
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

func setEnv(env []string, key, value string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	return append(out, key+"="+value)
}

// lookPathIn finds an executable in a PATH-style list.
func lookPathIn(file, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, file)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", file)
}
