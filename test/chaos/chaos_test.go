package chaos

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/test/framework"
)

// A manager killed (SIGKILL) at random moments while hundreds of TrainingJobs are created
// and run, and started again each time, loses no job, duplicates no child and never moves a
// job's state backwards; no Secret value reaches its logs.
func TestManagerKilledMidWorkLosesAndDuplicatesNothing(t *testing.T) {
	const jobs, kills = 200, 3
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	c, ns := kilnClient(t), namespace(t)
	states := watchStates(t, ns)

	// Leader election is off so a restarted process starts at once; the leader failover
	// test covers the lease.
	flags := []string{"--leader-elect=false"}
	mgr := startManager(t, "killed", flags...)
	created := make(chan error, 1)
	go func() { created <- createWorkload(c, ns, jobs) }()
	killAt := make([]time.Duration, kills)
	for i := range killAt {
		killAt[i] = time.Second + time.Duration(rng.Int64N(int64(25*time.Second)))
	}
	slices.Sort(killAt)
	start := time.Now()
	for _, at := range killAt {
		time.Sleep(time.Until(start.Add(at)))
		mgr.stop(syscall.SIGKILL)
		t.Logf("killed the manager at %s", at.Round(time.Millisecond))
		time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
		mgr = startManager(t, "killed", flags...)
	}
	if err := <-created; err != nil {
		t.Fatal(err)
	}

	framework.Eventually(t, 5*time.Minute, func() error {
		var list v1alpha1.TrainingJobList
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		done := 0
		for _, tj := range list.Items {
			if tj.Status.State == v1alpha1.StateSucceeded {
				done++
			}
		}
		if done != jobs {
			return fmt.Errorf("%d of %d TrainingJobs succeeded", done, jobs)
		}
		return nil
	})
	t.Logf("%d TrainingJobs succeeded after %d kills in %s", jobs, kills, time.Since(start).Round(time.Second))

	var list v1alpha1.TrainingJobList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	children := childCounts(t, c, ns)
	for _, tj := range list.Items {
		if tj.Status.Restarts != 0 || tj.Status.Attempt != 0 {
			t.Errorf("%s: %d restarts, attempt %d; a manager restart is not a worker failure", tj.Name, tj.Status.Restarts, tj.Status.Attempt)
		}
		want := map[string]int{"Job": 1, "Service": 1}
		if tj.Spec.Checkpoints != nil {
			want["PersistentVolumeClaim"] = 1
		}
		if tj.Spec.Framework == v1alpha1.FrameworkMPI {
			want["Secret"], want["ConfigMap"] = 1, 1
		}
		for kind, n := range want {
			if got := children[kind][tj.Name]; got != n {
				t.Errorf("%s: %d %s(s), want %d", tj.Name, got, kind, n)
			}
		}
	}
	states.check(t)
	secretsNotLogged(t, ns)
}

// createWorkload creates jobs TrainingJobs at a steady pace: mostly single-process jobs,
// some two-node jobs with a checkpoint claim, some MPI jobs with their SSH Secret.
func createWorkload(c client.Client, ns string, jobs int) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := range jobs {
		<-tick.C
		tj := &v1alpha1.TrainingJob{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("job-%03d", i), Namespace: ns},
			Spec: v1alpha1.TrainingJobSpec{
				Image:   "python:3.12-slim",
				Command: []string{"python", "train.py"},
				Env:     []corev1.EnvVar{{Name: "RUN", Value: fmt.Sprint(i)}},
			},
		}
		switch i % 10 {
		case 0:
			tj.Spec.Framework = v1alpha1.FrameworkMPI
			tj.Spec.Command = []string{"mpirun", "python", "train.py"}
			tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 1}
		case 1, 2, 3:
			tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 1}
			tj.Spec.Checkpoints = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}
		}
		if err := c.Create(context.Background(), tj); err != nil {
			return fmt.Errorf("creating %s: %w", tj.Name, err)
		}
	}
	return nil
}

