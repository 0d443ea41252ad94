#!/usr/bin/env bash
# Installs what is missing and starts codebuilder locally: sshd on 127.0.0.1:2222, a registry
# on 127.0.0.1:5000, state in ./.codebuilder (or $CODEBUILDER_HOME). Runs in the foreground;
# Ctrl-C stops it. Run as root (sshd switches to the git user).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/local/bin:/usr/sbin:/sbin"

bash scripts/deps.sh
bash scripts/services.sh
cargo build --release --workspace --bins
# sshd only runs an AuthorizedKeysCommand from a root-owned path nobody else can write.
BIN=/usr/local/lib/codebuilder
install -d -m 0755 "$BIN"
install -m 0755 target/release/codebuilder-keys target/release/codebuilder-receive \
  target/release/codebuilder-build target/release/codebuilder-sshd "$BIN/"

export CODEBUILDER_HOME="${CODEBUILDER_HOME:-$PWD/.codebuilder}"
export CODEBUILDER_REGISTRY="${CODEBUILDER_REGISTRY:-127.0.0.1:5000}"
# No docker0 bridge on these machines: builds use the host's network.
export CODEBUILDER_BUILD_NETWORK="${CODEBUILDER_BUILD_NETWORK:-host}"
if [ -z "${CODEBUILDER_DEPLOY:-}" ] && [ -z "${KUBECONFIG:-}" ] && [ ! -f "$HOME/.kube/config" ]; then
  echo "codebuilder: no KUBECONFIG: images are built and pushed, not deployed (CODEBUILDER_DEPLOY=none)"
  export CODEBUILDER_DEPLOY=none
fi
mkdir -p "$CODEBUILDER_HOME"

registry_port="${CODEBUILDER_REGISTRY##*:}"
if ! (exec 3<>"/dev/tcp/127.0.0.1/$registry_port") 2>/dev/null; then
  mkdir -p "$CODEBUILDER_HOME/registry"
  cat >"$CODEBUILDER_HOME/registry/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $CODEBUILDER_HOME/registry/data
  # Image retention (CODEBUILDER_KEEP_IMAGES) deletes old manifests.
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$registry_port
YAML
  nohup docker-registry serve "$CODEBUILDER_HOME/registry/config.yml" \
    >"$CODEBUILDER_HOME/registry/registry.log" 2>&1 &
  echo "codebuilder: registry on 127.0.0.1:$registry_port (log $CODEBUILDER_HOME/registry/registry.log)"
fi

cat <<EOT
codebuilder: add your key, then push:
  $BIN/codebuilder-keys --home $CODEBUILDER_HOME add --admin \$USER < ~/.ssh/id_ed25519.pub
  git remote add codebuilder ssh://git@127.0.0.1:2222/myapp
  git push codebuilder main
EOT
exec "$BIN/codebuilder-sshd" --home "$CODEBUILDER_HOME" --listen 127.0.0.1:2222
