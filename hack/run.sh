#!/usr/bin/env bash
# make run: the operator's main job on this machine.
#  1. a cluster: the local control plane (hack/local-cluster.sh up) with a real node (containerd,
#     kubelet, kube-proxy, CoreDNS, local-path-provisioner: SCALESTACK_NODE=real, the default as
#     root; kwok's simulated node otherwise), after building every image here
#     (hack/build-images.sh). $KUBECONFIG and ~/.kube/config are ignored: another cluster is used
#     only when RUN_CONTEXT=<context> names one of their contexts (printed first);
#  2. the CRDs: ours, and on the local control plane only the stub Strimzi and prometheus-operator
#     CRDs of hack/crds, never over a CRD that is not one of those stubs;
#  3. the operator, built from this checkout and run as a local process (logs in .local/operator.log);
#  4. the sample in namespace scalestack-demo (Pod Security "restricted" enforced): on the local
#     node config/local-sample (the sample with kfake as its Kafka, in a pod, and the MariaDB and
#     Redis images built here, backups to SeaweedFS in a pod); then it waits for Ready and for every
#     shard's first full backup, forwards http://127.0.0.1:8080/ to the gateway, and prints how long
#     each step took.
# The operator keeps running until Ctrl-C (RUN_DETACH=1 leaves it running in the background and
# returns); RUN_PLAN=1 prints which cluster it would use and what it would install, and stops.
# `make cluster-down` stops the local control plane and removes the node's containers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
mkdir -p .local
bin=$("$here/build-k8s-binaries.sh")
kubectl="$bin/kubectl"
ns=${RUN_NAMESPACE:-scalestack-demo}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
t0=$(date +%s); tstep=$t0; timings=()
took() { local now; now=$(date +%s); timings+=("$(printf '%-44s %4ss' "$1" $((now - tstep)))"); tstep=$now; }
local_cluster=""

# The cluster: the local control plane unless RUN_CONTEXT names a context of your kubeconfig. A
# configured ~/.kube/config or $KUBECONFIG is never used by accident: everything below (kubectl,
# the operator) gets a kubeconfig that holds only the chosen cluster.
if [ -n "${RUN_CONTEXT:-}" ]; then
  user_kubeconfig=${KUBECONFIG:-$HOME/.kube/config}
  user_kubectl() { KUBECONFIG=$user_kubeconfig "$kubectl" "$@"; }
  if ! server=$(user_kubectl config view --context "$RUN_CONTEXT" --minify -o jsonpath='{.clusters[0].cluster.server}' 2>/dev/null) ||
    [ -z "$server" ]; then
    echo "RUN_CONTEXT=$RUN_CONTEXT: no such context in $user_kubeconfig (kubectl config get-contexts lists them)." >&2
    exit 1
  fi
  say "Using context $RUN_CONTEXT of $user_kubeconfig: $server (RUN_CONTEXT opted in)"
  user_kubectl config view --context "$RUN_CONTEXT" --minify --flatten >.local/run-kubeconfig
  export KUBECONFIG=$PWD/.local/run-kubeconfig
  if ! "$kubectl" get --raw /readyz >/dev/null 2>&1; then
    echo "The cluster of context $RUN_CONTEXT ($server) does not answer." >&2
    exit 1
  fi
else
  local_cluster=1
  if [ -n "${KUBECONFIG:-}" ] || [ -f "$HOME/.kube/config" ]; then
    echo "Not using ${KUBECONFIG:-$HOME/.kube/config}: make run uses the local control plane unless RUN_CONTEXT=<context> opts in."
  fi
  if [ -z "${SCALESTACK_NODE:-}" ]; then
    if [ "$(id -u)" -eq 0 ]; then export SCALESTACK_NODE=real; else export SCALESTACK_NODE=kwok; fi
  fi
  if [ -n "${RUN_PLAN:-}" ]; then
    say "Plan: start the local control plane (node: $SCALESTACK_NODE), install our CRDs and the stub Strimzi and prometheus-operator CRDs, run the operator, apply the sample"
    exit 0
  fi
  if [ "$SCALESTACK_NODE" != kwok ]; then
    say "Building the images (operator, apps, exporters, MariaDB, Redis, kfake, pause; cached)"
    "$here/build-images.sh" >/dev/null
    took "images"
  fi
  say "Starting the local control plane (node: $SCALESTACK_NODE)"
  KUBECONFIG=$(KUBECONFIG= "$here/local-cluster.sh" up)
  export KUBECONFIG
  took "control plane and node"
fi
if [ -n "${RUN_PLAN:-}" ]; then
  say "Plan: on $server install our CRDs only (no stub CRDs), run the operator, apply the sample into namespace $ns"
  exit 0
fi
# The local real node (hack/local-node.sh) runs the local sample; any other cluster the published one.
real_node=""
if "$kubectl" get node scalestack-node-0 >/dev/null 2>&1; then real_node=1; fi

