#!/usr/bin/env bash
# Benchmarks the build (README, "Benchmarks"):
#
# 1. Build context: `codebuilder-ops rebuild APP` (the same pipeline the pre-receive hook runs:
#    lock, record, `git archive REV | docker build -`, one `docker push`) on repositories of
#    SMALL_MB and LARGE_MB of incompressible files. CODEBUILDER_DOCKER is bench/build/fake-docker,
#    which drains the context and pushes nothing, so only codebuilder's own cost is measured.
#    Targets: peak RSS of the building process (here codebuilder-ops) flat in repo size and at most 30 MB at
#    the large size; wall time at most 1.1x `git archive --format=tar REV | cat >/dev/null`.
# 2. End to end: a push through codebuilder-sshd until the image is in a loopback registry,
#    against `git archive | docker build - && docker push` by hand, same app, same run, both
#    with BuildKit and Debian's docker CLI (DOCKER, default /usr/bin/docker).
#    Every timed run builds a new commit whose change is copied before the RUN step, so
#    docker's cache never skips the work. Target: at most 1.15x.
#
# Run as root: bench/build.sh  (about 2 minutes; BENCH_SKIP_BUILD=1 skips cargo build).
# SMALL_MB, LARGE_MB, CONTEXT_ROUNDS, SMALL_RUNS, LARGE_RUNS, RSS_RUNS, E2E_RUNS, TIMELINE_RUNS
# and RUN_MB tune it. Prints markdown on stdout (progress goes to stderr); exits non-zero only when
# something fails to run.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

SMALL_MB=${SMALL_MB:-5}
LARGE_MB=${LARGE_MB:-500}
CONTEXT_ROUNDS=${CONTEXT_ROUNDS:-3}
SMALL_RUNS=${SMALL_RUNS:-30}  # per command, over CONTEXT_ROUNDS interleaved rounds
LARGE_RUNS=${LARGE_RUNS:-15}
RSS_RUNS=${RSS_RUNS:-3}       # sampled runs per repository; the highest peak is reported
E2E_RUNS=${E2E_RUNS:-6}       # per side, one run of each per round
TIMELINE_RUNS=${TIMELINE_RUNS:-3}  # extra untimed runs with stamped output, per case
RUN_MB=${RUN_MB:-100}         # MB the app's RUN step hashes: about a second of work
DOCKER=${DOCKER:-/usr/bin/docker}  # a docker CLI with BuildKit built in (Debian's docker.io)

FAKE_DOCKER=$REPO_DIR/bench/build/fake-docker
APP=benchapp

bench_init
bash scripts/services.sh >&2
command -v docker-registry >/dev/null || die "docker-registry is missing: run scripts/deps.sh"
[ -x /bin/busybox ] || die "/bin/busybox is missing: run scripts/deps.sh"
[ -x "$FAKE_DOCKER" ] || die "$FAKE_DOCKER is missing or not executable"
command -v curl >/dev/null || die "curl is missing"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package time)"
# Commits must not pick up root's git configuration.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com

# The large repositories go to a disk-backed directory of their own: $WORK is below /run,
# which is a tmpfs on most machines, and 1 GB there would be RAM (and unlike a server's disk).
DATA=$(mktemp -d /var/tmp/codebuilder-bench-build.XXXXXX)
BENCH_DIRS+=("$DATA")
DATA_FS=$(findmnt -no FSTYPE -T "$DATA")
[ "$DATA_FS" != tmpfs ] || say "warning: $DATA is on tmpfs, not on disk"

REGISTRY=
# Images the runs leave in the engine (the registry's storage is below $WORK).
remove_images() {
  [ -n "$REGISTRY" ] || return 0
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$REGISTRY/" |
    xargs -r docker rmi --force >/dev/null 2>&1 || true
}
trap 'remove_images; bench_cleanup' EXIT

# --- helpers of this benchmark ------------------------------------------------------------------
# A file descriptor no one ever writes to: `read -t` on it sleeps without forking sleep(1).
exec {NAP}<> <(:)

