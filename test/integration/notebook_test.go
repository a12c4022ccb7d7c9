package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controller/notebook"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/tokens"
)

// jupyter is a test's Jupyter server: it answers /api/status and /api/kernels in
// Jupyter Server's shape, requires the token, and reports what the test sets.
type jupyter struct {
	mu     sync.Mutex
	last   time.Time
	busy   bool
	token  string
	asked  int
	server *httptest.Server
}

func newJupyter(t *testing.T) *jupyter {
	j := &jupyter{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.asked++
		if r.Header.Get("Authorization") != "token "+j.token {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"started": j.last.Add(-time.Hour), "last_activity": j.last, "connections": 0, "kernels": 1,
		})
	})
	mux.HandleFunc("GET /api/kernels", func(w http.ResponseWriter, _ *http.Request) {
		j.mu.Lock()
		defer j.mu.Unlock()
		state := "idle"
		if j.busy {
			state = "busy"
		}
		_ = json.NewEncoder(w).Encode([]map[string]any{{"id": "k1", "name": "python3", "execution_state": state}})
	})
	j.server = httptest.NewServer(mux)
	t.Cleanup(j.server.Close)
	return j
}

func (j *jupyter) set(last time.Time, busy bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.last, j.busy = last, busy
}

// nbEnv drives the Notebook controller by hand against the API server, with a
// fake clock, playing the StatefulSet controller's part.
type nbEnv struct {
	*env
	clock *clocktesting.FakeClock
	r     *notebook.Reconciler
}

func newNBEnv(t *testing.T, baseURL string) *nbEnv {
	e := newEnv(t)
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC))
	return &nbEnv{env: e, clock: clock, r: &notebook.Reconciler{
		Client: e.c, APIReader: e.c, Recorder: events.NewFakeRecorder(100), Clock: clock,
		Tokens:   tokens.Static("integration-test-key"),
		Activity: &notebook.JupyterStatus{BaseURL: func(*v1alpha1.Notebook) string { return baseURL }},
	}}
}

func (e *nbEnv) reconcile(nb *v1alpha1.Notebook) ctrl.Result {
	e.t.Helper()
	res, err := e.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(nb)})
	if err != nil {
		e.t.Fatalf("reconcile: %v", err)
	}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(nb), nb); err != nil {
		e.t.Fatal(err)
	}
	return res
}

// podReady plays the StatefulSet controller: the pod is up (or gone).
func (e *nbEnv) podReady(nb *v1alpha1.Notebook, ready int32) *appsv1.StatefulSet {
	e.t.Helper()
	sts := &appsv1.StatefulSet{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: nb.Namespace, Name: nb.Name}, sts); err != nil {
		e.t.Fatal(err)
	}
	sts.Status.Replicas, sts.Status.ReadyReplicas, sts.Status.AvailableReplicas = ready, ready, ready
	if err := e.c.Status().Update(context.Background(), sts); err != nil {
		e.t.Fatal(err)
	}
	return sts
}

func (e *nbEnv) create(idle time.Duration) *v1alpha1.Notebook {
	e.t.Helper()
	nb := &v1alpha1.Notebook{
		ObjectMeta: metav1.ObjectMeta{Name: "nb", Namespace: e.ns},
		Spec:       v1alpha1.NotebookSpec{IdleTimeout: &metav1.Duration{Duration: idle}},
	}
	if err := e.c.Create(context.Background(), nb); err != nil {
		e.t.Fatal(err)
	}
	return nb
}

func wantNBCondition(t *testing.T, nb *v1alpha1.Notebook, typ string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	c := apimeta.FindStatusCondition(nb.Status.Conditions, typ)
	if c == nil || c.Status != status || c.Reason != reason {
		t.Fatalf("condition %s: got %+v, want %s/%s; all: %+v", typ, c, status, reason, nb.Status.Conditions)
	}
	return c
}

