package render

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNvidiaRuntimeClass(t *testing.T) {
	rc := func(name, handler string) *nodev1.RuntimeClass {
		return &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Handler: handler}
	}
	for _, tc := range []struct {
		rc   *nodev1.RuntimeClass
		gpu  corev1.ResourceName
		want string
	}{
		{rc("nvidia", "nvidia"), "nvidia.com/gpu", "nvidia"},
		{nil, "nvidia.com/gpu", ""},
		{rc("nvidia", "runc"), "nvidia.com/gpu", ""},
		{rc("nvidia", "nvidia"), "amd.com/gpu", ""},
	} {
		if got := NvidiaRuntimeClass(tc.rc, tc.gpu); got != tc.want {
			t.Errorf("NvidiaRuntimeClass(%v, %s) = %q, want %q", tc.rc, tc.gpu, got, tc.want)
		}
	}
}
