#!/usr/bin/env bash
# make test: every tier that fits in CI, in order, failing fast.
#   1. static: gofmt, go vet, and that generated code and manifests match the markers
#   2. unit: pure functions (render, conditions, API helpers)
#   3. integration: the real manager against a real kube-apiserver and etcd (envtest)
#   4. e2e: the operator process on the full local control plane (controller-manager, scheduler, kwok)
#   5. real pods: every image built here, the whole provisioned stack in real containers on a real
#      node (kubelet, containerd, kube-proxy, CoreDNS, local-path-provisioner); needs root
# The Kubernetes binaries are built once from Go modules and cached outside the repo
# (hack/build-k8s-binaries.sh); the first build takes about 15 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
export PATH="/usr/local/go/bin:$PATH"
# shellcheck disable=SC1091
source "$here/versions.env"
export GOTOOLCHAIN="${GOTOOLCHAIN:-$GO_TOOLCHAIN}"
command -v go >/dev/null || { echo "make test needs Go 1.26 (expected at /usr/local/go/bin/go)" >&2; exit 1; }

step() { printf '\n=== %s\n' "$*"; }

step "Kubernetes binaries (cached after the first build)"
KUBEBUILDER_ASSETS=$("$here/build-k8s-binaries.sh")
export KUBEBUILDER_ASSETS
echo "$KUBEBUILDER_ASSETS"

step "SeaweedFS, the S3-compatible object store of the backup tests (cached after the first build)"
SCALESTACK_WEED=$("$here/build-seaweedfs.sh")
export SCALESTACK_WEED
echo "$SCALESTACK_WEED"

step "Test dependencies (MariaDB, promtool) installed"
"$here/test-deps.sh"

step "gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted (run make fmt)" >&2
  exit 1
fi
go vet ./...
go vet -tags e2e ./test/e2e/...
go vet -tags realnode ./test/realnode/...

step "unit, real-server (MariaDB, kfake) and envtest integration tests"
go test -count=1 ./...

step "e2e on the local control plane"
go test -count=1 -tags e2e -timeout 20m ./test/e2e/...

step "images, built without Docker (cached after the first build)"
"$here/build-images.sh" >/dev/null

step "e2e of the whole stack in real pods on the real node"
go test -count=1 -tags realnode -timeout 40m -v ./test/realnode/...
