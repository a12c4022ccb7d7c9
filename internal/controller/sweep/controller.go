// Package sweep reconciles Sweeps: it keeps spec.parallelism trials running, each a
// TrainingJob from the template with parameters the search proposes, feeds their
// reported curves back to the search, stops losing trials, and ends the sweep at
// maxTrials, at the goal or after too many failures.
//
// Everything it decides from lives in the cluster: a trial's name comes from its
// index, its parameters and curve are recorded on it, and the search is
// deterministic in the seed and the trials so far. A restarted manager finds the
// trials it created (creating a name that exists is a no-op), so it loses none and
// duplicates none.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
	search "kiln.dev/kiln/internal/sweep"
	"kiln.dev/kiln/internal/tokens"
	"kiln.dev/kiln/internal/validation"
)

// Reconciler reconciles Sweeps.
type Reconciler struct {
	// Client reads Sweeps from the cache and writes.
	Client client.Client
	// APIReader lists a Sweep's trials from the API server: counting them from a
	// cache that is behind could start more than parallelism at once.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// MetricsURL is the push server's base URL given to trials; empty when the
	// manager takes no pushes.
	MetricsURL string
	// Tokens derives each trial's metrics token (from the trial's name and the Sweep's
	// UID), so the metrics server checks a push without reading the trial's Secret.
	Tokens tokens.Source
}

// +kubebuilder:rbac:groups=kiln.dev,resources=sweeps,verbs=list;watch
// +kubebuilder:rbac:groups=kiln.dev,resources=sweeps/status,verbs=patch
// +kubebuilder:rbac:groups=kiln.dev,resources=sweeps/finalizers,verbs=update
// +kubebuilder:rbac:groups=kiln.dev,resources=trainingjobs,verbs=list;watch;create;patch
// +kubebuilder:rbac:groups=kiln.dev,resources=trainingjobs/status,verbs=patch
// Trials' token Secrets are created, never read: see package tokens.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the controller; a change to any trial wakes its Sweep.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Sweep{}).
		Owns(&v1alpha1.TrainingJob{}).
		Named("sweep").
		Complete(r)
}

// Reconcile runs the steps against a copy of the Sweep and writes the status they
// produced, once.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	sw := &v1alpha1.Sweep{}
	if err := r.Client.Get(ctx, req.NamespacedName, sw); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !sw.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the garbage collector takes the trials
	}
	before := sw.DeepCopy()
	err := r.steps(ctx, sw)
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		err = nil
	}
	sw.Status.ObservedGeneration = sw.Generation
	sw.Status.State = stateOfSweep(sw.Status.Conditions)
	if werr := r.writeStatus(ctx, before, sw); werr != nil {
		return ctrl.Result{}, errors.Join(err, werr)
	}
	return ctrl.Result{}, err
}

