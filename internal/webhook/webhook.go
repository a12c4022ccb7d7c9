// Package webhook is Kiln's admission: typed defaulters and validators for every
// Kiln kind, registered in one table (kinds), and the pod webhook that adds GPU
// tolerations, a memory-backed /dev/shm and native sidecars to the pods of Kiln's
// workloads and of opted-in namespaces. It also keeps the serving certificate
// when cert-manager does not.
//
// The checks that need no cluster live in internal/validation and the GPU shape
// logic in internal/placement; this package reads the cluster and turns their
// results into admission responses with field paths and warnings.
package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"kiln.dev/kiln/internal/validation"
)

// Names of what the webhooks need in the cluster; config/webhook holds them.
const (
	MutatingConfigName   = "kiln-mutating-webhooks"
	ValidatingConfigName = "kiln-validating-webhooks"
	ServiceName          = "kiln-webhook-service"
	CertSecretName       = "kiln-webhook-cert"
	// DefaultNamespace is where config/default installs Kiln.
	DefaultNamespace = "kiln-system"
	// PodPath serves the pod webhook.
	PodPath = "/mutate-v1-pod"
)

// Options configure the webhooks; cmd/kiln-manager maps flags onto them.
type Options struct {
	// Enabled serves the webhooks; the other fields matter only then.
	Enabled bool
	// Host and Port the webhook server listens on (default: all addresses, 9443).
	Host string
	Port int
	// CertDir holds tls.crt and tls.key, reloaded when they change: cert-manager's
	// Secret mounted, or a test's. Empty: Kiln issues and renews its own
	// certificate and injects its CA into the webhook configurations.
	CertDir string
	// Namespace Kiln runs in: it holds the certificate Secret, and its pods are
	// never injected (default kiln-system).
	Namespace string
	// CertHosts are further DNS names or IPs the self-issued certificate is valid
	// for, beyond the Service's names (a test's 127.0.0.1, say).
	CertHosts []string
	// CertValidity of a self-issued serving certificate (default a year).
	CertValidity time.Duration
	// CertCheckInterval between checks of the certificate and the caBundle (default a minute).
	CertCheckInterval time.Duration
	// Injection is what the pod webhook adds.
	Injection Injection
	// Policy is what the administrator lets Kiln objects ask of the hosts.
	Policy validation.Policy
	// ShareCertificate, when Kiln issues its own certificate, is given the
	// server's certificate source, for another server of the manager's (push's,
	// whose Service's names go in CertHosts).
	ShareCertificate func(get func(*tls.ClientHelloInfo) (*tls.Certificate, error))
}

func (o Options) withDefaults() Options {
	if o.Port == 0 {
		o.Port = 9443
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.CertValidity == 0 {
		o.CertValidity = 365 * 24 * time.Hour
	}
	if o.CertCheckInterval == 0 {
		o.CertCheckInterval = time.Minute
	}
	return o
}

// Admission reads nodes, namespaces and StorageClasses from the manager's cache and
// nothing a request names; the certificate keeper reads and writes its one Secret in
// Kiln's namespace, by name (the Role below; it creates it the first time), and the
// caBundle of Kiln's two configurations.
//
// +kubebuilder:rbac:groups="",resources=nodes;namespaces,verbs=list;watch
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=list;watch
// +kubebuilder:rbac:groups="",namespace=kiln-system,resources=secrets,verbs=get;update,resourceNames=kiln-webhook-cert
// +kubebuilder:rbac:groups="",namespace=kiln-system,resources=secrets,verbs=create
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;patch,resourceNames=kiln-mutating-webhooks
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;patch,resourceNames=kiln-validating-webhooks

// Setup adds the webhook server, every webhook, and (without CertDir) the
// certificate keeper to mgr, and a readiness check that passes once the server
// serves a certificate the API server trusts.
func Setup(mgr ctrl.Manager, o Options) error {
	o = o.withDefaults()
	serverOpts := crwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir, TLSOpts: []func(*tls.Config){HTTP1Only}}
	if err := WarmCaches(context.Background(), mgr.GetCache()); err != nil {
		return err
	}
	var certs *Certs
	if o.CertDir == "" {
		certs = &Certs{
			Client:     mgr.GetClient(),
			Reader:     mgr.GetAPIReader(),
			Clock:      clock.RealClock{},
			Namespace:  o.Namespace,
			SecretName: CertSecretName,
			DNSNames:   []string{ServiceName + "." + o.Namespace + ".svc", ServiceName + "." + o.Namespace + ".svc.cluster.local"},
			Mutating:   MutatingConfigName,
			Validating: ValidatingConfigName,
			Validity:   o.CertValidity,
			Interval:   o.CertCheckInterval,
		}
		for _, h := range o.CertHosts {
			if ip := net.ParseIP(h); ip != nil {
				certs.IPs = append(certs.IPs, ip)
			} else {
				certs.DNSNames = append(certs.DNSNames, h)
			}
		}
		serverOpts.TLSOpts = append(serverOpts.TLSOpts, func(c *tls.Config) { c.GetCertificate = certs.GetCertificate })
		if o.ShareCertificate != nil {
			o.ShareCertificate(certs.GetCertificate)
		}
		if err := mgr.Add(certs); err != nil {
			return err
		}
	}
	server := crwebhook.NewServer(serverOpts)
	handlers, err := Handlers(mgr.GetScheme(), Cluster{Cached: mgr.GetClient(), Live: mgr.GetAPIReader(), Policy: o.Policy}, o)
	if err != nil {
		return err
	}
	for path, h := range handlers {
		server.Register(path, h)
	}
	if err := mgr.Add(server); err != nil {
		return err
	}
	started := server.StartedChecker()
	return mgr.AddReadyzCheck("webhooks", func(req *http.Request) error {
		if certs != nil {
			if err := certs.Ready(req); err != nil {
				return err
			}
		}
		return started(req)
	})
}

