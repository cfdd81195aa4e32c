#!/usr/bin/env bash
# Builds the helm binary from its Go module (helm.sh/helm/v4 at HELM_VERSION, hack/versions.env),
# cached outside the repository like the Kubernetes binaries:
#   ${SCALESTACK_CACHE:-$HOME/.cache/scalestack}/tools/helm-<version>
# The tests install and upgrade charts/scalestack with it. Prints the binary's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091
source "$here/versions.env"
export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN="${GOTOOLCHAIN:-$GO_TOOLCHAIN}"
tools=${SCALESTACK_CACHE:-$HOME/.cache/scalestack}/tools
out="$tools/helm-$HELM_VERSION"
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$tools"
exec 7>"$tools/.helm.lock"
flock 7
if [ ! -x "$out" ]; then
  echo "[build-helm] building helm $HELM_VERSION (a few minutes cold)" >&2
  tmp=$(mktemp -d)
  GOBIN=$tmp CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
  mv "$tmp/helm" "$out"
  rm -rf "$tmp"
fi
echo "$out"
