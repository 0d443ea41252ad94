#!/usr/bin/env bash
# Shared by bench/keys.sh and bench/push.sh (sourced, not run): build and install the
# binaries, temporary directories, starting and stopping sshds, and the markdown helpers.
# Everything a benchmark starts or creates is recorded here and undone by bench_cleanup,
# which bench_init installs as the EXIT trap.
set -euo pipefail

# sshd runs an AuthorizedKeysCommand only from a root-owned path that no one else can write,
# and refuses an AuthorizedKeysFile under a group/world-writable directory (StrictModes): so
# binaries, sshd configs and authorized_keys files live below this root-owned 0755 directory
# (on the root filesystem here), never in /tmp or /dev/shm.
BENCH_ROOT=/run/codebuilder-bench
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH:/usr/local/bin:/usr/sbin:/sbin"

BENCH_PIDS=()  # sshds we started (sshd -D: the listener itself, never a forking daemon)
BENCH_DIRS=()  # directories we created

say() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${BENCH_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ ${#BENCH_DIRS[@]} -gt 0 ]; then
    rm -rf -- "${BENCH_DIRS[@]}"
  fi
}

# Checks and builds what the benchmark needs; sets WORK (root-owned 0755, on disk) and BIN.
# BENCH_SKIP_BUILD=1 reuses target/release as it is (others may be mid-edit in crates/).
bench_init() {
  [ "$(id -u)" -eq 0 ] || die "run as root: sshd switches to the git user"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cd "$REPO_DIR"
  # The git user, sshd and /run/sshd; idempotent and quick once done.
  bash scripts/deps.sh >&2
  if ! command -v hyperfine >/dev/null; then
    apt-get install -y -qq hyperfine >&2 || { apt-get update -qq && apt-get install -y -qq hyperfine >&2; }
  fi
  for tool in hyperfine jq ssh ssh-keygen git /usr/sbin/sshd; do
    command -v "$tool" >/dev/null || die "$tool is missing"
  done
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building (cargo build --release --workspace --bins)"
    cargo build --quiet --release --workspace --bins
  fi
  install -d -m 0755 -o root -g root "$BENCH_ROOT"
  WORK=$(mktemp -d "$BENCH_ROOT/work.XXXXXX")
  BENCH_DIRS+=("$WORK")
  chmod 0755 "$WORK"
  BIN="$WORK/bin"
  install -d -m 0755 "$BIN"
  local name
  for name in codebuilder-keys codebuilder-receive codebuilder-build codebuilder-ops codebuilder-sshd; do
    [ -x "target/release/$name" ] || die "target/release/$name is missing: build first"
    install -m 0755 "target/release/$name" "$BIN/"
  done
  # The ssh client side: one key that is stored and one that never is.
  install -d -m 0700 "$WORK/client"
  ssh-keygen -q -t ed25519 -N '' -C bench@client -f "$WORK/client/id"
  ssh-keygen -q -t ed25519 -N '' -C unknown@client -f "$WORK/client/unknown"
  # -F /dev/null: root's own ~/.ssh/config must not change what is measured.
  SSH_OPTS=(-F /dev/null -i "$WORK/client/id" -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes
    -o LogLevel=ERROR -o IdentityAgent=none)
  # shellcheck disable=SC2034 # for the scripts that source this file
  SSH_CMD="ssh $(printf '%q ' "${SSH_OPTS[@]}")"
}

# A loopback port nothing listens on (checked, then used right away). Drawn from below the
# kernel's ephemeral range: outgoing connections and other tests' port-0 binds take ports from
# that range, and could take ours between the check and sshd's bind.
free_port() {
  local low port
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 12000 ] || low=32768
  for _ in $(seq 1 100); do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free loopback port found"
}

# Waits until PID listens on PORT: 0 when it does, 1 when PID exited (its log tells why), 2
# after 20 seconds. Another process may have taken the port after free_port: a connection is
# not enough, the listening socket must be PID's (ss tells; without ss, PID must be alive).
await_port() { # PORT PID
  for _ in $(seq 1 400); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      if ! command -v ss >/dev/null; then
        kill -0 "$2" 2>/dev/null && return 0
        return 1
      fi
      ss -Hltnp "sport = :$1" | grep -q "pid=$2," && return 0
    fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 2
}

