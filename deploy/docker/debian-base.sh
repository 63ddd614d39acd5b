#!/usr/bin/env bash
# Build a Debian base image from a local rootfs, for sites (and tests) where no registry can be reached:
#   debootstrap --variant=minbase SUITE ROOTFS MIRROR  →  tar | docker import  →  IMAGE
# The image is the BASE_IMAGE build argument of deploy/docker/Dockerfile. An existing IMAGE is kept
# (delete it to rebuild): the rootfs takes ~30 s to make and never changes for a given suite.
#
# Usage: deploy/docker/debian-base.sh [IMAGE] ; env SUITE (default bookworm), MIRROR (default: the first
# Debian mirror in this machine's apt sources, else http://deb.debian.org/debian). Needs root, debootstrap, docker.
set -euo pipefail

image=${1:-gossip-base:bookworm}
suite=${SUITE:-bookworm}

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "debian-base: $image exists, kept"
  exit 0
fi

# The mirror apt already uses here: one-line "deb URL SUITE ..." or deb822 "URIs: URL" entries,
# skipping the security archive (debootstrap wants the main one).
mirror_from_apt() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk '
      /^[[:space:]]*deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }
      /^[[:space:]]*URIs:/ { for (i = 2; i <= NF; i++) print $i }
    ' "$f"
  done | grep -v -e security -e '^$' | grep -i debian | head -n 1
}
mirror=${MIRROR:-$(mirror_from_apt || true)}
mirror=${mirror:-http://deb.debian.org/debian}

for tool in debootstrap docker; do
  command -v "$tool" >/dev/null || { echo "debian-base: $tool is missing; run: bash deploy/system-deps.sh" >&2; exit 1; }
done

rootfs=$(mktemp -d /tmp/gossip-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debian-base: debootstrap $suite from $mirror"
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
# What a container never needs: package caches and lists (apt-get update fetches fresh ones).
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "debian-base: built $image"
