package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/validation"
	"kiln.dev/kiln/test/framework"
)

func waitForNotebook(t *testing.T, c client.Client, nb *v1alpha1.Notebook, check func(*v1alpha1.Notebook) error) *v1alpha1.Notebook {
	t.Helper()
	got := &v1alpha1.Notebook{}
	framework.Eventually(t, timeout, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(nb), got); err != nil {
			return err
		}
		return check(got)
	})
	return got
}

func notebookIn(want v1alpha1.NotebookState) func(*v1alpha1.Notebook) error {
	return func(nb *v1alpha1.Notebook) error {
		if nb.Status.State != want || nb.Status.ObservedGeneration != nb.Generation {
			return fmt.Errorf("state %q (generation %d observed %d), want %q; conditions: %s",
				nb.Status.State, nb.Generation, nb.Status.ObservedGeneration, want, nbConditions(nb))
		}
		return nil
	}
}

func nbConditions(nb *v1alpha1.Notebook) string {
	var parts []string
	for _, c := range nb.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, "; ")
}

func nbCondition(t *testing.T, nb *v1alpha1.Notebook, typ string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	c := apimeta.FindStatusCondition(nb.Status.Conditions, typ)
	if c == nil || c.Status != status || c.Reason != reason {
		t.Fatalf("condition %s: want %s/%s; conditions: %s", typ, status, reason, nbConditions(nb))
	}
	if c.ObservedGeneration != nb.Generation {
		t.Errorf("condition %s observedGeneration %d, want %d", typ, c.ObservedGeneration, nb.Generation)
	}
	return c
}

// notebookPod is the running pod of the notebook's StatefulSet, once it is ready.
func notebookPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	framework.Eventually(t, timeout, func() error {
		p, err := clientset(t).CoreV1().Pods(ns).Get(context.Background(), name+"-0", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning || !podReady(p) || !p.DeletionTimestamp.IsZero() {
			return fmt.Errorf("pod %s is %s, ready %v", p.Name, p.Status.Phase, podReady(p))
		}
		pod = p
		return nil
	})
	return pod
}

