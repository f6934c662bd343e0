package loadgen

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Zipf draws ranks 0..n-1 with P(k) proportional to 1/(k+1)^s. Unlike
// math/rand's Zipf it accepts any s >= 0 (s = 0 is uniform), which the
// oddsfeed scenario needs for its milder skew of 0.6.
type Zipf struct {
	cum []float64 // cumulative weights
	rng *rand.Rand
}

// NewZipf returns a sampler over n ranks with exponent s, seeded for
// repeatable subscription sets.
func NewZipf(n int, s float64, seed uint64) *Zipf {
	z := &Zipf{cum: make([]float64, n), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	total := 0.0
	for k := range z.cum {
		total += 1 / math.Pow(float64(k+1), s)
		z.cum[k] = total
	}
	return z
}

// Next returns a rank.
func (z *Zipf) Next() int {
	x := z.rng.Float64() * z.cum[len(z.cum)-1]
	return sort.SearchFloat64s(z.cum, x)
}

// Distinct returns k distinct ranks (k <= n).
func (z *Zipf) Distinct(k int) []int32 {
	out := make([]int32, 0, k)
	for len(out) < k {
		r := int32(z.Next())
		dup := false
		for _, o := range out {
			dup = dup || o == r
		}
		if !dup {
			out = append(out, r)
		}
	}
	return out
}
