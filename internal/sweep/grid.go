package sweep

import "math"

// gridSearch walks the Cartesian product of each parameter's grid values in order, the first
// parameter varying slowest, skipping points that some trial already has.
type gridSearch struct {
	space Space
}

// gridValues lists the values grid search takes from p: every Categorical value; every Int
// value if there are at most Points (DefaultGridPoints if 0) of them, else that many evenly
// spaced; for a Float, Points evenly spaced values from Min to Max. Spacing is in log space
// for a Log parameter.
func gridValues(p Param) []float64 {
	if p.Type == Categorical {
		out := make([]float64, len(p.Values))
		for i := range out {
			out[i] = float64(i)
		}
		return out
	}
	points := p.Points
	if points == 0 {
		points = DefaultGridPoints
	}
	if p.Type == Int && p.Max-p.Min+1 <= float64(points) {
		var out []float64
		for v := p.Min; v <= p.Max; v++ {
			out = append(out, v)
		}
		return out
	}
	if p.Min == p.Max || points == 1 {
		return []float64{p.Min}
	}
	lo, hi := p.Min, p.Max
	if p.Log {
		lo, hi = math.Log(lo), math.Log(hi)
	}
	var out []float64
	for i := range points {
		x := lo + (hi-lo)*float64(i)/float64(points-1)
		if p.Log {
			x = math.Exp(x)
		}
		if p.Type == Int {
			x = math.Round(x)
		} else {
			x = fromUnit(p, toUnit(p, x)) // the same precision as any suggestion
		}
		x = min(p.Max, max(p.Min, x))
		if len(out) == 0 || out[len(out)-1] != x {
			out = append(out, x)
		}
	}
	return out
}

func (s Space) gridSize() int {
	n := 1
	for _, p := range s {
		n *= len(gridValues(p))
		if n > MaxGridSize {
			return n
		}
	}
	return n
}

func (g *gridSearch) Suggest(trials []Trial, n int) ([]Assignment, error) {
	tried := make(map[string]bool, len(trials))
	for _, t := range trials {
		tried[g.space.key(t.Params)] = true
	}
	values := make([][]float64, len(g.space))
	for i, p := range g.space {
		values[i] = gridValues(p)
	}
	var out []Assignment
	size := g.space.gridSize()
	for idx := 0; idx < size && len(out) < n; idx++ {
		a := make(Assignment, len(g.space))
		rest := idx
		for i := len(g.space) - 1; i >= 0; i-- {
			a[g.space[i].Name] = values[i][rest%len(values[i])]
			rest /= len(values[i])
		}
		if !tried[g.space.key(a)] {
			out = append(out, a)
		}
	}
	return out, nil
}