// notebookEvents returns the notes of the Notebook's Events with the given reason.
func notebookEvents(t *testing.T, ns, name, reason string) []string {
	t.Helper()
	list, err := clientset(t).EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Notebook" && e.Regarding.Name == name && e.Reason == reason {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func claimOf(p *corev1.Pod, volume string) string {
	for _, v := range p.Spec.Volumes {
		if v.Name == volume && v.PersistentVolumeClaim != nil {
			return v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

// A notebook with one GPU becomes Ready on a GPU node; idle past its timeout
// (activity supplied through the annotation, as another front end would) it is
// stopped with its workspace intact; started again it mounts the same claim;
// deleted, its children go and the retained workspace stays.
func TestNotebookLifecycleWithIdleCulling(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	nb := &v1alpha1.Notebook{
		ObjectMeta: metav1.ObjectMeta{Name: "explore", Namespace: ns},
		Spec: v1alpha1.NotebookSpec{
			Resources: v1alpha1.NotebookResources{GPUs: 1, Memory: ptr.To(resource.MustParse("8Gi"))},
			Workspace: v1alpha1.WorkspaceSpec{Size: ptr.To(resource.MustParse("5Gi"))},
		},
	}
	create(t, c, nb)
	got := waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookReady))
	nbCondition(t, got, v1alpha1.NotebookConditionReady, metav1.ConditionTrue, v1alpha1.ReasonPodReady)
	if !got.Status.Ready || got.Status.URL != fmt.Sprintf("http://explore.%s.svc/", ns) || got.Status.TokenSecretName != "explore-token" {
		t.Errorf("status ready %v, url %q, token secret %q", got.Status.Ready, got.Status.URL, got.Status.TokenSecretName)
	}

	pod := notebookPod(t, ns, "explore")
	node, err := clientset(t).CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gpus := node.Status.Allocatable[controlplane.GPUResource]; gpus.Value() == 0 {
		t.Errorf("pod runs on %s, which has no GPUs", node.Name)
	}
	if q := pod.Spec.Containers[0].Resources.Limits[controlplane.GPUResource]; q.Value() != 1 {
		t.Errorf("pod's GPU limit %s, want 1", q.String())
	}
	if sc := pod.Spec.Containers[0].SecurityContext; sc == nil || ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.RunAsNonRoot, false) {
		t.Errorf("container security context %+v is not restricted", sc)
	}
	workspace := &corev1.PersistentVolumeClaim{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.WorkspaceClaimName("explore")}, workspace); err != nil {
		t.Fatal(err)
	}
	if claimOf(pod, "kiln-workspace") != workspace.Name || len(workspace.OwnerReferences) != 0 {
		t.Fatalf("pod mounts claim %q; workspace %s owners %v (want unowned: Retain is the default)", claimOf(pod, "kiln-workspace"), workspace.Name, workspace.OwnerReferences)
	}

	// The user was last active now; after a short idle timeout the notebook is culled.
	active := time.Now().Truncate(time.Second)
	patch := client.MergeFrom(got.DeepCopy())
	got.Annotations = map[string]string{v1alpha1.AnnotationLastActivity: active.Format(time.RFC3339)}
	got.Spec.IdleTimeout = &metav1.Duration{Duration: 4 * time.Second}
	if err := c.Patch(ctx, got, patch); err != nil {
		t.Fatal(err)
	}
	culled := waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookCulled))
	cond := nbCondition(t, culled, v1alpha1.NotebookConditionStopped, metav1.ConditionTrue, v1alpha1.ReasonCulled)
	if cond.LastTransitionTime.Time.Before(active.Add(4 * time.Second)) {
		t.Errorf("culled at %s, before the idle timeout ran out (%s)", cond.LastTransitionTime, active.Add(4*time.Second))
	}
	if !culled.Spec.Stopped || culled.Status.Ready || !strings.Contains(cond.Message, "kiln.dev/last-activity annotation") {
		t.Errorf("stopped %v, ready %v, message %q", culled.Spec.Stopped, culled.Status.Ready, cond.Message)
	}
	t.Logf("Stopped: %s", cond.Message)
	framework.Eventually(t, timeout, func() error {
		if len(notebookEvents(t, ns, "explore", v1alpha1.ReasonCulled)) == 0 {
			return fmt.Errorf("no Culled event")
		}
		return nil
	})
	sts := &appsv1.StatefulSet{}
	framework.Eventually(t, timeout, func() error {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "explore"}, sts); err != nil {
			return err
		}
		if ptr.Deref(sts.Spec.Replicas, -1) != 0 || sts.Status.Replicas != 0 {
			return fmt.Errorf("StatefulSet replicas %d, %d running", ptr.Deref(sts.Spec.Replicas, -1), sts.Status.Replicas)
		}
		return nil
	})
	kept := &corev1.PersistentVolumeClaim{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(workspace), kept); err != nil || kept.UID != workspace.UID || !kept.DeletionTimestamp.IsZero() {
		t.Fatalf("workspace after the cull: %v (uid %s, was %s)", err, kept.UID, workspace.UID)
	}

	// Started again, without the timeout: the same claim is mounted.
	patch = client.MergeFrom(culled.DeepCopy())
	culled.Spec.Stopped = false
	culled.Spec.IdleTimeout = nil
	if err := c.Patch(ctx, culled, patch); err != nil {
		t.Fatal(err)
	}
	restarted := waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookReady))
	nbCondition(t, restarted, v1alpha1.NotebookConditionStopped, metav1.ConditionFalse, v1alpha1.ReasonStarted)
	pod = notebookPod(t, ns, "explore")
	if claimOf(pod, "kiln-workspace") != workspace.Name {
		t.Errorf("restarted pod mounts %q, want %s", claimOf(pod, "kiln-workspace"), workspace.Name)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(workspace), kept); err != nil || kept.UID != workspace.UID {
		t.Fatalf("workspace after the start: %v (uid %s, was %s)", err, kept.UID, workspace.UID)
	}

	// Deleted: StatefulSet, Service and token go; the retained workspace stays.
	if err := c.Delete(ctx, restarted); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "explore"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "explore"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.NotebookTokenSecretName("explore")}},
	} {
		waitGone(t, c, o)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(workspace), kept); err != nil || !kept.DeletionTimestamp.IsZero() {
		t.Fatalf("retained workspace: %v, deletion %v; want it kept", err, kept.DeletionTimestamp)
	}
}

