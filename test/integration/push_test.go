package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/push"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/source"
	"kiln.dev/kiln/internal/sourcebuild"
	"kiln.dev/kiln/test/framework"
)

// pushEnv is push-to-deploy's receiver and deployer on a real API server, with
// the manager's cache and repository index, a Git server (HTTPS, on loopback, so
// the host policy allows its address by name as an administrator would) and a
// registry. There is no kubelet: the test plays the build Job's pod (see
// runBuildJob), running kiln-build in-process with the Job's arguments.
type pushEnv struct {
	*env
	git      *framework.GitServer
	gitHost  string
	registry string
	base     string
	receiver *push.Receiver
	deployer *push.Deployer
	recorder *events.FakeRecorder
	// log is what the deployer logs: the manager's log in this test.
	log *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newPushEnv(t *testing.T, o push.Options) *pushEnv {
	e := &pushEnv{env: newEnv(t), git: framework.NewTLSGitServer(t), recorder: events.NewFakeRecorder(100), log: &syncBuffer{}}
	e.gitHost = strings.TrimPrefix(e.git.URL, "https://")
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
	if o.BuildImage == "" {
		o.BuildImage = "registry.example/kiln-build:test"
	}
	o.Hosts = source.Policy{AllowedHosts: []string{e.gitHost}}
	e.deployer = &push.Deployer{Client: e.c, Live: e.c, Recorder: e.recorder, Clock: clock.RealClock{}, Options: o}
	go func() { _ = e.deployer.Start(e.logCtx(ctx)) }()
	e.receiver = &push.Receiver{
		Targets:    &push.ClusterTargets{Cache: c, Live: e.c},
		Queue:      e.deployer,
		Deliveries: push.NewDeliveries(100, time.Hour, clock.RealClock{}),
	}
	return e
}

// logCtx carries the logger whose output stands for the manager's log.
func (e *pushEnv) logCtx(ctx context.Context) context.Context {
	return ctrl.LoggerInto(ctx, zap.New(zap.WriteTo(e.log), zap.UseDevMode(false)))
}

func (e *pushEnv) annotations(repo, secret string) map[string]string {
	return map[string]string{
		v1alpha1.AnnotationPushRepository:    repo,
		v1alpha1.AnnotationPushWebhookSecret: secret,
		v1alpha1.AnnotationPushImage:         e.registry + "/team/model",
		v1alpha1.AnnotationPushBaseImage:     e.base,
		v1alpha1.AnnotationPushGitSecret:     "git",
	}
}

func (e *pushEnv) secret(name, value string) {
	e.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}, StringData: map[string]string{v1alpha1.PushWebhookSecretKey: value}}
	if err := e.c.Create(context.Background(), s); err != nil {
		e.t.Fatal(err)
	}
	// The Git Secret: only the CA of the test's Git server (a public repository).
	g := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git", Namespace: e.ns}, Data: map[string][]byte{source.KeyCABundle: e.git.CA}}
	if err := e.c.Create(context.Background(), g); client.IgnoreAlreadyExists(err) != nil {
		e.t.Fatal(err)
	}
}

// send posts a GitHub push event for repo's branch, signed with secret.
func (e *pushEnv) send(repo, branch, commit, secret, delivery string) (int, push.Reply) {
	e.t.Helper()
	return sendTo(e.receiver, repo, branch, commit, secret, delivery)
}

func sendTo(r *push.Receiver, repo, branch, commit, secret, delivery string) (int, push.Reply) {
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/" + branch, "after": commit, "repository": map[string]any{"clone_url": repo}})
	req := httptest.NewRequest(http.MethodPost, push.GitHubPath, strings.NewReader(string(body)))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", push.Sign(body, []byte(secret)))
	rec := httptest.NewRecorder()
	r.Handler(push.GitHub).ServeHTTP(rec, req)
	var reply push.Reply
	_ = json.Unmarshal(rec.Body.Bytes(), &reply)
	return rec.Code, reply
}

