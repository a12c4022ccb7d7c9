package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/validation"
	"kiln.dev/kiln/test/framework"
)

const (
	sweepTrials      = 12
	sweepParallelism = 4
	// sweepSteps is how many steps each trial reports (earlyStopping.maxSteps).
	sweepSteps = 9
)

// sweepLoss is the synthetic objective the test's stand-in trial code reports:
// best near x = 0.3, improving with steps.
func sweepLoss(x float64, step int) float64 {
	return 4*(x-0.3)*(x-0.3) + 0.5/float64(step) + 0.1
}

func sweepSpec(ns, name string) *v1alpha1.Sweep {
	return &v1alpha1.Sweep{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.SweepSpec{
			Parameters: []v1alpha1.SweepParameter{
				{Name: "x", Type: v1alpha1.ParameterFloat, Min: "0", Max: "1"},
				{Name: "lr", Type: v1alpha1.ParameterFloat, Min: "1e-4", Max: "1e-1", Scale: v1alpha1.ScaleLog},
			},
			Objective:   v1alpha1.SweepObjective{Metric: "val_loss", Direction: v1alpha1.Minimize},
			Algorithm:   v1alpha1.AlgorithmRandom,
			Seed:        7,
			MaxTrials:   sweepTrials,
			Parallelism: sweepParallelism,
			// The median rule leaves several trials to finish, so the best among them
			// is a real choice; ASHA (one in three per rung) would leave one or two.
			EarlyStopping: &v1alpha1.EarlyStopping{Rule: v1alpha1.EarlyStoppingMedian, MinSteps: 2, MaxSteps: sweepSteps},
			TrialTemplate: *withAnnotations(trainingJob(ns, ""), simRunTime, "1h").Spec.DeepCopy(),
		},
	}
}