// A workspace declared Delete goes with its Notebook.
func TestDeletingANotebookDeletesAWorkspaceDeclaredDelete(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	nb := &v1alpha1.Notebook{
		ObjectMeta: metav1.ObjectMeta{Name: "scratch", Namespace: ns},
		Spec:       v1alpha1.NotebookSpec{Workspace: v1alpha1.WorkspaceSpec{RetentionPolicy: v1alpha1.RetentionDelete}},
	}
	create(t, c, nb)
	waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookReady))
	notebookPod(t, ns, "scratch")
	workspace := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.WorkspaceClaimName("scratch")}}
	if err := c.Get(ctx, client.ObjectKeyFromObject(workspace), workspace); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(workspace, nb) {
		t.Fatalf("workspace owners %v, want the Notebook", workspace.OwnerReferences)
	}
	if err := c.Delete(ctx, nb); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scratch"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scratch"}},
		workspace,
	} {
		waitGone(t, c, o)
	}
}

// Bad input is refused at admission with the field path (CEL), or, for what
// only the cluster can tell, explained in a condition and an Event.
func TestNotebookBadInput(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)

	t.Run("negative idle timeout", func(t *testing.T) {
		nb := &v1alpha1.Notebook{ObjectMeta: metav1.ObjectMeta{Name: "neg", Namespace: ns},
			Spec: v1alpha1.NotebookSpec{IdleTimeout: &metav1.Duration{Duration: -time.Minute}}}
		err := c.Create(ctx, nb)
		wantInvalid(t, err, "spec.idleTimeout")
		if !strings.Contains(err.Error(), "idleTimeout must not be negative") {
			t.Errorf("error %v does not say why", err)
		}
	})

	t.Run("unknown volume scheme", func(t *testing.T) {
		nb := &v1alpha1.Notebook{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: ns},
			Spec: v1alpha1.NotebookSpec{Volumes: []v1alpha1.NotebookVolume{{Name: "data", URI: "s3://bucket/x"}}}}
		wantInvalid(t, c.Create(ctx, nb), "spec.volumes[0].uri")
	})

	t.Run("volumes that do not exist", func(t *testing.T) {
		nb := &v1alpha1.Notebook{ObjectMeta: metav1.ObjectMeta{Name: "waits", Namespace: ns},
			Spec: v1alpha1.NotebookSpec{Volumes: []v1alpha1.NotebookVolume{
				{Name: "data", URI: "pvc://imagenet/train"},
				{Name: "model", URI: "trainingjob://resnet"},
			}}}
		create(t, c, nb)
		got := waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookPending))
		cond := nbCondition(t, got, v1alpha1.NotebookConditionReady, metav1.ConditionFalse, v1alpha1.ReasonVolumeNotFound)
		for _, want := range []string{"spec.volumes[0] (pvc://imagenet/train): no PersistentVolumeClaim imagenet", "spec.volumes[1] (trainingjob://resnet): no TrainingJob resnet"} {
			if !strings.Contains(cond.Message, want) {
				t.Errorf("message %q does not say %q", cond.Message, want)
			}
		}
		framework.Eventually(t, timeout, func() error {
			if len(notebookEvents(t, ns, "waits", v1alpha1.ReasonVolumeNotFound)) == 0 {
				return fmt.Errorf("no VolumeNotFound event")
			}
			return nil
		})
		sts := &appsv1.StatefulSet{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "waits"}, sts); err == nil {
			t.Error("a StatefulSet was created for a notebook whose volumes are missing")
		}

		// Once the claims exist (the TrainingJob with its output, and the dataset), it starts.
		tj := withAnnotations(trainingJob(ns, "resnet"), simRunTime, "1h")
		tj.Spec.Output = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}
		create(t, c, tj)
		create(t, c, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "imagenet", Namespace: ns},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		})
		waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookReady))
		pod := notebookPod(t, ns, "waits")
		if claimOf(pod, "kiln-volume-data") != "imagenet" || claimOf(pod, "kiln-volume-model") != render.PVCName("resnet", "output") {
			t.Errorf("pod mounts %q and %q", claimOf(pod, "kiln-volume-data"), claimOf(pod, "kiln-volume-model"))
		}
		for _, m := range pod.Spec.Containers[0].VolumeMounts {
			if strings.HasPrefix(m.Name, "kiln-volume-") && !m.ReadOnly {
				t.Errorf("volume %s is mounted writable", m.Name)
			}
		}
	})

	t.Run("GPUs no node has", func(t *testing.T) {
		// The plane's GPU nodes count nvidia.com/gpu; no node has this one.
		nb := &v1alpha1.Notebook{ObjectMeta: metav1.ObjectMeta{Name: "amd", Namespace: ns},
			Spec: v1alpha1.NotebookSpec{Resources: v1alpha1.NotebookResources{GPUs: 1, GPUResource: "amd.com/gpu"}}}
		nodes, err := clientset(t).CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		warnings := validation.NotebookWarnings(nb, nodes.Items)
		if len(warnings) == 0 || !strings.Contains(warnings[0], "no node in the cluster has amd.com/gpu") {
			t.Errorf("admission warnings %q", warnings)
		}
		create(t, c, nb)
		got := waitForNotebook(t, c, nb, func(nb *v1alpha1.Notebook) error {
			if c := apimeta.FindStatusCondition(nb.Status.Conditions, v1alpha1.NotebookConditionGPUsAvailable); c == nil {
				return fmt.Errorf("no GPUsAvailable condition yet: %s", nbConditions(nb))
			}
			return nil
		})
		cond := nbCondition(t, got, v1alpha1.NotebookConditionGPUsAvailable, metav1.ConditionFalse, v1alpha1.ReasonNoGPUNodes)
		t.Logf("GPUsAvailable: %s", cond.Message)
		if got.Status.State != v1alpha1.NotebookStarting {
			t.Errorf("state %s, want Starting (the pod waits for a node)", got.Status.State)
		}
		framework.Eventually(t, timeout, func() error {
			if len(notebookEvents(t, ns, "amd", v1alpha1.ReasonNoGPUNodes)) == 0 {
				return fmt.Errorf("no NoGPUNodes event")
			}
			return nil
		})
	})
}

