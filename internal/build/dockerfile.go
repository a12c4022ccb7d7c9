package build

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Dockerfile returns a Dockerfile and a .dockerignore that build, with a container builder,
// the image Image builds for p from dir: same base, layout, entrypoint, environment and user.
// A container builder can also do what Image cannot: install the Python or Node
// dependencies. base "" means DefaultBase.
func Dockerfile(dir string, p Project, base string) (dockerfile, dockerignore string) {
	if base == "" {
		base = DefaultBase(p.Language)
	}
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# Written by `kubectl kiln init`: the image `kubectl kiln build` makes from this directory,")
	line("# for a container builder (docker build, buildah, kaniko), which can also install dependencies.")
	if !strings.Contains(base, "@sha256:") && base != "scratch" {
		line("# Pin the base images by digest (IMAGE@sha256:...) for reproducible builds.")
	}
	env := languageEnv(p.Language)
	switch p.Language {
	case "go":
		line("FROM docker.io/library/golang:%s AS build", goVersion(dir))
		line("WORKDIR /src")
		line("COPY go.mod go.sum* ./")
		line("RUN go mod download")
		line("COPY . .")
		line(`RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w -buildid=" -o /out/app %s`, p.Main)
		line("")
		line("FROM %s", base)
		line("COPY --from=build /tmp /tmp")
		if len(p.Entrypoint) > 0 {
			line("COPY --from=build /out/app %s", p.Entrypoint[0])
		}
		line("WORKDIR %s", AppDir)
	case "python":
		line("FROM %s", base)
		line("WORKDIR %s", AppDir)
		if fileExists(filepath.Join(dir, "requirements.txt")) {
			line("COPY requirements.txt ./")
			line("RUN pip install --no-cache-dir -r requirements.txt")
			line("COPY . .")
		} else {
			line("COPY . .")
			line("RUN pip install --no-cache-dir .")
		}
	case "node":
		line("FROM %s", base)
		line("WORKDIR %s", AppDir)
		line("COPY package*.json ./")
		if fileExists(filepath.Join(dir, "package-lock.json")) {
			line("RUN npm ci --omit=dev")
		} else {
			line("RUN npm install --omit=dev")
		}
		line("COPY . .")
	}
	if len(env) > 0 {
		line("ENV %s", strings.Join(env, " "))
	}
	line("USER %s", NonRootUser)
	if len(p.Entrypoint) > 0 {
		line("ENTRYPOINT %s", jsonArray(p.Entrypoint))
	} else {
		line("# No entrypoint was found: give the command with the workload, or add an ENTRYPOINT.")
	}

	ignore := []string{".git", ".dockerignore", "Dockerfile"}
	switch p.Language {
	case "python":
		ignore = append(ignore, "**/__pycache__", "**/*.pyc", ".venv", "venv", ".ipynb_checkpoints")
	case "node":
		ignore = append(ignore, "node_modules", "npm-debug.log")
	case "go":
		ignore = append(ignore, "**/*_test.go")
	}
	return b.String(), "# Written by `kubectl kiln init`; `kubectl kiln build` honours it too.\n" + strings.Join(ignore, "\n") + "\n"
}

var goDirective = regexp.MustCompile(`(?m)^go\s+(\d+\.\d+)`)

// goVersion is the Go release go.mod asks for, as a golang image tag.
func goVersion(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "1"
	}
	if m := goDirective.FindSubmatch(data); m != nil {
		return string(m[1])
	}
	return "1"
}

func jsonArray(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
