package push

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The queue holds one request per object, the newest, and refuses new objects
// once MaxQueued wait.
func TestEnqueue(t *testing.T) {
	d := &Deployer{Options: Options{MaxQueued: 2}}
	steps := []struct {
		target, commit string
		err            error
	}{
		{"a", "1", nil}, {"a", "2", nil}, {"b", "1", nil},
		{"c", "1", ErrQueueFull},
		{"b", "2", nil}, // waiting already: replaced, not refused
	}
	for i, s := range steps {
		err := d.Enqueue(Request{Target: target(s.target, "https://g.example/r", "main"), Commit: s.commit})
		if !errors.Is(err, s.err) {
			t.Errorf("step %d: Enqueue(%s@%s) = %v, want %v", i, s.target, s.commit, err, s.err)
		}
	}
	got := map[string]string{}
	for k, r := range d.pending {
		got[k] = r.Commit
	}
	if diff := cmp.Diff(map[string]string{"modelserver/team/a": "2", "modelserver/team/b": "2"}, got); diff != "" {
		t.Errorf("waiting (-want +got):\n%s", diff)
	}
	if n := d.queue.Len(); n != 2 {
		t.Errorf("queue length %d, want 2 (one entry per object)", n)
	}
}
