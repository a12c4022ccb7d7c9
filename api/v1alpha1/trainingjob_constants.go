package v1alpha1

// Condition types of a TrainingJob.
const (
	// TrainingJobAdmitted is true once a shape was chosen and the gang may start
	// (Kueue admission included, when a queue is used).
	TrainingJobAdmitted = "Admitted"
	// TrainingJobRunning is true while all workers of the current attempt run.
	TrainingJobRunning = "Running"
	// TrainingJobRestarting is true between a failed attempt and the next one.
	TrainingJobRestarting = "Restarting"
	// TrainingJobSuspended is true while spec.suspend (or a queue) holds the job.
	TrainingJobSuspended = "Suspended"
	// TrainingJobSucceeded is true once the job finished successfully.
	TrainingJobSucceeded = "Succeeded"
	// TrainingJobFailed is true once the job failed for good.
	TrainingJobFailed = "Failed"
)

// Condition reasons of a TrainingJob.
const (
	ReasonShapeChosen       = "ShapeChosen"
	ReasonNoFittingShape    = "NoFittingShape"
	ReasonWaitingForQueue   = "WaitingForQueue"
	ReasonJobCreated        = "JobCreated"
	ReasonWorkersStarting   = "WorkersStarting"
	ReasonAllWorkersRunning = "AllWorkersRunning"
	ReasonWorkerFailed      = "WorkerFailed"
	ReasonRestartsExhausted = "RestartsExhausted"
	ReasonDeadlineExceeded  = "DeadlineExceeded"
	ReasonCompleted         = "Completed"
	ReasonSuspendedBySpec   = "SuspendedBySpec"
	ReasonResumed           = "Resumed"
	ReasonAdmittedByQueue   = "AdmittedByQueue"
	ReasonInvalidSpec       = "InvalidSpec"
	ReasonRenderFailed      = "RenderFailed"
)

// Environment variables Kiln sets in training containers. They are part of the API:
// training code reads them.
const (
	EnvCheckpointDir = "KILN_CHECKPOINT_DIR"
	EnvOutputDir     = "KILN_OUTPUT_DIR"
	EnvResumeFrom    = "KILN_RESUME_FROM"
	EnvDataDir       = "KILN_DATA_DIR"
	EnvNodeRank      = "KILN_NODE_RANK"
	EnvNodes         = "KILN_NODES"
	EnvProcsPerNode  = "KILN_PROCESSES_PER_NODE"
	EnvLeaderAddr    = "KILN_LEADER_ADDR"
	EnvAttempt       = "KILN_ATTEMPT"
	EnvHostfile      = "KILN_HOSTFILE"

	// EnvReservedPrefix and EnvTorchrunPrefix mark names users cannot set.
	EnvReservedPrefix = "KILN_"
	EnvTorchrunPrefix = "PET_"
)

// DefaultMaxRestarts is spec.restart.maxRestarts when unset, as the CRD defaults it.
const DefaultMaxRestarts = 3

// DefaultGPUResource is the resource that counts GPUs unless
// spec.resources.gpuResource says otherwise.
const DefaultGPUResource = "nvidia.com/gpu"

// Labels Kiln puts on what it creates.
const (
	LabelTrainingJob = "kiln.dev/trainingjob"
	LabelAttempt     = "kiln.dev/attempt"
)
