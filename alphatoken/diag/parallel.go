package diag

import (
	"runtime"
	"sync"
)

// parallelRanges splits [0, n) into len(bounds)-1 contiguous ranges,
// range c being [bounds[c], bounds[c+1]), and calls fn(c, lo, hi) for each
// on up to workers goroutines (GOMAXPROCS when workers ≤ 0). The split is
// fixed by the caller, not by the number of goroutines, so a caller that
// writes range c's results into slot c and reduces the slots in order gets
// the same floating-point result on any machine.
func parallelRanges(bounds []int, workers int, fn func(c, lo, hi int)) {
	chunks := len(bounds) - 1
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, chunks)
	if workers <= 1 {
		for c := 0; c < chunks; c++ {
			fn(c, bounds[c], bounds[c+1])
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, chunks)
	for c := 0; c < chunks; c++ {
		next <- c
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for c := range next {
				fn(c, bounds[c], bounds[c+1])
			}
		})
	}
	wg.Wait()
}

// evenBounds splits [0, n) into at most chunks ranges of near-equal length.
func evenBounds(n, chunks int) []int {
	chunks = max(1, min(chunks, n))
	b := make([]int, chunks+1)
	for c := range b {
		b[c] = c * n / chunks
	}
	return b
}
