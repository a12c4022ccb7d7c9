// Package sim replays workloads through Kiln's placement without an API
// server: the openb GPU trace (how full Kiln packs a cluster) and a synthetic
// stream of distributed jobs (gang admission against pods scheduled one by
// one).
package sim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"kiln.dev/kiln/internal/placement"
)

// OpenBDirEnv overrides where the openb trace is looked for.
const OpenBDirEnv = "KILN_OPENB_DIR"

// FindOpenB locates the trace: $KILN_OPENB_DIR, or shared/data/openb in the
// working directory or any folder above it (the trace sits beside the
// repository, and tests run in their package's folder).
func FindOpenB() (string, error) {
	if d := os.Getenv(OpenBDirEnv); d != "" {
		if !hasTrace(d) {
			return "", fmt.Errorf("%s=%s holds no openb_node_list_gpu_node.csv", OpenBDirEnv, d)
		}
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if d := filepath.Join(dir, "shared", "data", "openb"); hasTrace(d) {
			return d, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no shared/data/openb above the working directory; set %s", OpenBDirEnv)
		}
		dir = parent
	}
}

func hasTrace(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, nodeFile))
	return err == nil
}

const (
	nodeFile = "openb_node_list_gpu_node.csv"
	taskFile = "openb_pod_list_default.csv"
)

// TraceNode is a node of the trace.
type TraceNode struct {
	Name      string
	MilliCPU  int64
	MemoryMiB int64
	GPUs      int64
}

// TraceTask is a task of the trace. GPUMilli < 1000 (with GPUs = 1) is a
// share of one GPU; GPUs = 0 is a CPU task.
type TraceTask struct {
	Name      string
	MilliCPU  int64
	MemoryMiB int64
	GPUs      int64
	GPUMilli  int64
	Created   int64
}

// Trace is the openb cluster and its tasks in creation order.
type Trace struct {
	Nodes []TraceNode
	Tasks []TraceTask
}

// GPUs is the cluster's GPU count.
func (t *Trace) GPUs() int64 {
	var n int64
	for _, nd := range t.Nodes {
		n += nd.GPUs
	}
	return n
}

// LoadOpenB reads the two CSV files of the trace.
func LoadOpenB(dir string) (*Trace, error) {
	var t Trace
	err := readCSV(filepath.Join(dir, nodeFile), []string{"sn", "cpu_milli", "memory_mib", "gpu"}, func(f []string, n []int64) {
		t.Nodes = append(t.Nodes, TraceNode{Name: f[0], MilliCPU: n[1], MemoryMiB: n[2], GPUs: n[3]})
	})
	if err != nil {
		return nil, err
	}
	err = readCSV(filepath.Join(dir, taskFile), []string{"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "creation_time"}, func(f []string, n []int64) {
		t.Tasks = append(t.Tasks, TraceTask{Name: f[0], MilliCPU: n[1], MemoryMiB: n[2], GPUs: n[3], GPUMilli: n[4], Created: n[5]})
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(t.Tasks, func(a, b TraceTask) int { return int(a.Created - b.Created) })
	return &t, nil
}

// readCSV calls row with the named columns of every record, and their
// numeric values (the first column is a name and reads as 0).
func readCSV(path string, cols []string, row func([]string, []int64)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	idx := make([]int, len(cols))
	for i, c := range cols {
		if idx[i] = slices.Index(header, c); idx[i] < 0 {
			return fmt.Errorf("%s: no column %q", path, c)
		}
	}
	fields, nums := make([]string, len(cols)), make([]int64, len(cols))
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for i, j := range idx {
			fields[i] = rec[j]
			if i == 0 {
				continue
			}
			if nums[i], err = strconv.ParseInt(rec[j], 10, 64); err != nil {
				return fmt.Errorf("%s:%d: column %s: %w", path, line, cols[i], err)
			}
		}
		row(fields, nums)
	}
}

// Workload is the tasks offered to the cluster, in order. Inflate > 0 appends
// copies of tasks drawn at random (with replacement) until the GPUs requested
// reach Inflate × the cluster's GPUs, as the paper's artifact does to load the
// cluster past full; 0 replays the trace alone.
func (t *Trace) Workload(inflate float64, shared bool, rng *rand.Rand) []TraceTask {
	tasks := slices.Clone(t.Tasks)
	if inflate <= 0 {
		return tasks
	}
	target := int64(inflate * float64(t.GPUs()) * 1000)
	var total int64
	for _, k := range tasks {
		total += gpuMilli(k, shared)
	}
	for i := 0; ; i++ {
		k := t.Tasks[rng.IntN(len(t.Tasks))]
		if total+gpuMilli(k, shared) > target {
			return tasks
		}
		total += gpuMilli(k, shared)
		k.Name = fmt.Sprintf("%s-copy-%d", k.Name, i)
		tasks = append(tasks, k)
	}
}

// gpuMilli is what a task takes of the cluster's GPUs in thousandths: its
// share when GPUs are shared, whole GPUs when they are not.
func gpuMilli(k TraceTask, shared bool) int64 {
	if shared {
		return k.GPUs * k.GPUMilli
	}
	return k.GPUs * 1000
}

// Fill is how full a replay left the cluster.
type Fill struct {
	// AtFirstFailure is the share of GPUs allocated when the first task
	// failed to place.
	AtFirstFailure float64
	// AllArrived is the share of GPUs allocated once every task has been
	// offered (failed tasks are dropped, not retried; nothing is deleted).
	AllArrived float64
	// Arrived is the GPUs the tasks requested, as a share of the cluster's.
	Arrived float64
	Failed  int
}

// ReplayWhole offers the tasks one by one to Kiln's placement, each as a gang
// of one pod with whole GPUs: a task asking for a share of a GPU gets one
// whole GPU, because Kiln does not share GPUs. The seed shuffles the node
// order, which decides ties.
func ReplayWhole(t *Trace, tasks []TraceTask, policy placement.Policy, seed uint64) Fill {
	nodes := make([]placement.Node, len(t.Nodes))
	for i, n := range t.Nodes {
		nodes[i] = placement.Node{Name: n.Name, Allocatable: placement.Resources{MilliCPU: n.MilliCPU, Memory: n.MemoryMiB << 20, GPU: n.GPUs}}
	}
	rand.New(rand.NewPCG(seed, 0)).Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	c := placement.NewCluster(nodes)

	pods := make([]placement.Pod, len(tasks))
	reqs := make([]placement.Resources, len(tasks))
	for i, k := range tasks {
		reqs[i] = placement.Resources{MilliCPU: k.MilliCPU, Memory: k.MemoryMiB << 20, GPU: k.GPUs}
		pods[i] = placement.Pod{Requests: reqs[i]}
	}
	// FragAware protects the trace's own mix, as the paper's policy knows it.
	p := placement.NewPacker(policy, placement.MixOf(reqs))

	capacity := float64(t.GPUs())
	var fill Fill
	var used, asked int64
	for i, k := range tasks {
		asked += k.GPUs
		if _, ok := p.Place(c, k.Name, pods[i:i+1]); !ok {
			if fill.Failed == 0 {
				fill.AtFirstFailure = float64(used) / capacity
			}
			fill.Failed++
			continue
		}
		used += k.GPUs
	}
	fill.AllArrived = float64(used) / capacity
	fill.Arrived = float64(asked) / capacity
	if fill.Failed == 0 {
		fill.AtFirstFailure = fill.AllArrived
	}
	return fill
}
