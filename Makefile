# scalestack Makefile. `make help` lists the targets. Tool and Kubernetes versions are pinned in
# hack/versions.env; tools install into ./bin, Kubernetes binaries into a cache outside the repo.
include hack/versions.env
export GOTOOLCHAIN := $(GO_TOOLCHAIN)

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

IMG ?= ghcr.io/scalestack/operator:v0.1.0
APPS_IMG ?= ghcr.io/scalestack/apps:v0.1.0
# Tools are cached outside the repo, keyed by version, so every clone (CI's included) reuses them.
TOOLS_BIN ?= $(or $(SCALESTACK_CACHE),$(HOME)/.cache/scalestack)/tools
CONTROLLER_GEN := $(TOOLS_BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT := $(TOOLS_BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
LOCAL_DIR := $(CURDIR)/.local
# kubectl: the one on PATH, else the one built with the local control plane.
KUBECTL ?= $(shell command -v kubectl || echo "$$(hack/build-k8s-binaries.sh)/kubectl")
KUBECONFIG_LOCAL := $(LOCAL_DIR)/cluster/kubeconfig

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests from markers.
	$(CONTROLLER_GEN) rbac:roleName=scalestack-manager crd paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@# The Helm chart carries the same CRD, RBAC and monitoring as config/ (copies, checked by make verify).
	rm -rf charts/scalestack/crds charts/scalestack/files && mkdir -p charts/scalestack/crds charts/scalestack/files/rbac charts/scalestack/files/prometheus
	cp config/crd/bases/*.yaml charts/scalestack/crds/
	cp $(filter-out config/rbac/kustomization.yaml config/rbac/service_account.yaml,$(wildcard config/rbac/*.yaml)) charts/scalestack/files/rbac/
	cp config/prometheus/monitor.yaml config/prometheus/rules.yaml config/prometheus/dashboard.json charts/scalestack/files/prometheus/

.PHONY: fmt
fmt: $(GOLANGCI_LINT) ## Format the Go code with what lint enforces (gofmt, goimports with local imports last).
	$(GOLANGCI_LINT) fmt ./...

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: generate manifests ## Regenerate code and manifests and fail if anything (or go mod tidy) drifted.
	$(GO) mod tidy
	@git diff --exit-code -- go.mod go.sum || { echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit" >&2; exit 1; }
	@git diff --exit-code -- api config charts || { echo "generated files drifted: run 'make generate manifests' and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- api config charts)" || { git status --porcelain -- api config charts; echo "untracked generated files: commit them" >&2; exit 1; }

.PHONY: vulncheck
vulncheck: ## Scan for known vulnerabilities with govulncheck and an offline copy of the Go vulnerability database.
	hack/govulncheck.sh

.PHONY: k8s-binaries
k8s-binaries: ## Build (once, cached outside the repo) kube-apiserver, etcd, kwok and friends from Go modules.
	@hack/build-k8s-binaries.sh >/dev/null

##@ Test

.PHONY: test
test: ## Run every test tier: unit, real servers, envtest integration, e2e (kwok), the stack in real pods (root).
	hack/test.sh

.PHONY: test-unit
test-unit: ## Pure unit tests only (no control plane, no servers): API, render, conditions, SLO math, shard map, images.
	$(GO) test ./api/... ./controllers/... ./internal/images/... ./pkg/shard/... ./cmd/images/...

.PHONY: update-golden
update-golden: ## Rewrite the render golden files from the current code.
	$(GO) test ./controllers/render/... -update

##@ Benchmarks (not tests: they print figures measured side by side; see docs/benchmarks.md)

.PHONY: bench
bench: bench-operator bench-apps bench-realpods bench-backup ## Run every benchmark.

.PHONY: screenshots
screenshots: ## The web page in headless Chromium at desktop and phone widths, into docs/screenshots (shown in docs/apps.md).
	@hack/test-deps.sh
	mkdir -p docs/screenshots
	SCALESTACK_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run TestWebPageInChromium ./apps/apptest

.PHONY: bench-operator bench-apps bench-realpods bench-backup run-apps
bench-apps: ## The apps under loadgen's Zipf workload over 1M users vs a bare net/http+Redis ceiling and a phase-1 floor; writes docs/bench/.
	@hack/test-deps.sh
	$(GO) run ./test/bench/apps $(if $(PROFILE),-profile docs/bench/profiles) $(BENCH_APPS_ARGS)

bench-realpods: ## The same workload against a platform the operator provisioned in real pods on the real node, beside the apps as host processes (root); writes docs/bench/realpods-results.json.
	@hack/test-deps.sh
	hack/build-images.sh >/dev/null
	K8S_BIN=$$(hack/build-k8s-binaries.sh) $(GO) run ./test/bench/realpods $(BENCH_REALPODS_ARGS)

bench-operator: ## Operator convergence for 1, 50 and 200 platforms vs a plain-client baseline, writes per reconcile, memory.
	K8S_BIN=$$(hack/build-k8s-binaries.sh) $(GO) run ./test/bench/operator $(BENCH_ARGS)

bench-backup: ## A shard's full backup and restore through a real SeaweedFS vs mariadb-backup alone, the store alone, the download alone (MB/s).
	@hack/test-deps.sh
	SCALESTACK_WEED=$$(hack/build-seaweedfs.sh) $(GO) run ./test/bench/backup $(BENCH_BACKUP_ARGS)

##@ Run

.PHONY: run
run: ## Images, the local control plane with a real node (RUN_CONTEXT=<context> for another cluster), the CRDs, the operator, the sample; http://127.0.0.1:8080/
	hack/run.sh

.PHONY: cluster-up
run-apps: ## Run the whole social network locally (MariaDB shards, Redis, kfake, every service); open http://127.0.0.1:8080/.
	@hack/test-deps.sh
	$(GO) run ./apps/cmd/devstack $(RUN_APPS_ARGS)

cluster-up: ## Start the local control plane (SCALESTACK_NODE=kwok|real|both: a kwok node, a real node, or both).
	hack/local-cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and remove everything its real node made.
	hack/local-cluster.sh down

.PHONY: cluster-status
cluster-status: ## Show the local control plane's processes, and the real node's containers, namespaces, chains.
	hack/local-cluster.sh status

##@ Build

.PHONY: build
build: ## Build the operator binary into bin/manager.
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/manager .

.PHONY: images
images: ## Build every image without Docker (operator, apps, exporters; pause, kfake, MariaDB, Redis for the local node).
	IMG=$(IMG) APPS_IMG=$(APPS_IMG) hack/build-images.sh $(IMAGES) >/dev/null

.PHONY: release
release: ## dist/install.yaml: CRD, RBAC, the operator Deployment and metrics Service, images by digest (REGISTRY, VERSION, RELEASE_PUSH=1).
	REGISTRY=$(or $(REGISTRY),ghcr.io/scalestack) VERSION=$(or $(VERSION),v0.1.0) hack/release.sh

.PHONY: push
push: ## Push the operator and apps images to REGISTRY (e.g. make images push REGISTRY=registry.example.com/team).
	@test -n "$(REGISTRY)" || { echo "make push needs REGISTRY=<registry/path>" >&2; exit 1; }
	IMG=$(IMG) APPS_IMG=$(APPS_IMG) hack/build-images.sh --push $(REGISTRY) $(or $(IMAGES),operator apps) >/dev/null

##@ Deploy (KUBECONFIG points at the cluster)

.PHONY: install
install: manifests ## Install the CRDs into the cluster.
	$(KUBECTL) kustomize config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: manifests ## Remove the CRDs (and with them every SocialPlatform) from the cluster.
	$(KUBECTL) kustomize config/crd | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests ## Deploy the operator (image IMG) to the cluster.
	$(KUBECTL) kustomize config/default | sed 's|ghcr.io/scalestack/operator:v0.1.0|$(IMG)|' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the operator from the cluster.
	$(KUBECTL) kustomize config/default | $(KUBECTL) delete --ignore-not-found -f -


##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(TOOLS_BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(TOOLS_BIN)/controller-gen $@

$(GOLANGCI_LINT):
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(TOOLS_BIN)/golangci-lint $@
