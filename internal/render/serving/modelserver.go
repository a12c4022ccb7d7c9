// Package serving turns a ModelServer into the plain Kubernetes objects that
// serve it. It is pure: the controller applies its output, export prints it,
// and golden tests check it.
//
// Each version (stable, and the canary while there is one) is a Deployment with
// a PodDisruptionBudget and, when its replica bounds differ, a
// HorizontalPodAutoscaler. One Service, named like the ModelServer, selects the
// pods of both versions: its DNS name is the model's address. With Gateway API
// a per-version Service each and an HTTPRoute attached to the main Service
// split requests by weight, exactly; without it the Service spreads requests
// over all ready pods, so the split follows the replica ratio, which the replica
// bounds are divided by.
package serving

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"text/template"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
)

// Well-known values of the rendered objects.
const (
	// ContainerName is the model server's container.
	ContainerName = "server"
	// FetchContainerName is the init step that downloads object-storage models.
	FetchContainerName = "kiln-fetch"
	// PortName names the server's container port; Services target it by name,
	// so stable and canary may listen on different ports.
	PortName = "serving"
	// ServicePort is the port of the model's URL.
	ServicePort = 80
	// ModelDir is where the model is mounted, read-only.
	ModelDir = "/kiln/model"

	TrackStable = "stable"
	TrackCanary = "canary"

	// MetricConcurrency is the pods metric the autoscaler reads for
	// spec.replicas.targetConcurrency.
	MetricConcurrency = "kiln_requests_in_flight"
	// DefaultCPUUtilization is the autoscaler's CPU target when none is given.
	DefaultCPUUtilization = 80

	volumeModel = "kiln-model"
	volumeTmp   = "kiln-tmp"
)

// Environment variables Kiln sets in the server container, for custom runtimes.
const (
	EnvModelDir  = "KILN_MODEL_DIR"
	EnvModelName = "KILN_MODEL_NAME"
	EnvPort      = "KILN_PORT"
)

// Options are the cluster facts and settings that are not in the ModelServer.
type Options struct {
	// Config holds the runtime presets and the download image.
	Config Config
	// GatewayAPI says the cluster serves HTTPRoutes, so a canary gets an exact
	// weighted split.
	GatewayAPI bool
	// OwnerReferences makes the ModelServer the controller of what is rendered.
	// Export leaves them out, so the output applies to a cluster without Kiln.
	OwnerReferences bool
}

// Objects are the native objects of a ModelServer.
type Objects struct {
	// Service is the model's address, selecting the pods of both versions.
	Service *corev1.Service
	// Stable and Canary are the versions; Canary is nil without spec.canary.
	Stable, Canary *Track
	// Route splits requests by weight (Gateway API with a canary only).
	Route *gatewayv1.HTTPRoute
	// Traffic is the split this rendering puts in force.
	Traffic v1alpha1.TrafficStatus
}

// Track is one version's objects.
type Track struct {
	Deployment *appsv1.Deployment
	// Service selects this version only (Gateway API with a canary only).
	Service *corev1.Service
	// HPA is nil when the version's replica bounds are equal.
	HPA *autoscalingv2.HorizontalPodAutoscaler
	PDB *policyv1.PodDisruptionBudget
	// MinReplicas and MaxReplicas are this version's share of spec.replicas.
	MinReplicas, MaxReplicas int32
	// ModelURI is the model this version serves.
	ModelURI string
}

// List returns the objects in the order to apply them: Services first, the route last.
func (o Objects) List() []render.Object {
	out := []render.Object{o.Service}
	for _, t := range []*Track{o.Stable, o.Canary} {
		if t == nil {
			continue
		}
		if t.Service != nil {
			out = append(out, t.Service)
		}
		out = append(out, t.Deployment, t.PDB)
		if t.HPA != nil {
			out = append(out, t.HPA)
		}
	}
	if o.Route != nil {
		out = append(out, o.Route)
	}
	return out
}

// URL is the model's address inside the cluster.
func URL(ms *v1alpha1.ModelServer) string {
	return fmt.Sprintf("http://%s.%s.svc", ms.Name, ms.Namespace)
}

// DeploymentName is the Deployment of a version: the ModelServer's name for the
// stable one, so that promoting rolls it rather than replacing it.
func DeploymentName(ms string, track string) string {
	if track == TrackStable {
		return ms
	}
	return ms + "-" + track
}

