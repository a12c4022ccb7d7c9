package sweep

import (
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var mixed = Space{
	{Name: "lr", Type: Float, Min: 1e-5, Max: 1e-1, Log: true},
	{Name: "dropout", Type: Float, Min: 0, Max: 0.5},
	{Name: "layers", Type: Int, Min: 1, Max: 8},
	{Name: "width", Type: Int, Min: 16, Max: 1024, Log: true},
	{Name: "optimizer", Type: Categorical, Values: []string{"sgd", "adam", "adamw"}},
}

func TestValidate(t *testing.T) {
	ok := Config{Space: mixed, Algorithm: TPE}
	tests := []struct {
		name string
		cfg  func(c Config) Config
		want []string // substrings of the error; none means valid
	}{
		{"valid", func(c Config) Config { return c }, nil},
		{"empty space", func(c Config) Config { c.Space = nil; return c }, []string{"space: must have at least one parameter"}},
		{"min > max", func(c Config) Config {
			c.Space = Space{{Name: "lr", Type: Float, Min: 2, Max: 1}}
			return c
		}, []string{"space[0] (lr): min 2 is greater than max 1"}},
		{"log with min <= 0", func(c Config) Config {
			c.Space = Space{{Name: "lr", Type: Float, Min: 0, Max: 1, Log: true}}
			return c
		}, []string{"space[0] (lr): a log scale needs min > 0"}},
		{"empty categorical", func(c Config) Config {
			c.Space = Space{{Name: "opt", Type: Categorical}}
			return c
		}, []string{"space[0] (opt): a categorical parameter needs at least one value"}},
		{"repeated value", func(c Config) Config {
			c.Space = Space{{Name: "opt", Type: Categorical, Values: []string{"a", "a"}}}
			return c
		}, []string{`values[1] "a" is repeated`}},
		{"fractional int bounds", func(c Config) Config {
			c.Space = Space{{Name: "n", Type: Int, Min: 0.5, Max: 3}}
			return c
		}, []string{"whole-number bounds"}},
		{"bad name and duplicate", func(c Config) Config {
			c.Space = Space{{Name: "a-b", Type: Int, Max: 3}, {Name: "x", Type: Int, Max: 1}, {Name: "x", Type: Float, Max: 1}, {Name: "X", Type: Float, Max: 1}}
			return c
		}, []string{`space[0]: name "a-b"`, "space[2] (x): name is already used by space[1]", "space[3] (X): name has the same environment variable KILN_PARAM_X"}},
		{"unknown type", func(c Config) Config { c.Space = Space{{Name: "x", Type: "bool"}}; return c }, []string{`unknown type "bool"`}},
		{"unknown algorithm", func(c Config) Config { c.Algorithm = "bayes"; return c }, []string{`algorithm: unknown algorithm "bayes"`}},
		{"no algorithm", func(c Config) Config { c.Algorithm = ""; return c }, []string{"algorithm: required"}},
		{"unknown direction", func(c Config) Config { c.Direction = "up"; return c }, []string{`direction: unknown direction "up"`}},
		{"unknown rule", func(c Config) Config { c.EarlyStopping.Rule = "mean"; return c }, []string{`earlyStopping.rule: unknown rule "mean"`}},
		{"asha without steps", func(c Config) Config { c.EarlyStopping = EarlyStopping{Rule: ASHA}; return c },
			[]string{"earlyStopping.minSteps: successive halving needs at least 1", "earlyStopping.maxSteps: successive halving needs maxSteps (0) > minSteps (0)"}},
		{"eta 1", func(c Config) Config {
			c.EarlyStopping = EarlyStopping{Rule: ASHA, MinSteps: 1, MaxSteps: 9, ReductionFactor: 1}
			return c
		}, []string{"earlyStopping.reductionFactor: must be at least 2"}},
		{"hyperband with median", func(c Config) Config {
			c.Algorithm, c.EarlyStopping = Hyperband, EarlyStopping{Rule: Median, MinSteps: 1, MaxSteps: 9}
			return c
		}, []string{"hyperband stops trials itself"}},
		{"huge grid", func(c Config) Config {
			c.Algorithm = Grid
			for i := range 10 {
				c.Space = append(c.Space, Param{Name: "p" + string(rune('a'+i)), Type: Int, Min: 0, Max: 9, Points: 10})
			}
			return c
		}, []string{"space: grid has"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg(ok).Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if _, _, nerr := New(tt.cfg(ok)); nerr == nil {
				t.Errorf("New accepted a config Validate refuses")
			}
		})
	}
}

func TestFormatParse(t *testing.T) {
	a := Assignment{"lr": 0.000123457, "dropout": 0.25, "layers": 3, "width": 512, "optimizer": 2}
	got, err := mixed.Format(a)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"lr": "0.000123457", "dropout": "0.25", "layers": "3", "width": "512", "optimizer": "adamw"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Format (-want +got):\n%s", diff)
	}
	back, err := mixed.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, back); diff != "" {
		t.Errorf("Parse(Format(a)) (-want +got):\n%s", diff)
	}
	for _, bad := range []map[string]string{
		{"lr": "x", "dropout": "0", "layers": "1", "width": "16", "optimizer": "sgd"},
		{"lr": "1", "dropout": "0", "layers": "1.5", "width": "16", "optimizer": "sgd"},
		{"lr": "1", "dropout": "0", "layers": "1", "width": "16", "optimizer": "rmsprop"},
		{"lr": "1", "dropout": "0", "layers": "1", "width": "16"},
		{"lr": "1", "dropout": "0", "layers": "1", "width": "16", "optimizer": "sgd", "extra": "1"},
	} {
		if _, err := mixed.Parse(bad); err == nil {
			t.Errorf("Parse(%v) = nil error, want one", bad)
		}
	}
	if got, want := EnvName("lr"), "KILN_PARAM_LR"; got != want {
		t.Errorf("EnvName = %q, want %q", got, want)
	}
	if got, want := Placeholder("lr"), "${params.lr}"; got != want {
		t.Errorf("Placeholder = %q, want %q", got, want)
	}
}

