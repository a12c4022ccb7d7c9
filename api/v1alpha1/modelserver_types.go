package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModelServerSpec describes the model to serve, the server that serves it, and how
// it scales and rolls out.
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || !has(self.replicas.min) || !has(self.replicas.max) || self.replicas.min <= self.replicas.max",message="replicas.min must not exceed replicas.max",fieldPath=".replicas.min"
type ModelServerSpec struct {
	// model is what to serve.
	// +required
	Model ModelSource `json:"model"`

	// runtime is the server that serves it: a preset, or any image, command and port.
	// +required
	Runtime ServingRuntime `json:"runtime"`

	// resources of each serving pod, GPUs included.
	// +optional
	Resources ServingResources `json:"resources,omitempty"`

	// replicas bounds the number of serving pods; when min < max a
	// HorizontalPodAutoscaler moves between them.
	// +optional
	// +kubebuilder:default={}
	Replicas ReplicasSpec `json:"replicas,omitempty"`

	// canary serves a second model and/or runtime beside this one and sends it
	// trafficPercent of the requests. Remove it to roll back; copy it into
	// model and runtime (and remove it) to promote: `kubectl kiln promote`.
	// +optional
	Canary *CanarySpec `json:"canary,omitempty"`

	// env is added to the server container after the preset's environment.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:XValidation:rule="self.all(e, !e.name.startsWith('KILN_'))",message="env names starting with KILN_ are reserved for Kiln"
	Env []corev1.EnvVar `json:"env,omitempty"`

	// containerSecurityContext is merged into the server container's security
	// context (of the stable version and the canary), field by field. Kiln's meets
	// the restricted Pod Security profile: the pod runs as user and group 1000
	// (the presets' images' user), and the container with runAsNonRoot,
	// allowPrivilegeEscalation false, capabilities.drop [ALL] and the RuntimeDefault
	// seccomp profile. Set runAsUser for a runtime image whose user differs.
	// Capabilities other than NET_BIND_SERVICE, privileged,
	// allowPrivilegeEscalation, running as root, an Unconfined seccomp profile and
	// an unmasked /proc are refused at admission unless an administrator allowed
	// them (the manager's --allow-capabilities, --allow-privileged and --allow-root).
	// +optional
	ContainerSecurityContext *corev1.SecurityContext `json:"containerSecurityContext,omitempty"`
}

// ModelSource says where the model is and what format it has.
type ModelSource struct {
	// uri is where the model is: pvc://<claim>[/<path>] for a claim in the same
	// namespace, trainingjob://<name> for the output volume of a TrainingJob that
	// succeeded (both mounted read-only), or s3://, gs:// or https:// for object
	// storage, which an init step downloads into a volume before the server starts.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^(pvc|trainingjob|s3|gs|https)://')",message="uri must start with pvc://, trainingjob://, s3://, gs:// or https://"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('trainingjob://') || self.matches('^trainingjob://[a-z]([-a-z0-9]{0,61}[a-z0-9])?$')",message="trainingjob:// takes the name of a TrainingJob in the same namespace: trainingjob://<name>"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('pvc://') || self.matches('^pvc://[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(/.*)?$')",message="pvc:// takes the name of a claim in the same namespace: pvc://<claim>[/<path>]"
	// +kubebuilder:validation:XValidation:rule="!self.contains('/../') && !self.endsWith('/..')",message="uri must not contain '..' path segments"
	URI string `json:"uri"`

	// format is the model's format, such as sklearn, xgboost, pytorch, onnx or
	// safetensors. Presets that serve several formats (MLServer) choose their
	// implementation by it.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$`
	Format string `json:"format,omitempty"`

	// secretRef names a Secret in the same namespace whose keys become the
	// environment of the download step (for example AWS_ACCESS_KEY_ID). Only
	// the download step sees it.
	// +optional
	SecretRef *LocalSecretReference `json:"secretRef,omitempty"`
}

// ServingProtocol is the wire protocol of a model server.
// +kubebuilder:validation:Enum=HTTP;GRPC
type ServingProtocol string

const (
	ProtocolHTTP ServingProtocol = "HTTP"
	ProtocolGRPC ServingProtocol = "GRPC"
)

