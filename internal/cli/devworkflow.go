package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/images"
)

// kwokNodeType is the label value the local Kiln's simulated nodes carry under "type".
const kwokNodeType = "kwok"

// realNodes names the Ready nodes that run pods for real: those kwok does not simulate.
func realNodes(nodes []corev1.Node) []string {
	var names []string
	for _, n := range nodes {
		if n.Labels["type"] == kwokNodeType || n.Annotations["kwok.x-k8s.io/node"] != "" {
			continue
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				names = append(names, n.Name)
			}
		}
	}
	return names
}

// workflow is the bundled ML workflow on a local Kiln with a real node: build the images,
// train with the default setting, tune, serve the best model, ask it for a prediction from
// another pod over its Service's DNS name, and train with DDP on two pods.
type workflow struct {
	c        client.Client
	cs       kubernetes.Interface
	flags    *genericclioptions.ConfigFlags
	ns       string
	dir      string
	registry string
	timeout  time.Duration
	builder  *images.Builder
	out      io.Writer
	streams  genericiooptions.IOStreams
}

// workflowResult is what the workflow found, for its summary (and tests).
type workflowResult struct {
	DefaultAccuracy float64
	Best            v1alpha1.BestTrial
	BestAccuracy    float64
	Prediction      string
	DDPFinal        []string
}

const workflowSteps = 6

func (w *workflow) step(n int, format string, args ...any) {
	fmt.Fprintf(w.out, "\n[%d/%d] %s\n", n, workflowSteps, fmt.Sprintf(format, args...))
}

func (w *workflow) run(ctx context.Context) (*workflowResult, error) {
	start := time.Now()
	res := &workflowResult{}
	example := func(dir string) images.Example {
		for _, e := range images.Examples {
			if e.Dir == dir {
				return e
			}
		}
		panic("no bundled example " + dir) // images.Examples is fixed at build time
	}

	w.step(1, "Building the digits image (Debian's python3-sklearn and examples/digits)")
	digits, err := w.builder.Publish(ctx, example("digits"), w.dir, w.registry)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w.out, "  %s\n", digits)

	w.step(2, "Training with the default setting: TrainingJob digits")
	tj, err := readTrainingJob(filepath.Join(w.dir, "digits", "trainingjob.yaml"), nil)
	if err != nil {
		return nil, err
	}
	tj.Namespace, tj.Spec.Image = w.ns, digits
	if err := recreateObject(ctx, w.c, tj); err != nil {
		return nil, err
	}
	if err := watchTrainingJob(ctx, w.c, client.ObjectKeyFromObject(tj), w.timeout, genericiooptions.IOStreams{Out: indent(w.out), ErrOut: w.streams.ErrOut}); err != nil {
		return nil, err
	}
	log, err := w.logs(ctx, tj.Name)
	if err != nil {
		return nil, err
	}
	acc, ok := lastMetric(log, "accuracy")
	if !ok {
		return nil, fmt.Errorf("TrainingJob %s reported no accuracy; its log:\n%s", tj.Name, log)
	}
	res.DefaultAccuracy = acc
	setting := "train.py's defaults"
	if m := trainedRE.FindStringSubmatch(log); m != nil {
		setting = m[1]
	}
	fmt.Fprintf(w.out, "  default setting: accuracy %.4f (%s); model saved on its output volume\n", acc, setting)

	w.step(3, "Tuning C and gamma: Sweep digits-tuning")
	sw, err := readSweep(filepath.Join(w.dir, "digits", "sweep.yaml"), nil)
	if err != nil {
		return nil, err
	}
	sw.Namespace, sw.Spec.TrialTemplate.Image = w.ns, digits
	if err := recreateObject(ctx, w.c, sw); err != nil {
		return nil, err
	}
	if sw, err = w.waitSweep(ctx, client.ObjectKeyFromObject(sw)); err != nil {
		return nil, err
	}
	res.Best = *sw.Status.BestTrial
	res.BestAccuracy, _ = strconv.ParseFloat(res.Best.Value, 64)
	verdict := fmt.Sprintf("%+.4f over the default", res.BestAccuracy-res.DefaultAccuracy)
	if res.BestAccuracy <= res.DefaultAccuracy {
		verdict = "no better than the default"
	}
	fmt.Fprintf(w.out, "  best trial %s: accuracy %s with %s (default %.4f: %s)\n",
		res.Best.Name, res.Best.Value, sortedParams(res.Best.Parameters, sw), res.DefaultAccuracy, verdict)

	w.step(4, "Serving the best model: ModelServer digits on trainingjob://%s", res.Best.Name)
	ms, err := readModelServer(filepath.Join(w.dir, "digits", "modelserver.yaml"), nil)
	if err != nil {
		return nil, err
	}
	ms.Namespace, ms.Spec.Runtime.Image = w.ns, digits
	ms.Spec.Model.URI = "trainingjob://" + res.Best.Name
	if err := recreateObject(ctx, w.c, ms); err != nil {
		return nil, err
	}
	if err := w.waitServing(ctx, client.ObjectKeyFromObject(ms)); err != nil {
		return nil, err
	}

	url := fmt.Sprintf("http://%s.%s.svc", ms.Name, w.ns)
	w.step(5, "Asking for a prediction from another pod: POST %s/predict", url)
	if res.Prediction, err = w.predict(ctx, digits, url); err != nil {
		return nil, err
	}

	w.step(6, "Distributed training with PyTorch DDP on two pods: TrainingJob ddp")
	ddp, err := w.builder.Publish(ctx, example("ddp"), w.dir, w.registry)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w.out, "  %s\n", ddp)
	dj, err := readTrainingJob(filepath.Join(w.dir, "ddp", "trainingjob.yaml"), nil)
	if err != nil {
		return nil, err
	}
	dj.Namespace, dj.Spec.Image = w.ns, ddp
	if err := recreateObject(ctx, w.c, dj); err != nil {
		return nil, err
	}
	if err := watchTrainingJob(ctx, w.c, client.ObjectKeyFromObject(dj), w.timeout, genericiooptions.IOStreams{Out: indent(w.out), ErrOut: w.streams.ErrOut}); err != nil {
		return nil, err
	}
	if log, err = w.logs(ctx, dj.Name); err != nil {
		return nil, err
	}
	res.DDPFinal = finalLosses(log)
	for _, l := range res.DDPFinal {
		fmt.Fprintf(w.out, "  %s\n", l)
	}
	if len(res.DDPFinal) != 2 {
		return nil, fmt.Errorf("TrainingJob %s: want a final loss from each of its 2 ranks; its log:\n%s", dj.Name, log)
	}

	fmt.Fprintf(w.out, `
Done in %s.
  served model: %s
  tuning:       best trial %s accuracy %s vs. the default's %.4f
  DDP:          both ranks finished with the same weights (see their final loss above)

Look next:
  kubectl kiln status -n %[6]s sweep/digits-tuning      # every trial, sorted by accuracy
  kubectl kiln status -n %[6]s modelserver/digits       # Deployment, pods, Service
  kubectl kiln logs -n %[6]s ddp                        # both ranks' output, prefixed [rank N]
  kubectl kiln get -n %[6]s -o wide
  the Headlamp plugin (docs/ui.md): the Kiln section shows the sweep's trials and the server
`, time.Since(start).Round(time.Second), res.Prediction, res.Best.Name, res.Best.Value, res.DefaultAccuracy, w.ns)
	return res, nil
}

