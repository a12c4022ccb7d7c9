package push

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/google/go-containerregistry/pkg/authn"
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
	"kiln.dev/kiln/internal/build"
	"kiln.dev/kiln/internal/render"
)

// A push reads the annotated object and its Secrets live, patches a ModelServer's
// runtime image, creates a TrainingJob's runs and Dockerfile build Jobs, and
// records the outcome in status and Events.
//
// +kubebuilder:rbac:groups=kiln.dev,resources=modelservers,verbs=get;patch
// +kubebuilder:rbac:groups=kiln.dev,resources=trainingjobs,verbs=get;create
// +kubebuilder:rbac:groups=kiln.dev,resources=modelservers/status;trainingjobs/status,verbs=patch
// (No Secret reads: builds run as Jobs in the tenant namespace, which mount the Secrets
// they need; see issue 21.)
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Options bound and configure the builds.
type Options struct {
	// Workers build at once, each for a different object (default 2).
	Workers int
	// MaxQueued objects may wait for a build (default 32); more are refused with 503.
	MaxQueued int
	// BaseImage of source builds whose object names none ("" is the builder's
	// per-language default).
	BaseImage string
	// Insecure lets builds reach registries over plain HTTP.
	Insecure bool
	// MaxRepoBytes bounds what a fetch writes (default 256 MiB).
	MaxRepoBytes int64
	// FetchTimeout bounds a fetch (default 2 minutes), BuildTimeout a build
	// (default 20 minutes, for a Dockerfile build Job too).
	FetchTimeout, BuildTimeout time.Duration
	// BuilderImage runs Dockerfile builds; empty refuses them.
	BuilderImage string
	// WorkDir holds the fetched sources while they build (default the system's).
	WorkDir string
	// PollInterval between looks at a build Job (default 2s).
	PollInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 32
	}
	if o.MaxRepoBytes <= 0 {
		o.MaxRepoBytes = 256 << 20
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 2 * time.Minute
	}
	if o.BuildTimeout <= 0 {
		o.BuildTimeout = 20 * time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	return o
}

// BuildFunc builds a source directory and pushes it: build.Build.
type BuildFunc func(context.Context, build.Options) (build.Result, error)

// Deployer builds verified pushes, one at a time per object, and deploys the
// result. It is a manager Runnable on every replica: whichever replica receives
// an event builds it.
type Deployer struct {
	// Client writes, and reads what the manager caches (Jobs, Kiln's pods).
	Client client.Client
	// Live reads objects and Secrets from the API server.
	Live     client.Reader
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Build    BuildFunc
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

// errUpToDate: the branch's head is what the object already runs.
var errUpToDate = errors.New("already deployed")

// Deploy builds the branch's head for one object and deploys it, recording the
// outcome in Events and status.source.
func (d *Deployer) Deploy(ctx context.Context, r Request) {
	d.init()
	log := ctrl.LoggerFrom(ctx).WithValues("target", r.Target.String(), "pushed", short(r.Commit))
	ctx = ctrl.LoggerInto(ctx, log)
	obj, err := d.get(ctx, r.Target)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			log.Error(err, "reading the object of a push")
		}
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
	d.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, v1alpha1.ReasonBuildStarted, "Build",
		"building branch %s of %s (%s build; pushed %s)", cfg.Branch, cfg.Repository, cfg.Build, short(r.Commit))
	ctx, cancel := context.WithTimeout(ctx, d.Options.FetchTimeout+d.Options.BuildTimeout)
	defer cancel()
	ref, commit, err := d.build(ctx, obj, cfg, sourceOf(obj))
	switch {
	case errors.Is(err, errUpToDate):
		d.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, v1alpha1.ReasonDeployed, "Build",
			"branch %s is at %s, which is already deployed", cfg.Branch, short(commit))
		return
	case err != nil:
		d.failed(ctx, obj, orDefault(commit, r.Commit), err)
		return
	}
	d.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, v1alpha1.ReasonBuildSucceeded, "Build", "built %s into %s", short(commit), ref)
	if err := d.deploy(ctx, obj, commit, ref); err != nil {
		d.failed(ctx, obj, commit, err)
	}
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

