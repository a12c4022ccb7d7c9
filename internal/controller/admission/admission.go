// Package admission starts TrainingJobs' gangs whole or not at all, without
// Kueue. An attempt's Job is created suspended, so it has no pods, unless
// admitted as it is created (below). An admission pass decides Kiln's whole
// queue at once with placement.Admit, against the free capacity of the
// cluster; for a gang that fits, one patch
// writes the chosen nodes into the Job's placement annotation, narrows the pod
// template's node affinity to them and un-suspends the Job. The Job's
// topology spread (see package render) puts one worker on each chosen node, so
// the scheduler cannot scatter the gang, and no pod needs a write of its own.
//
// A pass rebuilds the picture: nodes, Kiln's Jobs and Kiln's pods from the
// manager's cache, other pods read live. The gangs held are the running Jobs
// with a placement annotation, whether or not their pods exist yet, so a cache
// a few pods behind books nothing twice. The one thing a pass must not read
// stale is its predecessors' own releases, or it could book their capacity
// again: it first waits until the cache shows the generation each of them
// wrote (and reads the Jobs live if the cache stays behind). A manager that
// dies before the patch leaves the Job suspended and queued; after it, the Job
// is held and its pods are already bound for their nodes. Either way nothing
// is booked twice or lost.
//
// A new attempt's Job need not wait for a pass: while nothing waits in the
// queue, the last pass's picture (a second old at most) admits it as the
// TrainingJob controller creates it, and the Job is created released (see
// PlaceNew). That picture, the Jobs so decided until a pass lists them, and
// the generations the passes wrote are all that lives in memory between
// passes, and a restarted manager needs none of it: its cache starts fresh,
// and it admits nothing at creation before its first pass.
//
// Jobs of TrainingJobs with a queueName are left to Kueue.
package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
	"kiln.dev/kiln/internal/render"
)

// waitingRetry is how often a pass runs while gangs wait. Kiln's own Jobs and
// pods wake it as they finish; pods of other workloads are not watched (there
// may be many), and this is how their freed capacity is found.
const waitingRetry = 15 * time.Second

// passWriters is how many of a pass's writes are in flight at once.
const passWriters = 8

// cacheWait bounds how long a pass waits for the cache to show the previous
// passes' writes before it reads the Jobs live instead.
const cacheWait = 2 * time.Second

// pictureTTL is how long a pass's picture of the free capacity admits new Jobs
// as they are created. Kiln's own pods outside gangs (notebooks, model
// servers) drop it as they are bound; pods of other workloads, which Kiln does
// not watch, it cannot see, so it is kept about as short as a pass takes to
// release a gang (in which time the same could happen to a pass's decision).
const pictureTTL = time.Second

// Admitter runs admission passes.
type Admitter struct {
	// Client reads TrainingJobs, Nodes, Kiln's Pods and PriorityClasses from
	// the cache and writes Jobs.
	Client client.Client
	// APIReader reads the pods of other workloads, which the cache does not
	// hold, and Kiln's Jobs when the cache lags behind a pass's own writes.
	APIReader client.Reader
	// Recorder emits Events on TrainingJobs.
	Recorder events.EventRecorder

	mu sync.Mutex
	// written are the generations the passes' releases and requeues wrote, by
	// Job, until the cache shows them.
	written map[types.NamespacedName]int64
	// fresh are the new Jobs PlaceNew decided on, until a pass lists them.
	fresh map[types.NamespacedName]*freshJob
	// latest is the last pass's picture, holding what it and PlaceNew admitted
	// since; nil while gangs wait, so that no new gang passes them.
	latest *picture
}

// freshJob is a new Job as PlaceNew decided on it.
type freshJob struct {
	// g.nodes is its placement when admitted, nil when left to a pass. g.job
	// is a copy from before the create, so it has no UID.
	g *gang
	// created is when its create returned; zero while it is in flight.
	created time.Time
}

