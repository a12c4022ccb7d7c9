package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The webhook's golden files (internal/webhook/testdata/inject) are what
// `kubectl kiln inject` prints too: one code path, two users.
func TestInjectMatchesTheWebhookGoldenFiles(t *testing.T) {
	dir := filepath.Join("..", "webhook", "testdata", "inject")
	goldens, err := filepath.Glob(filepath.Join(dir, "*.golden.yaml"))
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no golden files in %s: %v", dir, err)
	}
	for _, g := range goldens {
		name := strings.TrimSuffix(filepath.Base(g), ".golden.yaml")
		t.Run(name, func(t *testing.T) {
			out, stderr, err := run(t, "inject", "-f", filepath.Join(dir, name+".yaml"), "--config", filepath.Join(dir, "config.yaml"),
				"--pod-namespace", "team-a")
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(g)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(string(want), out); d != "" {
				t.Errorf("inject differs from the webhook's golden file (-want +got):\n%s", d)
			}
			if !strings.Contains(stderr, "pod ") {
				t.Errorf("no note on standard error: %q", stderr)
			}
		})
	}
}

func TestInjectBackdoorAndScope(t *testing.T) {
	pod := filepath.Join("..", "webhook", "testdata", "inject", "gpu-pod.yaml")
	for _, tc := range []struct {
		args []string
		note string
	}{
		{[]string{"--namespace-labels", ""}, "is not labelled kiln.dev/inject=enabled"},
		{[]string{"--pod-namespace", "kube-system"}, "namespace kube-system is never injected"},
		{[]string{"--pod-namespace", "kiln-system"}, "namespace kiln-system is never injected"},
	} {
		out, stderr, err := run(t, append([]string{"inject", "-f", pod}, tc.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stderr, tc.note) || strings.Contains(out, "kiln.dev/injected") {
			t.Errorf("inject %v: stderr %q, want %q and an untouched pod:\n%s", tc.args, stderr, tc.note, out)
		}
	}
}
