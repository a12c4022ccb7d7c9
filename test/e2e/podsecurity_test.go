package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/podsecurity"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/webhook"
	"kiln.dev/kiln/test/framework"
)

// restrictedNamespace is a test namespace whose pods the API server's PodSecurity
// admission refuses unless they meet the restricted profile.
func restrictedNamespace(t *testing.T) string {
	t.Helper()
	ns := namespace(t)
	cs := clientset(t)
	n, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
	n.Labels["pod-security.kubernetes.io/enforce-version"] = "latest"
	if _, err := cs.CoreV1().Namespaces().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// Every Kiln kind runs in a namespace that enforces the restricted profile: the Job,
// ReplicaSet and StatefulSet controllers create the pods of what Kiln rendered, and the
// API server admits them (a refused pod would leave a FailedCreate Event and no pod).
// Serving and notebook pods come injected from their templates, so they were created
// without a call to Kiln's pod webhook.
func TestEveryKindRunsInARestrictedNamespace(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), restrictedNamespace(t)
	cs := clientset(t)

	ddp := withAnnotations(gpuJob(ns, "ddp", 16), simRunTime, "1h")
	ddp.Spec.Framework = v1alpha1.FrameworkPyTorch
	create(t, c, ddp)
	mpi := withAnnotations(gpuJob(ns, "mpi", 8), simRunTime, "1h")
	mpi.Spec.Framework = v1alpha1.FrameworkMPI
	mpi.Spec.Command = []string{"mpirun", "-np", "8", "python", "train.py"}
	mpi.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 4}
	create(t, c, mpi)
	sw := sweepSpec(ns, "tune")
	sw.Spec.MaxTrials, sw.Spec.Parallelism, sw.Spec.EarlyStopping = 2, 2, nil
	create(t, c, sw)
	nb := &v1alpha1.Notebook{ObjectMeta: metav1.ObjectMeta{Name: "lab", Namespace: ns}}
	create(t, c, nb)
	models := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "models", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	create(t, c, models)
	ms := &v1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Name: "resnet", Namespace: ns},
		Spec: v1alpha1.ModelServerSpec{
			Model:     v1alpha1.ModelSource{URI: "pvc://models/resnet", Format: "pytorch"},
			Runtime:   v1alpha1.ServingRuntime{Preset: "torchserve"},
			Resources: v1alpha1.ServingResources{CPU: ptr.To(resource.MustParse("100m"))},
			Replicas:  v1alpha1.ReplicasSpec{Min: ptr.To[int32](2), Max: ptr.To[int32](2)},
			Canary: &v1alpha1.CanarySpec{
				Model:          &v1alpha1.ModelSource{URI: "pvc://models/resnet-v2", Format: "pytorch"},
				TrafficPercent: 20,
			},
		},
	}
	create(t, c, ms)

	// Who made each pod, by the labels Kiln's renderers put on it.
	want := map[string]int{
		"trainingjob/ddp": 2,
		"trainingjob/mpi": 2,
		"trainingjob/" + render.TrialName(sw.Name, 0): 1,
		"trainingjob/" + render.TrialName(sw.Name, 1): 1,
		"notebook/lab":              1,
		"modelserver/resnet/stable": 1,
		"modelserver/resnet/canary": 1,
	}
	framework.Eventually(t, 2*timeout, func() error {
		events, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
		if err != nil {
			return err
		}
		if len(events.Items) > 0 {
			e := events.Items[0]
			t.Fatalf("%s %s could not create a pod: %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		got := map[string]int{}
		for _, p := range pods.Items {
			got[owner(&p)]++
		}
		var missing []string
		for k, n := range want {
			if got[k] < n {
				missing = append(missing, fmt.Sprintf("%s has %d of %d pods", k, got[k], n))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s", strings.Join(missing, "; "))
		}
		return nil
	})
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		// The API server admitted them; the same check here says which check would
		// have failed had a renderer regressed, and that nothing ran privileged.
		problems, err := podsecurity.Restricted(&p.ObjectMeta, &p.Spec)
		if err != nil {
			t.Fatal(err)
		}
		if len(problems) > 0 {
			t.Errorf("pod %s breaks the restricted profile: %v", p.Name, problems)
		}
		if _, ok := p.Annotations[webhook.AnnotationInjected]; !ok {
			t.Errorf("pod %s (%s) was not injected at render time", p.Name, owner(&p))
		}
	}
}

// owner names what a Kiln pod belongs to: kind/name, and the track for serving.
func owner(p *corev1.Pod) string {
	switch l := p.Labels; {
	case l[v1alpha1.LabelTrainingJob] != "":
		return "trainingjob/" + l[v1alpha1.LabelTrainingJob]
	case l[v1alpha1.LabelNotebook] != "":
		return "notebook/" + l[v1alpha1.LabelNotebook]
	case l[v1alpha1.LabelModelServer] != "":
		return "modelserver/" + l[v1alpha1.LabelModelServer] + "/" + l[v1alpha1.LabelTrack]
	}
	return "unknown/" + p.Name
}
