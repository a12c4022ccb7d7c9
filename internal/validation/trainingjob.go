// Package validation holds the checks of Kiln objects that the webhook and the
// CLI share: what CEL cannot express, and all of it again for offline use (export
// from a file never meets an API server). Every error carries its field path.
//
// Fields of embedded Kubernetes types (volumes, tolerations, affinity) are checked
// only as far as Kiln's own rules go; the API server checks the rest when the Job
// is created.
package validation

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kiln.dev/kiln/api/v1alpha1"
)

// MaxRestarts bounds spec.restart.maxRestarts, as the CRD does.
const MaxRestarts = 100

// ValidateTrainingJob checks a TrainingJob as a whole.
func ValidateTrainingJob(tj *v1alpha1.TrainingJob) field.ErrorList {
	var errs field.ErrorList
	// The name becomes Service and pod host names, which must be DNS-1035 labels.
	for _, msg := range utilvalidation.IsDNS1035Label(tj.Name) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), tj.Name, msg))
	}
	return append(errs, validateSpec(&tj.Spec, field.NewPath("spec"))...)
}

// ValidateTrainingJobUpdate checks an update: the new object, and that what
// shapes the running gang did not change.
func ValidateTrainingJobUpdate(newTJ, oldTJ *v1alpha1.TrainingJob) field.ErrorList {
	errs := ValidateTrainingJob(newTJ)
	spec := field.NewPath("spec")
	n, o := &newTJ.Spec, &oldTJ.Spec
	errs = append(errs, apivalidation.ValidateImmutableField(n.Image, o.Image, spec.Child("image"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(framework(n.Framework), framework(o.Framework), spec.Child("framework"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(n.Resources, o.Resources, spec.Child("resources"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(n.Topology, o.Topology, spec.Child("topology"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(n.Data, o.Data, spec.Child("data"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(n.Checkpoints, o.Checkpoints, spec.Child("checkpoints"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(n.Output, o.Output, spec.Child("output"))...)
	return errs
}

// framework treats an unset framework as the default, so offline objects that
// were never defaulted validate like stored ones.
func framework(f v1alpha1.Framework) v1alpha1.Framework {
	if f == "" {
		return v1alpha1.FrameworkNone
	}
	return f
}

func knownFrameworks() []string {
	return []string{
		string(v1alpha1.FrameworkNone), string(v1alpha1.FrameworkPyTorch),
		string(v1alpha1.FrameworkMPI), string(v1alpha1.FrameworkJAX),
	}
}

func validateSpec(spec *v1alpha1.TrainingJobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	fw := framework(spec.Framework)

	if strings.TrimSpace(spec.Image) == "" {
		errs = append(errs, field.Required(p.Child("image"), "the image that runs the training code"))
	}
	if !slices.Contains(knownFrameworks(), string(fw)) {
		errs = append(errs, field.NotSupported(p.Child("framework"), spec.Framework, knownFrameworks()))
	}
	if l := spec.Launcher; l != "" && l != v1alpha1.LauncherAuto && l != v1alpha1.LauncherNone {
		errs = append(errs, field.NotSupported(p.Child("launcher"), l, []string{string(v1alpha1.LauncherAuto), string(v1alpha1.LauncherNone)}))
	}
	if fw == v1alpha1.FrameworkMPI && len(spec.Command) == 0 {
		errs = append(errs, field.Required(p.Child("command"), "framework mpi runs the command (mpirun …) on node 0; the image's entrypoint cannot be wrapped"))
	}

	errs = append(errs, validateResources(spec, fw, p)...)
	errs = append(errs, validateEnv(spec.Env, reservedEnv(spec, fw), true, p.Child("env"))...)
	errs = append(errs, validateData(spec.Data, p.Child("data"))...)
	nodes := int32(0)
	if spec.Topology != nil {
		nodes = spec.Topology.Nodes
	}
	errs = append(errs, validateVolume(spec.Checkpoints, nodes, p.Child("checkpoints"))...)
	errs = append(errs, validateVolume(spec.Output, nodes, p.Child("output"))...)

	if q := spec.SharedMemory; q != nil && q.Sign() < 0 {
		errs = append(errs, field.Invalid(p.Child("sharedMemory"), q.String(), "must not be negative; 0 turns the memory-backed /dev/shm off"))
	}
	errs = append(errs, validateNetwork(spec.Network, p.Child("network"))...)
	if m := spec.Restart.MaxRestarts; m != nil && (*m < 0 || *m > MaxRestarts) {
		errs = append(errs, field.Invalid(p.Child("restart", "maxRestarts"), *m, fmt.Sprintf("must be between 0 and %d", MaxRestarts)))
	}
	if q := spec.QueueName; q != "" {
		// It becomes a label value and names a LocalQueue.
		for _, msg := range utilvalidation.IsDNS1123Label(q) {
			errs = append(errs, field.Invalid(p.Child("queueName"), q, msg))
		}
	}
	if pc := spec.PriorityClassName; pc != "" {
		for _, msg := range utilvalidation.IsDNS1123Subdomain(pc) {
			errs = append(errs, field.Invalid(p.Child("priorityClassName"), pc, msg))
		}
	}
	if t := spec.TTLSecondsAfterFinished; t != nil && *t < 0 {
		errs = append(errs, field.Invalid(p.Child("ttlSecondsAfterFinished"), *t, "must not be negative"))
	}
	if d := spec.ActiveDeadlineSeconds; d != nil && *d < 1 {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *d, "must be at least 1"))
	}
	errs = append(errs, validateOverlay(spec.PodTemplate, reservedEnv(spec, fw), p.Child("podTemplate"))...)
	return errs
}

func validateResources(spec *v1alpha1.TrainingJobSpec, fw v1alpha1.Framework, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	res := spec.Resources
	rp := p.Child("resources")
	switch {
	case res.GPUs < 0:
		errs = append(errs, field.Invalid(rp.Child("gpus"), res.GPUs, "must be 0 (a CPU job) or more"))
	case res.GPUs == 0 && fw != v1alpha1.FrameworkNone && spec.Topology == nil:
		errs = append(errs, field.Invalid(rp.Child("gpus"), res.GPUs,
			fmt.Sprintf("framework %s needs GPUs; set resources.gpus, or a topology for a CPU run", fw)))
	}
	if g := res.GPUResource; g != "" {
		for _, msg := range utilvalidation.IsQualifiedName(g) {
			errs = append(errs, field.Invalid(rp.Child("gpuResource"), g, msg))
		}
	}
	if q := res.CPU; q != nil && q.Sign() <= 0 {
		errs = append(errs, field.Invalid(rp.Child("cpu"), q.String(), "must be more than 0"))
	}
	if q := res.Memory; q != nil && q.Sign() <= 0 {
		errs = append(errs, field.Invalid(rp.Child("memory"), q.String(), "must be more than 0"))
	}

	if t := spec.Topology; t != nil {
		tp := p.Child("topology")
		if t.Nodes < 1 {
			errs = append(errs, field.Invalid(tp.Child("nodes"), t.Nodes, "must be at least 1"))
		}
		if t.ProcessesPerNode < 1 {
			errs = append(errs, field.Invalid(tp.Child("processesPerNode"), t.ProcessesPerNode, "must be at least 1"))
		}
		if product := int64(t.Nodes) * int64(t.ProcessesPerNode); res.GPUs > 0 && product != int64(res.GPUs) {
			errs = append(errs, field.Invalid(tp, fmt.Sprintf("%d × %d", t.Nodes, t.ProcessesPerNode),
				fmt.Sprintf("makes %d processes but resources.gpus is %d; nodes × processesPerNode must equal gpus", product, res.GPUs)))
		}
	}
	return errs
}

// reservedEnv are the names, beyond the KILN_ and PET_ prefixes, that Kiln sets
// for this job and so the user must not: Kiln's value would win silently.
func reservedEnv(spec *v1alpha1.TrainingJobSpec, fw v1alpha1.Framework) map[string]string {
	owners := map[string]string{}
	switch fw {
	case v1alpha1.FrameworkJAX:
		for _, n := range []string{"JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"} {
			owners[n] = "framework jax"
		}
	case v1alpha1.FrameworkMPI:
		for _, n := range []string{"OMPI_MCA_orte_default_hostfile", "OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"} {
			owners[n] = "framework mpi"
		}
	}
	if n := spec.Network; n != nil && n.NCCL != nil {
		if n.NCCL.SocketIfname != "" {
			owners["NCCL_SOCKET_IFNAME"] = "network.nccl.socketIfname"
		}
		if n.NCCL.IBHCA != "" {
			owners["NCCL_IB_HCA"] = "network.nccl.ibHCA"
		}
		if n.NCCL.Debug != "" {
			owners["NCCL_DEBUG"] = "network.nccl.debug"
		}
		for k := range n.NCCL.Env {
			owners[k] = "network.nccl.env"
		}
	}
	return owners
}

// validateEnv checks env; with sweepVars, the variables a Sweep sets on its
// trials (KILN_PARAM_*, KILN_METRICS_*) are allowed.
func validateEnv(env []corev1.EnvVar, reserved map[string]string, sweepVars bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, e := range env {
		np := p.Index(i).Child("name")
		for _, msg := range utilvalidation.IsEnvVarName(e.Name) {
			errs = append(errs, field.Invalid(np, e.Name, msg))
		}
		switch {
		case sweepVars && (strings.HasPrefix(e.Name, v1alpha1.EnvParamPrefix) || strings.HasPrefix(e.Name, v1alpha1.EnvMetricsPrefix)):
			// A Sweep's trials carry their parameters and metrics endpoint.
		case strings.HasPrefix(e.Name, v1alpha1.EnvReservedPrefix) || strings.HasPrefix(e.Name, v1alpha1.EnvTorchrunPrefix):
			errs = append(errs, field.Forbidden(np, fmt.Sprintf("%s: names starting with %s or %s are set by Kiln",
				e.Name, v1alpha1.EnvReservedPrefix, v1alpha1.EnvTorchrunPrefix)))
		case reserved[e.Name] != "":
			errs = append(errs, field.Forbidden(np, fmt.Sprintf("%s is set by Kiln from %s", e.Name, reserved[e.Name])))
		}
		if seen[e.Name] {
			errs = append(errs, field.Duplicate(np, e.Name))
		}
		seen[e.Name] = true
	}
	return errs
}

func validateData(data []v1alpha1.DataInput, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, d := range data {
		dp := p.Index(i)
		// The name becomes a volume (kiln-data-<name>) and an init container
		// (kiln-fetch-<name>) name, both DNS labels.
		for _, msg := range utilvalidation.IsDNS1123Label(d.Name) {
			errs = append(errs, field.Invalid(dp.Child("name"), d.Name, msg))
		}
		if len(d.Name) > 40 {
			errs = append(errs, field.TooLong(dp.Child("name"), d.Name, 40))
		}
		if seen[d.Name] {
			errs = append(errs, field.Duplicate(dp.Child("name"), d.Name))
		}
		seen[d.Name] = true

		pvc, uriErrs := validateURI(d.URI, dp.Child("uri"))
		errs = append(errs, uriErrs...)
		if d.SecretRef != nil {
			sp := dp.Child("secretRef", "name")
			if pvc {
				errs = append(errs, field.Forbidden(dp.Child("secretRef"), "a pvc:// input is mounted, not fetched, and needs no credentials"))
			}
			for _, msg := range utilvalidation.IsDNS1123Subdomain(d.SecretRef.Name) {
				errs = append(errs, field.Invalid(sp, d.SecretRef.Name, msg))
			}
		}
	}
	return errs
}

// bucketName accepts S3 and GCS bucket names, loosely: the stores check the rest.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$`)

// validateURI checks a data URI and reports whether it names a claim.
func validateURI(uri string, p *field.Path) (bool, field.ErrorList) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return false, field.ErrorList{field.Invalid(p, uri, "must be pvc://<claim>[/<path>], s3://<bucket>[/<key>], gs://<bucket>[/<key>] or https://<host>/<path>")}
	}
	var errs field.ErrorList
	where, objectPath, _ := strings.Cut(rest, "/")
	if slices.Contains(strings.Split(objectPath, "/"), "..") {
		errs = append(errs, field.Invalid(p, uri, "must not contain '..' path segments"))
	}
	switch scheme {
	case "pvc":
		// Only a bare claim name is accepted, so no other namespace can be named:
		// a dotted or prefixed claim (other-ns.claim, other-ns:claim) is refused.
		if msgs := utilvalidation.IsDNS1123Label(where); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p, uri, fmt.Sprintf(
				"pvc:// names a claim in the TrainingJob's own namespace (pvc://<claim>[/<path>]); claims in other namespaces cannot be used: %s",
				strings.Join(msgs, "; "))))
		}
		// The path becomes a subPath, which the kubelet refuses unless it is clean.
		if objectPath != "" && slices.ContainsFunc(strings.Split(strings.TrimSuffix(objectPath, "/"), "/"),
			func(s string) bool { return s == "" || s == "." }) {
			errs = append(errs, field.Invalid(p, uri, "the path after the claim must not contain empty or '.' segments"))
		}
		return true, errs
	case "s3", "gs":
		if !bucketName.MatchString(where) {
			errs = append(errs, field.Invalid(p, uri, fmt.Sprintf("%q is not a bucket name", where)))
		}
	case "https":
		u, err := url.Parse(uri)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(p, uri, err.Error()))
		case u.Host == "":
			errs = append(errs, field.Invalid(p, uri, "needs a host"))
		case u.User != nil:
			errs = append(errs, field.Forbidden(p, "credentials in the URI end up in the Job for anyone to read; use secretRef"))
		}
	default:
		errs = append(errs, field.NotSupported(p, scheme+"://", []string{"pvc://", "s3://", "gs://", "https://"}))
	}
	return false, errs
}

func validateVolume(v *v1alpha1.VolumeSpec, nodes int32, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	var errs field.ErrorList
	if v.Size.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("size"), v.Size.String(), "must be more than 0"))
	}
	if sc := v.StorageClassName; sc != nil && *sc != "" {
		for _, msg := range utilvalidation.IsDNS1123Subdomain(*sc) {
			errs = append(errs, field.Invalid(p.Child("storageClassName"), *sc, msg))
		}
	}
	switch v.AccessMode {
	case "", corev1.ReadWriteMany:
	case corev1.ReadWriteOnce, corev1.ReadWriteOncePod:
		if nodes > 1 {
			errs = append(errs, field.Invalid(p.Child("accessMode"), v.AccessMode,
				fmt.Sprintf("every one of the %d nodes mounts the volume; use ReadWriteMany", nodes)))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("accessMode"), v.AccessMode,
			[]string{string(corev1.ReadWriteMany), string(corev1.ReadWriteOnce), string(corev1.ReadWriteOncePod)}))
	}
	switch v.RetentionPolicy {
	case "", v1alpha1.RetentionRetain, v1alpha1.RetentionDelete:
	default:
		errs = append(errs, field.NotSupported(p.Child("retentionPolicy"), v.RetentionPolicy,
			[]string{string(v1alpha1.RetentionRetain), string(v1alpha1.RetentionDelete)}))
	}
	return errs
}

