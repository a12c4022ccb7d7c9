package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/test/framework"
)

// A pod really runs: its process prints, exits 0, and kubectl logs reads the output from the
// kubelet.
func TestPodRunsToSucceededAndLogs(t *testing.T) {
	cs := needNode(t)
	ns := namespace(t, cs)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hello"}, Spec: probePod("hello", "echo", "hello", "from", "a", "real", "pod")}
	if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, cs, ns, "hello", corev1.PodSucceeded)
	if got.Spec.NodeName != controlplane.RealNodeName || got.Status.PodIP == "" {
		t.Fatalf("pod ran on %q with IP %q, want node %s and a pod IP", got.Spec.NodeName, got.Status.PodIP, controlplane.RealNodeName)
	}
	if l := logs(t, ns, "hello"); !strings.Contains(l, "[hello from a real pod]") {
		t.Fatalf("kubectl logs shows %q, want the pod's own output", l)
	}
}

// Rank 1 of a 2-pod Indexed Job reaches rank 0 at <job>-0.<service> through the headless
// Service and CoreDNS, as torchrun's rendezvous does.
func TestIndexedJobReachesRankZeroByDNS(t *testing.T) {
	cs := needNode(t)
	ns := namespace(t, cs)
	ctx := context.Background()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "workers"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true,
			Selector: map[string]string{"batch.kubernetes.io/job-name": "ranks"},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	spec := probePod("rank", "indexed", fmt.Sprintf("http://ranks-0.workers.%s.svc:8080/", ns))
	spec.Subdomain = "workers"
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "ranks"},
		Spec: batchv1.JobSpec{
			CompletionMode: ptr.To(batchv1.IndexedCompletion),
			Completions:    ptr.To[int32](2), Parallelism: ptr.To[int32](2), BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: spec},
		},
	}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 3*time.Minute, func() error {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, "ranks", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if j.Status.Failed > 0 {
			t.Fatalf("a rank failed:\n%s", jobLogs(t, ns))
		}
		if j.Status.Succeeded != 2 {
			return fmt.Errorf("%d of 2 ranks succeeded", j.Status.Succeeded)
		}
		return nil
	})
	if l := jobLogs(t, ns); !strings.Contains(l, "rank 1 got: hello from ranks-0") {
		t.Fatalf("rank 1 did not reach rank 0 by name:\n%s", l)
	}
}

func jobLogs(t *testing.T, ns string) string {
	pods, err := needNode(t).CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "%s (%s): %s\n", p.Name, p.Status.Phase, logs(t, ns, p.Name))
	}
	return b.String()
}

// A ClusterIP Service routes, through kube-proxy's rules, from a pod to a server pod, by the
// Service's DNS name.
func TestClusterIPServiceFromAnotherPod(t *testing.T) {
	cs := needNode(t)
	ns := namespace(t, cs)
	ctx := context.Background()
	server := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "server", Labels: map[string]string{"app": "server"}},
		Spec:       probePod("server", "serve", ":8080"),
	}
	server.Spec.RestartPolicy = corev1.RestartPolicyAlways
	server.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, server, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "server"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	created, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Spec.ClusterIP == "" || created.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Fatalf("service has no cluster IP: %q", created.Spec.ClusterIP)
	}
	client := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "client"}, Spec: probePod("client", "get", "http://web/")}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, client, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, cs, ns, "client", corev1.PodSucceeded)
	if l := logs(t, ns, "client"); !strings.Contains(l, "hello from server") {
		t.Fatalf("client got %q through the Service", l)
	}
}

// A pod calls the API server in-cluster with its service-account token and the mounted CA.
func TestPodCallsAPIServerWithItsToken(t *testing.T) {
	cs := needNode(t)
	ns := namespace(t, cs)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "whoami"}, Spec: probePod("whoami", "whoami")}
	if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, cs, ns, "whoami", corev1.PodSucceeded)
	want := "authenticated as system:serviceaccount:" + ns + ":default"
	if l := logs(t, ns, "whoami"); !strings.Contains(l, want) {
		t.Fatalf("pod says %q, want %q", l, want)
	}
}

// Two running pods mount one kiln-local claim read-write and each sees what the other wrote.
func TestSharedVolumeReadWriteByTwoPods(t *testing.T) {
	cs := needNode(t)
	ns := namespace(t, cs)
	ctx := context.Background()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "shared"},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(controlplane.StorageClassName),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]string{{"a", "b"}, {"b", "a"}} {
		spec := probePod("share", "share", "/data", p[0], p[1])
		spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "shared"},
		}}}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "writer-" + p[0]}, Spec: spec}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range [][2]string{{"a", "b"}, {"b", "a"}} {
		waitPhase(t, cs, ns, "writer-"+p[0], corev1.PodSucceeded)
		want := fmt.Sprintf("wrote %s, read %s", p[0], p[1])
		if l := logs(t, ns, "writer-"+p[0]); !strings.Contains(l, want) {
			t.Fatalf("writer-%s says %q, want %q", p[0], l, want)
		}
	}
}
