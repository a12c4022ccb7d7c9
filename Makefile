# Kiln's developer commands. The Kubernetes components are built from pinned Go modules
# (hack/tools) and cached in ~/.cache/kiln/tools; the first build takes about 10 minutes.
SHELL := /bin/bash -o pipefail
KILN := go run ./cmd/kubectl-kiln
TOOL = $(shell $(KILN) dev tools $(1) 2>/dev/null | cut -f2)

.PHONY: all dev down test unit tools generate verify lint build krew images release bench-fanout bench-placement bench-webhook bench-sweep ui

all: build

## dev: start the local Kiln (control plane, a real node where the machine allows it, simulated
##      GPU nodes, CRDs, manager) in the background and run every bundled example on it; as root
##      with apt, the first run installs the real node's Debian packages (hack/dev.sh)
dev: build
	hack/dev.sh

## down: stop the local Kiln
down: build
	bin/kubectl-kiln dev down

build:
	go build -o bin/ ./cmd/...

## test: everything CI runs: static checks, unit, integration and end-to-end tests
test: tools verify ui
	go test -count=1 -timeout 40m ./...
	go test -run='^$$' -fuzz=FuzzTrainingJob -fuzztime=20s ./internal/validation
	go test -run='^$$' -fuzz=FuzzAdmissionReview -fuzztime=10s ./internal/webhook
	go test -run='^$$' -fuzz=FuzzRepositoryURL -fuzztime=20s ./internal/source

## ui: the Headlamp plugin (ui/headlamp-plugin): install, build, type-check, lint, component tests,
##     and the browser test's host shell; npm's cache (~/.npm) is reused between runs
ui:
	hack/install-chromium.sh
	cd ui/headlamp-plugin && npm ci --no-audit --no-fund && npm run build && npm run tsc && npm run lint && CI=true npm test && npm run build:shell

## unit: the quick tests that need no control plane
unit:
	go test ./api/... ./internal/...

## tools: build (or find in the cache) every Kubernetes component the tests use, and install
##        the Debian packages a real local node needs (hack/install-node-deps.sh)
tools:
	hack/install-node-deps.sh
	$(KILN) dev tools

## generate: deepcopy code, CRDs and RBAC from the kubebuilder markers, and the Helm chart's
##           copies of config/ (CRDs, RBAC, webhooks, serving ConfigMap; hack/chart)
generate:
	$(call TOOL,controller-gen) object paths=./api/...
	$(call TOOL,controller-gen) crd rbac:roleName=kiln-manager paths=./... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	go run ./hack/chart

## verify: formatting, vet, and generated manifests in step with the code
verify:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run gofmt -w on the files above"; exit 1; }
	go vet ./...
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(call TOOL,controller-gen) crd rbac:roleName=kiln-manager paths=./... \
		output:crd:artifacts:config=$$tmp/crd output:rbac:artifacts:config=$$tmp/rbac && \
	diff -ru config/crd/bases $$tmp/crd && diff -u config/rbac/role.yaml $$tmp/rbac/role.yaml \
	|| { echo "generated manifests are stale: run make generate"; exit 1; }
	go run ./hack/chart -check

## lint: gofmt, go vet and golangci-lint (installed from the Go module proxy on first use)
lint: verify
	go run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run ./...

## images: build Kiln's images (kiln-manager, kiln-fetch, kiln-build) for linux/amd64 and
##         linux/arm64 with Kiln's own builder, push them and print their digests
##         (REGISTRY=ghcr.io/you [TAG=v0.1.0])
images:
	@test -n "$(REGISTRY)" || { echo "make images needs REGISTRY=host[:port][/path]"; exit 1; }
	go run ./hack/images -registry $(REGISTRY) -tag $(or $(TAG),dev)

## release: the images (pushed), install.yaml and crds.yaml pinned by digest, the chart package,
##          the kubectl-kiln archives with LICENSE, checksums and the krew manifest, in dist/
##          (REGISTRY=… TAG=v0.1.0 [BASE_URL=https://…/releases/download/v0.1.0])
release:
	@test -n "$(REGISTRY)" -a -n "$(TAG)" || { echo "make release needs REGISTRY=… and TAG=v…"; exit 1; }
	go run ./hack/release -registry $(REGISTRY) -tag $(TAG) $(if $(BASE_URL),-base-url $(BASE_URL))

## krew: release archives and the krew plugin manifest, in dist/ (VERSION=v0.1.0 BASE_URL=https://…)
krew:
	hack/krew.sh $(VERSION) $(BASE_URL)

## bench-fanout: Kiln vs. creating the same Jobs and Services directly (JOBS=1000 for the full run)
bench-fanout:
	go run ./test/bench/fanout -jobs $(or $(JOBS),100)

## bench-placement: placement simulations on the openb trace and a gang workload
bench-placement:
	go run ./internal/placement/cmd/placement-sim

## bench-webhook: admission handler latency and create throughput with the webhooks on vs. off
bench-webhook:
	go run ./test/bench/webhook -creates $(or $(CREATES),1000) -concurrency 100,500

## bench-sweep: search quality of the Sweep algorithms beside random search and Optuna, 10 seeds
##              (installs Debian's python3-optuna if missing; about 20 minutes on 2 busy cores)
bench-sweep:
	go run ./test/bench/sweep
