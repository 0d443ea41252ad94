#!/usr/bin/env bash
# Benchmarks BuildKit builds (issue 14): a first push and a one-line source change pushed
# again, through codebuilder and through the seed's own front door, progrium/gitreceive, whose
# receiver runs `docker build -` and `docker push`.
#
# The app: three stages from scratch with busybox. `deps` "downloads" each package of
# deps.lock (DEP_COST seconds per package: no network here, so a sleep stands in for the
# download), `build` "compiles" each file of src/ (COMPILE_COST seconds per file) without
# needing the packages (as assets or a frontend would), and the final stage copies both
# results: BuildKit may run the first two stages at the same time, the classic builder runs
# them one after the other. Written for BuildKit, the steps keep what they fetched and
# compiled in cache mounts (RUN --mount=type=cache: a package or an object whose input did not
# change is not fetched or compiled again); the classic builder cannot run those, so its
# variant is the same Dockerfile without the mounts. Each Dockerfile puts deps.lock before src/,
# so every builder skips the dependency step when only the source changes.
#
# Sides, all on the same sshd binary, registry, Docker engine and docker CLI (DOCKER):
#   codebuilder      git push to codebuilder-sshd (CODEBUILDER_DEPLOY=none): BuildKit
#   gitreceive+classic  git push to gitreceive, receiver: DOCKER_BUILDKIT=0 docker build - && docker push
#   gitreceive+BuildKit git push to gitreceive, receiver: DOCKER_BUILDKIT=1 docker build - && docker push
#   codebuilder-no-mounts  codebuilder with the classic builder's Dockerfile: BuildKit alone
# A first push goes to a new app each time (new repository, new lockfile, new cache mount
# ids, new sources: nothing cached but the busybox layer); a one-line change appends a line to one source
# file of an app pushed before. Interleaved rounds; ratios of one run.
#
# gitreceive is not part of this repository: give the path of its script (the file
# `gitreceive` of github.com/progrium/gitreceive), e.g.
#   git clone https://github.com/progrium/gitreceive /var/tmp/gitreceive
#   bench/buildkit.sh /var/tmp/gitreceive/gitreceive
# It is set up as its README says (GITUSER=gitreceive gitreceive init, upload-key, a receiver
# script), for a user `gitreceive` (created once, in the docker group, as git is), with its
# own copy of codebuilder's sshd_config that lets that user in with its authorized_keys.
#
# Run as root (about 6 minutes; BENCH_SKIP_BUILD=1 skips cargo build). ROUNDS, FIRST_RUNS,
# CHANGE_RUNS, DEPS, DEP_COST, FILES and COMPILE_COST tune it. Prints markdown on stdout.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

GITRECEIVE_SRC=${1:-}
ROUNDS=${ROUNDS:-3}
FIRST_RUNS=${FIRST_RUNS:-2}    # per side and round
CHANGE_RUNS=${CHANGE_RUNS:-3}  # per side and round
DEPS=${DEPS:-24}               # packages in deps.lock
DEP_COST=${DEP_COST:-0.5}      # seconds per package
FILES=${FILES:-20}             # files in src/
COMPILE_COST=${COMPILE_COST:-0.2}  # seconds per file
DOCKER=${DOCKER:-/usr/bin/docker}
GR_USER=gitreceive
GR_HOME=/home/$GR_USER

[ -n "$GITRECEIVE_SRC" ] && [ -f "$GITRECEIVE_SRC" ] ||
  die "usage: bench/buildkit.sh PATH/TO/gitreceive (the script of github.com/progrium/gitreceive)"
bench_init
bash scripts/services.sh >&2
"$DOCKER" --version | grep -q '^Docker version 20\.10\.' ||
  die "$DOCKER is not a docker CLI 20.10 (BuildKit built in, classic builder still there)"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_SSH_COMMAND="$SSH_CMD"
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com

REGISTRY=
remove_bench_state() {
  rm -rf "${GR_HOME:?}"/bench-*
  [ -n "$REGISTRY" ] || return 0
  "$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep "^$REGISTRY/" |
    xargs -r "$DOCKER" rmi --force >/dev/null 2>&1 || true
}
trap 'remove_bench_state; bench_cleanup' EXIT
start_registry

