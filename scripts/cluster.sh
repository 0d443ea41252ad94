#!/usr/bin/env bash
# A real single-node Kubernetes (v1.20.2: API server, controller-manager, scheduler, kubelet) on
# 127.0.0.1 for the tests, built from Debian bookworm's own `kubernetes` source package with
# Debian's Go 1.19, run on Debian's etcd, containerd and runc. Facts and gotchas behind every
# step: the project's notes "A real Kubernetes on these machines, from Debian's packages alone".
#
# Usage: scripts/cluster.sh build
#        scripts/cluster.sh up DIR
#        scripts/cluster.sh down DIR
#
#   build     scripts/cluster-build.sh, the build half: downloads the Debian packages (a
#             private apt setup, nothing installed) and builds the binaries and the pause image
#             into $CODEBUILDER_K8S_CACHE/SOURCE-VERSION (default
#             /var/cache/codebuilder-k8s/1.20.5+really1.20.2-1.1+deb12u1), Go cache included.
#             A second build is a no-op. This file is the run half.
#   up DIR    builds if needed, then starts etcd, the control plane, a private containerd, the
#             kubelet and a registry, all state under DIR (empty or new). Waits for a Ready
#             node and the default ServiceAccount. Writes DIR/admin.kubeconfig (system:masters)
#             and DIR/env:
#               KUBECONFIG=DIR/admin.kubeconfig
#               CODEBUILDER_TEST_REGISTRY=127.0.0.1:PORT   (plain HTTP; the node pulls from it)
#               CODEBUILDER_TEST_CONTAINERD=DIR/containerd/containerd.sock (the node's
#                 containerd: images nobody can pull are imported there, namespace k8s.io)
#             Logs in DIR/logs. On failure it stops what it started and names the component.
#   down DIR  stops everything up started (by recorded PID), unmounts what is mounted under
#             DIR, removes its cgroups and its pods' logs in /var/log/pods and
#             /var/log/containers. Idempotent; safe after a failed up. DIR itself is kept.
#
# Ports: a block of 1000 on 127.0.0.1 from CODEBUILDER_CLUSTER_PORT_BASE; without it, the first
# free block of 26000, 27000, ..., 31000 (claimed under the cache dir, so parallel clusters do
# not clash). In the block: etcd +379/+380/+381, apiserver +443, controller-manager +257,
# scheduler +259, kubelet +250 (healthz +248), containerd streaming +10, registry +500,
# NodePort range +600..+699 (allocated only: there is no kube-proxy).
#
# What runs here: hostNetwork pods only (no pod network: every packet stays on 127.0.0.0/8),
# probes with `host: 127.0.0.1`, `strategy: Recreate` for a fixed port, no cluster DNS, no
# kube-proxy, no storage provisioner. Needs root and cgroup v1 (hybrid); cgroup v2-only hosts
# are untested. Host state it shares with other kubelets: /var/lib/kubelet/device-plugins.
set -euo pipefail
export PATH="$PATH:/usr/local/bin:/usr/local/sbin:/usr/sbin:/sbin"
export LC_ALL=C
. "$(dirname "$0")/cluster-common.sh"

# --- processes, recorded by PID and start time ---------------------------------------------------

# The start time (field 22 of /proc/PID/stat) tells a recorded process from a later one that got
# the same PID. Zombies count as gone.
proc_start() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  [ "$1" != Z ] || return 1
  echo "${20}"
}

record() { # NAME PID
  local st
  st=$(proc_start "$2") || st=gone
  echo "$2 $st" >"$D/pids/$1"
}

recorded_alive() { # PIDFILE
  local pid st
  [ -f "$1" ] && read -r pid st <"$1" || return 1
  [ "$(proc_start "$pid" 2>/dev/null)" = "$st" ]
}

alive() { recorded_alive "$D/pids/$1"; }

# Starts NAME in its own session (a terminal's Ctrl-C does not reach it; `down` stops it).
start() { # NAME COMMAND...
  local name=$1
  shift
  setsid "$@" >>"$D/logs/$name.log" 2>&1 </dev/null &
  record "$name" "$!"
}

