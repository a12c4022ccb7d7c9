package render

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// What every kind's GPU pods share.

// GPUTolerations let a pod that asks for GPUs onto GPU nodes, which are commonly
// tainted with the GPU resource's name so that other pods stay off them.
func GPUTolerations(gpuResource corev1.ResourceName, gpus int32) []corev1.Toleration {
	if gpus == 0 {
		return nil
	}
	return []corev1.Toleration{{
		Key:      string(gpuResource),
		Operator: corev1.TolerationOpExists,
		Effect:   corev1.TaintEffectNoSchedule,
	}}
}

// SharedMemory is a memory-backed /dev/shm with the given size limit (nil: no
// limit of its own), or nothing when the limit is zero. The container runtime's
// default /dev/shm is 64 MiB, too small for PyTorch's data loader workers and
// NCCL, which share tensors through it.
func SharedMemory(limit *resource.Quantity) ([]corev1.Volume, []corev1.VolumeMount) {
	if limit != nil && limit.IsZero() {
		return nil, nil
	}
	return []corev1.Volume{{Name: volumeSHM, VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: copyPtr(limit)},
		}}},
		[]corev1.VolumeMount{{Name: volumeSHM, MountPath: "/dev/shm"}}
}

// Pod Security. Every pod Kiln renders meets the restricted Pod Security profile
// as rendered, so namespaces that enforce it run every Kiln kind: the pod runs as
// non-root with the runtime's default seccomp profile, and every container drops
// all capabilities and cannot gain privileges. Container-level settings repeat the
// pod-level ones, so a pod-level overlay cannot take them away. What a user may
// change goes through ContainerSecurityContext, which the admin policy
// (internal/validation.Policy) checks at admission.

// NonRootID is the user and group Kiln's own images (kiln-fetch, kiln-build) run as,
// and the user Kiln's builder gives images whose base runs as root (distroless's
// "nonroot"). Pods use it as fsGroup, so volumes Kiln mounts are writable by that
// group whatever user an image runs as.
const NonRootID int64 = 65532

// RestrictedPod is the pod security context of Kiln's pods. runAsUser is left to
// the image (runAsNonRoot makes the kubelet refuse one that would run as root);
// fsGroup, when given, owns the pod's writable volumes.
func RestrictedPod(fsGroup *int64) *corev1.PodSecurityContext {
	sc := &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if fsGroup != nil {
		sc.FSGroup = ptr.To(*fsGroup)
		// A volume full of checkpoints would otherwise be walked on every start.
		sc.FSGroupChangePolicy = ptr.To(corev1.FSGroupChangeOnRootMismatch)
	}
	return sc
}

// RestrictedContainer is the container security context the restricted profile
// asks for: non-root, no privilege escalation, no capabilities, RuntimeDefault
// seccomp. The user is the image's.
func RestrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// KilnContainer is RestrictedContainer for Kiln's own images, which run as
// NonRootID and write only to their volumes: the user is stated, so the kubelet
// need not trust the image's config, and the root filesystem is read-only.
func KilnContainer() *corev1.SecurityContext {
	sc := RestrictedContainer()
	sc.RunAsUser, sc.RunAsGroup = ptr.To(NonRootID), ptr.To(NonRootID)
	sc.ReadOnlyRootFilesystem = ptr.To(true)
	return sc
}

// WithPodOverlay is Kiln's pod security context with the fields a user set in
// overlay replacing Kiln's, one by one.
func WithPodOverlay(kiln, overlay *corev1.PodSecurityContext) *corev1.PodSecurityContext {
	out := kiln.DeepCopy()
	if overlay == nil {
		return out
	}
	if out == nil {
		return overlay.DeepCopy()
	}
	o := overlay.DeepCopy()
	setIf(&out.SELinuxOptions, o.SELinuxOptions)
	setIf(&out.WindowsOptions, o.WindowsOptions)
	setIf(&out.RunAsUser, o.RunAsUser)
	setIf(&out.RunAsGroup, o.RunAsGroup)
	setIf(&out.RunAsNonRoot, o.RunAsNonRoot)
	setIf(&out.FSGroup, o.FSGroup)
	setIf(&out.FSGroupChangePolicy, o.FSGroupChangePolicy)
	setIf(&out.SeccompProfile, o.SeccompProfile)
	setIf(&out.AppArmorProfile, o.AppArmorProfile)
	setIf(&out.SupplementalGroupsPolicy, o.SupplementalGroupsPolicy)
	setIf(&out.SELinuxChangePolicy, o.SELinuxChangePolicy)
	if o.SupplementalGroups != nil {
		out.SupplementalGroups = o.SupplementalGroups
	}
	if o.Sysctls != nil {
		out.Sysctls = o.Sysctls
	}
	return out
}

// WithContainerOverlay is Kiln's container security context with the fields a
// user set in overlay replacing Kiln's, one by one, except that all capabilities
// stay dropped: the overlay adds back the ones it names.
func WithContainerOverlay(kiln, overlay *corev1.SecurityContext) *corev1.SecurityContext {
	out := kiln.DeepCopy()
	if overlay == nil {
		return out
	}
	if out == nil {
		out = &corev1.SecurityContext{}
	}
	o := overlay.DeepCopy()
	setIf(&out.Privileged, o.Privileged)
	setIf(&out.SELinuxOptions, o.SELinuxOptions)
	setIf(&out.WindowsOptions, o.WindowsOptions)
	setIf(&out.RunAsUser, o.RunAsUser)
	setIf(&out.RunAsGroup, o.RunAsGroup)
	setIf(&out.RunAsNonRoot, o.RunAsNonRoot)
	setIf(&out.ReadOnlyRootFilesystem, o.ReadOnlyRootFilesystem)
	setIf(&out.AllowPrivilegeEscalation, o.AllowPrivilegeEscalation)
	setIf(&out.ProcMount, o.ProcMount)
	setIf(&out.SeccompProfile, o.SeccompProfile)
	setIf(&out.AppArmorProfile, o.AppArmorProfile)
	if c := o.Capabilities; c != nil {
		if out.Capabilities == nil {
			out.Capabilities = &corev1.Capabilities{}
		}
		out.Capabilities.Add = c.Add
		for _, d := range c.Drop {
			if !slices.Contains(out.Capabilities.Drop, d) {
				out.Capabilities.Drop = append(out.Capabilities.Drop, d)
			}
		}
	}
	return out
}

func setIf[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}
