#!/usr/bin/env bash
# Benchmarks push overhead (README, "Benchmarks"): a push that builds nothing,
# through codebuilder's sshd, must take at most 1.1x a plain `git push` to a bare repository
# through the same sshd binary.
#
# codebuilder: codebuilder-sshd (AuthorizedKeysCommand, forced command codebuilder-receive,
# pre-receive hook codebuilder-build); each run pushes a new branch feature-N, so the hook runs
# and stores the branch without building. Plain: the same /usr/sbin/sshd with the config
# codebuilder-sshd wrote, but AuthorizedKeysFile and no forced command, pushing to a bare
# repository owned by git. Two repositories: a small one (fixed overhead) and a medium one of
# 20 MB of random files (throughput). Before every timed run the server repository is emptied
# (refs and objects; it stays initialised) so that each push sends the whole repository.
#
# Run as root: bench/push.sh  (about 3 minutes; BENCH_SKIP_BUILD=1 skips cargo build).
# SMALL_RUNS, MEDIUM_RUNS, ROUNDS and MEDIUM_MB tune it. Prints a markdown table on stdout
# (progress goes to stderr); exits non-zero only when something fails to run.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

SMALL_RUNS=${SMALL_RUNS:-60}   # per command, over ROUNDS interleaved rounds
MEDIUM_RUNS=${MEDIUM_RUNS:-40}
ROUNDS=${ROUNDS:-5}
MEDIUM_MB=${MEDIUM_MB:-20}

bench_init
# Pushes must not pick up root's git or ssh configuration.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_SSH_COMMAND="$SSH_CMD"
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com

# --- the two servers -----------------------------------------------------------------------
home="$WORK/home"
install -d -m 0755 "$home"
start_codebuilder "$home"
CB_PORT=$PORT
"$BIN/codebuilder-keys" --home "$home" add bench "$WORK/client/id.pub" >/dev/null

install -d -m 0755 "$WORK/ak"
cp "$WORK/client/id.pub" "$WORK/ak/authorized_keys"
chmod 0644 "$WORK/ak/authorized_keys"
start_vanilla plain "$home" "$WORK/ak/authorized_keys"
PLAIN_PORT=$PORT
install -d -m 0755 -o git -g git "$WORK/plain"

# --- the client repositories ----------------------------------------------------------------
make_repo() { # NAME: a repository with one commit on main, packed as after a clone
  local dir="$WORK/src/$1"
  mkdir -p "$dir"
  git -C "$dir" init --quiet --initial-branch=main
  case $1 in
    small)
      printf 'FROM scratch\nCOPY app /app\n' >"$dir/Dockerfile"
      printf '# small\n' >"$dir/README.md"
      mkdir -p "$dir/src"
      for i in 1 2 3; do printf 'line %s\n' $(seq 1 50) >"$dir/src/file$i.txt"; done
      ;;
    medium)
      mkdir -p "$dir/assets/a" "$dir/assets/b"
      for i in $(seq 1 "$MEDIUM_MB"); do
        sub=a
        [ $((i % 2)) -eq 0 ] && sub=b
        head -c 1048576 /dev/urandom >"$dir/assets/$sub/blob$i.bin"
      done
      printf '# medium\n' >"$dir/README.md"
      ;;
  esac
  git -C "$dir" add -A
  git -C "$dir" commit --quiet -m initial
  # Packed, as a cloned repository is: pack-objects then reuses the stored compressed data.
  git -C "$dir" repack -adq
}

# The command hyperfine times: push HEAD to a branch named after the run's counter (one
# counter per repository and server).
push_cmd() { # REPO SERVER URL
  echo "git -C $WORK/src/$1 push -q $3 HEAD:refs/heads/feature-\$(cat $WORK/counter-$1-$2)"
}
cb_url() { echo "ssh://git@127.0.0.1:$CB_PORT/$1"; }
plain_url() { echo "ssh://git@127.0.0.1:$PLAIN_PORT$WORK/plain/$1.git"; }

