package serving

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the renderer's output")

func testConfig() Config {
	c := DefaultConfig()
	c.FetchImage = "registry.example/kiln-fetch:v1"
	return c
}

// Each testdata/<case>.yaml holds a ModelServer; <case>.golden.yaml is the
// expected output. Cases whose name contains "gateway" render for a cluster
// with Gateway API.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.yaml") {
			continue
		}
		ran++
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			ms := readModelServer(t, in)
			objs, err := ModelServer(ms, Options{Config: testConfig(), GatewayAPI: strings.Contains(name, "gateway"), OwnerReferences: true})
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
				t.Fatalf("%v (run go test ./internal/render/serving -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-want +got); run go test ./internal/render/serving -update if the change is intended:\n%s", golden, diff)
			}
			for _, o := range objs.List() {
				for _, msg := range validation.IsDNS1123Label(o.GetName()) {
					t.Errorf("%T %q: %s", o, o.GetName(), msg)
				}
			}
		})
	}
	if ran == 0 {
		t.Fatal("no test cases")
	}
}

func readModelServer(t *testing.T, file string) *v1alpha1.ModelServer {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ms := &v1alpha1.ModelServer{}
	if err := yaml.UnmarshalStrict(data, ms); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return ms
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

// The manifest that installs the ConfigMap and the defaults built into Kiln are
// one text.
// With -update the manifest's serving.yaml is rewritten from the built-in file.
func TestConfigMapManifestIsTheBuiltInDefault(t *testing.T) {
	manifest := filepath.Join("..", "..", "..", "config", "manager", "serving-config.yaml")
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		const key = "  " + ConfigKey + ": |\n"
		head, _, ok := strings.Cut(string(data), key)
		if !ok {
			t.Fatalf("%s has no %q", manifest, key)
		}
		var body strings.Builder
		for _, line := range strings.SplitAfter(string(DefaultConfigYAML()), "\n") {
			if strings.TrimSpace(line) != "" {
				body.WriteString("    ")
			}
			body.WriteString(line)
		}
		data = []byte(head + key + body.String())
		if err := os.WriteFile(manifest, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(data, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Name != ConfigMapName || cm.Labels[render.LabelManagedBy] != render.ManagedBy {
		t.Errorf("ConfigMap %s with labels %v: want %s labelled %s=%s (the manager caches only those)", cm.Name, cm.Labels, ConfigMapName, render.LabelManagedBy, render.ManagedBy)
	}
	if diff := cmp.Diff(string(DefaultConfigYAML()), cm.Data[ConfigKey]); diff != "" {
		t.Errorf("config/manager/serving-config.yaml differs from serving.yaml (-built-in +manifest):\n%s", diff)
	}
	c := DefaultConfig()
	if diff := cmp.Diff([]string{"mlserver", "torchserve", "triton", "vllm"}, c.PresetNames()); diff != "" {
		t.Errorf("presets (-want +got):\n%s", diff)
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, doc, wantErr string
	}{
		{"misspelt key", "presets:\n  x:\n    image: a\n    port: 1\n    readinesPath: /\n", "unknown field"},
		{"no port", "presets:\n  x:\n    image: a\n", `preset "x" needs an image and a port`},
		{"bad protocol", "presets:\n  x:\n    image: a\n    port: 1\n    protocol: UDP\n", "protocol must be HTTP or GRPC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestSplitReplicas(t *testing.T) {
	for _, tc := range []struct {
		n, pct         int32
		exact          bool
		stable, canary int32
	}{
		{10, 10, false, 9, 1},
		{10, 10, true, 9, 1},
		{2, 10, false, 1, 1}, // the canary needs a pod; the stable keeps one
		{4, 25, false, 3, 1},
		{4, 0, false, 4, 0}, // a dark canary must get no requests
		{4, 0, true, 3, 1},  // with weights it may stay warm
		{4, 100, false, 1, 4},
		{1, 50, false, 1, 1},
	} {
		s, c := splitReplicas(tc.n, tc.pct, tc.exact)
		if s != tc.stable || c != tc.canary {
			t.Errorf("splitReplicas(%d, %d%%, exact=%t) = %d, %d; want %d, %d", tc.n, tc.pct, tc.exact, s, c, tc.stable, tc.canary)
		}
	}
}

func TestModelVolumeIsReadOnly(t *testing.T) {
	for _, uri := range []string{"trainingjob://resnet", "pvc://models/a/b", "s3://bucket/model"} {
		ms := readModelServer(t, "testdata/mlserver-pvc.yaml")
		ms.Spec.Model.URI = uri
		objs, err := ModelServer(ms, Options{Config: testConfig()})
		if err != nil {
			t.Fatal(err)
		}
		pod := objs.Stable.Deployment.Spec.Template.Spec
		var mount *corev1.VolumeMount
		for i, m := range pod.Containers[0].VolumeMounts {
			if m.MountPath == ModelDir {
				mount = &pod.Containers[0].VolumeMounts[i]
			}
		}
		if mount == nil || !mount.ReadOnly {
			t.Errorf("%s: model mount %+v, want read-only at %s", uri, mount, ModelDir)
		}
		if claim, _, ok := ModelClaim(uri); ok {
			v := pod.Volumes[0].PersistentVolumeClaim
			if v == nil || v.ClaimName != claim || !v.ReadOnly {
				t.Errorf("%s: volume %+v, want claim %s read-only", uri, pod.Volumes[0], claim)
			}
		}
	}
	if claim, _, _ := ModelClaim("trainingjob://resnet"); claim != render.PVCName("resnet", "output") {
		t.Errorf("trainingjob:// mounts %s, not the TrainingJob's output claim", claim)
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*v1alpha1.ModelServer)
		opts    Options
		wantErr string
		as      any
	}{
		{
			name:    "unknown preset",
			mutate:  func(ms *v1alpha1.ModelServer) { ms.Spec.Runtime.Preset = "tgi" },
			opts:    Options{Config: testConfig()},
			wantErr: `spec.runtime.preset: no preset "tgi"`,
			as:      new(*UnknownPresetError),
		},
		{
			name:    "object storage without a fetch image",
			mutate:  func(ms *v1alpha1.ModelServer) { ms.Spec.Model.URI = "gs://b/m" },
			opts:    Options{Config: DefaultConfig()},
			wantErr: "spec.model.uri: gs://b/m must be downloaded",
			as:      new(*NoFetchImageError),
		},
		{
			name: "custom runtime without a port",
			mutate: func(ms *v1alpha1.ModelServer) {
				ms.Spec.Runtime = v1alpha1.ServingRuntime{Image: "x"}
			},
			opts:    Options{Config: testConfig()},
			wantErr: "spec.runtime: a runtime without a preset needs image and port",
		},
		{
			name: "canary template error",
			mutate: func(ms *v1alpha1.ModelServer) {
				ms.Spec.Canary = &v1alpha1.CanarySpec{TrafficPercent: 5, Runtime: &v1alpha1.ServingRuntime{Image: "x", Port: ptr.To[int32](1), Args: []string{"{{.Nope}}"}}}
			},
			opts:    Options{Config: testConfig()},
			wantErr: "spec.canary.runtime.args",
		},
		{
			name: "min above max",
			mutate: func(ms *v1alpha1.ModelServer) {
				ms.Spec.Replicas = v1alpha1.ReplicasSpec{Min: ptr.To[int32](3), Max: ptr.To[int32](2)}
			},
			opts:    Options{Config: testConfig()},
			wantErr: "spec.replicas",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := readModelServer(t, "testdata/mlserver-pvc.yaml")
			tc.mutate(ms)
			_, err := ModelServer(ms, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if tc.as != nil && !errors.As(err, tc.as) {
				t.Errorf("error %T is not %T", err, tc.as)
			}
		})
	}
}

func TestRatioSplit(t *testing.T) {
	for _, tc := range []struct {
		lo, hi, pct    int32
		stable, canary int32
	}{
		{2, 10, 10, 9, 1},  // the case: 10 %, not 50 %
		{2, 20, 10, 9, 1},  // no further than the first canary pod needs
		{2, 2, 10, 1, 1},   // max allows no better
		{2, 5, 10, 4, 1},   // the best within max: 20 %
		{2, 100, 7, 13, 1}, // 7.1 %, not 93 + 7
		{2, 10, 50, 1, 1},
		{2, 10, 25, 3, 1},
		{2, 10, 60, 1, 2},
		{4, 10, 25, 3, 1},
		{10, 10, 30, 7, 3},
	} {
		s, c := ratioSplit(tc.lo, tc.hi, tc.pct)
		if s != tc.stable || c != tc.canary {
			t.Errorf("ratioSplit(%d, %d, %d%%) = %d + %d, want %d + %d", tc.lo, tc.hi, tc.pct, s, c, tc.stable, tc.canary)
		}
	}
}
