package notebook

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/api/v1alpha1"
)

func TestStateOf(t *testing.T) {
	cond := func(typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason}
	}
	const yes, no = metav1.ConditionTrue, metav1.ConditionFalse
	ready, stopped := v1alpha1.NotebookConditionReady, v1alpha1.NotebookConditionStopped
	tests := []struct {
		name  string
		conds []metav1.Condition
		want  v1alpha1.NotebookState
	}{
		{name: "nothing yet", want: v1alpha1.NotebookPending},
		{name: "volume missing", conds: []metav1.Condition{cond(ready, no, v1alpha1.ReasonVolumeNotFound)}, want: v1alpha1.NotebookPending},
		{name: "name taken", conds: []metav1.Condition{cond(ready, no, v1alpha1.ReasonNameConflict)}, want: v1alpha1.NotebookPending},
		{name: "pod starting", conds: []metav1.Condition{cond(ready, no, v1alpha1.ReasonPodStarting)}, want: v1alpha1.NotebookStarting},
		{name: "ready", conds: []metav1.Condition{cond(ready, yes, v1alpha1.ReasonPodReady)}, want: v1alpha1.NotebookReady},
		{name: "started again", conds: []metav1.Condition{cond(ready, yes, v1alpha1.ReasonPodReady), cond(stopped, no, v1alpha1.ReasonStarted)}, want: v1alpha1.NotebookReady},
		{name: "stopped by spec", conds: []metav1.Condition{cond(ready, no, v1alpha1.ReasonStoppedBySpec), cond(stopped, yes, v1alpha1.ReasonStoppedBySpec)}, want: v1alpha1.NotebookStopped},
		{name: "culled", conds: []metav1.Condition{cond(ready, no, v1alpha1.ReasonCulled), cond(stopped, yes, v1alpha1.ReasonCulled)}, want: v1alpha1.NotebookCulled},
	}
	for _, tc := range tests {
		if got := stateOf(tc.conds); got != tc.want {
			t.Errorf("%s: state %s, want %s", tc.name, got, tc.want)
		}
	}
}
