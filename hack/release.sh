#!/usr/bin/env bash
# make release: dist/install.yaml, everything a cluster needs to run the operator (the CRD, RBAC,
# the operator Deployment and its metrics Service: config/default), with the operator and apps
# images referenced by digest, from this checkout:
#   REGISTRY      where the images are published (default ghcr.io/scalestack)
#   VERSION       their tag (default v0.1.0); the digest pins them, the tag is for people
#   RELEASE_PUSH=1  also push both images to REGISTRY (same inputs, same digest)
#   RELEASE_OUT   the directory install.yaml goes to (default dist)
# The images are built here without Docker (hack/build-images.sh). Prints the path of install.yaml.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
registry=${REGISTRY:-ghcr.io/scalestack}
version=${VERSION:-v0.1.0}
kubectl="$("$here/build-k8s-binaries.sh")/kubectl"
dist=${RELEASE_OUT:-$repo/dist}

export IMG="$registry/operator:$version" APPS_IMG="$registry/apps:$version"
out=$("$here/build-images.sh" operator apps)
if [ "${RELEASE_PUSH:-}" = 1 ]; then
  "$here/build-images.sh" --push "$registry" operator apps >/dev/null
fi
digest() { sed -n 's/.*@\(sha256:[0-9a-f]\{64\}\)$/\1/p' "$out/$1.ref"; }
operator_digest=$(digest operator)
apps_digest=$(digest apps)
if [ -z "$operator_digest" ] || [ -z "$apps_digest" ]; then
  echo "no digest in $out/operator.ref or $out/apps.ref" >&2
  exit 1
fi

# The overlay lives in the repo: kustomize loads bases relative to it.
overlay=$(mktemp -d "$repo/.release-overlay.XXXXXX")
trap 'rm -rf "$overlay"' EXIT
cat >"$overlay/kustomization.yaml" <<KUST
# Written by hack/release.sh: config/default with the images pinned by digest.
resources:
  - ../config/default
images:
  - name: ghcr.io/scalestack/operator
    newName: $registry/operator
    digest: $operator_digest
patches:
  - target: {kind: Deployment, name: scalestack-operator}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --apps-image=$registry/apps:$version@$apps_digest
KUST
{
  echo "# scalestack $version: kubectl apply --server-side -f install.yaml (docs/install.md)"
  echo "# operator $registry/operator:$version@$operator_digest"
  echo "# apps     $registry/apps:$version@$apps_digest"
  "$kubectl" kustomize "$overlay"
} >"$overlay/install.yaml"
mkdir -p "$dist"
mv "$overlay/install.yaml" "$dist/install.yaml"
echo "$dist/install.yaml"