// runBuildJob plays the kubelet for a source build Job: it mounts the Job's
// Secret volumes (writes their data to directories), runs kiln-build with the
// container's arguments pointed at them, and reports what a kubelet would: the
// pod terminated with kiln-build's exit code and, as its termination message,
// the file kiln-build wrote. It returns the Job and the pod's log (kiln-build's
// output), which is the tenant's and which Kiln never reads.
func (e *pushEnv) runBuildJob(name string, notUID types.UID) (*batchv1.Job, string) {
	e.t.Helper()
	job := e.waitForJob(name, notUID)
	spec := job.Spec.Template.Spec
	c := spec.Containers[0]
	mounts := map[string]string{}
	for _, v := range spec.Volumes {
		dir := e.t.TempDir()
		mounts[v.Name] = dir
		if v.Secret == nil {
			continue
		}
		s := &corev1.Secret{}
		if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: v.Secret.SecretName}, s); err != nil {
			e.t.Fatal(err)
		}
		for k, data := range s.Data {
			path := k
			for _, it := range v.Secret.Items {
				if it.Key == k {
					path = it.Path
				}
			}
			if len(v.Secret.Items) > 0 && path == k {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, path), data, 0o400); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	var args []string
	for _, a := range c.Args {
		for _, m := range c.VolumeMounts {
			if v, ok := strings.CutPrefix(a, "--"); ok && strings.HasSuffix(v, "="+m.MountPath) {
				a = strings.TrimSuffix(a, m.MountPath) + mounts[m.Name]
			}
		}
		args = append(args, a)
	}
	termination := filepath.Join(e.t.TempDir(), "termination-log")
	args = append(args, "--termination-log="+termination)
	var out bytes.Buffer
	code := sourcebuild.Run(context.Background(), args, &out, &out)
	message, _ := os.ReadFile(termination)
	e.finishPod(job, int32(code), string(message))
	return job, out.String()
}

func (e *pushEnv) waitForJob(name string, notUID types.UID) *batchv1.Job {
	e.t.Helper()
	job := &batchv1.Job{}
	framework.Eventually(e.t, time.Minute, func() error {
		if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: name}, job); err != nil {
			return err
		}
		if job.UID == notUID {
			return fmt.Errorf("build Job %s is still the earlier one", name)
		}
		return nil
	})
	return job
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
			Annotations: e.annotations(strings.Replace(repo, "https://", "HTTPS://", 1)+"/", "hook")},
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

	// The build Job, in the template's namespace, as its tenant would run it.
	job, buildLog := e.runBuildJob(render.BuildJobName("resnet", commit), "")
	if job.Namespace != e.ns || job.Spec.Template.Spec.ServiceAccountName != "default" {
		t.Errorf("build Job in %s as %s, want the template's namespace and its default ServiceAccount", job.Namespace, job.Spec.Template.Spec.ServiceAccountName)
	}
	if !strings.Contains(buildLog, "pushed") {
		t.Errorf("kiln-build's log does not say it pushed:\n%s", buildLog)
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

// A Dockerfile build: the deployer creates the build Job of the pushed commit,
// and once the Job succeeded reads the digest from its pod's termination message
// and rolls the ModelServer to it. The test plays the Job controller and the
// builder; a failed build leaves the image alone and says in status which Job
// failed and how, without a word of the builder's.
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
	jobName := render.BuildJobName("server", commit)

	// A build that fails, with words of the builder's in its termination message.
	const builderWords = "error: unable to push to the registry SECRET-ish-BUILDER-OUTPUT"
	done := make(chan struct{})
	go func() { e.deployer.Deploy(e.logCtx(ctx), push.Request{Target: target, Commit: commit}); close(done) }()
	job := e.waitForJob(jobName, "")
	e.finishPod(job, 1, builderWords)
	<-done
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(ms), ms); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("exit 1, see kubectl logs job/%s -n %s", jobName, e.ns)
	if s := ms.Status.Source; ms.Spec.Runtime.Image != "registry.example/server:1" || s == nil || s.FailedCommit != commit || !strings.Contains(s.Message, want) {
		t.Fatalf("after a failed build: image %s, status.source %+v; want the old image and a failure saying %q", ms.Spec.Runtime.Image, s, want)
	}
	e.assertNowhere("SECRET-ish-BUILDER-OUTPUT", ms)
	if want := "--context=git://" + strings.TrimPrefix(repo, "https://") + "#refs/heads/main#" + commit; job.Spec.Template.Spec.Containers[0].Args[0] != want {
		t.Errorf("build context %q, want %q", job.Spec.Template.Spec.Containers[0].Args[0], want)
	}

	// The push again: the failed Job is replaced, and this build succeeds. (Nothing
	// collects the old Job's pod here: the new Job's is told apart by its owner.)
	digest := "sha256:" + strings.Repeat("ab", 32)
	done = make(chan struct{})
	go func() { e.deployer.Deploy(ctx, push.Request{Target: target, Commit: commit}); close(done) }()
	again := e.waitForJob(jobName, job.UID)
	e.finishPod(again, 0, digest+"\n")
	<-done
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(ms), ms); err != nil {
		t.Fatal(err)
	}
	image := e.registry + "/team/model@" + digest
	if s := ms.Status.Source; ms.Spec.Runtime.Image != image || s == nil || s.Commit != commit || s.Image != image || s.FailedCommit != "" {
		t.Fatalf("after the build: image %s, status.source %+v; want %s", ms.Spec.Runtime.Image, s, image)
	}

	// A build that succeeds but reports anything but a digest deploys nothing
	// and quotes nothing of what it reported.
	next := e.git.Commit("server", "main", map[string]string{"Dockerfile": "FROM python:3.13-slim\n"})
	done = make(chan struct{})
	go func() { e.deployer.Deploy(e.logCtx(ctx), push.Request{Target: target, Commit: next}); close(done) }()
	e.finishPod(e.waitForJob(render.BuildJobName("server", next), ""), 0, "TOKEN-LOOKALIKE eyJhbGciOi")
	<-done
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(ms), ms); err != nil {
		t.Fatal(err)
	}
	if s := ms.Status.Source; ms.Spec.Runtime.Image != image || s.FailedCommit != next || !strings.Contains(s.Message, "succeeded but reported no digest") {
		t.Fatalf("after a build without a digest: image %s, status.source %+v", ms.Spec.Runtime.Image, s)
	}
	e.assertNowhere("TOKEN-LOOKALIKE", ms)
}

