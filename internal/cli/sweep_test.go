package cli

import (
	"bytes"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/api/v1alpha1"
)

func TestSweepDryRun(t *testing.T) {
	out, errOut, err := run(t, "sweep", "-f", "../../examples/sweep-tpe.yaml", "-n", "research", "--dry-run=client", "-o", "yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	golden(t, "sweep-dry-run.golden.yaml", out)
}

func TestSweepBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sweep"}, "-f FILE is required"},
		{[]string{"sweep", "-f", "testdata/sweep-unknown-param.yaml", "--dry-run=client"}, "spec.trialTemplate.args[1]"},
		{[]string{"sweep", "-f", "testdata/pytorch.yaml", "--dry-run=client"}, "want a kiln.dev/v1alpha1 Sweep"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, _, err := run(t, tc.args...)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestSweepStatusTable(t *testing.T) {
	sw := &v1alpha1.Sweep{
		ObjectMeta: metav1.ObjectMeta{Name: "tune", Namespace: "research", CreationTimestamp: metav1.NewTime(t0)},
		Spec: v1alpha1.SweepSpec{
			Parameters: []v1alpha1.SweepParameter{
				{Name: "lr", Type: v1alpha1.ParameterFloat, Min: "1e-4", Max: "0.1", Scale: v1alpha1.ScaleLog},
				{Name: "optimizer", Type: v1alpha1.ParameterCategorical, Values: []string{"adam", "sgd"}},
			},
			Objective: v1alpha1.SweepObjective{Metric: "val_loss", Direction: v1alpha1.Minimize, Goal: "0.1"},
			Algorithm: v1alpha1.AlgorithmTPE, Seed: 7, MaxTrials: 12, Parallelism: 2,
		},
		Status: v1alpha1.SweepStatus{
			State: v1alpha1.SweepRunning, Trials: 4, Running: 1, Succeeded: 2, Stopped: 1,
			BestTrial: &v1alpha1.BestTrial{Name: "tune-2", Index: 2, Value: "0.21", Parameters: map[string]string{"lr": "0.003", "optimizer": "adam"}},
			Conditions: []metav1.Condition{{Type: v1alpha1.SweepConditionRunning, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonTrialsRunning,
				Message: "1 running, 2 succeeded, 1 stopped early, 0 failed; 4 of 12 trials created; best val_loss 0.21 by trial tune-2"}},
		},
	}
	trial := func(i int, state v1alpha1.TrainingJobState, params, curve, stopped string) v1alpha1.TrainingJob {
		tj := v1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{
			Name:        "tune-" + string(rune('0'+i)),
			Labels:      map[string]string{v1alpha1.LabelTrialIndex: string(rune('0' + i))},
			Annotations: map[string]string{v1alpha1.AnnotationTrialParameters: params},
		}, Status: v1alpha1.TrainingJobStatus{State: state}}
		if curve != "" {
			tj.Annotations[v1alpha1.AnnotationTrialCurve] = curve
		}
		if stopped != "" {
			tj.Annotations[v1alpha1.AnnotationTrialStopped] = stopped
		}
		return tj
	}
	trials := []v1alpha1.TrainingJob{
		trial(0, "Succeeded", `{"lr":"0.0001","optimizer":"sgd"}`, "1=0.9,2=0.6,3=0.45", ""),
		trial(1, "Suspended", `{"lr":"0.09","optimizer":"sgd"}`, "1=1.4,2=1.3", "at step 2 its best 1.3 is worse than the median 0.7 of 2 other trials"),
		trial(2, "Succeeded", `{"lr":"0.003","optimizer":"adam"}`, "1=0.5,2=0.3,3=0.21", ""),
		trial(3, "Running", `{"lr":"0.01","optimizer":"adam"}`, "", ""),
	}
	var out bytes.Buffer
	printSweep(&out, sw, trials, t0.Add(25*time.Minute))
	golden(t, "sweep-status.golden.txt", out.String())
}
