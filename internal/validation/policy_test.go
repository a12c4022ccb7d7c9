package validation

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
)

// The other kinds share the security-context checks; their paths are their own.
func TestPolicyOfNotebooksAndModelServers(t *testing.T) {
	ipc := &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"IPC_LOCK"}}}
	nb := v1alpha1.NotebookSpec{ContainerSecurityContext: ipc, SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(false)}}
	want := []string{"FieldValueForbidden spec.securityContext.runAsNonRoot", "FieldValueForbidden spec.containerSecurityContext.capabilities.add[0]"}
	if diff := cmp.Diff(want, summary(Policy{}.NotebookSpec(&nb, field.NewPath("spec")))); diff != "" {
		t.Errorf("notebook (-want +got):\n%s", diff)
	}
	ms := v1alpha1.ModelServerSpec{ContainerSecurityContext: ipc}
	want = []string{"FieldValueForbidden spec.containerSecurityContext.capabilities.add[0]"}
	if diff := cmp.Diff(want, summary(Policy{}.ModelServerSpec(&ms, field.NewPath("spec")))); diff != "" {
		t.Errorf("modelserver (-want +got):\n%s", diff)
	}
	if errs := (Policy{AllowedCapabilities: []corev1.Capability{"IPC_LOCK"}}).ModelServerSpec(&ms, field.NewPath("spec")); len(errs) > 0 {
		t.Errorf("allowed capability refused: %v", errs)
	}
	// The message names the flag that allows it.
	errs := Policy{}.ModelServerSpec(&ms, field.NewPath("spec"))
	if len(errs) != 1 || !strings.Contains(errs[0].Detail, "--allow-capabilities=IPC_LOCK") {
		t.Errorf("message does not name the flag: %v", errs)
	}
}

func TestPolicy(t *testing.T) {
	hostPath := func(spec *v1alpha1.TrainingJobSpec) {
		spec.PodTemplate = &v1alpha1.PodTemplateOverlay{Volumes: []corev1.Volume{
			{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}},
		}}
	}
	hostNetwork := func(spec *v1alpha1.TrainingJobSpec) { spec.Network = &v1alpha1.Network{HostNetwork: true} }
	container := func(sc corev1.SecurityContext) func(*v1alpha1.TrainingJobSpec) {
		return func(spec *v1alpha1.TrainingJobSpec) {
			spec.PodTemplate = &v1alpha1.PodTemplateOverlay{ContainerSecurityContext: &sc}
		}
	}
	pod := func(sc corev1.PodSecurityContext) func(*v1alpha1.TrainingJobSpec) {
		return func(spec *v1alpha1.TrainingJobSpec) {
			spec.PodTemplate = &v1alpha1.PodTemplateOverlay{SecurityContext: &sc}
		}
	}
	caps := func(c ...corev1.Capability) func(*v1alpha1.TrainingJobSpec) {
		return container(corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: c}})
	}
	csc := "spec.podTemplate.containerSecurityContext"
	psc := "spec.podTemplate.securityContext"
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
		{"non-root user and NET_BIND_SERVICE", Policy{}, func(spec *v1alpha1.TrainingJobSpec) {
			container(corev1.SecurityContext{RunAsUser: ptr.To[int64](1000), RunAsNonRoot: ptr.To(true),
				AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
				Capabilities:   &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}, Drop: []corev1.Capability{"ALL"}},
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("p.json")},
			})(spec)
			spec.PodTemplate.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), FSGroup: ptr.To[int64](100)}
		}, nil},
		{"capability refused", Policy{}, caps("IPC_LOCK", "CAP_SYS_ADMIN"),
			[]string{"FieldValueForbidden " + csc + ".capabilities.add[0]", "FieldValueForbidden " + csc + ".capabilities.add[1]"}},
		{"capability allowed by name", Policy{AllowedCapabilities: []corev1.Capability{"ipc_lock"}}, caps("CAP_IPC_LOCK", "SYS_ADMIN"),
			[]string{"FieldValueForbidden " + csc + ".capabilities.add[1]"}},
		{"any capability allowed", Policy{AllowedCapabilities: []corev1.Capability{"ALL"}}, caps("IPC_LOCK", "SYS_ADMIN"), nil},
		{"privileged refused", Policy{}, container(corev1.SecurityContext{
			Privileged: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true), ProcMount: ptr.To(corev1.UnmaskedProcMount),
			SeccompProfile:  &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
			AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined},
			SELinuxOptions:  &corev1.SELinuxOptions{User: "u", Role: "r", Type: "spc_t"},
			WindowsOptions:  &corev1.WindowsSecurityContextOptions{HostProcess: ptr.To(true)},
		}), []string{
			"FieldValueForbidden " + csc + ".privileged",
			"FieldValueForbidden " + csc + ".allowPrivilegeEscalation",
			"FieldValueForbidden " + csc + ".procMount",
			"FieldValueForbidden " + csc + ".seccompProfile.type",
			"FieldValueForbidden " + csc + ".appArmorProfile.type",
			"FieldValueForbidden " + csc + ".seLinuxOptions.user",
			"FieldValueForbidden " + csc + ".seLinuxOptions.role",
			"FieldValueForbidden " + csc + ".seLinuxOptions.type",
			"FieldValueForbidden " + csc + ".windowsOptions.hostProcess",
		}},
		{"privileged allowed", Policy{AllowPrivileged: true}, container(corev1.SecurityContext{
			Privileged: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
		}), nil},
		{"root refused", Policy{}, container(corev1.SecurityContext{RunAsUser: ptr.To[int64](0), RunAsNonRoot: ptr.To(false)}),
			[]string{"FieldValueForbidden " + csc + ".runAsUser", "FieldValueForbidden " + csc + ".runAsNonRoot"}},
		{"root refused in the pod", Policy{AllowPrivileged: true}, pod(corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0)}),
			[]string{"FieldValueForbidden " + psc + ".runAsUser"}},
		{"unconfined pod refused", Policy{AllowRoot: true}, pod(corev1.PodSecurityContext{
			RunAsUser: ptr.To[int64](0), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
		}), []string{"FieldValueForbidden " + psc + ".seccompProfile.type"}},
		{"root allowed", Policy{AllowRoot: true}, container(corev1.SecurityContext{RunAsUser: ptr.To[int64](0), RunAsNonRoot: ptr.To(false)}), nil},
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
