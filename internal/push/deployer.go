package push

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/source"
)

// A push reads the annotated object live, records the delivery on it, creates
// the build Job in the object's namespace, reads the Job's pod's status for the
// digest, patches a ModelServer's runtime image or creates a TrainingJob's run,
// and records the outcome in status and Events. It reads no Secret of the
// tenant's: the build Job mounts them.
//
// +kubebuilder:rbac:groups=kiln.dev,resources=modelservers,verbs=get;patch
// +kubebuilder:rbac:groups=kiln.dev,resources=trainingjobs,verbs=get;create;patch
// +kubebuilder:rbac:groups=kiln.dev,resources=modelservers/status;trainingjobs/status,verbs=patch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Options bound and configure the builds.
type Options struct {
	// Workers wait for builds at once, each for a different object (default 2).
	Workers int
	// MaxQueued objects may wait for a build (default 32); more are refused with 503.
	MaxQueued int
	// BaseImage of source builds whose object names none ("" is the builder's
	// per-language default).
	BaseImage string
	// Insecure lets builds reach registries over plain HTTP.
	Insecure bool
	// BuildImage is cmd/kiln-build's image, which runs source builds; empty
	// refuses them.
	BuildImage string
	// BuilderImage runs Dockerfile builds; empty refuses them.
	BuilderImage string
	// BuildTimeout bounds a build Job (default 20 minutes).
	BuildTimeout time.Duration
	// Resources of a build Job's container (defaults: render.DefaultBuildResources).
	Resources corev1.ResourceRequirements
	// PollInterval between looks at a build Job (default 2s).
	PollInterval time.Duration
	// Hosts says which repository hosts may be fetched from; checked at delivery
	// and again inside the build Job.
	Hosts source.Policy
	// DeniedCIDRs are Hosts.DeniedCIDRs as given, for the build Job's arguments.
	DeniedCIDRs []string
}

func (o Options) withDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 32
	}
	if o.BuildTimeout <= 0 {
		o.BuildTimeout = 20 * time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	return o
}

// Deployer builds verified pushes, one at a time per object, as build Jobs in
// the object's namespace, and deploys the result. It never fetches, builds or
// reads what the tenant controls beyond the object and the build Job's status:
// that is the Job's. It is a manager Runnable on every replica: whichever
// replica receives an event handles it, and the delivery id recorded on the
// object keeps the other from handling a replay.
type Deployer struct {
	// Client writes, and reads what the manager caches (Jobs, Kiln's pods).
	Client client.Client
	// Live reads the annotated objects from the API server.
	Live     client.Reader
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Options  Options

	once    sync.Once
	queue   workqueue.TypedInterface[string]
	mu      sync.Mutex
	pending map[string]Request
}

func (d *Deployer) init() {
	d.once.Do(func() {
		d.Options = d.Options.withDefaults()
		d.queue = workqueue.NewTyped[string]()
		d.pending = map[string]Request{}
	})
}

// NeedLeaderElection is false: every replica builds what it receives.
func (d *Deployer) NeedLeaderElection() bool { return false }

// Enqueue schedules a build for the request's object. A newer push for an object
// that already waits replaces the older one; one that is building is built again
// after it.
func (d *Deployer) Enqueue(r Request) error {
	d.init()
	key := r.Target.String()
	d.mu.Lock()
	if _, waiting := d.pending[key]; !waiting && len(d.pending) >= d.Options.MaxQueued {
		d.mu.Unlock()
		return ErrQueueFull
	}
	d.pending[key] = r
	d.mu.Unlock()
	d.queue.Add(key)
	return nil
}

// Start runs the workers until ctx ends.
func (d *Deployer) Start(ctx context.Context) error {
	d.init()
	var wg sync.WaitGroup
	for range d.Options.Workers {
		wg.Go(func() {
			for {
				key, quit := d.queue.Get()
				if quit {
					return
				}
				d.mu.Lock()
				r, ok := d.pending[key]
				delete(d.pending, key)
				d.mu.Unlock()
				if ok {
					d.Deploy(ctx, r)
				}
				d.queue.Done(key)
			}
		})
	}
	<-ctx.Done()
	d.queue.ShutDown()
	wg.Wait()
	return nil
}

