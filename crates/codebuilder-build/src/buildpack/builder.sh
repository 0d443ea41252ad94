#!/bin/bash
# codebuilder's builder. It runs inside a container of the builder image
# (CODEBUILDER_BUILDER_IMAGE), never on the codebuilder host, and speaks the Heroku buildpack
# API: bin/detect BUILD_DIR, bin/compile BUILD_DIR CACHE_DIR ENV_DIR, bin/release BUILD_DIR.
#
# Usage: builder.sh MODE NAME...     (the pushed tree, a tar archive, on standard input)
#   MODE first  the first buildpack whose bin/detect passes compiles the app
#   MODE all    every buildpack whose bin/detect passes compiles it, in order (.buildpacks)
# Buildpack number I (from 0) is in /codebuilder/buildpacks/I; NAME number I names it in
# messages. The app is built in /app, the cache is /tmp/cache (the app's cache directory on
# the state volume), the config vars are files in /codebuilder/env.
# For the host, /codebuilder/out gets release-I.yml (bin/release's output) and the Procfile.
# Exit status: 0 compiled; 240 no buildpack detected the app; 200+I bin/compile of buildpack I
# failed; 220+I its bin/release failed; anything else: the builder itself failed.
set -o pipefail

mode=$1
shift
build=/app
cache=/tmp/cache
env_dir=/codebuilder/env
out=/codebuilder/out
mkdir -p "$build" "$cache" "$env_dir" "$out" || exit 1
tar -x -C "$build" -f - || { echo " !     cannot unpack the pushed source"; exit 1; }
cd "$build" || exit 1

compiled=0
index=0
for name in "$@"; do
  buildpack=/codebuilder/buildpacks/$index
  if [ "$mode" = first ] && [ "$compiled" -gt 0 ]; then
    break
  fi
  if framework=$("$buildpack/bin/detect" "$build"); then
    framework=${framework%%$'\n'*}
    echo "-----> ${framework:-$name} app detected"
    "$buildpack/bin/compile" "$build" "$cache" "$env_dir"
    status=$?
    if [ "$status" -ne 0 ]; then
      echo " !     Push rejected, failed to compile ${framework:-$name} app: bin/compile of $name exited with status $status"
      exit $((200 + index))
    fi
    # A buildpack may leave variables for the ones after it (heroku-buildpack-multi).
    if [ -f "$buildpack/export" ]; then
      # shellcheck disable=SC1091
      . "$buildpack/export"
    fi
    if [ -x "$buildpack/bin/release" ]; then
      "$buildpack/bin/release" "$build" >"$out/release-$index.yml" || exit $((220 + index))
    fi
    compiled=$((compiled + 1))
  elif [ "$mode" = all ]; then
    echo "-----> $name does not apply to this app (its bin/detect did not pass): skipped"
  fi
  index=$((index + 1))
done
if [ "$compiled" -eq 0 ]; then
  echo " !     No buildpack detected this app"
  exit 240
fi
if [ -f "$build/Procfile" ]; then
  cp "$build/Procfile" "$out/Procfile"
fi