// A Sweep of 12 trials with parallelism 4. The test is the trial code: it pushes each
// running trial's metrics with the trial's own token, one step per round, and ends a
// trial (its pod exits 0) after its last step. Kiln must never run more than 4 trials at
// once, stop losers early, report the best trial, refuse a wrong token, and lose or
// duplicate nothing when the manager is killed mid-sweep.
func TestSweep(t *testing.T) {
	c, ns := kilnClient(t), namespace(t)
	cs := clientset(t)
	ctx := context.Background()
	sw := sweepSpec(ns, "tune")
	sw.Spec.TrialTemplate.Args = []string{"--x=${params.x}", "--lr=${params.lr}"}
	create(t, c, sw)

	type seen struct {
		params string
		x      float64
		steps  int // steps pushed
		done   bool
		final  float64
	}
	trials := map[string]*seen{}
	maxRunning, restarted, wrongTokenTried := 0, false, false
	var beforeRestart map[string]string // trial -> parameters annotation

	deadline := time.Now().Add(6 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("the sweep did not finish; status %+v", getSweep(t, c, sw).Status)
		}
		var list v1alpha1.TrainingJobList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelSweep: sw.Name}); err != nil {
			t.Fatal(err)
		}
		running := 0
		for i := range list.Items {
			tj := &list.Items[i]
			if trialRunning(tj) {
				running++
			}
		}
		maxRunning = max(maxRunning, running)
		if running > sweepParallelism {
			t.Fatalf("%d trials run at once, more than parallelism %d", running, sweepParallelism)
		}

		for i := range list.Items {
			tj := &list.Items[i]
			s := trials[tj.Name]
			if s == nil {
				var values map[string]string
				if err := json.Unmarshal([]byte(tj.Annotations[v1alpha1.AnnotationTrialParameters]), &values); err != nil {
					t.Fatalf("trial %s parameters: %v", tj.Name, err)
				}
				x, err := strconv.ParseFloat(values["x"], 64)
				if err != nil {
					t.Fatalf("trial %s: x %q", tj.Name, values["x"])
				}
				if got := trialArg(tj, "--x="); got != values["x"] {
					t.Fatalf("trial %s: args have x %q, parameters %q", tj.Name, got, values["x"])
				}
				s = &seen{params: tj.Annotations[v1alpha1.AnnotationTrialParameters], x: x}
				trials[tj.Name] = s
			}
			if !trialRunning(tj) || s.done || tj.Status.State != v1alpha1.StateRunning {
				continue
			}
			token, url := trialEndpoint(t, cs, tj)
			if !wrongTokenTried {
				wrongTokenTried = true
				refusesWrongToken(t, c, tj, url, token)
			}
			if s.steps < sweepSteps {
				s.steps++
				v := sweepLoss(s.x, s.steps)
				// Both push formats: kiln-metric lines on odd steps, JSON on even ones.
				body := fmt.Sprintf("kiln-metric step=%d val_loss=%g", s.steps, v)
				if s.steps%2 == 0 {
					body = fmt.Sprintf(`{"step": %d, "val_loss": %g}`, s.steps, v)
				}
				code := push(t, url, token, body)
				switch code {
				case http.StatusNoContent:
					s.final = v
				case http.StatusConflict:
					s.steps-- // stopped between our list and the push
				default:
					t.Fatalf("push to %s: HTTP %d", tj.Name, code)
				}
				continue
			}
			// The last step is stored; the trial's process exits.
			if tj.Status.Metrics["step"] == strconv.Itoa(sweepSteps) {
				finishTrialPod(t, cs, tj)
				s.done = true
			}
		}

		if !restarted && len(list.Items) >= 6 {
			// Kill the manager mid-sweep, let the trials report to nobody for a while,
			// and start it again.
			restarted = true
			beforeRestart = map[string]string{}
			for _, tj := range list.Items {
				beforeRestart[tj.Name] = tj.Annotations[v1alpha1.AnnotationTrialParameters]
			}
			if err := kilnManager.stop(); err != nil {
				t.Fatalf("stopping the manager: %v", err)
			}
			time.Sleep(2 * time.Second)
			if err := kilnManager.start(); err != nil {
				t.Fatalf("starting the manager again: %v", err)
			}
			continue
		}

		got := getSweep(t, c, sw)
		if got.Status.State == v1alpha1.SweepSucceeded {
			break
		}
		if got.Status.State == v1alpha1.SweepFailed {
			t.Fatalf("the sweep failed: %s", sweepConditions(got))
		}
		time.Sleep(300 * time.Millisecond)
	}

	if !restarted {
		t.Fatal("the sweep ended before the manager could be restarted in the middle of it")
	}
	got := getSweep(t, c, sw)
	t.Logf("sweep ended: %s; at most %d trials ran at once", sweepConditions(got), maxRunning)
	var list v1alpha1.TrainingJobList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelSweep: sw.Name}); err != nil {
		t.Fatal(err)
	}
	// Nothing lost, nothing duplicated: exactly the trials 0..11, under their names,
	// those made before the restart unchanged.
	var names []string
	for _, tj := range list.Items {
		names = append(names, tj.Name)
		if want, ok := beforeRestart[tj.Name]; ok && tj.Annotations[v1alpha1.AnnotationTrialParameters] != want {
			t.Errorf("trial %s changed parameters over the restart: %s, was %s", tj.Name, tj.Annotations[v1alpha1.AnnotationTrialParameters], want)
		}
	}
	var want []string
	for i := range sweepTrials {
		want = append(want, render.TrialName(sw.Name, i))
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("trials %v, want %v", names, want)
	}
	for name := range beforeRestart {
		if !slices.Contains(names, name) {
			t.Errorf("trial %s, created before the restart, is gone", name)
		}
	}

	// Losers were stopped early: suspended, marked with why, before their last step.
	stopped := 0
	for _, tj := range list.Items {
		why := tj.Annotations[v1alpha1.AnnotationTrialStopped]
		if why == "" {
			continue
		}
		stopped++
		if !ptr.Deref(tj.Spec.Suspend, false) {
			t.Errorf("stopped trial %s is not suspended", tj.Name)
		}
		if trials[tj.Name].steps >= sweepSteps {
			t.Errorf("trial %s was stopped only after its last step", tj.Name)
		}
	}
	if got.Status.Succeeded < 3 {
		t.Errorf("%d trials succeeded; want several, so the best among them is a real choice", got.Status.Succeeded)
	}
	if stopped == 0 || int(got.Status.Stopped) != stopped {
		t.Errorf("%d trials stopped early (status says %d); want at least one", stopped, got.Status.Stopped)
	}
	if got.Status.Succeeded+got.Status.Stopped+got.Status.Failed != sweepTrials || got.Status.Trials != sweepTrials {
		t.Errorf("status counts %+v do not add up to %d trials", got.Status, sweepTrials)
	}

	// Each finished trial's status shows its latest and best values.
	for _, tj := range list.Items {
		if s := trials[tj.Name]; s.done {
			want := map[string]string{"step": strconv.Itoa(sweepSteps), "val_loss": strconv.FormatFloat(s.final, 'g', 6, 64), "val_loss.best": strconv.FormatFloat(s.final, 'g', 6, 64)}
			if !maps.Equal(tj.Status.Metrics, want) {
				t.Errorf("trial %s metrics %v, want %v", tj.Name, tj.Status.Metrics, want)
			}
		}
	}

	// The best trial is the finished one with the lowest final val_loss.
	best, bestValue := "", math.Inf(1)
	for name, s := range trials {
		if s.done && s.final < bestValue {
			best, bestValue = name, s.final
		}
	}
	b := got.Status.BestTrial
	if b == nil || b.Name != best {
		t.Fatalf("best trial %+v, want %s with val_loss %g", b, best, bestValue)
	}
	if v, _ := strconv.ParseFloat(b.Value, 64); math.Abs(v-bestValue) > 1e-4 {
		t.Errorf("best value %s, want %g", b.Value, bestValue)
	}
	if c := apimeta.FindStatusCondition(got.Status.Conditions, v1alpha1.SweepConditionSucceeded); c == nil || c.Reason != v1alpha1.ReasonMaxTrialsReached || c.ObservedGeneration != got.Generation {
		t.Errorf("Succeeded condition %+v, want reason %s", c, v1alpha1.ReasonMaxTrialsReached)
	}
}

