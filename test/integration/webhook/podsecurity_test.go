package webhook

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/validation"
)

// Security contexts beyond the restricted profile are refused through the real API
// server, naming the field and the manager flag that would allow them, at creation and
// when a change of the spec asks for them; with the flag set, the same object is admitted.
func TestSecurityContextsBeyondRestrictedAreRefused(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, plane.Config, nil)
	stop := startWebhooks(t, plane.Config, servingOptions(t))
	ns := namespace(t, c, nil)

	ipcLock := &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"IPC_LOCK"}}}
	tj := trainingJob(ns, "rdma", 0)
	tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{ContainerSecurityContext: ipcLock}
	err := c.Create(ctx, tj.DeepCopy())
	if d := cmp.Diff([]string{"spec.podTemplate.containerSecurityContext.capabilities.add[0]"}, fields(t, err)); d != "" {
		t.Errorf("TrainingJob field paths (-want +got):\n%s", d)
	}
	if !strings.Contains(err.Error(), "--allow-capabilities=IPC_LOCK") {
		t.Errorf("the refusal does not name the flag: %v", err)
	}

	sw := &v1alpha1.Sweep{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tune"},
		Spec: v1alpha1.SweepSpec{
			Parameters:    []v1alpha1.SweepParameter{{Name: "x", Type: v1alpha1.ParameterFloat, Min: "0", Max: "1"}},
			Objective:     v1alpha1.SweepObjective{Metric: "loss", Direction: v1alpha1.Minimize},
			MaxTrials:     2,
			TrialTemplate: tj.Spec,
		},
	}
	if d := cmp.Diff([]string{"spec.trialTemplate.podTemplate.containerSecurityContext.capabilities.add[0]"}, fields(t, c.Create(ctx, sw))); d != "" {
		t.Errorf("Sweep field paths (-want +got):\n%s", d)
	}

	ms := &v1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "llm"},
		Spec: v1alpha1.ModelServerSpec{
			Model:                    v1alpha1.ModelSource{URI: "pvc://models/llm"},
			Runtime:                  v1alpha1.ServingRuntime{Preset: "vllm"},
			ContainerSecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To[int64](0)},
		},
	}
	if d := cmp.Diff([]string{"spec.containerSecurityContext.runAsUser"}, fields(t, c.Create(ctx, ms))); d != "" {
		t.Errorf("ModelServer field paths (-want +got):\n%s", d)
	}

	// A Notebook is admitted as Kiln renders it; a change that asks for privilege
	// escalation is refused like a new object would be.
	nb := &v1alpha1.Notebook{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lab"}}
	if err := c.Create(ctx, nb); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(nb.DeepCopy())
	nb.Spec.ContainerSecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(true)}
	if d := cmp.Diff([]string{"spec.containerSecurityContext.allowPrivilegeEscalation"}, fields(t, c.Patch(ctx, nb, patch))); d != "" {
		t.Errorf("Notebook update field paths (-want +got):\n%s", d)
	}

	// The administrator allows IPC_LOCK: the same TrainingJob is admitted.
	stop()
	o := servingOptions(t)
	o.Policy = validation.Policy{AllowedCapabilities: []corev1.Capability{"IPC_LOCK"}}
	startWebhooks(t, plane.Config, o)
	if err := c.Create(ctx, tj.DeepCopy()); err != nil {
		t.Errorf("with --allow-capabilities=IPC_LOCK: %v", err)
	}
}