# Runs CMD... in the background with its output in LOG and prints the last VmHWM (kB) read
# from /proc/PID/status before it exits: the peak RSS of that process alone, not of the
# children it starts (git archive, docker are processes of their own). VmHWM only grows, so
# the last reading is the highest; once it is gone or a zombie, the line is no longer there.
peak_rss_kb() { # LOG CMD...
  local log=$1 pid last=0 value key v _
  shift
  "$@" >"$log" 2>&1 </dev/null &
  pid=$!
  while :; do
    value=
    while read -r key v _; do
      [ "$key" != VmHWM: ] || value=$v
    done 2>/dev/null <"/proc/$pid/status" || true
    [ -n "$value" ] || break
    last=$value
    read -r -t 0.002 -u "$NAP" _ || true
  done
  wait "$pid" || { cat "$log" >&2; die "$* failed"; }
  echo "$last"
}

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
# Difference of the medians of results J and I, in ms.
diff_ms() { # JSON I J
  jq -r --argjson i "$2" --argjson j "$3" \
    '(.results[$j].median - .results[$i].median) * 1000 | round
     | if . >= 0 then "+\(.)" else "\(.)" end' "$1"
}

# Where the time goes: a few extra, untimed runs whose output lines are stamped with the time
# they arrived ($EPOCHREALTIME: no fork per line), between START and END lines. The phases
# are differences between marker lines; their medians go to PHASES[SIDE.PHASE].
stamped() { # OUT CMD...
  local out=$1 rc=0 line
  shift
  echo "$EPOCHREALTIME START" >"$out"
  "$@" 2>&1 </dev/null | while IFS= read -r line; do
    echo "$EPOCHREALTIME $line"
  done >>"$out" || rc=$?
  echo "$EPOCHREALTIME END" >>"$out"
  [ $rc -eq 0 ] || { cat "$out" >&2; die "$* failed"; }
}
# The stamp of the Nth line (default: first) that matches the extended regex RE.
at() { # FILE RE [N]
  local t
  t=$(awk -v re="$2" -v n="${3:-1}" '{ line = $0; sub(/^[^ ]* /, "", line) }
    line ~ re && ++k == n { print $1; exit }' "$1")
  [ -n "$t" ] || { cat "$1" >&2; die "no line /$2/ in $1"; }
  echo "$t"
}
declare -A PHASES
phase() { # KEY FROM TO: appends TO - FROM, in ms
  PHASES[$1]+=" $(awk -v a="$2" -v b="$3" 'BEGIN { printf "%d", (b - a) * 1000 }')"
}
phase_median() { # KEY
  # shellcheck disable=SC2086 # the values are space-separated numbers
  printf '%s\n' ${PHASES[$1]} | sort -n |
    awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)) }'
}

# --- 1. build context -----------------------------------------------------------------------
# A repository of SIZE MB of random files (incompressible), with a Dockerfile so that the
# Dockerfile path runs, packed as a pushed and gc'd repository is, and a home whose
# repos/APP.git is a bare clone of it, as `rebuild` expects.
make_context_repo() { # NAME MB FILES
  local src="$DATA/$1/src" home="$DATA/$1/home" i kb
  mkdir -p "$src/assets"
  kb=$(($2 * 1024 / $3))
  for i in $(seq 1 "$3"); do
    head -c "$((kb * 1024))" /dev/urandom >"$src/assets/blob$i.bin"
  done
  printf 'FROM scratch\nCOPY . /app\n' >"$src/Dockerfile"
  git -C "$src" init --quiet --initial-branch=main
  git -C "$src" add -A
  git -C "$src" commit --quiet -m "$1"
  # No delta search: random blobs have no deltas to find, and it would take minutes.
  git -C "$src" repack -adq --window=0
  mkdir -p "$home/repos"
  git clone --quiet --bare "$src" "$home/repos/$APP.git"
}

# An admin's rebuild with the stub docker (it wants a registry setting; nothing is pushed).
# The large tree is over the default CODEBUILDER_MAX_CONTEXT_SIZE (500M): raise it.
REBUILD=(env CODEBUILDER_DOCKER="$FAKE_DOCKER" CODEBUILDER_DEPLOY=none CODEBUILDER_MAX_CONTEXT_SIZE=2G
  CODEBUILDER_REGISTRY=127.0.0.1:5000 "$BIN/codebuilder-ops")
# The same as the command hyperfine times.
rebuild_cmd() { # HOME
  echo "${REBUILD[*]} --home $1 rebuild $APP"
}