stop() { # NAME [SECONDS before SIGKILL]
  local f=$D/pids/$1 grace=${2:-10} pid st i
  [ -f "$f" ] || return 0
  read -r pid st <"$f" || true
  if recorded_alive "$f"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      recorded_alive "$f" || break
      sleep 0.1
    done
    if recorded_alive "$f"; then
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        recorded_alive "$f" || break
        sleep 0.1
      done
    fi
  fi
  recorded_alive "$f" || rm -f "$f"
}

# --- layout of DIR and the port block ----------------------------------------------------------

set_dir() {
  D=$(realpath -m -- "$1")
  [[ "$D" =~ ^/[A-Za-z0-9._+/-]+$ ]] ||
    die "cluster dir '$1' must be a path of letters, digits and ._+-/ only"
  # Unix sockets (containerd, kubelet plugins) live under DIR: keep room in the 108-byte limit.
  [ ${#D} -le 64 ] || die "cluster dir '$D' is longer than 64 characters: choose a shorter path"
  [ "$D" != / ] || die "cluster dir must not be /"
  CG=codebuilder-k8s-$(printf '%s' "$D" | sha256sum | cut -c1-12)
  SOCK=$D/containerd/containerd.sock
}

set_ports() { # BASE
  BASE=$1
  P_STREAM=$((BASE + 10))
  P_KUBELET_HEALTHZ=$((BASE + 248))
  P_KUBELET=$((BASE + 250))
  P_CM=$((BASE + 257))
  P_SCHED=$((BASE + 259))
  P_ETCD=$((BASE + 379))
  P_ETCD_PEER=$((BASE + 380))
  P_ETCD_METRICS=$((BASE + 381))
  P_API=$((BASE + 443))
  P_REGISTRY=$((BASE + 500))
  PORTS=("$P_STREAM" "$P_KUBELET_HEALTHZ" "$P_KUBELET" "$P_CM" "$P_SCHED" "$P_ETCD" "$P_ETCD_PEER"
    "$P_ETCD_METRICS" "$P_API" "$P_REGISTRY")
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ports_free() {
  local p
  for p in "${PORTS[@]}"; do
    if listening "$p"; then
      BUSY_PORT=$p
      return 1
    fi
  done
}

cluster_alive() { # DIR: is any process recorded under it running?
  local f
  for f in "$1"/pids/*; do
    [ -f "$f" ] && recorded_alive "$f" && return 0
  done
  return 1
}

# A claim is a symlink CACHE_ROOT/ports/BASE -> DIR (created atomically); a claim whose cluster
# has no live process is stale and taken over.
claim_base() { # BASE
  local c=$CACHE_ROOT/ports/$1 owner
  mkdir -p "$CACHE_ROOT/ports"
  if ! ln -sT "$D" "$c" 2>/dev/null; then
    owner=$(readlink "$c" || true)
    if [ "$owner" != "$D" ]; then
      if [ -n "$owner" ] && cluster_alive "$owner"; then
        CLAIM_OWNER=$owner
        return 1
      fi
      rm -f "$c"
      ln -sT "$D" "$c" 2>/dev/null || return 1
    fi
  fi
  set_ports "$1"
  if ! ports_free; then
    rm -f "$c"
    CLAIM_OWNER="another program (port $BUSY_PORT is in use)"
    return 1
  fi
}

choose_ports() {
  local b
  if [ -n "${CODEBUILDER_CLUSTER_PORT_BASE:-}" ]; then
    b=$CODEBUILDER_CLUSTER_PORT_BASE
    [[ "$b" =~ ^[1-9][0-9]*$ ]] && [ "$b" -ge 1024 ] && [ "$b" -le 64000 ] ||
      die "CODEBUILDER_CLUSTER_PORT_BASE='$b' is not a port number between 1024 and 64000"
    claim_base "$b" ||
      die "ports $b..$((b + 999)) are taken by $CLAIM_OWNER: set CODEBUILDER_CLUSTER_PORT_BASE to another block"
  else
    for b in 26000 27000 28000 29000 30000 31000; do
      claim_base "$b" && break
      b=
    done
    [ -n "$b" ] ||
      die "no free port block among 26000..31999 (last: $CLAIM_OWNER): stop a cluster or set CODEBUILDER_CLUSTER_PORT_BASE"
  fi
  echo "$BASE" >"$D/port-base"
}

release_ports() {
  local b
  b=$(cat "$D/port-base" 2>/dev/null) || return 0
  [ "$(readlink "$CACHE_ROOT/ports/$b" 2>/dev/null)" != "$D" ] || rm -f "$CACHE_ROOT/ports/$b"
}

cgroup_mounts() { # TYPE...: mount points of cgroup hierarchies of these fs types
  awk -v types=" $* " '{ for (i = 7; $i != "-"; i++); if (index(types, " " $(i+1) " ")) print $5 }' /proc/self/mountinfo
}

# --- PKI and kubeconfigs -----------------------------------------------------------------------

cert() { # NAME SUBJECT EXTENSIONS
  local pki=$D/pki
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$1.key" -subj "$2" -out "$pki/$1.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "$3" >"$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 3650 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
  rm -f "$pki/$1.csr" "$pki/$1.ext"
}

make_pki() {
  local pki=$D/pki
  mkdir -p "$pki" && chmod 700 "$pki"
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 \
    -subj "/CN=codebuilder-test-ca-$CG" 2>/dev/null
  cert apiserver /CN=kube-apiserver "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert kubelet /CN=localhost "extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
  cert admin "/O=system:masters/CN=codebuilder-test-admin" extendedKeyUsage=clientAuth
  cert controller-manager /CN=system:kube-controller-manager extendedKeyUsage=clientAuth
  cert scheduler /CN=system:kube-scheduler extendedKeyUsage=clientAuth
  cert node "/O=system:nodes/CN=system:node:localhost" extendedKeyUsage=clientAuth
  # The API server's client for `kubectl logs/exec/port-forward` through the kubelet.
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" extendedKeyUsage=clientAuth
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

kubeconfig() { # FILE CERT-NAME
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: codebuilder-test
  cluster:
    server: https://127.0.0.1:$P_API
    certificate-authority-data: $(base64 -w0 "$D/pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$D/pki/$2.crt")
    client-key-data: $(base64 -w0 "$D/pki/$2.key")
contexts:
- name: codebuilder-test
  context:
    cluster: codebuilder-test
    user: $2
current-context: codebuilder-test
EOF
  chmod 600 "$1"
}

k() { "$KUBECTL" --kubeconfig "$D/admin.kubeconfig" --request-timeout=10s "$@"; }

# --- up ------------------------------------------------------------------------------------------

# Names the failing component with the end of its log and exits (up_aborted then cleans up).
up_failed() { # COMPONENT MESSAGE
  echo "error: $1 $2; last lines of $D/logs/$1.log:" >&2
  tail -n 25 "$D/logs/$1.log" >&2 2>/dev/null || true
  DIED=1
  exit 1
}

# The EXIT trap of up: stops whatever up had started.
up_aborted() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "${DIED:-}" ] || echo "error: cluster.sh up failed (exit status $rc)" >&2
  say "stopping what was started" >&2
  down_all >&2 || true
  exit 1
}

wait_until() { # COMPONENT SECONDS WHAT COMMAND...
  local c=$1 secs=$2 what=$3 deadline
  shift 3
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    alive "$c" || up_failed "$c" "exited during startup"
    [ "$SECONDS" -lt "$deadline" ] || up_failed "$c" "did not $what within $secs s"
    sleep 0.2
  done
}

write_configs() {
  mkdir -p "$D/etcd" "$D/containerd/certs.d/127.0.0.1:$P_REGISTRY" "$D/cni/net.d" \
    "$D/kubelet/root" "$D/kubelet/pki" "$D/kubelet/volume-plugins" "$D/registry/data" \
    "$D/controller-manager" "$D/scheduler"
  chmod 700 "$D/etcd"
  kubeconfig "$D/admin.kubeconfig" admin
  kubeconfig "$D/controller-manager/kubeconfig" controller-manager
  kubeconfig "$D/scheduler/kubeconfig" scheduler
  kubeconfig "$D/kubelet/kubeconfig" node

  cat >"$D/containerd/config.toml" <<EOF
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$D/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "$P_STREAM"
  enable_tls_streaming = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$W/x/cni/usr/lib/cni"
    conf_dir = "$D/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$D/containerd/certs.d"
EOF
  # No pod network: pods that are not hostNetwork get a loopback interface only.
  echo '{"cniVersion": "0.4.0", "name": "loopback-only", "plugins": [{"type": "loopback"}]}' \
    >"$D/cni/net.d/10-loopback.conflist"
  cat >"$D/containerd/certs.d/127.0.0.1:$P_REGISTRY/hosts.toml" <<EOF
server = "http://127.0.0.1:$P_REGISTRY"
[host."http://127.0.0.1:$P_REGISTRY"]
  capabilities = ["pull", "resolve"]
EOF

  cat >"$D/registry/config.yml" <<EOF
version: 0.1
log:
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $D/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$P_REGISTRY
EOF

  cat >"$D/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $P_KUBELET
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $P_KUBELET_HEALTHZ
tlsCertFile: $D/pki/kubelet.crt
tlsPrivateKeyFile: $D/pki/kubelet.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $D/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: /$CG
makeIPTablesUtilChains: false
failSwapOn: false
protectKernelDefaults: false
volumePluginDir: $D/kubelet/volume-plugins
evictionHard:
  memory.available: 200Mi
  nodefs.available: 2%
  imagefs.available: 2%
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
}

make_cgroups() {
  local m
  for m in $(cgroup_mounts cgroup); do
    mkdir -p "$m/$CG"
    if [ -f "$m/cpuset.cpus" ]; then
      cat "$m/cpuset.cpus" >"$m/$CG/cpuset.cpus"
      cat "$m/cpuset.mems" >"$m/$CG/cpuset.mems"
    fi
  done
  # A cgroup v2-only host (untested with this 1.20 kubelet): the kubelet needs the root to exist.
  if [ -z "$(cgroup_mounts cgroup)" ]; then
    for m in $(cgroup_mounts cgroup2); do mkdir -p "$m/$CG"; done
  fi
}

up() {
  [ ! -e "$D" ] || [ -z "$(ls -A "$D")" ] ||
    die "cluster dir $D is not empty: use a new directory (to stop a cluster there: cluster.sh down $D)"
  bash "$SCRIPTS/cluster-build.sh"
  mkdir -p "$D/pids" "$D/logs"
  ensure_host_tools
  record up $$
  trap up_aborted EXIT
  trap 'echo "error: cluster.sh up was interrupted" >&2; DIED=1; exit 130' INT TERM
  choose_ports
  local started=$SECONDS
  make_pki
  write_configs
  make_cgroups

  local etcd_url=http://127.0.0.1:$P_ETCD
  start etcd "$W/x/etcd/usr/bin/etcd" --name codebuilder-test --data-dir "$D/etcd" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$P_ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$P_ETCD_PEER" \
    --initial-cluster "codebuilder-test=http://127.0.0.1:$P_ETCD_PEER" \
    --listen-metrics-urls "http://127.0.0.1:$P_ETCD_METRICS"
  start containerd containerd --config "$D/containerd/config.toml"
  start registry docker-registry serve "$D/registry/config.yml"

  wait_until etcd 30 "answer" env ETCDCTL_API=3 "$W/x/etcd/usr/bin/etcdctl" --endpoints "$etcd_url" \
    --command-timeout=2s endpoint health
  local pki=$D/pki
  start kube-apiserver "$W/bin/kube-apiserver" --etcd-servers="$etcd_url" --insecure-port=0 \
    --bind-address=127.0.0.1 --secure-port="$P_API" --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none --service-cluster-ip-range=10.96.0.0/16 \
    --service-node-port-range="$((BASE + 600))-$((BASE + 699))" \
    --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" --kubelet-preferred-address-types=Hostname \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true

  wait_until containerd 30 "answer" ctr --address "$SOCK" version
  ctr --address "$SOCK" -n k8s.io images import "$W/pause.tar" >>"$D/logs/containerd.log" 2>&1 ||
    up_failed containerd "could not import $PAUSE_IMAGE from $W/pause.tar"
  wait_until registry 30 "listen on 127.0.0.1:$P_REGISTRY" listening "$P_REGISTRY"
  wait_until kube-apiserver 60 "become ready" k get --raw /readyz

  local c
  for c in controller-manager scheduler; do
    local args=(--kubeconfig "$D/$c/kubeconfig" --authentication-kubeconfig "$D/$c/kubeconfig"
      --authorization-kubeconfig "$D/$c/kubeconfig" --bind-address=127.0.0.1 --port=0
      --leader-elect=false --cert-dir "$D/$c")
    if [ "$c" = controller-manager ]; then
      start kube-controller-manager "$W/bin/kube-controller-manager" "${args[@]}" --secure-port="$P_CM" \
        --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
        --use-service-account-credentials=true --cluster-signing-cert-file="$pki/ca.crt" \
        --cluster-signing-key-file="$pki/ca.key" --service-cluster-ip-range=10.96.0.0/16
    else
      start kube-scheduler "$W/bin/kube-scheduler" "${args[@]}" --secure-port="$P_SCHED"
    fi
  done
  start kubelet "$W/bin/kubelet" --config "$D/kubelet/config.yaml" --kubeconfig "$D/kubelet/kubeconfig" \
    --container-runtime=remote --container-runtime-endpoint="unix://$SOCK" \
    --root-dir="$D/kubelet/root" --cert-dir="$D/kubelet/pki" --hostname-override=localhost --v=2

  wait_until kube-scheduler 30 "listen on 127.0.0.1:$P_SCHED" listening "$P_SCHED"
  wait_until kube-controller-manager 30 "listen on 127.0.0.1:$P_CM" listening "$P_CM"
  wait_until kubelet 90 "register a Ready node" node_ready
  wait_until kube-controller-manager 60 "create the default ServiceAccount" \
    k -n default get serviceaccount default

  printf '%s\n' "KUBECONFIG=$D/admin.kubeconfig" "CODEBUILDER_TEST_REGISTRY=127.0.0.1:$P_REGISTRY" \
    "CODEBUILDER_TEST_CONTAINERD=$SOCK" >"$D/env"
  rm -f "$D/pids/up"
  trap - EXIT INT TERM
  say "Kubernetes $K8S_GIT_VERSION up in $((SECONDS - started)) s: ports $BASE..$((BASE + 999)), logs in $D/logs"
  say "  $(paste -sd' ' "$D/env")"
}

node_ready() {
  [ "$(k get node localhost -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# --- down --------------------------------------------------------------------------------------

# Every pod UID this cluster's kubelet ran: listed by the API, named in its log (--v=2), or
# left as a folder in its root dir. Kept in DIR/pod-uids across runs of down.
note_pods() {
  {
    if alive kube-apiserver; then
      k get pods -A -o 'jsonpath={range .items[*]}{.metadata.uid}{"\n"}{end}' 2>/dev/null || true
    fi
    grep -h 'SyncLoop (ADD, "api")' "$D/logs/kubelet.log" 2>/dev/null |
      grep -oE '\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)' | tr -d '()' || true
    ls "$D/kubelet/root/pods" 2>/dev/null || true
    cat "$D/pod-uids" 2>/dev/null || true
  } | grep -E '^[0-9a-f-]{36}$' | sort -u >"$D/pod-uids.new" || true
  mv "$D/pod-uids.new" "$D/pod-uids"
}

delete_workloads() {
  alive kube-apiserver && alive kubelet || return 0
  local ns i
  k delete deployments,statefulsets,daemonsets,replicasets,jobs,cronjobs,replicationcontrollers \
    --all -A --wait=false >/dev/null 2>&1 || true
  k delete pods --all -A --grace-period=1 --wait=false >/dev/null 2>&1 || true
  for ns in $(k get namespaces -o name 2>/dev/null); do
    case "$ns" in
      namespace/default | namespace/kube-system | namespace/kube-public | namespace/kube-node-lease) ;;
      *) k delete "$ns" --wait=false >/dev/null 2>&1 || true ;;
    esac
  done
  for ((i = 0; i < 60; i++)); do
    [ -n "$(k get pods -A -o name 2>/dev/null)" ] || break
    sleep 0.5
  done
}

stop_containers() {
  alive containerd || return 0
  local ns id
  for ns in $(ctr --address "$SOCK" namespaces ls -q 2>/dev/null); do
    for id in $(ctr --address "$SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr --address "$SOCK" -n "$ns" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
      ctr --address "$SOCK" -n "$ns" tasks delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr --address "$SOCK" -n "$ns" containers ls -q 2>/dev/null); do
      ctr --address "$SOCK" -n "$ns" containers delete "$id" >/dev/null 2>&1 || true
    done
  done
}

# containerd's shims outlive it: found by this cluster's socket path in their command line
# (`-address SOCK`). The pattern is a regex, so that grep does not find its own arguments.
kill_shims() {
  local f pid
  for f in $(grep -l -a -z -e "^$(sed 's/[.+]/\\&/g' <<<"$SOCK")\$" /proc/[0-9]*/cmdline 2>/dev/null); do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    if tr '\0' ' ' 2>/dev/null <"$f" | grep -qF -- "-address $SOCK "; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

# Whatever still runs in this cluster's cgroups (containers of a containerd that died early).
kill_cgroup_procs() {
  local m
  for m in $(cgroup_mounts cgroup cgroup2); do
    [ -d "$m/$CG" ] || continue
    find "$m/$CG" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | xargs -r kill -KILL 2>/dev/null || true
  done
}

mounts_under_dir() {
  awk -v d="$D" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
    awk '{ print gsub("/", "/"), $0 }' | sort -rn | cut -d' ' -f2-
}

unmount_all() {
  local pass m
  for pass in 1 2 3; do
    [ -n "$(mounts_under_dir)" ] || return 0
    for m in $(mounts_under_dir); do
      if [ "$pass" -lt 3 ]; then
        umount "$m" 2>/dev/null || true
      else
        umount -l "$m" 2>/dev/null || true
      fi
    done
  done
}

remove_cgroups() {
  local m i
  for ((i = 0; i < 30; i++)); do
    for m in $(cgroup_mounts cgroup cgroup2); do
      [ -d "$m/$CG" ] && find "$m/$CG" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    [ -z "$(cgroups_left)" ] && return 0
    sleep 0.2
  done
}

cgroups_left() {
  local m
  for m in $(cgroup_mounts cgroup cgroup2); do
    [ ! -d "$m/$CG" ] || echo "$m/$CG"
  done
}

remove_pod_logs() {
  local uid d l
  [ -f "$D/pod-uids" ] || return 0
  while read -r uid; do
    for d in /var/log/pods/*_"$uid"; do
      [ -d "$d" ] || continue
      for l in /var/log/containers/*.log; do
        [ -L "$l" ] || continue
        case "$(readlink "$l")" in "$d"/*) rm -f "$l" ;; esac
      done
      rm -rf "$d"
    done
  done <"$D/pod-uids"
}

down_all() {
  [ -d "$D" ] || return 0
  mkdir -p "$D/pids"
  note_pods
  delete_workloads
  note_pods
  stop kubelet 10
  stop_containers
  stop containerd 10
  kill_shims
  kill_cgroup_procs
  local c
  for c in registry kube-scheduler kube-controller-manager kube-apiserver etcd; do
    stop "$c" 10
  done
  unmount_all
  remove_cgroups || true
  remove_pod_logs
  local left=()
  for c in "$D"/pids/*; do
    [ -f "$c" ] && [ "$(basename "$c")" != up ] && recorded_alive "$c" && left+=("$(basename "$c")")
  done
  [ ${#left[@]} -eq 0 ] || die "still running after down: ${left[*]} (PIDs in $D/pids)"
  [ -z "$(mounts_under_dir)" ] || die "still mounted under $D: $(mounts_under_dir | paste -sd' ')"
  [ -z "$(cgroups_left)" ] || die "cgroups still in use: $(cgroups_left | paste -sd' ')"
  release_ports
}

case "${1:-}" in
  build)
    [ $# -eq 1 ] || die "usage: cluster.sh build"
    bash "$SCRIPTS/cluster-build.sh"
    ;;
  up)
    [ $# -eq 2 ] || die "usage: cluster.sh up DIR"
    set_dir "$2"
    up
    ;;
  down)
    [ $# -eq 2 ] || die "usage: cluster.sh down DIR"
    set_dir "$2"
    started=$SECONDS
    down_all
    say "down in $((SECONDS - started)) s"
    ;;
  *) die "usage: cluster.sh build | up DIR | down DIR" ;;
esac
