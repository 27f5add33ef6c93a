#!/usr/bin/env bash
# Build the systemd base image Molecule and `make stack` run as "hosts".
#
# No container registry is reachable here, so images are made from a debootstrap
# root filesystem and imported with `docker import`. The tag carries a hash of
# everything that goes into the image (this script, the suite, the CA bundle the
# host trusts), so an unchanged recipe reuses the image and a changed one rebuilds.
#
# usage: build.sh SUITE        (bookworm | trixie)   prints the image name
set -euo pipefail

suite="${1:?usage: build.sh SUITE}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Packages a rented Spheron host already has (systemd, sshd, python3 for Ansible).
# The roles install everything else themselves, so their install tasks are tested.
include="systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,procps,openssh-server"

# Extra CAs the host trusts: without them HTTPS to PyPI fails inside containers.
ca_files=()
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  ca_files=(/usr/local/share/ca-certificates/*.crt)
fi

recipe_hash="$(cat "${BASH_SOURCE[0]}" <(echo "$suite $mirror $include") ${ca_files[@]+"${ca_files[@]}"} \
  | sha256sum | cut -c1-12)"
image="langgraph-stack-base:${suite}-${recipe_hash}"

if docker image inspect "$image" >/dev/null 2>&1; then
  # A moving tag, so inventories and scenarios can name the suite without the hash.
  docker tag "$image" "langgraph-stack-base:${suite}"
  echo "$image"
  exit 0
fi

rootfs="$(mktemp -d /var/tmp/rootfs-"$suite".XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "building $image (debootstrap $suite, about 1-2 minutes)" >&2
debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >&2

if ((${#ca_files[@]})); then
  cp "${ca_files[@]}" "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >&2
fi
# Plain-HTTP mirrors work from containers; keep the apt source the image was built from.
echo "deb $mirror $suite main" > "$rootfs/etc/apt/sources.list"
# A container has no console or udev, and cannot load kernel modules: these units
# would only slow boots down or fail.
for unit in getty@tty1.service console-getty.service systemd-udevd.service \
            systemd-udev-trigger.service systemd-firstboot.service \
            systemd-modules-load.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
# debootstrap copies the build machine's hostname and a machine-id; each container gets its own.
: > "$rootfs/etc/machine-id"
rm -f "$rootfs/etc/hostname"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
# Dated at the epoch, so apt's cache_valid_time sees the emptied lists as stale, not fresh.
touch -d @0 "$rootfs/var/lib/apt/lists"

tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'ENV container=docker' \
  - "$image" >&2
docker tag "$image" "langgraph-stack-base:${suite}"
echo "$image"
