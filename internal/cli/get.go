package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
)

// GetOptions list Kiln objects of one kind or of all of them.
type GetOptions struct {
	Kinds         []kindInfo
	Names         []string
	AllNamespaces bool
	Output        string

	cluster cluster
	streams genericiooptions.IOStreams
	now     func() time.Time
}

func newGetCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &GetOptions{cluster: c, streams: streams, now: time.Now}
	cmd := &cobra.Command{
		Use:     "get [KIND | all] [NAME...]",
		Aliases: []string{"list", "ls"},
		Short:   "List Kiln objects (all kinds by default)",
		Long: `List Kiln objects: every kind when none is named (or with "all"), or one kind by its
plural, singular or short name (` + kindNames() + `). A NAME with no kind is looked up
in every kind.`,
		Example: `  # Every Kiln object in the current namespace
  kubectl kiln get

  # In every namespace, with the pool and the latest message
  kubectl kiln get trainingjobs -A -o wide

  # Whatever is called resnet, as YAML
  kubectl kiln get resnet -o yaml

  # The URLs of the model servers
  kubectl kiln get modelservers -o jsonpath='{.items[*].status.url}'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return explain(o.Run(cmd.Context()))
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: wide, yaml, json, name, jsonpath=TEMPLATE or go-template=TEMPLATE")
	return cmd
}

// Complete reads the kind and names: a first argument that names no kind is a name.
func (o *GetOptions) Complete(args []string) error {
	o.Kinds, o.Names = kindRegistry, args
	if len(args) > 0 {
		if strings.EqualFold(args[0], "all") {
			o.Names = args[1:]
		} else if k, ok := lookupKind(args[0]); ok {
			o.Kinds, o.Names = []kindInfo{k}, args[1:]
		}
	}
	return nil
}

// Validate checks the output format.
func (o *GetOptions) Validate() error {
	_, err := objectPrinter(o.Output)
	return err
}

// Run lists and prints.
func (o *GetOptions) Run(ctx context.Context) error {
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return err
	}
	var found []client.Object
	seen := map[string]bool{}
	for _, k := range o.Kinds {
		objs, err := o.fetch(ctx, c, ns, k)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			seen[obj.GetName()] = true
		}
		found = append(found, objs...)
	}
	var missing []string
	for _, n := range o.Names {
		if !seen[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		what := "Kiln object"
		if len(o.Kinds) == 1 {
			what = o.Kinds[0].Kind
		}
		hint := ""
		if len(o.Kinds) > 1 && len(o.Names) == len(missing) {
			hint = " (and " + strings.Join(missing, ", ") + " is no kind: Kiln's kinds are " + kindNames() + ")"
		}
		return fmt.Errorf("no %s named %s in namespace %s%s", what, strings.Join(missing, ", "), ns, hint)
	}
	return o.print(o.streams.Out, found)
}

// fetch returns the named objects of kind k that exist, or all of them in the namespace
// (or every namespace), sorted by namespace and name.
func (o *GetOptions) fetch(ctx context.Context, c client.Client, ns string, k kindInfo) ([]client.Object, error) {
	var out []client.Object
	if len(o.Names) > 0 {
		for _, n := range o.Names {
			obj := k.New()
			err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, obj)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, obj)
		}
		return out, nil
	}
	list := k.NewList()
	var opts []client.ListOption
	if !o.AllNamespaces {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := c.List(ctx, list, opts...); err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	for _, item := range items {
		out = append(out, item.(client.Object))
	}
	slices.SortFunc(out, func(a, b client.Object) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return out, nil
}

// print writes objs as the output format asks; tables go kind by kind.
func (o *GetOptions) print(w io.Writer, objs []client.Object) error {
	if o.Output != "" && o.Output != "wide" {
		p, err := objectPrinter(o.Output)
		if err != nil {
			return err
		}
		// One object asked for by name prints as itself, as kubectl get does.
		return p.PrintObj(asPrintable(objs, len(o.Names) == 1 && len(objs) == 1), w)
	}
	if len(objs) == 0 {
		if len(o.Kinds) == 1 {
			fmt.Fprintln(o.streams.ErrOut, o.Kinds[0].Empty)
		} else {
			fmt.Fprintln(o.streams.ErrOut, "No Kiln objects found. Start a training job with: kubectl kiln train --image IMAGE -- COMMAND")
		}
		return nil
	}
	t := tableOptions{wide: o.Output == "wide", allNamespaces: o.AllNamespaces, now: o.now()}
	first := true
	for _, k := range kindRegistry {
		var mine []client.Object
		for _, obj := range objs {
			if kindOfObject(obj).Kind == k.Kind {
				mine = append(mine, obj)
			}
		}
		if len(mine) == 0 {
			continue
		}
		if !first {
			fmt.Fprintln(w)
		}
		first = false
		// Several kinds name their rows kubectl's way, kind/name.
		t.prefix = ""
		if len(o.Kinds) > 1 {
			t.prefix = k.Singular + ".kiln.dev/"
		}
		if err := k.Table(w, mine, t); err != nil {
			return err
		}
	}
	return nil
}

// tableOptions are what every kind's table honours.
type tableOptions struct {
	wide, allNamespaces bool
	now                 time.Time
	prefix              string // before each name
}

// table writes header and rows through a tabwriter, with the namespace column when asked.
func (t tableOptions) table(w io.Writer, header, wideHeader string, rows [][2]string, namespaces []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	if t.allNamespaces {
		header = "NAMESPACE\t" + header
	}
	if t.wide {
		header += "\t" + wideHeader
	}
	fmt.Fprintln(tw, header)
	for i, r := range rows {
		row := t.prefix + r[0]
		if t.allNamespaces {
			row = namespaces[i] + "\t" + row
		}
		if t.wide {
			row += "\t" + r[1]
		}
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
}

func trainingJobTable(w io.Writer, objs []client.Object, t tableOptions) error {
	var rows [][2]string
	var nss []string
	for _, obj := range objs {
		tj := obj.(*v1alpha1.TrainingJob)
		pool := "-"
		if s := tj.Status.Shape; s != nil && s.Pool != "" {
			pool = s.Pool
		}
		rows = append(rows, [2]string{
			fmt.Sprintf("%s\t%s\t%d\t%s\t%d\t%s", tj.Name, shapeOf(tj), gpusOf(tj), stateOf(tj), tj.Status.Restarts, age(tj.CreationTimestamp, t.now)),
			fmt.Sprintf("%s\t%d/%d ready\t%s", pool, tj.Status.Ready, workers(tj), lastMessage(tj.Status.Conditions)),
		})
		nss = append(nss, tj.Namespace)
	}
	return t.table(w, "NAME\tSHAPE\tGPUS\tSTATE\tRESTARTS\tAGE", "POOL\tWORKERS\tMESSAGE", rows, nss)
}

func sweepTable(w io.Writer, objs []client.Object, t tableOptions) error {
	var rows [][2]string
	var nss []string
	for _, obj := range objs {
		sw := obj.(*v1alpha1.Sweep)
		state, best := dash(string(sw.Status.State)), "-"
		if b := sw.Status.BestTrial; b != nil {
			best = fmt.Sprintf("%s=%s (%s)", sw.Spec.Objective.Metric, b.Value, b.Name)
		}
		rows = append(rows, [2]string{
			fmt.Sprintf("%s\t%s\t%d/%d\t%d\t%s\t%s", sw.Name, state, sw.Status.Succeeded, sw.Spec.MaxTrials, sw.Status.Running, best, age(sw.CreationTimestamp, t.now)),
			fmt.Sprintf("%s\t%d\t%d\t%s", dash(string(sw.Spec.Algorithm)), sw.Status.Failed, sw.Status.Stopped, lastMessage(sw.Status.Conditions)),
		})
		nss = append(nss, sw.Namespace)
	}
	return t.table(w, "NAME\tSTATE\tSUCCEEDED\tRUNNING\tBEST\tAGE", "ALGORITHM\tFAILED\tSTOPPED\tMESSAGE", rows, nss)
}

func modelServerTable(w io.Writer, objs []client.Object, t tableOptions) error {
	var rows [][2]string
	var nss []string
	for _, obj := range objs {
		ms := obj.(*v1alpha1.ModelServer)
		ready, canary, traffic := "-", "-", "-"
		if s := ms.Status.Stable; s != nil {
			ready = fmt.Sprintf("%d/%d", s.ReadyReplicas, s.Replicas)
		}
		if c := ms.Status.Canary; c != nil {
			canary = fmt.Sprintf("%d/%d", c.ReadyReplicas, c.Replicas)
		}
		if tr := ms.Status.Traffic; tr != nil && ms.Status.Canary != nil {
			traffic = fmt.Sprintf("%d%% canary (%s)", tr.CanaryPercent, tr.Method)
		}
		rows = append(rows, [2]string{
			fmt.Sprintf("%s\t%s\t%s\t%s\t%s", ms.Name, dash(ms.Status.URL), ready, canary, age(ms.CreationTimestamp, t.now)),
			fmt.Sprintf("%s\t%s\t%s", dash(ms.Spec.Model.URI), traffic, lastMessage(ms.Status.Conditions)),
		})
		nss = append(nss, ms.Namespace)
	}
	return t.table(w, "NAME\tURL\tREADY\tCANARY\tAGE", "MODEL\tTRAFFIC\tMESSAGE", rows, nss)
}

func shapeOf(tj *v1alpha1.TrainingJob) string {
	if s := tj.Status.Shape; s != nil {
		return fmt.Sprintf("%dx%d", s.Nodes, s.ProcessesPerNode)
	}
	return "-"
}

func gpusOf(tj *v1alpha1.TrainingJob) int32 {
	return tj.Spec.Resources.GPUs
}

func workers(tj *v1alpha1.TrainingJob) int32 {
	if s := tj.Status.Shape; s != nil {
		return s.Nodes
	}
	return 0
}

func stateOf(tj *v1alpha1.TrainingJob) string {
	if tj.Status.State != "" {
		return string(tj.Status.State)
	}
	return "Pending"
}

// lastMessage is the message of the most recently changed condition.
func lastMessage(conds []metav1.Condition) string {
	var last *metav1.Condition
	for i := range conds {
		if last == nil || conds[i].LastTransitionTime.After(last.LastTransitionTime.Time) {
			last = &conds[i]
		}
	}
	if last == nil {
		return ""
	}
	return last.Message
}

func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// objectPrinter is cli-runtime's printer of an -o format other than a table.
func objectPrinter(format string) (printers.ResourcePrinter, error) {
	name, arg, _ := strings.Cut(format, "=")
	switch name {
	case "", "wide":
		return nil, nil
	case "yaml":
		return &printers.YAMLPrinter{}, nil
	case "json":
		return &printers.JSONPrinter{}, nil
	case "name":
		return &printers.NamePrinter{}, nil
	case "jsonpath":
		if arg == "" {
			break
		}
		p, err := printers.NewJSONPathPrinter(arg)
		if err != nil {
			return nil, fmt.Errorf("bad jsonpath template %q: %w", arg, err)
		}
		p.AllowMissingKeys(true)
		return p, nil
	case "go-template":
		if arg == "" {
			break
		}
		p, err := printers.NewGoTemplatePrinter([]byte(arg))
		if err != nil {
			return nil, fmt.Errorf("bad go-template %q: %w", arg, err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown output format %q: use wide, yaml, json, name, jsonpath=TEMPLATE or go-template=TEMPLATE", format)
}

// asPrintable is what the object printers print: the one object, or a List of them all, as
// unstructured content with its kind set and without managed fields, as kubectl prints it.
func asPrintable(objs []client.Object, single bool) runtime.Object {
	items := make([]unstructured.Unstructured, len(objs))
	for i, obj := range objs {
		content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			panic(err) // Kiln's typed objects always convert
		}
		items[i].Object = content
		items[i].SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kindOfObject(obj).Kind))
		items[i].SetManagedFields(nil)
	}
	if single {
		return &items[0]
	}
	list := &unstructured.UnstructuredList{Items: items}
	list.SetAPIVersion("v1")
	list.SetKind("List")
	list.SetResourceVersion("")
	return list
}
