package sim

import (
	"cmp"
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"kiln.dev/kiln/internal/placement"
)

// GangConfig describes a synthetic stream of distributed training jobs on a
// cluster of 8-GPU and 4-GPU nodes. Times are in hours of simulated time.
type GangConfig struct {
	Seed uint64
	Jobs int
	// Load is the GPU-hours offered per hour as a share of the cluster's GPUs.
	Load    float64
	MeanRun float64 // mean run time of a job, exponentially distributed
	Nodes8  int
	Nodes4  int
	// Retry is how long a gang broken up to end a deadlock waits before it is
	// submitted again (the no-gang baseline only).
	Retry float64
}

// DefaultGangConfig is the workload docs/benchmarks.md reports.
func DefaultGangConfig(seed uint64) GangConfig {
	return GangConfig{Seed: seed, Jobs: 1000, Load: 0.8, MeanRun: 2, Nodes8: 16, Nodes4: 16, Retry: 0.25}
}

// JobSizes are the GPU counts of the jobs and their shares of the stream.
var JobSizes = [...]struct {
	GPUs  int64
	Share float64
}{{1, 0.30}, {2, 0.20}, {4, 0.20}, {8, 0.15}, {16, 0.10}, {32, 0.05}}

const (
	cpuPerGPU = 10_000   // millicores
	memPerGPU = 80 << 30 // bytes
)

func (cfg GangConfig) nodes() []placement.Node {
	var nodes []placement.Node
	add := func(count int, gpus int64) {
		for range count {
			nodes = append(nodes, placement.Node{
				Name:        fmt.Sprintf("n%d-%02d", gpus, len(nodes)),
				Allocatable: placement.Resources{GPU: gpus, MilliCPU: gpus * 12_000, Memory: gpus * 96 << 30},
			})
		}
	}
	add(cfg.Nodes8, 8)
	add(cfg.Nodes4, 4)
	return nodes
}

func (cfg GangConfig) gpus() int64 { return int64(cfg.Nodes8*8 + cfg.Nodes4*4) }

type job struct {
	id      string
	gpus    int64
	arrival float64
	run     float64
	pods    []placement.Pod
	podIDs  []string // for the baseline, which places pods one by one
}

// jobs draws the stream. Each job is shaped as Kiln shapes a TrainingJob: the
// fewest nodes that hold its GPUs (16 GPUs are 2 pods of 8, 4 GPUs one pod).
func (cfg GangConfig) jobs() []job {
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	shapes := []placement.NodeShape{{GPUsPerNode: 8, Count: int32(cfg.Nodes8)}, {GPUsPerNode: 4, Count: int32(cfg.Nodes4)}}
	var mean float64
	for _, s := range JobSizes {
		mean += s.Share * float64(s.GPUs)
	}
	rate := cfg.Load * float64(cfg.gpus()) / (mean * cfg.MeanRun) // jobs per hour
	jobs := make([]job, cfg.Jobs)
	var t float64
	for i := range jobs {
		t += rng.ExpFloat64() / rate
		gpus := drawSize(rng.Float64())
		shape, err := placement.Choose(int32(gpus), "nvidia.com/gpu", shapes)
		if err != nil {
			panic(err) // every size fits the cluster by construction
		}
		per := int64(shape.GPUsPerNode)
		pod := placement.Pod{Requests: placement.Resources{GPU: per, MilliCPU: per * cpuPerGPU, Memory: per * memPerGPU}}
		j := job{id: fmt.Sprintf("job-%04d", i), gpus: gpus, arrival: t, run: rng.ExpFloat64() * cfg.MeanRun}
		for p := range shape.Nodes {
			j.pods = append(j.pods, pod)
			j.podIDs = append(j.podIDs, fmt.Sprintf("%s/%d", j.id, p))
		}
		jobs[i] = j
	}
	return jobs
}

// drawSize picks a job size for x uniform in [0, 1) by the sizes' shares.
func drawSize(x float64) int64 {
	for _, s := range JobSizes {
		if x < s.Share {
			return s.GPUs
		}
		x -= s.Share
	}
	return JobSizes[len(JobSizes)-1].GPUs // what rounding leaves
}

