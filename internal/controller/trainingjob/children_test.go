package trainingjob

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/api/v1alpha1"
)

func TestShapeOfJob(t *testing.T) {
	job := func(annotation string) *batchv1.Job {
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{v1alpha1.AnnotationShape: annotation}}}
	}
	tests := []struct {
		name string
		job  *batchv1.Job
		want *v1alpha1.ShapeStatus
	}{
		{name: "a Job rendered with its shape", job: job(`{"nodes":2,"processesPerNode":4,"summary":"2x4"}`),
			want: &v1alpha1.ShapeStatus{Nodes: 2, ProcessesPerNode: 4, Summary: "2x4"}},
		{name: "a Job made before Jobs carried it", job: &batchv1.Job{}},
		{name: "not a shape", job: job(`{"nodes":0}`)},
		{name: "not JSON", job: job(`2x4`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, shapeOfJob(tt.job)); diff != "" {
				t.Errorf("shape (-want +got):\n%s", diff)
			}
		})
	}
}