// trialRunning is what Kiln counts against parallelism: neither stopped nor finished.
func trialRunning(tj *v1alpha1.TrainingJob) bool {
	return tj.Annotations[v1alpha1.AnnotationTrialStopped] == "" &&
		!apimeta.IsStatusConditionTrue(tj.Status.Conditions, v1alpha1.TrainingJobSucceeded) &&
		!apimeta.IsStatusConditionTrue(tj.Status.Conditions, v1alpha1.TrainingJobFailed)
}

func trialArg(tj *v1alpha1.TrainingJob, prefix string) string {
	for _, a := range tj.Spec.Args {
		if v, ok := strings.CutPrefix(a, prefix); ok {
			return v
		}
	}
	return ""
}

// trialEndpoint is what the trial's container gets as KILN_METRICS_TOKEN and KILN_METRICS_URL.
func trialEndpoint(t *testing.T, cs *kubernetes.Clientset, tj *v1alpha1.TrainingJob) (token, url string) {
	t.Helper()
	for _, e := range tj.Spec.Env {
		switch e.Name {
		case v1alpha1.EnvMetricsURL:
			url = e.Value
		case v1alpha1.EnvMetricsToken:
			ref := e.ValueFrom.SecretKeyRef
			secret, err := cs.CoreV1().Secrets(tj.Namespace).Get(context.Background(), ref.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("trial %s token: %v", tj.Name, err)
			}
			token = string(secret.Data[ref.Key])
		}
	}
	if token == "" || url == "" {
		t.Fatalf("trial %s has no metrics endpoint in its env %v", tj.Name, tj.Spec.Env)
	}
	return token, url
}