// logs returns every worker's log of a TrainingJob, each line prefixed with its rank, as
// `kubectl kiln logs` prints it.
func (w *workflow) logs(ctx context.Context, name string) (string, error) {
	var buf bytes.Buffer
	o := &LogsOptions{Name: name, Rank: -1, Tail: -1, cluster: cluster{flags: w.flags}, streams: genericiooptions.IOStreams{Out: &buf, ErrOut: io.Discard}}
	if err := o.Run(ctx); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// waitSweep follows a sweep to its end, a line each time its counts or best trial change.
func (w *workflow) waitSweep(ctx context.Context, key client.ObjectKey) (*v1alpha1.Sweep, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*w.timeout)
	defer cancel()
	start, last := time.Now(), ""
	for {
		sw := &v1alpha1.Sweep{}
		if err := w.c.Get(ctx, key, sw); err != nil {
			return nil, fmt.Errorf("sweep %s: %w", key.Name, err)
		}
		s := sw.Status
		line := fmt.Sprintf("%s %s: %d of %d trials created, %d running, %d succeeded, %d failed", key.Name, orPending(string(s.State)), s.Trials, sw.Spec.MaxTrials, s.Running, s.Succeeded, s.Failed)
		if b := s.BestTrial; b != nil {
			line += fmt.Sprintf("; best so far %s %s=%s", b.Name, sw.Spec.Objective.Metric, b.Value)
		}
		if line != last {
			fmt.Fprintf(w.out, "  %s (%s)\n", line, time.Since(start).Round(time.Second))
			last = line
		}
		switch s.State {
		case v1alpha1.SweepSucceeded:
			if s.BestTrial == nil {
				return nil, fmt.Errorf("sweep %s succeeded without a best trial", key.Name)
			}
			return sw, nil
		case v1alpha1.SweepFailed:
			return nil, fmt.Errorf("sweep %s failed; see kubectl kiln status -n %s sweep/%s", key.Name, key.Namespace, key.Name)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sweep %s did not finish in %s; it goes on: kubectl kiln status -n %s sweep/%s", key.Name, 2*w.timeout, key.Namespace, key.Name)
		case <-time.After(2 * time.Second):
		}
	}
}

func orPending(s string) string {
	if s == "" {
		return string(v1alpha1.SweepPending)
	}
	return s
}

