# Sourced by scripts/cluster.sh and scripts/cluster-build.sh: the Kubernetes version both
# halves agree on, where its build lives, and how they speak.
K8S_SOURCE_VERSION=1.20.5+really1.20.2-1.1+deb12u1
K8S_GIT_VERSION=v1.20.2
K8S_GIT_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56
PAUSE_IMAGE=k8s.gcr.io/pause:3.4
CACHE_ROOT=${CODEBUILDER_K8S_CACHE:-/var/cache/codebuilder-k8s}
W=$CACHE_ROOT/$K8S_SOURCE_VERSION
KUBECTL=/usr/local/bin/kubectl
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
SCRIPTS=$(cd "$(dirname "$0")" && pwd)

say() { echo "cluster: $*"; }
die() {
  echo "error: $*" >&2
  DIED=1
  exit 1
}

# Installs the host packages through scripts/deps.sh when a tool is missing.
ensure_host_tools() {
  local t
  for t in dpkg-source gcc openssl containerd containerd-shim-runc-v2 runc ctr docker-registry \
    "$KUBECTL"; do
    if ! command -v "$t" >/dev/null 2>&1; then
      bash "$SCRIPTS/deps.sh"
      command -v "$t" >/dev/null 2>&1 || die "$t is still missing after scripts/deps.sh"
      return
    fi
  done
  [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -n "$(find /usr/lib -name libc.a -print -quit)" ] ||
    bash "$SCRIPTS/deps.sh"
}

[ "$(id -u)" -eq 0 ] || die "cluster.sh must run as root (kubelet, containerd, mounts, cgroups)"
