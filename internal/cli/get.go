package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/api/v1alpha1"
)

// kinds maps every name a user may type for a Kiln kind to its canonical plural.
var kinds = map[string]string{
	"trainingjobs": "trainingjobs", "trainingjob": "trainingjobs", "tj": "trainingjobs",
	"notebooks": "notebooks", "notebook": "notebooks", "nb": "notebooks",
}

func kindNames() string { return "trainingjobs (tj), notebooks (nb)" }

func resolveKind(s string) (string, error) {
	if k, ok := kinds[strings.ToLower(s)]; ok {
		return k, nil
	}
	return "", fmt.Errorf("unknown kind %q: Kiln's kinds are %s", s, kindNames())
}

// GetOptions list Kiln objects.
type GetOptions struct {
	Kind          string
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
		Use:     "get [KIND] [NAME...]",
		Aliases: []string{"list", "ls"},
		Short:   "List Kiln objects (all kinds by default)",
		Example: `  # Every TrainingJob in the current namespace
  kubectl kiln get

  # In every namespace, with the pool and the latest message
  kubectl kiln get trainingjobs -A -o wide

  # One job as YAML
  kubectl kiln get tj resnet -o yaml`,
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
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: wide, yaml, json or name")
	return cmd
}

// Complete reads the kind and names.
func (o *GetOptions) Complete(args []string) error {
	o.Kind = "trainingjobs"
	if len(args) > 0 {
		k, err := resolveKind(args[0])
		if err != nil {
			return err
		}
		o.Kind, o.Names = k, args[1:]
	}
	return nil
}

// Validate checks the output format.
func (o *GetOptions) Validate() error {
	switch o.Output {
	case "", "wide", "yaml", "json", "name":
		return nil
	}
	return fmt.Errorf("unknown output format %q: use wide, yaml, json or name", o.Output)
}

// Run lists and prints.
func (o *GetOptions) Run(ctx context.Context) error {
	if o.Kind == "notebooks" {
		nl := &NotebookListOptions{Names: o.Names, AllNamespaces: o.AllNamespaces, Output: o.Output, cluster: o.cluster, streams: o.streams, now: o.now}
		return nl.Run(ctx)
	}
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return err
	}
	list := &v1alpha1.TrainingJobList{}
	items, err := fetchSorted(ctx, c, ns, o.Names, o.AllNamespaces, list, func() []v1alpha1.TrainingJob { return list.Items })
	if err != nil {
		return err
	}
	return o.print(o.streams.Out, items)
}

func (o *GetOptions) print(w io.Writer, items []v1alpha1.TrainingJob) error {
	if done, err := printListed(w, o.Output, "TrainingJob", items); done {
		return err
	}
	if len(items) == 0 {
		fmt.Fprintln(o.streams.ErrOut, "No TrainingJobs found. Start one with: kubectl kiln train --image IMAGE -- COMMAND")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	header := "NAME\tSHAPE\tGPUS\tSTATE\tRESTARTS\tAGE"
	if o.AllNamespaces {
		header = "NAMESPACE\t" + header
	}
	if o.Output == "wide" {
		header += "\tPOOL\tWORKERS\tMESSAGE"
	}
	fmt.Fprintln(tw, header)
	for _, tj := range items {
		row := fmt.Sprintf("%s\t%s\t%d\t%s\t%d\t%s", tj.Name, shapeOf(&tj), gpusOf(&tj), stateOf(&tj), tj.Status.Restarts, age(tj.CreationTimestamp, o.now()))
		if o.AllNamespaces {
			row = tj.Namespace + "\t" + row
		}
		if o.Output == "wide" {
			pool := "-"
			if s := tj.Status.Shape; s != nil && s.Pool != "" {
				pool = s.Pool
			}
			row += fmt.Sprintf("\t%s\t%d/%d ready\t%s", pool, tj.Status.Ready, workers(&tj), lastMessage(tj.Status.Conditions))
		}
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
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

// fetchSorted returns the named objects, or all of list's kind in the namespace (or every
// namespace), sorted by namespace and name. items reads list's items once it is filled.
func fetchSorted[T any, P interface {
	*T
	client.Object
}](ctx context.Context, c client.Client, ns string, names []string, all bool, list client.ObjectList, items func() []T) ([]T, error) {
	var out []T
	if len(names) > 0 {
		for _, n := range names {
			var obj T
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, P(&obj)); err != nil {
				return nil, err
			}
			out = append(out, obj)
		}
	} else {
		var opts []client.ListOption
		if !all {
			opts = append(opts, client.InNamespace(ns))
		}
		if err := c.List(ctx, list, opts...); err != nil {
			return nil, err
		}
		out = items()
	}
	slices.SortFunc(out, func(a, b T) int {
		pa, pb := P(&a), P(&b)
		return cmp.Or(cmp.Compare(pa.GetNamespace(), pb.GetNamespace()), cmp.Compare(pa.GetName(), pb.GetName()))
	})
	return out, nil
}

// printListed prints items of kind as -o name, json or yaml ask, as kubectl get does, and
// says whether it did: a table is the caller's, since its columns are the kind's.
func printListed[T any, P interface {
	*T
	client.Object
}](w io.Writer, format, kind string, items []T) (bool, error) {
	switch format {
	case "name":
		for i := range items {
			fmt.Fprintf(w, "%s.%s/%s\n", strings.ToLower(kind), v1alpha1.GroupVersion.Group, P(&items[i]).GetName())
		}
		return true, nil
	case "yaml", "json":
	default:
		return false, nil
	}
	// The shape of a typed list, so the output is what kubectl prints.
	list := struct {
		metav1.TypeMeta `json:",inline"`
		metav1.ListMeta `json:"metadata,omitempty"`
		Items           []client.Object `json:"items"`
	}{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: make([]client.Object, len(items))}
	for i := range items {
		obj := P(&items[i])
		obj.GetObjectKind().SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
		obj.SetManagedFields(nil)
		list.Items[i] = obj
	}
	var b []byte
	var err error
	if format == "json" {
		b, err = json.MarshalIndent(list, "", "  ")
		b = append(b, '\n')
	} else {
		b, err = yaml.Marshal(list)
	}
	if err != nil {
		return true, err
	}
	_, err = w.Write(b)
	return true, err
}