func push(t *testing.T, url, token, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// refusesWrongToken pushes with a wrong token and with none: both get 401 and the
// trial's record does not change.
func refusesWrongToken(t *testing.T, c client.Client, tj *v1alpha1.TrainingJob, url, token string) {
	t.Helper()
	before := &v1alpha1.TrainingJob{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(tj), before); err != nil {
		t.Fatal(err)
	}
	for _, wrong := range []string{token[:len(token)-1] + "x", "", "Bearer"} {
		if code := push(t, url, wrong, "kiln-metric step=1 val_loss=-100"); code != http.StatusUnauthorized {
			t.Fatalf("push with token %q: HTTP %d, want 401", wrong, code)
		}
	}
	// The right token with a body too large or malformed changes nothing either.
	if code := push(t, url, token, strings.Repeat("kiln-metric step=1 val_loss=-100\n", 4096)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized push: HTTP %d, want 413", code)
	}
	if code := push(t, url, token, `{"val_loss": "low"}`); code != http.StatusBadRequest {
		t.Fatalf("malformed push: HTTP %d, want 400", code)
	}
	time.Sleep(time.Second)
	after := &v1alpha1.TrainingJob{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(tj), after); err != nil {
		t.Fatal(err)
	}
	if after.Annotations[v1alpha1.AnnotationTrialCurve] != before.Annotations[v1alpha1.AnnotationTrialCurve] ||
		!maps.Equal(after.Status.Metrics, before.Status.Metrics) {
		t.Fatalf("a refused push changed the trial: curve %q -> %q, metrics %v -> %v",
			before.Annotations[v1alpha1.AnnotationTrialCurve], after.Annotations[v1alpha1.AnnotationTrialCurve], before.Status.Metrics, after.Status.Metrics)
	}
}

// finishTrialPod ends the trial's process with exit code 0, as the training code would
// after its last step: the rank-0 pod's container terminates and the pod succeeds.
func finishTrialPod(t *testing.T, cs *kubernetes.Clientset, tj *v1alpha1.TrainingJob) {
	t.Helper()
	ctx := context.Background()
	pods, err := cs.CoreV1().Pods(tj.Namespace).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + tj.Status.JobName})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase != corev1.PodRunning {
			continue
		}
		now := metav1.Now()
		p.Status.Phase = corev1.PodSucceeded
		for j := range p.Status.ContainerStatuses {
			cst := &p.Status.ContainerStatuses[j]
			start := now
			if cst.State.Running != nil {
				start = cst.State.Running.StartedAt
			}
			cst.Ready, cst.Started = false, ptr.To(false)
			cst.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: start, FinishedAt: now}}
		}
		for j := range p.Status.Conditions {
			if cond := &p.Status.Conditions[j]; cond.Type == corev1.PodReady || cond.Type == corev1.ContainersReady {
				cond.Status, cond.Reason, cond.LastTransitionTime = corev1.ConditionFalse, "PodCompleted", now
			}
		}
		if _, err := cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("ending trial %s's pod: %v", tj.Name, err)
		}
	}
}

func getSweep(t *testing.T, c client.Client, sw *v1alpha1.Sweep) *v1alpha1.Sweep {
	t.Helper()
	got := &v1alpha1.Sweep{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(sw), got); err != nil {
		t.Fatal(err)
	}
	return got
}

func sweepConditions(sw *v1alpha1.Sweep) string {
	var parts []string
	for _, c := range sw.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, "; ")
}

