package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"kiln.dev/kiln/api/v1alpha1"
)

func TestServeOffline(t *testing.T) {
	for _, tc := range []struct {
		name, golden string
		args         []string
	}{
		{"serve from flags, printed", "serve-dry-run.golden.yaml", []string{"serve", "resnet", "-n", "vision", "--model", "trainingjob://resnet",
			"--preset", "torchserve", "--format", "pytorch", "--gpus", "1", "--memory", "16Gi", "--min", "2", "--max", "6", "--target-cpu", "70",
			"--dry-run=client", "-o", "yaml"}},
		{"serve from the example, printed", "serve-example.golden.yaml", []string{"serve", "-f", "../../examples/modelserver-torchserve.yaml", "-n", "vision", "--dry-run=client"}},
		{"export a ModelServer file", "export-modelserver.golden.yaml", []string{"export", "-f", "testdata/modelserver.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := run(t, tc.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			golden(t, tc.golden, out)
		})
	}
}

func TestServeBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "x", "--preset", "mlserver"}, "--model is required"},
		{[]string{"serve", "--model", "pvc://m", "--preset", "mlserver"}, "give the ModelServer a NAME"},
		{[]string{"serve", "x", "--model", "pvc://m", "--image", "srv:1"}, "spec.runtime.port"},
		{[]string{"serve", "x", "--model", "pvc://m", "--preset", "mlserver", "--min", "3", "--max", "2"}, "spec.replicas.min"},
		{[]string{"serve", "x", "--model", "ftp://h/m", "--preset", "mlserver"}, "spec.model.uri"},
		{[]string{"promote", "x"}, "no cluster configured"},
		{[]string{"status", "unicorn/x"}, `unknown kind "unicorn"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, _, err := run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestPromoted(t *testing.T) {
	ms := &v1alpha1.ModelServer{Spec: v1alpha1.ModelServerSpec{
		Model:   v1alpha1.ModelSource{URI: "trainingjob://v1"},
		Runtime: v1alpha1.ServingRuntime{Preset: "torchserve"},
		Canary:  &v1alpha1.CanarySpec{Model: &v1alpha1.ModelSource{URI: "trainingjob://v2"}, TrafficPercent: 10},
	}}
	got, err := Promoted(ms)
	if err != nil {
		t.Fatal(err)
	}
	want := v1alpha1.ModelServerSpec{Model: v1alpha1.ModelSource{URI: "trainingjob://v2"}, Runtime: v1alpha1.ServingRuntime{Preset: "torchserve"}}
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("promoted spec (-want +got):\n%s", diff)
	}
	if ms.Spec.Canary == nil {
		t.Error("Promoted changed its argument")
	}
	if _, err := Promoted(got); err == nil {
		t.Error("promoting without a canary succeeded")
	}
}

func TestModelServerStatusTree(t *testing.T) {
	labels := func(track string) map[string]string {
		return map[string]string{v1alpha1.LabelModelServer: "resnet", v1alpha1.LabelTrack: track}
	}
	dep := func(name, track, image string, ready int32) appsv1.Deployment {
		return appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels(track)},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Image: image}}}}},
			Status: appsv1.DeploymentStatus{ReadyReplicas: ready}}
	}
	pod := func(name, track, waiting string) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels(track)}, Spec: corev1.PodSpec{NodeName: "cpu-0"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		if waiting != "" {
			p.Status.Phase = corev1.PodPending
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: waiting}}}}
		}
		return p
	}
	backend := func(name string, w int32) gatewayv1.HTTPBackendRef {
		return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name)}, Weight: ptr.To(w)}}
	}
	tr := modelServerTree{
		ms: &v1alpha1.ModelServer{
			ObjectMeta: metav1.ObjectMeta{Name: "resnet", Namespace: "vision"},
			Spec:       v1alpha1.ModelServerSpec{Canary: &v1alpha1.CanarySpec{TrafficPercent: 10}},
			Status: v1alpha1.ModelServerStatus{
				URL:     "http://resnet.vision.svc",
				Traffic: &v1alpha1.TrafficStatus{Method: v1alpha1.TrafficHTTPRoute, StablePercent: 90, CanaryPercent: 10, Message: "HTTPRoute resnet splits requests 90/10 by weight"},
				Conditions: []metav1.Condition{
					{Type: v1alpha1.ModelServerReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonServing, Message: "2 of 2 pods ready"},
					{Type: v1alpha1.ModelServerCanaryReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonImagePullFailed, Message: "pod resnet-canary-x: cannot pull image"},
				},
			},
		},
		svcs: []corev1.Service{
			{ObjectMeta: metav1.ObjectMeta{Name: "resnet"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.12", Ports: []corev1.ServicePort{{Port: 80}}, Selector: map[string]string{v1alpha1.LabelModelServer: "resnet"}}},
		},
		deps: []appsv1.Deployment{dep("resnet-canary", "canary", "torchserve:2", 0), dep("resnet", "stable", "torchserve:1", 2)},
		pods: []corev1.Pod{pod("resnet-a", "stable", ""), pod("resnet-b", "stable", ""), pod("resnet-canary-x", "canary", "ImagePullBackOff")},
		hpas: []autoscalingv2.HorizontalPodAutoscaler{{ObjectMeta: metav1.ObjectMeta{Name: "resnet"},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: ptr.To[int32](2), MaxReplicas: 9}, Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 2}}},
		pdbs:   []policyv1.PodDisruptionBudget{{ObjectMeta: metav1.ObjectMeta{Name: "resnet"}, Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 1}}},
		routes: []gatewayv1.HTTPRoute{{ObjectMeta: metav1.ObjectMeta{Name: "resnet"}, Spec: gatewayv1.HTTPRouteSpec{Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{backend("resnet-stable", 90), backend("resnet-canary", 10)}}}}}},
		events: []corev1.Event{{InvolvedObject: corev1.ObjectReference{Kind: "ModelServer", Name: "resnet"}, Type: "Warning", Reason: "ImagePullFailed",
			Message: "pod resnet-canary-x: cannot pull image", LastTimestamp: metav1.NewTime(t0.Add(time.Minute))}},
	}
	var out bytes.Buffer
	tr.print(&out, t0.Add(3*time.Minute))
	golden(t, "status-modelserver.golden.txt", out.String())
}