# --- codebuilder ----------------------------------------------------------------------------
CB_HOME=$WORK/home
install -d -m 0755 "$CB_HOME"
start_codebuilder "$CB_HOME" CODEBUILDER_REGISTRY="$REGISTRY" CODEBUILDER_DEPLOY=none \
  CODEBUILDER_BUILD_NETWORK=host CODEBUILDER_DOCKER="$DOCKER"
CB_PORT=$PORT
"$BIN/codebuilder-keys" --home "$CB_HOME" add bench "$WORK/client/id.pub" >/dev/null

# --- gitreceive, as its README says -----------------------------------------------------------
install -m 0755 "$GITRECEIVE_SRC" "$BIN/gitreceive"
GITUSER=$GR_USER "$BIN/gitreceive" init >&2
usermod -p '*' "$GR_USER"  # key logins only (a locked account cannot log in)
id -nG "$GR_USER" | tr ' ' '\n' | grep -qx docker || usermod -aG docker "$GR_USER"
remove_bench_state
: >"$GR_HOME/.ssh/authorized_keys"
GITUSER=$GR_USER "$BIN/gitreceive" upload-key bench <"$WORK/client/id.pub" >/dev/null
# The receiver: the app's tree arrives as a tar on stdin. Apps named bench-classic-* build
# with the classic builder, the others with BuildKit.
cat >"$GR_HOME/receiver" <<EOF
#!/bin/bash
set -eo pipefail
image=$REGISTRY/\$1:git-\${2:0:7}
case \$1 in
  bench-classic-*) export DOCKER_BUILDKIT=0 ;;
  *) export DOCKER_BUILDKIT=1 ;;
esac
echo "----> Building \$image"
$DOCKER build --network host -t "\$image" -
echo "----> Pushing \$image"
$DOCKER push "\$image"
EOF
chown "$GR_USER" "$GR_HOME/receiver"
chmod 0755 "$GR_HOME/receiver"
start_vanilla gitreceive "$CB_HOME" "$GR_HOME/.ssh/authorized_keys" "$GR_USER"
GR_PORT=$PORT

# --- the app --------------------------------------------------------------------------------
# write_app DIR MOUNTS NONCE: the app in DIR (a new repository on master, which gitreceive
# builds and codebuilder deploys for a master-only repository); MOUNTS=1 for the BuildKit
# Dockerfile. NONCE makes the lockfile and the cache mounts new.
write_app() {
  local dir=$1 mounts=$2 nonce=$3 dep_mount="" obj_mount="" i
  if [ "$mounts" = 1 ]; then
    dep_mount="--mount=type=cache,id=dl-$nonce,target=/downloads "
    obj_mount="--mount=type=cache,id=obj-$nonce,target=/objects "
  fi
  rm -rf "$dir"
  install -d -m 0755 "$dir" "$dir/src"
  cp /bin/busybox "$dir/busybox"
  for i in $(seq 1 "$DEPS"); do echo "package-$i 1.$i.0 $nonce"; done >"$dir/deps.lock"
  for i in $(seq 1 "$FILES"); do
    { echo "$nonce"; seq 1 200 | sed "s/^/file $i line /"; } >"$dir/src/file$i.txt"
  done
  # A package or an object is fetched or compiled when the cache mount does not have it (a
  # mount is an empty folder without BuildKit's cache): its cost is a sleep.
  cat >"$dir/Dockerfile" <<EOF
FROM scratch AS deps
COPY busybox /bin/busybox
COPY deps.lock /deps.lock
RUN ${dep_mount}["/bin/busybox", "sh", "-c", "mkdir -p /downloads /deps && while read -r name version nonce; do [ -f /downloads/\$name-\$version ] || { sleep $DEP_COST; echo \$version > /downloads/\$name-\$version; }; cp /downloads/\$name-\$version /deps/\$name; done < /deps.lock"]

FROM scratch AS build
COPY busybox /bin/busybox
COPY src /src
RUN ${obj_mount}["/bin/busybox", "sh", "-c", "mkdir -p /objects /app && for f in /src/*; do sum=\$(sha256sum \$f | cut -d' ' -f1); [ -f /objects/\$sum ] || { sleep $COMPILE_COST; cp \$f /objects/\$sum; }; cp /objects/\$sum /app/; done && ls /app | wc -l"]

FROM scratch
COPY --from=deps /bin/busybox /bin/busybox
COPY --from=deps /deps /deps
COPY --from=build /app /app
CMD ["/bin/busybox", "ls", "/app"]
EOF
  git -C "$dir" init --quiet --initial-branch=master
  git -C "$dir" add -A
  git -C "$dir" commit --quiet -m app
}