// GangResult is what one run of the stream measured.
type GangResult struct {
	// MeanWait is the mean time from a job's arrival until all its pods run.
	MeanWait float64
	// MeanWaitBySize is MeanWait for the jobs of each size in JobSizes.
	MeanWaitBySize [len(JobSizes)]float64
	// Utilisation is the GPU-hours of running jobs over the GPU-hours of the
	// cluster, from the first arrival to the last.
	Utilisation float64
	// IdleHeld is the GPU-hours held by pods whose job could not run yet
	// (its other pods were not placed), on the same scale.
	IdleHeld float64
	// PartialGangs counts jobs that ever had some pods placed and others not.
	PartialGangs int
	// Deadlocks counts the moments at which two or more partly placed jobs
	// held capacity the others needed, so that none could ever complete.
	Deadlocks int
	// BrokenUp counts the jobs the baseline broke up to end deadlocks.
	BrokenUp int
	Refused  int
	// NeverStarted counts jobs still waiting when the events ran out.
	NeverStarted int
}

// events orders arrivals, retries and completions in time.
type event struct {
	t   float64
	job int
	end bool
}

type events []event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].t != e[j].t {
		return e[i].t < e[j].t
	}
	return e[i].end && !e[j].end // free capacity before new demand
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// meter integrates GPU-hours up to the horizon (the last arrival).
type meter struct {
	horizon, last float64
	busy, held    float64 // GPUs now
	busyH, heldH  float64
}

func (m *meter) advance(t float64) {
	d := math.Min(t, m.horizon) - math.Min(m.last, m.horizon)
	m.busyH += d * m.busy
	m.heldH += d * m.held
	m.last = t
}

// stream is the state both runs share: the jobs, the events to come, the
// meter and when each job started.
type stream struct {
	cfg     GangConfig
	jobs    []job
	ev      events
	m       meter
	starts  []float64 // -1 until the job starts
	partial []bool    // the job was ever partly placed
	res     GangResult
}

func newStream(cfg GangConfig) *stream {
	s := &stream{cfg: cfg, jobs: cfg.jobs()}
	s.starts = make([]float64, len(s.jobs))
	s.partial = make([]bool, len(s.jobs))
	for i, j := range s.jobs {
		s.ev = append(s.ev, event{t: j.arrival, job: i})
		s.starts[i] = -1
	}
	heap.Init(&s.ev)
	s.m.horizon = s.jobs[len(s.jobs)-1].arrival
	return s
}

func (s *stream) start(j int, now float64) {
	s.starts[j] = now
	s.m.busy += float64(s.jobs[j].gpus)
	heap.Push(&s.ev, event{t: now + s.jobs[j].run, job: j, end: true})
}

// loop hands every instant's arrivals and ends to step.
func (s *stream) loop(step func(now float64, arrived, ended []int)) {
	for s.ev.Len() > 0 {
		now := s.ev[0].t
		s.m.advance(now)
		var arrived, ended []int
		for s.ev.Len() > 0 && s.ev[0].t == now {
			e := heap.Pop(&s.ev).(event)
			if e.end {
				s.m.busy -= float64(s.jobs[e.job].gpus)
				ended = append(ended, e.job)
			} else {
				arrived = append(arrived, e.job)
			}
		}
		step(now, arrived, ended)
	}
}

func (s *stream) result() GangResult {
	r := s.res
	var sum [len(JobSizes)]float64
	var n [len(JobSizes)]int
	var total float64
	var started int
	for i, j := range s.jobs {
		if s.partial[i] {
			r.PartialGangs++
		}
		if s.starts[i] < 0 {
			r.NeverStarted++
			continue
		}
		started++
		w := s.starts[i] - j.arrival
		total += w
		for k, size := range JobSizes {
			if size.GPUs == j.gpus {
				sum[k] += w
				n[k]++
			}
		}
	}
	r.MeanWait = total / float64(max(started, 1))
	for k := range sum {
		if n[k] > 0 {
			r.MeanWaitBySize[k] = sum[k] / float64(n[k])
		}
	}
	capacity := float64(s.cfg.gpus()) * s.m.horizon
	r.Utilisation = s.m.busyH / capacity
	r.IdleHeld = s.m.heldH / capacity
	return r
}

var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func hoursToTime(h float64) time.Time { return simEpoch.Add(time.Duration(h * float64(time.Hour))) }

