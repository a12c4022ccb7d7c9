// Command webhook measures what Kiln's admission webhooks cost: the handlers' own time (p50,
// p99) and the create throughput with the webhooks installed vs. not, side by side in one run,
// at a given number of concurrent creates, on a real API server with the webhook configurations
// of config/webhook installed as envtest installs them.
//
// Each round creates -creates TrainingJobs (defaulting and validating webhooks), as many GPU
// pods in a namespace labelled kiln.dev/inject=enabled (pod webhook), and as many pods of a
// Kiln workload, injected when rendered (the pod webhook's match condition skips them),
// -concurrency at a time. "off" rounds run with both webhook configurations deleted, "on"
// rounds with them restored, alternating -repeat times.
// Run it with `make bench-webhook`.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/webhook"
	"kiln.dev/kiln/test/bench/proc"
	"kiln.dev/kiln/test/framework"
)

// kinds of object created: TrainingJobs, pods of an opted-in namespace, and the pods of a
// Kiln workload as the Job controller creates them from a template Kiln rendered and injected.
var kinds = []string{"TrainingJob", "Pod", "KilnPod"}

type config struct {
	creates     int
	concurrency []int
	qps         float64
	repeat      int
}

func main() {
	var c config
	var conc string
	flag.IntVar(&c.creates, "creates", 1000, "objects of each kind created per round")
	flag.StringVar(&conc, "concurrency", "100,500", "concurrent creates, one pair of rounds (off, on) each")
	flag.IntVar(&c.repeat, "repeat", 3, "pairs of rounds (off, on) per concurrency; ratios are of the medians")
	flag.Float64Var(&c.qps, "qps", 5000, "client QPS and burst: high, so the client never limits")
	flag.Parse()
	for _, s := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "webhook: -concurrency:", err)
			os.Exit(2)
		}
		c.concurrency = append(c.concurrency, n)
	}
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "webhook:", err)
		os.Exit(1)
	}
}

// timings records each handler call's duration by path.
type timings struct {
	mu sync.Mutex
	by map[string][]time.Duration
}

// wrap times the handler alone: the request body is read before and the response written
// after, so network transfer from and to the API server is not counted.
func (t *timings) wrap(path string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, r)
		d := time.Since(start)
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		t.mu.Lock()
		t.by[path] = append(t.by[path], d)
		t.mu.Unlock()
	})
}

func (t *timings) take() map[string][]time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.by
	t.by = map[string][]time.Duration{}
	return out
}

