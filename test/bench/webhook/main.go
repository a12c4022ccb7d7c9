// Command webhook measures what Kiln's admission webhooks cost: the handlers' latency and CPU
// time (p50, p99) and the create throughput with the webhooks installed vs. not, side by side in one run,
// at a given number of concurrent creates, on a real API server with the webhook configurations
// of config/webhook installed as envtest installs them.
//
// Each round creates -creates TrainingJobs (defaulting and validating webhooks), as many GPU
// pods in a namespace labelled kiln.dev/inject=enabled (pod webhook), and as many pods of a
// Kiln workload, injected when rendered (the pod webhook's match condition skips them),
// -concurrency at a time. "off" rounds run with both webhook configurations deleted, "on"
// rounds with them restored, alternating -repeat times. The webhook server runs in a process of
// its own, as kiln-manager would (see serve.go).
// Run it with `make bench-webhook`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

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
	var srv serveConfig
	flag.StringVar(&srv.kubeconfig, "serve", "", "internal: run as the benchmark's webhook server process, with this kubeconfig")
	flag.StringVar(&srv.host, "serve-host", "", "internal: the webhook server's host")
	flag.IntVar(&srv.port, "serve-port", 0, "internal: the webhook server's port")
	flag.StringVar(&srv.certDir, "serve-certs", "", "internal: the webhook server's certificate directory")
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
	if srv.kubeconfig != "" {
		if err := serve(ctx, srv); err != nil {
			fmt.Fprintln(os.Stderr, "webhook server:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "webhook:", err)
		os.Exit(1)
	}
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

	dir, err := os.MkdirTemp("", "kiln-webhook-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	server, err := startServer(plane, dir)
	if err != nil {
		return err
	}
	defer server.stop()

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
	fmt.Println("CPU per create, in ms: the API server, etcd, the webhook server and the creating client")
	fmt.Printf("%-5s %-5s %-12s %10s %10s %10s %10s %10s %10s %8s %11s %9s %8s %8s %8s  %s\n", "conc", "hooks", "kind", "wall", "creates/s", "p50", "p99", "cpu p50", "cpu p99", "calls", "handshakes",
		"apiserver", "etcd", "webhook", "client", "errors (timeouts)")
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
			if _, err := server.take(); err != nil {
				return err
			}
			for _, kind := range kinds {
				round++
				ns, err := namespaceFor(ctx, cl, kind, round)
				if err != nil {
					return err
				}
				cpu := func() [4]time.Duration {
					return [4]time.Duration{proc.CPUTime(procs["kube-apiserver"]), proc.CPUTime(procs["etcd"]), proc.CPUTime(server.pid()), proc.CPUTime(os.Getpid())}
				}
				proc.Quiet(procs["kube-apiserver"], 0.1, 10*time.Second)
				cpuBefore := cpu()
				wall, errs, timeouts := createAll(ctx, cl, c.creates, conc, func(i int) client.Object { return object(kind, ns, i) })
				rate := float64(c.creates-errs) / wall.Seconds()
				thr[on][kind] = append(thr[on][kind], rate)
				cpuAfter := cpu()
				var perCreate [4]string
				for i := range perCreate {
					perCreate[i] = fmt.Sprintf("%.2f", float64((cpuAfter[i]-cpuBefore[i]).Microseconds())/1000/float64(c.creates))
				}
				got, err := server.take()
				if err != nil {
					return err
				}
				// Latency, and the handler's own CPU time: what latency is left
				// when the handler never waits for a CPU.
				var lat, work []time.Duration
				for path, calls := range got.Calls {
					if (kind != "TrainingJob") == (path == webhook.PodPath) {
						for _, c := range calls {
							lat, work = append(lat, c.Wall), append(work, c.CPU)
						}
					}
				}
				hooks := "off"
				if on {
					hooks = "on"
				}
				fmt.Printf("%-5d %-5s %-12s %10s %10.0f %10s %10s %10s %10s %8d %11d %9s %8s %8s %8s  %d (%d)\n", conc, hooks, kind, wall.Round(time.Millisecond), rate,
					fmtPct(lat, 50), fmtPct(lat, 99), fmtPct(work, 50), fmtPct(work, 99), len(lat), got.Handshakes, perCreate[0], perCreate[1], perCreate[2], perCreate[3], errs, timeouts)
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

func fmtPct(ds []time.Duration, p int) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fms", float64(percentile(ds, p).Microseconds())/1000)
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
