package webhook

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/internal/render"
)

// Labels and annotations of pod injection.
const (
	// LabelInject on a namespace ("enabled") opts its pods in; on a pod ("false")
	// it is the backdoor that leaves the pod untouched.
	LabelInject = "kiln.dev/inject"
	// InjectEnabled is the namespace label value that opts a namespace in.
	InjectEnabled = "enabled"
	// InjectDisabled is the pod label value that opts a pod out.
	InjectDisabled = "false"
	// AnnotationInjected lists what the webhook changed on a pod, comma-separated.
	// Its presence, even empty, says the injection was applied already (Kiln's
	// controllers apply it when they render), so the API server skips the call.
	AnnotationInjected = "kiln.dev/injected"

	// LabelManagedBy marks the pods of Kiln's workloads, as internal/render sets it.
	LabelManagedBy = render.LabelManagedBy
	managedByKiln  = render.ManagedBy

	// volumeSHM is render's name for the /dev/shm volume, so a rendered pod is
	// recognised as having one.
	volumeSHM = "kiln-shm"
	shmPath   = "/dev/shm"
)

// Injection says what the pod webhook adds. The zero value adds tolerations and
// /dev/shm; sidecars come from configuration.
type Injection struct {
	// gpuResources are the extended resources whose taints a pod requesting them
	// tolerates (key = resource, effect NoSchedule), as GPU nodes are commonly
	// tainted. Empty means KnownGPUResources.
	GPUResources []corev1.ResourceName `json:"gpuResources,omitempty"`
	// sharedMemory configures the memory-backed /dev/shm.
	SharedMemory SharedMemory `json:"sharedMemory,omitempty"`
	// sidecars are added as native sidecars (init containers that keep running,
	// restartPolicy Always), so Jobs still complete when the main container exits.
	Sidecars []Sidecar `json:"sidecars,omitempty"`
}

// SharedMemory configures the memory-backed /dev/shm.
type SharedMemory struct {
	// disabled leaves /dev/shm as the container runtime makes it (64 MiB).
	Disabled bool `json:"disabled,omitempty"`
	// sizeLimit bounds it; unset, it counts against the pod's memory only.
	SizeLimit *resource.Quantity `json:"sizeLimit,omitempty"`
}

// Sidecar is a container added to the pods its selector matches.
type Sidecar struct {
	// selector picks pods by their labels; empty matches every injected pod.
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// container is added as given, with restartPolicy Always. A pod that already
	// has a container of the same name keeps its own.
	Container corev1.Container `json:"container"`
}

// LoadInjection reads an Injection from a YAML file; "" is the default.
func LoadInjection(file string) (Injection, error) {
	var in Injection
	if file == "" {
		return in, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return in, err
	}
	if err := yaml.UnmarshalStrict(data, &in); err != nil {
		return in, fmt.Errorf("reading injection configuration %s: %w", file, err)
	}
	return in, in.validate()
}

func (in Injection) validate() error {
	for i, s := range in.Sidecars {
		if s.Container.Name == "" || s.Container.Image == "" {
			return fmt.Errorf("sidecars[%d]: a sidecar needs a name and an image", i)
		}
		if _, err := metav1.LabelSelectorAsSelector(s.Selector); err != nil {
			return fmt.Errorf("sidecars[%d].selector: %w", i, err)
		}
	}
	return nil
}

// Scope is what decides whether a pod is injected besides the pod itself.
type Scope struct {
	// Namespace of the pod and its labels.
	Namespace       string
	NamespaceLabels map[string]string
	// Excluded namespaces are never injected: kube-system and Kiln's own.
	Excluded []string
}

// Skip says why a pod is left alone, or "" when it is injected. The webhook
// configuration's selectors say the same, so the API server does not even call
// the webhook for these pods; this is the second line, for a configuration
// edited by hand and for `kubectl kiln inject`.
func Skip(pod *corev1.Pod, s Scope) string {
	switch {
	case pod.Labels[LabelInject] == InjectDisabled:
		return fmt.Sprintf("the pod is labelled %s=%s", LabelInject, InjectDisabled)
	case slices.Contains(s.Excluded, s.Namespace):
		return fmt.Sprintf("namespace %s is never injected", s.Namespace)
	case pod.Labels[LabelManagedBy] != managedByKiln && s.NamespaceLabels[LabelInject] != InjectEnabled:
		return fmt.Sprintf("the pod is not a Kiln workload's (label %s=%s) and namespace %s is not labelled %s=%s",
			LabelManagedBy, managedByKiln, s.Namespace, LabelInject, InjectEnabled)
	}
	return ""
}

