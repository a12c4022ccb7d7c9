package v1alpha1

// DefaultNotebookImage is the image of a Notebook whose spec.image is unset:
// JupyterLab from the Jupyter Docker Stacks, pinned to a date tag so that a
// notebook does not change under its user. It runs as the numeric user 1000
// (jovyan, group 100), so it runs under the restricted Pod Security profile, and
// reads its access token from JUPYTER_TOKEN. This is the one place to change it.
const DefaultNotebookImage = "quay.io/jupyter/minimal-notebook:2025-03-14"

// DefaultNotebookPort is where JupyterLab serves, as the CRD defaults spec.port.
const DefaultNotebookPort = 8888

// Defaults of spec.workspace, as the CRD applies them.
const (
	DefaultWorkspaceSize      = "10Gi"
	DefaultWorkspaceMountPath = "/home/jovyan"
)

// AnnotationLastActivity on a Notebook is the latest time (RFC 3339) a front end
// other than the Jupyter server saw the user active, such as a proxy or an IDE
// bridge. Kiln takes the later of it and the server's own last_activity.
const AnnotationLastActivity = "kiln.dev/last-activity"

// LabelNotebook marks every object Kiln creates for a Notebook.
const LabelNotebook = "kiln.dev/notebook"

// Environment variables Kiln sets in notebook containers.
const (
	// EnvWorkspaceDir is the workspace's mount path.
	EnvWorkspaceDir = "KILN_WORKSPACE_DIR"
	// EnvJupyterToken is the access token; Jupyter servers read it themselves.
	EnvJupyterToken = "JUPYTER_TOKEN"
)

// NotebookTokenKey is the key of the access token in the token Secret.
const NotebookTokenKey = "token"

// Condition types of a Notebook.
const (
	// NotebookConditionReady is true while the notebook's pod is ready to serve.
	NotebookConditionReady = "Ready"
	// NotebookConditionStopped is true while the notebook is scaled to zero, by
	// spec.stopped or by idle culling (reason Culled).
	NotebookConditionStopped = "Stopped"
	// NotebookConditionActivityKnown says whether Kiln can tell when the
	// notebook was last used; without it, idle culling never stops it.
	NotebookConditionActivityKnown = "ActivityKnown"
	// NotebookConditionGPUsAvailable is false when no node offers the GPUs the
	// notebook asks for; its pod waits until one does.
	NotebookConditionGPUsAvailable = "GPUsAvailable"
)

// Condition reasons of a Notebook.
const (
	ReasonPodReady        = "PodReady"
	ReasonPodStarting     = "PodStarting"
	ReasonStoppedBySpec   = "StoppedBySpec"
	ReasonCulled          = "Culled"
	ReasonStarted         = "Started"
	ReasonVolumeNotFound  = "VolumeNotFound"
	ReasonServerStatus    = "ServerStatus"
	ReasonAnnotation      = "Annotation"
	ReasonServerUnreached = "ServerUnreachable"
	ReasonNoIdleTimeout   = "NoIdleTimeout"
	ReasonNoGPUNodes      = "NoGPUNodes"
	ReasonGPUNodesFound   = "GPUNodesFound"
	ReasonNameConflict    = "NameConflict"
)
