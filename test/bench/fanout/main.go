// Command fanout measures what Kiln costs over creating the same native objects directly: N
// TrainingJobs of W workers each, side by side with a client that creates the equivalent Jobs
// and headless Services itself at the same client QPS, on one full local control plane.
//
// It reports, per path: time until every pod exists, API writes per job (from the API server's
// audit log, by user), and for Kiln the manager's CPU-seconds and peak memory (it runs as its
// own process). Run it with `make bench-fanout` or `go run ./test/bench/fanout -jobs 1000`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/placement"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/test/bench/proc"
	"kiln.dev/kiln/test/framework"
)

type config struct {
	profile              string
	profileFor           time.Duration
	runs                 int
	jobs, workers, nodes int
	qps, managerQPS      float64
	managerReconciles    int
	order                string
	timeout              time.Duration
}

func main() {
	var c config
	flag.IntVar(&c.jobs, "jobs", 100, "TrainingJobs (and direct Jobs) to create per path")
	flag.IntVar(&c.workers, "workers", 8, "workers (pods) per job")
	flag.IntVar(&c.nodes, "nodes", 20, "simulated CPU nodes (1000 pods each)")
	flag.Float64Var(&c.qps, "qps", 50, "client QPS (and burst) of the benchmark's creating client, the same for both paths")
	flag.Float64Var(&c.managerQPS, "manager-qps", 50, "kiln-manager's --kube-api-qps (burst twice that)")
	flag.IntVar(&c.managerReconciles, "manager-reconciles", 4, "kiln-manager's --max-concurrent-reconciles")
	flag.StringVar(&c.order, "order", "direct,kiln", "order of the paths in the first run, each on a plane of its own; every other run reverses it")
	flag.IntVar(&c.runs, "runs", 1, "runs of both paths; with more than one, the median ratio is printed too")
	flag.DurationVar(&c.timeout, "timeout", 15*time.Minute, "give up on a path after this long")
	flag.StringVar(&c.profile, "apiserver-profile", "", "write CPU profiles of the API server (DIR/apiserver-PATH-N.pprof, 50 s each) and kiln-manager (DIR/manager.pprof) over each path's start")
	flag.DurationVar(&c.profileFor, "profile-for", 10*time.Second, "how much of each path's start -apiserver-profile covers")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard()) // the benchmark's own client logs nothing worth reading
	// Interrupted, it still stops the plane: etcd and the API server would otherwise outlive it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

// result is one path's figures.
type result struct {
	name            string
	allPods         time.Duration
	clientWrites    int
	otherWrites     int
	managerWrites   int
	managerCPU      time.Duration
	apiserverCPU    time.Duration
	unbound         int    // pods without a node once writes settled
	unboundWhy      string // the scheduler's message on one of them
	managerPeakRSS  int64
	writesByVerbRes map[string]int
}