func validateNetwork(n *v1alpha1.Network, p *field.Path) field.ErrorList {
	if n == nil {
		return nil
	}
	var errs field.ErrorList
	for name, q := range n.RDMA {
		rp := p.Child("rdma").Key(string(name))
		for _, msg := range utilvalidation.IsQualifiedName(string(name)) {
			errs = append(errs, field.Invalid(rp, name, msg))
		}
		if q.Sign() <= 0 {
			errs = append(errs, field.Invalid(rp, q.String(), "must be more than 0"))
		}
	}
	if c := n.NCCL; c != nil {
		np := p.Child("nccl")
		switch c.Debug {
		case "", "VERSION", "WARN", "INFO", "TRACE":
		default:
			errs = append(errs, field.NotSupported(np.Child("debug"), c.Debug, []string{"VERSION", "WARN", "INFO", "TRACE"}))
		}
		for k := range c.Env {
			kp := np.Child("env").Key(k)
			if !strings.HasPrefix(k, "NCCL_") {
				errs = append(errs, field.Invalid(kp, k, "must start with NCCL_"))
			}
			for _, msg := range utilvalidation.IsEnvVarName(k) {
				errs = append(errs, field.Invalid(kp, k, msg))
			}
		}
	}
	return errs
}

func validateOverlay(o *v1alpha1.PodTemplateOverlay, reserved map[string]string, p *field.Path) field.ErrorList {
	if o == nil {
		return nil
	}
	var errs field.ErrorList
	errs = append(errs, metavalidation.ValidateLabels(o.Labels, p.Child("labels"))...)
	for k := range o.Labels {
		if k == v1alpha1.LabelTrainingJob || k == v1alpha1.LabelAttempt {
			errs = append(errs, field.Forbidden(p.Child("labels").Key(k), "set by Kiln; its Service selects pods by it"))
		}
	}
	errs = append(errs, apivalidation.ValidateAnnotations(o.Annotations, p.Child("annotations"))...)
	errs = append(errs, metavalidation.ValidateLabels(o.NodeSelector, p.Child("nodeSelector"))...)
	if sa := o.ServiceAccountName; sa != "" {
		for _, msg := range utilvalidation.IsDNS1123Subdomain(sa) {
			errs = append(errs, field.Invalid(p.Child("serviceAccountName"), sa, msg))
		}
	}

	volumes := map[string]bool{}
	for i, v := range o.Volumes {
		np := p.Child("volumes").Index(i).Child("name")
		for _, msg := range utilvalidation.IsDNS1123Label(v.Name) {
			errs = append(errs, field.Invalid(np, v.Name, msg))
		}
		if strings.HasPrefix(v.Name, "kiln-") {
			errs = append(errs, field.Forbidden(np, "volume names starting with kiln- are reserved for Kiln"))
		}
		if volumes[v.Name] {
			errs = append(errs, field.Duplicate(np, v.Name))
		}
		volumes[v.Name] = true
	}
	for i, m := range o.VolumeMounts {
		mp := p.Child("volumeMounts").Index(i)
		if !volumes[m.Name] {
			errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
		}
		clean := path.Clean(m.MountPath)
		switch {
		case !path.IsAbs(m.MountPath):
			errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be an absolute path"))
		case clean == "/dev/shm" || clean == "/kiln" || strings.HasPrefix(clean, "/kiln/"):
			errs = append(errs, field.Forbidden(mp.Child("mountPath"), "/kiln/… and /dev/shm are reserved for Kiln"))
		}
	}
	errs = append(errs, validateEnv(o.Env, reserved, false, p.Child("env"))...)
	return errs
}