wait_for_port() { # PORT PID LOG
  local rc=0
  await_port "$1" "$2" || rc=$?
  case $rc in
    0) return 0 ;;
    1) cat "$3" >&2; die "the server exited during startup (log $3)" ;;
    *) cat "$3" >&2; die "nothing listens on port $1 after 20 s (log $3)" ;;
  esac
}

# Calls LAUNCH PORT, which starts a server on PORT in the background, logging to LOG, and sets
# LAUNCHED_PID; waits until it listens. Another process may grab the port between free_port
# and the bind: a bind failure means trying another port. Sets PORT; records the pid for
# bench_cleanup.
start_listener() { # LOG LAUNCH
  local log=$1 launch=$2 rc
  for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    "$launch" "$PORT"
    rc=0
    await_port "$PORT" "$LAUNCHED_PID" || rc=$?
    if [ "$rc" -eq 0 ]; then
      BENCH_PIDS+=("$LAUNCHED_PID")
      return 0
    fi
    kill "$LAUNCHED_PID" 2>/dev/null || true
    wait "$LAUNCHED_PID" 2>/dev/null || true
    if [ "$rc" -ne 1 ] || ! grep -q "Address already in use" "$log"; then
      cat "$log" >&2
      die "the server logging to $log did not start"
    fi
    say "port $PORT was taken before the server could bind it; trying another"
  done
  die "no port could be bound in 5 attempts (log $log)"
}

# Starts codebuilder-sshd for HOME as the tests do: an empty environment but PATH and the
# NAME=VALUE settings given (CODEBUILDER_REGISTRY=..., as an operator sets them). Sets PORT.
start_codebuilder() { # HOME [NAME=VALUE...]
  LAUNCH_HOME=$1
  shift
  LAUNCH_ENV=("$@")
  start_listener "$LAUNCH_HOME/sshd.log" launch_codebuilder
}
launch_codebuilder() { # PORT
  env -i PATH="$PATH" "${LAUNCH_ENV[@]}" \
    "$BIN/codebuilder-sshd" --home "$LAUNCH_HOME" --listen "127.0.0.1:$1" \
    >"$LAUNCH_HOME/sshd.log" 2>&1 </dev/null &
  # codebuilder-sshd execs sshd -D: this pid is the listener itself.
  LAUNCHED_PID=$!
}

# Starts the same /usr/sbin/sshd with the config codebuilder-sshd wrote for CB_HOME, changed
# only where it must: AuthorizedKeysFile KEYS_FILE instead of the AuthorizedKeysCommand, and
# its own port. Same host keys, ciphers and hardening; the user is git unless USER is given.
# Sets PORT.
start_vanilla() { # NAME CB_HOME KEYS_FILE [USER]
  LAUNCH_DIR="$WORK/vanilla-$1"
  LAUNCH_HOME=$2
  LAUNCH_KEYS=$3
  LAUNCH_USER=${4:-}
  install -d -m 0755 "$LAUNCH_DIR"
  start_listener "$LAUNCH_DIR/sshd.log" launch_vanilla
}
launch_vanilla() { # PORT
  local config="$LAUNCH_DIR/sshd_config"
  sed -e "s|^ListenAddress .*|ListenAddress 127.0.0.1:$1|" \
    -e '/^AuthorizedKeysCommand/d' -e '/^SetEnv /d' \
    -e "s|^AuthorizedKeysFile none\$|AuthorizedKeysFile $LAUNCH_KEYS|" \
    "$LAUNCH_HOME/ssh/sshd_config" >"$config"
  if [ -n "$LAUNCH_USER" ]; then
    sed -i "s|^AllowUsers .*|AllowUsers $LAUNCH_USER|" "$config"
  fi
  grep -qx "AuthorizedKeysFile $LAUNCH_KEYS" "$config" ||
    die "codebuilder's sshd_config has no 'AuthorizedKeysFile none' line to replace"
  /usr/sbin/sshd -t -f "$config" || die "sshd refuses $config"
  /usr/sbin/sshd -D -e -f "$config" >"$LAUNCH_DIR/sshd.log" 2>&1 </dev/null &
  LAUNCHED_PID=$!
}

# A registry of our own (Debian's docker-registry), on loopback, with no auth (see
# scripts/services.sh); its storage is below $WORK. Sets REGISTRY.
start_registry() {
  local port
  port=$(free_port)
  install -d -m 0755 "$WORK/registry"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$WORK/registry" "$port" >"$WORK/registry/config.yml"
  docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 </dev/null &
  BENCH_PIDS+=($!)
  wait_for_port "$port" "$!" "$WORK/registry/log"
  # shellcheck disable=SC2034 # for the scripts that source this file
  REGISTRY=127.0.0.1:$port
}

