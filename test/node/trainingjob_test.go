package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/localkiln"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/test/framework"
)

// A TrainingJob's s3:// input is downloaded by the real kiln-fetch image from an S3 server
// (gofakes3, on the host) before training starts; the training checkpoints, reports it with a
// kiln-checkpoint line and dies; the gang restarts and the next attempt gets that checkpoint,
// on the same claim, as KILN_RESUME_FROM.
func TestTrainingJobFetchesDataAndResumesFromItsCheckpoint(t *testing.T) {
	cs := needNode(t)
	ctx := context.Background()
	ns := namespace(t, cs)
	c := kilnWithS3(t, ns, map[string]string{"datasets/digits.csv": "1,2,3"})
	tj := &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{Name: "resumes", Namespace: ns},
		Spec: v1alpha1.TrainingJobSpec{
			Image: probeImage,
			Args:  []string{"resume", "/kiln/data/digits/digits.csv"},
			Data:  []v1alpha1.DataInput{{Name: "digits", URI: "s3://data/datasets/digits.csv", SecretRef: &v1alpha1.LocalSecretReference{Name: "s3"}}},
			Resources: v1alpha1.TrainingResources{
				CPU: ptr.To(resource.MustParse("100m")), Memory: ptr.To(resource.MustParse("64Mi")),
			},
			Checkpoints: &v1alpha1.VolumeSpec{Size: resource.MustParse("10Mi")},
			Restart:     v1alpha1.RestartSpec{MaxRestarts: ptr.To[int32](1)},
			PodTemplate: &v1alpha1.PodTemplateOverlay{NodeSelector: map[string]string{controlplane.PoolLabel: controlplane.RealNodePool}},
		},
	}
	if err := c.Create(ctx, tj); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 4*time.Minute, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(tj), tj); err != nil {
			return err
		}
		if tj.Status.State == v1alpha1.StateFailed {
			t.Fatalf("the TrainingJob failed: %+v", tj.Status.LastFailure)
		}
		if tj.Status.State != v1alpha1.StateSucceeded {
			return fmt.Errorf("TrainingJob is %s (attempt %d)", tj.Status.State, tj.Status.Attempt)
		}
		return nil
	})
	if tj.Status.Restarts != 1 || tj.Status.LatestCheckpoint != "/kiln/checkpoints/step-100" {
		t.Fatalf("restarts %d, latest checkpoint %q; want 1 and /kiln/checkpoints/step-100", tj.Status.Restarts, tj.Status.LatestCheckpoint)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + render.JobName(tj.Name, tj.Status.Attempt)})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("the last attempt's pods: %v, %v", pods, err)
	}
	got := logs(t, ns, pods.Items[0].Name)
	for _, want := range []string{
		"/kiln/data/digits/digits.csv: 1,2,3",
		"resumed from /kiln/checkpoints/step-100: weights at step 100",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the resumed attempt's log lacks %q:\n%s", want, got)
		}
	}
}

// A ModelServer's s3:// model (a prefix of two objects) is downloaded by the real kiln-fetch
// image before the server starts; the server, probe's file server on the model directory,
// answers another pod through the ModelServer's Service with the model's bytes.
func TestModelServerServesAModelFromS3(t *testing.T) {
	cs := needNode(t)
	ctx := context.Background()
	ns := namespace(t, cs)
	c := kilnWithS3(t, ns, map[string]string{"models/line/weights.txt": "slope=2.1", "models/line/meta/card.txt": "line v1"})
	ms := &v1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Name: "line", Namespace: ns},
		Spec: v1alpha1.ModelServerSpec{
			Model: v1alpha1.ModelSource{URI: "s3://data/models/line/", SecretRef: &v1alpha1.LocalSecretReference{Name: "s3"}},
			Runtime: v1alpha1.ServingRuntime{
				Image: probeImage, Args: []string{"files", "{{.ModelDir}}", ":{{.Port}}"}, Port: ptr.To[int32](8080),
			},
			Resources: v1alpha1.ServingResources{CPU: ptr.To(resource.MustParse("50m")), Memory: ptr.To(resource.MustParse("32Mi"))},
		},
	}
	if err := c.Create(ctx, ms); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 3*time.Minute, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(ms), ms); err != nil {
			return err
		}
		ready := apimeta.FindStatusCondition(ms.Status.Conditions, v1alpha1.ModelServerReady)
		if ready == nil || ready.Status != metav1.ConditionTrue {
			return fmt.Errorf("ModelServer not ready: %+v", ready)
		}
		return nil
	})
	for path, want := range map[string]string{"weights.txt": "slope=2.1", "meta/card.txt": "line v1"} {
		name := "ask-" + strings.NewReplacer(".", "-", "/", "-").Replace(path)
		ask := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: probePod(name, "get", ms.Status.URL+"/"+path)}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, ask, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPhase(t, cs, ns, name, corev1.PodSucceeded)
		if got := logs(t, ns, name); !strings.Contains(got, want) {
			t.Errorf("%s/%s answered %q, want %q", ms.Status.URL, path, got, want)
		}
	}
}

// kilnWithS3 serves objects from an S3 server on the host, starts kiln-manager with the real
// kiln-fetch image, and puts the server's endpoint and credentials in Secret "s3" of ns, as a
// user's Secret would; it returns a client for Kiln's objects.
func kilnWithS3(t *testing.T, ns string, objects map[string]string) client.Client {
	t.Helper()
	ctx := context.Background()
	endpoint := s3OnTheHost(t, objects)
	fetchImage, err := localkiln.BuildFetchImage(ctx, framework.RepoRoot(), plane.Registry(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	startKilnManager(t, manager.Options{FetchImage: fetchImage})
	c := kilnClient(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: ns},
		StringData: map[string]string{"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "kiln", "AWS_SECRET_ACCESS_KEY": "kiln", "AWS_REGION": "us-east-1"},
	}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	return c
}

// s3OnTheHost serves objects in bucket "data" over the S3 protocol on the node's address, where
// pods reach it, and returns its URL.
func s3OnTheHost(t *testing.T, objects map[string]string) string {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("data"); err != nil {
		t.Fatal(err)
	}
	node, err := needNode(t).CoreV1().Nodes().Get(context.Background(), controlplane.RealNodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ip string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip = a.Address
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gofakes3.New(backend).Server(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	mc, err := minio.New(l.Addr().String(), &minio.Options{Creds: credentials.NewStaticV4("kiln", "kiln", "")})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range objects {
		if _, err := mc.PutObject(context.Background(), "data", k, strings.NewReader(v), int64(len(v)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return "http://" + l.Addr().String()
}