// build makes the image of the branch's head and returns its digest reference and commit.
func (d *Deployer) build(ctx context.Context, obj client.Object, cfg Config, deployed v1alpha1.SourceStatus) (string, string, error) {
	auth, err := d.gitAuth(ctx, obj.GetNamespace(), cfg.GitSecret)
	if err != nil {
		return "", "", err
	}
	if cfg.Build == v1alpha1.PushBuildDockerfile {
		fctx, cancel := context.WithTimeout(ctx, d.Options.FetchTimeout)
		commit, err := Head(fctx, cfg.Repository, cfg.Branch, auth)
		cancel()
		if err != nil {
			return "", "", err
		}
		if commit == deployed.Commit {
			return "", commit, errUpToDate
		}
		ref, err := d.dockerfileBuild(ctx, obj, cfg, commit)
		return ref, commit, err
	}
	var kc authn.Keychain = keychain{}
	if cfg.RegistrySecret != "" {
		s := &corev1.Secret{}
		if err := d.Live.Get(ctx, client.ObjectKey{Namespace: obj.GetNamespace(), Name: cfg.RegistrySecret}, s); err != nil {
			return "", "", fmt.Errorf("reading the registry Secret: %w", err)
		}
		if kc, err = keychainFrom(s); err != nil {
			return "", "", err
		}
	}
	dir, err := os.MkdirTemp(d.Options.WorkDir, "kiln-push-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	fctx, cancel := context.WithTimeout(ctx, d.Options.FetchTimeout)
	commit, err := Fetch(fctx, cfg.Repository, cfg.Branch, src, filepath.Join(dir, "git"), auth, d.Options.MaxRepoBytes)
	cancel()
	if err != nil {
		return "", "", err
	}
	if commit == deployed.Commit {
		return "", commit, errUpToDate
	}
	progress := logWriter(ctx)
	defer progress.Close()
	res, err := d.Build(ctx, build.Options{
		Dir:      src,
		Base:     orDefault(cfg.BaseImage, d.Options.BaseImage),
		Target:   cfg.Image + ":" + short(commit),
		Keychain: kc,
		Insecure: d.Options.Insecure,
		Progress: progress,
	})
	if err != nil {
		return "", commit, fmt.Errorf("building %s: %w", short(commit), err)
	}
	return res.Reference, commit, nil
}

func (d *Deployer) gitAuth(ctx context.Context, ns, name string) (transport.AuthMethod, error) {
	if name == "" {
		return nil, nil
	}
	s := &corev1.Secret{}
	if err := d.Live.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		return nil, fmt.Errorf("reading the Git Secret: %w", err)
	}
	return &githttp.BasicAuth{Username: string(s.Data[corev1.BasicAuthUsernameKey]), Password: string(s.Data[corev1.BasicAuthPasswordKey])}, nil
}

// dockerfileBuild runs the build Job of commit and reads the digest it reports.
func (d *Deployer) dockerfileBuild(ctx context.Context, obj client.Object, cfg Config, commit string) (string, error) {
	if d.Options.BuilderImage == "" {
		return "", errors.New("Dockerfile builds need a builder image: start the manager with --push-builder-image")
	}
	gvk, err := d.Client.GroupVersionKindFor(obj)
	if err != nil {
		return "", err
	}
	// Not a controller reference: the object's controller must not take the build
	// Job for one of its own.
	owner := metav1.OwnerReference{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: obj.GetName(), UID: obj.GetUID()}
	job, err := render.BuildJob(render.BuildInput{
		Namespace: obj.GetNamespace(), Owner: owner, BuilderImage: d.Options.BuilderImage,
		Repository: cfg.Repository, Branch: cfg.Branch, Commit: commit, Dockerfile: cfg.Dockerfile,
		Destination: cfg.Image + ":" + short(commit), RegistrySecret: cfg.RegistrySecret, GitSecret: cfg.GitSecret,
		Deadline: d.Options.BuildTimeout,
	})
	if err != nil {
		return "", err
	}
	if err := d.createBuildJob(ctx, job); err != nil {
		return "", err
	}
	for {
		digest, err := d.buildResult(ctx, job)
		if err != nil {
			return "", fmt.Errorf("build Job %s: %w", job.Name, err)
		}
		if digest != "" {
			return cfg.Image + "@" + digest, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("build Job %s did not finish: %w", job.Name, ctx.Err())
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
			return fmt.Errorf("creating the build Job: %w", err)
		}
		existing := &batchv1.Job{}
		if err := d.Client.Get(ctx, client.ObjectKeyFromObject(job), existing); err == nil {
			if jobCondition(existing, batchv1.JobFailed) == nil {
				return nil
			}
			if existing.DeletionTimestamp.IsZero() {
				err := d.Client.Delete(ctx, existing, client.Preconditions{UID: &existing.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground))
				if client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
					return fmt.Errorf("deleting the failed build Job: %w", err)
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
	message := ""
	for _, p := range pods.Items {
		if !metav1.IsControlledBy(&p, current) {
			continue // a pod of an earlier Job of the same name
		}
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil && t.Message != "" {
				message = strings.TrimSpace(t.Message)
			}
		}
	}
	if failed != nil {
		return "", fmt.Errorf("failed: %s %s", failed.Message, tail(message, 512))
	}
	h, err := v1.NewHash(message)
	if err != nil {
		return "", fmt.Errorf("succeeded, but its termination message is not an image digest: %q", tail(message, 128))
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

// failed records a failed build or deployment: a Warning Event and status.source.
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

// logWriter logs the builder's progress lines (which hold no secrets).
func logWriter(ctx context.Context) io.WriteCloser {
	r, w := io.Pipe()
	log := ctrl.LoggerFrom(ctx)
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			log.V(1).Info("build", "step", s.Text())
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	return w
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n+3:]
}
