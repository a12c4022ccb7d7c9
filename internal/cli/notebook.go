package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/internal/validation"
)

func newNotebookCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "notebook",
		Aliases: []string{"notebooks", "nb"},
		Short:   "Create, start, stop and list notebooks (JupyterLab with optional GPUs)",
		Long: `A Notebook is a JupyterLab workspace with a persistent volume and optional GPUs, reached through a
Service. With --idle-timeout, Kiln stops a notebook nobody used for that long (the workspace stays)
so its GPUs go back to training; start it again with "kubectl kiln notebook start NAME".`,
	}
	cmd.AddCommand(
		newNotebookCreateCommand(c, streams),
		newNotebookSetStoppedCommand(c, streams, false),
		newNotebookSetStoppedCommand(c, streams, true),
		newNotebookListCommand(c, streams),
		newNotebookTokenCommand(c, streams),
	)
	return cmd
}

// NotebookCreateOptions create a Notebook from flags.
type NotebookCreateOptions struct {
	Name            string
	Image           string
	GPUs            string
	GPUResource     string
	CPU, Memory     string
	WorkspaceSize   string
	StorageClass    string
	DeleteWorkspace bool
	Volumes         []string
	Env             []string
	IdleTimeout     time.Duration
	DryRun          string
	OutputFormat    string

	nb      *v1alpha1.Notebook
	cluster cluster
	streams genericiooptions.IOStreams
}

func newNotebookCreateCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &NotebookCreateOptions{cluster: c, streams: streams}
	cmd := &cobra.Command{
		Use:   "create NAME [flags]",
		Short: "Create a notebook: JupyterLab with a persistent workspace and optional GPUs",
		Example: `  # One GPU, stopped after an hour without use
  kubectl kiln notebook create explore --gpus 1 --memory 32Gi --idle-timeout 1h

  # With a dataset and the model a TrainingJob saved, both read-only under /kiln/data
  kubectl kiln notebook create review --volume imagenet=pvc://datasets/imagenet --volume model=trainingjob://resnet

  # Printed, not created
  kubectl kiln notebook create explore --gpus 1 --dry-run=client -o yaml`,
		Args: cobra.ExactArgs(1),
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
	f.StringVar(&o.Image, "image", "", "image serving HTTP on port 8888 (default: JupyterLab, "+v1alpha1.DefaultNotebookImage+")")
	f.StringVar(&o.GPUs, "gpus", "0", "GPUs of the notebook")
	f.StringVar(&o.GPUResource, "gpu-resource", "", "extended resource that counts GPUs (default "+v1alpha1.DefaultGPUResource+")")
	f.StringVar(&o.CPU, "cpu", "", "CPU requested, e.g. 4")
	f.StringVar(&o.Memory, "memory", "", "memory requested and limited, e.g. 32Gi")
	f.StringVar(&o.WorkspaceSize, "workspace-size", v1alpha1.DefaultWorkspaceSize, "size of the persistent workspace")
	f.StringVar(&o.StorageClass, "storage-class", "", "StorageClass of the workspace (default: the cluster's)")
	f.BoolVar(&o.DeleteWorkspace, "delete-workspace", false, "delete the workspace with the notebook (default: keep it)")
	f.StringArrayVar(&o.Volumes, "volume", nil, "read-only volume NAME=pvc://CLAIM[/PATH] or NAME=trainingjob://JOB (repeatable)")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "environment variable NAME=VALUE (repeatable)")
	f.DurationVar(&o.IdleTimeout, "idle-timeout", 0, "stop the notebook after this long without use, e.g. 1h (0: never)")
	f.StringVar(&o.DryRun, "dry-run", "none", `"client" prints the object without sending it, "server" has the API server check it without saving`)
	f.StringVarP(&o.OutputFormat, "output", "o", "", "print the created object: yaml, json or name")
	return cmd
}