// Bad Sweeps are refused by the API server with the field path of the mistake.
func TestSweepAdmission(t *testing.T) {
	c, ns := kilnClient(t), namespace(t)
	for _, tc := range []struct {
		name   string
		modify func(*v1alpha1.Sweep)
		want   []string
	}{
		{"empty search space", func(s *v1alpha1.Sweep) { s.Spec.Parameters = nil }, []string{"spec.parameters"}},
		{"min above max", func(s *v1alpha1.Sweep) { s.Spec.Parameters[0].Min = "2" }, []string{"spec.parameters[0].min", "min must not be greater than max"}},
		{"log scale with min 0", func(s *v1alpha1.Sweep) { s.Spec.Parameters[1].Min = "0" }, []string{"spec.parameters[1].min", "log scale needs min > 0"}},
		{"log scale with negative min", func(s *v1alpha1.Sweep) { s.Spec.Parameters[1].Min = "-0.1" }, []string{"spec.parameters[1].min", "log scale needs min > 0"}},
		{"more parallelism than maxTrials", func(s *v1alpha1.Sweep) { s.Spec.Parallelism = 13 }, []string{"spec.parallelism", "must not exceed maxTrials"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw := sweepSpec(ns, "bad")
			tc.modify(sw)
			err := c.Create(context.Background(), sw)
			if err == nil {
				t.Fatal("created; want it refused")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// sweepsIn decodes the Sweeps of an example file.
func sweepsIn(t *testing.T, file string) []*v1alpha1.Sweep {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []*v1alpha1.Sweep
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var u unstructured.Unstructured
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if u.GroupVersionKind() != v1alpha1.GroupVersion.WithKind("Sweep") {
			continue
		}
		sw := &v1alpha1.Sweep{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, sw); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if errs := validation.Sweep(sw); len(errs) > 0 {
			t.Fatalf("%s: %v", file, errs.ToAggregate())
		}
		out = append(out, sw)
	}
}

// waitForSweepExample follows an example Sweep to its end. On simulated nodes the trial
// code does not run, so no metrics arrive: every trial succeeds without a value and the
// sweep ends at maxTrials, having run all its trials, parallelism at a time.
func waitForSweepExample(t *testing.T, c client.Client, sw *v1alpha1.Sweep) {
	t.Helper()
	framework.Eventually(t, 3*timeout, func() error {
		got := getSweep(t, c, sw)
		if got.Status.State != v1alpha1.SweepSucceeded {
			return fmt.Errorf("sweep %s: state %q; %s", sw.Name, got.Status.State, sweepConditions(got))
		}
		if got.Status.Trials != sw.Spec.MaxTrials || got.Status.Succeeded != sw.Spec.MaxTrials {
			return fmt.Errorf("sweep %s ended with %+v, want all %d trials succeeded", sw.Name, got.Status, sw.Spec.MaxTrials)
		}
		return nil
	})
}

// A Sweep whose template names a parameter it does not define passes the CRD's rules
// (CEL cannot see inside strings); the admission webhook refuses it and says where.
func TestSweepWithAnUnknownParameterIsRefusedAtAdmission(t *testing.T) {
	c, ns := kilnClient(t), namespace(t)
	sw := sweepSpec(ns, "typo")
	sw.Spec.TrialTemplate.Args = []string{"--momentum=${params.momentum}"}
	err := c.Create(context.Background(), sw)
	wantInvalid(t, err, "spec.trialTemplate.args[0]")
	if !strings.Contains(err.Error(), "${params.momentum}") {
		t.Errorf("refusal %q does not name the parameter", err)
	}
}

// The Python and shell snippets of docs/sweep.md, run as a trial would run them (with the
// trial's KILN_METRICS_URL and KILN_METRICS_TOKEN), report to Kiln as documented.
func TestSweepDocExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(framework.RepoRoot(), "docs", "sweep.md"))
	if err != nil {
		t.Fatal(err)
	}
	c, ns := kilnClient(t), namespace(t)
	cs := clientset(t)
	sw := sweepSpec(ns, "doc")
	sw.Spec.MaxTrials, sw.Spec.Parallelism, sw.Spec.EarlyStopping = 2, 2, nil
	create(t, c, sw)
	for i, tc := range []struct {
		lang, curve string
		metrics     map[string]string
		run         func(code string) *exec.Cmd
	}{
		{"python", "1=1,2=0.5,3=0.3333333333333333", map[string]string{"step": "3", "val_loss": "0.333333", "val_loss.best": "0.333333"},
			func(code string) *exec.Cmd { return exec.Command("python3", "-c", code) }},
		{"shell", "1=0.9,2=0.7", map[string]string{"step": "2", "val_loss": "0.7", "accuracy": "0.81", "val_loss.best": "0.7"},
			func(code string) *exec.Cmd { return exec.Command("sh", "-c", code) }},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			code := docSnippet(t, string(doc), tc.lang)
			tj := waitFor(t, c, &v1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.TrialName(sw.Name, i)}}, inState(v1alpha1.StateRunning))
			token, url := trialEndpoint(t, cs, tj)
			cmd := tc.run(code)
			cmd.Env = append(os.Environ(), v1alpha1.EnvMetricsURL+"="+url, v1alpha1.EnvMetricsToken+"="+token)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s example: %v\n%s", tc.lang, err, out)
			}
			if !strings.Contains(string(out), "kiln-metric step=1 ") {
				t.Errorf("the %s example printed no kiln-metric line:\n%s", tc.lang, out)
			}
			waitFor(t, c, tj, func(tj *v1alpha1.TrainingJob) error {
				if got := tj.Annotations[v1alpha1.AnnotationTrialCurve]; got != tc.curve {
					return fmt.Errorf("curve %q, want %q", got, tc.curve)
				}
				if !maps.Equal(tj.Status.Metrics, tc.metrics) {
					return fmt.Errorf("metrics %v, want %v", tj.Status.Metrics, tc.metrics)
				}
				return nil
			})
		})
	}
}