// waitServing waits until the ModelServer's pods serve, saying what it waits for.
func (w *workflow) waitServing(ctx context.Context, key client.ObjectKey) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	start, last := time.Now(), ""
	for {
		ms := &v1alpha1.ModelServer{}
		if err := w.c.Get(ctx, key, ms); err != nil {
			return fmt.Errorf("modelserver %s: %w", key.Name, err)
		}
		line := "waiting for the controller"
		if c := meta.FindStatusCondition(ms.Status.Conditions, v1alpha1.ModelServerReady); c != nil && c.ObservedGeneration == ms.Generation {
			line = fmt.Sprintf("%s: %s", c.Reason, c.Message)
			if c.Status == metav1.ConditionTrue {
				fmt.Fprintf(w.out, "  %s serving at %s (%s)\n", key.Name, ms.Status.URL, time.Since(start).Round(time.Second))
				return nil
			}
		}
		if line != last {
			fmt.Fprintf(w.out, "  %s %s (%s)\n", key.Name, line, time.Since(start).Round(time.Second))
			last = line
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ModelServer %s was not serving after %s; see kubectl kiln status -n %s modelserver/%s", key.Name, w.timeout, key.Namespace, key.Name)
		case <-time.After(2 * time.Second):
		}
	}
}

// predict runs examples/digits/predict.py in a pod of its own, as another workload in the
// cluster would call the model, and returns its answer line.
func (w *workflow) predict(ctx context.Context, image, url string) (string, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "digits-predict", Namespace: w.ns, Labels: map[string]string{"app.kubernetes.io/part-of": "kiln-examples"}},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			EnableServiceLinks:           ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Affinity: realNodeAffinity(),
			Containers: []corev1.Container{{
				Name:    "predict",
				Image:   image,
				Command: []string{"python3", "/app/predict.py", url},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	if err := recreateObject(ctx, w.c, pod); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	for {
		got := &corev1.Pod{}
		if err := w.c.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
			return "", fmt.Errorf("pod %s: %w", pod.Name, err)
		}
		if got.Status.Phase == corev1.PodSucceeded || got.Status.Phase == corev1.PodFailed {
			b, err := w.cs.CoreV1().Pods(w.ns).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
			if err != nil {
				return "", fmt.Errorf("logs of pod %s: %w", pod.Name, err)
			}
			for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
				fmt.Fprintf(w.out, "  %s\n", l)
			}
			if got.Status.Phase == corev1.PodFailed {
				return "", fmt.Errorf("pod %s could not get a prediction from %s", pod.Name, url)
			}
			if m := predictionRE.FindString(string(b)); m != "" {
				return m, nil
			}
			return "", fmt.Errorf("pod %s printed no prediction", pod.Name)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("pod %s did not finish in %s (phase %s)", pod.Name, w.timeout, got.Status.Phase)
		case <-time.After(time.Second):
		}
	}
}

var trainedRE = regexp.MustCompile(`training (SVC\([^)]*\))`)

var predictionRE = regexp.MustCompile(`prediction: class \d+ for an image of a \d+`)

// realNodeAffinity keeps a pod off the local Kiln's simulated nodes.
func realNodeAffinity() *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "type", Operator: corev1.NodeSelectorOpNotIn, Values: []string{kwokNodeType}}},
		}}},
	}}
}

// lastMetric is the last value of a metric reported on kiln-metric lines (docs/sweep.md).
func lastMetric(log, name string) (float64, bool) {
	var v float64
	found := false
	for _, line := range strings.Split(log, "\n") {
		_, rest, ok := strings.Cut(line, "kiln-metric ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			if k, val, ok := strings.Cut(kv, "="); ok && k == name {
				if f, err := strconv.ParseFloat(val, 64); err == nil {
					v, found = f, true
				}
			}
		}
	}
	return v, found
}

var finalLossRE = regexp.MustCompile(`^\[rank (\d+)\] .*final loss ([0-9.eE+-]+)`)

// finalLosses are the "final loss" lines of a DDP job's log, one per rank.
func finalLosses(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if m := finalLossRE.FindStringSubmatch(line); m != nil {
			out = append(out, fmt.Sprintf("rank %s: final loss %s", m[1], m[2]))
		}
	}
	return out
}

// recreateObject deletes an earlier run's object (and, in the foreground, what it owns) and
// creates it again.
func recreateObject(ctx context.Context, c client.Client, obj client.Object) error {
	old := obj.DeepCopyObject().(client.Object)
	key := client.ObjectKeyFromObject(obj)
	if err := c.Get(ctx, key, old); err == nil {
		if err := c.Delete(ctx, old, client.PropagationPolicy(metav1.DeletePropagationForeground)); client.IgnoreNotFound(err) != nil {
			return err
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if err := c.Get(ctx, key, old); apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the previous %s %s was not deleted within 2 minutes", obj.GetObjectKind().GroupVersionKind().Kind, key.Name)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	obj.SetResourceVersion("")
	return c.Create(ctx, obj)
}

// indent shifts a step's progress lines under its heading.
func indent(w io.Writer) io.Writer { return prefixWriter{w: w, prefix: "  "} }
