#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Fetches Debian's own stock kernel for the kernel-vm run on the legacy VFIO API: the newest
# linux-image-6.1.0-NN-cloud-amd64 apt knows (or $IOMMUD_KVM_STOCK_PKG), which has no iommufd
# but the VFIO container and group files, its VFIO modules in the same package.  The cloud
# flavour has the Intel IOMMU only.
#
# The .deb is kept under $IOMMUD_KVM_STOCK_CACHE (default ~/.cache/iommud/stock-kernel) by a
# hash of its content, unpacked next to it; PKG_VERSION.sha256 names the hash for a package
# version.  Prints the directory that holds vmlinuz, config and modules/ (the .ko files, with
# modules/order listing them in insmod order); progress goes to stderr.
#
# --cached-only: print the cached kernel, or exit 77 without downloading anything.
#
# Exit codes: 0 fetched or cached, 77 no such kernel here (apt knows none, the download
# failed), anything else a real failure.

set -euo pipefail

cached_only=0
[ "${1:-}" = --cached-only ] && cached_only=1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${IOMMUD_KVM_STOCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/iommud/stock-kernel}
# insmod order: each module needs the ones before it (vfio_virqfd is a module up to 6.1 only).
# pci-pf-stub, where the package has it, is the host driver the bridge-group test moves a
# sibling to.
modules=(irqbypass vfio_virqfd vfio vfio_iommu_type1 vfio-pci-core vfio-pci pci-pf-stub)
optional=" vfio_virqfd pci-pf-stub "

say() { echo "stock-kernel: $*" >&2; }
skip() { say "SKIP: $*"; exit 77; }
die() { say "ERROR: $*"; exit 1; }

case "$cache" in
"$(cd "$here/../.." && pwd)"/*)
        die "IOMMUD_KVM_STOCK_CACHE=$cache is inside the source tree; point it elsewhere" ;;
esac
mkdir -p "$cache"

pkg=${IOMMUD_KVM_STOCK_PKG:-$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' \
        2>/dev/null | awk '{ print $1 }' | sort -V | tail -n 1)}
version=
[ -n "$pkg" ] && version=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2 }')
[ "$version" = "(none)" ] && version=

# The cached kernel for pkg/version; without apt's answer, the one fetched last.
ref=
if [ -n "$pkg" ] && [ -n "$version" ]; then
        ref=$cache/${pkg}_$version.sha256
elif [ $cached_only = 1 ]; then
        ref=$(ls -t "$cache"/*.sha256 2>/dev/null | head -n 1 || true)
fi
# Unpacked for this list of modules: a new list unpacks the cached .deb again.
if [ -n "$ref" ] && [ -f "$ref" ] &&
   [ "$(cat "$cache/$(cat "$ref")/.ready" 2>/dev/null)" = "${modules[*]}" ]; then
        say "cached: $(basename "$ref" .sha256)"
        echo "$cache/$(cat "$ref")"
        exit 0
fi
[ $cached_only = 1 ] && skip "no cached stock kernel in $cache"
[ -n "$pkg" ] && [ -n "$version" ] || skip "apt knows no linux-image-6.1.0-*-cloud-amd64"
for tool in apt-get dpkg-deb sha256sum xz flock; do
        command -v "$tool" >/dev/null || skip "'$tool' is missing"
done

exec 9>"$cache/lock"
flock 9

tmp=$(mktemp -d "$cache/download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ -f "$ref" ] && [ -f "$cache/deb-$(cat "$ref").deb" ]; then
        hash=$(cat "$ref")
else
        say "downloading $pkg $version (apt-get download)"
        (cd "$tmp" && apt-get download -qq "$pkg=$version" >/dev/null 2>&1) ||
                skip "cannot download $pkg $version"
        deb=$(ls "$tmp"/*.deb)
        hash=$(sha256sum "$deb" | cut -c1-16)
        mv "$deb" "$cache/deb-$hash.deb"
fi

out=$cache/$hash
rm -rf "$out"
mkdir -p "$out/modules" "$tmp/x"
dpkg-deb -x "$cache/deb-$hash.deb" "$tmp/x"
cp "$tmp"/x/boot/vmlinuz-* "$out/vmlinuz"
cp "$tmp"/x/boot/config-* "$out/config"
: >"$out/modules/order"
for m in "${modules[@]}"; do
        src=$(find "$tmp/x/lib/modules" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) |
              head -n 1)
        if [ -z "$src" ]; then
                # vfio_virqfd is built into vfio from 6.2 on
                case $optional in *" $m "*) continue ;; esac
                die "$pkg has no module $m"
        fi
        case $src in
        *.xz) xz -dc "$src" >"$out/modules/$m.ko" ;;
        *.zst) zstd -qdc "$src" >"$out/modules/$m.ko" ;;
        *) cp "$src" "$out/modules/$m.ko" ;;
        esac
        echo "$m.ko" >>"$out/modules/order"
done
echo "${modules[*]}" >"$out/.ready"
echo "$hash" >"$cache/${pkg}_$version.sha256"
say "$pkg $version: deb-$hash.deb, $(wc -l <"$out/modules/order") modules"
echo "$out"