// docSnippet is the fenced code block after <!-- trial-example: LANG -->.
func docSnippet(t *testing.T, doc, lang string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "<!-- trial-example: "+lang+" -->")
	if !ok {
		t.Fatalf("docs/sweep.md has no %s example", lang)
	}
	_, rest, _ = strings.Cut(rest, "```"+map[string]string{"python": "python", "shell": "sh"}[lang]+"\n")
	code, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("docs/sweep.md: the %s example is not a closed code block", lang)
	}
	return code
}

// The stdout protocol end to end: kwok serves every simulated container's log from one
// file, so the test writes the trial's kiln-metric lines there and Kiln must read them
// from the rank-0 pod's log, and once more after the trial finished.
func TestSweepMetricsFromLogs(t *testing.T) {
	logs := filepath.Join(plane.Dir, "simulated-container.log")
	original, err := os.ReadFile(logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(logs, original, 0o644); err != nil {
			t.Error(err)
		}
	})
	c, ns := kilnClient(t), namespace(t)
	cs := clientset(t)
	sw := sweepSpec(ns, "stdout")
	sw.Spec.MaxTrials, sw.Spec.Parallelism, sw.Spec.EarlyStopping = 1, 1, nil
	create(t, c, sw)
	tj := waitFor(t, c, &v1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.TrialName(sw.Name, 0)}}, inState(v1alpha1.StateRunning))

	line := func(text string) string { return "2026-01-01T00:00:01.000000000Z stdout F " + text + "\n" }
	write := func(lines ...string) {
		if err := os.WriteFile(logs, []byte(string(original)+strings.Join(lines, "")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(line("epoch 1 done"), line("[rank0]: kiln-metric step=1 val_loss=0.8"), line("kiln-metric val_loss=0.6"))
	waitFor(t, c, tj, func(tj *v1alpha1.TrainingJob) error {
		if got := tj.Annotations[v1alpha1.AnnotationTrialCurve]; got != "1=0.8,2=0.6" {
			return fmt.Errorf("curve %q", got)
		}
		return nil
	})

	// A line printed just before the process exits still counts.
	write(line("kiln-metric step=1 val_loss=0.8"), line("kiln-metric step=2 val_loss=0.6"), line("kiln-metric step=3 val_loss=0.55"))
	finishTrialPod(t, cs, tj)
	framework.Eventually(t, timeout, func() error {
		got := getSweep(t, c, sw)
		if got.Status.State != v1alpha1.SweepSucceeded || got.Status.BestTrial == nil || got.Status.BestTrial.Value != "0.55" {
			return fmt.Errorf("state %s, best %+v; %s", got.Status.State, got.Status.BestTrial, sweepConditions(got))
		}
		return nil
	})
	waitFor(t, c, tj, func(tj *v1alpha1.TrainingJob) error {
		if tj.Annotations[v1alpha1.AnnotationTrialLogRead] == "" {
			return fmt.Errorf("the finished trial's log is not marked read: %v", tj.Annotations)
		}
		return nil
	})
}

// A sweep ends at its goal (stopping the trials still running) and fails after more than
// maxFailedTrials failed trials.
func TestSweepEnds(t *testing.T) {
	c, cs := kilnClient(t), clientset(t)
	t.Run("goal", func(t *testing.T) {
		ns := namespace(t)
		sw := sweepSpec(ns, "goal")
		sw.Spec.MaxTrials, sw.Spec.Parallelism, sw.Spec.EarlyStopping = 6, 2, nil
		sw.Spec.Objective.Goal = "0.2"
		create(t, c, sw)
		first := waitFor(t, c, &v1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.TrialName(sw.Name, 0)}}, inState(v1alpha1.StateRunning))
		second := waitFor(t, c, &v1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.TrialName(sw.Name, 1)}}, inState(v1alpha1.StateRunning))
		token, url := trialEndpoint(t, cs, first)
		if code := push(t, url, token, `{"step": 1, "val_loss": 0.15}`); code != http.StatusNoContent {
			t.Fatalf("push: HTTP %d", code)
		}
		waitFor(t, c, first, func(tj *v1alpha1.TrainingJob) error {
			if tj.Annotations[v1alpha1.AnnotationTrialCurve] != "1=0.15" {
				return fmt.Errorf("curve %q", tj.Annotations[v1alpha1.AnnotationTrialCurve])
			}
			return nil
		})
		finishTrialPod(t, cs, first)
		framework.Eventually(t, timeout, func() error {
			got := getSweep(t, c, sw)
			cond := apimeta.FindStatusCondition(got.Status.Conditions, v1alpha1.SweepConditionSucceeded)
			if cond == nil || cond.Reason != v1alpha1.ReasonGoalReached {
				return fmt.Errorf("conditions: %s", sweepConditions(got))
			}
			if got.Status.BestTrial == nil || got.Status.BestTrial.Name != first.Name || got.Status.Trials != 2 {
				return fmt.Errorf("best %+v, %d trials created", got.Status.BestTrial, got.Status.Trials)
			}
			return nil
		})
		waitFor(t, c, second, func(tj *v1alpha1.TrainingJob) error {
			if !strings.Contains(tj.Annotations[v1alpha1.AnnotationTrialStopped], "goal") || !ptr.Deref(tj.Spec.Suspend, false) {
				return fmt.Errorf("the other trial runs on: stopped %q, suspend %v", tj.Annotations[v1alpha1.AnnotationTrialStopped], tj.Spec.Suspend)
			}
			return nil
		})
	})
	t.Run("too many failures", func(t *testing.T) {
		ns := namespace(t)
		sw := sweepSpec(ns, "failing")
		sw.Spec.MaxTrials, sw.Spec.Parallelism, sw.Spec.EarlyStopping, sw.Spec.MaxFailedTrials = 6, 1, nil, ptr.To[int32](1)
		sw.Spec.TrialTemplate.PodTemplate.Annotations = map[string]string{simRunTime: "100ms", simExitCode: "3"}
		sw.Spec.TrialTemplate.Restart.MaxRestarts = ptr.To[int32](0)
		create(t, c, sw)
		framework.Eventually(t, 2*timeout, func() error {
			got := getSweep(t, c, sw)
			cond := apimeta.FindStatusCondition(got.Status.Conditions, v1alpha1.SweepConditionFailed)
			if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != v1alpha1.ReasonTooManyFailedTrials {
				return fmt.Errorf("conditions: %s", sweepConditions(got))
			}
			if got.Status.Failed != 2 || got.Status.Trials != 2 {
				return fmt.Errorf("%d failed of %d trials, want 2 of 2", got.Status.Failed, got.Status.Trials)
			}
			return nil
		})
	})
}

