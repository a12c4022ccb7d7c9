package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/controlplane"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -update to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, d)
	}
}

// run executes the root command with args, with no cluster configured.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	cmd := NewRootCommand(streams)
	cmd.SetArgs(append([]string{"--kubeconfig=" + filepath.Join(t.TempDir(), "none")}, args...))
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestOfflineVerbs(t *testing.T) {
	for _, tc := range []struct {
		name, golden string
		args         []string
	}{
		{"export pytorch on 8-GPU nodes", "export-pytorch-8.golden.yaml", []string{"export", "-f", "testdata/pytorch.yaml"}},
		{"export pytorch on 4-GPU nodes", "export-pytorch-4.golden.yaml", []string{"export", "-f", "testdata/pytorch.yaml", "--node-gpus", "4"}},
		{"train from flags, printed", "train-dry-run.golden.yaml", []string{"train", "bert", "-n", "nlp", "--image", "registry.example/bert:2",
			"--gpus", "16", "--framework", "pytorch", "--cpu", "8", "--memory", "64Gi", "--env", "EPOCHS=3", "--checkpoints", "50Gi",
			"--dry-run=client", "-o", "yaml", "--", "python", "-m", "bert.train", "--lr", "3e-4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := run(t, tc.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			golden(t, tc.golden, out)
		})
	}
}

func TestBadInputIsOneLineThatSaysWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"delete", "modelservr", "resnet"}, `unknown kind "modelservr": Kiln's kinds are trainingjobs (tj), sweeps (sw), modelservers (ms), notebooks (nb)`},
		{[]string{"delete", "modelservr/resnet"}, `unknown kind "modelservr" in "modelservr/resnet"`},
		{[]string{"delete", "modelserver"}, "name the modelservers to delete"},
		{[]string{"get", "-o", "jsonpath={.items[0"}, "bad jsonpath template"},
		{[]string{"get", "-o", "table"}, `unknown output format "table"`},
		{[]string{"train", "--gpus", "8"}, "--image is required"},
		{[]string{"train", "--image", "x", "--gpus", "eight"}, `--gpus "eight" is not a whole number`},
		{[]string{"train", "--image", "x", "--gpus", "-2"}, "--gpus must not be negative"},
		{[]string{"train", "--image", "x", "--gpus", "8", "--nodes", "3", "--processes-per-node", "2"}, "spec.topology"},
		{[]string{"train", "--image", "x", "--env", "NOVALUE"}, `--env "NOVALUE": want NAME=VALUE`},
		{[]string{"train", "--image", "x", "--framework", "tensorflow"}, "spec.framework"},
		{[]string{"train", "--image", "x", "-o", "table"}, `unknown output format "table"`},
		{[]string{"export"}, "give either a TrainingJob name or -f FILE"},
		{[]string{"export", "-f", "testdata/missing.yaml"}, "no such file"},
		{[]string{"get"}, "no cluster configured"},
		{[]string{"doctor"}, "no cluster configured"},
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

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func runningJob() *v1alpha1.TrainingJob {
	return &v1alpha1.TrainingJob{
		ObjectMeta: metav1.ObjectMeta{Name: "resnet", Namespace: "research", CreationTimestamp: metav1.NewTime(t0)},
		Spec:       v1alpha1.TrainingJobSpec{Image: "x", Resources: v1alpha1.TrainingResources{GPUs: 8}},
		Status: v1alpha1.TrainingJobStatus{
			State: "Running", Attempt: 1, Restarts: 1, JobName: "resnet-a1", Ready: 1, Active: 2,
			Shape: &v1alpha1.ShapeStatus{Nodes: 2, ProcessesPerNode: 4, GPUsPerNode: 4, Pool: "l4", Reason: "8 GPUs need 2 nodes of pool l4 (4 GPUs each)"},
			Conditions: []metav1.Condition{
				{Type: v1alpha1.TrainingJobAdmitted, Status: metav1.ConditionTrue, Reason: "ShapeChosen", Message: "2x4 on l4", LastTransitionTime: metav1.NewTime(t0)},
				{Type: v1alpha1.TrainingJobRunning, Status: metav1.ConditionTrue, Reason: "WorkersStarting", Message: "1 of 2 workers ready", LastTransitionTime: metav1.NewTime(t0.Add(time.Minute))},
			},
		},
	}
}