# --- results from hyperfine's JSON (seconds) ------------------------------------------------
# "mean ± stddev" in ms of result number I.
stat_ms() { # JSON I
  jq -r --argjson i "$2" '.results[$i] | "\(.mean * 1000 * 100 | round / 100) ± \(.stddev * 1000 * 100 | round / 100)"' "$1"
}
median_ms() { # JSON I
  jq -r --argjson i "$2" '.results[$i].median * 1000 * 100 | round / 100' "$1"
}
# Ratio of the means (FIELD=mean) or medians (FIELD=median) of results J over I.
ratio() { # JSON I J [FIELD]
  jq -r --argjson i "$2" --argjson j "$3" --arg f "${4:-mean}" \
    '(.results[$j][$f] / .results[$i][$f]) * 1000 | round / 1000' "$1"
}
# The larger of two numbers (verdicts take the worse of the mean and median ratios).
larger() { # A B
  awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'
}
# "target met" when RATIO <= LIMIT.
verdict() { # RATIO LIMIT
  if awk -v r="$1" -v l="$2" 'BEGIN { exit !(r <= l) }'; then
    echo "target met"
  else
    echo "target missed"
  fi
}

# --- interleaved rounds -------------------------------------------------------------------------
# hyperfine times all runs of one command before the next, so a burst of load from another
# process (this machine is shared) lands on one command only and skews the ratio. Instead the
# commands in B_NAMES / B_CMDS (and per-command B_PREPS, "" for none) are timed in ROUNDS
# hyperfine invocations, the order rotated each round, and the runs of all rounds are merged
# into one hyperfine-shaped JSON (results in B_NAMES order: command, mean, stddev, median, min,
# max, times).
B_NAMES=()
B_CMDS=()
B_PREPS=()
# The highest 1-minute load average seen at the start of a round, for the reader to judge the
# noise: the benchmark itself accounts for about 1; beyond that, other processes competed.
MAX_LOAD=0
note_load() {
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  if awk -v a="$load" -v b="$MAX_LOAD" 'BEGIN { exit !(a > b) }'; then
    MAX_LOAD=$load
  fi
}
load_note() {
  echo "Highest 1-minute load average at the start of a round: $MAX_LOAD ($(nproc) cores; the benchmark itself accounts for about 1)."
}
bench_add() { # NAME CMD [PREPARE]
  B_NAMES+=("$1")
  B_CMDS+=("$2")
  B_PREPS+=("${3:-}")
}
run_rounds() { # OUT ROUNDS RUNS WARMUP [hyperfine options...]
  local out=$1 rounds=$2 runs=$3 warmup=$4
  shift 4
  local n=${#B_NAMES[@]} r k i args files=()
  for r in $(seq 0 $((rounds - 1))); do
    args=()
    for k in $(seq 0 $((n - 1))); do
      i=$(((k + r) % n))
      args+=(-n "${B_NAMES[$i]}")
      [ -z "${B_PREPS[$i]}" ] || args+=(--prepare "${B_PREPS[$i]}")
      args+=("${B_CMDS[$i]}")
    done
    say "round $((r + 1))/$rounds: $n commands, $runs runs each"
    note_load
    hyperfine --style basic --warmup "$warmup" --runs "$runs" "$@" \
      --export-json "$out.round$r" "${args[@]}" >&2
    files+=("$out.round$r")
  done
  printf '%s\n' "${B_NAMES[@]}" | jq -R . | jq -s . >"$out.names"
  jq -s --slurpfile names "$out.names" '
    [.[].results[]] as $all
    | {results: [$names[0][] as $n
        | ([$all[] | select(.command == $n) | .times[]]) as $t
        | ($t | add / length) as $m
        | {command: $n, mean: $m, times: $t,
           stddev: (if ($t | length) > 1
                    then ([$t[] | (. - $m) * (. - $m)] | add / (($t | length) - 1) | sqrt)
                    else 0 end),
           median: ($t | sort | if length % 2 == 1 then .[(length - 1) / 2]
                               else (.[length / 2 - 1] + .[length / 2]) / 2 end),
           min: ($t | min), max: ($t | max)}]}' "${files[@]}" >"$out"
  B_NAMES=()
  B_CMDS=()
  B_PREPS=()
}
