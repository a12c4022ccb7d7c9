package render

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// What every kind's GPU pods share.

// gpuTolerations let a pod that asks for GPUs onto GPU nodes, which are commonly
// tainted with the GPU resource's name so that other pods stay off them.
func gpuTolerations(gpuResource corev1.ResourceName, gpus int32) []corev1.Toleration {
	if gpus == 0 {
		return nil
	}
	return []corev1.Toleration{{
		Key:      string(gpuResource),
		Operator: corev1.TolerationOpExists,
		Effect:   corev1.TaintEffectNoSchedule,
	}}
}

// sharedMemory is a memory-backed /dev/shm with the given size limit (nil: no
// limit of its own), or nothing when the limit is zero. The container runtime's
// default /dev/shm is 64 MiB, too small for PyTorch's data loader workers and
// NCCL, which share tensors through it.
func sharedMemory(limit *resource.Quantity) ([]corev1.Volume, []corev1.VolumeMount) {
	if limit != nil && limit.IsZero() {
		return nil, nil
	}
	return []corev1.Volume{{Name: volumeSHM, VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: copyPtr(limit)},
		}}},
		[]corev1.VolumeMount{{Name: volumeSHM, MountPath: "/dev/shm"}}
}

// restrictedContainer is the container security context the restricted Pod
// Security profile asks for.
func restrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}
