// Command chart copies the manifests the Helm chart (charts/kiln) shares with config/ — CRDs,
// RBAC, webhook configurations, the kiln-serving ConfigMap, the optional cert-manager and push
// objects — into the chart, so the two installs never drift. `make generate` runs it; with
// -check (make verify) it only says what differs.
package main

import (
	"flag"
	"fmt"
	"os"

	"kiln.dev/kiln/internal/release"
)

func main() {
	check := flag.Bool("check", false, "report differences instead of copying")
	flag.Parse()
	if *check {
		drift, err := release.ChartDrift(".")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chart:", err)
			os.Exit(1)
		}
		for _, d := range drift {
			fmt.Fprintln(os.Stderr, d)
		}
		if len(drift) > 0 {
			fmt.Fprintln(os.Stderr, "the chart's copies of config/ are stale: run make generate")
			os.Exit(1)
		}
		return
	}
	if err := release.SyncChart("."); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}
