package model

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"  // the pure Go CPU backend, "go"
	_ "github.com/gomlx/go-xla/compute/xla" // XLA/PJRT ("xla:cuda"), without the auto-installer
	"github.com/pkg/errors"
)

// DefaultBackend is the backend used when neither an explicit choice nor $GOMLX_BACKEND is given:
// GoMLX's pure Go CPU backend with an unlimited worker pool. (The plain "go" config deadlocks at
// model sizes on 2-core machines; see ../shared/GOMLX_CPU.md.)
const DefaultBackend = "go:parallelism=-1"

var simdWarning sync.Once

// NewBackend creates a compute backend from spec: "" reads $GOMLX_BACKEND and falls back to
// DefaultBackend; "go" means DefaultBackend; "go:..." passes options through; "xla:cuda" loads the
// PJRT CUDA plugin, looking for it in $PJRT_PLUGIN_LIBRARY_PATH and in the JAX CUDA plugin packages
// of the local Python (nothing is ever downloaded).
func NewBackend(spec string) (compute.Backend, error) {
	if spec == "" {
		spec = os.Getenv("GOMLX_BACKEND")
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
	b, err := compute.NewWithConfig(spec)
	if err != nil {
		return nil, errors.WithMessagef(err, "model: creating backend %q", spec)
	}
	return b, nil
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
