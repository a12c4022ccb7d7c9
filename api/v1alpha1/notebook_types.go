package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NotebookSpec describes an interactive workspace.
type NotebookSpec struct {
	// image serves the notebook over HTTP on spec.port. Unset means JupyterLab
	// (DefaultNotebookImage). Any image that serves HTTP works; Jupyter images
	// read the access token from JUPYTER_TOKEN, which Kiln sets.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image,omitempty"`

	// command replaces the image's entrypoint.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	Command []string `json:"command,omitempty"`

	// args are the arguments to the command (or to the image's entrypoint).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	Args []string `json:"args,omitempty"`

	// port is where the image serves HTTP; the Service forwards port 80 to it.
	// +optional
	// +kubebuilder:default=8888
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// env is the environment of the notebook container. Names starting with
	// KILN_ and JUPYTER_TOKEN are reserved for the variables Kiln sets.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:XValidation:rule="self.all(e, !e.name.startsWith('KILN_') && e.name != 'JUPYTER_TOKEN')",message="env names starting with KILN_, and JUPYTER_TOKEN, are reserved for Kiln"
	Env []corev1.EnvVar `json:"env,omitempty"`

	// resources are the GPUs, CPU and memory of the notebook's pod.
	// +optional
	// +kubebuilder:default={}
	Resources NotebookResources `json:"resources,omitempty"`

	// workspace is the persistent volume mounted at workspace.mountPath. It
	// survives stopping and culling; retentionPolicy says whether it survives
	// deleting the Notebook.
	// +optional
	// +kubebuilder:default={}
	Workspace WorkspaceSpec `json:"workspace,omitempty"`

	// volumes are further volumes mounted read-only: datasets (pvc://<claim>[/<path>])
	// and the saved model of a TrainingJob (trainingjob://<name>), both in the
	// Notebook's own namespace.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Volumes []NotebookVolume `json:"volumes,omitempty"`

	// sharedMemory is the size limit of the memory-backed /dev/shm. Unset means
	// /dev/shm without a limit of its own (it counts against the pod's memory);
	// "0" turns it off and leaves the container runtime's small default.
	// +optional
	SharedMemory *resource.Quantity `json:"sharedMemory,omitempty"`

	// idleTimeout stops the Notebook (scales it to zero, keeping the workspace)
	// once nobody used it for this long, such as "30m" or "2h". Activity comes from
	// the Jupyter server's /api/status and from the kiln.dev/last-activity
	// annotation, whichever is later. Unset or "0s" never stops it.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="idleTimeout must not be negative"
	IdleTimeout *metav1.Duration `json:"idleTimeout,omitempty"`

	// stopped scales the Notebook to zero while true; the workspace stays. Kiln
	// sets it when it culls an idle Notebook; set it to false (or run
	// `kubectl kiln notebook start`) to start it again.
	// +optional
	Stopped bool `json:"stopped,omitempty"`

	// priorityClassName is the PriorityClass of the notebook's pod.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// securityContext replaces Kiln's pod security context, which runs the
	// image's (non-root) user with group 100 owning the workspace, as the
	// Jupyter images expect. The container stays under the restricted profile
	// (no privilege escalation, no capabilities) either way.
	// +optional
	SecurityContext *corev1.PodSecurityContext `json:"securityContext,omitempty"`

	// containerSecurityContext is merged into the notebook container's security
	// context, field by field. Kiln's meets the restricted Pod Security profile
	// (runAsNonRoot, allowPrivilegeEscalation false, capabilities.drop [ALL],
	// RuntimeDefault seccomp). Capabilities other than NET_BIND_SERVICE,
	// privileged, allowPrivilegeEscalation, running as root, an Unconfined seccomp
	// profile and an unmasked /proc are refused at admission unless an
	// administrator allowed them (the manager's --allow-capabilities,
	// --allow-privileged and --allow-root).
	// +optional
	ContainerSecurityContext *corev1.SecurityContext `json:"containerSecurityContext,omitempty"`
}

