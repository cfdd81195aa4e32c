#!/usr/bin/env bash
# The local control plane: etcd, kube-apiserver (PodSecurity admission on), kube-controller-manager
# (ReplicaSets, garbage collection, StatefulSets), kube-scheduler, and its nodes:
#   SCALESTACK_NODE=kwok (default)  kwok with one fake node: Pods are scheduled and become Running
#                                   and Ready and claims get bound with no container runtime (tests
#                                   and benchmarks with hundreds of platforms);
#   SCALESTACK_NODE=real            a real node (hack/local-node.sh: containerd, kubelet, kube-proxy,
#                                   CoreDNS, local-path-provisioner) running real containers; root;
#   SCALESTACK_NODE=both            both (the kwok node cordoned).
#
#   hack/local-cluster.sh up       start it (idempotent); prints the kubeconfig path
#   hack/local-cluster.sh down     stop every process (the real node's containers too) and delete the data
#   hack/local-cluster.sh status   show what runs
#
# Everything lives under $SCALESTACK_CLUSTER_DIR (default: <repo>/.local/cluster): kubeconfig,
# certificates, etcd data and one log per component in logs/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
dir=${SCALESTACK_CLUSTER_DIR:-$repo/.local/cluster}
kubeconfig="$dir/kubeconfig"
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
mode=${SCALESTACK_NODE:-$(cat "$dir/node-mode" 2>/dev/null || echo kwok)}
case "$mode" in kwok | real | both) ;; *) echo "SCALESTACK_NODE must be kwok, real or both, not $mode" >&2; exit 2 ;; esac
has_kwok() { [ "$mode" != real ]; }
has_real() { [ "$mode" != kwok ]; }

lib_name=cluster lib_state=$dir
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

