#!/usr/bin/env bash
# Builds every image of the project without Docker (make images):
#   operator, apps            the product: static Go binaries, non-root, CA certificates
#   mysqld-exporter,          the exporters the operator renders, built from their Go modules at
#   redis-exporter            the versions hack/versions.env pins (the render pins the same tags)
#   pause, busybox, kfake,    the local node only: containerd's sandbox image, the volume
#   mailsink, mariadb, redis  provisioner's helper, the Kafka stand-in (franz-go's kfake), an SMTP
#                             sink, and MariaDB 10.11 / Redis 7.0 from Debian's packages (mmdebstrap)
# Images are assembled by cmd/images (go-containerregistry): same inputs, same digest. Archives go to
#   ${SCALESTACK_CACHE:-$HOME/.cache/scalestack}/images/out/<name>.tar  (+ <name>.ref: ref@digest)
# and the slow parts (Debian root filesystems, exporters) are cached by version.
#
#   hack/build-images.sh [name ...]                       build (default: every image)
#   hack/build-images.sh --push REGISTRY [name ...]       build and push (default: operator apps)
# Prints the archive directory on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck disable=SC1091
source "$here/versions.env"
export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN="${GOTOOLCHAIN:-$GO_TOOLCHAIN}"
cache=${SCALESTACK_CACHE:-$HOME/.cache/scalestack}/images
out="$cache/out"
log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

push=""
if [ "${1:-}" = "--push" ]; then
  push=${2:?--push needs a registry, e.g. --push registry.example.com/scalestack}
  shift 2
