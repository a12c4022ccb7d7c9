package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"kiln.dev/kiln/internal/webhook"
)

// InjectOptions show offline what Kiln's pod webhook would do to pods.
type InjectOptions struct {
	File            string
	Config          string
	Namespace       string
	NamespaceLabels string
	KilnNamespace   string

	streams genericiooptions.IOStreams
}

func newInjectCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &InjectOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "inject -f FILE",
		Short: "Show what Kiln's pod webhook would add to pods, offline",
		Long: `Print the pods of FILE as Kiln's pod webhook would admit them: tolerations of the GPU taints for
the GPU resources a pod requests, a memory-backed /dev/shm, and the configured sidecars as native
sidecars. It runs the webhook's own code and needs no cluster. One line per pod on standard error
says what was added, or why the pod is left alone (the kiln.dev/inject: "false" label, an excluded
namespace, a namespace that is not opted in).

The webhook reads the namespace's labels; here --namespace-labels stands for them.`,
		Example: `  # What the webhook adds to a GPU pod in a namespace labelled kiln.dev/inject=enabled
  kubectl kiln inject -f pod.yaml

  # With the manager's injection configuration (its sidecars), in a namespace not opted in
  kubectl kiln inject -f pod.yaml --config injection.yaml --namespace-labels ''`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVarP(&o.File, "filename", "f", "", "pods to inject, YAML or JSON (- for standard input)")
	cmd.Flags().StringVar(&o.Config, "config", "", "the manager's injection configuration (--injection-config); default: tolerations and /dev/shm, no sidecars")
	cmd.Flags().StringVar(&o.Namespace, "pod-namespace", "default", "namespace of pods that name none")
	cmd.Flags().StringVar(&o.NamespaceLabels, "namespace-labels", webhook.LabelInject+"="+webhook.InjectEnabled, "labels of the pods' namespace, k=v,…")
	cmd.Flags().StringVar(&o.KilnNamespace, "kiln-namespace", webhook.DefaultNamespace, "Kiln's namespace, whose pods are never injected")
	return cmd
}

// Validate needs a file.
func (o *InjectOptions) Validate() error {
	if o.File == "" {
		return fmt.Errorf("give the pods with -f FILE")
	}
	return nil
}

// Run injects and prints.
func (o *InjectOptions) Run() error {
	in, err := webhook.LoadInjection(o.Config)
	if err != nil {
		return err
	}
	nsLabels, err := labels.ConvertSelectorToLabelsMap(o.NamespaceLabels)
	if err != nil {
		return fmt.Errorf("--namespace-labels: %w", err)
	}
	var r io.Reader = o.streams.In
	if o.File != "-" {
		f, err := os.Open(o.File)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	out, notes, err := webhook.InjectManifests(r, webhook.Scope{
		Namespace: o.Namespace, NamespaceLabels: nsLabels, Excluded: webhook.ExcludedNamespaces(o.KilnNamespace),
	}, in)
	if err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintln(o.streams.ErrOut, strings.Join(notes, "\n"))
	}
	_, err = o.streams.Out.Write(out)
	return err
}
