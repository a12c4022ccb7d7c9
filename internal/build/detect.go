package build

import (
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Precedence decides a mixed repository. A language counts as runnable when its manifest
// and an entrypoint are both found; the first runnable language in this order wins, and
// when none is runnable the first one with a manifest does (its image then has no
// entrypoint). Go comes first because go.mod plus a main package is unambiguous; Python
// before Node because ML repositories often carry a package.json for tooling only.
var precedence = []string{"go", "python", "node"}

// pythonEntries are the scripts looked for, in order, as a Python project's entrypoint.
var pythonEntries = []string{"main.py", "train.py", "app.py", "serve.py", "server.py", "run.py"}

// nodeEntries are the files looked for when package.json names no start script or main.
var nodeEntries = []string{"index.js", "server.js", "app.js", "main.js"}

// Detect looks at the top of dir and says what project it holds.
func Detect(dir string) (Project, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return Project{}, fmt.Errorf("source directory: %w", err)
	}
	if !st.IsDir() {
		return Project{}, fmt.Errorf("source %s is not a directory", dir)
	}
	found := map[string]Project{}
	for lang, detect := range map[string]func(string) (Project, bool){"go": detectGo, "python": detectPython, "node": detectNode} {
		if p, ok := detect(dir); ok {
			found[lang] = p
		}
	}
	if len(found) == 0 {
		return Project{}, fmt.Errorf("no project found in %s: looked for go.mod (Go), requirements.txt or pyproject.toml (Python) and package.json (Node) at its top", dir)
	}
	winner := ""
	for _, lang := range precedence {
		if p, ok := found[lang]; ok && len(p.Entrypoint) > 0 {
			winner = lang
			break
		}
	}
	if winner == "" {
		for _, lang := range precedence {
			if _, ok := found[lang]; ok {
				winner = lang
				break
			}
		}
	}
	p := found[winner]
	for _, lang := range precedence {
		other, ok := found[lang]
		if !ok || lang == winner {
			continue
		}
		why := "it comes later in Kiln's order (Go, Python, Node)"
		if len(other.Entrypoint) == 0 && len(p.Entrypoint) > 0 {
			why = "it has no entrypoint"
		}
		p.Notes = append(p.Notes, fmt.Sprintf("also found %s (%s), not used: %s; build from its own directory to use it", lang, strings.Join(other.Evidence, ", "), why))
	}
	if fileExists(filepath.Join(dir, "Dockerfile")) {
		p.Notes = append(p.Notes, "a Dockerfile is present and not used: kiln build lays the source on a base image; build the Dockerfile with a container builder to use it")
	}
	return p, nil
}

func detectGo(dir string) (Project, bool) {
	if !fileExists(filepath.Join(dir, "go.mod")) {
		return Project{}, false
	}
	p := Project{Language: "go", Evidence: []string{"go.mod"}}
	var mains []string
	if isMainPackage(dir) {
		mains = append(mains, ".")
	}
	cmds, _ := filepath.Glob(filepath.Join(dir, "cmd", "*"))
	sort.Strings(cmds)
	for _, c := range cmds {
		if isMainPackage(c) {
			mains = append(mains, "./cmd/"+filepath.Base(c))
		}
	}
	switch {
	case len(mains) == 0:
		p.Notes = append(p.Notes, "go.mod has no main package at the top or under cmd/: nothing to run")
	case len(mains) > 1 && mains[0] != ".":
		p.Notes = append(p.Notes, fmt.Sprintf("several main packages (%s): choose one with --main", strings.Join(mains, ", ")))
	default:
		p.Main = mains[0]
		p.Evidence = append(p.Evidence, path.Join(strings.TrimPrefix(mains[0], "./"), "*.go")+" (package main)")
		p.Entrypoint = []string{AppDir + "/" + binaryName(dir, mains[0])}
		if len(mains) > 1 {
			p.Notes = append(p.Notes, fmt.Sprintf("built the top-level main package; others (%s) need --main", strings.Join(mains[1:], ", ")))
		}
	}
	return p, true
}