// Complete builds the Notebook from the flags.
func (o *NotebookCreateOptions) Complete(args []string) error {
	o.Name = args[0]
	ns, err := o.cluster.namespace()
	if err != nil {
		ns = "default"
	}
	gpus, err := parseCount("--gpus", o.GPUs)
	if err != nil {
		return err
	}
	nb := &v1alpha1.Notebook{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Notebook"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: ns},
		Spec: v1alpha1.NotebookSpec{
			Image:     o.Image,
			Resources: v1alpha1.NotebookResources{GPUs: gpus, GPUResource: o.GPUResource},
		},
	}
	for flag, q := range map[string]struct {
		val string
		dst **resource.Quantity
	}{
		"--cpu": {o.CPU, &nb.Spec.Resources.CPU}, "--memory": {o.Memory, &nb.Spec.Resources.Memory},
		"--workspace-size": {o.WorkspaceSize, &nb.Spec.Workspace.Size},
	} {
		if q.val == "" {
			continue
		}
		v, err := resource.ParseQuantity(q.val)
		if err != nil {
			return fmt.Errorf("%s %q is not a quantity (e.g. 4, 500m, 32Gi)", flag, q.val)
		}
		*q.dst = &v
	}
	if o.StorageClass != "" {
		nb.Spec.Workspace.StorageClassName = ptr.To(o.StorageClass)
	}
	if o.DeleteWorkspace {
		nb.Spec.Workspace.RetentionPolicy = v1alpha1.RetentionDelete
	}
	for _, kv := range o.Volumes {
		name, uri, ok := strings.Cut(kv, "=")
		if !ok || name == "" || uri == "" {
			return fmt.Errorf("--volume %q: want NAME=pvc://CLAIM[/PATH] or NAME=trainingjob://JOB", kv)
		}
		nb.Spec.Volumes = append(nb.Spec.Volumes, v1alpha1.NotebookVolume{Name: name, URI: uri})
	}
	for _, kv := range o.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--env %q: want NAME=VALUE", kv)
		}
		nb.Spec.Env = append(nb.Spec.Env, corev1.EnvVar{Name: k, Value: v})
	}
	if o.IdleTimeout != 0 {
		nb.Spec.IdleTimeout = &metav1.Duration{Duration: o.IdleTimeout}
	}
	o.nb = nb
	return nil
}

// Validate refuses what the API server would refuse, before any call, with the field path.
func (o *NotebookCreateOptions) Validate() error {
	if err := validateCreateFlags(o.DryRun, o.OutputFormat); err != nil {
		return err
	}
	if errs := validation.ValidateNotebook(o.nb); len(errs) > 0 {
		return fmt.Errorf("invalid Notebook: %v", errs.ToAggregate())
	}
	return nil
}

// Run creates (or prints) the notebook and says how to open it.
func (o *NotebookCreateOptions) Run(ctx context.Context) error {
	if o.DryRun == "client" {
		return o.print()
	}
	c, err := o.cluster.client()
	if err != nil {
		return err
	}
	if err := createObject(ctx, c, o.nb, "notebook.kiln.dev", o.DryRun, o.OutputFormat, o.streams.Out); err != nil {
		return err
	}
	if o.DryRun == "none" && o.OutputFormat == "" {
		fmt.Fprint(o.streams.ErrOut, openHint(o.nb.Name, o.nb.Namespace))
	}
	return nil
}

func (o *NotebookCreateOptions) print() error {
	return printObject(o.streams.Out, "notebook.kiln.dev", o.OutputFormat, o.nb)
}

// openHint says how to reach a notebook from a laptop: the Service is
// cluster-internal, and the server wants its token.
func openHint(name, ns string) string {
	return fmt.Sprintf(`Open it once it is Ready (kubectl kiln notebook list):
  kubectl port-forward -n %[2]s svc/%[1]s 8888:%[3]d
  then browse to http://localhost:8888/?token=$(kubectl kiln notebook token -n %[2]s %[1]s)
`, name, ns, render.NotebookServicePort)
}

