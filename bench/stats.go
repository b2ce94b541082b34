package bench

import (
	"math"
	"sort"
)

// Summary describes the samples of one metric on one side.
type Summary struct {
	N       int       `json:"n"`
	P50     float64   `json:"p50"`
	P99     float64   `json:"p99"`
	Mean    float64   `json:"mean"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
}

// Summarize sorts a copy of samples and computes the summary; nil when there
// are no samples.
func Summarize(samples []float64) *Summary {
	if len(samples) == 0 {
		return nil
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	return &Summary{
		N:       len(s),
		P50:     Percentile(s, 50),
		P99:     Percentile(s, 99),
		Mean:    sum / float64(len(s)),
		Min:     s[0],
		Max:     s[len(s)-1],
		Samples: samples,
	}
}

// Percentile returns the p-th percentile of sorted samples, interpolating
// linearly between the two nearest ranks. With few samples p99 is close to
// the maximum, which is the honest answer for a small run.
func Percentile(sorted []float64, p float64) float64 {
	switch len(sorted) {
	case 0:
		return math.NaN()
	case 1:
		return sorted[0]
	}
	rank := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	frac := rank - float64(lo)
	return sorted[lo] + (sorted[hi]-sorted[lo])*frac
}

// ratio returns a/b, or NaN when either is missing or b is zero.
func ratio(a, b *Summary, pick func(*Summary) float64) float64 {
	if a == nil || b == nil || pick(b) == 0 {
		return math.NaN()
	}
	return pick(a) / pick(b)
}

func p50(s *Summary) float64 { return s.P50 }
func p99(s *Summary) float64 { return s.P99 }
