package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ParameterType is the kind of values a parameter takes.
// +kubebuilder:validation:Enum=int;float;categorical
type ParameterType string

const (
	ParameterInt         ParameterType = "int"
	ParameterFloat       ParameterType = "float"
	ParameterCategorical ParameterType = "categorical"
)

// Scale is how an int or float parameter is sampled between min and max.
// +kubebuilder:validation:Enum=linear;log
type Scale string

const (
	ScaleLinear Scale = "linear"
	// ScaleLog samples uniformly in log space, for values spanning orders of
	// magnitude such as learning rates; min must then be greater than 0.
	ScaleLog Scale = "log"
)

// ObjectiveDirection says whether smaller or larger values of the metric are better.
// +kubebuilder:validation:Enum=minimize;maximize
type ObjectiveDirection string

const (
	Minimize ObjectiveDirection = "minimize"
	Maximize ObjectiveDirection = "maximize"
)

// SweepAlgorithm chooses how trials' parameters are proposed.
// +kubebuilder:validation:Enum=grid;random;tpe;hyperband
type SweepAlgorithm string

const (
	AlgorithmGrid   SweepAlgorithm = "grid"
	AlgorithmRandom SweepAlgorithm = "random"
	// AlgorithmTPE is Bayesian optimisation with a tree-structured Parzen estimator.
	AlgorithmTPE SweepAlgorithm = "tpe"
	// AlgorithmHyperband samples at random and stops trials by asynchronous
	// successive halving (ASHA) on their intermediate metrics.
	AlgorithmHyperband SweepAlgorithm = "hyperband"
)

// EarlyStoppingRule names a rule that stops hopeless trials.
// +kubebuilder:validation:Enum=none;median;asha
type EarlyStoppingRule string

const (
	EarlyStoppingNone EarlyStoppingRule = "none"
	// EarlyStoppingMedian stops a trial whose best value so far is worse than the
	// median of the other trials' running averages at the same step.
	EarlyStoppingMedian EarlyStoppingRule = "median"
	// EarlyStoppingASHA keeps one trial in reductionFactor at each rung.
	EarlyStoppingASHA EarlyStoppingRule = "asha"
)

// SweepSpec describes the search: the space, the objective, how to search and
// what each trial runs.
// +kubebuilder:validation:XValidation:rule="self.parallelism <= self.maxTrials",message="parallelism must not exceed maxTrials",fieldPath=".parallelism"
// +kubebuilder:validation:XValidation:rule="self.algorithm != 'hyperband' || !has(self.earlyStopping) || !has(self.earlyStopping.rule) || self.earlyStopping.rule != 'median'",message="algorithm hyperband stops trials by ASHA; leave earlyStopping.rule unset or asha",fieldPath=".earlyStopping.rule"
// +kubebuilder:validation:XValidation:rule="!has(self.trialTemplate.env) || self.trialTemplate.env.all(e, !e.name.startsWith('KILN_'))",message="env names starting with KILN_ are set by Kiln on each trial",fieldPath=".trialTemplate.env"
// +kubebuilder:validation:XValidation:rule="!(self.algorithm == 'hyperband' || (has(self.earlyStopping) && has(self.earlyStopping.rule) && self.earlyStopping.rule == 'asha')) || (has(self.earlyStopping) && has(self.earlyStopping.maxSteps))",message="successive halving (algorithm hyperband or rule asha) needs earlyStopping.maxSteps, the most steps a trial reports",fieldPath=".earlyStopping"
type SweepSpec struct {
	// parameters are the search space: each trial is given one value of each.
	// Names become ${params.NAME} in the trial template and KILN_PARAM_<NAME> (upper
	// case) in each trial's environment.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="parameters are immutable: trials so far were drawn from them"
	Parameters []SweepParameter `json:"parameters"`

	// objective is the metric trials report and whether to minimize or maximize it.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="objective is immutable"
	Objective SweepObjective `json:"objective"`

	// algorithm proposes each trial's parameters: grid (combinations in order),
	// random, tpe (Bayesian: learns from the trials so far) or hyperband (random
	// proposals, ASHA early stopping).
	// +optional
	// +kubebuilder:default=random
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="algorithm is immutable"
	Algorithm SweepAlgorithm `json:"algorithm,omitempty"`

	// seed makes the search reproducible: the same seed and the same results
	// propose the same trials.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="seed is immutable"
	Seed int64 `json:"seed,omitempty"`

	// maxTrials is how many trials the sweep runs at most.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxTrials int32 `json:"maxTrials"`

	// parallelism is how many trials run at once.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Parallelism int32 `json:"parallelism,omitempty"`

	// maxFailedTrials is how many trials may fail before the sweep fails; the
	// sweep fails when one more fails.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	MaxFailedTrials *int32 `json:"maxFailedTrials,omitempty"`

	// earlyStopping stops trials whose intermediate metrics show they will lose,
	// freeing their GPUs for the next trial. Stopped trials are suspended, not
	// deleted, so their metrics stay.
	// +optional
	EarlyStopping *EarlyStopping `json:"earlyStopping,omitempty"`

	// trialTemplate is the TrainingJob each trial runs. Its command, args and env
	// values may use ${params.NAME}; every trial also gets KILN_PARAM_<NAME>,
	// KILN_METRICS_URL and KILN_METRICS_TOKEN (see docs/sweep.md).
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="trialTemplate is immutable: every trial of a sweep runs the same code"
	TrialTemplate TrainingJobSpec `json:"trialTemplate"`
}

