package sweep

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
)

// tpeOptions are TPE's own settings. They are not part of Config: they belong to the
// algorithm and were tuned on the benchmark functions in test/bench/sweep.
type tpeOptions struct {
	// startup is how many trials with a result TPE waits for, sampling at random, before it
	// models the space.
	startup int
	// candidates is how many candidates TPE draws from l(x) to rank by l(x)/g(x).
	candidates int
	// gamma is the share of observations counted good, and maxGood the most of them.
	gamma   float64
	maxGood int
	// bandwidth scales each kernel's width: the larger of the gaps to its neighbours along
	// the axis.
	bandwidth float64
	// maxNarrowing bounds how narrow a kernel gets: with m points, no narrower than
	// 1/min(maxNarrowing, m+1) of the unit interval. Without a floor the good trials collapse
	// onto one spot and the search stops moving.
	maxNarrowing float64
	// catSmoothing is the weight each categorical kernel gives every value beside the 1 it
	// gives its own.
	catSmoothing float64
	// priorWeight is the weight of the uniform component each density gets beside its
	// observations (each of which weighs 1), so no region is ever ruled out.
	priorWeight float64
}

var defaultTPE = tpeOptions{
	startup:      10,
	candidates:   24,
	gamma:        0.25,
	maxGood:      50,
	bandwidth:    1,
	maxNarrowing: 100,
	priorWeight:  3,
	catSmoothing: 0.3,
}

// tpe is the tree-structured Parzen estimator. It ranks the trials so far, splits them into a
// good few and the rest, fits a kernel density to each — l(x) to the good, g(x) to the rest —
// and proposes the candidate drawn from l(x) with the largest l(x)/g(x). The densities are
// multivariate: one kernel per observation over all parameters at once, so parameters that
// only work together are modelled together.
//
// Trials are ranked by final value; trials a Stopper ended come after every finished trial,
// the further they got the better. Failed trials and trials without a value count as bad, so
// the search moves away from what crashes. Running trials — and the suggestions made earlier
// in the same call — count as bad too (a "constant liar"): parallel suggestions then spread
// out instead of piling onto one point.
type tpe struct {
	space Space
	seed  int64
	dir   Direction
	opts  tpeOptions
}

func newTPE(space Space, seed int64, dir Direction) *tpe {
	return &tpe{space: space, seed: seed, dir: dir, opts: defaultTPE}
}

// observation is a trial in the unit cube: numeric parameters in [0, 1] in their scale,
// categorical ones as the index of their value.
type observation []float64

func (s *tpe) encode(a Assignment) observation {
	o := make(observation, len(s.space))
	for i, p := range s.space {
		if p.Type == Categorical {
			o[i] = a[p.Name]
		} else {
			o[i] = toUnit(p, a[p.Name])
		}
	}
	return o
}

func (s *tpe) decode(o observation) Assignment {
	a := make(Assignment, len(s.space))
	for i, p := range s.space {
		if p.Type == Categorical {
			a[p.Name] = o[i]
		} else {
			a[p.Name] = fromUnit(p, o[i])
		}
	}
	return a
}

// ranked is a trial with a result, and how it ranks: finished ones (class 0) by value, then
// stopped ones (class 1) by how far they got and then by value.
type ranked struct {
	obs   observation
	class int
	steps int
	value float64
	index int
}

func (s *tpe) Suggest(trials []Trial, n int) ([]Assignment, error) {
	var results []ranked
	var bad []observation
	for i, t := range trials {
		o := s.encode(t.Params)
		switch {
		case t.State == Succeeded && t.HasValue && !math.IsNaN(t.Value) && !math.IsInf(t.Value, 0):
			results = append(results, ranked{obs: o, value: score(s.dir, t.Value), index: i})
		case t.State == Stopped && len(t.Curve) > 0 && !math.IsNaN(t.Curve[len(t.Curve)-1].Value):
			last := t.Curve[len(t.Curve)-1]
			results = append(results, ranked{obs: o, class: 1, steps: last.Step, value: score(s.dir, last.Value), index: i})
		default:
			bad = append(bad, o)
		}
	}
	slices.SortFunc(results, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(a.class, b.class), cmp.Compare(b.steps, a.steps),
			cmp.Compare(a.value, b.value), cmp.Compare(a.index, b.index))
	})

	out := make([]Assignment, 0, max(n, 0))
	for i := range max(n, 0) {
		rng := newRand(s.seed, len(trials)+i)
		if len(results) < s.opts.startup {
			a := s.space.sample(rng)
			out = append(out, a)
			bad = append(bad, s.encode(a))
			continue
		}
		nGood := min(s.opts.maxGood, max(1, int(math.Ceil(s.opts.gamma*float64(len(results))))))
		var good []observation
		rest := append([]observation(nil), bad...)
		for j, r := range results {
			if j < nGood {
				good = append(good, r.obs)
			} else {
				rest = append(rest, r.obs)
			}
		}
		l, g := s.parzen(good), s.parzen(rest)
		var best observation
		bestScore := math.Inf(-1)
		for range s.opts.candidates {
			c := s.snap(l.sample(rng))
			if sc := l.logDensity(c) - g.logDensity(c); sc > bestScore || best == nil {
				best, bestScore = c, sc
			}
		}
		a := s.decode(best)
		out = append(out, a)
		bad = append(bad, s.encode(a))
	}
	return out, nil
}

