package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
)

func TestNotebookCreateDryRun(t *testing.T) {
	out, errOut, err := run(t, "notebook", "create", "explore", "-n", "research", "--gpus", "1", "--memory", "32Gi",
		"--workspace-size", "50Gi", "--delete-workspace", "--idle-timeout", "1h", "--env", "HF_HOME=/home/jovyan/.cache/hf",
		"--volume", "imagenet=pvc://datasets/imagenet", "--volume", "model=trainingjob://resnet", "--dry-run=client", "-o", "yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	golden(t, "notebook-create-dry-run.golden.yaml", out)
}

func TestNotebookBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"notebook", "create"}, "accepts 1 arg(s)"},
		{[]string{"notebook", "create", "nb", "--gpus", "-1"}, "--gpus must not be negative"},
		{[]string{"notebook", "create", "nb", "--volume", "data"}, `--volume "data": want NAME=pvc://CLAIM[/PATH] or NAME=trainingjob://JOB`},
		{[]string{"notebook", "create", "nb", "--volume", "data=s3://bucket/x"}, "spec.volumes[0].uri"},
		{[]string{"notebook", "create", "nb", "--volume", "data=pvc://other.claim"}, "claims in other namespaces cannot be used"},
		{[]string{"notebook", "create", "nb", "--idle-timeout", "-5m"}, "spec.idleTimeout"},
		{[]string{"notebook", "create", "nb", "--memory", "lots"}, `--memory "lots" is not a quantity`},
		{[]string{"notebook", "create", "9lives"}, "metadata.name"},
		{[]string{"notebook", "list", "-o", "table"}, `unknown output format "table"`},
		{[]string{"notebook", "list"}, "no cluster configured"},
		{[]string{"notebook", "start", "nb"}, "no cluster configured"},
		{[]string{"notebook", "token", "nb"}, "no cluster configured"},
		{[]string{"get", "notebooks"}, "no cluster configured"},
		{[]string{"status", "notebook", "nb"}, "no cluster configured"},
		{[]string{"status", "gadgets", "nb"}, `unknown kind "gadgets"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, _, err := run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func readyNotebook() *v1alpha1.Notebook {
	active := metav1.NewTime(t0.Add(80 * time.Minute))
	return &v1alpha1.Notebook{
		ObjectMeta: metav1.ObjectMeta{Name: "explore", Namespace: "research", CreationTimestamp: metav1.NewTime(t0)},
		Spec: v1alpha1.NotebookSpec{
			Resources:   v1alpha1.NotebookResources{GPUs: 1},
			IdleTimeout: &metav1.Duration{Duration: time.Hour},
		},
		Status: v1alpha1.NotebookStatus{
			State: v1alpha1.NotebookReady, Ready: true, URL: "http://explore.research.svc/", TokenSecretName: "explore-token",
			WorkspaceClaimName: "explore-workspace", LastActivity: &active,
			Conditions: []metav1.Condition{
				{Type: v1alpha1.NotebookConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonPodReady,
					Message: "serving at http://explore.research.svc/ (token in Secret explore-token)", LastTransitionTime: metav1.NewTime(t0.Add(time.Minute))},
				{Type: v1alpha1.NotebookConditionActivityKnown, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonServerStatus,
					Message: "from the server's /api/status", LastTransitionTime: metav1.NewTime(t0.Add(2 * time.Minute))},
			},
		},
	}
}

func TestNotebookList(t *testing.T) {
	culled := readyNotebook()
	culled.Name, culled.Spec.Resources.GPUs, culled.Spec.Stopped = "old", 2, true
	culled.Status.State, culled.Status.Ready, culled.Status.WorkspaceClaimName = v1alpha1.NotebookCulled, false, "old-workspace"
	culled.Status.URL = "http://old.research.svc/"
	culled.Status.Conditions = append(culled.Status.Conditions, metav1.Condition{Type: v1alpha1.NotebookConditionStopped, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonCulled, Message: "culled: no activity for 1h0m0s", LastTransitionTime: metav1.NewTime(t0.Add(85 * time.Minute))})
	fresh := &v1alpha1.Notebook{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Namespace: "research", CreationTimestamp: metav1.NewTime(t0.Add(89 * time.Minute))}}
	items := []client.Object{readyNotebook(), fresh, culled}
	for _, o := range []GetOptions{{}, {Output: "wide", AllNamespaces: true}, {Output: "name"}} {
		var out bytes.Buffer
		o.Kinds = []kindInfo{kindOf("notebooks")}
		o.now = func() time.Time { return t0.Add(90 * time.Minute) }
		o.streams = genericiooptions.IOStreams{Out: &out, ErrOut: &out}
		if err := o.print(&out, items); err != nil {
			t.Fatal(err)
		}
		golden(t, "notebook-list-"+map[string]string{"": "table", "wide": "wide", "name": "name"}[o.Output]+".golden.txt", out.String())
	}
}

func TestNotebookStatusTree(t *testing.T) {
	nb := readyNotebook()
	tr := notebookTree{
		nb:  nb,
		svc: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "explore"}},
		sts: &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "explore"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1)},
			Status: appsv1.StatefulSetStatus{ReadyReplicas: 1}},
		pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "explore-0"}, Spec: corev1.PodSpec{NodeName: "a100-0"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		claims: []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: "explore-workspace"},
			Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}}},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
		}},
		events: []corev1.Event{{
			InvolvedObject: corev1.ObjectReference{Kind: "Notebook", Name: "explore"}, Type: "Normal", Reason: "Started",
			Message: "started again with workspace explore-workspace", LastTimestamp: metav1.NewTime(t0.Add(time.Minute)),
		}},
	}
	var out bytes.Buffer
	tr.print(&out, t0.Add(90*time.Minute))
	golden(t, "notebook-status.golden.txt", out.String())
}

func TestReadNotebookExample(t *testing.T) {
	nb, err := readNotebook("../../examples/notebook-gpu.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if nb.Name != "explore" || nb.Spec.Resources.GPUs != 1 {
		t.Errorf("read %s with %d GPUs", nb.Name, nb.Spec.Resources.GPUs)
	}
	if _, err := readNotebook("../../examples/trainingjob-cpu.yaml"); err == nil || !strings.Contains(err.Error(), "not a kiln.dev/v1alpha1 Notebook") {
		t.Errorf("a TrainingJob read as a notebook: %v", err)
	}
}
