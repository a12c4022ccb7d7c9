package render

import (
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
)

// BuildJobBase is what every build Job of a push shares: where it runs, as whom,
// for how long and with how much. Builds run in the annotated object's namespace
// under a tenant ServiceAccount, never with the manager's identity.
type BuildJobBase struct {
	// Namespace and Owner are the annotated object's; the Job is owned by it (an
	// owner reference, never a controller one: the object's own controller must
	// not take the Job for one of its children).
	Namespace string
	Owner     metav1.OwnerReference
	// Commit is what the Job builds; it names the Job.
	Commit string
	// ServiceAccount runs the pod: the namespace's "default" when empty, or the
	// one the object names (push.kiln.dev/service-account). Its token is not
	// mounted: a build needs no API access, only its Secrets as volumes.
	ServiceAccount string
	// Deadline bounds the Job (activeDeadlineSeconds).
	Deadline time.Duration
	// Resources of the build container; zero fields take DefaultBuildResources'.
	Resources corev1.ResourceRequirements
}

// DefaultBuildResources bound a build: enough for a Go or a Python source build
// of an ordinary repository. Ephemeral storage covers the fetched repository, the
// Go caches and the image layers before they are pushed.
func DefaultBuildResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse("500m"),
			corev1.ResourceMemory:           resource.MustParse("1Gi"),
			corev1.ResourceEphemeralStorage: resource.MustParse("2Gi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse("2"),
			corev1.ResourceMemory:           resource.MustParse("4Gi"),
			corev1.ResourceEphemeralStorage: resource.MustParse("8Gi"),
		},
	}
}

// BuildInput is a Dockerfile build of one commit for push-to-deploy.
type BuildInput struct {
	BuildJobBase
	// BuilderImage runs the build. It takes Kaniko's executor flags (--context,
	// --dockerfile, --destination, --digest-file, --reproducible) and its
	// environment (DOCKER_CONFIG, GIT_USERNAME, GIT_PASSWORD, GIT_PULL_METHOD).
	BuilderImage string
	// Repository is the Git URL (https); Branch what to build.
	Repository, Branch string
	// Dockerfile is its path in the repository.
	Dockerfile string
	// Destination is where to push: repository:tag.
	Destination string
	// RegistrySecret (dockerconfigjson) and GitSecret (basic-auth) are optional.
	RegistrySecret, GitSecret string
}

// SourceBuildInput is a source build (cmd/kiln-build) of one commit.
type SourceBuildInput struct {
	BuildJobBase
	// Image is cmd/kiln-build's image.
	Image string
	// Repository is the Git URL (https:// or ssh://), Branch the pushed branch.
	Repository, Branch string
	// Destination is where to push: repository:tag. BaseImage is the base ("" is
	// the builder's per-language default).
	Destination, BaseImage string
	// GitSecret (basic-auth, or ssh-auth with known_hosts; optional ca.crt) and
	// RegistrySecret (dockerconfigjson) are mounted as volumes; both optional.
	GitSecret, RegistrySecret string
	// Insecure lets the build push to a plain-HTTP registry.
	Insecure bool
	// AllowedHosts and DeniedCIDRs are the manager's repository host policy,
	// checked again inside the pod before it connects.
	AllowedHosts, DeniedCIDRs []string
}

// BuildJobName names the build Job of commit for object.
func BuildJobName(object, commit string) string {
	return name(object, "-build-"+shortCommit(commit), MaxJobNameLength)
}

// PushRunName names the TrainingJob that runs commit for the template TrainingJob.
func PushRunName(template, commit string) string {
	return name(template, "-"+shortCommit(commit), maxNameLength)
}

func shortCommit(c string) string { return c[:min(7, len(c))] }

// BuildOutput is where a build writes the image digest: the container's
// termination message, which the manager reads from the pod's status, and
// nothing else of the build's.
const BuildOutput = "/dev/termination-log"

// BuildUID is the user source builds run as (distroless' nonroot).
const BuildUID = 65532

// Where a source build's pod mounts what it is given.
const (
	BuildWorkDir         = "/work"
	BuildGitSecretDir    = "/kiln/git"
	BuildDockerConfigDir = "/kiln/docker"
)