declare -A RSS_PEAK TIME_RSS TREE_MB
for size in small large; do
  mb_size=$SMALL_MB nfiles=10
  [ $size = large ] && { mb_size=$LARGE_MB; nfiles=50; }
  say "making the $size context repository ($mb_size MB in $nfiles files)"
  make_context_repo "$size" "$mb_size" "$nfiles"
  TREE_MB[$size]=$(du -sm --exclude=.git "$DATA/$size/src" | cut -f1)
done

for size in small large; do
  home="$DATA/$size/home"
  repo="$home/repos/$APP.git"
  rev=$(git --git-dir "$repo" rev-parse main)
  runs=$SMALL_RUNS warmup=3
  [ $size = large ] && { runs=$LARGE_RUNS; warmup=1; }
  say "timing the $size build context ($runs runs each)"
  bench_add "git archive | cat ($size)" \
    "git --git-dir $repo archive --format=tar $rev | cat >/dev/null"
  bench_add "codebuilder-ops rebuild ($size)" "$(rebuild_cmd "$home")"
  run_rounds "$WORK/context-$size.json" "$CONTEXT_ROUNDS" $((runs / CONTEXT_ROUNDS)) $warmup

  # Peak RSS: apart from the timing, as sampling /proc costs CPU on this 2-core machine.
  say "sampling the peak RSS of codebuilder-ops on the $size repository ($RSS_RUNS runs)"
  peak=0
  for _ in $(seq 1 "$RSS_RUNS"); do
    kb=$(peak_rss_kb "$WORK/rss-$size.log" "${REBUILD[@]}" --home "$home" rebuild "$APP")
    if [ "$kb" -gt "$peak" ]; then peak=$kb; fi
  done
  grep -q "Done: $APP ${rev:0:7} is in the registry" "$WORK/rss-$size.log" ||
    { cat "$WORK/rss-$size.log" >&2; die "rebuild did not finish its build"; }
  [ "$peak" -gt 0 ] || die "no VmHWM sample of codebuilder-ops"
  RSS_PEAK[$size]=$peak
  # For context only: GNU time's maximum resident set size is the rusage of the waited
  # process tree, i.e. the largest single process among codebuilder-ops, git archive, the
  # stub's sh and cat (not their sum).
  TIME_RSS[$size]=$(/usr/bin/time -f %M "${REBUILD[@]}" --home "$home" rebuild "$APP" \
    2>&1 >/dev/null | tail -n 1)

  say "timeline of codebuilder-ops on the $size repository ($TIMELINE_RUNS stamped runs)"
  for _ in $(seq 1 "$TIMELINE_RUNS"); do
    out=$WORK/timeline-$size
    stamped "$out" "${REBUILD[@]}" --home "$home" rebuild "$APP"
    building=$(at "$out" '^-----> Building') pushing=$(at "$out" '^-----> Pushing')
    done_at=$(at "$out" '^-----> Done')
    phase "$size.start" "$(at "$out" START)" "$building"
    phase "$size.build" "$building" "$pushing"
    phase "$size.push" "$pushing" "$done_at"
    phase "$size.end" "$done_at" "$(at "$out" END)"
    phase "$size.total" "$(at "$out" START)" "$(at "$out" END)"
  done
  # The 500 MB tree is not needed any more: free the disk before the docker part.
  rm -rf "${DATA:?}/$size/src"
done

# --- 2. end to end ------------------------------------------------------------------------------
start_registry

# codebuilder's sshd set up as an operator would: sessions get these through SetEnv.
CB_HOME=$WORK/home
install -d -m 0755 "$CB_HOME"
start_codebuilder "$CB_HOME" CODEBUILDER_REGISTRY="$REGISTRY" CODEBUILDER_DEPLOY=none \
  CODEBUILDER_BUILD_NETWORK=host CODEBUILDER_DOCKER="$DOCKER"
"$BIN/codebuilder-keys" --home "$CB_HOME" add bench "$WORK/client/id.pub" >/dev/null