// NotebookSetStoppedOptions start or stop notebooks by setting spec.stopped.
type NotebookSetStoppedOptions struct {
	Names   []string
	Stopped bool

	cluster cluster
	streams genericiooptions.IOStreams
}

func newNotebookSetStoppedCommand(c cluster, streams genericiooptions.IOStreams, stopped bool) *cobra.Command {
	o := &NotebookSetStoppedOptions{cluster: c, streams: streams, Stopped: stopped}
	cmd := &cobra.Command{
		Use:     "start NAME...",
		Short:   "Start stopped or culled notebooks; they mount the same workspace",
		Example: "  kubectl kiln notebook start explore",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			return explain(o.Run(cmd.Context()))
		},
	}
	if stopped {
		cmd.Use, cmd.Short, cmd.Example = "stop NAME...", "Stop notebooks: scale them to zero, keeping the workspace", "  kubectl kiln notebook stop explore"
	}
	return cmd
}

// Run patches spec.stopped of each notebook.
func (o *NotebookSetStoppedOptions) Run(ctx context.Context) error {
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return err
	}
	verb := "started"
	if o.Stopped {
		verb = "stopped"
	}
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"spec":{"stopped":%t}}`, o.Stopped))
	for _, n := range o.Names {
		nb := &v1alpha1.Notebook{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}}
		if err := c.Patch(ctx, nb, patch); err != nil {
			if errors.IsNotFound(err) {
				return fmt.Errorf("no Notebook %q in namespace %s (list them with kubectl kiln notebook list)", n, ns)
			}
			return err
		}
		fmt.Fprintf(o.streams.Out, "notebook.kiln.dev/%s %s\n", n, verb)
	}
	return nil
}

// NotebookListOptions list notebooks.
type NotebookListOptions struct {
	Names         []string
	AllNamespaces bool
	Output        string

	cluster cluster
	streams genericiooptions.IOStreams
	now     func() time.Time
}

func newNotebookListCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &NotebookListOptions{cluster: c, streams: streams, now: time.Now}
	cmd := &cobra.Command{
		Use:     "list [NAME...]",
		Aliases: []string{"ls", "get"},
		Short:   "List notebooks with their state, URL and last activity",
		Example: `  kubectl kiln notebook list
  kubectl kiln notebook list -A -o wide`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			if err := o.Validate(); err != nil {
				return err
			}
			return explain(o.Run(cmd.Context()))
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: wide, yaml, json or name")
	return cmd
}

// Validate checks the output format.
func (o *NotebookListOptions) Validate() error {
	_, err := objectPrinter(o.Output)
	return err
}

// Run lists and prints, as get notebooks does.
func (o *NotebookListOptions) Run(ctx context.Context) error {
	g := &GetOptions{Kinds: []kindInfo{kindOf("notebooks")}, Names: o.Names, AllNamespaces: o.AllNamespaces, Output: o.Output,
		cluster: o.cluster, streams: o.streams, now: o.now}
	return g.Run(ctx)
}

func notebookTable(w io.Writer, objs []client.Object, t tableOptions) error {
	var rows [][2]string
	var nss []string
	for _, obj := range objs {
		nb := obj.(*v1alpha1.Notebook)
		state := string(nb.Status.State)
		if state == "" {
			state = string(v1alpha1.NotebookPending)
		}
		url, last := dash(nb.Status.URL), "-"
		if a := nb.Status.LastActivity; a != nil {
			last = age(*a, t.now) + " ago"
		}
		idle := "never"
		if it := nb.Spec.IdleTimeout; it != nil && it.Duration > 0 {
			idle = it.Duration.String()
		}
		rows = append(rows, [2]string{
			fmt.Sprintf("%s\t%d\t%s\t%s\t%s\t%s", nb.Name, nb.Spec.Resources.GPUs, state, url, last, age(nb.CreationTimestamp, t.now)),
			fmt.Sprintf("%s\t%s\t%s", idle, dash(nb.Status.WorkspaceClaimName), lastMessage(nb.Status.Conditions)),
		})
		nss = append(nss, nb.Namespace)
	}
	return t.table(w, "NAME\tGPUS\tSTATE\tURL\tLAST ACTIVITY\tAGE", "IDLE TIMEOUT\tWORKSPACE\tMESSAGE", rows, nss)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// NotebookTokenOptions print a notebook's access token.
type NotebookTokenOptions struct {
	Name string

	cluster cluster
	streams genericiooptions.IOStreams
}

func newNotebookTokenCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &NotebookTokenOptions{cluster: c, streams: streams}
	return &cobra.Command{
		Use:   "token NAME",
		Short: "Print a notebook's access token (kept in the Secret NAME-token)",
		Long: `Print the token the notebook's server requires. Kiln generates it when it creates the notebook and
