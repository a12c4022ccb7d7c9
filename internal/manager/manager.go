// Package manager assembles Kiln's controller manager: the scheme, health probes, metrics,
// leader election and every controller. cmd/kiln-manager and the local Kiln both run it.
package manager

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Options configure the manager; cmd/kiln-manager maps its flags onto them.
type Options struct {
	// MetricsAddr serves Prometheus metrics; "0" turns them off.
	MetricsAddr string
	// SecureMetrics serves metrics over HTTPS, allowing only callers the API server authorises
	// for GET /metrics (a TokenReview and SubjectAccessReview per scrape).
	SecureMetrics bool
	// ProbeAddr serves /healthz and /readyz; "0" turns them off.
	ProbeAddr string
	// LeaderElection makes replicas take turns, so two managers never act on the same object.
	LeaderElection bool
	// LeaderElectionNamespace holds the lease; the manager's own namespace when empty.
	LeaderElectionNamespace string
}

// LeaderElectionID names the lease replicas compete for.
const LeaderElectionID = "kiln-manager.kiln.dev"

// Scheme knows the built-in kinds and Kiln's.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// New builds a manager with every Kiln controller registered.
func New(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	metrics := metricsserver.Options{BindAddress: o.MetricsAddr, SecureServing: o.SecureMetrics}
	if o.SecureMetrics {
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metrics,
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// The manager exits at once when it loses the lease, so a new leader never overlaps it.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}
