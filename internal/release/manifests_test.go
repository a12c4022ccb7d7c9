package release

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A release's install.yaml names Kiln's images only by digest, in the manager's image and its
// --fetch-image argument, and keeps the CRDs.
func TestPinnedInstallManifests(t *testing.T) {
	k, err := Kustomize(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	pinned := string(Pin(k, testRefs))
	for _, ph := range Placeholders {
		if strings.Contains(pinned, ph) {
			t.Errorf("install.yaml still names %s", ph)
		}
	}
	for _, want := range []string{"image: " + testRefs["manager"], "--fetch-image=" + testRefs["fetch"]} {
		if !strings.Contains(pinned, want) {
			t.Errorf("install.yaml lacks %q", want)
		}
	}
	crds, err := CRDsOnly([]byte(pinned))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(crds)
	if err != nil || len(objs) != 4 {
		t.Fatalf("crds.yaml: %d objects, %v; want Kiln's 4 CRDs", len(objs), err)
	}
}

// The chart's values.yaml gets each image's repository and digest, its comments kept.
func TestPinValues(t *testing.T) {
	values, err := os.ReadFile(filepath.Join(repoRoot(t), ChartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := PinValues(values, testRefs)
	if err != nil {
		t.Fatal(err)
	}
	for key, ref := range testRefs {
		repo, digest, _ := strings.Cut(ref, "@")
		if !strings.Contains(string(got), "  "+key+":\n    repository: "+repo+"\n    tag: \"\"\n    digest: "+digest+"\n") {
			t.Errorf("images.%s not pinned:\n%s", key, got)
		}
	}
	if strings.Count(string(got), "#") != strings.Count(string(values), "#") {
		t.Error("comments were lost")
	}
	if _, err := PinValues(values, map[string]string{"manager": "kiln-manager:v1"}); err == nil {
		t.Error("a reference by tag was pinned")
	}
}