// maxDeliveries is how many delivery ids the object remembers.
const maxDeliveries = 16

// errHandled: the delivery or its commit was handled before, here or by the other replica.
var errHandled = errors.New("handled before")

// errSuperseded: the branch moved past the commit before the build fetched it.
var errSuperseded = errors.New("superseded")

// Deploy builds the pushed commit for one object and deploys it, recording the
// outcome in Events and status.source.
func (d *Deployer) Deploy(ctx context.Context, r Request) {
	d.init()
	log := ctrl.LoggerFrom(ctx).WithValues("target", r.Target.String(), "pushed", short(r.Commit), "delivery", r.Delivery)
	ctx = ctrl.LoggerInto(ctx, log)
	obj, err := d.claim(ctx, r)
	switch {
	case errors.Is(err, errHandled):
		log.Info("push already handled; ignored")
		return
	case apierrors.IsNotFound(err):
		return
	case err != nil:
		log.Error(err, "reading the object of a push")
		return
	}
	cfg, err := ConfigFrom(obj.GetAnnotations())
	if err != nil {
		d.failed(ctx, obj, r.Commit, err)
		return
	}
	if RepoKey(cfg.Repository) != RepoKey(r.Target.Config.Repository) || cfg.Branch != r.Target.Config.Branch {
		log.Info("annotations changed since the push; not building it")
		return
	}
	if r.Commit == sourceOf(obj).Commit {
		d.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, v1alpha1.ReasonDeployed, "Build",
			"branch %s is at %s, which is already deployed", cfg.Branch, short(r.Commit))
		return
	}
	u, err := source.ParseRepositoryURL(cfg.Repository)
	if err == nil {
		// Resolved, not connected to: the build Job connects, and checks again first.
		err = d.Options.Hosts.Check(ctx, u)
	}
	if err != nil {
		d.failed(ctx, obj, r.Commit, fmt.Errorf("repository refused: %w", err))
		return
	}
	d.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, v1alpha1.ReasonBuildStarted, "Build",
		"building %s of branch %s (%s build)", short(r.Commit), cfg.Branch, cfg.Build)
	ctx, cancel := context.WithTimeout(ctx, d.Options.BuildTimeout+time.Minute)
	defer cancel()
	ref, job, err := d.build(ctx, obj, cfg, r.Commit)
	switch {
	case errors.Is(err, errSuperseded):
		d.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, v1alpha1.ReasonBuildSuperseded, "Build",
			"branch %s moved past %s before build Job %s fetched it; the later push builds its head", cfg.Branch, short(r.Commit), job)
		return
	case err != nil:
		d.failed(ctx, obj, r.Commit, err)
		return
	}
	d.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, v1alpha1.ReasonBuildSucceeded, "Build", "build Job %s built %s into %s", job, short(r.Commit), ref)
	if err := d.deploy(ctx, obj, r.Commit, ref); err != nil {
		d.failed(ctx, obj, r.Commit, err)
	}
}

// claim reads the object and records r's delivery on it, with the object's
// resourceVersion, so that of two replicas given the same delivery (a provider's
// redelivery, a replay) one handles it: the other finds it recorded, or its
// write conflicts and it reads it recorded. A commit already deployed is left to
// Deploy, which says so.
func (d *Deployer) claim(ctx context.Context, r Request) (client.Object, error) {
	id := string(r.Provider) + "/" + r.Delivery
	for range 5 {
		obj, err := d.get(ctx, r.Target)
		if err != nil {
			return nil, err
		}
		if r.Delivery == "" {
			return obj, nil
		}
		seen := deliveriesOf(obj)
		if slices.Contains(seen, id) {
			return nil, errHandled
		}
		patch := client.MergeFromWithOptions(obj.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
		seen = append(seen, id)
		if len(seen) > maxDeliveries {
			seen = seen[len(seen)-maxDeliveries:]
		}
		a := obj.GetAnnotations()
		a[v1alpha1.AnnotationPushDeliveries] = strings.Join(seen, ",")
		obj.SetAnnotations(a)
		err = d.Client.Patch(ctx, obj, patch)
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("recording delivery %s: %w", r.Delivery, err)
		}
		return obj, nil
	}
	return nil, fmt.Errorf("recording delivery %s: the object keeps changing", r.Delivery)
}

