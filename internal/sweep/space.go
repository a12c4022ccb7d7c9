package sweep

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// significantDigits is how precisely suggested Float values are kept: enough for any search,
// short enough to read in a trial's name, arguments and status.
const significantDigits = 6

// newRand is the random source for the index-th trial of a search: it depends on nothing but
// the seed and the index, so the same trial gets the same draws however the suggestions are
// batched and whichever controller asks.
func newRand(seed int64, index int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), uint64(index)*0x9e3779b97f4a7c15+1))
}

// span is the interval a numeric parameter is searched over, in log space for a Log one; an
// Int covers half a step beyond each bound so every value gets an equal share.
func span(p Param) (lo, hi float64) {
	lo, hi = p.Min, p.Max
	if p.Type == Int {
		lo, hi = lo-0.5, hi+0.5
	}
	if p.Log {
		lo, hi = math.Log(lo), math.Log(hi)
	}
	return lo, hi
}

// toUnit maps a numeric value into [0, 1], linear in the parameter's scale.
func toUnit(p Param, v float64) float64 {
	lo, hi := span(p)
	if hi == lo {
		return 0.5
	}
	if p.Log {
		v = math.Log(v)
	}
	return min(1, max(0, (v-lo)/(hi-lo)))
}

// fromUnit is the inverse of toUnit, giving a value the parameter can take: an Int rounded, a
// Float kept to significantDigits, both within the bounds.
func fromUnit(p Param, u float64) float64 {
	lo, hi := span(p)
	x := lo + min(1, max(0, u))*(hi-lo)
	if p.Log {
		x = math.Exp(x)
	}
	if p.Type == Int {
		x = math.Round(x)
	} else {
		x, _ = strconv.ParseFloat(strconv.FormatFloat(x, 'g', significantDigits, 64), 64)
	}
	return min(p.Max, max(p.Min, x))
}

// sample draws an assignment uniformly (in each parameter's scale).
func (s Space) sample(rng *rand.Rand) Assignment {
	a := make(Assignment, len(s))
	for _, p := range s {
		if p.Type == Categorical {
			a[p.Name] = float64(rng.IntN(len(p.Values)))
		} else {
			a[p.Name] = fromUnit(p, rng.Float64())
		}
	}
	return a
}

// randomSearch samples every trial independently and uniformly.
type randomSearch struct {
	space Space
	seed  int64
}

func (r *randomSearch) Suggest(trials []Trial, n int) ([]Assignment, error) {
	out := make([]Assignment, 0, max(n, 0))
	for i := range max(n, 0) {
		out = append(out, r.space.sample(newRand(r.seed, len(trials)+i)))
	}
	return out, nil
}