// kubectl kiln sweep creates a Sweep from a manifest, and status sweep/NAME shows its
// trials, the best marked.
func TestCLISweep(t *testing.T) {
	k := buildKiln(t)
	c, ns := kilnClient(t), namespace(t)
	kubeconfig := planeKubeconfig(t)
	kiln := func(args ...string) (string, error) {
		return k.run(t, append([]string{"--kubeconfig=" + kubeconfig, "-n", ns}, args...)...)
	}
	out, err := kiln("sweep", "-f", filepath.Join(framework.RepoRoot(), "examples", "sweep-tpe.yaml"))
	if err != nil || !strings.Contains(out, "sweep.kiln.dev/line-fit-tuning created") {
		t.Fatalf("sweep -f: %v\n%s", err, out)
	}
	sw := &v1alpha1.Sweep{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "line-fit-tuning"}, Spec: v1alpha1.SweepSpec{MaxTrials: 6}}
	waitForSweepExample(t, c, sw)
	for _, args := range [][]string{{"status", "sweep/line-fit-tuning"}, {"sweep", "status", "line-fit-tuning"}} {
		out, err = kiln(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		for _, want := range []string{"Sweep " + ns + "/line-fit-tuning: Succeeded, 6 of 6 trials created", "TRIAL", "VAL_LOSS", "line-fit-tuning-5", "MaxTrialsReached"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v lacks %q:\n%s", args, want, out)
			}
		}
	}
	if out, err := kiln("sweep", "-f", filepath.Join(framework.RepoRoot(), "internal", "cli", "testdata", "sweep-unknown-param.yaml")); err == nil || !strings.Contains(out, "spec.trialTemplate.args[1]") {
		t.Errorf("an unknown parameter was not refused with its field path: %v\n%s", err, out)
	}
}
