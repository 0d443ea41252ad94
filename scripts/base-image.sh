#!/usr/bin/env bash
# Makes a Debian base image without pulling one (no registry is reachable from these
# machines): debootstrap a minimal bookworm into a cached folder, then `docker import` it as
# the image named by $1 (default debian:bookworm-slim, what the Dockerfile starts FROM).
# Does nothing when the image already exists. Usage: scripts/base-image.sh [IMAGE]
set -euo pipefail
export PATH="$PATH:/usr/local/bin:/usr/sbin:/sbin"
IMAGE="${1:-debian:bookworm-slim}"
CACHE="${CODEBUILDER_BASE_CACHE:-/var/cache/codebuilder/bookworm-rootfs.tar}"
MIRROR="${CODEBUILDER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
if [ ! -s "$CACHE" ]; then
  command -v debootstrap >/dev/null || {
    apt-get -qq -o DPkg::Lock::Timeout=300 install -y --no-install-recommends debootstrap >/dev/null
  }
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  echo "base-image: debootstrap bookworm into $root (cached in $CACHE)"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/var/log/codebuilder-debootstrap.log 2>&1 ||
    { tail -n 20 /var/log/codebuilder-debootstrap.log >&2; echo "error: debootstrap failed" >&2; exit 1; }
  # Leave apt lists out of the image, as Debian's own slim images do.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
  mkdir -p "$(dirname "$CACHE")"
  tar -C "$root" -cf "$CACHE.tmp" . && mv "$CACHE.tmp" "$CACHE"
fi
docker import --change 'CMD ["/bin/bash"]' "$CACHE" "$IMAGE" >/dev/null
echo "base-image: imported $IMAGE"