// SweepParameter is one dimension of the search space.
// +kubebuilder:validation:XValidation:rule="self.type == 'categorical' ? (has(self.values) && !has(self.min) && !has(self.max) && !has(self.scale)) : (has(self.min) && has(self.max) && !has(self.values))",message="int and float parameters take min and max (and scale); categorical parameters take values"
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || double(self.min) <= double(self.max)",message="min must not be greater than max",fieldPath=".min"
// +kubebuilder:validation:XValidation:rule="!has(self.scale) || self.scale != 'log' || !has(self.min) || double(self.min) > 0.0",message="a log scale needs min > 0",fieldPath=".min"
// +kubebuilder:validation:XValidation:rule="self.type != 'int' || ((!has(self.min) || self.min.matches('^[-+]?[0-9]+$')) && (!has(self.max) || self.max.matches('^[-+]?[0-9]+$')))",message="an int parameter takes whole numbers as min and max",fieldPath=".min"
type SweepParameter struct {
	// name is how the template refers to the parameter (${params.NAME}); its upper
	// case names the environment variable KILN_PARAM_<NAME>.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_]*$`
	Name string `json:"name"`

	// type is int, float or categorical.
	// +required
	Type ParameterType `json:"type"`

	// min is the smallest value of an int or float parameter, as a decimal
	// number in quotes ("1e-5"); inclusive.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$`
	Min string `json:"min,omitempty"`

	// max is the largest value of an int or float parameter, as a decimal number
	// in quotes; inclusive.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$`
	Max string `json:"max,omitempty"`

	// scale is linear (the default) or log, which samples uniformly in log space
	// and needs min > 0.
	// +optional
	Scale Scale `json:"scale,omitempty"`

	// points is how many values grid search takes from an int or float parameter,
	// evenly spaced (in log space on a log scale) and including both bounds; an int
	// parameter with fewer values takes every one. The default is 5.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Points int32 `json:"points,omitempty"`

	// values are the choices of a categorical parameter.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Values []string `json:"values,omitempty"`
}

// SweepObjective is the metric the search optimises.
type SweepObjective struct {
	// metric is the name trials report it under (kiln-metric val_loss=0.42).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_.\-]*$`
	Metric string `json:"metric"`

	// direction is minimize or maximize.
	// +required
	Direction ObjectiveDirection `json:"direction"`

	// goal ends the sweep as soon as a trial finishes with a value at least this
	// good, as a decimal number in quotes.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$`
	Goal string `json:"goal,omitempty"`
}

