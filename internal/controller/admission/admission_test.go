package admission

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"kiln.dev/kiln/api/v1alpha1"
)

func TestPlaceOn(t *testing.T) {
	on := func(node string, own ...corev1.NodeSelectorRequirement) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{
			MatchExpressions: own,
			MatchFields:      []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
		}
	}
	pool := corev1.NodeSelectorRequirement{Key: "kiln.dev/pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"a100"}}
	zone := corev1.NodeSelectorRequirement{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z1"}}
	required := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
		}}
	}
	preferred := []corev1.PreferredSchedulingTerm{{Weight: 1, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{pool}}}}
	tests := []struct {
		name  string
		spec  corev1.PodSpec
		nodes []string
		want  corev1.PodSpec
	}{
		{
			name:  "no affinity of its own: a term per node, sorted, each once",
			nodes: []string{"n-2", "n-1", "n-2"},
			want:  corev1.PodSpec{Affinity: required(on("n-1"), on("n-2"))},
		},
		{
			name:  "each alternative of the user's, on each node",
			nodes: []string{"n-1", "n-2"},
			spec: corev1.PodSpec{Affinity: required(
				corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{pool}},
				corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{zone}},
			)},
			want: corev1.PodSpec{Affinity: required(on("n-1", pool), on("n-2", pool), on("n-1", zone), on("n-2", zone))},
		},
		{
			name:  "an earlier admission's nodes are replaced",
			nodes: []string{"n-3"},
			spec:  corev1.PodSpec{Affinity: required(on("n-1", pool), on("n-2", pool))},
			want:  corev1.PodSpec{Affinity: required(on("n-3", pool))},
		},
		{
			name:  "preferences stay",
			nodes: []string{"n-1"},
			spec:  corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: preferred}}},
			want: corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution:  &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{on("n-1")}},
				PreferredDuringSchedulingIgnoredDuringExecution: preferred,
			}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			placeOn(&tt.spec, tt.nodes)
			if diff := cmp.Diff(tt.want, tt.spec); diff != "" {
				t.Errorf("placed spec (-want +got):\n%s", diff)
			}
		})
	}
}

// A held gang counts through its hold, whether or not its pods exist, and
// whichever worker sits on which of its nodes; a pod of its Job away from the
// placement, or of an earlier Job of the same name, counts on its own.
func TestHeldGangCountsOnce(t *testing.T) {
	gpus := func(n int64) corev1.ResourceList {
		return corev1.ResourceList{v1alpha1.DefaultGPUResource: *resource.NewQuantity(n, resource.DecimalSI)}
	}
	node := func(name string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Allocatable: gpus(8)}}
	}
	spec := corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: gpus(4)}}}}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a-a0", UID: "uid-a"},
		Spec:       batchv1.JobSpec{Completions: ptr.To[int32](2), Template: corev1.PodTemplateSpec{Spec: spec}},
	}
	pod := func(name, uid, index, node string) corev1.Pod {
		p := corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: "ns", Name: name,
				Labels:      map[string]string{batchv1.JobNameLabel: "a-a0", batchv1.ControllerUidLabel: uid},
				Annotations: map[string]string{batchv1.JobCompletionIndexAnnotation: index},
			},
			Spec:   *spec.DeepCopy(),
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
		p.Spec.NodeName = node
		return p
	}
	w := &world{
		nodes: []corev1.Node{node("n-0"), node("n-1"), node("n-2")},
		pods: []corev1.Pod{
			pod("a-a0-1", "uid-a", "1", "n-0"),        // on a node of the hold; pod 0 not created yet
			pod("a-a0-1-old", "uid-a", "1", "n-2"),    // away from its placement
			pod("a-a0-0-prev", "uid-old", "0", "n-0"), // an earlier Job's, still stopping
		},
	}
	held := []*gang{{job: job, nodes: []string{"n-0", "n-1"}}}
	c, err := w.snapshot(v1alpha1.DefaultGPUResource, held).Cluster()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, n := range []string{"n-0", "n-1", "n-2"} {
		free, _ := c.Free(n)
		got[n] = free.GPU
	}
	if diff := cmp.Diff(map[string]int64{"n-0": 0, "n-1": 4, "n-2": 4}, got); diff != "" {
		t.Errorf("free GPUs (-want +got):\n%s", diff)
	}
}

func TestLostBecause(t *testing.T) {
	job := &batchv1.Job{Spec: batchv1.JobSpec{Completions: ptr.To[int32](2)}}
	present := map[string]bool{"n-0": true, "n-1": true}
	tests := []struct {
		nodes []string
		want  string
	}{
		{nodes: []string{"n-0", "n-1"}},
		{nodes: []string{"n-0", "n-9"}, want: "node n-9 of its placement is gone"},
		{nodes: []string{"n-0"}, want: "its placement names 1 nodes for 2 workers"},
	}
	for _, tt := range tests {
		if got := lostBecause(&gang{job: job, nodes: tt.nodes}, present); got != tt.want {
			t.Errorf("%v: got %q, want %q", tt.nodes, got, tt.want)
		}
	}
}

func TestPriorities(t *testing.T) {
	priority := priorities([]schedulingv1.PriorityClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000},
		{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Value: 10, GlobalDefault: true},
	})
	for name, want := range map[string]int32{"high": 1000, "": 10, "unknown": 0} {
		if got := priority(name); got != want {
			t.Errorf("priority(%q) = %d, want %d", name, got, want)
		}
	}
}