// picture is the capacity one GPU resource's pass saw, with its decisions.
type picture struct {
	gpu     corev1.ResourceName
	cluster *placement.Cluster
	at      time.Time
}

// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=list;watch
// +kubebuilder:rbac:groups=scheduling.k8s.io,resources=priorityclasses,verbs=list;watch
// +kubebuilder:rbac:groups=kiln.dev,resources=trainingjobs,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// passRequest is the one request every event maps to: a pass decides the
// whole queue, so one runs at a time and a burst of events makes one pass.
var passRequest = reconcile.Request{NamespacedName: types.NamespacedName{Name: "admission-pass"}}

// SetupWithManager runs a pass whenever capacity or the queue may have
// changed: a Kiln Job created suspended, released, suspended, finished or
// deleted; a TrainingJob's spec changed (suspend) or the TrainingJob deleted;
// a Kiln pod gone or finished, or one outside a gang bound; a node added,
// removed or changed in what it offers.
func (a *Admitter) SetupWithManager(mgr ctrl.Manager) error {
	toPass := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{passRequest}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("admission").
		// One key is never worked on twice at once anyway; said here so that no
		// manager-wide setting can make two passes overlap.
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Watches(&batchv1.Job{}, toPass, builder.WithPredicates(kilnOnly(), jobChanged())).
		Watches(&v1alpha1.TrainingJob{}, toPass, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Pod{}, a.podChanged(), builder.WithPredicates(kilnOnly())).
		Watches(&corev1.Node{}, toPass, builder.WithPredicates(nodeChanged())).
		Complete(a)
}

func kilnOnly() predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetLabels()[render.LabelManagedBy] == render.ManagedBy
	})
}

// jobChanged leaves out Jobs created released: admitted at creation, they
// are already in the picture (see PlaceNew).
func jobChanged() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return suspended(e.Object.(*batchv1.Job)) },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld.(*batchv1.Job), e.ObjectNew.(*batchv1.Job)
			return suspended(o) != suspended(n) || finished(o) != finished(n) ||
				o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero()
		},
	}
}

// podChanged starts a pass when a Kiln pod ends or goes, freeing capacity,
// and when one outside any gang (a notebook's, a model server's) is bound,
// taking capacity the picture new Jobs are admitted against does not show: the
// picture is dropped at once, so no Job is admitted against it meanwhile.
func (a *Admitter) podChanged() handler.EventHandler {
	pass := func(q workqueue.TypedRateLimitingInterface[reconcile.Request]) { q.Add(passRequest) }
	return handler.Funcs{
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			o, n := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
			if o.Spec.NodeName == "" && n.Spec.NodeName != "" && n.Labels[batchv1.JobNameLabel] == "" {
				a.mu.Lock()
				a.latest = nil
				a.mu.Unlock()
				pass(q)
			}
			if !podDone(o) && podDone(n) {
				pass(q)
			}
		},
		DeleteFunc: func(_ context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			pass(q)
		},
	}
}

func nodeChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
		// Not the heartbeats in status, which change all the time.
		return o.Spec.Unschedulable != n.Spec.Unschedulable ||
			!equality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) ||
			!equality.Semantic.DeepEqual(o.Labels, n.Labels) ||
			!equality.Semantic.DeepEqual(o.Status.Allocatable, n.Status.Allocatable)
	}}
}

// gang is one attempt's Job as admission sees it.
type gang struct {
	job      *batchv1.Job
	tj       *v1alpha1.TrainingJob
	gpu      corev1.ResourceName
	priority int32
	nodes    []string // the placement, when held
}

func (g *gang) id() string { return g.job.Namespace + "/" + g.job.Name }

