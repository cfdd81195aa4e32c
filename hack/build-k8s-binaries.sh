#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries from Go modules (no Docker, no release downloads):
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy, etcd and kwok
# (kubelet and kube-proxy for the real local node), at the versions
# pinned in hack/versions.env. Results are cached outside the repository, keyed by version, so every
# checkout on this machine reuses them:
#   ${SCALESTACK_CACHE:-$HOME/.cache/scalestack}/k8s/<kubernetes>-<etcd>-<kwok>/bin
# Prints the bin directory on stdout when done; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091
source "$here/versions.env"

cache=${SCALESTACK_CACHE:-$HOME/.cache/scalestack}
key="${KUBERNETES_VERSION}-${ETCD_VERSION}-${KWOK_VERSION}"
out="$cache/k8s/$key/bin"
want=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy etcd kwok)

missing=()
for b in "${want[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$out"
  exit 0
fi

# One build at a time: a second caller waits for the first and then finds the binaries.
mkdir -p "$cache/k8s"
exec 9>"$cache/k8s/.lock"
if ! flock -n 9; then
  echo "[build-k8s] another build is running; waiting for it" >&2
  flock 9
fi
missing=()
for b in "${want[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$out"
  exit 0
fi

log() { printf '[build-k8s %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
command -v go >/dev/null || { echo "go is not on PATH (expected Go 1.26 at /usr/local/go/bin)" >&2; exit 1; }
mkdir -p "$out"
work="$cache/k8s/$key/src"
mkdir -p "$work"
start=$(date +%s)

staging_minor="v0.${KUBERNETES_VERSION#v1.}"

build_kubernetes() {
  local mod="$work/kubernetes"
  mkdir -p "$mod"
  log "resolving k8s.io/kubernetes@$KUBERNETES_VERSION through the module proxy"
  local gomod
  gomod=$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || { echo "could not download k8s.io/kubernetes@$KUBERNETES_VERSION" >&2; exit 1; }
  # k8s.io/kubernetes replaces its staging modules with local paths; point them at the published
  # k8s.io/<name> v0.x modules of the same release instead.
  {
    echo "module scalestack.local/k8sbuild"
    echo
    grep -E '^go [0-9]' "$gomod" | head -1
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" | awk -v v="$staging_minor" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
  log "go mod tidy (downloads k8s.io/kubernetes and its dependencies; first time takes a few minutes)"
  (cd "$mod" && go mod tidy -e >&2)
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
    [ -x "$out/$b" ] && continue
    log "building $b $KUBERNETES_VERSION"
    (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
      -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION \
      -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=${KUBERNETES_VERSION#v1.}" \
      -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b" >&2)
    mv "$out/$b.tmp" "$out/$b"
  done
}

build_etcd() {
  [ -x "$out/etcd" ] && return
  local mod="$work/etcd"
  mkdir -p "$mod"
  log "building etcd $ETCD_VERSION"
  (cd "$mod" && [ -f go.mod ] || (cd "$mod" && go mod init scalestack.local/etcdbuild >/dev/null 2>&1))
  (cd "$mod" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 && \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3 >&2)
  mv "$out/etcd.tmp" "$out/etcd"
}

build_kwok() {
  [ -x "$out/kwok" ] && return
  log "building kwok $KWOK_VERSION"
  GOBIN="$out" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
  # kwok's default stages live in its module; keep a copy beside the binary for `hack/local-cluster.sh`.
  local src
  src=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION
  mkdir -p "$out/../kwok-stages"
  cp -r "$src/kustomize/stage/." "$out/../kwok-stages/"
  chmod -R u+w "$out/../kwok-stages"
}

build_etcd
build_kwok
build_kubernetes
log "done in $(( $(date +%s) - start ))s: $out"
echo "$out"