// TrackServiceName is the per-version Service an HTTPRoute sends requests to.
func TrackServiceName(ms, track string) string { return ms + "-" + track }

// ModelClaim is the claim a pvc:// or trainingjob:// URI mounts and the path in
// it; ok is false for object storage.
func ModelClaim(uri string) (claim, subPath string, ok bool) {
	if rest, found := strings.CutPrefix(uri, "trainingjob://"); found {
		return render.PVCName(rest, "output"), "", true
	}
	if rest, found := strings.CutPrefix(uri, "pvc://"); found {
		claim, sub, _ := strings.Cut(rest, "/")
		return claim, strings.Trim(sub, "/"), true
	}
	return "", "", false
}

// ModelServer renders ms.
func ModelServer(ms *v1alpha1.ModelServer, opts Options) (Objects, error) {
	r := &renderer{ms: ms, opts: opts}
	var pct int32
	if c := ms.Spec.Canary; c != nil {
		pct = c.TrafficPercent
	}
	minR, maxR := ptr.Deref(ms.Spec.Replicas.Min, 1), ptr.Deref(ms.Spec.Replicas.Max, 1)
	if minR < 1 || maxR < minR {
		return Objects{}, fmt.Errorf("spec.replicas: min %d and max %d must satisfy 1 <= min <= max", minR, maxR)
	}
	split := func(n int32) (int32, int32) { return splitReplicas(n, pct, opts.GatewayAPI) }

	stableMin, canaryMin := split(minR)
	stableMax, canaryMax := split(maxR)
	if !opts.GatewayAPI && pct > 0 && pct < 100 {
		// The Service spreads requests over ready pods, so the ratio is the split:
		// rather than give a 10 % canary half the requests at 1 + 1, grow the stable
		// side at minimum scale as far as max allows.
		stableMin, canaryMin = ratioSplit(minR, maxR, pct)
		stableMax, canaryMax = max(stableMax, stableMin), max(canaryMax, canaryMin)
	}
	var objs Objects
	var err error
	if objs.Stable, err = r.track(TrackStable, ms.Spec.Model, ms.Spec.Runtime, stableMin, stableMax); err != nil {
		return Objects{}, err
	}
	objs.Service = r.service(ms.Name, r.selector(""))
	objs.Traffic = v1alpha1.TrafficStatus{Method: v1alpha1.TrafficNone, StablePercent: 100,
		Message: "no canary: the stable version gets every request"}
	c := ms.Spec.Canary
	if c == nil {
		return objs, nil
	}
	model, runtime := ms.Spec.Model, ms.Spec.Runtime
	if c.Model != nil {
		model = *c.Model
	}
	if c.Runtime != nil {
		runtime = *c.Runtime
	}
	if objs.Canary, err = r.track(TrackCanary, model, runtime, canaryMin, canaryMax); err != nil {
		return Objects{}, err
	}
	if !opts.GatewayAPI {
		objs.Traffic = v1alpha1.TrafficStatus{Method: v1alpha1.TrafficReplicaRatio, StablePercent: 100 - pct, CanaryPercent: pct,
			Message: fmt.Sprintf("Gateway API is not installed: the Service spreads requests over the ready pods of both versions, "+
				"so the canary's share follows the replica ratio (%d:%d at minimum scale), approximating %d%%", stableMin, canaryMin, pct)}
		return objs, nil
	}
	for _, t := range []struct {
		name string
		tr   *Track
	}{{TrackStable, objs.Stable}, {TrackCanary, objs.Canary}} {
		t.tr.Service = r.service(TrackServiceName(ms.Name, t.name), r.selector(t.name))
	}
	objs.Route = r.route(pct)
	objs.Traffic = v1alpha1.TrafficStatus{Method: v1alpha1.TrafficHTTPRoute, StablePercent: 100 - pct, CanaryPercent: pct,
		Message: fmt.Sprintf("HTTPRoute %s splits requests %d/%d by weight", ms.Name, 100-pct, pct)}
	return objs, nil
}

