package trainingjob

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
)

// CheckpointLinePrefix starts the line with which training code reports a
// checkpoint it finished writing: "kiln-checkpoint /kiln/checkpoints/step-300".
const CheckpointLinePrefix = "kiln-checkpoint"

// The end of rank 0's log is searched, bounded: the last checkpoint is
// reported near the end, and a log may be gigabytes.
const (
	checkpointLogLines = 5000
	checkpointLogBytes = 4 << 20
)

// +kubebuilder:rbac:groups="",resources=pods/log,verbs=get

// lastCheckpoint returns the path of the last checkpoint line in log that
// names a place inside the checkpoint volume. Other paths are ignored: what is
// passed to the next attempt must be on the volume that attempt mounts.
func lastCheckpoint(log io.Reader) string {
	var last string
	sc := bufio.NewScanner(log)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, CheckpointLinePrefix+" ")
		if i < 0 {
			continue
		}
		fields := strings.Fields(line[i+len(CheckpointLinePrefix):])
		if len(fields) != 1 {
			continue
		}
		p := fields[0]
		if path.IsAbs(p) && path.Clean(p) == p && strings.HasPrefix(p, render.CheckpointDir+"/") && len(p) <= 4096 {
			last = p
		}
	}
	return last
}

// readCheckpoint looks for the latest checkpoint reported in rank 0's log of
// the failed attempt, so the next attempt can resume from it. It is read once,
// when the gang fails, not while the job runs: a job that never fails costs
// nothing. Reading is best effort: a log that cannot be read leaves the last
// known checkpoint in place.
func (r *Reconciler) readCheckpoint(ctx context.Context, tj *v1alpha1.TrainingJob, pods []corev1.Pod) {
	if r.Logs == nil || tj.Spec.Checkpoints == nil || !ptr.Deref(tj.Spec.Restart.ResumeFromCheckpoint, true) {
		return
	}
	for _, p := range pods {
		if p.Annotations[batchv1.JobCompletionIndexAnnotation] != "0" {
			continue
		}
		cp, err := r.checkpointFrom(ctx, &p)
		if err != nil {
			ctrl.LoggerFrom(ctx).Info("could not read rank 0's log for a checkpoint", "pod", p.Name, "reason", err.Error())
			return
		}
		if cp != "" {
			tj.Status.LatestCheckpoint = cp
		}
		return
	}
}

func (r *Reconciler) checkpointFrom(ctx context.Context, p *corev1.Pod) (string, error) {
	stream, err := r.Logs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{
		Container: render.ContainerName, TailLines: ptr.To(int64(checkpointLogLines)), LimitBytes: ptr.To(int64(checkpointLogBytes)),
	}).Stream(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the log of pod %s: %w", p.Name, err)
	}
	defer stream.Close()
	return lastCheckpoint(io.LimitReader(stream, checkpointLogBytes)), nil
}
