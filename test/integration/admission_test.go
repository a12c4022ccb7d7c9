package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controller/admission"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/placement"
	"kiln.dev/kiln/internal/render"
)

// env is one test's view of the API server: a direct client (no cache, so
// every pass reads what is stored) and a namespace.
type env struct {
	t  *testing.T
	c  client.Client
	cs *kubernetes.Clientset
	ns string
}

func newEnv(t *testing.T) *env {
	scheme, err := manager.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(plane.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(plane.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "admission-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	// Passes see every namespace, and nothing here collects garbage: a test's
	// gangs go with it, or they would queue ahead of the next test's.
	t.Cleanup(func() {
		_ = c.DeleteAllOf(context.Background(), &batchv1.Job{}, client.InNamespace(ns.Name))
	})
	return &env{t: t, c: c, cs: cs, ns: ns.Name}
}

func (e *env) addNode(name string, gpus int64) {
	e.t.Helper()
	capacity := corev1.ResourceList{
		"nvidia.com/gpu":      *resource.NewQuantity(gpus, resource.DecimalSI),
		corev1.ResourceCPU:    resource.MustParse("96"),
		corev1.ResourceMemory: resource.MustParse("1Ti"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status:     corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	if err := e.c.Create(context.Background(), n); err != nil {
		e.t.Fatal(err)
	}
	// The API server taints new nodes not-ready; with no kubelet and no node
	// controller here, the test says they are ready by lifting it.
	n.Spec.Taints = nil
	if err := e.c.Update(context.Background(), n); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = e.c.Delete(context.Background(), n) })
}

// gang creates a TrainingJob and its first attempt's Job exactly as the
// TrainingJob controller does: rendered and suspended.
func (e *env) gang(name string, pods, gpusEach int32) *batchv1.Job {
	e.t.Helper()
	_, job := e.render(name, pods, gpusEach)
	if err := e.c.Create(context.Background(), job); err != nil {
		e.t.Fatal(err)
	}
	return job
}

// render creates a TrainingJob and renders its first attempt's Job, suspended,
// without creating it.
func (e *env) render(name string, pods, gpusEach int32) (*v1alpha1.TrainingJob, *batchv1.Job) {
	e.t.Helper()
	ctx := context.Background()
	tj := &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: v1alpha1.TrainingJobSpec{
			Image:     "python:3.12-slim",
			Resources: v1alpha1.TrainingResources{GPUs: pods * gpusEach},
		},
	}
	if err := e.c.Create(ctx, tj); err != nil {
		e.t.Fatal(err)
	}
	shape := placement.Shape{Nodes: pods, ProcessesPerNode: gpusEach, GPUsPerNode: gpusEach}
	objs, err := render.TrainingJob(tj, shape, render.Options{OwnerReferences: true})
	if err != nil {
		e.t.Fatal(err)
	}
	objs.Job.Spec.Suspend = ptr.To(true)
	return tj, objs.Job
}

// pass runs one admission pass as a freshly started manager would: a new
// Admitter that knows nothing but what the API server holds.
func (e *env) pass() *events.FakeRecorder {
	e.t.Helper()
	a, pass := e.admitter()
	pass()
	return a.Recorder.(*events.FakeRecorder)
}

// admitter is an Admitter that, as a running manager's, remembers its earlier
// passes and admissions at creation, and a function that runs a pass of it.
func (e *env) admitter() (*admission.Admitter, func()) {
	a := &admission.Admitter{Client: e.c, APIReader: e.c, Recorder: events.NewFakeRecorder(10)}
	return a, func() {
		e.t.Helper()
		if _, err := a.Reconcile(context.Background(), ctrl.Request{}); err != nil {
			e.t.Fatalf("admission pass: %v", err)
		}
	}
}

func (e *env) job(name string) *batchv1.Job {
	e.t.Helper()
	j := &batchv1.Job{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, j); err != nil {
		e.t.Fatal(err)
	}
	return j
}

// wantReleased checks that the Job runs on nodes, its pods bound for exactly
// those, and returns it.
func (e *env) wantReleased(name string, nodes ...string) *batchv1.Job {
	e.t.Helper()
	j := e.job(name)
	got := placement.DecodePlacement(j.Annotations[v1alpha1.AnnotationPlacement])
	if ptr.Deref(j.Spec.Suspend, false) || !cmp.Equal(got, nodes) {
		e.t.Fatalf("Job %s: suspend %v, placement %v (annotations %v); want released onto %v", name, ptr.Deref(j.Spec.Suspend, false), got, j.Annotations, nodes)
	}
	var allowed []string
	for _, term := range j.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, f := range term.MatchFields {
			allowed = append(allowed, f.Values...)
		}
	}
	if !cmp.Equal(allowed, nodes) {
		e.t.Fatalf("Job %s: pods may run on %v; want exactly %v", name, allowed, nodes)
	}
	return j
}

