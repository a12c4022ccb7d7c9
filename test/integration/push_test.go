package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/build"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/push"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/test/framework"
)

// pushEnv is push-to-deploy's receiver and deployer on a real API server, with
// the manager's cache and repository index, a Git server and a registry.
type pushEnv struct {
	*env
	git      *framework.GitServer
	registry string
	base     string
	receiver *push.Receiver
	deployer *push.Deployer
	recorder *events.FakeRecorder
}

func newPushEnv(t *testing.T, o push.Options) *pushEnv {
	e := &pushEnv{env: newEnv(t), git: framework.NewGitServer(t), recorder: events.NewFakeRecorder(100)}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	e.registry = strings.TrimPrefix(reg.URL, "http://")
	e.base = e.registry + "/base:1"
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(e.base)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}

	scheme, err := manager.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(plane.Config, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := push.IndexFields(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{&v1alpha1.ModelServer{}, &v1alpha1.TrainingJob{}} {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("the cache did not sync")
	}
	o.PollInterval = 100 * time.Millisecond
	e.deployer = &push.Deployer{Client: e.c, Live: e.c, Recorder: e.recorder, Clock: clock.RealClock{}, Build: build.Build, Options: o}
	go func() { _ = e.deployer.Start(ctx) }()
	e.receiver = &push.Receiver{
		Targets:    &push.ClusterTargets{Cache: c, Live: e.c},
		Queue:      e.deployer,
		Deliveries: push.NewDeliveries(100, time.Hour, clock.RealClock{}),
	}
	return e
}

func (e *pushEnv) annotations(repo, secret string) map[string]string {
	return map[string]string{
		v1alpha1.AnnotationPushRepository:    repo,
		v1alpha1.AnnotationPushWebhookSecret: secret,
		v1alpha1.AnnotationPushImage:         e.registry + "/team/model",
		v1alpha1.AnnotationPushBaseImage:     e.base,
	}
}

func (e *pushEnv) secret(name, value string) {
	e.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}, StringData: map[string]string{v1alpha1.PushWebhookSecretKey: value}}
	if err := e.c.Create(context.Background(), s); err != nil {
		e.t.Fatal(err)
	}
}

// send posts a GitHub push event for repo's branch, signed with secret.
func (e *pushEnv) send(repo, branch, commit, secret, delivery string) (int, push.Reply) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/" + branch, "after": commit, "repository": map[string]any{"clone_url": repo}})
	req := httptest.NewRequest(http.MethodPost, push.GitHubPath, strings.NewReader(string(body)))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", push.Sign(body, []byte(secret)))
	rec := httptest.NewRecorder()
	e.receiver.Handler(push.GitHub).ServeHTTP(rec, req)
	var reply push.Reply
	_ = json.Unmarshal(rec.Body.Bytes(), &reply)
	return rec.Code, reply
}