// pods are the gang's members, counting GPUs of the given resource: pods of
// another GPU kind still take CPU and memory.
func (g *gang) pods(gpu corev1.ResourceName) []placement.Pod {
	pod := placement.PodFromSpec(&g.job.Spec.Template.Spec, gpu)
	// The rule placement.Choose shaped the job by: a GPU rank takes its node to itself,
	// CPU ranks may share (the rendered spread constraint still puts them on distinct
	// nodes where there are several), so a CPU job of two ranks runs on a one-node cluster.
	pod.OwnNode = placement.OwnsNode(pod.Requests.GPU)
	pods := make([]placement.Pod, ptr.Deref(g.job.Spec.Completions, 1))
	for i := range pods {
		pods[i] = pod
	}
	return pods
}

// world is what one pass sees.
type world struct {
	nodes  []corev1.Node
	pods   []corev1.Pod // bound and unfinished
	held   []*gang
	queued []*gang
	lost   []lostGang
	// broken are running gangs that lost a node: a worker failure, which the
	// TrainingJob controller answers with a gang restart once the Job fails.
	broken []lostGang
	// priority is the value of a PriorityClass.
	priority func(className string) int32
	// jobs are all Kiln's Jobs listed, listed at that time, live or from the cache.
	jobs   map[types.NamespacedName]bool
	listed time.Time
	live   bool
}

// lostGang is a held gang whose placement names a node that is gone: its
// pinned pods could never start there.
type lostGang struct {
	*gang
	why string
}

