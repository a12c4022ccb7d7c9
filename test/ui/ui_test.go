// Package ui runs the Kiln Headlamp plugin in headless Chromium against a real API server
// with Kiln's CRDs: the built plugin bundle is loaded into Headlamp's own components by a
// small host shell (ui/headlamp-plugin/test/browser), served here with a proxy to the API.
package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/test/framework"
)

const namespace = "ml"

// browserTools finds npm and Chromium. Missing tools fail the test unless KILN_UI_TESTS=off
// says this machine is not meant to run it: CI must.
func browserTools(t *testing.T) (npm, chromium string) {
	t.Helper()
	npm, errNPM := exec.LookPath("npm")
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, errChromium := os.Stat(chromium)
	if errNPM == nil && errChromium == nil {
		return npm, chromium
	}
	msg := fmt.Sprintf("the UI browser test needs npm and Chromium (npm: %v; chromium at %s: %v); "+
		"run hack/install-chromium.sh and make ui", errNPM, chromium, errChromium)
	if os.Getenv("KILN_UI_TESTS") == "off" {
		t.Skip(msg + " (skipped: KILN_UI_TESTS=off)")
	}
	t.Fatal(msg)
	return "", ""
}

func TestHeadlampPlugin(t *testing.T) {
	npm, chromium := browserTools(t)
	pluginDir := filepath.Join(framework.RepoRoot(), "ui", "headlamp-plugin")
	for _, f := range []string{"node_modules", filepath.Join("dist", "main.js")} {
		if _, err := os.Stat(filepath.Join(pluginDir, f)); err != nil {
			t.Fatalf("%s is missing: run make ui (npm ci && npm run build in ui/headlamp-plugin) first", f)
		}
	}
	artefacts := os.Getenv("KILN_UI_ARTEFACTS")
	if artefacts == "" {
		artefacts = filepath.Join(os.TempDir(), "kiln-ui-artefacts")
	}
	if err := os.MkdirAll(artefacts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", artefacts)

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	// The host shell: Headlamp's components from the plugin package. make ui builds it; a
	// checkout that has only the plugin built gets it built here (minutes on a small machine).
	if _, err := os.Stat(filepath.Join(pluginDir, "test", "browser", "dist", "index.html")); err != nil {
		shell := exec.CommandContext(ctx, npm, "run", "--silent", "build:shell")
		shell.Dir = pluginDir
		if out, err := shell.CombinedOutput(); err != nil {
			t.Fatalf("building the host shell: %v\n%s", err, out)
		}
	}

	plane, err := framework.Start(ctx, "", 0)
	if err != nil {
		t.Fatalf("starting the API server: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			plane.KeepDir()
			t.Logf("API server logs kept in %s", plane.Dir)
		}
		if err := plane.Stop(); err != nil {
			t.Errorf("stopping the API server: %v", err)
		}
	})
	scheme, err := manager.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(plane.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(plane.Config)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	seedNodes(ctx, t, cs)
	installed := seedOtherKinds(ctx, t, plane.Config)
	t.Logf("Kiln kinds served besides TrainingJob: %v", installed)

	srv := serve(t, plane.Config, filepath.Join(pluginDir, "dist"), filepath.Join(pluginDir, "test", "browser", "dist"))

	// The browser script signals each step on stdout; the TrainingJob is created only once the
	// empty list is on screen, so its appearing proves the list watches.
	run := exec.CommandContext(ctx, "node", filepath.Join("test", "browser", "run.mjs"))
	run.Dir = pluginDir
	run.Env = append(os.Environ(),
		"KILN_UI_URL="+srv,
		"KILN_UI_NAMESPACE="+namespace,
		"KILN_UI_ARTEFACTS="+artefacts,
		"KILN_UI_KINDS="+strings.Join(installed, ","),
		"CHROMIUM="+chromium,
	)
	stdout, err := run.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	run.Stderr = &testWriter{t: t, prefix: "browser: "}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var steps []string
	for lines.Scan() {
		line := lines.Text()
		t.Logf("browser: %s", line)
		step, ok := strings.CutPrefix(line, "STEP ")
		if !ok {
			continue
		}
		steps = append(steps, step)
		if step == "list-empty" {
			createTrainingJob(ctx, t, c)
		}
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("browser script: %v (steps reached: %v)", err, steps)
	}
	for _, want := range []string{"list-empty", "list-watched", "detail", "cluster", "done"} {
		if !contains(steps, want) {
			t.Errorf("browser script never reached step %q (reached %v)", want, steps)
		}
	}
	for _, shot := range []string{"trainingjobs-empty.png", "trainingjobs-list.png", "trainingjob-detail.png", "cluster.png"} {
		if fi, err := os.Stat(filepath.Join(artefacts, shot)); err != nil || fi.Size() == 0 {
			t.Errorf("screenshot %s missing or empty: %v", shot, err)
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w *testWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}

// createTrainingJob creates a TrainingJob and writes the status the controller would, so the
// detail page has a shape and conditions to show (this plane runs no controller).
func createTrainingJob(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	tj := &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{Name: "llama-finetune", Namespace: namespace},
		Spec: v1alpha1.TrainingJobSpec{
			Image:     "registry.example.com/llama-train:1.0",
			Framework: v1alpha1.FrameworkPyTorch,
			Resources: v1alpha1.TrainingResources{GPUs: 16},
			Topology:  &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 8},
		},
	}
	if err := c.Create(ctx, tj); err != nil {
		t.Fatalf("creating the TrainingJob: %v", err)
	}
	now := metav1.Now()
	tj.Status = v1alpha1.TrainingJobStatus{
		ObservedGeneration: tj.Generation,
		State:              v1alpha1.StateRunning,
		Shape:              &v1alpha1.ShapeStatus{Nodes: 2, ProcessesPerNode: 8, GPUsPerNode: 8, Pool: "a100", Summary: "2x8"},
		JobName:            "llama-finetune-0",
		StartTime:          &now,
		Active:             2,
		Ready:              2,
		Metrics:            map[string]string{"loss": "1.25", "step": "100"},
	}
	meta.SetStatusCondition(&tj.Status.Conditions, metav1.Condition{
		Type: "Running", Status: metav1.ConditionTrue, Reason: "AllWorkersReady",
		Message: "2 of 2 workers are ready", ObservedGeneration: tj.Generation,
	})
	meta.SetStatusCondition(&tj.Status.Conditions, metav1.Condition{
		Type: "Admitted", Status: metav1.ConditionTrue, Reason: "Placed",
		Message: "placed on 2 nodes of pool a100", ObservedGeneration: tj.Generation,
	})
	if err := c.Status().Update(ctx, tj); err != nil {
		t.Fatalf("writing the TrainingJob's status: %v", err)
	}
}

// seedNodes creates two GPU pools' Node objects, so the cluster view has capacity to show.
func seedNodes(ctx context.Context, t *testing.T, cs *kubernetes.Clientset) {
	t.Helper()
	pools, err := controlplane.ParsePools("a100=2x8,l4=1x4@NVIDIA-L4")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pools {
		for _, n := range p.Nodes() {
			status := n.Status
			created, err := cs.CoreV1().Nodes().Create(ctx, &n, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("creating node %s: %v", n.Name, err)
			}
			created.Status = status
			if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
				t.Fatalf("node %s status: %v", n.Name, err)
			}
		}
	}
}