func TestGetTable(t *testing.T) {
	done := runningJob()
	done.Name, done.Status.State, done.Status.Shape = "bert", "Succeeded", &v1alpha1.ShapeStatus{Nodes: 1, ProcessesPerNode: 8}
	items := []client.Object{runningJob(), done}
	for _, o := range []GetOptions{{}, {Output: "wide", AllNamespaces: true}, {Output: "name"}} {
		var out bytes.Buffer
		o.Kinds = []kindInfo{kindOf("trainingjobs")}
		o.now = func() time.Time { return t0.Add(90 * time.Minute) }
		o.streams = genericiooptions.IOStreams{Out: &out, ErrOut: &out}
		if err := o.print(&out, items); err != nil {
			t.Fatal(err)
		}
		golden(t, "get-"+map[string]string{"": "table", "wide": "wide", "name": "name"}[o.Output]+".golden.txt", out.String())
	}
}

// One object of every kind, as get with no kind prints them: each kind its own table, rows
// named kind/name; and as -o jsonpath reads them.
func TestGetAllKinds(t *testing.T) {
	sw := &v1alpha1.Sweep{ObjectMeta: metav1.ObjectMeta{Name: "lr", Namespace: "research", CreationTimestamp: metav1.NewTime(t0)},
		Spec:   v1alpha1.SweepSpec{MaxTrials: 6, Objective: v1alpha1.SweepObjective{Metric: "val_loss"}, Algorithm: v1alpha1.AlgorithmTPE},
		Status: v1alpha1.SweepStatus{State: "Running", Succeeded: 3, Running: 2, BestTrial: &v1alpha1.BestTrial{Name: "lr-2", Value: "0.31"}}}
	ms := &v1alpha1.ModelServer{ObjectMeta: metav1.ObjectMeta{Name: "resnet", Namespace: "research", CreationTimestamp: metav1.NewTime(t0)},
		Spec: v1alpha1.ModelServerSpec{Model: v1alpha1.ModelSource{URI: "trainingjob://resnet"}},
		Status: v1alpha1.ModelServerStatus{URL: "http://resnet.research.svc", Stable: &v1alpha1.TrackStatus{Replicas: 2, ReadyReplicas: 2},
			Canary: &v1alpha1.TrackStatus{Replicas: 1}, Traffic: &v1alpha1.TrafficStatus{Method: v1alpha1.TrafficReplicaRatio, StablePercent: 67, CanaryPercent: 33}}}
	nb := &v1alpha1.Notebook{ObjectMeta: metav1.ObjectMeta{Name: "explore", Namespace: "research", CreationTimestamp: metav1.NewTime(t0)},
		Status: v1alpha1.NotebookStatus{State: v1alpha1.NotebookPending}}
	objs := []client.Object{nb, ms, runningJob(), sw}
	for _, tc := range []struct{ output, golden string }{
		{"", "get-all.golden.txt"},
		{"wide", "get-all-wide.golden.txt"},
		{"jsonpath={range .items[*]}{.kind}/{.metadata.name} {.status.url}{\"\\n\"}{end}", "get-all-jsonpath.golden.txt"},
	} {
		var out bytes.Buffer
		o := GetOptions{Kinds: kindRegistry, Output: tc.output, now: func() time.Time { return t0.Add(90 * time.Minute) },
			streams: genericiooptions.IOStreams{Out: &out, ErrOut: &out}}
		if err := o.print(&out, objs); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.golden, out.String())
	}
}

