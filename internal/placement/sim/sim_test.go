package sim

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kiln.dev/kiln/internal/placement"
)

// loadTrace reads the openb trace, or skips when it is not there.
func loadTrace(tb testing.TB) *Trace {
	tb.Helper()
	dir, err := FindOpenB()
	if err != nil {
		tb.Skipf("openb trace not found, skipping (%v)", err)
	}
	t, err := LoadOpenB(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// BenchmarkOpenB replays the whole openb trace under the three policies, ten
// seeds each, and reports the medians (docs/benchmarks.md). One op is 30
// replays of the whole trace.
func BenchmarkOpenB(b *testing.B) {
	t := loadTrace(b)
	seeds := Seeds(10)
	for _, m := range OpenBModes {
		name, _, _ := strings.Cut(m.Name, " ")
		b.Run(name, func(b *testing.B) {
			var rows []OpenBRow
			for b.Loop() {
				rows = OpenB(t, []OpenBMode{m}, seeds)
			}
			for _, r := range rows {
				b.ReportMetric(100*r.Fill.AllArrived, r.Policy.String()+"-alloc-%")
				b.ReportMetric(100*r.Fill.AtFirstFailure, r.Policy.String()+"-first-fail-%")
			}
			var out strings.Builder
			if err := WriteOpenB(&out, t, seeds, rows); err != nil {
				b.Fatal(err)
			}
			b.Log("\n" + out.String())
		})
	}
}

// BenchmarkGangWorkload runs the synthetic stream of distributed jobs under
// Kiln and both no-gang baselines, ten seeds each, and fails if Kiln ever
// holds part of a gang or deadlocks. One op is 30 runs of 1,000 jobs.
func BenchmarkGangWorkload(b *testing.B) {
	seeds := Seeds(10)
	var rows []GangRow
	for b.Loop() {
		rows = Gangs(seeds)
	}
	for i, r := range rows[0].Runs {
		if r.PartialGangs != 0 || r.Deadlocks != 0 || r.NeverStarted != 0 || r.Refused != 0 {
			b.Fatalf("kiln, seed %d: %d partial gangs, %d deadlocks, %d jobs never started, %d refused; want none",
				seeds[i], r.PartialGangs, r.Deadlocks, r.NeverStarted, r.Refused)
		}
	}
	keys := []string{"kiln", "fifo", "scrambled"}
	for i, r := range rows {
		b.ReportMetric(r.Result.MeanWait, keys[i]+"-delay-h")
		b.ReportMetric(100*r.Result.Utilisation, keys[i]+"-util-%")
		b.ReportMetric(float64(r.Result.PartialGangs), keys[i]+"-partial-gangs")
		b.ReportMetric(float64(r.Result.Deadlocks), keys[i]+"-deadlocks")
		if i > 0 {
			b.ReportMetric(rows[0].Result.MeanWait/r.Result.MeanWait, "delay-kiln/"+keys[i])
		}
	}
	var out strings.Builder
	if err := WriteGangs(&out, seeds, rows); err != nil {
		b.Fatal(err)
	}
	b.Log("\n" + out.String())
}

func TestFindOpenB(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(OpenBDirEnv, dir)
	if _, err := FindOpenB(); err == nil || !strings.Contains(err.Error(), "holds no "+nodeFile) {
		t.Errorf("empty folder: error %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, nodeFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := FindOpenB(); err != nil || got != dir {
		t.Errorf("got %q, %v; want %q", got, err, dir)
	}
}

// tinyTrace has two 8-GPU nodes and one 2-GPU node, and tasks listed out of
// creation order.
func tinyTrace(t *testing.T) *Trace {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(nodeFile, "sn,cpu_milli,memory_mib,gpu,model\n"+
		"a,96000,786432,8,G2\nb,96000,786432,8,G2\nsmall,16000,65536,2,T4\n")
	write(taskFile, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"+
		"big,64000,65536,8,1000,,LS,Running,20,,\n"+
		"half,4000,8192,1,500,,LS,Running,10,,\n"+
		"one,8000,8192,1,1000,,LS,Running,0,,\n"+
		"again,64000,65536,8,1000,,LS,Running,30,,\n"+
		"cpu,4000,4096,0,0,,BE,Running,40,,\n")
	tr, err := LoadOpenB(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestReplayTinyTrace(t *testing.T) {
	tr := tinyTrace(t)
	var names []string
	for _, k := range tr.Tasks {
		names = append(names, k.Name)
	}
	if diff := cmp.Diff([]string{"one", "half", "big", "again", "cpu"}, names); diff != "" {
		t.Errorf("creation order (-want +got):\n%s", diff)
	}
	// Kiln packs "one" and "half" (a whole GPU each) together, so both 8-GPU
	// tasks find a whole node; spreading breaks both 8-GPU nodes first.
	cases := []struct {
		policy placement.Policy
		whole  Fill
		shared Fill
	}{
		{placement.FragAware,
			Fill{AtFirstFailure: 18.0 / 18, AllArrived: 18.0 / 18, Arrived: 18.0 / 18},
			Fill{AtFirstFailure: 17.5 / 18, AllArrived: 17.5 / 18, Arrived: 17.5 / 18}},
		{placement.Spread,
			Fill{AtFirstFailure: 2.0 / 18, AllArrived: 2.0 / 18, Arrived: 18.0 / 18, Failed: 2},
			Fill{AtFirstFailure: 1.5 / 18, AllArrived: 1.5 / 18, Arrived: 17.5 / 18, Failed: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.policy.String(), func(t *testing.T) {
			if diff := cmp.Diff(tc.whole, ReplayWhole(tr, tr.Tasks, tc.policy, 1)); diff != "" {
				t.Errorf("whole GPUs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.shared, ReplayShared(tr, tr.Tasks, tc.policy, 1)); diff != "" {
				t.Errorf("shared GPUs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWorkloadInflation(t *testing.T) {
	tr := tinyTrace(t) // 18 GPUs asked of 18, counted whole
	w := tr.Workload(2, false, rand.New(rand.NewPCG(7, 1)))
	var gpus int64
	for _, k := range w {
		gpus += k.GPUs
	}
	if len(w) <= len(tr.Tasks) || gpus > 2*18 {
		t.Errorf("inflated to %d tasks asking for %d GPUs; want more than %d tasks and at most 36 GPUs", len(w), gpus, len(tr.Tasks))
	}
}

func TestTraceFigures(t *testing.T) {
	tr := loadTrace(t)
	got := []int64{int64(len(tr.Nodes)), tr.GPUs(), int64(len(tr.Tasks))}
	if diff := cmp.Diff([]int64{1213, 6212, 8152}, got); diff != "" {
		t.Errorf("nodes, GPUs, tasks (-want +got):\n%s", diff)
	}
}

// TestGangStreams runs a short stream: Kiln never holds part of a gang nor
// deadlocks; the scrambled baseline does both, which the counters must see.
func TestGangStreams(t *testing.T) {
	cfg := GangConfig{Seed: 3, Jobs: 150, Load: 0.9, MeanRun: 2, Nodes8: 4, Nodes4: 4, Retry: 0.25}
	k := RunKiln(cfg)
	if k.PartialGangs != 0 || k.Deadlocks != 0 || k.NeverStarted != 0 || k.Refused != 0 || k.IdleHeld != 0 {
		t.Errorf("kiln: %+v; want no partial gang, deadlock, refusal or idle hold, and every job started", k)
	}
	if k.Utilisation <= 0 || k.MeanWait <= 0 {
		t.Errorf("kiln: %+v; want some utilisation and some waiting", k)
	}
	b := RunNoGang(cfg, Scrambled)
	if b.PartialGangs == 0 || b.Deadlocks == 0 || b.NeverStarted != 0 {
		t.Errorf("no-gang, scrambled: %+v; want partial gangs and deadlocks, and every job started in the end", b)
	}
}

func TestDeadlocked(t *testing.T) {
	nodes := []placement.Node{
		{Name: "a", Allocatable: placement.Resources{GPU: 8}},
		{Name: "b", Allocatable: placement.Resources{GPU: 8}},
		{Name: "c", Allocatable: placement.Resources{GPU: 8}},
	}
	pod := placement.Pod{Requests: placement.Resources{GPU: 8}}
	jobs := []job{{pods: []placement.Pod{pod, pod}}, {pods: []placement.Pod{pod, pod}}, {pods: []placement.Pod{pod, pod, pod}}}
	cases := []struct {
		name   string
		partly []int
		where  [][]int
		want   []int
	}{
		{"two halves with a free node: one completes, then the other", []int{0, 1}, [][]int{{0, -1}, {1, -1}, nil}, nil},
		{"three partial gangs on three nodes hold each other up", []int{0, 1, 2}, [][]int{{0, -1}, {1, -1}, {2, -1, -1}}, []int{0, 1, 2}},
		{"a lone partial gang cannot deadlock", []int{2}, [][]int{nil, nil, {0, -1, -1}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, deadlocked(nodes, jobs, tc.partly, tc.where)); diff != "" {
				t.Errorf("deadlocked (-want +got):\n%s", diff)
			}
		})
	}
}