// Reconcile runs one admission pass.
func (a *Admitter) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	w, err := a.observe(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	var errs []error
	for _, l := range w.lost {
		errs = append(errs, a.requeue(ctx, l))
	}
	for _, l := range w.broken {
		errs = append(errs, a.markLost(ctx, l))
	}
	decisions, waiting := a.decide(ctx, w)

	// Each decision writes a different Job, so the writes need no order; one
	// after another, a pass admitting many gangs would spend most of its time
	// waiting on round trips.
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		slots = make(chan struct{}, passWriters)
	)
	for _, d := range decisions {
		wg.Go(func() {
			slots <- struct{}{}
			var err error
			if d.State == placement.Admitted {
				err = a.release(ctx, d.g, d.Nodes)
			} else {
				err = a.record(ctx, d.g, d.Decision)
			}
			<-slots
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, err
	}
	if waiting {
		return ctrl.Result{RequeueAfter: waitingRetry}, nil
	}
	return ctrl.Result{}, nil
}

// decision is what a pass decided for a gang it must write to.
type decision struct {
	placement.Decision
	g *gang
}

// decide decides the queue and replaces the picture new Jobs are admitted
// against, all while PlaceNew waits, so no gang is admitted twice over.
//
// The queue has the suspended Jobs w lists, and those PlaceNew left to a pass
// that w does not list yet: these are decided too, but left to the next pass
// to write, which will find the capacity they would take still free. So a Job
// whose create is in flight keeps its place in line. The Jobs PlaceNew
// admitted that w does not list are held as they are.
func (a *Admitter) decide(ctx context.Context, w *world) ([]decision, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	held, queued, unseen := w.held, slices.Clone(w.queued), map[string]bool{}
	for _, f := range a.unseen(w) {
		if f.g.nodes != nil {
			held = append(held, f.g)
			continue
		}
		g := *f.g // decided here, but not as PlaceNew's
		g.priority = w.priority(g.job.Spec.Template.Spec.PriorityClassName)
		queued, unseen[g.id()] = append(queued, &g), true
	}
	// One pass per GPU resource in the queue, each counting its own kind of
	// GPU; gangs admitted by one count, with their CPU and memory, in the next.
	// With none queued, the picture is drawn anew for new Jobs to come.
	resources := gpuResources(queued)
	if len(resources) == 0 {
		resources = []corev1.ResourceName{v1alpha1.DefaultGPUResource}
		if a.latest != nil {
			resources[0] = a.latest.gpu
		}
	}
	var (
		out     []decision
		waiting bool
		c       *placement.Cluster
		err     error
	)
	for _, gpu := range resources {
		c, err = w.snapshot(gpu, held).Cluster()
		if err != nil {
			// Pods on nodes not seen yet, say: they are left out, as those nodes are.
			ctrl.LoggerFrom(ctx).V(1).Info("capacity picture is partial", "reason", err.Error())
		}
		queue, byID := queueOf(queued, gpu)
		for _, d := range placement.Admit(c, queue, nil) {
			g := byID[d.Gang]
			waiting = waiting || d.State == placement.Waiting
			if d.State == placement.Admitted {
				g.nodes = d.Nodes
				held = append(held, g)
			}
			if !unseen[d.Gang] {
				out = append(out, decision{Decision: d, g: g})
			}
		}
	}
	a.latest = nil
	if !waiting {
		// The last resource's picture counts every gang admitted in this pass.
		a.latest = &picture{gpu: resources[len(resources)-1], cluster: c, at: time.Now()}
	}
	return out, waiting
}

// PlaceNew admits a new attempt's Job as the TrainingJob controller creates
// it, when the last pass left nothing waiting, its picture is at most
// pictureTTL old and has room for the whole gang: job is then released onto
// the chosen nodes exactly as a pass would release it. Otherwise job stays
// suspended for the pass its creation starts, and no gang created after it is
// admitted before that pass decides it. Either way the caller must call done
// with whether it created the Job; a nil done means another call has this
// Job, whose create the caller will find.
//
// The gang is decided as the queue's only member, which it is. This saves a
// new Job its release patch and the wait for a pass.
func (a *Admitter) PlaceNew(job *batchv1.Job, tj *v1alpha1.TrainingJob) (done func(created bool)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := client.ObjectKeyFromObject(job)
	g := &gang{job: job.DeepCopy(), tj: tj.DeepCopy(), gpu: gpuResource(tj)}
	if _, ok := a.fresh[key]; ok {
		return nil
	}
	p := a.latest
	if p != nil {
		if _, ok := p.cluster.Holds(g.id()); ok {
			return nil
		}
	}
	if p != nil && p.gpu == g.gpu && time.Since(p.at) <= pictureTTL {
		d := placement.Admit(p.cluster, []placement.Gang{{ID: g.id(), Arrival: tj.CreationTimestamp.Time, Pods: g.pods(g.gpu)}}, nil)[0]
		if d.State == placement.Admitted {
			g.nodes = d.Nodes
			placeOn(&job.Spec.Template.Spec, d.Nodes)
			metav1.SetMetaDataAnnotation(&job.ObjectMeta, v1alpha1.AnnotationPlacement, placement.EncodePlacement(d.Nodes))
			job.Spec.Suspend = ptr.To(false)
		}
	}
	if g.nodes == nil {
		a.latest = nil
	}
	if a.fresh == nil {
		a.fresh = map[types.NamespacedName]*freshJob{}
	}
	f := &freshJob{g: g}
	a.fresh[key] = f
	return func(created bool) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if created {
			f.created = time.Now()
			return
		}
		delete(a.fresh, key)
		if a.latest != nil && g.nodes != nil {
			a.latest.cluster.Release(g.id())
		}
	}
}

// unseen forgets the fresh Jobs w lists, and, when w read the Jobs live,
// those created before and gone since; it returns the rest. The caller holds
// a.mu.
func (a *Admitter) unseen(w *world) []*freshJob {
	var rest []*freshJob
	for key, f := range a.fresh {
		gone := w.live && !f.created.IsZero() && f.created.Before(w.listed)
		if w.jobs[key] || gone {
			delete(a.fresh, key)
			continue
		}
		rest = append(rest, f)
	}
	return rest
}