// quadratic has its minimum 0 at lr=1e-3, dropout=0.1, layers=4, width=128, optimizer=adam.
func quadratic(a Assignment) float64 {
	d := math.Log10(a["lr"]) + 3
	v := d*d + 4*(a["dropout"]-0.1)*(a["dropout"]-0.1)*16 + math.Pow((a["layers"]-4)/7, 2)*4 +
		math.Pow(math.Log2(a["width"]/128)/6, 2)*4
	if a["optimizer"] != 1 {
		v += 0.5
	}
	return v
}

// run drives a searcher sequentially for n trials, in batches of batch.
func run(t *testing.T, s Searcher, n, batch int, f func(Assignment) float64) []Trial {
	t.Helper()
	var trials []Trial
	for len(trials) < n {
		as, err := s.Suggest(trials, min(batch, n-len(trials)))
		if err != nil {
			t.Fatal(err)
		}
		if len(as) == 0 {
			break
		}
		for _, a := range as {
			v := f(a)
			trials = append(trials, Trial{Params: a, State: Succeeded, Value: v, HasValue: true, Curve: []Point{{Step: 1, Value: v}}})
		}
	}
	return trials
}

func TestSearchersDeterministicAndInBounds(t *testing.T) {
	for _, alg := range []Algorithm{Random, TPE, Hyperband, Grid} {
		t.Run(string(alg), func(t *testing.T) {
			cfg := Config{Space: mixed, Algorithm: alg, Seed: 42, EarlyStopping: EarlyStopping{MinSteps: 1, MaxSteps: 27}}
			s1, _, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			s2, _, _ := New(cfg)
			a := run(t, s1, 30, 4, quadratic)
			b := run(t, s2, 30, 1, quadratic)
			if diff := cmp.Diff(a, b); diff != "" && alg != TPE {
				t.Errorf("batching changed the trials (-batches of 4 +one at a time):\n%s", diff)
			}
			c := run(t, s1, 30, 4, quadratic)
			if diff := cmp.Diff(a, c); diff != "" {
				t.Errorf("a second run with the same seed differs:\n%s", diff)
			}
			other, _, _ := New(Config{Space: mixed, Algorithm: alg, Seed: 43, EarlyStopping: cfg.EarlyStopping})
			if d := run(t, other, 30, 4, quadratic); alg != Grid && cmp.Equal(a, d) {
				t.Errorf("another seed gave the same trials")
			}
			for _, tr := range a {
				for _, p := range mixed {
					v := tr.Params[p.Name]
					switch p.Type {
					case Categorical:
						if v != math.Trunc(v) || v < 0 || int(v) >= len(p.Values) {
							t.Errorf("%s = %v is not a value index", p.Name, v)
						}
					default:
						if v < p.Min || v > p.Max {
							t.Errorf("%s = %v is outside [%v, %v]", p.Name, v, p.Min, p.Max)
						}
						if p.Type == Int && v != math.Trunc(v) {
							t.Errorf("%s = %v is not an integer", p.Name, v)
						}
					}
				}
				if _, err := mixed.Format(tr.Params); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestRandomScales(t *testing.T) {
	space := Space{
		{Name: "lr", Type: Float, Min: 1e-6, Max: 1, Log: true},
		{Name: "x", Type: Float, Min: 0, Max: 1},
		{Name: "c", Type: Categorical, Values: []string{"a", "b", "c", "d"}},
		{Name: "n", Type: Int, Min: 1, Max: 1000, Log: true},
	}
	s, _, _ := New(Config{Space: space, Algorithm: Random, Seed: 1})
	as, _ := s.Suggest(nil, 4000)
	var lrSmall, xSmall, nSmall int
	counts := make([]int, 4)
	for _, a := range as {
		if a["lr"] < 1e-3 { // half the log range
			lrSmall++
		}
		if a["x"] < 0.5 {
			xSmall++
		}
		if a["n"] <= 31 { // half the log range of [0.5, 1000.5]
			nSmall++
		}
		counts[int(a["c"])]++
	}
	near := func(name string, got, want int) {
		if math.Abs(float64(got-want)) > 0.06*float64(want) {
			t.Errorf("%s: %d of %d samples, want about %d", name, got, len(as), want)
		}
	}
	near("lr below 1e-3 (log scale)", lrSmall, 2000)
	near("x below 0.5", xSmall, 2000)
	near("n at most 31 (log scale)", nSmall, 2000)
	for i, c := range counts {
		near("categorical value "+space[2].Values[i], c, 1000)
	}
}

func TestGrid(t *testing.T) {
	space := Space{
		{Name: "opt", Type: Categorical, Values: []string{"sgd", "adam"}},
		{Name: "layers", Type: Int, Min: 1, Max: 3},
		{Name: "lr", Type: Float, Min: 1e-4, Max: 1e-2, Log: true, Points: 3},
		{Name: "width", Type: Int, Min: 0, Max: 100, Points: 3},
	}
	values := map[string][]float64{}
	for _, p := range space {
		values[p.Name] = gridValues(p)
	}
	wantValues := map[string][]float64{"opt": {0, 1}, "layers": {1, 2, 3}, "lr": {1e-4, 1e-3, 1e-2}, "width": {0, 50, 100}}
	if diff := cmp.Diff(wantValues, values, cmpApprox); diff != "" {
		t.Errorf("grid values (-want +got):\n%s", diff)
	}
	if got := gridValues(Param{Name: "x", Type: Float, Min: 0, Max: 1}); len(got) != DefaultGridPoints {
		t.Errorf("a float takes %d points by default, want %d", len(got), DefaultGridPoints)
	}

	s, _, _ := New(Config{Space: space, Algorithm: Grid})
	// Half given earlier (a restarted controller), the rest asked for in odd batches: every point
	// exactly once, then nothing.
	trials := run(t, s, 20, 7, func(Assignment) float64 { return 0 })
	all := run(t, s, 1000, 7, func(Assignment) float64 { return 0 })
	if diff := cmp.Diff(trials, all[:20]); diff != "" {
		t.Errorf("grid order depends on batching:\n%s", diff)
	}
	if len(all) != 54 {
		t.Fatalf("grid gave %d trials, want 2*3*3*3 = 54", len(all))
	}
	seen := map[string]bool{}
	for _, tr := range all {
		k := space.key(tr.Params)
		if seen[k] {
			t.Errorf("grid repeated %v", tr.Params)
		}
		seen[k] = true
	}
	if more, _ := s.Suggest(all, 5); len(more) != 0 {
		t.Errorf("exhausted grid suggested %v", more)
	}
}

var cmpApprox = cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) })

func curve(values ...float64) []Point {
	out := make([]Point, len(values))
	for i, v := range values {
		out[i] = Point{Step: i + 1, Value: v}
	}
	return out
}

func TestASHA(t *testing.T) {
	cfg := Config{Space: Space{{Name: "x", Type: Float, Max: 1}}, Algorithm: Random,
		EarlyStopping: EarlyStopping{Rule: ASHA, MinSteps: 1, MaxSteps: 9, ReductionFactor: 3}}
	_, stopper, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := stopper.(*halving).rungs(0); !cmp.Equal(got, []int{1, 3}) {
		t.Errorf("rungs = %v, want [1 3] (9 is the end, not a rung)", got)
	}
	done := func(x float64, c []Point) Trial { return Trial{Params: Assignment{"x": x}, State: Succeeded, Curve: c} }
	running := func(x float64, c []Point) Trial { return Trial{Params: Assignment{"x": x}, State: Running, Curve: c} }
	field := []Trial{
		done(0.1, curve(1.0, 0.9, 0.5, 0.4)),
		done(0.2, curve(2.0, 1.9, 1.8)),
		{Params: Assignment{"x": 0.3}, State: Stopped, Curve: curve(3.0)},
		{Params: Assignment{"x": 0.4}, State: Stopped, Curve: curve(4.0)},
		{Params: Assignment{"x": 0.5}, State: Failed},
	}
	tests := []struct {
		name   string
		t      Trial
		trials []Trial
		stop   bool
	}{
		{"no report yet", running(0.9, nil), field, false},
		{"first trial at a rung goes on", running(0.9, curve(5)), nil, false},
		{"best of two at rung 1 goes on (fewer than eta: only the best)", running(0.9, curve(1.5)), field[1:2], false},
		{"second of two stops", running(0.9, curve(2.5)), field[1:2], true},
		// Rung 1 has the four others and this one: 5/3 = 1 goes on.
		{"best at rung 1 of five goes on", running(0.9, curve(0.5)), field, false},
		{"second at rung 1 of five stops", running(0.9, curve(1.5)), field, true},
		{"between rungs, judged at the last rung", running(0.9, curve(0.5, 0.45)), field, false},
		// Rung 3 has trials 0 and 1 (0.5, 1.8) and this one: only the best goes on.
		{"best at rung 3 goes on", running(0.9, curve(0.5, 0.45, 0.3)), field, false},
		{"worse at rung 3 stops", running(0.9, curve(0.5, 0.45, 0.6)), field, true},
		{"a finished trial is never stopped", done(0.9, curve(9)), field, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trials := append(append([]Trial(nil), tt.trials...), tt.t)
			stop, reason := stopper.ShouldStop(tt.t, trials)
			if stop != tt.stop {
				t.Errorf("ShouldStop = %v (%q), want %v", stop, reason, tt.stop)
			}
			if stop && reason == "" {
				t.Errorf("stopped without a reason")
			}
		})
	}

	// Maximizing reverses the order.
	cfg.Direction = Maximize
	_, stopper, _ = New(cfg)
	tr := running(0.9, curve(2.5))
	if stop, _ := stopper.ShouldStop(tr, []Trial{field[1], tr}); stop {
		t.Errorf("maximizing: the higher of two was stopped")
	}
}

func TestHyperbandBrackets(t *testing.T) {
	cfg := Config{Space: Space{{Name: "x", Type: Float, Max: 1}}, Algorithm: Hyperband, Seed: 7,
		EarlyStopping: EarlyStopping{MinSteps: 1, MaxSteps: 27, ReductionFactor: 3}}
	searcher, stopper, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := stopper.(*halving)
	var rungs [][]int
	for b := range h.brackets {
		rungs = append(rungs, h.rungs(b))
	}
	if diff := cmp.Diff([][]int{{1, 3, 9}, {3, 9}, {9}, nil}, rungs); diff != "" {
		t.Errorf("bracket rungs (-want +got):\n%s", diff)
	}
	as, _ := searcher.Suggest(nil, 2000)
	counts := make([]int, h.brackets)
	for _, a := range as {
		counts[h.bracket(a)]++
	}
	if !sort.SliceIsSorted(counts, func(i, j int) bool { return counts[i] > counts[j] }) || counts[h.brackets-1] == 0 {
		t.Errorf("trials per bracket = %v, want every bracket used and the aggressive ones more", counts)
	}
	// Trials in other brackets do not compete: a trial alone in its bracket goes on.
	var a, b Assignment
	for _, x := range as {
		switch h.bracket(x) {
		case 0:
			a = x
		case 1:
			b = x
		}
	}
	ta := Trial{Params: a, State: Running, Curve: curve(9, 9, 9)}
	tb := Trial{Params: b, State: Succeeded, Curve: curve(1, 1, 1)}
	if stop, why := stopper.ShouldStop(ta, []Trial{tb, ta}); stop {
		t.Errorf("stopped against a trial of another bracket: %s", why)
	}
}

func TestMedian(t *testing.T) {
	_, stopper, err := New(Config{Space: Space{{Name: "x", Type: Float, Max: 1}}, Algorithm: Random,
		EarlyStopping: EarlyStopping{Rule: Median, MinSteps: 2}})
	if err != nil {
		t.Fatal(err)
	}
	tr := func(x float64, s State, c []Point) Trial {
		return Trial{Params: Assignment{"x": x}, State: s, Curve: c}
	}
	// Running averages up to step 2: 1.5, 2.5, 3.5 (median 2.5); up to step 3: 1.33, 2.33, 3.33.
	field := []Trial{
		tr(0.1, Succeeded, curve(2, 1, 1)),
		tr(0.2, Succeeded, curve(3, 2, 2)),
		tr(0.3, Stopped, curve(4, 3, 3)),
	}
	tests := []struct {
		name   string
		t      Trial
		trials []Trial
		stop   bool
	}{
		{"before minSteps", tr(0.9, Running, curve(9)), field, false},
		{"better than the median", tr(0.9, Running, curve(9, 2.4)), field, false},
		{"worse than the median", tr(0.9, Running, curve(9, 2.6)), field, true},
		{"best so far counts, not last", tr(0.9, Running, curve(2.0, 2.6)), field, false},
		{"too few others", tr(0.9, Running, curve(9, 9)), field[:2], false},
		{"others that have not reached the step do not count", tr(0.9, Running, curve(9, 9, 9, 9)), field, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trials := append(append([]Trial(nil), tt.trials...), tt.t)
			if stop, reason := stopper.ShouldStop(tt.t, trials); stop != tt.stop {
				t.Errorf("ShouldStop = %v (%q), want %v", stop, reason, tt.stop)
			}
		})
	}
}

