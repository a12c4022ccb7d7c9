package validation

import (
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
)

// MaxNotebookNameLength keeps <name>-0, the notebook's pod, a valid host name
// whatever the StatefulSet controller appends.
const MaxNotebookNameLength = render.MaxJobNameLength

// notebookReservedEnv are names Kiln sets in every notebook container.
var notebookReservedEnv = []string{v1alpha1.EnvJupyterToken, "JUPYTER_PORT"}

// ValidateNotebook checks a Notebook as a whole.
func ValidateNotebook(nb *v1alpha1.Notebook) field.ErrorList {
	var errs field.ErrorList
	np := field.NewPath("metadata", "name")
	// The name becomes a Service's and a pod's host name.
	for _, msg := range utilvalidation.IsDNS1035Label(nb.Name) {
		errs = append(errs, field.Invalid(np, nb.Name, msg))
	}
	if len(nb.Name) > MaxNotebookNameLength {
		errs = append(errs, field.TooLong(np, nb.Name, MaxNotebookNameLength))
	}
	return append(errs, validateNotebookSpec(&nb.Spec, field.NewPath("spec"))...)
}

// ValidateNotebookUpdate checks an update: the new object, and that the
// workspace claim, which exists already, is not asked to change.
func ValidateNotebookUpdate(newNB, oldNB *v1alpha1.Notebook) field.ErrorList {
	errs := ValidateNotebook(newNB)
	wp := field.NewPath("spec", "workspace")
	n, o := &newNB.Spec.Workspace, &oldNB.Spec.Workspace
	if o.Size != nil && (n.Size == nil || n.Size.Cmp(*o.Size) != 0) {
		errs = append(errs, field.Forbidden(wp.Child("size"), "the workspace claim exists already; its size cannot be changed here"))
	}
	errs = append(errs, apivalidation.ValidateImmutableField(n.StorageClassName, o.StorageClassName, wp.Child("storageClassName"))...)
	if o.AccessMode != "" {
		errs = append(errs, apivalidation.ValidateImmutableField(n.AccessMode, o.AccessMode, wp.Child("accessMode"))...)
	}
	return errs
}

func validateNotebookSpec(spec *v1alpha1.NotebookSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.Image != "" && strings.TrimSpace(spec.Image) != spec.Image {
		errs = append(errs, field.Invalid(p.Child("image"), spec.Image, "must not have leading or trailing spaces"))
	}
	if spec.Port != 0 {
		for _, msg := range utilvalidation.IsValidPortNum(int(spec.Port)) {
			errs = append(errs, field.Invalid(p.Child("port"), spec.Port, msg))
		}
	}
	reserved := map[string]string{}
	for _, n := range notebookReservedEnv {
		reserved[n] = "every notebook"
	}
	errs = append(errs, validateEnv(spec.Env, reserved, false, p.Child("env"))...)
	errs = append(errs, validateNotebookResources(&spec.Resources, p.Child("resources"))...)
	mountPath, wsErrs := validateWorkspace(&spec.Workspace, p.Child("workspace"))
	errs = append(errs, wsErrs...)
	errs = append(errs, validateNotebookVolumes(spec.Volumes, mountPath, p.Child("volumes"))...)
	if q := spec.SharedMemory; q != nil && q.Sign() < 0 {
		errs = append(errs, field.Invalid(p.Child("sharedMemory"), q.String(), "must not be negative; 0 turns the memory-backed /dev/shm off"))
	}
	if t := spec.IdleTimeout; t != nil && t.Duration < 0 {
		errs = append(errs, field.Invalid(p.Child("idleTimeout"), t.Duration.String(), "must not be negative; 0 (or unset) never stops the notebook"))
	}
	if pc := spec.PriorityClassName; pc != "" {
		for _, msg := range utilvalidation.IsDNS1123Subdomain(pc) {
			errs = append(errs, field.Invalid(p.Child("priorityClassName"), pc, msg))
		}
	}
	return errs
}

func validateNotebookResources(res *v1alpha1.NotebookResources, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if res.GPUs < 0 {
		errs = append(errs, field.Invalid(p.Child("gpus"), res.GPUs, "must be 0 (a CPU notebook) or more"))
	}
	if g := res.GPUResource; g != "" {
		for _, msg := range utilvalidation.IsQualifiedName(g) {
			errs = append(errs, field.Invalid(p.Child("gpuResource"), g, msg))
		}
	}
	if q := res.CPU; q != nil && q.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("cpu"), q.String(), "must be more than 0"))
	}
	if q := res.Memory; q != nil && q.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("memory"), q.String(), "must be more than 0"))
	}
	return errs
}

// validateWorkspace returns the clean mount path for the volumes' checks.
func validateWorkspace(ws *v1alpha1.WorkspaceSpec, p *field.Path) (string, field.ErrorList) {
	var errs field.ErrorList
	if ws.Size != nil && ws.Size.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("size"), ws.Size.String(), "must be more than 0"))
	}
	if sc := ws.StorageClassName; sc != nil && *sc != "" {
		for _, msg := range utilvalidation.IsDNS1123Subdomain(*sc) {
			errs = append(errs, field.Invalid(p.Child("storageClassName"), *sc, msg))
		}
	}
	switch ws.AccessMode {
	case "", corev1.ReadWriteOnce, corev1.ReadWriteOncePod, corev1.ReadWriteMany:
	default:
		errs = append(errs, field.NotSupported(p.Child("accessMode"), ws.AccessMode,
			[]string{string(corev1.ReadWriteOnce), string(corev1.ReadWriteOncePod), string(corev1.ReadWriteMany)}))
	}
	switch ws.RetentionPolicy {
	case "", v1alpha1.RetentionRetain, v1alpha1.RetentionDelete:
	default:
		errs = append(errs, field.NotSupported(p.Child("retentionPolicy"), ws.RetentionPolicy,
			[]string{string(v1alpha1.RetentionRetain), string(v1alpha1.RetentionDelete)}))
	}
	mount := v1alpha1.DefaultWorkspaceMountPath
	if ws.MountPath != "" {
		errs = append(errs, validateMountPath(ws.MountPath, p.Child("mountPath"))...)
		mount = path.Clean(ws.MountPath)
	}
	return mount, errs
}

