package render

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
)

// A Notebook is one StatefulSet of one replica (zero while stopped), a Service
// in front of it, a workspace claim that outlives stops, and a Secret with the
// server's access token. The workspace is a claim of its own rather than a
// volumeClaimTemplate, so its retention follows spec.workspace.retentionPolicy
// exactly as a TrainingJob's volumes do.

// NotebookContainerName is the notebook container's name.
const NotebookContainerName = "notebook"

// NotebookServicePort is the Service's port; it forwards to spec.port.
const NotebookServicePort = 80

// Names of the notebook's volumes.
const (
	volumeWorkspace = "kiln-workspace"
	volumeNBPfx     = "kiln-volume-"
)

// jupyterGroup owns the Jupyter images' home folder (users, GID 100); with it as
// fsGroup the workspace is writable by the image's user whatever the volume's owner.
const jupyterGroup = 100

// NotebookOptions are the cluster facts and choices that are not in the Notebook.
type NotebookOptions struct {
	// OwnerReferences makes the Notebook the controller owner of what is
	// rendered (except a retained workspace). Export leaves them out.
	OwnerReferences bool

	// RuntimeClassName is set on GPU pods when the cluster needs one for
	// containers to see GPUs.
	RuntimeClassName string

	// Token is the server's access token. The controller passes the stored one
	// so that rendering again does not change it; empty generates one.
	Token string

	// Rand is the randomness for a generated token; nil means crypto/rand.
	Rand io.Reader
}

// NotebookObjects are the native objects of a Notebook.
type NotebookObjects struct {
	Secret      *corev1.Secret
	Workspace   *corev1.PersistentVolumeClaim
	Service     *corev1.Service
	StatefulSet *appsv1.StatefulSet
}

// List returns the objects in the order to apply them: what the pod mounts first.
func (o NotebookObjects) List() []Object {
	var out []Object
	if o.Secret != nil {
		out = append(out, o.Secret)
	}
	if o.Workspace != nil {
		out = append(out, o.Workspace)
	}
	if o.Service != nil {
		out = append(out, o.Service)
	}
	if o.StatefulSet != nil {
		out = append(out, o.StatefulSet)
	}
	return out
}

// NotebookTokenSecretName is the name of the Secret with the access token.
func NotebookTokenSecretName(notebook string) string { return name(notebook, "-token", maxNameLength) }

// WorkspaceClaimName is the name of the workspace claim. A Notebook created
// again under the same name finds a retained workspace by it.
func WorkspaceClaimName(notebook string) string { return name(notebook, "-workspace", maxNameLength) }

// NotebookURL is where the Service serves the notebook inside the cluster.
func NotebookURL(nb *v1alpha1.Notebook) string {
	return fmt.Sprintf("http://%s.%s.svc/", nb.Name, nb.Namespace)
}

// NotebookVolumeClaim is the claim a spec.volumes URI mounts and the path in it:
// pvc://<claim>[/<path>] or trainingjob://<name> (that job's output claim).
func NotebookVolumeClaim(uri string) (claim, subPath string, err error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return "", "", fmt.Errorf("%q is not pvc://<claim>[/<path>] or trainingjob://<name>", uri)
	}
	switch scheme {
	case "pvc":
		claim, sub, _ := strings.Cut(rest, "/")
		if claim == "" {
			return "", "", fmt.Errorf("%q names no claim", uri)
		}
		return claim, strings.Trim(sub, "/"), nil
	case "trainingjob":
		job := strings.TrimSuffix(rest, "/")
		if job == "" || strings.Contains(job, "/") {
			return "", "", fmt.Errorf("%q must be trainingjob://<name>", uri)
		}
		return PVCName(job, "output"), "", nil
	}
	return "", "", fmt.Errorf("%q: unknown scheme %s://; use pvc:// or trainingjob://", uri, scheme)
}

// Notebook renders nb.
func Notebook(nb *v1alpha1.Notebook, opts NotebookOptions) (NotebookObjects, error) {
	r := &nbRenderer{nb: nb, opts: opts}
	token := opts.Token
	if token == "" {
		var err error
		if token, err = newToken(opts.Rand); err != nil {
			return NotebookObjects{}, err
		}
	}
	sts, err := r.statefulSet()
	if err != nil {
		return NotebookObjects{}, err
	}
	return NotebookObjects{
		Secret:      r.secret(token),
		Workspace:   r.workspace(),
		Service:     r.service(),
		StatefulSet: sts,
	}, nil
}