func run(ctx context.Context, c config) error {
	dir, err := os.MkdirTemp("", "kiln-fanout-")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "planes and logs in %s\n", dir)
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return err
	}
	tools, err := framework.Tools(ctx, "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
	if err != nil {
		return err
	}
	mgrBin := filepath.Join(dir, "kiln-manager")
	if out, err := exec.Command("go", "build", "-o", mgrBin, "./cmd/kiln-manager").CombinedOutput(); err != nil {
		return fmt.Errorf("building kiln-manager: %v\n%s", err, out)
	}
	var ratios, extras []float64
	for i := range c.runs {
		var results []result
		paths := strings.Split(c.order, ",")
		if i%2 == 1 {
			// On this machine the order moves the ratio (the path run second was
			// the slower in four pairs of five), so each run swaps the order of the
			// one before.
			slices.Reverse(paths)
		}
		for _, path := range paths {
			// Each path on a plane of its own: the later one would otherwise run on a
			// cluster already holding the earlier one's pods, and pay for them.
			pathDir := filepath.Join(dir, fmt.Sprintf("%s-%d", path, i+1))
			r, err := onFreshPlane(ctx, c, tools, pathDir, policy, func(plane *controlplane.Plane, auditLog string) (result, error) {
				switch path {
				case "direct":
					return direct(ctx, c, plane, auditLog)
				case "kiln":
					return kiln(ctx, c, plane, auditLog, mgrBin, pathDir)
				}
				return result{}, fmt.Errorf("unknown path %q in -order", path)
			})
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		ratio, extra := report(c, i+1, results)
		ratios, extras = append(ratios, ratio), append(extras, extra)
	}
	if c.runs > 1 {
		fmt.Printf("\nover %d runs: kiln/direct time until all pods exist, median %.2f× (%s); Kiln's writes per job beyond the direct client's, median %+.2f\n",
			c.runs, median(ratios), formatAll(ratios), median(extras))
	}
	return nil
}

func onFreshPlane(ctx context.Context, c config, tools map[string]string, dir, policy string, measure func(*controlplane.Plane, string) (result, error)) (result, error) {
	auditLog := filepath.Join(dir, "audit.log")
	plane, err := controlplane.Start(ctx, controlplane.Options{
		Tools: tools, Dir: filepath.Join(dir, "plane"), CRDPaths: framework.CRDPaths(), Out: os.Stderr,
		Pools:      []controlplane.NodePool{{Name: "cpu", Count: c.nodes, MaxPods: 1000}},
		PodRunTime: time.Hour, // pods stay running: the benchmark measures creation, not completion
		// One file for the whole run: the API server would otherwise rotate it at 100 MB.
		APIServerFlags: map[string]string{"audit-policy-file": policy, "audit-log-path": auditLog, "audit-log-mode": "blocking", "audit-log-maxsize": "100000"},
	})
	if err != nil {
		return result{}, err
	}
	defer plane.Stop()
	// A fresh plane's controllers sync and its nodes register for a while, which
	// would slow whichever path runs first.
	proc.Quiet(proc.Children()["kube-apiserver"], 0.15, 30*time.Second)
	return measure(plane, auditLog)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func formatAll(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, ", ")
}

// The audit log records who wrote what; reads are left out to keep it small.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
`

// template is the TrainingJob both paths start from: CPU workers with an explicit topology, so
// the shape does not depend on GPU nodes.
func template(ns string, i, workers int) *v1alpha1.TrainingJob {
	return &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("job-%04d", i), Namespace: ns},
		Spec: v1alpha1.TrainingJobSpec{
			Image:     "registry.example/train:1",
			Framework: v1alpha1.FrameworkPyTorch,
			Command:   []string{"python", "train.py"},
			Topology:  &v1alpha1.Topology{Nodes: int32(workers), ProcessesPerNode: 1},
		},
	}
}

func clientFor(cfg *rest.Config, qps float64) (client.Client, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(qps), int(qps)
	scheme, err := manager.Scheme()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

func direct(ctx context.Context, c config, plane *controlplane.Plane, auditLog string) (result, error) {
	ns := "bench-direct"
	cl, err := clientFor(plane.Config, c.qps)
	if err != nil {
		return result{}, err
	}
	var objs []client.Object
	for i := range c.jobs {
		tj := template(ns, i, c.workers)
		shape := placement.Shape{Nodes: int32(c.workers), ProcessesPerNode: 1}
		rendered, err := render.TrainingJob(tj, shape, render.Options{})
		if err != nil {
			return result{}, err
		}
		objs = append(objs, rendered.Service, rendered.Job)
	}
	return measure(ctx, c, plane, auditLog, "direct", ns, objs, cl, 0)
}

func kiln(ctx context.Context, c config, plane *controlplane.Plane, auditLog, mgrBin, dir string) (result, error) {
	ns := "bench-kiln"
	kubeconfig, err := plane.AddUser("kiln-manager", "system:masters")
	if err != nil {
		return result{}, err
	}
	kcPath := filepath.Join(dir, "manager.kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		return result{}, err
	}
	logf, err := os.Create(filepath.Join(dir, "kiln-manager.log"))
	if err != nil {
		return result{}, err
	}
	defer logf.Close()
	mgr := exec.Command(mgrBin, "--kubeconfig", kcPath, "--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--webhooks=false",
		fmt.Sprintf("--kube-api-qps=%g", c.managerQPS), fmt.Sprintf("--kube-api-burst=%d", int(2*c.managerQPS)),
		fmt.Sprintf("--max-concurrent-reconciles=%d", c.managerReconciles), "--pprof-bind-address="+managerPprof)
	mgr.Stdout, mgr.Stderr = logf, logf
	if err := mgr.Start(); err != nil {
		return result{}, err
	}
	defer func() { _ = mgr.Process.Kill(); _ = mgr.Wait() }()
	time.Sleep(3 * time.Second) // caches synced, so the manager's start-up is not counted as the job's cost
	cl, err := clientFor(plane.Config, c.qps)
	if err != nil {
		return result{}, err
	}
	var objs []client.Object
	for i := range c.jobs {
		objs = append(objs, template(ns, i, c.workers))
	}
	return measure(ctx, c, plane, auditLog, "kiln", ns, objs, cl, mgr.Process.Pid)
}

// measure creates objs at the client's QPS and waits until jobs × workers pods exist.
func measure(ctx context.Context, c config, plane *controlplane.Plane, auditLog, name, ns string, objs []client.Object, cl client.Client, mgr int) (result, error) {
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return result{}, err
	}
	w := &writes{path: auditLog, ns: ns, offset: fileSize(auditLog), byUser: map[string]int{}, byVerbRes: map[string]int{}}
	apiserver := proc.Children()["kube-apiserver"]
	cpuBefore, apiBefore := proc.CPUTime(mgr), proc.CPUTime(apiserver)
	cs, err := kubernetes.NewForConfig(plane.Config)
	if err != nil {
		return result{}, err
	}
	profiled := make(chan error, 1)
	if c.profile != "" {
		go func() {
			manager := make(chan error, 1)
			go func() {
				if mgr == 0 {
					manager <- nil
					return
				}
				manager <- profileManager(ctx, filepath.Join(c.profile, "manager.pprof"), c.profileFor)
			}()
			api := profileAPIServer(ctx, cs, filepath.Join(c.profile, "apiserver-"+name), c.profileFor)
			profiled <- errors.Join(api, <-manager)
		}()
	} else {
		profiled <- nil
	}
	start := time.Now()
	fmt.Fprintf(os.Stderr, "%s: creating %d objects at %.0f QPS\n", name, len(objs), c.qps)
	if err := createAll(ctx, cl, objs); err != nil {
		return result{}, err
	}
	want := c.jobs * c.workers
	deadline := time.Now().Add(c.timeout)
	for {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return result{}, err
		}
		if len(pods.Items) >= want {
			break
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("%s: %d of %d pods after %s", name, len(pods.Items), want, c.timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
	r := result{name: name, allPods: time.Since(start)}
	fmt.Fprintf(os.Stderr, "%s: all %d pods exist after %s; letting writes settle\n", name, want, r.allPods.Round(time.Millisecond))
	if err := w.settle(); err != nil {
		return result{}, err
	}
	if err := <-profiled; err != nil {
		return result{}, err
	}
	r.managerCPU = proc.CPUTime(mgr) - cpuBefore
	r.apiserverCPU = proc.CPUTime(apiserver) - apiBefore
	r.managerPeakRSS = proc.PeakRSS(mgr)
	r.writesByVerbRes = w.byVerbRes
	// Pods that exist but never got a node would make "all pods" a hollow figure.
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return result{}, err
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" {
			continue
		}
		r.unbound++
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && r.unboundWhy == "" {
				r.unboundWhy = p.Name + ": " + cond.Message
			}
		}
	}
	for user, n := range w.byUser {
		switch user {
		case "kiln-admin": // the benchmark's client; components have their own users
			r.clientWrites += n
		case "kiln-manager":
			r.managerWrites += n
		default:
			r.otherWrites += n
		}
	}
	return r, nil
}

func createAll(ctx context.Context, cl client.Client, objs []client.Object) error {
	work := make(chan client.Object)
	errs := make(chan error, len(objs))
	var wg sync.WaitGroup
	for range 16 { // enough in flight that the client's rate limiter, not latency, sets the pace
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if err := cl.Create(ctx, o); err != nil {
					errs <- fmt.Errorf("creating %s: %w", o.GetName(), err)
				}
			}
		}()
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

// writes tallies the audit log's write events in one namespace, reading only what was appended
// since the last read: the log reaches hundreds of megabytes in a 1,000-job run.
type writes struct {
	path, ns          string
	offset            int64
	total             int
	byUser, byVerbRes map[string]int
}

// read takes in the complete lines appended since the last read.
func (w *writes) read() error {
	f, err := os.Open(w.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(w.offset, io.SeekStart); err != nil {
		return err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1] // a line still being written waits for the next read
	w.offset += int64(len(data))
	for _, line := range bytes.Split(data, []byte("\n")) {
		var e struct {
			Stage string `json:"stage"`
			Verb  string `json:"verb"`
			User  struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
				Namespace   string `json:"namespace"`
			} `json:"objectRef"`
		}
		if json.Unmarshal(line, &e) != nil || e.Stage != "ResponseComplete" || e.ObjectRef.Namespace != w.ns {
			continue
		}
		res := e.ObjectRef.Resource
		if e.ObjectRef.Subresource != "" {
			res += "/" + e.ObjectRef.Subresource
		}
		w.total++
		w.byUser[e.User.Username]++
		w.byVerbRes[fmt.Sprintf("%s %s by %s", e.Verb, res, e.User.Username)]++
	}
	return nil
}

// settle reads until no write has touched the namespace for 5 s: status updates trail pod
// creation. (Node leases keep the log itself growing, so its size says nothing.)
func (w *writes) settle() error {
	last, quiet := -1, time.Now()
	for time.Since(quiet) < 5*time.Second {
		if err := w.read(); err != nil {
			return err
		}
		if w.total != last {
			last, quiet = w.total, time.Now()
		}
		time.Sleep(time.Second)
	}
	return nil
}

// profileAPIServer writes the API server's CPU profile of the next d (its
// /debug/pprof) to PREFIX-1.pprof, PREFIX-2.pprof, … in slices of 50 s at most,
// since the API server ends any request after 60 s; go tool pprof merges them.
func profileAPIServer(ctx context.Context, cs kubernetes.Interface, prefix string, d time.Duration) error {
	for i := 1; d > 0; i++ {
		slice := min(d, 50*time.Second)
		d -= slice
		data, err := cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", seconds(slice)).DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("profiling the API server: %w", err)
		}
		if err := os.WriteFile(fmt.Sprintf("%s-%d.pprof", prefix, i), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// managerPprof is where the benchmark's kiln-manager serves its profiles.
const managerPprof = "127.0.0.1:18089"

// profileManager writes kiln-manager's CPU profile of the next d.
func profileManager(ctx context.Context, path string, d time.Duration) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+managerPprof+"/debug/pprof/profile?seconds="+seconds(d), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profiling kiln-manager: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func seconds(d time.Duration) string { return strconv.Itoa(int(d.Seconds())) }

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// report prints one run and returns its time ratio and Kiln's writes per job beyond the
// direct client's.
func report(c config, run int, rs []result) (float64, float64) {
	fmt.Printf("\nrun %d: %d jobs × %d workers, creating client at %.0f QPS/burst, manager at QPS %.0f, burst %.0f, %d reconciles at once\n\n", run, c.jobs, c.workers, c.qps, c.managerQPS, 2*c.managerQPS, c.managerReconciles)
	fmt.Printf("%-8s %14s %14s %14s %14s %12s %12s %14s\n", "path", "all pods", "client w/job", "kiln w/job", "others w/job", "manager CPU", "manager RSS", "apiserver CPU")
	byName := map[string]result{}
	for _, r := range rs {
		byName[r.name] = r
		n := float64(c.jobs)
		fmt.Printf("%-8s %14s %14.2f %14.2f %14.2f %12s %11.0fM %14s\n", r.name, r.allPods.Round(time.Millisecond),
			float64(r.clientWrites)/n, float64(r.managerWrites)/n, float64(r.otherWrites)/n, r.managerCPU, float64(r.managerPeakRSS)/(1<<20), r.apiserverCPU)
	}
	for _, r := range rs {
		if r.unbound > 0 {
			fmt.Printf("%s: %d pods were never bound to a node (%s)\n", r.name, r.unbound, r.unboundWhy)
		}
	}
	d, k := byName["direct"], byName["kiln"]
	var ratio, extra float64
	if d.name != "" && k.name != "" {
		n := float64(c.jobs)
		ratio = k.allPods.Seconds() / d.allPods.Seconds()
		extra = float64(k.clientWrites+k.managerWrites-d.clientWrites) / n
		cluster := float64(k.clientWrites+k.managerWrites+k.otherWrites-d.clientWrites-d.managerWrites-d.otherWrites) / n
		fmt.Printf("\nkiln/direct time until all pods exist: %.2f×   Kiln's writes per job beyond the direct client's: %+.2f (whole cluster: %+.2f)\n",
			ratio, extra, cluster)
	}
	for _, r := range rs {
		fmt.Printf("\nwrites of the %s path (per job):\n", r.name)
		var keys []string
		for k := range r.writesByVerbRes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("  %-60s %8.2f\n", k, float64(r.writesByVerbRes[k])/float64(c.jobs))
		}
	}
	return ratio, extra
}
