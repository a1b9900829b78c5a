//go:build !unix

package ablations

import "math"

// cpuSeconds is unavailable here: the cost table's CPU column is NaN (its wall column stands).
func cpuSeconds() float64 { return math.NaN() }
