#!/usr/bin/env bash
# A real node for the local control plane: containerd + runc + CNI bridge networking, kubelet,
# kube-proxy (iptables) and cluster DNS (CoreDNS with its kubernetes plugin), plus a dynamic volume
# provisioner (rancher's local-path-provisioner), so that what the operator provisions runs in real
# containers on this machine. Needs root. hack/local-cluster.sh calls it (SCALESTACK_NODE=real).
#
#   hack/local-node.sh up <cluster-dir>      start it against the cluster's kubeconfig (idempotent)
#   hack/local-node.sh down <cluster-dir>    remove every container, network namespace, mount,
#                                           iptables/ip6tables chain, cgroup, sysctl change and
#                                           process it made
#   hack/local-node.sh status <cluster-dir>  show them
#   hack/local-node.sh import <cluster-dir>  import the archives of hack/build-images.sh whose digest changed
#
# Everything lives under <cluster-dir>/node. Pod traffic stays on this machine: pods get addresses
# on the bridge $BRIDGE ($POD_CIDR) in network namespaces that containerd creates.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091
source "$here/versions.env"
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH" GOTOOLCHAIN="${GOTOOLCHAIN:-$GO_TOOLCHAIN}"

cmd=${1:-}
dir=${2:?usage: $0 up|down|status|import <cluster-dir>}
node="$dir/node"
kubeconfig="$dir/kubeconfig"
NODE_NAME=scalestack-node-0
BRIDGE=scalestack0
POD_CIDR=10.245.0.0/24
GATEWAY=10.245.0.1
# The control plane's Service range (hack/local-cluster.sh): routed to the bridge, so that a
# ClusterIP kube-proxy has not programmed yet goes nowhere instead of out of the default route.
SERVICE_CIDR=10.96.0.0/12
cache=${SCALESTACK_CACHE:-$HOME/.cache/scalestack}
# The sysctls that kubelet, kube-proxy and the CNI bridge set: saved at `up`, restored at `down`.
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops vm.panic_on_oom net.ipv4.ip_forward
  net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait)

lib_name=node lib_state=$node
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

# deps installs the Debian packages the node runs on (containerd, runc, the CNI plugins,
# iptables, conntrack) and builds CoreDNS and local-path-provisioner from their Go modules.
deps() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v ip >/dev/null || missing+=(iproute2)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
      { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }
  fi
  tools="$cache/node-tools"
  mkdir -p "$tools"
  if [ ! -x "$tools/coredns-$COREDNS_VERSION" ]; then
    log "building CoreDNS $COREDNS_VERSION from its Go module (about 4 minutes the first time)"
    GOBIN="$tools/tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" >&2
    mv "$tools/tmp/coredns" "$tools/coredns-$COREDNS_VERSION"
  fi
  if [ ! -x "$tools/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION" ]; then
    log "building local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION from its Go module"
    GOBIN="$tools/tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
      "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION" >&2
    mv "$tools/tmp/local-path-provisioner" "$tools/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION"
  fi
}