func TestDeleteArguments(t *testing.T) {
	tj, ms := kindOf("trainingjobs"), kindOf("modelservers")
	for _, tc := range []struct {
		args []string
		want []deleteTarget
	}{
		{[]string{"modelserver", "resnet"}, []deleteTarget{{&ms, "resnet"}}},
		{[]string{"tj", "a", "b"}, []deleteTarget{{&tj, "a"}, {&tj, "b"}}},
		{[]string{"ms/resnet", "trainingjob/resnet"}, []deleteTarget{{&ms, "resnet"}, {&tj, "resnet"}}},
		{[]string{"resnet"}, []deleteTarget{{nil, "resnet"}}},
	} {
		o := &DeleteOptions{}
		if err := o.Complete(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if d := cmp.Diff(tc.want, o.Targets, cmp.AllowUnexported(deleteTarget{}), cmpopts.IgnoreFields(kindInfo{}, "New", "NewList", "Table")); d != "" {
			t.Errorf("%v (-want +got):\n%s", tc.args, d)
		}
	}
}

func TestStatusTree(t *testing.T) {
	tj := runningJob()
	tj.Status.LastFailure = &v1alpha1.FailureStatus{Message: "worker 1 exited with code 3 (Error) on attempt 0"}
	pod := func(name, idx, node string, phase corev1.PodPhase, waiting string) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{batchv1.JobCompletionIndexAnnotation: idx}},
			Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
		if waiting != "" {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: waiting}}}}
		}
		return p
	}
	ready := int32(1)
	tr := tree{
		tj:  tj,
		svc: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "resnet-a1"}},
		job: &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "resnet-a1"}, Status: batchv1.JobStatus{Active: 2, Ready: &ready}},
		pods: []corev1.Pod{
			pod("resnet-a1-1-x2", "1", "l4-1", corev1.PodPending, "ImagePullBackOff"),
			pod("resnet-a1-0-x1", "0", "l4-0", corev1.PodRunning, ""),
		},
		claims: []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: "resnet-checkpoints"},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("100Gi")}}},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
		}},
		events: []corev1.Event{{
			InvolvedObject: corev1.ObjectReference{Kind: "TrainingJob", Name: "resnet"}, Type: "Warning", Reason: "WorkerFailed",
			Message: "worker 1 exited with code 3; restarting the gang", LastTimestamp: metav1.NewTime(t0.Add(10 * time.Minute)),
		}},
	}
	var out bytes.Buffer
	tr.print(&out, t0.Add(12*time.Minute))
	golden(t, "status-tree.golden.txt", out.String())
}

func TestProgressLine(t *testing.T) {
	queued := runningJob()
	queued.Status = v1alpha1.TrainingJobStatus{Conditions: []metav1.Condition{{Type: v1alpha1.TrainingJobAdmitted, Status: metav1.ConditionFalse, Message: "needs 16 GPUs; the cluster has 8"}}}
	succeeded := runningJob()
	start, end := metav1.NewTime(t0), metav1.NewTime(t0.Add(61*time.Second))
	succeeded.Status.StartTime, succeeded.Status.CompletionTime = &start, &end
	succeeded.Status.Conditions = []metav1.Condition{{Type: v1alpha1.TrainingJobSucceeded, Status: metav1.ConditionTrue}}
	failed := runningJob()
	failed.Status.Conditions = []metav1.Condition{{Type: v1alpha1.TrainingJobFailed, Status: metav1.ConditionTrue, Message: "worker 1 exited with code 3"}}
	waiting := runningJob()
	waitMsg := "needs 2 nodes with 8 free nvidia.com/gpu; largest free block is 4"
	waiting.Status.Conditions = []metav1.Condition{
		{Type: v1alpha1.TrainingJobAdmitted, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonWaitingForCapacity, Message: waitMsg},
		{Type: v1alpha1.TrainingJobSuspended, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonWaitingForCapacity, Message: waitMsg},
	}
	refused := runningJob()
	refused.Status.Conditions = []metav1.Condition{{Type: v1alpha1.TrainingJobAdmitted, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonRefused, Message: "refused: too big"}}
	paused := runningJob()
	paused.Status.Conditions = []metav1.Condition{{Type: v1alpha1.TrainingJobSuspended, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSuspendedBySpec}}
	for _, tc := range []struct {
		tj           *v1alpha1.TrainingJob
		want         string
		done, failed bool
	}{
		{&v1alpha1.TrainingJob{}, "queued", false, false},
		{queued, "queued: needs 16 GPUs; the cluster has 8", false, false},
		{waiting, "queued: " + waitMsg, false, false},
		{refused, "refused: too big", false, false},
		{paused, "suspended [2x4 on l4]", false, false},
		{runningJob(), "running [2x4 on l4]: 1/2 workers ready, restart 1", false, false},
		{succeeded, "succeeded in 1m1s [2x4 on l4], restart 1", true, false},
		{failed, "failed [2x4 on l4]: worker 1 exited with code 3", true, true},
	} {
		got, done, failed := progressLine(tc.tj)
		if got != tc.want || done != tc.done || failed != tc.failed {
			t.Errorf("progressLine = %q %v %v, want %q %v %v", got, done, failed, tc.want, tc.done, tc.failed)
		}
	}
}

