package trainingjob

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/internal/render"
)

// failure is what a person needs to know about a worker that failed.
type failure struct {
	index  *int32 // completion index, the node rank; nil when unknown
	reason string // CamelCase cause, such as Error or OOMKilled
	what   string // a sentence without the attempt, such as "worker 1 exited with code 3 (Error)"
	pod    string // the failed pod, for kubectl logs; "" when unknown
}

// firstFailed returns the failed pod that failed first: when one rank dies the
// others often fail after it (a broken rendezvous, a lost peer), and the first
// is the cause. Ties go to the lower index.
func firstFailed(pods []corev1.Pod) *corev1.Pod {
	var failed []*corev1.Pod
	for i := range pods {
		if pods[i].Status.Phase == corev1.PodFailed {
			failed = append(failed, &pods[i])
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return slices.MinFunc(failed, func(a, b *corev1.Pod) int {
		if c := failedAt(a).Compare(failedAt(b)); c != 0 {
			return c
		}
		return cmp.Compare(indexOrMax(a), indexOrMax(b))
	})
}

// failedAt is the pod's last condition change, which for a failed pod is its
// failure; it works also for pods that failed without a terminated container
// (evictions, node loss).
func failedAt(p *corev1.Pod) time.Time {
	var t time.Time
	for _, c := range p.Status.Conditions {
		if c.LastTransitionTime.After(t) {
			t = c.LastTransitionTime.Time
		}
	}
	return t
}

func completionIndex(p *corev1.Pod) *int32 {
	v, ok := p.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		v, ok = p.Labels[batchv1.JobCompletionIndexAnnotation]
	}
	if !ok {
		return nil
	}
	i, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return nil
	}
	return ptr.To(int32(i))
}

func indexOrMax(p *corev1.Pod) int32 {
	if i := completionIndex(p); i != nil {
		return *i
	}
	return 1<<31 - 1
}

// describe says how a failed pod failed: its init step (the data fetch), its
// training container, or the pod as a whole.
func describe(p *corev1.Pod) failure {
	f := failure{index: completionIndex(p), pod: p.Name}
	worker := "a worker"
	if f.index != nil {
		worker = fmt.Sprintf("worker %d", *f.index)
	}
	for _, c := range p.Status.InitContainerStatuses {
		if t := c.State.Terminated; t != nil && t.ExitCode != 0 {
			f.reason = reasonOr(t.Reason)
			f.what = fmt.Sprintf("the %s step of %s exited with code %d (%s)", c.Name, worker, t.ExitCode, f.reason)
			return f
		}
	}
	// The training container first: a failing sidecar is rarely the story.
	statuses := slices.Clone(p.Status.ContainerStatuses)
	if i := slices.IndexFunc(statuses, func(c corev1.ContainerStatus) bool { return c.Name == render.ContainerName }); i > 0 {
		statuses[0], statuses[i] = statuses[i], statuses[0]
	}
	for _, c := range statuses {
		if t := c.State.Terminated; t != nil && t.ExitCode != 0 {
			f.reason = reasonOr(t.Reason)
			f.what = fmt.Sprintf("%s exited with code %d (%s)", worker, t.ExitCode, f.reason)
			if f.reason == "OOMKilled" {
				f.what += ": it ran out of memory; raise spec.resources.memory"
			}
			return f
		}
	}
	f.reason = reasonOr(p.Status.Reason)
	f.what = fmt.Sprintf("%s failed (%s)", worker, f.reason)
	if m := p.Status.Message; m != "" {
		f.what = fmt.Sprintf("%s failed (%s: %s)", worker, f.reason, m)
	}
	return f
}

func reasonOr(r string) string {
	if r == "" {
		return "Error"
	}
	return r
}
