package render

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
)

// Names of the volumes Kiln adds; users' volumes may not start with "kiln-".
const (
	volumeSHM      = "kiln-shm"
	volumeSSH      = "kiln-ssh"
	volumeHostfile = "kiln-hostfile"
	volumeSSHD     = "kiln-sshd"
	volumeDataPfx  = "kiln-data-"
)

// podTemplate builds the pod of every node. Kiln's settings come first and the
// podTemplate overlay last, but the overlay can only add: Kiln's environment
// variables replace same-named ones, and a clash with Kiln's volumes or mount
// paths is an error.
func (r *renderer) podTemplate() (corev1.PodTemplateSpec, error) {
	spec := &r.tj.Spec
	overlay := spec.PodTemplate
	if overlay == nil {
		overlay = &v1alpha1.PodTemplateOverlay{}
	}
	overlay = overlay.DeepCopy()

	volumes, mounts, inits, err := r.storage()
	if err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	if volumes, err = addVolumes(volumes, overlay.Volumes); err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	if mounts, err = addMounts(mounts, overlay.VolumeMounts); err != nil {
		return corev1.PodTemplateSpec{}, err
	}

	c := corev1.Container{
		Name:         ContainerName,
		Image:        spec.Image,
		Command:      slices.Clone(spec.Command),
		Args:         slices.Clone(spec.Args),
		WorkingDir:   spec.WorkingDir,
		Env:          r.env(overlay.Env),
		Resources:    r.resources(),
		VolumeMounts: mounts,
		// The restricted profile, with what the user changed (admission checked
		// that against the administrator's policy).
		SecurityContext: WithContainerOverlay(RestrictedContainer(), overlay.ContainerSecurityContext),
	}
	if spec.Framework == v1alpha1.FrameworkMPI {
		c.Command = append([]string{"/bin/sh", "-c", mpiEntrypoint, "kiln-mpi"}, spec.Command...)
		c.Ports = []corev1.ContainerPort{{Name: "ssh", ContainerPort: MPISSHPort, Protocol: corev1.ProtocolTCP}}
	}
	if launchOf(spec, r.shape) == launchTorchrun {
		// PET_NO_PYTHON (below) makes torchrun run the command as given, once per
		// process, so `python train.py` and `python -m pkg` both work.
		c.Command = append(append([]string{}, torchLauncher...), spec.Command...)
	}

	labels := overlay.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, r.labels()) // Kiln's labels win: the Service selects on them.

	pod := corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		// With the headless Service of the same name, pods get the DNS names
		// <job>-<index>.<job>.
		Subdomain: r.job,
		// Service environment variables only add noise to a training environment.
		EnableServiceLinks: ptr.To(false),
		PriorityClassName:  spec.PriorityClassName,
		ServiceAccountName: overlay.ServiceAccountName,
		// The image's user, in group NonRootID, which owns the checkpoint and output
		// volumes and can read the MPI key.
		SecurityContext: WithPodOverlay(RestrictedPod(ptr.To(NonRootID)), overlay.SecurityContext),
		NodeSelector:    overlay.NodeSelector,
		Affinity:        overlay.Affinity,
		Tolerations:     append(r.tolerations(), overlay.Tolerations...),
		InitContainers:  inits,
		Containers:      []corev1.Container{c},
		Volumes:         volumes,
	}
	if n := spec.Network; n != nil && n.HostNetwork {
		pod.HostNetwork = true
		// Without it a host-network pod uses the node's resolver and cannot find its peers.
		pod.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	}
	if r.shape.Nodes > 1 {
		// The shape has one worker per node: two on one node would be a different
		// shape, contending for the node's GPUs and network. Spreading with a skew
		// of one over the nodes a worker may use puts exactly one on each of the
		// nodes Kiln's admission chose (or, under Kueue, on distinct nodes).
		pod.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew:           1,
			TopologyKey:       corev1.LabelHostname,
			WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
				v1alpha1.LabelTrainingJob: r.tj.Name,
				v1alpha1.LabelAttempt:     r.attempt(),
			}},
		}}
	}
	if r.shape.GPUsPerNode > 0 && r.opts.RuntimeClassName != "" {
		pod.RuntimeClassName = ptr.To(r.opts.RuntimeClassName)
	}
	annotations := overlay.Annotations
	if shm := spec.SharedMemory; shm != nil && shm.IsZero() {
		// Kiln's pod webhook would otherwise add the /dev/shm the user turned off.
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[AnnotationSharedMemory] = SharedMemoryOff
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
		Spec:       pod,
	}, nil
}