// The culler reads a real HTTP server in the shape of Jupyter's status API: it
// keeps a notebook used within the idle timeout, looks again when the timeout
// would run out, and stops it once the server reports nothing newer.
func TestNotebookCulledByServerActivity(t *testing.T) {
	j := newJupyter(t)
	e := newNBEnv(t, j.server.URL)
	nb := e.create(30 * time.Minute)
	e.reconcile(nb)

	secret := &corev1.Secret{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: render.NotebookTokenSecretName("nb")}, secret); err != nil {
		t.Fatal(err)
	}
	j.token = string(secret.Data[v1alpha1.NotebookTokenKey])
	e.podReady(nb, 1)

	t0 := e.clock.Now()
	j.set(t0.Add(-10*time.Minute), false)
	res := e.reconcile(nb)

	// Applying what is already there writes nothing, so the children's watch
	// events do not wake the controller in a loop.
	versions := func() []string {
		sts, svc := &appsv1.StatefulSet{}, &corev1.Service{}
		for _, o := range []client.Object{sts, svc} {
			if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: "nb"}, o); err != nil {
				t.Fatal(err)
			}
		}
		return []string{sts.ResourceVersion, svc.ResourceVersion, nb.ResourceVersion}
	}
	before := versions()
	e.reconcile(nb)
	if after := versions(); !slices.Equal(before, after) {
		t.Errorf("a reconcile with nothing new wrote: resource versions %v, then %v", before, after)
	}
	wantNBCondition(t, nb, v1alpha1.NotebookConditionReady, metav1.ConditionTrue, v1alpha1.ReasonPodReady)
	wantNBCondition(t, nb, v1alpha1.NotebookConditionActivityKnown, metav1.ConditionTrue, v1alpha1.ReasonServerStatus)
	// Started at t0, so the server's earlier activity does not count against it.
	if res.RequeueAfter != 30*time.Minute {
		t.Errorf("looks again in %s, want 30m (idle counts from the start)", res.RequeueAfter)
	}
	if nb.Status.State != v1alpha1.NotebookReady || nb.Status.LastActivity == nil || !nb.Status.LastActivity.Equal(&metav1.Time{Time: t0.Add(-10 * time.Minute)}) {
		t.Errorf("state %s, last activity %v; want Ready, %s", nb.Status.State, nb.Status.LastActivity, t0.Add(-10*time.Minute))
	}

	// Used 20 minutes in: kept, and asked again 30 minutes after that use.
	e.clock.SetTime(t0.Add(29 * time.Minute))
	j.set(t0.Add(20*time.Minute), false)
	if res := e.reconcile(nb); res.RequeueAfter != 21*time.Minute || nb.Spec.Stopped {
		t.Fatalf("looks again in %s (want 21m), stopped %v", res.RequeueAfter, nb.Spec.Stopped)
	}

	// A cell that runs without output keeps it, however old the last message.
	e.clock.SetTime(t0.Add(3 * time.Hour))
	j.set(t0.Add(20*time.Minute), true)
	if e.reconcile(nb); nb.Spec.Stopped {
		t.Fatal("culled while a kernel was busy")
	}

	// Idle for good: stopped, with the reason, the StatefulSet at zero, the claim kept.
	e.clock.SetTime(t0.Add(5 * time.Hour))
	j.set(t0.Add(3*time.Hour), false)
	e.reconcile(nb)
	if !nb.Spec.Stopped || nb.Status.State != v1alpha1.NotebookCulled {
		t.Fatalf("stopped %v, state %s; want culled", nb.Spec.Stopped, nb.Status.State)
	}
	c := wantNBCondition(t, nb, v1alpha1.NotebookConditionStopped, metav1.ConditionTrue, v1alpha1.ReasonCulled)
	t.Logf("Stopped: %s", c.Message)
	if c.ObservedGeneration != nb.Generation || nb.Status.ObservedGeneration != nb.Generation {
		t.Errorf("observedGeneration %d/%d, want %d", c.ObservedGeneration, nb.Status.ObservedGeneration, nb.Generation)
	}
	sts := e.podReady(nb, 0)
	if ptr.Deref(sts.Spec.Replicas, -1) != 0 {
		t.Errorf("StatefulSet replicas %d, want 0", ptr.Deref(sts.Spec.Replicas, -1))
	}
	pvc := &corev1.PersistentVolumeClaim{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: render.WorkspaceClaimName("nb")}, pvc); err != nil {
		t.Fatalf("workspace claim: %v", err)
	}
	asked := j.asked
	e.clock.SetTime(t0.Add(10 * time.Hour))
	if e.reconcile(nb); j.asked != asked {
		t.Error("a stopped notebook's server was asked for its activity")
	}

	// Started again: idle time counts afresh, from now.
	nb.Spec.Stopped = false
	if err := e.c.Update(context.Background(), nb); err != nil {
		t.Fatal(err)
	}
	e.reconcile(nb)
	wantNBCondition(t, nb, v1alpha1.NotebookConditionStopped, metav1.ConditionFalse, v1alpha1.ReasonStarted)
	e.podReady(nb, 1)
	if res := e.reconcile(nb); nb.Spec.Stopped || res.RequeueAfter != 30*time.Minute {
		t.Fatalf("after a start: stopped %v, looks again in %s (want 30m)", nb.Spec.Stopped, res.RequeueAfter)
	}
}

// A server that cannot be reached leaves the activity unknown, and an unknown
// activity never culls, however long ago the notebook started.
func TestNotebookNotCulledWhenActivityIsUnknown(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	e := newNBEnv(t, gone.URL)
	nb := e.create(time.Minute)
	e.reconcile(nb)
	e.podReady(nb, 1)
	for _, later := range []time.Duration{time.Hour, 24 * time.Hour} {
		e.clock.Step(later)
		res := e.reconcile(nb)
		if nb.Spec.Stopped {
			t.Fatalf("culled %s in with an unreachable server", later)
		}
		if res.RequeueAfter != time.Minute {
			t.Errorf("looks again in %s, want the idle timeout (1m)", res.RequeueAfter)
		}
	}
	c := wantNBCondition(t, nb, v1alpha1.NotebookConditionActivityKnown, metav1.ConditionFalse, v1alpha1.ReasonServerUnreached)
	t.Logf("ActivityKnown: %s", c.Message)

	// An annotation from another front end makes it known; the later of the two counts.
	nb.Annotations = map[string]string{v1alpha1.AnnotationLastActivity: e.clock.Now().Add(-30 * time.Second).Format(time.RFC3339)}
	if err := e.c.Update(context.Background(), nb); err != nil {
		t.Fatal(err)
	}
	if res := e.reconcile(nb); nb.Spec.Stopped || res.RequeueAfter != 30*time.Second {
		t.Fatalf("stopped %v, looks again in %s; want kept, 30s", nb.Spec.Stopped, res.RequeueAfter)
	}
	wantNBCondition(t, nb, v1alpha1.NotebookConditionActivityKnown, metav1.ConditionTrue, v1alpha1.ReasonAnnotation)
	e.clock.Step(time.Minute)
	if e.reconcile(nb); !nb.Spec.Stopped {
		t.Fatal("not culled a minute after the annotation's activity")
	}
}
