// Package render turns a TrainingJob and its chosen shape into the plain
// Kubernetes objects that run it. It is pure: the controller applies its output,
// `kubectl kiln export` prints it, and golden tests check it.
//
// One attempt of a TrainingJob is one Indexed Job plus one headless Service of
// the same name. The completion index is the node rank; pods are reachable as
// <job>-<index>.<job>. Failure handling is deliberately simple: restartPolicy
// Never and backoffLimit 0, so the first failed pod fails the Job, and Kiln
// restarts the whole gang as a new attempt with new names. Neither
// backoffLimitPerIndex nor a podFailurePolicy is set: retrying one rank would
// rejoin a rendezvous the other ranks have given up on, and a half-restarted gang
// is harder to reason about than a fresh one.
//
// The output needs nothing but the core APIs, so it also runs on a cluster
// without Kiln; owner references to the TrainingJob are optional for that reason.
package render

import (
	"fmt"
	"io"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
)

// Labels and well-known values on the rendered objects.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "kiln"
	LabelQueueName = "kueue.x-k8s.io/queue-name"

	// AnnotationSharedMemory "off" on a pod keeps Kiln's pod webhook from adding a
	// memory-backed /dev/shm to it.
	AnnotationSharedMemory = "kiln.dev/shm"
	SharedMemoryOff        = "off"

	// ContainerName is the training container's name.
	ContainerName = "trainer"

	// TorchMasterPort is torchrun's conventional rendezvous port.
	TorchMasterPort = 29500
	// JAXCoordinatorPort is where process 0 serves the JAX coordinator.
	JAXCoordinatorPort = 1234
)

// Paths inside the training container.
const (
	CheckpointDir = "/kiln/checkpoints"
	OutputDir     = "/kiln/output"
	DataDir       = "/kiln/data"
	MPIDir        = "/kiln/mpi"
	// SSHDir holds the MPI key, the client and the server configuration.
	SSHDir = "/kiln/ssh"
	// SSHDDir is sshd's writable folder: its host key and pid file.
	SSHDDir = "/kiln/sshd"
	// MPISSHPort is where every MPI pod's sshd listens: a port above 1024, so
	// sshd runs as the image's (non-root) user with no capabilities.
	MPISSHPort = 2222
)

// Options are the cluster facts and choices that are not in the TrainingJob.
type Options struct {
	// OwnerReferences makes the TrainingJob the controller owner of what is
	// rendered, so deleting it deletes them. Export leaves them out: the output
	// must apply to a cluster without Kiln.
	OwnerReferences bool

	// FetchImage runs the init step that downloads s3://, gs:// and https://
	// inputs. It is called with two arguments, the URI and the directory to fill,
	// and gets the input's Secret as environment. Required only for such inputs.
	FetchImage string

	// RuntimeClassName is set on GPU pods when the cluster needs one (such as
	// "nvidia") for containers to see GPUs.
	RuntimeClassName string

	// SSHKey is the MPI key pair for the Secret. The controller passes the existing
	// Secret's key so that rendering again does not rotate it; nil generates one.
	SSHKey *SSHKey

	// Rand is the randomness for a generated key; nil means crypto/rand. Tests pass
	// a seeded source for stable golden files.
	Rand io.Reader
}

// Object is what every rendered object is: the method set of controller-runtime's
// client.Object, without importing a client here.
type Object interface {
	metav1.Object
	runtime.Object
}

// Objects are the native objects of one attempt of a TrainingJob.
type Objects struct {
	// PVCs are the checkpoints and output claims; they span attempts.
	PVCs []*corev1.PersistentVolumeClaim
	// Secret holds the MPI SSH key (MPI only); it spans attempts.
	Secret *corev1.Secret
	// ConfigMap holds the MPI hostfile of this attempt (MPI only).
	ConfigMap *corev1.ConfigMap
	// Service is the headless Service that gives the pods DNS names.
	Service *corev1.Service
	// Job runs the pods, one per node.
	Job *batchv1.Job
}

// List returns the objects in the order to apply them: what pods mount first,
// the Job last.
func (o Objects) List() []Object {
	var out []Object
	for _, p := range o.PVCs {
		out = append(out, p)
	}
	if o.Secret != nil {
		out = append(out, o.Secret)
	}
	if o.ConfigMap != nil {
		out = append(out, o.ConfigMap)
	}
	if o.Service != nil {
		out = append(out, o.Service)
	}
	if o.Job != nil {
		out = append(out, o.Job)
	}
	return out
}

// TrainingJob renders the attempt tj.Status.Attempt of tj with the given shape.
func TrainingJob(tj *v1alpha1.TrainingJob, shape placement.Shape, opts Options) (Objects, error) {
	if err := checkShape(tj, shape); err != nil {
		return Objects{}, err
	}
	r := &renderer{tj: tj, shape: shape, opts: opts, job: JobName(tj.Name, tj.Status.Attempt)}
	var objs Objects
	var err error
	objs.PVCs = r.pvcs()
	if tj.Spec.Framework == v1alpha1.FrameworkMPI {
		if objs.Secret, err = r.sshSecret(); err != nil {
			return Objects{}, err
		}
		objs.ConfigMap = r.hostfile()
	}
	objs.Service = r.service()
	if objs.Job, err = r.batchJob(); err != nil {
		return Objects{}, err
	}
	return objs, nil
}