func run(ctx context.Context, c config) error {
	plane, err := framework.Start(ctx, "", 0, framework.WithWebhooks())
	if err != nil {
		return err
	}
	defer plane.Stop()
	scheme, err := manager.Scheme()
	if err != nil {
		return err
	}

	// The webhook server, as Setup builds it, with each handler timed.
	mgr, err := ctrl.NewManager(plane.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	wh := framework.WebhookOptions(plane)
	// The API server keeps at most 25 idle connections per webhook host, so at higher
	// concurrency it opens new ones: each is a TLS handshake, counted here.
	var handshakes atomic.Int64
	countHandshakes := func(c *tls.Config) {
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { handshakes.Add(1); return nil, nil }
	}
	server := crwebhook.NewServer(crwebhook.Options{Host: wh.Host, Port: wh.Port, CertDir: wh.CertDir, TLSOpts: []func(*tls.Config){webhook.HTTP1Only, countHandshakes}})
	if err := webhook.WarmCaches(ctx, mgr.GetCache()); err != nil {
		return err
	}
	handlers, err := webhook.Handlers(scheme, webhook.Cluster{Cached: mgr.GetClient(), Live: mgr.GetAPIReader()}, wh)
	if err != nil {
		return err
	}
	tm := &timings{by: map[string][]time.Duration{}}
	for path, h := range handlers {
		server.Register(path, tm.wrap(path, h))
	}
	if err := mgr.Add(server); err != nil {
		return err
	}
	mgrCtx, stopMgr := context.WithCancel(ctx)
	defer stopMgr()
	go func() { _ = mgr.Start(mgrCtx) }()
	if err := framework.WaitForWebhooks(plane, time.Minute); err != nil {
		return err
	}

	cfg := rest.CopyConfig(plane.Config)
	cfg.QPS, cfg.Burst = float32(c.qps), int(c.qps)
	cfg.Timeout = 60 * time.Second
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	for i := range 2 {
		alloc := corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("8"), corev1.ResourceCPU: resource.MustParse("96")}
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a100-" + strconv.Itoa(i)}}
		if err := cl.Create(ctx, n); err != nil {
			return err
		}
		n.Status = corev1.NodeStatus{Capacity: alloc, Allocatable: alloc}
		if err := cl.Status().Update(ctx, n); err != nil {
			return err
		}
	}
	mut := &admissionregistrationv1.MutatingWebhookConfiguration{}
	val := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := cl.Get(ctx, client.ObjectKey{Name: webhook.MutatingConfigName}, mut); err != nil {
		return err
	}
	if err := cl.Get(ctx, client.ObjectKey{Name: webhook.ValidatingConfigName}, val); err != nil {
		return err
	}
	setWebhooks := func(on bool) error {
		if !on {
			if err := cl.Delete(ctx, mut.DeepCopy()); err != nil {
				return err
			}
			return cl.Delete(ctx, val.DeepCopy())
		}
		m, v := mut.DeepCopy(), val.DeepCopy()
		m.ResourceVersion, m.UID, v.ResourceVersion, v.UID = "", "", "", ""
		if err := cl.Create(ctx, m); err != nil {
			return err
		}
		return cl.Create(ctx, v)
	}

	fmt.Printf("client QPS %.0f, burst %.0f; %d TrainingJobs and %d pods per round\n", c.qps, c.qps, c.creates, c.creates)
	procs := proc.Children()
	fmt.Println("CPU per create, in ms: the API server, etcd, and this process (the creating client and the webhook server)")
	fmt.Printf("%-5s %-5s %-12s %10s %10s %10s %10s %8s %11s %9s %8s %8s  %s\n", "conc", "hooks", "kind", "wall", "creates/s", "p50", "p99", "calls", "handshakes",
		"apiserver", "etcd", "bench", "errors (timeouts)")
	var ratios []string
	round := 0
	for _, conc := range c.concurrency {
		thr := map[bool]map[string][]float64{false: {}, true: {}}
		for rep := range c.repeat * 2 {
			// off, on, off, on, ...: the machine's drift hits both alike.
			on := rep%2 == 1
			if err := setWebhooks(on); err != nil {
				return err
			}
			// Configuration changes reach the API server's admission through an informer.
			time.Sleep(2 * time.Second)
			tm.take()
			for _, kind := range kinds {
				round++
				ns, err := namespaceFor(ctx, cl, kind, round)
				if err != nil {
					return err
				}
				cpu := func() [3]time.Duration {
					return [3]time.Duration{proc.CPUTime(procs["kube-apiserver"]), proc.CPUTime(procs["etcd"]), proc.CPUTime(os.Getpid())}
				}
				proc.Quiet(procs["kube-apiserver"], 0.1, 10*time.Second)
				cpuBefore, hsBefore := cpu(), handshakes.Load()
				wall, errs, timeouts := createAll(ctx, cl, c.creates, conc, func(i int) client.Object { return object(kind, ns, i) })
				rate := float64(c.creates-errs) / wall.Seconds()
				thr[on][kind] = append(thr[on][kind], rate)
				cpuAfter := cpu()
				var perCreate [3]string
				for i := range perCreate {
					perCreate[i] = fmt.Sprintf("%.2f", float64((cpuAfter[i]-cpuBefore[i]).Microseconds())/1000/float64(c.creates))
				}
				calls := tm.take()
				var all []time.Duration
				for path, ds := range calls {
					if (kind != "TrainingJob") == (path == webhook.PodPath) {
						all = append(all, ds...)
					}
				}
				p50, p99 := percentile(all, 50), percentile(all, 99)
				hooks := "off"
				if on {
					hooks = "on"
				}
				fmt.Printf("%-5d %-5s %-12s %10s %10.0f %10s %10s %8d %11d %9s %8s %8s  %d (%d)\n", conc, hooks, kind, wall.Round(time.Millisecond), rate,
					fmtDur(p50, len(all)), fmtDur(p99, len(all)), len(all), handshakes.Load()-hsBefore, perCreate[0], perCreate[1], perCreate[2], errs, timeouts)
			}
		}
		for _, kind := range kinds {
			on, off := median(thr[true][kind]), median(thr[false][kind])
			ratios = append(ratios, fmt.Sprintf("concurrency %d, %s: median creates/s off %.0f, on %.0f: on/off %.2f (loss %.1f %%)",
				conc, kind, off, on, on/off, 100*(1-on/off)))
		}
	}
	fmt.Println(strings.Join(ratios, "\n"))
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average at the end: %s", load)
	}
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtDur(d time.Duration, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
}

func namespaceFor(ctx context.Context, c client.Client, kind string, round int) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d-%s", round, strings.ToLower(kind))}}
	if kind == "Pod" {
		ns.Labels = map[string]string{webhook.LabelInject: webhook.InjectEnabled}
	}
	return ns.Name, c.Create(ctx, ns)
}

func object(kind, ns string, i int) client.Object {
	name := fmt.Sprintf("o-%d", i)
	if kind == "TrainingJob" {
		return &v1alpha1.TrainingJob{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1alpha1.TrainingJobSpec{
				Image: "trainer:1", Framework: v1alpha1.FrameworkPyTorch, Command: []string{"torchrun", "train.py"},
				Resources:   v1alpha1.TrainingResources{GPUs: 8},
				Checkpoints: &v1alpha1.VolumeSpec{Size: resource.MustParse("10Gi")},
			},
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "trainer:1", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")},
		}}}},
	}
	if kind == "KilnPod" {
		tmpl := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{webhook.LabelManagedBy: "kiln"}}, Spec: pod.Spec}
		webhook.InjectTemplate(tmpl, webhook.Injection{})
		pod.Labels, pod.Annotations, pod.Spec = tmpl.Labels, tmpl.Annotations, tmpl.Spec
	}
	return pod
}

// createAll creates n objects, conc at a time, and returns the wall time, the errors and how
// many of them were timeouts.
func createAll(ctx context.Context, c client.Client, n, conc int, make func(int) client.Object) (time.Duration, int, int) {
	var next, errs, timeouts atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := c.Create(ctx, make(i)); err != nil {
					errs.Add(1)
					if errors.Is(err, context.DeadlineExceeded) || apierrors.IsTimeout(err) || strings.Contains(err.Error(), "deadline exceeded") {
						timeouts.Add(1)
					}
					if errs.Load() <= 3 {
						fmt.Fprintln(os.Stderr, "create:", err)
					}
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), int(errs.Load()), int(timeouts.Load())
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
