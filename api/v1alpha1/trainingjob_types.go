package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Launcher says whether Kiln starts the framework's launcher.
type Launcher string

const (
	// LauncherAuto runs a command that is not a launcher under the framework's launcher.
	LauncherAuto Launcher = "auto"
	// LauncherNone runs the command as given.
	LauncherNone Launcher = "none"
)

// Framework selects how Kiln wires the processes of a TrainingJob together.
// +kubebuilder:validation:Enum=none;pytorch;mpi;jax
type Framework string

const (
	// FrameworkNone runs the command as is on every node; the code finds its peers itself.
	FrameworkNone Framework = "none"
	// FrameworkPyTorch sets torchrun's PET_* environment variables and, unless
	// launcher is none, runs the command under torchrun (see Launcher).
	FrameworkPyTorch Framework = "pytorch"
	// FrameworkMPI runs sshd on every node and the command (mpirun …) on node 0.
	FrameworkMPI Framework = "mpi"
	// FrameworkJAX sets the JAX coordinator address, process count and process id.
	FrameworkJAX Framework = "jax"
)

// RetentionPolicy says what happens to a volume Kiln created when its TrainingJob is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type RetentionPolicy string

const (
	// RetentionRetain keeps the claim after the TrainingJob is deleted.
	RetentionRetain RetentionPolicy = "Retain"
	// RetentionDelete deletes the claim with the TrainingJob.
	RetentionDelete RetentionPolicy = "Delete"
)

// NCCLDebug is a value of NCCL_DEBUG.
// +kubebuilder:validation:Enum=VERSION;WARN;INFO;TRACE
type NCCLDebug string

