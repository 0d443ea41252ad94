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
  target/release/codebuilder-build target/release/codebuilder-ops target/release/codebuilder-sshd "$BIN/"

export CODEBUILDER_HOME="${CODEBUILDER_HOME:-$PWD/.codebuilder}"
export CODEBUILDER_REGISTRY="${CODEBUILDER_REGISTRY:-127.0.0.1:5000}"
# Debian's docker CLI (docker.io, from deps.sh, as in the image) has BuildKit built in; another
# `docker` earlier on PATH (a newer one without the buildx plugin) could not build.
export CODEBUILDER_DOCKER="${CODEBUILDER_DOCKER:-/usr/bin/docker}"
# Builds use the engine's default (bridge) network. Only an engine without one (dockerd
# --bridge=none, as on machines without iptables) makes them use the host's network, where a
# build's RUN reaches this host's loopback services: the registry's authentication below is
# what keeps them from pushing there.
if [ -z "${CODEBUILDER_BUILD_NETWORK:-}" ] && ! docker network inspect bridge >/dev/null 2>&1; then
  echo "codebuilder: the Docker engine has no bridge network: builds use the host's network (CODEBUILDER_BUILD_NETWORK=host)"
  export CODEBUILDER_BUILD_NETWORK=host
fi
if [ -z "${CODEBUILDER_DEPLOY:-}" ] && [ -z "${KUBECONFIG:-}" ] && [ ! -f "$HOME/.kube/config" ]; then
  echo "codebuilder: no KUBECONFIG: images are built and pushed, not deployed (CODEBUILDER_DEPLOY=none)"
  export CODEBUILDER_DEPLOY=none
fi
mkdir -p "$CODEBUILDER_HOME"

registry_port="${CODEBUILDER_REGISTRY##*:}"
if ! (exec 3<>"/dev/tcp/127.0.0.1/$registry_port") 2>/dev/null; then
  # Only codebuilder may write to the registry: htpasswd authentication, with a password made
  # once. Its credentials are a docker config folder only the ssh user (the build hook) can
  # read, handed to `docker push` alone (CODEBUILDER_REGISTRY_AUTH), never to a build.
  ssh_user="${CODEBUILDER_SSH_USER:-git}"
  push_config="$CODEBUILDER_HOME/registry-push"
  install -d -m 0700 "$CODEBUILDER_HOME/registry"
  if [ ! -s "$CODEBUILDER_HOME/registry/htpasswd" ] || [ ! -s "$push_config/config.json" ]; then
    password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    hash=$(python3 -W ignore -c 'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))' "$password")
    (umask 077 && printf 'codebuilder:%s\n' "$hash" >"$CODEBUILDER_HOME/registry/htpasswd")
    install -d -m 0700 -o "$ssh_user" -g "$ssh_user" "$push_config"
    (umask 077 && printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$CODEBUILDER_REGISTRY" \
      "$(printf 'codebuilder:%s' "$password" | base64 -w0)" >"$push_config/config.json")
    chown "$ssh_user:$ssh_user" "$push_config/config.json"
  fi
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
auth:
  htpasswd:
    realm: codebuilder
    path: $CODEBUILDER_HOME/registry/htpasswd
YAML
  nohup docker-registry serve "$CODEBUILDER_HOME/registry/config.yml" \
    >"$CODEBUILDER_HOME/registry/registry.log" 2>&1 &
  echo "codebuilder: registry on 127.0.0.1:$registry_port (log $CODEBUILDER_HOME/registry/registry.log)"
fi
# The credentials of the registry this home started, now or on an earlier run (it outlives
# Ctrl-C), unless the operator gave others.
if [ -z "${CODEBUILDER_REGISTRY_AUTH:-}" ] && [ -s "$CODEBUILDER_HOME/registry-push/config.json" ]; then
  export CODEBUILDER_REGISTRY_AUTH="$CODEBUILDER_HOME/registry-push"
fi

cat <<EOT
codebuilder: add your key, then push:
  $BIN/codebuilder-keys --home $CODEBUILDER_HOME add --admin \$USER < ~/.ssh/id_ed25519.pub
  git remote add codebuilder ssh://git@127.0.0.1:2222/myapp
  git push codebuilder main
EOT
exec "$BIN/codebuilder-sshd" --home "$CODEBUILDER_HOME" --listen 127.0.0.1:2222
