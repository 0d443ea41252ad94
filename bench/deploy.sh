#!/usr/bin/env bash
# Benchmarks push to "live" on a real cluster: a one-line change pushed through codebuilder
# (build from cache, image push, helm upgrade --wait=legacy) until the pod serves the new content,
# against `helm upgrade --install --wait=legacy` by hand of an image already in the registry, with the
# same default chart and operator values, until the pod serves it.
#
# The cluster is the one KUBECONFIG + CODEBUILDER_TEST_REGISTRY name (codebuilder.yaml applied);
# without them this script starts its own on loopback (scripts/cluster.sh up), applies
# codebuilder.yaml's RBAC, and stops it at the end. Pods use the
# host's network on a port of their own and a Recreate strategy (CODEBUILDER_DEPLOY_VALUES), as
# in tests/cluster.rs.
#
# Run as root: bench/deploy.sh (about 3 minutes with a built cluster; BENCH_SKIP_BUILD=1 skips
# cargo build). ROUNDS tunes it. Prints a markdown table on stdout.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-5}
# The docker CLI both sides use: Debian's, with BuildKit built in (the one the image ships).
DOCKER=${DOCKER:-/usr/bin/docker}

bench_init
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_SSH_COMMAND="$SSH_CMD"
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com

if [ -z "${KUBECONFIG:-}" ]; then
  cluster_dir="$WORK/cluster"
  say "starting a cluster (scripts/cluster.sh up $cluster_dir)"
  bash scripts/cluster.sh up "$cluster_dir" >&2
  stop_cluster() { bash scripts/cluster.sh down "$cluster_dir" >&2 || true; bench_cleanup; }
  trap stop_cluster EXIT
  # shellcheck disable=SC1091
  set -a && source "$cluster_dir/env" && set +a
  # codebuilder.yaml's RBAC (the ClusterRole codebuilder-app each deploy runs as), as the
  # tests apply it; its pod and registry proxy cannot run here.
  kubectl apply -f codebuilder.yaml >/dev/null
  kubectl -n codebuilder scale deployment/codebuilder --replicas=0 >/dev/null
  kubectl -n codebuilder delete daemonset/codebuilder-registry-proxy --ignore-not-found >/dev/null
fi
[ -n "${CODEBUILDER_TEST_REGISTRY:-}" ] || die "KUBECONFIG is set: set CODEBUILDER_TEST_REGISTRY too"
registry=$CODEBUILDER_TEST_REGISTRY

# The git user runs the hook: it needs its own copies of the kubeconfig and the values.
install -m 0644 "$KUBECONFIG" "$WORK/kubeconfig"
web_port=$(free_port)
manual_port=$(free_port)
values() { # PORT
  printf '{"hostNetwork": true, "port": %s, "strategy": {"type": "Recreate"}, "terminationGracePeriodSeconds": 2, "readinessProbe": {"tcpSocket": {"host": "127.0.0.1", "port": %s}, "periodSeconds": 1}}\n' "$1" "$1"
}
values "$web_port" >"$WORK/values.json"
values "$manual_port" >"$WORK/manual-values.json"
chmod 0644 "$WORK/values.json" "$WORK/manual-values.json"

home="$WORK/home"
install -d -m 0755 "$home"
start_codebuilder "$home" "KUBECONFIG=$WORK/kubeconfig" "CODEBUILDER_REGISTRY=$registry" \
  "CODEBUILDER_DEPLOY_VALUES=$WORK/values.json" "CODEBUILDER_BUILD_NETWORK=host" \
  "CODEBUILDER_DOCKER=$DOCKER"
"$BIN/codebuilder-keys" --home "$home" add bench "$WORK/client/id.pub" >/dev/null
app="bench-live-$$"
manual="bench-manual-$$"

# The app: busybox httpd serving www/index.html on $PORT.
repo="$WORK/repo"
mkdir -p "$repo/www"
cp /bin/busybox "$repo/busybox"
cat >"$repo/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
COPY www /www
CMD ["/bin/busybox", "sh", "-c", "exec /bin/busybox httpd -f -p \"$PORT\" -h /www"]
EOF
echo v0 >"$repo/www/index.html"
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" commit -qm v0
git -C "$repo" remote add cb "ssh://git@127.0.0.1:$PORT/$app"

# Serves BODY on PORT within 60 s.
await_body() { # PORT BODY
  local deadline=$((SECONDS + 60))
  until [ "$(curl -fsS "http://127.0.0.1:$1/" 2>/dev/null)" = "$2" ]; do
    [ $SECONDS -lt $deadline ] || die "127.0.0.1:$1 never served $2"
    sleep 0.05
  done
}

say "first push (not timed)"
git -C "$repo" push -q cb main 2>"$WORK/push.log" || { cat "$WORK/push.log" >&2; die "the first push failed"; }
await_body "$web_port" v0

# The manual side deploys two images already in the registry, alternately.
"$BIN/codebuilder-build" chart "$manual" "$WORK/chart" >/dev/null
for tag in a b; do
  echo "manual-$tag" >"$repo/www/index.html"
  "$DOCKER" build -q --network host -t "$registry/$manual:$tag" "$repo" >/dev/null
  "$DOCKER" push -q "$registry/$manual:$tag" >/dev/null
done
git -C "$repo" checkout -q -- www/index.html
manual_deploy() { # TAG
  helm upgrade --install "$manual" "$WORK/chart" --namespace "$manual" --create-namespace \
    --wait=legacy --timeout 120s --values "$WORK/manual-values.json" \
    --set-string "image.repository=$registry/$manual" --set-string "image.tag=$1" >/dev/null
}
manual_deploy a
await_body "$manual_port" manual-a

now() { echo "${EPOCHREALTIME/./}"; } # microseconds
codebuilder_ms=()
manual_ms=()
for round in $(seq 1 "$ROUNDS"); do
  echo "v$round" >"$repo/www/index.html"
  git -C "$repo" commit -qam "v$round"
  start=$(now)
  git -C "$repo" push -q cb main 2>"$WORK/push.log" || { cat "$WORK/push.log" >&2; die "push $round failed"; }
  await_body "$web_port" "v$round"
  codebuilder_ms+=($((($(now) - start) / 1000)))

  tag=$([ $((round % 2)) -eq 1 ] && echo b || echo a)
  start=$(now)
  manual_deploy "$tag"
  await_body "$manual_port" "manual-$tag"
  manual_ms+=($((($(now) - start) / 1000)))
  say "round $round: codebuilder ${codebuilder_ms[-1]} ms, helm by hand ${manual_ms[-1]} ms"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cb=$(median "${codebuilder_ms[@]}")
hand=$(median "${manual_ms[@]}")
helm uninstall "$app" -n "$app" --wait >/dev/null 2>&1 || true
helm uninstall "$manual" -n "$manual" --wait >/dev/null 2>&1 || true

echo "| push to live ($ROUNDS interleaved rounds, medians) | ms |"
echo "|---|---|"
echo "| codebuilder: one-line change pushed (build from cache, image push, helm upgrade --wait=legacy) | $cb |"
echo "| helm upgrade --install --wait=legacy by hand, image already in the registry | $hand |"
echo "| ratio | $(awk -v a="$cb" -v b="$hand" 'BEGIN {printf "%.2f", a / b}')x |"