// splitReplicas divides n pods between stable and canary by the canary's share.
// With an exact (weighted) split the canary always keeps a warm pod, and the
// stable version one for a quick rollback; with a replica-ratio split a 0 %
// canary must have no ready pod at all, or it would get requests.
func splitReplicas(n, pct int32, exact bool) (stable, canary int32) {
	if pct == 0 && !exact {
		return n, 0
	}
	canary = int32(math.Round(float64(n) * float64(pct) / 100))
	if canary < 1 && (pct > 0 || exact) {
		canary = 1
	}
	stable = n - canary
	if stable < 1 {
		stable = 1
	}
	return stable, canary
}

// ratioSplit is the split of between lo and hi pods whose canary share comes
// closest to pct, the fewest pods on a tie. It looks no further than the size at
// which the smaller side gets its first pod (10 for 10 %), so a 7 % canary runs
// 13 + 1, not 93 + 7: past that, more pods buy only rounding.
func ratioSplit(lo, hi, pct int32) (stable, canary int32) {
	limit := max(lo, min(hi, max(int32(math.Round(100/float64(pct))), int32(math.Round(100/float64(100-pct))))))
	best := math.Inf(1)
	for n := lo; n <= limit; n++ {
		c := min(max(int32(math.Round(float64(n)*float64(pct)/100)), 1), n-1)
		if n == 1 {
			c = 1 // one pod cannot split; the canary keeps it, as splitReplicas does
		}
		if e := math.Abs(float64(c)/float64(n)*100 - float64(pct)); e < best {
			best, stable, canary = e, max(n-c, 1), c
		}
	}
	return stable, canary
}

type renderer struct {
	ms   *v1alpha1.ModelServer
	opts Options
}

func (r *renderer) meta(name string, labels map[string]string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: r.ms.Namespace, Labels: labels}
	if r.opts.OwnerReferences {
		m.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(r.ms, v1alpha1.GroupVersion.WithKind("ModelServer"))}
	}
	return m
}

// selector selects the pods of one version, or of both when track is empty.
func (r *renderer) selector(track string) map[string]string {
	s := map[string]string{v1alpha1.LabelModelServer: r.ms.Name}
	if track != "" {
		s[v1alpha1.LabelTrack] = track
	}
	return s
}

func (r *renderer) labels(track string) map[string]string {
	l := r.selector(track)
	l[render.LabelManagedBy] = render.ManagedBy
	return l
}

func (r *renderer) service(name string, selector map[string]string) *corev1.Service {
	port := corev1.ServicePort{Name: "http", Port: ServicePort, TargetPort: intstr.FromString(PortName), Protocol: corev1.ProtocolTCP}
	if r.protocol(r.ms.Spec.Runtime) == v1alpha1.ProtocolGRPC {
		port.Name, port.AppProtocol = "grpc", ptr.To("kubernetes.io/h2c")
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: r.meta(name, r.labels("")),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector,
			Ports:    []corev1.ServicePort{port},
		},
	}
}

func (r *renderer) protocol(rt v1alpha1.ServingRuntime) v1alpha1.ServingProtocol {
	if rt.Protocol != "" {
		return rt.Protocol
	}
	if p, ok := r.opts.Config.Presets[rt.Preset]; ok && p.Protocol != "" {
		return p.Protocol
	}
	return v1alpha1.ProtocolHTTP
}

// route attaches to the main Service (the Gateway API's mesh binding), so a
// mesh splits requests to the model's URL exactly by weight.
func (r *renderer) route(pct int32) *gatewayv1.HTTPRoute {
	backend := func(track string, weight int32) gatewayv1.HTTPBackendRef {
		return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{
				Group: ptr.To(gatewayv1.Group("")),
				Kind:  ptr.To(gatewayv1.Kind("Service")),
				Name:  gatewayv1.ObjectName(TrackServiceName(r.ms.Name, track)),
				Port:  ptr.To(gatewayv1.PortNumber(ServicePort)),
			},
			Weight: ptr.To(weight),
		}}
	}
	return &gatewayv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: r.meta(r.ms.Name, r.labels("")),
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Group: ptr.To(gatewayv1.Group("")),
				Kind:  ptr.To(gatewayv1.Kind("Service")),
				Name:  gatewayv1.ObjectName(r.ms.Name),
				Port:  ptr.To(gatewayv1.PortNumber(ServicePort)),
			}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{
				backend(TrackStable, 100-pct), backend(TrackCanary, pct),
			}}},
		},
	}
}

