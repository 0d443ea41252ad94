#!/usr/bin/env bash
# Benchmarks what .dockerignore costs a Dockerfile build's context: `git archive REV` into a
# sink directly (a repository without .dockerignore streams this way) against `git archive REV
# | codebuilder-build context-filter IGNORE | sink` (with one), on a tree of FILES files and
# MB megabytes of incompressible data; the .dockerignore has PATTERNS typical lines and leaves
# out about a tenth of the tree. The sink is `wc -c`, standing in for `docker build -`, so the
# figures are the stream's own cost, docker aside.
#
# Run: bench/dockerignore.sh (builds the release binary unless BENCH_SKIP_BUILD=1). FILES, MB,
# RUNS tune it. Prints markdown on stdout (progress goes to stderr).
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FILES=${FILES:-20000}
MB=${MB:-200}
RUNS=${RUNS:-10}
say() { echo "bench: $*" >&2; }

command -v hyperfine >/dev/null || { echo "bench: error: hyperfine is missing (apt-get install hyperfine)" >&2; exit 1; }
cd "$REPO_DIR"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  say "building (cargo build --release -p codebuilder-build)"
  cargo build --quiet --release -p codebuilder-build
fi
BIN=$REPO_DIR/target/release/codebuilder-build
WORK=$(mktemp -d)
trap 'rm -rf -- "$WORK"' EXIT

say "making a repository of $FILES files, $MB MB"
repo=$WORK/repo
mkdir -p "$repo"
git -C "$repo" init --quiet --initial-branch=main
git -C "$repo" config gc.auto 0
per=$(( MB * 1024 * 1024 / FILES ))
head -c $(( MB * 1024 * 1024 )) /dev/urandom | split -a 5 -d -b "$per" - "$repo/blob."
i=0
for f in "$repo"/blob.*; do
  dir=$repo/src/d$(( i % 100 ))/e$(( i % 7 ))
  case $(( i % 10 )) in
    0) dir=$repo/logs/d$(( i % 13 )) ;;
  esac
  mkdir -p "$dir"
  mv "$f" "$dir/file$i.dat"
  i=$(( i + 1 ))
done
cat >"$repo/.dockerignore" <<'IGNORE'
# typical
.git
**/*.log
logs
!logs/d1/keep.dat
node_modules
**/__pycache__
*.md
tmp?
**/secret*.env
IGNORE
echo "FROM scratch" >"$repo/Dockerfile"
git -C "$repo" add -A
git -C "$repo" -c user.name=bench -c user.email=bench@example.com commit --quiet -m tree
ignore=$WORK/dockerignore
cp "$repo/.dockerignore" "$ignore"

full=$(git -C "$repo" archive HEAD | wc -c)
kept=$(git -C "$repo" archive HEAD | "$BIN" context-filter "$ignore" | wc -c)
say "context: $full bytes unfiltered, $kept filtered"
json=$WORK/results.json
hyperfine --style none --warmup 2 --runs "$RUNS" --export-json "$json" \
  -n "no .dockerignore" "git -C $repo archive HEAD | wc -c" \
  -n "with .dockerignore" "git -C $repo archive HEAD | $BIN context-filter $ignore | wc -c" >&2
echo "| stream of $FILES files, $MB MB ($RUNS runs) | median | context sent |"
echo "|---|---|---|"
jq -r --arg full "$full" --arg kept "$kept" '.results[] | "| \(.command) | \(.median * 1000 | floor) ms | \(if .command == "no .dockerignore" then $full else $kept end) bytes |"' "$json"
