#!/usr/bin/env bash
# Builds hubpipe's base image without a container registry: Debian 12 (bookworm, Python 3.11, the ABI of
# constraints.txt) bootstrapped from Debian's package mirror with debootstrap, then imported into podman.
#
#   container/base-image.sh [IMAGE]        (default: localhost/hubpipe-base:bookworm; root and debootstrap needed)
#
# Skips the work when IMAGE already exists; HUBPIPE_BASE_REBUILD=1 forces a new bootstrap. The mirror is the
# host's Debian mirror (from its apt sources) unless DEBIAN_MIRROR is set.
set -euo pipefail

image="${1:-localhost/hubpipe-base:bookworm}"
here="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"

if [[ "${HUBPIPE_BASE_REBUILD:-0}" != 1 ]] && podman image exists "$image"; then
  echo "base image $image exists (HUBPIPE_BASE_REBUILD=1 rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }

host_mirror() {
  # The first Debian archive URI in the host's apt sources (deb822 or one-line format).
  local uri
  uri=$(grep -hoE '^URIs:[[:space:]]*[^[:space:]]+' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -- '-security' | head -n 1 || true)
  if [[ -z "$uri" ]]; then
    uri=$(grep -hoE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+' /etc/apt/sources.list 2>/dev/null \
          | awk '{print $NF}' | grep -v -- '-security' | head -n 1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
mirror="${DEBIAN_MIRROR:-$(host_mirror)}"

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/hubpipe-base.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm from $mirror"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -n 20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
# The image's apt uses the same mirror (the builder stage installs a compiler from it).
echo "deb $mirror bookworm main" >"$rootfs/etc/apt/sources.list"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "imported $image"
