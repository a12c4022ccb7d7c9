package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

func TestBuildJobGolden(t *testing.T) {
	owner := metav1.OwnerReference{APIVersion: "kiln.dev/v1alpha1", Kind: "ModelServer", Name: "sentiment", UID: "0d5e2e5a-1b1c-4d4b-9d0e-4c4b0c0e0a01", Controller: ptr.To(true)}
	base := BuildInput{
		Namespace: "team", Owner: owner, BuilderImage: "registry.example/kaniko/executor:v1",
		Repository: "https://github.com/acme/sentiment.git", Branch: "main", Commit: "3f9a2c1d4e5b6a7980112233445566778899aabb",
		Dockerfile: "Dockerfile", Destination: "registry.example/acme/sentiment:3f9a2c1d4e5b", Deadline: 30 * time.Minute,
	}
	private := base
	private.Repository, private.Dockerfile = "http://git.internal:3000/acme/sentiment.git", "serve/Dockerfile"
	private.RegistrySecret, private.GitSecret = "registry-push", "git-read"
	for name, in := range map[string]BuildInput{"public": base, "private": private} {
		t.Run(name, func(t *testing.T) {
			job, err := BuildJob(in)
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

func TestBuildJobRefusesOtherTransports(t *testing.T) {
	for _, repo := range []string{"git://git.example/acme/m.git", "git@github.com:acme/m.git", "ssh://git@github.com/acme/m.git"} {
		_, err := BuildJob(BuildInput{Repository: repo, Branch: "main", Commit: "abc"})
		if err == nil || !strings.Contains(err.Error(), "fetches over HTTP(S)") {
			t.Errorf("%s: error %v, want one saying a Dockerfile build fetches over HTTP(S)", repo, err)
		}
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