func deliveriesOf(obj client.Object) []string {
	v := obj.GetAnnotations()[v1alpha1.AnnotationPushDeliveries]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func (d *Deployer) get(ctx context.Context, t Target) (client.Object, error) {
	var obj client.Object = &v1alpha1.ModelServer{}
	if t.Kind == KindTrainingJob {
		obj = &v1alpha1.TrainingJob{}
	}
	return obj, d.Live.Get(ctx, t.NamespacedName, obj)
}

func sourceOf(obj client.Object) v1alpha1.SourceStatus {
	var s *v1alpha1.SourceStatus
	switch o := obj.(type) {
	case *v1alpha1.ModelServer:
		s = o.Status.Source
	case *v1alpha1.TrainingJob:
		s = o.Status.Source
	}
	if s == nil {
		return v1alpha1.SourceStatus{}
	}
	return *s
}

// build runs the commit's build Job and returns the pushed image by digest and the Job's name.
func (d *Deployer) build(ctx context.Context, obj client.Object, cfg Config, commit string) (string, string, error) {
	gvk, err := d.Client.GroupVersionKindFor(obj)
	if err != nil {
		return "", "", err
	}
	base := render.BuildJobBase{
		Namespace: obj.GetNamespace(), Commit: commit, ServiceAccount: cfg.ServiceAccount,
		Owner:    metav1.OwnerReference{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: obj.GetName(), UID: obj.GetUID()},
		Deadline: d.Options.BuildTimeout, Resources: d.Options.Resources,
	}
	destination := cfg.Image + ":" + short(commit)
	var job *batchv1.Job
	if cfg.Build == v1alpha1.PushBuildDockerfile {
		if d.Options.BuilderImage == "" {
			return "", "", errors.New("Dockerfile builds need a builder image: start the manager with --push-builder-image")
		}
		job, err = render.BuildJob(render.BuildInput{
			BuildJobBase: base, BuilderImage: d.Options.BuilderImage, Repository: cfg.Repository, Branch: cfg.Branch,
			Dockerfile: cfg.Dockerfile, Destination: destination, RegistrySecret: cfg.RegistrySecret, GitSecret: cfg.GitSecret,
		})
	} else {
		if d.Options.BuildImage == "" {
			return "", "", errors.New("source builds need the kiln-build image: start the manager with --push-build-image")
		}
		job, err = render.SourceBuildJob(render.SourceBuildInput{
			BuildJobBase: base, Image: d.Options.BuildImage, Repository: cfg.Repository, Branch: cfg.Branch,
			Destination: destination, BaseImage: orDefault(cfg.BaseImage, d.Options.BaseImage),
			GitSecret: cfg.GitSecret, RegistrySecret: cfg.RegistrySecret, Insecure: d.Options.Insecure,
			AllowedHosts: d.Options.Hosts.AllowedHosts, DeniedCIDRs: d.Options.DeniedCIDRs,
		})
	}
	if err != nil {
		return "", "", err
	}
	if err := d.createBuildJob(ctx, job); err != nil {
		return "", job.Name, err
	}
	for {
		digest, err := d.buildResult(ctx, job)
		if err != nil {
			return "", job.Name, err
		}
		if digest != "" {
			return cfg.Image + "@" + digest, job.Name, nil
		}
		select {
		case <-ctx.Done():
			return "", job.Name, fmt.Errorf("build Job %s did not finish in time, see kubectl describe job/%s -n %s", job.Name, job.Name, job.Namespace)
		case <-time.After(d.Options.PollInterval):
		}
	}
}

// createBuildJob creates the commit's build Job. One that already exists is
// this commit's too: a running or successful one is waited for, a failed one
// replaced, so a redelivered push retries the build.
func (d *Deployer) createBuildJob(ctx context.Context, job *batchv1.Job) error {
	for {
		err := d.Client.Create(ctx, job.DeepCopy())
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating build Job %s: %w", job.Name, err)
		}
		existing := &batchv1.Job{}
		if err := d.Client.Get(ctx, client.ObjectKeyFromObject(job), existing); err == nil {
			if jobCondition(existing, batchv1.JobFailed) == nil {
				return nil
			}
			if existing.DeletionTimestamp.IsZero() {
				err := d.Client.Delete(ctx, existing, client.Preconditions{UID: &existing.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground))
				if client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
					return fmt.Errorf("deleting the failed build Job %s: %w", job.Name, err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replacing the failed build Job %s: %w", job.Name, ctx.Err())
		case <-time.After(d.Options.PollInterval):
		}
	}
}

func jobCondition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

// buildResult is the digest a finished build Job reported, "" while it runs.
// Of the pod it reads the exit code and, on success, the termination message,
// which must be a digest and nothing else; no other text of the build's (its
// message on failure, its log) is read, so none can reach status, Events or the
// manager's log.
func (d *Deployer) buildResult(ctx context.Context, job *batchv1.Job) (string, error) {
	current := &batchv1.Job{}
	if err := d.Client.Get(ctx, client.ObjectKeyFromObject(job), current); err != nil {
		return "", client.IgnoreNotFound(err) // not in the cache yet
	}
	failed, complete := jobCondition(current, batchv1.JobFailed), jobCondition(current, batchv1.JobComplete) != nil
	if !complete && failed == nil {
		return "", nil
	}
	var pods corev1.PodList
	if err := d.Client.List(ctx, &pods, client.InNamespace(job.Namespace), client.MatchingLabels{batchv1.JobNameLabel: job.Name}); err != nil {
		return "", err
	}
	var terminated *corev1.ContainerStateTerminated
	for _, p := range pods.Items {
		if !metav1.IsControlledBy(&p, current) {
			continue // a pod of an earlier Job of the same name
		}
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil && cs.Name == "build" {
				terminated = t
			}
		}
	}
	see := fmt.Sprintf("see kubectl logs job/%s -n %s", job.Name, job.Namespace)
	if failed != nil {
		if terminated == nil {
			// The Job controller's reason (DeadlineExceeded, BackoffLimitExceeded, ...), not the build's words.
			return "", fmt.Errorf("build Job %s failed (%s) before its build finished, see kubectl describe job/%s -n %s", job.Name, failed.Reason, job.Name, job.Namespace)
		}
		if terminated.ExitCode == render.BuildExitSuperseded {
			return "", errSuperseded
		}
		oom := ""
		if terminated.Reason == "OOMKilled" {
			oom = ", out of memory"
		}
		return "", fmt.Errorf("%s failed: exit %d%s, %s", render.BuildExitStage(terminated.ExitCode), terminated.ExitCode, oom, see)
	}
	message := ""
	if terminated != nil {
		message = strings.TrimSpace(terminated.Message)
	}
	h, err := v1.NewHash(message)
	if err != nil {
		return "", fmt.Errorf("build Job %s succeeded but reported no digest, %s", job.Name, see)
	}
	return h.String(), nil
}

// deploy points the object at the image: a ModelServer's runtime (its
// Deployment rolls), or, since a TrainingJob's image is immutable, a new
// TrainingJob copied from the annotated one.
func (d *Deployer) deploy(ctx context.Context, obj client.Object, commit, ref string) error {
	src := &v1alpha1.SourceStatus{Commit: commit, Image: ref, Time: ptr.To(metav1.NewTime(d.Clock.Now()))}
	switch o := obj.(type) {
	case *v1alpha1.ModelServer:
		if o.Spec.Runtime.Image != ref {
			patch := client.MergeFrom(o.DeepCopy())
			o.Spec.Runtime.Image = ref
			if err := d.Client.Patch(ctx, o, patch); err != nil {
				return fmt.Errorf("setting the runtime image: %w", err)
			}
		}
		before := o.DeepCopy()
		o.Status.Source = src
		if err := d.Client.Status().Patch(ctx, o, client.MergeFrom(before)); err != nil {
			return fmt.Errorf("recording the deployed commit: %w", err)
		}
	case *v1alpha1.TrainingJob:
		run := runOf(o, commit, ref)
		if err := d.Client.Create(ctx, run); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating TrainingJob %s: %w", run.Name, err)
		}
		before := o.DeepCopy()
		src.TrainingJob = run.Name
		o.Status.Source = src
		if err := d.Client.Status().Patch(ctx, o, client.MergeFrom(before)); err != nil {
			return fmt.Errorf("recording the deployed commit: %w", err)
		}
	}
	d.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, v1alpha1.ReasonDeployed, "Deploy", "deployed %s (%s)%s", ref, short(commit), runNote(sourceOf(obj)))
	ctrl.LoggerFrom(ctx).Info("deployed a push", "commit", commit, "image", ref)
	return nil
}