// observe reads the cluster and sorts Kiln's Jobs into held and queued gangs.
func (a *Admitter) observe(ctx context.Context) (*world, error) {
	var jobs batchv1.JobList
	jobReader := client.Reader(a.Client)
	live := !a.caughtUp(ctx)
	if live {
		ctrl.LoggerFrom(ctx).V(1).Info("the cache does not show the last pass's writes yet; reading Jobs live")
		jobReader = a.APIReader
	}
	listed := time.Now()
	// The cache's own copies, read-only: a pass over thousands of Jobs need not
	// copy each, and its writes copy the one they change.
	if err := jobReader.List(ctx, &jobs, client.MatchingLabels{render.LabelManagedBy: render.ManagedBy}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Jobs: %w", err)
	}
	if live {
		// What was written is read now.
		a.mu.Lock()
		clear(a.written)
		a.mu.Unlock()
	}
	pods, err := a.boundPods(ctx)
	if err != nil {
		return nil, err
	}
	var nodes corev1.NodeList
	if err := a.Client.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	var tjs v1alpha1.TrainingJobList
	if err := a.Client.List(ctx, &tjs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing TrainingJobs: %w", err)
	}
	var classes schedulingv1.PriorityClassList
	if err := a.Client.List(ctx, &classes); err != nil {
		return nil, fmt.Errorf("listing PriorityClasses: %w", err)
	}

	owners := make(map[types.UID]*v1alpha1.TrainingJob, len(tjs.Items))
	for i := range tjs.Items {
		owners[tjs.Items[i].UID] = &tjs.Items[i]
	}
	present := make(map[string]bool, len(nodes.Items))
	for _, n := range nodes.Items {
		present[n.Name] = true
	}
	priority := priorities(classes.Items)
	w := &world{nodes: nodes.Items, pods: pods, priority: priority, live: live, listed: listed, jobs: make(map[types.NamespacedName]bool, len(jobs.Items))}
	for i := range jobs.Items {
		job := &jobs.Items[i]
		w.jobs[client.ObjectKeyFromObject(job)] = true
		ref := metav1.GetControllerOf(job)
		if ref == nil || ref.Kind != "TrainingJob" || owners[ref.UID] == nil ||
			job.Labels[render.LabelQueueName] != "" || finished(job) || !job.DeletionTimestamp.IsZero() {
			// Not Kiln's to admit, or it holds nothing any more; its pods,
			// while they last, count as any other workload's.
			continue
		}
		tj := owners[ref.UID]
		g := &gang{job: job, tj: tj, gpu: gpuResource(tj), priority: priority(job.Spec.Template.Spec.PriorityClassName)}
		switch {
		case !suspended(job) && job.Annotations[v1alpha1.AnnotationPlacement] != "":
			g.nodes = placement.DecodePlacement(job.Annotations[v1alpha1.AnnotationPlacement])
			if why := lostBecause(g, present); why != "" {
				if !running(job, pods) {
					w.lost = append(w.lost, lostGang{g, why})
					continue
				}
				// Workers ran: the work since the last checkpoint is lost, which
				// is a failure and counts as a restart. The pods left keep their
				// capacity until the Job fails.
				w.broken = append(w.broken, lostGang{g, whoLost(g, pods, present)})
			}
			w.held = append(w.held, g)
		case suspended(job) && !ptr.Deref(tj.Spec.Suspend, false) && tj.DeletionTimestamp.IsZero():
			w.queued = append(w.queued, g)
		}
	}
	return w, nil
}

// boundPods are the pods bound to a node and not finished: Kiln's own from
// the cache, which holds them anyway, and those of other workloads read live,
// since the cache keeps only Kiln's.
func (a *Admitter) boundPods(ctx context.Context) ([]corev1.Pod, error) {
	var kiln, others corev1.PodList
	// Read-only, so the cache's own copies do: a pass over thousands of pods
	// need not copy each.
	if err := a.Client.List(ctx, &kiln, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Kiln's pods: %w", err)
	}
	notKiln, err := labels.NewRequirement(render.LabelManagedBy, selection.NotEquals, []string{render.ManagedBy})
	if err != nil {
		return nil, err
	}
	bound := fields.ParseSelectorOrDie("spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed")
	if err := a.APIReader.List(ctx, &others, client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*notKiln)},
		client.MatchingFieldsSelector{Selector: bound}); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	pods := slices.DeleteFunc(kiln.Items, func(p corev1.Pod) bool { return p.Spec.NodeName == "" || podDone(&p) })
	return append(pods, others.Items...), nil
}