// HTTP1Only keeps the webhook server off HTTP/2, as Kubernetes' own guidance for webhooks
// advises since the HTTP/2 rapid-reset attacks; the API server then opens parallel
// connections instead of queueing streams on one.
func HTTP1Only(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }

// WarmCaches registers the informers the handlers read (nodes, namespaces, StorageClasses)
// before the manager starts, so they sync with its cache rather than on the first admission
// request, which would wait for them.
func WarmCaches(ctx context.Context, informers cache.Informers) error {
	for _, obj := range []client.Object{&corev1.Node{}, &corev1.Namespace{}, &storagev1.StorageClass{}} {
		if _, err := informers.GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
	}
	return nil
}

// Handlers are the webhooks by path. Setup serves them; the benchmark times them.
func Handlers(scheme *runtime.Scheme, c Cluster, o Options) (map[string]http.Handler, error) {
	o = o.withDefaults()
	out := map[string]http.Handler{}
	wrap := func(h admission.Handler) http.Handler {
		return &admission.Webhook{Handler: h, RecoverPanic: ptr.To(true)}
	}
	for _, k := range kinds() {
		gvk, err := apiutil.GVKForObject(k.object, scheme)
		if err != nil {
			return nil, err
		}
		mutate, validate, err := k.handlers(scheme, c)
		if err != nil {
			return nil, err
		}
		mp, vp := paths(gvk)
		if mutate != nil {
			out[mp] = wrap(mutate)
		}
		out[vp] = wrap(validate)
	}
	out[PodPath] = wrap(&podInjector{
		cached:    c.Cached,
		decoder:   admission.NewDecoder(scheme),
		injection: o.Injection,
		excluded:  ExcludedNamespaces(o.Namespace),
	})
	return out, nil
}

// ExcludedNamespaces are never injected: the cluster's own and Kiln's.
func ExcludedNamespaces(kilnNamespace string) []string {
	if kilnNamespace == "" {
		kilnNamespace = DefaultNamespace
	}
	return []string{"kube-system", kilnNamespace}
}

type podInjector struct {
	cached    client.Reader
	decoder   admission.Decoder
	injection Injection
	excluded  []string
}

func (h *podInjector) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	pod := &corev1.Pod{}
	if err := h.decoder.DecodeRaw(req.Object, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	ns := &corev1.Namespace{}
	if err := h.cached.Get(ctx, client.ObjectKey{Name: req.Namespace}, ns); err != nil && !apierrors.IsNotFound(err) {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading namespace %s: %w", req.Namespace, err))
	}
	if reason := Skip(pod, Scope{Namespace: req.Namespace, NamespaceLabels: ns.Labels, Excluded: h.excluded}); reason != "" {
		return admission.Allowed("not injected: " + reason)
	}
	before := pod.DeepCopy()
	if len(Inject(pod, h.injection)) == 0 {
		return admission.Allowed("nothing to inject")
	}
	return admission.Patched("", injectionPatch(before, pod)...)
}

// injectionPatch is the JSON patch from a pod to the same pod injected. Inject
// only appends (tolerations, volumes, mounts, init containers) and sets its
// annotation, so the operations are written out rather than found by diffing
// the two documents, which cost the webhook most of its time per call.
func injectionPatch(before, after *corev1.Pod) []jsonpatch.Operation {
	var ops []jsonpatch.Operation
	appended := func(path string, had, has int, item func(int) any) {
		if had == has {
			return
		}
		if had == 0 {
			items := make([]any, has)
			for i := range items {
				items[i] = item(i)
			}
			ops = append(ops, jsonpatch.NewOperation("add", path, items))
			return
		}
		for i := had; i < has; i++ {
			ops = append(ops, jsonpatch.NewOperation("add", path+"/-", item(i)))
		}
	}
	if before.Annotations == nil {
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", after.Annotations))
	} else {
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+strings.ReplaceAll(AnnotationInjected, "/", "~1"), after.Annotations[AnnotationInjected]))
	}
	b, a := &before.Spec, &after.Spec
	appended("/spec/tolerations", len(b.Tolerations), len(a.Tolerations), func(i int) any { return a.Tolerations[i] })
	appended("/spec/volumes", len(b.Volumes), len(a.Volumes), func(i int) any { return a.Volumes[i] })
	appended("/spec/initContainers", len(b.InitContainers), len(a.InitContainers), func(i int) any { return a.InitContainers[i] })
	for c := range a.Containers {
		mounts := a.Containers[c].VolumeMounts
		appended(fmt.Sprintf("/spec/containers/%d/volumeMounts", c), len(b.Containers[c].VolumeMounts), len(mounts), func(i int) any { return mounts[i] })
	}
	return ops
}
