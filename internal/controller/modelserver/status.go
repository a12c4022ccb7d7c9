package modelserver

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render/serving"
	"kiln.dev/kiln/internal/validation"
)

// problem is why a version does not serve: a condition reason and a message.
type problem struct{ reason, message string }

// modelProblem says why a model cannot be mounted: its TrainingJob has not
// succeeded, or its claim does not exist. Object storage is checked by the
// download step, whose failure the pods report.
func (r *Reconciler) modelProblem(ctx context.Context, ms *v1alpha1.ModelServer, m v1alpha1.ModelSource) (*problem, error) {
	if name, ok := trainingJobName(m.URI); ok {
		tj := &v1alpha1.TrainingJob{}
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: ms.Namespace, Name: name}, tj)
		switch {
		case apierrors.IsNotFound(err):
			tj = nil
		case err != nil:
			return nil, fmt.Errorf("reading TrainingJob %s: %w", name, err)
		}
		if msg := validation.TrainingJobModelProblem(tj, name, ms.Namespace); msg != "" {
			reason := v1alpha1.ReasonTrainingJobNotSucceeded
			if tj == nil || tj.Spec.Output == nil {
				reason = v1alpha1.ReasonModelNotFound
			}
			return &problem{reason, msg}, nil
		}
	}
	claim, _, ok := serving.ModelClaim(m.URI)
	if !ok {
		return nil, nil
	}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: ms.Namespace, Name: claim}, &corev1.PersistentVolumeClaim{})
	switch {
	case apierrors.IsNotFound(err):
		return &problem{v1alpha1.ReasonModelNotFound, fmt.Sprintf("model %s: PersistentVolumeClaim %s does not exist in namespace %s", m.URI, claim, ms.Namespace)}, nil
	case err != nil:
		return nil, fmt.Errorf("reading PersistentVolumeClaim %s: %w", claim, err)
	}
	return nil, nil
}

// observe mirrors the Deployments into status and explains any version that
// does not serve from its pods. It reports whether an HTTPRoute awaits acceptance.
func (r *Reconciler) observe(ctx context.Context, ms *v1alpha1.ModelServer, objs serving.Objects, canaryProblem *problem) (routePending bool, err error) {
	s := &ms.Status
	stable, err := r.observeTrack(ctx, ms, serving.TrackStable, objs.Stable)
	if err != nil {
		return false, err
	}
	s.Stable = &stable.status
	r.trackCondition(ms, v1alpha1.ModelServerReady, stable)

	s.Canary = nil
	switch {
	case canaryProblem != nil:
		r.notReady(ms, v1alpha1.ModelServerCanaryReady, canaryProblem.reason, "the canary is not deployed: "+canaryProblem.message)
	case objs.Canary != nil:
		canary, err := r.observeTrack(ctx, ms, serving.TrackCanary, objs.Canary)
		if err != nil {
			return false, err
		}
		s.Canary = &canary.status
		r.trackCondition(ms, v1alpha1.ModelServerCanaryReady, canary)
	default:
		r.clearCanary(ms)
	}

	traffic := objs.Traffic
	// byReplicas is the split in force where the Service spreads requests over the
	// ready pods of both versions.
	byReplicas := func() {
		if total := s.Stable.ReadyReplicas + s.Canary.ReadyReplicas; total > 0 {
			traffic.CanaryPercent = int32((int64(s.Canary.ReadyReplicas)*200 + int64(total)) / (2 * int64(total))) // rounded
			traffic.StablePercent = 100 - traffic.CanaryPercent
		}
	}
	if traffic.Method == v1alpha1.TrafficReplicaRatio && s.Canary != nil {
		byReplicas()
		traffic.Message = fmt.Sprintf("Gateway API is not installed, so the split follows the ready replicas (%d stable, %d canary): "+
			"%d%% to the canary where spec.canary.trafficPercent asks for %d%%", s.Stable.ReadyReplicas, s.Canary.ReadyReplicas,
			traffic.CanaryPercent, ms.Spec.Canary.TrafficPercent)
	}
	if traffic.Method == v1alpha1.TrafficHTTPRoute && s.Canary != nil && objs.Route != nil {
		// The weights hold only once a mesh or Gateway implementation accepted the
		// route; until then requests reach the Service, which selects both versions.
		accepted, err := r.routeAccepted(ctx, objs.Route)
		if err != nil {
			return false, err
		}
		if !accepted {
			routePending = true
			byReplicas()
			traffic.Message = fmt.Sprintf("HTTPRoute %s is not Accepted by any parent yet (no mesh or Gateway has taken it), so its %d/%d weights "+
				"are not in force: the Service spreads requests over the ready replicas (%d stable, %d canary), %d%% to the canary",
				objs.Route.Name, 100-ms.Spec.Canary.TrafficPercent, ms.Spec.Canary.TrafficPercent,
				s.Stable.ReadyReplicas, s.Canary.ReadyReplicas, traffic.CanaryPercent)
		}
	}
	if canaryProblem != nil {
		traffic.Message = "the canary is held back: " + canaryProblem.message
	}
	s.Traffic = &traffic
	return routePending, nil
}

// routeAccepted says whether some parent of the route reports it Accepted for
// its current generation.
func (r *Reconciler) routeAccepted(ctx context.Context, want *gatewayv1.HTTPRoute) (bool, error) {
	route := &gatewayv1.HTTPRoute{}
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), route)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading HTTPRoute %s: %w", want.Name, err)
	}
	for _, p := range route.Status.Parents {
		if c := meta.FindStatusCondition(p.Conditions, string(gatewayv1.RouteConditionAccepted)); c != nil &&
			c.Status == metav1.ConditionTrue && c.ObservedGeneration >= route.Generation {
			return true, nil
		}
	}
	return false, nil
}

