// Command sweep measures the quality of Kiln's hyperparameter search on functions with a known
// optimum, beside random search and Optuna, in one run and without a cluster:
//
//   - Branin (2-D) and Hartmann6 (6-D): the median number of evaluations, over the seeds, until
//     a trial comes within 1 % of the optimum — for random search, Kiln's TPE and Optuna's TPE
//     sampler at its defaults.
//   - A learning-curve surrogate (curveLoss): the median number of training epochs until a
//     trial reports a loss at least as good as the best that random search without early
//     stopping found in curveTrials trials of the same seed — for that random search itself,
//     Kiln's ASHA and Hyperband, and Optuna's Hyperband and successive-halving pruners (both
//     over Optuna's random sampler, so only the stopping differs).
//
// Optuna runs in optuna_bench.py under Debian's python3 (it installs python3-optuna if
// missing); -optuna=false leaves it out. Run it with `make bench-sweep`.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"kiln.dev/kiln/internal/sweep"
)

const curveTrials = 100

func main() {
	seeds := flag.Int("seeds", 10, "seeds per function")
	tpeBudget := flag.Int("tpe-budget", 500, "evaluations TPE may spend per seed")
	randomBudget := flag.Int("random-budget", 100000, "evaluations random search may spend per seed")
	curveCap := flag.Int("curve-cap", 3*curveTrials*curveEpochs, "epochs a method with early stopping may spend per seed")
	withOptuna := flag.Bool("optuna", true, "run Optuna beside Kiln (needs Debian's python3-optuna)")
	script := flag.String("script", "test/bench/sweep/optuna_bench.py", "the Optuna side")
	python := flag.String("python", "/usr/bin/python3", "the Python that has (or gets) python3-optuna")
	flag.Parse()

	start := time.Now()
	results := map[string]map[string][]*float64{} // method → function → per seed (nil: not reached)
	put := func(method, fn string, v []*float64) {
		if results[method] == nil {
			results[method] = map[string][]*float64{}
		}
		results[method][fn] = v
	}
	for _, p := range []problem{branin, hartmann6} {
		put("random", p.name, each(*seeds, func(seed int64) *float64 { return evalsToOptimum(p, sweep.Random, seed, *randomBudget) }))
		put("kiln-tpe", p.name, each(*seeds, func(seed int64) *float64 { return evalsToOptimum(p, sweep.TPE, seed, *tpeBudget) }))
	}

	var targets []float64
	var randomEpochs []*float64
	for seed := range int64(*seeds) {
		best, at := randomCurve(seed)
		targets = append(targets, best)
		randomEpochs = append(randomEpochs, ptr(float64(at*curveEpochs)))
	}
	put("random", "curve", randomEpochs)
	es := sweep.EarlyStopping{Rule: sweep.ASHA, MinSteps: 1, MaxSteps: curveEpochs, ReductionFactor: 3}
	for _, m := range []struct {
		name string
		alg  sweep.Algorithm
	}{{"kiln-asha", sweep.Random}, {"kiln-hyperband", sweep.Hyperband}, {"kiln-tpe+asha", sweep.TPE}} {
		put(m.name, "curve", each(*seeds, func(seed int64) *float64 {
			return epochsToTarget(sweep.Config{Space: curveSpace, Algorithm: m.alg, Seed: seed, EarlyStopping: es}, targets[seed], *curveCap)
		}))
	}
	kilnTime := time.Since(start)

	var optunaTime time.Duration
	if *withOptuna {
		start := time.Now()
		out, err := runOptuna(*python, *script, map[string]any{
			"seeds":      *seeds,
			"tpe_budget": *tpeBudget,
			"curve":      map[string]any{"targets": targets, "cap": *curveCap, "epochs": curveEpochs},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "optuna:", err)
			os.Exit(1)
		}
		for method, byFn := range out {
			for fn, v := range byFn {
				put(method, fn, v)
			}
		}
		optunaTime = time.Since(start)
	}

	fmt.Printf("Sweep search quality: %d seeds; %s, %d cores; Kiln %s, Optuna %s\n\n",
		*seeds, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), kilnTime.Round(time.Second), optunaTime.Round(time.Second))
	fmt.Printf("Evaluations to come within 1 %% of the optimum (median over seeds; TPE budget %d, random %d)\n\n", *tpeBudget, *randomBudget)
	fmt.Println("| function | random | Kiln TPE | Optuna TPE | Kiln TPE / random | Kiln TPE / Optuna TPE |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, p := range []problem{branin, hartmann6} {
		r, k, o := median(results["random"][p.name]), median(results["kiln-tpe"][p.name]), median(results["optuna-tpe"][p.name])
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", p.name,
			show(results["random"][p.name]), show(results["kiln-tpe"][p.name]), show(results["optuna-tpe"][p.name]),
			bounded(k, r, *randomBudget), bounded(k, o, *tpeBudget))
	}
	fmt.Printf("\nTraining epochs until a trial matches random search's best of %d full trials (%d epochs each; median over seeds; cap %d)\n\n",
		curveTrials, curveEpochs, *curveCap)
	fmt.Println("| method | epochs | / random's |")
	fmt.Println("|---|---|---|")
	r := median(results["random"]["curve"])
	for _, m := range []struct{ key, label string }{
		{"random", "random search, no early stopping"},
		{"kiln-asha", "Kiln ASHA (random proposals)"},
		{"kiln-hyperband", "Kiln Hyperband"},
		{"kiln-tpe+asha", "Kiln TPE + ASHA"},
		{"optuna-hyperband", "Optuna Hyperband pruner (random sampler)"},
		{"optuna-sha", "Optuna successive-halving pruner (random sampler)"},
	} {
		v, ok := results[m.key]["curve"]
		if !ok {
			continue
		}
		fmt.Printf("| %s | %s | %s |\n", m.label, show(v), bounded(median(v), r, *curveCap))
	}
	fmt.Printf("\nrandom search spends %d epochs on its %d trials in all.\n\n", curveTrials*curveEpochs, curveTrials)

	h := "hartmann6"
	target("Kiln TPE needs at most 1/3 of random search's evaluations on Hartmann6",
		median(results["kiln-tpe"][h]) <= median(results["random"][h])/3)
	target("Kiln ASHA reaches random search's final best with at most 1/3 of its epochs",
		median(results["kiln-asha"]["curve"]) <= r/3)
	if _, ok := results["optuna-tpe"]; ok {
		for _, p := range []problem{branin, hartmann6} {
			target("Kiln TPE is no worse than Optuna TPE at the median on "+p.name,
				median(results["kiln-tpe"][p.name]) <= median(results["optuna-tpe"][p.name]))
		}
	}
}