func checkShape(tj *v1alpha1.TrainingJob, s placement.Shape) error {
	if s.Nodes < 1 || s.ProcessesPerNode < 1 {
		return fmt.Errorf("shape %s: nodes and processes per node must be at least 1", s.Summary())
	}
	if got, want := int64(s.Nodes)*int64(s.GPUsPerNode), int64(tj.Spec.Resources.GPUs); got != want {
		return fmt.Errorf("shape %s with %d GPUs per node gives %d GPUs but the job asks for %d", s.Summary(), s.GPUsPerNode, got, want)
	}
	return nil
}

// renderer carries what every part of one rendering needs.
type renderer struct {
	tj    *v1alpha1.TrainingJob
	shape placement.Shape
	opts  Options
	job   string // Job and Service name of this attempt
}

func (r *renderer) attempt() string {
	return strconv.FormatInt(int64(r.tj.Status.Attempt), 10)
}

// labels mark objects of this attempt; selectors use the last two.
func (r *renderer) labels() map[string]string {
	return map[string]string{
		LabelManagedBy:            ManagedBy,
		v1alpha1.LabelTrainingJob: r.tj.Name,
		v1alpha1.LabelAttempt:     r.attempt(),
	}
}

// sharedLabels mark objects that span attempts.
func (r *renderer) sharedLabels() map[string]string {
	return map[string]string{
		LabelManagedBy:            ManagedBy,
		v1alpha1.LabelTrainingJob: r.tj.Name,
	}
}

func (r *renderer) meta(name string, labels map[string]string, owned bool) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: r.tj.Namespace, Labels: labels}
	if owned && r.opts.OwnerReferences {
		m.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(r.tj, v1alpha1.GroupVersion.WithKind("TrainingJob"))}
	}
	return m
}

// host is the DNS name of the pod with the given index, resolvable from any pod in
// the namespace through the headless Service.
func (r *renderer) host(index int) string {
	return fmt.Sprintf("%s-%d.%s", r.job, index, r.job)
}

func (r *renderer) service() *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: r.meta(r.job, r.labels(), true),
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			// Peers must resolve each other before they are ready: readiness is
			// what the rendezvous they are waiting for would bring.
			PublishNotReadyAddresses: true,
			Selector: map[string]string{
				v1alpha1.LabelTrainingJob: r.tj.Name,
				v1alpha1.LabelAttempt:     r.attempt(),
			},
		},
	}
}

func (r *renderer) pvcs() []*corev1.PersistentVolumeClaim {
	var out []*corev1.PersistentVolumeClaim
	for _, v := range r.volumes() {
		mode := v.spec.AccessMode
		if mode == "" {
			mode = corev1.ReadWriteMany
		}
		// A retained claim must not be owned, or garbage collection would delete it
		// with the TrainingJob.
		owned := v.spec.RetentionPolicy == v1alpha1.RetentionDelete
		out = append(out, &corev1.PersistentVolumeClaim{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: r.meta(PVCName(r.tj.Name, v.purpose), r.sharedLabels(), owned),
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{mode},
				StorageClassName: v.spec.StorageClassName,
				Resources: corev1.VolumeResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceStorage: v.spec.Size},
				},
			},
		})
	}
	return out
}

type kilnVolume struct {
	purpose string // "checkpoints" or "output"; also names the volume and path
	spec    *v1alpha1.VolumeSpec
	mount   string
	env     string
}

func (r *renderer) volumes() []kilnVolume {
	var out []kilnVolume
	if c := r.tj.Spec.Checkpoints; c != nil {
		out = append(out, kilnVolume{"checkpoints", c, CheckpointDir, v1alpha1.EnvCheckpointDir})
	}
	if o := r.tj.Spec.Output; o != nil {
		out = append(out, kilnVolume{"output", o, OutputDir, v1alpha1.EnvOutputDir})
	}
	return out
}

func (r *renderer) batchJob() (*batchv1.Job, error) {
	pod, err := r.podTemplate()
	if err != nil {
		return nil, err
	}
	labels := r.labels()
	if q := r.tj.Spec.QueueName; q != "" {
		labels[LabelQueueName] = q
	}
	nodes := r.shape.Nodes
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: r.meta(r.job, labels, true),
		Spec: batchv1.JobSpec{
			CompletionMode: ptr.To(batchv1.IndexedCompletion),
			Completions:    &nodes,
			Parallelism:    ptr.To(nodes),
			// Kiln restarts the whole gang itself; see the package comment.
			BackoffLimit:            ptr.To[int32](0),
			Suspend:                 copyPtr(r.tj.Spec.Suspend),
			TTLSecondsAfterFinished: copyPtr(r.tj.Spec.TTLSecondsAfterFinished),
			ActiveDeadlineSeconds:   copyPtr(r.tj.Spec.ActiveDeadlineSeconds),
			Template:                pod,
		},
	}
	if r.tj.Spec.Framework == v1alpha1.FrameworkMPI {
		// The launcher's exit is the job's result; the workers only serve SSH and
		// are stopped once it succeeds.
		job.Spec.SuccessPolicy = &batchv1.SuccessPolicy{
			Rules: []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("0")}},
		}
	}
	return job, nil
}

// copyPtr keeps the rendered objects from sharing memory with the TrainingJob.
func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
