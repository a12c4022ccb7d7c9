// Package cli holds the `kubectl kiln` commands. Each verb is an Options struct with
// Complete (fill in from flags and environment), Validate (refuse bad input before any work)
// and Run.
package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// NewRootCommand builds `kubectl kiln` (also runnable as `kiln`).
func NewRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:   "kubectl-kiln",
		Short: "Kiln: train, tune and serve models on Kubernetes",
		Long: `Kiln runs the machine-learning workflow on Kubernetes: training from one GPU to many nodes,
hyperparameter sweeps, model serving and notebooks, as plain Kubernetes objects.

Start a local Kiln with simulated GPU nodes, then train on 8 GPUs:
  kubectl kiln dev up
  kubectl kiln train resnet --gpus 8 --framework pytorch --image IMAGE --watch -- python train.py`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	flags.AddFlags(root.PersistentFlags())
	c := cluster{flags: flags, warnings: streams.ErrOut}
	root.AddCommand(
		newTrainCommand(c, streams), newSweepCommand(c, streams), newGetCommand(c, streams), newStatusCommand(c, streams),
		newLogsCommand(c, streams), newExportCommand(c, streams), newDeleteCommand(c, streams),
		newDoctorCommand(c, streams), newDevCommand(streams), newVersionCommand(streams),
		newServeCommand(c, streams), newPromoteCommand(c, streams), newRollbackCommand(c, streams),
	)
	root.AddCommand(newInjectCommand(streams))
	root.AddCommand(newNotebookCommand(c, streams))
	root.AddCommand(newBuildCommand(streams), newInitCommand(streams), newGenerateWorkflowCommand(streams))
	return root
}

func newVersionCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Kiln's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(streams.Out, "kiln", Version())
			return nil
		},
	}
}

// Version is the module version the binary was built from, or "devel".
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
