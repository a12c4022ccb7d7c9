package render

import (
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"

	"kiln.dev/kiln/api/v1alpha1"
)

// NvidiaRuntimeClass is the cluster fact behind runtimeClassName on GPU pods:
// "nvidia" when a RuntimeClass of that name runs the nvidia handler (the NVIDIA GPU
// operator and container toolkit create it where the container runtime's default
// handler does not expose GPUs) and the pods count nvidia.com/gpu; "" otherwise,
// so pods run under the default handler.
func NvidiaRuntimeClass(rc *nodev1.RuntimeClass, gpuResource corev1.ResourceName) string {
	if rc == nil || gpuResource != v1alpha1.DefaultGPUResource || rc.Name != "nvidia" || rc.Handler != "nvidia" {
		return ""
	}
	return rc.Name
}
