package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Annotations that opt a TrainingJob or ModelServer into push-to-deploy: on a push
// to Branch of Repository, Kiln builds the pushed commit into an image and deploys
// it (docs/push-to-deploy.md).
const (
	// AnnotationPushRepository is the Git URL Kiln fetches from and matches push
	// events against, such as https://github.com/acme/model.git. Required.
	AnnotationPushRepository = "push.kiln.dev/repository"
	// AnnotationPushBranch is the branch whose pushes deploy (default main).
	AnnotationPushBranch = "push.kiln.dev/branch"
	// AnnotationPushWebhookSecret names a Secret in the object's namespace whose
	// key PushWebhookSecretKey holds the webhook secret (GitHub) or secret token
	// (GitLab). Required: an event no object's secret verifies changes nothing.
	AnnotationPushWebhookSecret = "push.kiln.dev/webhook-secret"
	// AnnotationPushImage is the image repository builds are pushed to, such as
	// registry.example/acme/model. Required.
	AnnotationPushImage = "push.kiln.dev/image"
	// AnnotationPushRegistrySecret names a kubernetes.io/dockerconfigjson Secret in
	// the object's namespace with the credentials to push (and pull the base).
	AnnotationPushRegistrySecret = "push.kiln.dev/registry-secret"
	// AnnotationPushGitSecret names a Secret in the object's namespace, mounted
	// into the build Job: kubernetes.io/basic-auth (username, password: a user and
	// an access token) for HTTPS, or ssh-privatekey with known_hosts (the host's
	// pinned key) for ssh://; an optional ca.crt for a private CA.
	AnnotationPushGitSecret = "push.kiln.dev/git-secret"
	// AnnotationPushServiceAccount names the ServiceAccount in the object's
	// namespace that build Jobs run as (default: the namespace's "default"). Its
	// token is not mounted into the build.
	AnnotationPushServiceAccount = "push.kiln.dev/service-account"
	// AnnotationPushDeliveries is written by Kiln: the ids of the latest push
	// deliveries handled for the object, so that a replay is ignored whichever
	// manager replica receives it.
	AnnotationPushDeliveries = "push.kiln.dev/handled-deliveries"
	// AnnotationPushBuild is how the commit is built: PushBuildSource (default)
	// or PushBuildDockerfile.
	AnnotationPushBuild = "push.kiln.dev/build"
	// AnnotationPushBaseImage is the base image of a source build (default: the
	// manager's --push-base-image).
	AnnotationPushBaseImage = "push.kiln.dev/base-image"
	// AnnotationPushDockerfile is the Dockerfile's path in the repository for a
	// Dockerfile build (default Dockerfile).
	AnnotationPushDockerfile = "push.kiln.dev/dockerfile"

	// AnnotationSourceCommit on a TrainingJob Kiln created for a push is the
	// commit its image was built from.
	AnnotationSourceCommit = "kiln.dev/source-commit"
	// LabelPushTemplate on a TrainingJob Kiln created for a push names the
	// annotated TrainingJob it was copied from.
	LabelPushTemplate = "kiln.dev/push-template"
	// LabelPushBuild marks a build Job and its pods with the object it builds
	// for (<kind>.<name>, lowercase).
	LabelPushBuild = "kiln.dev/push-build"
)

// PushWebhookSecretKey is the key of the webhook secret in the Secret that
// AnnotationPushWebhookSecret names.
const PushWebhookSecretKey = "secret"

// Build modes of AnnotationPushBuild.
const (
	// PushBuildSource: a build Job in the object's namespace runs kiln-build,
	// which fetches the commit and builds it as `kubectl kiln build` does: the
	// source as layers on a base image.
	PushBuildSource = "source"
	// PushBuildDockerfile: a build Job runs the configured builder image on the
	// repository's Dockerfile.
	PushBuildDockerfile = "dockerfile"
)

// Event reasons of push-to-deploy.
const (
	ReasonBuildStarted   = "BuildStarted"
	ReasonBuildSucceeded = "BuildSucceeded"
	ReasonBuildFailed    = "BuildFailed"
	// ReasonBuildSuperseded: the branch moved past the pushed commit before the
	// build fetched it; the later push builds the newer head.
	ReasonBuildSuperseded = "BuildSuperseded"
	ReasonDeployed        = "Deployed"
)

// SourceStatus is what push-to-deploy last did for an object.
type SourceStatus struct {
	// commit is the Git commit the deployed image was built from.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Commit string `json:"commit,omitempty"`

	// image is the deployed image, by digest (repository@sha256:...).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image,omitempty"`

	// time is when it was deployed.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`

	// trainingJob is the TrainingJob created to run it (TrainingJobs only: a
	// TrainingJob's image is immutable, so each push runs a copy).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	TrainingJob string `json:"trainingJob,omitempty"`

	// failedCommit is the latest commit whose build or deployment failed after
	// the deployed one; empty when the latest attempt succeeded.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	FailedCommit string `json:"failedCommit,omitempty"`

	// message says why failedCommit failed.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}
