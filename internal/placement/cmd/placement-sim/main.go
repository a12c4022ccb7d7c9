// Command placement-sim prints the placement benchmarks of
// docs/benchmarks.md: the openb trace replayed under three packing policies,
// and a stream of distributed jobs under Kiln's gang admission and without it.
//
//	go run ./internal/placement/cmd/placement-sim [-seeds 10] [-only openb|gangs]
package main

import (
	"flag"
	"fmt"
	"os"

	"kiln.dev/kiln/internal/placement/sim"
)

func main() {
	seeds := flag.Int("seeds", 10, "number of seeds (42, 43, …); figures are medians over them")
	only := flag.String("only", "", "run only \"openb\" or \"gangs\"")
	flag.Parse()
	if *seeds < 1 {
		fmt.Fprintln(os.Stderr, "-seeds must be at least 1")
		os.Exit(2)
	}
	s := sim.Seeds(*seeds)

	if *only != "gangs" {
		dir, err := sim.FindOpenB()
		if err != nil {
			fmt.Fprintln(os.Stderr, "openb trace:", err)
			os.Exit(1)
		}
		t, err := sim.LoadOpenB(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := sim.WriteOpenB(os.Stdout, t, s, sim.OpenB(t, sim.OpenBModes, s)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println()
	}
	if *only != "openb" {
		if err := sim.WriteGangs(os.Stdout, s, sim.Gangs(s)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
