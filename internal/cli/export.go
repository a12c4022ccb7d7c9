package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/placement"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/validation"
	"kiln.dev/kiln/internal/webhook"
)

// ExportOptions print the plain Kubernetes objects Kiln creates for a TrainingJob.
type ExportOptions struct {
	Name     string
	File     string
	Output   string
	NodeGPUs int32
	ImageTar string
	SetImage string

	image string // the exported object's image, for --image-tar

	cluster cluster
	streams genericiooptions.IOStreams
}

func newExportCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ExportOptions{cluster: c, streams: streams}
	cmd := &cobra.Command{
		Use:   "export (NAME | modelserver/NAME | -f FILE)",
		Short: "Print the plain Kubernetes objects Kiln creates, to run them without Kiln",
		Long: `Print the Jobs, Services, PersistentVolumeClaims (and for MPI the Secret and ConfigMap) that Kiln
creates for a TrainingJob: the same renderer the controller uses, without owner references or
status, so the output applies to any cluster, with or without Kiln installed.

From a live object the shape is the one Kiln chose. From a file no cluster is needed: the shape
comes from spec.topology, or is chosen as on a cluster of nodes with --node-gpus GPUs each.
An MPI job's SSH key is generated afresh on every export.

A ModelServer (modelserver/NAME, or a file whose first object is one) exports as its Deployments,
Services, autoscalers, disruption budgets and HTTPRoute, rendered with the built-in runtime
presets; from a live object, with the cluster's kiln-serving ConfigMap when it can be read and
an HTTPRoute when the cluster has Gateway API.`,
		Example: `  # What Kiln runs for the TrainingJob "resnet"
  kubectl kiln export resnet

  # Offline, from a file, as on a cluster of 4-GPU nodes; then run it without Kiln
  kubectl kiln export -f examples/trainingjob-pytorch-8gpu.yaml --node-gpus 4 > plain.yaml
  kubectl apply -f plain.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.File, "filename", "f", "", "a TrainingJob manifest to export offline (- for standard input)")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "yaml", "output format: yaml or json")
	cmd.Flags().Int32Var(&o.NodeGPUs, "node-gpus", 8, "GPUs per node to assume when exporting a file without spec.topology")
	cmd.Flags().StringVar(&o.ImageTar, "image-tar", "", "also write the object's image, pulled from its registry, to this OCI tarball")
	cmd.Flags().StringVar(&o.SetImage, "set-image", "", "export with this image instead of the object's (e.g. the digest reference kubectl kiln build printed)")
	return cmd
}

// Complete takes the name argument.
func (o *ExportOptions) Complete(args []string) error {
	if len(args) == 1 {
		o.Name = args[0]
	}
	return nil
}

// Validate needs exactly one source and a known format.
func (o *ExportOptions) Validate() error {
	if (o.Name == "") == (o.File == "") {
		return fmt.Errorf("give either a TrainingJob name or -f FILE")
	}
	if o.Output != "yaml" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: use yaml or json", o.Output)
	}
	if o.NodeGPUs < 1 {
		return fmt.Errorf("--node-gpus must be at least 1")
	}
	return nil
}

// Run renders and prints.
func (o *ExportOptions) Run(ctx context.Context) error {
	if done, err := o.exportModelServer(ctx); done {
		if err != nil {
			return err
		}
		return o.writeImageTar(ctx)
	}
	var tj *v1alpha1.TrainingJob
	var shape placement.Shape
	var err error
	if o.File != "" {
		if tj, err = readTrainingJob(o.File, o.streams.In); err != nil {
			return err
		}
		if tj.Namespace == "" {
			if tj.Namespace, err = o.cluster.namespace(); err != nil {
				tj.Namespace = "default"
			}
		}
		if o.SetImage != "" {
			tj.Spec.Image = o.SetImage
		}
		if errs := validation.ValidateTrainingJob(tj); len(errs) > 0 {
			return fmt.Errorf("%s is not a valid TrainingJob: %v", o.File, errs.ToAggregate())
		}
		assumed := []placement.NodeShape{{Pool: "", GPUsPerNode: o.NodeGPUs, Count: 1000}}
		if shape, err = placement.ForTrainingJob(&tj.Spec, assumed); err != nil {
			return err
		}
		if err := o.admissionWarnings(tj, shape); err != nil {
			return err
		}
	} else {
		if tj, shape, err = o.live(ctx); err != nil {
			return explain(err)
		}
		if o.SetImage != "" {
			tj.Spec.Image = o.SetImage
		}
	}
	objs, err := render.TrainingJob(tj, shape, render.Options{})
	if err != nil {
		return err
	}
	o.image = tj.Spec.Image
	if err := printObjects(o.streams.Out, o.Output, objs.List()); err != nil {
		return err
	}
	return o.writeImageTar(ctx)
}

// admissionWarnings runs admission's checks of the file against nodes of
// --node-gpus GPUs, as many as the shape uses, and prints its warnings as kubectl
// prints the API server's; what the webhook would refuse is an error.
func (o *ExportOptions) admissionWarnings(tj *v1alpha1.TrainingJob, shape placement.Shape) error {
	nodes := make([]corev1.Node, shape.Nodes)
	for i := range nodes {
		nodes[i] = corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("assumed-%d", i)},
			Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
				corev1.ResourceName(gpuResourceOf(tj)): *resource.NewQuantity(int64(o.NodeGPUs), resource.DecimalSI)}},
		}
	}
	errs, warnings := webhook.CheckTrainingJobOn(tj, nodes, nil)
	for _, w := range warnings {
		fmt.Fprintln(o.streams.ErrOut, "Warning:", w)
	}
	if len(errs) > 0 {
		return fmt.Errorf("admission would refuse %s on nodes of %d GPUs: %v", o.File, o.NodeGPUs, errs.ToAggregate())
	}
	return nil
}

func gpuResourceOf(tj *v1alpha1.TrainingJob) string {
	if g := tj.Spec.Resources.GPUResource; g != "" {
		return g
	}
	return v1alpha1.DefaultGPUResource
}

// writeImageTar writes the exported object's image beside its manifests, for --image-tar.
func (o *ExportOptions) writeImageTar(ctx context.Context) error {
	if o.ImageTar == "" {
		return nil
	}
	if o.image == "" {
		return fmt.Errorf("--image-tar: the exported object names no image")
	}
	return writeImageTar(ctx, o.image, o.ImageTar, o.streams.ErrOut)
}

func (o *ExportOptions) live(ctx context.Context) (*v1alpha1.TrainingJob, placement.Shape, error) {
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return nil, placement.Shape{}, err
	}
	tj := &v1alpha1.TrainingJob{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.Name}, tj); err != nil {
		return nil, placement.Shape{}, err
	}
	s := tj.Status.Shape
	if s == nil {
		return nil, placement.Shape{}, fmt.Errorf("TrainingJob %s has no shape yet (see `kubectl kiln status %s`); export it from its file instead", o.Name, o.Name)
	}
	return tj, placement.Shape{Nodes: s.Nodes, ProcessesPerNode: s.ProcessesPerNode, GPUsPerNode: s.GPUsPerNode, Pool: s.Pool, Reason: s.Reason}, nil
}

// readTrainingJob decodes one TrainingJob from a YAML or JSON file.
func readTrainingJob(path string, stdin io.Reader) (*v1alpha1.TrainingJob, error) {
	tj := &v1alpha1.TrainingJob{}
	return tj, readManifest(path, stdin, "TrainingJob", "export takes a", tj)
}

// readManifest decodes the one object of kind in a YAML or JSON file (standard input for
// "-") into obj, refusing another kind, another API version and unknown fields. A file of
// another kind is told "<path> holds <its kind>; <want> <kind>", in the verb's words.
func readManifest(path string, stdin io.Reader, kind, want string, obj any) error {
	data, err := readInput(path, stdin)
	if err != nil {
		return err
	}
	raw, err := utilyaml.ToJSON(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if tm.Kind != kind || tm.APIVersion != v1alpha1.GroupVersion.String() {
		return fmt.Errorf("%s holds %s %s; %s %s %s", path, tm.APIVersion, tm.Kind, want, v1alpha1.GroupVersion, kind)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// printObjects writes objects as a YAML stream or a JSON List, without the status and
// server-set fields that would stop them from applying elsewhere.
func printObjects(w io.Writer, format string, objs []render.Object) error {
	scheme, err := manager.Scheme()
	if err != nil {
		return err
	}
	var items []map[string]any
	for _, obj := range objs {
		gvks, _, err := scheme.ObjectKinds(obj)
		if err != nil {
			return err
		}
		obj.GetObjectKind().SetGroupVersionKind(gvks[0])
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return err
		}
		delete(u, "status")
		unstructured.RemoveNestedField(u, "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(u, "spec", "template", "metadata", "creationTimestamp")
		items = append(items, u)
	}
	if format == "json" {
		b, err := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	for i, item := range items {
		b, err := yaml.Marshal(item)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// printObject prints one object as -o asks: its resource/name for "name", else as
// printObjects does (YAML by default).
func printObject(w io.Writer, resource, format string, obj render.Object) error {
	if format == "name" {
		_, err := fmt.Fprintf(w, "%s/%s\n", resource, obj.GetName())
		return err
	}
	if format == "" {
		format = "yaml"
	}
	return printObjects(w, format, []render.Object{obj})
}

// validateCreateFlags checks the --dry-run and -o values of the verbs that create an object.
func validateCreateFlags(dryRun, format string) error {
	switch dryRun {
	case "none", "client", "server":
	default:
		return fmt.Errorf(`--dry-run must be "none", "client" or "server"`)
	}
	switch format {
	case "", "yaml", "json", "name":
	default:
		return fmt.Errorf("unknown output format %q: use yaml, json or name", format)
	}
	return nil
}

// readInput reads the file given with -f, or standard input for "-".
func readInput(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}

// createObject creates obj, as a server-side dry run when dryRun is "server", then prints it
// as -o asks or says that it was created. resource names its kind, such as
// trainingjob.kiln.dev.
func createObject(ctx context.Context, c client.Client, obj client.Object, resource, dryRun, format string, w io.Writer) error {
	var opts []client.CreateOption
	if dryRun == "server" {
		opts = append(opts, client.DryRunAll)
	}
	if err := c.Create(ctx, obj, opts...); err != nil {
		return err
	}
	if format != "" {
		return printObject(w, resource, format, obj)
	}
	suffix := ""
	if dryRun == "server" {
		suffix = " (server dry run)"
	}
	_, err := fmt.Fprintf(w, "%s/%s created%s\n", resource, obj.GetName(), suffix)
	return err
}