// The notebook verbs as a user runs them: create, list, token, stop, start,
// status and delete, against the plane.
func TestCLINotebookCreateStopStartDelete(t *testing.T) {
	ctx := context.Background()
	k := buildKiln(t)
	c, ns := kilnClient(t), namespace(t)
	kubeconfig := planeKubeconfig(t)
	kiln := func(args ...string) string {
		t.Helper()
		out, err := k.run(t, append([]string{"--kubeconfig=" + kubeconfig, "-n", ns}, args...)...)
		if err != nil {
			t.Fatalf("kubectl kiln %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	nb := &v1alpha1.Notebook{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cli-nb"}}

	out := kiln("notebook", "create", "cli-nb", "--gpus", "1", "--idle-timeout", "1h", "--workspace-size", "2Gi")
	for _, want := range []string{"notebook.kiln.dev/cli-nb created", "kubectl port-forward -n " + ns + " svc/cli-nb 8888:80", "kubectl kiln notebook token"} {
		if !strings.Contains(out, want) {
			t.Errorf("create output lacks %q:\n%s", want, out)
		}
	}
	waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookReady))
	if out := kiln("notebook", "list"); !strings.Contains(out, "cli-nb") || !strings.Contains(out, "Ready") || !strings.Contains(out, "http://cli-nb."+ns+".svc/") {
		t.Errorf("list:\n%s", out)
	}
	if out := kiln("get", "notebooks", "-o", "name"); out != "notebook.kiln.dev/cli-nb\n" {
		t.Errorf("get notebooks -o name: %q", out)
	}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cli-nb-token"}, secret); err != nil {
		t.Fatal(err)
	}
	if out := kiln("notebook", "token", "cli-nb"); out != string(secret.Data["token"])+"\n" || len(out) < 40 {
		t.Errorf("token %q, want the Secret's", out)
	}

	if out := kiln("notebook", "stop", "cli-nb"); out != "notebook.kiln.dev/cli-nb stopped\n" {
		t.Errorf("stop: %q", out)
	}
	waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookStopped))
	if out := kiln("notebook", "start", "cli-nb"); out != "notebook.kiln.dev/cli-nb started\n" {
		t.Errorf("start: %q", out)
	}
	waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookReady))
	notebookPod(t, ns, "cli-nb")

	out = kiln("status", "notebook", "cli-nb")
	for _, want := range []string{"Notebook " + ns + "/cli-nb: Ready", "StatefulSet cli-nb: 1/1 ready", "Pod cli-nb-0: Running", "PersistentVolumeClaim cli-nb-workspace", "Conditions:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if out := kiln("delete", "notebook", "cli-nb"); out != "notebook.kiln.dev/cli-nb deleted\n" {
		t.Errorf("delete: %q", out)
	}
	waitGone(t, c, nb)
}