// ServingRuntime is a preset, optionally with some of its settings replaced, or a
// custom server given by image, command and port.
// +kubebuilder:validation:XValidation:rule="has(self.preset) || (has(self.image) && has(self.port))",message="a runtime without a preset needs image and port",fieldPath=".port"
type ServingRuntime struct {
	// preset names a server from Kiln's runtime presets (the kiln-serving
	// ConfigMap in Kiln's namespace; by default mlserver, torchserve, triton and
	// vllm). The fields below replace the preset's settings.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Preset string `json:"preset,omitempty"`

	// image is the server's container image.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image,omitempty"`

	// command replaces the preset's (or the image's) entrypoint. Like args and
	// env values it may use {{.ModelDir}}, {{.ModelName}}, {{.Format}} and {{.Port}}.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	Command []string `json:"command,omitempty"`

	// args replace the preset's arguments.
	// +optional
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:items:MaxLength=4096
	Args []string `json:"args,omitempty"`

	// port is where the server listens for requests.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// protocol is the server's wire protocol; HTTP unless the preset says otherwise.
	// +optional
	Protocol ServingProtocol `json:"protocol,omitempty"`

	// readinessPath is the HTTP path that answers 200 once the model is loaded.
	// Without one (and no preset), readiness is a TCP check of the port.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	ReadinessPath string `json:"readinessPath,omitempty"`
}