# The app, twice (one clone per side, so that each side's commits are its own): busybox, a
# source folder copied before the RUN step, and a RUN step that hashes the source and RUN_MB
# of zeros. A scratch image has no shell of its own, hence the exec form through busybox.
make_app() { # DIR
  install -d -m 0755 "$1" "$1/src"
  cp /bin/busybox "$1/busybox"
  cat >"$1/Dockerfile" <<EOF
FROM scratch
COPY busybox /bin/busybox
COPY src /app/src
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox sha256sum /app/src/* >/app/sums && /bin/busybox dd if=/dev/zero bs=1M count=$RUN_MB 2>/dev/null | /bin/busybox sha256sum >>/app/sums"]
EOF
  head -c 1048576 /dev/urandom | base64 >"$1/src/data.txt"
  echo 0 >"$1/src/stamp"
  git -C "$1" init --quiet --initial-branch=main
  git -C "$1" add -A
  git -C "$1" commit --quiet -m app
}
make_app "$WORK/app-cb"
make_app "$WORK/app-manual"
APP_MB=$(du -sm --exclude=.git "$WORK/app-cb" | cut -f1)

# Run before every run, untimed: a new commit that changes a file of src/ (copied before
# the RUN step), and the tag the manual side will use.
cat >"$WORK/next.sh" <<'SH'
#!/bin/sh
# next.sh DIR: a new commit in DIR; its short sha goes to DIR.tag.
set -eu
echo $(($(cat "$1/src/stamp") + 1)) >"$1/src/stamp"
git -C "$1" commit --quiet -am next
git -C "$1" rev-parse --short=7 HEAD >"$1.tag"
SH
chmod 0755 "$WORK/next.sh"

cb_cmd="GIT_SSH_COMMAND='$SSH_CMD' git -C $WORK/app-cb push ssh://git@127.0.0.1:$PORT/$APP main >$WORK/cb.log 2>&1"
manual_cmd="cd $WORK/app-manual && tag=git-\$(cat $WORK/app-manual.tag) && git archive --format=tar HEAD | DOCKER_BUILDKIT=1 $DOCKER build --progress=plain --network host -t $REGISTRY/manual:\$tag - >$WORK/manual.log 2>&1 && $DOCKER push $REGISTRY/manual:\$tag >>$WORK/manual.log 2>&1"

# One untimed run per side first: codebuilder creates the app's repository, docker caches
# the busybox layer and the registry holds it, as after any earlier deploy.
say "warm-up: one push through codebuilder and one build by hand (not measured)"
for side in cb manual; do
  "$WORK/next.sh" "$WORK/app-$side"
  cmd=$cb_cmd
  [ $side = manual ] && cmd=$manual_cmd
  sh -c "$cmd" || { cat "$WORK/$side.log" >&2; die "warm-up $side failed"; }
done

bench_add "by hand: git archive | docker build - && docker push" "$manual_cmd" \
  "$WORK/next.sh $WORK/app-manual"
bench_add "codebuilder: git push → image in registry" "$cb_cmd" "$WORK/next.sh $WORK/app-cb"
run_rounds "$WORK/e2e.json" "$E2E_RUNS" 1 0

# The last run of each side built its new commit for real and its image is in the registry.
tags() { curl -fsS "http://$REGISTRY/v2/$1/tags/list"; }
cb_tag=git-$(cat "$WORK/app-cb.tag")
manual_tag=git-$(cat "$WORK/app-manual.tag")
grep -q "Done: $APP ${cb_tag#git-} is in the registry" "$WORK/cb.log" ||
  { cat "$WORK/cb.log" >&2; die "the last push did not report its image in the registry"; }
tags "$APP" | jq -e --arg t "$cb_tag" '.tags | index($t)' >/dev/null ||
  die "$REGISTRY/$APP has no tag $cb_tag"
tags manual | jq -e --arg t "$manual_tag" '.tags | index($t)' >/dev/null ||
  die "$REGISTRY/manual has no tag $manual_tag"
# The RUN step ran (BuildKit prints its number with DONE, not CACHED).
for side in cb manual; do
  step=$(grep -oE '#[0-9]+ \[3/3\] RUN' "$WORK/$side.log" | head -n 1 | cut -d' ' -f1)
  grep -qE "^(remote: +)?$step DONE" "$WORK/$side.log" ||
    { cat "$WORK/$side.log" >&2; die "$side: the RUN step did not run"; }
done

say "timeline of the end-to-end runs ($TIMELINE_RUNS stamped runs per side)"
for _ in $(seq 1 "$TIMELINE_RUNS"); do
  out=$WORK/timeline-cb
  "$WORK/next.sh" "$WORK/app-cb"
  stamped "$out" env GIT_SSH_COMMAND="$SSH_CMD" \
    git -C "$WORK/app-cb" push "ssh://git@127.0.0.1:$PORT/$APP" main
  start=$(at "$out" START) building=$(at "$out" '^remote: -----> Building')
  built=$(at "$out" "^remote: +$(grep -oE '#[0-9]+ \[3/3\] RUN' "$out" | head -n 1 | cut -d' ' -f1) DONE")
  pushing=$(at "$out" '^remote: -----> Pushing')
  digest=$(at "$out" '^remote: .*: digest: sha256:')
  end=$(at "$out" END)
  phase cb.connect "$start" "$building"
  phase cb.build "$building" "$built"
  phase cb.gap "$built" "$pushing"
  phase cb.push "$pushing" "$digest"
  phase cb.end "$digest" "$end"
  phase cb.total "$start" "$end"

  out=$WORK/timeline-manual
  "$WORK/next.sh" "$WORK/app-manual"
  tag=git-$(cat "$WORK/app-manual.tag")
  stamped "$out" sh -c "cd $WORK/app-manual && git archive --format=tar HEAD | DOCKER_BUILDKIT=1 $DOCKER build --progress=plain --network host -t $REGISTRY/manual:$tag - && echo '== built ==' && $DOCKER push $REGISTRY/manual:$tag"
  start=$(at "$out" START) built=$(at "$out" '^== built ==$') end=$(at "$out" END)
  phase manual.build "$start" "$built"
  phase manual.push "$built" "$end"
  phase manual.total "$start" "$end"
done

# --- results ----------------------------------------------------------------------------------
echo
echo "## Build: context and end to end, $(nproc) cores, $(date -u +%F)"
echo
echo "### Build context"
echo
echo "\`codebuilder-ops --home HOME rebuild $APP\` (lock, record, \`git archive REV | docker build -\`,"
echo "one \`docker push\`) with CODEBUILDER_DOCKER=bench/build/fake-docker (\`build\` drains stdin,"
echo "\`push\` does nothing) and CODEBUILDER_DEPLOY=none, against"
echo "\`git --git-dir REPO archive --format=tar REV | cat >/dev/null\` on the same bare repository"
echo "(packed, on $DATA_FS). Files from /dev/urandom (incompressible). Mean ± stddev (median) in ms"
echo "over the runs of $CONTEXT_ROUNDS interleaved rounds; the verdict uses the ratio of medians."
echo
echo "| tree | runs | git archive \\| cat | codebuilder-ops rebuild | difference (median) | ratio (mean) | ratio (median) | target ≤ 1.1× |"
echo "|---|---|---|---|---|---|---|---|"
for size in small large; do
  json="$WORK/context-$size.json"
  runs=$(jq '.results[0].times | length' "$json")
  rm=$(ratio "$json" 0 1 median)
  echo "| $size (${TREE_MB[$size]} MB) | $runs | $(stat_ms "$json" 0) ($(median_ms "$json" 0)) | $(stat_ms "$json" 1) ($(median_ms "$json" 1)) | $(diff_ms "$json" 0 1) ms | $(ratio "$json" 0 1)× | ${rm}× | $(verdict "$rm" 1.1) |"
done
echo
echo "Where codebuilder-ops rebuild's time goes: medians in ms of $TIMELINE_RUNS extra runs whose output lines"
echo "were stamped as they arrived (untimed by hyperfine)."
echo
echo "| phase | small | large |"
echo "|---|---|---|"
echo "| start → \`-----> Building\` (settings, lock, build record, \`git cat-file\`) | $(phase_median small.start) | $(phase_median large.start) |"
echo "| \`Building\` → \`Pushing\`: \`git archive \\| docker build -\` (stub) until the next step starts | $(phase_median small.build) | $(phase_median large.build) |"
echo "| \`Pushing\` → \`Done\`: one \`docker push\` (stub) | $(phase_median small.push) | $(phase_median large.push) |"
echo "| \`Done\` → exit (record saved, old ones pruned) | $(phase_median small.end) | $(phase_median large.end) |"
echo "| total | $(phase_median small.total) | $(phase_median large.total) |"
echo
echo "Peak RSS of the codebuilder-ops process itself: the last VmHWM read from /proc/PID/status"
echo "(every ~2 ms) before it exits, highest of $RSS_RUNS runs. GNU time's maximum RSS is shown for"
echo "context: it is the largest single process of the tree (codebuilder-ops, git archive, the"
echo "stub's cat), here mostly git archive, which holds a whole blob in memory."
echo
rss_ratio=$(ratio_of "${RSS_PEAK[large]}" "${RSS_PEAK[small]}")
large_mb=$(mb "${RSS_PEAK[large]}")
if awk -v r="$rss_ratio" -v m="$large_mb" 'BEGIN { exit !(r <= 1.1 && m <= 30) }'; then
  rss_verdict="target met"
else
  rss_verdict="target missed"
fi
echo "| tree | codebuilder-ops peak RSS (VmHWM) | /usr/bin/time max RSS (whole tree's largest process) |"
echo "|---|---|---|"
for size in small large; do
  echo "| $size (${TREE_MB[$size]} MB) | $(mb "${RSS_PEAK[$size]}") MB | $(mb "${TIME_RSS[$size]}") MB |"
done
echo
echo "| large / small peak RSS | large peak RSS | target: flat (≤ 1.1×) and ≤ 30 MB at ${TREE_MB[large]} MB |"
echo "|---|---|---|"
echo "| ${rss_ratio}× | $large_mb MB | $rss_verdict |"
echo
echo "### End to end: push → image in the registry"
echo
echo "App: FROM scratch, COPY busybox, COPY src, RUN hashing src and $RUN_MB MB of zeros (RUN_MB);"
echo "$APP_MB MB tree. Each run builds a new commit that changes src/ (so the RUN step runs; checked),"
echo "and pushes it to a docker-registry on loopback. codebuilder: \`git push\` over ssh to"
echo "codebuilder-sshd (CODEBUILDER_DEPLOY=none, CODEBUILDER_BUILD_NETWORK=host), which builds and"
echo "pushes the tag git-SHA. By hand: \`git archive --format=tar HEAD | DOCKER_BUILDKIT=1 docker build"
echo "--progress=plain --network host -t REG/manual:TAG - && docker push REG/manual:TAG\`, with the same"
echo "docker CLI ($DOCKER, $($DOCKER --version | cut -d, -f1)). $E2E_RUNS interleaved rounds"
echo "of one run per side; mean ± stddev (median) in ms; the verdict uses the ratio of medians."
echo
echo "| runs | by hand | codebuilder push | difference (median) | ratio (mean) | ratio (median) | target ≤ 1.15× |"
echo "|---|---|---|---|---|---|---|"
json="$WORK/e2e.json"
rm=$(ratio "$json" 0 1 median)
echo "| $(jq '.results[0].times | length' "$json") | $(stat_ms "$json" 0) ($(median_ms "$json" 0)) | $(stat_ms "$json" 1) ($(median_ms "$json" 1)) | $(diff_ms "$json" 0 1) ms | $(ratio "$json" 0 1)× | ${rm}× | $(verdict "$rm" 1.15) |"
echo
echo "Where the time goes: medians in ms of $TIMELINE_RUNS extra runs per side whose output lines were"
echo "stamped as they arrived (untimed by hyperfine)."
echo
echo "| phase | codebuilder | by hand |"
echo "|---|---|---|"
echo "| ssh connect, refs, pack sent, hook started (→ \`-----> Building\`) | $(phase_median cb.connect) | – |"
echo "| \`git archive \\| docker build -\` (→ the RUN step's DONE line; by hand: → docker build exits) | $(phase_median cb.build) | $(phase_median manual.build) |"
echo "| from the RUN step's DONE (exporting the image) until the next step starts (→ \`-----> Pushing\`) | $(phase_median cb.gap) | – |"
echo "| \`docker push\` of the git-SHA tag (→ its digest line; by hand: → docker push exits) | $(phase_median cb.push) | $(phase_median manual.push) |"
echo "| then \`-----> Done\`, ref update, end of git push | $(phase_median cb.end) | – |"
echo "| total | $(phase_median cb.total) | $(phase_median manual.total) |"
echo
load_note
echo "bench/build.sh took ${SECONDS}s"
