package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	pushdeploy "kiln.dev/kiln/internal/push"
	"kiln.dev/kiln/test/framework"
)

// Push-to-deploy end to end: the example's ModelServer, annotated for a
// repository on a real Git server (smart HTTP) and an in-process registry,
// gets each new commit of its branch built, pushed and rolled out after a
// signed push event; a push to another branch, a bad signature, a replayed
// delivery and an unknown repository change nothing.
func TestPushToDeploy(t *testing.T) {
	// Builds run as Jobs in the object's namespace (cmd/kiln-build). Here kwok
	// completes pods without running them, so no pod reports a digest: this test
	// needs the real node, which runs the kiln-build image. Until then the
	// integration tests (test/integration/push_test.go) play the Job's part.
	t.Skip("push builds run as kiln-build Jobs; needs the real node and the kiln-build image")
	c, ns := kilnClient(t), namespace(t)

	git := framework.NewGitServer(t)
	repo := git.Repo("sentiment")
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	base := host + "/library/python:3.12"
	baseRef, err := name.ParseReference(base)
	if err != nil {
		t.Fatal(err)
	}
	baseImage, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(baseRef, baseImage); err != nil {
		t.Fatal(err)
	}

	// The example's objects, pointed at this test's repository and registry.
	example := filepath.Join(framework.RepoRoot(), "examples", "modelserver-push.yaml")
	const secret = "s3cret-for-the-test"
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sentiment-webhook", Namespace: ns}, StringData: map[string]string{v1alpha1.PushWebhookSecretKey: secret}})
	for _, tj := range trainingJobsIn(t, example) {
		tj.Namespace = ns
		create(t, c, tj)
	}
	ms := modelServersIn(t, example)[0]
	ms.Namespace = ns
	ms.Annotations[v1alpha1.AnnotationPushRepository] = repo
	ms.Annotations[v1alpha1.AnnotationPushImage] = host + "/acme/sentiment"
	ms.Annotations[v1alpha1.AnnotationPushBaseImage] = base
	// Half-annotated, it would never deploy: admission refuses it with the annotation's path.
	half := ms.DeepCopy()
	half.Annotations = map[string]string{v1alpha1.AnnotationPushRepository: repo}
	if err := c.Create(context.Background(), half); err == nil || !strings.Contains(err.Error(), "metadata.annotations[push.kiln.dev/webhook-secret]") {
		t.Fatalf("a ModelServer without a webhook secret annotation: %v, want it refused", err)
	}
	create(t, c, ms)
	waitForMS(t, c, ms, readyIs(v1alpha1.ModelServerReady, metav1.ConditionTrue, v1alpha1.ReasonServing))

	send := func(body map[string]any, signWith, delivery string) (int, pushdeploy.Reply) {
		t.Helper()
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		return sendPush(t, raw, pushdeploy.Sign(raw, []byte(signWith)), delivery)
	}
	event := func(repoURL, branch, commit string) map[string]any {
		return map[string]any{"ref": "refs/heads/" + branch, "after": commit, "repository": map[string]any{"clone_url": repoURL}}
	}

	files := map[string]string{"requirements.txt": "scikit-learn\n", "serve.py": "print('v1')\n"}
	first := git.Commit("sentiment", "main", files)
	sent := time.Now()
	if code, reply := send(event(repo, "main", first), secret, "delivery-1"); code != http.StatusAccepted {
		t.Fatalf("signed push: %d %+v, want 202", code, reply)
	}
	replied := time.Since(sent)
	got := waitForSource(t, c, ms, first)
	deployed := time.Since(sent)
	firstImage := got.Status.Source.Image
	if !strings.HasPrefix(firstImage, host+"/acme/sentiment@sha256:") || got.Spec.Runtime.Image != firstImage {
		t.Fatalf("runtime image %q, status.source.image %q; want the pushed digest of %s/acme/sentiment", got.Spec.Runtime.Image, firstImage, host)
	}
	if _, err := remote.Head(mustRef(t, firstImage)); err != nil {
		t.Errorf("the deployed image is not in the registry: %v", err)
	}
	waitForRollout(t, c, ns, "sentiment", firstImage)
	t.Logf("first push: replied in %s, image deployed (fetch, build, push, patch) after %s, rolled out after %s", replied, deployed, time.Since(sent))

	// Nothing changes on a push to another branch, a bad signature, a replay or
	// an unknown repository.
	generation := got.Generation
	dev := git.Commit("sentiment", "dev", map[string]string{"serve.py": "print('dev')\n"})
	for _, tc := range []struct {
		name     string
		body     map[string]any
		sign     string
		delivery string
		code     int
	}{
		{"another branch", event(repo, "dev", dev), secret, "delivery-2", http.StatusOK},
		{"a bad signature", event(repo, "main", dev), "guess", "delivery-3", http.StatusUnauthorized},
		{"a replayed delivery", event(repo, "main", first), secret, "delivery-1", http.StatusOK},
		{"an unknown repository", event(git.URL+"/unknown.git", "main", dev), secret, "delivery-4", http.StatusNotFound},
	} {
		code, reply := send(tc.body, tc.sign, tc.delivery)
		if code != tc.code || len(reply.Queued) != 0 {
			t.Errorf("%s: %d %+v, want %d and nothing queued", tc.name, code, reply, tc.code)
		}
	}
	oversized := append(bytes.Repeat([]byte(" "), pushdeploy.DefaultMaxBody), '{', '}')
	if code, _ := sendPush(t, oversized, pushdeploy.Sign(oversized, []byte(secret)), "delivery-5"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", code)
	}

	// A second commit on main rolls the Deployment to its image.
	files["serve.py"] = "print('v2')\n"
	second := git.Commit("sentiment", "main", files)
	if code, reply := send(event(repo, "main", second), secret, "delivery-6"); code != http.StatusAccepted {
		t.Fatalf("second signed push: %d %+v, want 202", code, reply)
	}
	got = waitForSource(t, c, ms, second)
	if got.Status.Source.Image == firstImage || got.Spec.Runtime.Image != got.Status.Source.Image {
		t.Fatalf("after the second push: runtime image %q, source %+v; want a new digest", got.Spec.Runtime.Image, got.Status.Source)
	}
	if got.Generation != generation+1 {
		t.Errorf("generation %d after one more push, want %d: something else changed the spec in between", got.Generation, generation+1)
	}
	waitForRollout(t, c, ns, "sentiment", got.Status.Source.Image)

	// Neither the secret nor a body reaches the manager's log.
	managerLog, err := os.ReadFile(filepath.Join(plane.Dir, "kiln-manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), `"after":`} {
		if bytes.Contains(managerLog, []byte(leak)) {
			t.Errorf("the manager's log holds %q", leak)
		}
	}
}

func sendPush(t *testing.T, body []byte, signature, delivery string) (int, pushdeploy.Reply) {
	t.Helper()
	wh := plane.Webhooks()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(wh.LocalServingCAData)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: wh.LocalServingHost}}}
	// The receiver's own port, not the webhook server's.
	url := "https://" + kilnManager.push + pushdeploy.GitHubPath
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", signature)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var reply pushdeploy.Reply
	_ = json.Unmarshal(raw, &reply)
	return resp.StatusCode, reply
}

func waitForSource(t *testing.T, c client.Client, ms *v1alpha1.ModelServer, commit string) *v1alpha1.ModelServer {
	t.Helper()
	return waitForMS(t, c, ms, func(ms *v1alpha1.ModelServer) error {
		if s := ms.Status.Source; s == nil || s.Commit != commit || s.Image == "" || s.Time == nil {
			return fmt.Errorf("status.source %+v, want commit %s deployed", s, commit)
		}
		return nil
	})
}

// waitForRollout waits until every pod of the Deployment runs image.
func waitForRollout(t *testing.T, c client.Client, ns, name, image string) {
	t.Helper()
	framework.Eventually(t, timeout, func() error {
		dep := &appsv1.Deployment{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, dep); err != nil {
			return err
		}
		want := *dep.Spec.Replicas
		if got := dep.Spec.Template.Spec.Containers[0].Image; got != image {
			return fmt.Errorf("pod template image %s, want %s", got, image)
		}
		if s := dep.Status; s.ObservedGeneration != dep.Generation || s.UpdatedReplicas != want || s.ReadyReplicas != want || s.Replicas != want {
			return fmt.Errorf("rolling out: %+v", s)
		}
		return nil
	})
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
