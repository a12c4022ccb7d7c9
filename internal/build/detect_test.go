package build

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		dir     string
		want    Project
		wantErr string
	}{{
		dir: "testdata/python",
		want: Project{
			Language:   "python",
			Evidence:   []string{"requirements.txt", "train.py"},
			Entrypoint: []string{"python3", "/app/train.py"},
			Notes:      []string{"requirements.txt lists 2 package(s) that kiln build cannot install (pip needs a container to run in): the base image must already carry them, e.g. a PyTorch runtime image; or run `kubectl kiln init` and build the Dockerfile with a container builder"},
		},
	}, {
		dir: "testdata/go",
		want: Project{
			Language:   "go",
			Evidence:   []string{"go.mod", "*.go (package main)"},
			Entrypoint: []string{"/app/go"},
			Main:       ".",
		},
	}, {
		dir: "testdata/go-multi",
		want: Project{
			Language: "go",
			Evidence: []string{"go.mod"},
			Notes:    []string{"several main packages (./cmd/api, ./cmd/worker): choose one with --main"},
		},
	}, {
		dir: "testdata/node",
		want: Project{
			Language:   "node",
			Evidence:   []string{"package.json", "package.json scripts.start"},
			Entrypoint: []string{"node", "server.js"},
		},
	}, {
		// Python training code in a repository that also has a package.json for its
		// tooling, a Go library and a Dockerfile: Python is the only thing that runs.
		dir: "testdata/mixed",
		want: Project{
			Language:   "python",
			Evidence:   []string{"requirements.txt", "train.py"},
			Entrypoint: []string{"python3", "/app/train.py"},
			Notes: []string{
				"requirements.txt lists 1 package(s) that kiln build cannot install (pip needs a container to run in): the base image must already carry them, e.g. a PyTorch runtime image; or run `kubectl kiln init` and build the Dockerfile with a container builder",
				"also found go (go.mod), not used: it has no entrypoint; build from its own directory to use it",
				"also found node (package.json), not used: it has no entrypoint; build from its own directory to use it",
				"a Dockerfile is present and not used: kiln build lays the source on a base image; build the Dockerfile with a container builder to use it",
			},
		},
	}, {
		// A Node service whose requirements.txt only serves its documentation.
		dir: "testdata/mixed-node",
		want: Project{
			Language:   "node",
			Evidence:   []string{"package.json", "package.json main"},
			Entrypoint: []string{"node", "index.js"},
			Notes:      []string{"also found python (requirements.txt), not used: it has no entrypoint; build from its own directory to use it"},
		},
	}, {
		dir:     "testdata/empty",
		wantErr: "no project found in testdata/empty: looked for go.mod (Go), requirements.txt or pyproject.toml (Python) and package.json (Node) at its top",
	}, {
		dir:     "testdata/missing",
		wantErr: "source directory: stat testdata/missing: no such file or directory",
	}}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			got, err := Detect(tt.dir)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Detect error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Detect (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIgnore(t *testing.T) {
	rules := strings.Join([]string{"# comment", "data", "*.ckpt", "!keep.ckpt", "**/__pycache__", "/build/*.o", "docs/**/*.png", "!docs/**/logo.png"}, "\n")
	tests := []struct {
		path string
		want bool
	}{
		{"data", true},
		{"data/a/b.bin", true},
		{"src/data", false},
		{"model.ckpt", true},
		{"keep.ckpt", false},
		{"sub/model.ckpt", false},
		{"__pycache__/x.pyc", true},
		{"a/b/__pycache__/x.pyc", true},
		{"build/x.o", true},
		{"build/sub/x.o", false},
		{"docs/img/a.png", true},
		{"docs/a.png", true},
		{"docs/img/logo.png", false},
		{"train.py", false},
	}
	ig := &ignore{}
	if err := ig.add(rules); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if got := ig.excludes(tt.path); got != tt.want {
			t.Errorf("excludes(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
