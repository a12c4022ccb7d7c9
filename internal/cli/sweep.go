package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/validation"
)

// SweepOptions create a Sweep from a manifest.
type SweepOptions struct {
	File         string
	Name         string
	DryRun       string
	OutputFormat string

	sw      *v1alpha1.Sweep
	cluster cluster
	streams genericiooptions.IOStreams
}

func newSweepCommand(c cluster, streams genericiooptions.IOStreams) *cobra.Command {
	o := &SweepOptions{cluster: c, streams: streams}
	cmd := &cobra.Command{
		Use:   "sweep [NAME] -f FILE",
		Short: "Start a hyperparameter Sweep: trials proposed by grid, random, TPE or Hyperband search, losers stopped early",
		Long: `Start a Sweep from a manifest. Each trial is a TrainingJob from spec.trialTemplate with the
parameters the search proposes, as ${params.NAME} in its command, args and env and as
KILN_PARAM_<NAME>. Trials report their objective on stdout (kiln-metric step=3 val_loss=0.42) or
by HTTP to KILN_METRICS_URL; see docs/sweep.md.`,
		Example: `  kubectl kiln sweep -f examples/sweep-tpe.yaml
  kubectl kiln status sweep/lr-search       # trials sorted by objective, the best marked`,
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
	f.StringVarP(&o.File, "filename", "f", "", "the Sweep manifest (- for standard input)")
	f.StringVar(&o.DryRun, "dry-run", "none", `"client" prints the object without sending it, "server" has the API server check it without saving`)
	f.StringVarP(&o.OutputFormat, "output", "o", "", "print the created object: yaml, json or name")
	statusCmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a Sweep's trials sorted by objective, the best marked (same as status sweep/NAME)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := &SweepStatusOptions{Name: args[0], cluster: c, streams: streams, now: time.Now}
			return explain(o.Run(cmd.Context()))
		},
	}
	cmd.AddCommand(statusCmd)
	return cmd
}

// Complete reads the Sweep from the file.
func (o *SweepOptions) Complete(args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("unexpected arguments %q", strings.Join(args[1:], " "))
	}
	if len(args) == 1 {
		o.Name = args[0]
	}
	if o.File == "" {
		return fmt.Errorf("-f FILE is required: a Sweep manifest (see examples/sweep-*.yaml)")
	}
	sw, err := readSweep(o.File, o.streams.In)
	if err != nil {
		return err
	}
	if o.Name != "" {
		sw.Name = o.Name
	}
	if sw.Namespace == "" {
		ns, err := o.cluster.namespace()
		if err != nil {
			ns = "default"
		}
		sw.Namespace = ns
	}
	o.sw = sw
	return nil
}

// Validate refuses what admission would refuse, with the field path, before any call.
func (o *SweepOptions) Validate() error {
	if err := validateCreateFlags(o.DryRun, o.OutputFormat); err != nil {
		return err
	}
	// The API server defaults parallelism; the offline check must not refuse it unset.
	sw := o.sw.DeepCopy()
	if sw.Spec.Parallelism == 0 {
		sw.Spec.Parallelism = 1
	}
	if errs := validation.Sweep(sw); len(errs) > 0 {
		return fmt.Errorf("invalid Sweep: %v", errs.ToAggregate())
	}
	return nil
}

// Run creates (or prints) the Sweep.
func (o *SweepOptions) Run(ctx context.Context) error {
	if o.DryRun == "client" {
		return o.print()
	}
	c, err := o.cluster.client()
	if err != nil {
		return err
	}
	if err := createObject(ctx, c, o.sw, "sweep.kiln.dev", o.DryRun, o.OutputFormat, o.streams.Out); err != nil {
		return err
	}
	if o.DryRun == "none" && o.OutputFormat == "" {
		fmt.Fprintf(o.streams.ErrOut, "Follow it with: kubectl kiln status sweep/%s\n", o.sw.Name)
	}
	return nil
}

func (o *SweepOptions) print() error {
	return printObject(o.streams.Out, "sweep.kiln.dev", o.OutputFormat, o.sw)
}

// readSweep decodes one Sweep from a YAML or JSON file, refusing unknown fields.
func readSweep(path string, stdin io.Reader) (*v1alpha1.Sweep, error) {
	sw := &v1alpha1.Sweep{}
	return sw, readManifest(path, stdin, "Sweep", "want a", sw)
}

// SweepStatusOptions show a Sweep with its trials.
type SweepStatusOptions struct {
	Name string

	cluster cluster
	streams genericiooptions.IOStreams
	now     func() time.Time
}