// isMainPackage reports whether dir holds non-test Go files of package main.
func isMainPackage(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly)
		if err == nil && af.Name.Name == "main" {
			return true
		}
	}
	return false
}

// binaryName names the Go binary after its package directory, or the source directory
// for a top-level main package.
func binaryName(dir, main string) string {
	n := path.Base(filepath.ToSlash(main))
	if n == "." || n == "/" || n == "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "app"
		}
		n = filepath.Base(abs)
	}
	return n
}

func detectPython(dir string) (Project, bool) {
	p := Project{Language: "python"}
	for _, f := range []string{"requirements.txt", "pyproject.toml"} {
		if fileExists(filepath.Join(dir, f)) {
			p.Evidence = append(p.Evidence, f)
		}
	}
	if len(p.Evidence) == 0 {
		return Project{}, false
	}
	for _, e := range pythonEntries {
		if fileExists(filepath.Join(dir, e)) {
			p.Evidence = append(p.Evidence, e)
			p.Entrypoint = []string{"python3", AppDir + "/" + e}
			break
		}
	}
	if len(p.Entrypoint) == 0 {
		if mods, _ := filepath.Glob(filepath.Join(dir, "*", "__main__.py")); len(mods) > 0 {
			sort.Strings(mods)
			mod := filepath.Base(filepath.Dir(mods[0]))
			p.Evidence = append(p.Evidence, mod+"/__main__.py")
			p.Entrypoint = []string{"python3", "-m", mod}
		} else {
			p.Notes = append(p.Notes, fmt.Sprintf("no entry script found (looked for %s and a package with __main__.py): the image has no entrypoint, so give the command with the workload", strings.Join(pythonEntries, ", ")))
		}
	}
	if n := requirementCount(filepath.Join(dir, "requirements.txt")); n > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("requirements.txt lists %d package(s) that kiln build cannot install (pip needs a container to run in): the base image must already carry them, e.g. a PyTorch runtime image; or run `kubectl kiln init` and build the Dockerfile with a container builder", n))
	}
	return p, true
}

// requirementCount counts requirement lines, ignoring comments, blanks and pip options.
func requirementCount(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "-") {
			n++
		}
	}
	return n
}

func detectNode(dir string) (Project, bool) {
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return Project{}, false
	}
	p := Project{Language: "node", Evidence: []string{"package.json"}}
	var pkg struct {
		Main         string            `json:"main"`
		Scripts      map[string]string `json:"scripts"`
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("package.json is not valid JSON (%v): no entrypoint taken from it", err))
	}
	if start := strings.Fields(pkg.Scripts["start"]); len(start) > 0 {
		p.Evidence = append(p.Evidence, `package.json scripts.start`)
		if start[0] == "node" {
			p.Entrypoint = append([]string{"node"}, start[1:]...)
		} else {
			p.Entrypoint = []string{"npm", "start"}
		}
	} else if pkg.Main != "" && fileExists(filepath.Join(dir, pkg.Main)) {
		p.Evidence = append(p.Evidence, "package.json main")
		p.Entrypoint = []string{"node", pkg.Main}
	} else {
		for _, e := range nodeEntries {
			if fileExists(filepath.Join(dir, e)) {
				p.Evidence = append(p.Evidence, e)
				p.Entrypoint = []string{"node", e}
				break
			}
		}
	}
	if len(p.Entrypoint) == 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("package.json has no start script or main, and none of %s exists: the image has no entrypoint", strings.Join(nodeEntries, ", ")))
	}
	if len(pkg.Dependencies) > 0 {
		ign, _ := readIgnore(dir)
		if st, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil && st.IsDir() && (ign == nil || !ign.excludes("node_modules")) {
			p.Notes = append(p.Notes, "node_modules is included as installed here; native modules must have been built for the target platform")
		} else {
			p.Notes = append(p.Notes, fmt.Sprintf("package.json has %d dependencies but no node_modules goes into the image (none here, or an ignore file leaves it out): run `npm ci --omit=dev` before building (kiln build cannot run npm without a container), or use `kubectl kiln init` and a container builder", len(pkg.Dependencies)))
		}
	}
	return p, true
}