func target(what string, met bool) {
	word := "met"
	if !met {
		word = "NOT met"
	}
	fmt.Printf("- %s: %s\n", what, word)
}

func ptr(v float64) *float64 { return &v }

func each(seeds int, f func(seed int64) *float64) []*float64 {
	out := make([]*float64, seeds)
	for s := range seeds {
		out[s] = f(int64(s))
	}
	return out
}

// evalsToOptimum runs a search one trial at a time until a trial comes within 1 % of the
// optimum; nil if the budget runs out first.
func evalsToOptimum(p problem, alg sweep.Algorithm, seed int64, budget int) *float64 {
	searcher, _, err := sweep.New(sweep.Config{Space: p.space, Algorithm: alg, Seed: seed})
	if err != nil {
		panic(err)
	}
	var trials []sweep.Trial
	for len(trials) < budget {
		as, err := searcher.Suggest(trials, 1)
		if err != nil {
			panic(err)
		}
		v := p.f(as[0])
		if p.reached(v) {
			return ptr(float64(len(trials) + 1))
		}
		if alg == sweep.Random {
			// Random search ignores the history: keep only its length, so long runs stay cheap.
			trials = append(trials, sweep.Trial{})
			continue
		}
		trials = append(trials, sweep.Trial{Params: as[0], State: sweep.Succeeded, Value: v, HasValue: true})
	}
	return nil
}

// randomCurve is random search without early stopping on the learning-curve surrogate: its
// best final loss over curveTrials trials, and how many trials it took to find it.
func randomCurve(seed int64) (best float64, at int) {
	searcher, _, _ := sweep.New(sweep.Config{Space: curveSpace, Algorithm: sweep.Random, Seed: seed})
	as, _ := searcher.Suggest(nil, curveTrials)
	best = math.Inf(1)
	for i, a := range as {
		if v := curveLoss(a, curveEpochs); v < best {
			best, at = v, i+1
		}
	}
	return best, at
}

// epochsToTarget runs trials one at a time, epoch by epoch, asking the Stopper after each
// epoch, until some trial reports a loss at or below target; nil if cap epochs run out first.
func epochsToTarget(cfg sweep.Config, target float64, cap int) *float64 {
	searcher, stopper, err := sweep.New(cfg)
	if err != nil {
		panic(err)
	}
	var trials []sweep.Trial
	epochs := 0
	for epochs < cap {
		as, _ := searcher.Suggest(trials, 1)
		i := len(trials)
		trials = append(trials, sweep.Trial{Params: as[0], State: sweep.Running})
		for e := 1; e <= curveEpochs; e++ {
			epochs++
			v := curveLoss(as[0], e)
			if v <= target {
				return ptr(float64(epochs))
			}
			t := &trials[i]
			t.Curve = append(t.Curve, sweep.Point{Step: e, Value: v})
			if e == curveEpochs {
				t.State, t.Value, t.HasValue = sweep.Succeeded, v, true
				break
			}
			if stop, _ := stopper.ShouldStop(*t, trials); stop {
				t.State = sweep.Stopped
				break
			}
		}
	}
	return nil
}

func runOptuna(python, script string, input any) (map[string]map[string][]*float64, error) {
	in, _ := json.Marshal(input)
	cmd := exec.Command(python, script)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", python, script, err)
	}
	var res map[string]map[string][]*float64
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("reading %s's output: %w", script, err)
	}
	return res, nil
}

// median of per-seed results, a seed that never got there counting as infinitely many.
func median(v []*float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	xs := make([]float64, len(v))
	for i, x := range v {
		xs[i] = math.Inf(1)
		if x != nil {
			xs[i] = *x
		}
	}
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

func show(v []*float64) string {
	if v == nil {
		return "—"
	}
	reached := 0
	for _, x := range v {
		if x != nil {
			reached++
		}
	}
	m := median(v)
	var b strings.Builder
	if math.IsInf(m, 1) {
		b.WriteString("not reached")
	} else {
		fmt.Fprintf(&b, "%g", m)
	}
	if reached < len(v) {
		fmt.Fprintf(&b, " (%d/%d reached)", reached, len(v))
	}
	return b.String()
}

// bounded is ratio, or when b never got there within budget, the bound a/budget.
func bounded(a, b float64, budget int) string {
	if math.IsInf(b, 1) && !math.IsInf(a, 0) && !math.IsNaN(a) {
		return fmt.Sprintf("< %.3g", a/float64(budget))
	}
	return ratio(a, b)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0) || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}