// A push of a repository that tries to reach out of its checkout (a symlink
// out, one out through another link, a file:// submodule) fails in the build
// Job with the path named in the Job's log, and the status, the Events and the
// manager's log say which stage failed and which Job to read, with nothing of
// the file it points at. (Git has no hard links: a checkout cannot hold one;
// VerifyDir's unit tests cover them in local sources.)
func TestPushRefusesEscapingCheckouts(t *testing.T) {
	ctx := context.Background()
	e := newPushEnv(t, push.Options{})
	e.secret("hook", "right")
	const marker = "KILN-MARKER-7f3e9b1d-content-of-the-token"
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	up := strings.Repeat("../", 30) + strings.TrimPrefix(secretFile, "/")
	tests := []struct {
		name  string
		files map[string]string
		links map[string]string
		path  string
	}{
		{name: "symlink out", files: map[string]string{"main.go": "package main\nfunc main() {}\n"}, links: map[string]string{"go.mod": up}, path: "go.mod"},
		{name: "absolute symlink", files: map[string]string{"requirements.txt": "x\n", "main.py": "print(1)\n"}, links: map[string]string{"data.txt": secretFile}, path: "data.txt"},
		{name: "through another link", files: map[string]string{"requirements.txt": "x\n", "main.py": "print(1)\n"},
			links: map[string]string{"top": ".", "d/up": "../top/" + up}, path: "d/up"},
		{name: "file submodule", files: map[string]string{"requirements.txt": "x\n", "main.py": "print(1)\n",
			".gitmodules": "[submodule \"s\"]\n\tpath = s\n\turl = file://" + filepath.Dir(secretFile) + "\n"}, path: ".gitmodules"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("escape%d", i)
			repo := e.git.Repo(name)
			commit := e.git.CommitLinks(name, "main", tc.files, tc.links)
			ms := &v1alpha1.ModelServer{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Annotations: e.annotations(repo, "hook")},
				Spec: v1alpha1.ModelServerSpec{Model: v1alpha1.ModelSource{URI: "pvc://models"},
					Runtime: v1alpha1.ServingRuntime{Image: "registry.example/server:1", Port: ptr.To[int32](8080)}},
			}
			if err := e.c.Create(ctx, ms); err != nil {
				t.Fatal(err)
			}
			framework.Eventually(t, 30*time.Second, func() error {
				if code, reply := e.send(repo, "main", commit, "right", "d-"+name); code != http.StatusAccepted {
					return fmt.Errorf("push: %d %+v", code, reply)
				}
				return nil
			})
			jobName := render.BuildJobName(name, commit)
			_, buildLog := e.runBuildJob(jobName, "")
			if !strings.Contains(buildLog, tc.path) || strings.Contains(buildLog, marker) {
				t.Errorf("the build Job's log should name %s and hold nothing of the file:\n%s", tc.path, buildLog)
			}
			want := fmt.Sprintf("failed: exit %d, see kubectl logs job/%s -n %s", render.BuildExitUnsafe, jobName, e.ns)
			framework.Eventually(t, time.Minute, func() error {
				if err := e.c.Get(ctx, client.ObjectKeyFromObject(ms), ms); err != nil {
					return err
				}
				if s := ms.Status.Source; s == nil || s.FailedCommit != commit || !strings.Contains(s.Message, want) {
					return fmt.Errorf("status.source %+v, want a failure saying %q", s, want)
				}
				return nil
			})
			if ms.Spec.Runtime.Image != "registry.example/server:1" {
				t.Errorf("the runtime image changed to %s", ms.Spec.Runtime.Image)
			}
			e.assertNowhere(marker, ms)
		})
	}
}