func (r *Reconciler) steps(ctx context.Context, sw *v1alpha1.Sweep) error {
	if errs := validation.Sweep(sw); len(errs) > 0 {
		// Admission should have refused it; an old object or a cluster without
		// the webhook can still hold one.
		r.finish(sw, v1alpha1.SweepConditionFailed, v1alpha1.ReasonInvalidSpec, "the spec is invalid: "+errs.ToAggregate().Error())
		return nil
	}
	cfg, err := config(sw)
	if err != nil {
		r.finish(sw, v1alpha1.SweepConditionFailed, v1alpha1.ReasonInvalidSpec, "the spec is invalid: "+err.Error())
		return nil
	}
	searcher, stopper, err := search.New(cfg)
	if err != nil {
		r.finish(sw, v1alpha1.SweepConditionFailed, v1alpha1.ReasonInvalidSpec, "the search cannot run this spec: "+err.Error())
		return nil
	}
	trials, err := r.trials(ctx, sw, cfg.Space)
	if err != nil {
		return err
	}
	if finished(sw) {
		// The end was decided and stored; what remains is to stop any trial
		// still running (a manager that died in between left them).
		r.count(sw, trials)
		return r.stopAll(ctx, sw, trials, "the sweep ended: "+condition(sw).Message)
	}
	if err := r.stopLosers(ctx, sw, trials, stopper); err != nil {
		return err
	}
	best := r.count(sw, trials)
	s := &sw.Status

	maxFailed := ptr.Deref(sw.Spec.MaxFailedTrials, 3)
	if s.Failed > maxFailed {
		r.finish(sw, v1alpha1.SweepConditionFailed, v1alpha1.ReasonTooManyFailedTrials,
			fmt.Sprintf("%d trials failed, more than spec.maxFailedTrials (%d)%s", s.Failed, maxFailed, bestSoFar(sw)))
		return r.stopAll(ctx, sw, trials, "the sweep failed: too many trials failed")
	}
	if goal, ok := goalOf(sw); ok && best != nil {
		if v := best.search.Value; v == goal || better(sw.Spec.Objective.Direction, v, goal) {
			r.finish(sw, v1alpha1.SweepConditionSucceeded, v1alpha1.ReasonGoalReached,
				fmt.Sprintf("trial %s reached %s %s, the goal %s%s", s.BestTrial.Name, sw.Spec.Objective.Metric, s.BestTrial.Value, sw.Spec.Objective.Goal, params(s.BestTrial)))
			return r.stopAll(ctx, sw, trials, "the sweep reached its goal")
		}
	}

	created := nextIndex(trials)
	// Unset parallelism is 1, as the CRD defaults it.
	room := min(int(max(sw.Spec.Parallelism, 1)-s.Running), int(sw.Spec.MaxTrials)-created)
	var proposed []search.Assignment
	if room > 0 {
		if proposed, err = searcher.Suggest(historyOf(trials), room); err != nil {
			r.finish(sw, v1alpha1.SweepConditionFailed, v1alpha1.ReasonSearchFailed, "the search failed: "+err.Error())
			return r.stopAll(ctx, sw, trials, "the sweep failed: the search failed")
		}
	}
	for i, a := range proposed {
		err := r.create(ctx, sw, created+i, cfg.Space, a)
		if apierrors.IsInvalid(err) {
			// The template passed the Sweep's checks but not the TrainingJob's:
			// no trial of this sweep can be created.
			r.finish(sw, v1alpha1.SweepConditionFailed, v1alpha1.ReasonInvalidSpec, "the API server refused a trial: "+err.Error())
			return r.stopAll(ctx, sw, trials, "the sweep failed: its trials are refused")
		}
		if err != nil {
			return err
		}
		s.Running++
		s.Trials = int32(created + i + 1)
	}
	if s.StartTime == nil && s.Trials > 0 {
		s.StartTime = ptr.To(metav1.NewTime(r.Clock.Now()))
	}

	switch {
	case s.Running > 0:
		r.setCondition(sw, v1alpha1.SweepConditionRunning, metav1.ConditionTrue, v1alpha1.ReasonTrialsRunning,
			fmt.Sprintf("%d running, %d succeeded, %d stopped early, %d failed; %d of %d trials created%s",
				s.Running, s.Succeeded, s.Stopped, s.Failed, s.Trials, sw.Spec.MaxTrials, bestSoFar(sw)))
	case int(s.Trials) >= int(sw.Spec.MaxTrials):
		r.finish(sw, v1alpha1.SweepConditionSucceeded, v1alpha1.ReasonMaxTrialsReached,
			fmt.Sprintf("all %d trials ended: %d succeeded, %d stopped early, %d failed%s", s.Trials, s.Succeeded, s.Stopped, s.Failed, bestSoFar(sw)))
	default:
		r.finish(sw, v1alpha1.SweepConditionSucceeded, v1alpha1.ReasonSearchSpaceExhausted,
			fmt.Sprintf("the search space has no untried point left after %d trials%s", s.Trials, bestSoFar(sw)))
	}
	return nil
}

// trials lists the Sweep's trials live, in index order.
func (r *Reconciler) trials(ctx context.Context, sw *v1alpha1.Sweep, space search.Space) ([]trial, error) {
	var list v1alpha1.TrainingJobList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(sw.Namespace), client.MatchingLabels{v1alpha1.LabelSweep: sw.Name}); err != nil {
		return nil, fmt.Errorf("listing trials: %w", err)
	}
	var out []trial
	for i := range list.Items {
		tj := &list.Items[i]
		if !metav1.IsControlledBy(tj, sw) {
			continue // an earlier Sweep's of the same name, on its way out
		}
		t, err := readTrial(tj, space)
		if err != nil {
			// Someone edited what Kiln recorded; the trial still holds its place.
			ctrl.LoggerFrom(ctx).Info("trial unreadable; it is left out of the search", "trial", tj.Name, "reason", err.Error())
			t = trial{tj: tj, index: indexOf(tj), search: search.Trial{State: stateOf(tj)}}
			if t.index < 0 {
				continue
			}
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b trial) int { return a.index - b.index })
	return out, nil
}

func indexOf(tj *v1alpha1.TrainingJob) int {
	i, err := strconv.Atoi(tj.Labels[v1alpha1.LabelTrialIndex])
	if err != nil {
		return -1
	}
	return i
}

// nextIndex follows the highest index, so a trial deleted by hand is not run again.
func nextIndex(trials []trial) int {
	if len(trials) == 0 {
		return 0
	}
	return trials[len(trials)-1].index + 1
}