// SourceBuildJob renders the Job that runs cmd/kiln-build for in.Commit: it
// fetches that commit, checks the checkout, builds it with internal/build,
// pushes it and writes the digest to its termination message. It passes the
// restricted Pod Security profile: non-root (UID 65532), no privilege
// escalation, no capabilities, the runtime's seccomp profile, a read-only root
// filesystem with an emptyDir for work.
func SourceBuildJob(in SourceBuildInput) (*batchv1.Job, error) {
	if in.Image == "" {
		return nil, fmt.Errorf("source builds need the kiln-build image: start the manager with --push-build-image")
	}
	args := []string{
		"--repository=" + in.Repository,
		"--branch=" + in.Branch,
		"--commit=" + in.Commit,
		"--image=" + in.Destination,
		"--work-dir=" + BuildWorkDir,
		"--timeout=" + in.Deadline.String(),
	}
	if in.BaseImage != "" {
		args = append(args, "--base="+in.BaseImage)
	}
	if len(in.AllowedHosts) > 0 {
		args = append(args, "--allowed-hosts="+strings.Join(in.AllowedHosts, ","))
	}
	if in.DeniedCIDRs != nil {
		args = append(args, "--denied-cidrs="+strings.Join(in.DeniedCIDRs, ","))
	}
	if in.Insecure {
		args = append(args, "--insecure-registry")
	}
	c := corev1.Container{
		Name:  "build",
		Image: in.Image,
		Args:  args,
		// The Go toolchain's caches and temporary files go to the work volume: the
		// root filesystem is read-only.
		Env: []corev1.EnvVar{
			{Name: "HOME", Value: BuildWorkDir},
			{Name: "TMPDIR", Value: BuildWorkDir + "/tmp"},
			{Name: "GOPATH", Value: BuildWorkDir + "/go"},
			{Name: "GOCACHE", Value: BuildWorkDir + "/go-cache"},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: BuildWorkDir}},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To[int64](BuildUID),
			RunAsGroup:               ptr.To[int64](BuildUID),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	volumes := []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		SizeLimit: ptr.To(buildResources(in.Resources).Limits[corev1.ResourceEphemeralStorage]),
	}}}}
	if in.GitSecret != "" {
		// The whole Secret: username/password, or ssh-privatekey with known_hosts,
		// and an optional ca.crt; listing items would fail the mount for a missing one.
		volumes = append(volumes, corev1.Volume{Name: "git", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: in.GitSecret, DefaultMode: ptr.To[int32](0o440),
		}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "git", MountPath: BuildGitSecretDir, ReadOnly: true})
		c.Args = append(c.Args, "--git-secret-dir="+BuildGitSecretDir)
	}
	if in.RegistrySecret != "" {
		volumes = append(volumes, registryVolume(in.RegistrySecret))
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "registry", MountPath: BuildDockerConfigDir, ReadOnly: true})
		c.Args = append(c.Args, "--docker-config="+BuildDockerConfigDir)
	}
	job := buildJob(in.BuildJobBase, c, volumes)
	job.Spec.Template.Spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](BuildUID),
		RunAsGroup:     ptr.To[int64](BuildUID),
		FSGroup:        ptr.To[int64](BuildUID),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	return job, nil
}

// BuildJob renders the Job that builds in.Commit's Dockerfile with the builder
// image and pushes it. The digest comes back as the pod's termination message.
//
// The builder runs as root: Kaniko unpacks image layers with their owners and
// runs the Dockerfile's RUN steps in its own root filesystem, which needs root
// and the default capabilities and a writable root. It gets everything else the
// restricted profile asks for that it can take (no privilege escalation, the
// runtime's seccomp profile, no service account token, the tenant's
// ServiceAccount, limits and a deadline): the baseline Pod Security profile, not
// the restricted one. A namespace that enforces restricted runs source builds only.
func BuildJob(in BuildInput) (*batchv1.Job, error) {
	context, pullMethod, err := gitContext(in.Repository, in.Branch, in.Commit)
	if err != nil {
		return nil, err
	}
	c := corev1.Container{
		Name:  "build",
		Image: in.BuilderImage,
		Args: []string{
			"--context=" + context,
			"--dockerfile=" + in.Dockerfile,
			"--destination=" + in.Destination,
			"--digest-file=" + BuildOutput,
			"--reproducible",
		},
		Env: []corev1.EnvVar{{Name: "GIT_PULL_METHOD", Value: pullMethod}},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	var volumes []corev1.Volume
	if in.RegistrySecret != "" {
		volumes = append(volumes, registryVolume(in.RegistrySecret))
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "registry", MountPath: BuildDockerConfigDir, ReadOnly: true})
		c.Env = append(c.Env, corev1.EnvVar{Name: "DOCKER_CONFIG", Value: BuildDockerConfigDir})
	}
	if in.GitSecret != "" {
		for _, e := range [][2]string{{"GIT_USERNAME", corev1.BasicAuthUsernameKey}, {"GIT_PASSWORD", corev1.BasicAuthPasswordKey}} {
			c.Env = append(c.Env, corev1.EnvVar{Name: e[0], ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: in.GitSecret}, Key: e[1],
			}}})
		}
	}
	job := buildJob(in.BuildJobBase, c, volumes)
	job.Spec.Template.Spec.SecurityContext = &corev1.PodSecurityContext{
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	return job, nil
}

