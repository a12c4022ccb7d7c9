package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Placeholders are the image references config/ names Kiln's images by, which a release
// replaces with references by digest.
var Placeholders = map[string]string{
	"manager": "kiln-manager:latest",
	"fetch":   "kiln-fetch:latest",
	"build":   "kiln-build:latest",
}

// Components are config/'s optional kustomize components, in the order they must be listed.
var Components = []string{"certmanager", "networkpolicy", "push"}

// Kustomize renders config/default with the named components (of Components) added, as
// `kubectl kustomize` would.
func Kustomize(root string, components ...string) ([]byte, error) {
	dir := filepath.Join(root, "config", "default")
	if len(components) > 0 {
		// An overlay beside nothing: kustomize takes bases and components by relative path only.
		tmp, err := os.MkdirTemp("", "kiln-kustomize-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		abs, err := filepath.Abs(root)
		if err != nil {
			return nil, err
		}
		rel := func(p string) (string, error) { return filepath.Rel(tmp, filepath.Join(abs, "config", p)) }
		def, err := rel("default")
		if err != nil {
			return nil, err
		}
		k := "resources:\n- " + def + "\ncomponents:\n"
		for _, want := range Components {
			for _, c := range components {
				if c == want {
					p, err := rel(c)
					if err != nil {
						return nil, err
					}
					k += "- " + p + "\n"
				}
			}
		}
		for _, c := range components {
			if !strings.Contains(strings.Join(Components, ","), c) {
				return nil, fmt.Errorf("no component %q (known: %s)", c, strings.Join(Components, ", "))
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			return nil, err
		}
		dir = tmp
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize config/default: %w", err)
	}
	return res.AsYaml()
}

// Pin replaces the placeholder references of the images in refs (by Image.Key) with the given
// references, in containers' images and in the manager's arguments (--fetch-image=…).
func Pin(manifests []byte, refs map[string]string) []byte {
	out := manifests
	for key, ref := range refs {
		ph, ok := Placeholders[key]
		if !ok {
			continue
		}
		// Only whole references: "image: kiln-manager:latest" and "--fetch-image=kiln-fetch:latest".
		re := regexp.MustCompile(`([\s=])` + regexp.QuoteMeta(ph) + `(\s|$)`)
		out = re.ReplaceAll(out, []byte("${1}"+ref+"${2}"))
	}
	return out
}

// CRDsOnly keeps the CustomResourceDefinitions of a manifest stream: what `helm upgrade`
// does not update, applied by hand on upgrades (docs/install.md).
func CRDsOnly(manifests []byte) ([]byte, error) {
	objs, err := Decode(manifests)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// Decode reads a YAML stream into objects, skipping empty documents.
func Decode(manifests []byte) ([]*unstructured.Unstructured, error) {
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := d.Decode(&m); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// ChartOptions say how to package the chart.
type ChartOptions struct {
	// Root is the repository root.
	Root string
	// Version is the release, e.g. v0.1.0: the chart's appVersion, and without its v the
	// chart's version.
	Version string
	// Refs are the images by Image.Key, pinned by digest into values.yaml.
	Refs map[string]string
	// Helm is the helm binary.
	Helm string
	// Dest is the folder the .tgz is written to.
	Dest string
}

// PackageChart writes the chart with its images pinned by digest and its versions set, and
// returns the package's path.
func PackageChart(ctx context.Context, o ChartOptions) (string, error) {
	tmp, err := os.MkdirTemp("", "kiln-chart-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "kiln")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(o.Root, ChartDir))); err != nil {
		return "", err
	}
	values, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return "", err
	}
	values, err = PinValues(values, o.Refs)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "values.yaml"), values, 0o644); err != nil {
		return "", err
	}
	chart, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	chart = regexp.MustCompile(`(?m)^version: .*$`).ReplaceAll(chart, []byte("version: "+strings.TrimPrefix(o.Version, "v")))
	chart = regexp.MustCompile(`(?m)^appVersion: .*$`).ReplaceAll(chart, []byte("appVersion: "+o.Version))
	if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), chart, 0o644); err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.Dest, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, o.Helm, "package", dir, "--destination", o.Dest)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("helm package: %w\n%s", err, out)
	}
	return filepath.Join(o.Dest, "kiln-"+strings.TrimPrefix(o.Version, "v")+".tgz"), nil
}

// PinValues sets images.<key>.repository and .digest in the chart's values.yaml text, keeping
// its comments: refs are repository@sha256:… by Image.Key.
func PinValues(values []byte, refs map[string]string) ([]byte, error) {
	lines := strings.Split(string(values), "\n")
	inImages, key := false, ""
	done := map[string]int{}
	for i, l := range lines {
		switch {
		case l == "images:":
			inImages = true
			continue
		case inImages && l != "" && !strings.HasPrefix(l, " "):
			inImages = false
		}
		if !inImages {
			continue
		}
		if m := regexp.MustCompile(`^  ([a-z]+):\s*$`).FindStringSubmatch(l); m != nil {
			key = m[1]
			continue
		}
		ref, ok := refs[key]
		if !ok {
			continue
		}
		repo, digest, found := strings.Cut(ref, "@")
		if !found {
			return nil, fmt.Errorf("image %s: %q is not a reference by digest", key, ref)
		}
		switch {
		case strings.HasPrefix(l, "    repository:"):
			lines[i] = "    repository: " + repo
			done[key]++
		case strings.HasPrefix(l, "    digest:"):
			lines[i] = "    digest: " + digest
			done[key]++
		}
	}
	for key := range refs {
		if done[key] != 2 {
			return nil, fmt.Errorf("values.yaml has no images.%s.repository and .digest to pin", key)
		}
	}
	return []byte(strings.Join(lines, "\n")), nil
}

func jsonMarshal(v any) ([]byte, error) { return yaml.Marshal(v) }
