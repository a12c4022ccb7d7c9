package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/validation"
)

// TrainOptions create a TrainingJob from flags or a file.
type TrainOptions struct {
	Name             string
	File             string
	Image            string
	GPUs             string
	GPUResource      string
	Framework        string
	Launcher         string
	CPU, Memory      string
	Nodes            int32
	ProcessesPerNode int32
	Env              []string
	Checkpoints      string
	Output           string
	MaxRestarts      int32
	QueueName        string
	DryRun           string
	OutputFormat     string
	Watch            bool
	Timeout          time.Duration
	Command          []string

	tj      *v1alpha1.TrainingJob
	source  sourceBuild
	cluster cluster
	streams genericiooptions.IOStreams
}

func newTrainCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &TrainOptions{cluster: c, streams: streams}
	cmd := &cobra.Command{
		Use:   "train [NAME] --image IMAGE [flags] -- COMMAND [ARGS...]",
		Short: "Start a TrainingJob: Kiln picks the shape, wires the workers and restarts them on failure",
		Long: `Start a TrainingJob. Say how many GPUs the whole job needs; Kiln chooses the fewest nodes that
hold them (8 GPUs on 8-GPU nodes is one pod with 8 GPUs), wires the framework's environment
(torchrun's PET_* variables, an MPI hostfile, the JAX coordinator), mounts a shared checkpoint
volume and restarts the whole gang from the latest checkpoint when a worker fails.`,
		Example: `  # PyTorch on 8 GPUs, watching it run
  kubectl kiln train resnet --gpus 8 --framework pytorch --image registry.example/resnet:1 \
      --checkpoints 100Gi --watch -- python train.py --epochs 3

  # A CPU job from a manifest, printed but not created
  kubectl kiln train -f examples/trainingjob-cpu.yaml --dry-run=client -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return explain(o.Run(cmd.Context()))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.File, "filename", "f", "", "create the TrainingJob in this manifest (- for standard input) instead of from flags")
	f.StringVar(&o.Image, "image", "", "container image with the training code")
	f.StringVar(&o.GPUs, "gpus", "0", "GPUs for the whole job; Kiln chooses how many nodes")
	f.StringVar(&o.GPUResource, "gpu-resource", "", "extended resource that counts GPUs (default: left to the cluster, which picks the one its nodes advertise, "+v1alpha1.DefaultGPUResource+" first)")
	f.StringVar(&o.Framework, "framework", "none", "none, pytorch, mpi or jax")
	f.StringVar(&o.Launcher, "launcher", "", "auto (default: a pytorch command that is not a launcher runs under torchrun) or none (run the command as given)")
	f.StringVar(&o.CPU, "cpu", "", "CPU per process, e.g. 4")
	f.StringVar(&o.Memory, "memory", "", "memory per process, e.g. 32Gi")
	f.Int32Var(&o.Nodes, "nodes", 0, "override the shape: number of nodes (with --processes-per-node)")
	f.Int32Var(&o.ProcessesPerNode, "processes-per-node", 0, "override the shape: processes (GPUs) per node")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "environment variable NAME=VALUE (repeatable)")
	f.StringVar(&o.Checkpoints, "checkpoints", "", "size of a shared checkpoint volume, e.g. 100Gi (KILN_CHECKPOINT_DIR)")
	f.StringVar(&o.Output, "output-volume", "", "size of a shared volume for the trained model, e.g. 10Gi (KILN_OUTPUT_DIR)")
	f.Int32Var(&o.MaxRestarts, "max-restarts", v1alpha1.DefaultMaxRestarts, "gang restarts before the job is Failed")
	f.StringVar(&o.QueueName, "queue", "", "Kueue LocalQueue; Kueue then decides when the job starts")
	f.StringVar(&o.DryRun, "dry-run", "none", `"client" prints the object without sending it, "server" has the API server check it without saving`)
	f.StringVarP(&o.OutputFormat, "output", "o", "", "print the created object: yaml, json or name")
	f.BoolVarP(&o.Watch, "watch", "w", false, "follow the job until it ends, showing its progress")
	f.DurationVar(&o.Timeout, "timeout", 0, "with --watch, give up after this long (0: never)")
	o.source.addFlags(f, true)
	return cmd
}

// Complete builds the TrainingJob from the file or the flags.
func (o *TrainOptions) Complete(cmd *cobra.Command, args []string) error {
	dash := cmd.ArgsLenAtDash()
	if dash >= 0 {
		o.Command = args[dash:]
		args = args[:dash]
	}
	if len(args) > 1 {
		return fmt.Errorf("unexpected arguments %q: put the training command after --", strings.Join(args[1:], " "))
	}
	if len(args) == 1 {
		o.Name = args[0]
	}
	ns, err := o.cluster.namespace()
	if err != nil {
		ns = "default"
	}
	if o.File != "" {
		if o.Image != "" || len(o.Command) > 0 {
			return fmt.Errorf("-f takes the whole job from the file: drop --image and the command")
		}
		tj, err := readTrainingJob(o.File, o.streams.In)
		if err != nil {
			return err
		}
		if o.Name != "" {
			tj.Name = o.Name
		}
		if tj.Namespace == "" {
			tj.Namespace = ns
		}
		o.tj = tj
		return nil
	}
	return o.fromFlags(ns)
}

func (o *TrainOptions) fromFlags(ns string) error {
	gpus, err := parseCount("--gpus", o.GPUs)
	if err != nil {
		return err
	}
	name := o.Name
	if name == "" {
		name = "train-" + rand.String(5)
	}
	tj := &v1alpha1.TrainingJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "TrainingJob"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.TrainingJobSpec{
			Image:     o.Image,
			Framework: v1alpha1.Framework(o.Framework),
			Launcher:  v1alpha1.Launcher(o.Launcher),
			Resources: v1alpha1.TrainingResources{GPUs: gpus, GPUResource: o.GPUResource},
			Restart:   v1alpha1.RestartSpec{MaxRestarts: ptr.To(o.MaxRestarts)},
			QueueName: o.QueueName,
		},
	}
	if len(o.Command) > 0 {
		tj.Spec.Command = o.Command
	}
	for flag, q := range map[string]struct {
		val string
		dst **resource.Quantity
	}{"--cpu": {o.CPU, &tj.Spec.Resources.CPU}, "--memory": {o.Memory, &tj.Spec.Resources.Memory}} {
		if q.val == "" {
			continue
		}
		v, err := resource.ParseQuantity(q.val)
		if err != nil {
			return fmt.Errorf("%s %q is not a quantity (e.g. 4, 500m, 32Gi)", flag, q.val)
		}
		*q.dst = &v
	}
	if o.Nodes != 0 || o.ProcessesPerNode != 0 {
		tj.Spec.Topology = &v1alpha1.Topology{Nodes: o.Nodes, ProcessesPerNode: o.ProcessesPerNode}
	}
	for _, kv := range o.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--env %q: want NAME=VALUE", kv)
		}
		tj.Spec.Env = append(tj.Spec.Env, corev1.EnvVar{Name: k, Value: v})
	}
	for flag, vol := range map[string]struct {
		size string
		dst  **v1alpha1.VolumeSpec
	}{"--checkpoints": {o.Checkpoints, &tj.Spec.Checkpoints}, "--output-volume": {o.Output, &tj.Spec.Output}} {
		if vol.size == "" {
			continue
		}
		q, err := resource.ParseQuantity(vol.size)
		if err != nil {
			return fmt.Errorf("%s %q is not a size (e.g. 100Gi)", flag, vol.size)
		}
		*vol.dst = &v1alpha1.VolumeSpec{Size: q}
	}
	o.tj = tj
	return nil
}

func parseCount(flag, s string) (int32, error) {
	var n int32
	if _, err := fmt.Sscan(s, &n); err != nil || fmt.Sprint(n) != strings.TrimSpace(s) {
		return 0, fmt.Errorf("%s %q is not a whole number", flag, s)
	}
	if n < 0 {
		return 0, fmt.Errorf("%s must not be negative", flag)
	}
	return n, nil
}

// Validate refuses what the API server would refuse, before any call, with the field path.
func (o *TrainOptions) Validate() error {
	if o.File == "" && o.Image == "" {
		return fmt.Errorf("--image is required: the container image with your training code")
	}
	if err := validateCreateFlags(o.DryRun, o.OutputFormat); err != nil {
		return err
	}
	if o.Watch && o.DryRun != "none" {
		return fmt.Errorf("--watch follows a created job; it cannot be combined with --dry-run")
	}
	if err := o.source.validate(o.File, o.Image); err != nil {
		return err
	}
	if errs := validation.ValidateTrainingJob(o.tj); len(errs) > 0 {
		return fmt.Errorf("invalid TrainingJob: %v", errs.ToAggregate())
	}
	return nil
}

// Run creates (or prints) the job and optionally follows it.
func (o *TrainOptions) Run(ctx context.Context) error {
	if o.source.Dir != "" {
		ref, err := o.source.run(ctx, o.Image, o.DryRun == "none", o.streams.ErrOut)
		if err != nil {
			return err
		}
		o.tj.Spec.Image = ref
	}
	if o.DryRun == "client" {
		return printObject(o.streams.Out, "trainingjob.kiln.dev", o.OutputFormat, o.tj)
	}
	c, err := o.cluster.client()
	if err != nil {
		return err
	}
	if err := createObject(ctx, c, o.tj, "trainingjob.kiln.dev", o.DryRun, o.OutputFormat, o.streams.Out); err != nil {
		return err
	}
	if !o.Watch {
		if o.DryRun == "none" && o.OutputFormat == "" {
			fmt.Fprintf(o.streams.ErrOut, "Follow it with: kubectl kiln status %s   (or train --watch)\n", o.tj.Name)
		}
		return nil
	}
	return watchTrainingJob(ctx, c, client.ObjectKeyFromObject(o.tj), o.Timeout, o.streams)
}