// Run reads the Sweep and its trials and prints them.
func (o *SweepStatusOptions) Run(ctx context.Context) error {
	c, ns, err := o.cluster.clientIn()
	if err != nil {
		return err
	}
	sw := &v1alpha1.Sweep{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.Name}, sw); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no Sweep %q in namespace %s (list them with kubectl get sweeps)", o.Name, ns)
		}
		return err
	}
	var trials v1alpha1.TrainingJobList
	if err := c.List(ctx, &trials, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelSweep: sw.Name}); err != nil {
		return err
	}
	printSweep(o.streams.Out, sw, trials.Items, o.now())
	return nil
}

type trialRow struct {
	name, state, step, value string
	index                    int
	v                        float64
	has                      bool
	params                   map[string]string
	note                     string
}

// printSweep writes the summary and the trials sorted by objective, best first;
// trials that reported nothing come last, in index order.
func printSweep(w io.Writer, sw *v1alpha1.Sweep, trials []v1alpha1.TrainingJob, now time.Time) {
	s := &sw.Status
	obj := sw.Spec.Objective
	state := string(s.State)
	if state == "" {
		state = string(v1alpha1.SweepPending)
	}
	fmt.Fprintf(w, "Sweep %s/%s: %s, %d of %d trials created (%d running, %d succeeded, %d stopped early, %d failed), age %s\n",
		sw.Namespace, sw.Name, state, s.Trials, sw.Spec.MaxTrials, s.Running, s.Succeeded, s.Stopped, s.Failed, age(sw.CreationTimestamp, now))
	goal := ""
	if obj.Goal != "" {
		goal = ", goal " + obj.Goal
	}
	algorithm := sw.Spec.Algorithm
	if algorithm == "" {
		algorithm = v1alpha1.AlgorithmRandom
	}
	fmt.Fprintf(w, "  %s %s%s; algorithm %s, seed %d, parallelism %d\n", obj.Direction, obj.Metric, goal, algorithm, sw.Spec.Seed, sw.Spec.Parallelism)
	if b := s.BestTrial; b != nil {
		fmt.Fprintf(w, "  best: %s %s %s (%s)\n", b.Name, obj.Metric, b.Value, sortedParams(b.Parameters, sw))
	}

	var rows []trialRow
	for i := range trials {
		rows = append(rows, rowOf(&trials[i]))
	}
	slices.SortFunc(rows, func(a, b trialRow) int {
		switch {
		case a.has != b.has:
			if a.has {
				return -1
			}
			return 1
		case a.has && a.v != b.v:
			if (obj.Direction == v1alpha1.Maximize) == (a.v > b.v) {
				return -1
			}
			return 1
		}
		return a.index - b.index
	})
	if len(rows) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		header := []string{"", "TRIAL", "STATE", "STEP", strings.ToUpper(obj.Metric)}
		for _, p := range sw.Spec.Parameters {
			header = append(header, strings.ToUpper(p.Name))
		}
		fmt.Fprintln(tw, strings.Join(header, "\t")+"\tNOTE")
		for _, r := range rows {
			mark := ""
			if s.BestTrial != nil && r.name == s.BestTrial.Name {
				mark = "*"
			}
			cols := []string{mark, r.name, r.state, r.step, r.value}
			for _, p := range sw.Spec.Parameters {
				cols = append(cols, r.params[p.Name])
			}
			fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t"+r.note)
		}
		tw.Flush()
	}
	if len(s.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		for _, c := range s.Conditions {
			fmt.Fprintf(w, "  %-9s %-5s %-20s %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
}

func rowOf(tj *v1alpha1.TrainingJob) trialRow {
	r := trialRow{name: tj.Name, state: string(tj.Status.State), step: "-", value: "-"}
	if r.state == "" {
		r.state = string(v1alpha1.StatePending)
	}
	r.index, _ = strconv.Atoi(tj.Labels[v1alpha1.LabelTrialIndex])
	_ = json.Unmarshal([]byte(tj.Annotations[v1alpha1.AnnotationTrialParameters]), &r.params)
	if why := tj.Annotations[v1alpha1.AnnotationTrialStopped]; why != "" {
		r.state, r.note = "Stopped", why
	}
	if curve := tj.Annotations[v1alpha1.AnnotationTrialCurve]; curve != "" {
		last := curve[strings.LastIndex(curve, ",")+1:]
		if step, value, ok := strings.Cut(last, "="); ok {
			if v, err := strconv.ParseFloat(value, 64); err == nil {
				r.step, r.v, r.has = step, v, true
				r.value = strconv.FormatFloat(v, 'g', 6, 64)
			}
		}
	}
	return r
}

func sortedParams(values map[string]string, sw *v1alpha1.Sweep) string {
	var parts []string
	for _, p := range sw.Spec.Parameters {
		if v, ok := values[p.Name]; ok {
			parts = append(parts, p.Name+"="+v)
		}
	}
	return strings.Join(parts, " ")
}
