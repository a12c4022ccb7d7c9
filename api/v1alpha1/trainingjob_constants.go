package v1alpha1

// Condition types of a TrainingJob.
const (
	// TrainingJobAdmitted is true once the gang may start: Kiln placed every
	// worker on a node with room for it, or Kueue admitted it when a queue is used.
	TrainingJobAdmitted = "Admitted"
	// TrainingJobRunning is true while all workers of the current attempt run.
	TrainingJobRunning = "Running"
	// TrainingJobRestarting is true between a failed attempt and the next one.
	TrainingJobRestarting = "Restarting"
	// TrainingJobSuspended is true while spec.suspend, Kueue or Kiln's own
	// admission queue holds the job.
	TrainingJobSuspended = "Suspended"
	// TrainingJobSucceeded is true once the job finished successfully.
	TrainingJobSucceeded = "Succeeded"
	// TrainingJobFailed is true once the job failed for good.
	TrainingJobFailed = "Failed"
)

// Condition reasons of a TrainingJob.
const (
	ReasonShapeChosen    = "ShapeChosen"
	ReasonNoFittingShape = "NoFittingShape"
	// ReasonReferenceNotFound: a claim the job mounts (spec.data pvc://) does not exist
	// in its namespace. The controller says so rather than admission, which would tell
	// anyone allowed to create a TrainingJob which claims exist.
	ReasonReferenceNotFound = "ReferenceNotFound"
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
	// ReasonPolicyDenied: the job asks the hosts for more than the administrator allows.
	ReasonPolicyDenied = "PolicyDenied"
	// ReasonPlaced: Kiln admitted the gang and pinned each worker to a node.
	ReasonPlaced = "Placed"
	// ReasonWaitingForCapacity: the gang fits the cluster but not its free
	// capacity now; it waits in Kiln's queue (priority, then arrival).
	ReasonWaitingForCapacity = "WaitingForCapacity"
	// ReasonRefused: the gang could not run even on the empty cluster as its
	// nodes are now; Kiln looks again when nodes change.
	ReasonRefused = "Refused"
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

// Gang admission without Kueue. Every attempt's Job is created suspended; Kiln
// writes the placement, narrows the pod template's node affinity to it and
// un-suspends the Job in one patch. The cluster holds all of it, so a restarted
// manager resumes from these.
const (
	// AnnotationShape on a Job is the shape it was rendered for (a ShapeStatus
	// in JSON): the TrainingJob's status records it with the first news about
	// the Job rather than in a write of its own.
	AnnotationShape = "kiln.dev/shape"
	// AnnotationPlacement on a Job lists the node of each completion index,
	// comma-separated, once Kiln admitted it: "a100-0,a100-1".
	AnnotationPlacement = "kiln.dev/placement"
	// AnnotationAdmission on a suspended Job is Kiln's latest decision about it:
	// Waiting or Refused; AnnotationAdmissionMessage says why.
	AnnotationAdmission        = "kiln.dev/admission"
	AnnotationAdmissionMessage = "kiln.dev/admission-message"
	// AnnotationLostNode on a running Job says which worker's node was deleted
	// under it ("worker 0 lost its node a100-1"): the pods there are gone with
	// the node, and the gang restart that follows says why.
	AnnotationLostNode = "kiln.dev/lost-node"
)