func lostBecause(g *gang, present map[string]bool) string {
	if want := int(ptr.Deref(g.job.Spec.Completions, 1)); len(g.nodes) != want {
		return fmt.Sprintf("its placement names %d nodes for %d workers", len(g.nodes), want)
	}
	for _, n := range g.nodes {
		if !present[n] {
			return fmt.Sprintf("node %s of its placement is gone", n)
		}
	}
	return ""
}

// whoLost names the worker whose node is gone, from its pod if that is still
// there.
func whoLost(g *gang, pods []corev1.Pod, present map[string]bool) string {
	for _, p := range pods {
		if p.Labels[batchv1.ControllerUidLabel] == string(g.job.UID) && p.Spec.NodeName != "" && !present[p.Spec.NodeName] {
			if i, ok := completionIndex(&p); ok {
				return fmt.Sprintf("worker %d lost its node %s", i, p.Spec.NodeName)
			}
		}
	}
	for _, n := range g.nodes {
		if !present[n] {
			return fmt.Sprintf("a worker lost its node %s", n)
		}
	}
	return "a worker lost its node"
}

// running says whether any worker of the Job has started.
func running(job *batchv1.Job, pods []corev1.Pod) bool {
	return slices.ContainsFunc(pods, func(p corev1.Pod) bool {
		return p.Labels[batchv1.ControllerUidLabel] == string(job.UID) && p.Status.Phase == corev1.PodRunning
	})
}

// priorities maps a PriorityClass name to its value, as the Priority
// admission plugin will set it on the pods.
func priorities(classes []schedulingv1.PriorityClass) func(string) int32 {
	value := make(map[string]int32, len(classes))
	var global int32
	for _, c := range classes {
		value[c.Name] = c.Value
		if c.GlobalDefault {
			global = c.Value
		}
	}
	return func(name string) int32 {
		if name == "" {
			return global
		}
		return value[name]
	}
}

func gpuResources(gangs []*gang) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, g := range gangs {
		if !slices.Contains(out, g.gpu) {
			out = append(out, g.gpu)
		}
	}
	slices.Sort(out)
	return out
}

func (w *world) snapshot(gpu corev1.ResourceName, held []*gang) placement.Snapshot {
	s := placement.Snapshot{Nodes: w.nodes, Pods: w.pods, GangOf: gangOf(held), GPUResource: gpu}
	for _, g := range held {
		s.Held = append(s.Held, placement.Held{Gang: g.id(), Pods: g.pods(gpu), Nodes: g.nodes})
	}
	return s
}

// queueOf is the queue of the gangs counting GPUs of gpu.
func queueOf(gangs []*gang, gpu corev1.ResourceName) ([]placement.Gang, map[string]*gang) {
	var queue []placement.Gang
	byID := map[string]*gang{}
	for _, g := range gangs {
		if g.gpu != gpu {
			continue
		}
		// The TrainingJob's arrival, not the attempt's: a restarted gang keeps
		// its place in line.
		queue = append(queue, placement.Gang{ID: g.id(), Priority: g.priority, Arrival: g.tj.CreationTimestamp.Time, Pods: g.pods(gpu)})
		byID[g.id()] = g
	}
	return queue, byID
}

