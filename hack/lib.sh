# shellcheck shell=bash
# Helpers shared by hack/local-cluster.sh and hack/local-node.sh. Before sourcing, set
#   lib_name   the log prefix ("cluster", "node")
#   lib_state  the directory whose logs/ and pids/ hold each started process' log and pid.

log() { printf '[%s %s] %s\n' "$lib_name" "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$lib_name" "$*" >&2; exit 1; }

# pid_alive <name>: the process started as name still runs.
pid_alive() { [ -f "$lib_state/pids/$1" ] && kill -0 "$(cat "$lib_state/pids/$1")" 2>/dev/null; }

# start <name> <binary> <args...>: start a process in its own session (idempotent), its output in
# logs/<name>.log and its pid in pids/<name>.
start() {
  local name=$1; shift
  if pid_alive "$name"; then return; fi
  setsid "$@" >"$lib_state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$lib_state/pids/$name"
}

# wait_for <what> <seconds> <command...>: poll the command every 0.2s until it succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what did not become ready within ${secs}s; see $lib_state/logs/"
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port found on 127.0.0.1"
}