func TestDoctorGPUFindings(t *testing.T) {
	var nodes []corev1.Node
	for _, spec := range []string{"a100=2x8", "l4=2x4@NVIDIA-L4", "cpu=1x0"} {
		ps, err := controlplane.ParsePools(spec)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, ps[0].Nodes()...)
	}
	var out bytes.Buffer
	printFindings(&out, gpuFindings(nodes, controlplane.GPUResource))
	printFindings(&out, gpuFindings(nodes[4:], controlplane.GPUResource))
	golden(t, "doctor-gpus.golden.txt", out.String())
}

// doctor reads the webhook's table: rancher.io/local-path makes ReadWriteOnce volumes.
func TestDoctorStorageFindings(t *testing.T) {
	class := func(name, provisioner string) storagev1.StorageClass {
		return storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner}
	}
	for _, tc := range []struct {
		classes []storagev1.StorageClass
		want    string
	}{
		{[]storagev1.StorageClass{class("local-path", "rancher.io/local-path")}, "! no ReadWriteMany storage class found\n"},
		{[]storagev1.StorageClass{class("nfs", "nfs.csi.k8s.io"), class("local-path", "rancher.io/local-path")}, "✓ ReadWriteMany storage: nfs (nfs.csi.k8s.io)\n"},
		{[]storagev1.StorageClass{class("odd", "example.com/odd")}, "- storage classes of unknown access modes: odd (example.com/odd)\n"},
	} {
		var out bytes.Buffer
		printFindings(&out, storageFindings(tc.classes))
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("storage findings lack %q:\n%s", tc.want, out.String())
		}
	}
}

// Offline export warns as the webhook would on nodes of --node-gpus GPUs.
func TestExportWarnsAsAdmissionDoes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, spec string) string {
		path := filepath.Join(dir, name)
		doc := "apiVersion: kiln.dev/v1alpha1\nkind: TrainingJob\nmetadata:\n  name: j\n  namespace: ns\nspec:\n  image: registry.example/x:1\n  command: [python, train.py]\n" + spec
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"uneven GPUs", "  resources:\n    gpus: 11\n  checkpoints:\n    size: 1Gi\n",
			"Warning: 11 GPUs do not split evenly over 2 of these nodes"},
		{"multi-node without checkpoints", "  resources:\n    gpus: 16\n",
			"Warning: the job runs on 2 nodes without checkpoints"},
		{"topology wider than needed", "  resources:\n    gpus: 8\n  topology:\n    nodes: 4\n    processesPerNode: 2\n  checkpoints:\n    size: 1Gi\n",
			"Warning: spec.topology asks for 4 nodes × 2 GPUs, but 1 node(s) × 8 GPUs would hold the job"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, err := run(t, "export", "-f", write(tc.name+".yaml", tc.spec))
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("export's warnings lack %q:\n%s", tc.want, errOut)
			}
		})
	}
	_, errOut, err := run(t, "export", "-f", write("rwo.yaml", "  resources:\n    gpus: 16\n  checkpoints:\n    size: 1Gi\n    accessMode: ReadWriteOnce\n"))
	if err == nil || !strings.Contains(err.Error(), "spec.checkpoints.accessMode") {
		t.Errorf("export of a 2-node job on a ReadWriteOnce volume: %v, want admission's refusal\n%s", err, errOut)
	}
}