// clearCanary drops CanaryReady once there is no canary: promoted or rolled back.
func (r *Reconciler) clearCanary(ms *v1alpha1.ModelServer) {
	var kept []metav1.Condition
	for _, c := range ms.Status.Conditions {
		if c.Type != v1alpha1.ModelServerCanaryReady {
			kept = append(kept, c)
		}
	}
	ms.Status.Conditions = kept
}

type trackState struct {
	status v1alpha1.TrackStatus
	ready  bool
	why    *problem
}

func (r *Reconciler) observeTrack(ctx context.Context, ms *v1alpha1.ModelServer, track string, t *serving.Track) (trackState, error) {
	st := trackState{status: v1alpha1.TrackStatus{Deployment: t.Deployment.Name, ModelURI: t.ModelURI, Replicas: ptr.Deref(t.Deployment.Spec.Replicas, 0)}}
	dep := &appsv1.Deployment{}
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(t.Deployment), dep)
	switch {
	case apierrors.IsNotFound(err):
		st.why = &problem{v1alpha1.ReasonRollingOut, fmt.Sprintf("Deployment %s is being created", t.Deployment.Name)}
		return st, nil
	case err != nil:
		return st, fmt.Errorf("reading Deployment %s: %w", t.Deployment.Name, err)
	}
	want := ptr.Deref(dep.Spec.Replicas, 1)
	ds := dep.Status
	st.status.Replicas, st.status.ReadyReplicas = want, ds.ReadyReplicas
	current := ds.ObservedGeneration >= dep.Generation && ds.UpdatedReplicas >= want && ds.Replicas == ds.UpdatedReplicas
	if current && ds.ReadyReplicas >= want && want > 0 {
		st.ready = true
		return st, nil
	}
	var pods corev1.PodList
	err = r.Client.List(ctx, &pods, client.InNamespace(ms.Namespace),
		client.MatchingLabels{v1alpha1.LabelModelServer: ms.Name, v1alpha1.LabelTrack: track})
	if err != nil {
		return st, fmt.Errorf("listing pods: %w", err)
	}
	if p := podProblem(pods.Items); p != nil {
		st.why = p
		return st, nil
	}
	for _, c := range ds.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			st.why = &problem{v1alpha1.ReasonProgressDeadline, fmt.Sprintf("Deployment %s: %s", dep.Name, c.Message)}
			return st, nil
		}
	}
	st.why = &problem{v1alpha1.ReasonRollingOut, fmt.Sprintf("%d of %d pods of Deployment %s are ready and current", min(ds.ReadyReplicas, ds.UpdatedReplicas), want, dep.Name)}
	return st, nil
}

func (r *Reconciler) trackCondition(ms *v1alpha1.ModelServer, condType string, st trackState) {
	if st.ready {
		msg := fmt.Sprintf("%d of %d pods ready; serving %s at %s", st.status.ReadyReplicas, st.status.Replicas, st.status.ModelURI, ms.Status.URL)
		r.setCondition(ms, condType, metav1.ConditionTrue, v1alpha1.ReasonServing, msg)
		return
	}
	r.notReady(ms, condType, st.why.reason, st.why.message)
}

// podProblem is the first thing wrong with the pods that a person must act on:
// a failed model download, an image that cannot be pulled, a server that
// keeps crashing, a pod no node can take.
func podProblem(pods []corev1.Pod) *problem {
	for _, p := range pods {
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		for _, s := range p.Status.InitContainerStatuses {
			if s.Name != serving.FetchContainerName {
				continue
			}
			if t := s.State.Terminated; t != nil && t.ExitCode != 0 {
				return &problem{v1alpha1.ReasonModelDownloadFailed, fmt.Sprintf("pod %s: downloading the model failed with exit code %d: %s", p.Name, t.ExitCode, strings.TrimSpace(t.Message))}
			}
			if t := s.LastTerminationState.Terminated; t != nil && t.ExitCode != 0 && s.State.Waiting != nil {
				return &problem{v1alpha1.ReasonModelDownloadFailed, fmt.Sprintf("pod %s: downloading the model keeps failing (exit code %d): %s", p.Name, t.ExitCode, strings.TrimSpace(t.Message))}
			}
		}
		for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			w := s.State.Waiting
			if w == nil {
				continue
			}
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
				return &problem{v1alpha1.ReasonImagePullFailed, fmt.Sprintf("pod %s: container %s cannot pull image %s: %s %s", p.Name, s.Name, s.Image, w.Reason, w.Message)}
			case "CrashLoopBackOff":
				msg := fmt.Sprintf("pod %s: container %s keeps crashing (%d restarts)", p.Name, s.Name, s.RestartCount)
				if t := s.LastTerminationState.Terminated; t != nil {
					msg += strings.TrimSpace(fmt.Sprintf("; last exit code %d (%s) %s", t.ExitCode, t.Reason, strings.TrimSpace(t.Message)))
				}
				return &problem{v1alpha1.ReasonCrashLoop, msg}
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return &problem{v1alpha1.ReasonUnschedulable, fmt.Sprintf("pod %s: %s", p.Name, c.Message)}
			}
		}
	}
	return nil
}
