package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render/serving"
	"kiln.dev/kiln/internal/validation"
)

// ServeOptions create a ModelServer from flags or a file.
type ServeOptions struct {
	Name         string
	File         string
	Model        string
	Format       string
	Preset       string
	Image        string
	Port         int32
	GPUs         int32
	CPU, Memory  string
	Min, Max     int32
	TargetCPU    int32
	Env          []string
	DryRun       string
	OutputFormat string

	ms      *v1alpha1.ModelServer
	source  sourceBuild
	cluster cluster
	streams genericiooptions.IOStreams
}

func newServeCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ServeOptions{cluster: c, streams: streams}
	cmd := &cobra.Command{
		Use:   "serve NAME --model URI (--preset PRESET | --image IMAGE --port PORT) [flags]",
		Short: "Serve a model at http://NAME.NAMESPACE.svc: Deployments, a Service, an autoscaler",
		Long: `Create a ModelServer. Kiln runs an existing model server (a preset such as mlserver, torchserve,
triton or vllm, or any image that listens on a port), mounts the model read-only, scales it between
--min and --max pods and reports the URL. A trainingjob://NAME model is the saved output of a
TrainingJob that succeeded.`,
		Example: `  # The model a TrainingJob saved, served by TorchServe
  kubectl kiln serve resnet --model trainingjob://resnet --preset torchserve

  # A scikit-learn model on a claim, two to ten pods
  kubectl kiln serve iris --model pvc://models/iris --format sklearn --preset mlserver --min 2 --max 10

  # From a manifest, printed but not created
  kubectl kiln serve -f examples/modelserver-torchserve.yaml --dry-run=client -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return explain(o.Run(cmd.Context()))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.File, "filename", "f", "", "create the ModelServer in this manifest (- for standard input) instead of from flags")
	f.StringVar(&o.Model, "model", "", "where the model is: trainingjob://NAME, pvc://CLAIM[/PATH], s3://, gs:// or https://")
	f.StringVar(&o.Format, "format", "", "model format, such as sklearn, xgboost, pytorch, onnx")
	f.StringVar(&o.Preset, "preset", "", "runtime preset: mlserver, torchserve, triton, vllm (or one your administrator added)")
	f.StringVar(&o.Image, "image", "", "server image (replaces the preset's; with no preset, a custom server)")
	f.Int32Var(&o.Port, "port", 0, "port the server listens on (required without a preset)")
	f.Int32Var(&o.GPUs, "gpus", 0, "GPUs per pod")
	f.StringVar(&o.CPU, "cpu", "", "CPU per pod, e.g. 2")
	f.StringVar(&o.Memory, "memory", "", "memory per pod, e.g. 8Gi")
	f.Int32Var(&o.Min, "min", 1, "fewest pods")
	f.Int32Var(&o.Max, "max", 0, "most pods; above --min an autoscaler moves between them (default --min)")
	f.Int32Var(&o.TargetCPU, "target-cpu", 0, "average CPU use, in percent of --cpu, the autoscaler aims for (default 80)")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "environment variable NAME=VALUE (repeatable)")
	f.StringVar(&o.DryRun, "dry-run", "none", `"client" prints the object without sending it, "server" has the API server check it without saving`)
	f.StringVarP(&o.OutputFormat, "output", "o", "", "print the created object: yaml, json or name")
	o.source.addFlags(f, true)
	return cmd
}

// Complete builds the ModelServer from the file or the flags.
func (o *ServeOptions) Complete(args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("unexpected arguments %q: serve takes one NAME", strings.Join(args[1:], " "))
	}
	if len(args) == 1 {
		o.Name = args[0]
	}
	ns, err := o.cluster.namespace()
	if err != nil {
		ns = "default"
	}
	if o.File != "" {
		if o.Model != "" || o.Preset != "" || o.Image != "" {
			return fmt.Errorf("-f takes the whole ModelServer from the file: drop --model, --preset and --image")
		}
		ms, err := readModelServer(o.File, o.streams.In)
		if err != nil {
			return err
		}
		if o.Name != "" {
			ms.Name = o.Name
		}
		if ms.Namespace == "" {
			ms.Namespace = ns
		}
		o.ms = ms
		return nil
	}
	if o.Name == "" {
		return fmt.Errorf("give the ModelServer a NAME: it becomes the model's address http://NAME.%s.svc", ns)
	}
	maxR := o.Max
	if maxR == 0 {
		maxR = o.Min
	}
	ms := &v1alpha1.ModelServer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ModelServer"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: ns},
		Spec: v1alpha1.ModelServerSpec{
			Model:     v1alpha1.ModelSource{URI: o.Model, Format: o.Format},
			Runtime:   v1alpha1.ServingRuntime{Preset: o.Preset, Image: o.Image},
			Resources: v1alpha1.ServingResources{GPUs: o.GPUs},
			Replicas:  v1alpha1.ReplicasSpec{Min: ptr.To(o.Min), Max: ptr.To(maxR)},
		},
	}
	if o.Port != 0 {
		ms.Spec.Runtime.Port = ptr.To(o.Port)
	}
	if o.TargetCPU != 0 {
		ms.Spec.Replicas.TargetCPUUtilization = ptr.To(o.TargetCPU)
	}
	for flag, q := range map[string]struct {
		val string
		dst **resource.Quantity
	}{"--cpu": {o.CPU, &ms.Spec.Resources.CPU}, "--memory": {o.Memory, &ms.Spec.Resources.Memory}} {
		if q.val == "" {
			continue
		}
		v, err := resource.ParseQuantity(q.val)
		if err != nil {
			return fmt.Errorf("%s %q is not a quantity (e.g. 4, 500m, 32Gi)", flag, q.val)
		}
		*q.dst = &v
	}
	for _, kv := range o.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--env %q: want NAME=VALUE", kv)
		}
		ms.Spec.Env = append(ms.Spec.Env, corev1.EnvVar{Name: k, Value: v})
	}
	o.ms = ms
	return nil
}

// Validate refuses what the API server would refuse, before any call, with the field path.
func (o *ServeOptions) Validate() error {
	if o.File == "" && o.Model == "" {
		return fmt.Errorf("--model is required: trainingjob://NAME, pvc://CLAIM[/PATH], s3://, gs:// or https://")
	}
	if err := validateCreateFlags(o.DryRun, o.OutputFormat); err != nil {
		return err
	}
	if err := o.source.validate(o.File, o.Image); err != nil {
		return err
	}
	if errs := validation.ValidateModelServer(o.ms); len(errs) > 0 {
		return fmt.Errorf("invalid ModelServer: %v", errs.ToAggregate())
	}
	return nil
}

// Run creates (or prints) the ModelServer.
func (o *ServeOptions) Run(ctx context.Context) error {
	if o.source.Dir != "" {
		ref, err := o.source.run(ctx, o.Image, o.DryRun == "none", o.streams.ErrOut)
		if err != nil {
			return err
		}
		o.ms.Spec.Runtime.Image = ref
	}
	if o.DryRun == "client" {
		return o.print()
	}
	c, err := o.cluster.client()
	if err != nil {
		return err
	}
	// Admission does not look up the TrainingJob (it would tell any creator which
	// exist); the CLI reads it with the user's own rights, so a model that will
	// never exist is refused before it is sent, and one still training is a warning.
	jobs, err := validation.ModelTrainingJobs(ctx, c, o.ms)
	if err != nil {
		return err
	}
	errs, warnings := validation.ValidateModelTrainingJobs(o.ms, jobs)
	if len(errs) > 0 {
		return fmt.Errorf("invalid ModelServer: %v", errs.ToAggregate())
	}
	for _, w := range warnings {
		fmt.Fprintf(o.streams.ErrOut, "Warning: %s\n", w)
	}
	if err := createObject(ctx, c, o.ms, "modelserver.kiln.dev", o.DryRun, o.OutputFormat, o.streams.Out); err != nil {
		return err
	}
	if o.DryRun == "none" && o.OutputFormat == "" {
		fmt.Fprintf(o.streams.ErrOut, "It will answer at %s; follow it with: kubectl kiln status modelserver/%s\n", serving.URL(o.ms), o.ms.Name)
	}
	return nil
}

func (o *ServeOptions) print() error {
	return printObject(o.streams.Out, "modelserver.kiln.dev", o.OutputFormat, o.ms)
}

func readModelServer(path string, stdin io.Reader) (*v1alpha1.ModelServer, error) {
	data, err := readInput(path, stdin)
	if err != nil {
		return nil, err
	}
	// A file may hold other objects too (an example's TrainingJob): take the ModelServer.
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if err == io.EOF {
				return nil, fmt.Errorf("%s holds no %s ModelServer", path, v1alpha1.GroupVersion)
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(raw, &tm); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if tm.Kind != "ModelServer" || tm.APIVersion != v1alpha1.GroupVersion.String() {
			continue
		}
		ms := &v1alpha1.ModelServer{}
		strict := json.NewDecoder(bytes.NewReader(raw))
		strict.DisallowUnknownFields()
		if err := strict.Decode(ms); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return ms, nil
	}
}

// RolloutOptions promote a ModelServer's canary or roll it back.
type RolloutOptions struct {
	Name    string
	Promote bool

	cluster cluster
	streams genericiooptions.IOStreams
}

func newPromoteCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RolloutOptions{cluster: c, streams: streams, Promote: true}
	return &cobra.Command{
		Use:   "promote NAME",
		Short: "Make a ModelServer's canary the stable version and remove the canary",
		Long: `Promote copies spec.canary's model and runtime into spec.model and spec.runtime and removes
spec.canary, in one patch. The stable Deployment rolls to the canary's version without ever
serving with fewer pods than asked for; the canary's Deployment goes.`,
		Example: `  kubectl kiln promote resnet`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return explain(o.Run(cmd.Context()))
		},
	}
}

func newRollbackCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RolloutOptions{cluster: c, streams: streams}
	return &cobra.Command{
		Use:   "rollback NAME",
		Short: "Remove a ModelServer's canary: every request goes to the stable version again",
		Long: `Rollback removes spec.canary. The stable version, which kept serving its share throughout,
gets every request again, and the canary's Deployment goes.`,
		Example: `  kubectl kiln rollback resnet`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return explain(o.Run(cmd.Context()))
		},
	}
}

// Promoted is ms with its canary made the stable version: the one field change
// `promote` sends.
func Promoted(ms *v1alpha1.ModelServer) (*v1alpha1.ModelServer, error) {
	c := ms.Spec.Canary
	if c == nil {
		return nil, fmt.Errorf("ModelServer %s has no canary to promote", ms.Name)
	}
	out := ms.DeepCopy()
	if c.Model != nil {
		out.Spec.Model = *c.Model.DeepCopy()
	}
	if c.Runtime != nil {
		out.Spec.Runtime = *c.Runtime.DeepCopy()
	}
	out.Spec.Canary = nil
	return out, nil
}

// Run sends the patch. It carries the resourceVersion read, so a canary changed
// meanwhile is never promoted unseen.
func (o *RolloutOptions) Run(ctx context.Context) error {
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return err
	}
	ms := &v1alpha1.ModelServer{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.Name}, ms); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no ModelServer %q in namespace %s", o.Name, ns)
		}
		return err
	}
	var next *v1alpha1.ModelServer
	var verb string
	if o.Promote {
		if next, err = Promoted(ms); err != nil {
			return err
		}
		verb = fmt.Sprintf("promoted: the stable version now serves %s", next.Spec.Model.URI)
	} else {
		if ms.Spec.Canary == nil {
			return fmt.Errorf("ModelServer %s has no canary to roll back", ms.Name)
		}
		next = ms.DeepCopy()
		next.Spec.Canary = nil
		verb = fmt.Sprintf("rolled back: the canary is removed and %s gets every request", ms.Spec.Model.URI)
	}
	if err := c.Patch(ctx, next, client.MergeFromWithOptions(ms, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	fmt.Fprintf(o.streams.Out, "modelserver.kiln.dev/%s %s\n", ms.Name, verb)
	return nil
}

// modelServerTree is a ModelServer with the native objects under it.
type modelServerTree struct {
	ms     *v1alpha1.ModelServer
	svcs   []corev1.Service
	deps   []appsv1.Deployment
	pods   []corev1.Pod
	hpas   []autoscalingv2.HorizontalPodAutoscaler
	pdbs   []policyv1.PodDisruptionBudget
	routes []gatewayv1.HTTPRoute
	events []corev1.Event
}

// runModelServerStatus is `status modelserver/NAME`.
func (o *StatusOptions) runModelServerStatus(ctx context.Context, name string) error {
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return err
	}
	ms := &v1alpha1.ModelServer{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ms); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no ModelServer %q in namespace %s", name, ns)
		}
		return err
	}
	mine := []client.ListOption{client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelModelServer: name}}
	t := modelServerTree{ms: ms}
	var svcs corev1.ServiceList
	var deps appsv1.DeploymentList
	var pods corev1.PodList
	var hpas autoscalingv2.HorizontalPodAutoscalerList
	var pdbs policyv1.PodDisruptionBudgetList
	for _, l := range []client.ObjectList{&svcs, &deps, &pods, &hpas, &pdbs} {
		if err := c.List(ctx, l, mine...); err != nil {
			return err
		}
	}
	var routes gatewayv1.HTTPRouteList
	if err := c.List(ctx, &routes, mine...); err != nil && !apimeta.IsNoMatchError(err) {
		return err
	}
	t.svcs, t.deps, t.pods, t.hpas, t.pdbs, t.routes = svcs.Items, deps.Items, pods.Items, hpas.Items, pdbs.Items, routes.Items
	var events corev1.EventList
	if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
		return err
	}
	for _, e := range events.Items {
		if e.InvolvedObject.Name == name || strings.HasPrefix(e.InvolvedObject.Name, name+"-") {
			t.events = append(t.events, e)
		}
	}
	sort.Slice(t.events, func(i, j int) bool { return eventTime(t.events[i]).Time.Before(eventTime(t.events[j]).Time) })
	if len(t.events) > o.Events {
		t.events = t.events[len(t.events)-o.Events:]
	}
	t.print(o.streams.Out, o.now())
	return nil
}

