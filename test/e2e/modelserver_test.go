package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/cli"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/render/serving"
	"kiln.dev/kiln/test/framework"
)

// A ModelServer end to end: it waits for the TrainingJob whose model it serves,
// becomes Ready with that model mounted read-only, splits a canary by replicas
// without Gateway API and by an HTTPRoute with it, promotes and rolls back with
// the CLI, and leaves nothing behind when deleted.
func TestModelServerFromTrainingJob(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	kiln := kilnCLI(t, ns)

	// The job runs long enough for the server to be seen waiting for it.
	tj := withAnnotations(trainingJob(ns, "resnet"), simRunTime, "10s")
	tj.Spec.Output = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}
	create(t, c, tj)
	// A model whose TrainingJob still runs is taken, with a warning; the controller
	// holds it back and says why.
	if out, err := kiln("serve", "resnet", "--model", "trainingjob://resnet", "--preset", "torchserve", "--min", "2", "--max", "4", "--cpu", "100m", "--dry-run=server"); err != nil {
		t.Fatalf("serve refused a model whose TrainingJob still runs: %v\n%s", err, out)
	} else if !strings.Contains(out, "spec.model.uri") || !strings.Contains(out, "has not succeeded yet") {
		t.Fatalf("serve did not warn that the TrainingJob still runs:\n%s", out)
	}
	ms := &v1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Name: "resnet", Namespace: ns},
		Spec: v1alpha1.ModelServerSpec{
			Model:     v1alpha1.ModelSource{URI: "trainingjob://resnet", Format: "pytorch"},
			Runtime:   v1alpha1.ServingRuntime{Preset: "torchserve"},
			Resources: v1alpha1.ServingResources{CPU: ptr.To(resource.MustParse("100m"))},
			Replicas:  v1alpha1.ReplicasSpec{Min: ptr.To[int32](2), Max: ptr.To[int32](4)},
		},
	}
	create(t, c, ms)
	waitForMS(t, c, ms, readyIs(v1alpha1.ModelServerReady, metav1.ConditionFalse, v1alpha1.ReasonTrainingJobNotSucceeded))
	if deps := deploymentsOf(t, c, ns, "resnet"); len(deps) != 0 {
		t.Errorf("Deployments %v exist before the model is trained", deps)
	}
	waitFor(t, c, tj, inState(v1alpha1.StateSucceeded))
	got := waitForMS(t, c, ms, readyIs(v1alpha1.ModelServerReady, metav1.ConditionTrue, v1alpha1.ReasonServing))

	// The URL is the Service's DNS name.
	if want := "http://resnet." + ns + ".svc"; got.Status.URL != want {
		t.Errorf("status.url %q, want %q", got.Status.URL, want)
	}
	svc := &corev1.Service{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "resnet"}, svc); err != nil {
		t.Fatalf("the URL's Service: %v", err)
	}
	// The pods run on simulated nodes and are Ready in the Deployment's status.
	dep := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "resnet"}, dep); err != nil {
		t.Fatal(err)
	}
	if dep.Status.ReadyReplicas != 2 || got.Status.Stable == nil || got.Status.Stable.ReadyReplicas != 2 {
		t.Errorf("ready replicas: Deployment %d, status %+v; want 2", dep.Status.ReadyReplicas, got.Status.Stable)
	}
	pod := dep.Spec.Template.Spec
	claim := render.PVCName("resnet", "output")
	vol := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim && v.PersistentVolumeClaim.ReadOnly
	})
	mount := slices.IndexFunc(pod.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
		return vol >= 0 && m.Name == pod.Volumes[vol].Name && m.ReadOnly && m.MountPath == serving.ModelDir
	})
	if vol < 0 || mount < 0 {
		t.Errorf("the TrainingJob's output %s is not mounted read-only at %s: volumes %+v, mounts %+v", claim, serving.ModelDir, pod.Volumes, pod.Containers[0].VolumeMounts)
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "resnet"}, hpa); err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(hpa.Spec.MinReplicas, 0) != 2 || hpa.Spec.MaxReplicas != 4 || hpa.Spec.ScaleTargetRef.Name != "resnet" {
		t.Errorf("HPA bounds %d..%d on %s, want 2..4 on Deployment resnet", ptr.Deref(hpa.Spec.MinReplicas, 0), hpa.Spec.MaxReplicas, hpa.Spec.ScaleTargetRef.Name)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "resnet"}, &policyv1.PodDisruptionBudget{}); err != nil {
		t.Errorf("PodDisruptionBudget: %v", err)
	}

	canary := func(image string) {
		t.Helper()
		latest := &v1alpha1.ModelServer{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(ms), latest); err != nil {
			t.Fatal(err)
		}
		before := latest.DeepCopy()
		latest.Spec.Canary = &v1alpha1.CanarySpec{
			Runtime:        &v1alpha1.ServingRuntime{Preset: "torchserve", Image: image},
			TrafficPercent: 10,
		}
		if err := c.Patch(ctx, latest, client.MergeFrom(before)); err != nil {
			t.Fatal(err)
		}
	}

	// Without Gateway API: a replica split, and status says so.
	canary("registry.example/torchserve:canary-1")
	got = waitForMS(t, c, ms, func(ms *v1alpha1.ModelServer) error {
		tr := ms.Status.Traffic
		if tr == nil || tr.Method != v1alpha1.TrafficReplicaRatio || ms.Status.Canary == nil || ms.Status.Canary.ReadyReplicas < 1 {
			return fmt.Errorf("traffic %+v, canary %+v", tr, ms.Status.Canary)
		}
		return nil
	})
	if !strings.Contains(got.Status.Traffic.Message, "Gateway API is not installed") {
		t.Errorf("traffic message %q does not say why the split follows the replicas", got.Status.Traffic.Message)
	}
	// min 2, max 4, 10 %: the stable side grows to 3 rather than give the canary half;
	// 1 of 4 ready pods is the closest max allows, and status reports what is in force.
	waitForMS(t, c, ms, func(ms *v1alpha1.ModelServer) error {
		tr, st, cn := ms.Status.Traffic, ms.Status.Stable, ms.Status.Canary
		if st == nil || cn == nil || st.ReadyReplicas != 3 || cn.ReadyReplicas != 1 || tr.CanaryPercent != 25 || tr.StablePercent != 75 {
			return fmt.Errorf("stable %+v, canary %+v, traffic %+v; want 3 + 1 ready and 75/25", st, cn, tr)
		}
		return nil
	})
	if out, err := kiln("status", "modelserver/resnet"); err != nil || !strings.Contains(out, "Deployment resnet-canary (canary") || !strings.Contains(out, "ReplicaRatio") {
		t.Errorf("status modelserver/resnet: %v\n%s", err, out)
	}

	// Rollback: one verb, and the stable Deployment alone serves.
	if out, err := kiln("rollback", "resnet"); err != nil {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	waitForOneDeployment(t, c, ns, "resnet", "")

	// With Gateway API: an HTTPRoute with exact weights.
	installGatewayAPI(t)
	canary("registry.example/torchserve:canary-2")
	route := &gatewayv1.HTTPRoute{}
	nudge := 0
	framework.Eventually(t, 2*time.Minute, func() error {
		// Gateway API is looked for at most every few seconds; a change to the
		// ModelServer makes the controller look again sooner than its recheck.
		nudge++
		_ = c.Patch(ctx, &v1alpha1.ModelServer{ObjectMeta: metav1.ObjectMeta{Name: "resnet", Namespace: ns}},
			client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"metadata":{"annotations":{"e2e.kiln.dev/nudge":"%d"}}}`, nudge)))
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "resnet"}, route)
	})
	var weights []string
	for _, rule := range route.Spec.Rules {
		for _, b := range rule.BackendRefs {
			weights = append(weights, fmt.Sprintf("%s=%d", b.Name, ptr.Deref(b.Weight, 1)))
		}
	}
	if want := []string{"resnet-stable=90", "resnet-canary=10"}; !slices.Equal(weights, want) {
		t.Errorf("HTTPRoute weights %v, want %v", weights, want)
	}
	if p := route.Spec.ParentRefs; len(p) != 1 || string(p[0].Name) != "resnet" || ptr.Deref(p[0].Kind, "") != "Service" {
		t.Errorf("HTTPRoute parents %+v, want the Service resnet", p)
	}
	// Export renders what the controller created: the route too, without owners.
	if out, err := kiln("export", "modelserver/resnet"); err != nil || !strings.Contains(out, "kind: HTTPRoute") || strings.Contains(out, "ownerReferences") {
		t.Errorf("export modelserver/resnet: %v\n%s", err, out)
	}
	// No mesh has accepted the route: its weights are not in force, and status says so.
	waitForMS(t, c, ms, func(ms *v1alpha1.ModelServer) error {
		if tr := ms.Status.Traffic; tr == nil || tr.Method != v1alpha1.TrafficHTTPRoute || !strings.Contains(tr.Message, "is not Accepted by any parent yet") {
			return fmt.Errorf("traffic %+v", tr)
		}
		return nil
	})
	// The test plays the mesh: it accepts the route, and the split is exact.
	framework.Eventually(t, timeout, func() error { // retried: the controller may touch the route meanwhile
		if err := c.Get(ctx, client.ObjectKeyFromObject(route), route); err != nil {
			return err
		}
		route.Status.Parents = []gatewayv1.RouteParentStatus{{
			ParentRef:      route.Spec.ParentRefs[0],
			ControllerName: "e2e.kiln.dev/mesh",
			Conditions: []metav1.Condition{{Type: string(gatewayv1.RouteConditionAccepted), Status: metav1.ConditionTrue,
				Reason: string(gatewayv1.RouteReasonAccepted), ObservedGeneration: route.Generation, LastTransitionTime: metav1.Now()}},
		}}
		return c.Status().Update(ctx, route)
	})
	waitForMS(t, c, ms, func(ms *v1alpha1.ModelServer) error {
		if tr := ms.Status.Traffic; tr == nil || tr.Method != v1alpha1.TrafficHTTPRoute || tr.StablePercent != 90 || tr.CanaryPercent != 10 {
			return fmt.Errorf("traffic %+v", tr)
		}
		return nil
	})

	// Promote: the canary's version becomes the stable Deployment; the canary,
	// its Service and the route go.
	if out, err := kiln("promote", "resnet"); err != nil {
		t.Fatalf("promote: %v\n%s", err, out)
	}
	waitForOneDeployment(t, c, ns, "resnet", "registry.example/torchserve:canary-2")
	framework.Eventually(t, timeout, func() error {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "resnet"}, &gatewayv1.HTTPRoute{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("HTTPRoute after promotion: %v", err)
		}
		return nil
	})
	waitForMS(t, c, ms, readyIs(v1alpha1.ModelServerReady, metav1.ConditionTrue, v1alpha1.ReasonServing))

	// Deleting the ModelServer removes every child.
	if err := c.Delete(ctx, ms); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, timeout, func() error {
		mine := []client.ListOption{client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelModelServer: "resnet"}}
		var left []string
		for _, l := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ServiceList{}, &autoscalingv2.HorizontalPodAutoscalerList{},
			&policyv1.PodDisruptionBudgetList{}, &gatewayv1.HTTPRouteList{}, &corev1.PodList{}} {
			if err := c.List(ctx, l, mine...); err != nil {
				return err
			}
			_ = apimeta.EachListItem(l, func(o runtime.Object) error {
				left = append(left, fmt.Sprintf("%T %s", o, o.(client.Object).GetName()))
				return nil
			})
		}
		if len(left) > 0 {
			return fmt.Errorf("left after deletion: %v", left)
		}
		return nil
	})
}

// Bad specs are refused by the API server with the field path.
func TestModelServerBadInputRefused(t *testing.T) {
	c, ns := kilnClient(t), namespace(t)
	base := func() *v1alpha1.ModelServer {
		return &v1alpha1.ModelServer{
			ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns},
			Spec: v1alpha1.ModelServerSpec{
				Model:   v1alpha1.ModelSource{URI: "pvc://models/iris"},
				Runtime: v1alpha1.ServingRuntime{Preset: "mlserver"},
			},
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*v1alpha1.ModelServer)
		want   string
	}{
		{"min above max", func(ms *v1alpha1.ModelServer) {
			ms.Spec.Replicas = v1alpha1.ReplicasSpec{Min: ptr.To[int32](5), Max: ptr.To[int32](2)}
		}, "spec.replicas.min: Invalid value"},
		{"canary above 100 %", func(ms *v1alpha1.ModelServer) {
			ms.Spec.Canary = &v1alpha1.CanarySpec{Runtime: &v1alpha1.ServingRuntime{Preset: "triton"}, TrafficPercent: 101}
		}, "spec.canary.trafficPercent"},
		{"canary below 0 %", func(ms *v1alpha1.ModelServer) {
			ms.Spec.Canary = &v1alpha1.CanarySpec{Runtime: &v1alpha1.ServingRuntime{Preset: "triton"}, TrafficPercent: -1}
		}, "spec.canary.trafficPercent"},
		{"runtime without a port", func(ms *v1alpha1.ModelServer) {
			ms.Spec.Runtime = v1alpha1.ServingRuntime{Image: "registry.example/server:1"}
		}, "spec.runtime.port"},
		{"canary runtime without a port", func(ms *v1alpha1.ModelServer) {
			ms.Spec.Canary = &v1alpha1.CanarySpec{Runtime: &v1alpha1.ServingRuntime{Image: "registry.example/server:2"}, TrafficPercent: 5}
		}, "spec.canary.runtime.port"},
		{"trainingjob in another namespace", func(ms *v1alpha1.ModelServer) {
			ms.Spec.Model.URI = "trainingjob://other/resnet"
		}, "spec.model.uri"},
		// A trainingjob:// model that is missing or failed is no refusal: admission
		// does not tell a creator which TrainingJobs exist. TestModelServerReportsModelProblems
		// finds both in the Ready condition.
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := base()
			tc.mutate(ms)
			err := c.Create(context.Background(), ms)
			if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: %v; want Invalid naming %q", err, tc.want)
			}
		})
	}
}

// failedJob runs a TrainingJob with an output volume that fails, and returns its name.
func failedJob(t *testing.T, c client.Client, ns string) string {
	t.Helper()
	tj := withAnnotations(trainingJob(ns, "broken"), simExitCode, "1")
	tj.Spec.Output = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}
	tj.Spec.Restart.MaxRestarts = ptr.To[int32](0)
	create(t, c, tj)
	waitFor(t, c, tj, inState(v1alpha1.StateFailed))
	return tj.Name
}

// An object-storage model without a configured download image, and a claim
// that does not exist, are reported in Ready with their reasons.
func TestModelServerReportsModelProblems(t *testing.T) {
	c, ns := kilnClient(t), namespace(t)
	for _, tc := range []struct {
		name, uri, reason string
	}{
		{"missing-claim", "pvc://nothing-here/model", v1alpha1.ReasonModelNotFound},
		// Once refused at admission, which answered "does TrainingJob X exist" to anyone
		// allowed to create a ModelServer; now the controller's condition says it.
		{"missing-trainingjob", "trainingjob://never-ran", v1alpha1.ReasonModelNotFound},
		{"failed-trainingjob", "trainingjob://" + failedJob(t, c, ns), v1alpha1.ReasonTrainingJobNotSucceeded},
		{"no-fetch-image", "s3://bucket/model", v1alpha1.ReasonModelDownloadFailed},
	} {
		ms := &v1alpha1.ModelServer{
			ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: ns},
			Spec: v1alpha1.ModelServerSpec{
				Model:   v1alpha1.ModelSource{URI: tc.uri},
				Runtime: v1alpha1.ServingRuntime{Preset: "mlserver"},
			},
		}
		create(t, c, ms)
		waitForMS(t, c, ms, readyIs(v1alpha1.ModelServerReady, metav1.ConditionFalse, tc.reason))
	}
}

func kilnCLI(t *testing.T, ns string) func(args ...string) (string, error) {
	t.Helper()
	kubeconfig := planeKubeconfig(t)
	return func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := cli.NewRootCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
		cmd.SetArgs(append([]string{"--kubeconfig=" + kubeconfig, "-n", ns}, args...))
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
}

func waitForMS(t *testing.T, c client.Client, ms *v1alpha1.ModelServer, check func(*v1alpha1.ModelServer) error) *v1alpha1.ModelServer {
	t.Helper()
	got := &v1alpha1.ModelServer{}
	framework.Eventually(t, timeout, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(ms), got); err != nil {
			return err
		}
		return check(got)
	})
	return got
}

func readyIs(typ string, status metav1.ConditionStatus, reason string) func(*v1alpha1.ModelServer) error {
	return func(ms *v1alpha1.ModelServer) error {
		cond := apimeta.FindStatusCondition(ms.Status.Conditions, typ)
		if cond == nil || cond.Status != status || cond.Reason != reason || cond.ObservedGeneration != ms.Generation {
			return fmt.Errorf("condition %s: %+v; want %s/%s at generation %d", typ, cond, status, reason, ms.Generation)
		}
		return nil
	}
}

func deploymentsOf(t *testing.T, c client.Client, ns, name string) []string {
	t.Helper()
	var list appsv1.DeploymentList
	if err := c.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelModelServer: name}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range list.Items {
		if d.DeletionTimestamp.IsZero() {
			out = append(out, d.Name)
		}
	}
	return out
}

// waitForOneDeployment waits until the ModelServer has exactly one Deployment,
// the stable one, running image (when given) on all its ready pods, and no canary in status.
func waitForOneDeployment(t *testing.T, c client.Client, ns, name, image string) {
	t.Helper()
	framework.Eventually(t, timeout, func() error {
		if deps := deploymentsOf(t, c, ns, name); !slices.Equal(deps, []string{name}) {
			return fmt.Errorf("Deployments %v, want only %s", deps, name)
		}
		dep := &appsv1.Deployment{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, dep); err != nil {
			return err
		}
		if got := dep.Spec.Template.Spec.Containers[0].Image; image != "" && got != image {
			return fmt.Errorf("stable image %s, want %s", got, image)
		}
		if s := dep.Status; s.ObservedGeneration < dep.Generation || s.UpdatedReplicas != s.Replicas || s.ReadyReplicas != ptr.Deref(dep.Spec.Replicas, 1) {
			return fmt.Errorf("Deployment %s rolling out: %+v", name, s)
		}
		ms := &v1alpha1.ModelServer{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ms); err != nil {
			return err
		}
		if ms.Status.Canary != nil || ms.Status.Traffic == nil || ms.Status.Traffic.Method != v1alpha1.TrafficNone {
			return fmt.Errorf("status still has a canary: %+v, traffic %+v", ms.Status.Canary, ms.Status.Traffic)
		}
		return nil
	})
}

// installGatewayAPI installs the HTTPRoute CRD the gateway-api module ships, for
// this test only: the plane is shared, and the CRD goes again when the test ends.
func installGatewayAPI(t *testing.T) {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("finding the gateway-api module: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		t.Fatal(err)
	}
	c := kilnClient(t)
	if err := apiextensionsv1.AddToScheme(c.Scheme()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Create(ctx, crd); err != nil {
		t.Fatalf("installing the HTTPRoute CRD: %v", err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), crd) })
	framework.Eventually(t, timeout, func() error {
		got := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(crd), got); err != nil {
			return err
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("HTTPRoute CRD not established yet")
	})
}
