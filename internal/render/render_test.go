package render

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the renderer's output")

// Each testdata/<case>.yaml holds a TrainingJob followed by the Nodes of the
// cluster it is rendered for; <case>.golden.yaml is the expected output. The shape
// is chosen by the placement package, as the controller does.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.yaml") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			tj, nodes := readInput(t, in)
			shape, err := placement.ForTrainingJob(&tj.Spec, placement.NodeShapesFromNodes(nodes, corev1.ResourceName(tj.Spec.Resources.GPUResource)))
			if err != nil {
				t.Fatalf("shape: %v", err)
			}
			objs, err := TrainingJob(tj, shape, testOptions())
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			got := toYAML(t, objs)
			golden := filepath.Join("testdata", name+".golden.yaml")
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
			checkNames(t, objs)
		})
	}
}

func testOptions() Options {
	return Options{
		OwnerReferences: true,
		FetchImage:      "registry.example/kiln-fetch:v1",
		Rand:            rand.NewChaCha8([32]byte{'k', 'i', 'l', 'n'}),
	}
}

func readInput(t *testing.T, file string) (*v1alpha1.TrainingJob, []corev1.Node) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(data), "\n---\n")
	var tj v1alpha1.TrainingJob
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &tj); err != nil {
		t.Fatalf("%s: first document: %v", file, err)
	}
	// The API server would have applied these defaults.
	if tj.Spec.Framework == "" {
		tj.Spec.Framework = v1alpha1.FrameworkNone
	}
	if tj.Spec.Resources.GPUResource == "" {
		tj.Spec.Resources.GPUResource = v1alpha1.DefaultGPUResource
	}
	var nodes []corev1.Node
	for _, doc := range docs[1:] {
		var n corev1.Node
		if err := yaml.UnmarshalStrict([]byte(doc), &n); err != nil {
			t.Fatalf("%s: node: %v", file, err)
		}
		nodes = append(nodes, n)
	}
	return &tj, nodes
}

func toYAML(t *testing.T, objs Objects) []byte {
	t.Helper()
	var b bytes.Buffer
	for i, o := range objs.List() {
		if i > 0 {
			b.WriteString("---\n")
		}
		data, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.Bytes()
}

// checkNames checks what the API server would: every name a DNS label, and the
// pod host names <job>-<index> too.
func checkNames(t *testing.T, objs Objects) {
	t.Helper()
	for _, o := range objs.List() {
		for _, msg := range validation.IsDNS1123Label(o.GetName()) {
			t.Errorf("%T %q: %s", o, o.GetName(), msg)
		}
	}
	job := objs.Job
	last := job.Name + "-" + strconv.Itoa(int(*job.Spec.Completions-1))
	for _, msg := range validation.IsDNS1123Label(last) {
		t.Errorf("pod host name %q: %s", last, msg)
	}
	if sub := job.Spec.Template.Spec.Subdomain; sub != objs.Service.Name {
		t.Errorf("pod subdomain %q is not the Service %q", sub, objs.Service.Name)
	}
}

func TestSSHKeyParses(t *testing.T) {
	key, err := GenerateSSHKey(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key.PrivateKey)
	if err != nil {
		t.Fatalf("OpenSSH cannot read the private key: %v", err)
	}
	pub, comment, _, _, err := ssh.ParseAuthorizedKey(key.PublicKey)
	if err != nil {
		t.Fatalf("OpenSSH cannot read the public key: %v", err)
	}
	if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) || comment != "kiln" {
		t.Errorf("public key %q does not match the private key", key.PublicKey)
	}
	again, _ := GenerateSSHKey(rand.NewChaCha8([32]byte{1}))
	if diff := cmp.Diff(key, again); diff != "" {
		t.Errorf("same randomness, different key:\n%s", diff)
	}
}