// runtime is a ModelServer's runtime with its preset filled in.
type runtime struct {
	Preset
	name     string // of the preset, if one
	protocol v1alpha1.ServingProtocol
}

// resolve fills a runtime's unset fields from its preset.
func (r *renderer) resolve(rt v1alpha1.ServingRuntime, field string) (runtime, error) {
	var out runtime
	if rt.Preset != "" {
		p, ok := r.opts.Config.Presets[rt.Preset]
		if !ok {
			return runtime{}, &UnknownPresetError{Field: field + ".preset", Preset: rt.Preset, Known: r.opts.Config.PresetNames()}
		}
		out.Preset, out.name = p, rt.Preset
		out.Command, out.Args, out.Env = slices.Clone(p.Command), slices.Clone(p.Args), maps.Clone(p.Env)
	}
	if rt.Image != "" {
		out.Image = rt.Image
	}
	if rt.Command != nil {
		out.Command = slices.Clone(rt.Command)
	}
	if rt.Args != nil {
		out.Args = slices.Clone(rt.Args)
	}
	if rt.Port != nil {
		out.Port = *rt.Port
	}
	if rt.ReadinessPath != "" {
		out.ReadinessPath = rt.ReadinessPath
	}
	out.protocol = r.protocol(rt)
	if out.Image == "" || out.Port == 0 {
		return runtime{}, fmt.Errorf("%s: a runtime without a preset needs image and port", field)
	}
	return out, nil
}

// UnknownPresetError says a runtime names a preset the configuration lacks.
type UnknownPresetError struct {
	Field, Preset string
	Known         []string
}

func (e *UnknownPresetError) Error() string {
	return fmt.Sprintf("%s: no preset %q in the %s ConfigMap (known: %s)", e.Field, e.Preset, ConfigMapName, strings.Join(e.Known, ", "))
}

// templateData is what command, args and preset env values may refer to.
type templateData struct {
	ModelDir, ModelName, Format string
	Port                        int32
}

func expand(s string, data templateData) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	t, err := template.New("").Option("missingkey=error").Parse(s)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

func expandAll(in []string, data templateData) ([]string, error) {
	var out []string
	for _, s := range in {
		v, err := expand(s, data)
		if err != nil {
			return nil, fmt.Errorf("expanding %q: %w", s, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (r *renderer) field(track string) string {
	if track == TrackStable {
		return "spec"
	}
	return "spec.canary"
}

func (r *renderer) track(track string, model v1alpha1.ModelSource, rt v1alpha1.ServingRuntime, minR, maxR int32) (*Track, error) {
	field := r.field(track)
	res, err := r.resolve(rt, field+".runtime")
	if err != nil {
		return nil, err
	}
	name := DeploymentName(r.ms.Name, track)
	pod, err := r.podTemplate(track, model, res)
	if err != nil {
		return nil, err
	}
	t := &Track{MinReplicas: minR, MaxReplicas: maxR, ModelURI: model.URI}
	t.Deployment = &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: r.meta(name, r.labels(track)),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(minR),
			Selector: &metav1.LabelSelector{MatchLabels: r.selector(track)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				// A new model takes a while to load: never serve with fewer pods
				// than asked for while it does.
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
				},
			},
			Template: pod,
		},
	}
	t.PDB = &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: r.meta(name, r.labels(track)),
		Spec: policyv1.PodDisruptionBudgetSpec{
			// One pod at a time may go for a node drain; a pod that never became
			// ready (a crash loop) does not hold the drain up.
			MaxUnavailable:             ptr.To(intstr.FromInt32(1)),
			Selector:                   &metav1.LabelSelector{MatchLabels: r.selector(track)},
			UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
		},
	}
	if maxR > minR {
		t.HPA = r.hpa(name, track, minR, maxR)
	}
	return t, nil
}

func (r *renderer) hpa(name, track string, minR, maxR int32) *autoscalingv2.HorizontalPodAutoscaler {
	spec := r.ms.Spec.Replicas
	metric := autoscalingv2.MetricSpec{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{
			Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(ptr.Deref(spec.TargetCPUUtilization, DefaultCPUUtilization)),
		}},
	}
	if c := spec.TargetConcurrency; c != nil {
		metric = autoscalingv2.MetricSpec{
			Type: autoscalingv2.PodsMetricSourceType,
			Pods: &autoscalingv2.PodsMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: MetricConcurrency},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(int64(*c), resource.DecimalSI)},
			},
		}
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: r.meta(name, r.labels(track)),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    ptr.To(minR),
			MaxReplicas:    maxR,
			Metrics:        []autoscalingv2.MetricSpec{metric},
		},
	}
}

