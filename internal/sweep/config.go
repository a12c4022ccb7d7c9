package sweep

import (
	"errors"
	"fmt"
	"math"
	"regexp"
)

// Defaults applied where a Config leaves a field zero.
const (
	// DefaultReductionFactor is ASHA's and Hyperband's eta when EarlyStopping leaves it 0.
	DefaultReductionFactor = 3
	// DefaultGridPoints is how many values grid search takes from a Float parameter, and the
	// most it takes from an Int parameter (an Int with fewer values takes every one), when
	// Param.Points is 0. Points are evenly spaced, in log space for a Log parameter, and
	// include both bounds.
	DefaultGridPoints = 5
	// MaxGridSize bounds the number of points in a grid so that a typo cannot ask for billions.
	MaxGridSize = 1_000_000
)

var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports every problem with the Config at once, each naming the field it is about.
// An empty Direction means Minimize and an empty early-stopping Rule means None.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	errs = append(errs, c.Space.validate()...)

	switch c.Algorithm {
	case Grid, Random, TPE, Hyperband:
	case "":
		add("algorithm: required (one of grid, random, tpe, hyperband)")
	default:
		add("algorithm: unknown algorithm %q (one of grid, random, tpe, hyperband)", c.Algorithm)
	}
	if c.Algorithm == Grid && len(c.Space.validate()) == 0 {
		if n := c.Space.gridSize(); n > MaxGridSize {
			add("space: grid has %d points, more than %d; give parameters fewer points", n, MaxGridSize)
		}
	}
	switch c.Direction {
	case "", Minimize, Maximize:
	default:
		add("direction: unknown direction %q (minimize or maximize)", c.Direction)
	}
	if c.MaxTrials < 0 {
		add("maxTrials: must not be negative, got %d", c.MaxTrials)
	}

	es := c.EarlyStopping
	switch es.Rule {
	case "", None, Median, ASHA:
	default:
		add("earlyStopping.rule: unknown rule %q (one of none, median, asha)", es.Rule)
	}
	if c.Algorithm == Hyperband && es.Rule == Median {
		add("earlyStopping.rule: hyperband stops trials itself and cannot use the median rule")
	}
	if es.MinSteps < 0 {
		add("earlyStopping.minSteps: must not be negative, got %d", es.MinSteps)
	}
	if es.ReductionFactor != 0 && es.ReductionFactor < 2 {
		add("earlyStopping.reductionFactor: must be at least 2, got %d", es.ReductionFactor)
	}
	if c.Algorithm == Hyperband || es.Rule == ASHA {
		if es.MinSteps < 1 {
			add("earlyStopping.minSteps: successive halving needs at least 1, got %d", es.MinSteps)
		}
		if es.MaxSteps <= es.MinSteps {
			add("earlyStopping.maxSteps: successive halving needs maxSteps (%d) > minSteps (%d)", es.MaxSteps, es.MinSteps)
		}
	}
	return errors.Join(errs...)
}

func (s Space) validate() []error {
	var errs []error
	if len(s) == 0 {
		return []error{errors.New("space: must have at least one parameter")}
	}
	names := map[string]int{}
	envs := map[string]int{}
	for i, p := range s {
		at := fmt.Sprintf("space[%d]", i)
		add := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf(at+": "+format, args...))
		}
		if !paramName.MatchString(p.Name) {
			add("name %q must be a letter or _ followed by letters, digits or _", p.Name)
		} else {
			at = fmt.Sprintf("space[%d] (%s)", i, p.Name)
			if j, ok := names[p.Name]; ok {
				add("name is already used by space[%d]", j)
			} else if j, ok := envs[EnvName(p.Name)]; ok {
				add("name has the same environment variable %s as space[%d]", EnvName(p.Name), j)
			}
			names[p.Name], envs[EnvName(p.Name)] = i, i
		}
		if p.Points < 0 {
			add("points must not be negative, got %d", p.Points)
		}
		switch p.Type {
		case Int, Float:
			if math.IsNaN(p.Min) || math.IsInf(p.Min, 0) || math.IsNaN(p.Max) || math.IsInf(p.Max, 0) {
				add("min and max must be finite numbers")
				continue
			}
			if p.Min > p.Max {
				add("min %v is greater than max %v", p.Min, p.Max)
			}
			if p.Log && p.Min <= 0 {
				add("a log scale needs min > 0, got %v", p.Min)
			}
			if p.Type == Int && (p.Min != math.Trunc(p.Min) || p.Max != math.Trunc(p.Max)) {
				add("an int parameter needs whole-number bounds, got [%v, %v]", p.Min, p.Max)
			}
			if len(p.Values) > 0 {
				add("values are only for categorical parameters")
			}
		case Categorical:
			if len(p.Values) == 0 {
				add("a categorical parameter needs at least one value")
			}
			seen := map[string]bool{}
			for j, v := range p.Values {
				if v == "" {
					add("values[%d] is empty", j)
				}
				if seen[v] {
					add("values[%d] %q is repeated", j, v)
				}
				seen[v] = true
			}
			if p.Log {
				add("a categorical parameter has no log scale")
			}
		case "":
			add("type: required (int, float or categorical)")
		default:
			add("type: unknown type %q (int, float or categorical)", p.Type)
		}
	}
	return errs
}

// New returns the Searcher and Stopper the Config asks for, or the Config's problems.
func New(cfg Config) (Searcher, Stopper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	space := append(Space(nil), cfg.Space...)
	var searcher Searcher
	switch cfg.Algorithm {
	case Grid:
		searcher = &gridSearch{space: space}
	case Random, Hyperband:
		searcher = &randomSearch{space: space, seed: cfg.Seed}
	case TPE:
		searcher = newTPE(space, cfg.Seed, cfg.Direction)
	}

	es := cfg.EarlyStopping
	eta := es.ReductionFactor
	if eta == 0 {
		eta = DefaultReductionFactor
	}
	var stopper Stopper = neverStop{}
	switch {
	case cfg.Algorithm == Hyperband:
		stopper = newHalving(cfg.Direction, es.MinSteps, es.MaxSteps, eta, true, cfg.Seed, space)
	case es.Rule == ASHA:
		stopper = newHalving(cfg.Direction, es.MinSteps, es.MaxSteps, eta, false, cfg.Seed, space)
	case es.Rule == Median:
		stopper = &medianStop{dir: cfg.Direction, minSteps: es.MinSteps}
	}
	return searcher, stopper, nil
}

type neverStop struct{}

func (neverStop) ShouldStop(Trial, []Trial) (bool, string) { return false, "" }
