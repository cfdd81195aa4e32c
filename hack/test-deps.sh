#!/usr/bin/env bash
# Installs what the tests need from Debian: MariaDB (servers the tests start themselves on free
# ports, in temporary directories), Redis (likewise), promtool and prometheus (Debian's prometheus package), openssl, chromium. The tests never use the servers a machine may already run on the standard ports.
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail
missing=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v mariadb-install-db >/dev/null 2>&1 || missing+=(mariadb-server)
# mariadb-backup and mbstream take and restore the physical backups (pkg/backup tests).
command -v mariadb-backup >/dev/null 2>&1 || missing+=(mariadb-backup)
command -v mbstream >/dev/null 2>&1 || missing+=(mariadb-backup)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Debian's chromium runs the web UI test headless (apps/apptest).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# promtool checks and unit-tests the generated Prometheus rules; prometheus scrapes the apps in e2e.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
echo "Installing test dependencies: $pkgs" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $pkgs >&2
