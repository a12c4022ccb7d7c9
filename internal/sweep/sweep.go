// Package sweep holds Kiln's hyperparameter search: the algorithms that propose trials and
// the rules that stop hopeless ones early. It imports nothing from Kubernetes, so the search
// can be benchmarked and tested on plain functions, and everything it decides depends only on
// the seed and the trials so far — a restarted controller proposes exactly what the old one
// would have.
package sweep

// Type is the kind of values a parameter takes.
type Type string

// Parameter types.
const (
	Int         Type = "int"
	Float       Type = "float"
	Categorical Type = "categorical"
)

// Param is one dimension of the search space.
type Param struct {
	Name string
	Type Type
	// Min and Max bound Int and Float parameters, both inclusive.
	Min, Max float64
	// Log samples Int and Float parameters uniformly in log space; Min must then be > 0.
	Log bool
	// Values are the choices of a Categorical parameter.
	Values []string
	// Points is how many values grid search takes from an Int or Float parameter; 0 means
	// DefaultGridPoints. Other algorithms ignore it.
	Points int
}

// Space is the search space: every parameter a trial is given.
type Space []Param

// Assignment gives each parameter, by name, its value in one trial. Numbers are stored as
// they are; a Categorical parameter is stored as the index of its value in Param.Values.
type Assignment map[string]float64

// State is where a trial is in its life.
type State string

// Trial states.
const (
	Running   State = "Running"
	Succeeded State = "Succeeded"
	Failed    State = "Failed"
	// Stopped trials were ended early by a Stopper; their curve so far still counts.
	Stopped State = "Stopped"
)

// Point is one intermediate report of the objective, at a training step (or epoch).
type Point struct {
	Step  int
	Value float64
}

// Trial is what the search knows of one trial: its parameters and what it reported.
type Trial struct {
	Params Assignment
	State  State
	// Curve holds the objective's intermediate values in ascending step order.
	Curve []Point
	// Value is the final objective of a Succeeded trial (the last reported value);
	// HasValue is false when the trial reported nothing.
	Value    float64
	HasValue bool
}

// Direction says whether smaller or larger objective values are better.
type Direction string

// Directions.
const (
	Minimize Direction = "minimize"
	Maximize Direction = "maximize"
)

// Searcher proposes trials.
type Searcher interface {
	// Suggest returns up to n new assignments, given every trial so far in creation order.
	// It is deterministic in the seed and trials; it returns fewer than n when the space is
	// exhausted (grid search).
	Suggest(trials []Trial, n int) ([]Assignment, error)
}

// Stopper ends hopeless trials early.
type Stopper interface {
	// ShouldStop reports whether the running trial t should be stopped now, and why in words a
	// person can read, given every trial so far (t included).
	ShouldStop(t Trial, trials []Trial) (stop bool, reason string)
}

// Algorithm names a Searcher.
type Algorithm string

// Algorithms. Hyperband runs ASHA-style successive halving over random proposals: its
// Searcher samples and its Stopper promotes or stops trials at each rung.
const (
	Grid      Algorithm = "grid"
	Random    Algorithm = "random"
	TPE       Algorithm = "tpe"
	Hyperband Algorithm = "hyperband"
)

// Rule names an early-stopping rule.
type Rule string

// Early-stopping rules; None never stops a trial.
const (
	None   Rule = "none"
	Median Rule = "median"
	ASHA   Rule = "asha"
)

// EarlyStopping configures the Stopper.
type EarlyStopping struct {
	Rule Rule
	// MinSteps is the step before which no trial is stopped (ASHA's minimum resource).
	MinSteps int
	// MaxSteps is the most steps a trial runs (ASHA's maximum resource).
	MaxSteps int
	// ReductionFactor is ASHA's eta: one trial in ReductionFactor goes on at each rung.
	ReductionFactor int
}

// Config is everything a search needs; the Sweep kind maps its spec onto it.
type Config struct {
	Space         Space
	Algorithm     Algorithm
	Seed          int64
	Direction     Direction
	MaxTrials     int
	EarlyStopping EarlyStopping
}
