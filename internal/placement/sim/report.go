package sim

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"text/tabwriter"

	"kiln.dev/kiln/internal/placement"
)

// Seeds are the seeds of every reported figure: 42 to 51, as the paper's
// artifact uses for the openb trace.
func Seeds(n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = 42 + uint64(i)
	}
	return s
}

// Policies are compared in this order, Kiln's last.
var Policies = []placement.Policy{placement.Spread, placement.BestFit, placement.FragAware}

// OpenBMode is one way of replaying the trace.
type OpenBMode struct {
	Name string
	Run  func(t *Trace, p placement.Policy, seed uint64) Fill
}

// OpenBModes are the replays reported: Kiln's own (whole GPUs, the trace as
// it is) and the paper's (shared GPUs, the workload inflated to 130 % of the
// cluster's GPUs by tasks drawn from the trace with the seed).
var OpenBModes = []OpenBMode{
	{"whole GPUs (Kiln), the trace as it is", func(t *Trace, p placement.Policy, seed uint64) Fill {
		return ReplayWhole(t, t.Tasks, p, seed)
	}},
	{"shared GPUs (paper's protocol), inflated to 130 %", func(t *Trace, p placement.Policy, seed uint64) Fill {
		return ReplayShared(t, t.Workload(1.3, true, rand.New(rand.NewPCG(seed, 1))), p, seed)
	}},
}

// OpenBRow is the median over seeds of one mode and policy.
type OpenBRow struct {
	Mode   string
	Policy placement.Policy
	Fill   Fill
}

// OpenB replays the trace in every mode and policy for every seed and
// returns the medians.
func OpenB(t *Trace, modes []OpenBMode, seeds []uint64) []OpenBRow {
	var rows []OpenBRow
	for _, m := range modes {
		for _, p := range Policies {
			var first, all, arrived, failed []float64
			for _, s := range seeds {
				f := m.Run(t, p, s)
				first = append(first, f.AtFirstFailure)
				all = append(all, f.AllArrived)
				arrived = append(arrived, f.Arrived)
				failed = append(failed, float64(f.Failed))
			}
			rows = append(rows, OpenBRow{Mode: m.Name, Policy: p, Fill: Fill{
				AtFirstFailure: median(first), AllArrived: median(all), Arrived: median(arrived), Failed: int(median(failed)),
			}})
		}
	}
	return rows
}

// WriteOpenB prints the rows as a table.
func WriteOpenB(w io.Writer, t *Trace, seeds []uint64, rows []OpenBRow) error {
	fmt.Fprintf(w, "openb trace: %d nodes, %d GPUs, %d tasks in creation order, nothing deleted; median of %d seeds (%d-%d)\n",
		len(t.Nodes), t.GPUs(), len(t.Tasks), len(seeds), seeds[0], seeds[len(seeds)-1])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tpolicy\tGPUs allocated at first failure\tGPUs allocated once all arrived\tGPUs requested\ttasks failed\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.2f %%\t%.2f %%\t%.1f %%\t%d\t\n", r.Mode, r.Policy,
			100*r.Fill.AtFirstFailure, 100*r.Fill.AllArrived, 100*r.Fill.Arrived, r.Fill.Failed)
	}
	return tw.Flush()
}

// GangRow is the median over seeds of one scheduler on the synthetic stream.
type GangRow struct {
	Name   string
	Result GangResult   // medians
	Runs   []GangResult // one per seed
}

// Gangs runs the stream under Kiln and under both no-gang baselines for every
// seed and returns the medians, Kiln first.
func Gangs(seeds []uint64) []GangRow {
	runs := []struct {
		name string
		run  func(GangConfig) GangResult
	}{
		{"kiln", RunKiln},
		{"no-gang, FIFO", func(c GangConfig) GangResult { return RunNoGang(c, FIFO) }},
		{"no-gang, scrambled", func(c GangConfig) GangResult { return RunNoGang(c, Scrambled) }},
	}
	var rows []GangRow
	for _, r := range runs {
		var results []GangResult
		for _, s := range seeds {
			results = append(results, r.run(DefaultGangConfig(s)))
		}
		rows = append(rows, GangRow{Name: r.name, Result: medianResult(results), Runs: results})
	}
	return rows
}

