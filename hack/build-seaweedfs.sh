#!/usr/bin/env bash
# Builds SeaweedFS's `weed` binary (the S3-compatible object store that backups go to in tests and
# local runs) from its Go module at the version pinned in hack/versions.env. `go install` refuses
# the module (its go.mod carries a replace directive), so a throwaway module requires it and
# repeats that replace. Cached outside the repository, keyed by version:
#   ${SCALESTACK_CACHE:-$HOME/.cache/scalestack}/seaweedfs/<version>/weed
# Prints the binary's path on stdout; progress goes to stderr. About 8 minutes cold on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091
source "$here/versions.env"
cache=${SCALESTACK_CACHE:-$HOME/.cache/scalestack}
dir="$cache/seaweedfs/$SEAWEEDFS_VERSION"
out="$dir/weed"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
mkdir -p "$dir"
exec 9>"$dir/.lock"
if ! flock -n 9; then
  echo "[build-seaweedfs] another build is running; waiting for it" >&2
  flock 9
fi
if [ -x "$out" ]; then echo "$out"; exit 0; fi
log() { printf '[build-seaweedfs %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
mod="$dir/src"
mkdir -p "$mod"
cat >"$mod/go.mod" <<GOMOD
module scalestack.local/seaweedfsbuild

go 1.26

require github.com/seaweedfs/seaweedfs $SEAWEEDFS_VERSION

replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0
GOMOD
cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
GO
log "resolving github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION (go mod tidy)"
(cd "$mod" && go mod tidy -e >&2)
log "building weed (about 8 minutes cold)"
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" github.com/seaweedfs/seaweedfs/weed >&2)
mv "$out.tmp" "$out"
log "done: $out"
echo "$out"
