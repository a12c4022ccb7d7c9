package sweep

import (
	"context"
	"fmt"
	"io"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
	search "kiln.dev/kiln/internal/sweep"
)

// maxLogBytes bounds how much of a trial's log is read each time.
const maxLogBytes = 8 << 20

// LogPoller reads the kiln-metric lines of each running trial's rank-0 pod log
// (the stdout protocol) every Interval and records them. Reading the whole log
// each time keeps it simple and idempotent: the same lines give the same points.
type LogPoller struct {
	Client    client.Client
	APIReader client.Reader
	Pods      kubernetes.Interface
	Recorder  *Recorder
	Interval  time.Duration
}

// +kubebuilder:rbac:groups="",resources=pods/log,verbs=get

// NeedLeaderElection is true: one replica reading every log is enough.
func (p *LogPoller) NeedLeaderElection() bool { return true }

// Start polls until ctx is done.
func (p *LogPoller) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("sweep-logs")
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := p.poll(ctx); err != nil {
			log.Error(err, "reading trials' metrics from their logs")
		}
	}
}

func (p *LogPoller) poll(ctx context.Context) error {
	var trials v1alpha1.TrainingJobList
	if err := p.Client.List(ctx, &trials, client.HasLabels{v1alpha1.LabelSweep}); err != nil {
		return fmt.Errorf("listing trials: %w", err)
	}
	for i := range trials.Items {
		tj := &trials.Items[i]
		state := stateOf(tj)
		final := state == search.Succeeded || state == search.Failed
		if tj.Status.JobName == "" || (state != search.Running && !final) || tj.Annotations[v1alpha1.AnnotationTrialLogRead] != "" {
			continue
		}
		err := p.read(ctx, tj)
		if err != nil {
			ctrl.LoggerFrom(ctx).V(1).Info("no metrics from the trial's log", "trial", tj.Name, "reason", err.Error())
		}
		if final && err == nil {
			// The lines printed after the last poll count too; then the log is done with.
			if err := p.markRead(ctx, tj); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *LogPoller) markRead(ctx context.Context, tj *v1alpha1.TrainingJob) error {
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+v1alpha1.AnnotationTrialLogRead+`":"true"}}}`))
	if err := p.Client.Patch(ctx, &v1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Name: tj.Name, Namespace: tj.Namespace}}, patch); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

func (p *LogPoller) read(ctx context.Context, tj *v1alpha1.TrainingJob) error {
	var pods corev1.PodList
	err := p.APIReader.List(ctx, &pods, client.InNamespace(tj.Namespace), client.MatchingLabels{batchv1.JobNameLabel: tj.Status.JobName})
	if err != nil {
		return err
	}
	for _, pod := range pods.Items {
		if pod.Annotations[batchv1.JobCompletionIndexAnnotation] != "0" || pod.Status.Phase == corev1.PodPending {
			continue
		}
		stream, err := p.Pods.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{
			Container: render.ContainerName, LimitBytes: ptr.To(int64(maxLogBytes)),
		}).Stream(ctx)
		if err != nil {
			return err
		}
		reports := ParseLog(io.LimitReader(stream, maxLogBytes))
		stream.Close()
		if len(reports) == 0 {
			return nil
		}
		return p.Recorder.Record(ctx, client.ObjectKeyFromObject(tj), reports)
	}
	return nil
}