// RunKiln admits the stream with Kiln's gang admission: after every instant's
// arrivals and ends, Admit decides the whole queue.
func RunKiln(cfg GangConfig) GangResult {
	s := newStream(cfg)
	nodes := cfg.nodes()
	byName := map[string]int{}
	for i, n := range nodes {
		byName[n.Name] = i
	}
	c := placement.NewCluster(nodes)
	var queue []placement.Gang
	index := map[string]int{}
	s.loop(func(now float64, arrived, ended []int) {
		for _, j := range ended {
			c.Release(s.jobs[j].id)
		}
		for _, j := range arrived {
			job := s.jobs[j]
			index[job.id] = j
			queue = append(queue, placement.Gang{ID: job.id, Arrival: hoursToTime(job.arrival), Pods: job.pods})
		}
		decided := placement.Admit(c, queue, nil)
		waiting := queue[:0]
		var partly []int
		var where [][]int
		for _, d := range decided {
			j := index[d.Gang]
			// Check what the cluster holds, not what the decision says.
			held, _ := c.Holds(d.Gang)
			if admitted := d.State == placement.Admitted; admitted && len(held) != len(s.jobs[j].pods) || !admitted && len(held) > 0 {
				s.partial[j] = true
				partly = append(partly, j)
				if where == nil {
					where = make([][]int, len(s.jobs))
				}
				where[j] = make([]int, len(s.jobs[j].pods))
				for p := range where[j] {
					where[j][p] = -1
					if p < len(held) {
						where[j][p] = byName[held[p]]
					}
				}
			}
			switch d.State {
			case placement.Admitted:
				s.start(j, now)
			case placement.Refused:
				s.res.Refused++ // never: every job fits the cluster
			default:
				waiting = append(waiting, placement.Gang{ID: d.Gang, Arrival: hoursToTime(s.jobs[j].arrival), Pods: s.jobs[j].pods})
			}
		}
		queue = waiting
		if len(deadlocked(nodes, s.jobs, partly, where)) > 0 {
			s.res.Deadlocks++
		}
	})
	return s.result()
}

// RetryOrder is the order in which the no-gang baseline retries pods that did
// not fit, after every change in the cluster.
type RetryOrder int

const (
	// FIFO retries pods by their job's arrival, then index: how
	// kube-scheduler's active queue sorts pods of equal priority once their
	// backoff has passed. The kindest order for pod-by-pod scheduling.
	FIFO RetryOrder = iota
	// Scrambled retries them in an order drawn from the seed: per-pod
	// backoff, pods created in bursts and several Job controllers racing make
	// the order in which waiting pods meet freed capacity arbitrary.
	Scrambled
)

func (o RetryOrder) String() string {
	if o == FIFO {
		return "FIFO"
	}
	return "scrambled"
}