func validateMountPath(m string, p *field.Path) field.ErrorList {
	clean := path.Clean(m)
	switch {
	case !path.IsAbs(m):
		return field.ErrorList{field.Invalid(p, m, "must be an absolute path")}
	case clean == "/":
		return field.ErrorList{field.Invalid(p, m, "must not be the root folder")}
	case clean == "/dev/shm" || clean == "/kiln":
		return field.ErrorList{field.Forbidden(p, fmt.Sprintf("%s is reserved for Kiln", clean))}
	}
	return nil
}

// validateNotebookVolumes checks the volumes' references. Only references to the
// Notebook's own namespace can be written: the claim or job is a bare name.
func validateNotebookVolumes(vols []v1alpha1.NotebookVolume, workspace string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := map[string]bool{}
	mounts := map[string]string{workspace: "spec.workspace.mountPath"}
	for i, v := range vols {
		vp := p.Index(i)
		for _, msg := range utilvalidation.IsDNS1123Label(v.Name) {
			errs = append(errs, field.Invalid(vp.Child("name"), v.Name, msg))
		}
		if len(v.Name) > 40 {
			errs = append(errs, field.TooLong(vp.Child("name"), v.Name, 40))
		}
		if names[v.Name] {
			errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
		}
		names[v.Name] = true
		errs = append(errs, validateNotebookURI(v.URI, vp.Child("uri"))...)

		dir := path.Join(render.DataDir, v.Name)
		if v.MountPath != "" {
			if mErrs := validateMountPath(v.MountPath, vp.Child("mountPath")); len(mErrs) > 0 {
				errs = append(errs, mErrs...)
				continue
			}
			dir = path.Clean(v.MountPath)
		}
		if other, ok := mounts[dir]; ok {
			errs = append(errs, field.Invalid(vp.Child("mountPath"), dir, "already used by "+other))
		}
		mounts[dir] = vp.String()
	}
	return errs
}

func validateNotebookURI(uri string, p *field.Path) field.ErrorList {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return field.ErrorList{field.Invalid(p, uri, "must be pvc://<claim>[/<path>] or trainingjob://<name>")}
	}
	where, sub, _ := strings.Cut(rest, "/")
	var errs field.ErrorList
	switch scheme {
	case "pvc":
		if msgs := utilvalidation.IsDNS1123Label(where); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p, uri, fmt.Sprintf(
				"pvc:// names a claim in the Notebook's own namespace (pvc://<claim>[/<path>]); claims in other namespaces cannot be used: %s",
				strings.Join(msgs, "; "))))
		}
		segments := strings.Split(strings.TrimSuffix(sub, "/"), "/")
		if sub != "" && slices.ContainsFunc(segments, func(s string) bool { return s == "" || s == "." || s == ".." }) {
			errs = append(errs, field.Invalid(p, uri, "the path after the claim must not contain empty, '.' or '..' segments"))
		}
	case "trainingjob":
		if msgs := utilvalidation.IsDNS1035Label(where); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p, uri, fmt.Sprintf(
				"trainingjob:// names a TrainingJob in the Notebook's own namespace (trainingjob://<name>): %s", strings.Join(msgs, "; "))))
		}
		if strings.Trim(sub, "/") != "" {
			errs = append(errs, field.Invalid(p, uri, "trainingjob:// takes only a name: the job's whole output volume is mounted"))
		}
	default:
		errs = append(errs, field.NotSupported(p, scheme+"://", []string{"pvc://", "trainingjob://"}))
	}
	return errs
}

// NotebookWarnings are what admission should tell the user without refusing
// the Notebook, given the cluster's nodes.
func NotebookWarnings(nb *v1alpha1.Notebook, nodes []corev1.Node) []string {
	var warnings []string
	if w := NotebookGPUWarning(nb, nodes); w != "" {
		warnings = append(warnings, w)
	}
	if spec := &nb.Spec; spec.Resources.GPUs > 0 && (spec.IdleTimeout == nil || spec.IdleTimeout.Duration == 0) {
		warnings = append(warnings, "spec.idleTimeout is unset: the notebook holds its GPUs until it is stopped; set one (such as 1h) to give idle GPUs back")
	}
	return warnings
}

// NotebookGPUWarning says why no node can run the Notebook's GPUs, or "". Such a
// Notebook is still accepted: its pod waits for the autoscaler or a new node.
func NotebookGPUWarning(nb *v1alpha1.Notebook, nodes []corev1.Node) string {
	g := nb.Spec.Resources.GPUs
	if g <= 0 {
		return ""
	}
	res := corev1.ResourceName(nb.Spec.Resources.GPUResource)
	if res == "" {
		res = v1alpha1.DefaultGPUResource
	}
	most := int64(0)
	for _, n := range nodes {
		if q, ok := n.Status.Allocatable[res]; ok {
			most = max(most, q.Value())
		}
	}
	switch {
	case most == 0:
		return fmt.Sprintf("spec.resources.gpus: no node in the cluster has %s; the notebook's pod stays Pending until a node with %d GPU(s) joins", res, g)
	case most < int64(g):
		return fmt.Sprintf("spec.resources.gpus: %d %s asked for, but the largest node has %d; the notebook's pod stays Pending until a larger node joins", g, res, most)
	}
	return ""
}
