package release

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// ChartDir is the Helm chart, relative to the repository root.
const ChartDir = "charts/kiln"

// chartCopies are the folders of config/ whose manifests the chart ships as they are: every
// resource a folder's kustomization.yaml lists goes to the chart folder beside it. The chart's
// templates read files/ (changing only the namespace, and annotating the webhook
// configurations for cert-manager); crds/ is Helm's own.
var chartCopies = []struct{ from, to string }{
	{"config/crd", "crds"},
	{"config/rbac", "files/rbac"},
	{"config/webhook", "files/webhook"},
	{"config/certmanager", "files/certmanager"},
	{"config/push", "files/push"},
}

// chartFiles are single files copied; the rest of config/manager is templated (values).
var chartFiles = []struct{ from, to string }{
	{"config/manager/serving-config.yaml", "files/manager/serving-config.yaml"},
	// The chart package carries the license, as every release archive does.
	{"LICENSE", "LICENSE"},
}

// chartFileSet maps each chart path (relative to the chart) to its source (relative to root).
func chartFileSet(root string) (map[string]string, error) {
	set := map[string]string{}
	for _, c := range chartCopies {
		b, err := os.ReadFile(filepath.Join(root, c.from, "kustomization.yaml"))
		if err != nil {
			return nil, err
		}
		var k struct {
			Resources []string `json:"resources"`
		}
		if err := yaml.Unmarshal(b, &k); err != nil {
			return nil, fmt.Errorf("%s/kustomization.yaml: %w", c.from, err)
		}
		for _, r := range k.Resources {
			src := path.Join(c.from, r)
			if st, err := os.Stat(filepath.Join(root, src)); err != nil || st.IsDir() {
				return nil, fmt.Errorf("%s/kustomization.yaml lists %s, which is not a file of that folder: the chart copies only files", c.from, r)
			}
			set[path.Join(c.to, path.Base(r))] = src
		}
	}
	for _, f := range chartFiles {
		set[f.to] = f.from
	}
	return set, nil
}

// SyncChart copies the manifests the chart shares with config/ into it and removes copies
// whose source is gone; `make generate` runs it.
func SyncChart(root string) error {
	set, err := chartFileSet(root)
	if err != nil {
		return err
	}
	chart := filepath.Join(root, ChartDir)
	for dst, src := range set {
		b, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			return err
		}
		p := filepath.Join(chart, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	stale, err := staleCopies(chart, set)
	if err != nil {
		return err
	}
	for _, s := range stale {
		if err := os.Remove(filepath.Join(chart, s)); err != nil {
			return err
		}
	}
	return nil
}

// ChartDrift lists what differs between config/ and the chart's copies: empty when in step.
func ChartDrift(root string) ([]string, error) {
	set, err := chartFileSet(root)
	if err != nil {
		return nil, err
	}
	chart := filepath.Join(root, ChartDir)
	var drift []string
	for dst, src := range set {
		want, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			return nil, err
		}
		got, err := os.ReadFile(filepath.Join(chart, dst))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			drift = append(drift, fmt.Sprintf("%s/%s is missing (copy of %s)", ChartDir, dst, src))
		case err != nil:
			return nil, err
		case !bytes.Equal(got, want):
			drift = append(drift, fmt.Sprintf("%s/%s differs from %s", ChartDir, dst, src))
		}
	}
	stale, err := staleCopies(chart, set)
	if err != nil {
		return nil, err
	}
	for _, s := range stale {
		drift = append(drift, fmt.Sprintf("%s/%s has no source in config/ any more", ChartDir, s))
	}
	sort.Strings(drift)
	return drift, nil
}

// staleCopies are files under the copied folders of the chart that no source maps to.
func staleCopies(chart string, set map[string]string) ([]string, error) {
	dirs := map[string]bool{}
	for dst := range set {
		if d := path.Dir(dst); d != "." { // the chart's own files sit at its top
			dirs[d] = true
		}
	}
	var stale []string
	for d := range dirs {
		entries, err := os.ReadDir(filepath.Join(chart, d))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			rel := path.Join(d, e.Name())
			if _, ok := set[rel]; !ok && !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") {
				stale = append(stale, rel)
			}
		}
	}
	sort.Strings(stale)
	return stale, nil
}