# Run before every timed run (untimed): empties a server repository and bumps the counter.
cat >"$WORK/reset.sh" <<'SH'
#!/bin/sh
# reset.sh REPO COUNTER: drop every ref and object of REPO, keep it initialised.
set -eu
find "$1/refs/heads" "$1/refs/tags" -mindepth 1 -delete
rm -f "$1/packed-refs"
find "$1/objects" -mindepth 1 -maxdepth 1 ! -name info ! -name pack -exec rm -rf {} +
find "$1/objects/pack" -mindepth 1 -delete
echo $(($(cat "$2") + 1)) >"$2"
SH
chmod 0755 "$WORK/reset.sh"

for repo in small medium; do
  say "making the $repo repository"
  make_repo "$repo"
  # Plain means git's defaults. (codebuilder's repositories set receive.fsckObjects=true; on a
  # plain repository that measured no slower here, 0.94x for the medium push.)
  git init --quiet --bare "$WORK/plain/$repo.git"
  chown -R git:git "$WORK/plain/$repo.git"
  echo 0 >"$WORK/counter-$repo-plain"
  echo 0 >"$WORK/counter-$repo-cb"
  # A first push to each: codebuilder creates its repository on it. Checked, not timed.
  git -C "$WORK/src/$repo" push -q "$(plain_url "$repo")" HEAD:refs/heads/feature-0
  out=$(git -C "$WORK/src/$repo" push "$(cb_url "$repo")" HEAD:refs/heads/feature-0 2>&1) ||
    die "push to codebuilder failed: $out"
  [[ "$out" == *"Stored refs/heads/feature-0"* ]] ||
    die "codebuilder's hook did not report the branch as stored: $out"
done

for repo in small medium; do
  runs=$SMALL_RUNS
  warmup=3
  [ $repo = medium ] && { runs=$MEDIUM_RUNS; warmup=1; }
  say "timing pushes of the $repo repository ($runs runs each)"
  bench_add "plain $repo" "$(push_cmd "$repo" plain "$(plain_url "$repo")")" \
    "$WORK/reset.sh $WORK/plain/$repo.git $WORK/counter-$repo-plain"
  bench_add "codebuilder $repo" "$(push_cmd "$repo" cb "$(cb_url "$repo")")" \
    "$WORK/reset.sh $home/repos/$repo.git $WORK/counter-$repo-cb"
  run_rounds "$WORK/push-$repo.json" "$ROUNDS" $((runs / ROUNDS)) $warmup
  # The last push to each server must have landed as the branch it named.
  want=$(git -C "$WORK/src/$repo" rev-parse HEAD)
  for server in plain cb; do
    dir="$WORK/plain/$repo.git"
    [ $server = cb ] && dir="$home/repos/$repo.git"
    n=$(cat "$WORK/counter-$repo-$server")
    got=$(git --git-dir "$dir" rev-parse --verify --quiet "refs/heads/feature-$n") || got=none
    [ "$got" = "$want" ] || die "$dir: feature-$n is $got, expected $want"
  done
done

# --- results ----------------------------------------------------------------------------------
echo
echo "## push of a new branch that builds nothing, $(nproc) cores, $(date -u +%F)"
echo
echo "Each run pushes the whole repository as a new branch feature-N into an emptied server"
echo "repository (on $(findmnt -no FSTYPE -T "$WORK")). Mean ± stddev (median) in ms over the runs"
echo "of $ROUNDS interleaved rounds; ratios codebuilder / plain. The verdict needs both ratios within"
echo "the target: medians resist bursts of load from other processes on this shared machine, means"
echo "count the whole of a delay that only some runs pay."
echo
echo "| repository | runs | plain git push | codebuilder push | ratio (mean) | ratio (median) | target ≤ 1.1× |"
echo "|---|---|---|---|---|---|---|"
for repo in small medium; do
  json="$WORK/push-$repo.json"
  size=$(du -sh "$WORK/src/$repo/.git/objects/pack" | cut -f1)
  runs=$(jq '.results[0].times | length' "$json")
  r=$(ratio "$json" 0 1)
  rm=$(ratio "$json" 0 1 median)
  echo "| $repo ($size packed) | $runs | $(stat_ms "$json" 0) ($(median_ms "$json" 0)) | $(stat_ms "$json" 1) ($(median_ms "$json" 1)) | ${r}× | ${rm}× | $(verdict "$(larger "$r" "$rm")" 1.1) |"
done
echo
load_note
echo "bench/push.sh took ${SECONDS}s"
