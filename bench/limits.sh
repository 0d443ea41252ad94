#!/usr/bin/env bash
# Benchmarks what the limits of issue 11 add to a build: the build context counted on its way
# from `git archive` into the build (CODEBUILDER_MAX_CONTEXT_SIZE), and the retention list
# written after it (CODEBUILDER_KEEP_IMAGES). The pack limit is git's own counter
# (receive.maxInputSize, in index-pack, which counts every byte of a push anyway).
#
# A rebuild of APP (lock, record, `git archive REV | docker build -`, two `docker push`) with
# CODEBUILDER_DOCKER=bench/build/fake-docker (drains the context, pushes nothing), on a tree of
# SMALL_MB and of LARGE_MB of incompressible files: `codebuilder-ops rebuild APP` of this
# checkout against `codebuilder-build rerun APP` of BASE_REV (default: the commit before the
# limits, built once into target/bench-base). Interleaved rounds, as the other benchmarks.
#
# Run as root: bench/limits.sh  (a release build of BASE_REV the first time, then about a
# minute; BENCH_SKIP_BUILD=1 skips building this checkout). SMALL_MB, LARGE_MB, ROUNDS, RUNS
# tune it. Prints markdown on stdout (progress goes to stderr).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

SMALL_MB=${SMALL_MB:-5}
LARGE_MB=${LARGE_MB:-200}
ROUNDS=${ROUNDS:-3}
RUNS=${RUNS:-15}
BASE_REV=${BASE_REV:-0eb2672}
FAKE_DOCKER=$REPO_DIR/bench/build/fake-docker
APP=benchapp

bench_init
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com

# The baseline binary: BASE_REV built in a worktree of its own, kept between runs.
BASE_DIR="$REPO_DIR/target/bench-base"
BASE_BIN="$BASE_DIR/target/release/codebuilder-build"
if [ ! -x "$BASE_BIN" ] || [ "$(cat "$BASE_DIR/rev" 2>/dev/null)" != "$BASE_REV" ]; then
  say "building codebuilder-build of $BASE_REV (once)"
  rm -rf "$BASE_DIR/src"
  mkdir -p "$BASE_DIR"
  git -C "$REPO_DIR" archive --prefix=src/ "$BASE_REV" | tar -x -C "$BASE_DIR"
  CARGO_TARGET_DIR="$BASE_DIR/target" cargo build --quiet --release \
    --manifest-path "$BASE_DIR/src/Cargo.toml" -p codebuilder-build
  echo "$BASE_REV" >"$BASE_DIR/rev"
fi
install -m 0755 "$BASE_BIN" "$BIN/codebuilder-build-base"

DATA=$(mktemp -d /var/tmp/codebuilder-bench-limits.XXXXXX)
BENCH_DIRS+=("$DATA")

# A tree of MB MB of random files with a Dockerfile, and two homes whose repos/APP.git is a
# bare clone of it, one per binary (each keeps its own records).
make_homes() { # NAME MB
  local src="$DATA/$1/src" i
  mkdir -p "$src/assets"
  for i in $(seq 1 10); do
    head -c "$(($2 * 1024 * 1024 / 10))" /dev/urandom >"$src/assets/blob$i.bin"
  done
  printf 'FROM scratch\nCOPY . /app\n' >"$src/Dockerfile"
  git -C "$src" init --quiet --initial-branch=main
  git -C "$src" add -A
  git -C "$src" commit --quiet -m "$1"
  git -C "$src" repack -adq --window=0
  for side in base limits; do
    mkdir -p "$DATA/$1/$side/repos"
    git clone --quiet --bare "$src" "$DATA/$1/$side/repos/$APP.git"
  done
}

# The same settings for both binaries; the limit well above the tree, as in normal use.
SETTINGS="env CODEBUILDER_DOCKER=$FAKE_DOCKER CODEBUILDER_DEPLOY=none CODEBUILDER_REGISTRY=127.0.0.1:5000 CODEBUILDER_MAX_CONTEXT_SIZE=2G"
for size in small large; do
  mb=$SMALL_MB
  [ "$size" = small ] || mb=$LARGE_MB
  say "making the $size tree ($mb MB)"
  make_homes "$size" "$mb"
  bench_add "base $size" "$SETTINGS $BIN/codebuilder-build-base --home $DATA/$size/base rerun $APP"
  bench_add "limits $size" "$SETTINGS $BIN/codebuilder-ops --home $DATA/$size/limits rebuild $APP"
  run_rounds "$WORK/$size.json" "$ROUNDS" "$RUNS" 2
  # The limits binary's builds succeeded (the newest record says so).
  newest=$(find "$DATA/$size/limits/builds/$APP" -name '0*.json' | sort | tail -n 1)
  grep -q '"result": "succeeded"' "$newest" || die "the limits binary did not build: $newest"
done

echo "## Limits (bench/limits.sh)"
echo
echo "A rebuild of $APP with fake docker: \`codebuilder-ops rebuild\` of this checkout against \`codebuilder-build rerun\` of $BASE_REV."
echo
echo "| tree | base (ms) | with limits (ms) | difference (median) | ratio (median) |"
echo "|---|---|---|---|---|"
for size in small large; do
  mb=$SMALL_MB
  [ "$size" = small ] || mb=$LARGE_MB
  json="$WORK/$size.json"
  base=$(median_ms "$json" 0)
  limits=$(median_ms "$json" 1)
  echo "| $mb MB | $(stat_ms "$json" 0) | $(stat_ms "$json" 1) | $(awk -v a="$base" -v b="$limits" 'BEGIN { printf "%+.1f ms", b - a }') | $(ratio "$json" 0 1 median)× |"
done
echo
load_note