// notebooksIn reads the Notebooks of an example file.
func notebooksIn(t *testing.T, file string) []*v1alpha1.Notebook {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []*v1alpha1.Notebook
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var u unstructured.Unstructured
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if u.GroupVersionKind() != v1alpha1.GroupVersion.WithKind("Notebook") {
			continue
		}
		nb := &v1alpha1.Notebook{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, nb); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, nb)
	}
}

// The point of culling: two idle 8-GPU notebooks hold both 8-GPU nodes, so a
// 16-GPU TrainingJob waits; once they are culled, their GPUs go back and the
// job runs.
func TestCulledNotebooksGiveTheirGPUsBackToTraining(t *testing.T) {
	c, ns := kilnClient(t), namespace(t)
	var nbs []*v1alpha1.Notebook
	for _, name := range []string{"hog-a", "hog-b"} {
		nb := &v1alpha1.Notebook{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       v1alpha1.NotebookSpec{Resources: v1alpha1.NotebookResources{GPUs: 8}},
		}
		create(t, c, nb)
		nbs = append(nbs, nb)
	}
	for _, nb := range nbs {
		waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookReady))
	}

	tj := gpuJob(ns, "wants-16", 16)
	create(t, c, tj)
	waitFor(t, c, tj, func(tj *v1alpha1.TrainingJob) error {
		if c := apimeta.FindStatusCondition(tj.Status.Conditions, v1alpha1.TrainingJobAdmitted); c == nil || c.Reason != v1alpha1.ReasonWaitingForCapacity {
			return fmt.Errorf("not waiting for capacity: %s", conditions(tj))
		}
		return nil
	})

	// Nobody used them for an hour; their idle timeout is short (idle time counts
	// from their start at the earliest).
	idle := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for _, nb := range nbs {
		got := &v1alpha1.Notebook{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(nb), got); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(got.DeepCopy())
		got.Annotations = map[string]string{v1alpha1.AnnotationLastActivity: idle}
		got.Spec.IdleTimeout = &metav1.Duration{Duration: 2 * time.Second}
		if err := c.Patch(context.Background(), got, patch); err != nil {
			t.Fatal(err)
		}
	}
	for _, nb := range nbs {
		waitForNotebook(t, c, nb, notebookIn(v1alpha1.NotebookCulled))
	}
	waitFor(t, c, tj, inState(v1alpha1.StateSucceeded))
}