// wantHeld checks that the Job is still suspended, with no placement, and
// that Kiln's latest decision about it is state, with a message containing msg.
func (e *env) wantHeld(name string, state placement.State, msg string) {
	e.t.Helper()
	j := e.job(name)
	a := j.Annotations
	if !ptr.Deref(j.Spec.Suspend, false) || a[v1alpha1.AnnotationPlacement] != "" ||
		a[v1alpha1.AnnotationAdmission] != string(state) || !strings.Contains(a[v1alpha1.AnnotationAdmissionMessage], msg) {
		e.t.Fatalf("Job %s: suspend %v, annotations %v; want suspended, %s: %q", name, j.Spec.Suspend, a, state, msg)
	}
}

// podOf creates index i's pod as the Job controller would: from the template,
// gated, owned by the Job.
func (e *env) podOf(job *batchv1.Job, i int) *corev1.Pod {
	e.t.Helper()
	tmpl := job.Spec.Template.DeepCopy()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            fmt.Sprintf("%s-%d", job.Name, i),
			Namespace:       e.ns,
			Labels:          tmpl.Labels,
			Annotations:     map[string]string{batchv1.JobCompletionIndexAnnotation: fmt.Sprint(i)},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))},
		},
		Spec: tmpl.Spec,
	}
	p.Labels[batchv1.JobNameLabel] = job.Name
	p.Labels[batchv1.ControllerUidLabel] = string(job.UID)
	if err := e.c.Create(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// run binds the pod to its node and marks it running, as the scheduler and
// kubelet would.
func (e *env) run(p *corev1.Pod, node string) {
	e.t.Helper()
	ctx := context.Background()
	b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}
	if err := e.cs.CoreV1().Pods(p.Namespace).Bind(ctx, b, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("binding %s to %s: %v", p.Name, node, err)
	}
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		e.t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	if err := e.c.Status().Update(ctx, p); err != nil {
		e.t.Fatal(err)
	}
}

// Every intermediate state of admission is held still and a manager started
// afresh looks at it: no gang is booked twice, none is lost, pods are pinned
// from what the Job records, and freed capacity is reused.
func TestAdmissionStateLivesInTheCluster(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addNode("n-0", 8)
	e.addNode("n-1", 8)
	e.gang("a", 2, 8)
	e.gang("b", 2, 8)

	// a fits, b does not; neither holds a pod yet.
	e.pass()
	a := e.wantReleased("a-a0", "n-0", "n-1")
	e.wantHeld("b-a0", placement.Waiting, "needs 2 nodes with 8 free nvidia.com/gpu; largest free block is 0")

	// The manager restarts after releasing a, before any of its pods exists:
	// a keeps its nodes, unwritten, and b is not given them.
	e.pass()
	if j := e.wantReleased("a-a0", "n-0", "n-1"); j.ResourceVersion != a.ResourceVersion {
		t.Errorf("a restarted pass rewrote the held Job a-a0")
	}
	e.wantHeld("b-a0", placement.Waiting, "largest free block is 0")

	// a's pods appear, bound for the placement's nodes by the Job's template.
	pods := []*corev1.Pod{e.podOf(a, 0), e.podOf(a, 1)}
	e.run(pods[0], "n-0")

	// Half of a runs: it still counts once, through its hold.
	e.pass()
	e.wantReleased("a-a0", "n-0", "n-1")
	e.wantHeld("b-a0", placement.Waiting, "largest free block is 0")

	// a's Job is deleted; its running pod holds its node until it is gone too.
	if err := e.c.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	e.pass()
	e.wantHeld("b-a0", placement.Waiting, "needs 2 nodes with 8 free nvidia.com/gpu")
	for _, p := range pods {
		if err := e.c.Delete(ctx, p, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
	}
	e.pass()
	e.wantReleased("b-a0", "n-0", "n-1")

	// A node of b's placement goes: b goes back in line, and with 8 GPUs left
	// for its 16 it is refused until the node returns.
	if err := e.c.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n-1"}}); err != nil {
		t.Fatal(err)
	}
	rec := e.pass()
	if j := e.job("b-a0"); !ptr.Deref(j.Spec.Suspend, false) || j.Annotations[v1alpha1.AnnotationPlacement] != "" {
		t.Fatalf("b-a0 after losing a node: suspend %v, annotations %v; want suspended without placement", j.Spec.Suspend, j.Annotations)
	}
	if ev := <-rec.Events; !strings.Contains(ev, "PlacementLost") || !strings.Contains(ev, "node n-1 of its placement is gone") {
		t.Errorf("event %q does not say which node was lost", ev)
	}
	e.pass()
	e.wantHeld("b-a0", placement.Refused, "needs 16 nvidia.com/gpu in all but the nodes it may run on have 8")
	e.addNode("n-1", 8)
	e.pass()
	b := e.wantReleased("b-a0", "n-0", "n-1")

	// Once a worker runs, losing a node is a failure, not a return to the
	// queue: b stays released, marked with the lost node, for the
	// TrainingJob controller's gang restart.
	e.run(e.podOf(b, 0), "n-0")
	if err := e.c.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n-1"}}); err != nil {
		t.Fatal(err)
	}
	rec = e.pass()
	if j := e.job("b-a0"); ptr.Deref(j.Spec.Suspend, false) || j.Annotations[v1alpha1.AnnotationLostNode] != "a worker lost its node n-1" {
		t.Fatalf("running b-a0 after losing a node: suspend %v, annotations %v; want running, marked lost", j.Spec.Suspend, j.Annotations)
	}
	if ev := <-rec.Events; !strings.Contains(ev, "NodeLost") || !strings.Contains(ev, "n-1") {
		t.Errorf("event %q does not say which node was lost", ev)
	}
}