func medianResult(rs []GangResult) GangResult {
	pick := func(f func(GangResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	m := GangResult{
		MeanWait:     pick(func(r GangResult) float64 { return r.MeanWait }),
		Utilisation:  pick(func(r GangResult) float64 { return r.Utilisation }),
		IdleHeld:     pick(func(r GangResult) float64 { return r.IdleHeld }),
		PartialGangs: int(pick(func(r GangResult) float64 { return float64(r.PartialGangs) })),
		Deadlocks:    int(pick(func(r GangResult) float64 { return float64(r.Deadlocks) })),
		BrokenUp:     int(pick(func(r GangResult) float64 { return float64(r.BrokenUp) })),
		Refused:      int(pick(func(r GangResult) float64 { return float64(r.Refused) })),
		NeverStarted: int(pick(func(r GangResult) float64 { return float64(r.NeverStarted) })),
	}
	for k := range m.MeanWaitBySize {
		m.MeanWaitBySize[k] = pick(func(r GangResult) float64 { return r.MeanWaitBySize[k] })
	}
	return m
}

// WriteGangs prints the rows as a table with Kiln's figures over each
// baseline's (ratios of the medians).
func WriteGangs(w io.Writer, seeds []uint64, rows []GangRow) error {
	cfg := DefaultGangConfig(0)
	fmt.Fprintf(w, "synthetic gangs: %d nodes of 8 GPUs + %d of 4 (%d GPUs), %d jobs of 1/2/4/8/16/32 GPUs (%.0f/%.0f/%.0f/%.0f/%.0f/%.0f %%),\n",
		cfg.Nodes8, cfg.Nodes4, cfg.gpus(), cfg.Jobs,
		100*JobSizes[0].Share, 100*JobSizes[1].Share, 100*JobSizes[2].Share, 100*JobSizes[3].Share, 100*JobSizes[4].Share, 100*JobSizes[5].Share)
	fmt.Fprintf(w, "Poisson arrivals at %.0f %% offered load, exponential run times (mean %.0f h); median of %d seeds (%d-%d)\n",
		100*cfg.Load, cfg.MeanRun, len(seeds), seeds[0], seeds[len(seeds)-1])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "metric\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t", r.Name)
	}
	for _, r := range rows[1:] {
		fmt.Fprintf(tw, "%s ÷ %s\t", rows[0].Name, r.Name)
	}
	fmt.Fprintln(tw)
	line := func(name, format string, f func(GangResult) float64) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, r := range rows {
			fmt.Fprintf(tw, format+"\t", f(r.Result))
		}
		for _, r := range rows[1:] {
			if b := f(r.Result); b != 0 {
				fmt.Fprintf(tw, "%.2f\t", f(rows[0].Result)/b)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	line("mean queueing delay (h)", "%.2f", func(r GangResult) float64 { return r.MeanWait })
	for k, s := range JobSizes {
		line(fmt.Sprintf("  %d-GPU jobs (h)", s.GPUs), "%.2f", func(r GangResult) float64 { return r.MeanWaitBySize[k] })
	}
	line("GPU utilisation (%)", "%.1f", func(r GangResult) float64 { return 100 * r.Utilisation })
	line("GPUs held idle by partial gangs (%)", "%.1f", func(r GangResult) float64 { return 100 * r.IdleHeld })
	line("partial gangs", "%.0f", func(r GangResult) float64 { return float64(r.PartialGangs) })
	line("deadlocks", "%.0f", func(r GangResult) float64 { return float64(r.Deadlocks) })
	line("gangs broken up to end them", "%.0f", func(r GangResult) float64 { return float64(r.BrokenUp) })
	return tw.Flush()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}
