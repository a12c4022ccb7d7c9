package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/test/framework"
)

// The bundled example workflow runs for real, as `make dev` runs it: `kubectl kiln dev
// examples` on a plane with a real node builds the images (Debian's python3-sklearn and
// python3-torch, cached), trains the digits classifier with the default setting, tunes it with
// a Sweep, serves the best trial with a ModelServer, asks it for a prediction from another pod
// over the Service's DNS name, and trains a small network with DDP on two pods. Then each
// claim of the workflow is checked on the cluster itself.
func TestExampleWorkflow(t *testing.T) {
	cs := needNode(t)
	startKilnManager(t, manager.Options{})
	ns := namespace(t, cs)
	kiln := buildKubectlKiln(t)

	logFile := filepath.Join(plane.Dir, "dev-examples.log")
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(kiln, "dev", "examples", "--kubeconfig", plane.KubeConfigPath, "--registry", plane.Registry(),
		"--namespace", ns, "--dir", filepath.Join(framework.RepoRoot(), "examples"), "--timeout", "10m")
	// Progress goes to the test's own output as it happens: cold image builds take minutes.
	cmd.Stdout = io.MultiWriter(&out, f, os.Stderr)
	cmd.Stderr = io.MultiWriter(&out, f, os.Stderr)
	start := time.Now()
	err = cmd.Run()
	f.Close()
	if err != nil {
		t.Fatalf("kubectl kiln dev examples: %v (after %s; output in %s)", err, time.Since(start).Round(time.Second), logFile)
	}
	t.Logf("kubectl kiln dev examples took %s", time.Since(start).Round(time.Second))
	c := kilnClient(t)
	ctx := context.Background()

	var defaultAccuracy float64
	t.Run("the sklearn TrainingJob succeeds with the model file on its output claim", func(t *testing.T) {
		tj := &v1alpha1.TrainingJob{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "digits"}, tj); err != nil {
			t.Fatal(err)
		}
		if tj.Status.State != v1alpha1.StateSucceeded {
			t.Fatalf("TrainingJob digits is %s, want Succeeded", tj.Status.State)
		}
		logs := kubectlKiln(t, kiln, ns, "logs", "digits")
		m := regexp.MustCompile(`\[rank 0\] kiln-metric step=1 accuracy=([0-9.]+)`).FindStringSubmatch(logs)
		if m == nil {
			t.Fatalf("kubectl kiln logs digits has no accuracy line:\n%s", logs)
		}
		defaultAccuracy, _ = strconv.ParseFloat(m[1], 64)
		// Another pod opens the claim and loads the model with scikit-learn: the file is a
		// trained classifier, not just a file.
		image := imageIn(t, tj.Spec.Image)
		got := runPod(t, ns, "read-model", image, render.PVCName("digits", "output"),
			"python3", "-c", "import pickle; m = pickle.load(open('/model/model.pkl', 'rb')); print('model', type(m).__name__, m.n_features_in_, list(m.classes_))")
		if !strings.Contains(got, "model SVC 64 [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]") {
			t.Fatalf("the output claim holds no trained SVC: %s", got)
		}
	})

	t.Run("the Sweep's best trial beats the default setting", func(t *testing.T) {
		sw := &v1alpha1.Sweep{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "digits-tuning"}, sw); err != nil {
			t.Fatal(err)
		}
		if sw.Status.State != v1alpha1.SweepSucceeded || sw.Status.BestTrial == nil || sw.Status.Succeeded < 2 {
			t.Fatalf("sweep: state %s, %d trials succeeded, best %+v", sw.Status.State, sw.Status.Succeeded, sw.Status.BestTrial)
		}
		best, err := strconv.ParseFloat(sw.Status.BestTrial.Value, 64)
		if err != nil {
			t.Fatal(err)
		}
		if defaultAccuracy == 0 || best <= defaultAccuracy {
			t.Fatalf("best trial %s accuracy %g does not beat the default's %g", sw.Status.BestTrial.Name, best, defaultAccuracy)
		}
		t.Logf("best trial %s: accuracy %g %v; default %g", sw.Status.BestTrial.Name, best, sw.Status.BestTrial.Parameters, defaultAccuracy)
	})

	t.Run("the ModelServer answers a prediction over its Service DNS name from another pod", func(t *testing.T) {
		ms := &v1alpha1.ModelServer{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "digits"}, ms); err != nil {
			t.Fatal(err)
		}
		sw := &v1alpha1.Sweep{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "digits-tuning"}, sw); err != nil {
			t.Fatal(err)
		}
		if want := "trainingjob://" + sw.Status.BestTrial.Name; ms.Spec.Model.URI != want {
			t.Errorf("ModelServer serves %s, want the best trial %s", ms.Spec.Model.URI, want)
		}
		// The workflow's own request, then one more from a pod of this test, for an image of
		// another class.
		if !regexp.MustCompile(`prediction: class [0-9] for an image of a [0-9]`).MatchString(out.String()) {
			t.Errorf("the workflow printed no prediction:\n%s", out.String())
		}
		got := runPod(t, ns, "ask-model", imageIn(t, ms.Spec.Runtime.Image), "",
			"python3", "/app/predict.py", fmt.Sprintf("http://digits.%s.svc", ns), "7")
		m := regexp.MustCompile(`prediction: class ([0-9]) for an image of a ([0-9])`).FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("no prediction from http://digits.%s.svc: %s", ns, got)
		}
		if m[1] != m[2] {
			t.Errorf("the best model (accuracy %s) called a %s a %s", sw.Status.BestTrial.Value, m[2], m[1])
		}
	})

	t.Run("the 2-pod DDP job completes with both ranks logging the same final loss", func(t *testing.T) {
		tj := &v1alpha1.TrainingJob{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ddp"}, tj); err != nil {
			t.Fatal(err)
		}
		if tj.Status.State != v1alpha1.StateSucceeded || tj.Status.Shape == nil || tj.Status.Shape.Nodes != 2 {
			t.Fatalf("TrainingJob ddp is %s with shape %+v, want Succeeded on 2 nodes", tj.Status.State, tj.Status.Shape)
		}
		logs := kubectlKiln(t, kiln, ns, "logs", "ddp")
		finals := regexp.MustCompile(`(?m)^\[rank (\d)\] .*final loss ([0-9.]+)`).FindAllStringSubmatch(logs, -1)
		if len(finals) != 2 || finals[0][1] == finals[1][1] || finals[0][2] != finals[1][2] {
			t.Fatalf("want one final loss from rank 0 and one from rank 1, equal; got %v in:\n%s", finals, logs)
		}
	})

	t.Run("kubectl kiln logs shows real output with rank prefixes", func(t *testing.T) {
		logs := kubectlKiln(t, kiln, ns, "logs", "ddp")
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^\[rank 0\] .*rank 0 of 2: rendezvous at ddp-`),
			regexp.MustCompile(`(?m)^\[rank 1\] .*rank 1 of 2: rendezvous at ddp-`),
			regexp.MustCompile(`(?m)^\[rank 1\] .*epoch 20 loss [0-9.]+`),
		} {
			if !want.MatchString(logs) {
				t.Errorf("kubectl kiln logs ddp has no line matching %s:\n%s", want, logs)
			}
		}
		if one := kubectlKiln(t, kiln, ns, "logs", "ddp", "--rank", "1"); strings.Contains(one, "[rank 0]") || !strings.Contains(one, "[rank 1]") {
			t.Errorf("kubectl kiln logs ddp --rank 1 shows other ranks:\n%s", one)
		}
	})
}

// startKilnManager runs Kiln's manager in-process on the plane for one test, with its own
// ServiceAccount's credentials bound to config/rbac, metrics read from the trials' logs; o adds
// to those options.
func startKilnManager(t *testing.T, o manager.Options) {
	t.Helper()
	log, err := os.Create(filepath.Join(plane.Dir, "kiln-manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(log)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cfg, err := framework.ManagerConfig(ctx, plane.Config)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	o.MetricsAddr, o.ProbeAddr, o.SkipNameValidation = "0", "0", true
	o.Sweep = manager.SweepOptions{MetricsAddr: "0", LogInterval: 2 * time.Second}
	mgr, err := manager.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("kiln-manager: %v", err)
		}
		log.Close()
	})
}

func buildKubectlKiln(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kubectl-kiln")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kubectl-kiln")
	cmd.Dir = framework.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-kiln: %v\n%s", err, out)
	}
	return bin
}

func kubectlKiln(t *testing.T, bin, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"--kubeconfig", plane.KubeConfigPath, "-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kiln %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func kilnClient(t *testing.T) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(plane.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// imageIn checks that a workload ran the example's image pinned by digest on the local registry.
func imageIn(t *testing.T, ref string) string {
	t.Helper()
	if !strings.HasPrefix(ref, "kiln.local/kiln/") || !strings.Contains(ref, "@sha256:") {
		t.Fatalf("image %q is not an example image pinned by digest on kiln.local", ref)
	}
	return ref
}

// runPod runs a command to completion in a restricted pod on the real node, with claim (if
// any) mounted read-only at /model, and returns its log.
func runPod(t *testing.T, ns, name, image, claim string, command ...string) string {
	t.Helper()
	kcs := needNode(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			NodeSelector:                 map[string]string{controlplane.PoolLabel: controlplane.RealNodePool},
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: name, Image: image, Command: command,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	if claim != "" {
		pod.Spec.Volumes = []corev1.Volume{{Name: "model", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: true}}}}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "model", MountPath: "/model", ReadOnly: true}}
	}
	if _, err := kcs.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, kcs, ns, name, corev1.PodSucceeded)
	return logs(t, ns, name)
}
