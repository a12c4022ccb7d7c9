package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
)

// LogsOptions print the logs of every worker of a TrainingJob, each line marked with its rank.
type LogsOptions struct {
	Name   string
	Follow bool
	Rank   int
	Tail   int64

	cluster cluster
	streams genericiooptions.IOStreams
}

func newLogsCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &LogsOptions{cluster: c, streams: streams}
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print the logs of all workers of a TrainingJob, each line prefixed by its rank",
		Example: `  kubectl kiln logs resnet            # every worker of the current attempt
  kubectl kiln logs resnet -f         # follow them
  kubectl kiln logs resnet --rank 0   # only node rank 0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if o.Rank < -1 {
				return fmt.Errorf("--rank must be 0 or more")
			}
			return explain(o.Run(cmd.Context()))
		},
	}
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep streaming new lines")
	cmd.Flags().IntVar(&o.Rank, "rank", -1, "only this node rank")
	cmd.Flags().Int64Var(&o.Tail, "tail", -1, "lines of recent log to show per worker (-1: all)")
	return cmd
}

// Run streams the logs of the current attempt's pods.
func (o *LogsOptions) Run(ctx context.Context) error {
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return err
	}
	cs, err := o.cluster.clientset()
	if err != nil {
		return err
	}
	tj := &v1alpha1.TrainingJob{}
	if err := c.Get(ctx, keyOf(ns, o.Name), tj); err != nil {
		return err
	}
	if tj.Status.JobName == "" {
		return fmt.Errorf("TrainingJob %s has no workers yet: %s", o.Name, func() string { l, _, _ := progressLine(tj); return l }())
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + tj.Status.JobName})
	if err != nil {
		return err
	}
	var chosen []corev1.Pod
	for _, p := range pods.Items {
		if o.Rank < 0 || rank(&p) == o.Rank {
			chosen = append(chosen, p)
		}
	}
	if len(chosen) == 0 {
		if o.Rank >= 0 {
			return fmt.Errorf("no worker with rank %d in %s (it has %d node(s))", o.Rank, tj.Status.JobName, workers(tj))
		}
		return fmt.Errorf("no worker pods of %s yet", tj.Status.JobName)
	}
	sort.Slice(chosen, func(i, j int) bool { return rank(&chosen[i]) < rank(&chosen[j]) })

	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(chosen))
	for i, p := range chosen {
		opts := &corev1.PodLogOptions{Container: render.ContainerName, Follow: o.Follow}
		if o.Tail >= 0 {
			opts.TailLines = &o.Tail
		}
		prefix := fmt.Sprintf("[rank %d] ", rank(&p))
		stream := func() error {
			rc, err := cs.CoreV1().Pods(ns).GetLogs(p.Name, opts).Stream(ctx)
			if err != nil {
				return fmt.Errorf("logs of %s (rank %d): %w", p.Name, rank(&p), err)
			}
			defer rc.Close()
			return copyLines(rc, o.streams.Out, prefix, &mu)
		}
		if !o.Follow {
			// In order, so that each worker's lines stay together.
			errs[i] = stream()
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = stream() }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// copyLines writes whole lines only, so the lines of concurrent workers never interleave mid-line.
func copyLines(r io.Reader, w io.Writer, prefix string, mu *sync.Mutex) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		mu.Lock()
		_, err := fmt.Fprintf(w, "%s%s\n", prefix, sc.Text())
		mu.Unlock()
		if err != nil {
			return err
		}
	}
	return sc.Err()
}
