package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/images"
	"kiln.dev/kiln/internal/localkiln"
)

// DevExamplesOptions run the bundled examples on the local Kiln.
type DevExamplesOptions struct {
	Dir       string
	StateDir  string
	Namespace string
	Timeout   time.Duration
	Registry  string
	// KubeConfig runs the examples on another cluster than the local Kiln.
	KubeConfig string

	streams genericiooptions.IOStreams
}

func newDevExamplesCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &DevExamplesOptions{streams: streams}
	cmd := &cobra.Command{
		Use:     "examples",
		Short:   "Run every bundled example on the local Kiln and show each one's progress",
		Example: `  kubectl kiln dev up && kubectl kiln dev examples`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return explain(o.Run(cmd.Context()))
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "examples", "folder of example manifests")
	cmd.Flags().StringVar(&o.StateDir, "state-dir", localkiln.DefaultDir(), "folder of the local Kiln's kubeconfig and state")
	cmd.Flags().StringVar(&o.Namespace, "namespace", "kiln-examples", "namespace to run the examples in (recreated objects, same names)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long each example may take")
	cmd.Flags().StringVar(&o.KubeConfig, "kubeconfig", "", "run on the cluster of this kubeconfig instead of the local Kiln (with a real node, pass --registry too)")
	cmd.Flags().StringVar(&o.Registry, "registry", "", "host:port of the registry the real node pulls kiln.local/ images from (default: the local Kiln's)")
	return cmd
}

// Run creates each TrainingJob example afresh and follows it to the end.
func (o *DevExamplesOptions) Run(ctx context.Context) error {
	s := &localkiln.State{KubeConfig: o.KubeConfig}
	if o.KubeConfig == "" {
		var err error
		if s, err = localkiln.ReadState(o.StateDir); err != nil {
			return err
		}
		if s == nil || s.KubeConfig == "" {
			return fmt.Errorf("the local Kiln is not running: start it with `kubectl kiln dev up`")
		}
	}
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &s.KubeConfig, &o.Namespace
	c, err := cluster{flags: flags}.client()
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	nodes := &corev1.NodeList{}
	if err := c.List(ctx, nodes); err != nil {
		return err
	}
	if real := realNodes(nodes.Items); len(real) > 0 {
		return o.runWorkflow(ctx, s, flags, c, real)
	}
	files, err := filepath.Glob(filepath.Join(o.Dir, "*.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var failed []string
	for _, f := range files {
		if nb, err := readNotebook(f); err == nil {
			nb.Namespace = o.Namespace
			fmt.Fprintf(o.streams.Out, "== %s: Notebook %s\n", f, nb.Name)
			if err := runNotebookExample(ctx, c, nb, o.Timeout, o.streams.Out); err != nil {
				fmt.Fprintln(o.streams.Out, "  ", err)
				failed = append(failed, f)
			}
			continue
		}
		tj, err := readTrainingJob(f, nil)
		if err != nil {
			continue // not a TrainingJob: other kinds get their own runner as they land
		}
		tj.Namespace = o.Namespace
		fmt.Fprintf(o.streams.Out, "== %s: TrainingJob %s\n", f, tj.Name)
		if err := recreate(ctx, c, tj); err != nil {
			return err
		}
		if err := watchTrainingJob(ctx, c, client.ObjectKeyFromObject(tj), o.Timeout, o.streams); err != nil {
			fmt.Fprintln(o.streams.Out, "  ", err)
			failed = append(failed, f)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d example(s) did not succeed: %v", len(failed), failed)
	}
	fmt.Fprintf(o.streams.Out, "\nAll examples succeeded. Look around:\n  export KUBECONFIG=%s\n  kubectl kiln get -n %s -o wide\n  kubectl kiln status -n %s NAME\n", s.KubeConfig, o.Namespace, o.Namespace)
	return nil
}

// runWorkflow runs the real ML workflow (examples/digits, examples/ddp) on the real node.
func (o *DevExamplesOptions) runWorkflow(ctx context.Context, s *localkiln.State, flags *genericclioptions.ConfigFlags, c client.Client, real []string) error {
	registry := o.Registry
	if registry == "" {
		registry = s.Registry
	}
	if registry == "" {
		return fmt.Errorf("the local Kiln has a real node (%s) but no registry for its images is known: pass --registry HOST:PORT", strings.Join(real, ", "))
	}
	cs, err := cluster{flags: flags}.clientset()
	if err != nil {
		return err
	}
	// The workflow outlives controller-runtime's 30 s grace for a logger, after which the
	// clients would print a stack trace saying none was set; the CLI logs nothing through it.
	ctrllog.SetLogger(logr.Discard())
	fmt.Fprintf(o.streams.Out, "Real node %s: running the example workflow for real (train, tune, serve, predict, DDP) in namespace %s.\n", strings.Join(real, ", "), o.Namespace)
	w := &workflow{
		c: c, cs: cs, flags: flags, ns: o.Namespace, dir: o.Dir, registry: registry, timeout: o.Timeout,
		builder: &images.Builder{Out: indent(o.streams.Out)}, out: o.streams.Out, streams: o.streams,
	}
	_, err = w.run(ctx)
	return err
}

// recreate deletes an earlier run of the example and creates it again.
func recreate(ctx context.Context, c client.Client, tj *v1alpha1.TrainingJob) error {
	old := &v1alpha1.TrainingJob{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(tj), old); err == nil {
		if err := c.Delete(ctx, old, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		for i := 0; i < 300; i++ {
			if err := c.Get(ctx, client.ObjectKeyFromObject(tj), old); apierrors.IsNotFound(err) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return c.Create(ctx, tj)
}
