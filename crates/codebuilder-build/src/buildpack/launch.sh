#!/bin/bash
# codebuilder's launcher, the entrypoint of every buildpack app's image: Heroku's runtime
# contract. It runs in /app with HOME=/app and PORT (default 5000), sources the app's
# .profile.d/*.sh and .profile, then runs the command it is given: one argument is a Procfile
# command line, run by bash as Heroku does; several are a program and its arguments.
cd /app || exit 1
export HOME=/app
export PORT="${PORT:-5000}"
for profile in /app/.profile.d/*.sh; do
  if [ -f "$profile" ]; then
    # shellcheck disable=SC1090 # the app's own scripts
    . "$profile"
  fi
done
unset profile
if [ -f /app/.profile ]; then
  # shellcheck disable=SC1091
  . /app/.profile
fi
case $# in
  0) echo "codebuilder launcher: no command to run" >&2; exit 64 ;;
  1) exec bash -c "$1" ;;
  *) exec "$@" ;;
esac