func (r *renderer) podTemplate(track string, model v1alpha1.ModelSource, rt runtime) (corev1.PodTemplateSpec, error) {
	field := r.field(track)
	data := templateData{ModelDir: ModelDir, ModelName: r.ms.Name, Format: model.Format, Port: rt.Port}
	command, err := expandAll(rt.Command, data)
	if err != nil {
		return corev1.PodTemplateSpec{}, fmt.Errorf("%s.runtime.command: %w", field, err)
	}
	args, err := expandAll(rt.Args, data)
	if err != nil {
		return corev1.PodTemplateSpec{}, fmt.Errorf("%s.runtime.args: %w", field, err)
	}
	var env []corev1.EnvVar
	for _, k := range slices.Sorted(maps.Keys(rt.Env)) {
		v, err := expand(rt.Env[k], data)
		if err != nil {
			return corev1.PodTemplateSpec{}, fmt.Errorf("preset %s: env %s: %w", rt.name, k, err)
		}
		env = setEnv(env, corev1.EnvVar{Name: k, Value: v})
	}
	for _, e := range r.ms.Spec.Env {
		env = setEnv(env, *e.DeepCopy())
	}
	env = setEnv(env, corev1.EnvVar{Name: EnvModelDir, Value: ModelDir})
	env = setEnv(env, corev1.EnvVar{Name: EnvModelName, Value: r.ms.Name})
	env = setEnv(env, corev1.EnvVar{Name: EnvPort, Value: fmt.Sprint(rt.Port)})

	volumes, inits, err := r.modelVolume(model, field)
	if err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	// Servers write caches and logs; /tmp is theirs.
	volumes = append(volumes, corev1.Volume{Name: volumeTmp, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	// Servers such as Triton and vLLM share tensors between processes through
	// /dev/shm. It is rendered here, as for TrainingJobs, rather than left to
	// Kiln's pod webhook, so serving pods are created (and rescheduled) while the
	// manager is down.
	shmVolumes, shmMounts := render.SharedMemory(nil)
	volumes = append(volumes, shmVolumes...)

	probe := &corev1.Probe{PeriodSeconds: 5, FailureThreshold: 3, TimeoutSeconds: 2}
	if rt.ReadinessPath != "" && rt.protocol == v1alpha1.ProtocolHTTP {
		probe.HTTPGet = &corev1.HTTPGetAction{Path: rt.ReadinessPath, Port: intstr.FromString(PortName)}
	} else {
		probe.TCPSocket = &corev1.TCPSocketAction{Port: intstr.FromString(PortName)}
	}
	c := corev1.Container{
		Name:    ContainerName,
		Image:   rt.Image,
		Command: command,
		Args:    args,
		Env:     env,
		Ports:   []corev1.ContainerPort{{Name: PortName, ContainerPort: rt.Port, Protocol: corev1.ProtocolTCP}},
		// Loading a large model takes minutes: the startup probe allows up to
		// 20 of them before the kubelet gives up on the container.
		StartupProbe:   &corev1.Probe{ProbeHandler: probe.ProbeHandler, PeriodSeconds: 5, FailureThreshold: 240, TimeoutSeconds: 2},
		ReadinessProbe: probe,
		Resources:      r.resources(),
		VolumeMounts: append([]corev1.VolumeMount{
			{Name: volumeModel, MountPath: ModelDir, SubPath: modelSubPath(model.URI), ReadOnly: true},
			{Name: volumeTmp, MountPath: "/tmp"},
		}, shmMounts...),
		// Not a read-only root filesystem: servers such as TorchServe write logs
		// beside their home directory, and Kiln does not know every image's paths.
		SecurityContext: render.WithContainerOverlay(serverContainer(), r.ms.Spec.ContainerSecurityContext),
	}
	podSC := render.RestrictedPod(ptr.To[int64](ServingUser))
	podSC.RunAsUser, podSC.RunAsGroup = ptr.To[int64](ServingUser), ptr.To[int64](ServingUser)
	pod := corev1.PodSpec{
		EnableServiceLinks: ptr.To(false),
		// Models are read, not written: the pods need no API access.
		AutomountServiceAccountToken: ptr.To(false),
		SecurityContext:              podSC,
		Tolerations:                  r.tolerations(),
		InitContainers:               inits,
		Containers:                   []corev1.Container{c},
		Volumes:                      volumes,
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: r.labels(track)},
		Spec:       pod,
	}, nil
}

// ServingUser is the user and group the server runs as unless
// spec.containerSecurityContext says otherwise: the non-root user of the
// MLServer, TorchServe and Triton images (vLLM's runs as root by default; its
// preset points HOME at /tmp for user 1000).
const ServingUser = 1000

// serverContainer is the restricted profile for the server container.
func serverContainer() *corev1.SecurityContext {
	sc := render.RestrictedContainer()
	sc.ReadOnlyRootFilesystem = ptr.To(false)
	return sc
}

func modelSubPath(uri string) string {
	_, sub, _ := ModelClaim(uri)
	return sub
}

// modelVolume is the model's volume: the claim itself, read-only, or an
// emptyDir an init step downloads the model into.
func (r *renderer) modelVolume(model v1alpha1.ModelSource, field string) ([]corev1.Volume, []corev1.Container, error) {
	if claim, _, ok := ModelClaim(model.URI); ok {
		return []corev1.Volume{{Name: volumeModel, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: true},
		}}}, nil, nil
	}
	if r.opts.Config.FetchImage == "" {
		return nil, nil, &NoFetchImageError{Field: field + ".model.uri", URI: model.URI}
	}
	fetch := corev1.Container{
		Name:            FetchContainerName,
		Image:           r.opts.Config.FetchImage,
		Args:            []string{model.URI, ModelDir},
		VolumeMounts:    []corev1.VolumeMount{{Name: volumeModel, MountPath: ModelDir}, {Name: volumeTmp, MountPath: "/tmp"}},
		SecurityContext: render.KilnContainer(),
	}
	if s := model.SecretRef; s != nil {
		// Only the download step sees the credentials.
		fetch.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: s.Name},
		}}}
	}
	return []corev1.Volume{{Name: volumeModel, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		[]corev1.Container{fetch}, nil
}

// NoFetchImageError says an object-storage model cannot be downloaded because
// no download image is configured.
type NoFetchImageError struct{ Field, URI string }

func (e *NoFetchImageError) Error() string {
	return fmt.Sprintf("%s: %s must be downloaded, but no fetchImage is set in the %s ConfigMap", e.Field, e.URI, ConfigMapName)
}

func (r *renderer) gpuResource() corev1.ResourceName {
	if g := r.ms.Spec.Resources.GPUResource; g != "" {
		return corev1.ResourceName(g)
	}
	return v1alpha1.DefaultGPUResource
}

// tolerations let GPU servers onto GPU nodes, which are commonly tainted with
// the GPU resource's name.
func (r *renderer) tolerations() []corev1.Toleration {
	return render.GPUTolerations(r.gpuResource(), r.ms.Spec.Resources.GPUs)
}

func (r *renderer) resources() corev1.ResourceRequirements {
	res := r.ms.Spec.Resources
	req, lim := corev1.ResourceList{}, corev1.ResourceList{}
	if res.GPUs > 0 {
		q := *resource.NewQuantity(int64(res.GPUs), resource.DecimalSI)
		req[r.gpuResource()], lim[r.gpuResource()] = q, q.DeepCopy()
	}
	if res.CPU != nil {
		req[corev1.ResourceCPU] = res.CPU.DeepCopy()
	}
	if res.Memory != nil {
		req[corev1.ResourceMemory], lim[corev1.ResourceMemory] = res.Memory.DeepCopy(), res.Memory.DeepCopy()
	}
	var out corev1.ResourceRequirements
	if len(req) > 0 {
		out.Requests = req
	}
	if len(lim) > 0 {
		out.Limits = lim
	}
	return out
}

// setEnv replaces the variable of the same name in place, or appends it.
func setEnv(env []corev1.EnvVar, v corev1.EnvVar) []corev1.EnvVar {
	for i := range env {
		if env[i].Name == v.Name {
			env[i] = v
			return env
		}
	}
	return append(env, v)
}
