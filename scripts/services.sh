#!/usr/bin/env bash
# Starts the Docker engine for tests/CI if `docker info` does not answer yet.
# There is no systemd on these machines, so the docker.io package's unit
# never runs; CI ends every process between runs, so CI must call this.
#
# It deliberately starts no registry: each test starts its own with
# `docker-registry serve CONFIG` (Debian's docker-registry 2.8.2). Checked by
# hand on Debian 12, this minimal config works (no auth, plain HTTP):
#
#   version: 0.1                  # required: "unsupported version" without it
#   storage:                      # required: "no storage configuration provided"
#     filesystem:
#       rootdirectory: /tmp/SOMEDIR
#   http:
#     addr: 127.0.0.1:PORT        # PORT 0 works too: the log line
#                                 # `listening on 127.0.0.1:NNNNN` gives the real port
#
# It logs a harmless warning about no http.secret. Its own log goes to
# stderr, its HTTP access log to stdout: drain or redirect both, or a full
# pipe stalls it. dockerd treats
# 127.0.0.0/8 as an insecure registry by default, so
# `docker push 127.0.0.1:PORT/test:1` works with no daemon config, and
# `GET http://127.0.0.1:PORT/v2/test/tags/list` then returns
# {"name":"test","tags":["1"]}.
set -euo pipefail

LOG=/var/log/codebuilder-dockerd.log
# dockerd lives in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

if docker info >/dev/null 2>&1; then
  exit 0
fi

command -v dockerd >/dev/null 2>&1 || { echo "error: dockerd not found; run scripts/deps.sh first" >&2; exit 1; }

# No bridge and no iptables: containers need no network of their own here
# (builds use --network host) and the sandbox may not allow iptables.
# setsid: own session, so a terminal's Ctrl-C or hangup does not reach it;
# -w keeps setsid as dockerd's parent so $! tells us whether dockerd died.
echo "starting dockerd (log: $LOG)"
nohup setsid -w dockerd --bridge=none --iptables=false >>"$LOG" 2>&1 </dev/null &
pid=$!

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "dockerd is up"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "error: dockerd exited during startup; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 1
  fi
  sleep 1
done

echo "error: dockerd did not answer 'docker info' within 60 s; last lines of $LOG:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