// A Job admitted as the TrainingJob controller creates it is held like one a
// pass released, from the moment it is admitted: no later gang is given its
// node, whether a pass runs before the Job is stored, after, or in a manager
// started afresh.
func TestAdmittedAtCreationIsHeld(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addNode("created-0", 8)
	e.addNode("created-1", 8)
	a, pass := e.admitter()

	pass() // draws the picture
	tj, job := e.render("x", 1, 8)
	done := a.PlaceNew(job, tj)
	if ptr.Deref(job.Spec.Suspend, true) {
		t.Fatal("a Job that fits an idle cluster was not admitted at creation")
	}
	// y needs both nodes: it waits, even for a pass that runs before x is stored.
	e.gang("y", 2, 8)
	pass()
	e.wantHeld("y-a0", placement.Waiting, "only 1 has that")
	if err := e.c.Create(ctx, job); err != nil {
		t.Fatal(err)
	}
	done(true)
	x := e.wantReleased("x-a0", "created-0")
	if x.Generation != 1 {
		t.Errorf("x-a0 has generation %d; want 1, created released with no write after", x.Generation)
	}
	pass()
	e.wantHeld("y-a0", placement.Waiting, "only 1 has that")
	e.pass()
	e.wantHeld("y-a0", placement.Waiting, "only 1 has that")

	// While y waits, a Job that would fit is not admitted at creation: it queues behind y.
	tj, job = e.render("z", 1, 8)
	a.PlaceNew(job, tj)(false)
	if !ptr.Deref(job.Spec.Suspend, false) {
		t.Error("a new Job was admitted at creation ahead of a waiting gang")
	}
}

// A Job left to a pass keeps its place in line even while its create is in flight: a pass
// that does not see it yet still sets its capacity aside, so a Job created after it is not
// admitted on that capacity.
func TestLeftToAPassKeepsItsPlace(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addNode("line-0", 8)
	e.addNode("line-1", 8)
	a, pass := e.admitter()

	// q comes before any pass: it is left suspended, and its create is slow.
	qtj, q := e.render("q", 1, 8)
	qDone := a.PlaceNew(q, qtj)
	if !ptr.Deref(q.Spec.Suspend, false) {
		t.Fatal("a manager that has not run a pass admitted a Job at creation")
	}
	pass() // does not see q, but sets a node aside for it

	// x, created after q, would fit the idle cluster, but not next to q.
	xtj, x := e.render("x", 2, 8)
	xDone := a.PlaceNew(x, xtj)
	if !ptr.Deref(x.Spec.Suspend, false) {
		t.Fatal("a Job created later was admitted on the capacity a Job before it is due")
	}

	for _, c := range []struct {
		job  *batchv1.Job
		done func(bool)
	}{{q, qDone}, {x, xDone}} {
		if err := e.c.Create(ctx, c.job); err != nil {
			t.Fatal(err)
		}
		c.done(true)
	}
	pass()
	e.wantReleased("q-a0", "line-0")
	e.wantHeld("x-a0", placement.Waiting, "only 1 has that")
}
