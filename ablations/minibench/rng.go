package minibench

import (
	"encoding/binary"
	"hash/fnv"
)

// rng is a SplitMix64 generator. It is tiny and fully specified in this file,
// so a seed produces the same bytes on every Go release (math/rand/v2 makes
// no such promise for its helpers). Each part of the benchmark draws from its
// own stream (newRNG(seed, "corpus"), newRNG(seed, "probe/arc"), ...), so
// changing one part's size never changes another part's text.
type rng struct{ s uint64 }

func newRNG(seed int64, stream string) *rng {
	return &rng{s: mix64(uint64(seed) ^ hashString(stream))}
}

// mix64 is the SplitMix64 finaliser.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func (r *rng) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	return mix64(r.s)
}

// intn returns a uniform integer in [0, n), without modulo bias.
func (r *rng) intn(n int) int {
	if n <= 0 {
		panic("minibench: rng.intn called with n <= 0")
	}
	b := uint64(n)
	lim := -b % b // 2^64 mod b: reject the incomplete last block
	for {
		if v := r.next(); v >= lim {
			return int(v % b)
		}
	}
}

// between returns a uniform integer in [lo, hi].
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo+1) }

// float returns a uniform float64 in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

func pick[T any](r *rng, xs []T) T { return xs[r.intn(len(xs))] }

// shuffle is a Fisher-Yates shuffle.
func shuffle[T any](r *rng, xs []T) {
	for i := len(xs) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		xs[i], xs[j] = xs[j], xs[i]
	}
}

// sampleOthers returns k distinct indices in [0, n) that differ from skip.
func sampleOthers(r *rng, n, k, skip int) []int {
	idx := make([]int, 0, n)
	for i := 0; i < n; i++ {
		if i != skip {
			idx = append(idx, i)
		}
	}
	shuffle(r, idx)
	return idx[:k]
}

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// keyHash hashes (seed, kind, parts...) with separators, so ("ab","c") and
// ("a","bc") differ.
func keyHash(seed int64, kind string, parts ...string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	h.Write(b[:])
	h.Write([]byte(kind))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return mix64(h.Sum64())
}

// reserved reports whether a combination belongs to the probe-only share
// (about 1/mod of all combinations). The corpus generators skip reserved
// combinations and the probe generators use nothing else, which is what keeps
// every probe item out of the corpus verbatim while the corpus still states
// all the facts and regularities the item needs.
func reserved(seed int64, mod int, kind string, parts ...string) bool {
	return keyHash(seed, kind, parts...)%uint64(mod) == 0
}