# The cgroup every pod nests under: a child of the memory cgroup this command runs in, created in
# every v1 hierarchy (cpuset needs its cpus and mems), or under the unified hierarchy on cgroup v2.
cgroup_parent() {
  local line
  line=$(grep -E '^[0-9]+:memory:' /proc/self/cgroup || true)
  if [ -n "$line" ]; then echo "${line#*:memory:}"; else grep -E '^0::' /proc/self/cgroup | cut -d: -f3; fi
}
cgroup_v1_hierarchies() {
  local h
  for h in /sys/fs/cgroup/*/; do
    h=${h%/}
    [ -f "$h/cgroup.procs" ] || continue
    [ "$(basename "$h")" = unified ] && continue
    echo "$h"
  done
}
make_cgroups() {
  local root=$1 h p
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p "/sys/fs/cgroup$root"
    return
  fi
  # Remember every directory made here (ancestors included), so down removes exactly those.
  local d0
  while read -r h; do
    p="$h$root"
    d0=$p
    while [ ! -d "$d0" ]; do echo "$d0" >>"$node/cgroups-created"; d0=$(dirname "$d0"); done
    mkdir -p "$p"
    if [ -f "$p/cpuset.cpus" ]; then
      local d parent
      # Each level of a cpuset path needs cpus and mems before children can be made.
      d=$h
      for part in ${root//\// }; do
        parent=$d; d="$d/$part"
        [ -s "$d/cpuset.cpus" ] || cat "$parent/cpuset.cpus" >"$d/cpuset.cpus"
        [ -s "$d/cpuset.mems" ] || cat "$parent/cpuset.mems" >"$d/cpuset.mems"
      done
    fi
  done < <(cgroup_v1_hierarchies)
  # runc mirrors the path into the hybrid hierarchy's unified mount: what is missing there now is
  # runc's doing for our pods, and down removes it.
  if [ -d /sys/fs/cgroup/unified ]; then
    d0="/sys/fs/cgroup/unified$root"
    while [ ! -d "$d0" ]; do echo "$d0" >>"$node/cgroups-created"; d0=$(dirname "$d0"); done
  fi
}
remove_cgroups() { # remove_cgroups <root>: deepest first; processes left in them are killed first
  local root=$1 h d pids
  local tops=()
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then tops=("/sys/fs/cgroup$root"); else
    while read -r h; do tops+=("$h$root"); done < <(cgroup_v1_hierarchies)
    # runc mirrors the path into the hybrid hierarchy's unified mount.
    [ -d /sys/fs/cgroup/unified ] && tops+=("/sys/fs/cgroup/unified$root")
  fi
  for d in "${tops[@]}"; do
    [ -d "$d" ] || continue
    pids=$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  done
  sleep 0.2
  for d in "${tops[@]}"; do
    [ -d "$d" ] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  # The ancestors made at up (deepest first); runc's mirror in the unified hierarchy likewise.
  if [ -f "$node/cgroups-created" ]; then
    sort -r -u "$node/cgroups-created" | while read -r d; do rmdir "$d" 2>/dev/null || true; done
  fi
}

save_sysctls() {
  [ -f "$node/sysctl.saved" ] && return
  local k v
  for k in "${SYSCTLS[@]}"; do
    v=$(sysctl -n "$k" 2>/dev/null) || continue
    printf '%s=%s\n' "$k" "$v"
  done >"$node/sysctl.saved"
}
restore_sysctls() {
  [ -f "$node/sysctl.saved" ] || return 0
  local line
  while IFS= read -r line; do
    sysctl -q -w "$line" >/dev/null 2>&1 || true
  done <"$node/sysctl.saved"
  rm -f "$node/sysctl.saved"
}

ctr_() { ctr --address "$node/containerd/containerd.sock" --namespace k8s.io "$@"; }

up() {
  [ "$(id -u)" -eq 0 ] || die "the real node needs root (kubelet, containerd, network namespaces, iptables)"
  [ -f "$kubeconfig" ] || die "no control plane at $dir (hack/local-cluster.sh up first)"
  bin=$("$here/build-k8s-binaries.sh")
  deps
  mkdir -p "$node"/{logs,pids,containerd,cni/net.d,cni/ipam,kubelet,pod-logs}
  if pid_alive kubelet && pid_alive containerd && pid_alive kube-proxy && pid_alive coredns; then
    log "already running"
    return
  fi
  [ -f "$node/created" ] || : >"$node/created"
  [ -f "$node/netns-before" ] || ls -d /var/run/netns/cni-* >"$node/netns-before" 2>/dev/null || true
  save_sysctls
  # Paths kubelet writes outside its --root-dir: remember which existed, so down removes only ours.
  local p
  for p in /var/lib/kubelet /var/lib/kubelet/device-plugins /var/log/pods /var/log/containers; do
    if [ ! -e "$p" ] && ! grep -qx "$p" "$node/created"; then echo "$p" >>"$node/created"; fi
  done

  local cgroot
  cgroot="$(cgroup_parent)"
  cgroot="${cgroot%/}/scalestack-node"
  echo "$cgroot" >"$node/cgroup-root"
  make_cgroups "$cgroot"

  # The bridge exists before any pod, with the gateway address that cluster DNS listens on.
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$GATEWAY/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  # Goes with the bridge at `down`.
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$GATEWAY"

  log "containerd"
  cat >"$node/containerd/config.toml" <<TOML
version = 2
root = "$node/containerd/root"
state = "$node/containerd/state"
[grpc]
  address = "$node/containerd/containerd.sock"
[ttrpc]
  address = "$node/containerd/containerd.sock.ttrpc"
[debug]
  address = "$node/containerd/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$node/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "scalestack.local/pause:3.10"
  # This VM refuses to lower oom_score_adj; without this every sandbox fails in runc.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  # Pod network namespaces under the state dir, not /var/run/netns: down removes them with it.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
TOML
  cat >"$node/cni/net.d/10-scalestack.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "scalestack",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$GATEWAY"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$node/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  start containerd containerd --config "$node/containerd/config.toml"
  wait_for containerd 30 ctr --address "$node/containerd/containerd.sock" version

  import_images

  log "cluster DNS (CoreDNS $COREDNS_VERSION on $GATEWAY:53)"
  cat >"$node/Corefile" <<COREFILE
cluster.local:53 {
    bind $GATEWAY
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $kubeconfig scalestack-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
.:53 {
    bind $GATEWAY
    errors
    # No network beyond this machine: names outside the cluster do not resolve.
    template ANY ANY {
        rcode NXDOMAIN
    }
}
COREFILE
  start coredns "$tools/coredns-$COREDNS_VERSION" -conf "$node/Corefile"

  log "kubelet $KUBERNETES_VERSION (node $NODE_NAME, cgroups under $cgroot)"
  local kport hport
  kport=$(free_port); hport=$(free_port)
  cat >"$node/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 on this machine; the v1beta1 default refuses it.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $cgroot
# The node's InternalIP is the bridge's address (it exists before kubelet starts, and the host and
# every pod reach it): the API server reaches kubelet there for logs, exec and port-forward.
address: $GATEWAY
port: $kport
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $hport
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: AlwaysAllow}
clusterDNS: [$GATEWAY]
clusterDomain: cluster.local
containerRuntimeEndpoint: unix://$node/containerd/containerd.sock
imageServiceEndpoint: unix://$node/containerd/containerd.sock
podLogsDir: $node/pod-logs
volumePluginDir: $node/kubelet/volume-plugins
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
maxPods: 110
podPidsLimit: 4096
registerNode: true
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 10s
shutdownGracePeriod: 0s
YAML
  start kubelet "$bin/kubelet" --config "$node/kubelet/config.yaml" --kubeconfig "$kubeconfig" \
    --root-dir "$node/kubelet" --cert-dir "$node/kubelet/pki" --hostname-override "$NODE_NAME" \
    --node-ip "$GATEWAY" --node-labels "scalestack.dev/node=real,topology.kubernetes.io/zone=local-a" -v 1
  wait_for "the node $NODE_NAME" 90 bash -c "'$bin/kubectl' --kubeconfig '$kubeconfig' get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"

  log "kube-proxy (iptables)"
  cat >"$node/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$(free_port)
metricsBindAddress: 127.0.0.1:$(free_port)
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
nodePortAddresses: ["$GATEWAY/32"]
YAML
  start kube-proxy "$bin/kube-proxy" --config "$node/kube-proxy.yaml"

  log "volume provisioner (local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION, StorageClass local-path)"
  provisioner
  log "ready: node $NODE_NAME"
}

# import_images loads every archive of hack/build-images.sh into containerd.
import_images() {
  local out="$cache/images/out" f ref
  [ -d "$out" ] || die "no images at $out: run hack/build-images.sh (make images) first"
  for f in "$out"/*.tar; do
    ref=$(cut -d@ -f1 "${f%.tar}.ref")
    digest=$(cut -d@ -f2 "${f%.tar}.ref")
    if ctr_ images ls -q 2>/dev/null | grep -qx "$ref" && [ "$(cat "$node/imported-$(basename "$f" .tar)" 2>/dev/null)" = "$digest" ]; then
      continue
    fi
    log "importing $ref"
    ctr_ images import "$f" >/dev/null
    echo "$digest" >"$node/imported-$(basename "$f" .tar)"
  done
}

provisioner() {
  local k=("$bin/kubectl" --kubeconfig "$kubeconfig") lp="$node/local-path"
  mkdir -p "$lp/volumes"
  "${k[@]}" apply --server-side -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: local-path-storage}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: local-path-storage}
data:
  config.json: |
    {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["$lp/volumes"]}]}
  setup: |
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "\$VOL_DIR"
  teardown: |
    #!/bin/sh
    set -eu
    rm -rf "\$VOL_DIR"
  helperPod.yaml: |
    apiVersion: v1
    kind: Pod
    metadata: {name: helper-pod}
    spec:
      priorityClassName: system-node-critical
      tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}]
      containers:
      - name: helper-pod
        image: scalestack.local/busybox:stable
        imagePullPolicy: IfNotPresent
YAML
  # Only one default class: kwok's stays for the fake node's pods, not as the default.
  "${k[@]}" annotate --overwrite storageclass kwok-volume storageclass.kubernetes.io/is-default-class=false >/dev/null 2>&1 || true
  start local-path-provisioner "$tools/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION" \
    start --kubeconfig "$kubeconfig" --namespace local-path-storage \
    --provisioner-name rancher.io/local-path --helper-image scalestack.local/busybox:stable \
    --configmap-name local-path-config --service-account-name default
}

down() {
  [ -d "$node" ] || return 0
  local c
  log "removing every pod sandbox and container"
  # kubelet first, so that nothing restarts the containers killed next.
  for c in local-path-provisioner kube-proxy kubelet coredns; do stop_process "$c"; done
  if [ -S "$node/containerd/containerd.sock" ] && pid_alive containerd; then
    local ids
    for _ in 1 2 3; do
      ids=$(ctr_ tasks ls -q 2>/dev/null || true)
      for c in $ids; do ctr_ tasks kill -s KILL "$c" >/dev/null 2>&1 || true; done
      for c in $ids; do ctr_ tasks delete -f "$c" >/dev/null 2>&1 || true; done
      ids=$(ctr_ containers ls -q 2>/dev/null || true)
      for c in $ids; do ctr_ containers delete "$c" >/dev/null 2>&1 || true; done
      [ -z "$(ctr_ containers ls -q 2>/dev/null)" ] && break
      sleep 1
    done
  fi
  log "stopping containerd"
  stop_process containerd
  # runc shims outlive containerd: stop those whose working directory is ours.
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 -namespace k8s.io" 2>/dev/null || true); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-address $node/containerd/containerd.sock"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  # Network namespaces containerd made (bind mounts under its state dir, and /var/run/netns).
  local ns
  for ns in /var/run/netns/cni-*; do
    [ -e "$ns" ] || continue
    if [ -f "$node/netns-before" ] && grep -qx "$ns" "$node/netns-before"; then continue; fi
    umount "$ns" 2>/dev/null || true; rm -f "$ns"
  done
  # Mounts under the node's directory (overlay roots, shm, volumes, the netns binds), deepest first.
  local m
  for _ in 1 2 3; do
    m=$(awk -v d="$node/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r || true)
    [ -z "$m" ] && break
    for p in $m; do umount -l "$p" 2>/dev/null || true; done
  done
  # iptables and ip6tables: kubelet's, kube-proxy's and CNI's chains and the jumps into them.
  log "removing mounts done; iptables chains, bridge, cgroups, sysctls"
  clean_iptables
  local v
  for v in /sys/class/net/"$BRIDGE"/brif/*; do
    [ -e "$v" ] && ip link delete "$(basename "$v")" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE" 2>/dev/null || true; fi
  [ -f "$node/cgroup-root" ] && remove_cgroups "$(cat "$node/cgroup-root")"
  restore_sysctls
  # kubelet's paths outside its root dir, only those that did not exist before it ran.
  if [ -f "$node/created" ]; then
    local paths
    paths=$(sort -r "$node/created")
    for p in $paths; do
      case "$p" in
        /var/log/containers) find "$p" -maxdepth 1 -type l -lname "$node/*" -delete 2>/dev/null || true; rmdir "$p" 2>/dev/null || true ;;
        *) rm -rf "$p" ;;
      esac
    done
  fi
  [ -d /var/log/containers ] && find /var/log/containers -maxdepth 1 -type l -lname "$node/*" -delete 2>/dev/null || true
  rm -rf "$node"
  log "removed"
}

stop_process() {
  local c=$1
  pid_alive "$c" || { rm -f "$node/pids/$c"; return 0; }
  local pid
  pid=$(cat "$node/pids/$c")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$node/pids/$c"
}

# clean_iptables removes the chains kubelet (KUBE-FIREWALL, KUBE-KUBELET-CANARY, ...), kube-proxy
# (KUBE-SERVICES, KUBE-SVC-*, ...) and the CNI plugins (CNI-*) made, in every table of iptables and
# ip6tables, and every rule that jumps into them. Chains of other owners are left alone.
clean_iptables() {
  local ipt table chains c
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle raw; do
      chains=$("$ipt" -w -t "$table" -S 2>/dev/null | awk '/^-N (KUBE-|CNI-)/ {print $2}') || continue
      [ -n "$chains" ] || continue
      # Rules in any chain that jump to one of ours.
      local rules
      rules=$("$ipt" -w -t "$table" -S 2>/dev/null | grep -E -- '-j (KUBE-|CNI-)' | grep -v -E '^-A (KUBE-|CNI-)' | sed 's/^-A /-D /' || true)
      while read -r rule; do
        [ -n "$rule" ] && eval "$ipt -w -t $table $rule" 2>/dev/null || true
      done <<<"$rules"
      for c in $chains; do "$ipt" -w -t "$table" -F "$c" 2>/dev/null || true; done
      for c in $chains; do "$ipt" -w -t "$table" -X "$c" 2>/dev/null || true; done
    done
  done
}

status() {
  local c
  for c in containerd coredns kubelet kube-proxy local-path-provisioner; do
    if pid_alive "$c"; then echo "$c: running (pid $(cat "$node/pids/$c"))"; else echo "$c: stopped"; fi
  done
  if pid_alive containerd; then
    echo "containers: $(ctr_ containers ls -q 2>/dev/null | wc -l)"
    echo "images: $(ctr_ images ls -q 2>/dev/null | grep -vc '^sha256:')"
  fi
  echo "network namespaces: $(ls /var/run/netns 2>/dev/null | grep -c '^cni-' || true)"
  echo "mounts under $node: $(awk -v d="$node/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l)"
  echo "iptables chains (KUBE-*, CNI-*): $( (iptables -w -S -t filter; iptables -w -S -t nat; ip6tables -w -S -t filter; ip6tables -w -S -t nat) 2>/dev/null | grep -cE '^-N (KUBE-|CNI-)' || true)"
  ip link show "$BRIDGE" >/dev/null 2>&1 && echo "bridge: $BRIDGE ($GATEWAY)"
  [ -f "$node/cgroup-root" ] && echo "cgroups under: $(cat "$node/cgroup-root")"
  return 0
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  import) mkdir -p "$node"; import_images ;;
  *) echo "usage: $0 up|down|status|import <cluster-dir>" >&2; exit 2 ;;
esac