func (r *renderer) gpuResource() corev1.ResourceName {
	if g := r.tj.Spec.Resources.GPUResource; g != "" {
		return corev1.ResourceName(g)
	}
	return v1alpha1.DefaultGPUResource
}

// tolerations let GPU pods onto GPU nodes, which are commonly tainted with the
// GPU resource's name so that other pods stay off them.
func (r *renderer) tolerations() []corev1.Toleration {
	return GPUTolerations(r.gpuResource(), r.shape.GPUsPerNode)
}

// resources of one pod: the per-process CPU and memory times the processes in
// it, and its share of the GPUs.
func (r *renderer) resources() corev1.ResourceRequirements {
	res := r.tj.Spec.Resources
	perPod := int64(r.shape.ProcessesPerNode)
	req, lim := corev1.ResourceList{}, corev1.ResourceList{}
	if g := r.shape.GPUsPerNode; g > 0 {
		q := *resource.NewQuantity(int64(g), resource.DecimalSI)
		req[r.gpuResource()], lim[r.gpuResource()] = q, q
	}
	if res.CPU != nil {
		// No CPU limit: throttling slows data loading and buys nothing on a node
		// the job mostly has to itself.
		req[corev1.ResourceCPU] = times(*res.CPU, perPod)
	}
	if res.Memory != nil {
		// Limit equal to the request, so the OOM killer picks this pod rather than
		// a neighbour when training outgrows its estimate.
		m := times(*res.Memory, perPod)
		req[corev1.ResourceMemory], lim[corev1.ResourceMemory] = m, m.DeepCopy()
	}
	if n := r.tj.Spec.Network; n != nil {
		for name, q := range n.RDMA {
			req[name], lim[name] = q.DeepCopy(), q.DeepCopy()
		}
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

func times(q resource.Quantity, n int64) resource.Quantity {
	q = q.DeepCopy()
	q.Mul(n)
	return q
}

// env is the training container's environment, in this order: Kiln's defaults,
// spec.env, the overlay's env, then the variables Kiln owns, which replace any
// earlier ones of the same name.
func (r *renderer) env(overlay []corev1.EnvVar) []corev1.EnvVar {
	var env envList
	spec := &r.tj.Spec
	if r.shape.GPUsPerNode == 0 {
		// Without it, each process of a CPU job starts a thread per core of the
		// node and the processes fight over them.
		env.set(value("OMP_NUM_THREADS", strconv.FormatInt(r.threadsPerProcess(), 10)))
	}
	for _, e := range spec.Env {
		env.set(*e.DeepCopy())
	}
	for _, e := range overlay {
		env.set(e)
	}

	nodes := strconv.Itoa(int(r.shape.Nodes))
	perNode := strconv.Itoa(int(r.shape.ProcessesPerNode))
	env.set(value(v1alpha1.EnvNodes, nodes))
	env.set(value(v1alpha1.EnvProcsPerNode, perNode))
	env.set(nodeRank(v1alpha1.EnvNodeRank))
	env.set(value(v1alpha1.EnvLeaderAddr, r.host(0)))
	env.set(value(v1alpha1.EnvAttempt, r.attempt()))
	if len(spec.Data) > 0 {
		env.set(value(v1alpha1.EnvDataDir, DataDir))
	}
	for _, v := range r.volumes() {
		env.set(value(v.env, v.mount))
	}
	if cp := r.tj.Status.LatestCheckpoint; cp != "" && ptr.Deref(spec.Restart.ResumeFromCheckpoint, true) {
		env.set(value(v1alpha1.EnvResumeFrom, cp))
	}

	switch spec.Framework {
	case v1alpha1.FrameworkPyTorch:
		// torchrun reads PET_<flag> for each of its flags in every release, unlike
		// the flags themselves, whose spelling changed.
		env.set(value("PET_NNODES", nodes))
		env.set(value("PET_NPROC_PER_NODE", perNode))
		env.set(nodeRank("PET_NODE_RANK"))
		env.set(value("PET_MASTER_ADDR", r.host(0)))
		env.set(value("PET_MASTER_PORT", strconv.Itoa(TorchMasterPort)))
		switch launchOf(spec, r.shape) {
		case launchTorchrun:
			env.set(value("PET_NO_PYTHON", "1"))
		case launchOnePerPod:
			// What torchrun would give its one process, for code that calls
			// init_process_group("env://") itself.
			env.set(value("WORLD_SIZE", nodes))
			env.set(nodeRank("RANK"))
			env.set(value("LOCAL_RANK", "0"))
			env.set(value("MASTER_ADDR", r.host(0)))
			env.set(value("MASTER_PORT", strconv.Itoa(TorchMasterPort)))
		}
	case v1alpha1.FrameworkJAX:
		// One JAX process per pod drives all of the pod's GPUs. JAX reads the
		// address itself; code passes the other two to jax.distributed.initialize.
		env.set(value("JAX_COORDINATOR_ADDRESS", fmt.Sprintf("%s:%d", r.host(0), JAXCoordinatorPort)))
		env.set(value("JAX_NUM_PROCESSES", nodes))
		env.set(nodeRank("JAX_PROCESS_ID"))
	case v1alpha1.FrameworkMPI:
		env.set(value(v1alpha1.EnvHostfile, path.Join(MPIDir, hostfileKey)))
		env.set(value("OMPI_MCA_orte_default_hostfile", path.Join(MPIDir, hostfileKey)))
		// ssh reads ~/.ssh of the user's passwd entry, which Kiln does not know:
		// point it at Kiln's config (port, key, host keys).
		env.set(value("OMPI_MCA_plm_rsh_args", "-F "+path.Join(SSHDir, sshConfigKey)))
	}

	if n := spec.Network; n != nil && n.NCCL != nil {
		nccl := n.NCCL
		for _, kv := range [][2]string{
			{"NCCL_SOCKET_IFNAME", nccl.SocketIfname},
			{"NCCL_IB_HCA", nccl.IBHCA},
			{"NCCL_DEBUG", string(nccl.Debug)},
		} {
			if kv[1] != "" {
				env.set(value(kv[0], kv[1]))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(nccl.Env)) {
			env.set(value(k, nccl.Env[k]))
		}
	}
	return env
}

// threadsPerProcess is the whole CPUs each process requested, at least one.
func (r *renderer) threadsPerProcess() int64 {
	if c := r.tj.Spec.Resources.CPU; c != nil {
		return max(1, c.MilliValue()/1000)
	}
	return 1
}

type envList []corev1.EnvVar

// set replaces the variable of the same name in place, or appends it.
func (l *envList) set(v corev1.EnvVar) {
	for i := range *l {
		if (*l)[i].Name == v.Name {
			(*l)[i] = v
			return
		}
	}
	*l = append(*l, v)
}

func value(name, v string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, Value: v}
}

// nodeRank reads the completion index from the pod's annotation, which the Job
// controller sets on every pod of an Indexed Job.
func nodeRank(name string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{
			FieldPath: fmt.Sprintf("metadata.annotations['%s']", batchv1.JobCompletionIndexAnnotation),
		},
	}}
}