// gangOf counts a pod through its gang's hold only when it is on a node of
// the placement (workers are alike, so which index sits on which chosen node
// does not matter). Any other pod of the Job (left over from an earlier
// admission, say) takes capacity of its own while it lasts.
func gangOf(held []*gang) func(*corev1.Pod) string {
	byID := make(map[string]*gang, len(held))
	for _, g := range held {
		byID[g.id()] = g
	}
	return func(p *corev1.Pod) string {
		g := byID[p.Namespace+"/"+p.Labels[batchv1.JobNameLabel]]
		if g == nil || p.Labels[batchv1.ControllerUidLabel] != string(g.job.UID) {
			return ""
		}
		if !slices.Contains(g.nodes, p.Spec.NodeName) {
			return ""
		}
		return g.id()
	}
}

// release records the placement and un-suspends the Job in one write, so the
// Job is either queued or held, never in between.
//
// The write is a JSON patch whose tests the API server checks against the
// stored Job: its generation is the one the pass decided on, and it is still
// suspended. So a pass working from an outdated Job fails rather than acts on
// it, while a status write in between (the Job controller's Suspended
// condition on a new Job) costs neither a conflict nor a retry.
func (a *Admitter) release(ctx context.Context, g *gang, nodes []string) error {
	job := g.job.DeepCopy()
	spec := job.Spec.Template.Spec.DeepCopy()
	placeOn(spec, nodes)
	ops := []jsonPatchOp{
		{Op: "test", Path: "/metadata/generation", Value: job.Generation},
		{Op: "test", Path: "/spec/suspend", Value: true},
	}
	if job.Annotations == nil {
		ops = append(ops, jsonPatchOp{Op: "add", Path: "/metadata/annotations", Value: map[string]string{}})
	}
	ops = append(ops, jsonPatchOp{Op: "add", Path: annotationPath(v1alpha1.AnnotationPlacement), Value: placement.EncodePlacement(nodes)})
	for _, k := range []string{v1alpha1.AnnotationAdmission, v1alpha1.AnnotationAdmissionMessage} {
		if _, ok := job.Annotations[k]; ok {
			ops = append(ops, jsonPatchOp{Op: "remove", Path: annotationPath(k)})
		}
	}
	ops = append(ops,
		jsonPatchOp{Op: "add", Path: "/spec/template/spec/affinity", Value: spec.Affinity},
		jsonPatchOp{Op: "replace", Path: "/spec/suspend", Value: false},
	)
	data, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	err = a.Client.Patch(ctx, job, client.RawPatch(types.JSONPatchType, data))
	switch {
	case apierrors.IsInvalid(err):
		return fmt.Errorf("releasing Job %s: it changed since this pass read it; the next pass decides again (%w)", g.id(), err)
	case err != nil:
		return fmt.Errorf("releasing Job %s: %w", g.id(), err)
	}
	a.wrote(job)
	ctrl.LoggerFrom(ctx).Info("admitted gang", "job", g.id(), "nodes", nodes)
	return nil
}

// jsonPatchOp is one operation of a JSON patch (RFC 6902).
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// annotationPath is the JSON pointer of an annotation: "/" in its key becomes "~1".
func annotationPath(key string) string {
	return "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

// wrote remembers the generation a release or requeue gave a Job (the patch
// response's), which the next pass waits to see in the cache.
func (a *Admitter) wrote(job *batchv1.Job) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.written == nil {
		a.written = map[types.NamespacedName]int64{}
	}
	a.written[client.ObjectKeyFromObject(job)] = job.Generation
}