// snap moves a point to where a value the parameters can take lies (an Int to its value's
// centre, a Float to its kept precision), so it is scored where it will be tried.
func (s *tpe) snap(o observation) observation {
	return s.encode(s.decode(o))
}

// parzen is a kernel density over the unit cube: a mixture of one kernel per observation,
// each weighing 1, and a uniform prior weighing opts.priorWeight.
type parzen struct {
	space  Space
	opts   tpeOptions
	points []observation
	// sigma[k][i] is the width of point k's kernel along axis i.
	sigma   [][]float64
	logW    float64 // log weight of each observation's kernel
	logWPri float64 // log weight of the prior
	// catOwn and catOther are a categorical kernel's probabilities of its own value and of
	// each other value.
	catOwn, catOther []float64
}

func (s *tpe) parzen(points []observation) *parzen {
	m := float64(len(points))
	pw := s.opts.priorWeight
	pz := &parzen{
		space:    s.space,
		opts:     s.opts,
		points:   points,
		sigma:    make([][]float64, len(points)),
		catOwn:   make([]float64, len(s.space)),
		catOther: make([]float64, len(s.space)),
		logW:     math.Log(1 / (m + pw)),
		logWPri:  math.Log(pw / (m + pw)),
	}
	for k := range points {
		pz.sigma[k] = make([]float64, len(s.space))
	}
	minSigma := 1 / min(s.opts.maxNarrowing, m+1)
	for i, p := range s.space {
		if p.Type == Categorical {
			// Each kernel puts weight 1 on its own value and catSmoothing on every value, so a
			// value the good trials lack can still win.
			k, c := float64(len(p.Values)), s.opts.catSmoothing
			pz.catOwn[i] = (1 + c) / (1 + k*c)
			pz.catOther[i] = c / (1 + k*c)
			continue
		}
		lo := minSigma
		if p.Type == Int {
			// Never narrower than half a value, or the kernel could miss its own integer.
			lo = max(lo, 0.5/(p.Max-p.Min+1))
		}
		// A kernel is as wide as the larger gap to its neighbours along the axis (the interval's
		// ends count as neighbours): narrow where good trials crowd, wide where they are few.
		order := make([]int, len(points))
		for k := range order {
			order[k] = k
		}
		slices.SortFunc(order, func(a, b int) int { return cmp.Compare(points[a][i], points[b][i]) })
		for j, k := range order {
			left, right := 0.0, 1.0
			if j > 0 {
				left = points[order[j-1]][i]
			}
			if j < len(order)-1 {
				right = points[order[j+1]][i]
			}
			x := points[k][i]
			pz.sigma[k][i] = min(1, max(lo, s.opts.bandwidth*max(x-left, right-x)))
		}
	}
	return pz
}

func (pz *parzen) sample(rng *rand.Rand) observation {
	// Pick a component by weight: 1 for each observation, priorWeight for the prior.
	m := float64(len(pz.points))
	u := rng.Float64() * (m + pz.opts.priorWeight)
	prior := u >= m
	k := min(int(u), len(pz.points)-1)
	o := make(observation, len(pz.space))
	for i, p := range pz.space {
		switch {
		case p.Type == Categorical && prior:
			o[i] = float64(rng.IntN(len(p.Values)))
		case p.Type == Categorical:
			own := pz.points[k][i]
			if rng.Float64() < pz.catOwn[i] {
				o[i] = own
			} else {
				// Any value but its own, evenly.
				j := rng.IntN(len(p.Values) - 1)
				if float64(j) >= own {
					j++
				}
				o[i] = float64(j)
			}
		case prior:
			o[i] = rng.Float64()
		default:
			o[i] = truncNormal(rng, pz.points[k][i], pz.sigma[k][i])
		}
	}
	return o
}

// truncNormal draws from a normal distribution cut to [0, 1].
func truncNormal(rng *rand.Rand, mu, sigma float64) float64 {
	for range 100 {
		if x := mu + sigma*rng.NormFloat64(); x >= 0 && x <= 1 {
			return x
		}
	}
	return min(1, max(0, mu))
}

func (pz *parzen) logDensity(o observation) float64 {
	logs := make([]float64, 0, len(pz.points)+1)
	logs = append(logs, pz.logWPri) // the prior is uniform: density 1 in the unit cube
	for _, p := range pz.space {
		if p.Type == Categorical {
			logs[0] -= math.Log(float64(len(p.Values)))
		}
	}
	for k, pt := range pz.points {
		l := pz.logW
		for i, p := range pz.space {
			if p.Type == Categorical {
				if o[i] == pt[i] {
					l += math.Log(pz.catOwn[i])
				} else {
					l += math.Log(pz.catOther[i])
				}
				continue
			}
			l += logTruncNormal(o[i], pt[i], pz.sigma[k][i])
		}
		logs = append(logs, l)
	}
	return logSumExp(logs)
}

func logTruncNormal(x, mu, sigma float64) float64 {
	z := (x - mu) / sigma
	mass := normCDF((1-mu)/sigma) - normCDF((0-mu)/sigma)
	return -0.5*z*z - math.Log(sigma*math.Sqrt(2*math.Pi)) - math.Log(max(mass, 1e-300))
}

func normCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

func logSumExp(xs []float64) float64 {
	top := math.Inf(-1)
	for _, x := range xs {
		top = max(top, x)
	}
	if math.IsInf(top, -1) {
		return top
	}
	sum := 0.0
	for _, x := range xs {
		sum += math.Exp(x - top)
	}
	return top + math.Log(sum)
}