// create makes trial index: its token Secret, then the TrainingJob that reads it.
// Both are created only when absent, under names fixed by the index.
func (r *Reconciler) create(ctx context.Context, sw *v1alpha1.Sweep, index int, space search.Space, a search.Assignment) error {
	values, err := space.Format(a)
	if err != nil {
		return fmt.Errorf("formatting trial %d's parameters: %w", index, err)
	}
	if r.MetricsURL != "" {
		if r.Tokens == nil {
			return errors.New("the Sweep controller has no token source for trials' metrics tokens")
		}
		token, err := r.Tokens.Token(ctx, tokens.PurposeSweepMetrics, sw.Namespace, render.TrialName(sw.Name, index), sw.UID)
		if err != nil {
			return fmt.Errorf("deriving trial %d's metrics token: %w", index, err)
		}
		if err := createIfAbsent(ctx, r.Client, render.MetricsSecret(sw, index, token)); err != nil {
			return err
		}
	}
	tj, err := render.Trial(sw, index, values, render.TrialOptions{MetricsURL: r.MetricsURL})
	if err != nil {
		return err
	}
	if err := createIfAbsent(ctx, r.Client, tj); err != nil {
		return err
	}
	ctrl.LoggerFrom(ctx).Info("created trial", "trial", tj.Name, "parameters", values)
	r.Recorder.Eventf(sw, tj, corev1.EventTypeNormal, "TrialCreated", "Create", "trial %s: %s", tj.Name, formatParams(values, sw))
	return nil
}

func createIfAbsent(ctx context.Context, c client.Client, obj client.Object) error {
	err := c.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", obj.GetName(), err)
	}
	return nil
}

// historyOf is what the search knows: every readable trial, in creation order.
func historyOf(trials []trial) []search.Trial {
	var h []search.Trial
	for _, t := range trials {
		if t.search.Params != nil {
			h = append(h, t.search)
		}
	}
	return h
}

// stopLosers asks the Stopper about every running trial, in index order, each
// decision seeing the ones before it.
func (r *Reconciler) stopLosers(ctx context.Context, sw *v1alpha1.Sweep, trials []trial, stopper search.Stopper) error {
	for i := range trials {
		t := &trials[i]
		if t.search.State != search.Running || t.search.Params == nil {
			continue
		}
		if stop, why := stopper.ShouldStop(t.search, historyOf(trials)); stop {
			if err := r.stop(ctx, sw, t, why); err != nil {
				return err
			}
		}
	}
	return nil
}

// stopAll stops every trial still running when the sweep ended.
func (r *Reconciler) stopAll(ctx context.Context, sw *v1alpha1.Sweep, trials []trial, why string) error {
	for i := range trials {
		if trials[i].search.State == search.Running {
			if err := r.stop(ctx, sw, &trials[i], why); err != nil {
				return err
			}
		}
	}
	r.count(sw, trials)
	return nil
}

// stop suspends the trial and marks it Stopped with the reason, in one patch.
// Suspending, not deleting, frees its nodes and keeps its record and curve.
func (r *Reconciler) stop(ctx context.Context, sw *v1alpha1.Sweep, t *trial, why string) error {
	before := t.tj.DeepCopy()
	if t.tj.Annotations == nil {
		t.tj.Annotations = map[string]string{}
	}
	t.tj.Annotations[v1alpha1.AnnotationTrialStopped] = why
	t.tj.Spec.Suspend = ptr.To(true)
	if err := r.Client.Patch(ctx, t.tj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		// A conflict is a report that just arrived: the next reconcile decides again.
		return fmt.Errorf("stopping trial %s: %w", t.tj.Name, err)
	}
	t.search.State = search.Stopped
	ctrl.LoggerFrom(ctx).Info("stopped trial", "trial", t.tj.Name, "reason", why)
	r.Recorder.Eventf(sw, t.tj, corev1.EventTypeNormal, "TrialStopped", "Stop", "trial %s: %s", t.tj.Name, why)
	return nil
}

// count sets the counts and the best trial: the best final value among trials
// that succeeded (a stopped trial's last value is of a model trained less). It
// returns the best trial, nil when none succeeded with a value.
func (r *Reconciler) count(sw *v1alpha1.Sweep, trials []trial) *trial {
	s := &sw.Status
	s.Running, s.Succeeded, s.Failed, s.Stopped = 0, 0, 0, 0
	s.Trials = int32(max(int(s.Trials), nextIndex(trials)))
	var best *trial
	for i := range trials {
		t := &trials[i]
		switch t.search.State {
		case search.Running:
			s.Running++
		case search.Succeeded:
			s.Succeeded++
			if t.search.HasValue && (best == nil || better(sw.Spec.Objective.Direction, t.search.Value, best.search.Value)) {
				best = t
			}
		case search.Failed:
			s.Failed++
		case search.Stopped:
			s.Stopped++
		}
	}
	s.BestTrial = nil
	if best != nil {
		s.BestTrial = &v1alpha1.BestTrial{Name: best.tj.Name, Index: int32(best.index), Parameters: best.values, Value: formatValue(best.search.Value)}
	}
	return best
}

