package validation

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kiln.dev/kiln/api/v1alpha1"
)

func TestPolicy(t *testing.T) {
	hostPath := func(spec *v1alpha1.TrainingJobSpec) {
		spec.PodTemplate = &v1alpha1.PodTemplateOverlay{Volumes: []corev1.Volume{
			{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}},
		}}
	}
	hostNetwork := func(spec *v1alpha1.TrainingJobSpec) { spec.Network = &v1alpha1.Network{HostNetwork: true} }
	tests := []struct {
		name   string
		policy Policy
		edit   func(*v1alpha1.TrainingJobSpec)
		want   []string
	}{
		{"plain job", Policy{}, func(*v1alpha1.TrainingJobSpec) {}, nil},
		{"host path refused", Policy{}, hostPath, []string{"FieldValueForbidden spec.podTemplate.volumes[1].hostPath"}},
		{"host path allowed", Policy{AllowHostPath: true}, hostPath, nil},
		{"host network refused", Policy{}, hostNetwork, []string{"FieldValueForbidden spec.network.hostNetwork"}},
		{"host network allowed", Policy{AllowHostNetwork: true}, hostNetwork, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := valid().Spec
			tt.edit(&spec)
			errs := tt.policy.TrainingJobSpec(&spec, field.NewPath("spec"))
			if diff := cmp.Diff(tt.want, summary(errs)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}