// Inject adds what the pod lacks: tolerations of the GPU taints for the GPU
// resources it requests, a memory-backed /dev/shm, and the sidecars that select
// it. It never changes what is there, so injecting twice changes nothing, and it
// returns what it added, which also goes into the kiln.dev/injected annotation.
func Inject(pod *corev1.Pod, in Injection) []string {
	var changes []string
	resources := in.GPUResources
	if len(resources) == 0 {
		resources = KnownGPUResources()
	}
	for _, r := range resources {
		if requests(&pod.Spec, r) && !tolerates(pod.Spec.Tolerations, string(r)) {
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
				Key: string(r), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
			})
			changes = append(changes, "toleration:"+string(r))
		}
	}
	if !in.SharedMemory.Disabled && pod.Annotations[render.AnnotationSharedMemory] != render.SharedMemoryOff &&
		addSHM(&pod.Spec, in.SharedMemory.SizeLimit) {
		changes = append(changes, "shm")
	}
	for _, s := range in.Sidecars {
		sel, err := selectorOf(s)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) || hasContainer(&pod.Spec, s.Container.Name) {
			continue
		}
		c := *s.Container.DeepCopy()
		c.RestartPolicy = ptrTo(corev1.ContainerRestartPolicyAlways)
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, c)
		changes = append(changes, "sidecar:"+c.Name)
	}
	if len(changes) > 0 {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		all := changes
		if prev := pod.Annotations[AnnotationInjected]; prev != "" {
			all = append(strings.Split(prev, ","), changes...)
		}
		pod.Annotations[AnnotationInjected] = strings.Join(all, ",")
	}
	return changes
}

// InjectTemplate is Inject on the pod template of a workload Kiln renders, so its
// pods are created complete and the webhook's match condition spares the API
// server a call per pod. The annotation is set even when nothing was added.
func InjectTemplate(t *corev1.PodTemplateSpec, in Injection) {
	pod := &corev1.Pod{ObjectMeta: t.ObjectMeta, Spec: t.Spec}
	Inject(pod, in)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	if _, ok := pod.Annotations[AnnotationInjected]; !ok {
		pod.Annotations[AnnotationInjected] = ""
	}
	t.ObjectMeta, t.Spec = pod.ObjectMeta, pod.Spec
}

// selectorOf a sidecar: none selects every injected pod (LabelSelectorAsSelector would
// take a nil selector as selecting nothing).
func selectorOf(s Sidecar) (labels.Selector, error) {
	if s.Selector == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s.Selector)
}

func ptrTo[T any](v T) *T { return &v }

func requests(spec *corev1.PodSpec, r corev1.ResourceName) bool {
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			if q, ok := cs[i].Resources.Limits[r]; ok && q.Sign() > 0 {
				return true
			}
			if q, ok := cs[i].Resources.Requests[r]; ok && q.Sign() > 0 {
				return true
			}
		}
	}
	return false
}

// tolerates reports whether some toleration already covers a NoSchedule taint with this key.
func tolerates(tols []corev1.Toleration, key string) bool {
	taint := corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule}
	for i := range tols {
		if tols[i].Operator == corev1.TolerationOpExists && (tols[i].Key == "" || tols[i].Key == key) &&
			(tols[i].Effect == "" || tols[i].Effect == taint.Effect) {
			return true
		}
	}
	return false
}

// addSHM mounts a memory-backed volume at /dev/shm in every container, unless
// the pod shares the host's IPC namespace or already has its own /dev/shm.
func addSHM(spec *corev1.PodSpec, limit *resource.Quantity) bool {
	if spec.HostIPC || slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == volumeSHM }) {
		return false
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			for _, m := range cs[i].VolumeMounts {
				if path.Clean(m.MountPath) == shmPath {
					return false
				}
			}
		}
	}
	v := corev1.Volume{Name: volumeSHM, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}
	if limit != nil {
		v.EmptyDir.SizeLimit = ptrTo(limit.DeepCopy())
	}
	spec.Volumes = append(spec.Volumes, v)
	for i := range spec.Containers {
		spec.Containers[i].VolumeMounts = append(spec.Containers[i].VolumeMounts, corev1.VolumeMount{Name: volumeSHM, MountPath: shmPath})
	}
	return true
}

func hasContainer(spec *corev1.PodSpec, name string) bool {
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		if slices.ContainsFunc(cs, func(c corev1.Container) bool { return c.Name == name }) {
			return true
		}
	}
	return false
}

// InjectManifests is `kubectl kiln inject`: the same Skip and Inject as the
// webhook, on the pods of a YAML stream. It returns the pods as YAML documents
// and, per pod, a line saying what was added or why it was left alone.
func InjectManifests(r io.Reader, s Scope, in Injection) ([]byte, []string, error) {
	var (
		out   bytes.Buffer
		notes []string
	)
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for {
		pod := &corev1.Pod{}
		if err := dec.Decode(pod); err == io.EOF {
			break
		} else if err != nil {
			return nil, nil, fmt.Errorf("reading pods: %w", err)
		}
		if pod.Kind == "" && pod.Name == "" {
			continue // an empty document
		}
		if pod.Kind != "Pod" {
			return nil, nil, fmt.Errorf("%s %q is not a Pod: inject reads Pods only", pod.Kind, pod.Name)
		}
		scope := s
		if pod.Namespace != "" {
			scope.Namespace = pod.Namespace
		}
		if reason := Skip(pod, scope); reason != "" {
			notes = append(notes, fmt.Sprintf("pod %s: not injected: %s", pod.Name, reason))
		} else if changes := Inject(pod, in); len(changes) > 0 {
			notes = append(notes, fmt.Sprintf("pod %s: added %s", pod.Name, strings.Join(changes, ", ")))
		} else {
			notes = append(notes, fmt.Sprintf("pod %s: nothing to add", pod.Name))
		}
		y, err := yaml.Marshal(pod)
		if err != nil {
			return nil, nil, err
		}
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		out.Write(y)
	}
	return out.Bytes(), notes, nil
}