keeps it in a Secret of the notebook's namespace; whoever may read that Secret may open the notebook.`,
		Example: `  kubectl port-forward svc/explore 8888:80 &
  open "http://localhost:8888/?token=$(kubectl kiln notebook token explore)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return explain(o.Run(cmd.Context()))
		},
	}
}

// Run reads the token Secret.
func (o *NotebookTokenOptions) Run(ctx context.Context) error {
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return err
	}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.NotebookTokenSecretName(o.Name)}, secret); err != nil {
		if errors.IsNotFound(err) {
			return fmt.Errorf("no token for notebook %q in namespace %s yet: is the notebook there (kubectl kiln notebook list)?", o.Name, ns)
		}
		return err
	}
	fmt.Fprintln(o.streams.Out, string(secret.Data[v1alpha1.NotebookTokenKey]))
	return nil
}

// notebookTree is what `kubectl kiln status notebook NAME` shows.
type notebookTree struct {
	nb     *v1alpha1.Notebook
	sts    *appsv1.StatefulSet
	svc    *corev1.Service
	pod    *corev1.Pod
	claims []corev1.PersistentVolumeClaim
	events []corev1.Event
}

func notebookStatus(ctx context.Context, c client.Client, ns, name string, n int, w io.Writer, now time.Time) error {
	nb := &v1alpha1.Notebook{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, nb); err != nil {
		if errors.IsNotFound(err) {
			return fmt.Errorf("no Notebook %q in namespace %s (list them with kubectl kiln notebook list)", name, ns)
		}
		return err
	}
	t := notebookTree{nb: nb}
	key := client.ObjectKey{Namespace: ns, Name: name}
	sts, svc, pod := &appsv1.StatefulSet{}, &corev1.Service{}, &corev1.Pod{}
	if err := c.Get(ctx, key, sts); err == nil {
		t.sts = sts
	} else if !errors.IsNotFound(err) {
		return err
	}
	if err := c.Get(ctx, key, svc); err == nil {
		t.svc = svc
	} else if !errors.IsNotFound(err) {
		return err
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-0"}, pod); err == nil {
		t.pod = pod
	} else if !errors.IsNotFound(err) {
		return err
	}
	claims := &corev1.PersistentVolumeClaimList{}
	if err := c.List(ctx, claims, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelNotebook: name}); err != nil {
		return err
	}
	t.claims = claims.Items
	events := &corev1.EventList{}
	if err := c.List(ctx, events, client.InNamespace(ns)); err != nil {
		return err
	}
	var related []corev1.Event
	for _, e := range events.Items {
		if e.InvolvedObject.Name == name || e.InvolvedObject.Name == name+"-0" {
			related = append(related, e)
		}
	}
	sort.Slice(related, func(i, j int) bool { return eventTime(related[i]).Time.Before(eventTime(related[j]).Time) })
	if len(related) > n {
		related = related[len(related)-n:]
	}
	t.events = related
	t.print(w, now)
	return nil
}

func (t notebookTree) print(w io.Writer, now time.Time) {
	nb := t.nb
	state := string(nb.Status.State)
	if state == "" {
		state = string(v1alpha1.NotebookPending)
	}
	fmt.Fprintf(w, "Notebook %s/%s: %s", nb.Namespace, nb.Name, state)
	if nb.Status.URL != "" {
		fmt.Fprintf(w, " at %s", nb.Status.URL)
	}
	fmt.Fprintln(w)
	idle := "never stopped for idleness"
	if d := nb.Spec.IdleTimeout; d != nil && d.Duration > 0 {
		idle = "stopped after " + d.Duration.String() + " idle"
	}
	last := "no activity known"
	if a := nb.Status.LastActivity; a != nil {
		last = "last activity " + age(*a, now) + " ago"
	}
	fmt.Fprintf(w, "  %d GPU(s), %s, %s\n", nb.Spec.Resources.GPUs, idle, last)

	var rows []string
	if t.svc != nil {
		rows = append(rows, fmt.Sprintf("Service %s: port %d", t.svc.Name, render.NotebookServicePort))
	}
	if t.sts != nil {
		rows = append(rows, fmt.Sprintf("StatefulSet %s: %d/%d ready", t.sts.Name, t.sts.Status.ReadyReplicas, ptr.Deref(t.sts.Spec.Replicas, 1)))
	}
	if t.pod != nil {
		node := t.pod.Spec.NodeName
		if node == "" {
			node = "unscheduled"
		}
		rows = append(rows, fmt.Sprintf("Pod %s: %s, node %s%s", t.pod.Name, podState(t.pod), node, restartsOf(t.pod)))
	}
	for _, c := range t.claims {
		size := c.Spec.Resources.Requests[corev1.ResourceStorage]
		kept := "kept when the notebook is deleted"
		if len(c.OwnerReferences) > 0 {
			kept = "deleted with the notebook"
		}
		rows = append(rows, fmt.Sprintf("PersistentVolumeClaim %s: %s, %s, %s", c.Name, c.Status.Phase, size.String(), kept))
	}
	for i, r := range rows {
		branch := "├─"
		if i == len(rows)-1 {
			branch = "└─"
		}
		fmt.Fprintf(w, "%s %s\n", branch, r)
	}
	if len(nb.Status.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		for _, c := range nb.Status.Conditions {
			fmt.Fprintf(w, "  %-13s %-5s %-17s %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	if len(t.events) > 0 {
		fmt.Fprintln(w, "Events:")
		for _, e := range t.events {
			fmt.Fprintf(w, "  %-8s %-7s %-17s %s/%s: %s\n", age(eventTime(e), now), e.Type, e.Reason, strings.ToLower(e.InvolvedObject.Kind), e.InvolvedObject.Name, e.Message)
		}
	}
}

// readNotebook reads a manifest that holds one Notebook.
func readNotebook(path string) (*v1alpha1.Notebook, error) {
	nb := &v1alpha1.Notebook{}
	return nb, readManifest(path, nil, "Notebook", "not a", nb)
}

// runNotebookExample creates the notebook afresh (its retained workspace is
// mounted again) and waits until it is Ready, printing each new state.
func runNotebookExample(ctx context.Context, c client.Client, nb *v1alpha1.Notebook, timeout time.Duration, out io.Writer) error {
	key := client.ObjectKeyFromObject(nb)
	old := &v1alpha1.Notebook{}
	if err := c.Get(ctx, key, old); err == nil {
		if err := c.Delete(ctx, old); client.IgnoreNotFound(err) != nil {
			return err
		}
		for i := 0; i < 300; i++ {
			if err := c.Get(ctx, key, old); errors.IsNotFound(err) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if err := c.Create(ctx, nb); err != nil {
		return err
	}
	deadline, last := time.Now().Add(timeout), ""
	for {
		got := &v1alpha1.Notebook{}
		if err := c.Get(ctx, key, got); err != nil {
			return err
		}
		line := fmt.Sprintf("%s %s: %s", got.Name, dash(string(got.Status.State)), lastMessage(got.Status.Conditions))
		if line != last {
			fmt.Fprintln(out, "  "+line)
			last = line
		}
		if got.Status.State == v1alpha1.NotebookReady {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("notebook %s not Ready after %s", got.Name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
