package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
)

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

// DeleteOptions delete Kiln objects; their native children go with them, retained volumes stay.
type DeleteOptions struct {
	Kind  string
	Names []string

	cluster cluster
	streams genericiooptions.IOStreams
}

func newDeleteCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DeleteOptions{cluster: c, streams: streams}
	return &cobra.Command{
		Use:   "delete [KIND] NAME...",
		Short: "Delete Kiln objects and the native objects they own (volumes marked Retain stay)",
		Example: `  kubectl kiln delete resnet
  kubectl kiln delete trainingjobs resnet bert
  kubectl kiln delete notebook explore`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Kind, o.Names = "trainingjobs", args
			if k, err := resolveKind(args[0]); err == nil {
				o.Kind, o.Names = k, args[1:]
			}
			if len(o.Names) == 0 {
				return fmt.Errorf("name the %s to delete", o.Kind)
			}
			return explain(o.Run(cmd.Context()))
		},
	}
}

// Run deletes each object, reporting the ones that were not there.
func (o *DeleteOptions) Run(ctx context.Context) error {
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return err
	}
	var missing []string
	obj, kind := client.Object(&v1alpha1.TrainingJob{}), "TrainingJob"
	if o.Kind == "notebooks" {
		obj, kind = &v1alpha1.Notebook{}, "Notebook"
	}
	for _, n := range o.Names {
		obj.SetNamespace(ns)
		obj.SetName(n)
		err := c.Delete(ctx, obj, client.PropagationPolicy("Background"))
		switch {
		case errors.IsNotFound(err):
			missing = append(missing, n)
		case err != nil:
			return err
		default:
			fmt.Fprintf(o.streams.Out, "%s.kiln.dev/%s deleted\n", strings.ToLower(kind), n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no %s named %v in namespace %s", kind, missing, ns)
	}
	return nil
}
