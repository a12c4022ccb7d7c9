package trainingjob

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"

	"kiln.dev/kiln/api/v1alpha1"
)

func cond(t string, status metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: t, Status: status, Reason: reason}
}

func TestStateOf(t *testing.T) {
	const yes, no = metav1.ConditionTrue, metav1.ConditionFalse
	tests := []struct {
		name  string
		conds []metav1.Condition
		want  v1alpha1.TrainingJobState
	}{
		{name: "nothing yet", want: v1alpha1.StatePending},
		{name: "no shape fits", conds: []metav1.Condition{cond(v1alpha1.TrainingJobAdmitted, no, v1alpha1.ReasonNoFittingShape)}, want: v1alpha1.StatePending},
		{name: "workers starting", conds: []metav1.Condition{
			cond(v1alpha1.TrainingJobAdmitted, yes, v1alpha1.ReasonShapeChosen),
			cond(v1alpha1.TrainingJobRunning, no, v1alpha1.ReasonWorkersStarting),
		}, want: v1alpha1.StatePending},
		{name: "running", conds: []metav1.Condition{
			cond(v1alpha1.TrainingJobAdmitted, yes, v1alpha1.ReasonShapeChosen),
			cond(v1alpha1.TrainingJobRunning, yes, v1alpha1.ReasonAllWorkersRunning),
		}, want: v1alpha1.StateRunning},
		{name: "restarting", conds: []metav1.Condition{
			cond(v1alpha1.TrainingJobRunning, no, v1alpha1.ReasonWorkerFailed),
			cond(v1alpha1.TrainingJobRestarting, yes, v1alpha1.ReasonWorkerFailed),
		}, want: v1alpha1.StateRestarting},
		{name: "suspended by spec", conds: []metav1.Condition{
			cond(v1alpha1.TrainingJobSuspended, yes, v1alpha1.ReasonSuspendedBySpec),
		}, want: v1alpha1.StateSuspended},
		{name: "queued", conds: []metav1.Condition{
			cond(v1alpha1.TrainingJobAdmitted, no, v1alpha1.ReasonWaitingForQueue),
			cond(v1alpha1.TrainingJobSuspended, yes, v1alpha1.ReasonWaitingForQueue),
		}, want: v1alpha1.StateQueued},
		{name: "waiting for capacity", conds: []metav1.Condition{
			cond(v1alpha1.TrainingJobAdmitted, no, v1alpha1.ReasonWaitingForCapacity),
			cond(v1alpha1.TrainingJobSuspended, yes, v1alpha1.ReasonWaitingForCapacity),
		}, want: v1alpha1.StateQueued},
		{name: "refused", conds: []metav1.Condition{
			cond(v1alpha1.TrainingJobAdmitted, no, v1alpha1.ReasonRefused),
			cond(v1alpha1.TrainingJobSuspended, no, v1alpha1.ReasonRefused),
		}, want: v1alpha1.StatePending},
		{name: "resumed", conds: []metav1.Condition{
			cond(v1alpha1.TrainingJobSuspended, no, v1alpha1.ReasonResumed),
			cond(v1alpha1.TrainingJobRunning, yes, v1alpha1.ReasonAllWorkersRunning),
		}, want: v1alpha1.StateRunning},
		{name: "succeeded", conds: []metav1.Condition{
			cond(v1alpha1.TrainingJobRunning, no, v1alpha1.ReasonCompleted),
			cond(v1alpha1.TrainingJobSucceeded, yes, v1alpha1.ReasonCompleted),
		}, want: v1alpha1.StateSucceeded},
		{name: "failed wins", conds: []metav1.Condition{
			cond(v1alpha1.TrainingJobSuspended, yes, v1alpha1.ReasonSuspendedBySpec),
			cond(v1alpha1.TrainingJobFailed, yes, v1alpha1.ReasonRestartsExhausted),
		}, want: v1alpha1.StateFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stateOf(tt.conds); got != tt.want {
				t.Errorf("stateOf = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRecordTransitions(t *testing.T) {
	const yes, no = metav1.ConditionTrue, metav1.ConditionFalse
	withMsg := func(c metav1.Condition, msg string) metav1.Condition { c.Message = msg; return c }
	tests := []struct {
		name          string
		before, after []metav1.Condition
		want          []string
	}{
		{
			name:  "a condition first recorded as false is no news, except Admitted",
			after: []metav1.Condition{withMsg(cond(v1alpha1.TrainingJobAdmitted, no, v1alpha1.ReasonNoFittingShape), "needs 64 GPUs"), cond(v1alpha1.TrainingJobRunning, no, v1alpha1.ReasonWorkersStarting)},
			want:  []string{"Warning NoFittingShape needs 64 GPUs"},
		},
		{
			name:   "unchanged conditions say nothing",
			before: []metav1.Condition{withMsg(cond(v1alpha1.TrainingJobRunning, yes, v1alpha1.ReasonAllWorkersRunning), "all 2 workers")},
			after:  []metav1.Condition{withMsg(cond(v1alpha1.TrainingJobRunning, yes, v1alpha1.ReasonAllWorkersRunning), "all 2 workers")},
		},
		{
			name:   "each restart is news, though Restarting stays true",
			before: []metav1.Condition{withMsg(cond(v1alpha1.TrainingJobRestarting, yes, v1alpha1.ReasonWorkerFailed), "worker 0 exited; attempt 2")},
			after:  []metav1.Condition{withMsg(cond(v1alpha1.TrainingJobRestarting, yes, v1alpha1.ReasonWorkerFailed), "worker 1 exited; attempt 3")},
			want:   []string{"Warning WorkerFailed worker 1 exited; attempt 3"},
		},
		{
			name: "finishing reports the success, not the end of Running",
			before: []metav1.Condition{
				withMsg(cond(v1alpha1.TrainingJobRunning, yes, v1alpha1.ReasonAllWorkersRunning), "all 1 workers"),
			},
			after: []metav1.Condition{
				withMsg(cond(v1alpha1.TrainingJobRunning, no, v1alpha1.ReasonCompleted), "done"),
				withMsg(cond(v1alpha1.TrainingJobSucceeded, yes, v1alpha1.ReasonCompleted), "done"),
			},
			want: []string{"Normal Completed done"},
		},
		{
			name:   "a waiting job's changing reason is no news",
			before: []metav1.Condition{withMsg(cond(v1alpha1.TrainingJobAdmitted, no, v1alpha1.ReasonWaitingForCapacity), "largest free block is 4")},
			after:  []metav1.Condition{withMsg(cond(v1alpha1.TrainingJobAdmitted, no, v1alpha1.ReasonWaitingForCapacity), "largest free block is 0")},
		},
		{
			name:  "a refusal warns",
			after: []metav1.Condition{withMsg(cond(v1alpha1.TrainingJobAdmitted, no, v1alpha1.ReasonRefused), "refused: too big")},
			want:  []string{"Warning Refused refused: too big"},
		},
		{
			name:   "resuming is news",
			before: []metav1.Condition{withMsg(cond(v1alpha1.TrainingJobSuspended, yes, v1alpha1.ReasonSuspendedBySpec), "suspended")},
			after:  []metav1.Condition{withMsg(cond(v1alpha1.TrainingJobSuspended, no, v1alpha1.ReasonResumed), "resumed")},
			want:   []string{"Normal Resumed resumed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := events.NewFakeRecorder(10)
			r := &Reconciler{Recorder: rec}
			tj := &v1alpha1.TrainingJob{Status: v1alpha1.TrainingJobStatus{Conditions: tt.after}}
			r.recordTransitions(tj, tt.before)
			close(rec.Events)
			var got []string
			for e := range rec.Events {
				got = append(got, e)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// The first reconcile of a TrainingJob writes no status that only says what its new Job says.
func TestOnlyTheNewJob(t *testing.T) {
	shape := &v1alpha1.ShapeStatus{Nodes: 2, ProcessesPerNode: 4, GPUsPerNode: 4, Summary: "2x4"}
	newJob := v1alpha1.TrainingJobStatus{Shape: shape, JobName: "j-0", ObservedGeneration: 1, State: v1alpha1.StatePending}
	withCondition := *newJob.DeepCopy()
	withCondition.Conditions = []metav1.Condition{cond(v1alpha1.TrainingJobSuspended, metav1.ConditionTrue, v1alpha1.ReasonSuspendedBySpec)}
	tests := []struct {
		name          string
		before, after v1alpha1.TrainingJobStatus
		want          bool
	}{
		{name: "the shape and name of the Job just made", after: newJob, want: true},
		{name: "and something to tell besides", after: withCondition, want: false},
		{name: "the shape was recorded before", before: v1alpha1.TrainingJobStatus{Shape: shape}, after: newJob, want: false},
		{name: "no shape chosen", after: v1alpha1.TrainingJobStatus{ObservedGeneration: 1}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := onlyTheNewJob(&tt.before, &tt.after); got != tt.want {
				t.Errorf("onlyTheNewJob = %v, want %v", got, tt.want)
			}
		})
	}
}

// A starting gang's news may wait for the news that follows; anything else is written at once.
func TestOnlyStarting(t *testing.T) {
	shape := &v1alpha1.ShapeStatus{Nodes: 2, ProcessesPerNode: 4, GPUsPerNode: 4, Summary: "2x4"}
	admitted := cond(v1alpha1.TrainingJobAdmitted, metav1.ConditionTrue, v1alpha1.ReasonPlaced)
	starting := cond(v1alpha1.TrainingJobRunning, metav1.ConditionFalse, v1alpha1.ReasonWorkersStarting)
	running := cond(v1alpha1.TrainingJobRunning, metav1.ConditionTrue, v1alpha1.ReasonAllWorkersRunning)
	waiting := cond(v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonWaitingForCapacity)
	status := func(active, ready int32, conds ...metav1.Condition) v1alpha1.TrainingJobStatus {
		return v1alpha1.TrainingJobStatus{Shape: shape, JobName: "j-a0", Active: active, Ready: ready, Conditions: conds}
	}
	tests := []struct {
		name          string
		before, after v1alpha1.TrainingJobStatus
		want          bool
	}{
		{name: "admitted, workers starting", before: v1alpha1.TrainingJobStatus{}, after: status(0, 0, admitted, starting), want: true},
		{name: "workers created", before: status(0, 0, admitted, starting), after: status(2, 0, admitted, starting), want: true},
		{name: "one worker ready", before: status(2, 0, admitted, starting), after: status(2, 1, admitted, starting), want: true},
		{name: "admitted after waiting", before: status(0, 0, waiting), after: status(0, 0, admitted, starting), want: true},
		{name: "all running", before: status(2, 1, admitted, starting), after: status(2, 2, admitted, running), want: false},
		{name: "waiting for capacity", before: v1alpha1.TrainingJobStatus{}, after: status(0, 0, waiting), want: false},
		{name: "a restart", before: status(2, 2, admitted, running), after: func() v1alpha1.TrainingJobStatus {
			s := status(0, 0, admitted, running)
			s.Restarts = 1
			return s
		}(), want: false},
		{name: "nothing changed", before: status(2, 2, admitted, running), after: status(2, 2, admitted, running), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := onlyStarting(&tt.before, &tt.after); got != tt.want {
				t.Errorf("onlyStarting = %v, want %v", got, tt.want)
			}
		})
	}
}

// A starting gang's status waits statusLag from when it first differed, then is written.
func TestStatusLag(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Now())
	r := &Reconciler{Clock: clk}
	key := types.NamespacedName{Namespace: "ns", Name: "j"}
	if got := r.lag(key); got != statusLag {
		t.Errorf("first sight: wait %v, want %v", got, statusLag)
	}
	clk.SetTime(clk.Now().Add(statusLag / 2))
	if got := r.lag(key); got != statusLag/2 {
		t.Errorf("halfway: wait %v, want %v", got, statusLag/2)
	}
	clk.SetTime(clk.Now().Add(statusLag))
	if got := r.lag(key); got != 0 {
		t.Errorf("after statusLag: wait %v, want 0", got)
	}
	r.lagged(key)
	if got := r.lag(key); got != statusLag {
		t.Errorf("after a write: wait %v, want %v again", got, statusLag)
	}
}