// TrainingJobSpec describes what to train and with what resources.
// +kubebuilder:validation:XValidation:rule="!has(self.topology) || (has(self.resources) && has(self.resources.gpus) ? self.resources.gpus : 0) == 0 || self.topology.nodes * self.topology.processesPerNode == self.resources.gpus",message="topology.nodes × topology.processesPerNode must equal resources.gpus",fieldPath=".topology"
// +kubebuilder:validation:XValidation:rule="!has(self.framework) || self.framework == 'none' || has(self.topology) || (has(self.resources) && has(self.resources.gpus) ? self.resources.gpus : 0) > 0",message="this framework needs resources.gpus > 0, or a topology for a CPU run",fieldPath=".resources.gpus"
// +kubebuilder:validation:XValidation:rule="!has(self.framework) || self.framework != 'mpi' || (has(self.command) && size(self.command) > 0)",message="framework mpi needs a command (the mpirun line run on node 0)",fieldPath=".command"
// +kubebuilder:validation:XValidation:rule="has(self.topology) == has(oldSelf.topology)",message="topology cannot be added or removed after creation",fieldPath=".topology"
// +kubebuilder:validation:XValidation:rule="has(self.data) == has(oldSelf.data)",message="data cannot be added or removed after creation",fieldPath=".data"
// +kubebuilder:validation:XValidation:rule="has(self.checkpoints) == has(oldSelf.checkpoints)",message="checkpoints cannot be added or removed after creation",fieldPath=".checkpoints"
// +kubebuilder:validation:XValidation:rule="has(self.output) == has(oldSelf.output)",message="output cannot be added or removed after creation",fieldPath=".output"
type TrainingJobSpec struct {
	// image is the container image that runs the training code.
	// It cannot be changed after creation: a different image is a different job.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="image is immutable"
	Image string `json:"image"`

	// command replaces the image's entrypoint. With framework mpi it is required and
	// runs on node 0 only (typically `mpirun …`); the other nodes run sshd.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=4096
	Command []string `json:"command,omitempty"`

	// args are the arguments to the command (or to the image's entrypoint).
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=4096
	Args []string `json:"args,omitempty"`

	// env is the environment of the training container. Names starting with KILN_ or
	// PET_ are reserved for the variables Kiln sets; a Sweep sets KILN_PARAM_* and
	// KILN_METRICS_* here on its trials.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:XValidation:rule="self.all(e, (!e.name.startsWith('KILN_') || e.name.startsWith('KILN_PARAM_') || e.name.startsWith('KILN_METRICS_')) && !e.name.startsWith('PET_'))",message="env names starting with KILN_ or PET_ are reserved for Kiln"
	Env []corev1.EnvVar `json:"env,omitempty"`

	// workingDir is the working directory of the training container.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	WorkingDir string `json:"workingDir,omitempty"`

	// framework selects how the processes find each other: none, pytorch (torchrun
	// environment), mpi (launcher on node 0, hostfile, SSH keys) or jax (coordinator).
	// +optional
	// +kubebuilder:default=none
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="framework is immutable"
	Framework Framework `json:"framework,omitempty"`

	// launcher says whether Kiln starts the framework's launcher. auto (the default,
	// also when unset): a pytorch job whose pods run several processes and whose
	// command is not a launcher already (torchrun, python3 -m torch.distributed.run,
	// deepspeed, accelerate) runs the command under python3 -m torch.distributed.run,
	// one process per GPU of the pod; a pod of one process gets WORLD_SIZE, RANK,
	// LOCAL_RANK, MASTER_ADDR and MASTER_PORT instead. none: the command runs as given,
	// with torchrun's PET_* environment only. The Running condition says which.
	// +optional
	// +kubebuilder:validation:Enum=auto;none
	Launcher Launcher `json:"launcher,omitempty"`

	// resources are the GPUs of the whole job and the CPU and memory of each process.
	// +optional
	// +kubebuilder:default={}
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="resources are immutable"
	Resources TrainingResources `json:"resources,omitempty"`

	// topology overrides the shape Kiln would choose (nodes × processes per node).
	// Leave it unset to let Kiln pick the fewest nodes that hold the job.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="topology is immutable"
	Topology *Topology `json:"topology,omitempty"`

	// data are named inputs mounted read-only on every node at /kiln/data/<name>.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="data is immutable"
	Data []DataInput `json:"data,omitempty"`

	// checkpoints asks for a volume, created and kept by Kiln, mounted on every node at
	// the path in KILN_CHECKPOINT_DIR. Restarts resume from it.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="checkpoints is immutable"
	Checkpoints *VolumeSpec `json:"checkpoints,omitempty"`

	// output asks for a volume for the saved model, mounted on every node at the path
	// in KILN_OUTPUT_DIR; a ModelServer can serve it as trainingjob://<name>.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="output is immutable"
	Output *VolumeSpec `json:"output,omitempty"`

	// sharedMemory is the size limit of the memory-backed /dev/shm every training pod
	// gets. Unset means /dev/shm without a limit of its own (it counts against the
	// pod's memory); "0" turns it off and leaves the container runtime's small default.
	// +optional
	SharedMemory *resource.Quantity `json:"sharedMemory,omitempty"`

	// network holds RDMA devices, host networking and NCCL settings.
	// +optional
	Network *Network `json:"network,omitempty"`

	// restart says how often Kiln restarts the whole gang after a failure.
	// +optional
	// +kubebuilder:default={}
	Restart RestartSpec `json:"restart,omitempty"`

	// suspend stops the job's pods (or keeps them from starting) while true.
	// +optional
	Suspend *bool `json:"suspend,omitempty"`

	// queueName is the Kueue LocalQueue to submit to; it becomes the
	// kueue.x-k8s.io/queue-name label of the Job.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	QueueName string `json:"queueName,omitempty"`

	// priorityClassName is the PriorityClass of the training pods.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// ttlSecondsAfterFinished deletes the TrainingJob this many seconds after it
	// succeeded or failed for good, and with it its Job, Service and the volumes
	// whose retentionPolicy is Delete; retained volumes stay. The Job carries the
	// same TTL, so exported YAML run without Kiln cleans up after itself too.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// activeDeadlineSeconds fails an attempt that runs longer than this.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// podTemplate is a limited overlay on the training pods for what Kiln does not
	// model. It is merged last but cannot replace Kiln's own environment variables,
	// volumes or mount paths.
	// +optional
	PodTemplate *PodTemplateOverlay `json:"podTemplate,omitempty"`
}