// Repository URLs that reach no Git host are refused: at admission (the
// annotation's syntax) and at delivery (where the host resolves), before any
// build Job exists.
func TestPushRefusesRepositoryURLs(t *testing.T) {
	for _, tc := range []struct{ url, problem string }{
		{"file:///var/run/secrets/kubernetes.io/serviceaccount", "file:// URLs are refused"},
		{"git://github.com/acme/model.git", "git:// URLs are refused"},
	} {
		if _, err := push.ConfigFrom(map[string]string{v1alpha1.AnnotationPushRepository: tc.url, v1alpha1.AnnotationPushWebhookSecret: "h",
			v1alpha1.AnnotationPushImage: "r.example/m"}); err == nil || !strings.Contains(err.Error(), tc.problem) {
			t.Errorf("%s: %v, want %q", tc.url, err, tc.problem)
		}
	}
	ctx := context.Background()
	e := newPushEnv(t, push.Options{})
	for i, tc := range []struct{ url, problem string }{
		{"https://127.0.0.1:1/acme/model.git", "loopback"},
		{"https://localhost/acme/model.git", "loopback"},
		{"https://169.254.169.254/latest/meta-data", "link-local"},
		{"https://[fe80::1]/acme/model.git", "link-local"},
	} {
		name := fmt.Sprintf("url%d", i)
		ann := e.annotations(tc.url, "hook")
		ms := &v1alpha1.ModelServer{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Annotations: ann},
			Spec: v1alpha1.ModelServerSpec{Model: v1alpha1.ModelSource{URI: "pvc://models"},
				Runtime: v1alpha1.ServingRuntime{Image: "registry.example/server:1", Port: ptr.To[int32](8080)}},
		}
		if err := e.c.Create(ctx, ms); err != nil {
			t.Fatal(err)
		}
		cfg, err := push.ConfigFrom(ann)
		if err != nil {
			t.Fatal(err)
		}
		commit := strings.Repeat("c", 40)
		e.deployer.Deploy(ctx, push.Request{Target: push.Target{Kind: push.KindModelServer, NamespacedName: client.ObjectKeyFromObject(ms), Config: cfg}, Commit: commit, Provider: push.GitHub, Delivery: name})
		if err := e.c.Get(ctx, client.ObjectKeyFromObject(ms), ms); err != nil {
			t.Fatal(err)
		}
		if s := ms.Status.Source; s == nil || !strings.Contains(s.Message, "repository refused") || !strings.Contains(s.Message, tc.problem) {
			t.Errorf("%s: status.source %+v, want it refused as %s", tc.url, s, tc.problem)
		}
		job := &batchv1.Job{}
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: render.BuildJobName(name, commit)}, job); err == nil {
			t.Errorf("%s: a build Job was created", tc.url)
		}
	}
}

