package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
	"kiln.dev/kiln/internal/storage"
)

// KnownGPUResources are the extended resources GPU device plugins advertise, in
// the order Kiln prefers them when a TrainingJob names none.
func KnownGPUResources() []corev1.ResourceName {
	return []corev1.ResourceName{"nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/xe", "gpu.intel.com/i915"}
}

// AnnotationAccessModes on a StorageClass lists the access modes its volumes
// support, comma-separated, for provisioners Kiln does not know.
const AnnotationAccessModes = storage.AnnotationAccessModes

// defaultTrainingJob picks the GPU resource the nodes advertise when the job
// names none, so `gpus: 8` works on an AMD or Intel cluster as on an NVIDIA one.
func defaultTrainingJob(ctx context.Context, c Cluster, tj *v1alpha1.TrainingJob) (admission.Warnings, error) {
	if tj.Spec.Resources.GPUs == 0 || tj.Spec.Resources.GPUResource != "" {
		return nil, nil
	}
	nodes, err := jobNodes(ctx, c, tj)
	if err != nil {
		return nil, err
	}
	res, why := chooseGPUResource(nodes)
	tj.Spec.Resources.GPUResource = string(res)
	if why == "" {
		return nil, nil
	}
	return admission.Warnings{"spec.resources.gpuResource set to " + string(res) + ": " + why}, nil
}

// chooseGPUResource is the first known GPU resource a node advertises, and why
// when that is not the default; the default when none does.
func chooseGPUResource(nodes []corev1.Node) (corev1.ResourceName, string) {
	for _, r := range KnownGPUResources() {
		for i := range nodes {
			if q, ok := nodes[i].Status.Allocatable[r]; ok && q.Sign() > 0 {
				if r == v1alpha1.DefaultGPUResource {
					return r, ""
				}
				return r, fmt.Sprintf("node %s advertises it and no node advertises %s", nodes[i].Name, v1alpha1.DefaultGPUResource)
			}
		}
	}
	return v1alpha1.DefaultGPUResource, ""
}

// jobNodes are the nodes the job's pods may run on, as far as its nodeSelector says.
func jobNodes(ctx context.Context, c Cluster, tj *v1alpha1.TrainingJob) ([]corev1.Node, error) {
	var selector map[string]string
	if pt := tj.Spec.PodTemplate; pt != nil {
		selector = pt.NodeSelector
	}
	var nodes corev1.NodeList
	if err := c.Cached.List(ctx, &nodes, client.MatchingLabels(selector)); err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	return nodes.Items, nil
}

// trainingJobFacts is what admission of a TrainingJob reads of the cluster.
type trainingJobFacts struct {
	// Nodes the job may run on (its nodeSelector applied).
	Nodes []corev1.Node
	// StorageClasses of the cluster.
	StorageClasses []storagev1.StorageClass
}

// admitTrainingJob checks the job against cluster-scoped facts any user may know (node
// shapes, StorageClasses). It never looks up the Secrets or claims the job names:
// admission answers every caller allowed to create, and a different answer for a
// missing claim would tell them which exist. The controller reports those instead.
func admitTrainingJob(ctx context.Context, c Cluster, tj *v1alpha1.TrainingJob) (field.ErrorList, admission.Warnings, error) {
	facts := trainingJobFacts{}
	var err error
	if facts.Nodes, err = jobNodes(ctx, c, tj); err != nil {
		return nil, nil, err
	}
	if tj.Spec.Checkpoints != nil || tj.Spec.Output != nil {
		var classes storagev1.StorageClassList
		if err := c.Cached.List(ctx, &classes); err != nil {
			return nil, nil, fmt.Errorf("listing StorageClasses: %w", err)
		}
		facts.StorageClasses = classes.Items
	}
	errs, warnings := checkTrainingJob(tj, facts)
	return errs, warnings, nil
}

// CheckTrainingJobOn is admission's check of tj against the given nodes and
// StorageClasses (admission looks up no Secret or claim it refers to). Offline `kubectl kiln export -f` prints its warnings, so an
// export warns as the webhook would on such nodes.
func CheckTrainingJobOn(tj *v1alpha1.TrainingJob, nodes []corev1.Node, classes []storagev1.StorageClass) (field.ErrorList, admission.Warnings) {
	return checkTrainingJob(tj, trainingJobFacts{Nodes: nodes, StorageClasses: classes})
}

func pvcClaim(uri string) (string, bool) {
	rest, ok := strings.CutPrefix(uri, "pvc://")
	if !ok {
		return "", false
	}
	claim, _, _ := strings.Cut(rest, "/")
	return claim, true
}