// buildJob is the Job both builds share around their container.
func buildJob(b BuildJobBase, c corev1.Container, volumes []corev1.Volume) *batchv1.Job {
	owner := b.Owner
	owner.Controller, owner.BlockOwnerDeletion = nil, nil
	labels := map[string]string{
		LabelManagedBy:          ManagedBy,
		v1alpha1.LabelPushBuild: strings.ToLower(owner.Kind) + "." + owner.Name,
	}
	// Only the digest is ever read from a build, from this file; never fall back
	// to the log, which is the tenant's.
	c.TerminationMessagePath = BuildOutput
	c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	c.Resources = buildResources(b.Resources)
	sa := b.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	return &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            BuildJobName(owner.Name, b.Commit),
			Namespace:       b.Namespace,
			Labels:          labels,
			Annotations:     map[string]string{v1alpha1.AnnotationSourceCommit: b.Commit},
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			ActiveDeadlineSeconds:   ptr.To(max(int64(b.Deadline.Seconds()), 1)),
			TTLSecondsAfterFinished: ptr.To[int32](3600),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					ServiceAccountName:           sa,
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
					Containers:                   []corev1.Container{c},
					Volumes:                      volumes,
				},
			},
		},
	}
}

// buildResources fills what r leaves out from DefaultBuildResources.
func buildResources(r corev1.ResourceRequirements) corev1.ResourceRequirements {
	def := DefaultBuildResources()
	out := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for k, v := range def.Requests {
		out.Requests[k] = v
	}
	for k, v := range def.Limits {
		out.Limits[k] = v
	}
	for k, v := range r.Requests {
		out.Requests[k] = v
	}
	for k, v := range r.Limits {
		out.Limits[k] = v
	}
	return out
}

func registryVolume(secret string) corev1.Volume {
	return corev1.Volume{Name: "registry", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: secret,
		Items:      []corev1.KeyToPath{{Key: corev1.DockerConfigJsonKey, Path: "config.json"}},
	}}}
}

// gitContext is the builder's Git context for a commit of a branch: Kaniko's
// git://<host>/<path>#refs/heads/<branch>#<commit>, fetched over HTTPS (the
// manager refuses other repository URLs before it gets here).
func gitContext(repo, branch, commit string) (string, string, error) {
	scheme, rest, ok := strings.Cut(repo, "://")
	if !ok || scheme != "https" {
		return "", "", fmt.Errorf("a Dockerfile build fetches over HTTPS; %q is not an https:// URL", repo)
	}
	return "git://" + rest + "#refs/heads/" + branch + "#" + commit, scheme, nil
}

// Exit codes of cmd/kiln-build: the only thing of a failed build the manager
// reports (with the Job to read the log of), as the stage that failed. The
// message is the tenant's log, which the manager never reads.
const (
	BuildExitFailed     = 1  // anything not classified below
	BuildExitUsage      = 2  // the Job's arguments or mounted Secrets are unusable
	BuildExitURLRefused = 3  // the repository URL or its host is refused
	BuildExitFetch      = 4  // fetching the commit failed
	BuildExitUnsafe     = 5  // the checkout holds a path that reaches outside it
	BuildExitBuild      = 6  // building the image failed
	BuildExitPush       = 7  // pushing the image failed
	BuildExitSuperseded = 8  // the branch moved past the commit; a later push builds it
	BuildExitDeadline   = 9  // the build ran out of time
	BuildExitTooLarge   = 10 // the repository is larger than the fetch may write
)

// BuildExitStage names what failed for a kiln-build exit code.
func BuildExitStage(code int32) string {
	switch code {
	case BuildExitUsage:
		return "the build's arguments or Secrets"
	case BuildExitURLRefused:
		return "the repository URL check"
	case BuildExitFetch:
		return "fetching the commit"
	case BuildExitUnsafe:
		return "the checkout check (a file reaches outside the repository)"
	case BuildExitBuild:
		return "building the image"
	case BuildExitPush:
		return "pushing the image"
	case BuildExitDeadline:
		return "the build's deadline"
	case BuildExitTooLarge:
		return "the repository size limit"
	}
	return "the build"
}