// A TrainingJob is a template: a signed push creates a run of the pushed commit
// with the built image, and records it in the template's status; a bad
// signature, a replay and an unknown repository change nothing.
func TestPushTrainingJobTemplate(t *testing.T) {
	ctx := context.Background()
	e := newPushEnv(t, push.Options{})
	repo := e.git.Repo("trainer")
	commit := e.git.Commit("trainer", "main", map[string]string{"requirements.txt": "torch\n", "train.py": "print('train')\n"})
	e.secret("hook", "right")

	tj := &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{Name: "resnet", Namespace: e.ns, Labels: map[string]string{"team": "vision"},
			Annotations: e.annotations(strings.Replace(repo, "http://", "HTTP://", 1)+"/", "hook")},
		Spec: v1alpha1.TrainingJobSpec{Image: "registry.example/resnet:1", Command: []string{"python", "train.py"}, Suspend: ptr.To(true)},
	}
	if err := e.c.Create(ctx, tj); err != nil {
		t.Fatal(err)
	}
	// The cache's index finds it by another spelling of the URL.
	framework.Eventually(t, 30*time.Second, func() error {
		found, err := e.receiver.Targets.Find(ctx, []string{push.RepoKey(repo)})
		if err != nil || len(found) != 1 || found[0].Name != "resnet" || found[0].Kind != push.KindTrainingJob {
			return fmt.Errorf("found %+v, %v; want TrainingJob resnet", found, err)
		}
		return nil
	})

	if code, reply := e.send(repo, "main", commit, "wrong", "d0"); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d %+v, want 401", code, reply)
	}
	if code, reply := e.send(e.git.URL+"/other.git", "main", commit, "right", "d1"); code != http.StatusNotFound {
		t.Fatalf("unknown repository: %d %+v, want 404", code, reply)
	}
	if code, reply := e.send(repo, "main", commit, "right", "d2"); code != http.StatusAccepted || len(reply.Queued) != 1 {
		t.Fatalf("signed push: %d %+v, want 202 with the TrainingJob queued", code, reply)
	}
	if code, reply := e.send(repo, "main", commit, "right", "d2"); code != http.StatusOK || len(reply.Queued) != 0 {
		t.Fatalf("replay: %d %+v, want 200 with nothing queued", code, reply)
	}

	run := &v1alpha1.TrainingJob{}
	runName := render.PushRunName("resnet", commit)
	framework.Eventually(t, 2*time.Minute, func() error {
		err := e.c.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: runName}, run)
		if err != nil {
			template := &v1alpha1.TrainingJob{}
			_ = e.c.Get(ctx, client.ObjectKeyFromObject(tj), template)
			return fmt.Errorf("%w (template status.source %+v)", err, template.Status.Source)
		}
		return nil
	})
	if !strings.HasPrefix(run.Spec.Image, e.registry+"/team/model@sha256:") {
		t.Errorf("the run's image %q is not the pushed digest", run.Spec.Image)
	}
	if run.Spec.Suspend != nil || run.Labels[v1alpha1.LabelPushTemplate] != "resnet" || run.Labels["team"] != "vision" ||
		run.Annotations[v1alpha1.AnnotationSourceCommit] != commit || run.Annotations[v1alpha1.AnnotationPushRepository] != "" {
		t.Errorf("the run is not the template's unsuspended copy for %s: labels %v, annotations %v, suspend %v", commit, run.Labels, run.Annotations, run.Spec.Suspend)
	}
	if len(run.OwnerReferences) != 1 || run.OwnerReferences[0].UID != tj.UID {
		t.Errorf("the run's owners %+v, want the template", run.OwnerReferences)
	}
	framework.Eventually(t, 30*time.Second, func() error {
		if err := e.c.Get(ctx, client.ObjectKeyFromObject(tj), tj); err != nil {
			return err
		}
		if s := tj.Status.Source; s == nil || s.Commit != commit || s.Image != run.Spec.Image || s.TrainingJob != runName {
			return fmt.Errorf("template status.source %+v", s)
		}
		return nil
	})
	if tj.Spec.Image != "registry.example/resnet:1" {
		t.Errorf("the template's image changed to %s", tj.Spec.Image)
	}

	// The same head again is not built again.
	if code, _ := e.send(repo, "main", commit, "right", "d3"); code != http.StatusAccepted {
		t.Fatalf("second delivery: %d, want 202", code)
	}
	framework.Eventually(t, time.Minute, func() error {
		for {
			select {
			case ev := <-e.recorder.Events:
				if strings.Contains(ev, "already deployed") {
					return nil
				}
			default:
				return fmt.Errorf("no event says the head is already deployed")
			}
		}
	})
	var runs v1alpha1.TrainingJobList
	if err := e.c.List(ctx, &runs, client.InNamespace(e.ns), client.MatchingLabels{v1alpha1.LabelPushTemplate: "resnet"}); err != nil || len(runs.Items) != 1 {
		t.Errorf("runs %d (%v), want 1", len(runs.Items), err)
	}
}