func (t modelServerTree) print(w io.Writer, now time.Time) {
	ms := t.ms
	state := "not ready"
	if c := apimeta.FindStatusCondition(ms.Status.Conditions, v1alpha1.ModelServerReady); c != nil && c.Status == metav1.ConditionTrue {
		state = "ready"
	}
	fmt.Fprintf(w, "ModelServer %s/%s: %s, at %s\n", ms.Namespace, ms.Name, state, serving.URL(ms))
	if tr := ms.Status.Traffic; tr != nil {
		fmt.Fprintf(w, "  traffic: %s, stable %d%%, canary %d%%: %s\n", tr.Method, tr.StablePercent, tr.CanaryPercent, tr.Message)
	}

	var rows []string
	podsOf := map[string][]corev1.Pod{}
	for _, s := range t.svcs {
		rows = append(rows, fmt.Sprintf("Service %s: %s port %d -> %s", s.Name, s.Spec.ClusterIP, servicePort(s), selectorOf(s.Spec.Selector)))
	}
	sort.Slice(t.deps, func(i, j int) bool { return t.deps[i].Name < t.deps[j].Name })
	for _, d := range t.deps {
		track := d.Labels[v1alpha1.LabelTrack]
		image := ""
		if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 {
			image = cs[0].Image
		}
		row := fmt.Sprintf("Deployment %s (%s, %s): ready %d/%d", d.Name, track, image, d.Status.ReadyReplicas, ptr.Deref(d.Spec.Replicas, 0))
		rows = append(rows, row)
		for _, p := range t.pods {
			if p.Labels[v1alpha1.LabelTrack] == track {
				podsOf[row] = append(podsOf[row], p)
			}
		}
	}
	for _, h := range t.hpas {
		rows = append(rows, fmt.Sprintf("HorizontalPodAutoscaler %s: %d to %d pods, now %d", h.Name, ptr.Deref(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas, h.Status.CurrentReplicas))
	}
	for _, p := range t.pdbs {
		rows = append(rows, fmt.Sprintf("PodDisruptionBudget %s: %d disruptions allowed", p.Name, p.Status.DisruptionsAllowed))
	}
	for _, r := range t.routes {
		var parts []string
		for _, rule := range r.Spec.Rules {
			for _, b := range rule.BackendRefs {
				parts = append(parts, fmt.Sprintf("%s %d", b.Name, ptr.Deref(b.Weight, 1)))
			}
		}
		rows = append(rows, fmt.Sprintf("HTTPRoute %s: %s", r.Name, strings.Join(parts, ", ")))
	}
	for i, r := range rows {
		branch, indent := "├─", "│  "
		if i == len(rows)-1 {
			branch, indent = "└─", "   "
		}
		fmt.Fprintf(w, "%s %s\n", branch, r)
		pods := podsOf[r]
		sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
		for j, p := range pods {
			b := "├─"
			if j == len(pods)-1 {
				b = "└─"
			}
			node := p.Spec.NodeName
			if node == "" {
				node = "unscheduled"
			}
			fmt.Fprintf(w, "%s%s Pod %s: %s, node %s%s\n", indent, b, p.Name, podState(&p), node, restartsOf(&p))
		}
	}
	if len(ms.Status.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		for _, c := range ms.Status.Conditions {
			fmt.Fprintf(w, "  %-11s %-5s %-24s %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	if len(t.events) > 0 {
		fmt.Fprintln(w, "Events:")
		for _, e := range t.events {
			fmt.Fprintf(w, "  %-8s %-7s %-24s %s/%s: %s\n", age(eventTime(e), now), e.Type, e.Reason, strings.ToLower(e.InvolvedObject.Kind), e.InvolvedObject.Name, e.Message)
		}
	}
}

// servicePort is a Service's first port, the model's.
func servicePort(s corev1.Service) int32 {
	if len(s.Spec.Ports) == 0 {
		return 0
	}
	return s.Spec.Ports[0].Port
}

func selectorOf(sel map[string]string) string {
	if t := sel[v1alpha1.LabelTrack]; t != "" {
		return t + " pods"
	}
	return "all pods"
}

// exportModelServer exports modelserver/NAME or a file whose first object is a
// ModelServer; done is false for anything else, which export handles as a TrainingJob.
func (o *ExportOptions) exportModelServer(ctx context.Context) (done bool, err error) {
	opts := serving.Options{Config: serving.DefaultConfig()}
	var ms *v1alpha1.ModelServer
	switch kind, name, ok := strings.Cut(o.Name, "/"); {
	case ok && isModelServerKind(kind):
		c, ns, err := o.cluster.clientIn()
		if err != nil {
			return true, err
		}
		ms = &v1alpha1.ModelServer{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ms); err != nil {
			return true, explain(err)
		}
		if opts, err = o.clusterServingOptions(ctx, c); err != nil {
			return true, err
		}
	case o.File != "" && o.File != "-" && firstKind(o.File) == "ModelServer":
		if ms, err = readModelServer(o.File, nil); err != nil {
			return true, err
		}
		if ms.Namespace == "" {
			if ms.Namespace, err = o.cluster.namespace(); err != nil {
				ms.Namespace = "default"
			}
		}
		if errs := validation.ValidateModelServer(ms); len(errs) > 0 {
			return true, fmt.Errorf("%s is not a valid ModelServer: %v", o.File, errs.ToAggregate())
		}
	default:
		return false, nil
	}
	if o.SetImage != "" {
		ms.Spec.Runtime.Image = o.SetImage
	}
	objs, err := serving.ModelServer(ms, opts)
	if err != nil {
		return true, err
	}
	o.image = firstWorkloadImage(objs.List())
	return true, printObjects(o.streams.Out, o.Output, objs.List())
}

// clusterServingOptions are what the controller renders with, as far as this
// user may read them: the kiln-serving ConfigMap (Kiln's namespace is assumed
// to be kiln-system) and whether the cluster has Gateway API.
func (o *ExportOptions) clusterServingOptions(ctx context.Context, c client.Client) (serving.Options, error) {
	opts := serving.Options{Config: serving.DefaultConfig()}
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "kiln-system", Name: serving.ConfigMapName}, cm); err == nil {
		cfg, err := serving.ParseConfig([]byte(cm.Data[serving.ConfigKey]))
		if err != nil {
			return opts, err
		}
		opts.Config = cfg
	}
	cs, err := o.cluster.clientset()
	if err != nil {
		return opts, err
	}
	if list, err := cs.Discovery().ServerResourcesForGroupVersion(gatewayv1.GroupVersion.String()); err == nil {
		for _, r := range list.APIResources {
			opts.GatewayAPI = opts.GatewayAPI || r.Name == "httproutes"
		}
	}
	return opts, nil
}

func isModelServerKind(kind string) bool {
	switch strings.ToLower(kind) {
	case "modelserver", "modelservers", "ms", "modelserver.kiln.dev":
		return true
	}
	return false
}

// firstKind is the kind of a file's first object, or "" when it cannot be read.
func firstKind(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var tm metav1.TypeMeta
	if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(&tm); err != nil {
		return ""
	}
	return tm.Kind
}