certs() {
  local c="$dir/pki"
  [ -f "$c/admin.crt" ] && return
  command -v openssl >/dev/null || die "openssl is needed for the control plane's certificates (apt-get install openssl)"
  mkdir -p "$c"
  (
    cd "$c"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 365 -subj "/CN=scalestack-local-ca" 2>/dev/null
    cat >san.cnf <<CNF
[req]
distinguished_name = dn
[dn]
[ext]
subjectAltName = DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1
extendedKeyUsage = serverAuth
CNF
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 365 -extfile san.cnf -extensions ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=scalestack-admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 365 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

up() {
  bin=$("$here/build-k8s-binaries.sh")
  stages="$bin/../kwok-stages"
  mkdir -p "$dir/logs" "$dir/pids" "$dir/etcd"
  if pid_alive kube-apiserver && [ -f "$kubeconfig" ] && "$bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    if has_real; then "$here/local-node.sh" up "$dir"; fi
    log "already running"
    echo "$kubeconfig"
    return
  fi
  echo "$mode" >"$dir/node-mode"
  down_all
  # Interrupted half-way (Ctrl-C, a failed step): stop what was started.
  trap 'down_all; exit 130' INT TERM
  trap 'rc=$?; [ $rc -eq 0 ] || down_all' EXIT
  certs

  local etcd_port etcd_peer api_port attempt
  for attempt in 1 2 3; do
    etcd_port=$(free_port); etcd_peer=$(free_port)
    [ "$etcd_peer" != "$etcd_port" ] || continue
    log "etcd on 127.0.0.1:$etcd_port"
    start etcd "$bin/etcd" --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
      --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
      --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" --initial-cluster "default=http://127.0.0.1:$etcd_peer" \
      --unsafe-no-fsync --quota-backend-bytes 4294967296
    # A free port can be taken by another process before etcd binds it: pick others.
    for _ in $(seq 1 150); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$etcd_port") 2>/dev/null || ! pid_alive etcd; then break; fi
      sleep 0.2
    done
    if pid_alive etcd || ! grep -q 'address already in use' "$dir/logs/etcd.log"; then break; fi
    log "a port etcd needs was taken (attempt $attempt)"
    rm -rf "$dir/pids/etcd" "$dir/etcd"; mkdir -p "$dir/etcd"
  done
  wait_for etcd 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$etcd_port"
  api_port=$(free_port)

  log "kube-apiserver on https://127.0.0.1:$api_port"
  local p="$dir/pki"
  local api_args=(
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" --client-ca-file "$p/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range 10.96.0.0/12 --endpoint-reconciler-type none \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,DefaultStorageClass,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy \
    --enable-priority-and-fairness=false \
    --kubelet-preferred-address-types InternalIP \
    --kubelet-client-certificate "$p/admin.crt" --kubelet-client-key "$p/admin.key" \
    --max-requests-inflight 2000 --max-mutating-requests-inflight 1000
  )
  local old i
  for attempt in 1 2 3; do
    # Kept so that restart-apiserver starts it again exactly the same way.
    printf '%q ' "${api_args[@]}" >"$dir/apiserver.args"
    start kube-apiserver "$bin/kube-apiserver" "${api_args[@]}"
    sleep 2
    # A free port can be taken by another process before the API server binds it: pick another.
    if pid_alive kube-apiserver || ! grep -q 'address already in use' "$dir/logs/kube-apiserver.log"; then break; fi
    old=$api_port; api_port=$(free_port)
    log "port $old was taken (attempt $attempt); kube-apiserver on https://127.0.0.1:$api_port"
    rm -f "$dir/pids/kube-apiserver"
    for i in "${!api_args[@]}"; do [ "${api_args[$i]}" = "$old" ] && api_args[$i]=$api_port; done
  done
  cat >"$kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: scalestack-local
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $p/ca.crt
users:
- name: admin
  user:
    client-certificate: $p/admin.crt
    client-key: $p/admin.key
contexts:
- name: scalestack-local
  context: {cluster: scalestack-local, user: admin}
current-context: scalestack-local
KC
  local k=("$bin/kubectl" --kubeconfig "$kubeconfig")
  wait_for kube-apiserver 60 "${k[@]}" get --raw /readyz

  log "kube-controller-manager, kube-scheduler"
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$kubeconfig" \
    --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
    --secure-port 0 --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --concurrent-deployment-syncs 10 --concurrent-replicaset-syncs 10 --concurrent-statefulset-syncs 10 \
    --concurrent-gc-syncs 20 --kube-api-qps 200 --kube-api-burst 400
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$kubeconfig" \
    --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
    --secure-port 0 --leader-elect=false --kube-api-qps 200 --kube-api-burst 400

  if has_kwok; then kwok_node; fi
  # The default ServiceAccount appears once the controller-manager runs; pods need it.
  wait_for "the default ServiceAccount" 60 "${k[@]}" get serviceaccount default -n default
  if has_real; then "$here/local-node.sh" up "$dir"; fi
  if [ "$mode" = both ]; then "${k[@]}" cordon kwok-node-0 >/dev/null; fi
  trap - INT TERM EXIT
  log "ready: export KUBECONFIG=$kubeconfig"
  echo "$kubeconfig"
}

kwok_node() {
  local k=("$bin/kubectl" --kubeconfig "$kubeconfig")
  log "kwok with a fake node"
  start kwok "$bin/kwok" --kubeconfig "$kubeconfig" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --cidr 10.244.0.0/16 --node-ip 127.0.0.1 \
    --config "$stages/node/fast/node-initialize.yaml" --config "$stages/node/heartbeat/node-heartbeat.yaml" \
    --config "$stages/pod/fast/pod-ready.yaml" --config "$stages/pod/fast/pod-complete.yaml" --config "$stages/pod/fast/pod-delete.yaml" \
    --config "$stages/volume/fast/pvc-provision.yaml" --config "$stages/volume/fast/pv-bind.yaml" \
    --config "$stages/volume/fast/pv-delete.yaml" --config "$stages/volume/fast/pvc-delete.yaml"
  "${k[@]}" apply --server-side -f "$stages/volume/fast/storage-class.yaml" >/dev/null
  "${k[@]}" apply --server-side -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    topology.kubernetes.io/zone: local-a
status:
  allocatable: {cpu: "4096", memory: 64Ti, pods: "50000"}
  capacity: {cpu: "4096", memory: 64Ti, pods: "50000"}
NODE
  wait_for "the kwok node" 60 bash -c "'$bin/kubectl' --kubeconfig '$kubeconfig' get node kwok-node-0 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
}

# down_all stops the real node (its containers first) and then the control plane.
down_all() {
  if [ -d "$dir/node" ]; then "$here/local-node.sh" down "$dir" || true; fi
  down_processes
}

down_processes() {
  local c
  for c in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if pid_alive "$c"; then
      kill -TERM -- "-$(cat "$dir/pids/$c")" 2>/dev/null || kill -TERM "$(cat "$dir/pids/$c")" 2>/dev/null || true
    fi
  done
  for c in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    for _ in $(seq 1 50); do pid_alive "$c" || break; sleep 0.1; done
    if pid_alive "$c"; then kill -KILL -- "-$(cat "$dir/pids/$c")" 2>/dev/null || true; fi
    rm -f "$dir/pids/$c"
  done
}

down() {
  down_all
  rm -rf "$dir/etcd" "$dir/kubeconfig" "$dir/node-mode"
  log "stopped"
}

# restart-apiserver stops kube-apiserver and starts it again with the same flags (fault tests:
# clients must survive the API server going away).
restart_apiserver() {
  bin=$("$here/build-k8s-binaries.sh")
  pid_alive kube-apiserver || die "kube-apiserver is not running"
  kill -TERM -- "-$(cat "$dir/pids/kube-apiserver")" 2>/dev/null || kill -TERM "$(cat "$dir/pids/kube-apiserver")"
  for _ in $(seq 1 100); do pid_alive kube-apiserver || break; sleep 0.1; done
  rm -f "$dir/pids/kube-apiserver"
  log "kube-apiserver stopped"
  sleep "${APISERVER_DOWN_SECONDS:-3}"
  local args
  eval "args=($(cat "$dir/apiserver.args"))"
  start kube-apiserver "$bin/kube-apiserver" "${args[@]}"
  wait_for kube-apiserver 60 "$bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz
  log "kube-apiserver restarted"
}

status() {
  local c
  for c in "${components[@]}"; do
    if pid_alive "$c"; then echo "$c: running (pid $(cat "$dir/pids/$c"))"; else echo "$c: stopped"; fi
  done
  [ -f "$kubeconfig" ] && echo "kubeconfig: $kubeconfig"
  echo "nodes: $mode"
  if [ -d "$dir/node" ]; then "$here/local-node.sh" status "$dir"; fi
  return 0
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  restart-apiserver) restart_apiserver ;;
  *) echo "usage: $0 up|down|status|restart-apiserver" >&2; exit 2 ;;
esac
