package render

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestNames(t *testing.T) {
	long := strings.Repeat("a", 63) // the longest TrainingJob name
	cases := []struct {
		name string
		got  string
		want string
	}{
		{"job", JobName("train", 0), "train-a0"},
		{"restart", JobName("train", 12), "train-a12"},
		{"fits exactly", JobName(strings.Repeat("b", 49), 1), strings.Repeat("b", 49) + "-a1"},
		{"one too long", JobName(strings.Repeat("b", 50), 1), strings.Repeat("b", 40) + "-c01a9baa-a1"},
		{"longest name", JobName(long, 3), strings.Repeat("a", 40) + "-7d3e74a0-a3"},
		{"checkpoints", PVCName("train", "checkpoints"), "train-checkpoints"},
		{"long checkpoints", PVCName(long, "checkpoints"), strings.Repeat("a", 42) + "-7d3e74a0-checkpoints"},
		{"ssh", SSHSecretName("train"), "train-ssh"},
		{"hostfile", HostfileName(JobName(long, 7)), strings.Repeat("a", 40) + "-7d3e74a0-a7-hostfile"},
		{"cut just after a dash", JobName(strings.Repeat("c", 39)+"-"+strings.Repeat("d", 20), 0), strings.Repeat("c", 39) + "-4f2edcb0-a0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("name (-want +got):\n%s", diff)
			}
			for _, msg := range validation.IsDNS1035Label(tc.got) {
				t.Errorf("%q: %s", tc.got, msg)
			}
		})
	}
}

func TestJobNamesLeaveRoomForPodHostNames(t *testing.T) {
	long := strings.Repeat("x", 63)
	for attempt := range int32(200) {
		n := JobName(long, attempt)
		if len(n) > MaxJobNameLength {
			t.Fatalf("attempt %d: %q is %d characters", attempt, n, len(n))
		}
		// Indexes up to ten digits still make valid pod host names.
		if msgs := validation.IsDNS1123Label(n + "-9999999999"); len(msgs) > 0 {
			t.Fatalf("attempt %d: %v", attempt, msgs)
		}
	}
}

func TestNamesNeverCollide(t *testing.T) {
	// Long names that differ only past the cut must still get different names, for
	// every attempt and purpose.
	seen := map[string]string{}
	prefix := strings.Repeat("p", 55)
	for _, base := range []string{prefix + "one", prefix + "two", prefix + "-one", "short", "short-a1"} {
		for attempt := range int32(20) {
			for _, n := range []string{JobName(base, attempt), HostfileName(JobName(base, attempt))} {
				if other, dup := seen[n]; dup {
					t.Fatalf("%q from %q collides with one from %q", n, base, other)
				}
				seen[n] = base
			}
		}
		for _, n := range []string{PVCName(base, "checkpoints"), PVCName(base, "output"), SSHSecretName(base)} {
			if other, dup := seen[n]; dup {
				t.Fatalf("%q from %q collides with one from %q", n, base, other)
			}
			seen[n] = base
		}
	}
}
