package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

// DeleteOptions delete Kiln objects; their native children go with them, retained volumes stay.
type DeleteOptions struct {
	// Targets are the objects to delete; a target with no kind is looked up in every kind.
	Targets []deleteTarget

	cluster cluster
	streams genericiooptions.IOStreams
}

type deleteTarget struct {
	kind *kindInfo // nil: whichever kind has an object of that name, if only one does
	name string
}

func newDeleteCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DeleteOptions{cluster: c, streams: streams}
	return &cobra.Command{
		Use:   "delete (KIND NAME... | KIND/NAME... | NAME)",
		Short: "Delete Kiln objects and the native objects they own (volumes marked Retain stay)",
		Long: `Delete Kiln objects and the native objects they own; volumes marked Retain stay.

Name the kind first (` + kindNames() + `), as kubectl delete does, or write KIND/NAME.
A lone NAME is deleted only when exactly one kind has an object of that name; an unknown
kind is an error, never taken for a name.`,
		Example: `  kubectl kiln delete trainingjobs resnet bert
  kubectl kiln delete modelserver/resnet notebook/explore
  kubectl kiln delete explore           # whatever single object is called explore`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			return explain(o.Run(cmd.Context()))
		},
	}
}

// Complete reads KIND NAME..., KIND/NAME... or a lone NAME.
func (o *DeleteOptions) Complete(args []string) error {
	o.Targets = nil
	if k, ok := lookupKind(args[0]); ok {
		if len(args) == 1 {
			return fmt.Errorf("name the %s to delete: kubectl kiln delete %s NAME", k.Plural, k.Singular)
		}
		for _, n := range args[1:] {
			o.Targets = append(o.Targets, deleteTarget{kind: &k, name: n})
		}
		return nil
	}
	if strings.Contains(args[0], "/") {
		for _, a := range args {
			kind, name, ok := strings.Cut(a, "/")
			if !ok || name == "" {
				return fmt.Errorf("%q is not KIND/NAME: write every object as KIND/NAME, or name the kind once first", a)
			}
			k, found := lookupKind(kind)
			if !found {
				return fmt.Errorf("unknown kind %q in %q: Kiln's kinds are %s", kind, a, kindNames())
			}
			o.Targets = append(o.Targets, deleteTarget{kind: &k, name: name})
		}
		return nil
	}
	if len(args) > 1 {
		return fmt.Errorf("unknown kind %q: Kiln's kinds are %s (kubectl kiln delete KIND NAME...)", args[0], kindNames())
	}
	o.Targets = []deleteTarget{{name: args[0]}}
	return nil
}

// Run deletes each object, reporting the ones that were not there.
func (o *DeleteOptions) Run(ctx context.Context) error {
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return err
	}
	var missing []string
	for _, t := range o.Targets {
		k := t.kind
		if k == nil {
			if k, err = o.onlyKindNamed(ctx, c, ns, t.name); err != nil {
				return err
			}
		}
		obj := k.New()
		obj.SetNamespace(ns)
		obj.SetName(t.name)
		err := c.Delete(ctx, obj, client.PropagationPolicy("Background"))
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, k.Singular+"/"+t.name)
		case err != nil:
			return err
		default:
			fmt.Fprintf(o.streams.Out, "%s.kiln.dev/%s deleted\n", k.Singular, t.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not found in namespace %s: %s", ns, strings.Join(missing, ", "))
	}
	return nil
}

// onlyKindNamed is the one kind that has an object called name: none or several is an error,
// since deleting the wrong object cannot be undone.
func (o *DeleteOptions) onlyKindNamed(ctx context.Context, c client.Client, ns, name string) (*kindInfo, error) {
	var kinds []kindInfo
	for _, k := range kindRegistry {
		err := c.Get(ctx, keyOf(ns, name), k.New())
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		kinds = append(kinds, k)
	}
	switch len(kinds) {
	case 0:
		return nil, fmt.Errorf("no Kiln object named %s in namespace %s", name, ns)
	case 1:
		return &kinds[0], nil
	}
	var which []string
	for _, k := range kinds {
		which = append(which, k.Singular+"/"+name)
	}
	return nil, errors.New("several Kiln objects are called " + name + ": say which, e.g. kubectl kiln delete " + strings.Join(which, " or "))
}