func best(trials []Trial) float64 {
	b := math.Inf(1)
	for _, t := range trials {
		if t.HasValue {
			b = min(b, t.Value)
		}
	}
	return b
}

// TestTPEBeatsRandom: on a quadratic bowl over all parameter types, TPE's best after 60 trials
// beats random search's in most seeds, and its median best is far lower.
func TestTPEBeatsRandom(t *testing.T) {
	var tpeBest, randBest []float64
	wins := 0
	for seed := range int64(10) {
		tp, _, _ := New(Config{Space: mixed, Algorithm: TPE, Seed: seed})
		rs, _, _ := New(Config{Space: mixed, Algorithm: Random, Seed: seed})
		a, b := best(run(t, tp, 60, 1, quadratic)), best(run(t, rs, 60, 1, quadratic))
		tpeBest, randBest = append(tpeBest, a), append(randBest, b)
		if a < b {
			wins++
		}
	}
	sort.Float64s(tpeBest)
	sort.Float64s(randBest)
	t.Logf("median best after 60 trials: tpe %.4f, random %.4f; tpe better in %d of 10 seeds", tpeBest[5], randBest[5], wins)
	if wins < 8 || tpeBest[5] > randBest[5]/2 {
		t.Errorf("TPE is not clearly better than random search")
	}
}

