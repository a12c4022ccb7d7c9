// Package node tests the local plane's real node: real pods under containerd and runc, pod
// networking, Services through kube-proxy, DNS through CoreDNS, service-account tokens, logs and
// shared volumes, on one shared plane per test binary. Tests skip when the machine cannot run a
// real node (controlplane.DetectRealNode says why), and fail instead where CI=true as root
// (framework.SkipWithoutRealNode).
package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/test/framework"
)

var (
	plane *controlplane.Plane
	// probeImage is test/node/probe as an image on the plane's local registry.
	probeImage string
	kubectl    string
	// noNode is why this machine cannot run a real node, "" when it can.
	noNode string
)

func TestMain(m *testing.M) {
	if noNode = framework.RealNodeMissing(); noNode != "" {
		if framework.RealNodeRequired() {
			fmt.Fprintln(os.Stderr, "the real-node tests cannot run, and CI=true as root requires them:", noNode)
		} else {
			fmt.Fprintln(os.Stderr, "skipping the real-node tests:", noNode)
		}
		os.Exit(m.Run()) // every test skips itself (fails, where required): plane is nil
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(logr.Discard()) // envtest logs through controller-runtime; the components log to files
	// One plane with a real node and one small GPU pool beside it, as the local Kiln runs.
	return framework.Main(func() int {
		if err := pushProbe(); err != nil {
			fmt.Fprintln(os.Stderr, "probe image:", err)
			return 1
		}
		return m.Run()
	}, "a100=1x8", time.Second, &plane, framework.WithRealNode())
	// framework.Main fails the run when Stop fails, and Stop fails when the node left anything
	// on the machine (controlplane.NodeLeftovers: a process, mount, the bridge, a kubepods
	// cgroup, an iptables chain), checked before the next real node may start.
}

// pushProbe builds the probe program statically and pushes it as an image.
func pushProbe() error {
	tools, err := framework.Tools(context.Background(), "kubectl")
	if err != nil {
		return err
	}
	kubectl = tools["kubectl"]
	dir, err := os.MkdirTemp("", "kiln-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-o", bin, "./test/node/probe")
	cmd.Dir = framework.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the probe: %w\n%s", err, out)
	}
	img, tag, err := controlplane.BinaryImage{Repo: "probe", Binary: bin, User: "65532"}.Build(controlplane.DefaultImageCacheDir())
	if err != nil {
		return err
	}
	probeImage, err = controlplane.PushImage(plane.Registry(), "probe", tag, img)
	return err
}

func needNode(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	if plane == nil {
		framework.SkipWithoutRealNode(t, noNode)
		t.Fatal("the real-node plane did not start") // unreachable when noNode is set
	}
	cs, err := kubernetes.NewForConfig(plane.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// namespace makes a namespace for one test and waits for its default ServiceAccount, which the
// ServiceAccount admission plugin requires of every pod.
func namespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	ctx := context.Background()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "node-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	framework.Eventually(t, time.Minute, func() error {
		_, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	return ns.Name
}

// probePod runs the probe with args under the restricted Pod Security profile.
func probePod(name string, args ...string) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		NodeSelector:  map[string]string{controlplane.PoolLabel: controlplane.RealNodePool},
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name: name, Image: probeImage, Args: args,
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}
}

// waitPhase waits for a pod to reach phase, failing early with its state if it fails instead.
func waitPhase(t *testing.T, cs kubernetes.Interface, ns, name string, phase corev1.PodPhase) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	framework.Eventually(t, 3*time.Minute, func() error {
		var err error
		pod, err = cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.Status.Phase == corev1.PodFailed && phase != corev1.PodFailed {
			t.Fatalf("pod %s failed: %s\n%s", name, podState(pod), logs(t, ns, name))
		}
		if pod.Status.Phase != phase {
			return fmt.Errorf("pod %s is %s, want %s: %s", name, pod.Status.Phase, phase, podState(pod))
		}
		return nil
	})
	return pod
}

func podState(pod *corev1.Pod) string {
	var s []string
	for _, c := range pod.Status.ContainerStatuses {
		switch {
		case c.State.Waiting != nil:
			s = append(s, c.Name+" waiting: "+c.State.Waiting.Reason+" "+c.State.Waiting.Message)
		case c.State.Terminated != nil:
			s = append(s, fmt.Sprintf("%s terminated: %s (exit %d)", c.Name, c.State.Terminated.Reason, c.State.Terminated.ExitCode))
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			s = append(s, string(c.Type)+": "+c.Message)
		}
	}
	return strings.Join(s, "; ")
}

// logs reads a pod's log with kubectl, as a user would: API server → kubelet → containerd.
func logs(t *testing.T, ns, pod string) string {
	t.Helper()
	out, err := exec.Command(kubectl, "--kubeconfig", plane.KubeConfigPath, "-n", ns, "logs", pod).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(kubectl logs %s: %v: %s)", pod, err, out)
	}
	return string(out)
}