// GPU ranks each take a node of their own; CPU ranks may share one, so a two-pod CPU job runs
// on a one-node cluster (the local Kiln's real node).
func TestOwnNodeOnlyForGPURanks(t *testing.T) {
	job := func(requests corev1.ResourceList) *gang {
		spec := corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: requests}}}}
		return &gang{job: &batchv1.Job{Spec: batchv1.JobSpec{Completions: ptr.To[int32](2), Template: corev1.PodTemplateSpec{Spec: spec}}}}
	}
	tests := []struct {
		name     string
		requests corev1.ResourceList
		own      bool
	}{
		{"GPU ranks", corev1.ResourceList{v1alpha1.DefaultGPUResource: resource.MustParse("1"), corev1.ResourceCPU: resource.MustParse("1")}, true},
		{"CPU ranks", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("2Gi")}, false},
		{"ranks requesting nothing", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pods := job(tt.requests).pods(v1alpha1.DefaultGPUResource)
			if len(pods) != 2 {
				t.Fatalf("%d pods, want 2", len(pods))
			}
			for i, p := range pods {
				if p.OwnNode != tt.own {
					t.Errorf("pod %d OwnNode = %v, want %v", i, p.OwnNode, tt.own)
				}
			}
		})
	}
}

// A new Job is admitted as it is created only against a fresh picture in which
// nothing waits, and each admission holds its capacity until its create fails.
func TestPlaceNew(t *testing.T) {
	gpus := func(n int64) corev1.ResourceList {
		return corev1.ResourceList{v1alpha1.DefaultGPUResource: *resource.NewQuantity(n, resource.DecimalSI)}
	}
	node := func(name string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Allocatable: gpus(8)}}
	}
	newJob := func(name string) (*batchv1.Job, *v1alpha1.TrainingJob) {
		spec := corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: gpus(8), Limits: gpus(8)}}}}
		return &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name + "-a0"},
			Spec:       batchv1.JobSpec{Suspend: ptr.To(true), Completions: ptr.To[int32](1), Template: corev1.PodTemplateSpec{Spec: spec}},
		}, &v1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
	}
	w := &world{nodes: []corev1.Node{node("n-0"), node("n-1")}}
	c, err := w.snapshot(v1alpha1.DefaultGPUResource, nil).Cluster()
	if err != nil {
		t.Fatal(err)
	}
	a := &Admitter{}
	type step struct {
		job     string
		created bool   // passed to done
		want    string // the placement, "" for left suspended
	}
	place := func(s step) {
		t.Helper()
		job, tj := newJob(s.job)
		done := a.PlaceNew(job, tj)
		got := job.Annotations[v1alpha1.AnnotationPlacement]
		if got != s.want || ptr.Deref(job.Spec.Suspend, false) != (s.want == "") {
			t.Fatalf("%s: placement %q, suspend %v; want placement %q", s.job, got, *job.Spec.Suspend, s.want)
		}
		key := client.ObjectKeyFromObject(job)
		if a.fresh[key] == nil {
			t.Fatalf("%s: the next pass would not know of it until it sees it", s.job)
		}
		if a.PlaceNew(job, tj) != nil {
			t.Fatalf("%s: decided twice", s.job)
		}
		done(s.created)
		if _, ok := a.fresh[key]; ok != s.created {
			t.Fatalf("%s: remembered %v after done(%v)", s.job, ok, s.created)
		}
	}

	place(step{job: "before-any-pass"})
	a.latest = &picture{gpu: v1alpha1.DefaultGPUResource, cluster: c, at: time.Now().Add(-2 * pictureTTL)}
	place(step{job: "stale-picture"})
	a.latest = &picture{gpu: "amd.com/gpu", cluster: c, at: time.Now()}
	place(step{job: "other-gpu-kind"})
	a.latest = &picture{gpu: v1alpha1.DefaultGPUResource, cluster: c, at: time.Now()}
	for _, s := range []step{
		{job: "a", created: true, want: "n-0"},
		{job: "b", created: false, want: "n-1"}, // its create failed: n-1 is free again
		{job: "c", created: true, want: "n-1"},
		{job: "d", created: true}, // waits for a pass
		{job: "e", created: true}, // and nothing passes it, not even on a node freed since
	} {
		if s.job == "e" {
			c.Release("ns/a-a0")
		}
		place(s)
	}
}

// A pass starts when a Kiln pod frees capacity or one outside a gang takes some; the latter
// also drops the picture at once.
func TestPodChanged(t *testing.T) {
	pod := func(node string, phase corev1.PodPhase, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
	}
	worker := map[string]string{batchv1.JobNameLabel: "j-a0"}
	tests := []struct {
		name     string
		old, new *corev1.Pod
		pass     bool
		dropped  bool
	}{
		{name: "a notebook's pod is bound", old: pod("", corev1.PodPending, nil), new: pod("n-0", corev1.PodPending, nil), pass: true, dropped: true},
		{name: "a gang worker is bound: its gang is in the picture", old: pod("", corev1.PodPending, worker), new: pod("n-0", corev1.PodPending, worker)},
		{name: "a worker finishes", old: pod("n-0", corev1.PodRunning, worker), new: pod("n-0", corev1.PodSucceeded, worker), pass: true},
		{name: "a worker becomes ready", old: pod("n-0", corev1.PodPending, worker), new: pod("n-0", corev1.PodRunning, worker)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Admitter{latest: &picture{}}
			q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
			defer q.ShutDown()
			a.podChanged().Update(context.Background(), event.UpdateEvent{ObjectOld: tt.old, ObjectNew: tt.new}, q)
			if got := q.Len() == 1; got != tt.pass {
				t.Errorf("pass started: %v, want %v", got, tt.pass)
			}
			if got := a.latest == nil; got != tt.dropped {
				t.Errorf("picture dropped: %v, want %v", got, tt.dropped)
			}
		})
	}
}