// TestTPEParallelSuggestionsDiffer: a batch, and suggestions made while trials run, spread out.
func TestTPEParallelSuggestionsDiffer(t *testing.T) {
	space := Space{{Name: "x", Type: Int, Min: 0, Max: 20}, {Name: "c", Type: Categorical, Values: []string{"a", "b"}}}
	s, _, _ := New(Config{Space: space, Algorithm: TPE, Seed: 3})
	trials := run(t, s, 20, 1, func(a Assignment) float64 { return math.Abs(a["x"] - 10) })
	as, _ := s.Suggest(trials, 4)
	seen := map[string]bool{}
	for _, a := range as {
		seen[space.key(a)] = true
	}
	if len(seen) < 3 {
		t.Errorf("a batch of 4 has only %d distinct points: %v", len(seen), as)
	}
	// The same four asked for one by one, each marked running, match the batch.
	var one []Assignment
	pending := append([]Trial(nil), trials...)
	for range 4 {
		a, _ := s.Suggest(pending, 1)
		one = append(one, a[0])
		pending = append(pending, Trial{Params: a[0], State: Running})
	}
	if diff := cmp.Diff(as, one); diff != "" {
		t.Errorf("batch and one-by-one with running trials differ (-batch +one by one):\n%s", diff)
	}
}

