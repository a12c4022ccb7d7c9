package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/storage"
)

// finding is one line of the doctor's report.
type finding struct {
	level string // "ok", "warn" or "fail"
	what  string
	fix   string
}

// DoctorOptions check whether a cluster is ready for ML work with Kiln.
type DoctorOptions struct {
	GPUResource string

	cluster cluster
	streams genericiooptions.IOStreams
}

// minKubernetes is the oldest release whose Job API has everything Kiln renders (successPolicy,
// backoffLimitPerIndex, podReplacementPolicy).
const minKubernetes = "1.33.0"

// Integrations found by their API groups. used says whether any Kiln code acts on
// one: only those get a ✓ or an "optional" line, so doctor never promises a feature
// the code lacks (an unused one present is reported as present, nothing more).
var integrations = []struct {
	name, group, use string
	used             bool
}{
	{"Kueue", "kueue.x-k8s.io", "spec.queueName hands admission and quota to Kueue", true},
	{"KEDA", "keda.sh", "", false},
	{"cert-manager", "cert-manager.io", "", false},
	{"ProvisioningRequest", "autoscaling.x-k8s.io", "", false},
}

func newDoctorCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DoctorOptions{cluster: c, streams: streams}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check whether the cluster is ready for ML work: GPUs, device plugins, storage, Kiln, integrations",
		Long: `Check the cluster the way an ML platform engineer would, and say how to fix what is missing:
Kubernetes version, Kiln's API, nodes advertising GPUs (per pool, with GPU model and driver),
the GPU device-plugin DaemonSet, an "nvidia" RuntimeClass (which Kiln sets on TrainingJob GPU pods),
a ReadWriteMany storage class for checkpoints, and the
optional integrations Kiln uses when present (Kueue, Gateway API HTTPRoutes). KEDA, cert-manager
and the ProvisioningRequest API are reported when present, as ones Kiln does not use yet.
Exits non-zero when something blocks GPU training.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return explain(o.Run(cmd.Context()))
		},
	}
	cmd.Flags().StringVar(&o.GPUResource, "gpu-resource", v1alpha1.DefaultGPUResource, "extended resource that counts GPUs")
	return cmd
}

// Run checks and prints the findings.
func (o *DoctorOptions) Run(ctx context.Context) error {
	cs, err := o.cluster.clientset()
	if err != nil {
		return err
	}
	findings, err := diagnose(ctx, cs, corev1.ResourceName(o.GPUResource))
	if err != nil {
		return err
	}
	failed := printFindings(o.streams.Out, findings)
	if failed > 0 {
		return fmt.Errorf("%d problem(s) block GPU training on this cluster", failed)
	}
	return nil
}

func diagnose(ctx context.Context, cs kubernetes.Interface, gpuResource corev1.ResourceName) ([]finding, error) {
	var out []finding
	sv, err := cs.Discovery().ServerVersion()
	if err != nil {
		return nil, err
	}
	if v, err := version.ParseGeneric(sv.GitVersion); err != nil {
		out = append(out, finding{"warn", "Kubernetes version " + sv.GitVersion + " could not be read", ""})
	} else if v.LessThan(version.MustParseGeneric(minKubernetes)) {
		out = append(out, finding{"fail", "Kubernetes " + sv.GitVersion + " is older than " + minKubernetes,
			"upgrade the cluster: Kiln's Jobs use successPolicy and backoffLimitPerIndex"})
	} else {
		out = append(out, finding{"ok", "Kubernetes " + sv.GitVersion, ""})
	}

	groups, err := cs.Discovery().ServerGroups()
	if err != nil {
		return nil, err
	}
	served := map[string]bool{}
	for _, g := range groups.Groups {
		served[g.Name] = true
	}
	if served[v1alpha1.GroupVersion.Group] {
		out = append(out, finding{"ok", "Kiln's API (" + v1alpha1.GroupVersion.String() + ") is installed", ""})
	} else {
		out = append(out, finding{"fail", "Kiln's API (" + v1alpha1.GroupVersion.String() + ") is not installed",
			"kubectl apply -k config/default (or kubectl kiln dev up for a local Kiln)"})
	}

	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out = append(out, gpuFindings(nodes.Items, gpuResource)...)

	dsets, err := cs.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var plugins []string
	for _, ds := range dsets.Items {
		if strings.Contains(ds.Name, "device-plugin") {
			s := ds.Status
			health := "ok"
			if s.NumberReady < s.DesiredNumberScheduled {
				health = "warn"
			}
			out = append(out, finding{health, fmt.Sprintf("device plugin DaemonSet %s/%s: %d of %d pods ready", ds.Namespace, ds.Name, s.NumberReady, s.DesiredNumberScheduled),
				map[string]string{"ok": "", "warn": "kubectl -n " + ds.Namespace + " describe daemonset " + ds.Name}[health]})
			plugins = append(plugins, ds.Name)
		}
	}
	if len(plugins) == 0 {
		out = append(out, finding{"warn", "no GPU device-plugin DaemonSet found",
			"install the NVIDIA device plugin or GPU operator; nodes then advertise " + string(gpuResource) + " (simulated nodes advertise it without one)"})
	}
	// The fact the TrainingJob controller reads (render.NvidiaRuntimeClass).
	if rc, err := cs.NodeV1().RuntimeClasses().Get(ctx, "nvidia", metav1.GetOptions{}); err == nil {
		if name := render.NvidiaRuntimeClass(rc, gpuResource); name != "" {
			out = append(out, finding{"ok", `RuntimeClass "nvidia" (handler nvidia): Kiln sets runtimeClassName: nvidia on TrainingJob pods that request ` + string(gpuResource), ""})
		} else {
			out = append(out, finding{"info", fmt.Sprintf(`RuntimeClass "nvidia" has handler %q; Kiln sets it only when the handler is nvidia and pods count nvidia.com/gpu`, rc.Handler), ""})
		}
	}

	classes, err := cs.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out = append(out, storageFindings(classes.Items)...)

	// The same test the ModelServer controller makes before it renders an HTTPRoute.
	if httpRoutes(cs) {
		out = append(out, finding{"ok", "Gateway API HTTPRoutes served: ModelServer canaries are split by HTTPRoute weights (exact once a mesh or Gateway accepts the route)", ""})
	} else {
		out = append(out, finding{"info", "Gateway API HTTPRoutes not served (optional: exact weighted canaries for ModelServers; without it the split follows replica counts)", ""})
	}
	for _, in := range integrations {
		switch {
		case served[in.group] && in.used:
			out = append(out, finding{"ok", in.name + " detected: " + in.use, ""})
		case served[in.group]:
			out = append(out, finding{"info", in.name + " (" + in.group + ") present; Kiln does not use it yet", ""})
		case in.used:
			out = append(out, finding{"info", in.name + " not installed (optional: " + in.use + ")", ""})
		}
	}
	return out, nil
}

// storageFindings names the ReadWriteMany classes by the table the admission
// webhook reads, and the classes whose access modes nobody knows.
func storageFindings(classes []storagev1.StorageClass) []finding {
	var rwx, unknown []string
	for i := range classes {
		sc := &classes[i]
		switch storage.ClassModes(sc) {
		case storage.ReadWriteMany:
			rwx = append(rwx, sc.Name+" ("+sc.Provisioner+")")
		case storage.Unknown:
			unknown = append(unknown, sc.Name+" ("+sc.Provisioner+")")
		}
	}
	var out []finding
	if len(rwx) > 0 {
		out = append(out, finding{"ok", "ReadWriteMany storage: " + strings.Join(rwx, ", "), ""})
	} else {
		out = append(out, finding{"warn", "no ReadWriteMany storage class found",
			"multi-node jobs share checkpoints on ReadWriteMany volumes: install an NFS, CephFS or cloud file-store CSI driver"})
	}
	if len(unknown) > 0 {
		out = append(out, finding{"info", "storage classes of unknown access modes: " + strings.Join(unknown, ", "),
			"if one serves ReadWriteMany, annotate it: kubectl annotate storageclass NAME " + storage.AnnotationAccessModes + "=ReadWriteOnce,ReadWriteMany"})
	}
	return out
}

// httpRoutes says whether gateway.networking.k8s.io/v1 serves httproutes.
func httpRoutes(cs kubernetes.Interface) bool {
	list, err := cs.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1")
	if err != nil {
		return false
	}
	for _, r := range list.APIResources {
		if r.Name == "httproutes" {
			return true
		}
	}
	return false
}

// gpuFindings reports the GPU nodes per pool, with model and driver, or what is missing.
func gpuFindings(nodes []corev1.Node, gpuResource corev1.ResourceName) []finding {
	shapes := placement.NodeShapesFromNodes(nodes, gpuResource)
	if len(shapes) == 0 {
		return []finding{{"fail", fmt.Sprintf("no schedulable node advertises %s (%d node(s) in all)", gpuResource, len(nodes)),
			"add GPU nodes and a device plugin; check with kubectl describe node NODE | grep " + string(gpuResource)}}
	}
	var total int32
	var parts []string
	for _, s := range shapes {
		total += s.GPUsPerNode * s.Count
		pool := s.Pool
		if pool == "" {
			pool = "unlabelled"
		}
		parts = append(parts, fmt.Sprintf("%s %d×%d", pool, s.Count, s.GPUsPerNode))
	}
	out := []finding{{"ok", fmt.Sprintf("%d GPU(s) on %d node shape(s): %s", total, len(shapes), strings.Join(parts, ", ")), ""}}
	models, drivers := map[string]bool{}, map[string]bool{}
	for _, n := range nodes {
		if q, ok := n.Status.Allocatable[gpuResource]; ok && !q.IsZero() {
			if m := n.Labels["nvidia.com/gpu.product"]; m != "" {
				models[m] = true
			}
			if d := n.Labels["nvidia.com/cuda.driver.major"]; d != "" {
				drivers[d] = true
			}
		}
	}
	if len(models) > 0 {
		out = append(out, finding{"ok", "GPU models: " + strings.Join(keys(models), ", "), ""})
	}
	if len(drivers) > 0 {
		out = append(out, finding{"ok", "CUDA driver major versions: " + strings.Join(keys(drivers), ", ") + " (images need CUDA no newer than the driver)", ""})
	} else {
		out = append(out, finding{"warn", "GPU nodes carry no nvidia.com/cuda.driver.major label",
			"install GPU feature discovery so Kiln can check images' CUDA versions against the drivers"})
	}
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func printFindings(w io.Writer, findings []finding) (failed int) {
	marks := map[string]string{"ok": "✓", "warn": "!", "fail": "✗", "info": "-"}
	for _, f := range findings {
		fmt.Fprintf(w, "%s %s\n", marks[f.level], f.what)
		if f.fix != "" {
			fmt.Fprintf(w, "    fix: %s\n", f.fix)
		}
		if f.level == "fail" {
			failed++
		}
	}
	return failed
}