func TestExistingSSHKeyIsKept(t *testing.T) {
	tj, _ := readInput(t, "testdata/mpi.yaml")
	shape := placement.Shape{Nodes: 2, ProcessesPerNode: 8, GPUsPerNode: 8}
	first, err := TrainingJob(tj, shape, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{SSHKey: SSHKeyFromSecret(first.Secret), Rand: rand.NewChaCha8([32]byte{'o', 't', 'h', 'e', 'r'})}
	second, err := TrainingJob(tj, shape, opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first.Secret.Data, second.Secret.Data); diff != "" {
		t.Errorf("key rotated on re-render:\n%s", diff)
	}
}

func TestWithoutOwnerReferences(t *testing.T) {
	tj, _ := readInput(t, "testdata/pytorch-1x8.yaml")
	tj.Spec.Checkpoints.RetentionPolicy = v1alpha1.RetentionDelete
	objs, err := TrainingJob(tj, placement.Shape{Nodes: 1, ProcessesPerNode: 8, GPUsPerNode: 8}, Options{FetchImage: "f"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs.List() {
		if refs := o.GetOwnerReferences(); len(refs) > 0 {
			t.Errorf("%T %s has owner references %v", o, o.GetName(), refs)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	base := func() *v1alpha1.TrainingJob {
		tj, _ := readInput(t, "testdata/pytorch-1x8.yaml")
		return tj
	}
	oneByEight := placement.Shape{Nodes: 1, ProcessesPerNode: 8, GPUsPerNode: 8}
	cases := []struct {
		name    string
		mutate  func(*v1alpha1.TrainingJob)
		shape   placement.Shape
		opts    Options
		wantErr string
	}{
		{
			name:    "shape does not match the GPUs",
			shape:   placement.Shape{Nodes: 1, ProcessesPerNode: 4, GPUsPerNode: 4},
			opts:    Options{FetchImage: "f"},
			wantErr: "gives 4 GPUs but the job asks for 8",
		},
		{
			name:    "empty shape",
			opts:    Options{FetchImage: "f"},
			wantErr: "must be at least 1",
		},
		{
			name:    "remote data without a fetch image",
			shape:   oneByEight,
			wantErr: "no fetch image is configured",
		},
		{
			name: "overlay volume named like Kiln's",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{Volumes: []corev1.Volume{{Name: "kiln-shm"}}}
			},
			shape:   oneByEight,
			opts:    Options{FetchImage: "f"},
			wantErr: `spec.podTemplate.volumes[0]: volume name "kiln-shm" is reserved`,
		},
		{
			name: "overlay mount on /dev/shm",
			mutate: func(tj *v1alpha1.TrainingJob) {
				tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{VolumeMounts: []corev1.VolumeMount{{Name: "x", MountPath: "/dev/shm/"}}}
			},
			shape:   oneByEight,
			opts:    Options{FetchImage: "f"},
			wantErr: `spec.podTemplate.volumeMounts[0]: mount path "/dev/shm/" is reserved`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tj := base()
			if tc.mutate != nil {
				tc.mutate(tj)
			}
			_, err := TrainingJob(tj, tc.shape, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestKilnEnvWins(t *testing.T) {
	tj, _ := readInput(t, "testdata/cpu-none.yaml")
	tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{Env: []corev1.EnvVar{
		{Name: "OMP_NUM_THREADS", Value: "4"},  // a default: the user's value wins
		{Name: v1alpha1.EnvNodes, Value: "99"}, // Kiln's own: Kiln's value wins
	}}
	objs, err := TrainingJob(tj, placement.Shape{Nodes: 1, ProcessesPerNode: 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range objs.Job.Spec.Template.Spec.Containers[0].Env {
		if _, dup := got[e.Name]; dup {
			t.Errorf("%s appears twice", e.Name)
		}
		got[e.Name] = e.Value
	}
	if got["OMP_NUM_THREADS"] != "4" || got[v1alpha1.EnvNodes] != "1" {
		t.Errorf("OMP_NUM_THREADS=%s (want 4), %s=%s (want 1)", got["OMP_NUM_THREADS"], v1alpha1.EnvNodes, got[v1alpha1.EnvNodes])
	}
}
