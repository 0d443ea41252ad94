#!/usr/bin/env bash
# Benchmarks the buildpack cache (issue 7): the second push of an unchanged app (an empty
# commit: same tree, new revision) with a warm cache, against the first push of that app with
# an empty cache. Both go through codebuilder's sshd, the builder container, a real registry
# and the test buildpack tests/fixtures/buildpacks/busybox-web, whose compile makes
# "dependencies" (DEPS_MB megabytes from /dev/urandom, hashed) unless its cache has them:
# the work a real buildpack saves by caching a download or a compiled dependency.
#
# Run as root: bench/buildpack-cache.sh  (a few minutes; BENCH_SKIP_BUILD=1 skips cargo build).
# RUNS (default 5) sets the number of apps, each pushed three times (first, unchanged with the
# cache emptied, unchanged with the warm cache); DEPS_MB (default 512) sets the work.
# Prints a markdown table on stdout (progress goes to stderr); exits non-zero only when
# something fails to run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-5}
DEPS_MB=${DEPS_MB:-512}
BUILDER_IMAGE=codebuilder-test/stack-build
RUN_IMAGE=codebuilder-test/stack-run

bench_init
bash scripts/services.sh >&2
for image in "$BUILDER_IMAGE" "$RUN_IMAGE"; do
  bash scripts/base-image.sh "$image" >&2
done
command -v docker-registry >/dev/null || die "docker-registry is missing: run scripts/deps.sh"
[ -x /bin/busybox ] || die "/bin/busybox is missing: run scripts/deps.sh"

start_registry

# The images the pushes leave in the engine go too (the registry's storage is below $WORK).
remove_images() {
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$REGISTRY/" |
    xargs -r docker rmi --force >/dev/null 2>&1 || true
}
trap 'remove_images; bench_cleanup' EXIT

# The buildpack, as a plain directory the git user can read.
BUILDPACK=$WORK/buildpacks/busybox-web
install -d -m 0755 "$WORK/buildpacks"
cp -r tests/fixtures/buildpacks/busybox-web "$BUILDPACK"
chmod -R a+rX "$BUILDPACK"
chmod 0755 "$BUILDPACK"/bin/*

# codebuilder's sshd for a home of its own, set up as an operator would.
CB_HOME=$WORK/home
install -d -m 0755 "$CB_HOME"
start_codebuilder "$CB_HOME" CODEBUILDER_REGISTRY="$REGISTRY" CODEBUILDER_DEPLOY=none \
  CODEBUILDER_BUILD_NETWORK=host CODEBUILDER_BUILDER_IMAGE="$BUILDER_IMAGE" \
  CODEBUILDER_RUN_IMAGE="$RUN_IMAGE" CODEBUILDER_BUILDPACKS="$BUILDPACK"
"$BIN/codebuilder-keys" --home "$CB_HOME" add bench "$WORK/client/id.pub" >/dev/null

# The app: no Dockerfile, the busybox it serves, and the amount of compile work.
APP=$WORK/app
install -d -m 0755 "$APP"
cp /bin/busybox "$APP/busybox"
: >"$APP/busybox-web.marker"
echo "$DEPS_MB" >"$APP/deps-mb"
echo "benchmark" >"$APP/message"
# shellcheck disable=SC2016 # $PORT and $WEB_ROOT are for the app's shell, not this one
printf 'web: bin/busybox httpd -f -p "$PORT" -h "$WEB_ROOT"\n' >"$APP/Procfile"
git -C "$APP" init --quiet --initial-branch=main
git -C "$APP" -c user.email=b@x -c user.name=bench add -A
git -C "$APP" -c user.email=b@x -c user.name=bench commit --quiet -m app

# Pushes main to app $1; prints the seconds it took. Its output is kept in $WORK/push-$1-$2.
timed_push() { # APP LABEL EXPECTED
  local log="$WORK/push-$1-$2" start end
  start=$(date +%s.%N)
  GIT_SSH_COMMAND="$SSH_CMD" git -C "$APP" push --quiet "ssh://git@127.0.0.1:$PORT/$1" main \
    >"$log" 2>&1 || { cat "$log" >&2; die "push $2 of $1 failed"; }
  end=$(date +%s.%N)
  grep -q "$3" "$log" || { cat "$log" >&2; die "push $2 of $1 did not print '$3'"; }
  echo "$end - $start" | bc -l
}

# One unmeasured push first: the registry then holds the stack's layers, as it does once any
# app was deployed, so that no measured push pays for uploading them.
say "warm-up push (not measured)"
timed_push "bench-warmup-$$" warmup "cache miss" >/dev/null

again() {
  git -C "$APP" -c user.email=b@x -c user.name=bench commit --quiet --allow-empty -m again
}

FIRST=()
EMPTIED=()
WARM=()
for run in $(seq 1 "$RUNS"); do
  app="bench-$run-$$"
  say "run $run/$RUNS: first push of $app (empty cache, $DEPS_MB MB of compile work)"
  FIRST+=("$(timed_push "$app" first "cache miss")")
  # The same unchanged push with the cache emptied: what the cache alone saves.
  rm -rf "${CB_HOME:?}/cache/$app"
  again
  say "run $run/$RUNS: unchanged push of $app, cache emptied"
  EMPTIED+=("$(timed_push "$app" emptied "cache miss")")
  again
  say "run $run/$RUNS: unchanged push of $app, warm cache"
  WARM+=("$(timed_push "$app" warm "cache hit")")
done

# mean, min and max of the arguments, in seconds with two decimals.
stats() {
  printf '%s\n' "$@" | awk '{ s += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1 }
    END { printf "%.2f %.2f %.2f\n", s / NR, lo, hi }'
}
read -r first_mean first_min first_max <<<"$(stats "${FIRST[@]}")"
read -r emptied_mean emptied_min emptied_max <<<"$(stats "${EMPTIED[@]}")"
read -r warm_mean warm_min warm_max <<<"$(stats "${WARM[@]}")"
vs_first=$(echo "scale=2; $warm_mean / $first_mean" | bc -l | sed 's/^\./0./')
vs_emptied=$(echo "scale=2; $warm_mean / $emptied_mean" | bc -l | sed 's/^\./0./')

echo "### Buildpack cache: second push of an unchanged app with a warm cache"
echo
echo "Test buildpack busybox-web with $DEPS_MB MB of compile work that its cache saves; $RUNS apps,"
echo "each pushed three times; CODEBUILDER_DEPLOY=none (push → image in the registry); $(nproc) cores."
echo
echo "| push | mean (s) | min (s) | max (s) | warm / this |"
echo "|---|---:|---:|---:|---:|"
echo "| first push of the app, empty cache | $first_mean | $first_min | $first_max | $vs_first |"
echo "| unchanged push, cache emptied by hand | $emptied_mean | $emptied_min | $emptied_max | $vs_emptied |"
echo "| unchanged push, warm cache (\`cache hit\`) | $warm_mean | $warm_min | $warm_max | 1 |"
