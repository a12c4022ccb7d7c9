package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

var testOwner = metav1.OwnerReference{APIVersion: "kiln.dev/v1alpha1", Kind: "ModelServer", Name: "sentiment", UID: "0d5e2e5a-1b1c-4d4b-9d0e-4c4b0c0e0a01", Controller: ptr.To(true)}

func testBase() BuildJobBase {
	return BuildJobBase{Namespace: "team", Owner: testOwner, Commit: "3f9a2c1d4e5b6a7980112233445566778899aabb", Deadline: 30 * time.Minute}
}

func TestBuildJobGolden(t *testing.T) {
	base := BuildInput{
		BuildJobBase: testBase(), BuilderImage: "registry.example/kaniko/executor:v1",
		Repository: "https://github.com/acme/sentiment.git", Branch: "main",
		Dockerfile: "Dockerfile", Destination: "registry.example/acme/sentiment:3f9a2c1d4e5b",
	}
	private := base
	private.Repository, private.Dockerfile = "https://git.internal:3000/acme/sentiment.git", "serve/Dockerfile"
	private.RegistrySecret, private.GitSecret, private.ServiceAccount = "registry-push", "git-read", "builder"
	src := SourceBuildInput{
		BuildJobBase: testBase(), Image: "registry.example/kiln/kiln-build@sha256:" + strings.Repeat("0", 64),
		Repository: "https://github.com/acme/sentiment.git", Branch: "main",
		Destination: "registry.example/acme/sentiment:3f9a2c1d4e5b", DeniedCIDRs: []string{"10.96.0.0/12", "10.244.0.0/16"},
	}
	srcPrivate := src
	srcPrivate.Repository, srcPrivate.BaseImage = "ssh://git@git.internal/acme/sentiment.git", "registry.example/python:3.12@sha256:"+strings.Repeat("1", 64)
	srcPrivate.GitSecret, srcPrivate.RegistrySecret, srcPrivate.ServiceAccount = "git-ssh", "registry-push", "builder"
	srcPrivate.AllowedHosts, srcPrivate.Insecure = []string{"git.internal"}, true
	srcPrivate.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("8Gi")}}
	cases := map[string]func() (*batchv1.Job, error){
		"public":         func() (*batchv1.Job, error) { return BuildJob(base) },
		"private":        func() (*batchv1.Job, error) { return BuildJob(private) },
		"source":         func() (*batchv1.Job, error) { return SourceBuildJob(src) },
		"source-private": func() (*batchv1.Job, error) { return SourceBuildJob(srcPrivate) },
	}
	for name, render := range cases {
		t.Run(name, func(t *testing.T) {
			job, err := render()
			if err != nil {
				t.Fatal(err)
			}
			got, err := yaml.Marshal(job)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "buildjob", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/render -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-want +got); run go test ./internal/render -update if the change is intended:\n%s", golden, diff)
			}
		})
	}
}

// The shape every build Job has, whatever the builder: the tenant's
// ServiceAccount without its token, an owner (not controller) reference,
// limits, a deadline and no retries; and the Pod Security level each meets.
func TestBuildJobsShape(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	src, err := SourceBuildJob(SourceBuildInput{BuildJobBase: testBase(), Image: "kiln-build:1", Repository: "https://h/r", Branch: "main", Destination: "r/x:1"})
	if err != nil {
		t.Fatal(err)
	}
	docker, err := BuildJob(BuildInput{BuildJobBase: testBase(), BuilderImage: "kaniko:1", Repository: "https://h/r", Branch: "main", Destination: "r/x:1", Dockerfile: "Dockerfile"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		job   *batchv1.Job
		level psapi.Level
	}{{"source", src, psapi.LevelRestricted}, {"dockerfile", docker, psapi.LevelBaseline}} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.job.Spec.Template.Spec
			if spec.ServiceAccountName != "default" || spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Errorf("service account %q, automount %v; want default without its token", spec.ServiceAccountName, spec.AutomountServiceAccountToken)
			}
			if o := tc.job.OwnerReferences; len(o) != 1 || o[0].Controller != nil || o[0].UID != testOwner.UID {
				t.Errorf("owner references %+v; want the object's, not as controller", o)
			}
			if *tc.job.Spec.BackoffLimit != 0 || *tc.job.Spec.ActiveDeadlineSeconds != 1800 {
				t.Errorf("backoffLimit %d, activeDeadlineSeconds %d", *tc.job.Spec.BackoffLimit, *tc.job.Spec.ActiveDeadlineSeconds)
			}
			c := spec.Containers[0]
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
				if _, ok := c.Resources.Requests[r]; !ok {
					t.Errorf("no %s request", r)
				}
				if _, ok := c.Resources.Limits[r]; !ok {
					t.Errorf("no %s limit", r)
				}
			}
			if c.TerminationMessagePolicy != corev1.TerminationMessageReadFile {
				t.Errorf("termination message policy %s: the log must never become the message", c.TerminationMessagePolicy)
			}
			for _, level := range []psapi.Level{psapi.LevelBaseline, psapi.LevelRestricted} {
				var failed []string
				for _, r := range evaluator.EvaluatePod(psapi.LevelVersion{Level: level, Version: psapi.LatestVersion()}, &tc.job.Spec.Template.ObjectMeta, &spec) {
					if !r.Allowed {
						failed = append(failed, r.ForbiddenReason+": "+r.ForbiddenDetail)
					}
				}
				wantPass := level == psapi.LevelBaseline || tc.level == psapi.LevelRestricted
				if wantPass && len(failed) > 0 {
					t.Errorf("does not meet %s: %v", level, failed)
				}
				if !wantPass && len(failed) == 0 {
					t.Errorf("meets %s, which its doc comment says it cannot: update the docs", level)
				}
			}
		})
	}
	if ro := src.Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem; ro == nil || !*ro {
		t.Error("the source build's root filesystem is writable")
	}
}

func TestBuildJobRefusesOtherTransports(t *testing.T) {
	for _, repo := range []string{"git://git.example/acme/m.git", "git@github.com:acme/m.git", "ssh://git@github.com/acme/m.git", "http://git.example/m.git"} {
		_, err := BuildJob(BuildInput{Repository: repo, Branch: "main", BuildJobBase: BuildJobBase{Commit: "abc"}})
		if err == nil || !strings.Contains(err.Error(), "fetches over HTTPS") {
			t.Errorf("%s: error %v, want one saying a Dockerfile build fetches over HTTPS", repo, err)
		}
	}
	if _, err := SourceBuildJob(SourceBuildInput{Repository: "https://h/r"}); err == nil || !strings.Contains(err.Error(), "--push-build-image") {
		t.Errorf("a source build without the image: %v, want the flag named", err)
	}
}

func TestPushNames(t *testing.T) {
	long := strings.Repeat("a", 60)
	tests := []struct{ got, want string }{
		{BuildJobName("sentiment", "3f9a2c1d4e5b"), "sentiment-build-3f9a2c1"},
		{PushRunName("resnet", "3f9a2c1d4e5b"), "resnet-3f9a2c1"},
		// too long: cut, with a hash of the whole name so that long names stay distinct
		{PushRunName(long, "3f9a2c1d4e5b"), long[:46] + "-11ee3912-3f9a2c1"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
		if len(tc.got) > 63 {
			t.Errorf("%q is longer than a DNS label", tc.got)
		}
	}
}