// otherKinds are objects of the kinds built beside TrainingJob. Each is created only when its
// CRD is installed from config/crd/bases; the list of those that were is returned.
var otherKinds = []struct {
	resource string
	object   map[string]any
}{
	{"sweeps", map[string]any{
		"kind": "Sweep", "metadata": map[string]any{"name": "lr-search"},
		"spec": map[string]any{
			"parameters": []any{map[string]any{"name": "lr", "type": "float", "min": "0.0001", "max": "0.1", "scale": "log"}},
			"objective":  map[string]any{"metric": "loss", "direction": "minimize"},
			"maxTrials":  int64(4),
			"trialTemplate": map[string]any{
				"image": "registry.example.com/train:1.0", "resources": map[string]any{"gpus": int64(1)},
			},
		},
	}},
	{"modelservers", map[string]any{
		"kind": "ModelServer", "metadata": map[string]any{"name": "resnet"},
		"spec": map[string]any{
			"model":   map[string]any{"uri": "pvc://models/resnet"},
			"runtime": map[string]any{"image": "registry.example.com/serve:1.0", "port": int64(8080)},
			"canary":  map[string]any{"model": map[string]any{"uri": "pvc://models/resnet-v2"}, "trafficPercent": int64(10)},
		},
	}},
	{"notebooks", map[string]any{
		"kind": "Notebook", "metadata": map[string]any{"name": "scratch"},
		"spec": map[string]any{"image": "quay.io/jupyter/base-notebook:latest"},
	}},
}

func seedOtherKinds(ctx context.Context, t *testing.T, cfg *rest.Config) []string {
	t.Helper()
	dc := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	served := map[string]bool{}
	if list, err := dc.ServerResourcesForGroupVersion(v1alpha1.GroupVersion.String()); err == nil {
		for _, r := range list.APIResources {
			served[r.Name] = true
		}
	} else {
		t.Fatalf("discovering %s: %v", v1alpha1.GroupVersion, err)
	}
	dyn := dynamic.NewForConfigOrDie(cfg)
	var installed []string
	for _, k := range otherKinds {
		if !served[k.resource] {
			t.Logf("%s: CRD not in config/crd/bases on this branch; no object created", k.resource)
			continue
		}
		obj := &unstructured.Unstructured{Object: k.object}
		obj.SetAPIVersion(v1alpha1.GroupVersion.String())
		gvr := schema.GroupVersionResource{Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version, Resource: k.resource}
		if _, err := dyn.Resource(gvr).Namespace(namespace).Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %s: %v", k.resource, err)
		}
		installed = append(installed, k.resource)
	}
	return installed
}

// serve runs the page the browser opens: the host shell at /, the built plugin under
// /plugins/kiln/, Headlamp's cluster list at /config, and the API under /clusters/kiln/
// (and /api, /apis) through a reverse proxy holding the administrator's credentials.
func serve(t *testing.T, cfg *rest.Config, pluginDist, shellDist string) string {
	t.Helper()
	target, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, "/clusters/kiln")
			r.Out.URL.RawPath = ""
			r.Out.Host = target.Host
		},
		Transport:     transport,
		FlushInterval: -1, // watches stream
	}
	mux := http.NewServeMux()
	mux.Handle("/clusters/kiln/", proxy)
	mux.Handle("/api/", proxy)
	mux.Handle("/apis/", proxy)
	mux.Handle("/plugins/kiln/", http.StripPrefix("/plugins/kiln/", http.FileServer(http.Dir(pluginDist))))
	mux.HandleFunc("/config", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"clusters": []any{map[string]any{"name": "kiln", "server": cfg.Host}},
		})
	})
	shellFiles := http.FileServer(http.Dir(shellDist))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// The shell routes on the client; every page path gets its index.html.
		if _, err := os.Stat(filepath.Join(shellDist, filepath.Clean(r.URL.Path))); errors.Is(err, os.ErrNotExist) {
			http.ServeFile(w, r, filepath.Join(shellDist, "index.html"))
			return
		}
		shellFiles.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return "http://" + l.Addr().String()
}