// childCounts counts Kiln's children in ns by kind and TrainingJob.
func childCounts(t *testing.T, c client.Client, ns string) map[string]map[string]int {
	t.Helper()
	counts := map[string]map[string]int{}
	for kind, list := range map[string]client.ObjectList{
		"Job": &batchv1.JobList{}, "Service": &corev1.ServiceList{}, "PersistentVolumeClaim": &corev1.PersistentVolumeClaimList{},
		"Secret": &corev1.SecretList{}, "ConfigMap": &corev1.ConfigMapList{},
	} {
		if err := c.List(context.Background(), list, client.InNamespace(ns), client.HasLabels{v1alpha1.LabelTrainingJob}); err != nil {
			t.Fatal(err)
		}
		counts[kind] = map[string]int{}
		items, err := apimeta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range items {
			m, err := apimeta.Accessor(o)
			if err != nil {
				t.Fatal(err)
			}
			counts[kind][m.GetLabels()[v1alpha1.LabelTrainingJob]]++
		}
	}
	return counts
}

// stateLog records every state each TrainingJob of a namespace passes through, as watched.
type stateLog struct {
	mu     sync.Mutex
	seen   map[string][]v1alpha1.TrainingJobState
	errs   []string
	cancel context.CancelFunc
	done   chan struct{}
}

// rank orders states: a job never goes from a later group back to an earlier one.
func rank(s v1alpha1.TrainingJobState) int {
	switch s {
	case v1alpha1.StateRunning, v1alpha1.StateRestarting:
		return 1
	case v1alpha1.StateSucceeded, v1alpha1.StateFailed:
		return 2
	}
	return 0
}