func runNote(s v1alpha1.SourceStatus) string {
	if s.TrainingJob == "" {
		return ""
	}
	return " as TrainingJob " + s.TrainingJob
}

// runOf is the TrainingJob that runs ref for the template tj: its spec with the
// new image, unsuspended, without the push annotations (it is no template
// itself), owned by the template.
func runOf(tj *v1alpha1.TrainingJob, commit, ref string) *v1alpha1.TrainingJob {
	labels := map[string]string{v1alpha1.LabelPushTemplate: tj.Name}
	for k, v := range tj.Labels {
		labels[k] = v
	}
	annotations := map[string]string{v1alpha1.AnnotationSourceCommit: commit}
	for k, v := range tj.Annotations {
		if !strings.HasPrefix(k, "push.kiln.dev/") && k != "kubectl.kubernetes.io/last-applied-configuration" {
			annotations[k] = v
		}
	}
	spec := *tj.Spec.DeepCopy()
	spec.Image = ref
	spec.Suspend = nil
	return &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{
			Name: render.PushRunName(tj.Name, commit), Namespace: tj.Namespace, Labels: labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: KindTrainingJob, Name: tj.Name, UID: tj.UID}},
		},
		Spec: spec,
	}
}

// failed records a failed build or deployment: a Warning Event and
// status.source. err is Kiln's own words (which stage, which Job), never a
// build's output.
func (d *Deployer) failed(ctx context.Context, obj client.Object, commit string, err error) {
	msg := tail(err.Error(), 1024)
	ctrl.LoggerFrom(ctx).Info("push-to-deploy failed", "commit", commit, "problem", msg)
	d.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, v1alpha1.ReasonBuildFailed, "Build", "%s: %s", short(commit), msg)
	s := sourceOf(obj)
	s.FailedCommit, s.Message = commit, msg
	var werr error
	switch o := obj.(type) {
	case *v1alpha1.ModelServer:
		before := o.DeepCopy()
		o.Status.Source = &s
		werr = d.Client.Status().Patch(ctx, o, client.MergeFrom(before))
	case *v1alpha1.TrainingJob:
		before := o.DeepCopy()
		o.Status.Source = &s
		werr = d.Client.Status().Patch(ctx, o, client.MergeFrom(before))
	}
	if werr != nil {
		ctrl.LoggerFrom(ctx).Error(werr, "recording a failed push")
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n+3:]
}