// TrainingResources are the GPUs of the whole job and the CPU and memory of each process.
type TrainingResources struct {
	// gpus is the total number of GPUs of the job, one per process. 0 makes a CPU job.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	GPUs int32 `json:"gpus,omitempty"`

	// gpuResource is the extended resource that counts GPUs on the nodes. Unset,
	// Kiln's admission webhook sets it at creation to the GPU resource the nodes
	// advertise (nvidia.com/gpu, amd.com/gpu, gpu.intel.com/xe or
	// gpu.intel.com/i915, in that order of preference); nvidia.com/gpu when none does.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	GPUResource string `json:"gpuResource,omitempty"`

	// cpu is requested for each process; a pod asks for processesPerNode times it.
	// (A process is a GPU's share of the pod, also for JAX, which runs one OS
	// process per pod.)
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`

	// memory is requested (and limited) for each process; a pod asks for
	// processesPerNode times it.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// Topology is an explicit shape: nodes × processesPerNode.
type Topology struct {
	// nodes is the number of pods, one per node.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Nodes int32 `json:"nodes"`

	// processesPerNode is the number of processes (and GPUs) in each pod.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	ProcessesPerNode int32 `json:"processesPerNode"`
}

// DataInput is a named input mounted read-only on every node.
type DataInput struct {
	// name is the input's name; it is mounted at /kiln/data/<name>.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// uri is where the data is: pvc://<claim>[/<path>] for a claim in the job's own
	// namespace (no namespace can be given), or s3://, gs:// or https:// for object
	// storage, which an init step fetches into a volume before training starts.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^(pvc|s3|gs|https)://')",message="uri must start with pvc://, s3://, gs:// or https://"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('pvc://') || self.matches('^pvc://[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(/.*)?$')",message="pvc:// takes the name of a claim in the job's namespace: pvc://<claim>[/<path>]"
	// +kubebuilder:validation:XValidation:rule="self.startsWith('pvc://') || self.matches('^[a-z0-9]+://[^/?#]+')",message="uri needs a bucket or host after the scheme"
	// +kubebuilder:validation:XValidation:rule="!self.contains('/../') && !self.endsWith('/..')",message="uri must not contain '..' path segments"
	URI string `json:"uri"`

	// secretRef names a Secret in the job's namespace whose keys become environment
	// variables of the fetch step (for example AWS_ACCESS_KEY_ID).
	// +optional
	SecretRef *LocalSecretReference `json:"secretRef,omitempty"`
}

// LocalSecretReference names a Secret in the same namespace; there is deliberately no
// namespace field.
type LocalSecretReference struct {
	// name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// VolumeSpec asks Kiln for a PersistentVolumeClaim.
type VolumeSpec struct {
	// size is the requested capacity.
	// +required
	Size resource.Quantity `json:"size"`

	// storageClassName is the StorageClass of the claim; unset uses the cluster default.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName *string `json:"storageClassName,omitempty"`

	// accessMode of the claim. ReadWriteMany lets every node mount it; use
	// ReadWriteOnce only for single-node jobs or storage without shared access.
	// +optional
	// +kubebuilder:default=ReadWriteMany
	// +kubebuilder:validation:Enum=ReadWriteMany;ReadWriteOnce;ReadWriteOncePod
	AccessMode corev1.PersistentVolumeAccessMode `json:"accessMode,omitempty"`

	// retentionPolicy says whether the claim outlives the TrainingJob (Retain) or is
	// deleted with it (Delete).
	// +optional
	// +kubebuilder:default=Retain
	RetentionPolicy RetentionPolicy `json:"retentionPolicy,omitempty"`
}

// Network holds RDMA devices, host networking and NCCL settings.
type Network struct {
	// rdma lists device resources each pod requests and limits, such as rdma/ib: 1
	// or nvidia.com/hostdev: 8.
	// +optional
	// +kubebuilder:validation:MaxProperties=8
	RDMA corev1.ResourceList `json:"rdma,omitempty"`

	// hostNetwork runs the pods in the node's network namespace.
	// +optional
	HostNetwork bool `json:"hostNetwork,omitempty"`

	// nccl are NCCL settings.
	// +optional
	NCCL *NCCL `json:"nccl,omitempty"`
}

// NCCL holds the NCCL settings Kiln models; each becomes an NCCL_* variable.
type NCCL struct {
	// socketIfname is NCCL_SOCKET_IFNAME, the interfaces NCCL uses for sockets.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	SocketIfname string `json:"socketIfname,omitempty"`

	// ibHCA is NCCL_IB_HCA, the InfiniBand adapters NCCL uses.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	IBHCA string `json:"ibHCA,omitempty"`

	// debug is NCCL_DEBUG.
	// +optional
	Debug NCCLDebug `json:"debug,omitempty"`

	// env are further NCCL_* variables.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.startsWith('NCCL_'))",message="nccl.env names must start with NCCL_"
	Env map[string]string `json:"env,omitempty"`
}

// RestartSpec says how Kiln restarts the whole gang after a failure.
type RestartSpec struct {
	// maxRestarts is how many times the gang is restarted before the job fails.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxRestarts *int32 `json:"maxRestarts,omitempty"`

	// resumeFromCheckpoint sets KILN_RESUME_FROM to the latest checkpoint when one
	// is known, so training code can pick up where it stopped.
	// +optional
	// +kubebuilder:default=true
	ResumeFromCheckpoint *bool `json:"resumeFromCheckpoint,omitempty"`
}

// PodTemplateOverlay is merged into the training pods last. Kiln's own environment
// variables, volumes (named kiln-*) and mount paths (/kiln/…, /dev/shm) win.
type PodTemplateOverlay struct {
	// labels are added to the pods.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are added to the pods.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Annotations map[string]string `json:"annotations,omitempty"`

	// nodeSelector restricts the nodes the pods may run on.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations are added to Kiln's own (the GPU taint).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity of the pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// serviceAccountName the pods run as.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// securityContext of the pods: the fields set here replace Kiln's, which are
	// runAsNonRoot, the RuntimeDefault seccomp profile and fsGroup 65532 (the group
	// that owns Kiln's volumes and can read the MPI key). runAsUser is the image's
	// unless set here. Running as root and an Unconfined seccomp profile are
	// refused unless an administrator allowed them.
	// +optional
	SecurityContext *corev1.PodSecurityContext `json:"securityContext,omitempty"`

	// containerSecurityContext is merged into the training container's security
	// context, field by field. Kiln's meets the restricted Pod Security profile:
	// runAsNonRoot, allowPrivilegeEscalation false, capabilities.drop [ALL] and the
	// RuntimeDefault seccomp profile. Set runAsUser for an image without a non-root
	// USER, or capabilities.add for what the code needs (such as IPC_LOCK for
	// RDMA); ALL stays dropped. Capabilities other than NET_BIND_SERVICE,
	// privileged, allowPrivilegeEscalation, running as root, an Unconfined seccomp
	// profile and an unmasked /proc are refused at admission unless an
	// administrator allowed them (the manager's --allow-capabilities,
	// --allow-privileged and --allow-root).
	// +optional
	ContainerSecurityContext *corev1.SecurityContext `json:"containerSecurityContext,omitempty"`

	// volumes are added to the pods; names starting with kiln- are reserved.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(v, !v.name.startsWith('kiln-'))",message="volume names starting with kiln- are reserved for Kiln"
	Volumes []corev1.Volume `json:"volumes,omitempty"`

	// volumeMounts are added to the training container; /kiln and /dev/shm are reserved.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(m, m.mountPath != '/dev/shm' && m.mountPath != '/kiln' && !m.mountPath.startsWith('/kiln/'))",message="mount paths /kiln/… and /dev/shm are reserved for Kiln"
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts,omitempty"`

	// env is added to the training container after spec.env.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(e, !e.name.startsWith('KILN_') && !e.name.startsWith('PET_'))",message="env names starting with KILN_ or PET_ are reserved for Kiln"
	Env []corev1.EnvVar `json:"env,omitempty"`
}