// Two manager replicas, each with its own receiver and in-memory delivery
// cache: a delivery handled by one is ignored by the other, because the
// deployer records it on the object before building.
func TestPushDeliveryAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	e := newPushEnv(t, push.Options{})
	e.secret("hook", "right")
	repo := e.git.Repo("replicas")
	commit := e.git.Commit("replicas", "main", map[string]string{"requirements.txt": "x\n", "main.py": "print(1)\n"})
	ms := &v1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Name: "replicas", Namespace: e.ns, Annotations: e.annotations(repo, "hook")},
		Spec: v1alpha1.ModelServerSpec{Model: v1alpha1.ModelSource{URI: "pvc://models"},
			Runtime: v1alpha1.ServingRuntime{Image: "registry.example/server:1", Port: ptr.To[int32](8080)}},
	}
	if err := e.c.Create(ctx, ms); err != nil {
		t.Fatal(err)
	}
	cfg, err := push.ConfigFrom(ms.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	req := push.Request{Target: push.Target{Kind: push.KindModelServer, NamespacedName: client.ObjectKeyFromObject(ms), Config: cfg},
		Commit: commit, Provider: push.GitHub, Delivery: "once"}
	done := make(chan struct{})
	go func() { e.deployer.Deploy(ctx, req); close(done) }()
	e.runBuildJob(render.BuildJobName("replicas", commit), "")
	<-done
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(ms), ms); err != nil {
		t.Fatal(err)
	}
	if s := ms.Status.Source; s == nil || s.Commit != commit {
		t.Fatalf("status.source %+v, want %s deployed", s, commit)
	}
	if got := ms.Annotations[v1alpha1.AnnotationPushDeliveries]; got != "github/once" {
		t.Errorf("handled deliveries %q, want github/once", got)
	}
	// The other replica gets the same delivery (a redelivery, or a replay).
	otherEvents := events.NewFakeRecorder(10)
	other := &push.Deployer{Client: e.c, Live: e.c, Recorder: otherEvents, Clock: clock.RealClock{}, Options: e.deployer.Options}
	other.Deploy(ctx, req)
	select {
	case ev := <-otherEvents.Events:
		t.Errorf("the other replica acted on a handled delivery: %s", ev)
	default:
	}
	// A new delivery of the deployed commit is recorded, and not built again.
	req.Delivery = "twice"
	other.Deploy(ctx, req)
	if ev := <-otherEvents.Events; !strings.Contains(ev, "already deployed") {
		t.Errorf("a new delivery of the deployed commit: %s, want already deployed", ev)
	}
}

// assertNowhere fails if text is in obj's status, in an Event, or in the manager's log.
func (e *pushEnv) assertNowhere(text string, obj *v1alpha1.ModelServer) {
	e.t.Helper()
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		e.t.Fatal(err)
	}
	raw, _ := json.Marshal(obj)
	if strings.Contains(string(raw), text) {
		e.t.Errorf("the object holds %q: %s", text, raw)
	}
	for {
		select {
		case ev := <-e.recorder.Events:
			if strings.Contains(ev, text) {
				e.t.Errorf("an Event holds %q: %s", text, ev)
			}
			continue
		default:
		}
		break
	}
	if strings.Contains(e.log.String(), text) {
		e.t.Errorf("the manager's log holds %q:\n%s", text, e.log.String())
	}
}

// finishPod does what the Job controller and the kubelet would for a build
// Job: a pod that terminated with the exit code and termination message, and
// the Job's final conditions.
func (e *pushEnv) finishPod(job *batchv1.Job, exit int32, message string) {
	e.t.Helper()
	ctx := context.Background()
	name := job.Name
	succeeded := exit == 0
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: e.ns, Labels: map[string]string{batchv1.JobNameLabel: name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: name, UID: job.UID, Controller: ptr.To(true)}}},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
	if err := e.c.Create(ctx, pod); err != nil {
		e.t.Fatal(err)
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
}