# The sides: NAME, URL of app APP, whether its Dockerfile has the mounts, app name prefix.
SIDES=(codebuilder gitreceive-classic gitreceive-buildkit codebuilder-no-mounts)
declare -A PREFIX=([codebuilder]=bench-cb [gitreceive-classic]=bench-classic
  [gitreceive-buildkit]=bench-bk [codebuilder-no-mounts]=bench-cbn)
declare -A MOUNTS=([codebuilder]=1 [gitreceive-classic]=0 [gitreceive-buildkit]=1
  [codebuilder-no-mounts]=0)
url() { # SIDE APP
  case $1 in
    codebuilder*) echo "ssh://git@127.0.0.1:$CB_PORT/$2" ;;
    *) echo "ssh://$GR_USER@127.0.0.1:$GR_PORT/$2" ;;
  esac
}

# Untimed steps, run before each timed push (hyperfine --prepare) from a script file.
cat >"$WORK/first.sh" <<SH
#!/bin/bash
# first.sh SIDE: a new app for SIDE's next first push; its directory goes to WORK/SIDE.first.
set -euo pipefail
$(declare -f write_app)
DEPS=$DEPS DEP_COST=$DEP_COST FILES=$FILES COMPILE_COST=$COMPILE_COST
mounts=\$2 n=\$(( \$(cat $WORK/\$1.count 2>/dev/null || echo 0) + 1 ))
echo \$n >$WORK/\$1.count
write_app $WORK/\$1-app \$mounts "\$1-\$n-\$\$-\$RANDOM"
SH
cat >"$WORK/change.sh" <<'SH'
#!/bin/sh
# change.sh DIR: a one-line change of one source file, committed.
set -eu
echo "changed $(date +%s%N)" >>"$1/src/file1.txt"
git -C "$1" commit --quiet -am "one line"
SH
chmod 0755 "$WORK/first.sh" "$WORK/change.sh"

push_cmd() { # SIDE APP DIR LOG
  echo "git -C $3 push $(url "$1" "$2") master >$4 2>&1"
}

# --- first pushes -------------------------------------------------------------------------------
for side in "${SIDES[@]}"; do
  # First pushes go to a new app each run: the app name follows the counter first.sh keeps.
  bench_add "$side: first push" \
    "$(push_cmd "$side" "${PREFIX[$side]}-first-\$(cat $WORK/$side.count)" "$WORK/$side-app" "$WORK/$side-first.log")" \
    "$WORK/first.sh $side ${MOUNTS[$side]}"
done
run_rounds "$WORK/first.json" "$ROUNDS" "$FIRST_RUNS" 0

# --- one-line changes -------------------------------------------------------------------------
for side in "${SIDES[@]}"; do
  dir=$WORK/$side-change
  bash -c "$(declare -f write_app); DEPS=$DEPS DEP_COST=$DEP_COST FILES=$FILES COMPILE_COST=$COMPILE_COST write_app $dir ${MOUNTS[$side]} $side-change-$$"
  say "untimed first push of the $side app that the one-line changes go to"
  sh -c "$(push_cmd "$side" "${PREFIX[$side]}-change" "$dir" "$WORK/$side-change.log")" ||
    { cat "$WORK/$side-change.log" >&2; die "the first push through $side failed"; }
  bench_add "$side: one-line change" \
    "$(push_cmd "$side" "${PREFIX[$side]}-change" "$dir" "$WORK/$side-change.log")" \
    "$WORK/change.sh $dir"
done
run_rounds "$WORK/change.json" "$ROUNDS" "$CHANGE_RUNS" 0