// NotebookResources are the resources of the notebook's one pod.
type NotebookResources struct {
	// gpus the notebook's pod requests (and limits). 0 makes a CPU notebook.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=64
	GPUs int32 `json:"gpus,omitempty"`

	// gpuResource is the extended resource that counts GPUs on the nodes.
	// +optional
	// +kubebuilder:default="nvidia.com/gpu"
	// +kubebuilder:validation:MaxLength=253
	GPUResource string `json:"gpuResource,omitempty"`

	// cpu is requested (not limited: an interactive session is bursty).
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`

	// memory is requested and limited.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// WorkspaceSpec is the notebook's persistent volume.
type WorkspaceSpec struct {
	// size is the requested capacity. It cannot be changed after creation.
	// +optional
	// +kubebuilder:default="10Gi"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="workspace.size is immutable"
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName is the StorageClass of the claim; unset uses the cluster default.
	// It cannot be changed after creation.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="workspace.storageClassName is immutable"
	StorageClassName *string `json:"storageClassName,omitempty"`

	// accessMode of the claim. One pod mounts it, so ReadWriteOnce suffices.
	// +optional
	// +kubebuilder:default=ReadWriteOnce
	// +kubebuilder:validation:Enum=ReadWriteOnce;ReadWriteOncePod;ReadWriteMany
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="workspace.accessMode is immutable"
	AccessMode corev1.PersistentVolumeAccessMode `json:"accessMode,omitempty"`

	// mountPath is where the workspace is mounted: the home folder of the
	// Jupyter images' user by default.
	// +optional
	// +kubebuilder:default="/home/jovyan"
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	MountPath string `json:"mountPath,omitempty"`

	// retentionPolicy says whether the claim outlives the Notebook (Retain) or is
	// deleted with it (Delete). A retained workspace is mounted again by a new
	// Notebook of the same name.
	// +optional
	// +kubebuilder:default=Retain
	RetentionPolicy RetentionPolicy `json:"retentionPolicy,omitempty"`
}

// NotebookVolume is a volume mounted read-only in the notebook.
type NotebookVolume struct {
	// name of the volume; it is mounted at /kiln/data/<name> unless mountPath says otherwise.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// uri says what to mount: pvc://<claim>[/<path>] for a claim in the
	// Notebook's namespace, or trainingjob://<name> for the output volume of a
	// TrainingJob in the same namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^(pvc|trainingjob)://')",message="uri must start with pvc:// or trainingjob://"
	// +kubebuilder:validation:XValidation:rule="!self.contains('/../') && !self.endsWith('/..')",message="uri must not contain '..' path segments"
	URI string `json:"uri"`

	// mountPath overrides /kiln/data/<name>.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	MountPath string `json:"mountPath,omitempty"`
}

// NotebookState is a one-word summary of the conditions, for people.
// +kubebuilder:validation:Enum=Pending;Starting;Ready;Stopped;Culled
type NotebookState string

const (
	// NotebookPending: Kiln cannot start the notebook yet (a volume it mounts is missing).
	NotebookPending NotebookState = "Pending"
	// NotebookStarting: the pod is being scheduled or started.
	NotebookStarting NotebookState = "Starting"
	// NotebookReady: the server answers through the Service.
	NotebookReady NotebookState = "Ready"
	// NotebookStopped: spec.stopped holds it at zero replicas.
	NotebookStopped NotebookState = "Stopped"
	// NotebookCulled: Kiln stopped it after idleTimeout without activity.
	NotebookCulled NotebookState = "Culled"
)

// NotebookStatus is what Kiln observed and decided.
type NotebookStatus struct {
	// conditions are the authoritative state: Ready, Stopped, ActivityKnown, GPUsAvailable.
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
	State NotebookState `json:"state,omitempty"`

	// ready is true while the notebook's pod is ready.
	// +optional
	Ready bool `json:"ready,omitempty"`

	// url is where the notebook is served inside the cluster. Open it with the
	// token from tokenSecretName (`kubectl kiln notebook token NAME`).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	URL string `json:"url,omitempty"`

	// tokenSecretName is the Secret whose key "token" holds the access token.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	TokenSecretName string `json:"tokenSecretName,omitempty"`

	// workspaceClaimName is the PersistentVolumeClaim of the workspace.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	WorkspaceClaimName string `json:"workspaceClaimName,omitempty"`

	// lastActivity is the latest activity Kiln knows of, from the server or the
	// kiln.dev/last-activity annotation.
	// +optional
	LastActivity *metav1.Time `json:"lastActivity,omitempty"`

	// startTime is when Kiln last started the notebook (created it, or started it
	// after a stop). Idle time is never counted from before it.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
}

// Notebook is an interactive workspace, JupyterLab by default, with optional GPUs.
//
// Names start with a letter and have at most 52 characters because they name a
// StatefulSet (whose pod is <name>-0) and a Service.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=nb,categories=kiln
// +kubebuilder:printcolumn:name="GPUs",type=integer,JSONPath=`.spec.resources.gpus`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Last Activity",type=date,JSONPath=`.status.lastActivity`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 52",message="name must start with a letter, contain only lowercase letters, digits and '-', and have at most 52 characters"
type Notebook struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the workspace.
	// +optional
	// +kubebuilder:default={}
	Spec NotebookSpec `json:"spec,omitempty"`

	// status is what Kiln observed.
	// +optional
	Status NotebookStatus `json:"status,omitempty"`
}

// NotebookList is a list of Notebooks.
//
// +kubebuilder:object:root=true
type NotebookList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Notebook `json:"items"`
}

func init() { register(&Notebook{}, &NotebookList{}) }
