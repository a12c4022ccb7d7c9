package render

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
)

func TestWithContainerOverlay(t *testing.T) {
	tests := []struct {
		name    string
		overlay *corev1.SecurityContext
		want    func(*corev1.SecurityContext)
	}{
		{"none keeps Kiln's", nil, func(*corev1.SecurityContext) {}},
		{"a user", &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](100)}, func(sc *corev1.SecurityContext) {
			sc.RunAsUser, sc.RunAsGroup = ptr.To[int64](1000), ptr.To[int64](100)
		}},
		{"added capabilities keep ALL dropped", &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"IPC_LOCK"}}}, func(sc *corev1.SecurityContext) {
			sc.Capabilities.Add = []corev1.Capability{"IPC_LOCK"}
		}},
		{"dropped capabilities add to ALL", &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW", "ALL"}}}, func(sc *corev1.SecurityContext) {
			sc.Capabilities.Drop = []corev1.Capability{"ALL", "NET_RAW"}
		}},
		{"set fields replace Kiln's", &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(true),
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("p.json")},
			ReadOnlyRootFilesystem:   ptr.To(true),
		}, func(sc *corev1.SecurityContext) {
			sc.AllowPrivilegeEscalation = ptr.To(true)
			sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("p.json")}
			sc.ReadOnlyRootFilesystem = ptr.To(true)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := RestrictedContainer()
			tt.want(want)
			got := WithContainerOverlay(RestrictedContainer(), tt.overlay)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestWithPodOverlay(t *testing.T) {
	tests := []struct {
		name    string
		overlay *corev1.PodSecurityContext
		want    func(*corev1.PodSecurityContext)
	}{
		{"none keeps Kiln's", nil, func(*corev1.PodSecurityContext) {}},
		{"fields replace Kiln's one by one", &corev1.PodSecurityContext{FSGroup: ptr.To[int64](100), RunAsUser: ptr.To[int64](1000)}, func(sc *corev1.PodSecurityContext) {
			sc.FSGroup, sc.RunAsUser = ptr.To[int64](100), ptr.To[int64](1000)
		}},
		{"lists replace Kiln's", &corev1.PodSecurityContext{SupplementalGroups: []int64{44}, Sysctls: []corev1.Sysctl{{Name: "net.ipv4.tcp_syncookies", Value: "1"}}}, func(sc *corev1.PodSecurityContext) {
			sc.SupplementalGroups = []int64{44}
			sc.Sysctls = []corev1.Sysctl{{Name: "net.ipv4.tcp_syncookies", Value: "1"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := RestrictedPod(ptr.To(NonRootID))
			tt.want(want)
			got := WithPodOverlay(RestrictedPod(ptr.To(NonRootID)), tt.overlay)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// Every container Kiln renders for a TrainingJob carries the restricted settings itself,
// so a pod-level overlay cannot take them away, and the user's overlay reaches the
// training container only: the fetch step stays Kiln's.
func TestTrainingPodSecurityContexts(t *testing.T) {
	tj, _ := readInput(t, "testdata/pytorch-1x8.yaml")
	tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{
		SecurityContext:          &corev1.PodSecurityContext{RunAsNonRoot: nil, FSGroup: ptr.To[int64](100)},
		ContainerSecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000)},
	}
	objs, err := TrainingJob(tj, placement.Shape{Nodes: 1, ProcessesPerNode: 8, GPUsPerNode: 8}, Options{FetchImage: "f"})
	if err != nil {
		t.Fatal(err)
	}
	spec := objs.Job.Spec.Template.Spec
	if diff := cmp.Diff(ptr.To[int64](100), spec.SecurityContext.FSGroup); diff != "" {
		t.Errorf("pod fsGroup (-want +got):\n%s", diff)
	}
	if !ptr.Deref(spec.SecurityContext.RunAsNonRoot, false) {
		t.Error("the pod overlay took runAsNonRoot away")
	}
	want := RestrictedContainer()
	want.RunAsUser = ptr.To[int64](1000)
	if diff := cmp.Diff(want, spec.Containers[0].SecurityContext); diff != "" {
		t.Errorf("trainer (-want +got):\n%s", diff)
	}
	if len(spec.InitContainers) == 0 {
		t.Fatal("the case fetches no data")
	}
	for _, c := range spec.InitContainers {
		if diff := cmp.Diff(KilnContainer(), c.SecurityContext); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.Name, diff)
		}
	}
}
