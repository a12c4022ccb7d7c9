package render

import (
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
)

// BuildInput is a Dockerfile build of one commit for push-to-deploy.
type BuildInput struct {
	// Namespace and Owner are the annotated object's; the Job is owned by it.
	Namespace string
	Owner     metav1.OwnerReference
	// BuilderImage runs the build. It takes Kaniko's executor flags (--context,
	// --dockerfile, --destination, --digest-file, --reproducible) and its
	// environment (DOCKER_CONFIG, GIT_USERNAME, GIT_PASSWORD, GIT_PULL_METHOD).
	BuilderImage string
	// Repository is the Git URL (http or https); Branch and Commit what to build.
	Repository, Branch, Commit string
	// Dockerfile is its path in the repository.
	Dockerfile string
	// Destination is where to push: repository:tag.
	Destination string
	// RegistrySecret (dockerconfigjson) and GitSecret (basic-auth) are optional.
	RegistrySecret, GitSecret string
	// Deadline bounds the build.
	Deadline time.Duration
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

// buildOutput is where the builder writes the image digest: the container's
// termination message, which the manager reads from the pod's status.
const buildOutput = "/dev/termination-log"

// BuildJob renders the Job that builds in.Commit with the builder image and
// pushes it. The digest comes back as the pod's termination message.
//
// The builder runs as root (it unpacks image layers and runs the Dockerfile's
// RUN steps with their owners), without privilege escalation and with the
// runtime's default seccomp profile: the baseline Pod Security profile, not the
// restricted one.
func BuildJob(in BuildInput) (*batchv1.Job, error) {
	context, pullMethod, err := gitContext(in.Repository, in.Branch, in.Commit)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		LabelManagedBy:          ManagedBy,
		v1alpha1.LabelPushBuild: strings.ToLower(in.Owner.Kind) + "." + in.Owner.Name,
	}
	c := corev1.Container{
		Name:  "build",
		Image: in.BuilderImage,
		Args: []string{
			"--context=" + context,
			"--dockerfile=" + in.Dockerfile,
			"--destination=" + in.Destination,
			"--digest-file=" + buildOutput,
			"--reproducible",
		},
		Env:                      []corev1.EnvVar{{Name: "GIT_PULL_METHOD", Value: pullMethod}},
		TerminationMessagePath:   buildOutput,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	var volumes []corev1.Volume
	if in.RegistrySecret != "" {
		volumes = append(volumes, corev1.Volume{Name: "registry", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: in.RegistrySecret,
			Items:      []corev1.KeyToPath{{Key: corev1.DockerConfigJsonKey, Path: "config.json"}},
		}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "registry", MountPath: "/kiln/docker", ReadOnly: true})
		c.Env = append(c.Env, corev1.EnvVar{Name: "DOCKER_CONFIG", Value: "/kiln/docker"})
	}
	if in.GitSecret != "" {
		for _, e := range [][2]string{{"GIT_USERNAME", corev1.BasicAuthUsernameKey}, {"GIT_PASSWORD", corev1.BasicAuthPasswordKey}} {
			c.Env = append(c.Env, corev1.EnvVar{Name: e[0], ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: in.GitSecret}, Key: e[1],
			}}})
		}
	}
	return &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            BuildJobName(in.Owner.Name, in.Commit),
			Namespace:       in.Namespace,
			Labels:          labels,
			Annotations:     map[string]string{v1alpha1.AnnotationSourceCommit: in.Commit},
			OwnerReferences: []metav1.OwnerReference{in.Owner},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			ActiveDeadlineSeconds:   ptr.To(int64(in.Deadline.Seconds())),
			TTLSecondsAfterFinished: ptr.To[int32](3600),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
					Containers:                   []corev1.Container{c},
					Volumes:                      volumes,
				},
			},
		},
	}, nil
}

// gitContext is the builder's Git context for a commit of a branch: Kaniko's
// git://<host>/<path>#refs/heads/<branch>#<commit>, fetched over HTTPS, or HTTP
// when the URL says so.
func gitContext(repo, branch, commit string) (string, string, error) {
	scheme, rest, ok := strings.Cut(repo, "://")
	if !ok || (scheme != "https" && scheme != "http") {
		return "", "", fmt.Errorf("a Dockerfile build fetches over HTTP(S); %q is not an http(s):// URL", repo)
	}
	return "git://" + rest + "#refs/heads/" + branch + "#" + commit, scheme, nil
}