say "Installing the CRDs"
"$kubectl" apply --server-side --force-conflicts -f config/crd/bases
if [ -n "$local_cluster" ]; then
  # The Strimzi and prometheus-operator kinds the operator uses, as stubs (hack/crds), on the local
  # control plane only, and never over a CRD that is not one of our stubs.
  for f in hack/crds/*.yaml; do
    crd=$(basename "$f" .yaml)
    if stub=$("$kubectl" get crd "$crd" -o jsonpath='{.metadata.labels.scalestack\.dev/stub}' 2>/dev/null) && [ "$stub" != true ]; then
      echo "customresourcedefinition.apiextensions.k8s.io/$crd exists and is not our stub: left as it is"
      continue
    fi
    "$kubectl" apply --server-side --force-conflicts -f "$f"
  done
fi
"$kubectl" wait --for condition=established --timeout=60s crd/socialplatforms.scalestack.dev >/dev/null
took "CRDs"

say "Building and starting the operator (logs: .local/operator.log)"
go build -o bin/manager .
if [ -f .local/operator.pid ] && kill -0 "$(cat .local/operator.pid)" 2>/dev/null; then
  kill "$(cat .local/operator.pid)" && sleep 1
fi
bin/manager --log-format=text --metrics-bind-address=0 --health-probe-bind-address=127.0.0.1:0 \
  --leader-elect=false >.local/operator.log 2>&1 &
op=$!
echo "$op" >.local/operator.pid
stop() {
  kill "$op" 2>/dev/null || true; wait "$op" 2>/dev/null || true; rm -f .local/operator.pid
  for f in .local/kafka.pid .local/port-forward.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; rm -f "$f"
  done
}
if [ "${RUN_DETACH:-}" != 1 ]; then trap stop EXIT; fi
took "operator built and started"

"$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply --server-side -f - >/dev/null
"$kubectl" label --overwrite namespace "$ns" pod-security.kubernetes.io/enforce=restricted >/dev/null
if [ -n "$real_node" ]; then
  say "Applying the local sample (config/local-sample: kfake as Kafka in a pod, MariaDB and Redis built here) into $ns"
  "$kubectl" kustomize config/local-sample | "$kubectl" apply --server-side -n "$ns" -f -
else

say "Starting a local Kafka (kfake, the real Kafka protocol in-process) for the sample's External Kafka"
# Simulated (kwok) pods run nothing, so the sample's Kafka is a kfake process on the host.
if [ -f .local/kafka.pid ] && kill -0 "$(cat .local/kafka.pid)" 2>/dev/null; then
  kill "$(cat .local/kafka.pid)" && sleep 0.5
fi
go build -o bin/localkafka ./cmd/localkafka
bin/localkafka --brokers 3 >.local/kafka.addrs 2>.local/kafka.log &
echo $! >.local/kafka.pid
for _ in $(seq 1 50); do [ -s .local/kafka.addrs ] && break; sleep 0.1; done
bootstrap=$(head -1 .local/kafka.addrs | cut -d, -f1)
echo "Kafka at $bootstrap"

say "Applying the sample into namespace $ns"
# The sample as published, with its Kafka switched to External and pointed at the local Kafka: no
# Strimzi operator (or Kafka broker) can run on the local control plane.
sed "s|^    mode: Strimzi\$|    mode: External\n    bootstrapServers: [\"$bootstrap\"]|" config/samples/scalestack_v1alpha1_socialplatform.yaml |
  "$kubectl" apply --server-side -n "$ns" -f -
fi
took "sample applied"

say "Waiting for the SocialPlatform to become Ready"
start=$(date +%s)
if ! "$kubectl" wait -n "$ns" --for=condition=Ready --timeout="${RUN_READY_TIMEOUT:-600s}" socialplatform/demo; then
  "$kubectl" describe -n "$ns" socialplatform/demo
  tail -50 .local/operator.log
  exit 1
fi
echo "Ready after $(( $(date +%s) - start ))s"
took "SocialPlatform Ready"
"$kubectl" get -n "$ns" socialplatform -o wide
echo
"$kubectl" get -n "$ns" deployments,statefulsets,services,pods,pvc
echo
"$kubectl" get -n "$ns" socialplatform demo -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}' | column -t -s $'\t'

if [ -n "$real_node" ]; then
  say "Waiting for every shard's first full backup (BackupReady; the local sample backs up to SeaweedFS in a pod)"
  if "$kubectl" wait -n "$ns" --for=condition=BackupReady --timeout="${RUN_BACKUP_TIMEOUT:-300s}" socialplatform/demo >/dev/null; then
    "$kubectl" get -n "$ns" socialplatform demo -o jsonpath='{range .status.shards[*]}  shard {.index}: full backup {.backup.lastFull.id} taken on {.backup.lastFull.source} ({.backup.lastFull.sizeBytes} bytes), binary logs archived at {.backup.lastArchived}, next full backup {.backup.nextScheduled}{"\n"}{end}'
  else
    "$kubectl" get -n "$ns" socialplatform demo -o jsonpath='{.status.conditions[?(@.type=="BackupReady")].message}{"\n"}'
  fi
  took "first full backups"
  if [ -f .local/port-forward.pid ]; then kill "$(cat .local/port-forward.pid)" 2>/dev/null || true; fi
  "$kubectl" port-forward -n "$ns" --address 127.0.0.1 svc/demo-gateway "${RUN_PORT:-8080}:80" >.local/port-forward.log 2>&1 &
  echo $! >.local/port-forward.pid
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/${RUN_PORT:-8080}") 2>/dev/null && break; sleep 0.2; done
  took "gateway forwarded"
  say "The social network the operator provisioned: http://127.0.0.1:${RUN_PORT:-8080}/ (sign up, post, follow)"
fi
say "Timings"
printf '  %s\n' "${timings[@]}"
printf '  %-44s %4ss\n' "total" $(( $(date +%s) - t0 ))

if [ "${RUN_DETACH:-}" = 1 ]; then
  say "The operator keeps running in the background (pid $op); KUBECONFIG=$KUBECONFIG"
  exit 0
fi
say "The operator keeps running; Ctrl-C stops it. Try: KUBECONFIG=$KUBECONFIG $kubectl edit -n $ns sp demo"
tail -f .local/operator.log