// EarlyStopping configures how losing trials are stopped.
// +kubebuilder:validation:XValidation:rule="!has(self.maxSteps) || !has(self.minSteps) || self.minSteps < self.maxSteps",message="minSteps must be less than maxSteps",fieldPath=".minSteps"
type EarlyStopping struct {
	// rule is none, median or asha. The default is asha with algorithm hyperband
	// and none otherwise.
	// +optional
	Rule EarlyStoppingRule `json:"rule,omitempty"`

	// minSteps is the step (as trials report it) before which no trial is
	// stopped; ASHA's first rung.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MinSteps int32 `json:"minSteps,omitempty"`

	// maxSteps is the most steps a trial reports; ASHA's last rung.
	// +optional
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=1000000
	MaxSteps int32 `json:"maxSteps,omitempty"`

	// reductionFactor is ASHA's eta: one trial in reductionFactor goes on at each rung.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=16
	ReductionFactor int32 `json:"reductionFactor,omitempty"`
}

// SweepState is a one-word summary of the conditions, for people.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type SweepState string

const (
	SweepPending   SweepState = "Pending"
	SweepRunning   SweepState = "Running"
	SweepSucceeded SweepState = "Succeeded"
	SweepFailed    SweepState = "Failed"
)

// SweepStatus is what Kiln observed and decided.
type SweepStatus struct {
	// conditions are Running, Succeeded and Failed, with reasons.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// state summarises the conditions in one word.
	// +optional
	State SweepState `json:"state,omitempty"`

	// trials is how many trials were created.
	// +optional
	Trials int32 `json:"trials,omitempty"`

	// running is how many trials run (or wait for nodes) now.
	// +optional
	Running int32 `json:"running,omitempty"`

	// succeeded is how many trials finished.
	// +optional
	Succeeded int32 `json:"succeeded,omitempty"`

	// failed is how many trials failed.
	// +optional
	Failed int32 `json:"failed,omitempty"`

	// stopped is how many trials early stopping ended.
	// +optional
	Stopped int32 `json:"stopped,omitempty"`

	// bestTrial is the finished trial with the best objective value so far.
	// +optional
	BestTrial *BestTrial `json:"bestTrial,omitempty"`

	// startTime is when the first trial was created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the sweep succeeded or failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// BestTrial names the best trial and what made it so.
type BestTrial struct {
	// name is the trial's TrainingJob.
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// index is the trial's number, from 0 in creation order.
	Index int32 `json:"index"`

	// parameters are the trial's values, by parameter name.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Parameters map[string]string `json:"parameters,omitempty"`

	// value is the objective the trial finished with.
	// +kubebuilder:validation:MaxLength=32
	Value string `json:"value"`
}

// Sweep searches hyperparameters: it runs trials, each a TrainingJob from the
// template with one assignment of the parameters, and learns from their metrics
// which to try next and which to stop early.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=kiln
// +kubebuilder:printcolumn:name="Algorithm",type=string,JSONPath=`.spec.algorithm`
// +kubebuilder:printcolumn:name="Running",type=integer,JSONPath=`.status.running`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.succeeded`
// +kubebuilder:printcolumn:name="Best",type=string,JSONPath=`.status.bestTrial.value`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63",message="name must start with a letter, contain only lowercase letters, digits and '-', and have at most 63 characters"
type Sweep struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the search.
	// +required
	Spec SweepSpec `json:"spec"`

	// status is what Kiln observed.
	// +optional
	Status SweepStatus `json:"status,omitempty"`
}

// SweepList is a list of Sweeps.
//
// +kubebuilder:object:root=true
type SweepList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Sweep `json:"items"`
}

func init() { register(&Sweep{}, &SweepList{}) }