func watchStates(t *testing.T, ns string) *stateLog {
	t.Helper()
	scheme := kilnClient(t).Scheme()
	wc, err := client.NewWithWatch(plane.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := wc.Watch(ctx, &v1alpha1.TrainingJobList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	l := &stateLog{seen: map[string][]v1alpha1.TrainingJobState{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for ev := range w.ResultChan() {
			tj, ok := ev.Object.(*v1alpha1.TrainingJob)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			l.mu.Lock()
			states := l.seen[tj.Name]
			if n := len(states); n > 0 && states[n-1] != tj.Status.State {
				if rank(tj.Status.State) < rank(states[n-1]) {
					l.errs = append(l.errs, fmt.Sprintf("%s went from %s back to %s", tj.Name, states[n-1], tj.Status.State))
				}
			}
			if n := len(states); n == 0 || states[n-1] != tj.Status.State {
				l.seen[tj.Name] = append(states, tj.Status.State)
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop() })
	return l
}

// check fails the test on any state regression, or a watch that ended early.
func (l *stateLog) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		t.Error("the watch on TrainingJobs ended during the test; regressions may have gone unseen")
	default:
	}
	for _, e := range l.errs {
		t.Error(e)
	}
	for name, states := range l.seen {
		if n := slices.Index(states, v1alpha1.StateSucceeded); n >= 0 && n != len(states)-1 {
			t.Errorf("%s: states %v; Succeeded must be the last", name, states)
		}
	}
}

// secretsNotLogged greps every manager log of the run for the values of ns's Secrets.
func secretsNotLogged(t *testing.T, ns string) {
	t.Helper()
	var secrets corev1.SecretList
	if err := kilnClient(t).List(context.Background(), &secrets, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var needles []string
	for _, s := range secrets.Items {
		for _, v := range s.Data {
			for _, line := range strings.Split(string(v), "\n") {
				if len(line) >= 16 { // a line of a key, long enough not to match by chance
					needles = append(needles, line)
				}
			}
			needles = append(needles, base64.StdEncoding.EncodeToString(v))
		}
	}
	if len(needles) == 0 {
		t.Fatal("no Secret values to look for; the MPI jobs made no SSH Secret?")
	}
	logs, _ := filepath.Glob(filepath.Join(plane.Dir, "kiln-manager-*.log"))
	for _, log := range logs {
		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if strings.Contains(string(data), n) {
				t.Errorf("%s holds a Secret value", filepath.Base(log))
				break
			}
		}
	}
}

// Two replicas take turns through the lease: when the leader dies, the other takes over
// and the work goes on.
func TestLeaderFailover(t *testing.T) {
	c, ns := kilnClient(t), namespace(t)
	const acquired = "acquired lease"
	replicas := []*managerProcess{startManager(t, "replica-a"), startManager(t, "replica-b")}
	leader := func() *managerProcess {
		var l *managerProcess
		framework.Eventually(t, time.Minute, func() error {
			for _, r := range replicas {
				select {
				case <-r.done:
					continue
				default:
				}
				if r.logged(acquired) {
					l = r
					return nil
				}
			}
			return fmt.Errorf("no replica holds the lease")
		})
		return l
	}
	first := leader()
	runOne(t, c, ns, "before")

	// A hard kill cannot release the lease: the other replica waits for it to expire.
	first.stop(syscall.SIGKILL)
	killed := time.Now()
	replicas = append(replicas, startManager(t, "replica-c")) // the Deployment replaces the dead pod
	second := leader()
	hard := time.Since(killed)
	runOne(t, c, ns, "after-kill")

	// A graceful stop (a rollout, a drained node) releases the lease on the way out.
	second.stop(syscall.SIGTERM)
	stopped := time.Now()
	third := leader()
	soft := time.Since(stopped)
	runOne(t, c, ns, "after-stop")
	t.Logf("failover: %s after SIGKILL of the leader, %s after SIGTERM (lease 15s, renew deadline 10s, retry 2s)",
		hard.Round(100*time.Millisecond), soft.Round(100*time.Millisecond))
	if third == second || second == first {
		t.Fatal("the same replica led twice")
	}
	if soft > 15*time.Second {
		t.Errorf("failover after a graceful stop took %s, want at most 15s", soft)
	}
	// Lease duration plus a retry period and slack for a loaded machine.
	if hard > 30*time.Second {
		t.Errorf("failover after a hard kill took %s, want at most 30s", hard)
	}
}

// runOne creates a TrainingJob and waits for it to succeed.
func runOne(t *testing.T, c client.Client, ns, name string) {
	t.Helper()
	tj := &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       v1alpha1.TrainingJobSpec{Image: "python:3.12-slim", Command: []string{"python", "train.py"}},
	}
	if err := c.Create(context.Background(), tj); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 2*time.Minute, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(tj), tj); err != nil {
			return err
		}
		if tj.Status.State != v1alpha1.StateSucceeded {
			return fmt.Errorf("%s is %q", tj.Name, tj.Status.State)
		}
		return nil
	})
}

// The API server restarts mid-run: the manager reconnects by itself and every job completes.
func TestAPIServerRestartMidRun(t *testing.T) {
	const jobs = 40
	c, ns := kilnClient(t), namespace(t)
	// Without leader election, as an outage longer than the renew deadline (10s) would
	// otherwise end the process for its Deployment to restart — the kill test's case.
	mgr := startManager(t, "apiserver-restart", "--leader-elect=false")
	if err := createWorkload(c, ns, jobs); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := plane.RestartAPIServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver was away for %s", time.Since(began).Round(100*time.Millisecond))
	framework.Eventually(t, 3*time.Minute, func() error {
		var list v1alpha1.TrainingJobList
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		done := 0
		for _, tj := range list.Items {
			if tj.Status.State == v1alpha1.StateSucceeded {
				done++
			}
		}
		if done != jobs {
			return fmt.Errorf("%d of %d TrainingJobs succeeded", done, jobs)
		}
		return nil
	})
	select {
	case <-mgr.done:
		t.Fatal("the manager exited instead of reconnecting")
	default:
	}
}

func namespace(t *testing.T) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(plane.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "chaos-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	return ns.Name
}
