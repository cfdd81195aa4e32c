#!/usr/bin/env bash
# govulncheck without network access to vuln.go.dev: the Go vulnerability database ships as the
# golang.org/x/vulndb module (data/osv, one OSV file per advisory) through the module proxy;
# cmd/indexdb turns it into a local database, cached by version, and govulncheck reads it with
# -db file://. Versions are pinned in hack/versions.env.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091
source "$here/versions.env"
cache=${SCALESTACK_CACHE:-$HOME/.cache/scalestack}
db="$cache/vulndb/$VULNDB_VERSION"
tools="$cache/tools"
gv="$tools/govulncheck-$GOVULNCHECK_VERSION"

if [ ! -x "$gv" ]; then
  mkdir -p "$tools"
  GOBIN="$tools" go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"
  mv "$tools/govulncheck" "$gv"
fi
if [ ! -f "$db/index/db.json" ] && [ ! -f "$db/index/db.json.gz" ]; then
  src=$(cd /tmp && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$src/data/osv" ] || { echo "golang.org/x/vulndb@$VULNDB_VERSION has no data/osv" >&2; exit 1; }
  mkdir -p "$db.tmp"
  (cd "$src" && GOFLAGS=-mod=mod go run ./cmd/indexdb -vulns "$src/data/osv" -out "$db.tmp")
  rm -rf "$db" && mv "$db.tmp" "$db"
fi
cd "$here/.."
"$gv" -db "file://$db" ./...