// TrainingJobState is a one-word summary of the conditions, for people.
// +kubebuilder:validation:Enum=Pending;Queued;Running;Restarting;Suspended;Succeeded;Failed
type TrainingJobState string

const (
	StatePending    TrainingJobState = "Pending"
	StateQueued     TrainingJobState = "Queued"
	StateRunning    TrainingJobState = "Running"
	StateRestarting TrainingJobState = "Restarting"
	StateSuspended  TrainingJobState = "Suspended"
	StateSucceeded  TrainingJobState = "Succeeded"
	StateFailed     TrainingJobState = "Failed"
)

// TrainingJobStatus is what Kiln observed and decided.
type TrainingJobStatus struct {
	// conditions are the authoritative state: Admitted, Running, Restarting,
	// Suspended, Succeeded, Failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// state summarises the conditions in one word.
	// +optional
	State TrainingJobState `json:"state,omitempty"`

	// shape is the chosen nodes × processes per node, and why.
	// +optional
	Shape *ShapeStatus `json:"shape,omitempty"`

	// attempt numbers the current gang generation; each gang restart (or resumption
	// after preemption) starts a new one with new Job and Service names.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`

	// jobName is the name of the current attempt's Job (and headless Service).
	// +optional
	JobName string `json:"jobName,omitempty"`

	// restarts counts gang restarts after failures.
	// +optional
	Restarts int32 `json:"restarts,omitempty"`

	// startTime is when the first attempt started running.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the job succeeded or finally failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// active is the number of worker pods of the current attempt that are running or pending.
	// +optional
	Active int32 `json:"active,omitempty"`

	// ready is the number of worker pods of the current attempt that are ready.
	// +optional
	Ready int32 `json:"ready,omitempty"`

	// succeeded is the number of worker pods of the current attempt that succeeded.
	// +optional
	Succeeded int32 `json:"succeeded,omitempty"`

	// failed is the number of worker pods of the current attempt that failed.
	// +optional
	Failed int32 `json:"failed,omitempty"`

	// lastFailure describes the most recent worker failure.
	// +optional
	LastFailure *FailureStatus `json:"lastFailure,omitempty"`

	// metrics are the latest values the training code reported.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Metrics map[string]string `json:"metrics,omitempty"`

	// latestCheckpoint is the last checkpoint rank 0 reported with a "kiln-checkpoint PATH" log
	// line before a failure; the next attempt gets it as KILN_RESUME_FROM.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	LatestCheckpoint string `json:"latestCheckpoint,omitempty"`

	// source is what push-to-deploy last did for this job, when it is annotated
	// for it (docs/push-to-deploy.md).
	// +optional
	Source *SourceStatus `json:"source,omitempty"`
}

