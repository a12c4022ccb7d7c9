// Command kiln-manager runs Kiln's controllers and webhooks in a cluster.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/push"
	"kiln.dev/kiln/internal/source"
	"kiln.dev/kiln/internal/webhook"
)

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func main() {
	var o manager.Options
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8443", `address of the metrics endpoint; "0" turns it off`)
	flag.BoolVar(&o.SecureMetrics, "metrics-secure", true, "serve metrics over HTTPS to callers authorised for GET /metrics")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&o.PprofAddr, "pprof-bind-address", "0", `address of Go's profiles (/debug/pprof), for measuring; "0" turns them off`)
	flag.BoolVar(&o.LeaderElection, "leader-elect", true, "take a lease so that only one replica acts at a time")
	flag.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the lease (default: the manager's own)")
	flag.Func("kube-api-qps", "queries per second to the API server (default 50)", func(v string) error {
		q, err := strconv.ParseFloat(v, 32)
		o.QPS = float32(q)
		return err
	})
	flag.IntVar(&o.Burst, "kube-api-burst", 100, "burst of queries to the API server")
	flag.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "objects each controller works on at once")
	flag.StringVar(&o.FetchImage, "fetch-image", "", "image of cmd/kiln-fetch, which downloads s3://, gs:// and https:// data and models (the kiln-serving ConfigMap's fetchImage wins for ModelServers)")
	flag.BoolVar(&o.Policy.AllowHostPath, "allow-host-path", false, "let TrainingJob pod overlays mount hostPath volumes")
	flag.BoolVar(&o.Policy.AllowHostNetwork, "allow-host-network", false, "let TrainingJobs use the node's network namespace (network.hostNetwork)")
	flag.Func("allow-capabilities", "comma-separated Linux capabilities (such as IPC_LOCK) a containerSecurityContext may add besides NET_BIND_SERVICE; ALL allows any", func(v string) error {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				o.Policy.AllowedCapabilities = append(o.Policy.AllowedCapabilities, corev1.Capability(c))
			}
		}
		return nil
	})
	flag.BoolVar(&o.Policy.AllowPrivileged, "allow-privileged", false, "let security contexts ask for privileged containers, privilege escalation, Unconfined seccomp/AppArmor or an unmasked /proc")
	flag.BoolVar(&o.Policy.AllowRoot, "allow-root", false, "let security contexts run containers as root (runAsUser 0, runAsNonRoot false)")
	flag.BoolVar(&o.Webhooks.Enabled, "webhooks", true, "serve the admission webhooks")
	flag.IntVar(&o.Webhooks.Port, "webhook-port", 9443, "port of the webhook server")
	flag.StringVar(&o.Webhooks.CertDir, "webhook-cert-dir", "", "serve tls.crt and tls.key from this folder (cert-manager); empty: Kiln issues and rotates its own certificate")
	flag.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "Kiln's own namespace (default kiln-system): holds the webhook certificate Secret and the kiln-serving ConfigMap; its pods are never injected")
	injection := flag.String("injection-config", "", "YAML file of what the pod webhook injects (GPU resources, /dev/shm, sidecars); see docs/admission.md")
	flag.StringVar(&o.Sweep.MetricsAddr, "sweep-metrics-bind-address", "0", `address where Sweeps' trials push metrics; "0" turns it off (trials then report on stdout only)`)
	flag.StringVar(&o.Sweep.MetricsURL, "sweep-metrics-url", "", "base URL trials reach that address at, such as http://kiln-sweep-metrics.kiln-system.svc:8444")
	flag.StringVar(&o.Sweep.MetricsCertDir, "sweep-metrics-cert-dir", "", "directory with tls.crt and tls.key to serve trials' pushes over HTTPS")
	flag.DurationVar(&o.Sweep.LogInterval, "sweep-log-interval", 15*time.Second, "how often running trials' logs are read for kiln-metric lines; negative turns it off")
	flag.BoolVar(&o.Push.Enabled, "push", false, "serve push-to-deploy's receiver (/push/github, /push/gitlab) on --push-bind-address and run its build Jobs; see docs/push-to-deploy.md")
	flag.StringVar(&o.Push.Server.Addr, "push-bind-address", push.DefaultAddr, "address of the push receiver's own HTTPS server (never the webhook port)")
	flag.StringVar(&o.Push.Server.CertDir, "push-cert-dir", "", "serve the push receiver with tls.crt and tls.key from this folder; empty: the webhooks' certificate")
	flag.StringVar(&o.Push.Build.BuildImage, "push-build-image", "", "image of cmd/kiln-build, which runs source builds as Jobs in the object's namespace; empty refuses source builds")
	flag.StringVar(&o.Push.Build.BaseImage, "push-base-image", "", "base image of source builds whose object names none (default: per language)")
	flag.StringVar(&o.Push.Build.BuilderImage, "push-builder-image", "", "image that runs Dockerfile builds, taking Kaniko's executor flags; empty refuses Dockerfile builds")
	flag.BoolVar(&o.Push.Build.Insecure, "push-insecure-registry", false, "let builds push to registries over plain HTTP")
	flag.DurationVar(&o.Push.Build.BuildTimeout, "push-build-timeout", 20*time.Minute, "deadline of a build Job")
	flag.Func("push-allowed-hosts", "comma-separated repository hosts (host or host:port) exempt from the address checks, such as a Git server inside the cluster", func(v string) error {
		o.Push.AllowedHosts = splitList(v)
		return nil
	})
	flag.Func("push-denied-cidrs", "comma-separated ranges repository hosts may not resolve into: the cluster's Service and pod CIDRs (default "+strings.Join(source.DefaultDeniedCIDRs, ",")+"); loopback, link-local and unspecified addresses are always refused", func(v string) error {
		o.Push.DeniedCIDRs = append([]string{}, splitList(v)...)
		_, err := source.ParseCIDRs(o.Push.DeniedCIDRs)
		return err
	})
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	var err error
	if o.Webhooks.Injection, err = webhook.LoadInjection(*injection); err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager:", err)
		os.Exit(1)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager: no cluster configuration:", err)
		os.Exit(1)
	}
	mgr, err := manager.New(cfg, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager:", err)
		os.Exit(1)
	}
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		fmt.Fprintln(os.Stderr, "kiln-manager:", err)
		os.Exit(1)
	}
}
