// Package manager assembles Kiln's controller manager: the scheme, health probes, metrics,
// leader election and every controller. cmd/kiln-manager and the local Kiln both run it.
package manager

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controller/admission"
	"kiln.dev/kiln/internal/controller/modelserver"
	"kiln.dev/kiln/internal/controller/notebook"
	"kiln.dev/kiln/internal/controller/trainingjob"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/tokens"
	"kiln.dev/kiln/internal/validation"
	"kiln.dev/kiln/internal/webhook"
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
	// PprofAddr serves Go's profiles (/debug/pprof); "" or "0" turns them off.
	PprofAddr string
	// LeaderElection makes replicas take turns, so two managers never act on the same object.
	LeaderElection bool
	// LeaderElectionNamespace holds the lease; the manager's own namespace when empty.
	LeaderElectionNamespace string
	// QPS and Burst bound the manager's requests to the API server (defaults 50 and 100):
	// client-go's 5/10 would make a thousand-job burst wait minutes on the client side.
	QPS   float32
	Burst int
	// MaxConcurrentReconciles is how many objects each controller works on at once (default 4).
	MaxConcurrentReconciles int
	// Policy is what the administrator lets Kiln objects ask of the hosts.
	Policy validation.Policy
	// Webhooks configure admission; off unless Webhooks.Enabled.
	Webhooks webhook.Options
	// Sweep configures how Sweeps' trials report metrics.
	Sweep SweepOptions
	// SkipNameValidation lets a process build a second manager after the first
	// stopped (tests that restart it); controller names are otherwise process-unique.
	SkipNameValidation bool
	// Namespace is Kiln's own (default kiln-system): where the kiln-serving ConfigMap is.
	Namespace string
	// FetchImage is the image of cmd/kiln-fetch, which downloads s3://, gs:// and https://
	// data inputs and models; the kiln-serving ConfigMap's fetchImage wins for ModelServers.
	FetchImage string
	// Push configures push-to-deploy, served on its own port; off unless Push.Enabled.
	Push PushOptions
}

// LeaderElectionID names the lease replicas compete for.
const LeaderElectionID = "kiln-manager.kiln.dev"

// Scheme knows the built-in kinds and Kiln's.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	// ModelServer canaries use HTTPRoutes where the cluster has them.
	if err := gatewayv1.Install(s); err != nil {
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
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = orDefault(o.QPS, 50), orDefault(o.Burst, 100)
	metrics := metricsserver.Options{BindAddress: o.MetricsAddr, SecureServing: o.SecureMetrics}
	if o.SecureMetrics {
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	kilnOnly := labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.ManagedBy})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metrics,
		HealthProbeBindAddress:  o.ProbeAddr,
		PprofBindAddress:        o.PprofAddr,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// The manager exits at once when it loses the lease, so a new leader never overlaps it.
		LeaderElectionReleaseOnCancel: true,
		Controller: config.Controller{
			MaxConcurrentReconciles: orDefault(o.MaxConcurrentReconciles, 4),
			SkipNameValidation:      &o.SkipNameValidation,
		},
		Cache: cache.Options{
			// Nothing reads managedFields from the cache, and they are a large part of every
			// pod and Job it holds. An update without them keeps the stored ones.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				// Only Kiln's own: a cluster's ConfigMaps are many and none of the
				// others' business. Secrets are not here: see Client below.
				&corev1.ConfigMap{}: {Label: kilnOnly},
				// Admission notices Kiln's pods finish; other pods are read live when
				// a pass needs them.
				&corev1.Pod{}: {Label: kilnOnly},
			},
		},
		// Secrets are never cached: a cache needs list and watch of every Secret in the
		// cluster (RBAC cannot restrict those by label). The manager creates the Secrets
		// it makes and reads only its own two, by name, in its namespace.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	keys := &tokens.Keyring{Reader: mgr.GetAPIReader(), Writer: mgr.GetClient(), Namespace: orDefault(o.Namespace, "kiln-system")}
	// Pod logs (checkpoints, trials' metrics) need a clientset; controller-runtime's client has no logs.
	pods, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	admitter := &admission.Admitter{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("kiln-admission"),
	}
	if err := admitter.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up gang admission: %w", err)
	}
	// Every kind's pods are injected as they are rendered, so none of Kiln's pods
	// waits for (or fails without) its pod webhook.
	inject := func(t *corev1.PodTemplateSpec) { webhook.InjectTemplate(t, o.Webhooks.Injection) }
	err = (&trainingjob.Reconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Logs:       pods,
		FetchImage: o.FetchImage,
		Inject:     inject,
		PlaceNew:   admitter.PlaceNew,
		Recorder:   mgr.GetEventRecorder("kiln-trainingjob"),
		Clock:      clock.RealClock{},
		Policy:     o.Policy,
	}).SetupWithManager(mgr)
	if err != nil {
		return nil, fmt.Errorf("setting up the TrainingJob controller: %w", err)
	}
	err = (&notebook.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("kiln-notebook"),
		Clock:     clock.RealClock{},
		Tokens:    keys,
		Inject:    inject,
		Policy:    o.Policy,
	}).SetupWithManager(mgr)
	if err != nil {
		return nil, fmt.Errorf("setting up the Notebook controller: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a discovery client: %w", err)
	}
	err = (&modelserver.Reconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Recorder:   mgr.GetEventRecorder("kiln-modelserver"),
		Clock:      clock.RealClock{},
		Namespace:  orDefault(o.Namespace, "kiln-system"),
		FetchImage: o.FetchImage,
		Gateway:    &modelserver.GatewayDetector{Discovery: disco, Clock: clock.RealClock{}, TTL: 10 * time.Second},
		Inject:     inject,
		Policy:     o.Policy,
	}).SetupWithManager(mgr)
	if err != nil {
		return nil, fmt.Errorf("setting up the ModelServer controller: %w", err)
	}
	if o.Push.Enabled {
		if err := addPush(mgr, o.Push, &o.Webhooks, orDefault(o.Namespace, "kiln-system")); err != nil {
			return nil, fmt.Errorf("setting up push-to-deploy: %w", err)
		}
	}
	if o.Webhooks.Enabled {
		o.Webhooks.Policy = o.Policy
		o.Webhooks.Namespace = orDefault(o.Webhooks.Namespace, o.Namespace)
		if err := webhook.Setup(mgr, o.Webhooks); err != nil {
			return nil, fmt.Errorf("setting up the webhooks: %w", err)
		}
	}
	if err := addSweep(mgr, o.Sweep, pods, keys); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