// caughtUp waits, up to cacheWait, until the cache shows every generation the
// earlier passes wrote (or the Job is gone) and every Job created since that
// PlaceNew decided on, and reports whether it does. Generations only grow, so
// a Job changed again since is caught up too.
func (a *Admitter) caughtUp(ctx context.Context) bool {
	deadline := time.Now().Add(cacheWait)
	for {
		a.mu.Lock()
		for key, generation := range a.written {
			job := &batchv1.Job{}
			err := a.Client.Get(ctx, key, job, client.UnsafeDisableDeepCopy)
			if apierrors.IsNotFound(err) || (err == nil && job.Generation >= generation) {
				delete(a.written, key)
			}
		}
		behind := len(a.written)
		for key, f := range a.fresh {
			if !f.created.IsZero() && apierrors.IsNotFound(a.Client.Get(ctx, key, &batchv1.Job{}, client.UnsafeDisableDeepCopy)) {
				behind++
			}
		}
		a.mu.Unlock()
		if behind == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// record writes why a gang waits or is refused onto its Job, where the
// TrainingJob controller turns it into the Admitted condition. Only changes
// are written.
func (a *Admitter) record(ctx context.Context, g *gang, d placement.Decision) error {
	before := g.job
	if before.Annotations[v1alpha1.AnnotationAdmission] == string(d.State) && before.Annotations[v1alpha1.AnnotationAdmissionMessage] == d.Reason {
		return nil
	}
	job := before.DeepCopy()
	if job.Annotations == nil {
		job.Annotations = map[string]string{}
	}
	job.Annotations[v1alpha1.AnnotationAdmission] = string(d.State)
	job.Annotations[v1alpha1.AnnotationAdmissionMessage] = d.Reason
	if err := a.Client.Patch(ctx, job, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("recording the admission decision on Job %s: %w", g.id(), err)
	}
	return nil
}

// requeue puts a lost gang back in the queue: suspending the Job stops its
// pods, and dropping the placement lets the next pass choose nodes afresh.
func (a *Admitter) requeue(ctx context.Context, l lostGang) error {
	before := l.job
	job := before.DeepCopy()
	delete(job.Annotations, v1alpha1.AnnotationPlacement)
	job.Spec.Suspend = ptr.To(true)
	if err := a.Client.Patch(ctx, job, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("returning Job %s to the queue: %w", l.id(), err)
	}
	a.wrote(job)
	ctrl.LoggerFrom(ctx).Info("returned gang to the queue", "job", l.id(), "reason", l.why)
	a.Recorder.Eventf(l.tj, job, corev1.EventTypeWarning, "PlacementLost", "Requeue",
		"%s; Job %s returns to the admission queue", l.why, job.Name)
	return nil
}

// markLost says on a running Job which node it lost. Kubernetes' pod garbage
// collector removes the pods bound to the deleted node, which fails the Job
// (it allows no pod failure); the TrainingJob controller then restarts the
// gang, naming the node.
func (a *Admitter) markLost(ctx context.Context, l lostGang) error {
	before := l.job
	if before.Annotations[v1alpha1.AnnotationLostNode] != "" {
		return nil
	}
	job := before.DeepCopy()
	job.Annotations[v1alpha1.AnnotationLostNode] = l.why
	if err := a.Client.Patch(ctx, job, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("marking Job %s as having lost a node: %w", l.id(), err)
	}
	ctrl.LoggerFrom(ctx).Info("running gang lost a node", "job", l.id(), "reason", l.why)
	a.Recorder.Eventf(l.tj, job, corev1.EventTypeWarning, "NodeLost", "Fail",
		"%s; the gang restarts once Kubernetes removes the pods that were there", l.why)
	return nil
}

func gpuResource(tj *v1alpha1.TrainingJob) corev1.ResourceName {
	if g := tj.Spec.Resources.GPUResource; g != "" {
		return corev1.ResourceName(g)
	}
	return v1alpha1.DefaultGPUResource
}

func suspended(job *batchv1.Job) bool { return ptr.Deref(job.Spec.Suspend, false) }

// finished Jobs hold nothing: their pods are done, or being stopped and
// counted as they are.
func finished(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		switch c.Type {
		case batchv1.JobComplete, batchv1.JobFailed, batchv1.JobFailureTarget, batchv1.JobSuccessCriteriaMet:
			if c.Status == corev1.ConditionTrue {
				return true
			}
		}
	}
	return false
}

func podDone(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func completionIndex(p *corev1.Pod) (int, bool) {
	i, err := strconv.Atoi(p.Annotations[batchv1.JobCompletionIndexAnnotation])
	return i, err == nil && i >= 0
}