// TestTPEFailedAndStopped: failures push the search away; stopped trials still rank.
func TestTPEFailedAndStopped(t *testing.T) {
	space := Space{{Name: "x", Type: Float, Min: 0, Max: 1}}
	s, _, _ := New(Config{Space: space, Algorithm: TPE, Seed: 5})
	var trials []Trial
	for len(trials) < 60 {
		as, _ := s.Suggest(trials, 1)
		x := as[0]["x"]
		switch {
		case x < 0.3: // crashes: never a value
			trials = append(trials, Trial{Params: as[0], State: Failed})
		case x > 0.8: // stopped early, after one bad report
			trials = append(trials, Trial{Params: as[0], State: Stopped, Curve: curve(5)})
		default:
			trials = append(trials, Trial{Params: as[0], State: Succeeded, HasValue: true, Value: math.Abs(x - 0.5), Curve: curve(math.Abs(x - 0.5))})
		}
	}
	failedLate := 0
	for _, tr := range trials[30:] {
		if tr.State == Failed {
			failedLate++
		}
	}
	if failedLate > 4 { // random search would put 9 there
		t.Errorf("%d of the last 30 trials fell in the failing region, want few", failedLate)
	}
	if b := best(trials); b > 0.01 {
		t.Errorf("best %v, want within 0.01 of the optimum", b)
	}
}
