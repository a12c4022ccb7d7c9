package manager

import (
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"kiln.dev/kiln/internal/controller/sweep"
	"kiln.dev/kiln/internal/tokens"
)

// SweepOptions configure how trials report metrics to the manager.
type SweepOptions struct {
	// MetricsAddr is where the push server listens, such as ":8444"; empty or "0"
	// turns it off, leaving trials the stdout protocol only.
	MetricsAddr string
	// MetricsURL is the base URL trials reach the push server at, such as
	// https://kiln-sweep-metrics.kiln-system.svc:8444; required with MetricsAddr.
	MetricsURL string
	// MetricsCertDir holds tls.crt and tls.key for the push server; empty serves
	// plain HTTP.
	MetricsCertDir string
	// LogInterval is how often running trials' logs are read for kiln-metric lines
	// (default 15s); negative turns it off.
	LogInterval time.Duration
}

// addSweep adds the Sweep controller and its metrics readers; pods reads trials' logs.
func addSweep(mgr ctrl.Manager, o SweepOptions, pods kubernetes.Interface, keys tokens.Source) error {
	recorder := &sweep.Recorder{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}
	push := o.MetricsAddr != "" && o.MetricsAddr != "0"
	if push && o.MetricsURL == "" {
		return fmt.Errorf("the sweep metrics server needs the URL trials reach it at")
	}
	if !push {
		o.MetricsURL = ""
	}
	err := (&sweep.Reconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Recorder:   mgr.GetEventRecorder("kiln-sweep"),
		Clock:      clock.RealClock{},
		MetricsURL: o.MetricsURL,
		Tokens:     keys,
	}).SetupWithManager(mgr)
	if err != nil {
		return fmt.Errorf("setting up the Sweep controller: %w", err)
	}
	if push {
		srv := &sweep.MetricsServer{Addr: o.MetricsAddr, CertDir: o.MetricsCertDir, Client: mgr.GetClient(), Tokens: keys, Recorder: recorder}
		if err := mgr.Add(srv); err != nil {
			return err
		}
	}
	if o.LogInterval >= 0 {
		poller := &sweep.LogPoller{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Pods: pods, Recorder: recorder, Interval: orDefault(o.LogInterval, 15*time.Second)}
		if err := mgr.Add(poller); err != nil {
			return err
		}
	}
	return nil
}