// checkTrainingJob is the cluster-dependent admission of a TrainingJob: its workers
// must fit some node, and volumes shared by
// several nodes must be ReadWriteMany. Departures from best practice are warnings,
// each with its reason and the fix.
func checkTrainingJob(tj *v1alpha1.TrainingJob, facts trainingJobFacts) (field.ErrorList, admission.Warnings) {
	var (
		errs     field.ErrorList
		warnings admission.Warnings
		spec     = &tj.Spec
		p        = field.NewPath("spec")
	)
	res := corev1.ResourceName(gpuResourceOf(spec))
	nodes := int32(1)
	if spec.Topology != nil {
		nodes = spec.Topology.Nodes
	}
	if gpus := spec.Resources.GPUs; gpus > 0 {
		shapes := placement.NodeShapesFromNodes(facts.Nodes, res)
		switch {
		case len(shapes) == 0:
			warnings = append(warnings, fmt.Sprintf(
				"%d GPUs requested but no schedulable node advertises %s%s, so the job waits until one does. "+
					"Fix: check spec.resources.gpuResource, the nodes' device plugin (kubectl kiln doctor) or the GPU pool's autoscaling",
				gpus, res, otherGPUResources(facts.Nodes, res)))
		default:
			shapeErrs, shapeWarnings, chosen := checkShape(spec, shapes, p)
			errs = append(errs, shapeErrs...)
			warnings = append(warnings, shapeWarnings...)
			if spec.Topology == nil && chosen > 0 {
				nodes = chosen
			}
		}
	}

	if nodes > 1 && spec.Checkpoints == nil {
		warnings = append(warnings, fmt.Sprintf(
			"the job runs on %d nodes without checkpoints: a failure of any node restarts the whole gang from the start. "+
				"Fix: set spec.checkpoints (a ReadWriteMany volume) and save to $%s", nodes, v1alpha1.EnvCheckpointDir))
	}
	for _, v := range []struct {
		name string
		spec *v1alpha1.VolumeSpec
	}{{"checkpoints", spec.Checkpoints}, {"output", spec.Output}} {
		if v.spec == nil {
			continue
		}
		vp := p.Child(v.name)
		mode := v.spec.AccessMode
		if mode == "" {
			mode = corev1.ReadWriteMany
		}
		if nodes > 1 && mode != corev1.ReadWriteMany && spec.Topology == nil {
			// With a topology, validation already refused this.
			errs = append(errs, field.Invalid(vp.Child("accessMode"), mode, fmt.Sprintf(
				"on this cluster the job runs on %d nodes and every one mounts the volume; use ReadWriteMany", nodes)))
		}
		if class := storageClass(facts.StorageClasses, v.spec.StorageClassName); class != nil && mode == corev1.ReadWriteMany && readWriteOnceOnly(class) {
			warnings = append(warnings, fmt.Sprintf(
				"spec.%s asks for a ReadWriteMany volume of StorageClass %s (provisioner %s), which makes ReadWriteOnce volumes only: "+
					"the claim will not bind and the job will not start. Fix: set spec.%s.storageClassName to a ReadWriteMany class "+
					"(NFS, CephFS, EFS, Filestore, Azure Files)", v.name, class.Name, class.Provisioner, v.name))
		}
	}
	return errs, warnings
}

// checkShape refuses a job whose workers no node could hold, and warns when it
// does not fit the nodes present now or spreads over more nodes than it needs.
// It returns the number of nodes Kiln would choose today (0 when none fits).
func checkShape(spec *v1alpha1.TrainingJobSpec, shapes []placement.NodeShape, p *field.Path) (field.ErrorList, admission.Warnings, int32) {
	var (
		errs     field.ErrorList
		warnings admission.Warnings
	)
	// Pools grow (autoscaling, repairs), so only a worker larger than every node
	// is refused; the controller waits for nodes otherwise.
	grown := slices.Clone(shapes)
	for i := range grown {
		grown[i].Count = 1 << 20
	}
	if _, err := placement.ForTrainingJob(spec, grown); err != nil {
		path := p.Child("resources", "gpus")
		value := any(spec.Resources.GPUs)
		if spec.Topology != nil {
			path, value = p.Child("topology", "processesPerNode"), spec.Topology.ProcessesPerNode
		}
		return append(errs, field.Invalid(path, value, err.Error()+"; no node of this cluster could hold one worker")), nil, 0
	}
	shape, err := placement.ForTrainingJob(spec, shapes)
	if err != nil {
		warnings = append(warnings, "the job does not fit the nodes present now: "+err.Error()+
			". It waits until nodes join (for example through the cluster autoscaler)")
		return errs, warnings, 0
	}
	if spec.Topology == nil {
		if why := placement.WiderThanNeeded(spec.Resources.GPUs, shape, shapes); why != "" {
			warnings = append(warnings, why)
		}
	}
	if t := spec.Topology; t != nil && t.Nodes > 1 {
		if best, err := placement.Choose(spec.Resources.GPUs, gpuResourceOf(spec), shapes); err == nil && best.Nodes < t.Nodes {
			warnings = append(warnings, fmt.Sprintf(
				"spec.topology asks for %d nodes × %d GPUs, but %d node(s) × %d GPUs would hold the job (%s): fewer nodes means less "+
					"traffic between them and a smaller gang to schedule. Fix: remove spec.topology and let Kiln choose",
				t.Nodes, t.ProcessesPerNode, best.Nodes, best.ProcessesPerNode, best.Reason))
		}
	}
	return errs, warnings, shape.Nodes
}

// otherGPUResources names the GPU resources the nodes do advertise, as a hint.
func otherGPUResources(nodes []corev1.Node, except corev1.ResourceName) string {
	var seen []string
	for _, r := range KnownGPUResources() {
		if r == except {
			continue
		}
		for i := range nodes {
			if q, ok := nodes[i].Status.Allocatable[r]; ok && q.Sign() > 0 {
				seen = append(seen, string(r))
				break
			}
		}
	}
	if len(seen) == 0 {
		return ""
	}
	return " (nodes advertise " + strings.Join(seen, ", ") + ")"
}

// storageClass is the named class, or the cluster's default for an unset name.
func storageClass(classes []storagev1.StorageClass, name *string) *storagev1.StorageClass {
	for i := range classes {
		c := &classes[i]
		if name != nil && *name != "" {
			if c.Name == *name {
				return c
			}
			continue
		}
		if c.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
			return c
		}
	}
	return nil
}

// readWriteOnceOnly reads the table doctor shares, so both name the same classes.
func readWriteOnceOnly(c *storagev1.StorageClass) bool {
	return storage.ClassModes(c) == storage.ReadWriteOnceOnly
}

func gpuResourceOf(spec *v1alpha1.TrainingJobSpec) string {
	if g := spec.Resources.GPUResource; g != "" {
		return g
	}
	return v1alpha1.DefaultGPUResource
}
