package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/render"
	"kiln.dev/kiln/test/framework"
)

// A GPU node that disappears under a running distributed job costs the job one restart,
// not the job: the gang starts again on the capacity left, with the same checkpoint claim,
// and the Event says which node was lost.
func TestNodeLossRestartsTheGangOnRemainingCapacity(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	tj := withAnnotations(trainingJob(ns, "survivor"), simRunTime, "10m")
	tj.Spec.Framework = v1alpha1.FrameworkPyTorch
	tj.Spec.Resources.GPUs = 8
	tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 4}
	tj.Spec.Checkpoints = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}
	tj.Spec.Restart.MaxRestarts = ptr.To[int32](3)
	create(t, c, tj)
	running := waitFor(t, c, tj, inState(v1alpha1.StateRunning))
	claim := &corev1.PersistentVolumeClaim{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.PVCName(tj.Name, "checkpoints")}, claim); err != nil {
		t.Fatal(err)
	}

	pods := podsOf(t, ns, running.Status.JobName)
	if len(pods) != 2 || pods[0].Spec.NodeName == "" {
		t.Fatalf("%d pods of %s, want 2 bound", len(pods), running.Status.JobName)
	}
	lost := pods[0].Spec.NodeName
	pool := poolOf(t, lost)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: lost}}
	if err := c.Delete(ctx, node); err != nil {
		t.Fatal(err)
	}
	// The plane is shared: the node comes back for the tests after this one.
	t.Cleanup(func() {
		if err := plane.AddPools(context.Background(), pool); err != nil {
			t.Errorf("restoring node %s: %v", lost, err)
		}
	})

	framework.Eventually(t, 3*timeout, func() error {
		got := &v1alpha1.TrainingJob{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(tj), got); err != nil {
			return err
		}
		if got.Status.Restarts != 1 || got.Status.State != v1alpha1.StateRunning {
			return fmt.Errorf("state %s after %d restart(s); want Running after 1 (%s)", got.Status.State, got.Status.Restarts, conditions(got))
		}
		for _, p := range podsOf(t, ns, got.Status.JobName) {
			if p.Spec.NodeName == lost {
				return fmt.Errorf("pod %s is on the lost node %s", p.Name, lost)
			}
			if !slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool {
				return v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim.Name
			}) {
				return fmt.Errorf("pod %s does not mount %s", p.Name, claim.Name)
			}
		}
		return nil
	})
	if err := c.Get(ctx, client.ObjectKeyFromObject(claim), claim); err != nil {
		t.Fatalf("checkpoint claim after the restart: %v", err)
	}
	framework.Eventually(t, timeout, func() error {
		for _, note := range events(t, ns, tj.Name, v1alpha1.ReasonWorkerFailed) {
			if strings.Contains(note, lost) {
				return nil
			}
		}
		return fmt.Errorf("no WorkerFailed Event names node %s: %q", lost, events(t, ns, tj.Name, v1alpha1.ReasonWorkerFailed))
	})
}

func poolOf(t *testing.T, node string) controlplane.NodePool {
	t.Helper()
	pools, err := controlplane.ParsePools(pools)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pools {
		for _, n := range p.Nodes() {
			if n.Name == node {
				return p
			}
		}
	}
	t.Fatalf("node %s is in no pool of %s", node, pools)
	return controlplane.NodePool{}
}

// Names at the length limit, unicode and full-size fields render to valid, distinct child
// names; what reaches into the host is refused with the field path.
func TestHostileTrainingJobs(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)

	t.Run("names at the limit", func(t *testing.T) {
		// Two names of the maximum length that differ only at the end must not share a child.
		prefix := strings.Repeat("n", 62)
		var jobs []string
		for _, name := range []string{prefix + "a", prefix + "b"} {
			tj := trainingJob(ns, name)
			tj.Spec.Topology = &v1alpha1.Topology{Nodes: 2, ProcessesPerNode: 1}
			tj.Spec.Output = &v1alpha1.VolumeSpec{Size: resource.MustParse("1Gi")}
			tj.Spec.Env = []corev1.EnvVar{{Name: "GREETING", Value: "héllo, 世界 🔥 " + strings.Repeat("x", 4096)}}
			create(t, c, tj)
			got := waitFor(t, c, tj, inState(v1alpha1.StateSucceeded))
			jobs = append(jobs, got.Status.JobName)
			for _, p := range podsOf(t, ns, got.Status.JobName) {
				if msgs := utilvalidation.IsDNS1123Label(p.Spec.Hostname); len(msgs) > 0 {
					t.Errorf("pod %s host name %q: %v", p.Name, p.Spec.Hostname, msgs)
				}
				if env(&p)["GREETING"] != tj.Spec.Env[0].Value {
					t.Errorf("pod %s lost the unicode value", p.Name)
				}
			}
		}
		if jobs[0] == jobs[1] || len(jobs[0]) > 63 {
			t.Errorf("children %q: want distinct names of at most 63 characters", jobs)
		}
	})

	t.Run("host path refused", func(t *testing.T) {
		tj := trainingJob(ns, "hostpath")
		tj.Spec.PodTemplate = &v1alpha1.PodTemplateOverlay{Volumes: []corev1.Volume{{
			Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}},
		}}}
		if err := c.Create(ctx, tj); err != nil {
			// Refused at admission (the webhook is installed).
			wantInvalid(t, err, "spec.podTemplate.volumes[0].hostPath")
			return
		}
		got := waitFor(t, c, tj, func(tj *v1alpha1.TrainingJob) error {
			cond := apimeta.FindStatusCondition(tj.Status.Conditions, v1alpha1.TrainingJobAdmitted)
			if cond == nil || cond.Reason != v1alpha1.ReasonPolicyDenied {
				return fmt.Errorf("conditions %s; want Admitted=False %s", conditions(tj), v1alpha1.ReasonPolicyDenied)
			}
			return nil
		})
		if msg := apimeta.FindStatusCondition(got.Status.Conditions, v1alpha1.TrainingJobAdmitted).Message; !strings.Contains(msg, "spec.podTemplate.volumes[0].hostPath") {
			t.Errorf("message %q does not name the field", msg)
		}
		jobs := &batchv1.JobList{}
		if err := c.List(ctx, jobs, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelTrainingJob: tj.Name}); err != nil || len(jobs.Items) > 0 {
			t.Errorf("%d Jobs (%v) for a refused job, want none", len(jobs.Items), err)
		}
	})

	t.Run("fields Kiln does not model are refused", func(t *testing.T) {
		// The overlay has no way to ask for the host's PID namespace or a privileged
		// container: the API server refuses the fields rather than dropping them silently.
		for _, bad := range []map[string]any{
			{"hostPID": true},
			{"containers": []any{map[string]any{"name": "trainer", "securityContext": map[string]any{"privileged": true}}}},
		} {
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": v1alpha1.GroupVersion.String(), "kind": "TrainingJob",
				"metadata": map[string]any{"name": "sneaky", "namespace": ns},
				"spec":     map[string]any{"image": "python:3.12-slim", "podTemplate": bad},
			}}
			err := c.Create(ctx, u, client.FieldValidation(metav1.FieldValidationStrict))
			if err == nil || !strings.Contains(err.Error(), "unknown field") {
				t.Errorf("podTemplate %v: got %v, want an unknown field error", bad, err)
				_ = c.Delete(ctx, u)
			}
		}
	})
}
