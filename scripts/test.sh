#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): installs what is missing, starts the Docker
# engine, checks formatting and lints, builds, starts a Kubernetes cluster, and runs every test
# against a real sshd, git, docker, registry, helm and Kubernetes. Run as root (the tests run
# sshd and the cluster's kubelet).
#
# Without KUBECONFIG it starts its own single-node Kubernetes on 127.0.0.1 with
# scripts/cluster.sh (built once into /var/cache/codebuilder-k8s, state in a fresh
# /var/tmp/codebuilder-cluster.*, stopped on exit) and gives the tests KUBECONFIG and
# CODEBUILDER_TEST_REGISTRY (a registry its node pulls from). With KUBECONFIG set, that cluster
# is used as is, and CODEBUILDER_TEST_REGISTRY must name a registry its nodes pull from.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/local/bin:/usr/sbin:/sbin"

die() {
  echo "error: $*" >&2
  exit 1
}
if [ -n "${KUBECONFIG:-}" ] && [ -z "${CODEBUILDER_TEST_REGISTRY:-}" ]; then
  die "KUBECONFIG is set but CODEBUILDER_TEST_REGISTRY is not: set it to a registry (HOST:PORT) the cluster's nodes pull from, or unset KUBECONFIG to let the tests start their own cluster"
fi

bash scripts/deps.sh
bash scripts/services.sh
# The container tests build the image FROM a debootstrapped base (no image can be pulled).
bash scripts/base-image.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests run the built binaries (debug ones; the image takes the release ones):
# build them all first.
cargo build --workspace --bins
cargo build --release --workspace --bins

if [ -z "${KUBECONFIG:-}" ]; then
  cluster_dir=$(mktemp -d /var/tmp/codebuilder-cluster.XXXXXX)
  # The cluster's processes run in their own sessions: Ctrl-C reaches only this script, whose
  # EXIT trap stops them. The dir (logs) is kept when something failed.
  stop_cluster() {
    local rc=$?
    trap - EXIT INT TERM
    if bash scripts/cluster.sh down "$cluster_dir" && [ "$rc" -eq 0 ]; then
      rm -rf "$cluster_dir"
    else
      echo "test: the cluster's state and logs are kept in $cluster_dir" >&2
    fi
    exit "$rc"
  }
  trap stop_cluster EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  started=$SECONDS
  bash scripts/cluster.sh up "$cluster_dir" ||
    die "the test cluster did not start (the reason is above; logs in $cluster_dir/logs)"
  echo "test: Kubernetes cluster up in $((SECONDS - started)) s"
  while IFS='=' read -r name value; do
    case "$name" in
      KUBECONFIG | CODEBUILDER_TEST_REGISTRY | CODEBUILDER_TEST_CONTAINERD) export "$name=$value" ;;
      *) die "unexpected line '$name=$value' in $cluster_dir/env" ;;
    esac
  done <"$cluster_dir/env"
fi
tests=0
cargo test --workspace --no-fail-fast || tests=$?

# A test ends everything it starts. What is left of one (a process that names a test's folder
# or the harness's binaries, a git daemon, a container or cache volume codebuilder's builds
# name) fails the run, and is removed so that the machine is clean for the next.
left=$(
  pgrep -af '/tmp/codebuilder-test-|/run/codebuilder-tests/|git-daemon' | grep -v pgrep || true
  /usr/bin/docker ps --all --format 'container {{.Names}}' --filter name=codebuilder- || true
  /usr/bin/docker volume ls --format 'volume {{.Name}}' --filter name=codebuilder-cache- || true
)
if [ -n "$left" ]; then
  echo "error: the tests left these behind (each test must end what it starts):" >&2
  printf '%s\n' "$left" >&2
  pkill -KILL -f '/tmp/codebuilder-test-|/run/codebuilder-tests/|git-daemon' || true
  /usr/bin/docker ps --all --quiet --filter name=codebuilder- | xargs -r /usr/bin/docker rm --force >/dev/null || true
  /usr/bin/docker volume ls --quiet --filter name=codebuilder-cache- | xargs -r /usr/bin/docker volume rm --force >/dev/null || true
  [ "$tests" -ne 0 ] || tests=1
fi
exit "$tests"
