// Command kiln-manager runs Kiln's controllers and webhooks in a cluster.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"kiln.dev/kiln/internal/manager"
)

func main() {
	var o manager.Options
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8443", `address of the metrics endpoint; "0" turns it off`)
	flag.BoolVar(&o.SecureMetrics, "metrics-secure", true, "serve metrics over HTTPS to callers authorised for GET /metrics")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.BoolVar(&o.LeaderElection, "leader-elect", true, "take a lease so that only one replica acts at a time")
	flag.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the lease (default: the manager's own)")
	flag.Func("kube-api-qps", "queries per second to the API server (default 50)", func(v string) error {
		q, err := strconv.ParseFloat(v, 32)
		o.QPS = float32(q)
		return err
	})
	flag.IntVar(&o.Burst, "kube-api-burst", 100, "burst of queries to the API server")
	flag.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "objects each controller works on at once")
	flag.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "Kiln's own namespace, where the kiln-serving ConfigMap is (default kiln-system)")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

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