// storage returns Kiln's volumes, the training container's mounts of them, and
// the init containers that fetch remote inputs.
func (r *renderer) storage() ([]corev1.Volume, []corev1.VolumeMount, []corev1.Container, error) {
	var (
		volumes []corev1.Volume
		mounts  []corev1.VolumeMount
		inits   []corev1.Container
		spec    = &r.tj.Spec
	)
	volumes, mounts = SharedMemory(spec.SharedMemory)
	for _, v := range r.volumes() {
		name := "kiln-" + v.purpose
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: PVCName(r.tj.Name, v.purpose)},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: v.mount})
	}
	for i, d := range spec.Data {
		name := volumeDataPfx + d.Name
		dir := path.Join(DataDir, d.Name)
		if rest, ok := strings.CutPrefix(d.URI, "pvc://"); ok {
			claim, sub, _ := strings.Cut(rest, "/")
			if claim == "" {
				return nil, nil, nil, fmt.Errorf("spec.data[%d].uri %q names no claim", i, d.URI)
			}
			volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: true},
			}})
			mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: dir, SubPath: strings.Trim(sub, "/"), ReadOnly: true})
			continue
		}
		if r.opts.FetchImage == "" {
			return nil, nil, nil, fmt.Errorf("spec.data[%d] (%s) must be fetched, but no fetch image is configured", i, d.URI)
		}
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: dir, ReadOnly: true})
		fetch := corev1.Container{
			Name:         "kiln-fetch-" + d.Name,
			Image:        r.opts.FetchImage,
			Args:         []string{d.URI, dir},
			VolumeMounts: []corev1.VolumeMount{{Name: name, MountPath: dir}},
			// It writes only the volume it fills (its temporary files go there too).
			SecurityContext: KilnContainer(),
		}
		if d.SecretRef != nil {
			// Only the fetch step sees the credentials; the training code does not need them.
			fetch.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: d.SecretRef.Name},
			}}}
		}
		inits = append(inits, fetch)
	}
	if spec.Framework == v1alpha1.FrameworkMPI {
		volumes = append(volumes,
			corev1.Volume{Name: volumeSSH, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: SSHSecretName(r.tj.Name),
				// Root owns the files and the pod's fsGroup reads them (the kubelet
				// adds group read): the image's user, whichever it is, can read the
				// key, nobody can write it, and OpenSSH checks the modes of a key only
				// when the user reading it owns it.
				DefaultMode: ptr.To[int32](0o440),
			}}},
			corev1.Volume{Name: volumeHostfile, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: HostfileName(r.job)},
			}}},
			// sshd's host key, made at start, so every pod has its own.
			corev1.Volume{Name: volumeSSHD, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		)
		mounts = append(mounts,
			corev1.VolumeMount{Name: volumeSSH, MountPath: SSHDir, ReadOnly: true},
			corev1.VolumeMount{Name: volumeHostfile, MountPath: MPIDir, ReadOnly: true},
			corev1.VolumeMount{Name: volumeSSHD, MountPath: SSHDDir},
		)
	}
	return volumes, mounts, inits, nil
}

func addVolumes(kiln, user []corev1.Volume) ([]corev1.Volume, error) {
	for i, v := range user {
		if strings.HasPrefix(v.Name, "kiln-") || slices.ContainsFunc(kiln, func(k corev1.Volume) bool { return k.Name == v.Name }) {
			return nil, fmt.Errorf("spec.podTemplate.volumes[%d]: volume name %q is reserved for Kiln", i, v.Name)
		}
	}
	return append(kiln, user...), nil
}

func addMounts(kiln, user []corev1.VolumeMount) ([]corev1.VolumeMount, error) {
	for i, m := range user {
		p := path.Clean(m.MountPath)
		taken := slices.ContainsFunc(kiln, func(k corev1.VolumeMount) bool { return k.MountPath == p })
		if taken || p == "/dev/shm" || p == "/kiln" || strings.HasPrefix(p, "/kiln/") {
			return nil, fmt.Errorf("spec.podTemplate.volumeMounts[%d]: mount path %q is reserved for Kiln", i, m.MountPath)
		}
	}
	return append(kiln, user...), nil
}
