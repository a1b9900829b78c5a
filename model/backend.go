package model

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"  // the pure Go CPU backend, "go"
	_ "github.com/gomlx/go-xla/compute/xla" // XLA/PJRT ("xla:cuda"), without the auto-installer
	"github.com/pkg/errors"
)

// DefaultBackend is the backend used when neither an explicit choice nor $GOMLX_BACKEND is given:
// GoMLX's pure Go CPU backend with an unlimited worker pool. (The plain "go" config deadlocked at
// model sizes on 2-core machines in this project's measurements.)
const DefaultBackend = "go:parallelism=-1"

var simdWarning sync.Once

// NewBackend creates a compute backend from spec: "" reads $GOMLX_BACKEND and falls back to
// DefaultBackend; "go" means DefaultBackend; "go:..." passes options through; "xla:cuda" loads the
// PJRT CUDA plugin, looking for it in $PJRT_PLUGIN_LIBRARY_PATH and in the JAX CUDA plugin packages
// of the local Python (nothing is ever downloaded).
//
// An unknown backend name is an error listing the valid ones (GoMLX's compute.NewWithConfig
// panics on it, so the name is checked before the call).
func NewBackend(spec string) (compute.Backend, error) {
	source := "--backend"
	if spec == "" {
		spec, source = os.Getenv("GOMLX_BACKEND"), "$GOMLX_BACKEND"
	}
	if err := checkBackendSpec(spec); err != nil {
		return nil, errors.WithMessagef(err, "model: %s %q", source, spec)
	}
	switch {
	case spec == "" || spec == "go":
		spec = DefaultBackend
	case spec == "xla:cuda" || spec == "cuda":
		path, err := findCUDAPlugin()
		if err != nil {
			return nil, err
		}
		spec = "xla:" + path
	}
	if strings.HasPrefix(spec, "go") {
		warnWithoutSIMD()
	}
	b, err := newQuietly(spec)
	if err != nil {
		return nil, errors.WithMessagef(err, "model: creating backend %q", spec)
	}
	return b, nil
}

// BackendChoices describes the valid backend specs, for flag help and errors.
const BackendChoices = "go (CPU, the default), go:OPTIONS (e.g. go:parallelism=4), xla:cuda (or cuda), xla:PLUGIN_PATH"

// checkBackendSpec refuses a spec whose backend name is not compiled in.
func checkBackendSpec(spec string) error {
	if spec == "" || spec == "cuda" {
		return nil
	}
	name, _, _ := strings.Cut(spec, ":")
	known := compute.List()
	if slices.Contains(known, name) {
		return nil
	}
	slices.Sort(known)
	return errors.Errorf("unknown backend %q: use %s (compiled-in backends: %s)", name, BackendChoices, strings.Join(known, ", "))
}

// stdoutMu serialises the os.Stdout swap of newQuietly.
var stdoutMu sync.Mutex

// newQuietly creates the backend with os.Stdout pointing at os.Stderr: the go backend prints
// "Go backend: parallelism set to -1" with fmt.Printf while parsing its config
// (compute/internal/gobackend.New), and stdout carries only results (eval's JSON, generate's
// text). The swap lasts only for the constructor call; a goroutine printing to stdout at that very
// moment would land on stderr too, which none of this program's does.
func newQuietly(spec string) (compute.Backend, error) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	saved := os.Stdout
	os.Stdout = os.Stderr
	defer func() { os.Stdout = saved }()
	return compute.NewWithConfig(spec)
}

// warnWithoutSIMD tells, once, that the binary was built without GOEXPERIMENT=simd.
func warnWithoutSIMD() {
	if strings.Contains(runtime.Version(), "simd") {
		return
	}
	simdWarning.Do(func() {
		fmt.Fprintln(os.Stderr, "alphatoken: built without GOEXPERIMENT=simd: the go backend's matmuls run ~7x slower; "+
			"rebuild with GOEXPERIMENT=simd (go build/test/run).")
	})
}

// Deterministic reports whether backend computes bit-identical results run after run for the same
// inputs (what resuming bit for bit needs): the go backend does; XLA is not assumed to (on CUDA its
// reductions and autotuned matmul algorithms change the order of sums between runs).
func Deterministic(backend compute.Backend) bool { return backend.String() == "go" }

// SIMD reports whether this binary was built with GOEXPERIMENT=simd.
func SIMD() bool { return strings.Contains(runtime.Version(), "simd") }

// findCUDAPlugin locates a PJRT CUDA plugin shared library.
func findCUDAPlugin() (string, error) {
	var candidates []string
	for _, dir := range filepath.SplitList(os.Getenv("PJRT_PLUGIN_LIBRARY_PATH")) {
		m, _ := filepath.Glob(filepath.Join(dir, "*cuda*.so"))
		candidates = append(candidates, m...)
	}
	// JAX's plugin packages (jax-cuda12-pjrt / jax-cuda13-pjrt) install jax_plugins/xla_cuda*/xla_cuda_plugin.so.
	for _, py := range []string{"python3", "python"} {
		out, err := exec.Command(py, "-c",
			"import site,sys; print('\\n'.join(site.getsitepackages()+[site.getusersitepackages()]+sys.path))").Output()
		if err != nil {
			continue
		}
		for _, dir := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			m, _ := filepath.Glob(filepath.Join(dir, "jax_plugins", "xla_cuda*", "xla_cuda_plugin.so"))
			candidates = append(candidates, m...)
		}
	}
	for _, pattern := range []string{"/usr/local/lib/python3*/*-packages/jax_plugins/xla_cuda*/xla_cuda_plugin.so",
		"/usr/lib/python3/dist-packages/jax_plugins/xla_cuda*/xla_cuda_plugin.so"} {
		m, _ := filepath.Glob(pattern)
		candidates = append(candidates, m...)
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	return "", errors.New("model: backend xla:cuda: no PJRT CUDA plugin found; set PJRT_PLUGIN_LIBRARY_PATH to the directory " +
		"holding it, or install JAX's jax-cuda13-pjrt (its jax_plugins/xla_cuda13/xla_cuda_plugin.so is used)")
}
