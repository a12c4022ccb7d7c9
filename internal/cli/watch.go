package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
)

// progressLine summarises where a TrainingJob is, in the order a job moves:
// queued, admitted, running with its workers, done.
func progressLine(tj *v1alpha1.TrainingJob) (line string, done bool, failed bool) {
	conds := tj.Status.Conditions
	shape := ""
	if s := tj.Status.Shape; s != nil {
		shape = fmt.Sprintf(" [%dx%d", s.Nodes, s.ProcessesPerNode)
		if s.Pool != "" {
			shape += " on " + s.Pool
		}
		shape += "]"
	}
	restarts := ""
	if tj.Status.Restarts > 0 {
		restarts = fmt.Sprintf(", restart %d", tj.Status.Restarts)
	}
	switch {
	case meta.IsStatusConditionTrue(conds, v1alpha1.TrainingJobSucceeded):
		took := ""
		if tj.Status.StartTime != nil && tj.Status.CompletionTime != nil {
			took = " in " + tj.Status.CompletionTime.Sub(tj.Status.StartTime.Time).Round(time.Second).String()
		}
		return fmt.Sprintf("succeeded%s%s%s", took, shape, restarts), true, false
	case meta.IsStatusConditionTrue(conds, v1alpha1.TrainingJobFailed):
		return fmt.Sprintf("failed%s: %s", shape, conditionMessage(conds, v1alpha1.TrainingJobFailed)), true, true
	case meta.IsStatusConditionTrue(conds, v1alpha1.TrainingJobSuspended) &&
		meta.FindStatusCondition(conds, v1alpha1.TrainingJobSuspended).Reason == v1alpha1.ReasonSuspendedBySpec:
		// Held by a queue (Kiln's or Kueue's) is queued, below, with what it waits for.
		return "suspended" + shape, false, false
	case meta.IsStatusConditionTrue(conds, v1alpha1.TrainingJobRestarting):
		return fmt.Sprintf("restarting%s: %s", shape, conditionMessage(conds, v1alpha1.TrainingJobRestarting)), false, false
	case meta.IsStatusConditionTrue(conds, v1alpha1.TrainingJobRunning):
		return fmt.Sprintf("running%s: %d/%d workers ready%s", shape, tj.Status.Ready, workers(tj), restarts), false, false
	case meta.IsStatusConditionTrue(conds, v1alpha1.TrainingJobAdmitted):
		return fmt.Sprintf("admitted%s: starting %d worker(s)", shape, workers(tj)), false, false
	}
	if c := meta.FindStatusCondition(conds, v1alpha1.TrainingJobAdmitted); c != nil && c.Message != "" {
		if c.Reason == v1alpha1.ReasonRefused {
			return c.Message, false, false // "refused: …"
		}
		return "queued: " + c.Message, false, false
	}
	return "queued", false, false
}

func conditionMessage(conds []metav1.Condition, t string) string {
	if c := meta.FindStatusCondition(conds, t); c != nil {
		return c.Message
	}
	return ""
}

// watchTrainingJob follows a job until it ends: one updating line on a terminal, a line per
// change otherwise (logs, CI). A failed job is an error, so scripts see a non-zero exit.
func watchTrainingJob(ctx context.Context, c client.Client, key client.ObjectKey, timeout time.Duration, streams genericiooptions.IOStreams) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	tty := isTerminal(streams.Out)
	start := time.Now()
	last := ""
	for {
		tj := &v1alpha1.TrainingJob{}
		if err := c.Get(ctx, key, tj); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stopped watching %s after %s; it goes on: kubectl kiln status %s", key.Name, timeout, key.Name)
			}
			return err
		}
		line, done, failed := progressLine(tj)
		if line != last || tty {
			show(streams.Out, tty, fmt.Sprintf("%s %s (%s)", key.Name, line, time.Since(start).Round(time.Second)))
			last = line
		}
		if done {
			if tty {
				fmt.Fprintln(streams.Out)
			}
			if failed {
				return fmt.Errorf("TrainingJob %s failed; see kubectl kiln status %s and kubectl kiln logs %s", key.Name, key.Name, key.Name)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(streams.Out)
			}
			return fmt.Errorf("stopped watching %s after %s; it goes on: kubectl kiln status %s", key.Name, timeout, key.Name)
		case <-time.After(time.Second):
		}
	}
}

func show(w io.Writer, tty bool, line string) {
	if tty {
		fmt.Fprintf(w, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(w, line)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