// ShapeStatus records the chosen shape.
type ShapeStatus struct {
	// nodes is the number of pods, one per node.
	Nodes int32 `json:"nodes"`

	// processesPerNode is the number of processes in each pod.
	ProcessesPerNode int32 `json:"processesPerNode"`

	// gpusPerNode is the number of GPUs each pod requests.
	// +optional
	GPUsPerNode int32 `json:"gpusPerNode,omitempty"`

	// pool is the node pool the shape was chosen for, if one.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Pool string `json:"pool,omitempty"`

	// summary is nodes×processesPerNode for display, such as 2x4.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Summary string `json:"summary,omitempty"`

	// reason explains the choice in words.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`
}

// FailureStatus describes a worker failure.
type FailureStatus struct {
	// index is the completion index (node rank) of the pod that failed, if known.
	// +optional
	Index *int32 `json:"index,omitempty"`

	// reason is a CamelCase cause, such as OOMKilled or Error.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`

	// message is what a person needs to act on it.
	// +optional
	// +kubebuilder:validation:MaxLength=32768
	Message string `json:"message,omitempty"`
}

// TrainingJob runs training code, single-process to multi-node.
//
// Names start with a letter and have at most 63 characters because they become
// Service and pod host names.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tj,categories=kiln
// +kubebuilder:printcolumn:name="Shape",type=string,JSONPath=`.status.shape.summary`
// +kubebuilder:printcolumn:name="GPUs",type=integer,JSONPath=`.spec.resources.gpus`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63",message="name must start with a letter, contain only lowercase letters, digits and '-', and have at most 63 characters"
type TrainingJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the training.
	// +required
	Spec TrainingJobSpec `json:"spec"`

	// status is what Kiln observed.
	// +optional
	Status TrainingJobStatus `json:"status,omitempty"`
}

// TrainingJobList is a list of TrainingJobs.
//
// +kubebuilder:object:root=true
type TrainingJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrainingJob `json:"items"`
}

func init() { register(&TrainingJob{}, &TrainingJobList{}) }