// ServingResources are the resources of each serving pod.
type ServingResources struct {
	// gpus each pod requests (and is limited to).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=64
	GPUs int32 `json:"gpus,omitempty"`

	// gpuResource is the extended resource that counts GPUs on the nodes.
	// +optional
	// +kubebuilder:default="nvidia.com/gpu"
	// +kubebuilder:validation:MaxLength=253
	GPUResource string `json:"gpuResource,omitempty"`

	// cpu each pod requests. The HorizontalPodAutoscaler's CPU target is a
	// percentage of it, so set it when scaling on CPU.
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`

	// memory each pod requests and is limited to.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// ReplicasSpec bounds the serving pods and says what the autoscaler aims for.
// +kubebuilder:validation:XValidation:rule="!has(self.targetCPUUtilization) || !has(self.targetConcurrency)",message="scale on targetCPUUtilization or targetConcurrency, not both",fieldPath=".targetConcurrency"
type ReplicasSpec struct {
	// min is the fewest serving pods (of stable and canary together).
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Min *int32 `json:"min,omitempty"`

	// max is the most serving pods (of stable and canary together).
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Max *int32 `json:"max,omitempty"`

	// targetCPUUtilization is the average CPU use, in percent of the request,
	// the autoscaler aims for; 80 when neither target is set.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	TargetCPUUtilization *int32 `json:"targetCPUUtilization,omitempty"`

	// targetConcurrency is the average number of requests in flight per pod the
	// autoscaler aims for. It scales on the pods metric kiln_requests_in_flight,
	// which a metrics adapter (such as prometheus-adapter) must serve through the
	// custom metrics API; without one the autoscaler holds at min.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	TargetConcurrency *int32 `json:"targetConcurrency,omitempty"`
}

// CanarySpec is a second version served beside the stable one.
// +kubebuilder:validation:XValidation:rule="has(self.model) || has(self.runtime)",message="a canary changes the model, the runtime or both"
type CanarySpec struct {
	// model of the canary; the stable model when unset.
	// +optional
	Model *ModelSource `json:"model,omitempty"`

	// runtime of the canary; the stable runtime when unset.
	// +optional
	Runtime *ServingRuntime `json:"runtime,omitempty"`

	// trafficPercent is the share of requests the canary gets, 0 to 100. The split
	// is exact through a Gateway API HTTPRoute when the cluster has Gateway API,
	// and follows the ratio of ready replicas otherwise (status.traffic says which).
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	TrafficPercent int32 `json:"trafficPercent"`
}

// TrafficMethod says how requests are split between stable and canary.
// +kubebuilder:validation:Enum=None;HTTPRoute;ReplicaRatio
type TrafficMethod string

const (
	// TrafficNone: no canary, the stable version gets every request.
	TrafficNone TrafficMethod = "None"
	// TrafficHTTPRoute: a Gateway API HTTPRoute splits requests by weight, exactly.
	TrafficHTTPRoute TrafficMethod = "HTTPRoute"
	// TrafficReplicaRatio: the Service spreads requests over the ready pods of
	// both versions, so the split follows their number.
	TrafficReplicaRatio TrafficMethod = "ReplicaRatio"
)

// ModelServerStatus is what Kiln observed.
type ModelServerStatus struct {
	// conditions: Ready (every desired pod serves), CanaryReady (with a canary).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// url is where the model answers, inside the cluster.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	URL string `json:"url,omitempty"`

	// stable is the Deployment of the stable version.
	// +optional
	Stable *TrackStatus `json:"stable,omitempty"`

	// canary is the Deployment of the canary, while there is one.
	// +optional
	Canary *TrackStatus `json:"canary,omitempty"`

	// traffic is the split in force.
	// +optional
	Traffic *TrafficStatus `json:"traffic,omitempty"`

	// source is what push-to-deploy last did for this server, when it is
	// annotated for it (docs/push-to-deploy.md).
	// +optional
	Source *SourceStatus `json:"source,omitempty"`
}

// TrackStatus describes the Deployment of one version.
type TrackStatus struct {
	// deployment is the Deployment's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Deployment string `json:"deployment,omitempty"`

	// modelURI is the model this version serves.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	ModelURI string `json:"modelURI,omitempty"`

	// replicas is the number of pods the Deployment wants.
	// +optional
	Replicas int32 `json:"replicas"`

	// readyReplicas is the number of them that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
}

// TrafficStatus is the split of requests in force.
type TrafficStatus struct {
	// method is how requests are split.
	// +optional
	Method TrafficMethod `json:"method,omitempty"`

	// stablePercent is the share of requests the stable version gets.
	// +optional
	StablePercent int32 `json:"stablePercent"`

	// canaryPercent is the share of requests the canary gets.
	// +optional
	CanaryPercent int32 `json:"canaryPercent"`

	// message explains the split.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// ModelServer serves a model over HTTP or gRPC at http://<name>.<namespace>.svc,
// on Deployments, a Service, HorizontalPodAutoscalers and PodDisruptionBudgets.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ms,categories=kiln
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Canary %",type=integer,JSONPath=`.spec.canary.trafficPercent`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 56",message="name must start with a letter, contain only lowercase letters, digits and '-', and have at most 56 characters (it names the Service, and <name>-canary)"
type ModelServer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the model and how to serve it.
	// +required
	Spec ModelServerSpec `json:"spec"`

	// status is what Kiln observed.
	// +optional
	Status ModelServerStatus `json:"status,omitempty"`
}

// ModelServerList is a list of ModelServers.
//
// +kubebuilder:object:root=true
type ModelServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModelServer `json:"items"`
}

func init() { register(&ModelServer{}, &ModelServerList{}) }

// Condition types of a ModelServer.
const (
	// ModelServerReady is true while every desired pod of the stable version serves.
	ModelServerReady = "Ready"
	// ModelServerCanaryReady is true while every desired pod of the canary serves.
	ModelServerCanaryReady = "CanaryReady"
)

// Condition reasons of a ModelServer, taken from its native children.
const (
	ReasonServing                 = "Serving"
	ReasonRollingOut              = "RollingOut"
	ReasonModelNotFound           = "ModelNotFound"
	ReasonTrainingJobNotSucceeded = "TrainingJobNotSucceeded"
	ReasonModelDownloadFailed     = "ModelDownloadFailed"
	ReasonImagePullFailed         = "ImagePullFailed"
	ReasonCrashLoop               = "CrashLoop"
	ReasonUnschedulable           = "Unschedulable"
	ReasonUnknownPreset           = "UnknownPreset"
	ReasonProgressDeadline        = "ProgressDeadlineExceeded"
)

// Labels Kiln puts on what it creates for a ModelServer.
const (
	LabelModelServer = "kiln.dev/modelserver"
	// LabelTrack is stable or canary.
	LabelTrack = "kiln.dev/track"
)