// newToken is 24 random bytes in hex, as long as the tokens Jupyter makes itself.
func newToken(random io.Reader) (string, error) {
	if random == nil {
		random = rand.Reader
	}
	b := make([]byte, 24)
	if _, err := io.ReadFull(random, b); err != nil {
		return "", fmt.Errorf("generating the notebook token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

type nbRenderer struct {
	nb   *v1alpha1.Notebook
	opts NotebookOptions
}

func (r *nbRenderer) labels() map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, v1alpha1.LabelNotebook: r.nb.Name}
}

func (r *nbRenderer) selector() map[string]string {
	return map[string]string{v1alpha1.LabelNotebook: r.nb.Name}
}

func (r *nbRenderer) meta(name string, owned bool) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: r.nb.Namespace, Labels: r.labels()}
	if owned && r.opts.OwnerReferences {
		m.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(r.nb, v1alpha1.GroupVersion.WithKind("Notebook"))}
	}
	return m
}

func (r *nbRenderer) secret(token string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: r.meta(NotebookTokenSecretName(r.nb.Name), true),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{v1alpha1.NotebookTokenKey: []byte(token)},
	}
}

func (r *nbRenderer) workspace() *corev1.PersistentVolumeClaim {
	ws := r.nb.Spec.Workspace
	size := resource.MustParse(v1alpha1.DefaultWorkspaceSize)
	if ws.Size != nil {
		size = ws.Size.DeepCopy()
	}
	mode := ws.AccessMode
	if mode == "" {
		mode = corev1.ReadWriteOnce
	}
	// A retained claim must not be owned, or garbage collection would delete it
	// with the Notebook.
	owned := ws.RetentionPolicy == v1alpha1.RetentionDelete
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: r.meta(WorkspaceClaimName(r.nb.Name), owned),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{mode},
			StorageClassName: copyPtr(ws.StorageClassName),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

func (r *nbRenderer) service() *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: r.meta(r.nb.Name, true),
		Spec: corev1.ServiceSpec{
			Selector: r.selector(),
			Ports: []corev1.ServicePort{{
				Name:       "http",
				Port:       NotebookServicePort,
				TargetPort: intstr.FromString("http"),
				Protocol:   corev1.ProtocolTCP,
			}},
		},
	}
}

func (r *nbRenderer) port() int32 {
	if p := r.nb.Spec.Port; p != 0 {
		return p
	}
	return v1alpha1.DefaultNotebookPort
}

func (r *nbRenderer) mountPath() string {
	if p := r.nb.Spec.Workspace.MountPath; p != "" {
		return path.Clean(p)
	}
	return v1alpha1.DefaultWorkspaceMountPath
}

func (r *nbRenderer) gpuResource() corev1.ResourceName {
	if g := r.nb.Spec.Resources.GPUResource; g != "" {
		return corev1.ResourceName(g)
	}
	return v1alpha1.DefaultGPUResource
}

func (r *nbRenderer) statefulSet() (*appsv1.StatefulSet, error) {
	spec := &r.nb.Spec
	volumes, mounts, err := r.storage()
	if err != nil {
		return nil, err
	}
	image := spec.Image
	if image == "" {
		image = v1alpha1.DefaultNotebookImage
	}
	port := r.port()
	c := corev1.Container{
		Name:         NotebookContainerName,
		Image:        image,
		Command:      append([]string(nil), spec.Command...),
		Args:         append([]string(nil), spec.Args...),
		Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: port, Protocol: corev1.ProtocolTCP}},
		Env:          r.env(),
		Resources:    r.resources(),
		VolumeMounts: mounts,
		// A TCP check works for any image that serves HTTP, and needs no token.
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}},
			PeriodSeconds: 5,
		},
		SecurityContext: WithContainerOverlay(RestrictedContainer(), spec.ContainerSecurityContext),
	}
	podSC := spec.SecurityContext.DeepCopy()
	if podSC == nil {
		podSC = RestrictedPod(ptr.To[int64](jupyterGroup))
	}
	pod := corev1.PodSpec{
		// Service environment variables only add noise to a user's shell.
		EnableServiceLinks: ptr.To(false),
		PriorityClassName:  spec.PriorityClassName,
		SecurityContext:    podSC,
		Tolerations:        GPUTolerations(r.gpuResource(), spec.Resources.GPUs),
		Containers:         []corev1.Container{c},
		Volumes:            volumes,
	}
	if spec.Resources.GPUs > 0 && r.opts.RuntimeClassName != "" {
		pod.RuntimeClassName = ptr.To(r.opts.RuntimeClassName)
	}
	var annotations map[string]string
	if shm := spec.SharedMemory; shm != nil && shm.IsZero() {
		// Kiln's pod webhook would otherwise add the /dev/shm the user turned off.
		annotations = map[string]string{AnnotationSharedMemory: SharedMemoryOff}
	}
	replicas := int32(1)
	if spec.Stopped {
		replicas = 0
	}
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: r.meta(r.nb.Name, true),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: r.nb.Name,
			Selector:    &metav1.LabelSelector{MatchLabels: r.selector()},
			// One pod: nothing to order, and a broken pod is replaced at once
			// when the template is fixed.
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: r.labels(), Annotations: annotations},
				Spec:       pod,
			},
		},
	}, nil
}

