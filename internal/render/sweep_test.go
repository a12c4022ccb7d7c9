package render

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/api/v1alpha1"
)

func TestTrial(t *testing.T) {
	sw := &v1alpha1.Sweep{
		ObjectMeta: metav1.ObjectMeta{Name: "tune", Namespace: "research", UID: "u1"},
		Spec: v1alpha1.SweepSpec{
			Parameters: []v1alpha1.SweepParameter{
				{Name: "lr", Type: v1alpha1.ParameterFloat, Min: "1e-5", Max: "0.1"},
				{Name: "opt", Type: v1alpha1.ParameterCategorical, Values: []string{"adam", "sgd"}},
			},
			TrialTemplate: v1alpha1.TrainingJobSpec{
				Image:   "train:1",
				Command: []string{"python", "train.py"},
				Args:    []string{"--lr=${params.lr}", "--opt", "${params.opt}", "${params.lr}/${params.lr}"},
				Env:     []corev1.EnvVar{{Name: "OPT", Value: "opt is ${params.opt}"}},
			},
		},
	}
	tj, err := Trial(sw, 7, map[string]string{"lr": "0.003", "opt": "sgd"}, TrialOptions{MetricsURL: "https://kiln.example:8444/"})
	if err != nil {
		t.Fatal(err)
	}
	if tj.Name != "tune-7" || tj.Labels[v1alpha1.LabelTrialIndex] != "7" || tj.Labels[v1alpha1.LabelSweep] != "tune" {
		t.Errorf("name %s, labels %v", tj.Name, tj.Labels)
	}
	if got := tj.Annotations[v1alpha1.AnnotationTrialParameters]; got != `{"lr":"0.003","opt":"sgd"}` {
		t.Errorf("parameters annotation %s", got)
	}
	if !metav1.IsControlledBy(tj, sw) {
		t.Errorf("not controlled by the Sweep: %v", tj.OwnerReferences)
	}
	if d := cmp.Diff([]string{"--lr=0.003", "--opt", "sgd", "0.003/0.003"}, tj.Spec.Args); d != "" {
		t.Errorf("args differ (-want +got):\n%s", d)
	}
	wantEnv := []corev1.EnvVar{
		{Name: "OPT", Value: "opt is sgd"},
		{Name: "KILN_PARAM_LR", Value: "0.003"},
		{Name: "KILN_PARAM_OPT", Value: "sgd"},
		{Name: "KILN_METRICS_URL", Value: "https://kiln.example:8444/v1alpha1/namespaces/research/trials/tune-7/metrics"},
		{Name: "KILN_METRICS_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "tune-7-metrics"}, Key: "token"}}},
	}
	if d := cmp.Diff(wantEnv, tj.Spec.Env); d != "" {
		t.Errorf("env differs (-want +got):\n%s", d)
	}
	if sw.Spec.TrialTemplate.Args[0] != "--lr=${params.lr}" {
		t.Error("rendering changed the template")
	}
	// Long sweep names are cut with a hash, so trial names stay valid and distinct.
	long := "a-very-long-sweep-name-that-goes-on-and-on-and-on-and-on-beyond"
	n1, n2 := TrialName(long, 1), TrialName(long+"x", 1)
	if len(n1) > 63 || n1 == n2 || n1[len(n1)-2:] != "-1" {
		t.Errorf("trial names %q and %q", n1, n2)
	}
}