# --- checks: every side built and pushed, and the change skipped the dependency step ----------
tags() { curl -fsS "http://$REGISTRY/v2/$1/tags/list"; }
for side in "${SIDES[@]}"; do
  rev=$(git -C "$WORK/$side-change" rev-parse --short=7 HEAD)
  tags "${PREFIX[$side]}-change" | jq -e --arg t "git-$rev" '.tags | index($t)' >/dev/null ||
    { cat "$WORK/$side-change.log" >&2; die "$side: git-$rev is not in the registry"; }
  # The dependency step came from the cache: BuildKit says CACHED, the classic builder
  # "Using cache" for the RUN of the deps stage (and its COPY before it).
  if [ "$side" = gitreceive-classic ]; then
    [ "$(grep -c 'Using cache' "$WORK/$side-change.log")" -ge 3 ] ||
      { cat "$WORK/$side-change.log" >&2; die "$side: the dependency step was not cached"; }
  else
    step=$(grep -oE '#[0-9]+ \[deps 3/3\] RUN' "$WORK/$side-change.log" | head -n 1 | cut -d' ' -f1)
    grep -qF "$step CACHED" "$WORK/$side-change.log" ||
      { cat "$WORK/$side-change.log" >&2; die "$side: the dependency step was not cached"; }
  fi
done

# --- results ----------------------------------------------------------------------------------
json_first=$WORK/first.json json_change=$WORK/change.json
echo
echo "## BuildKit: first push and one-line change, $(nproc) cores, $(date -u +%F)"
echo
echo "App: 3 stages; $DEPS packages × ${DEP_COST} s of simulated download keyed on deps.lock, $FILES"
echo "source files × ${COMPILE_COST} s of simulated compile in a stage of its own; the last stage copies"
echo "both. Cache mounts in the BuildKit Dockerfile"
echo "(the classic builder's has none). Same sshd binary, registry, engine and docker CLI"
echo "($($DOCKER --version | cut -d, -f1)). $ROUNDS interleaved rounds; first pushes:"
echo "$((ROUNDS * FIRST_RUNS)) runs per side, one-line changes: $((ROUNDS * CHANGE_RUNS)). Mean ± stddev (median) in ms."
echo
echo "| side | first push | one-line change | change / own first push (median) |"
echo "|---|---|---|---|"
for i in 0 1 2 3; do
  change_over_first=$(jq -n --slurpfile a "$json_first" --slurpfile b "$json_change" --argjson i "$i" \
    '($b[0].results[$i].median / $a[0].results[$i].median) * 1000 | round / 1000')
  echo "| ${SIDES[$i]} | $(stat_ms "$json_first" "$i") ($(median_ms "$json_first" "$i")) | $(stat_ms "$json_change" "$i") ($(median_ms "$json_change" "$i")) | ${change_over_first}× |"
done
echo
r_change=$(ratio "$json_change" 1 0 median)
r_change_mean=$(ratio "$json_change" 1 0 mean)
r_first=$(ratio "$json_first" 1 0 median)
r_builder_change=$(ratio "$json_change" 1 2 median)
r_builder_first=$(ratio "$json_first" 1 2 median)
r_own=$(jq -n --slurpfile a "$json_first" --slurpfile b "$json_change" \
  '($b[0].results[0].median / $a[0].results[0].median) * 1000 | round / 1000')
echo "| ratio | median | mean | target |"
echo "|---|---|---|---|"
echo "| one-line change: codebuilder / gitreceive+classic | ${r_change}× | ${r_change_mean}× | ≤ 0.6×: $(verdict "$(larger "$r_change" "$r_change_mean")" 0.6) |"
echo "| one-line change / first push, codebuilder | ${r_own}× | – | ≤ 0.2×: $(verdict "$r_own" 0.2) |"
echo "| first push: codebuilder / gitreceive+classic | ${r_first}× | $(ratio "$json_first" 1 0 mean)× | – |"
echo "| builder alone, one-line change: gitreceive+BuildKit / gitreceive+classic | ${r_builder_change}× | $(ratio "$json_change" 1 2 mean)× | – |"
echo "| builder alone, first push: gitreceive+BuildKit / gitreceive+classic | ${r_builder_first}× | $(ratio "$json_first" 1 2 mean)× | – |"
echo "| front door alone, one-line change: codebuilder / gitreceive+BuildKit | $(ratio "$json_change" 2 0 median)× | $(ratio "$json_change" 2 0 mean)× | – |"
echo "| without cache mounts, one-line change: codebuilder-no-mounts / gitreceive+classic | $(ratio "$json_change" 1 3 median)× | $(ratio "$json_change" 1 3 mean)× | – |"
echo "| without cache mounts, first push: codebuilder-no-mounts / gitreceive+classic | $(ratio "$json_first" 1 3 median)× | $(ratio "$json_first" 1 3 mean)× | – |"
echo
load_note
echo "bench/buildkit.sh took ${SECONDS}s"