// env is the user's environment, then the variables Kiln owns.
func (r *nbRenderer) env() []corev1.EnvVar {
	var env envList
	for _, e := range r.nb.Spec.Env {
		env.set(*e.DeepCopy())
	}
	env.set(value(v1alpha1.EnvWorkspaceDir, r.mountPath()))
	if len(r.nb.Spec.Volumes) > 0 {
		env.set(value(v1alpha1.EnvDataDir, DataDir))
	}
	// The Jupyter images read both: the port to serve on, and the token they
	// require of every request, so no notebook is ever open to the whole cluster.
	env.set(value("JUPYTER_PORT", strconv.Itoa(int(r.port()))))
	env.set(corev1.EnvVar{Name: v1alpha1.EnvJupyterToken, ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: NotebookTokenSecretName(r.nb.Name)},
			Key:                  v1alpha1.NotebookTokenKey,
		},
	}})
	return env
}

func (r *nbRenderer) resources() corev1.ResourceRequirements {
	res := r.nb.Spec.Resources
	req, lim := corev1.ResourceList{}, corev1.ResourceList{}
	if g := res.GPUs; g > 0 {
		q := *resource.NewQuantity(int64(g), resource.DecimalSI)
		req[r.gpuResource()], lim[r.gpuResource()] = q, q.DeepCopy()
	}
	if res.CPU != nil {
		req[corev1.ResourceCPU] = res.CPU.DeepCopy()
	}
	if res.Memory != nil {
		req[corev1.ResourceMemory], lim[corev1.ResourceMemory] = res.Memory.DeepCopy(), res.Memory.DeepCopy()
	}
	out := corev1.ResourceRequirements{}
	if len(req) > 0 {
		out.Requests = req
	}
	if len(lim) > 0 {
		out.Limits = lim
	}
	return out
}

// storage is the workspace, /dev/shm and the read-only volumes.
func (r *nbRenderer) storage() ([]corev1.Volume, []corev1.VolumeMount, error) {
	volumes := []corev1.Volume{{Name: volumeWorkspace, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: WorkspaceClaimName(r.nb.Name)},
	}}}
	mounts := []corev1.VolumeMount{{Name: volumeWorkspace, MountPath: r.mountPath()}}
	shmVolumes, shmMounts := SharedMemory(r.nb.Spec.SharedMemory)
	volumes, mounts = append(volumes, shmVolumes...), append(mounts, shmMounts...)
	taken := map[string]string{r.mountPath(): "spec.workspace.mountPath", "/dev/shm": "/dev/shm"}
	for i, v := range r.nb.Spec.Volumes {
		claim, sub, err := NotebookVolumeClaim(v.URI)
		if err != nil {
			return nil, nil, fmt.Errorf("spec.volumes[%d].uri: %w", i, err)
		}
		dir := path.Join(DataDir, v.Name)
		if v.MountPath != "" {
			dir = path.Clean(v.MountPath)
		}
		if other, ok := taken[dir]; ok {
			return nil, nil, fmt.Errorf("spec.volumes[%d]: mount path %s is already used by %s", i, dir, other)
		}
		taken[dir] = fmt.Sprintf("spec.volumes[%d]", i)
		name := volumeNBPfx + v.Name
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: true},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: dir, SubPath: sub, ReadOnly: true})
	}
	return volumes, mounts, nil
}
