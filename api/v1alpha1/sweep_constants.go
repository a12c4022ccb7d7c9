package v1alpha1

// Condition types of a Sweep.
const (
	// SweepConditionRunning is true while the sweep has trials to run or running.
	SweepConditionRunning = "Running"
	// SweepConditionSucceeded is true once the sweep ended normally: at maxTrials,
	// at the goal, or with the search space exhausted.
	SweepConditionSucceeded = "Succeeded"
	// SweepConditionFailed is true once the sweep gave up: too many failed trials,
	// or a spec Kiln cannot run.
	SweepConditionFailed = "Failed"
)

// Condition reasons of a Sweep.
const (
	ReasonTrialsRunning        = "TrialsRunning"
	ReasonMaxTrialsReached     = "MaxTrialsReached"
	ReasonGoalReached          = "GoalReached"
	ReasonSearchSpaceExhausted = "SearchSpaceExhausted"
	ReasonTooManyFailedTrials  = "TooManyFailedTrials"
	ReasonSearchFailed         = "SearchFailed"
	// ReasonInvalidSpec (shared with TrainingJob) marks a spec the admission
	// checks should have refused.
)

// Labels and annotations on a Sweep's trials. Together with the trials' names
// they are everything the controller needs to resume after a restart.
const (
	// LabelSweep on a trial TrainingJob (and its metrics Secret) names its Sweep.
	LabelSweep = "kiln.dev/sweep"
	// LabelTrialIndex numbers the trial from 0 in creation order.
	LabelTrialIndex = "kiln.dev/trial-index"
	// AnnotationTrialParameters holds the trial's assignment as a JSON object of
	// strings, by parameter name.
	AnnotationTrialParameters = "kiln.dev/trial-parameters"
	// AnnotationTrialCurve holds the objective's reported values,
	// "step=value" comma-separated in ascending step order.
	AnnotationTrialCurve = "kiln.dev/objective-curve"
	// AnnotationTrialLogRead marks a finished trial whose log was read to its end
	// for kiln-metric lines.
	AnnotationTrialLogRead = "kiln.dev/log-read"
	// AnnotationTrialStopped marks a trial early stopping ended; its value is why.
	AnnotationTrialStopped = "kiln.dev/stopped"
)

// Environment variables a Sweep sets in its trials; training code reads them.
const (
	// EnvParamPrefix + the upper-case parameter name holds the parameter's value.
	EnvParamPrefix = "KILN_PARAM_"
	// EnvMetricsURL is where the trial POSTs its metrics.
	EnvMetricsURL = "KILN_METRICS_URL"
	// EnvMetricsToken is the trial's bearer token for EnvMetricsURL.
	EnvMetricsToken = "KILN_METRICS_TOKEN"
	// EnvMetricsPrefix marks the metrics variables, which a TrainingJob may carry
	// because its Sweep set them.
	EnvMetricsPrefix = "KILN_METRICS_"
)

// MetricsTokenKey is the key of the token in a trial's metrics Secret.
const MetricsTokenKey = "token"
