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

# log_tail <name>: the last lines of the log of the process started as name, indented, if it has one.
log_tail() {
  [ -s "$lib_state/logs/$1.log" ] || return 0
  printf '[%s] last lines of %s:\n' "$lib_name" "$lib_state/logs/$1.log" >&2
  tail -n 15 "$lib_state/logs/$1.log" | sed 's/^/    /' >&2
}

# wait_for <what> <seconds> <command...>: poll the command every 0.2s until it succeeds. When what
# names a started process, a process that exits stops the wait at once, and the error shows the end
# of its log.
wait_for() {
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ -f "$lib_state/pids/$what" ] && ! pid_alive "$what"; then
      log_tail "$what"
      die "$what exited before it became ready; see $lib_state/logs/"
    fi
    sleep 0.2
  done
  log_tail "$what"
  die "$what did not become ready within ${secs}s; see $lib_state/logs/"
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on. It is drawn from below the
# kernel's ephemeral range: a port in that range can be the local end of any outgoing connection
# (kubectl, the tests' clients), and then a server that binds it fails with "address already in use".
free_port() {
  local p lo hi
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
  if [ "$lo" -gt 12000 ]; then hi=$lo; lo=10000; else lo=20000; hi=50000; fi
  for _ in $(seq 1 200); do
    p=$((lo + RANDOM % (hi - lo)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port found on 127.0.0.1"
}
