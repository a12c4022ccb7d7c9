package validation

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
)

func validModelServer() *v1alpha1.ModelServer {
	return &v1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Name: "resnet", Namespace: "vision"},
		Spec: v1alpha1.ModelServerSpec{
			Model:    v1alpha1.ModelSource{URI: "trainingjob://resnet", Format: "pytorch"},
			Runtime:  v1alpha1.ServingRuntime{Preset: "torchserve"},
			Replicas: v1alpha1.ReplicasSpec{Min: ptr.To[int32](1), Max: ptr.To[int32](4)},
			Canary: &v1alpha1.CanarySpec{
				Model:          &v1alpha1.ModelSource{URI: "s3://models/resnet/v2", SecretRef: &v1alpha1.LocalSecretReference{Name: "s3"}},
				TrafficPercent: 10,
			},
		},
	}
}

func TestValidateModelServer(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*v1alpha1.ModelServer)
		want   []string
	}{
		{name: "valid", mutate: func(*v1alpha1.ModelServer) {}},
		{
			name: "custom runtime",
			mutate: func(ms *v1alpha1.ModelServer) {
				ms.Spec.Runtime = v1alpha1.ServingRuntime{Image: "x:1", Port: ptr.To[int32](9000), Protocol: v1alpha1.ProtocolGRPC}
			},
		},
		{
			name:   "min above max",
			mutate: func(ms *v1alpha1.ModelServer) { ms.Spec.Replicas.Min = ptr.To[int32](5) },
			want:   []string{"FieldValueInvalid spec.replicas.min"},
		},
		{
			name:   "canary percent above 100",
			mutate: func(ms *v1alpha1.ModelServer) { ms.Spec.Canary.TrafficPercent = 101 },
			want:   []string{"FieldValueInvalid spec.canary.trafficPercent"},
		},
		{
			name:   "canary percent below 0",
			mutate: func(ms *v1alpha1.ModelServer) { ms.Spec.Canary.TrafficPercent = -1 },
			want:   []string{"FieldValueInvalid spec.canary.trafficPercent"},
		},
		{
			name:   "runtime without a port",
			mutate: func(ms *v1alpha1.ModelServer) { ms.Spec.Runtime = v1alpha1.ServingRuntime{Image: "x:1"} },
			want:   []string{"FieldValueRequired spec.runtime.port"},
		},
		{
			name:   "canary runtime without image or port",
			mutate: func(ms *v1alpha1.ModelServer) { ms.Spec.Canary.Runtime = &v1alpha1.ServingRuntime{} },
			want:   []string{"FieldValueRequired spec.canary.runtime.image", "FieldValueRequired spec.canary.runtime.port"},
		},
		{
			name:   "canary that changes nothing",
			mutate: func(ms *v1alpha1.ModelServer) { ms.Spec.Canary.Model = nil },
			want:   []string{"FieldValueRequired spec.canary"},
		},
		{
			name:   "unknown scheme",
			mutate: func(ms *v1alpha1.ModelServer) { ms.Spec.Model.URI = "ftp://host/model" },
			want:   []string{"FieldValueInvalid spec.model.uri"},
		},
		{
			name:   "trainingjob in another namespace",
			mutate: func(ms *v1alpha1.ModelServer) { ms.Spec.Model.URI = "trainingjob://other/resnet" },
			want:   []string{"FieldValueInvalid spec.model.uri"},
		},
		{
			name:   "bucket without an object",
			mutate: func(ms *v1alpha1.ModelServer) { ms.Spec.Canary.Model.URI = "gs://models" },
			want:   []string{"FieldValueInvalid spec.canary.model.uri"},
		},
		{
			name: "both scaling targets",
			mutate: func(ms *v1alpha1.ModelServer) {
				ms.Spec.Replicas.TargetCPUUtilization, ms.Spec.Replicas.TargetConcurrency = ptr.To[int32](50), ptr.To[int32](8)
			},
			want: []string{"FieldValueForbidden spec.replicas.targetConcurrency"},
		},
		{
			name:   "reserved env",
			mutate: func(ms *v1alpha1.ModelServer) { ms.Spec.Env = []corev1.EnvVar{{Name: "KILN_PORT", Value: "1"}} },
			want:   []string{"FieldValueForbidden spec.env[0].name"},
		},
		{
			name:   "name too long for the canary's names",
			mutate: func(ms *v1alpha1.ModelServer) { ms.Name = strings.Repeat("a", 57) },
			want:   []string{"FieldValueTooLong metadata.name"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ms := validModelServer()
			tc.mutate(ms)
			if diff := cmp.Diff(tc.want, summary(ValidateModelServer(ms))); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateModelTrainingJobs(t *testing.T) {
	job := func(output bool, conds ...string) *v1alpha1.TrainingJob {
		tj := &v1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Name: "resnet", Namespace: "vision"}}
		if output {
			tj.Spec.Output = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}
		}
		for _, c := range conds {
			tj.Status.Conditions = append(tj.Status.Conditions, metav1.Condition{Type: c, Status: metav1.ConditionTrue})
		}
		return tj
	}
	cases := []struct {
		name    string
		job     *v1alpha1.TrainingJob
		want    []string
		detail  string
		warning string
	}{
		{name: "succeeded", job: job(true, v1alpha1.TrainingJobSucceeded)},
		{name: "missing", job: nil, want: []string{"FieldValueInvalid spec.model.uri"}, detail: "TrainingJob resnet does not exist in namespace vision"},
		{name: "failed", job: job(true, v1alpha1.TrainingJobFailed), want: []string{"FieldValueInvalid spec.model.uri"}, detail: "TrainingJob resnet failed"},
		{name: "running", job: job(true, v1alpha1.TrainingJobRunning), warning: "has not succeeded yet (it is Pending); its model can be served once it has; the ModelServer rolls out when it does"},
		{name: "no output volume", job: job(false, v1alpha1.TrainingJobSucceeded), want: []string{"FieldValueInvalid spec.model.uri"}, detail: "no spec.output volume"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ms := validModelServer()
			errs, warnings := ValidateModelTrainingJobs(ms, map[string]*v1alpha1.TrainingJob{"resnet": tc.job})
			if diff := cmp.Diff(tc.want, summary(errs)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if got := strings.Join(warnings, "\n"); (tc.warning == "") != (got == "") || !strings.Contains(got, tc.warning) {
				t.Errorf("warnings %q, want one saying %q", warnings, tc.warning)
			}
			if tc.detail != "" && (len(errs) == 0 || !strings.Contains(errs[0].Detail, tc.detail)) {
				t.Errorf("errors %v, want one saying %q", errs, tc.detail)
			}
		})
	}
}