// RunNoGang schedules the same stream pod by pod, as the default scheduler
// does without gang scheduling: a pod binds as soon as some node has room
// (least allocated first), whether or not the rest of its job can. When
// partly placed jobs deadlock, the youngest of them is broken up (its pods
// deleted) and submitted again after cfg.Retry, as a timeout or a person
// would.
func RunNoGang(cfg GangConfig, order RetryOrder) GangResult {
	s := newStream(cfg)
	nodes := cfg.nodes()
	byName := map[string]int{}
	for i, n := range nodes {
		byName[n.Name] = i
	}
	c := placement.NewCluster(nodes)
	spread := placement.NewPacker(placement.Spread, nil)
	rng := rand.New(rand.NewPCG(cfg.Seed, 2))
	where := make([][]int, len(s.jobs)) // node of each pod, -1 while pending
	bound := make([]int, len(s.jobs))
	type podRef struct{ job, pod int }
	var pending []podRef

	schedule := func(now float64) {
		if order == Scrambled {
			rng.Shuffle(len(pending), func(a, b int) { pending[a], pending[b] = pending[b], pending[a] })
		} else {
			slices.SortFunc(pending, func(a, b podRef) int {
				if c := cmp.Compare(s.jobs[a.job].arrival, s.jobs[b.job].arrival); c != 0 {
					return c
				}
				return cmp.Compare(a.pod, b.pod)
			})
		}
		left := pending[:0]
		for _, p := range pending {
			j := &s.jobs[p.job]
			at, ok := spread.Place(c, j.podIDs[p.pod], j.pods[p.pod:p.pod+1])
			if !ok {
				left = append(left, p)
				continue
			}
			where[p.job][p.pod] = byName[at[0]]
			bound[p.job]++
			s.m.held += float64(j.pods[p.pod].Requests.GPU)
			if bound[p.job] == len(j.pods) {
				s.m.held -= float64(j.gpus)
				s.start(p.job, now)
			}
		}
		pending = left
	}
	s.loop(func(now float64, arrived, ended []int) {
		for _, j := range ended {
			for _, id := range s.jobs[j].podIDs {
				c.Release(id)
			}
		}
		for _, j := range arrived {
			where[j] = make([]int, len(s.jobs[j].pods))
			for p := range where[j] {
				where[j][p] = -1
				pending = append(pending, podRef{j, p})
			}
		}
		schedule(now)
		for first := true; ; first = false {
			var partly []int
			for j := range s.jobs {
				if bound[j] > 0 && bound[j] < len(s.jobs[j].pods) {
					partly = append(partly, j)
					s.partial[j] = true
				}
			}
			stuck := deadlocked(nodes, s.jobs, partly, where)
			if len(stuck) == 0 {
				return
			}
			if first {
				s.res.Deadlocks++
			}
			s.res.BrokenUp++
			youngest := stuck[0]
			for _, j := range stuck {
				if s.jobs[j].arrival > s.jobs[youngest].arrival {
					youngest = j
				}
			}
			// Break it up: its pods go, and it comes back after cfg.Retry.
			kept := pending[:0]
			for _, p := range pending {
				if p.job != youngest {
					kept = append(kept, p)
				}
			}
			pending = kept
			for p, n := range where[youngest] {
				if n >= 0 {
					c.Release(s.jobs[youngest].podIDs[p])
					s.m.held -= float64(s.jobs[youngest].pods[p].Requests.GPU)
				}
			}
			bound[youngest] = 0
			where[youngest] = nil
			heap.Push(&s.ev, event{t: now + cfg.Retry, job: youngest})
			schedule(now)
		}
	})
	return s.result()
}

// deadlocked returns the partly placed jobs that can never complete: every
// job not partly placed will finish and free its nodes, so a partly placed
// job can complete if its missing pods fit in what the other partly placed
// jobs do not hold; one that completes frees its own pods in turn (the
// banker's test). What is left holds capacity the others need.
func deadlocked(nodes []placement.Node, jobs []job, partly []int, where [][]int) []int {
	if len(partly) < 2 {
		return nil
	}
	avail := make([]placement.Resources, len(nodes))
	for n := range nodes {
		avail[n] = nodes[n].Allocatable
	}
	move := func(j, sign int) {
		for p, n := range where[j] {
			if n >= 0 {
				r := jobs[j].pods[p].Requests
				avail[n].GPU -= int64(sign) * r.GPU
				avail[n].MilliCPU -= int64(sign) * r.MilliCPU
				avail[n].Memory -= int64(sign) * r.Memory
			}
		}
	}
	for _, j := range partly {
		move(j, 1)
	}
	left := append([]int(nil), partly...)
	for progress := true; progress && len(left) > 0; {
		progress = false
		for i, j := range left {
			if missingFit(avail, jobs[j], where[j]) {
				move(j, -1)
				left = append(left[:i], left[i+1:]...)
				progress = true
				break
			}
		}
	}
	if len(left) == 0 {
		return nil
	}
	return left
}

// missingFit reports whether the pods of j not yet placed fit in avail.
func missingFit(avail []placement.Resources, j job, where []int) bool {
	room := append([]placement.Resources(nil), avail...)
	for p, at := range where {
		if at >= 0 {
			continue
		}
		r := j.pods[p].Requests
		placed := false
		for n := range room {
			if r.GPU <= room[n].GPU && r.MilliCPU <= room[n].MilliCPU && r.Memory <= room[n].Memory {
				room[n].GPU -= r.GPU
				room[n].MilliCPU -= r.MilliCPU
				room[n].Memory -= r.Memory
				placed = true
				break
			}
		}
		if !placed {
			return false
		}
	}
	return true
}