fi
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  if [ -n "$push" ]; then names=(operator apps); else names=(operator apps mysqld-exporter redis-exporter pause busybox kfake mailsink objectstore mariadb redis); fi
fi
want() { local n; for n in "${names[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }

# One build at a time per cache.
mkdir -p "$cache" "$out"
exec 8>"$cache/.lock"
flock 8

apt_install() { # apt_install <command-or-file> <package>
  [ -e "$1" ] || command -v "$1" >/dev/null 2>&1 && return 0
  log "installing Debian's $2"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >&2 ||
    { DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >&2; }
}

bin="$cache/bin"
mkdir -p "$bin"
start=$(date +%s)
build_flags=(-trimpath -ldflags "-s -w -buildid=")

if want operator || want apps || want pause || want kfake || want mailsink || want objectstore; then
  log "compiling the operator, the apps, pause, localkafka, mailsink and localstore (static)"
  (cd "$repo" && CGO_ENABLED=0 go build "${build_flags[@]}" -o "$bin/manager" . &&
    CGO_ENABLED=0 go build "${build_flags[@]}" -o "$bin/" ./apps/cmd/gateway ./apps/cmd/user ./apps/cmd/post \
      ./apps/cmd/feed ./apps/cmd/worker ./apps/cmd/archiver ./apps/cmd/dbagent ./apps/cmd/loadgen &&
    CGO_ENABLED=0 go build "${build_flags[@]}" -o "$bin/pause" ./cmd/pause &&
    CGO_ENABLED=0 go build "${build_flags[@]}" -o "$bin/localkafka" ./cmd/localkafka &&
    CGO_ENABLED=0 go build "${build_flags[@]}" -o "$bin/mailsink" ./cmd/mailsink &&
    CGO_ENABLED=0 go build "${build_flags[@]}" -o "$bin/localstore" ./cmd/localstore) >&2
fi
# SeaweedFS, the local object store (static; hack/build-seaweedfs.sh caches it).
if want objectstore; then cp "$("$here/build-seaweedfs.sh")" "$bin/weed"; fi

# go_tool <binary> <module> <version> [env...]: built from its module at a pinned version, cached by
# version. A throwaway module requires it (`go install mod@version` asks the proxy for the module's
# version list, which the proxy here refuses for some modules).
go_tool() {
  local b=$1 mod=$2 ver=$3 dir="$cache/tools/$1-$3"
  shift 3
  if [ ! -x "$dir/$b" ]; then
    log "building $b $ver from its Go module"
    mkdir -p "$dir/src"
    printf 'module scalestack.local/%sbuild\n\ngo 1.24\n\nrequire %s %s\n' "$b" "$mod" "$ver" >"$dir/src/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$mod" >"$dir/src/tools.go"
    (cd "$dir/src" && env "$@" go mod tidy >&2 && env "$@" CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -buildid= -X github.com/prometheus/common/version.Version=${ver#v}" -o "$dir/$b.tmp" "$mod" >&2)
    mv "$dir/$b.tmp" "$dir/$b"
  fi
  cp "$dir/$b" "$bin/$b"
}
if want mysqld-exporter; then go_tool mysqld_exporter github.com/prometheus/mysqld_exporter "$MYSQLD_EXPORTER_VERSION"; fi
# The checksum database does not answer for redis_exporter's go.mod (404) although the module
# proxy serves the module: that module alone skips it.
if want redis-exporter; then go_tool redis_exporter github.com/oliver006/redis_exporter "$REDIS_EXPORTER_VERSION" GONOSUMDB=github.com/oliver006/redis_exporter; fi
if want busybox; then
  apt_install /bin/busybox busybox-static
  cp /bin/busybox "$bin/busybox"
fi

# Debian root filesystems, cached by suite and package list.
rootfs_build() { # rootfs_build <name> <packages>
  local name=$1 pkgs=$2 key dir
  key=$(printf '%s %s' "$DEBIAN_SUITE" "$pkgs" | sha256sum | cut -c1-12)
  dir="$cache/rootfs/$name-$DEBIAN_SUITE-$key"
  if [ ! -s "$dir/$name.tar" ]; then
    apt_install mmdebstrap mmdebstrap
    log "building the $name root filesystem from Debian $DEBIAN_SUITE ($pkgs); about 2-3 minutes"
    mkdir -p "$dir"
    SOURCE_DATE_EPOCH=0 mmdebstrap --quiet --variant=essential --include="$pkgs" \
      --aptopt='Acquire::Retries "3"' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      "$DEBIAN_SUITE" "$dir/$name.tmp.tar" \
      "deb http://deb.debian.org/debian $DEBIAN_SUITE main" \
      "deb http://deb.debian.org/debian-security $DEBIAN_SUITE-security main" >&2
    mv "$dir/$name.tmp.tar" "$dir/$name.tar"
  fi
  mkdir -p "$cache/rootfs/current"
  ln -sf "$dir/$name.tar" "$cache/rootfs/current/$name.tar"
}
if want mariadb; then rootfs_build mariadb mariadb-server,mariadb-backup,ca-certificates,tzdata; fi
if want redis; then rootfs_build redis redis-server,ca-certificates; fi

only=$(IFS=,; echo "${names[*]}")
refs=(
  -ref "operator=${IMG:-ghcr.io/scalestack/operator:v0.1.0}"
  -ref "apps=${APPS_IMG:-ghcr.io/scalestack/apps:v0.1.0}"
  -ref "mysqld-exporter=quay.io/prometheus/mysqld-exporter:$MYSQLD_EXPORTER_VERSION"
  -ref "redis-exporter=quay.io/oliver006/redis_exporter:$REDIS_EXPORTER_VERSION"
  -ref "pause=scalestack.local/pause:3.10"
  -ref "busybox=scalestack.local/busybox:stable"
  -ref "kfake=scalestack.local/kfake:dev"
  -ref "mailsink=scalestack.local/mailsink:dev"
  -ref "objectstore=scalestack.local/objectstore:dev"
  -ref "mariadb=scalestack.local/mariadb:10.11"
  -ref "redis=scalestack.local/redis:7.0"
)
log "assembling images: $only"
(cd "$repo" && go build -o "$bin/images-tool" ./cmd/images)
if [ -n "$push" ]; then
  "$bin/images-tool" -bin "$bin" -rootfs "$cache/rootfs/current" -only "$only" "${refs[@]}" -push -registry "$push" >&2
else
  "$bin/images-tool" -bin "$bin" -rootfs "$cache/rootfs/current" -out "$out" -only "$only" "${refs[@]}" >&2
fi
log "done in $(( $(date +%s) - start ))s"
echo "$out"