func goalOf(sw *v1alpha1.Sweep) (float64, bool) {
	if sw.Spec.Objective.Goal == "" {
		return 0, false
	}
	g, err := strconv.ParseFloat(sw.Spec.Objective.Goal, 64)
	return g, err == nil
}

func bestSoFar(sw *v1alpha1.Sweep) string {
	b := sw.Status.BestTrial
	if b == nil {
		return ""
	}
	return fmt.Sprintf("; best %s %s by trial %s%s", sw.Spec.Objective.Metric, b.Value, b.Name, params(b))
}

func params(b *v1alpha1.BestTrial) string {
	if len(b.Parameters) == 0 {
		return ""
	}
	return " (" + formatParamsSorted(b.Parameters) + ")"
}

func formatParams(values map[string]string, sw *v1alpha1.Sweep) string {
	parts := make([]string, 0, len(values))
	for _, p := range sw.Spec.Parameters {
		parts = append(parts, p.Name+"="+values[p.Name])
	}
	return strings.Join(parts, " ")
}

func formatParamsSorted(values map[string]string) string {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + values[k]
	}
	return strings.Join(parts, " ")
}

func finished(sw *v1alpha1.Sweep) bool {
	return apimeta.IsStatusConditionTrue(sw.Status.Conditions, v1alpha1.SweepConditionSucceeded) ||
		apimeta.IsStatusConditionTrue(sw.Status.Conditions, v1alpha1.SweepConditionFailed)
}

// condition is the condition that ended the sweep.
func condition(sw *v1alpha1.Sweep) *metav1.Condition {
	if c := apimeta.FindStatusCondition(sw.Status.Conditions, v1alpha1.SweepConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
		return c
	}
	return apimeta.FindStatusCondition(sw.Status.Conditions, v1alpha1.SweepConditionSucceeded)
}

// finish ends the sweep: Succeeded or Failed true, Running false.
func (r *Reconciler) finish(sw *v1alpha1.Sweep, typ, reason, msg string) {
	r.setCondition(sw, typ, metav1.ConditionTrue, reason, msg)
	r.setCondition(sw, v1alpha1.SweepConditionRunning, metav1.ConditionFalse, reason, msg)
	if sw.Status.CompletionTime == nil {
		sw.Status.CompletionTime = ptr.To(metav1.NewTime(r.Clock.Now()))
	}
}

func (r *Reconciler) setCondition(sw *v1alpha1.Sweep, t string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&sw.Status.Conditions, metav1.Condition{
		Type: t, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: sw.Generation, LastTransitionTime: metav1.NewTime(r.Clock.Now()),
	})
}

func stateOfSweep(conds []metav1.Condition) v1alpha1.SweepState {
	switch {
	case apimeta.IsStatusConditionTrue(conds, v1alpha1.SweepConditionFailed):
		return v1alpha1.SweepFailed
	case apimeta.IsStatusConditionTrue(conds, v1alpha1.SweepConditionSucceeded):
		return v1alpha1.SweepSucceeded
	case apimeta.IsStatusConditionTrue(conds, v1alpha1.SweepConditionRunning):
		return v1alpha1.SweepRunning
	}
	return v1alpha1.SweepPending
}

// writeStatus patches the status when the steps changed it, against the
// resourceVersion read.
func (r *Reconciler) writeStatus(ctx context.Context, before, sw *v1alpha1.Sweep) error {
	if equality.Semantic.DeepEqual(before.Status, sw.Status) {
		return nil
	}
	err := r.Client.Status().Patch(ctx, sw, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		ctrl.LoggerFrom(ctx).V(1).Info("status not written; will reconcile the newer object", "reason", err.Error())
		return nil
	case err != nil:
		return fmt.Errorf("writing status: %w", err)
	}
	r.recordTransitions(sw, before.Status.Conditions)
	return nil
}

// recordTransitions emits an Event when the sweep ends.
func (r *Reconciler) recordTransitions(sw *v1alpha1.Sweep, before []metav1.Condition) {
	for _, typ := range []string{v1alpha1.SweepConditionSucceeded, v1alpha1.SweepConditionFailed} {
		c := apimeta.FindStatusCondition(sw.Status.Conditions, typ)
		if c == nil || c.Status != metav1.ConditionTrue || apimeta.IsStatusConditionTrue(before, typ) {
			continue
		}
		eventType := corev1.EventTypeNormal
		if typ == v1alpha1.SweepConditionFailed {
			eventType = corev1.EventTypeWarning
		}
		note := c.Message
		if len(note) > 1024 {
			note = note[:1021] + "..."
		}
		r.Recorder.Eventf(sw, nil, eventType, c.Reason, typ, "%s", note)
	}
}
