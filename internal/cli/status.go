package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
)

// StatusOptions show a TrainingJob with every native object under it.
type StatusOptions struct {
	Name   string
	Events int

	cluster cluster
	streams genericiooptions.IOStreams
	now     func() time.Time
}

func newStatusCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{cluster: c, streams: streams, now: time.Now}
	cmd := &cobra.Command{
		Use:     "status [KIND] NAME | KIND/NAME",
		Aliases: []string{"describe"},
		Short:   "Show a Kiln object as a tree of its native objects, with conditions and recent events",
		Long: `The one place to look when something is wrong: the TrainingJob, its shape and why it was chosen,
the Job and Service of the current attempt, every worker pod with its rank, node and state, the
volumes, the conditions with their messages, and the latest events of all of them.`,
		Example: `  kubectl kiln status resnet
  kubectl kiln status resnet -n research --events 20
  kubectl kiln status notebook explore
  kubectl kiln status modelserver/resnet
  kubectl kiln status sweep/lr-search        # a Sweep's trials sorted by objective, the best marked`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name := "", args[len(args)-1]
			if len(args) == 2 {
				kind = args[0]
			} else if k, n, ok := strings.Cut(name, "/"); ok {
				kind, name = k, n
			}
			o.Name = name
			if kind == "" {
				return explain(o.Run(cmd.Context()))
			}
			k, ok := lookupKind(kind)
			if !ok {
				return fmt.Errorf("unknown kind %q: Kiln's kinds are %s", kind, kindNames())
			}
			switch k.Plural {
			case "sweeps":
				so := &SweepStatusOptions{Name: name, cluster: o.cluster, streams: o.streams, now: o.now}
				return explain(so.Run(cmd.Context()))
			case "modelservers":
				return explain(o.runModelServerStatus(cmd.Context(), name))
			case "notebooks":
				c, ns, err := o.cluster.clientIn()
				if err != nil {
					return err
				}
				return explain(notebookStatus(cmd.Context(), c, ns, o.Name, o.Events, o.streams.Out, o.now()))
			}
			return explain(o.Run(cmd.Context()))
		},
	}
	cmd.Flags().IntVar(&o.Events, "events", 8, "how many recent events to show")
	return cmd
}

// Run gathers and prints the tree.
func (o *StatusOptions) Run(ctx context.Context) error {
	if kind, name, ok := strings.Cut(o.Name, "/"); ok {
		if isModelServerKind(kind) {
			return o.runModelServerStatus(ctx, name)
		}
		switch strings.ToLower(kind) {
		case "trainingjob", "trainingjobs", "tj", "trainingjob.kiln.dev":
			o.Name = name
		default:
			return fmt.Errorf("unknown kind %q: status shows trainingjob/NAME (the default) or modelserver/NAME", kind)
		}
	}
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return err
	}
	tj := &v1alpha1.TrainingJob{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.Name}, tj); err != nil {
		if errors.IsNotFound(err) {
			return fmt.Errorf("no TrainingJob %q in namespace %s (list them with kubectl kiln get)", o.Name, ns)
		}
		return err
	}
	t := tree{tj: tj}
	if tj.Status.JobName != "" {
		job := &batchv1.Job{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: tj.Status.JobName}, job); err == nil {
			t.job = job
		} else if !errors.IsNotFound(err) {
			return err
		}
		svc := &corev1.Service{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: tj.Status.JobName}, svc); err == nil {
			t.svc = svc
		}
		pods := &corev1.PodList{}
		if err := c.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{"job-name": tj.Status.JobName}); err != nil {
			return err
		}
		t.pods = pods.Items
	}
	claims := &corev1.PersistentVolumeClaimList{}
	if err := c.List(ctx, claims, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelTrainingJob: tj.Name}); err != nil {
		return err
	}
	t.claims = claims.Items
	events := &corev1.EventList{}
	if err := c.List(ctx, events, client.InNamespace(ns)); err != nil {
		return err
	}
	t.events = relatedEvents(events.Items, tj, t.pods, o.Events)
	t.print(o.streams.Out, o.now())
	return nil
}

type tree struct {
	tj     *v1alpha1.TrainingJob
	job    *batchv1.Job
	svc    *corev1.Service
	pods   []corev1.Pod
	claims []corev1.PersistentVolumeClaim
	events []corev1.Event
}

