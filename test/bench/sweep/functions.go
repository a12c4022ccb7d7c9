package main

import (
	"math"

	"kiln.dev/kiln/internal/sweep"
)

// problem is a function to minimise over a search space, with its known optimum.
type problem struct {
	name    string
	space   sweep.Space
	f       func(sweep.Assignment) float64
	optimum float64
}

// reached tells whether v is within 1 % of the optimum.
func (p problem) reached(v float64) bool {
	return math.Abs(v-p.optimum) <= 0.01*math.Abs(p.optimum)
}

var branin = problem{
	name: "branin",
	space: sweep.Space{
		{Name: "x1", Type: sweep.Float, Min: -5, Max: 10},
		{Name: "x2", Type: sweep.Float, Min: 0, Max: 15},
	},
	f: func(a sweep.Assignment) float64 {
		x1, x2 := a["x1"], a["x2"]
		b, c, t := 5.1/(4*math.Pi*math.Pi), 5/math.Pi, 1/(8*math.Pi)
		return math.Pow(x2-b*x1*x1+c*x1-6, 2) + 10*(1-t)*math.Cos(x1) + 10
	},
	optimum: 0.397887,
}

var (
	hartmannAlpha = [4]float64{1.0, 1.2, 3.0, 3.2}
	hartmannA     = [4][6]float64{
		{10, 3, 17, 3.5, 1.7, 8},
		{0.05, 10, 17, 0.1, 8, 14},
		{3, 3.5, 1.7, 10, 17, 8},
		{17, 8, 0.05, 10, 0.1, 14},
	}
	hartmannP = [4][6]float64{
		{1312, 1696, 5569, 124, 8283, 5886},
		{2329, 4135, 8307, 3736, 1004, 9991},
		{2348, 1451, 3522, 2883, 3047, 6650},
		{4047, 8828, 8732, 5743, 1091, 381},
	}
)

var hartmann6 = problem{
	name: "hartmann6",
	space: func() sweep.Space {
		var s sweep.Space
		for _, n := range []string{"x1", "x2", "x3", "x4", "x5", "x6"} {
			s = append(s, sweep.Param{Name: n, Type: sweep.Float, Min: 0, Max: 1})
		}
		return s
	}(),
	f: func(a sweep.Assignment) float64 {
		x := [6]float64{a["x1"], a["x2"], a["x3"], a["x4"], a["x5"], a["x6"]}
		sum := 0.0
		for i := range 4 {
			inner := 0.0
			for j := range 6 {
				d := x[j] - hartmannP[i][j]*1e-4
				inner += hartmannA[i][j] * d * d
			}
			sum += hartmannAlpha[i] * math.Exp(-inner)
		}
		return -sum
	},
	optimum: -3.32237,
}

// The learning-curve surrogate: a model trained for curveEpochs epochs whose validation loss
// falls from about 2 towards a floor set by its hyperparameters. Small learning rates and wide
// models learn more slowly, so early epochs rank trials only roughly: the curves cross. The
// floor is exactly the loss at the last epoch; its minimum, 0.1, is at lr = 10^-2.5,
// momentum = 0.9, width = 128 and optimizer adam. test/bench/sweep/optuna_bench.py computes
// the same function.
const curveEpochs = 27

var curveSpace = sweep.Space{
	{Name: "lr", Type: sweep.Float, Min: 1e-4, Max: 1, Log: true},
	{Name: "momentum", Type: sweep.Float, Min: 0, Max: 0.99},
	{Name: "width", Type: sweep.Int, Min: 16, Max: 1024, Log: true},
	{Name: "optimizer", Type: sweep.Categorical, Values: []string{"sgd", "adam", "rmsprop"}},
}

const curveOptimum = 0.1

func curveLoss(a sweep.Assignment, epoch int) float64 {
	lr := math.Log10(a["lr"]) + 2.5
	w := math.Log2(a["width"]) - 7
	floor := curveOptimum + 0.3*lr*lr + 2*(a["momentum"]-0.9)*(a["momentum"]-0.9) + 0.05*w*w +
		[]float64{0.15, 0, 0.05}[int(a["optimizer"])]
	tau := 1.5 + 3*math.Max(0, -lr) + 0.5*math.Max(0, w)
	return floor + 2*(math.Exp(-float64(epoch)/tau)-math.Exp(-curveEpochs/tau))
}