// A Dockerfile build: the deployer creates the build Job of the branch's head,
// and once the Job succeeded reads the digest from its pod's termination message
// and rolls the ModelServer to it. The test plays the Job controller and the
// builder; a failed build leaves the image alone and says why in status.
func TestPushDockerfileBuild(t *testing.T) {
	ctx := context.Background()
	e := newPushEnv(t, push.Options{BuilderImage: "registry.example/kaniko-executor:v1"})
	repo := e.git.Repo("server")
	commit := e.git.Commit("server", "main", map[string]string{"Dockerfile": "FROM python:3.12-slim\n"})
	ann := e.annotations(repo, "hook")
	ann[v1alpha1.AnnotationPushBuild] = v1alpha1.PushBuildDockerfile
	ms := &v1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Name: "server", Namespace: e.ns, Annotations: ann},
		Spec: v1alpha1.ModelServerSpec{
			Model:   v1alpha1.ModelSource{URI: "pvc://models"},
			Runtime: v1alpha1.ServingRuntime{Image: "registry.example/server:1", Port: ptr.To[int32](8080)},
		},
	}
	if err := e.c.Create(ctx, ms); err != nil {
		t.Fatal(err)
	}
	target := push.Target{Kind: push.KindModelServer, NamespacedName: client.ObjectKeyFromObject(ms)}
	var err error
	if target.Config, err = push.ConfigFrom(ann); err != nil {
		t.Fatal(err)
	}

	// A build that fails.
	done := make(chan struct{})
	go func() { e.deployer.Deploy(ctx, push.Request{Target: target, Commit: commit}); close(done) }()
	job := e.finishBuildJob(render.BuildJobName("server", commit), false, "error: unable to push to the registry", "")
	<-done
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(ms), ms); err != nil {
		t.Fatal(err)
	}
	if s := ms.Status.Source; ms.Spec.Runtime.Image != "registry.example/server:1" || s == nil || s.FailedCommit != commit || !strings.Contains(s.Message, "unable to push") {
		t.Fatalf("after a failed build: image %s, status.source %+v; want the old image and the failure", ms.Spec.Runtime.Image, s)
	}
	if want := "--context=git://" + strings.TrimPrefix(repo, "http://") + "#refs/heads/main#" + commit; job.Spec.Template.Spec.Containers[0].Args[0] != want {
		t.Errorf("build context %q, want %q", job.Spec.Template.Spec.Containers[0].Args[0], want)
	}

	// The push again: the failed Job is replaced, and this build succeeds. (Nothing
	// collects the old Job's pod here: the new Job's is told apart by its owner.)
	digest := "sha256:" + strings.Repeat("ab", 32)
	done = make(chan struct{})
	go func() { e.deployer.Deploy(ctx, push.Request{Target: target, Commit: commit}); close(done) }()
	if again := e.finishBuildJob(render.BuildJobName("server", commit), true, digest+"\n", job.UID); again.UID == job.UID {
		t.Fatal("the failed build Job was not replaced")
	}
	<-done
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(ms), ms); err != nil {
		t.Fatal(err)
	}
	want := e.registry + "/team/model@" + digest
	if s := ms.Status.Source; ms.Spec.Runtime.Image != want || s == nil || s.Commit != commit || s.Image != want || s.FailedCommit != "" {
		t.Fatalf("after the build: image %s, status.source %+v; want %s", ms.Spec.Runtime.Image, s, want)
	}
}

// finishBuildJob waits for the build Job, then does what the Job controller and
// the builder would: a pod that terminated with message, and the Job's final
// conditions.
func (e *pushEnv) finishBuildJob(name string, succeeded bool, message string, notUID types.UID) *batchv1.Job {
	e.t.Helper()
	ctx := context.Background()
	job := &batchv1.Job{}
	framework.Eventually(e.t, time.Minute, func() error {
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: name}, job); err != nil {
			return err
		}
		if job.UID == notUID {
			return fmt.Errorf("build Job %s is still the earlier one", name)
		}
		return nil
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: e.ns, Labels: map[string]string{batchv1.JobNameLabel: name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: name, UID: job.UID, Controller: ptr.To(true)}}},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
	if err := e.c.Create(ctx, pod); err != nil {
		e.t.Fatal(err)
	}
	exit := int32(0)
	if !succeeded {
		exit = 1
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodSucceeded
	if !succeeded {
		pod.Status.Phase = corev1.PodFailed
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "build", Image: job.Spec.Template.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Message: message, StartedAt: now, FinishedAt: now}}}}
	if err := e.c.Status().Update(ctx, pod); err != nil {
		e.t.Fatal(err)
	}
	job.Status.StartTime = &now
	if succeeded {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &now
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	} else {
		job.Status.Failed = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now},
		}
	}
	if err := e.c.Status().Update(ctx, job); err != nil {
		e.t.Fatal(err)
	}
	return job
}