func (t tree) print(w io.Writer, now time.Time) {
	tj := t.tj
	line, _, _ := progressLine(tj)
	fmt.Fprintf(w, "TrainingJob %s/%s: %s\n", tj.Namespace, tj.Name, line)
	if s := tj.Status.Shape; s != nil && s.Reason != "" {
		fmt.Fprintf(w, "  shape %dx%d: %s\n", s.Nodes, s.ProcessesPerNode, s.Reason)
	}
	fmt.Fprintf(w, "  attempt %d, restarts %d of %d\n", tj.Status.Attempt, tj.Status.Restarts, maxRestarts(tj))
	if f := tj.Status.LastFailure; f != nil {
		fmt.Fprintf(w, "  last failure: %s\n", f.Message)
	}

	var rows []string
	if t.svc != nil {
		rows = append(rows, fmt.Sprintf("Service %s (headless: workers resolve <pod>.%s)", t.svc.Name, t.svc.Name))
	}
	if t.job != nil {
		js := t.job.Status
		suspended := ""
		if t.job.Spec.Suspend != nil && *t.job.Spec.Suspend {
			suspended = ", suspended"
		}
		rows = append(rows, fmt.Sprintf("Job %s: active %d, ready %d, succeeded %d, failed %d%s",
			t.job.Name, js.Active, derefInt32(js.Ready), js.Succeeded, js.Failed, suspended))
	} else if tj.Status.JobName != "" {
		rows = append(rows, fmt.Sprintf("Job %s: not found", tj.Status.JobName))
	}
	for _, c := range t.claims {
		size := c.Spec.Resources.Requests[corev1.ResourceStorage]
		rows = append(rows, fmt.Sprintf("PersistentVolumeClaim %s: %s, %s, %s", c.Name, c.Status.Phase, size.String(), accessModes(c.Spec.AccessModes)))
	}
	for i, r := range rows {
		branch, indent := "├─", "│  "
		if i == len(rows)-1 {
			branch, indent = "└─", "   "
		}
		fmt.Fprintf(w, "%s %s\n", branch, r)
		if strings.HasPrefix(r, "Job ") {
			printPods(w, indent, t.pods, now)
		}
	}

	if len(tj.Status.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		for _, c := range tj.Status.Conditions {
			fmt.Fprintf(w, "  %-11s %-5s %-20s %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	if len(t.events) > 0 {
		fmt.Fprintln(w, "Events:")
		for _, e := range t.events {
			fmt.Fprintf(w, "  %-8s %-7s %-20s %s/%s: %s\n", age(eventTime(e), now), e.Type, e.Reason, strings.ToLower(e.InvolvedObject.Kind), e.InvolvedObject.Name, e.Message)
		}
	}
}

func printPods(w io.Writer, indent string, pods []corev1.Pod, now time.Time) {
	sort.Slice(pods, func(i, j int) bool { return rank(&pods[i]) < rank(&pods[j]) })
	for i, p := range pods {
		branch := "├─"
		if i == len(pods)-1 {
			branch = "└─"
		}
		node := p.Spec.NodeName
		if node == "" {
			node = "unscheduled"
		}
		fmt.Fprintf(w, "%s%s Pod %s: rank %d, %s, node %s%s\n", indent, branch, p.Name, rank(&p), podState(&p), node, restartsOf(&p))
	}
}

// podState is the phase, or what blocks the pod when it is not running.
func podState(p *corev1.Pod) string {
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Waiting != nil && s.State.Waiting.Reason != "" {
			return s.State.Waiting.Reason
		}
		if t := s.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Sprintf("%s (exit code %d)", t.Reason, t.ExitCode)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return "Pending: " + c.Message
		}
	}
	return string(p.Status.Phase)
}

func restartsOf(p *corev1.Pod) string {
	var n int32
	for _, s := range p.Status.ContainerStatuses {
		n += s.RestartCount
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d container restarts", n)
}

// rank is the pod's completion index, which Kiln uses as the node rank.
func rank(p *corev1.Pod) int {
	r, err := strconv.Atoi(p.Annotations[batchv1.JobCompletionIndexAnnotation])
	if err != nil {
		return -1
	}
	return r
}

// relatedEvents are the newest events about the job, its Job and Service, and its pods.
func relatedEvents(all []corev1.Event, tj *v1alpha1.TrainingJob, pods []corev1.Pod, n int) []corev1.Event {
	names := map[string]bool{tj.Name: true, tj.Status.JobName: true}
	for _, p := range pods {
		names[p.Name] = true
	}
	var out []corev1.Event
	for _, e := range all {
		if names[e.InvolvedObject.Name] || strings.HasPrefix(e.InvolvedObject.Name, tj.Name+"-") {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return eventTime(out[i]).Time.Before(eventTime(out[j]).Time) })
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

func eventTime(e corev1.Event) metav1.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp
	case !e.EventTime.IsZero():
		return metav1.Time{Time: e.EventTime.Time}
	}
	return e.CreationTimestamp
}

func maxRestarts(tj *v1alpha1.TrainingJob) int32 {
	if m := tj.Spec.Restart.MaxRestarts; m != nil {
		return *m
	}
	return v1alpha1.DefaultMaxRestarts
}

func accessModes(m []corev1.PersistentVolumeAccessMode) string {
	var s []string
	for _, a := range m {
		s = append(s, string(a))
	}
	return strings.Join(s, ",")
}

func derefInt32(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
