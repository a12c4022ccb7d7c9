package sweep

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
)

// better orders objective values: lower is better after this, whatever the direction.
func score(dir Direction, v float64) float64 {
	if dir == Maximize {
		return -v
	}
	return v
}

// valueAt is a curve's value at the first report at or after step, or false if the curve has
// not got that far.
func valueAt(c []Point, step int) (float64, bool) {
	for _, p := range c {
		if p.Step >= step {
			return p.Value, true
		}
	}
	return 0, false
}

// sameTrial tells whether a and b are the same trial, for leaving a trial out of the field it
// is compared against.
func sameTrial(a, b Trial) bool {
	if len(a.Curve) != len(b.Curve) || len(a.Params) != len(b.Params) {
		return false
	}
	for k, v := range a.Params {
		if w, ok := b.Params[k]; !ok || w != v {
			return false
		}
	}
	return len(a.Curve) == 0 || a.Curve[len(a.Curve)-1] == b.Curve[len(b.Curve)-1]
}

// others is trials without t (without the first trial that is t, should two look alike).
func others(t Trial, trials []Trial) []Trial {
	out := make([]Trial, 0, len(trials))
	skipped := false
	for _, o := range trials {
		if !skipped && sameTrial(t, o) {
			skipped = true
			continue
		}
		out = append(out, o)
	}
	return out
}

// halving is asynchronous successive halving (ASHA). Rungs sit at base·eta^k steps below
// MaxSteps. A running trial that has reached a rung, and not yet the next, goes on only while
// its value at the rung is among the best 1/eta of every trial's value at that rung (the best
// one goes on while fewer than eta trials got there). Nothing waits for a rung to fill, so
// trials never idle.
//
// With brackets it is Hyperband: each trial falls, by a hash of its parameters and the seed,
// into one of several brackets whose first rung is MinSteps·eta^b; the last bracket has no
// rung below MaxSteps and runs every trial to the end. Brackets are weighted as Hyperband
// weights them, so the aggressive ones get more trials, and trials compete only within their
// bracket.
type halving struct {
	dir                Direction
	minSteps, maxSteps int
	eta                int
	brackets           int
	weights            []float64
	seed               int64
	space              Space
}

func newHalving(dir Direction, minSteps, maxSteps, eta int, hyperband bool, seed int64, space Space) *halving {
	h := &halving{dir: dir, minSteps: minSteps, maxSteps: maxSteps, eta: eta, brackets: 1, seed: seed, space: space}
	if hyperband {
		h.brackets = len(h.rungs(0)) + 1
		h.weights = make([]float64, h.brackets)
		total := 0.0
		for b := range h.brackets {
			halvings := float64(h.brackets - 1 - b)
			h.weights[b] = math.Pow(float64(eta), halvings) / (halvings + 1)
			total += h.weights[b]
		}
		for b := range h.weights {
			h.weights[b] /= total
		}
	}
	return h
}

// rungs lists the steps at which bracket b judges trials.
func (h *halving) rungs(b int) []int {
	var out []int
	for r := h.minSteps * int(math.Pow(float64(h.eta), float64(b))); r < h.maxSteps; r *= h.eta {
		out = append(out, r)
	}
	return out
}

// bracket places a trial by its parameters, so a restarted controller places it alike.
func (h *halving) bracket(a Assignment) int {
	if h.brackets == 1 {
		return 0
	}
	f := fnv.New64a()
	fmt.Fprintf(f, "%d\x00%s", h.seed, h.space.key(a))
	u := float64(f.Sum64()>>11) / (1 << 53)
	for b, w := range h.weights {
		if u < w {
			return b
		}
		u -= w
	}
	return h.brackets - 1
}

func (h *halving) ShouldStop(t Trial, trials []Trial) (bool, string) {
	if t.State != Running || len(t.Curve) == 0 {
		return false, ""
	}
	b := h.bracket(t.Params)
	rungs := h.rungs(b)
	last := t.Curve[len(t.Curve)-1].Step
	k := -1
	for i, r := range rungs {
		if last >= r {
			k = i
		}
	}
	if k < 0 {
		return false, ""
	}
	rung := rungs[k]
	mine, _ := valueAt(t.Curve, rung)
	mine = score(h.dir, mine)
	field := 1
	ahead := 0
	for _, o := range others(t, trials) {
		if h.bracket(o.Params) != b {
			continue
		}
		v, ok := valueAt(o.Curve, rung)
		if !ok || math.IsNaN(v) {
			continue
		}
		field++
		if score(h.dir, v) < mine || math.IsNaN(mine) {
			ahead++
		}
	}
	keep := max(1, field/h.eta)
	if ahead < keep {
		return false, ""
	}
	return true, fmt.Sprintf("at step %d its objective %g ranks %d of %d trials; only the best %d go on past this rung",
		rung, score(h.dir, mine), ahead+1, field, keep)
}

// medianMinTrials is how many other trials must have reached a step before the median rule
// judges a trial there.
const medianMinTrials = 3

// medianStop is the median stopping rule: from MinSteps on, a running trial is stopped when
// its best value so far is worse than the median of the other trials' running averages up to
// the same step.
type medianStop struct {
	dir      Direction
	minSteps int
}

func (m *medianStop) ShouldStop(t Trial, trials []Trial) (bool, string) {
	if t.State != Running || len(t.Curve) == 0 {
		return false, ""
	}
	step := t.Curve[len(t.Curve)-1].Step
	if step < m.minSteps {
		return false, ""
	}
	best := math.Inf(1)
	for _, p := range t.Curve {
		if v := score(m.dir, p.Value); v < best {
			best = v
		}
	}
	var averages []float64
	for _, o := range others(t, trials) {
		if _, ok := valueAt(o.Curve, step); !ok {
			continue
		}
		sum, n := 0.0, 0
		for _, p := range o.Curve {
			if p.Step > step {
				break
			}
			sum += score(m.dir, p.Value)
			n++
		}
		if n > 0 && !math.IsNaN(sum) {
			averages = append(averages, sum/float64(n))
		}
	}
	if len(averages) < medianMinTrials {
		return false, ""
	}
	slices.Sort(averages)
	median := averages[len(averages)/2]
	if len(averages)%2 == 0 {
		median = (averages[len(averages)/2-1] + averages[len(averages)/2]) / 2
	}
	if best > median || math.IsNaN(best) {
		return true, fmt.Sprintf("at step %d its best objective %g is worse than the median %g of %d other trials' running averages",
			step, score(m.dir, best), score(m.dir, median), len(averages))
	}
	return false, ""
}
